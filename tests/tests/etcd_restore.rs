//! `kubectl backup etcd restore` with the real tools: a data directory
//! restored from a stored snapshot by etcdctl 3.4, a fresh etcd started on it
//! and every key read back at the snapshot's revision; refusals for a
//! non-empty data dir and for a hash mismatch.

mod etcd_common;

use std::path::Path;

use e2e::servers::etcd::{EtcdOptions, EtcdServer};
use e2e::servers::free_port;
use etcd_client::GetOptions;
use etcd_common::*;
use serde_json::Value;

fn restore_args(location: &str, data_dir: &Path, name: &str, peer: &str) -> Vec<String> {
    vec![
        "etcd".into(),
        "restore".into(),
        "latest".into(),
        "--location".into(),
        location.into(),
        "--data-dir".into(),
        data_dir.display().to_string(),
        "--name".into(),
        name.into(),
        "--initial-cluster".into(),
        format!("{name}={peer}"),
        "--initial-advertise-peer-urls".into(),
        peer.into(),
    ]
}

#[tokio::test]
async fn restored_member_serves_every_key_at_the_snapshot_revision() {
    let etcd = EtcdServer::start();
    fill(&etcd, 3000, 100).await;
    // Some history: overwrite and delete, so revision != key count.
    let mut client = etcd.client().await.unwrap();
    for i in 0..20 {
        client
            .put(key(i), b"overwritten".to_vec(), None)
            .await
            .unwrap();
    }
    for i in 2990..3000 {
        client.delete(key(i), None).await.unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let location = file_url(&dir.path().join("store"));
    let out = ok(kb()
        .args(["etcd", "snapshot", "-o", "json", "--location", &location])
        .args(etcd.client_flags()));
    let meta: Value = serde_json::from_str(&out).unwrap();
    let revision = meta["revision"].as_i64().unwrap();
    assert_eq!(meta["totalKeys"], 2990);
    // Writes after the snapshot must not survive the restore.
    client.put("/after/snapshot", "x", None).await.unwrap();
    drop(client);
    drop(etcd);

    let data_dir = dir.path().join("restored-data");
    let peer_port = free_port();
    let peer = format!("http://127.0.0.1:{peer_port}");
    let out = ok(kb()
        .args(restore_args(&location, &data_dir, "restored", &peer))
        .args(["-o", "json"]));
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["revision"], revision);
    // Debian's etcd 3.4: etcdctl restores, and cannot bump the revision.
    assert!(report["tool"].as_str().unwrap().ends_with("etcdctl"));
    assert_eq!(report["revisionBumpedBy"], 0);
    assert!(
        report["warnings"][0]
            .as_str()
            .unwrap()
            .contains("WITHOUT a revision bump"),
        "{report}"
    );
    assert!(data_dir.join("member/snap/db").is_file());
    // The download's work dir is gone.
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(".etcd-restore-")
        })
        .collect();
    assert!(leftovers.is_empty());

    let restored = EtcdServer::start_with(EtcdOptions {
        name: Some("restored".into()),
        data_dir: Some(data_dir.clone()),
        peer_port: Some(peer_port),
        ..EtcdOptions::default()
    });
    let mut client = restored.client().await.unwrap();
    let all = client
        .get("/registry/test/", Some(GetOptions::new().with_prefix()))
        .await
        .unwrap();
    assert_eq!(all.header().unwrap().revision(), revision);
    assert_eq!(all.kvs().len(), 2990);
    for (i, kv) in all.kvs().iter().enumerate() {
        assert_eq!(kv.key_str().unwrap(), key(i));
        let expected = if i < 20 {
            b"overwritten".to_vec()
        } else {
            value(i, 100)
        };
        assert_eq!(kv.value(), expected.as_slice(), "value of {}", key(i));
    }
    let after = client.get("/after/snapshot", None).await.unwrap();
    assert!(
        after.kvs().is_empty(),
        "a write after the snapshot came back"
    );
    let members = client.member_list().await.unwrap();
    assert_eq!(members.members().len(), 1);
    assert_eq!(members.members()[0].name(), "restored");
    drop(client);
    drop(restored);

    // The data dir is now in use: refused, unless --force moves it aside.
    let out = fails(kb().args(restore_args(&location, &data_dir, "restored", &peer)));
    assert!(stderr(&out).contains("not empty"), "{}", stderr(&out));
    assert!(stderr(&out).contains("--force"));
    ok(kb()
        .args(restore_args(&location, &data_dir, "restored", &peer))
        .arg("--force"));
    let aside: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("restored-data.before-restore-")
        })
        .collect();
    assert_eq!(aside.len(), 1, "the old data dir was moved aside");
    assert!(aside[0].path().join("member/snap/db").is_file());
}

#[tokio::test]
async fn hash_mismatch_is_refused_unless_skipped() {
    let etcd = EtcdServer::start();
    fill(&etcd, 100, 50).await;
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let location = file_url(&store);
    let out = ok(kb()
        .args([
            "etcd",
            "snapshot",
            "-o",
            "json",
            "--location",
            &location,
            "--cluster",
            "c",
            "--name",
            "s",
        ])
        .args(etcd.client_flags()));
    let meta: Value = serde_json::from_str(&out).unwrap();

    // Rewrite the stored copy with a wrong trailer: intact zstd, intact
    // database, but the sha256 no longer matches.
    let object = store.join(meta["object"].as_str().unwrap());
    let mut plain = zstd::decode_all(std::fs::File::open(&object).unwrap()).unwrap();
    let last = plain.len() - 1;
    plain[last] ^= 0xff;
    std::fs::write(&object, zstd::encode_all(&plain[..], 3).unwrap()).unwrap();

    let data_dir = dir.path().join("data");
    let peer = format!("http://127.0.0.1:{}", free_port());
    let out = fails(kb().args(restore_args(&location, &data_dir, "m", &peer)));
    let err = stderr(&out);
    assert!(err.contains("sha256 mismatch"), "{err}");
    assert!(err.contains("--skip-hash-check"), "{err}");
    assert!(!data_dir.exists(), "nothing restored");

    let out = ok(kb()
        .args(restore_args(&location, &data_dir, "m", &peer))
        .arg("--skip-hash-check")
        .args(["-o", "json"]));
    let report: Value = serde_json::from_str(&out).unwrap();
    assert!(
        report["command"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a == "--skip-hash-check")
    );
    assert!(data_dir.join("member/snap/db").is_file());
}

#[tokio::test]
async fn bad_restore_input_is_a_usage_error() {
    let etcd = EtcdServer::start();
    fill(&etcd, 10, 10).await;
    let dir = tempfile::tempdir().unwrap();
    let location = file_url(&dir.path().join("store"));
    ok(kb()
        .args(["etcd", "snapshot", "--location", &location])
        .args(etcd.client_flags()));
    let data_dir = dir.path().join("data");
    // --name not in --initial-cluster
    let out = fails(kb().args([
        "etcd",
        "restore",
        "latest",
        "--location",
        &location,
        "--data-dir",
        &data_dir.display().to_string(),
        "--name",
        "x",
        "--initial-cluster",
        "a=http://127.0.0.1:2380",
        "--initial-advertise-peer-urls",
        "http://127.0.0.1:2380",
    ]));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("not in --initial-cluster"),
        "{}",
        stderr(&out)
    );
    // a snapshot that does not exist
    let out = fails(kb().args([
        "etcd",
        "restore",
        "no-such",
        "--location",
        &location,
        "--data-dir",
        &data_dir.display().to_string(),
        "--name",
        "a",
        "--initial-cluster",
        "a=http://127.0.0.1:2380",
        "--initial-advertise-peer-urls",
        "http://127.0.0.1:2380",
    ]));
    assert!(
        stderr(&out).contains("no etcd snapshot"),
        "{}",
        stderr(&out)
    );
    assert!(!data_dir.exists());
}

#[tokio::test]
async fn plan_prints_every_members_command() {
    let etcd = EtcdServer::start();
    fill(&etcd, 10, 10).await;
    let dir = tempfile::tempdir().unwrap();
    let location = file_url(&dir.path().join("store"));
    ok(kb()
        .args([
            "etcd",
            "snapshot",
            "--location",
            &location,
            "--cluster",
            "prod",
            "--name",
            "s1",
        ])
        .args(etcd.client_flags()));
    let ic = "cp1=https://10.0.0.1:2380,cp2=https://10.0.0.2:2380,cp3=https://10.0.0.3:2380";
    let plan = ok(kb().args([
        "etcd",
        "restore",
        "prod/s1",
        "--plan",
        "--location",
        &location,
        "--initial-cluster",
        ic,
    ]));
    for (name, ip) in [
        ("cp1", "10.0.0.1"),
        ("cp2", "10.0.0.2"),
        ("cp3", "10.0.0.3"),
    ] {
        let line = plan
            .lines()
            .find(|l| l.contains(&format!("--name {name} ")))
            .unwrap_or_else(|| panic!("no command for {name}:\n{plan}"));
        assert!(
            line.starts_with("kubectl backup etcd restore prod/s1 "),
            "{line}"
        );
        assert!(
            line.contains(&format!("--initial-advertise-peer-urls https://{ip}:2380")),
            "{line}"
        );
        assert!(line.contains(&format!("--location={location}")), "{line}");
        assert!(line.contains(&format!("--initial-cluster {ic}")), "{line}");
    }
    assert!(plan.contains("kube-apiserver"));
    assert!(plan.contains("systemctl restart kubelet"));
}

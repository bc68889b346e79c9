//! `kubectl backup etcd snapshot|list|status|verify|prune|download` against
//! the real etcd, to a local folder and to moto S3, driving the built binary.

mod etcd_common;

use std::process::Command;

use e2e::servers::S3Server;
use e2e::servers::etcd::EtcdServer;
use etcd_common::*;
use serde_json::Value;

fn snapshot(etcd: &EtcdServer, location: &str, extra: &[&str]) -> Value {
    let out = ok(kb()
        .args(["etcd", "snapshot", "-o", "json", "--location", location])
        .args(etcd.client_flags())
        .args(extra));
    serde_json::from_str(&out).expect("snapshot json")
}

#[tokio::test]
async fn local_folder_snapshot_verify_corrupt_prune_download() {
    let etcd = EtcdServer::start();
    let revision = fill(&etcd, 3000, 200).await;
    let dir = tempfile::tempdir().unwrap();
    let location = file_url(dir.path());

    let meta = snapshot(&etcd, &location, &["--cluster", "prod", "--name", "first"]);
    assert_eq!(meta["cluster"], "prod");
    assert_eq!(meta["name"], "first");
    assert_eq!(meta["totalKeys"], 3000);
    assert_eq!(meta["revision"], revision);
    assert_eq!(meta["member"]["name"], "default");
    assert_eq!(meta["etcdVersion"], "3.4.23");
    assert_eq!(meta["compression"], "zstd");
    assert!(meta["clusterId"].as_str().unwrap().len() >= 8);
    let db_size = meta["dbSize"].as_u64().unwrap();
    assert!(db_size > 600_000, "3000 × 200 B of values: {db_size}");
    assert!(meta["storedSize"].as_u64().unwrap() < db_size);
    assert_eq!(
        files_under(dir.path()),
        vec!["etcd/prod/first.db.zst", "etcd/prod/first.json"]
    );

    // The same database as etcdctl's own snapshot, byte for byte in content.
    let ours = dir.path().join("ours.db");
    ok(kb()
        .args(["etcd", "download", "prod/first", "-o"])
        .arg(&ours)
        .args(["--location", &location]));
    let theirs = dir.path().join("theirs.db");
    let saved = etcd
        .etcdctl()
        .args(["snapshot", "save"])
        .arg(&theirs)
        .output()
        .unwrap();
    assert!(
        saved.status.success(),
        "{}",
        String::from_utf8_lossy(&saved.stderr)
    );
    let (s_ours, s_theirs) = (etcdctl_status(&ours), etcdctl_status(&theirs));
    assert_eq!(s_ours, s_theirs, "etcdctl snapshot status of both files");
    assert_eq!(s_ours["revision"], revision);
    assert_eq!(
        std::fs::metadata(&ours).unwrap().len(),
        db_size + 32,
        "database plus the sha256 trailer"
    );
    assert_eq!(
        std::fs::metadata(&ours).unwrap().len(),
        std::fs::metadata(&theirs).unwrap().len()
    );

    // status, plain and deep
    let status: Value = serde_json::from_str(&ok(kb().args([
        "etcd",
        "status",
        "first",
        "--deep",
        "-o",
        "json",
        "--location",
        &location,
    ])))
    .unwrap();
    assert_eq!(status["deep"]["intact"], true);
    assert_eq!(status["deep"]["storedSha256Matches"], true);
    assert_eq!(status["deep"]["fileStatus"]["revision"], revision);

    ok(kb().args(["etcd", "verify", "prod/first", "--location", &location]));

    // Two more, then corrupt the oldest stored copy.
    fill(&etcd, 10, 10).await;
    snapshot(&etcd, &location, &["--cluster", "prod", "--name", "second"]);
    fill(&etcd, 10, 10).await;
    snapshot(&etcd, &location, &["--cluster", "prod", "--name", "third"]);
    let listed = list(&location, &[]);
    let names: Vec<&str> = listed.iter().map(|m| m["name"].as_str().unwrap()).collect();
    assert_eq!(names, vec!["third", "second", "first"], "newest first");

    let stored = dir.path().join("etcd/prod/first.db.zst");
    let mut bytes = std::fs::read(&stored).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    std::fs::write(&stored, bytes).unwrap();
    let out = fails(kb().args(["etcd", "verify", "--all", "--location", &location]));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("prod/first: CORRUPT"), "{text}");
    assert!(text.contains("prod/third: OK"), "{text}");
    assert!(stderr(&out).contains("1 of 3"), "{}", stderr(&out));
    let listed = list(&location, &[]);
    let first = listed.iter().find(|m| m["name"] == "first").unwrap();
    assert_eq!(first["lastVerification"]["ok"], false);

    // A corrupt copy cannot be downloaded by accident.
    let bad = dir.path().join("bad.db");
    let out = fails(
        kb().args(["etcd", "download", "prod/first", "-o"])
            .arg(&bad)
            .args(["--location", &location]),
    );
    assert!(stderr(&out).contains("corrupt"), "{}", stderr(&out));
    assert!(!bad.exists());

    // prune --keep 1: the newest stays, so do the others only if verified-newest.
    let out = ok(kb().args([
        "etcd",
        "prune",
        "--keep",
        "1",
        "--dry-run",
        "-o",
        "json",
        "--location",
        &location,
    ]));
    let dry: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        dry["deleted"],
        serde_json::json!(["prod/second", "prod/first"])
    );
    assert_eq!(list(&location, &[]).len(), 3, "dry run deletes nothing");
    ok(kb().args(["etcd", "prune", "--keep", "1", "--location", &location]));
    let listed = list(&location, &[]);
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["name"], "third");
    assert_eq!(
        files_under(dir.path())
            .into_iter()
            .filter(|f| f.starts_with("etcd/"))
            .collect::<Vec<_>>(),
        vec!["etcd/prod/third.db.zst", "etcd/prod/third.json"]
    );
}

#[tokio::test]
async fn prune_never_deletes_the_newest_verified_snapshot() {
    let etcd = EtcdServer::start();
    fill(&etcd, 50, 50).await;
    let dir = tempfile::tempdir().unwrap();
    let location = file_url(dir.path());
    for name in ["a", "b", "c"] {
        snapshot(&etcd, &location, &["--cluster", "c1", "--name", name]);
        std::thread::sleep(std::time::Duration::from_millis(1100));
    }
    // The newest (c) is corrupt: b is the newest verified one and must stay.
    let stored = dir.path().join("etcd/c1/c.db.zst");
    std::fs::write(&stored, b"not zstd at all").unwrap();
    fails(kb().args(["etcd", "verify", "c", "--location", &location]));
    ok(kb().args(["etcd", "prune", "--max-age", "1ms", "--location", &location]));
    let names: Vec<String> = list(&location, &[])
        .iter()
        .map(|m| m["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, vec!["b"]);
}

#[tokio::test]
async fn moto_s3_snapshot_list_verify_download() {
    let etcd = EtcdServer::start();
    let revision = fill(&etcd, 2000, 100).await;
    let s3 = S3Server::start();
    s3.create_bucket("etcd-backups").await.unwrap();
    let env = s3.env();
    let location = "s3://etcd-backups/team-a";

    let out = ok(kb()
        .args([
            "etcd",
            "snapshot",
            "-o",
            "json",
            "--location",
            location,
            "--cluster",
            "prod",
        ])
        .args(etcd.client_flags())
        .envs(env.iter().map(|(k, v)| (k, v))));
    let meta: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(meta["totalKeys"], 2000);
    assert_eq!(meta["revision"], revision);
    assert_eq!(meta["location"], location);
    let listed = list(location, &env);
    assert_eq!(listed.len(), 1);
    assert_eq!(
        listed[0]["object"],
        format!("etcd/prod/{}.db.zst", meta["name"].as_str().unwrap())
    );

    ok(kb()
        .args(["etcd", "verify", "--all", "--location", location])
        .envs(env.iter().map(|(k, v)| (k, v))));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("s.db");
    ok(kb()
        .args(["etcd", "download", "latest", "-o"])
        .arg(&file)
        .args(["--location", location])
        .envs(env.iter().map(|(k, v)| (k, v))));
    let status = etcdctl_status(&file);
    assert_eq!(status["revision"], revision);
}

#[tokio::test]
async fn encrypted_snapshot_needs_the_identity() {
    let etcd = EtcdServer::start();
    let revision = fill(&etcd, 300, 100).await;
    let dir = tempfile::tempdir().unwrap();
    let location = file_url(&dir.path().join("store"));
    let identity = age::x25519::Identity::generate();
    let recipient = identity.to_public().to_string();
    let id_file = dir.path().join("key.txt");
    {
        use age::secrecy::ExposeSecret;
        std::fs::write(
            &id_file,
            format!("{}\n", identity.to_string().expose_secret()),
        )
        .unwrap();
    }
    let meta = snapshot(
        &etcd,
        &location,
        &["--encrypt-to", &recipient, "--name", "secret"],
    );
    assert_eq!(meta["encryption"], "age");
    assert!(meta["object"].as_str().unwrap().ends_with(".db.zst.age"));

    let out = fails(kb().args(["etcd", "verify", "secret", "--location", &location]));
    assert!(stderr(&out).contains("--identity"), "{}", stderr(&out));
    ok(kb()
        .args([
            "etcd",
            "verify",
            "secret",
            "--location",
            &location,
            "--identity",
        ])
        .arg(&id_file));
    let file = dir.path().join("plain.db");
    ok(kb()
        .args(["etcd", "download", "secret", "--location", &location, "-o"])
        .arg(&file)
        .arg("--identity")
        .arg(&id_file));
    assert_eq!(etcdctl_status(&file)["revision"], revision);

    let out = fails(
        kb().args([
            "etcd",
            "snapshot",
            "--encrypt-to",
            "not-a-key",
            "--location",
            &location,
        ])
        .args(etcd.client_flags()),
    );
    assert_eq!(out.status.code(), Some(2), "bad recipient is a usage error");
}

#[test]
fn several_endpoints_are_refused_like_etcdctl() {
    let dir = tempfile::tempdir().unwrap();
    let out = fails(kb().args([
        "etcd",
        "snapshot",
        "--endpoints",
        "127.0.0.1:1,127.0.0.1:2",
        "--location",
        &file_url(dir.path()),
    ]));
    assert!(stderr(&out).contains("--leader"), "{}", stderr(&out));
}

#[tokio::test]
async fn leader_is_picked_from_several_endpoints() {
    let etcd = EtcdServer::start();
    fill(&etcd, 10, 10).await;
    let dir = tempfile::tempdir().unwrap();
    let location = file_url(dir.path());
    // A dead endpoint next to the live one: --leader finds the leader through
    // the live one and snapshots it.
    // The dead one first, so the search really has to move on.
    let endpoints = format!(
        "http://127.0.0.1:{},{}",
        e2e::servers::free_port(),
        etcd.endpoint()
    );
    let out = ok(kb().args([
        "etcd",
        "snapshot",
        "--leader",
        "-o",
        "json",
        "--location",
        &location,
        "--endpoints",
        &endpoints,
    ]));
    let meta: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(meta["member"]["endpoint"], etcd.endpoint());
    assert_eq!(meta["totalKeys"], 10);
}

#[test]
fn help_lists_the_etcd_commands() {
    let out = ok(Command::new(e2e::bin_path("kubectl-backup")).args(["etcd", "--help"]));
    for c in [
        "snapshot", "list", "status", "verify", "prune", "download", "schedule", "restore",
    ] {
        assert!(out.contains(c), "{c} missing from:\n{out}");
    }
}

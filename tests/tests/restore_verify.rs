//! A restore checks the backup before it touches any cluster: these tests
//! write backups straight into a local-folder location (with the archive
//! library, as the backup command writes them), damage them in the ways that
//! happen in real life, and run the built `kubectl-backup restore create`
//! against a target that does not exist. A refused backup must fail with a
//! clear message and never get as far as connecting.

use std::path::Path;
use std::process::{Command, Output};

use chrono::Utc;
use kubectl_backup::archive::{ArchiveWriter, ItemPath, PartInfo, ResourceKey, digest_reader};
use serde_json::{Value, json};

/// A kubeconfig whose server refuses connections: reaching it means the
/// restore got past the checks.
fn unreachable_kubeconfig(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("kubeconfig");
    std::fs::write(
        &path,
        r#"apiVersion: v1
kind: Config
clusters: [{name: nowhere, cluster: {server: "https://127.0.0.1:9"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: nowhere, context: {cluster: nowhere, user: u}}]
current-context: nowhere
"#,
    )
    .unwrap();
    path
}

/// Write backup `name` into `location` with a few ConfigMaps; returns the
/// archive bytes' digest. `phase` and `extra` go into the manifest.
fn write_backup(
    location: &Path,
    name: &str,
    phase: &str,
    archive_bytes: Option<Vec<u8>>,
) -> (Vec<u8>, PartInfo) {
    let mut writer = ArchiveWriter::new(Vec::new(), Utc::now(), &[]).unwrap();
    for i in 0..300 {
        let obj = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": format!("c{i}"), "namespace": "shop", "uid": format!("u{i}")},
            "data": {"k": format!("value-{i}-{}", "x".repeat(i % 50))}});
        let path =
            ItemPath::namespaced(ResourceKey::new("configmaps", ""), "shop", format!("c{i}"));
        writer
            .append(&path, &serde_json::to_vec(&obj).unwrap())
            .unwrap();
    }
    let (bytes, summary) = writer.finish().unwrap();
    let dir = location.join("backups").join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let stored = archive_bytes.unwrap_or_else(|| bytes.clone());
    std::fs::write(dir.join("resources.tar.zst"), &stored).unwrap();
    let manifest = json!({
        "formatVersion": 1, "name": name, "uid": "u", "phase": phase, "toolVersion": "test",
        "options": {"ttlSeconds": 3600}, "startedAt": "2026-01-02T03:04:05Z",
        "completedAt": "2026-01-02T03:04:09Z", "expiresAt": "2099-01-01T00:00:00Z",
        "source": {"server": "https://source", "version": {"gitVersion": "v1.28.7"}},
        "namespaces": ["shop"],
        "parts": {"resources.tar.zst": {"size": summary.part.size, "sha256": summary.part.sha256}},
        "errors": if phase == "PartiallyFailed" { json!([{"message": "secrets shop/x: forbidden"}]) } else { json!([]) },
    });
    std::fs::write(
        dir.join("backup.json"),
        serde_json::to_vec_pretty(&manifest).unwrap(),
    )
    .unwrap();
    (bytes, summary.part)
}

fn restore(location: &Path, kubeconfig: &Path, backup: &str, extra: &[&str]) -> Output {
    Command::new(e2e::bin_path("kubectl-backup"))
        .args(["restore", "create", backup, "--location"])
        .arg(format!("file://{}", location.display()))
        .arg("--to-kubeconfig")
        .arg(kubeconfig)
        .args(extra)
        .output()
        .unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn an_intact_backup_passes_the_checks_and_only_then_the_cluster_is_contacted() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = unreachable_kubeconfig(dir.path());
    write_backup(dir.path(), "good", "Completed", None);
    let out = restore(dir.path(), &kubeconfig, "good", &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("cannot reach the target cluster"),
        "{}",
        stderr(&out)
    );
    assert!(!stderr(&out).contains("damaged"), "{}", stderr(&out));
}

#[test]
fn a_tampered_archive_is_refused_before_touching_the_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = unreachable_kubeconfig(dir.path());
    // Same size, one byte changed in the middle: only the checksum can tell.
    let (mut bytes, _) = write_backup(dir.path(), "tampered", "Completed", None);
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(
        dir.path().join("backups/tampered/resources.tar.zst"),
        &bytes,
    )
    .unwrap();
    let out = restore(dir.path(), &kubeconfig, "tampered", &[]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("damaged, refusing to restore"), "{err}");
    assert!(err.contains("nothing was changed"), "{err}");
    assert!(!err.contains("cannot reach the target cluster"), "{err}");
}

#[test]
fn a_tampered_object_with_a_consistent_archive_is_refused() {
    // An attacker (or a bad copy) rewrites an object and re-compresses: the
    // archive is well-formed, but its sha256 no longer matches the manifest.
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = unreachable_kubeconfig(dir.path());
    let (_, original) = write_backup(dir.path(), "rewritten", "Completed", None);
    let mut writer = ArchiveWriter::new(Vec::new(), Utc::now(), &[]).unwrap();
    let evil: Value = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c0", "namespace": "shop"}, "data": {"k": "evil"}});
    writer
        .append(
            &ItemPath::namespaced(ResourceKey::new("configmaps", ""), "shop", "c0"),
            &serde_json::to_vec(&evil).unwrap(),
        )
        .unwrap();
    let (bytes, summary) = writer.finish().unwrap();
    assert_ne!(summary.part, original);
    std::fs::write(
        dir.path().join("backups/rewritten/resources.tar.zst"),
        &bytes,
    )
    .unwrap();
    let out = restore(dir.path(), &kubeconfig, "rewritten", &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("does not match") || stderr(&out).contains("sha256"),
        "{}",
        stderr(&out)
    );
    assert!(
        !stderr(&out).contains("cannot reach the target cluster"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_truncated_archive_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = unreachable_kubeconfig(dir.path());
    let (bytes, _) = write_backup(dir.path(), "truncated", "Completed", None);
    std::fs::write(
        dir.path().join("backups/truncated/resources.tar.zst"),
        &bytes[..bytes.len() * 2 / 3],
    )
    .unwrap();
    assert_ne!(
        digest_reader(&bytes[..bytes.len() * 2 / 3]).unwrap().size,
        bytes.len() as u64
    );
    let out = restore(dir.path(), &kubeconfig, "truncated", &[]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("damaged, refusing to restore"), "{err}");
    assert!(err.contains("truncated"), "{err}");
    assert!(!err.contains("cannot reach the target cluster"), "{err}");
}

#[test]
fn unfinished_failed_and_missing_backups_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = unreachable_kubeconfig(dir.path());
    write_backup(dir.path(), "running", "InProgress", None);
    write_backup(dir.path(), "broken", "Failed", None);
    for (name, expected) in [
        ("running", "is InProgress"),
        ("broken", "is Failed"),
        ("absent", "not found"),
    ] {
        let out = restore(dir.path(), &kubeconfig, name, &[]);
        assert_eq!(out.status.code(), Some(1), "{name}: {}", stderr(&out));
        assert!(stderr(&out).contains(expected), "{name}: {}", stderr(&out));
    }
}

#[test]
fn a_partially_failed_backup_needs_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = unreachable_kubeconfig(dir.path());
    write_backup(dir.path(), "partial", "PartiallyFailed", None);
    let refused = restore(dir.path(), &kubeconfig, "partial", &[]);
    assert_eq!(refused.status.code(), Some(1), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("--allow-partially-failed"),
        "{}",
        stderr(&refused)
    );
    let allowed = restore(
        dir.path(),
        &kubeconfig,
        "partial",
        &["--allow-partially-failed"],
    );
    assert!(
        stderr(&allowed).contains("cannot reach the target cluster"),
        "{}",
        stderr(&allowed)
    );
}

#[test]
fn bad_flags_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = unreachable_kubeconfig(dir.path());
    write_backup(dir.path(), "good", "Completed", None);
    for args in [
        vec!["--namespace-mapping", "shop"],
        vec!["--namespace-mapping", "shop:Not_Valid"],
        vec!["--storage-class-map", "gp2:gp3"],
        vec!["-l", "app in web"],
        vec!["--include-namespaces", "["],
        vec!["Bad_Name"],
    ] {
        let out = restore(dir.path(), &kubeconfig, "good", &args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
    }
}

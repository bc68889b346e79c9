//! The release script builds an archive and renders a krew manifest that
//! passes krew's rules; the committed manifest passes them too.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

#[test]
fn release_script_renders_a_valid_manifest_for_the_host_archive() {
    let out = tempfile::tempdir().expect("tempdir");
    let binary = e2e::bin_path("kubectl-backup");
    let status = Command::new(repo_root().join("krew/release.sh"))
        .args(["v0.1.0", "--binary"])
        .arg(&binary)
        .arg("--out")
        .arg(out.path())
        .status()
        .expect("run krew/release.sh");
    assert!(status.success(), "release.sh failed: {status}");
    let manifest = out.path().join("backup.yaml");
    let archive = out.path().join("kubectl-backup-linux-amd64.tar.gz");
    assert!(archive.exists(), "the host archive was not written");

    let check = Command::new(e2e::bin_path("krew-check"))
        .arg(&manifest)
        .arg("--archive-dir")
        .arg(out.path())
        .args(["--require", "linux/amd64"])
        .output()
        .expect("run krew-check");
    assert!(
        check.status.success(),
        "krew-check refused the rendered manifest: {}",
        String::from_utf8_lossy(&check.stderr)
    );

    // The archive really holds the binary that was built, and it runs.
    let unpack = tempfile::tempdir().expect("tempdir");
    let st = Command::new("tar")
        .arg("-xzf")
        .arg(&archive)
        .arg("-C")
        .arg(unpack.path())
        .status()
        .expect("tar");
    assert!(st.success());
    let version = Command::new(unpack.path().join("kubectl-backup"))
        .args(["version", "--client"])
        .output()
        .expect("run the packed binary");
    assert!(String::from_utf8_lossy(&version.stdout).contains("Client Version: v"));

    // A tampered archive is caught by the checker.
    std::fs::write(&archive, b"not the archive").expect("overwrite");
    let check = Command::new(e2e::bin_path("krew-check"))
        .arg(&manifest)
        .arg("--archive-dir")
        .arg(out.path())
        .output()
        .expect("run krew-check");
    assert!(!check.status.success());
    assert!(String::from_utf8_lossy(&check.stderr).contains("sha256"));
}

#[test]
fn committed_manifest_is_valid() {
    let check = Command::new(e2e::bin_path("krew-check"))
        .arg(repo_root().join("krew/backup.yaml"))
        // Only the platforms whose toolchain the release machine has are listed;
        // this machine builds linux/amd64 (see krew/README.md).
        .args(["--require", "linux/amd64"])
        .output()
        .expect("run krew-check");
    assert!(
        check.status.success(),
        "krew/backup.yaml is not valid: {}",
        String::from_utf8_lossy(&check.stderr)
    );
}

#[test]
fn release_script_refuses_a_version_without_v() {
    let out = tempfile::tempdir().expect("tempdir");
    let res = Command::new(repo_root().join("krew/release.sh"))
        .args(["0.1.0", "--out"])
        .arg(out.path())
        .output()
        .expect("run");
    assert_eq!(res.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&res.stderr).contains("leading v"));
}

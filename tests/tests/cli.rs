//! The binaries as a user meets them first: help, version, completions, exit
//! codes, and `kubectl backup` through kubectl's plugin mechanism.

use std::path::PathBuf;
use std::process::{Command, Output};

fn plugin(args: &[&str]) -> Output {
    Command::new(e2e::bin_path("kubectl-backup"))
        .args(args)
        .env_remove("KUBECONFIG")
        .output()
        .expect("run kubectl-backup")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn help_and_client_version() {
    let help = plugin(&["--help"]);
    assert!(help.status.success());
    let text = stdout(&help);
    assert!(text.contains("Usage: kubectl backup"), "{text}");
    for cmd in ["version", "completion"] {
        assert!(text.contains(cmd), "--help does not list {cmd}: {text}");
    }

    let version = plugin(&["version", "--client"]);
    assert!(version.status.success());
    let text = stdout(&version);
    assert!(
        text.contains(&format!("Client Version: v{}", env!("CARGO_PKG_VERSION"))),
        "{text}"
    );
    assert!(text.contains("Git Commit: "), "{text}");

    let json = plugin(&["version", "--client", "-o", "json"]);
    let v: serde_json::Value =
        serde_json::from_slice(&json.stdout).expect("version -o json is JSON");
    assert_eq!(v["clientVersion"], env!("CARGO_PKG_VERSION"));
}

#[test]
fn completions_for_every_shell() {
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef kubectl-backup"),
        ("fish", "complete -c kubectl-backup"),
        ("powershell", "Register-ArgumentCompleter"),
    ] {
        let out = plugin(&["completion", shell]);
        assert!(out.status.success(), "completion {shell} failed");
        assert!(
            stdout(&out).contains(marker),
            "completion {shell} lacks {marker:?}"
        );
    }
    let bad = plugin(&["completion", "tcsh"]);
    assert_eq!(
        bad.status.code(),
        Some(2),
        "an unknown shell is a usage error"
    );
}

#[test]
fn usage_errors_exit_2() {
    let out = plugin(&["--no-such-flag"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--no-such-flag"));
}

#[test]
fn version_without_a_cluster_still_prints_the_client() {
    let home = tempfile::tempdir().expect("tempdir");
    let out = Command::new(e2e::bin_path("kubectl-backup"))
        .arg("version")
        .env_remove("KUBECONFIG")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env("HOME", home.path())
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "version must not fail without a cluster"
    );
    let text = stdout(&out);
    assert!(text.contains("Client Version: v"), "{text}");
    assert!(text.contains("Server Version: unavailable"), "{text}");
}

#[test]
fn webhook_binary_help() {
    let out = Command::new(e2e::bin_path("backup-webhook"))
        .arg("--help")
        .output()
        .expect("run backup-webhook");
    assert!(out.status.success());
    assert!(stdout(&out).contains("Usage: backup-webhook"));
}

/// kubectl finds `kubectl-backup` on PATH and runs it as `kubectl backup`.
#[test]
fn kubectl_runs_the_plugin() {
    let dir: PathBuf = e2e::bin_path("kubectl-backup")
        .parent()
        .expect("bin dir")
        .to_path_buf();
    let path = std::env::join_paths(std::iter::once(dir).chain(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    )))
    .expect("PATH");
    let list = Command::new("kubectl")
        .args(["plugin", "list"])
        .env("PATH", &path)
        .output()
        .expect("kubectl is installed");
    assert!(
        String::from_utf8_lossy(&list.stdout).contains("kubectl-backup"),
        "kubectl plugin list does not show kubectl-backup: {}{}",
        stdout(&list),
        String::from_utf8_lossy(&list.stderr)
    );
    let help = Command::new("kubectl")
        .args(["backup", "--help"])
        .env("PATH", &path)
        .output()
        .expect("run kubectl backup --help");
    assert!(
        help.status.success(),
        "{}",
        String::from_utf8_lossy(&help.stderr)
    );
    assert!(stdout(&help).contains("Usage: kubectl backup"));
}

/// Against the harness cluster, `version` reports the server and the webhook.
#[tokio::test]
async fn version_reports_the_server_and_the_webhook() {
    e2e::cluster::install_crypto_provider();
    let cluster = e2e::cluster::TestCluster::start().await.expect("cluster");
    // A fresh, empty tool namespace name: the webhook is certainly not there.
    let ns = format!("kb-version-{}", uuid::Uuid::new_v4().simple());
    let kubeconfig = cluster.kubeconfig().to_path_buf();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(e2e::bin_path("kubectl-backup"))
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(["version", "--tool-namespace", &ns, "-o", "json"])
            .output()
            .expect("run")
    })
    .await
    .expect("join");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let server = v["serverVersion"]
        .as_str()
        .expect("serverVersion is reported");
    assert!(server.starts_with("v1."), "{server}");
    assert_eq!(v["webhook"]["installed"], false, "{v}");
}

/// `create` and `schedule create` share their selection flags and refuse the
/// same bad input up front, before any cluster is contacted.
#[test]
fn bad_selections_are_usage_errors_for_backups_and_schedules() {
    for args in [
        &["create", "b1", "-l", "app in (a,b"][..],
        &["create", "b1", "--include-namespaces", "shop-["][..],
        &[
            "schedule",
            "create",
            "s1",
            "--preset",
            "weekly",
            "-l",
            "app in (a,b",
        ][..],
        &[
            "schedule",
            "create",
            "s1",
            "--preset",
            "weekly",
            "--include-namespaces",
            "shop-[",
        ][..],
    ] {
        let out = plugin(args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

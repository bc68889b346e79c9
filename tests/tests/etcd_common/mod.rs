//! Helpers shared by the `etcd_*` end-to-end tests: driving the built
//! `kubectl-backup` binary and filling the real etcd with keys.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

use e2e::servers::etcd::EtcdServer;
use etcd_client::{Txn, TxnOp};
use serde_json::Value;

/// `kubectl-backup` with a clean environment for the etcd commands.
pub fn kb() -> Command {
    let mut cmd = Command::new(e2e::bin_path("kubectl-backup"));
    for var in [
        "KUBECTL_BACKUP_LOCATION",
        "ETCDCTL_ENDPOINTS",
        "ETCDCTL_CACERT",
        "ETCDCTL_CERT",
        "ETCDCTL_KEY",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

/// Run and require success; returns stdout.
pub fn ok(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run kubectl-backup");
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Run and require failure; returns the output.
pub fn fails(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("run kubectl-backup");
    assert!(
        !out.status.success(),
        "{cmd:?} should have failed:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// stderr as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `file://` URL of a folder.
pub fn file_url(dir: &Path) -> String {
    format!("file://{}", dir.display())
}

/// Put `n` keys `/registry/test/key-<i>` with values of `value_len` bytes
/// (deterministic: `value(i, len)`), 100 per transaction. Returns the revision after.
pub async fn fill(etcd: &EtcdServer, n: usize, value_len: usize) -> i64 {
    let mut client = etcd.client().await.expect("etcd client");
    let mut revision = 0;
    for start in (0..n).step_by(100) {
        let ops: Vec<TxnOp> = (start..(start + 100).min(n))
            .map(|i| TxnOp::put(key(i), value(i, value_len), None))
            .collect();
        let resp = client.txn(Txn::new().and_then(ops)).await.expect("txn");
        revision = resp.header().expect("header").revision();
    }
    revision
}

/// Key number `i`.
pub fn key(i: usize) -> String {
    format!("/registry/test/key-{i:06}")
}

/// Value number `i`: pseudo-random bytes, so compression does not make the
/// database trivially small, but reproducible.
pub fn value(i: usize, len: usize) -> Vec<u8> {
    let mut x = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x & 0xff) as u8
        })
        .collect()
}

/// `etcd list -o json` at a location.
pub fn list(location: &str, envs: &[(String, String)]) -> Vec<Value> {
    let out = ok(kb()
        .args(["etcd", "list", "-o", "json", "--location", location])
        .envs(envs.iter().map(|(k, v)| (k, v))));
    serde_json::from_str(&out).expect("list json")
}

/// `etcdctl snapshot status -w json` of a file.
pub fn etcdctl_status(file: &Path) -> Value {
    let out = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .args(["snapshot", "status", "-w", "json"])
        .arg(file)
        .output()
        .expect("etcdctl");
    assert!(
        out.status.success(),
        "etcdctl snapshot status {}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("status json")
}

/// Every file under `dir`, relative, sorted.
pub fn files_under(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                out.push(p.strip_prefix(base).unwrap().display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

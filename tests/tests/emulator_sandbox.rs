//! The `sandbox` binary as a newcomer uses it: it writes a kubeconfig, prints
//! a ready line, serves the seeded workloads to the real kubectl, and stops
//! cleanly on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use e2e::servers::require_program;
use serde_json::Value;

#[test]
fn sandbox_serves_seeded_workloads_until_terminated() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("nested").join("kubeconfig");
    let mut child = Command::new(env!("CARGO_BIN_EXE_sandbox"))
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("sandbox starts");
    let guard_pid = child.id();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut printed = Vec::new();
    let ready = loop {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(line) if line.starts_with("sandbox ready: kubeconfig at ") => break line,
            Ok(line) => printed.push(line),
            Err(_) if Instant::now() > deadline => {
                let _ = child.kill();
                panic!("no ready line; printed: {printed:?}");
            }
            Err(_) => {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!("sandbox exited early with {status}: {printed:?}");
                }
            }
        }
    };
    assert!(ready.ends_with("kubeconfig"), "{ready}");
    assert!(
        printed
            .iter()
            .any(|l| l.contains("certificate-authority-data")),
        "prints the kubeconfig"
    );
    assert!(kubeconfig.exists());

    let kubectl = require_program(
        "kubectl",
        "install kubectl (https://kubernetes.io/docs/tasks/tools/)",
    );
    let get = |args: &[&str]| -> Value {
        let out = Command::new(&kubectl)
            .env("KUBECONFIG", &kubeconfig)
            .args(args)
            .args(["-o", "json"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let names = |v: &Value| -> Vec<String> {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["metadata"]["name"].as_str().unwrap().to_owned())
            .collect()
    };
    for ns in ["shop", "blog"] {
        let deploys = get(&["get", "deployments", "-n", ns]);
        assert!(!names(&deploys).is_empty(), "deployments in {ns}");
        let svcs = get(&["get", "services", "-n", ns]);
        assert!(!names(&svcs).is_empty(), "services in {ns}");
        let cms = get(&["get", "configmaps", "-n", ns]);
        assert!(names(&cms).len() >= 2, "configmaps in {ns}");
        let secrets = get(&["get", "secrets", "-n", ns]);
        assert!(!names(&secrets).is_empty(), "secrets in {ns}");
        let widgets = get(&["get", "widgets.example.com", "-n", ns]);
        assert_eq!(names(&widgets).len(), 1, "a custom resource in {ns}");
    }
    let pvcs = get(&["get", "pvc", "-A"]);
    assert_eq!(
        pvcs["items"][0]["spec"]["storageClassName"], "standard",
        "default class applied"
    );
    let classes = get(&["get", "storageclasses"]);
    assert_eq!(
        classes["items"][0]["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"],
        "true"
    );
    let vsc = get(&["get", "volumesnapshotclasses"]);
    assert_eq!(names(&vsc), ["csi-hostpath-snapclass"]);
    let crds = get(&["get", "crd"]);
    for crd in [
        "volumesnapshots.snapshot.storage.k8s.io",
        "volumesnapshotcontents.snapshot.storage.k8s.io",
        "widgets.example.com",
    ] {
        assert!(names(&crds).iter().any(|n| n == crd), "{crd}");
    }

    let status = Command::new("kill")
        .args(["-TERM", &guard_pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(
                status.success(),
                "sandbox exits cleanly on SIGTERM: {status}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "sandbox did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

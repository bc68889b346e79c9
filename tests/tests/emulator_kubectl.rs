//! The real `kubectl` against the harness cluster (the emulator, or the cluster
//! in `TEST_KUBECONFIG`): create a namespace, apply a Deployment and a
//! ConfigMap from YAML, read them back as JSON, label, select, page with
//! `--chunk-size`, list API resources, server-side apply, delete.

use std::path::Path;
use std::process::{Command, Output};

use e2e::cluster::TestCluster;
use e2e::servers::require_program;
use serde_json::Value;

fn kubectl(kubeconfig: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    use std::io::Write;
    let bin = require_program(
        "kubectl",
        "install kubectl (https://kubernetes.io/docs/tasks/tools/)",
    );
    let mut cmd = Command::new(bin);
    cmd.env("KUBECONFIG", kubeconfig)
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .stdin(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("kubectl starts");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write stdin");
    }
    drop(child.stdin.take());
    child.wait_with_output().expect("kubectl runs")
}

/// Run kubectl and require success; returns stdout.
fn ok(kubeconfig: &Path, args: &[&str], stdin: Option<&str>) -> String {
    let out = kubectl(kubeconfig, args, stdin);
    assert!(
        out.status.success(),
        "kubectl {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn manifest(ns: &str, value: &str) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: {ns}
  labels: {{app: web}}
spec:
  replicas: 1
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      containers:
      - name: web
        image: nginx:1.25
        ports:
        - containerPort: 80
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: {ns}
data:
  mode: "{value}"
"#
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn kubectl_works_against_the_harness_cluster() {
    let cluster = TestCluster::start().await.expect("cluster");
    let kc = cluster.kubeconfig().to_path_buf();

    // kubectl create namespace / delete namespace.
    let ns_guard = cluster.temp_namespace("kubectl").await.expect("namespace");
    let ns = ns_guard.name().to_owned();
    let extra = format!("{ns}-extra");
    assert!(ok(&kc, &["create", "namespace", &extra], None).contains("created"));
    let got: Value =
        serde_json::from_str(&ok(&kc, &["get", "namespace", &extra, "-o", "json"], None))
            .expect("json");
    assert_eq!(
        got["metadata"]["labels"]["kubernetes.io/metadata.name"],
        extra.as_str()
    );
    assert_eq!(got["status"]["phase"], "Active");

    // apply from YAML: create, unchanged, configured.
    let out = ok(&kc, &["apply", "-f", "-"], Some(&manifest(&ns, "a")));
    assert!(out.contains("deployment.apps/web created"), "{out}");
    assert!(out.contains("configmap/settings created"), "{out}");
    let out = ok(&kc, &["apply", "-f", "-"], Some(&manifest(&ns, "a")));
    assert!(out.contains("configmap/settings unchanged"), "{out}");
    let out = ok(&kc, &["apply", "-f", "-"], Some(&manifest(&ns, "b")));
    assert!(out.contains("configmap/settings configured"), "{out}");

    // get -o json.
    let cm: Value = serde_json::from_str(&ok(
        &kc,
        &["get", "configmap", "settings", "-n", &ns, "-o", "json"],
        None,
    ))
    .expect("json");
    assert_eq!(cm["kind"], "ConfigMap");
    assert_eq!(cm["data"]["mode"], "b");
    assert!(cm["metadata"]["uid"].is_string());
    assert!(
        cm["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
            .is_string()
    );
    let deploy: Value = serde_json::from_str(&ok(
        &kc,
        &["get", "deployment", "web", "-n", &ns, "-o", "json"],
        None,
    ))
    .expect("json");
    assert_eq!(
        deploy["spec"]["template"]["spec"]["containers"][0]["name"],
        "web"
    );
    assert_eq!(deploy["metadata"]["generation"], 1);

    // scale goes through the scale subresource.
    ok(
        &kc,
        &["scale", "deployment", "web", "-n", &ns, "--replicas=3"],
        None,
    );
    let replicas = ok(
        &kc,
        &[
            "get",
            "deployment",
            "web",
            "-n",
            &ns,
            "-o",
            "jsonpath={.spec.replicas}",
        ],
        None,
    );
    assert_eq!(replicas.trim(), "3");

    // label, then select by label.
    ok(
        &kc,
        &["label", "configmap", "settings", "-n", &ns, "tier=gold"],
        None,
    );
    let names = ok(
        &kc,
        &[
            "get",
            "configmaps",
            "-n",
            &ns,
            "-l",
            "tier=gold",
            "-o",
            "name",
        ],
        None,
    );
    assert_eq!(names.trim(), "configmap/settings");
    let none = ok(
        &kc,
        &[
            "get",
            "configmaps",
            "-n",
            &ns,
            "-l",
            "tier!=gold,tier",
            "-o",
            "name",
        ],
        None,
    );
    assert_eq!(none.trim(), "");

    // Pagination with --chunk-size: all 7 come back, several requests were made.
    for i in 0..7 {
        ok(
            &kc,
            &[
                "create",
                "configmap",
                &format!("page-{i}"),
                "-n",
                &ns,
                "--from-literal",
                &format!("i={i}"),
            ],
            None,
        );
    }
    ok(
        &kc,
        &["label", "configmaps", "-n", &ns, "-l", "!tier", "page=yes"],
        None,
    );
    if let Some(log) = cluster.request_log() {
        log.clear();
    }
    let paged = ok(
        &kc,
        &[
            "get",
            "configmaps",
            "-n",
            &ns,
            "-l",
            "page=yes",
            "--chunk-size=3",
            "-o",
            "name",
        ],
        None,
    );
    let paged: Vec<&str> = paged.lines().filter(|l| l.contains("page-")).collect();
    assert_eq!(paged.len(), 7, "{paged:?}");
    if let Some(log) = cluster.request_log() {
        let continued = log
            .entries()
            .iter()
            .filter(|r| r.path.ends_with("/configmaps") && r.query.contains("continue="))
            .count();
        assert_eq!(continued, 2, "pages 2 and 3 use continue tokens");
    }

    // api-resources lists built-ins with their groups.
    let resources = ok(&kc, &["api-resources", "-o", "name"], None);
    for r in [
        "configmaps",
        "deployments.apps",
        "customresourcedefinitions.apiextensions.k8s.io",
        "storageclasses.storage.k8s.io",
    ] {
        assert!(
            resources.lines().any(|l| l == r),
            "{r} missing from api-resources"
        );
    }

    // server-side apply creates and owns fields.
    let ssa = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa\n  namespace: {ns}\ndata:\n  k: v\n"
    );
    let out = ok(
        &kc,
        &["apply", "--server-side", "--field-manager=e2e", "-f", "-"],
        Some(&ssa),
    );
    assert!(out.contains("serverside-applied"), "{out}");
    let got: Value = serde_json::from_str(&ok(
        &kc,
        &[
            "get",
            "configmap",
            "ssa",
            "-n",
            &ns,
            "-o",
            "json",
            "--show-managed-fields",
        ],
        None,
    ))
    .expect("json");
    assert_eq!(got["metadata"]["managedFields"][0]["manager"], "e2e");
    assert_eq!(got["metadata"]["managedFields"][0]["operation"], "Apply");

    // delete, then NotFound with kubectl's exit code 1.
    ok(&kc, &["delete", "-f", "-"], Some(&manifest(&ns, "b")));
    let gone = kubectl(&kc, &["get", "configmap", "settings", "-n", &ns], None);
    assert_eq!(gone.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&gone.stderr).contains("configmaps \"settings\" not found"),
        "{}",
        String::from_utf8_lossy(&gone.stderr)
    );
    ok(
        &kc,
        &[
            "delete",
            "namespace",
            &extra,
            "--wait=true",
            "--timeout=60s",
        ],
        None,
    );
    let gone = kubectl(&kc, &["get", "namespace", &extra], None);
    assert_eq!(gone.status.code(), Some(1));
}

//! A restore runs through the webhook: a namespace backed up from one cluster
//! is restored (`kubectl backup restore create`) into a second cluster where
//! `backup-webhook` is registered by URL. The restored namespace gets its Pod
//! Security labels, a PVC whose class only existed on the source is remapped
//! by the webhook policy, and one whose class nobody maps is refused, which
//! the restore reports (PartiallyFailed) with the webhook's message.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use e2e::cluster::{Role, TestCluster};
use e2e::servers::{ChildGuard, free_port};
use k8s_openapi::api::core::v1::{Namespace, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::json;

fn plugin(kubeconfig: &Path, args: &[&str]) -> Output {
    let out = Command::new(e2e::bin_path("kubectl-backup"))
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("kubectl-backup runs");
    eprintln!(
        "$ kubectl-backup {}\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Unregisters the webhook from the target even when an assertion fails.
struct Unregister<'a> {
    kubeconfig: &'a Path,
    tool_ns: String,
}

impl Drop for Unregister<'_> {
    fn drop(&mut self) {
        let _ = plugin(
            self.kubeconfig,
            &["--tool-namespace", &self.tool_ns, "webhook", "uninstall"],
        );
    }
}

#[tokio::test]
async fn a_restore_lands_through_the_webhook() {
    let source = TestCluster::start().await.unwrap();
    let target = TestCluster::start_role(Role::Target).await.unwrap();
    let ns_guard = source.temp_namespace("whr").await.unwrap();
    let ns = ns_guard.name().to_owned();
    let suffix = ns.rsplit('-').next().unwrap().to_owned();

    // On the source: two PVCs naming classes the target does not have.
    source
        .create_yaml(&format!(
            r#"
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {{name: data, namespace: {ns}, labels: {{app: shop}}}}
spec: {{accessModes: [ReadWriteOnce], storageClassName: gp2, resources: {{requests: {{storage: 1Gi}}}}}}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {{name: legacy, namespace: {ns}, labels: {{app: shop}}}}
spec: {{accessModes: [ReadWriteOnce], storageClassName: legacy-{suffix}, resources: {{requests: {{storage: 1Gi}}}}}}
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: settings, namespace: {ns}}}
data: {{mode: prod}}
"#
        ))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let location = format!("file://{}", dir.path().join("store").display());
    let out = plugin(
        source.kubeconfig(),
        &[
            "create",
            "b1",
            "--location",
            &location,
            "--include-namespaces",
            &ns,
        ],
    );
    assert!(out.status.success(), "backup failed");

    // On the target: a class to map to, and the webhook registered by URL.
    let tclient = target.client().await.unwrap();
    let fast = format!("whr-fast-{suffix}");
    let sc: StorageClass = serde_json::from_value(
        json!({"metadata": {"name": fast}, "provisioner": "example.com/whr"}),
    )
    .unwrap();
    Api::<StorageClass>::all(tclient.clone())
        .create(&PostParams::default(), &sc)
        .await
        .unwrap();
    let tool_ns = target.temp_namespace("whr-tool").await.unwrap();

    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    let (ca_path, cert_path, key_path, policy) = (
        dir.path().join("ca.crt"),
        dir.path().join("tls.crt"),
        dir.path().join("tls.key"),
        dir.path().join("policy.yaml"),
    );
    std::fs::write(&ca_path, ca_cert.pem()).unwrap();
    std::fs::write(&cert_path, leaf.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    std::fs::write(&policy, format!("storageClass: {{map: {{gp2: {fast}}}}}\n")).unwrap();

    let port = free_port();
    let child = Command::new(e2e::bin_path("backup-webhook"))
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .arg("--tls-cert")
        .arg(&cert_path)
        .arg("--tls-key")
        .arg(&key_path)
        .arg("--policy")
        .arg(&policy)
        .arg("--kubeconfig")
        .arg(target.kubeconfig())
        .args(["--namespace", &tool_ns])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _webhook = ChildGuard::new("backup-webhook", child);
    let _unregister = Unregister {
        kubeconfig: target.kubeconfig(),
        tool_ns: tool_ns.to_string(),
    };
    let url = format!("https://127.0.0.1:{port}");
    let out = plugin(
        target.kubeconfig(),
        &[
            "--tool-namespace",
            &tool_ns,
            "webhook",
            "install",
            "--url",
            &url,
            "--ca-file",
            ca_path.to_str().unwrap(),
            "--policy",
            policy.to_str().unwrap(),
            "--timeout",
            "30s",
        ],
    );
    assert!(out.status.success(), "install --url failed");

    // Restore into the target.
    let out = plugin(
        target.kubeconfig(),
        &[
            "restore",
            "create",
            "b1",
            "--location",
            &location,
            "-o",
            "json",
        ],
    );
    let record = String::from_utf8_lossy(&out.stdout).into_owned();
    // The unmappable PVC is refused by the webhook: the restore finishes
    // PartiallyFailed (exit 3) and says why.
    assert_eq!(out.status.code(), Some(3), "{record}");
    assert!(
        record.contains(&format!(
            "StorageClass \\\"legacy-{suffix}\\\" does not exist"
        )) || record.contains(&format!("StorageClass \"legacy-{suffix}\" does not exist")),
        "{record}"
    );

    let restored_ns = Api::<Namespace>::all(tclient.clone())
        .get(&ns)
        .await
        .unwrap();
    let labels = restored_ns.metadata.labels.unwrap();
    assert!(
        labels.contains_key("kubectl-backup.dev/restore-name"),
        "{labels:?}"
    );
    assert_eq!(labels["pod-security.kubernetes.io/enforce"], "baseline");
    assert_eq!(labels["pod-security.kubernetes.io/warn"], "restricted");

    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(tclient.clone(), &ns);
    let data = pvcs.get("data").await.unwrap();
    assert_eq!(
        data.spec.unwrap().storage_class_name.as_deref(),
        Some(fast.as_str())
    );
    assert!(pvcs.get_opt("legacy").await.unwrap().is_none());

    // Cleanup on the target (the source namespace goes with its guard).
    let _ = Api::<Namespace>::all(tclient.clone())
        .delete(&ns, &DeleteParams::default())
        .await;
    let _ = Api::<StorageClass>::all(tclient)
        .delete(&fast, &DeleteParams::default())
        .await;
}

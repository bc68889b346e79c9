//! The real `backup-webhook` binary on 127.0.0.1, registered with the
//! harness cluster by URL (`kubectl backup webhook install --url`), judged
//! through the API server as a user meets it:
//!
//! - a VolumeSnapshotClass with `deletionPolicy: Delete` becomes `Retain`
//!   (with a warning), and is refused once the policy says `deny`;
//! - a restored namespace gets its Pod Security labels, an unlabelled one
//!   does not, and an invalid label value is refused with the allowed list;
//! - a restored PVC whose class is missing is remapped from the policy map,
//!   or refused naming the missing class and the classes that exist; a
//!   restored StatefulSet's volumeClaimTemplates are remapped too;
//! - objects in kube-system or the tool's namespace and unlabelled objects
//!   are untouched.
//!
//! Runs on the emulator, or on a real cluster whose API server can reach
//! 127.0.0.1 on this machine (`TEST_KUBECONFIG`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use e2e::cluster::TestCluster;
use e2e::servers::{ChildGuard, free_port};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Namespace, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{Api, DeleteParams, DynamicObject, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::json;

const RESTORE_LABEL: &str = "kubectl-backup.dev/restore-name";
const VSC_CRD: &str =
    include_str!("../../webhook/tests/fixtures/snapshot.storage.k8s.io_volumesnapshotclasses.yaml");

struct Certs {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

fn certs(dir: &Path) -> Certs {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "webhook e2e CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    let c = Certs {
        ca: dir.join("ca.crt"),
        cert: dir.join("tls.crt"),
        key: dir.join("tls.key"),
    };
    std::fs::write(&c.ca, ca_cert.pem()).unwrap();
    std::fs::write(&c.cert, leaf.pem()).unwrap();
    std::fs::write(&c.key, key.serialize_pem()).unwrap();
    c
}

fn plugin(kubeconfig: &Path, tool_ns: &str, args: &[&str]) -> Output {
    Command::new(e2e::bin_path("kubectl-backup"))
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(["--tool-namespace", tool_ns])
        .args(args)
        .output()
        .expect("kubectl-backup runs")
}

/// Unregisters the webhook and removes cluster-scoped test objects even when
/// an assertion fails, so a real cluster is never left with a fail-closed
/// webhook pointing at a dead port.
struct Cleanup {
    kubeconfig: PathBuf,
    tool_ns: String,
    classes: Vec<String>,
    namespaces: Vec<String>,
    vscs: Vec<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = plugin(&self.kubeconfig, &self.tool_ns, &["webhook", "uninstall"]);
        let kubeconfig = self.kubeconfig.clone();
        let (classes, namespaces, vscs) = (
            std::mem::take(&mut self.classes),
            std::mem::take(&mut self.namespaces),
            std::mem::take(&mut self.vscs),
        );
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                let Ok(client) = e2e::cluster::client_for(&kubeconfig).await else {
                    return;
                };
                let dp = DeleteParams::default();
                for n in classes {
                    let _ = Api::<StorageClass>::all(client.clone())
                        .delete(&n, &dp)
                        .await;
                }
                for n in namespaces {
                    let _ = Api::<Namespace>::all(client.clone()).delete(&n, &dp).await;
                }
                let vsc = Api::<DynamicObject>::all_with(client.clone(), &vsc_resource());
                for n in vscs {
                    let _ = vsc.delete(&n, &dp).await;
                }
            });
        })
        .join();
    }
}

fn vsc_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("snapshot.storage.k8s.io", "v1", "VolumeSnapshotClass"),
        "volumesnapshotclasses",
    )
}

fn denial(err: kube::Error) -> (u16, String) {
    match err {
        kube::Error::Api(status) => (status.code, status.message.clone()),
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn pvc(name: &str, class: Option<&str>, restored: bool) -> PersistentVolumeClaim {
    let mut labels = json!({"app": "wh"});
    if restored {
        labels[RESTORE_LABEL] = "r1".into();
    }
    let mut spec =
        json!({"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}});
    if let Some(c) = class {
        spec["storageClassName"] = c.into();
    }
    serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}, "spec": spec}))
        .unwrap()
}

fn namespace(name: &str, labels: serde_json::Value) -> Namespace {
    serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}})).unwrap()
}

#[tokio::test]
async fn policies_apply_through_the_api_server() {
    let cluster = TestCluster::start().await.unwrap();
    let client = cluster.client().await.unwrap();
    let kc = cluster.kubeconfig().to_path_buf();
    let tool_ns = cluster.temp_namespace("wh-tool").await.unwrap();
    let work_ns = cluster.temp_namespace("wh-work").await.unwrap();
    let suffix = tool_ns.rsplit('-').next().unwrap().to_owned();
    let mut cleanup = Cleanup {
        kubeconfig: kc.clone(),
        tool_ns: tool_ns.to_string(),
        classes: Vec::new(),
        namespaces: Vec::new(),
        vscs: Vec::new(),
    };

    // The snapshot CRD (already there on a cluster with the CSI snapshotter).
    if let Err(e) = cluster.create_yaml(VSC_CRD).await {
        assert!(format!("{e:#}").contains("already exists"), "{e:#}");
    }
    cluster
        .wait_crd_established("volumesnapshotclasses.snapshot.storage.k8s.io")
        .await
        .unwrap();

    // A class that exists, the target of the policy's map.
    let fast = format!("wh-fast-{suffix}");
    let sc: StorageClass = serde_json::from_value(
        json!({"metadata": {"name": fast}, "provisioner": "example.com/wh"}),
    )
    .unwrap();
    Api::<StorageClass>::all(client.clone())
        .create(&PostParams::default(), &sc)
        .await
        .unwrap();
    cleanup.classes.push(fast.clone());

    let dir = tempfile::tempdir().unwrap();
    let certs = certs(dir.path());
    let policy = dir.path().join("policy.yaml");
    let write_policy = |snapshot_mode: &str| {
        let text = format!(
            "snapshotClass: {{mode: {snapshot_mode}}}\nstorageClass:\n  mode: mutate\n  map: {{gp2: {fast}}}\n"
        );
        let tmp = dir.path().join("policy.tmp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, &policy).unwrap();
    };
    write_policy("mutate");

    let port = free_port();
    let log = std::fs::File::create(dir.path().join("webhook.log")).unwrap();
    let child = Command::new(e2e::bin_path("backup-webhook"))
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .arg("--tls-cert")
        .arg(&certs.cert)
        .arg("--tls-key")
        .arg(&certs.key)
        .arg("--policy")
        .arg(&policy)
        .arg("--kubeconfig")
        .arg(&kc)
        .args([
            "--namespace",
            &tool_ns,
            "--reload-interval",
            "200ms",
            "--log-format",
            "json",
        ])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("backup-webhook starts");
    let mut webhook = ChildGuard::new("backup-webhook", child);

    let url = format!("https://127.0.0.1:{port}");
    let out = plugin(
        &kc,
        &tool_ns,
        &[
            "webhook",
            "install",
            "--url",
            &url,
            "--ca-file",
            certs.ca.to_str().unwrap(),
            "--policy",
            policy.to_str().unwrap(),
            "--timeout",
            "30s",
        ],
    );
    webhook.assert_running();
    assert!(
        out.status.success(),
        "install --url failed: {}\nwebhook log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(dir.path().join("webhook.log")).unwrap_or_default()
    );

    // === 1. VolumeSnapshotClass: Delete becomes Retain, with a warning ===
    let vscs = Api::<DynamicObject>::all_with(client.clone(), &vsc_resource());
    let vsc_name = format!("wh-vsc-{suffix}");
    let vsc_yaml = format!(
        "apiVersion: snapshot.storage.k8s.io/v1\nkind: VolumeSnapshotClass\nmetadata:\n  name: {vsc_name}\ndriver: hostpath.csi.k8s.io\ndeletionPolicy: Delete\n"
    );
    cleanup.vscs.push(vsc_name.clone());
    let kubectl = e2e::servers::require_program("kubectl", "install kubectl");
    let mut child = Command::new(kubectl)
        .env("KUBECONFIG", &kc)
        .args(["create", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), vsc_yaml.as_bytes()).unwrap();
    let created = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&created.stderr);
    assert!(created.status.success(), "{stderr}");
    assert!(
        stderr.contains("Warning:") && stderr.contains("changed to Retain"),
        "{stderr}"
    );
    let stored = vscs.get(&vsc_name).await.unwrap();
    assert_eq!(stored.data["deletionPolicy"], "Retain");

    // === 2. Pod Security labels on restored namespaces ===
    let restored_ns = format!("wh-restored-{suffix}");
    let ns_api = Api::<Namespace>::all(client.clone());
    cleanup.namespaces.push(restored_ns.clone());
    let created = ns_api
        .create(
            &PostParams::default(),
            &namespace(&restored_ns, json!({RESTORE_LABEL: "r1", "team": "a"})),
        )
        .await
        .unwrap();
    let labels = created.metadata.labels.unwrap();
    assert_eq!(labels["pod-security.kubernetes.io/enforce"], "baseline");
    assert_eq!(
        labels["pod-security.kubernetes.io/enforce-version"],
        "latest"
    );
    assert_eq!(labels["pod-security.kubernetes.io/warn"], "restricted");
    assert_eq!(labels["team"], "a");

    // A restored namespace keeps the labels it had in the backup.
    let kept_ns = format!("wh-kept-{suffix}");
    cleanup.namespaces.push(kept_ns.clone());
    let created = ns_api
        .create(
            &PostParams::default(),
            &namespace(
                &kept_ns,
                json!({RESTORE_LABEL: "r1", "pod-security.kubernetes.io/enforce": "privileged"}),
            ),
        )
        .await
        .unwrap();
    let labels = created.metadata.labels.unwrap();
    assert_eq!(labels["pod-security.kubernetes.io/enforce"], "privileged");
    assert_eq!(labels["pod-security.kubernetes.io/audit"], "restricted");

    // An unlabelled namespace is not touched.
    let plain_ns = format!("wh-plain-{suffix}");
    cleanup.namespaces.push(plain_ns.clone());
    let created = ns_api
        .create(
            &PostParams::default(),
            &namespace(&plain_ns, json!({"team": "b"})),
        )
        .await
        .unwrap();
    assert!(
        !created
            .metadata
            .labels
            .unwrap()
            .keys()
            .any(|k| k.starts_with("pod-security"))
    );

    // An invalid level is refused with the allowed values.
    let bad_ns = format!("wh-bad-{suffix}");
    cleanup.namespaces.push(bad_ns.clone());
    let err = ns_api
        .create(
            &PostParams::default(),
            &namespace(
                &bad_ns,
                json!({RESTORE_LABEL: "r1", "pod-security.kubernetes.io/enforce": "privilegd"}),
            ),
        )
        .await
        .unwrap_err();
    let (code, message) = denial(err);
    assert_eq!(code, 403, "{message}");
    assert!(
        message.contains("privilegd") && message.contains("privileged, baseline, restricted"),
        "{message}"
    );
    assert!(ns_api.get_opt(&bad_ns).await.unwrap().is_none());

    // === 3. StorageClass prerequisites on restored PVCs and StatefulSets ===
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &work_ns);
    let remapped = pvcs
        .create(&PostParams::default(), &pvc("mapped", Some("gp2"), true))
        .await
        .unwrap();
    assert_eq!(
        remapped.spec.unwrap().storage_class_name.as_deref(),
        Some(fast.as_str())
    );

    let err = pvcs
        .create(
            &PostParams::default(),
            &pvc("missing", Some("no-such-class"), true),
        )
        .await
        .unwrap_err();
    let (code, message) = denial(err);
    assert_eq!(code, 403, "{message}");
    assert!(
        message.contains("StorageClass \"no-such-class\" does not exist"),
        "{message}"
    );
    assert!(
        message.contains(&fast),
        "the existing classes are named: {message}"
    );
    assert!(pvcs.get_opt("missing").await.unwrap().is_none());

    // Unlabelled PVCs are not ours to judge.
    let plain = pvcs
        .create(
            &PostParams::default(),
            &pvc("plain", Some("no-such-class"), false),
        )
        .await
        .unwrap();
    assert_eq!(
        plain.spec.unwrap().storage_class_name.as_deref(),
        Some("no-such-class")
    );

    let sts: StatefulSet = serde_json::from_value(json!({
        "metadata": {"name": "db", "labels": {RESTORE_LABEL: "r1"}},
        "spec": {
            "serviceName": "db",
            "selector": {"matchLabels": {"app": "db"}},
            "template": {"metadata": {"labels": {"app": "db"}},
                         "spec": {"containers": [{"name": "db", "image": "example.invalid/db:1"}]}},
            "volumeClaimTemplates": [{"metadata": {"name": "data"},
                "spec": {"storageClassName": "gp2", "accessModes": ["ReadWriteOnce"],
                         "resources": {"requests": {"storage": "1Gi"}}}}]
        }
    }))
    .unwrap();
    let created = Api::<StatefulSet>::namespaced(client.clone(), &work_ns)
        .create(&PostParams::default(), &sts)
        .await
        .unwrap();
    let templates = created.spec.unwrap().volume_claim_templates.unwrap();
    assert_eq!(
        templates[0]
            .spec
            .as_ref()
            .unwrap()
            .storage_class_name
            .as_deref(),
        Some(fast.as_str())
    );

    // kube-system and the tool's own namespace are never touched.
    for ns in ["kube-system", &*tool_ns] {
        let api: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), ns);
        let name = format!("wh-untouched-{suffix}");
        let created = api
            .create(
                &PostParams::default(),
                &pvc(&name, Some("no-such-class"), true),
            )
            .await
            .unwrap_or_else(|e| panic!("restored PVC in {ns} was judged: {e}"));
        assert_eq!(
            created.spec.unwrap().storage_class_name.as_deref(),
            Some("no-such-class")
        );
        api.delete(&name, &DeleteParams::default()).await.unwrap();
    }

    // === 4. Deny mode, picked up from the policy file without a restart ===
    write_policy("deny");
    let denied_vsc = format!("wh-vsc-deny-{suffix}");
    cleanup.vscs.push(denied_vsc.clone());
    let obj: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshotClass",
        "metadata": {"name": denied_vsc}, "driver": "hostpath.csi.k8s.io", "deletionPolicy": "Delete"
    }))
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let message = loop {
        match vscs.create(&PostParams::default(), &obj).await {
            Err(e) => break denial(e).1,
            Ok(_) => {
                // The reload has not happened yet: undo and retry.
                vscs.delete(&denied_vsc, &DeleteParams::default())
                    .await
                    .unwrap();
                assert!(
                    Instant::now() < deadline,
                    "the deny policy was never picked up"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    assert!(
        message.contains("deletionPolicy Delete") && message.contains("backups need Retain"),
        "{message}"
    );
    // Retain is still fine in deny mode.
    let mut retained = obj.clone();
    retained.data["deletionPolicy"] = "Retain".into();
    vscs.create(&PostParams::default(), &retained)
        .await
        .unwrap();

    // Status sees the URL registration.
    let status = plugin(&kc, &tool_ns, &["webhook", "status", "-o", "json"]);
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["endpoint"], format!("{url}/mutate"));
    assert_eq!(status["ready"], true);

    // Unregistered, the objects it refused are accepted.
    let out = plugin(&kc, &tool_ns, &["webhook", "uninstall"]);
    assert!(out.status.success());
    pvcs.create(
        &PostParams::default(),
        &pvc("missing", Some("no-such-class"), true),
    )
    .await
    .unwrap();
    drop(webhook);
    drop(cleanup);
}

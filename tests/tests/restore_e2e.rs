//! Restores end to end: the built `kubectl-backup` backs up namespaces of a
//! harness cluster to a local-folder location and restores them into a second
//! cluster or back into the first, exactly as a user runs it. Restored
//! objects are compared with the originals field by field, minus what must
//! differ (server-set metadata, status, allocated IPs and ports, the restore
//! labels).
//!
//! Everything a test creates lives in its own random namespace (and
//! cluster-scoped objects carry that namespace's name), so the suite also runs
//! against real clusters (`TEST_KUBECONFIG`, `TEST_KUBECONFIG_TARGET`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use e2e::cluster::{Role, TestCluster};
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{Value, json};

// === helpers ===

struct Location {
    _dir: tempfile::TempDir,
    url: String,
    path: PathBuf,
}

fn location() -> Location {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("store");
    Location {
        url: format!("file://{}", path.display()),
        path,
        _dir: dir,
    }
}

fn plugin(kubeconfig: &Path, args: &[&str]) -> Output {
    let out = Command::new(e2e::bin_path("kubectl-backup"))
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run kubectl-backup");
    eprintln!(
        "$ kubectl-backup {}\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn ok(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

fn backup(cluster: &TestCluster, loc: &Location, name: &str, extra: &[&str]) {
    let mut args = vec!["create", name, "--location", &loc.url];
    args.extend_from_slice(extra);
    let out = plugin(cluster.kubeconfig(), &args);
    assert!(
        out.status.success(),
        "backup failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `restore create` with `-o json`; returns the exit code and the record.
fn restore(
    target: &TestCluster,
    loc: &Location,
    backup: &str,
    extra: &[&str],
) -> (Option<i32>, Value) {
    let mut args = vec![
        "restore",
        "create",
        backup,
        "--location",
        &loc.url,
        "-o",
        "json",
    ];
    args.extend_from_slice(extra);
    let out = plugin(target.kubeconfig(), &args);
    let record = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.code(), record)
}

fn api(
    client: &kube::Client,
    group: &str,
    version: &str,
    kind: &str,
    plural: &str,
    ns: Option<&str>,
) -> Api<DynamicObject> {
    let ar =
        ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural);
    match ns {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
        None => Api::all_with(client.clone(), &ar),
    }
}

async fn get(
    client: &kube::Client,
    group: &str,
    version: &str,
    kind: &str,
    plural: &str,
    ns: Option<&str>,
    name: &str,
) -> Option<Value> {
    let api = api(client, group, version, kind, plural, ns);
    api.get_opt(name)
        .await
        .expect("get")
        .map(|o| serde_json::to_value(o).expect("json"))
}

/// The object minus what a restore must change: server-set metadata, status,
/// allocated addresses and ports, the restore's own labels, and the namespace
/// (compared separately when mapped).
fn comparable(mut obj: Value) -> Value {
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        for key in [
            "uid",
            "resourceVersion",
            "generation",
            "creationTimestamp",
            "managedFields",
            "selfLink",
            "namespace",
            "ownerReferences",
        ] {
            meta.remove(key);
        }
        if let Some(labels) = meta.get_mut("labels").and_then(Value::as_object_mut) {
            labels.remove(backup_common::LABEL_BACKUP_NAME);
            labels.remove(backup_common::LABEL_RESTORE_NAME);
            labels.remove(backup_common::LABEL_NAMESPACE_NAME);
            if labels.is_empty() {
                meta.remove("labels");
            }
        }
    }
    if let Some(root) = obj.as_object_mut() {
        root.remove("status");
    }
    if let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) {
        spec.remove("clusterIP");
        spec.remove("clusterIPs");
        spec.remove("volumeName");
        if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
            for port in ports.iter_mut().filter_map(Value::as_object_mut) {
                port.remove("nodePort");
            }
        }
    }
    obj
}

/// The workload of the tests, in namespace `ns`.
fn workload(ns: &str) -> String {
    format!(
        r#"
apiVersion: v1
kind: ConfigMap
metadata: {{name: settings, namespace: {ns}, labels: {{app: shop}}, annotations: {{team: payments}}}}
data: {{mode: production, retries: "3"}}
---
apiVersion: v1
kind: Secret
metadata: {{name: db-credentials, namespace: {ns}}}
type: Opaque
data: {{password: c2VjcmV0}}
---
apiVersion: v1
kind: ServiceAccount
metadata: {{name: shop, namespace: {ns}}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: reader, namespace: {ns}}}
rules: [{{apiGroups: [""], resources: [configmaps], verbs: [get, list]}}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: shop-reads, namespace: {ns}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: reader}}
subjects: [{{kind: ServiceAccount, name: shop, namespace: {ns}}}]
---
apiVersion: v1
kind: Service
metadata: {{name: web, namespace: {ns}}}
spec:
  type: NodePort
  selector: {{app: shop}}
  ports: [{{name: http, port: 80, targetPort: 8080, protocol: TCP}}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web, namespace: {ns}, labels: {{app: shop}}}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: shop}}}}
  template:
    metadata: {{labels: {{app: shop}}}}
    spec:
      serviceAccountName: shop
      containers: [{{name: web, image: "nginx:1.25", ports: [{{containerPort: 8080}}]}}]
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {{name: data, namespace: {ns}}}
spec:
  accessModes: [ReadWriteOnce]
  storageClassName: gold
  resources: {{requests: {{storage: 1Gi}}}}
"#
    )
}

/// (group, version, kind, plural, name) of every object of [`workload`].
const OBJECTS: [(&str, &str, &str, &str, &str); 8] = [
    ("", "v1", "ConfigMap", "configmaps", "settings"),
    ("", "v1", "Secret", "secrets", "db-credentials"),
    ("", "v1", "ServiceAccount", "serviceaccounts", "shop"),
    ("rbac.authorization.k8s.io", "v1", "Role", "roles", "reader"),
    (
        "rbac.authorization.k8s.io",
        "v1",
        "RoleBinding",
        "rolebindings",
        "shop-reads",
    ),
    ("", "v1", "Service", "services", "web"),
    ("apps", "v1", "Deployment", "deployments", "web"),
    (
        "",
        "v1",
        "PersistentVolumeClaim",
        "persistentvolumeclaims",
        "data",
    ),
];

async fn seed(cluster: &TestCluster, ns: &str) {
    cluster
        .create_yaml(&workload(ns))
        .await
        .expect("seed workload");
    // Pod Security labels on the namespace must come back with it.
    let namespaces: Api<DynamicObject> = api(
        &cluster.client().await.expect("client"),
        "",
        "v1",
        "Namespace",
        "namespaces",
        None,
    );
    namespaces
        .patch(
            ns,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "baseline"}, "annotations": {"owner": "team-shop"}}})),
        )
        .await
        .expect("label namespace");
}

/// Compare every object of the workload in `src_ns` on `source` with its
/// restored copy in `dst_ns` on `target`.
async fn assert_restored(
    source: &kube::Client,
    src_ns: &str,
    target: &kube::Client,
    dst_ns: &str,
    originals: Option<&[Value]>,
) {
    for (i, (group, version, kind, plural, name)) in OBJECTS.iter().enumerate() {
        let original = match originals {
            Some(objs) => objs[i].clone(),
            None => get(source, group, version, kind, plural, Some(src_ns), name)
                .await
                .unwrap_or_else(|| panic!("original {kind} {name}")),
        };
        let restored = get(target, group, version, kind, plural, Some(dst_ns), name)
            .await
            .unwrap_or_else(|| panic!("{kind} {dst_ns}/{name} was not restored"));
        assert_eq!(
            restored["metadata"]["labels"][backup_common::LABEL_BACKUP_NAME],
            json!("b1"),
            "{kind} {name} labels"
        );
        assert!(
            restored["metadata"]["labels"][backup_common::LABEL_RESTORE_NAME].is_string(),
            "{kind} {name} restore label"
        );
        let (mut a, mut b) = (comparable(original), comparable(restored));
        if *kind == "RoleBinding" {
            // The subject follows a namespace mapping.
            a["subjects"][0]["namespace"] = json!(dst_ns);
            b["subjects"][0]["namespace"] = json!(dst_ns);
        }
        assert_eq!(b, a, "{kind} {name} differs from the original");
    }
}

async fn snapshot_originals(client: &kube::Client, ns: &str) -> Vec<Value> {
    let mut out = Vec::new();
    for (group, version, kind, plural, name) in OBJECTS {
        out.push(
            get(client, group, version, kind, plural, Some(ns), name)
                .await
                .unwrap_or_else(|| panic!("{kind} {name}")),
        );
    }
    out
}

async fn wait_namespace_gone(client: &kube::Client, ns: &str) {
    let namespaces = api(client, "", "v1", "Namespace", "namespaces", None);
    let _ = namespaces.delete(ns, &Default::default()).await;
    // Play the pvc-protection controller, which releases claims no Pod uses
    // (none do here): the emulator adds the finalizer but runs no such
    // controller. On a real cluster the controller has done it already.
    let claims = api(
        client,
        "",
        "v1",
        "PersistentVolumeClaim",
        "persistentvolumeclaims",
        Some(ns),
    );
    for claim in claims
        .list(&ListParams::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default()
    {
        if let Some(name) = claim.metadata.name.as_deref() {
            let release = json!({"metadata": {"finalizers": null}});
            let _ = claims
                .patch(name, &PatchParams::default(), &Patch::Merge(release))
                .await;
        }
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while let Some(left) = namespaces.get_opt(ns).await.expect("get namespace") {
        assert!(
            Instant::now() < deadline,
            "namespace {ns} was not deleted in time: {}",
            serde_json::to_string(&left).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn count(record: &Value, field: &str) -> u64 {
    record["counts"][field]
        .as_u64()
        .unwrap_or_else(|| panic!("no counts.{field} in {record}"))
}

fn item<'a>(record: &'a Value, resource: &str, name: &str) -> &'a Value {
    record["items"]
        .as_array()
        .and_then(|items| {
            items
                .iter()
                .find(|i| i["resource"] == resource && i["name"] == name)
        })
        .unwrap_or_else(|| panic!("no result for {resource} {name} in {record}"))
}

// === tests ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_into_an_empty_second_cluster_matches_the_originals() {
    let source = TestCluster::start().await.expect("source cluster");
    let target = TestCluster::start_role(Role::Target)
        .await
        .expect("target cluster");
    let ns_guard = source.temp_namespace("rs-cross").await.expect("namespace");
    let ns = ns_guard.name().to_owned();
    seed(&source, &ns).await;
    // The Deployment's controller makes a ReplicaSet: back it up too.
    let replica_sets = api(
        &source.client().await.expect("client"),
        "apps",
        "v1",
        "ReplicaSet",
        "replicasets",
        Some(&ns),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while replica_sets
        .list(&ListParams::default())
        .await
        .expect("list replica sets")
        .items
        .is_empty()
    {
        assert!(
            Instant::now() < deadline,
            "no ReplicaSet appeared for the Deployment"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let loc = location();
    backup(&source, &loc, "b1", &["--include-namespaces", &ns]);

    let (code, record) = restore(
        &target,
        &loc,
        "b1",
        &[
            "--to-kubeconfig",
            target.kubeconfig().to_str().expect("utf-8"),
        ],
    );
    assert_eq!(code, Some(0), "{record}");
    assert_eq!(record["phase"], "Completed");
    assert_eq!(count(&record, "failed"), 0);
    assert!(
        // The workload plus its namespace.
        count(&record, "created") > OBJECTS.len() as u64,
        "{record}"
    );
    // What the restored Deployment's controller recreates is skipped, and says why.
    let recreated: Vec<&Value> = record["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|i| i["resource"] == "replicasets.apps" || i["resource"] == "pods")
        .collect();
    assert!(!recreated.is_empty(), "{record}");
    for i in recreated {
        assert_eq!(i["action"], "skipped", "{i}");
        assert!(
            i["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("recreated by its controller")),
            "{i}"
        );
    }

    let (src, dst) = (
        source.client().await.expect("client"),
        target.client().await.expect("client"),
    );
    assert_restored(&src, &ns, &dst, &ns, None).await;
    let restored_ns = get(&dst, "", "v1", "Namespace", "namespaces", None, &ns)
        .await
        .expect("namespace restored");
    assert_eq!(
        restored_ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"],
        "baseline"
    );
    assert_eq!(restored_ns["metadata"]["annotations"]["owner"], "team-shop");

    // The record is in the location, and describe/list show it.
    let name = record["name"].as_str().expect("name").to_owned();
    assert!(
        loc.path
            .join("restores")
            .join(&name)
            .join("restore.json")
            .exists()
    );
    let described = plugin(
        target.kubeconfig(),
        &["restore", "describe", &name, "--location", &loc.url],
    );
    let text = String::from_utf8_lossy(&described.stdout);
    assert!(
        described.status.success()
            && text.contains("Completed")
            && text.contains("deployments.apps"),
        "{text}"
    );
    let listed = ok(&plugin(
        target.kubeconfig(),
        &["restore", "list", "--location", &loc.url, "-o", "json"],
    ));
    assert_eq!(listed[0]["name"], json!(name));

    if target.is_external() {
        wait_namespace_gone(&dst, &ns).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_into_the_same_cluster_after_deleting_the_namespace() {
    let cluster = TestCluster::start().await.expect("cluster");
    let ns_guard = cluster.temp_namespace("rs-same").await.expect("namespace");
    let ns = ns_guard.name().to_owned();
    seed(&cluster, &ns).await;
    let client = cluster.client().await.expect("client");
    let originals = snapshot_originals(&client, &ns).await;
    let loc = location();
    backup(&cluster, &loc, "b1", &["--include-namespaces", &ns]);

    wait_namespace_gone(&client, &ns).await;
    let (code, record) = restore(&cluster, &loc, "b1", &[]);
    assert_eq!(code, Some(0), "{record}");
    assert_restored(&client, &ns, &client, &ns, Some(&originals)).await;

    // A second run converges: everything exists, nothing fails, nothing changes.
    let (code, again) = restore(&cluster, &loc, "b1", &[]);
    assert_eq!(code, Some(0), "{again}");
    assert_eq!(count(&again, "created"), 0, "{again}");
    assert_eq!(count(&again, "failed"), 0, "{again}");
    assert!(
        count(&again, "skippedExisting") >= OBJECTS.len() as u64,
        "{again}"
    );
    assert_restored(&client, &ns, &client, &ns, Some(&originals)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespace_and_storage_class_mapping() {
    let source = TestCluster::start().await.expect("source cluster");
    let target = TestCluster::start_role(Role::Target)
        .await
        .expect("target cluster");
    let ns_guard = source.temp_namespace("rs-map").await.expect("namespace");
    let ns = ns_guard.name().to_owned();
    seed(&source, &ns).await;
    let pv_name = format!("{}-pv", ns.as_str());
    source
        .create_yaml(&format!(
            r#"
apiVersion: v1
kind: PersistentVolume
metadata: {{name: {pv_name}}}
spec:
  capacity: {{storage: 1Gi}}
  accessModes: [ReadWriteOnce]
  storageClassName: gold
  persistentVolumeReclaimPolicy: Retain
  hostPath: {{path: /tmp/{pv_name}}}
  claimRef: {{namespace: {ns}, name: bound, uid: 11111111-2222-3333-4444-555555555555}}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {{name: bound, namespace: {ns}, annotations: {{pv.kubernetes.io/bind-completed: "yes", volume.kubernetes.io/selected-node: node-1}}}}
spec:
  accessModes: [ReadWriteOnce]
  storageClassName: gold
  volumeName: {pv_name}
  resources: {{requests: {{storage: 1Gi}}}}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {{name: db, namespace: {ns}}}
spec:
  serviceName: db
  selector: {{matchLabels: {{app: db}}}}
  template:
    metadata: {{labels: {{app: db}}}}
    spec: {{containers: [{{name: db, image: "postgres:16"}}]}}
  volumeClaimTemplates:
  - metadata: {{name: data}}
    spec: {{accessModes: [ReadWriteOnce], storageClassName: gold, resources: {{requests: {{storage: 1Gi}}}}}}
"#
        ))
        .await
        .expect("seed volumes");
    let loc = location();
    backup(&source, &loc, "b1", &["--include-namespaces", &ns]);

    let dst_ns = format!("{}-copy", ns.as_str());
    let mapping = format!("{}:{dst_ns}", ns.as_str());
    let (code, record) = restore(
        &target,
        &loc,
        "b1",
        &[
            "--namespace-mapping",
            &mapping,
            "--storage-class-map",
            "gold=silver",
        ],
    );
    assert_eq!(code, Some(0), "{record}");

    let (src, dst) = (
        source.client().await.expect("client"),
        target.client().await.expect("client"),
    );
    assert!(
        get(&dst, "", "v1", "Namespace", "namespaces", None, &ns)
            .await
            .is_none(),
        "the source namespace must not appear"
    );
    let restored_ns = get(&dst, "", "v1", "Namespace", "namespaces", None, &dst_ns)
        .await
        .expect("mapped namespace");
    assert_eq!(
        restored_ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"],
        "baseline"
    );
    let binding = get(
        &dst,
        "rbac.authorization.k8s.io",
        "v1",
        "RoleBinding",
        "rolebindings",
        Some(&dst_ns),
        "shop-reads",
    )
    .await
    .expect("binding");
    assert_eq!(binding["subjects"][0]["namespace"], json!(dst_ns));

    let claim = get(
        &dst,
        "",
        "v1",
        "PersistentVolumeClaim",
        "persistentvolumeclaims",
        Some(&dst_ns),
        "data",
    )
    .await
    .expect("claim");
    assert_eq!(claim["spec"]["storageClassName"], "silver");
    let bound = get(
        &dst,
        "",
        "v1",
        "PersistentVolumeClaim",
        "persistentvolumeclaims",
        Some(&dst_ns),
        "bound",
    )
    .await
    .expect("bound claim");
    assert_eq!(bound["spec"]["storageClassName"], "silver");
    assert_eq!(
        bound["spec"]["volumeName"],
        json!(pv_name),
        "the PV is restored, so the claim keeps it"
    );
    let annotations = bound["metadata"]["annotations"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    assert!(
        !annotations.contains_key("pv.kubernetes.io/bind-completed")
            && !annotations.contains_key("volume.kubernetes.io/selected-node"),
        "{annotations:?}"
    );

    let pv = get(
        &dst,
        "",
        "v1",
        "PersistentVolume",
        "persistentvolumes",
        None,
        &pv_name,
    )
    .await
    .expect("PV restored (auto: bound to a restored claim)");
    assert_eq!(pv["spec"]["claimRef"]["namespace"], json!(dst_ns));
    assert_eq!(pv["spec"]["claimRef"]["name"], "bound");
    assert_ne!(
        pv["spec"]["claimRef"]["uid"],
        json!("11111111-2222-3333-4444-555555555555")
    );
    assert_eq!(pv["spec"]["storageClassName"], "silver");

    let sts = get(
        &dst,
        "apps",
        "v1",
        "StatefulSet",
        "statefulsets",
        Some(&dst_ns),
        "db",
    )
    .await
    .expect("statefulset");
    assert_eq!(
        sts["spec"]["volumeClaimTemplates"][0]["spec"]["storageClassName"],
        "silver"
    );

    // Everything else is as it was.
    let mut originals = snapshot_originals(&src, &ns).await;
    let pvc_index = OBJECTS
        .iter()
        .position(|o| o.2 == "PersistentVolumeClaim")
        .expect("pvc");
    originals[pvc_index]["spec"]["storageClassName"] = json!("silver");
    assert_restored(&src, &ns, &dst, &dst_ns, Some(&originals)).await;

    if target.is_external() {
        wait_namespace_gone(&dst, &dst_ns).await;
        let _ = api(
            &dst,
            "",
            "v1",
            "PersistentVolume",
            "persistentvolumes",
            None,
        )
        .delete(&pv_name, &Default::default())
        .await;
    }
    let _ = api(
        &src,
        "",
        "v1",
        "PersistentVolume",
        "persistentvolumes",
        None,
    )
    .delete(&pv_name, &Default::default())
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn existing_resource_policies() {
    let cluster = TestCluster::start().await.expect("cluster");
    let ns_guard = cluster.temp_namespace("rs-exist").await.expect("namespace");
    let ns = ns_guard.name().to_owned();
    seed(&cluster, &ns).await;
    let loc = location();
    backup(&cluster, &loc, "b1", &["--include-namespaces", &ns]);
    let client = cluster.client().await.expect("client");
    let configmaps = api(&client, "", "v1", "ConfigMap", "configmaps", Some(&ns));
    configmaps
        .patch(
            "settings",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"data": {"mode": "debug"}, "metadata": {"labels": {"app": "changed"}}}),
            ),
        )
        .await
        .expect("change the configmap");
    configmaps
        .delete("settings-gone", &Default::default())
        .await
        .ok();

    // none: existing objects are skipped and reported, never touched.
    let (code, record) = restore(
        &cluster,
        &loc,
        "b1",
        &["--existing-resource-policy", "none"],
    );
    assert_eq!(code, Some(0), "{record}");
    assert_eq!(
        item(&record, "configmaps", "settings")["action"],
        "skippedExisting"
    );
    let cm = get(
        &client,
        "",
        "v1",
        "ConfigMap",
        "configmaps",
        Some(&ns),
        "settings",
    )
    .await
    .expect("cm");
    assert_eq!(
        cm["data"]["mode"], "debug",
        "policy none must not change an existing object"
    );

    // update: existing objects are patched back to the backed-up state.
    let (code, record) = restore(
        &cluster,
        &loc,
        "b1",
        &["--existing-resource-policy", "update"],
    );
    assert_eq!(code, Some(0), "{record}");
    assert_eq!(item(&record, "configmaps", "settings")["action"], "updated");
    let cm = get(
        &client,
        "",
        "v1",
        "ConfigMap",
        "configmaps",
        Some(&ns),
        "settings",
    )
    .await
    .expect("cm");
    assert_eq!(cm["data"]["mode"], "production");
    assert_eq!(cm["metadata"]["labels"]["app"], "shop");
    assert_eq!(
        cm["metadata"]["labels"][backup_common::LABEL_BACKUP_NAME],
        "b1"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_previews_everything_and_changes_nothing() {
    let source = TestCluster::start().await.expect("source cluster");
    let target = TestCluster::start_role(Role::Target)
        .await
        .expect("target cluster");
    let ns_guard = source.temp_namespace("rs-dry").await.expect("namespace");
    let ns = ns_guard.name().to_owned();
    seed(&source, &ns).await;
    let loc = location();
    backup(&source, &loc, "b1", &["--include-namespaces", &ns]);
    let dst = target.client().await.expect("client");

    let (code, record) = restore(&target, &loc, "b1", &["--dry-run"]);
    assert_eq!(code, Some(0), "{record}");
    assert_eq!(record["dryRun"], true);
    for (_, _, kind, plural, name) in OBJECTS {
        let resource = match kind {
            "Role" | "RoleBinding" => format!("{plural}.rbac.authorization.k8s.io"),
            "Deployment" => format!("{plural}.apps"),
            _ => plural.to_owned(),
        };
        assert_eq!(
            item(&record, &resource, name)["action"],
            "created",
            "{kind} {name} in the preview"
        );
    }
    assert!(
        get(&dst, "", "v1", "Namespace", "namespaces", None, &ns)
            .await
            .is_none(),
        "a dry run must not create the namespace"
    );
    let configmaps = api(&dst, "", "v1", "ConfigMap", "configmaps", None);
    let restored = configmaps
        .list(&ListParams::default().labels(backup_common::LABEL_BACKUP_NAME))
        .await
        .expect("list");
    assert!(
        restored.items.is_empty(),
        "a dry run must not create anything"
    );
    assert!(
        !loc.path.join("restores").exists(),
        "a dry run writes no restore record"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crd_and_custom_resource_restore_in_one_run() {
    let source = TestCluster::start().await.expect("source cluster");
    let target = TestCluster::start_role(Role::Target)
        .await
        .expect("target cluster");
    let ns_guard = source.temp_namespace("rs-crd").await.expect("namespace");
    let ns = ns_guard.name().to_owned();
    // A group unique to this test, so that it can run against a shared real cluster.
    let group = format!("{}.example.com", ns.as_str());
    let crd_name = format!("widgets.{group}");
    source
        .create_yaml(&format!(
            r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {{name: {crd_name}}}
spec:
  group: {group}
  scope: Namespaced
  names: {{plural: widgets, singular: widget, kind: Widget}}
  versions:
  - name: v1
    served: true
    storage: true
    schema: {{openAPIV3Schema: {{type: object, x-kubernetes-preserve-unknown-fields: true}}}}
"#
        ))
        .await
        .expect("CRD");
    source
        .wait_crd_established(&crd_name)
        .await
        .expect("established");
    source
        .create_yaml(&format!(
            "apiVersion: {group}/v1\nkind: Widget\nmetadata: {{name: sprocket, namespace: {ns}}}\nspec: {{size: 3, color: blue}}\n"
        ))
        .await
        .expect("custom resource");
    let loc = location();
    backup(&source, &loc, "b1", &["--include-namespaces", &ns]);

    // Without its CRD (cluster resources never), the custom resource cannot be
    // restored: the item fails with the reason, the rest lands, exit code 3.
    let (code, partial) = restore(&target, &loc, "b1", &["--cluster-resources", "never"]);
    assert_eq!(code, Some(3), "{partial}");
    assert_eq!(partial["phase"], "PartiallyFailed");
    let failed = item(&partial, &format!("widgets.{group}"), "sprocket");
    assert_eq!(failed["action"], "failed");
    assert!(
        failed["message"]
            .as_str()
            .is_some_and(|m| m.contains("does not serve")),
        "{failed}"
    );
    assert_eq!(
        partial["errors"].as_array().map(Vec::len),
        Some(1),
        "{partial}"
    );

    let (code, record) = restore(&target, &loc, "b1", &[]);
    assert_eq!(code, Some(0), "{record}");
    assert_eq!(
        item(
            &record,
            "customresourcedefinitions.apiextensions.k8s.io",
            &crd_name
        )["action"],
        "created"
    );
    assert_eq!(
        item(&record, &format!("widgets.{group}"), "sprocket")["action"],
        "created"
    );
    let dst = target.client().await.expect("client");
    let widget = get(
        &dst,
        &group,
        "v1",
        "Widget",
        "widgets",
        Some(&ns),
        "sprocket",
    )
    .await
    .expect("widget restored");
    assert_eq!(widget["spec"], json!({"size": 3, "color": "blue"}));

    if target.is_external() {
        wait_namespace_gone(&dst, &ns).await;
        let _ = api(
            &dst,
            "apiextensions.k8s.io",
            "v1",
            "CustomResourceDefinition",
            "customresourcedefinitions",
            None,
        )
        .delete(&crd_name, &Default::default())
        .await;
    }
    let src = source.client().await.expect("client");
    let _ = api(
        &src,
        "apiextensions.k8s.io",
        "v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        None,
    )
    .delete(&crd_name, &Default::default())
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restored_validating_webhook_does_not_block_the_restore() {
    let source = TestCluster::start().await.expect("source cluster");
    let target = TestCluster::start_role(Role::Target)
        .await
        .expect("target cluster");
    let ns_guard = source.temp_namespace("rs-hook").await.expect("namespace");
    let ns = ns_guard.name().to_owned();
    seed(&source, &ns).await;
    // A webhook that refuses (fails closed) every ConfigMap and Deployment
    // created in the namespace, served by a Service of the backup that has no
    // running endpoints on the target. Restored before the rest, it would
    // block the whole restore.
    let hook = format!("{}-policy", ns.as_str());
    source
        .create_yaml(&format!(
            r#"
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata: {{name: {hook}}}
webhooks:
- name: deny.{ns}.example.com
  admissionReviewVersions: [v1]
  sideEffects: None
  failurePolicy: Fail
  timeoutSeconds: 2
  clientConfig:
    service: {{namespace: {ns}, name: web, path: /validate, port: 443}}
  namespaceSelector:
    matchLabels: {{kubernetes.io/metadata.name: {ns}}}
  rules:
  - operations: [CREATE, UPDATE]
    apiGroups: ["", apps]
    apiVersions: [v1]
    resources: [configmaps, deployments, secrets]
"#
        ))
        .await
        .expect("webhook configuration");
    let loc = location();
    backup(
        &source,
        &loc,
        "b1",
        &["--include-namespaces", &ns, "--cluster-resources", "always"],
    );
    let _ = api(
        &source.client().await.expect("client"),
        "admissionregistration.k8s.io",
        "v1",
        "ValidatingWebhookConfiguration",
        "validatingwebhookconfigurations",
        None,
    )
    .delete(&hook, &Default::default())
    .await;

    let (code, record) = restore(
        &target,
        &loc,
        "b1",
        &["--include-namespaces", &ns, "--cluster-resources", "always"],
    );
    assert_eq!(code, Some(0), "{record}");
    assert_eq!(
        item(
            &record,
            "validatingwebhookconfigurations.admissionregistration.k8s.io",
            &hook
        )["action"],
        "created"
    );
    assert_eq!(item(&record, "configmaps", "settings")["action"], "created");
    assert_eq!(
        item(&record, "deployments.apps", "web")["action"],
        "created"
    );

    // On the emulator, the request log shows the order: the webhook
    // configuration is the last object created.
    if let Some(log) = target.request_log() {
        let creates: Vec<String> = log
            .entries()
            .into_iter()
            .filter(|r| r.method == "POST" && r.status < 300)
            .map(|r| r.path)
            .collect();
        let hook_at = creates
            .iter()
            .position(|p| p.ends_with("/validatingwebhookconfigurations"))
            .expect("webhook created");
        for (i, path) in creates.iter().enumerate() {
            if path.contains(&format!("/namespaces/{}/", ns.as_str())) {
                assert!(
                    i < hook_at,
                    "{path} was created after the webhook configuration"
                );
            }
        }
    }

    // The restored webhook is live and fails closed: had it been restored
    // first, it would have refused every ConfigMap and Deployment above.
    let dst = target.client().await.expect("client");
    let blocked = api(&dst, "", "v1", "ConfigMap", "configmaps", Some(&ns))
        .create(
            &Default::default(),
            &serde_json::from_value(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "after-restore"}})).expect("cm"),
        )
        .await;
    assert!(
        blocked.is_err(),
        "the restored webhook should refuse new ConfigMaps in {ns}"
    );

    let _ = api(
        &dst,
        "admissionregistration.k8s.io",
        "v1",
        "ValidatingWebhookConfiguration",
        "validatingwebhookconfigurations",
        None,
    )
    .delete(&hook, &Default::default())
    .await;
    if target.is_external() {
        wait_namespace_gone(&dst, &ns).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_restore_completes_when_run_again() {
    let source = TestCluster::start().await.expect("source cluster");
    let target = TestCluster::start_role(Role::Target)
        .await
        .expect("target cluster");
    let ns_guard = source.temp_namespace("rs-int").await.expect("namespace");
    let ns = ns_guard.name().to_owned();
    let mut yaml = String::new();
    for i in 0..600 {
        yaml.push_str(&format!("---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c{i}, namespace: {ns}}}\ndata: {{i: \"{i}\"}}\n"));
    }
    source.create_yaml(&yaml).await.expect("seed");
    let loc = location();
    backup(&source, &loc, "b1", &["--include-namespaces", &ns]);
    let dst = target.client().await.expect("client");

    // One item at a time so that there is a "half-way" to kill it at.
    let mut child = Command::new(e2e::bin_path("kubectl-backup"))
        .arg("--kubeconfig")
        .arg(target.kubeconfig())
        .args([
            "restore",
            "create",
            "b1",
            "again",
            "--location",
            &loc.url,
            "--concurrency",
            "1",
            "-o",
            "json",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let configmaps = api(&dst, "", "v1", "ConfigMap", "configmaps", Some(&ns));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let n = configmaps
            .list(&ListParams::default().labels(backup_common::LABEL_RESTORE_NAME))
            .await
            .map(|l| l.items.len())
            .unwrap_or(0);
        if n >= 50 {
            break;
        }
        assert!(Instant::now() < deadline, "the restore did not start");
        assert!(
            child.try_wait().expect("wait").is_none(),
            "the restore finished before it could be interrupted"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().expect("kill");
    child.wait().expect("reap");
    let partial = configmaps
        .list(&ListParams::default().labels(backup_common::LABEL_RESTORE_NAME))
        .await
        .expect("list")
        .items
        .len();
    assert!(
        partial < 600,
        "the first run must have been cut short ({partial} restored)"
    );
    let record: Value = serde_json::from_slice(
        &std::fs::read(loc.path.join("restores/again/restore.json")).expect("record"),
    )
    .expect("json");
    assert_eq!(
        record["phase"], "InProgress",
        "a killed restore is left InProgress"
    );

    let (code, record) = restore(&target, &loc, "b1", &["again"]);
    assert_eq!(code, Some(0), "{record}");
    assert_eq!(record["phase"], "Completed");
    let all = configmaps
        .list(&ListParams::default().labels(backup_common::LABEL_RESTORE_NAME))
        .await
        .expect("list")
        .items;
    assert_eq!(all.len(), 600, "the re-run restores the rest");
    assert_eq!(
        count(&record, "skippedExisting") + count(&record, "created"),
        count(&record, "total") - count(&record, "skipped")
    );
    assert!(count(&record, "skippedExisting") >= partial as u64);

    if target.is_external() {
        wait_namespace_gone(&dst, &ns).await;
    }
}

// === volumes from CSI snapshots ===

const DRIVER: &str = "hostpath.csi.k8s.io";
const SNAP: &str = "/apis/snapshot.storage.k8s.io/v1";

async fn send(
    client: &kube::Client,
    method: http::Method,
    path: &str,
    content_type: &str,
    body: &Value,
) -> Value {
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .header(http::header::CONTENT_TYPE, content_type)
        .body(serde_json::to_vec(body).expect("json"))
        .expect("request");
    client
        .request::<Value>(req)
        .await
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

async fn install_snapshot_crds(cluster: &TestCluster) {
    let crds = api(
        &cluster.client().await.expect("client"),
        "apiextensions.k8s.io",
        "v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        None,
    );
    for kind in [
        "volumesnapshotclasses",
        "volumesnapshotcontents",
        "volumesnapshots",
    ] {
        let name = format!("{kind}.snapshot.storage.k8s.io");
        if crds.get_opt(&name).await.expect("get CRD").is_none() {
            let path = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join(format!("fixtures/crds/snapshot.storage.k8s.io_{kind}.yaml"));
            cluster
                .create_yaml(&std::fs::read_to_string(path).expect("CRD fixture"))
                .await
                .expect("install CRD");
        }
        cluster
            .wait_crd_established(&name)
            .await
            .expect("established");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_come_back_from_their_csi_snapshots() {
    let source = TestCluster::start().await.expect("source cluster");
    let target = TestCluster::start_role(Role::Target)
        .await
        .expect("target cluster");
    install_snapshot_crds(&source).await;
    install_snapshot_crds(&target).await;
    let ns_guard = source.temp_namespace("rs-vol").await.expect("namespace");
    let ns = ns_guard.name().to_owned();
    let src = source.client().await.expect("client");
    let class = format!("{ns}-snapclass");
    let pv = format!("{ns}-data");
    let json_ct = "application/json";
    send(&src, http::Method::POST, &format!("{SNAP}/volumesnapshotclasses"), json_ct, &json!({
        "apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshotClass",
        "metadata": {"name": class, "annotations": {"snapshot.storage.kubernetes.io/is-default-class": "true"}},
        "driver": DRIVER, "deletionPolicy": "Delete"})).await;
    send(&src, http::Method::POST, "/api/v1/persistentvolumes", json_ct, &json!({
        "metadata": {"name": pv},
        "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "storageClassName": "gold",
            "csi": {"driver": DRIVER, "volumeHandle": "vol-data"}, "claimRef": {"namespace": ns, "name": "data"}}})).await;
    send(
        &src,
        http::Method::POST,
        &format!("/api/v1/namespaces/{ns}/persistentvolumeclaims"),
        json_ct,
        &json!({
        "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "gold",
            "resources": {"requests": {"storage": "1Gi"}}, "volumeName": pv}}),
    )
    .await;

    // The backup, with the test playing the snapshot controller.
    let loc = location();
    let mut child = Command::new(e2e::bin_path("kubectl-backup"))
        .arg("--kubeconfig")
        .arg(source.kubeconfig())
        .args([
            "create",
            "b1",
            "--location",
            &loc.url,
            "--include-namespaces",
            &ns,
            "--include-all-disks",
            "--snapshot-timeout",
            "60s",
        ])
        .stdout(Stdio::null())
        .spawn()
        .expect("backup");
    let deadline = Instant::now() + Duration::from_secs(60);
    let snapshot = loop {
        let list = send(
            &src,
            http::Method::GET,
            &format!("{SNAP}/namespaces/{ns}/volumesnapshots"),
            json_ct,
            &Value::Null,
        )
        .await;
        if let Some(vs) = list["items"]
            .as_array()
            .and_then(|items| items.first())
            .cloned()
        {
            break vs;
        }
        assert!(
            Instant::now() < deadline,
            "the backup made no VolumeSnapshot"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let vs_name = snapshot["metadata"]["name"]
        .as_str()
        .expect("name")
        .to_owned();
    let content = format!("snapcontent-{ns}");
    send(&src, http::Method::POST, &format!("{SNAP}/volumesnapshotcontents"), json_ct, &json!({
        "apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshotContent", "metadata": {"name": content},
        "spec": {"deletionPolicy": "Delete", "driver": DRIVER, "volumeSnapshotClassName": class,
            "source": {"volumeHandle": "vol-data"},
            "volumeSnapshotRef": {"apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshot",
                "namespace": ns, "name": vs_name, "uid": snapshot["metadata"]["uid"]}}})).await;
    let merge = "application/merge-patch+json";
    send(&src, http::Method::PATCH, &format!("{SNAP}/volumesnapshotcontents/{content}/status"), merge,
        &json!({"status": {"snapshotHandle": "snap-123", "readyToUse": true, "restoreSize": 1073741824i64}})).await;
    send(&src, http::Method::PATCH, &format!("{SNAP}/namespaces/{ns}/volumesnapshots/{vs_name}/status"), merge,
        &json!({"status": {"boundVolumeSnapshotContentName": content, "readyToUse": true, "restoreSize": "1Gi"}})).await;
    assert!(child.wait().expect("backup").success(), "the backup failed");

    // The restore, renamed and onto another storage class.
    let dst_ns = format!("{ns}-copy");
    let mapping = format!("{ns}:{dst_ns}");
    let (code, record) = restore(
        &target,
        &loc,
        "b1",
        &[
            "--namespace-mapping",
            &mapping,
            "--storage-class-map",
            "gold=silver",
        ],
    );
    assert_eq!(code, Some(0), "{record}");
    assert_eq!(
        record["options"]["restoreVolumes"], true,
        "on by default for a backup with snapshots"
    );
    let restore_name = record["name"].as_str().expect("name").to_owned();
    let dst = target.client().await.expect("client");

    let claim = get(
        &dst,
        "",
        "v1",
        "PersistentVolumeClaim",
        "persistentvolumeclaims",
        Some(&dst_ns),
        "data",
    )
    .await
    .expect("claim");
    let restored_vs = claim["spec"]["dataSource"]["name"]
        .as_str()
        .expect("dataSource")
        .to_owned();
    assert_eq!(claim["spec"]["dataSource"]["kind"], "VolumeSnapshot");
    assert_eq!(
        claim["spec"]["dataSource"]["apiGroup"],
        "snapshot.storage.k8s.io"
    );
    assert_eq!(claim["spec"]["storageClassName"], "silver");
    assert!(
        claim["spec"]["volumeName"].is_null(),
        "a new volume is provisioned: {claim}"
    );
    assert!(
        get(
            &dst,
            "",
            "v1",
            "PersistentVolume",
            "persistentvolumes",
            None,
            &pv
        )
        .await
        .is_none(),
        "the old PV is not restored"
    );
    assert_eq!(item(&record, "persistentvolumes", &pv)["action"], "skipped");

    let vs = get(
        &dst,
        "snapshot.storage.k8s.io",
        "v1",
        "VolumeSnapshot",
        "volumesnapshots",
        Some(&dst_ns),
        &restored_vs,
    )
    .await
    .expect("VolumeSnapshot");
    let vsc_name = vs["spec"]["source"]["volumeSnapshotContentName"]
        .as_str()
        .expect("pre-provisioned")
        .to_owned();
    assert_eq!(
        vs["metadata"]["labels"][backup_common::LABEL_RESTORE_NAME],
        json!(restore_name)
    );
    let vsc = get(
        &dst,
        "snapshot.storage.k8s.io",
        "v1",
        "VolumeSnapshotContent",
        "volumesnapshotcontents",
        None,
        &vsc_name,
    )
    .await
    .expect("content");
    assert_eq!(vsc["spec"]["deletionPolicy"], "Retain");
    assert_eq!(vsc["spec"]["driver"], DRIVER);
    assert_eq!(vsc["spec"]["source"]["snapshotHandle"], "snap-123");
    assert_eq!(vsc["spec"]["volumeSnapshotRef"]["namespace"], json!(dst_ns));
    assert_eq!(vsc["spec"]["volumeSnapshotRef"]["name"], json!(restored_vs));
    assert!(
        get(
            &dst,
            "snapshot.storage.k8s.io",
            "v1",
            "VolumeSnapshot",
            "volumesnapshots",
            Some(&dst_ns),
            &vs_name
        )
        .await
        .is_none(),
        "the backup's own snapshot is not copied"
    );

    // Clean up what a real source cluster would keep.
    let _ = api(
        &src,
        "",
        "v1",
        "PersistentVolume",
        "persistentvolumes",
        None,
    )
    .delete(&pv, &Default::default())
    .await;
    let _ = api(
        &src,
        "snapshot.storage.k8s.io",
        "v1",
        "VolumeSnapshotContent",
        "volumesnapshotcontents",
        None,
    )
    .delete(&content, &Default::default())
    .await;
    let _ = api(
        &src,
        "snapshot.storage.k8s.io",
        "v1",
        "VolumeSnapshotClass",
        "volumesnapshotclasses",
        None,
    )
    .delete(&class, &Default::default())
    .await;
    if target.is_external() {
        let _ = api(
            &dst,
            "snapshot.storage.k8s.io",
            "v1",
            "VolumeSnapshotContent",
            "volumesnapshotcontents",
            None,
        )
        .delete(&vsc_name, &Default::default())
        .await;
        wait_namespace_gone(&dst, &dst_ns).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_reports_what_does_not_become_ready() {
    let source = TestCluster::start().await.expect("source cluster");
    let target = TestCluster::start_role(Role::Target)
        .await
        .expect("target cluster");
    let ns_guard = source.temp_namespace("rs-wait").await.expect("namespace");
    let ns = ns_guard.name().to_owned();
    // An image that can never be pulled and a class that does not exist:
    // neither becomes ready on any cluster.
    source
        .create_yaml(&format!(
            r#"
apiVersion: apps/v1
kind: Deployment
metadata: {{name: stuck, namespace: {ns}}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: stuck}}}}
  template:
    metadata: {{labels: {{app: stuck}}}}
    spec: {{containers: [{{name: c, image: "registry.invalid/none:0"}}]}}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {{name: unbound, namespace: {ns}}}
spec: {{accessModes: [ReadWriteOnce], storageClassName: no-such-class, resources: {{requests: {{storage: 1Gi}}}}}}
"#
        ))
        .await
        .expect("seed");
    let loc = location();
    backup(&source, &loc, "b1", &["--include-namespaces", &ns]);

    let started = Instant::now();
    let (code, record) = restore(&target, &loc, "b1", &["--wait", "--wait-timeout", "3s"]);
    assert_eq!(
        code,
        Some(0),
        "not ready is a warning, not a failure: {record}"
    );
    assert!(
        started.elapsed() >= Duration::from_secs(3),
        "--wait must wait"
    );
    let warnings = record["warnings"].as_array().cloned().unwrap_or_default();
    for name in ["stuck", "unbound"] {
        assert!(
            warnings.iter().any(|w| w["name"] == name
                && w["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("not ready after 3s"))),
            "no warning for {name}: {warnings:?}"
        );
    }
    if target.is_external() {
        wait_namespace_gone(&target.client().await.expect("client"), &ns).await;
    }
}

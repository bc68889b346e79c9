//! `etcd snapshot --via-node` and `etcd schedule`: the Job and CronJob the
//! cluster receives. The harness cluster (TEST_KUBECONFIG, else the
//! emulator) has no kubelet, so the tests check the stored manifests, which
//! is what a kubelet would run: pinned to a control-plane node, host network,
//! the node's etcd certificates mounted read-only, control-plane tolerations,
//! the same image and the snapshot arguments.

mod etcd_common;

use e2e::cluster::TestCluster;
use etcd_common::*;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{Namespace, Node};
use kube::Api;
use kube::api::{DeleteParams, ListParams, PostParams};
use serde_json::{Value, json};

struct Fixture {
    cluster: TestCluster,
    client: kube::Client,
    namespace: String,
    created_nodes: Vec<String>,
}

impl Fixture {
    async fn new() -> Fixture {
        let cluster = TestCluster::start().await.expect("a test cluster");
        let client = cluster.client().await.expect("client");
        let namespace = format!(
            "kb-etcd-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        let ns: Namespace =
            serde_json::from_value(json!({"metadata": {"name": namespace}})).unwrap();
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .expect("create namespace");
        Fixture {
            cluster,
            client,
            namespace,
            created_nodes: Vec::new(),
        }
    }

    /// An existing control-plane node, or one registered for the test.
    async fn node(&mut self, control_plane: bool) -> String {
        let nodes: Api<Node> = Api::all(self.client.clone());
        if control_plane {
            let existing = nodes
                .list(&ListParams::default().labels("node-role.kubernetes.io/control-plane"))
                .await
                .expect("list nodes");
            if let Some(n) = existing.items.first() {
                return n.metadata.name.clone().unwrap();
            }
        }
        let name = format!(
            "kb-etcd-node-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        let mut labels = json!({"kubernetes.io/hostname": name});
        if control_plane {
            labels["node-role.kubernetes.io/control-plane"] = json!("");
        }
        let node: Node =
            serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}})).unwrap();
        nodes
            .create(&PostParams::default(), &node)
            .await
            .expect("register a node");
        self.created_nodes.push(name.clone());
        name
    }

    fn kb(&self) -> std::process::Command {
        let mut cmd = kb();
        cmd.arg("--kubeconfig")
            .arg(self.cluster.kubeconfig())
            .args(["--tool-namespace", &self.namespace]);
        cmd
    }

    async fn cleanup(self) {
        let _ = Api::<Namespace>::all(self.client.clone())
            .delete(&self.namespace, &DeleteParams::default())
            .await;
        for n in &self.created_nodes {
            let _ = Api::<Node>::all(self.client.clone())
                .delete(n, &DeleteParams::default())
                .await;
        }
    }
}

#[tokio::test]
async fn via_node_creates_the_right_job() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let mut f = Fixture::new().await;
    let node = f.node(true).await;
    let out = ok(f.kb().args([
        "etcd",
        "snapshot",
        "--via-node",
        &node,
        "--detach",
        "--location",
        "s3://etcd-backups/prod",
        "--cluster",
        "prod",
        "--image",
        "registry.example/kubectl-backup:test",
        "--prune-keep",
        "7",
    ]));
    assert!(out.contains("created"), "{out}");

    let jobs: Api<Job> = Api::namespaced(f.client.clone(), &f.namespace);
    let list = jobs
        .list(&ListParams::default().labels("app.kubernetes.io/component=etcd-snapshot"))
        .await
        .unwrap();
    assert_eq!(list.items.len(), 1);
    let job = serde_json::to_value(&list.items[0]).unwrap();
    let pod = &job["spec"]["template"]["spec"];
    assert_eq!(pod["hostNetwork"], true);
    assert_eq!(pod["nodeSelector"]["kubernetes.io/hostname"], node.as_str());
    assert_eq!(pod["restartPolicy"], "Never");
    let tolerations = pod["tolerations"].as_array().unwrap();
    for key in [
        "node-role.kubernetes.io/control-plane",
        "node-role.kubernetes.io/master",
    ] {
        assert!(
            tolerations
                .iter()
                .any(|t| t["key"] == key && t["operator"] == "Exists"),
            "{key}"
        );
    }
    let c = &pod["containers"][0];
    assert_eq!(c["image"], "registry.example/kubectl-backup:test");
    let args: Vec<&str> = c["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    for expected in [
        "etcd",
        "snapshot",
        "--endpoints=https://127.0.0.1:2379",
        "--cacert=/etc/kubernetes/pki/etcd/ca.crt",
        "--cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt",
        "--key=/etc/kubernetes/pki/etcd/healthcheck-client.key",
        "--location=s3://etcd-backups/prod",
        "--cluster=prod",
        "--prune-keep=7",
    ] {
        assert!(args.contains(&expected), "{expected} missing from {args:?}");
    }
    let mounts = c["volumeMounts"].as_array().unwrap();
    let pki = mounts
        .iter()
        .find(|m| m["mountPath"] == "/etc/kubernetes/pki/etcd")
        .expect("pki mount");
    assert_eq!(pki["readOnly"], true);
    let volume: &Value = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == pki["name"])
        .unwrap();
    assert_eq!(volume["hostPath"]["path"], "/etc/kubernetes/pki/etcd");
    assert_eq!(c["env"][0]["value"], f.namespace.as_str());

    // A worker node is refused before anything is created.
    let worker = f.node(false).await;
    let out = fails(f.kb().args([
        "etcd",
        "snapshot",
        "--via-node",
        &worker,
        "--detach",
        "--location",
        "s3://etcd-backups/prod",
    ]));
    assert!(
        stderr(&out).contains("not a control-plane node"),
        "{}",
        stderr(&out)
    );
    let out = fails(
        f.kb()
            .args(["etcd", "snapshot", "--via-node", &node, "--detach"]),
    );
    assert!(stderr(&out).contains("--location"), "{}", stderr(&out));
    assert_eq!(
        jobs.list(&ListParams::default()).await.unwrap().items.len(),
        1
    );
    f.cleanup().await;
}

#[tokio::test]
async fn schedule_create_list_delete() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let f = Fixture::new().await;
    ok(f.kb().args([
        "etcd",
        "schedule",
        "create",
        "twice-daily",
        "--preset",
        "k3s",
        "--location",
        "s3://etcd-backups/prod",
    ]));
    let cronjobs: Api<CronJob> = Api::namespaced(f.client.clone(), &f.namespace);
    let cj =
        serde_json::to_value(cronjobs.get("etcd-snapshot-twice-daily").await.unwrap()).unwrap();
    assert_eq!(cj["spec"]["schedule"], "0 */12 * * *");
    assert_eq!(cj["spec"]["concurrencyPolicy"], "Forbid");
    let pod = &cj["spec"]["jobTemplate"]["spec"]["template"]["spec"];
    assert_eq!(
        pod["nodeSelector"]["node-role.kubernetes.io/control-plane"],
        ""
    );
    assert_eq!(pod["hostNetwork"], true);
    let args: Vec<&str> = pod["containers"][0]["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(args.contains(&"--prune-keep=5"), "{args:?}");

    ok(f.kb().args([
        "etcd",
        "schedule",
        "create",
        "hourly",
        "--preset",
        "hourly",
        "--location",
        "s3://etcd-backups/prod",
    ]));
    let listed = ok(f.kb().args(["etcd", "schedule", "list"]));
    assert!(
        listed.contains("twice-daily")
            && listed.contains("0 */12 * * *")
            && listed.contains("keep=5"),
        "{listed}"
    );
    assert!(
        listed.contains("hourly") && listed.contains("keep=12"),
        "{listed}"
    );

    ok(f.kb().args(["etcd", "schedule", "delete", "twice-daily"]));
    let out = fails(f.kb().args(["etcd", "schedule", "delete", "twice-daily"]));
    assert!(stderr(&out).contains("not found"), "{}", stderr(&out));
    let left = ok(f.kb().args(["etcd", "schedule", "list"]));
    assert!(
        !left.contains("twice-daily") && left.contains("hourly"),
        "{left}"
    );
    f.cleanup().await;
}

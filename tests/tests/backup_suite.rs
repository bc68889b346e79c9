//! The backup behavioural suite: the built `kubectl-backup` against the
//! harness cluster, once per storage backend (a local folder, moto S3,
//! Azurite), exactly as a user runs it. Archives are inspected with plain
//! `tar` + `zstd` readers, independently of the plugin's own reader.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use e2e::cluster::TestCluster;
use e2e::servers::{AzuriteServer, S3Server};
use serde_json::{Value, json};
use sha2::Digest;

// === backends ===

/// Where the backups of one test go.
struct Backend {
    kind: &'static str,
    location: String,
    env: Vec<(String, String)>,
    _dir: tempfile::TempDir,
    _s3: Option<S3Server>,
    _azurite: Option<AzuriteServer>,
}

impl Backend {
    fn local() -> Backend {
        let dir = tempfile::tempdir().expect("tempdir");
        Backend {
            kind: "local",
            location: format!("file://{}", dir.path().join("backups-root").display()),
            env: Vec::new(),
            _dir: dir,
            _s3: None,
            _azurite: None,
        }
    }

    async fn s3() -> Backend {
        let server = S3Server::start();
        server
            .create_bucket("backups")
            .await
            .expect("create bucket");
        Backend {
            kind: "s3",
            location: "s3://backups/team-a".to_owned(),
            env: server.env(),
            _dir: tempfile::tempdir().expect("tempdir"),
            _s3: Some(server),
            _azurite: None,
        }
    }

    async fn azurite() -> Backend {
        let server = AzuriteServer::start();
        server
            .create_container("backups")
            .await
            .expect("create container");
        Backend {
            kind: "azurite",
            location: "az://backups/team-a".to_owned(),
            env: server.env(),
            _dir: tempfile::tempdir().expect("tempdir"),
            _s3: None,
            _azurite: Some(server),
        }
    }

    /// The local folder behind a `file://` location.
    fn folder(&self) -> Option<PathBuf> {
        self.location.strip_prefix("file://").map(PathBuf::from)
    }
}

// === running the plugin ===

struct Ctx {
    cluster: TestCluster,
    backend: Backend,
    scratch: tempfile::TempDir,
    tool_namespace: Option<String>,
}

impl Ctx {
    async fn new(backend: Backend) -> Ctx {
        let cluster = TestCluster::start()
            .await
            .expect("start the harness cluster");
        Ctx {
            cluster,
            backend,
            scratch: tempfile::tempdir().expect("tempdir"),
            tool_namespace: None,
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        self.command_for(self.cluster.kubeconfig(), args)
    }

    fn command_for(&self, kubeconfig: &Path, args: &[&str]) -> Command {
        let mut cmd = Command::new(e2e::bin_path("kubectl-backup"));
        cmd.arg("--kubeconfig").arg(kubeconfig);
        cmd.args(args);
        cmd.env("KUBECTL_BACKUP_LOCATION", &self.backend.location);
        // Never touch the real home folder.
        cmd.env(
            "KUBECTL_BACKUP_LOCAL_DIR",
            self.scratch.path().join("default-location"),
        );
        cmd.env_remove("KUBECONFIG");
        if let Some(ns) = &self.tool_namespace {
            cmd.env("KUBECTL_BACKUP_NAMESPACE", ns);
        }
        for (k, v) in &self.backend.env {
            cmd.env(k, v);
        }
        cmd.stdin(Stdio::null());
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run kubectl-backup")
    }

    /// Run and require exit code 0; return stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "[{}] kubectl-backup {args:?} failed ({}):\nstdout: {}\nstderr: {}",
            self.backend.kind,
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Run and require exit code `code`; return stderr.
    fn fails(&self, args: &[&str], code: i32) -> String {
        let out = self.run(args);
        assert_eq!(
            out.status.code(),
            Some(code),
            "[{}] kubectl-backup {args:?}: expected exit {code}:\nstdout: {}\nstderr: {}",
            self.backend.kind,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    fn json(&self, args: &[&str]) -> Value {
        let out = self.ok(args);
        serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("{args:?} printed no JSON ({e}): {out}"))
    }

    /// Download a backup's archive and read it: path → JSON (metadata as strings).
    fn archive(&self, name: &str) -> Archive {
        let file = self.scratch.path().join(format!("{name}.tar.zst"));
        self.ok(&[
            "download",
            name,
            "-o",
            file.to_str().expect("utf-8 path"),
            "--force",
        ]);
        let bytes = std::fs::read(&file).expect("read the download");
        let manifest = self.json(&["describe", name, "-o", "json"]);
        let sha = hex::encode(sha2::Sha256::digest(&bytes));
        assert_eq!(
            manifest["parts"]["resources.tar.zst"]["sha256"], sha,
            "the downloaded archive matches the manifest's checksum"
        );
        read_archive(&bytes)
    }

    async fn client(&self) -> kube::Client {
        self.cluster.client().await.expect("client")
    }
}

/// The entries of an archive.
struct Archive {
    entries: BTreeMap<String, Vec<u8>>,
}

impl Archive {
    fn has(&self, path: &str) -> bool {
        self.entries.contains_key(path)
    }

    fn item(&self, path: &str) -> Value {
        let bytes = self
            .entries
            .get(path)
            .unwrap_or_else(|| panic!("{path} is not in the archive"));
        serde_json::from_slice(bytes).expect("item JSON")
    }

    fn items_under(&self, prefix: &str) -> Vec<&String> {
        self.entries
            .keys()
            .filter(|k| k.starts_with(prefix))
            .collect()
    }

    fn item_count(&self) -> usize {
        self.entries
            .keys()
            .filter(|k| k.starts_with("resources/"))
            .count()
    }
}

fn read_archive(bytes: &[u8]) -> Archive {
    let decoder = zstd::stream::read::Decoder::new(bytes).expect("zstd");
    let mut tar = tar::Archive::new(decoder);
    let mut entries = BTreeMap::new();
    for entry in tar.entries().expect("tar entries") {
        let mut entry = entry.expect("tar entry");
        let path = entry.path().expect("path").to_string_lossy().into_owned();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).expect("entry data");
        entries.insert(path, data);
    }
    Archive { entries }
}

// === the workload ===

/// What `seed` created.
struct Workload {
    a: e2e::cluster::TempNamespace,
    b: e2e::cluster::TempNamespace,
    prefix: String,
    crd_group: String,
    pv: String,
    storage_class: String,
}

fn random(n: usize) -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    (0..n)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

async fn send(
    client: &kube::Client,
    method: http::Method,
    path: &str,
    content_type: &str,
    body: &Value,
) -> Value {
    let req = http::Request::builder()
        .method(method.clone())
        .uri(path)
        .header(http::header::CONTENT_TYPE, content_type)
        .body(serde_json::to_vec(body).expect("json"))
        .expect("request");
    client
        .request::<Value>(req)
        .await
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

async fn post(client: &kube::Client, path: &str, body: Value) -> Value {
    send(client, http::Method::POST, path, "application/json", &body).await
}

async fn get(client: &kube::Client, path: &str) -> Result<Value, kube::Error> {
    let req = http::Request::get(path).body(Vec::new()).expect("request");
    client.request::<Value>(req).await
}

async fn delete(client: &kube::Client, path: &str) {
    let req = http::Request::delete(path)
        .body(Vec::new())
        .expect("request");
    let _ = client.request::<Value>(req).await;
}

/// Two namespaces with a sandbox-like workload; A also has a PVC bound to a
/// CSI PV, a custom resource, and an object labelled to be excluded.
async fn seed(ctx: &Ctx) -> Workload {
    let client = ctx.client().await;
    let prefix = format!("bk{}", random(4));
    let a = ctx
        .cluster
        .temp_namespace(&prefix)
        .await
        .expect("namespace a");
    let b = ctx
        .cluster
        .temp_namespace(&prefix)
        .await
        .expect("namespace b");
    let crd_group = format!("{}.example.com", random(6));
    let crd_name = format!("widgets.{crd_group}");
    post(
        &client,
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
        json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": crd_name},
            "spec": {"group": crd_group, "scope": "Namespaced",
                "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
                "versions": [{"name": "v1", "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}
        }),
    )
    .await;
    ctx.cluster
        .wait_crd_established(&crd_name)
        .await
        .expect("CRD established");

    let storage_class = format!("{prefix}-fast");
    post(
        &client,
        "/apis/storage.k8s.io/v1/storageclasses",
        json!({"metadata": {"name": storage_class}, "provisioner": "hostpath.csi.k8s.io"}),
    )
    .await;
    let pv = format!("{}-pv", a.name());
    for (ns, web_replicas) in [(a.name(), 2), (b.name(), 1)] {
        post(
            &client,
            &format!("/api/v1/namespaces/{ns}/configmaps"),
            json!({
            "metadata": {"name": "settings", "labels": {"app": "web"}}, "data": {"mode": "prod"}}),
        )
        .await;
        post(
            &client,
            &format!("/api/v1/namespaces/{ns}/secrets"),
            json!({
            "metadata": {"name": "creds"}, "type": "Opaque", "data": {"password": "czNjcjN0"}}),
        )
        .await;
        post(
            &client,
            &format!("/apis/apps/v1/namespaces/{ns}/deployments"),
            json!({
            "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {"replicas": web_replicas, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "web", "image": "nginx:1.25"}]}}}}),
        )
        .await;
        post(&client, &format!("/api/v1/namespaces/{ns}/services"), json!({
            "metadata": {"name": "web"}, "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}})).await;
    }
    let ns_a = a.name();
    post(&client, &format!("/api/v1/namespaces/{ns_a}/configmaps"), json!({
        "metadata": {"name": "skip-me", "labels": {backup_common::LABEL_EXCLUDE_FROM_BACKUP: "true"}},
        "data": {"x": "y"}})).await;
    post(
        &client,
        &format!("/apis/{crd_group}/v1/namespaces/{ns_a}/widgets"),
        json!({
        "apiVersion": format!("{crd_group}/v1"), "kind": "Widget",
        "metadata": {"name": "w1"}, "spec": {"size": 3}}),
    )
    .await;
    post(
        &client,
        "/api/v1/persistentvolumes",
        json!({
        "metadata": {"name": pv},
        "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Delete", "storageClassName": storage_class,
            "csi": {"driver": "hostpath.csi.k8s.io", "volumeHandle": format!("vol-{}", random(8))},
            "claimRef": {"namespace": ns_a, "name": "data"}}}),
    )
    .await;
    post(
        &client,
        &format!("/api/v1/namespaces/{ns_a}/persistentvolumeclaims"),
        json!({
        "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": storage_class,
            "resources": {"requests": {"storage": "1Gi"}}, "volumeName": pv}}),
    )
    .await;
    Workload {
        a,
        b,
        prefix,
        crd_group,
        pv,
        storage_class,
    }
}

async fn cleanup(ctx: &Ctx, w: &Workload) {
    let client = ctx.client().await;
    delete(&client, &format!("/api/v1/persistentvolumes/{}", w.pv)).await;
    delete(
        &client,
        &format!("/apis/storage.k8s.io/v1/storageclasses/{}", w.storage_class),
    )
    .await;
    delete(
        &client,
        &format!(
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.{}",
            w.crd_group
        ),
    )
    .await;
}

fn list_names(ctx: &Ctx) -> BTreeMap<String, Value> {
    let list = ctx.json(&["list", "-o", "json"]);
    list.as_array()
        .expect("list -o json is an array")
        .iter()
        .map(|r| (r["name"].as_str().expect("name").to_owned(), r.clone()))
        .collect()
}

// === the suite ===

async fn suite(backend: Backend) {
    suite_with(Ctx::new(backend).await).await;
}

async fn suite_with(ctx: Ctx) {
    let w = seed(&ctx).await;
    let (a, b) = (w.a.name().to_owned(), w.b.name().to_owned());
    let crd = format!("widgets.{}", w.crd_group);

    // --- auto (the default): namespace A, its PV and its CRD, nothing else cluster-scoped.
    let out = ctx.ok(&["create", "auto-1", "--include-namespaces", &a]);
    assert!(out.contains("Completed"), "summary says Completed: {out}");
    let arc = ctx.archive("auto-1");
    assert_eq!(
        arc.entries.get("metadata/version").map(Vec::as_slice),
        Some(&b"1\n"[..])
    );
    let types: Value =
        serde_json::from_slice(&arc.entries["metadata/resources.json"]).expect("type table");
    let deploy_type = types
        .as_array()
        .expect("array")
        .iter()
        .find(|t| t["resource"] == "deployments.apps")
        .expect("deployments.apps recorded");
    assert_eq!(deploy_type["version"], "v1");
    assert!(arc.has(&format!(
        "resources/configmaps/namespaces/{a}/settings.json"
    )));
    assert!(
        !arc.has(&format!("resources/configmaps/namespaces/{a}/skip-me.json")),
        "exclude label honoured"
    );
    assert!(
        arc.items_under(&format!("resources/configmaps/namespaces/{b}/"))
            .is_empty(),
        "B not selected"
    );
    assert!(arc.has(&format!("resources/namespaces/cluster/{a}.json")));
    assert!(!arc.has(&format!("resources/namespaces/cluster/{b}.json")));
    assert!(
        arc.has(&format!(
            "resources/persistentvolumes/cluster/{}.json",
            w.pv
        )),
        "auto takes the bound PV"
    );
    assert!(
        arc.has(&format!(
            "resources/customresourcedefinitions.apiextensions.k8s.io/cluster/{crd}.json"
        )),
        "auto takes the CRD of a backed-up custom resource"
    );
    assert!(arc.has(&format!(
        "resources/widgets.{}/namespaces/{a}/w1.json",
        w.crd_group
    )));
    assert!(
        arc.items_under("resources/storageclasses.storage.k8s.io/")
            .is_empty(),
        "auto takes no StorageClass"
    );
    assert!(
        arc.items_under("resources/events").is_empty(),
        "events are never backed up"
    );
    let secret = arc.item(&format!("resources/secrets/namespaces/{a}/creds.json"));
    assert_eq!(secret["apiVersion"], "v1");
    assert_eq!(secret["kind"], "Secret");
    assert!(secret["metadata"].get("managedFields").is_none());
    assert_eq!(
        secret["data"]["password"], "czNjcjN0",
        "secret data is kept"
    );
    let deploy = arc.item(&format!(
        "resources/deployments.apps/namespaces/{a}/web.json"
    ));
    assert_eq!(deploy["apiVersion"], "apps/v1");
    assert_eq!(deploy["spec"]["replicas"], 2);
    let manifest = ctx.json(&["describe", "auto-1", "-o", "json"]);
    assert_eq!(manifest["phase"], "Completed");
    assert_eq!(manifest["formatVersion"], 1);
    assert_eq!(
        manifest["totals"]["items"].as_u64(),
        Some(arc.item_count() as u64)
    );
    assert_eq!(manifest["totals"]["skipped"], 1);
    assert_eq!(
        manifest["resources"]["configmaps"]["items"]
            .as_u64()
            .map(|n| n >= 1),
        Some(true)
    );
    assert_eq!(manifest["namespaces"], json!([a]));
    assert!(
        manifest["source"]["version"]["gitVersion"]
            .as_str()
            .is_some_and(|v| v.starts_with('v'))
    );
    let expires =
        chrono::DateTime::parse_from_rfc3339(manifest["expiresAt"].as_str().expect("expiresAt"))
            .expect("date");
    let started =
        chrono::DateTime::parse_from_rfc3339(manifest["startedAt"].as_str().expect("startedAt"))
            .expect("date");
    assert_eq!((expires - started).num_days(), 30, "default TTL is 30 days");

    // --- never: no cluster-scoped object but the namespace itself.
    ctx.ok(&[
        "create",
        "never-1",
        "--include-namespaces",
        &a,
        "--cluster-resources",
        "never",
    ]);
    let arc = ctx.archive("never-1");
    assert!(arc.items_under("resources/persistentvolumes/").is_empty());
    assert!(
        arc.items_under("resources/customresourcedefinitions.apiextensions.k8s.io/")
            .is_empty()
    );
    assert!(arc.has(&format!("resources/namespaces/cluster/{a}.json")));
    assert!(arc.has(&format!(
        "resources/widgets.{}/namespaces/{a}/w1.json",
        w.crd_group
    )));

    // --- always: every cluster-scoped type, whatever the namespace selection.
    ctx.ok(&[
        "create",
        "always-1",
        "--include-namespaces",
        &a,
        "--cluster-resources",
        "always",
    ]);
    let arc = ctx.archive("always-1");
    assert!(arc.has(&format!(
        "resources/persistentvolumes/cluster/{}.json",
        w.pv
    )));
    assert!(arc.has(&format!(
        "resources/customresourcedefinitions.apiextensions.k8s.io/cluster/{crd}.json"
    )));
    assert!(arc.has(&format!(
        "resources/storageclasses.storage.k8s.io/cluster/{}.json",
        w.storage_class
    )));
    assert!(
        arc.items_under("resources/nodes/").is_empty(),
        "nodes are never backed up"
    );
    assert!(
        arc.items_under(&format!("resources/configmaps/namespaces/{b}/"))
            .is_empty()
    );

    // --- globs, resource filters and a label selector.
    let glob = format!("{}-*", w.prefix);
    ctx.ok(&[
        "create",
        "glob-1",
        "--include-namespaces",
        &glob,
        "--exclude-namespaces",
        &b,
    ]);
    let arc = ctx.archive("glob-1");
    assert!(arc.has(&format!(
        "resources/configmaps/namespaces/{a}/settings.json"
    )));
    assert!(
        arc.items_under(&format!("resources/configmaps/namespaces/{b}/"))
            .is_empty()
    );
    ctx.ok(&[
        "create",
        "sel-1",
        "--include-namespaces",
        &format!("{a},{b}"),
        "--include-resources",
        "deploy,configmaps",
        "-l",
        "app=web",
    ]);
    let arc = ctx.archive("sel-1");
    let items: BTreeSet<&String> = arc
        .entries
        .keys()
        .filter(|k| k.starts_with("resources/") && !k.starts_with("resources/namespaces/"))
        .collect();
    let expected: BTreeSet<String> = [
        format!("resources/configmaps/namespaces/{a}/settings.json"),
        format!("resources/configmaps/namespaces/{b}/settings.json"),
        format!("resources/deployments.apps/namespaces/{a}/web.json"),
        format!("resources/deployments.apps/namespaces/{b}/web.json"),
    ]
    .into_iter()
    .collect();
    assert_eq!(
        items,
        expected.iter().collect(),
        "only the selected resources with the label"
    );

    // --- a prefix names the backup with a UTC timestamp.
    let out = ctx.json(&[
        "create",
        "--prefix",
        "daily",
        "--include-namespaces",
        &b,
        "-o",
        "json",
    ]);
    let daily = out["name"].as_str().expect("name").to_owned();
    assert!(
        daily.starts_with("daily-") && daily.len() == "daily-".len() + 14,
        "{daily}"
    );

    // --- --wait=false returns at once; the backup finishes in the background.
    let out = ctx.ok(&["create", "bg-1", "--include-namespaces", &b, "--wait=false"]);
    assert!(out.contains("background"), "{out}");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let listed = list_names(&ctx);
        if listed
            .get("bg-1")
            .is_some_and(|r| r["status"] == "Completed")
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the background backup did not complete: {listed:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // --- list: Palette's columns, and JSON for scripts.
    let table = ctx.ok(&["list"]);
    let header = table.lines().next().expect("header");
    for col in [
        "NAME",
        "STATUS",
        "CREATED",
        "EXPIRES",
        "NAMESPACES",
        "ALL-DISKS",
        "CLUSTER-RESOURCES",
        "ITEMS",
        "SIZE",
    ] {
        assert!(header.contains(col), "list header has {col}: {header}");
    }
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("never-1 ") && l.contains("Completed") && l.contains("never"))
    );
    let listed = list_names(&ctx);
    for n in [
        "auto-1",
        "never-1",
        "always-1",
        "glob-1",
        "sel-1",
        daily.as_str(),
    ] {
        assert_eq!(listed[n]["status"], "Completed", "{n}");
        assert_eq!(listed[n]["restorable"], true);
    }

    // --- describe for people.
    let text = ctx.ok(&["describe", "auto-1"]);
    for needle in [
        "Status:",
        "Completed",
        "Expires:",
        "Cluster resources:",
        "auto",
        "Source cluster:",
        "configmaps",
        "deployments.apps",
        &a,
    ] {
        assert!(text.contains(needle), "describe shows {needle:?}:\n{text}");
    }

    // --- logs: one line per item.
    let logs = ctx.ok(&["logs", "auto-1"]);
    assert!(
        logs.contains(&format!("backedUp    configmaps {a}/settings")),
        "{logs}"
    );
    assert!(
        logs.contains(&format!("skipped     configmaps {a}/skip-me")),
        "{logs}"
    );
    let json_lines = ctx.ok(&["logs", "auto-1", "-o", "json"]);
    for line in json_lines.lines() {
        serde_json::from_str::<Value>(line).expect("each log line is JSON");
    }

    // --- a namespace that does not exist is a warning, not a failure.
    let out = ctx.run(&[
        "create",
        "ghost-1",
        "--include-namespaces",
        &format!("{a},no-such-ns-{}", random(4)),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist"));
    let ghost = ctx.json(&["describe", "ghost-1", "-o", "json"]);
    assert!(ghost["warnings"].to_string().contains("does not exist"));

    // --- delete.
    ctx.ok(&["delete", "never-1"]);
    assert!(!list_names(&ctx).contains_key("never-1"));
    let err = ctx.fails(&["describe", "never-1"], 1);
    assert!(err.contains("not found"), "{err}");
    ctx.fails(&["delete", "never-1"], 1);

    // --- a name that exists is refused, and the backup is untouched.
    let before = ctx.json(&["describe", "auto-1", "-o", "json"]);
    let err = ctx.fails(&["create", "auto-1", "--include-namespaces", &b], 1);
    assert!(err.contains("already exists"), "{err}");
    assert_eq!(
        ctx.json(&["describe", "auto-1", "-o", "json"])["uid"],
        before["uid"]
    );

    // --- prune: only what has expired.
    ctx.ok(&[
        "create",
        "short-1",
        "--include-namespaces",
        &b,
        "--ttl",
        "1s",
    ]);
    std::thread::sleep(Duration::from_millis(1500));
    let dry = ctx.ok(&["prune", "--dry-run"]);
    assert!(dry.contains("short-1"), "{dry}");
    assert!(!dry.contains("auto-1"));
    assert!(
        list_names(&ctx).contains_key("short-1"),
        "a dry run deletes nothing"
    );
    let pruned = ctx.json(&["prune", "-o", "json"]);
    assert_eq!(pruned["expired"], json!(["short-1"]));
    let listed = list_names(&ctx);
    assert!(!listed.contains_key("short-1"));
    assert!(listed.contains_key("auto-1"));

    cleanup(&ctx, &w).await;
    if let Some(ns) = &ctx.tool_namespace {
        delete(&ctx.client().await, &format!("/api/v1/namespaces/{ns}")).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suite_on_a_local_folder() {
    suite(Backend::local()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suite_on_moto_s3() {
    suite(Backend::s3().await).await;
}

/// The same suite through a saved location (`location add`): the Secret in
/// the tool namespace is resolved by name for every command.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suite_on_a_named_s3_location() {
    let backend = Backend::s3().await;
    let endpoint = backend
        .env
        .iter()
        .find(|(k, _)| k == "AWS_ENDPOINT")
        .map(|(_, v)| v.clone())
        .expect("endpoint");
    let mut ctx = Ctx::new(backend).await;
    let tool_ns = format!("kubectl-backup-{}", random(5));
    ctx.tool_namespace = Some(tool_ns.clone());
    ctx.ok(&[
        "location",
        "add",
        "team",
        "--provider",
        "aws",
        "--bucket",
        "backups",
        "--prefix",
        "named",
        "--endpoint",
        &endpoint,
        "--force-path-style",
        "--region",
        "us-east-1",
    ]);
    ctx.backend.location = "team".to_owned();
    suite_with(ctx).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suite_on_azurite() {
    suite(Backend::azurite().await).await;
}

// === bad input ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_clearly() {
    let ctx = Ctx::new(Backend::local()).await;
    let ns = ctx
        .cluster
        .temp_namespace("bkbad")
        .await
        .expect("namespace");
    let n = ns.name();
    let err = ctx.fails(&["create", "Bad_Name", "--include-namespaces", n], 2);
    assert!(err.contains("invalid backup name"), "{err}");
    let err = ctx.fails(
        &["create", "x1", "--include-namespaces", n, "--ttl", "soon"],
        2,
    );
    assert!(err.contains("invalid TTL"), "{err}");
    let err = ctx.fails(
        &["create", "x1", "--include-namespaces", n, "--ttl", "0h"],
        2,
    );
    assert!(err.contains("longer than zero"), "{err}");
    let err = ctx.fails(
        &[
            "create",
            "x1",
            "--include-namespaces",
            n,
            "-l",
            "app in web",
        ],
        2,
    );
    assert!(err.contains("invalid selector"), "{err}");
    let err = ctx.fails(&["create", "x1", "--include-resources", "gizmos"], 2);
    assert!(err.contains("unknown resource"), "{err}");
    let err = ctx.fails(&["create", "x1", "--include-namespaces", "[bad"], 2);
    assert!(err.contains("invalid namespace pattern"), "{err}");
    let err = ctx.fails(&["create", "x1", "--location", "no-such-location"], 2);
    assert!(err.contains("no-such-location"), "{err}");
    let err = ctx.fails(&["create", "--prefix", &"p".repeat(60)], 2);
    assert!(err.contains("prefix"), "{err}");
    // Nothing was written by any of these.
    assert!(
        list_names(&ctx).is_empty(),
        "bad input leaves nothing behind"
    );

    // An unreachable cluster: nothing is reserved either.
    let dead = ctx.scratch.path().join("dead-kubeconfig");
    let port = e2e::servers::free_port();
    std::fs::write(
        &dead,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: dead\n  cluster:\n    server: https://127.0.0.1:{port}\n    insecure-skip-tls-verify: true\n\
             contexts:\n- name: dead\n  context:\n    cluster: dead\n    user: u\nusers:\n- name: u\n  user:\n    token: t\ncurrent-context: dead\n"
        ),
    )
    .expect("write kubeconfig");
    let out = ctx
        .command_for(&dead, &["create", "x2"])
        .output()
        .expect("run");
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(list_names(&ctx).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_bucket_and_bad_keys_are_reported() {
    let ctx = Ctx::new(Backend::s3().await).await;
    let ns = ctx.cluster.temp_namespace("bks3").await.expect("namespace");
    let err = ctx.fails(
        &[
            "create",
            "x1",
            "--include-namespaces",
            ns.name(),
            "--location",
            "s3://no-such-bucket",
        ],
        1,
    );
    assert!(
        err.contains("no-such-bucket") || err.contains("NoSuchBucket"),
        "{err}"
    );

    let auth = S3Server::start_with_auth().await;
    auth.create_bucket("locked").await.expect("bucket");
    let mut cmd = ctx.command(&[
        "create",
        "x2",
        "--include-namespaces",
        ns.name(),
        "--location",
        "s3://locked",
    ]);
    for (k, v) in auth.env() {
        cmd.env(k, v);
    }
    cmd.env("AWS_SECRET_ACCESS_KEY", "wrong-secret");
    let out = cmd.output().expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("SignatureDoesNotMatch") || stderr.contains("403"),
        "{stderr}"
    );

    // The right keys work against the same enforcing server.
    let mut cmd = ctx.command(&[
        "create",
        "x3",
        "--include-namespaces",
        ns.name(),
        "--location",
        "s3://locked",
    ]);
    for (k, v) in auth.env() {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

// === volume snapshots ===

const DRIVER: &str = "hostpath.csi.k8s.io";
const SNAP: &str = "/apis/snapshot.storage.k8s.io/v1";

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/crds")
}

async fn install_snapshot_crds(ctx: &Ctx) {
    let client = ctx.client().await;
    if get(&client, &format!("{SNAP}/volumesnapshotclasses"))
        .await
        .is_ok()
    {
        return;
    }
    for kind in [
        "volumesnapshotclasses",
        "volumesnapshotcontents",
        "volumesnapshots",
    ] {
        let yaml = std::fs::read_to_string(
            fixtures().join(format!("snapshot.storage.k8s.io_{kind}.yaml")),
        )
        .expect("CRD fixture");
        ctx.cluster.create_yaml(&yaml).await.expect("install CRD");
        ctx.cluster
            .wait_crd_established(&format!("{kind}.snapshot.storage.k8s.io"))
            .await
            .expect("established");
    }
}

/// Play the snapshot controller for one VolumeSnapshot: create its content
/// (deletionPolicy Delete, as a class would) and mark both ready.
async fn play_snapshot_controller(
    client: &kube::Client,
    ns: &str,
    vs: &Value,
    class: &str,
) -> String {
    let name = vs["metadata"]["name"].as_str().expect("name");
    let uid = vs["metadata"]["uid"].as_str().unwrap_or_default();
    let content = format!("snapcontent-{}", random(10));
    post(client, &format!("{SNAP}/volumesnapshotcontents"), json!({
        "apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshotContent",
        "metadata": {"name": content},
        "spec": {"deletionPolicy": "Delete", "driver": DRIVER, "volumeSnapshotClassName": class,
            "source": {"volumeHandle": "vol-1"},
            "volumeSnapshotRef": {"apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshot",
                "namespace": ns, "name": name, "uid": uid}}})).await;
    let merge = "application/merge-patch+json";
    send(client, http::Method::PATCH, &format!("{SNAP}/volumesnapshotcontents/{content}/status"), merge,
        &json!({"status": {"snapshotHandle": "snap-123", "readyToUse": true, "restoreSize": 1073741824i64,
                "creationTime": 1700000000000000000i64}})).await;
    send(
        client,
        http::Method::PATCH,
        &format!("{SNAP}/namespaces/{ns}/volumesnapshots/{name}/status"),
        merge,
        &json!({"status": {"boundVolumeSnapshotContentName": content, "readyToUse": true,
                "restoreSize": "1Gi", "creationTime": "2026-01-01T00:00:00Z"}}),
    )
    .await;
    content
}

async fn wait_for_snapshots(
    client: &kube::Client,
    ns: &str,
    backup: &str,
    count: usize,
) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let list = get(client, &format!("{SNAP}/namespaces/{ns}/volumesnapshots"))
            .await
            .expect("list snapshots");
        let items: Vec<Value> = list["items"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter(|v| v["metadata"]["labels"][backup_common::LABEL_BACKUP_NAME] == backup)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        if items.len() >= count {
            return items;
        }
        assert!(
            Instant::now() < deadline,
            "the backup created no VolumeSnapshot"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn volume_workload(ctx: &Ctx, class: &str) -> e2e::cluster::TempNamespace {
    install_snapshot_crds(ctx).await;
    let client = ctx.client().await;
    post(&client, &format!("{SNAP}/volumesnapshotclasses"), json!({
        "apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshotClass",
        "metadata": {"name": class, "annotations": {"snapshot.storage.kubernetes.io/is-default-class": "true"}},
        "driver": DRIVER, "deletionPolicy": "Delete"})).await;
    let ns = ctx
        .cluster
        .temp_namespace("bkvol")
        .await
        .expect("namespace");
    for (pvc, driver) in [("data", DRIVER), ("scratch", "other.csi.example.com")] {
        let pv = format!("{}-{pvc}", ns.name());
        post(
            &client,
            "/api/v1/persistentvolumes",
            json!({
            "metadata": {"name": pv},
            "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                "csi": {"driver": driver, "volumeHandle": format!("vol-{pvc}")},
                "claimRef": {"namespace": ns.name(), "name": pvc}}}),
        )
        .await;
        post(&client, &format!("/api/v1/namespaces/{}/persistentvolumeclaims", ns.name()), json!({
            "metadata": {"name": pvc},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}},
                "volumeName": pv}})).await;
    }
    ns
}

/// What [`volume_workload`] made outside its namespace (which goes with its
/// guard): the snapshot class and the PersistentVolumes.
async fn remove_volume_workload(
    client: &kube::Client,
    ns: &e2e::cluster::TempNamespace,
    class: &str,
) {
    delete(client, &format!("{SNAP}/volumesnapshotclasses/{class}")).await;
    for pvc in ["data", "scratch"] {
        delete(
            client,
            &format!("/api/v1/persistentvolumes/{}-{pvc}", ns.name()),
        )
        .await;
    }
}

/// Start backup `name` of `ns` with `--include-all-disks` and return once it
/// waits for its VolumeSnapshot: no snapshot controller answers, so it
/// stays there (for up to ten minutes) until the test stops it.
async fn backup_waiting_for_a_snapshot(
    ctx: &Ctx,
    client: &kube::Client,
    ns: &e2e::cluster::TempNamespace,
    name: &str,
) -> std::process::Child {
    let child = ctx
        .command(&[
            "create",
            name,
            "--include-namespaces",
            ns.name(),
            "--include-all-disks",
            "--snapshot-timeout",
            "10m",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the backup");
    wait_for_snapshots(client, ns.name(), name, 1).await;
    child
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn include_all_disks_snapshots_retains_and_deletes() {
    let ctx = Ctx::new(Backend::local()).await;
    let class = format!("csi-hostpath-{}", random(5));
    let ns = volume_workload(&ctx, &class).await;
    let client = ctx.client().await;

    let child = ctx
        .command(&[
            "create",
            "snap-1",
            "--include-namespaces",
            ns.name(),
            "--include-all-disks",
            "--snapshot-timeout",
            "60s",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the backup");
    let snapshots = wait_for_snapshots(&client, ns.name(), "snap-1", 1).await;
    assert_eq!(
        snapshots.len(),
        1,
        "only the PVC whose driver has a class is snapshotted"
    );
    let vs = &snapshots[0];
    assert_eq!(vs["spec"]["source"]["persistentVolumeClaimName"], "data");
    assert_eq!(vs["spec"]["volumeSnapshotClassName"], class.as_str());
    let content = play_snapshot_controller(&client, ns.name(), vs, &class).await;
    let out = child.wait_with_output().expect("backup finished");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The content is retained now, and recorded.
    let c = get(&client, &format!("{SNAP}/volumesnapshotcontents/{content}"))
        .await
        .expect("content");
    assert_eq!(c["spec"]["deletionPolicy"], "Retain");
    let folder = ctx.backend.folder().expect("local backend");
    let volumes: Value = serde_json::from_slice(
        &std::fs::read(folder.join("backups/snap-1/volumes.json")).expect("volumes.json"),
    )
    .expect("json");
    let records = volumes["volumes"].as_array().expect("records");
    let data = records
        .iter()
        .find(|r| r["pvc"] == "data")
        .expect("data recorded");
    assert_eq!(data["snapshotHandle"], "snap-123");
    assert_eq!(data["readyToUse"], true);
    assert_eq!(data["volumeSnapshotContentName"], content.as_str());
    assert_eq!(
        data["volumeSnapshotContent"]["spec"]["deletionPolicy"],
        "Retain"
    );
    let scratch = records
        .iter()
        .find(|r| r["pvc"] == "scratch")
        .expect("scratch recorded");
    assert!(
        scratch["error"]
            .as_str()
            .is_some_and(|e| e.contains("no VolumeSnapshotClass"))
    );
    let m = ctx.json(&["describe", "snap-1", "-o", "json"]);
    assert_eq!(
        m["phase"], "Completed",
        "a PVC without a class is a warning, not a failure"
    );
    assert_eq!(m["totals"]["volumeSnapshotsCompleted"], 1);
    assert!(m["warnings"].to_string().contains("other.csi.example.com"));
    let text = ctx.ok(&["describe", "snap-1"]);
    assert!(text.contains("1 of 1 ready"), "{text}");
    let listed = list_names(&ctx);
    assert_eq!(listed["snap-1"]["allDisks"], true);

    // Deleting the backup deletes the snapshots it owns.
    ctx.ok(&["delete", "snap-1"]);
    let gone = get(&client, &format!("{SNAP}/volumesnapshotcontents/{content}")).await;
    assert!(
        matches!(gone, Err(kube::Error::Api(s)) if s.code == 404),
        "content deleted"
    );
    let vs_name = vs["metadata"]["name"].as_str().expect("name");
    let gone = get(
        &client,
        &format!("{SNAP}/namespaces/{}/volumesnapshots/{vs_name}", ns.name()),
    )
    .await;
    assert!(
        matches!(gone, Err(kube::Error::Api(s)) if s.code == 404),
        "snapshot deleted"
    );
    assert!(!folder.join("backups/snap-1").exists());

    remove_volume_workload(&client, &ns, &class).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_marks_the_backup_failed() {
    let ctx = Ctx::new(Backend::local()).await;
    let class = format!("csi-hostpath-{}", random(5));
    let ns = volume_workload(&ctx, &class).await;
    let client = ctx.client().await;
    // Interrupted while it waits for readyToUse.
    let child = backup_waiting_for_a_snapshot(&ctx, &client, &ns, "cut-1").await;
    let listed = list_names(&ctx);
    assert_eq!(listed["cut-1"]["status"], "InProgress");
    assert_eq!(listed["cut-1"]["restorable"], false);
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let out = child.wait_with_output().expect("wait");
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let m = ctx.json(&["describe", "cut-1", "-o", "json"]);
    assert_eq!(m["phase"], "Failed");
    assert!(
        m["failureReason"]
            .as_str()
            .is_some_and(|r| r.contains("interrupted"))
    );
    assert_eq!(list_names(&ctx)["cut-1"]["restorable"], false);
    let err = ctx.fails(&["logs", "cut-1"], 1);
    assert!(err.contains("Failed"), "{err}");
    let err = ctx.fails(&["download", "cut-1", "-o", "/dev/null"], 1);
    assert!(err.contains("no complete archive"), "{err}");
    let left = get(
        &client,
        &format!("{SNAP}/namespaces/{}/volumesnapshots", ns.name()),
    )
    .await
    .expect("list");
    assert_eq!(
        left["items"].as_array().map(Vec::len),
        Some(0),
        "the failed backup's VolumeSnapshot is removed: {left}"
    );

    remove_volume_workload(&client, &ns, &class).await;
}

/// A backup whose process is killed outright cannot mark itself Failed: it
/// reads as InProgress while its heartbeat is fresh, and as Failed
/// ("abandoned") once the manifest has gone unwritten for ten minutes. The
/// manifest's age is set on the folder's file, as time passing would.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_backup_reads_as_failed_once_its_heartbeat_stops() {
    let ctx = Ctx::new(Backend::local()).await;
    let class = format!("csi-hostpath-{}", random(5));
    let ns = volume_workload(&ctx, &class).await;
    let client = ctx.client().await;
    let mut child = backup_waiting_for_a_snapshot(&ctx, &client, &ns, "killed-1").await;
    child.kill().expect("SIGKILL the backup");
    child.wait().expect("reap the backup");

    let listed = list_names(&ctx);
    assert_eq!(listed["killed-1"]["status"], "InProgress");
    assert_eq!(listed["killed-1"]["restorable"], false);

    let manifest = ctx
        .backend
        .folder()
        .expect("a local folder")
        .join("backups/killed-1/backup.json");
    let eleven_minutes_ago = std::time::SystemTime::now() - Duration::from_secs(11 * 60);
    std::fs::File::options()
        .write(true)
        .open(&manifest)
        .and_then(|f| f.set_modified(eleven_minutes_ago))
        .expect("age the manifest");

    let listed = list_names(&ctx);
    assert_eq!(listed["killed-1"]["status"], "Failed");
    assert_eq!(listed["killed-1"]["restorable"], false);
    let m = ctx.json(&["describe", "killed-1", "-o", "json"]);
    assert_eq!(m["phase"], "Failed");
    let reason = m["failureReason"].as_str().unwrap_or_default();
    assert!(reason.starts_with("abandoned:"), "{reason}");
    let text = ctx.ok(&["describe", "killed-1"]);
    assert!(text.contains("abandoned"), "{text}");
    let err = ctx.fails(&["restore", "create", "killed-1"], 1);
    assert!(err.contains("is Failed"), "{err}");
    // The file itself still says InProgress: reading never rewrites it.
    let stored: Value =
        serde_json::from_slice(&std::fs::read(&manifest).expect("read")).expect("json");
    assert_eq!(stored["phase"], "InProgress");

    ctx.ok(&["delete", "killed-1"]);
    assert!(!list_names(&ctx).contains_key("killed-1"));
    remove_volume_workload(&client, &ns, &class).await;
}

/// A Namespace labelled to be excluded is left out like any other labelled
/// object (and logged as skipped); what it holds is still backed up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_labelled_exclude_from_backup_is_skipped() {
    let ctx = Ctx::new(Backend::local()).await;
    let client = ctx.client().await;
    let ns = ctx
        .cluster
        .temp_namespace("bkexcl")
        .await
        .expect("namespace");
    send(
        &client,
        http::Method::PATCH,
        &format!("/api/v1/namespaces/{}", ns.name()),
        "application/merge-patch+json",
        &json!({"metadata": {"labels": {backup_common::LABEL_EXCLUDE_FROM_BACKUP: "true"}}}),
    )
    .await;
    post(
        &client,
        &format!("/api/v1/namespaces/{}/configmaps", ns.name()),
        json!({"metadata": {"name": "kept"}, "data": {"k": "v"}}),
    )
    .await;
    let name = format!("excl-{}", random(5));
    ctx.ok(&["create", &name, "--include-namespaces", ns.name()]);
    let archive = ctx.archive(&name);
    assert!(
        !archive.has(&format!("resources/namespaces/cluster/{}.json", ns.name())),
        "the labelled Namespace object is not backed up"
    );
    assert!(archive.has(&format!(
        "resources/configmaps/namespaces/{}/kept.json",
        ns.name()
    )));
    let logs = ctx.ok(&["logs", &name]);
    assert!(
        logs.contains(&format!("skipped     namespaces {}", ns.name())),
        "{logs}"
    );
}

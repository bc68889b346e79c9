//! `bench-backup`: how fast `kubectl backup create` dumps a cluster, side by
//! side with the naive way (`kubectl get <each listable resource> -A -o json`,
//! one after the other) and the floor (a raw concurrent LIST of everything,
//! paginated, parsed, nothing written).
//!
//! Seeds N objects (ConfigMaps, Secrets of a few KiB, Deployments, Services
//! and custom resources) across M namespaces into the harness cluster (the
//! emulator, or `TEST_KUBECONFIG` / `--kubeconfig`), then prints one JSON line
//! per contender: objects, wall seconds, objects/s, peak RSS, archive bytes.
//!
//! ```sh
//! cargo build --release -p kubectl-backup -p e2e
//! target/release/bench-backup --objects 20000 --namespaces 50
//! ```
//! Figures only; nothing is asserted.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Parser;
use futures::{StreamExt, TryStreamExt};
use serde_json::{Value, json};

/// Benchmark `kubectl backup create` against the harness cluster.
#[derive(Debug, Parser)]
struct Args {
    /// Objects to seed.
    #[arg(long, default_value_t = 20_000)]
    objects: usize,
    /// Namespaces to spread them over.
    #[arg(long, default_value_t = 50)]
    namespaces: usize,
    /// Use this cluster instead of starting an emulator (or $TEST_KUBECONFIG).
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Skip the naive `kubectl get` contender (slow on big N).
    #[arg(long)]
    skip_kubectl: bool,
    /// Do not seed (the cluster already holds the objects).
    #[arg(long)]
    no_seed: bool,
    /// The plugin binary (default: next to this one).
    #[arg(long)]
    plugin: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    e2e::cluster::install_crypto_provider();
    let _cluster;
    let kubeconfig: PathBuf = match &args.kubeconfig {
        Some(k) => k.clone(),
        None => {
            let c = e2e::cluster::TestCluster::start().await?;
            let k = c.kubeconfig().to_path_buf();
            _cluster = c;
            k
        }
    };
    let client = e2e::cluster::client_for(&kubeconfig).await?;
    if !args.no_seed {
        let started = Instant::now();
        let seeded = seed(&client, args.objects, args.namespaces).await?;
        eprintln!(
            "seeded {seeded} objects in {:.1}s",
            started.elapsed().as_secs_f64()
        );
    }

    // The floor: every listable type, paginated, concurrently, nothing written.
    let (floor_objects, floor_wall) = raw_list_everything(&client).await?;
    print_line(json!({
        "contender": "raw-concurrent-list (floor)",
        "objects": floor_objects,
        "wall_s": round(floor_wall),
        "objects_per_s": round(floor_objects as f64 / floor_wall),
        "peak_rss_mib": Value::Null,
        "archive_bytes": Value::Null,
    }));

    // kubectl-backup.
    let plugin = args
        .plugin
        .clone()
        .unwrap_or_else(|| e2e::bin_path("kubectl-backup"));
    let dir = tempfile::tempdir()?;
    let location = format!("file://{}", dir.path().display());
    let name = format!("bench-{}", chrono::Utc::now().format("%Y%m%d%H%M%S"));
    let mut cmd = Command::new(&plugin);
    cmd.arg("--kubeconfig")
        .arg(&kubeconfig)
        .args(["create", &name, "--location", &location, "-o", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let (out, wall, rss) = run_measured(cmd)?;
    let manifest: Value =
        serde_json::from_slice(&out).context("plugin output is not the manifest")?;
    let items = manifest["totals"]["items"].as_u64().unwrap_or(0);
    let archive = manifest["parts"]["resources.tar.zst"]["size"].as_u64();
    print_line(json!({
        "contender": "kubectl-backup create",
        "objects": items,
        "wall_s": round(wall),
        "objects_per_s": round(items as f64 / wall),
        "peak_rss_mib": rss.map(|kib| round(kib as f64 / 1024.0)),
        "archive_bytes": archive,
        "phase": manifest["phase"],
        "vs_floor": round(wall / floor_wall),
    }));

    if !args.skip_kubectl {
        let (objects, wall, rss, bytes) = naive_kubectl(&client, &kubeconfig).await?;
        print_line(json!({
            "contender": "kubectl get <each> -A -o json",
            "objects": objects,
            "wall_s": round(wall),
            "objects_per_s": round(objects as f64 / wall),
            "peak_rss_mib": rss.map(|kib| round(kib as f64 / 1024.0)),
            "archive_bytes": bytes,
        }));
    }
    Ok(())
}

fn round(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn print_line(v: Value) {
    println!("{v}");
}

/// Run a command, polling its peak RSS (VmHWM, KiB) from /proc until it exits.
fn run_measured(mut cmd: Command) -> anyhow::Result<(Vec<u8>, f64, Option<u64>)> {
    let started = Instant::now();
    let mut child = cmd.spawn().context("cannot start the command")?;
    let pid = child.id();
    let mut stdout = child.stdout.take();
    let reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(s) = stdout.as_mut() {
            let _ = std::io::Read::read_to_end(s, &mut buf);
        }
        buf
    });
    let mut peak: Option<u64> = None;
    let status = loop {
        if let Some(kib) = vm_hwm(pid) {
            peak = Some(peak.map_or(kib, |p| p.max(kib)));
        }
        if let Some(status) = child.try_wait()? {
            break status;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let wall = started.elapsed().as_secs_f64();
    let out = reader.join().unwrap_or_default();
    if !status.success() {
        bail!("command failed with {status}");
    }
    Ok((out, wall, peak))
}

fn vm_hwm(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

// === seeding ===

const CRD_GROUP: &str = "bench.kubectl-backup.dev";

async fn seed(client: &kube::Client, objects: usize, namespaces: usize) -> anyhow::Result<u64> {
    let crd = json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("gadgets.{CRD_GROUP}")},
        "spec": {
            "group": CRD_GROUP,
            "scope": "Namespaced",
            "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget", "listKind": "GadgetList"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]
        }
    });
    post(
        client,
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
        &crd,
    )
    .await?;
    e2e::cluster::wait_crd_established(client, &format!("gadgets.{CRD_GROUP}")).await?;
    let ns_names: Vec<String> = (0..namespaces).map(|i| format!("bench-{i:03}")).collect();
    for ns in &ns_names {
        post(
            client,
            "/api/v1/namespaces",
            &json!({"metadata": {"name": ns}}),
        )
        .await?;
    }
    let payload: String = (0..3 * 1024)
        .map(|i| char::from(b'a' + (i * 7 % 26) as u8))
        .collect();
    let done = Arc::new(AtomicU64::new(0));
    futures::stream::iter(0..objects)
        .map(|i| {
            let ns = &ns_names[i % ns_names.len()];
            let (path, body) = object(i, ns, &payload);
            let done = done.clone();
            async move {
                post(client, &path, &body).await?;
                done.fetch_add(1, Ordering::Relaxed);
                anyhow::Ok(())
            }
        })
        .buffer_unordered(16)
        .try_collect::<()>()
        .await?;
    Ok(done.load(Ordering::Relaxed))
}

fn object(i: usize, ns: &str, payload: &str) -> (String, Value) {
    let name = format!("obj-{i:06}");
    let labels = json!({"app": format!("app-{}", i % 20), "bench": "true"});
    match i % 5 {
        0 => (
            format!("/api/v1/namespaces/{ns}/configmaps"),
            json!({"metadata": {"name": name, "labels": labels}, "data": {"config.yaml": &payload[..1024]}}),
        ),
        1 => (
            format!("/api/v1/namespaces/{ns}/secrets"),
            json!({"metadata": {"name": name, "labels": labels}, "type": "Opaque",
                   "stringData": {"key": payload}}),
        ),
        2 => (
            format!("/apis/apps/v1/namespaces/{ns}/deployments"),
            json!({"metadata": {"name": name, "labels": labels}, "spec": {
                "replicas": 1, "selector": {"matchLabels": {"app": name}},
                "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [
                    {"name": "app", "image": "registry.example/app:1.0", "ports": [{"containerPort": 8080}],
                     "env": [{"name": "MODE", "value": "bench"}]}]}}}}),
        ),
        3 => (
            format!("/api/v1/namespaces/{ns}/services"),
            json!({"metadata": {"name": name, "labels": labels}, "spec": {
                "selector": {"app": name}, "ports": [{"port": 80, "targetPort": 8080}]}}),
        ),
        _ => (
            format!("/apis/{CRD_GROUP}/v1/namespaces/{ns}/gadgets"),
            json!({"apiVersion": format!("{CRD_GROUP}/v1"), "kind": "Gadget",
                   "metadata": {"name": name, "labels": labels}, "spec": {"size": i, "color": "blue"}}),
        ),
    }
}

async fn post(client: &kube::Client, path: &str, body: &Value) -> anyhow::Result<()> {
    let req = http::Request::post(path)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(serde_json::to_vec(body)?)?;
    match client.request::<Value>(req).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        Err(e) => Err(e).with_context(|| format!("POST {path}")),
    }
}

// === the floor and the naive way ===

/// `(path, resource.group)` of every listable type in its preferred version.
async fn listable(client: &kube::Client) -> anyhow::Result<Vec<(String, String)>> {
    let discovery = kube::discovery::Discovery::new(client.clone())
        .run()
        .await?;
    let mut out = Vec::new();
    for group in discovery.groups() {
        for (ar, caps) in group.recommended_resources() {
            if !caps.supports_operation(kube::discovery::verbs::LIST) {
                continue;
            }
            let path = if ar.group.is_empty() {
                format!("/api/{}/{}", ar.version, ar.plural)
            } else {
                format!("/apis/{}/{}/{}", ar.group, ar.version, ar.plural)
            };
            let name = if ar.group.is_empty() {
                ar.plural.clone()
            } else {
                format!("{}.{}", ar.plural, ar.group)
            };
            out.push((path, name));
        }
    }
    Ok(out)
}

#[derive(serde::Deserialize)]
struct Page {
    #[serde(default)]
    metadata: PageMeta,
    #[serde(default)]
    items: Vec<serde::de::IgnoredAny>,
}

#[derive(serde::Deserialize, Default)]
struct PageMeta {
    #[serde(rename = "continue", default)]
    continue_token: Option<String>,
}

async fn raw_list_everything(client: &kube::Client) -> anyhow::Result<(u64, f64)> {
    let types = listable(client).await?;
    let started = Instant::now();
    let counts: Vec<u64> = futures::stream::iter(types)
        .map(|(path, _)| async move {
            let mut n = 0u64;
            let mut token: Option<String> = None;
            loop {
                let mut url = format!("{path}?limit=500");
                if let Some(t) = &token {
                    url.push_str(&format!("&continue={}", urlencode(t)));
                }
                let req = http::Request::get(&url).body(Vec::new())?;
                let page: Page = match client.request(req).await {
                    Ok(p) => p,
                    Err(kube::Error::Api(s)) if s.code == 404 || s.code == 405 => {
                        return anyhow::Ok(n);
                    }
                    Err(e) => return Err(e).with_context(|| format!("GET {url}")),
                };
                n += page.items.len() as u64;
                token = page.metadata.continue_token.filter(|t| !t.is_empty());
                if token.is_none() {
                    return Ok(n);
                }
            }
        })
        .buffer_unordered(8)
        .try_collect()
        .await?;
    Ok((counts.iter().sum(), started.elapsed().as_secs_f64()))
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

async fn naive_kubectl(
    client: &kube::Client,
    kubeconfig: &Path,
) -> anyhow::Result<(u64, f64, Option<u64>, u64)> {
    let types = listable(client).await?;
    let started = Instant::now();
    let mut objects = 0u64;
    let mut peak: Option<u64> = None;
    let mut bytes = 0u64;
    for (_, name) in types {
        let mut cmd = Command::new("kubectl");
        cmd.arg("--kubeconfig")
            .arg(kubeconfig)
            .args(["get", &name, "-A", "-o", "json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        match run_measured(cmd) {
            Ok((out, _, rss)) => {
                bytes += out.len() as u64;
                if let Ok(v) = serde_json::from_slice::<Value>(&out) {
                    objects += v["items"].as_array().map_or(0, |a| a.len() as u64);
                }
                if let Some(r) = rss {
                    peak = Some(peak.map_or(r, |p| p.max(r)));
                }
            }
            Err(e) => eprintln!("kubectl get {name}: {e}"),
        }
    }
    Ok((objects, started.elapsed().as_secs_f64(), peak, bytes))
}

//! Shared pieces of the benchmark programs (`bench-backup`, `bench-restore`):
//! seeding a cluster with N realistic objects, and running a command while
//! sampling its peak RSS. Benchmarks print figures; nothing here asserts
//! on time.

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use futures::{StreamExt, TryStreamExt};
use serde_json::{Value, json};

pub fn round(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

pub fn print_line(v: Value) {
    println!("{v}");
}

/// Run a command, polling its peak RSS (VmHWM, KiB) from /proc until it
/// exits; exit codes in `accepted` (besides 0) count as success.
pub fn run_measured(
    mut cmd: Command,
    accepted: &[i32],
) -> anyhow::Result<(Vec<u8>, f64, Option<u64>)> {
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
    if !status.success() && !status.code().is_some_and(|c| accepted.contains(&c)) {
        bail!("command failed with {status}");
    }
    Ok((out, wall, peak))
}

/// Peak resident set size (VmHWM, KiB) of a live process.
pub fn vm_hwm(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// API group of the benchmark's custom resources.
pub const CRD_GROUP: &str = "bench.kubectl-backup.dev";

/// Create `objects` objects across `namespaces` namespaces (ConfigMaps,
/// Secrets of a few KiB, Deployments, Services, custom resources); returns
/// how many were created.
pub async fn seed(client: &kube::Client, objects: usize, namespaces: usize) -> anyhow::Result<u64> {
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
    crate::cluster::wait_crd_established(client, &format!("gadgets.{CRD_GROUP}")).await?;
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

/// The `i`-th seeded object: its collection path and body.
pub fn object(i: usize, ns: &str, payload: &str) -> (String, Value) {
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

/// POST `body` to `path`.
pub async fn post(client: &kube::Client, path: &str, body: &Value) -> anyhow::Result<()> {
    let req = http::Request::post(path)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(serde_json::to_vec(body)?)?;
    match client.request::<Value>(req).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        Err(e) => Err(e).with_context(|| format!("POST {path}")),
    }
}

// === listing everything (the floor, and waiting for a still cluster) ===

/// `(path, resource.group)` of every listable type in its preferred version.
pub async fn listable(client: &kube::Client) -> anyhow::Result<Vec<(String, String)>> {
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

/// Objects listed: discovery, then every listable type, 8 at a time, pages of 500.
pub async fn raw_list_everything(client: &kube::Client) -> anyhow::Result<u64> {
    let types = listable(client).await?;
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
    Ok(counts.iter().sum())
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Wait until the cluster holds still: the controllers keep creating
/// ReplicaSets and Pods for a while after a seeding, and every contender
/// must see the same objects.
pub async fn wait_until_still(client: &kube::Client) -> anyhow::Result<u64> {
    let mut last = raw_list_everything(client).await?;
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = raw_list_everything(client).await?;
        if now == last {
            return Ok(now);
        }
        last = now;
    }
}

//! `bench-restore`: how fast `kubectl backup restore create` puts a backup of
//! N objects back into an empty cluster, side by side with the naive peer:
//! `kubectl create -f` of the same objects.
//!
//! Seeds the same object mix as `bench-backup` (ConfigMaps, Secrets of a few
//! KiB, Deployments, Services, custom resources) into a source emulator, backs
//! it up with `kubectl backup create`, then restores into a fresh, empty
//! emulator, and `kubectl create -f`s the same (cleaned) objects into another
//! fresh one. Prints one JSON line per contender: objects, wall seconds,
//! objects/s, peak RSS.
//!
//! ```sh
//! cargo build --release -p kubectl-backup -p e2e
//! target/release/bench-restore --objects 20000 --namespaces 50
//! ```
//! Figures only; nothing is asserted.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::Context as _;
use clap::Parser;
use serde_json::{Value, json};

use e2e::bench::{CRD_GROUP, print_line, round, run_measured, seed, wait_until_still};

/// Benchmark `kubectl backup restore create` against harness clusters.
#[derive(Debug, Parser)]
struct Args {
    /// Objects to seed (and restore).
    #[arg(long, default_value_t = 20_000)]
    objects: usize,
    /// Namespaces to spread them over.
    #[arg(long, default_value_t = 50)]
    namespaces: usize,
    /// Skip the naive `kubectl create -f` contender (slow on big N).
    #[arg(long)]
    skip_kubectl: bool,
    /// Items the restore applies at once within a tier.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// The plugin binary (default: next to this one).
    #[arg(long)]
    plugin: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    e2e::cluster::install_crypto_provider();
    let plugin = args
        .plugin
        .clone()
        .unwrap_or_else(|| e2e::bin_path("kubectl-backup"));

    // --- the backup to restore
    let source = e2e::cluster::TestCluster::start_emulator()?;
    let client = source.client().await?;
    let started = Instant::now();
    seed(&client, args.objects, args.namespaces).await?;
    eprintln!(
        "seeded {} objects in {:.1}s",
        args.objects,
        started.elapsed().as_secs_f64()
    );
    // Back up a cluster that holds still, so the backup is a consistent picture.
    wait_until_still(&client).await?;
    let dir = tempfile::tempdir()?;
    let location = format!("file://{}", dir.path().join("store").display());
    let mut cmd = Command::new(&plugin);
    cmd.arg("--kubeconfig")
        .arg(source.kubeconfig())
        .args([
            "create",
            "bench",
            "--location",
            &location,
            "--include-namespaces",
            "bench-*",
            "-o",
            "json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let (out, wall, _) = run_measured(cmd, &[3])?;
    let manifest: Value =
        serde_json::from_slice(&out).context("backup output is not a manifest")?;
    eprintln!(
        "backup: {} items, {} archive bytes, {:.1}s",
        manifest["totals"]["items"], manifest["parts"]["resources.tar.zst"]["size"], wall
    );

    // The naive peer's input is dumped now, and the source emulator stopped, so
    // that its controllers do not take CPU from either timed contender.
    let files = tempfile::tempdir()?;
    let naive_objects = if args.skip_kubectl {
        0
    } else {
        dump_for_kubectl(&client, files.path()).await?
    };
    drop(client);
    drop(source);

    // --- kubectl-backup restore into an empty cluster
    let target = e2e::cluster::TestCluster::start_emulator()?;
    let mut cmd = Command::new(&plugin);
    cmd.arg("--kubeconfig")
        .arg(target.kubeconfig())
        .args([
            "restore",
            "create",
            "bench",
            "--location",
            &location,
            "-o",
            "json",
        ])
        .args(["--concurrency", &args.concurrency.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let (out, restore_wall, rss) = run_measured(cmd, &[3])?;
    let record: Value = serde_json::from_slice(&out).context("restore output is not a record")?;
    let created = record["counts"]["created"].as_u64().unwrap_or(0);
    print_line(json!({
        "contender": "kubectl-backup restore create",
        "objects": created,
        "items_total": record["counts"]["total"],
        "failed": record["counts"]["failed"],
        "wall_s": round(restore_wall),
        "objects_per_s": round(created as f64 / restore_wall),
        "peak_rss_mib": rss.map(|kib| round(kib as f64 / 1024.0)),
        "phase": record["phase"],
    }));
    drop(target);

    // --- the naive peer: kubectl create -f of the same objects
    if !args.skip_kubectl {
        let objects = naive_objects;
        let naive = e2e::cluster::TestCluster::start_emulator()?;
        let started = Instant::now();
        let mut peak: Option<u64> = None;
        for (step, file) in ["0-crds-and-namespaces.json", "1-objects.json"]
            .iter()
            .enumerate()
        {
            let mut cmd = Command::new("kubectl");
            cmd.arg("--kubeconfig")
                .arg(naive.kubeconfig())
                .args(["create", "-f"])
                .arg(files.path().join(file))
                .stdout(Stdio::null())
                .stderr(Stdio::inherit());
            let (_, _, rss) = run_measured(cmd, &[3])?;
            peak = peak.max(rss);
            if step == 0 {
                naive
                    .wait_crd_established(&format!("gadgets.{CRD_GROUP}"))
                    .await?;
            }
        }
        let wall = started.elapsed().as_secs_f64();
        print_line(json!({
            "contender": "kubectl create -f",
            "objects": objects,
            "wall_s": round(wall),
            "objects_per_s": round(objects as f64 / wall),
            "peak_rss_mib": peak.map(|kib| round(kib as f64 / 1024.0)),
            "restore_speedup": round(wall / restore_wall),
        }));
    }
    Ok(())
}

/// Write the seeded objects as two kubectl `List` files (CRD + namespaces,
/// then everything else), cleaned as a careful user would for `kubectl create
/// -f`: no server-set metadata, no status, no allocated cluster IPs.
async fn dump_for_kubectl(client: &kube::Client, dir: &Path) -> anyhow::Result<u64> {
    let mut first = vec![
        get_json(
            client,
            &format!("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/gadgets.{CRD_GROUP}"),
        )
        .await?,
    ];
    let namespaces = get_json(client, "/api/v1/namespaces").await?;
    for ns in namespaces["items"].as_array().into_iter().flatten() {
        if ns["metadata"]["name"]
            .as_str()
            .is_some_and(|n| n.starts_with("bench-"))
        {
            let mut ns = ns.clone();
            ns["apiVersion"] = json!("v1");
            ns["kind"] = json!("Namespace");
            first.push(ns);
        }
    }
    let mut rest = Vec::new();
    for (path, api_version, kind) in [
        ("/api/v1/configmaps", "v1", "ConfigMap"),
        ("/api/v1/secrets", "v1", "Secret"),
        ("/apis/apps/v1/deployments", "apps/v1", "Deployment"),
        ("/api/v1/services", "v1", "Service"),
        (
            &format!("/apis/{CRD_GROUP}/v1/gadgets") as &str,
            &format!("{CRD_GROUP}/v1") as &str,
            "Gadget",
        ),
    ] {
        let list = get_json(client, &format!("{path}?labelSelector=bench%3Dtrue")).await?;
        for item in list["items"].as_array().into_iter().flatten() {
            let mut item = item.clone();
            item["apiVersion"] = json!(api_version);
            item["kind"] = json!(kind);
            rest.push(item);
        }
    }
    let objects = (first.len() + rest.len()) as u64;
    for (name, items) in [
        ("0-crds-and-namespaces.json", first),
        ("1-objects.json", rest),
    ] {
        let items: Vec<Value> = items.into_iter().map(clean).collect();
        let list = json!({"apiVersion": "v1", "kind": "List", "items": items});
        std::fs::write(dir.join(name), serde_json::to_vec(&list)?)?;
    }
    Ok(objects)
}

fn clean(mut obj: Value) -> Value {
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        for key in [
            "uid",
            "resourceVersion",
            "generation",
            "creationTimestamp",
            "managedFields",
        ] {
            meta.remove(key);
        }
    }
    if let Some(root) = obj.as_object_mut() {
        root.remove("status");
    }
    if let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) {
        spec.remove("clusterIP");
        spec.remove("clusterIPs");
    }
    obj
}

async fn get_json(client: &kube::Client, path: &str) -> anyhow::Result<Value> {
    let req = http::Request::get(path).body(Vec::new())?;
    client
        .request::<Value>(req)
        .await
        .with_context(|| format!("GET {path}"))
}

// === seeding: the object mix of bench-backup ===

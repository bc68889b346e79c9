//! `bench-backup`: how fast `kubectl backup create` dumps a cluster, side by
//! side with the naive way (`kubectl get <each listable resource> -A -o json`,
//! one after the other) and the floor: a process that does only what no
//! backup can skip (start, connect, discover, LIST every listable type
//! concurrently and paginated, read the pages) and writes nothing. It is
//! this same program run with `--floor`, so it pays the same process start,
//! TLS handshake and discovery as the plugin does.
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
use std::time::Instant;

use anyhow::Context as _;
use clap::Parser;
use serde_json::{Value, json};

use e2e::bench::{
    listable, print_line, raw_list_everything, round, run_measured, seed, wait_until_still,
};

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
    /// Be the floor: list everything in the cluster of `--kubeconfig`, print
    /// `{"objects": N}` and exit (used by the benchmark itself).
    #[arg(long, hide = true, requires = "kubeconfig")]
    floor: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    e2e::cluster::install_crypto_provider();
    if args.floor
        && let Some(kubeconfig) = &args.kubeconfig
    {
        let client = e2e::cluster::client_for(kubeconfig).await?;
        let objects = raw_list_everything(&client).await?;
        println!("{}", json!({ "objects": objects }));
        return Ok(());
    }
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

    // Controllers keep creating ReplicaSets and Pods for a while after the
    // seeding: wait until the cluster holds still, so every contender sees
    // the same objects.
    wait_until_still(&client).await?;

    // The floor: a process that discovers and lists everything, writes nothing.
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.arg("--floor")
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let (out, floor_wall, rss) = run_measured(cmd, &[])?;
    let floor: Value = serde_json::from_slice(&out).context("the floor printed no count")?;
    let floor_objects = floor["objects"].as_u64().unwrap_or(0);
    print_line(json!({
        "contender": "raw-concurrent-list (floor)",
        "objects": floor_objects,
        "wall_s": round(floor_wall),
        "objects_per_s": round(floor_objects as f64 / floor_wall),
        "peak_rss_mib": rss.map(|kib| round(kib as f64 / 1024.0)),
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
    let (out, wall, rss) = run_measured(cmd, &[])?;
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

// === the floor and the naive way ===

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
        match run_measured(cmd, &[]) {
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

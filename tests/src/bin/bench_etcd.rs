//! `bench-etcd`: fill a real etcd to about `--size-mib` MiB, then print one
//! JSON line per run for `kubectl backup etcd snapshot` to a local folder and
//! to moto S3, side by side with `etcdctl snapshot save` to a local file:
//! throughput (MiB of database per second) and peak RSS. Figures only; no
//! assertions. Build both binaries in release first:
//!
//! ```text
//! cargo build --release -p kubectl-backup -p e2e --bin bench-etcd
//! target/release/bench-etcd --size-mib 200 --runs 3
//! ```
//!
//! Peak RSS comes from GNU time (`/usr/bin/time -f %M`), i.e. the kernel's
//! maxrss of the measured process.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use clap::Parser;
use e2e::servers::S3Server;
use e2e::servers::etcd::{EtcdOptions, EtcdServer};
use futures::StreamExt;
use serde_json::json;

/// Command-line arguments.
#[derive(Debug, Parser)]
struct Args {
    /// Approximate database size to fill etcd to, MiB.
    #[arg(long, default_value_t = 200)]
    size_mib: usize,
    /// Runs of each contender.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Value size of each key, KiB.
    #[arg(long, default_value_t = 64)]
    value_kib: usize,
    /// Extra argument for `kubectl backup etcd snapshot` (repeatable), e.g.
    /// `--plugin-arg=--level=1`.
    #[arg(long = "plugin-arg", value_name = "ARG", allow_hyphen_values = true)]
    plugin_args: Vec<String>,
}

/// A value that compresses about as well as Kubernetes objects do (JSON-ish
/// text with random identifiers), reproducible from `i`.
fn value(i: usize, len: usize) -> Vec<u8> {
    let mut x = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut out = Vec::with_capacity(len + 128);
    while out.len() < len {
        let line = format!(
            "{{\"metadata\":{{\"name\":\"pod-{:08x}\",\"uid\":\"{:016x}-{:016x}\",\"resourceVersion\":\"{}\"}},\"status\":{{\"podIP\":\"10.{}.{}.{}\"}}}}\n",
            next() as u32,
            next(),
            next(),
            next() % 1_000_000,
            next() % 256,
            next() % 256,
            next() % 256
        );
        out.extend_from_slice(line.as_bytes());
    }
    out.truncate(len);
    out
}

async fn fill(etcd: &EtcdServer, size_mib: usize, value_kib: usize) -> anyhow::Result<()> {
    let client = etcd.client().await?;
    let len = value_kib * 1024;
    let keys = size_mib * 1024 / value_kib;
    futures::stream::iter(0..keys)
        .map(|i| {
            let mut c = client.clone();
            async move {
                c.put(format!("/registry/bench/{i:08}"), value(i, len), None)
                    .await
                    .map(|_| ())
            }
        })
        .buffer_unordered(8)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?;
    Ok(())
}

/// Run `cmd` under GNU time; returns (seconds, peak RSS KiB).
fn measure(cmd: Command, rss_file: &Path) -> anyhow::Result<(f64, u64)> {
    let program = cmd.get_program().to_owned();
    let args: Vec<_> = cmd.get_args().map(|a| a.to_owned()).collect();
    let envs: Vec<_> = cmd
        .get_envs()
        .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v.to_owned())))
        .collect();
    let mut timed = Command::new("/usr/bin/time");
    timed
        .arg("-f")
        .arg("%M")
        .arg("-o")
        .arg(rss_file)
        .arg(program)
        .args(args)
        .envs(envs)
        .stdout(std::process::Stdio::null());
    let started = Instant::now();
    let out = timed.output()?;
    let seconds = started.elapsed().as_secs_f64();
    anyhow::ensure!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rss: u64 = std::fs::read_to_string(rss_file)?
        .lines()
        .last()
        .unwrap_or("0")
        .trim()
        .parse()?;
    Ok((seconds, rss))
}

fn dir_size(dir: &Path) -> u64 {
    let mut total = 0;
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            total += if p.is_dir() {
                dir_size(&p)
            } else {
                e.metadata().map(|m| m.len()).unwrap_or(0)
            };
        }
    }
    total
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    anyhow::ensure!(
        Path::new("/usr/bin/time").exists(),
        "GNU time is needed for peak RSS: apt-get install time"
    );
    let plugin = e2e::bin_path("kubectl-backup");
    let etcd = EtcdServer::start_with(EtcdOptions {
        quota_bytes: Some(8 * 1024 * 1024 * 1024),
        ..EtcdOptions::default()
    });
    let started = Instant::now();
    fill(&etcd, args.size_mib, args.value_kib).await?;
    let mut status_client = etcd.client().await?;
    let db_size = status_client.status().await?.db_size() as u64;
    let db_mib = db_size as f64 / (1024.0 * 1024.0);
    eprintln!(
        "filled etcd to {db_mib:.1} MiB in {:.1}s",
        started.elapsed().as_secs_f64()
    );

    let s3 = S3Server::start();
    s3.create_bucket("bench").await?;
    let work = tempfile::tempdir()?;
    let rss_file = work.path().join("rss");

    for run in 1..=args.runs {
        // etcdctl snapshot save to a local file: the peer.
        let file = work.path().join(format!("etcdctl-{run}.db"));
        let mut cmd = Command::new("etcdctl");
        cmd.env("ETCDCTL_API", "3")
            .args(etcd.client_flags())
            .args(["snapshot", "save"])
            .arg(&file);
        let (secs, rss) = measure(cmd, &rss_file)?;
        let stored = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
        // The database as streamed (file minus the 32-byte trailer) is what
        // every contender moves; the member's reported size can lag it.
        let db_mib = if stored > 32 {
            (stored - 32) as f64 / (1024.0 * 1024.0)
        } else {
            db_mib
        };
        print_line(
            "etcdctl snapshot save",
            "local file",
            run,
            db_mib,
            secs,
            rss,
            stored,
        );
        let _ = std::fs::remove_file(&file);

        // The plugin to a local folder.
        let folder: PathBuf = work.path().join(format!("folder-{run}"));
        let mut cmd = Command::new(&plugin);
        cmd.args(["etcd", "snapshot", "--location"])
            .arg(format!("file://{}", folder.display()))
            .args(etcd.client_flags())
            .args(&args.plugin_args);
        let (secs, rss) = measure(cmd, &rss_file)?;
        print_line(
            "kubectl backup etcd snapshot",
            "local folder",
            run,
            db_mib,
            secs,
            rss,
            dir_size(&folder),
        );
        let _ = std::fs::remove_dir_all(&folder);

        // The plugin to moto S3 (multipart upload).
        let mut cmd = Command::new(&plugin);
        cmd.args(["etcd", "snapshot", "--location"])
            .arg(format!("s3://bench/run-{run}"))
            .args(etcd.client_flags())
            .args(&args.plugin_args)
            .envs(s3.env());
        let (secs, rss) = measure(cmd, &rss_file)?;
        print_line(
            "kubectl backup etcd snapshot",
            "moto S3",
            run,
            db_mib,
            secs,
            rss,
            0,
        );
    }
    Ok(())
}

fn print_line(
    tool: &str,
    target: &str,
    run: usize,
    db_mib: f64,
    secs: f64,
    rss_kib: u64,
    stored: u64,
) {
    let line = json!({
        "bench": "etcd-snapshot",
        "tool": tool,
        "target": target,
        "run": run,
        "db_mib": (db_mib * 10.0).round() / 10.0,
        "seconds": (secs * 1000.0).round() / 1000.0,
        "mib_per_s": ((db_mib / secs) * 10.0).round() / 10.0,
        "peak_rss_mib": ((rss_kib as f64 / 1024.0) * 10.0).round() / 10.0,
        "stored_mib": if stored > 0 { json!(((stored as f64 / 1048576.0) * 100.0).round() / 100.0) } else { json!(null) },
    });
    println!("{line}");
}

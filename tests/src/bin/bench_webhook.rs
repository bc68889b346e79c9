//! `bench-webhook`: admission latency of `backup-webhook` under load, side by
//! side with a no-op axum + rustls server (the floor: TLS, HTTP and the body
//! read, no AdmissionReview decoding and no policy).
//!
//! Both servers run as separate processes with the same number of runtime
//! worker threads (default 1: "one core"). For each target rate an open-loop
//! generator schedules requests at fixed intervals over keep-alive HTTPS
//! connections; latency is measured from the *scheduled* send time, so a
//! server that falls behind shows it (no coordinated omission). Requests
//! alternate between `/mutate` (a VolumeSnapshotClass with
//! `deletionPolicy: Delete`, answered with a patch) and `/validate` (a
//! restored PVC whose StorageClass exists), both recorded from a real API
//! server. The webhook's StorageClass cache watches the harness cluster
//! (`TEST_KUBECONFIG` or the emulator).
//!
//! Prints one JSON line per (server, rate):
//! `{"server","target_rate","achieved_rate","requests","errors","p50_ms","p99_ms","p999_ms","max_ms","cpu_cores"}`.
//!
//! ```text
//! cargo build --release -p backup-webhook -p e2e --bin bench-webhook
//! target/release/bench-webhook --rates 500,1000,2000,4000 --duration 5s
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Parser;
use e2e::cluster::TestCluster;
use e2e::servers::{ChildGuard, free_port};

const VSC_REVIEW: &str =
    include_str!("../../../webhook/tests/fixtures/admission-volumesnapshotclass-create.json");
const PVC_REVIEW: &str = include_str!("../../../webhook/tests/fixtures/admission-pvc-create.json");

/// Command line.
#[derive(Debug, Parser)]
#[command(name = "bench-webhook", about = "Admission webhook latency under load")]
struct Args {
    /// Target request rates (reviews per second), comma separated.
    #[arg(long, value_delimiter = ',', default_value = "500,1000,2000,4000")]
    rates: Vec<u32>,

    /// How long each rate is held.
    #[arg(long, default_value = "5s", value_parser = humantime_duration)]
    duration: Duration,

    /// Keep-alive connections of the load generator.
    #[arg(long, default_value_t = 16)]
    connections: usize,

    /// Runtime worker threads of each server.
    #[arg(long, default_value_t = 1)]
    worker_threads: usize,

    /// Internal: run the no-op floor server (ADDR CERT KEY) and nothing else.
    #[arg(long, num_args = 3, value_names = ["ADDR", "CERT", "KEY"], hide = true)]
    floor_server: Option<Vec<String>>,
}

fn humantime_duration(s: &str) -> Result<Duration, String> {
    let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = n.parse().map_err(|_| format!("bad duration {s:?}"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" | "" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        _ => Err(format!("bad duration unit in {s:?}")),
    }
}

fn main() -> anyhow::Result<()> {
    e2e::cluster::install_crypto_provider();
    let args = Args::parse();
    if let Some(floor) = &args.floor_server {
        return run_floor(floor, args.worker_threads);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(bench(args))
}

// === certificates ===

struct Certs {
    ca_pem: String,
    cert: PathBuf,
    key: PathBuf,
}

fn certs(dir: &Path) -> anyhow::Result<Certs> {
    let ca_key = rcgen::KeyPair::generate()?;
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "bench CA");
    let ca_cert = ca.self_signed(&ca_key)?;
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let key = rcgen::KeyPair::generate()?;
    let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])?
        .signed_by(&key, &issuer)?;
    let (cert_path, key_path) = (dir.join("tls.crt"), dir.join("tls.key"));
    std::fs::write(&cert_path, leaf.pem())?;
    std::fs::write(&key_path, key.serialize_pem())?;
    Ok(Certs {
        ca_pem: ca_cert.pem(),
        cert: cert_path,
        key: key_path,
    })
}

// === the floor server ===

fn run_floor(args: &[String], worker_threads: usize) -> anyhow::Result<()> {
    use axum::routing::post;
    use rustls_pki_types::pem::PemObject as _;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};

    let addr: SocketAddr = args[0].parse()?;
    let chain = CertificateDer::pem_file_iter(&args[1])?.collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_file(&args[2])?;
    let mut tls = rustls::ServerConfig::builder_with_protocol_versions(&[
        &rustls::version::TLS13,
        &rustls::version::TLS12,
    ])
    .with_no_client_auth()
    .with_single_cert(chain, key)?;
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    // Reads the body and answers a fixed allowed review: everything the
    // webhook does except decoding and judging.
    async fn noop(_body: axum::body::Bytes) -> impl axum::response::IntoResponse {
        (
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"uid":"floor","allowed":true}}"#,
        )
    }
    let router = axum::Router::new()
        .route("/mutate", post(noop))
        .route("/validate", post(noop))
        .route("/readyz", axum::routing::get(|| async { "ok" }));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(worker_threads.max(1))
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let builder =
            hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
        loop {
            let (tcp, _) = listener.accept().await?;
            let _ = tcp.set_nodelay(true);
            let acceptor = acceptor.clone();
            let router = router.clone();
            let builder = builder.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        use tower::ServiceExt as _;
                        router.clone().oneshot(req.map(axum::body::Body::new))
                    },
                );
                let _ = builder
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
            });
        }
    })
}

// === load generation ===

/// utime + stime of a process, in seconds (Linux, USER_HZ = 100).
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th fields overall.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

struct Step {
    latencies: Vec<Duration>,
    errors: u64,
    wall: Duration,
}

async fn run_step(
    client: &reqwest::Client,
    base: &str,
    bodies: &[(String, bytes::Bytes)],
    rate: u32,
    duration: Duration,
    connections: usize,
) -> Step {
    let total = (f64::from(rate) * duration.as_secs_f64()) as usize;
    let interval = Duration::from_secs_f64(1.0 / f64::from(rate));
    let (tx, rx) = tokio::sync::mpsc::channel::<(usize, Instant)>(total.max(1));
    let rx = Arc::new(tokio::sync::Mutex::new(rx));
    let mut workers = Vec::new();
    for _ in 0..connections {
        let rx = rx.clone();
        let client = client.clone();
        let bodies = bodies.to_vec();
        let base = base.to_owned();
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0u64;
            loop {
                let next = rx.lock().await.recv().await;
                let Some((i, scheduled)) = next else { break };
                let (path, body) = &bodies[i % bodies.len()];
                let result = client
                    .post(format!("{base}{path}"))
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await;
                let good = match result {
                    Ok(resp) if resp.status().is_success() => resp
                        .bytes()
                        .await
                        .is_ok_and(|b| b.windows(5).any(|w| w == b"\"uid\"")),
                    _ => false,
                };
                if good {
                    latencies.push(scheduled.elapsed());
                } else {
                    errors += 1;
                }
            }
            (latencies, errors)
        }));
    }
    // Requests are released by a plain thread: tokio's timer wheel has 1 ms
    // granularity, which would add up to 1 ms of the generator's own lateness
    // to every latency; a thread sleep overshoots by tens of microseconds.
    // Latency counts from the scheduled instant, so a server that falls behind
    // is charged for the queueing it causes (no coordinated omission).
    let start = Instant::now();
    let dispatcher = std::thread::spawn(move || {
        for i in 0..total {
            let at = start + interval.mul_f64(i as f64);
            if let Some(wait) = at.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            if tx.blocking_send((i, at)).is_err() {
                break;
            }
        }
    });
    let _ = tokio::task::spawn_blocking(move || dispatcher.join()).await;
    let mut latencies = Vec::with_capacity(total);
    let mut errors = 0;
    for w in workers {
        if let Ok((l, e)) = w.await {
            latencies.extend(l);
            errors += e;
        }
    }
    Step {
        latencies,
        errors,
        wall: start.elapsed(),
    }
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)].as_secs_f64() * 1e3
}

async fn wait_ready(client: &reqwest::Client, base: &str, what: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = client.get(format!("{base}/readyz")).send().await
            && r.status().is_success()
        {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{what} did not become ready within 30s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn bench(args: Args) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let certs = certs(dir.path())?;
    let cluster = TestCluster::start().await?;
    // A StorageClass for the restored PVC to name.
    cluster
        .create_yaml(
            "apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata:\n  name: bench-standard\nprovisioner: example.com/bench\n",
        )
        .await
        .ok();

    let vsc: serde_json::Value = serde_json::from_str(VSC_REVIEW)?;
    let mut pvc: serde_json::Value = serde_json::from_str(PVC_REVIEW)?;
    let mutate_body = serde_json::to_vec(&vsc["webhook_requests"][0]["body"])?;
    let pvc_review = &mut pvc["webhook_requests"][1]["body"];
    pvc_review["request"]["object"]["metadata"]["labels"][backup_common::LABEL_RESTORE_NAME] =
        "bench".into();
    pvc_review["request"]["object"]["spec"]["storageClassName"] = "bench-standard".into();
    let validate_body = serde_json::to_vec(pvc_review)?;
    let bodies = vec![
        ("/mutate".to_owned(), bytes::Bytes::from(mutate_body)),
        ("/validate".to_owned(), bytes::Bytes::from(validate_body)),
    ];

    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(certs.ca_pem.as_bytes())?)
        .pool_max_idle_per_host(args.connections)
        .tcp_nodelay(true)
        .build()?;

    let policy = dir.path().join("policy.yaml");
    std::fs::write(&policy, "")?;
    let webhook_port = free_port();
    let webhook = Command::new(e2e::bin_path("backup-webhook"))
        .args(["--listen", &format!("127.0.0.1:{webhook_port}")])
        .arg("--tls-cert")
        .arg(&certs.cert)
        .arg("--tls-key")
        .arg(&certs.key)
        .arg("--policy")
        .arg(&policy)
        .arg("--kubeconfig")
        .arg(cluster.kubeconfig())
        .args([
            "--worker-threads",
            &args.worker_threads.to_string(),
            "--log-format",
            "json",
        ])
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting backup-webhook")?;
    let webhook = ChildGuard::new("backup-webhook", webhook);

    let floor_port = free_port();
    let floor = Command::new(std::env::current_exe()?)
        .arg("--floor-server")
        .arg(format!("127.0.0.1:{floor_port}"))
        .arg(&certs.cert)
        .arg(&certs.key)
        .args(["--worker-threads", &args.worker_threads.to_string()])
        .stdout(Stdio::null())
        .spawn()
        .context("starting the floor server")?;
    let floor = ChildGuard::new("floor", floor);

    let servers = [
        (
            "backup-webhook",
            webhook.id(),
            format!("https://127.0.0.1:{webhook_port}"),
        ),
        (
            "floor",
            floor.id(),
            format!("https://127.0.0.1:{floor_port}"),
        ),
    ];
    for (name, _, base) in &servers {
        wait_ready(&client, base, name).await?;
    }
    for rate in &args.rates {
        for (name, pid, base) in &servers {
            // Warm the connections (TLS handshakes) before measuring.
            run_step(
                &client,
                base,
                &bodies,
                (*rate).min(500),
                Duration::from_millis(300),
                args.connections,
            )
            .await;
            let cpu0 = cpu_seconds(*pid);
            let mut step = run_step(
                &client,
                base,
                &bodies,
                *rate,
                args.duration,
                args.connections,
            )
            .await;
            let cpu1 = cpu_seconds(*pid);
            step.latencies.sort_unstable();
            let n = step.latencies.len();
            let cpu = match (cpu0, cpu1) {
                (Some(a), Some(b)) => (b - a) / step.wall.as_secs_f64(),
                _ => f64::NAN,
            };
            let line = serde_json::json!({
                "server": name,
                "worker_threads": args.worker_threads,
                "target_rate": rate,
                "achieved_rate": (n as f64 / step.wall.as_secs_f64() * 10.0).round() / 10.0,
                "requests": n,
                "errors": step.errors,
                "p50_ms": (percentile(&step.latencies, 0.50) * 1000.0).round() / 1000.0,
                "p99_ms": (percentile(&step.latencies, 0.99) * 1000.0).round() / 1000.0,
                "p999_ms": (percentile(&step.latencies, 0.999) * 1000.0).round() / 1000.0,
                "max_ms": (step.latencies.last().map_or(f64::NAN, |d| d.as_secs_f64() * 1e3) * 1000.0).round() / 1000.0,
                "cpu_cores": (cpu * 1000.0).round() / 1000.0,
            });
            println!("{line}");
        }
    }
    drop(webhook);
    drop(floor);
    Ok(())
}

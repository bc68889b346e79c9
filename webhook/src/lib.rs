//! `backup-webhook`: the mutating and validating admission webhook that makes
//! kubectl-backup restores land safely (snapshot classes keep `Retain`,
//! namespaces carry Pod Security labels, PVCs only land when their
//! StorageClass exists).
//!
//! - [`policy`]: the three policies, pure functions over a request and a
//!   [`policy::ClusterState`] snapshot.
//! - [`admission`]: decoding reviews, encoding answers.
//! - [`server`]: routes, TLS accept loop, graceful shutdown.
//! - [`tls`]: rustls configuration and certificate reload.
//! - [`cache`]: the watch-backed StorageClass cache.
//! - [`metrics`]: Prometheus counters and histograms.

pub mod admission;
pub mod cache;
pub mod metrics;
pub mod policy;
pub mod server;
pub mod tls;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context as _;
use backup_common::policy::Policy;
use clap::{Parser, ValueEnum};
use tracing_subscriber::EnvFilter;

use crate::metrics::{Metrics, ReloadFile};
use crate::policy::ClusterState;
use crate::tls::{CertReloader, ReloadEvent};

/// Command-line arguments of `backup-webhook`.
#[derive(Debug, Parser)]
#[command(name = "backup-webhook", version, about, long_about = None)]
pub struct Args {
    /// Address to serve HTTPS on.
    #[arg(long, env = "WEBHOOK_LISTEN", default_value = "0.0.0.0:8443")]
    pub listen: SocketAddr,

    /// PEM serving certificate (reloaded when it and the key change).
    #[arg(
        long,
        env = "WEBHOOK_TLS_CERT",
        default_value = "/etc/backup-webhook/tls/tls.crt"
    )]
    pub tls_cert: PathBuf,

    /// PEM private key of the serving certificate.
    #[arg(
        long,
        env = "WEBHOOK_TLS_KEY",
        default_value = "/etc/backup-webhook/tls/tls.key"
    )]
    pub tls_key: PathBuf,

    /// Policy configuration file (YAML, reloaded on change). A missing file
    /// means the built-in defaults.
    #[arg(
        long,
        env = "WEBHOOK_POLICY",
        default_value = "/etc/backup-webhook/policy/policy.yaml"
    )]
    pub policy: PathBuf,

    /// The namespace the webhook runs in; never subject to its policies.
    #[arg(long, env = "WEBHOOK_NAMESPACE", default_value = backup_common::DEFAULT_TOOL_NAMESPACE)]
    pub namespace: String,

    /// Kubeconfig for the StorageClass watch (default: $KUBECONFIG, then in-cluster).
    #[arg(long, env = "WEBHOOK_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,

    /// Log format.
    #[arg(long, env = "WEBHOOK_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// How often the certificate and policy files are checked for changes.
    #[arg(long, env = "WEBHOOK_RELOAD_INTERVAL", default_value = "5s", value_parser = humantime::parse_duration)]
    pub reload_interval: Duration,

    /// After SIGTERM, keep serving (while /readyz fails) this long so that
    /// endpoints are removed before the listener closes.
    #[arg(long, env = "WEBHOOK_SHUTDOWN_DELAY", default_value = "5s", value_parser = humantime::parse_duration)]
    pub shutdown_delay: Duration,

    /// Then wait at most this long for open connections to finish.
    #[arg(long, env = "WEBHOOK_DRAIN_TIMEOUT", default_value = "15s", value_parser = humantime::parse_duration)]
    pub drain_timeout: Duration,

    /// Runtime worker threads (default: one per CPU).
    #[arg(long, env = "WEBHOOK_WORKER_THREADS")]
    pub worker_threads: Option<usize>,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line (for log collectors).
    Json,
}

/// Install the process-wide rustls crypto provider (aws-lc-rs).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// Initialise tracing on stderr: `RUST_LOG` wins, else `info`.
pub fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new("info,kube_client=warn,kube_runtime=warn,hyper=warn,rustls=warn")
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// Shared server state: the policy and cluster snapshot requests read, readiness, metrics.
#[derive(Debug)]
pub struct App {
    policy: RwLock<Arc<Policy>>,
    state: RwLock<Arc<ClusterState>>,
    ready: AtomicBool,
    /// The namespace the webhook runs in.
    pub own_namespace: String,
    /// Metrics.
    pub metrics: Metrics,
}

impl App {
    /// A server state with this policy, an empty cluster snapshot, not ready.
    pub fn new(policy: Policy, own_namespace: String) -> App {
        App {
            policy: RwLock::new(Arc::new(policy)),
            state: RwLock::new(Arc::new(ClusterState::default())),
            ready: AtomicBool::new(false),
            own_namespace,
            metrics: Metrics::default(),
        }
    }

    /// The policy in force.
    pub fn policy(&self) -> Arc<Policy> {
        read(&self.policy)
    }

    /// Replace the policy.
    pub fn set_policy(&self, policy: Policy) {
        write(&self.policy, Arc::new(policy));
    }

    /// The current cluster snapshot.
    pub fn state(&self) -> Arc<ClusterState> {
        read(&self.state)
    }

    /// Replace the cluster snapshot.
    pub fn set_state(&self, state: ClusterState) {
        self.metrics
            .set_storage_classes(state.storage_classes.len());
        write(&self.state, Arc::new(state));
    }

    /// Ready to answer admission requests?
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Set readiness.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Release);
        self.metrics.set_ready(ready);
    }
}

// A poisoned lock only means a writer panicked mid-swap of an Arc, which
// leaves the old value intact: keep using it.
fn read<T>(lock: &RwLock<Arc<T>>) -> Arc<T> {
    match lock.read() {
        Ok(g) => g.clone(),
        Err(p) => p.into_inner().clone(),
    }
}

fn write<T>(lock: &RwLock<Arc<T>>, value: Arc<T>) {
    match lock.write() {
        Ok(mut g) => *g = value,
        Err(p) => *p.into_inner() = value,
    }
}

/// Read and validate the policy file; a missing file means the defaults.
pub fn load_policy(path: &Path) -> anyhow::Result<(Policy, Option<String>)> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let policy = Policy::from_yaml(&text)
                .with_context(|| format!("policy file {}", path.display()))?;
            Ok((policy, Some(text)))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok((Policy::default(), None)),
        Err(e) => Err(e).with_context(|| format!("cannot read policy file {}", path.display())),
    }
}

/// Run the server until SIGTERM (or SIGINT).
pub fn main_with(args: Args) -> ExitCode {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = args.worker_threads {
        builder.worker_threads(n.max(1));
    }
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(error) => {
            eprintln!("backup-webhook: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    init_tracing(args.log_format);
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            eprintln!("backup-webhook: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// The server: load everything (refusing bad files at start), then serve.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let (policy, policy_text) = load_policy(&args.policy)?;
    let grace = args.reload_interval * 3;
    let (cert_reloader, resolver) = CertReloader::start(&args.tls_cert, &args.tls_key, grace)
        .context("cannot load the serving certificate")?;
    let tls = Arc::new(tls::server_config(resolver)?);
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let client = kube_client(args.kubeconfig.as_deref()).await?;

    let app = Arc::new(App::new(policy, args.namespace.clone()));
    tracing::info!(
        listen = %args.listen,
        policy = %args.policy.display(),
        namespace = %args.namespace,
        "backup-webhook {} starting",
        env!("CARGO_PKG_VERSION")
    );
    let cache = tokio::spawn(cache::run(client, app.clone()));
    let reloader = tokio::spawn(reload_loop(
        app.clone(),
        cert_reloader,
        args.policy.clone(),
        policy_text,
        args.reload_interval,
    ));

    let shutdown = {
        let app = app.clone();
        let delay = args.shutdown_delay;
        async move {
            wait_for_signal().await;
            tracing::info!(delay = ?delay, "shutdown requested; failing readiness first");
            app.set_ready(false);
            tokio::time::sleep(delay).await;
        }
    };
    server::serve(
        listener,
        tls,
        server::router(app),
        shutdown,
        args.drain_timeout,
    )
    .await;
    cache.abort();
    reloader.abort();
    tracing::info!("stopped");
    Ok(())
}

async fn kube_client(kubeconfig: Option<&Path>) -> anyhow::Result<kube::Client> {
    let config = match kubeconfig {
        Some(path) => {
            let kc = kube::config::Kubeconfig::read_from(path)
                .with_context(|| format!("cannot read kubeconfig {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?
        }
        None => kube::Config::infer()
            .await
            .context("no cluster configuration (in-cluster or KUBECONFIG)")?,
    };
    kube::Client::try_from(config).context("cannot build a Kubernetes client")
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {},
                    _ = tokio::signal::ctrl_c() => {},
                }
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM; only Ctrl-C stops the server");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Poll the certificate pair and the policy file every `interval`, swapping
/// in what changed and keeping the old value when the new one is invalid.
pub async fn reload_loop(
    app: Arc<App>,
    mut certs: CertReloader,
    policy_path: PathBuf,
    mut policy_text: Option<String>,
    interval: Duration,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut rejected_policy: Option<String> = None;
    loop {
        ticker.tick().await;
        match certs.poll() {
            ReloadEvent::Unchanged => {}
            ReloadEvent::Reloaded => {
                app.metrics.observe_reload(ReloadFile::Certificate, true);
                tracing::info!("serving the new certificate");
            }
            ReloadEvent::Rejected(error) => {
                app.metrics.observe_reload(ReloadFile::Certificate, false);
                tracing::error!(%error, "new certificate pair refused; still serving the old one");
            }
        }
        let text = match std::fs::read_to_string(&policy_path) {
            Ok(t) => Some(t),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(error) => {
                tracing::debug!(%error, "policy file not readable right now");
                continue;
            }
        };
        if text == policy_text || (text.is_some() && text == rejected_policy) {
            continue;
        }
        let parsed = match &text {
            Some(t) => Policy::from_yaml(t),
            None => Ok(Policy::default()),
        };
        match parsed {
            Ok(policy) => {
                app.set_policy(policy);
                app.metrics.observe_reload(ReloadFile::Policy, true);
                tracing::info!(path = %policy_path.display(), "policy reloaded");
                policy_text = text;
                rejected_policy = None;
            }
            Err(error) => {
                app.metrics.observe_reload(ReloadFile::Policy, false);
                tracing::error!(%error, "new policy refused; keeping the previous one");
                rejected_policy = text;
            }
        }
    }
}

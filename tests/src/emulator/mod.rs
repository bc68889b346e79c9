//! A Kubernetes API emulator for the end-to-end tests: an HTTPS server on
//! 127.0.0.1 that answers like a kube-apiserver v1.28.7 (with its
//! controller-manager) closely enough for the real `kubectl` and kube-rs,
//! checked against responses recorded from a real server
//! (`tests/fixtures/real-apiserver`).
//!
//! Each [`Emulator`] runs on its own thread with its own multi-threaded tokio
//! runtime, so tests that block their own thread (for example waiting on
//! `std::process::Command`) never starve it.
//!
//! Modules, one per concern:
//! - [`server`]: TLS, authentication, routing, negotiation, the request log;
//! - [`api`]: the verbs (get, list, create, update, patch, delete, ...);
//! - [`store`]: objects, resourceVersions and the watch history;
//! - [`resources`], [`discovery`]: what is served and how it is advertised;
//! - [`selectors`], [`pagination`], [`patch`], [`managed`]: request semantics;
//! - [`defaults`], [`crd`]: per-kind server behaviour;
//! - [`controllers`]: namespace lifecycle, CRD establishing, garbage collection;
//! - [`watch`], [`render`], [`status`], [`tls`].

pub mod admission;
pub mod api;
pub mod controllers;
pub mod crd;
pub mod defaults;
pub mod discovery;
pub mod managed;
pub mod pagination;
pub mod patch;
pub mod render;
pub mod resources;
pub mod selectors;
pub mod server;
pub mod status;
pub mod store;
pub mod tls;
pub mod watch;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

pub use server::{RequestLog, RequestRecord};

/// Errors starting an emulator.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Certificates could not be made.
    #[error(transparent)]
    Tls(#[from] tls::Error),
    /// The built-in type table could not be read.
    #[error(transparent)]
    Resources(#[from] resources::Error),
    /// The initial objects could not be created.
    #[error("bootstrapping the cluster: {0:?}")]
    Bootstrap(status::ApiError),
    /// Binding, the runtime, or writing the kubeconfig failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The server thread ended before it was ready.
    #[error("the emulator thread exited during start-up")]
    ThreadDied,
}

/// How to start an emulator.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Port on 127.0.0.1 (0: any free port).
    pub port: u16,
    /// Where to write the kubeconfig (None: a temporary directory kept while it runs).
    pub kubeconfig_path: Option<PathBuf>,
}

/// A running emulator. Dropping it stops the server.
#[derive(Debug)]
pub struct Emulator {
    addr: SocketAddr,
    kubeconfig: PathBuf,
    kubeconfig_yaml: String,
    ca_pem: String,
    token: String,
    log: RequestLog,
    api: Arc<api::Api>,
    _dir: Option<tempfile::TempDir>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let what = what.into();
    move |source| Error::Io { what, source }
}

impl Emulator {
    /// Start an emulator on a free port with its kubeconfig in a temporary directory.
    pub fn start() -> Result<Emulator, Error> {
        Self::start_with(Options::default())
    }

    /// Start an emulator as `opts` says.
    pub fn start_with(opts: Options) -> Result<Emulator, Error> {
        let certs = tls::generate()?;
        let api = Arc::new(api::Api::new(certs.ca_pem.clone())?);
        api.bootstrap().map_err(Error::Bootstrap)?;
        let token = uuid::Uuid::new_v4().simple().to_string();
        let log = RequestLog::default();

        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<SocketAddr, Error>>();
        let (shutdown_tx, shutdown_rx) = tokio::sync::oneshot::channel::<()>();
        let thread_api = api.clone();
        let thread_log = log.clone();
        let thread_token = token.clone();
        let acceptor = tokio_rustls::TlsAcceptor::from(certs.server_config.clone());
        let port = opts.port;
        let thread = std::thread::Builder::new()
            .name(format!("kube-emulator-{port}"))
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .thread_name("kube-emulator")
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(io("building the emulator runtime")(e)));
                        return;
                    }
                };
                rt.block_on(async move {
                    let (listener, addr) = match server::bind(port).await {
                        Ok(x) => x,
                        Err(e) => {
                            let _ = ready_tx.send(Err(io(format!("binding 127.0.0.1:{port}"))(e)));
                            return;
                        }
                    };
                    let srv = Arc::new(server::Server {
                        api: thread_api.clone(),
                        token: thread_token,
                        address: addr.to_string(),
                        log: thread_log,
                    });
                    let serving = tokio::spawn(server::serve(srv, listener, acceptor));
                    let controlling = tokio::spawn(controllers::run(thread_api));
                    let _ = ready_tx.send(Ok(addr));
                    let _ = shutdown_rx.await;
                    serving.abort();
                    controlling.abort();
                });
                rt.shutdown_timeout(std::time::Duration::from_millis(200));
            })
            .map_err(io("spawning the emulator thread"))?;
        let addr = ready_rx.recv().map_err(|_| Error::ThreadDied)??;

        let kubeconfig_yaml = kubeconfig_yaml(addr, &certs.ca_pem, &token);
        let (dir, path) = match opts.kubeconfig_path {
            Some(p) => (None, p),
            None => {
                let dir = tempfile::tempdir().map_err(io("creating a temporary directory"))?;
                let p = dir.path().join("kubeconfig");
                (Some(dir), p)
            }
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .map_err(io(format!("creating {}", parent.display())))?;
        }
        std::fs::write(&path, &kubeconfig_yaml)
            .map_err(io(format!("writing {}", path.display())))?;
        Ok(Emulator {
            addr,
            kubeconfig: path,
            kubeconfig_yaml,
            ca_pem: certs.ca_pem,
            token,
            log,
            api,
            _dir: dir,
            shutdown: Some(shutdown_tx),
            thread: Some(thread),
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `https://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// Path of the kubeconfig for this emulator.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// The kubeconfig's text.
    pub fn kubeconfig_yaml(&self) -> &str {
        &self.kubeconfig_yaml
    }

    /// PEM of the CA that signed the server certificate.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The bearer token the kubeconfig carries.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The log of requests served so far.
    pub fn request_log(&self) -> RequestLog {
        self.log.clone()
    }

    /// Route the in-cluster Service `namespace/name` to `addr` on this machine, so
    /// that webhooks configured with `clientConfig.service` reach a server the test
    /// runs (as the Service's pods would serve it in a real cluster). TLS is still
    /// verified against `<name>.<namespace>.svc` with the webhook's caBundle.
    pub fn expose_service(&self, namespace: &str, name: &str, addr: SocketAddr) {
        self.api
            .service_routes
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert((namespace.to_owned(), name.to_owned()), addr);
    }

    /// Direct access to the emulated cluster (for tests of the emulator itself).
    pub fn api(&self) -> &Arc<api::Api> {
        &self.api
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn kubeconfig_yaml(addr: SocketAddr, ca_pem: &str, token: &str) -> String {
    let ca = STANDARD.encode(ca_pem);
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: emulator
  cluster:
    server: https://{addr}
    certificate-authority-data: {ca}
users:
- name: emulator-admin
  user:
    token: {token}
contexts:
- name: emulator
  context:
    cluster: emulator
    user: emulator-admin
    namespace: default
current-context: emulator
preferences: {{}}
"
    )
}

//! The cluster a test runs against.
//!
//! `TEST_KUBECONFIG` names an existing cluster (any real cluster: kind, k3d,
//! a real control plane) and `TEST_KUBECONFIG_TARGET` a second one for
//! cross-cluster restores. When unset, the project's Kubernetes API emulator
//! ([`crate::emulator`]) is started instead, one independent instance per
//! cluster asked for, each on its own thread and runtime.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use kube::api::{Api, DeleteParams, DynamicObject, PostParams};
use kube::core::GroupVersionKind;
use kube::discovery::{self, Scope};
use rand::Rng;

use crate::emulator::{Emulator, RequestLog};

/// Install the rustls crypto provider (aws-lc-rs) for this process, once.
///
/// Several crates enable rustls backends; without an explicit choice kube-rs
/// panics at its first TLS connection. Safe to call any number of times.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// A cluster under test. Dropping it stops an emulator it started.
#[derive(Debug)]
pub struct TestCluster {
    kubeconfig: PathBuf,
    emulator: Option<Emulator>,
}

/// Which of the (up to) two harness clusters to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The cluster backups are taken from (`TEST_KUBECONFIG`).
    Source,
    /// A second, independent cluster to restore into (`TEST_KUBECONFIG_TARGET`).
    Target,
}

impl TestCluster {
    /// The source cluster: `TEST_KUBECONFIG`, or a fresh emulator.
    pub async fn start() -> anyhow::Result<TestCluster> {
        Self::start_role(Role::Source).await
    }

    /// A cluster for `role`: the kubeconfig in `TEST_KUBECONFIG` (Source) or
    /// `TEST_KUBECONFIG_TARGET` (Target), or else a new emulator.
    pub async fn start_role(role: Role) -> anyhow::Result<TestCluster> {
        install_crypto_provider();
        let var = match role {
            Role::Source => "TEST_KUBECONFIG",
            Role::Target => "TEST_KUBECONFIG_TARGET",
        };
        if let Some(path) = std::env::var_os(var).filter(|p| !p.is_empty()) {
            return Ok(TestCluster {
                kubeconfig: PathBuf::from(path),
                emulator: None,
            });
        }
        Self::start_emulator()
    }

    /// Always a new emulator, whatever the environment says.
    pub fn start_emulator() -> anyhow::Result<TestCluster> {
        install_crypto_provider();
        let emulator = Emulator::start().context("starting the Kubernetes API emulator")?;
        Ok(TestCluster {
            kubeconfig: emulator.kubeconfig().to_path_buf(),
            emulator: Some(emulator),
        })
    }

    /// Is this an existing cluster (as opposed to an emulator the harness started)?
    pub fn is_external(&self) -> bool {
        self.emulator.is_none()
    }

    /// Path of a kubeconfig whose current context is this cluster.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// The emulator, when this cluster is one.
    pub fn emulator(&self) -> Option<&Emulator> {
        self.emulator.as_ref()
    }

    /// The log of requests the emulator served (None on an external cluster).
    pub fn request_log(&self) -> Option<RequestLog> {
        self.emulator.as_ref().map(Emulator::request_log)
    }

    /// On an emulator, route Service `namespace/name` to `addr` on this machine so that
    /// webhooks configured with `clientConfig.service` reach a server the test runs
    /// (see [`Emulator::expose_service`]). Returns false on an external cluster, where
    /// the webhook must run in the cluster behind its Service.
    pub fn expose_service(&self, namespace: &str, name: &str, addr: std::net::SocketAddr) -> bool {
        match &self.emulator {
            Some(e) => {
                e.expose_service(namespace, name, addr);
                true
            }
            None => false,
        }
    }

    /// A client for this cluster.
    pub async fn client(&self) -> anyhow::Result<kube::Client> {
        client_for(&self.kubeconfig).await
    }

    /// Create a namespace named `<prefix>-<random>`, deleted again when the guard drops.
    pub async fn temp_namespace(&self, prefix: &str) -> anyhow::Result<TempNamespace> {
        let client = self.client().await?;
        let api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client);
        for _ in 0..5 {
            let name = format!("{prefix}-{}", random_suffix());
            let ns = k8s_openapi::api::core::v1::Namespace {
                metadata: kube::api::ObjectMeta {
                    name: Some(name.clone()),
                    ..Default::default()
                },
                ..Default::default()
            };
            match api.create(&PostParams::default(), &ns).await {
                Ok(_) => {
                    return Ok(TempNamespace {
                        name,
                        kubeconfig: self.kubeconfig.clone(),
                        keep: false,
                    });
                }
                Err(kube::Error::Api(e)) if e.code == 409 => continue,
                Err(e) => return Err(e).with_context(|| format!("creating namespace {name}")),
            }
        }
        anyhow::bail!("could not find a free namespace name for prefix {prefix}")
    }

    /// Create every object of a multi-document YAML manifest (like `kubectl create -f`),
    /// waiting for each CRD it creates to be served before going on.
    pub async fn create_yaml(&self, yaml: &str) -> anyhow::Result<Vec<DynamicObject>> {
        create_yaml(&self.client().await?, yaml).await
    }

    /// Wait until CRD `name` is Established (a real server takes a moment too).
    pub async fn wait_crd_established(&self, name: &str) -> anyhow::Result<()> {
        wait_crd_established(&self.client().await?, name).await
    }
}

fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    (0..6)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// A client from a kubeconfig file.
pub async fn client_for(kubeconfig: &Path) -> anyhow::Result<kube::Client> {
    install_crypto_provider();
    let kc = kube::config::Kubeconfig::read_from(kubeconfig)
        .with_context(|| format!("reading kubeconfig {}", kubeconfig.display()))?;
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?;
    Ok(kube::Client::try_from(config)?)
}

/// A namespace that is deleted when dropped (unless [`TempNamespace::keep`] was called).
#[derive(Debug)]
pub struct TempNamespace {
    name: String,
    kubeconfig: PathBuf,
    keep: bool,
}

impl TempNamespace {
    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Do not delete it (to inspect a failure).
    pub fn keep(&mut self) {
        self.keep = true;
    }
}

impl std::ops::Deref for TempNamespace {
    type Target = str;
    fn deref(&self) -> &str {
        &self.name
    }
}

impl Drop for TempNamespace {
    fn drop(&mut self) {
        if self.keep {
            return;
        }
        // Drop may run inside a tokio runtime: use a thread with its own runtime.
        let name = self.name.clone();
        let kubeconfig = self.kubeconfig.clone();
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                if let Ok(client) = client_for(&kubeconfig).await {
                    let api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client);
                    let _ = api.delete(&name, &DeleteParams::default()).await;
                }
            });
        })
        .join();
    }
}

/// Wait until CRD `name` has the Established condition.
pub async fn wait_crd_established(client: &kube::Client, name: &str) -> anyhow::Result<()> {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let crd = api.get(name).await?;
        let established = crd
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| {
                cs.iter()
                    .any(|c| c.type_ == "Established" && c.status == "True")
            });
        if established {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            anyhow::bail!("CRD {name} was not Established within 30s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Create every object of a multi-document YAML manifest, in order.
pub async fn create_yaml(client: &kube::Client, yaml: &str) -> anyhow::Result<Vec<DynamicObject>> {
    use serde::Deserialize;
    let mut created = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(yaml) {
        let value = serde_json::Value::deserialize(doc).context("parsing YAML")?;
        if value.is_null() {
            continue;
        }
        let obj: DynamicObject =
            serde_json::from_value(value).context("not a Kubernetes object")?;
        let types = obj
            .types
            .clone()
            .context("object without apiVersion/kind")?;
        let gvk = GroupVersionKind::try_from(&types)?;
        // A CRD created just before may take a moment to be served.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let (ar, caps) = loop {
            match discovery::pinned_kind(client, &gvk).await {
                Ok(found) => break found,
                Err(e) if tokio::time::Instant::now() > deadline => {
                    return Err(e).with_context(|| format!("{gvk:?} is not served"));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        };
        let api: Api<DynamicObject> = match (caps.scope, obj.metadata.namespace.as_deref()) {
            (Scope::Namespaced, Some(ns)) => Api::namespaced_with(client.clone(), ns, &ar),
            (Scope::Namespaced, None) => Api::default_namespaced_with(client.clone(), &ar),
            (Scope::Cluster, _) => Api::all_with(client.clone(), &ar),
        };
        let name = obj.metadata.name.clone().unwrap_or_default();
        let made = api
            .create(&PostParams::default(), &obj)
            .await
            .with_context(|| format!("creating {} {name}", types.kind))?;
        if types.kind == "CustomResourceDefinition" {
            wait_crd_established(client, &name).await?;
        }
        created.push(made);
    }
    Ok(created)
}

//! The cluster a test runs against.
//!
//! `TEST_KUBECONFIG` names an existing cluster (any real cluster: kind, k3d,
//! a real control plane) and `TEST_KUBECONFIG_TARGET` a second one for
//! cross-cluster restores. When unset, the project's Kubernetes API emulator
//! is started instead, one independent instance per cluster asked for.

use std::path::{Path, PathBuf};

/// A cluster under test. Dropping it stops an emulator it started.
pub struct TestCluster {
    kubeconfig: PathBuf,
    /// Keeps an emulator (and its temp dir) alive for as long as the cluster is used.
    _guard: Option<Box<dyn std::any::Any + Send + Sync>>,
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

    /// A cluster for `role`.
    pub async fn start_role(role: Role) -> anyhow::Result<TestCluster> {
        let var = match role {
            Role::Source => "TEST_KUBECONFIG",
            Role::Target => "TEST_KUBECONFIG_TARGET",
        };
        if let Some(path) = std::env::var_os(var) {
            return Ok(TestCluster {
                kubeconfig: PathBuf::from(path),
                _guard: None,
            });
        }
        anyhow::bail!("{var} is not set and the Kubernetes API emulator is not available yet")
    }

    /// Is this an existing cluster (as opposed to an emulator the harness started)?
    pub fn is_external(&self) -> bool {
        self._guard.is_none()
    }

    /// Path of a kubeconfig whose current context is this cluster.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// A client for this cluster.
    pub async fn client(&self) -> anyhow::Result<kube::Client> {
        let kc = kube::config::Kubeconfig::read_from(&self.kubeconfig)?;
        let config = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?;
        Ok(kube::Client::try_from(config)?)
    }
}

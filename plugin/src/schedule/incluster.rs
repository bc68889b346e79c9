//! Connecting from inside the cluster, as the schedule's CronJob pod does.
//!
//! A pod finds its API server through `KUBERNETES_SERVICE_HOST` and
//! `KUBERNETES_SERVICE_PORT` and authenticates with the ServiceAccount token
//! mounted at `/var/run/secrets/kubernetes.io/serviceaccount/` (`token`,
//! `ca.crt`, `namespace`). kube-rs reads that fixed path; this module reads
//! the same files from `$KUBECTL_BACKUP_SERVICEACCOUNT_DIR` when it is set,
//! so the very same code path can be exercised outside a pod (the end-to-end
//! tests point it at a token for the harness API server) or with a token
//! projected elsewhere. The token file is re-read as kube-rs does for a
//! kubeconfig `tokenFile`, so rotated projected tokens keep working.
//!
//! `crate::cluster::load_config` asks [`from_env_override`] before kube-rs'
//! own inference, so every command honours the variable; the order stays
//! kube-rs': an explicit `--kubeconfig`/`--context`, `$KUBECONFIG` or
//! `~/.kube/config` win, then the in-cluster identity.

use std::path::{Path, PathBuf};

use kube::config::{Config, KubeConfigOptions, Kubeconfig};
use serde_json::json;

/// Overrides the directory holding the ServiceAccount's `token`, `ca.crt` and `namespace`.
pub const SERVICE_ACCOUNT_DIR_ENV: &str = "KUBECTL_BACKUP_SERVICEACCOUNT_DIR";

/// Where Kubernetes mounts a pod's ServiceAccount credentials.
pub const DEFAULT_SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// Errors building the in-cluster configuration.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `KUBERNETES_SERVICE_PORT` is not a port.
    #[error("KUBERNETES_SERVICE_PORT={value:?} is not a port number")]
    Port {
        /// The value found.
        value: String,
    },
    /// A credential file is missing.
    #[error(
        "in-cluster credentials: cannot read {path}: {source} (is a ServiceAccount token mounted? set {SERVICE_ACCOUNT_DIR_ENV} to read it elsewhere)"
    )]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// kube-rs refused the assembled configuration.
    #[error("in-cluster configuration: {0}")]
    Config(#[from] kube::config::KubeconfigError),
    /// The in-memory kubeconfig did not deserialize (a bug here).
    #[error("in-cluster configuration: {0}")]
    Build(#[from] serde_json::Error),
}

/// The API server URL from the service host and port, bracketing IPv6.
pub fn server_url(host: &str, port: &str) -> Result<String, Error> {
    let port: u16 = port.parse().map_err(|_| Error::Port {
        value: port.to_owned(),
    })?;
    let host = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_owned()
    };
    Ok(if port == 443 {
        format!("https://{host}")
    } else {
        format!("https://{host}:{port}")
    })
}

/// Build the in-cluster configuration from `KUBERNETES_SERVICE_HOST`/`PORT`
/// and the credential files in `dir`.
pub async fn config(host: &str, port: &str, dir: &Path) -> Result<Config, Error> {
    let server = server_url(host, port)?;
    let token = dir.join("token");
    let ca = dir.join("ca.crt");
    // Fail early with the path in the message; kube-rs would say less.
    for path in [&token, &ca] {
        std::fs::metadata(path).map_err(|source| Error::Read {
            path: path.clone(),
            source,
        })?;
    }
    let namespace = std::fs::read_to_string(dir.join("namespace"))
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty());
    let kubeconfig: Kubeconfig = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{ "name": "in-cluster", "cluster": {
            "server": server,
            "certificate-authority": ca.to_string_lossy(),
        }}],
        "users": [{ "name": "service-account", "user": { "tokenFile": token.to_string_lossy() } }],
        "contexts": [{ "name": "in-cluster", "context": {
            "cluster": "in-cluster",
            "user": "service-account",
            "namespace": namespace,
        }}],
        "current-context": "in-cluster",
    }))?;
    Ok(Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?)
}

/// Is there a kubeconfig that kube-rs' inference would pick first
/// (`$KUBECONFIG` or `~/.kube/config`)?
fn has_kubeconfig() -> bool {
    std::env::var_os("KUBECONFIG").is_some_and(|v| !v.is_empty())
        || std::env::var_os("HOME")
            .map(|home| Path::new(&home).join(".kube/config").is_file())
            .unwrap_or(false)
}

/// The in-cluster configuration read from `$KUBECTL_BACKUP_SERVICEACCOUNT_DIR`,
/// when that variable and `KUBERNETES_SERVICE_HOST`/`PORT` are set and no
/// kubeconfig is there to take precedence. `None` leaves the choice to
/// kube-rs' usual inference (kubeconfig, then the standard mount path).
pub async fn from_env_override() -> Result<Option<Config>, Error> {
    let Some(dir) = std::env::var_os(SERVICE_ACCOUNT_DIR_ENV) else {
        return Ok(None);
    };
    let (Ok(host), Ok(port)) = (
        std::env::var("KUBERNETES_SERVICE_HOST"),
        std::env::var("KUBERNETES_SERVICE_PORT"),
    ) else {
        return Ok(None);
    };
    if has_kubeconfig() {
        return Ok(None);
    }
    config(&host, &port, Path::new(&dir)).await.map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_urls() {
        assert_eq!(
            server_url("10.96.0.1", "443").expect("url"),
            "https://10.96.0.1"
        );
        assert_eq!(
            server_url("127.0.0.1", "6443").expect("url"),
            "https://127.0.0.1:6443"
        );
        assert_eq!(
            server_url("fd00::1", "443").expect("url"),
            "https://[fd00::1]"
        );
        assert!(matches!(server_url("h", "https"), Err(Error::Port { .. })));
    }

    #[tokio::test]
    async fn config_reads_the_mounted_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        // A self-signed certificate so kube-rs can parse ca.crt.
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])
            .expect("cert")
            .cert
            .pem();
        std::fs::write(dir.path().join("ca.crt"), cert).expect("write");
        std::fs::write(dir.path().join("token"), "t0ken").expect("write");
        std::fs::write(dir.path().join("namespace"), "kubectl-backup\n").expect("write");
        let config = config("127.0.0.1", "6443", dir.path())
            .await
            .expect("config");
        assert_eq!(config.cluster_url.to_string(), "https://127.0.0.1:6443/");
        assert_eq!(config.default_namespace, "kubectl-backup");
        assert!(config.root_cert.is_some());
    }

    #[tokio::test]
    async fn missing_token_names_the_file_and_the_variable() {
        let dir = tempfile::tempdir().expect("tempdir");
        let e = config("127.0.0.1", "6443", dir.path())
            .await
            .expect_err("no files");
        let text = e.to_string();
        assert!(text.contains("token"), "{text}");
        assert!(text.contains(SERVICE_ACCOUNT_DIR_ENV), "{text}");
    }
}

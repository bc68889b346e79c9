//! Backup locations: where backups and etcd snapshots are stored.
//!
//! A location resolves to a [`Store`]: an object_store backend plus a key
//! prefix inside it. Every other module reads and writes through a `Store`
//! and never cares which provider is behind it; [`resolve`] is the one call
//! that turns a `--location` value (a name, a URL, or nothing) into one.
//!
//! - [`spec`]: what a location is (provider, settings, credentials);
//! - [`catalog`]: named locations as Secrets in the tool's namespace;
//! - [`open`]: building the object_store client for a provider;
//! - [`sts`]: AWS AssumeRole with an external id;
//! - [`probe`]: checking a location works, and explaining why not;
//! - [`command`]: `kubectl backup location add|list|describe|validate|delete`.

pub mod catalog;
pub mod command;
pub mod open;
pub mod probe;
pub mod spec;
pub mod sts;

use std::path::PathBuf;
use std::sync::Arc;

use object_store::ObjectStore;
use object_store::local::LocalFileSystem;
use object_store::path::Path;

use crate::cli::GlobalArgs;

/// Errors of this module.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The location URL could not be understood.
    #[error("invalid location URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The object-store backend could not be configured.
    #[error("cannot open location {location}: {source}")]
    Open {
        /// The location's display name.
        location: String,
        /// The object-store error.
        source: object_store::Error,
    },
    /// A local folder location could not be created.
    #[error("cannot create local folder {path}: {source}")]
    LocalFolder {
        /// The folder.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A setting the provider needs is missing.
    #[error("location {location} is incomplete: missing {missing}")]
    Incomplete {
        /// The location.
        location: String,
        /// What is missing.
        missing: String,
    },
    /// The CA certificate is unusable.
    #[error("location {location}: invalid CA certificate: {reason}")]
    CaCertificate {
        /// The location.
        location: String,
        /// What is wrong.
        reason: String,
    },
    /// No location of that name.
    #[error(
        "backup location {name:?} not found in namespace {namespace} (see 'kubectl backup location list', or pass a URL such as s3://bucket/prefix or file:///path)"
    )]
    NotFound {
        /// The name asked for.
        name: String,
        /// The tool namespace searched.
        namespace: String,
    },
    /// A location of that name exists already.
    #[error(
        "backup location {name:?} already exists in namespace {namespace}; delete it first to replace it"
    )]
    AlreadyExists {
        /// The name.
        name: String,
        /// The tool namespace.
        namespace: String,
    },
    /// A location Secret that cannot be read back.
    #[error("backup location {name:?} is damaged: {reason}")]
    Stored {
        /// The location.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// The cluster refused or failed a request.
    #[error("{action} in namespace {namespace} failed: {source}")]
    Cluster {
        /// What was being done.
        action: String,
        /// The tool namespace.
        namespace: String,
        /// The API error.
        source: kube::Error,
    },
    /// No cluster to read named (or the default) locations from.
    #[error("backup location {name} is kept in the cluster, which cannot be reached: {reason:#}")]
    NoCluster {
        /// The location asked for.
        name: String,
        /// Why no cluster could be reached.
        reason: anyhow::Error,
    },
}

/// Result alias for this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An opened location: a backend and a prefix inside it.
#[derive(Debug, Clone)]
pub struct Store {
    inner: Arc<dyn ObjectStore>,
    prefix: Path,
    name: String,
}

impl Store {
    /// Wrap an object store; `prefix` is prepended to every key.
    pub fn new(name: impl Into<String>, inner: Arc<dyn ObjectStore>, prefix: Path) -> Self {
        Store {
            inner,
            prefix,
            name: name.into(),
        }
    }

    /// The backend.
    pub fn object_store(&self) -> &Arc<dyn ObjectStore> {
        &self.inner
    }

    /// The key prefix inside the backend (may be empty).
    pub fn prefix(&self) -> &Path {
        &self.prefix
    }

    /// The name shown to users: the location's name, or its URL when ad hoc.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The full key for `relative` (slash-separated, e.g. `backups/nightly/backup.json`).
    pub fn path(&self, relative: &str) -> Path {
        let mut parts: Vec<String> = self.prefix.parts().map(|p| p.as_ref().to_owned()).collect();
        parts.extend(
            relative
                .split('/')
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
        );
        Path::from_iter(parts)
    }
}

/// The local folder used when no location is given and none is configured:
/// `$KUBECTL_BACKUP_LOCAL_DIR`, else `$XDG_DATA_HOME/kubectl-backup`, else
/// `~/.local/share/kubectl-backup`.
pub fn default_local_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("KUBECTL_BACKUP_LOCAL_DIR") {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("XDG_DATA_HOME") {
        return PathBuf::from(dir).join("kubectl-backup");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    home.join(".local/share/kubectl-backup")
}

/// Open a local folder as a location, creating it if needed.
pub fn open_local(dir: &std::path::Path) -> Result<Store> {
    std::fs::create_dir_all(dir).map_err(|source| Error::LocalFolder {
        path: dir.to_owned(),
        source,
    })?;
    let fs = LocalFileSystem::new_with_prefix(dir)
        .map_err(|source| Error::Open {
            location: dir.display().to_string(),
            source,
        })?
        .with_automatic_cleanup(true);
    Ok(Store::new(
        format!("file://{}", dir.display()),
        Arc::new(fs),
        Path::default(),
    ))
}

/// Does `location` look like a URL rather than a location name?
pub fn is_url(location: &str) -> bool {
    location.contains("://")
}

/// Turn a `--location` value into a [`Store`]:
///
/// - a URL (`s3://`, `gs://`, `az://`, `file:///`): opened with credentials
///   from the environment, no cluster needed ([`open_url`]);
/// - a name: the location Secret in the tool namespace (needs the cluster);
/// - nothing: the default location marked in the cluster when a cluster is
///   configured and has one, else the local folder [`default_local_dir`].
pub async fn resolve(global: &GlobalArgs, location: Option<&str>) -> Result<Store> {
    match location {
        Some(url) if is_url(url) => open_url(url),
        Some(name) => {
            let client =
                crate::cluster::connect(global)
                    .await
                    .map_err(|reason| Error::NoCluster {
                        name: name.to_owned(),
                        reason,
                    })?;
            resolve_with_client(&client, &global.tool_namespace, Some(name)).await
        }
        None => match crate::cluster::connect(global).await {
            Ok(client) => resolve_with_client(&client, &global.tool_namespace, None).await,
            // A cluster asked for explicitly must work.
            Err(reason) if global.kubeconfig.is_some() || global.context.is_some() => {
                Err(Error::NoCluster {
                    name: "(default)".to_owned(),
                    reason,
                })
            }
            // No cluster configured at all: the local folder, as documented.
            Err(error) => {
                tracing::debug!(error = %format!("{error:#}"), "no cluster; using the local default location");
                open_local(&default_local_dir())
            }
        },
    }
}

/// [`resolve`] with a client already connected to the cluster that holds
/// the named locations.
pub async fn resolve_with_client(
    client: &kube::Client,
    tool_namespace: &str,
    location: Option<&str>,
) -> Result<Store> {
    match location {
        Some(url) if is_url(url) => open_url(url),
        Some(name) => {
            let named = catalog::get(client, tool_namespace, name).await?;
            open_named(&named, &open::OpenOptions::default())
        }
        None => match catalog::default_location(client, tool_namespace).await {
            Ok(Some(named)) => open_named(&named, &open::OpenOptions::default()),
            Ok(None) => open_local(&default_local_dir()),
            // The cluster is configured but does not answer at all (as
            // opposed to refusing): the local default is still useful for
            // reading backups, so say so and carry on.
            Err(Error::Cluster {
                source: source @ (kube::Error::HyperError(_) | kube::Error::Service(_)),
                ..
            }) => {
                let dir = default_local_dir();
                tracing::warn!(
                    error = %source,
                    "cannot reach the cluster to look up the default location; using {}",
                    dir.display()
                );
                open_local(&dir)
            }
            Err(error) => Err(error),
        },
    }
}

/// Open a stored location.
pub fn open_named(location: &catalog::NamedLocation, options: &open::OpenOptions) -> Result<Store> {
    open::open_spec(
        &location.name,
        &location.spec,
        &location.credentials,
        options,
    )
}

/// Open an ad-hoc location URL (`file:///path`, `s3://bucket/prefix`,
/// `gs://bucket/prefix`, `az://container/prefix`) with credentials and
/// options from the environment (`AWS_*`, `GOOGLE_*`, `AZURE_*`), and
/// object_store's default retries.
pub fn open_url(url: &str) -> Result<Store> {
    open_url_with(url, &open::OpenOptions::default())
}

/// [`open_url`] with the retry policy of `options` (e.g. quick retries for
/// validation).
pub fn open_url_with(url: &str, options: &open::OpenOptions) -> Result<Store> {
    use object_store::ObjectStoreScheme;
    use object_store::aws::AmazonS3Builder;
    use object_store::azure::MicrosoftAzureBuilder;
    use object_store::gcp::GoogleCloudStorageBuilder;

    let invalid = |reason: String| Error::InvalidUrl {
        url: url.to_owned(),
        reason,
    };
    let parsed = url::Url::parse(url).map_err(|e| invalid(e.to_string()))?;
    if parsed.scheme() == "file" {
        let dir = parsed.to_file_path().map_err(|()| {
            invalid("a file URL needs an absolute path, e.g. file:///var/backups".to_owned())
        })?;
        return open_local(&dir);
    }
    let open_error = |source| Error::Open {
        location: url.to_owned(),
        source,
    };
    let (scheme, prefix) = ObjectStoreScheme::parse(&parsed).map_err(|e| invalid(e.to_string()))?;
    let retry = options.retry.clone();
    // from_env() picks up credentials and client options (AWS_ALLOW_HTTP,
    // AWS_ENDPOINT, …); the URL then sets bucket/container and prefix.
    let store: Arc<dyn ObjectStore> = match scheme {
        ObjectStoreScheme::AmazonS3 => Arc::new(
            AmazonS3Builder::from_env()
                .with_url(url)
                .with_retry(retry)
                .build()
                .map_err(open_error)?,
        ),
        ObjectStoreScheme::GoogleCloudStorage => Arc::new(
            GoogleCloudStorageBuilder::from_env()
                .with_url(url)
                .with_retry(retry)
                .build()
                .map_err(open_error)?,
        ),
        ObjectStoreScheme::MicrosoftAzure => Arc::new(
            MicrosoftAzureBuilder::from_env()
                .with_url(url)
                .with_retry(retry)
                .build()
                .map_err(open_error)?,
        ),
        _ => {
            return Err(invalid(
                "unsupported location URL: use s3://bucket/prefix, gs://bucket/prefix, az://container/prefix or file:///path"
                    .to_owned(),
            ));
        }
    };
    Ok(Store::new(url, store, prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_join_prefix() {
        let store = Store::new(
            "t",
            Arc::new(object_store::memory::InMemory::new()),
            Path::from("team/prod"),
        );
        assert_eq!(
            store.path("backups/a/backup.json").as_ref(),
            "team/prod/backups/a/backup.json"
        );
        let bare = Store::new(
            "t",
            Arc::new(object_store::memory::InMemory::new()),
            Path::default(),
        );
        assert_eq!(bare.path("backups/a").as_ref(), "backups/a");
    }

    #[test]
    fn unsupported_schemes_are_refused() {
        for url in ["memory:///", "ftp://host/x", "file://relative"] {
            assert!(
                matches!(open_url(url), Err(Error::InvalidUrl { .. })),
                "{url}"
            );
        }
    }

    #[test]
    fn relative_file_url_is_refused() {
        assert!(matches!(
            open_url("not a url"),
            Err(Error::InvalidUrl { .. })
        ));
    }
}

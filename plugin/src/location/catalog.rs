//! Named locations as Kubernetes Secrets in the tool's namespace: one Secret
//! `backup-location-<name>` per location holding `config.json` (the
//! [`LocationSpec`]) and one key per credential, labelled so that they can be
//! listed and are never backed up, with the default location marked by an
//! annotation.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams};

use super::spec::{CONFIG_KEY, Credentials, LocationSpec};
use super::{Error, Result};

/// Label naming the location a Secret holds.
pub const LABEL_LOCATION: &str = "kubectl-backup.dev/location";

/// Annotation marking the default location (`"true"`).
pub const ANNOTATION_DEFAULT: &str = "kubectl-backup.dev/default-location";

/// The Secret type of location Secrets.
pub const SECRET_TYPE: &str = "kubectl-backup.dev/location";

/// Name of the Secret holding location `name`.
pub fn secret_name(name: &str) -> String {
    format!("backup-location-{name}")
}

/// A location as stored in the cluster.
#[derive(Debug, Clone)]
pub struct NamedLocation {
    /// The location's name (a DNS-1123 label).
    pub name: String,
    /// Its settings.
    pub spec: LocationSpec,
    /// Its credentials.
    pub credentials: Credentials,
    /// Is it the default location?
    pub default: bool,
    /// When it was added (absent before it is saved).
    pub created: Option<Time>,
}

impl NamedLocation {
    /// The Secret representing this location in `namespace`.
    pub fn to_secret(&self, namespace: &str) -> Result<Secret> {
        let mut data: BTreeMap<String, ByteString> = self
            .credentials
            .to_data()
            .into_iter()
            .map(|(k, v)| (k, ByteString(v)))
            .collect();
        let config = serde_json::to_vec_pretty(&self.spec).map_err(|e| Error::Stored {
            name: self.name.clone(),
            reason: e.to_string(),
        })?;
        data.insert(CONFIG_KEY.to_owned(), ByteString(config));
        let mut annotations = BTreeMap::new();
        if self.default {
            annotations.insert(ANNOTATION_DEFAULT.to_owned(), "true".to_owned());
        }
        Ok(Secret {
            metadata: ObjectMeta {
                name: Some(secret_name(&self.name)),
                namespace: Some(namespace.to_owned()),
                labels: Some(BTreeMap::from([
                    (
                        backup_common::LABEL_MANAGED_BY.to_owned(),
                        backup_common::MANAGED_BY.to_owned(),
                    ),
                    (LABEL_LOCATION.to_owned(), self.name.clone()),
                    // Credentials never go into a backup.
                    (
                        backup_common::LABEL_EXCLUDE_FROM_BACKUP.to_owned(),
                        "true".to_owned(),
                    ),
                ])),
                annotations: (!annotations.is_empty()).then_some(annotations),
                ..ObjectMeta::default()
            },
            type_: Some(SECRET_TYPE.to_owned()),
            data: Some(data),
            ..Secret::default()
        })
    }

    /// Read a location back from its Secret.
    pub fn from_secret(secret: &Secret) -> Result<NamedLocation> {
        let labels = secret.metadata.labels.clone().unwrap_or_default();
        let secret_name = secret.metadata.name.clone().unwrap_or_default();
        let name = labels
            .get(LABEL_LOCATION)
            .cloned()
            .unwrap_or_else(|| secret_name.clone());
        let data: BTreeMap<String, Vec<u8>> = secret
            .data
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.0))
            .collect();
        let config = data.get(CONFIG_KEY).ok_or_else(|| Error::Stored {
            name: name.clone(),
            reason: format!("Secret {secret_name} has no {CONFIG_KEY}"),
        })?;
        let spec: LocationSpec = serde_json::from_slice(config).map_err(|e| Error::Stored {
            name: name.clone(),
            reason: format!("{CONFIG_KEY} in Secret {secret_name}: {e}"),
        })?;
        let default = secret
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(ANNOTATION_DEFAULT))
            .is_some_and(|v| v == "true");
        Ok(NamedLocation {
            name,
            spec,
            credentials: Credentials::from_data(&data),
            default,
            created: secret.metadata.creation_timestamp.clone(),
        })
    }
}

fn cluster_error(action: &str, namespace: &str) -> impl FnOnce(kube::Error) -> Error {
    let action = action.to_owned();
    let namespace = namespace.to_owned();
    move |source| Error::Cluster {
        action,
        namespace,
        source,
    }
}

fn is_status(error: &kube::Error, code: u16) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == code)
}

/// Create `namespace` unless it exists.
pub async fn ensure_namespace(client: &kube::Client, namespace: &str) -> Result<()> {
    let api: Api<Namespace> = Api::all(client.clone());
    if api
        .get_opt(namespace)
        .await
        .map_err(cluster_error("reading the tool namespace", namespace))?
        .is_some()
    {
        return Ok(());
    }
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(namespace.to_owned()),
            labels: Some(BTreeMap::from([(
                backup_common::LABEL_MANAGED_BY.to_owned(),
                backup_common::MANAGED_BY.to_owned(),
            )])),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    match api.create(&PostParams::default(), &ns).await {
        Ok(_) => Ok(()),
        // Someone else created it in between: fine.
        Err(e) if is_status(&e, 409) => Ok(()),
        Err(e) => Err(cluster_error("creating the tool namespace", namespace)(e)),
    }
}

/// Store a new location; refuses to replace an existing one.
pub async fn create(
    client: &kube::Client,
    namespace: &str,
    location: &NamedLocation,
) -> Result<()> {
    ensure_namespace(client, namespace).await?;
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let secret = location.to_secret(namespace)?;
    match api.create(&PostParams::default(), &secret).await {
        Ok(_) => Ok(()),
        Err(e) if is_status(&e, 409) => Err(Error::AlreadyExists {
            name: location.name.clone(),
            namespace: namespace.to_owned(),
        }),
        Err(e) => Err(cluster_error("saving the location", namespace)(e)),
    }
}

/// Read location `name`.
pub async fn get(client: &kube::Client, namespace: &str, name: &str) -> Result<NamedLocation> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let secret = api
        .get_opt(&secret_name(name))
        .await
        .map_err(cluster_error("reading the location", namespace))?
        .ok_or_else(|| Error::NotFound {
            name: name.to_owned(),
            namespace: namespace.to_owned(),
        })?;
    NamedLocation::from_secret(&secret)
}

/// Every location in `namespace`, sorted by name. A missing namespace has none.
pub async fn list(client: &kube::Client, namespace: &str) -> Result<Vec<NamedLocation>> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let secrets = api
        .list(&ListParams::default().labels(LABEL_LOCATION))
        .await
        .map_err(cluster_error("listing locations", namespace))?;
    let mut locations = secrets
        .items
        .iter()
        .map(NamedLocation::from_secret)
        .collect::<Result<Vec<_>>>()?;
    locations.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(locations)
}

/// Delete location `name` (its Secret only: backups in it stay).
pub async fn delete(client: &kube::Client, namespace: &str, name: &str) -> Result<()> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    match api
        .delete(&secret_name(name), &DeleteParams::default())
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if is_status(&e, 404) => Err(Error::NotFound {
            name: name.to_owned(),
            namespace: namespace.to_owned(),
        }),
        Err(e) => Err(cluster_error("deleting the location", namespace)(e)),
    }
}

/// Make `name` the default location and unmark every other one.
pub async fn set_default(client: &kube::Client, namespace: &str, name: &str) -> Result<()> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    // Fails with NotFound before anything is changed.
    get(client, namespace, name).await?;
    for other in list(client, namespace).await? {
        if other.default && other.name != name {
            let patch =
                serde_json::json!({"metadata": {"annotations": {ANNOTATION_DEFAULT: null}}});
            api.patch(
                &secret_name(&other.name),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
            .map_err(cluster_error(
                "unmarking the previous default location",
                namespace,
            ))?;
        }
    }
    let patch = serde_json::json!({"metadata": {"annotations": {ANNOTATION_DEFAULT: "true"}}});
    api.patch(
        &secret_name(name),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await
    .map_err(cluster_error("marking the default location", namespace))?;
    Ok(())
}

/// The default location, if one is marked.
pub async fn default_location(
    client: &kube::Client,
    namespace: &str,
) -> Result<Option<NamedLocation>> {
    Ok(list(client, namespace)
        .await?
        .into_iter()
        .find(|l| l.default))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::location::spec::Provider;

    #[test]
    fn secret_round_trip() {
        let mut spec = LocationSpec::new(Provider::Minio);
        spec.bucket = Some("backups".into());
        spec.endpoint = Some("https://minio.local:9000".into());
        let location = NamedLocation {
            name: "lab".into(),
            spec,
            credentials: Credentials {
                aws_access_key_id: Some("id".into()),
                aws_secret_access_key: Some("secret".into()),
                ..Credentials::default()
            },
            default: true,
            created: None,
        };
        let secret = location.to_secret("kubectl-backup").unwrap();
        assert_eq!(secret.metadata.name.as_deref(), Some("backup-location-lab"));
        assert_eq!(secret.type_.as_deref(), Some(SECRET_TYPE));
        let labels = secret.metadata.labels.as_ref().unwrap();
        assert_eq!(labels[backup_common::LABEL_EXCLUDE_FROM_BACKUP], "true");
        let data = secret.data.as_ref().unwrap();
        assert_eq!(
            data.keys().collect::<Vec<_>>(),
            ["aws_access_key_id", "aws_secret_access_key", "config.json"]
        );
        let back = NamedLocation::from_secret(&secret).unwrap();
        assert_eq!(back.name, "lab");
        assert_eq!(back.spec, location.spec);
        assert_eq!(back.credentials, location.credentials);
        assert!(back.default);
    }

    #[test]
    fn secret_without_config_is_reported() {
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some("backup-location-x".into()),
                ..ObjectMeta::default()
            },
            ..Secret::default()
        };
        let err = NamedLocation::from_secret(&secret).unwrap_err();
        assert!(err.to_string().contains("config.json"), "{err}");
    }
}

//! Discovery of what the cluster serves, in each group's preferred version.
//!
//! Raw `/api` + `/apis` discovery rather than kube's `Discovery`: it keeps
//! short names and singular names (for `--include-resources deploy`), and
//! fetches only the preferred version of each group, concurrently.

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{APIGroupList, APIResourceList, APIVersions};

use super::Error;
use super::retry::request_with_retry;
use crate::archive::{ResourceKey, ResourceType};

/// A resource type the server lists, at its group's preferred version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveredResource {
    /// `resource.group`.
    pub key: ResourceKey,
    /// Preferred version (without the group).
    pub version: String,
    /// Kind.
    pub kind: String,
    /// Namespaced or cluster-scoped.
    pub namespaced: bool,
    /// Verbs the server allows.
    pub verbs: Vec<String>,
    /// Short names (`deploy`, `cm`).
    pub short_names: Vec<String>,
    /// Singular name (`deployment`); may be empty on old servers.
    pub singular: String,
}

impl DiscoveredResource {
    /// Does the server allow LIST on it?
    pub fn listable(&self) -> bool {
        self.verbs.iter().any(|v| v == "list")
    }

    /// `apiVersion` as objects carry it.
    pub fn api_version(&self) -> String {
        self.resource_type().api_version()
    }

    /// The archive's description of this type.
    pub fn resource_type(&self) -> ResourceType {
        ResourceType {
            key: self.key.clone(),
            version: self.version.clone(),
            kind: self.kind.clone(),
            namespaced: self.namespaced,
        }
    }

    /// URL path of the collection, cluster-wide or in one namespace.
    pub fn collection_path(&self, namespace: Option<&str>) -> String {
        let base = if self.key.group.is_empty() {
            format!("/api/{}", self.version)
        } else {
            format!("/apis/{}/{}", self.key.group, self.version)
        };
        match namespace {
            Some(ns) if self.namespaced => format!("{base}/namespaces/{ns}/{}", self.key.resource),
            _ => format!("{base}/{}", self.key.resource),
        }
    }
}

/// Turn one discovery document into resources (subresources such as
/// `pods/log` are dropped).
pub fn resources_of(group: &str, version: &str, list: APIResourceList) -> Vec<DiscoveredResource> {
    list.resources
        .into_iter()
        .filter(|r| !r.name.contains('/'))
        .map(|r| DiscoveredResource {
            key: ResourceKey::new(r.name, group),
            version: version.to_owned(),
            kind: r.kind,
            namespaced: r.namespaced,
            verbs: r.verbs,
            short_names: r.short_names.unwrap_or_default(),
            singular: r.singular_name,
        })
        .collect()
}

/// Discover every resource type in its group's preferred version.
pub async fn discover(client: &kube::Client) -> Result<Vec<DiscoveredResource>, Error> {
    let core: APIVersions = get(client, "/api").await?;
    let groups: APIGroupList = get(client, "/apis").await?;
    let mut targets: Vec<(String, String)> = Vec::new();
    let core_version = core
        .versions
        .iter()
        .find(|v| v.as_str() == "v1")
        .or_else(|| core.versions.first())
        .cloned()
        .unwrap_or_else(|| "v1".to_owned());
    targets.push((String::new(), core_version));
    for g in groups.groups {
        let version = g
            .preferred_version
            .map(|p| p.version)
            .or_else(|| g.versions.first().map(|v| v.version.clone()));
        if let Some(version) = version {
            targets.push((g.name, version));
        }
    }
    let lists: Vec<Vec<DiscoveredResource>> = futures::stream::iter(targets)
        .map(|(group, version)| async move {
            let path = if group.is_empty() {
                format!("/api/{version}")
            } else {
                format!("/apis/{group}/{version}")
            };
            match get::<APIResourceList>(client, &path).await {
                Ok(list) => Ok(resources_of(&group, &version, list)),
                // An aggregated API whose backend is down (metrics-server…)
                // answers 503: leave it out rather than fail the backup.
                Err(Error::Kube { source, .. }) if is_unavailable(&source) => {
                    tracing::warn!(group, version, "API group unavailable, skipped");
                    Ok(Vec::new())
                }
                Err(e) => Err(e),
            }
        })
        .buffer_unordered(8)
        .try_collect()
        .await?;
    let mut all: Vec<DiscoveredResource> = lists.into_iter().flatten().collect();
    all.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(all)
}

fn is_unavailable(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 503 || s.code == 404)
}

async fn get<T: serde::de::DeserializeOwned>(
    client: &kube::Client,
    path: &str,
) -> Result<T, Error> {
    request_with_retry(client, || {
        http::Request::get(path)
            .header(http::header::ACCEPT, "application/json")
            .body(Vec::new())
            .map_err(kube::Error::HttpError)
    })
    .await
    .map_err(|source| Error::Kube {
        what: format!("discovery GET {path}"),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subresources_are_dropped_and_paths_built() {
        let list: APIResourceList = serde_json::from_value(serde_json::json!({
            "groupVersion": "apps/v1",
            "resources": [
                {"name": "deployments", "singularName": "deployment", "namespaced": true,
                 "kind": "Deployment", "verbs": ["get", "list", "create"], "shortNames": ["deploy"]},
                {"name": "deployments/status", "singularName": "", "namespaced": true,
                 "kind": "Deployment", "verbs": ["get"]}
            ]
        }))
        .unwrap();
        let rs = resources_of("apps", "v1", list);
        assert_eq!(rs.len(), 1);
        let d = &rs[0];
        assert!(d.listable());
        assert_eq!(d.api_version(), "apps/v1");
        assert_eq!(d.collection_path(None), "/apis/apps/v1/deployments");
        assert_eq!(
            d.collection_path(Some("shop")),
            "/apis/apps/v1/namespaces/shop/deployments"
        );
    }
}

//! The webhook's Kubernetes objects, read from the repository's `manifests/`
//! (embedded at build time, so `kubectl apply -k manifests/` and
//! `kubectl backup webhook install` install the same thing) and adjusted for
//! the target namespace, image, policy and certificate.

use std::collections::BTreeMap;

use backup_common::policy::{Mode, Policy, Scope};
use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration, WebhookClientConfig,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use serde::Deserialize as _;
use serde::de::DeserializeOwned;

use super::certs::ServingCerts;

/// The default policy file shipped in `manifests/policy.yaml`.
pub const DEFAULT_POLICY: &str = include_str!("../../../manifests/policy.yaml");

const NAMESPACE: &str = include_str!("../../../manifests/namespace.yaml");
const RBAC: &str = include_str!("../../../manifests/rbac.yaml");
const SERVICE: &str = include_str!("../../../manifests/service.yaml");
const DEPLOYMENT: &str = include_str!("../../../manifests/deployment.yaml");
const PDB: &str = include_str!("../../../manifests/pdb.yaml");
const WEBHOOKS: &str = include_str!("../../../manifests/webhooks.yaml");

/// Name of the Secret holding the serving certificate.
pub const TLS_SECRET: &str = "backup-webhook-tls";
/// Name of the policy ConfigMap.
pub const POLICY_CONFIG_MAP: &str = "backup-webhook-policy";
/// Key of the policy in the ConfigMap.
pub const POLICY_KEY: &str = "policy.yaml";
/// Name of the ClusterRole and ClusterRoleBinding.
pub const CLUSTER_ROLE: &str = "kubectl-backup:backup-webhook";

/// Name of the cluster-scoped webhook configurations of an install in
/// `namespace`. Installs in other namespaces than the default get their own
/// names so they never overwrite each other's registration.
pub fn configuration_name(namespace: &str) -> String {
    if namespace == backup_common::DEFAULT_TOOL_NAMESPACE {
        backup_common::WEBHOOK_NAME.to_owned()
    } else {
        format!("{}-{namespace}", backup_common::WEBHOOK_NAME)
    }
}

/// Name of the ClusterRole and ClusterRoleBinding of an install in `namespace`.
pub fn cluster_role_name(namespace: &str) -> String {
    if namespace == backup_common::DEFAULT_TOOL_NAMESPACE {
        CLUSTER_ROLE.to_owned()
    } else {
        format!("{namespace}:{}", backup_common::WEBHOOK_NAME)
    }
}

/// Why the embedded manifests could not be used (a build defect, not a user error).
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// A manifest does not parse as the expected kind.
    #[error("embedded manifest {file}: {source}")]
    Parse {
        /// Which file.
        file: &'static str,
        /// The YAML error.
        source: serde_yaml::Error,
    },
    /// A manifest file has a different number of documents than expected.
    #[error("embedded manifest {file}: expected document {index}")]
    Missing {
        /// Which file.
        file: &'static str,
        /// The missing document's index.
        index: usize,
    },
}

fn doc<K: DeserializeOwned>(
    file: &'static str,
    text: &str,
    index: usize,
) -> Result<K, ManifestError> {
    let mut documents = Vec::new();
    for d in serde_yaml::Deserializer::from_str(text) {
        let value = serde_yaml::Value::deserialize(d)
            .map_err(|source| ManifestError::Parse { file, source })?;
        if !value.is_null() {
            documents.push(value);
        }
    }
    let value = documents
        .into_iter()
        .nth(index)
        .ok_or(ManifestError::Missing { file, index })?;
    serde_yaml::from_value(value).map_err(|source| ManifestError::Parse { file, source })
}

/// Where the API server reaches the webhook.
#[derive(Debug, Clone)]
pub enum Endpoint {
    /// Through the in-cluster Service in the tool's namespace.
    Service,
    /// At a URL (a webhook running outside the cluster, e.g. in tests):
    /// `/mutate` and `/validate` are appended.
    Url(String),
}

/// Everything `install` creates besides the Secret, the ConfigMap and the
/// webhook configurations.
#[derive(Debug, Clone)]
pub struct Workload {
    /// The tool's namespace.
    pub namespace: Namespace,
    /// The webhook's ServiceAccount.
    pub service_account: ServiceAccount,
    /// Read access to StorageClasses and VolumeSnapshotClasses.
    pub cluster_role: ClusterRole,
    /// Binds it to the ServiceAccount.
    pub cluster_role_binding: ClusterRoleBinding,
    /// The Service the API server calls.
    pub service: Service,
    /// The webhook pods.
    pub deployment: Deployment,
    /// Keeps one replica up through drains.
    pub pdb: PodDisruptionBudget,
}

fn set_namespace(meta: &mut ObjectMeta, namespace: &str) {
    meta.namespace = Some(namespace.to_owned());
}

/// The workload objects for `namespace`, with `image` and `replicas` when given.
pub fn workload(
    namespace: &str,
    image: Option<&str>,
    replicas: Option<i32>,
) -> Result<Workload, ManifestError> {
    let mut ns: Namespace = doc("namespace.yaml", NAMESPACE, 0)?;
    ns.metadata.name = Some(namespace.to_owned());
    let mut service_account: ServiceAccount = doc("rbac.yaml", RBAC, 0)?;
    set_namespace(&mut service_account.metadata, namespace);
    let mut cluster_role: ClusterRole = doc("rbac.yaml", RBAC, 1)?;
    cluster_role.metadata.name = Some(cluster_role_name(namespace));
    let mut cluster_role_binding: ClusterRoleBinding = doc("rbac.yaml", RBAC, 2)?;
    cluster_role_binding.metadata.name = Some(cluster_role_name(namespace));
    cluster_role_binding.role_ref.name = cluster_role_name(namespace);
    for subject in cluster_role_binding.subjects.iter_mut().flatten() {
        subject.namespace = Some(namespace.to_owned());
    }
    let mut service: Service = doc("service.yaml", SERVICE, 0)?;
    set_namespace(&mut service.metadata, namespace);
    let mut deployment: Deployment = doc("deployment.yaml", DEPLOYMENT, 0)?;
    set_namespace(&mut deployment.metadata, namespace);
    if let Some(spec) = deployment.spec.as_mut() {
        if let Some(r) = replicas {
            spec.replicas = Some(r);
        }
        if let Some(image) = image
            && let Some(pod) = spec.template.spec.as_mut()
        {
            for c in &mut pod.containers {
                c.image = Some(image.to_owned());
            }
        }
    }
    let mut pdb: PodDisruptionBudget = doc("pdb.yaml", PDB, 0)?;
    set_namespace(&mut pdb.metadata, namespace);
    Ok(Workload {
        namespace: ns,
        service_account,
        cluster_role,
        cluster_role_binding,
        service,
        deployment,
        pdb,
    })
}

fn managed_labels() -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            "app.kubernetes.io/name".to_owned(),
            backup_common::WEBHOOK_NAME.to_owned(),
        ),
        (
            backup_common::LABEL_MANAGED_BY.to_owned(),
            backup_common::MANAGED_BY.to_owned(),
        ),
    ])
}

/// The policy ConfigMap.
pub fn policy_config_map(namespace: &str, policy_text: &str) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(POLICY_CONFIG_MAP.to_owned()),
            namespace: Some(namespace.to_owned()),
            labels: Some(managed_labels()),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([(
            POLICY_KEY.to_owned(),
            policy_text.to_owned(),
        )])),
        ..ConfigMap::default()
    }
}

/// The `kubernetes.io/tls` Secret with the serving pair and the CA.
pub fn tls_secret(namespace: &str, certs: &ServingCerts) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(TLS_SECRET.to_owned()),
            namespace: Some(namespace.to_owned()),
            labels: Some(managed_labels()),
            ..ObjectMeta::default()
        },
        type_: Some("kubernetes.io/tls".to_owned()),
        data: Some(BTreeMap::from([
            (
                "tls.crt".to_owned(),
                ByteString(certs.cert_pem.clone().into_bytes()),
            ),
            (
                "tls.key".to_owned(),
                ByteString(certs.key_pem.clone().into_bytes()),
            ),
            (
                "ca.crt".to_owned(),
                ByteString(certs.ca_pem.clone().into_bytes()),
            ),
        ])),
        ..Secret::default()
    }
}

/// Which policy a webhook entry serves, and whether it is limited to restored objects.
fn entry_policy(name: &str, policy: &Policy) -> (Mode, Scope) {
    let c = &policy.config;
    match name.split('.').next().unwrap_or("") {
        "snapshotclasses" => (c.snapshot_class.mode, Scope::All),
        "snapshotcontents" => (c.snapshot_class.mode, c.snapshot_class.content_scope),
        "namespaces" => (c.pod_security.mode, c.pod_security.scope),
        "storage" => (c.storage_class.mode, c.storage_class.scope),
        // An entry we do not know: keep it as written.
        _ => (Mode::Mutate, Scope::Restored),
    }
}

fn client_config(
    endpoint: &Endpoint,
    namespace: &str,
    path: &str,
    ca_pem: &str,
) -> WebhookClientConfig {
    let mut config = WebhookClientConfig {
        ca_bundle: Some(ByteString(ca_pem.as_bytes().to_vec())),
        ..WebhookClientConfig::default()
    };
    match endpoint {
        Endpoint::Service => {
            config.service = Some(
                k8s_openapi::api::admissionregistration::v1::ServiceReference {
                    name: backup_common::WEBHOOK_NAME.to_owned(),
                    namespace: namespace.to_owned(),
                    path: Some(path.to_owned()),
                    port: Some(443),
                },
            );
        }
        Endpoint::Url(base) => {
            config.url = Some(format!("{}{path}", base.trim_end_matches('/')));
        }
    }
    config
}

fn namespace_selector(selector: &mut Option<LabelSelector>, namespace: &str) {
    for expr in selector
        .iter_mut()
        .flat_map(|s| s.match_expressions.iter_mut().flatten())
    {
        if expr.key == backup_common::LABEL_NAMESPACE_NAME {
            let mut values = vec!["kube-system".to_owned()];
            if namespace != "kube-system" {
                values.push(namespace.to_owned());
            }
            expr.values = Some(values);
        }
    }
}

/// The webhook configurations for `policy`: policies that are `off` are left
/// out, `scope: all` drops the restore-label objectSelector.
pub fn webhook_configurations(
    policy: &Policy,
    namespace: &str,
    endpoint: &Endpoint,
    ca_pem: &str,
) -> Result<(MutatingWebhookConfiguration, ValidatingWebhookConfiguration), ManifestError> {
    let mut mutating: MutatingWebhookConfiguration = doc("webhooks.yaml", WEBHOOKS, 0)?;
    let mut validating: ValidatingWebhookConfiguration = doc("webhooks.yaml", WEBHOOKS, 1)?;
    mutating.metadata.name = Some(configuration_name(namespace));
    validating.metadata.name = Some(configuration_name(namespace));
    if let Some(hooks) = mutating.webhooks.as_mut() {
        hooks.retain(|w| entry_policy(&w.name, policy).0 != Mode::Off);
        for w in hooks.iter_mut() {
            let path = w
                .client_config
                .service
                .as_ref()
                .and_then(|s| s.path.clone())
                .unwrap_or_else(|| "/mutate".into());
            w.client_config = client_config(endpoint, namespace, &path, ca_pem);
            namespace_selector(&mut w.namespace_selector, namespace);
            if entry_policy(&w.name, policy).1 == Scope::All {
                w.object_selector = None;
            }
        }
    }
    if let Some(hooks) = validating.webhooks.as_mut() {
        hooks.retain(|w| entry_policy(&w.name, policy).0 != Mode::Off);
        for w in hooks.iter_mut() {
            let path = w
                .client_config
                .service
                .as_ref()
                .and_then(|s| s.path.clone())
                .unwrap_or_else(|| "/validate".into());
            w.client_config = client_config(endpoint, namespace, &path, ca_pem);
            namespace_selector(&mut w.namespace_selector, namespace);
            if entry_policy(&w.name, policy).1 == Scope::All {
                w.object_selector = None;
            }
        }
    }
    Ok((mutating, validating))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_policy_is_the_built_in_default() {
        let p = Policy::from_yaml(DEFAULT_POLICY).unwrap();
        assert_eq!(p, Policy::default());
    }

    #[test]
    fn workload_is_rewritten_for_the_namespace_and_image() {
        let w = workload("tools", Some("example/webhook:1"), Some(3)).unwrap();
        assert_eq!(w.namespace.metadata.name.as_deref(), Some("tools"));
        assert_eq!(w.deployment.metadata.namespace.as_deref(), Some("tools"));
        let spec = w.deployment.spec.unwrap();
        assert_eq!(spec.replicas, Some(3));
        let pod = spec.template.spec.unwrap();
        assert_eq!(
            pod.containers[0].image.as_deref(),
            Some("example/webhook:1")
        );
        let sc = pod.containers[0].security_context.clone().unwrap();
        assert_eq!(sc.read_only_root_filesystem, Some(true));
        assert_eq!(pod.security_context.unwrap().run_as_non_root, Some(true));
        assert_eq!(
            w.cluster_role_binding.subjects.unwrap()[0]
                .namespace
                .as_deref(),
            Some("tools")
        );
        assert_eq!(w.pdb.metadata.namespace.as_deref(), Some("tools"));
        assert_eq!(
            w.cluster_role.metadata.name.as_deref(),
            Some("tools:backup-webhook")
        );
        let default = workload(backup_common::DEFAULT_TOOL_NAMESPACE, None, None).unwrap();
        assert_eq!(default.cluster_role_binding.role_ref.name, CLUSTER_ROLE);
        // Least privilege: read-only verbs only.
        for rule in w.cluster_role.rules.unwrap() {
            for verb in rule.verbs {
                assert!(["get", "list", "watch"].contains(&verb.as_str()), "{verb}");
            }
        }
    }

    #[test]
    fn configurations_follow_the_good_practices() {
        let policy = Policy::default();
        let (m, v) = webhook_configurations(&policy, "tools", &Endpoint::Service, "CA").unwrap();
        assert_eq!(m.metadata.name.as_deref(), Some("backup-webhook-tools"));
        let mhooks = m.webhooks.unwrap();
        let vhooks = v.webhooks.unwrap();
        assert_eq!(mhooks.len(), 4);
        assert_eq!(vhooks.len(), 4);
        for w in &mhooks {
            assert_eq!(w.admission_review_versions, vec!["v1".to_owned()]);
            assert_eq!(w.side_effects, "None");
            assert_eq!(w.match_policy.as_deref(), Some("Equivalent"));
            assert_eq!(w.failure_policy.as_deref(), Some("Ignore"));
            assert_eq!(w.reinvocation_policy.as_deref(), Some("IfNeeded"));
            assert!(w.timeout_seconds.unwrap() <= 10);
            let svc = w.client_config.service.as_ref().unwrap();
            assert_eq!(
                (svc.namespace.as_str(), svc.path.as_deref()),
                ("tools", Some("/mutate"))
            );
            assert_eq!(w.client_config.ca_bundle.as_ref().unwrap().0, b"CA");
        }
        for w in &vhooks {
            assert_eq!(w.failure_policy.as_deref(), Some("Fail"));
            assert_eq!(
                w.client_config.service.as_ref().unwrap().path.as_deref(),
                Some("/validate")
            );
        }
        let ns_hook = vhooks
            .iter()
            .find(|w| w.name.starts_with("namespaces."))
            .unwrap();
        let expr = &ns_hook
            .namespace_selector
            .as_ref()
            .unwrap()
            .match_expressions
            .as_ref()
            .unwrap()[0];
        assert_eq!(expr.key, "kubernetes.io/metadata.name");
        assert_eq!(expr.operator, "NotIn");
        assert_eq!(
            expr.values.as_deref().unwrap(),
            ["kube-system".to_owned(), "tools".to_owned()]
        );
        assert!(ns_hook.object_selector.is_some());
        let vsc = vhooks
            .iter()
            .find(|w| w.name.starts_with("snapshotclasses."))
            .unwrap();
        assert!(vsc.object_selector.is_none());
    }

    #[test]
    fn scope_all_and_off_reshape_the_registration() {
        let policy =
            Policy::from_yaml("podSecurity: {scope: all}\nstorageClass: {mode: off}\n").unwrap();
        let url = Endpoint::Url("https://127.0.0.1:8443/".into());
        let (m, v) = webhook_configurations(&policy, "tools", &url, "CA").unwrap();
        let mhooks = m.webhooks.unwrap();
        assert_eq!(mhooks.len(), 3);
        assert!(mhooks.iter().all(|w| !w.name.starts_with("storage.")));
        let ns = mhooks
            .iter()
            .find(|w| w.name.starts_with("namespaces."))
            .unwrap();
        assert!(ns.object_selector.is_none());
        assert_eq!(
            ns.client_config.url.as_deref(),
            Some("https://127.0.0.1:8443/mutate")
        );
        assert!(ns.client_config.service.is_none());
        let vhooks = v.webhooks.unwrap();
        assert_eq!(
            vhooks[0].client_config.url.as_deref(),
            Some("https://127.0.0.1:8443/validate")
        );
    }
}

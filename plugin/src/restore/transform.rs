//! What a backed-up object must look like to be created on the target: the
//! transforms of a restore, as pure functions over `serde_json::Value`.
//!
//! The rules (documented for users in `docs/restore.md`):
//! - server-set metadata is stripped (uid, resourceVersion, generation,
//!   creationTimestamp, managedFields, deletion fields, selfLink) and so is
//!   `status`: the target's controllers recompute it;
//! - namespaces are renamed by `--namespace-mapping`, everywhere a namespace is
//!   named: `metadata.namespace`, Namespace names, PV `claimRef`, RoleBinding
//!   subjects, webhook / APIService / CRD-conversion service references,
//!   VolumeSnapshotContent `volumeSnapshotRef`;
//! - storage classes are renamed by `--storage-class-map` in PVCs, PVs and
//!   StatefulSet volumeClaimTemplates;
//! - Service `clusterIP(s)` are dropped (except headless `None`) and so are
//!   auto-assigned node ports unless `--preserve-nodeports`;
//! - PVC binding annotations go, and `volumeName` too unless its PV is
//!   restored in the same run; Pod `nodeName`, `priority` and the injected
//!   service-account token volumes go;
//! - ownerReferences are kept only for owners restored in the same run and
//!   rewritten to the owners' new uids at apply time ([`resolve_owner_refs`]);
//! - every object is labelled with the backup and restore names.

use std::collections::BTreeMap;

use backup_common::{LABEL_BACKUP_NAME, LABEL_RESTORE_NAME};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

/// Annotations the PV controller and schedulers put on a bound PVC. They tie
/// the claim to a volume and a node of the source cluster.
pub const PVC_BINDING_ANNOTATIONS: [&str; 5] = [
    "pv.kubernetes.io/bind-completed",
    "pv.kubernetes.io/bound-by-controller",
    "volume.beta.kubernetes.io/storage-provisioner",
    "volume.kubernetes.io/storage-provisioner",
    "volume.kubernetes.io/selected-node",
];

/// Metadata fields the API server sets; never sent back.
const SERVER_SET_METADATA: [&str; 7] = [
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "managedFields",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
];

/// The beta annotation some PVCs and PVs still carry instead of `storageClassName`.
const BETA_STORAGE_CLASS: &str = "volume.beta.kubernetes.io/storage-class";

/// Options that apply to every object of a restore.
#[derive(Debug, Clone, Default)]
pub struct TransformOptions {
    /// The backup being restored (label value).
    pub backup_name: String,
    /// This restore's name (label value).
    pub restore_name: String,
    /// Source namespace → target namespace.
    pub namespace_mapping: BTreeMap<String, String>,
    /// Source storage class → target storage class.
    pub storage_class_map: BTreeMap<String, String>,
    /// Keep Services' node ports even when they were auto-assigned.
    pub preserve_nodeports: bool,
}

impl TransformOptions {
    /// The target namespace for a source namespace.
    pub fn map_namespace<'a>(&'a self, namespace: &'a str) -> &'a str {
        self.namespace_mapping
            .get(namespace)
            .map(String::as_str)
            .unwrap_or(namespace)
    }

    fn map_class<'a>(&'a self, class: &'a str) -> &'a str {
        self.storage_class_map
            .get(class)
            .map(String::as_str)
            .unwrap_or(class)
    }
}

/// What the restore knows about one item beyond the item itself.
#[derive(Debug, Clone, Default)]
pub struct ItemFacts {
    /// For a PVC: the PV named by its `volumeName` is restored in this run.
    pub volume_restored: bool,
    /// For a PVC restored from a CSI snapshot: the VolumeSnapshot (in the
    /// claim's target namespace) to use as its `dataSource`.
    pub from_snapshot: Option<String>,
}

/// Parse `a:b,c:d` (`--namespace-mapping`) or `a=b,c=d` (`--storage-class-map`).
pub fn parse_mapping(value: &str, separator: char) -> Result<BTreeMap<String, String>, String> {
    let mut map = BTreeMap::new();
    for pair in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (from, to) = pair
            .split_once(separator)
            .map(|(f, t)| (f.trim(), t.trim()))
            .filter(|(f, t)| !f.is_empty() && !t.is_empty())
            .ok_or_else(|| format!("{pair:?} is not of the form old{separator}new"))?;
        if let Some(previous) = map.insert(from.to_owned(), to.to_owned())
            && previous != to
        {
            return Err(format!(
                "{from:?} is mapped twice ({previous:?} and {to:?})"
            ));
        }
    }
    Ok(map)
}

/// Transform one backed-up object (of API `group`, plural `resource`) into
/// what the restore creates. Owner references are left for
/// [`resolve_owner_refs`]; everything else happens here.
///
/// `obj` may be only the head of the object (see [`split`]) when the kind has
/// no rule of its own: what is common to every kind touches only the head.
pub fn transform(
    group: &str,
    resource: &str,
    obj: &mut Value,
    options: &TransformOptions,
    facts: &ItemFacts,
) {
    let Some(root) = obj.as_object_mut() else {
        return;
    };
    for field in DROPPED_FIELDS {
        root.remove(field);
    }
    let metadata = object_entry(root, "metadata");
    for field in SERVER_SET_METADATA {
        metadata.remove(field);
    }
    metadata.remove("selfLink");
    if let Some(ns) = metadata.get("namespace").and_then(Value::as_str) {
        let mapped = options.map_namespace(ns).to_owned();
        metadata.insert("namespace".into(), Value::String(mapped));
    }
    let labels = object_entry(metadata, "labels");
    labels.insert(
        LABEL_BACKUP_NAME.into(),
        Value::String(options.backup_name.clone()),
    );
    labels.insert(
        LABEL_RESTORE_NAME.into(),
        Value::String(options.restore_name.clone()),
    );
    if let Some(rule) = Rule::of(group, resource, root) {
        rule.apply(root, options, facts);
    }
}

/// Top-level fields every transform may read or write. A kind without a
/// [`Rule`] needs no other field parsed.
const HEAD_FIELDS: [&str; 4] = ["apiVersion", "kind", "metadata", "type"];

/// Top-level fields no restored object keeps: the target's controllers
/// recompute the status.
const DROPPED_FIELDS: [&str; 1] = ["status"];

/// The Secret type whose data the target's token controller fills in.
pub const SERVICE_ACCOUNT_TOKEN: &str = "kubernetes.io/service-account-token";

/// What a kind needs beyond the common transform.
#[derive(Debug, Clone, Copy)]
enum Rule {
    Namespace,
    Service,
    Pod,
    Claim,
    Volume,
    TokenSecret,
    ServiceAccount,
    StatefulSet,
    Job,
    BindingSubjects,
    WebhookConfiguration,
    ApiService,
    CustomResourceDefinition,
    SnapshotContent,
}

impl Rule {
    /// The rule for an object of `group`/`resource` whose head is `root`.
    fn of(group: &str, resource: &str, root: &Map<String, Value>) -> Option<Rule> {
        Some(match (group, resource) {
            ("", "namespaces") => Rule::Namespace,
            ("", "services") => Rule::Service,
            ("", "pods") => Rule::Pod,
            ("", "persistentvolumeclaims") => Rule::Claim,
            ("", "persistentvolumes") => Rule::Volume,
            ("", "secrets")
                if root.get("type").and_then(Value::as_str) == Some(SERVICE_ACCOUNT_TOKEN) =>
            {
                Rule::TokenSecret
            }
            ("", "serviceaccounts") => Rule::ServiceAccount,
            ("apps", "statefulsets") => Rule::StatefulSet,
            ("batch", "jobs") => Rule::Job,
            ("rbac.authorization.k8s.io", "rolebindings" | "clusterrolebindings") => {
                Rule::BindingSubjects
            }
            (
                "admissionregistration.k8s.io",
                "mutatingwebhookconfigurations" | "validatingwebhookconfigurations",
            ) => Rule::WebhookConfiguration,
            ("apiregistration.k8s.io", "apiservices") => Rule::ApiService,
            ("apiextensions.k8s.io", "customresourcedefinitions") => Rule::CustomResourceDefinition,
            ("snapshot.storage.k8s.io", "volumesnapshotcontents") => Rule::SnapshotContent,
            _ => return None,
        })
    }

    fn apply(self, root: &mut Map<String, Value>, options: &TransformOptions, facts: &ItemFacts) {
        match self {
            Rule::Namespace => namespace(root, options),
            Rule::Service => service(root, options),
            Rule::Pod => pod_spec(object_entry(root, "spec")),
            Rule::Claim => claim(root, options, facts),
            Rule::Volume => volume(root, options),
            Rule::TokenSecret => token_secret(root),
            Rule::ServiceAccount => service_account(root),
            Rule::StatefulSet => stateful_set(root, options),
            Rule::Job => job(root),
            Rule::BindingSubjects => binding_subjects(root, options),
            Rule::WebhookConfiguration => {
                if let Some(hooks) = root.get_mut("webhooks").and_then(Value::as_array_mut) {
                    for hook in hooks {
                        map_service_namespace(hook.pointer_mut("/clientConfig/service"), options);
                    }
                }
            }
            Rule::ApiService => {
                map_service_namespace(
                    root.get_mut("spec").and_then(|s| s.get_mut("service")),
                    options,
                );
            }
            Rule::CustomResourceDefinition => {
                let service = root
                    .get_mut("spec")
                    .and_then(|s| s.pointer_mut("/conversion/webhook/clientConfig/service"));
                map_service_namespace(service, options);
            }
            Rule::SnapshotContent => {
                if let Some(reference) = root
                    .get_mut("spec")
                    .and_then(|s| s.get_mut("volumeSnapshotRef"))
                    .and_then(Value::as_object_mut)
                {
                    strip_reference(reference, options);
                }
            }
        }
    }
}

/// Top-level fields of an object kept as their archive text: no transform
/// reads or changes them.
#[derive(Debug, Clone, Default)]
pub struct Untouched(Vec<(String, Box<RawValue>)>);

impl Untouched {
    /// No fields.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl PartialEq for Untouched {
    fn eq(&self, other: &Self) -> bool {
        self.0.len() == other.0.len()
            && self
                .0
                .iter()
                .zip(&other.0)
                .all(|((k1, v1), (k2, v2))| k1 == k2 && v1.get() == v2.get())
    }
}

/// Read an object's archive text for a restore: the fields the transforms
/// of its kind read or change are parsed, the others stay text
/// ([`Untouched`]), and the fields every restore drops are left out. A kind
/// with a rule of its own is parsed whole. [`to_body`] puts the two back
/// together.
pub fn split(group: &str, resource: &str, raw: &[u8]) -> serde_json::Result<(Value, Untouched)> {
    // Whether a Secret has a rule depends on its type; every other kind's
    // rule depends on its group and resource alone.
    if Rule::of(group, resource, &Map::new()).is_some() {
        let whole: Map<String, Value> = serde_json::from_slice(raw)?;
        return Ok((Value::Object(whole), Untouched::default()));
    }
    let Parts { mut head, rest } = serde_json::from_slice(raw)?;
    if Rule::of(group, resource, &head).is_some() {
        for (key, value) in rest {
            head.insert(key, serde_json::from_str(value.get())?);
        }
        return Ok((Value::Object(head), Untouched::default()));
    }
    Ok((Value::Object(head), Untouched(rest)))
}

/// An object read in one pass: the head fields parsed, the dropped ones
/// skipped, the others kept as their text.
struct Parts {
    head: Map<String, Value>,
    rest: Vec<(String, Box<RawValue>)>,
}

impl<'de> Deserialize<'de> for Parts {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Fields;
        impl<'de> serde::de::Visitor<'de> for Fields {
            type Value = Parts;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Parts, A::Error> {
                let mut parts = Parts {
                    head: Map::new(),
                    rest: Vec::new(),
                };
                while let Some(key) = map.next_key::<String>()? {
                    if HEAD_FIELDS.contains(&key.as_str()) {
                        let value: Value = map.next_value()?;
                        parts.head.insert(key, value);
                    } else if DROPPED_FIELDS.contains(&key.as_str()) {
                        map.next_value::<serde::de::IgnoredAny>()?;
                    } else {
                        let value: Box<RawValue> = map.next_value()?;
                        parts.rest.retain(|(k, _)| *k != key);
                        parts.rest.push((key, value));
                    }
                }
                Ok(parts)
            }
        }
        deserializer.deserialize_map(Fields)
    }
}

/// The JSON text of an object made of a parsed part and untouched fields
/// (a field in both is taken from the parsed part).
pub fn to_body(object: &Value, untouched: &Untouched) -> serde_json::Result<Vec<u8>> {
    struct Body<'a>(&'a Map<String, Value>, &'a Untouched);
    impl Serialize for Body<'_> {
        fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            use serde::ser::SerializeMap;
            let Body(parsed, untouched) = self;
            let mut map = serializer.serialize_map(None)?;
            for (key, value) in parsed.iter() {
                map.serialize_entry(key, value)?;
            }
            for (key, value) in &untouched.0 {
                if !parsed.contains_key(key) {
                    map.serialize_entry(key, value)?;
                }
            }
            map.end()
        }
    }
    match object {
        Value::Object(parsed) if !untouched.is_empty() => {
            serde_json::to_vec(&Body(parsed, untouched))
        }
        _ => serde_json::to_vec(object),
    }
}

/// The `metadata` (or any) sub-object, created empty when missing or not an object.
fn object_entry<'a>(map: &'a mut Map<String, Value>, key: &str) -> &'a mut Map<String, Value> {
    let entry = map.entry(key).or_insert_with(|| json!({}));
    if !entry.is_object() {
        *entry = json!({});
    }
    match entry {
        Value::Object(m) => m,
        // Just made an object above.
        _ => unreachable!("entry was replaced by an object"),
    }
}

fn namespace(root: &mut Map<String, Value>, options: &TransformOptions) {
    let metadata = object_entry(root, "metadata");
    let Some(name) = metadata.get("name").and_then(Value::as_str) else {
        return;
    };
    let mapped = options.map_namespace(name).to_owned();
    metadata.insert("name".into(), Value::String(mapped.clone()));
    // The API server sets this immutable label itself; keep it consistent
    // with the new name rather than sending the source's.
    let labels = object_entry(metadata, "labels");
    if labels.contains_key(backup_common::LABEL_NAMESPACE_NAME) {
        labels.insert(
            backup_common::LABEL_NAMESPACE_NAME.into(),
            Value::String(mapped),
        );
    }
}

fn service(root: &mut Map<String, Value>, options: &TransformOptions) {
    let explicit_ports = explicit_node_ports(root);
    let spec = object_entry(root, "spec");
    let headless = spec.get("clusterIP").and_then(Value::as_str) == Some("None");
    if !headless {
        spec.remove("clusterIP");
        spec.remove("clusterIPs");
    }
    if options.preserve_nodeports {
        return;
    }
    if !explicit_ports.contains(&health_check_marker()) && spec.contains_key("healthCheckNodePort")
    {
        spec.remove("healthCheckNodePort");
    }
    if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
        for port in ports.iter_mut().filter_map(Value::as_object_mut) {
            let keep = port
                .get("nodePort")
                .and_then(Value::as_i64)
                .is_some_and(|p| explicit_ports.contains(&p));
            if !keep {
                port.remove("nodePort");
            }
        }
    }
}

/// A value that is never a port, standing for "healthCheckNodePort was set explicitly".
fn health_check_marker() -> i64 {
    -1
}

/// Node ports a user wrote down themselves, as recorded by `kubectl apply`'s
/// last-applied-configuration annotation (the only trace of intent a Service
/// keeps). Velero uses the same signal.
fn explicit_node_ports(root: &Map<String, Value>) -> Vec<i64> {
    let Some(applied) = root
        .get("metadata")
        .and_then(|m| m.pointer("/annotations/kubectl.kubernetes.io~1last-applied-configuration"))
        .and_then(Value::as_str)
        .and_then(|s| serde_json::from_str::<Value>(s).ok())
    else {
        return Vec::new();
    };
    let mut ports: Vec<i64> = applied
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| p.get("nodePort").and_then(Value::as_i64))
        .collect();
    if applied.pointer("/spec/healthCheckNodePort").is_some() {
        ports.push(health_check_marker());
    }
    ports
}

/// Pod specs (also inside templates are left alone: only Pods are bound to a node).
fn pod_spec(spec: &mut Map<String, Value>) {
    spec.remove("nodeName");
    // The Priority admission plugin computes `priority` from the class and
    // refuses a pod whose value disagrees with the target's class.
    spec.remove("priority");
    // The ServiceAccount admission plugin injects the token volume
    // (`kube-api-access-*`, or a legacy `<sa>-token-*` secret) and refuses a
    // pod that already names one it did not create.
    let injected: Vec<String> = spec
        .get("volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|v| v.get("name").and_then(Value::as_str))
        .filter(|name| name.starts_with("kube-api-access-") || is_legacy_token_volume(name))
        .map(str::to_owned)
        .collect();
    if injected.is_empty() {
        return;
    }
    if let Some(volumes) = spec.get_mut("volumes").and_then(Value::as_array_mut) {
        volumes.retain(|v| {
            v.get("name")
                .and_then(Value::as_str)
                .is_none_or(|n| !injected.iter().any(|i| i == n))
        });
    }
    for list in ["containers", "initContainers", "ephemeralContainers"] {
        if let Some(containers) = spec.get_mut(list).and_then(Value::as_array_mut) {
            for container in containers {
                if let Some(mounts) = container
                    .get_mut("volumeMounts")
                    .and_then(Value::as_array_mut)
                {
                    mounts.retain(|m| {
                        m.get("name")
                            .and_then(Value::as_str)
                            .is_none_or(|n| !injected.iter().any(|i| i == n))
                    });
                }
            }
        }
    }
}

/// `default-token-abcde`: the secret volume of pre-1.24 clusters.
fn is_legacy_token_volume(name: &str) -> bool {
    name.rsplit_once("-token-").is_some_and(|(sa, suffix)| {
        !sa.is_empty() && suffix.len() == 5 && suffix.bytes().all(|b| b.is_ascii_alphanumeric())
    })
}

fn claim(root: &mut Map<String, Value>, options: &TransformOptions, facts: &ItemFacts) {
    let metadata = object_entry(root, "metadata");
    if let Some(annotations) = metadata
        .get_mut("annotations")
        .and_then(Value::as_object_mut)
    {
        for key in PVC_BINDING_ANNOTATIONS {
            annotations.remove(key);
        }
        map_beta_class(annotations, options);
    }
    let spec = object_entry(root, "spec");
    map_class_field(spec, options);
    if let Some(snapshot) = &facts.from_snapshot {
        // A new volume is provisioned from the snapshot: the old one is not ours.
        spec.remove("volumeName");
        spec.remove("dataSourceRef");
        spec.insert(
            "dataSource".into(),
            json!({"apiGroup": "snapshot.storage.k8s.io", "kind": "VolumeSnapshot", "name": snapshot}),
        );
    } else if !facts.volume_restored {
        spec.remove("volumeName");
    }
}

fn volume(root: &mut Map<String, Value>, options: &TransformOptions) {
    if let Some(annotations) = root
        .get_mut("metadata")
        .and_then(|m| m.get_mut("annotations"))
        .and_then(Value::as_object_mut)
    {
        map_beta_class(annotations, options);
    }
    let spec = object_entry(root, "spec");
    map_class_field(spec, options);
    if let Some(claim_ref) = spec.get_mut("claimRef").and_then(Value::as_object_mut) {
        // The claim gets a new uid: a PV still holding the old one would be
        // released instead of bound.
        strip_reference(claim_ref, options);
    }
}

/// An object reference to a restored object: drop its uid and resourceVersion, map its namespace.
fn strip_reference(reference: &mut Map<String, Value>, options: &TransformOptions) {
    reference.remove("uid");
    reference.remove("resourceVersion");
    if let Some(ns) = reference.get("namespace").and_then(Value::as_str) {
        let mapped = options.map_namespace(ns).to_owned();
        reference.insert("namespace".into(), Value::String(mapped));
    }
}

fn map_class_field(spec: &mut Map<String, Value>, options: &TransformOptions) {
    if let Some(class) = spec.get("storageClassName").and_then(Value::as_str) {
        let mapped = options.map_class(class).to_owned();
        spec.insert("storageClassName".into(), Value::String(mapped));
    }
}

fn map_beta_class(annotations: &mut Map<String, Value>, options: &TransformOptions) {
    if let Some(class) = annotations.get(BETA_STORAGE_CLASS).and_then(Value::as_str) {
        let mapped = options.map_class(class).to_owned();
        annotations.insert(BETA_STORAGE_CLASS.into(), Value::String(mapped));
    }
}

fn stateful_set(root: &mut Map<String, Value>, options: &TransformOptions) {
    let Some(templates) = root
        .get_mut("spec")
        .and_then(|s| s.get_mut("volumeClaimTemplates"))
        .and_then(Value::as_array_mut)
    else {
        return;
    };
    for template in templates.iter_mut().filter_map(Value::as_object_mut) {
        if let Some(annotations) = template
            .get_mut("metadata")
            .and_then(|m| m.get_mut("annotations"))
            .and_then(Value::as_object_mut)
        {
            map_beta_class(annotations, options);
        }
        if let Some(spec) = template.get_mut("spec").and_then(Value::as_object_mut) {
            map_class_field(spec, options);
        }
        template.remove("status");
    }
}

/// Jobs get a generated selector on the `controller-uid` of the Job; sending
/// it back without `manualSelector: true` is refused, and it names the old uid.
fn job(root: &mut Map<String, Value>) {
    let spec = object_entry(root, "spec");
    if spec.get("manualSelector").and_then(Value::as_bool) == Some(true) {
        return;
    }
    spec.remove("selector");
    if let Some(labels) = spec
        .get_mut("template")
        .and_then(|t| t.pointer_mut("/metadata/labels"))
        .and_then(Value::as_object_mut)
    {
        labels.remove("controller-uid");
        labels.remove("batch.kubernetes.io/controller-uid");
    }
}

/// A token Secret a user created: the target's token controller fills in a
/// token signed by the target, as long as the data and the old account uid are gone.
fn token_secret(root: &mut Map<String, Value>) {
    if let Some(data) = root.get_mut("data").and_then(Value::as_object_mut) {
        for key in ["token", "ca.crt", "namespace"] {
            data.remove(key);
        }
    }
    if let Some(annotations) = root
        .get_mut("metadata")
        .and_then(|m| m.get_mut("annotations"))
        .and_then(Value::as_object_mut)
    {
        annotations.remove("kubernetes.io/service-account.uid");
    }
}

/// Drop references to auto-created token Secrets, which are not restored.
fn service_account(root: &mut Map<String, Value>) {
    let Some(name) = root
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .map(str::to_owned)
    else {
        return;
    };
    let prefix = format!("{name}-token-");
    if let Some(secrets) = root.get_mut("secrets").and_then(Value::as_array_mut) {
        secrets.retain(|s| {
            s.get("name")
                .and_then(Value::as_str)
                .is_none_or(|n| !(n.starts_with(&prefix) && n.len() == prefix.len() + 5))
        });
    }
}

fn binding_subjects(root: &mut Map<String, Value>, options: &TransformOptions) {
    if let Some(subjects) = root.get_mut("subjects").and_then(Value::as_array_mut) {
        for subject in subjects.iter_mut().filter_map(Value::as_object_mut) {
            if subject.get("kind").and_then(Value::as_str) == Some("ServiceAccount")
                && let Some(ns) = subject.get("namespace").and_then(Value::as_str)
            {
                let mapped = options.map_namespace(ns).to_owned();
                subject.insert("namespace".into(), Value::String(mapped));
            }
        }
    }
}

fn map_service_namespace(service: Option<&mut Value>, options: &TransformOptions) {
    if let Some(service) = service.and_then(Value::as_object_mut)
        && let Some(ns) = service.get("namespace").and_then(Value::as_str)
    {
        let mapped = options.map_namespace(ns).to_owned();
        service.insert("namespace".into(), Value::String(mapped));
    }
}

// === owner references ===

/// The identity of an object in the backup, in source terms: API group, kind,
/// source namespace (`None` when cluster-scoped) and name. Owner references
/// are resolved through it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ObjectKey {
    /// API group, `""` for core.
    pub group: String,
    /// Kind.
    pub kind: String,
    /// Source namespace, `None` for cluster-scoped objects.
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
}

/// The group of an `apiVersion` (`apps/v1` → `apps`, `v1` → ``).
pub fn group_of(api_version: &str) -> &str {
    api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("")
}

/// The candidate keys of an owner reference of an object in (source)
/// `namespace`: owners are in the same namespace or cluster-scoped.
pub fn owner_keys(owner_ref: &Value, namespace: Option<&str>) -> Option<[ObjectKey; 2]> {
    let api_version = owner_ref.get("apiVersion").and_then(Value::as_str)?;
    let kind = owner_ref.get("kind").and_then(Value::as_str)?;
    let name = owner_ref.get("name").and_then(Value::as_str)?;
    let key = |ns: Option<&str>| ObjectKey {
        group: group_of(api_version).to_owned(),
        kind: kind.to_owned(),
        namespace: ns.map(str::to_owned),
        name: name.to_owned(),
    };
    Some([key(namespace), key(None)])
}

/// What became of an object's owner references at apply time.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OwnerRefs {
    /// References whose owner is not restored in this run: dropped (a
    /// reference to an absent uid would let the garbage collector delete
    /// the restored object).
    pub dropped: usize,
    /// References to owners restored in this run that have no uid yet
    /// (they are in a later tier): set by a patch once the owners exist.
    pub pending: Vec<Value>,
}

/// Rewrite `obj`'s ownerReferences (in place) for the target: keep those
/// whose owner is restored in this run (`restored`), with the owner's new uid
/// (`uid_of`). References whose owner has no uid yet are removed from `obj`
/// and returned in [`OwnerRefs::pending`] with the source uid still in them.
pub fn resolve_owner_refs(
    obj: &mut Value,
    source_namespace: Option<&str>,
    restored: impl Fn(&ObjectKey) -> bool,
    uid_of: impl Fn(&ObjectKey) -> Option<String>,
) -> OwnerRefs {
    let mut result = OwnerRefs::default();
    let Some(metadata) = obj.get_mut("metadata").and_then(Value::as_object_mut) else {
        return result;
    };
    let Some(refs) = metadata.remove("ownerReferences") else {
        return result;
    };
    let mut kept = Vec::new();
    for mut owner_ref in refs.as_array().cloned().unwrap_or_default() {
        let Some(keys) = owner_keys(&owner_ref, source_namespace) else {
            result.dropped += 1;
            continue;
        };
        let Some(key) = keys.iter().find(|k| restored(k)) else {
            result.dropped += 1;
            continue;
        };
        match uid_of(key) {
            Some(uid) => {
                if let Some(r) = owner_ref.as_object_mut() {
                    r.insert("uid".into(), Value::String(uid));
                }
                kept.push(owner_ref);
            }
            None => result.pending.push(owner_ref),
        }
    }
    if !kept.is_empty() {
        metadata.insert("ownerReferences".into(), Value::Array(kept));
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> TransformOptions {
        TransformOptions {
            backup_name: "nightly".into(),
            restore_name: "nightly-r1".into(),
            namespace_mapping: parse_mapping("shop:shop-copy", ':').unwrap(),
            storage_class_map: parse_mapping("gp2=gp3", '=').unwrap(),
            preserve_nodeports: false,
        }
    }

    fn run(group: &str, resource: &str, mut obj: Value, facts: &ItemFacts) -> Value {
        transform(group, resource, &mut obj, &options(), facts);
        obj
    }

    /// Transform the archive text of an object the way a restore reads it:
    /// split, transform the parsed part, put the body together.
    fn run_split(group: &str, resource: &str, obj: &Value) -> (Value, Untouched) {
        let raw = serde_json::to_vec(obj).unwrap();
        let (mut parsed, untouched) = split(group, resource, &raw).unwrap();
        transform(
            group,
            resource,
            &mut parsed,
            &options(),
            &ItemFacts::default(),
        );
        let body = to_body(&parsed, &untouched).unwrap();
        (serde_json::from_slice(&body).unwrap(), untouched)
    }

    #[test]
    fn a_split_object_transforms_as_the_whole_object_does() {
        let meta = |name: &str| {
            json!({"name": name, "namespace": "shop", "uid": "u1", "resourceVersion": "7",
                "labels": {"app": "web"}, "managedFields": [{"manager": "kubectl"}],
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": "d1", "controller": true}]})
        };
        let cases = [
            (
                "",
                "configmaps",
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta("c"),
                "data": {"k": "line\nnext \"quoted\" \u{e9}"}, "binaryData": {"b": "AAE="}}),
            ),
            (
                "",
                "secrets",
                json!({"apiVersion": "v1", "kind": "Secret", "metadata": meta("s"),
                "type": "Opaque", "data": {"password": "cGFzcw=="}, "immutable": true}),
            ),
            (
                "",
                "secrets",
                json!({"apiVersion": "v1", "kind": "Secret", "metadata": meta("t"),
                "type": SERVICE_ACCOUNT_TOKEN, "data": {"token": "dG9r", "extra": "eA=="}}),
            ),
            (
                "apps",
                "deployments",
                json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta("web"),
                "spec": {"replicas": 2, "template": {"spec": {"nodeName": "kept-in-templates"}}},
                "status": {"replicas": 2}}),
            ),
            (
                "",
                "services",
                json!({"apiVersion": "v1", "kind": "Service", "metadata": meta("svc"),
                "spec": {"clusterIP": "10.0.0.1", "clusterIPs": ["10.0.0.1"], "ports": [{"port": 80, "nodePort": 30080}]},
                "status": {"loadBalancer": {}}}),
            ),
            (
                "",
                "pods",
                json!({"apiVersion": "v1", "kind": "Pod", "metadata": meta("p"),
                "spec": {"nodeName": "n1", "priority": 0, "containers": []}, "status": {"phase": "Running"}}),
            ),
            (
                "example.com",
                "widgets",
                json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": meta("w"),
                "spec": {"size": 1.5, "tags": [null, true, -3]}, "status": {"ready": true}}),
            ),
        ];
        for (group, resource, obj) in cases {
            let whole = run(group, resource, obj.clone(), &ItemFacts::default());
            let (split_result, untouched) = run_split(group, resource, &obj);
            assert_eq!(split_result, whole, "{resource}");
            assert!(split_result.get("status").is_none(), "{resource}");
            // Kinds with a rule of their own are parsed whole; the others keep
            // their body as text.
            let ruled =
                matches!(resource, "services" | "pods") || obj["type"] == SERVICE_ACCOUNT_TOKEN;
            assert_eq!(untouched.is_empty(), ruled, "{resource}");
        }
    }

    #[test]
    fn split_refuses_what_is_not_an_object() {
        assert!(split("", "configmaps", b"[1, 2]").is_err());
        assert!(split("", "configmaps", b"{\"metadata\": {").is_err());
    }

    #[test]
    fn mappings_parse_and_refuse_bad_pairs() {
        let m = parse_mapping(" a:b , c:d ", ':').unwrap();
        assert_eq!(m.get("a").map(String::as_str), Some("b"));
        assert_eq!(m.get("c").map(String::as_str), Some("d"));
        assert!(parse_mapping("a", ':').is_err());
        assert!(parse_mapping("a:", ':').is_err());
        assert!(parse_mapping("a:b,a:c", ':').is_err());
        assert!(parse_mapping("a:b,a:b", ':').is_ok());
        assert!(parse_mapping("", ':').unwrap().is_empty());
    }

    #[test]
    fn server_set_fields_and_status_are_stripped_and_labels_added() {
        let obj = run(
            "",
            "configmaps",
            json!({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "c", "namespace": "other", "uid": "u", "resourceVersion": "5",
                    "generation": 2, "creationTimestamp": "2024-01-01T00:00:00Z", "selfLink": "/x",
                    "managedFields": [{}], "deletionTimestamp": "2024-01-02T00:00:00Z",
                    "deletionGracePeriodSeconds": 30, "labels": {"app": "web"},
                    "annotations": {"note": "kept"}, "finalizers": ["example.com/keep"]},
                "data": {"k": "v"}, "status": {"x": 1}
            }),
            &ItemFacts::default(),
        );
        assert_eq!(
            obj,
            json!({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "c", "namespace": "other",
                    "labels": {"app": "web", LABEL_BACKUP_NAME: "nightly", LABEL_RESTORE_NAME: "nightly-r1"},
                    "annotations": {"note": "kept"}, "finalizers": ["example.com/keep"]},
                "data": {"k": "v"}
            })
        );
    }

    #[test]
    fn labels_are_added_when_the_object_has_none() {
        let obj = run(
            "",
            "configmaps",
            json!({"metadata": {"name": "c", "namespace": "shop"}}),
            &ItemFacts::default(),
        );
        assert_eq!(
            obj.pointer("/metadata/namespace"),
            Some(&json!("shop-copy"))
        );
        assert_eq!(
            obj.pointer("/metadata/labels/kubectl-backup.dev~1restore-name"),
            Some(&json!("nightly-r1"))
        );
        assert_eq!(
            obj.pointer("/metadata/labels/kubectl-backup.dev~1backup-name"),
            Some(&json!("nightly"))
        );
    }

    #[test]
    fn namespace_is_renamed_with_its_name_label_and_keeps_pod_security_labels() {
        let obj = run(
            "",
            "namespaces",
            json!({
                "metadata": {"name": "shop", "labels": {"kubernetes.io/metadata.name": "shop",
                    "pod-security.kubernetes.io/enforce": "restricted"}},
                "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}
            }),
            &ItemFacts::default(),
        );
        assert_eq!(obj.pointer("/metadata/name"), Some(&json!("shop-copy")));
        assert_eq!(
            obj.pointer("/metadata/labels/kubernetes.io~1metadata.name"),
            Some(&json!("shop-copy"))
        );
        assert_eq!(
            obj.pointer("/metadata/labels/pod-security.kubernetes.io~1enforce"),
            Some(&json!("restricted"))
        );
        assert!(obj.get("status").is_none());
        let unmapped = run(
            "",
            "namespaces",
            json!({"metadata": {"name": "web"}}),
            &ItemFacts::default(),
        );
        assert_eq!(unmapped.pointer("/metadata/name"), Some(&json!("web")));
    }

    #[test]
    fn service_cluster_ips_and_auto_node_ports_are_dropped() {
        let svc = json!({"metadata": {"name": "web", "namespace": "shop"},
            "spec": {"type": "NodePort", "clusterIP": "10.0.0.7", "clusterIPs": ["10.0.0.7"],
                "ports": [{"port": 80, "nodePort": 30080}, {"port": 443, "nodePort": 30443}]}});
        let obj = run("", "services", svc.clone(), &ItemFacts::default());
        assert!(obj.pointer("/spec/clusterIP").is_none());
        assert!(obj.pointer("/spec/clusterIPs").is_none());
        assert!(obj.pointer("/spec/ports/0/nodePort").is_none());
        assert!(obj.pointer("/spec/ports/1/nodePort").is_none());
        assert_eq!(obj.pointer("/spec/ports/0/port"), Some(&json!(80)));

        let mut preserve = options();
        preserve.preserve_nodeports = true;
        let mut kept = svc;
        transform("", "services", &mut kept, &preserve, &ItemFacts::default());
        assert_eq!(kept.pointer("/spec/ports/0/nodePort"), Some(&json!(30080)));
        assert!(
            kept.pointer("/spec/clusterIP").is_none(),
            "cluster IPs go even with --preserve-nodeports"
        );
    }

    #[test]
    fn explicit_node_ports_from_last_applied_are_kept() {
        let applied = r#"{"spec":{"type":"NodePort","ports":[{"port":80,"nodePort":30080}]}}"#;
        let obj = run(
            "",
            "services",
            json!({"metadata": {"name": "web", "namespace": "a",
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": applied}},
            "spec": {"type": "NodePort", "clusterIP": "10.0.0.7",
                "ports": [{"port": 80, "nodePort": 30080}, {"port": 443, "nodePort": 30443}]}}),
            &ItemFacts::default(),
        );
        assert_eq!(obj.pointer("/spec/ports/0/nodePort"), Some(&json!(30080)));
        assert!(obj.pointer("/spec/ports/1/nodePort").is_none());
    }

    #[test]
    fn headless_service_keeps_cluster_ip_none() {
        let obj = run(
            "",
            "services",
            json!({"metadata": {"name": "db", "namespace": "a"},
            "spec": {"clusterIP": "None", "clusterIPs": ["None"], "ports": [{"port": 5432}]}}),
            &ItemFacts::default(),
        );
        assert_eq!(obj.pointer("/spec/clusterIP"), Some(&json!("None")));
        assert_eq!(obj.pointer("/spec/clusterIPs"), Some(&json!(["None"])));
    }

    #[test]
    fn load_balancer_health_check_port_is_dropped() {
        let obj = run(
            "",
            "services",
            json!({"metadata": {"name": "lb", "namespace": "a"},
            "spec": {"type": "LoadBalancer", "externalTrafficPolicy": "Local", "healthCheckNodePort": 31000,
                "ports": [{"port": 80, "nodePort": 30001}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "1.2.3.4"}]}}}),
            &ItemFacts::default(),
        );
        assert!(obj.pointer("/spec/healthCheckNodePort").is_none());
        assert!(obj.get("status").is_none());
    }

    #[test]
    fn pod_loses_node_priority_and_injected_token_volumes() {
        let obj = run(
            "",
            "pods",
            json!({"metadata": {"name": "p", "namespace": "a"},
            "spec": {"nodeName": "node-1", "priority": 0, "priorityClassName": "high",
                "containers": [{"name": "c", "volumeMounts": [
                    {"name": "data", "mountPath": "/data"},
                    {"name": "kube-api-access-x8k2d", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"},
                    {"name": "default-token-ab12c", "mountPath": "/old"}]}],
                "volumes": [{"name": "data", "emptyDir": {}}, {"name": "kube-api-access-x8k2d", "projected": {}},
                    {"name": "default-token-ab12c", "secret": {"secretName": "default-token-ab12c"}}]}}),
            &ItemFacts::default(),
        );
        assert!(obj.pointer("/spec/nodeName").is_none());
        assert!(obj.pointer("/spec/priority").is_none());
        assert_eq!(obj.pointer("/spec/priorityClassName"), Some(&json!("high")));
        assert_eq!(
            obj.pointer("/spec/volumes"),
            Some(&json!([{"name": "data", "emptyDir": {}}]))
        );
        assert_eq!(
            obj.pointer("/spec/containers/0/volumeMounts"),
            Some(&json!([{"name": "data", "mountPath": "/data"}]))
        );
    }

    fn bound_claim() -> Value {
        json!({"metadata": {"name": "data", "namespace": "shop", "annotations": {
                "pv.kubernetes.io/bind-completed": "yes", "pv.kubernetes.io/bound-by-controller": "yes",
                "volume.beta.kubernetes.io/storage-provisioner": "ebs.csi.aws.com",
                "volume.kubernetes.io/storage-provisioner": "ebs.csi.aws.com",
                "volume.kubernetes.io/selected-node": "node-1", "owner": "team-a"}},
            "spec": {"storageClassName": "gp2", "volumeName": "pvc-123", "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "1Gi"}}},
            "status": {"phase": "Bound"}})
    }

    #[test]
    fn claim_binding_is_cleared_and_class_mapped() {
        let obj = run(
            "",
            "persistentvolumeclaims",
            bound_claim(),
            &ItemFacts::default(),
        );
        assert_eq!(
            obj.pointer("/metadata/annotations"),
            Some(&json!({"owner": "team-a"}))
        );
        assert_eq!(
            obj.pointer("/metadata/namespace"),
            Some(&json!("shop-copy"))
        );
        assert_eq!(obj.pointer("/spec/storageClassName"), Some(&json!("gp3")));
        assert!(obj.pointer("/spec/volumeName").is_none());
        assert!(obj.get("status").is_none());
    }

    #[test]
    fn claim_keeps_volume_name_when_its_volume_is_restored() {
        let facts = ItemFacts {
            volume_restored: true,
            from_snapshot: None,
        };
        let obj = run("", "persistentvolumeclaims", bound_claim(), &facts);
        assert_eq!(obj.pointer("/spec/volumeName"), Some(&json!("pvc-123")));
    }

    #[test]
    fn claim_restored_from_snapshot_points_at_it() {
        let facts = ItemFacts {
            volume_restored: true,
            from_snapshot: Some("data-snap".into()),
        };
        let obj = run("", "persistentvolumeclaims", bound_claim(), &facts);
        assert!(obj.pointer("/spec/volumeName").is_none());
        assert_eq!(
            obj.pointer("/spec/dataSource"),
            Some(&json!({
            "apiGroup": "snapshot.storage.k8s.io", "kind": "VolumeSnapshot", "name": "data-snap"}))
        );
        assert_eq!(obj.pointer("/spec/storageClassName"), Some(&json!("gp3")));
    }

    #[test]
    fn beta_storage_class_annotation_is_mapped() {
        let obj = run(
            "",
            "persistentvolumeclaims",
            json!({"metadata": {"name": "old", "namespace": "a",
            "annotations": {"volume.beta.kubernetes.io/storage-class": "gp2"}}, "spec": {}}),
            &ItemFacts::default(),
        );
        assert_eq!(
            obj.pointer("/metadata/annotations/volume.beta.kubernetes.io~1storage-class"),
            Some(&json!("gp3"))
        );
    }

    #[test]
    fn volume_claim_ref_follows_the_namespace_and_loses_its_uid() {
        let obj = run(
            "",
            "persistentvolumes",
            json!({"metadata": {"name": "pvc-123"},
            "spec": {"storageClassName": "gp2", "persistentVolumeReclaimPolicy": "Retain",
                "claimRef": {"kind": "PersistentVolumeClaim", "namespace": "shop", "name": "data",
                    "uid": "old", "resourceVersion": "9", "apiVersion": "v1"}},
            "status": {"phase": "Bound"}}),
            &ItemFacts::default(),
        );
        assert_eq!(
            obj.pointer("/spec/claimRef"),
            Some(&json!({"kind": "PersistentVolumeClaim",
            "namespace": "shop-copy", "name": "data", "apiVersion": "v1"}))
        );
        assert_eq!(obj.pointer("/spec/storageClassName"), Some(&json!("gp3")));
        assert!(
            obj.pointer("/metadata/namespace").is_none(),
            "cluster-scoped objects get no namespace"
        );
    }

    #[test]
    fn stateful_set_claim_templates_are_mapped() {
        let obj = run(
            "apps",
            "statefulsets",
            json!({"metadata": {"name": "db", "namespace": "shop"},
            "spec": {"volumeClaimTemplates": [
                {"metadata": {"name": "data"}, "spec": {"storageClassName": "gp2"}, "status": {"phase": "Pending"}},
                {"metadata": {"name": "logs"}, "spec": {"storageClassName": "standard"}}]}}),
            &ItemFacts::default(),
        );
        assert_eq!(
            obj.pointer("/spec/volumeClaimTemplates/0/spec/storageClassName"),
            Some(&json!("gp3"))
        );
        assert!(obj.pointer("/spec/volumeClaimTemplates/0/status").is_none());
        assert_eq!(
            obj.pointer("/spec/volumeClaimTemplates/1/spec/storageClassName"),
            Some(&json!("standard"))
        );
    }

    #[test]
    fn role_binding_service_account_subjects_follow_the_namespace() {
        let obj = run(
            "rbac.authorization.k8s.io",
            "clusterrolebindings",
            json!({"metadata": {"name": "b"},
            "subjects": [{"kind": "ServiceAccount", "name": "app", "namespace": "shop"},
                {"kind": "ServiceAccount", "name": "x", "namespace": "web"},
                {"kind": "User", "name": "alice", "apiGroup": "rbac.authorization.k8s.io"}]}),
            &ItemFacts::default(),
        );
        assert_eq!(
            obj.pointer("/subjects/0/namespace"),
            Some(&json!("shop-copy"))
        );
        assert_eq!(obj.pointer("/subjects/1/namespace"), Some(&json!("web")));
        assert!(obj.pointer("/subjects/2/namespace").is_none());
    }

    #[test]
    fn webhook_service_references_follow_the_namespace() {
        let obj = run(
            "admissionregistration.k8s.io",
            "validatingwebhookconfigurations",
            json!({
            "metadata": {"name": "policy"},
            "webhooks": [{"name": "a.example.com", "clientConfig": {"service": {"namespace": "shop", "name": "hook"}}},
                {"name": "b.example.com", "clientConfig": {"url": "https://x"}}]}),
            &ItemFacts::default(),
        );
        assert_eq!(
            obj.pointer("/webhooks/0/clientConfig/service/namespace"),
            Some(&json!("shop-copy"))
        );
        assert_eq!(
            obj.pointer("/webhooks/1/clientConfig/url"),
            Some(&json!("https://x"))
        );
    }

    #[test]
    fn job_generated_selector_is_removed() {
        let obj = run(
            "batch",
            "jobs",
            json!({"metadata": {"name": "j", "namespace": "a"},
            "spec": {"selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "u1"}},
                "template": {"metadata": {"labels": {"batch.kubernetes.io/controller-uid": "u1",
                    "controller-uid": "u1", "job-name": "j"}}}}}),
            &ItemFacts::default(),
        );
        assert!(obj.pointer("/spec/selector").is_none());
        assert_eq!(
            obj.pointer("/spec/template/metadata/labels"),
            Some(&json!({"job-name": "j"}))
        );

        let manual = run(
            "batch",
            "jobs",
            json!({"metadata": {"name": "j", "namespace": "a"},
            "spec": {"manualSelector": true, "selector": {"matchLabels": {"app": "x"}}}}),
            &ItemFacts::default(),
        );
        assert_eq!(
            manual.pointer("/spec/selector/matchLabels/app"),
            Some(&json!("x"))
        );
    }

    #[test]
    fn user_token_secret_is_emptied_for_the_token_controller() {
        let obj = run(
            "",
            "secrets",
            json!({"type": "kubernetes.io/service-account-token",
            "metadata": {"name": "ci-token", "namespace": "a", "annotations": {
                "kubernetes.io/service-account.name": "ci", "kubernetes.io/service-account.uid": "old"}},
            "data": {"token": "dA==", "ca.crt": "Yw==", "namespace": "YQ==", "extra": "ZQ=="}}),
            &ItemFacts::default(),
        );
        assert_eq!(obj.get("data"), Some(&json!({"extra": "ZQ=="})));
        assert_eq!(
            obj.pointer("/metadata/annotations"),
            Some(&json!({"kubernetes.io/service-account.name": "ci"}))
        );
        let opaque = run(
            "",
            "secrets",
            json!({"type": "Opaque", "metadata": {"name": "s", "namespace": "a"},
            "data": {"token": "dA=="}}),
            &ItemFacts::default(),
        );
        assert_eq!(opaque.get("data"), Some(&json!({"token": "dA=="})));
    }

    #[test]
    fn service_account_drops_auto_token_references() {
        let obj = run(
            "",
            "serviceaccounts",
            json!({"metadata": {"name": "ci", "namespace": "a"},
            "secrets": [{"name": "ci-token-abcde"}, {"name": "registry"}]}),
            &ItemFacts::default(),
        );
        assert_eq!(obj.get("secrets"), Some(&json!([{"name": "registry"}])));
    }

    #[test]
    fn snapshot_content_reference_follows_the_namespace() {
        let obj = run(
            "snapshot.storage.k8s.io",
            "volumesnapshotcontents",
            json!({"metadata": {"name": "c"},
            "spec": {"volumeSnapshotRef": {"namespace": "shop", "name": "s", "uid": "x", "resourceVersion": "1"}}}),
            &ItemFacts::default(),
        );
        assert_eq!(
            obj.pointer("/spec/volumeSnapshotRef"),
            Some(&json!({"namespace": "shop-copy", "name": "s"}))
        );
    }

    #[test]
    fn owner_references_are_rewritten_deferred_or_dropped() {
        let mut pod = json!({"metadata": {"name": "web-1", "namespace": "shop", "ownerReferences": [
            {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-abc", "uid": "old-rs", "controller": true},
            {"apiVersion": "example.com/v1", "kind": "Widget", "name": "w", "uid": "old-w"},
            {"apiVersion": "v1", "kind": "Node", "name": "node-1", "uid": "old-node"}]}});
        let rs = ObjectKey {
            group: "apps".into(),
            kind: "ReplicaSet".into(),
            namespace: Some("shop".into()),
            name: "web-abc".into(),
        };
        let widget = ObjectKey {
            group: "example.com".into(),
            kind: "Widget".into(),
            namespace: None,
            name: "w".into(),
        };
        let restored = |k: &ObjectKey| *k == rs || *k == widget;
        let uid_of = |k: &ObjectKey| (*k == rs).then(|| "new-rs".to_owned());
        let result = resolve_owner_refs(&mut pod, Some("shop"), restored, uid_of);
        assert_eq!(result.dropped, 1);
        assert_eq!(result.pending.len(), 1);
        assert_eq!(result.pending[0].get("name"), Some(&json!("w")));
        assert_eq!(
            pod.pointer("/metadata/ownerReferences"),
            Some(&json!([
            {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-abc", "uid": "new-rs", "controller": true}]))
        );
    }

    #[test]
    fn owner_references_vanish_when_no_owner_is_restored() {
        let mut cm = json!({"metadata": {"name": "c", "namespace": "a", "ownerReferences": [
            {"apiVersion": "v1", "kind": "Pod", "name": "p", "uid": "u"}]}});
        let result = resolve_owner_refs(&mut cm, Some("a"), |_| false, |_| None);
        assert_eq!(
            result,
            OwnerRefs {
                dropped: 1,
                pending: vec![]
            }
        );
        assert!(cm.pointer("/metadata/ownerReferences").is_none());
    }

    #[test]
    fn group_of_api_versions() {
        assert_eq!(group_of("v1"), "");
        assert_eq!(group_of("apps/v1"), "apps");
        assert_eq!(
            group_of("snapshot.storage.k8s.io/v1"),
            "snapshot.storage.k8s.io"
        );
    }
}

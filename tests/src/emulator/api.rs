//! The API verbs over the store: get, list, create, update, patch, delete,
//! deletecollection and the `status` subresource, with the metadata handling,
//! preconditions, dry run, finalizers and errors of a real API server.
//!
//! Everything here is synchronous and independent of HTTP: [`super::server`]
//! decodes requests into calls of [`Api`] and encodes the answers.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, RwLock};

use rand::Rng;
use serde_json::{Map, Value, json};

use super::admission;
use super::crd;
use super::defaults;
use super::managed;
use super::pagination;
use super::patch::{self, PatchType};
use super::render;
use super::resources::{Registry, ResourceType, StorageKey};
use super::selectors::{FieldSelector, LabelSelector};
use super::status::{ApiError, ApiResult, Cause, delete_success};
use super::store::{self, Store};

/// The cluster behind the HTTP front: store, served types and identity.
#[derive(Debug)]
pub struct Api {
    /// The objects.
    pub store: Store,
    /// The served resource types (built-in + CRDs).
    pub registry: RwLock<Registry>,
    /// PEM of the CA (the `kube-root-ca.crt` ConfigMaps hold it).
    pub ca_pem: String,
    /// Serializes Service creates so IP/port allocation cannot hand out duplicates.
    allocation: Mutex<()>,
    /// Local addresses standing in for Services that back webhooks.
    pub service_routes: RwLock<admission::ServiceRoutes>,
}

/// Options shared by writes.
#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    /// `dryRun=All`.
    pub dry_run: bool,
    /// `fieldManager`, or the User-Agent's program name.
    pub field_manager: String,
    /// `fieldValidation=Strict`.
    pub strict: bool,
    /// `force=true` (apply).
    pub force: bool,
}

/// A successful write: status code, object, warnings.
#[derive(Debug)]
pub struct Written {
    /// 200 or 201.
    pub code: u16,
    /// The object as stored (no `kind`/`apiVersion`: the server adds the
    /// type, or answers metadata only, as the client asked).
    pub object: Arc<Value>,
    /// `Warning` header texts.
    pub warnings: Vec<String>,
}

/// Options of a list request.
#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    /// `labelSelector`.
    pub label_selector: Option<String>,
    /// `fieldSelector`.
    pub field_selector: Option<String>,
    /// `limit`.
    pub limit: Option<usize>,
    /// `continue`.
    pub continue_token: Option<String>,
    /// `resourceVersion`.
    pub resource_version: Option<String>,
}

/// Parsed selectors of a list/watch.
#[derive(Debug, Clone, Default)]
pub struct Selectors {
    /// Labels.
    pub labels: LabelSelector,
    /// Fields.
    pub fields: FieldSelector,
}

impl Selectors {
    /// Parse both selectors for `rt` (400 on syntax errors).
    pub fn parse(
        rt: &ResourceType,
        label: Option<&str>,
        field: Option<&str>,
    ) -> ApiResult<Selectors> {
        let labels = match label {
            Some(s) => LabelSelector::parse(s).map_err(ApiError::bad_request)?,
            None => LabelSelector::default(),
        };
        let fields = match field {
            Some(s) => {
                FieldSelector::parse(s, &rt.group, &rt.plural).map_err(ApiError::bad_request)?
            }
            None => FieldSelector::default(),
        };
        Ok(Selectors { labels, fields })
    }

    /// Does `obj` match both?
    pub fn matches(&self, obj: &Value) -> bool {
        self.labels.matches_object(obj) && self.fields.matches_object(obj)
    }

    /// No selection at all.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty() && self.fields.is_empty()
    }
}

/// DeleteOptions that matter here.
#[derive(Debug, Clone, Default)]
pub struct DeleteOptions {
    /// `propagationPolicy`: Orphan, Background, Foreground.
    pub propagation: Option<String>,
    /// `preconditions.uid`.
    pub uid: Option<String>,
    /// `preconditions.resourceVersion`.
    pub resource_version: Option<String>,
    /// `dryRun=All`.
    pub dry_run: bool,
}

/// The answer to a DELETE: the object if it still exists (finalizers) or a Status.
#[derive(Debug)]
pub enum Deleted {
    /// The object is kept with a deletionTimestamp (finalizers) or the kind returns it.
    Object(Value),
    /// It is gone.
    Status(Value),
}

/// RFC 3339 "now" in seconds, like metav1.Time.
pub fn now() -> String {
    // RFC 3339 in whole seconds with a Z, as the API server writes timestamps
    // (without parsing a format string on every write).
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// An object's `metadata`.
pub fn meta(obj: &Value) -> Option<&Map<String, Value>> {
    obj.get("metadata").and_then(Value::as_object)
}

fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.get("metadata").is_some_and(Value::is_object)
        && let Some(m) = obj.as_object_mut()
    {
        m.insert("metadata".into(), json!({}));
    }
    obj.as_object_mut()
        .and_then(|m| m.get_mut("metadata"))
        .and_then(Value::as_object_mut)
        .expect("metadata ensured above; objects are maps")
}

/// `metadata.<key>` as a string.
pub fn meta_str<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    meta(obj).and_then(|m| m.get(key)).and_then(Value::as_str)
}

fn finalizers(obj: &Value) -> Vec<String> {
    meta(obj)
        .and_then(|m| m.get("finalizers"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|f| f.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Kinds whose objects carry `metadata.generation`.
fn tracks_generation(rt: &ResourceType) -> bool {
    rt.custom
        || matches!(
            rt.group.as_str(),
            "apps"
                | "batch"
                | "apiextensions.k8s.io"
                | "policy"
                | "networking.k8s.io"
                | "admissionregistration.k8s.io"
                | "flowcontrol.apiserver.k8s.io"
                | "autoscaling"
                | "scheduling.k8s.io"
                | "node.k8s.io"
        )
}

/// The spec-like content whose change bumps generation: all but metadata and status.
fn spec_part(obj: &Value) -> Vec<(&String, &Value)> {
    obj.as_object()
        .map(|m| {
            m.iter()
                .filter(|(k, _)| {
                    !matches!(k.as_str(), "metadata" | "status" | "kind" | "apiVersion")
                })
                .collect()
        })
        .unwrap_or_default()
}

const OBJECT_META_FIELDS: &[&str] = &[
    "name",
    "generateName",
    "namespace",
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
    "managedFields",
];

/// The top-level fields of the simple built-in kinds whose unknown fields the real
/// server reports (None: not checked here).
fn known_top_level_fields(rt: &ResourceType) -> Option<&'static [&'static str]> {
    if !rt.group.is_empty() {
        return None;
    }
    Some(match rt.plural.as_str() {
        "configmaps" => &[
            "apiVersion",
            "kind",
            "metadata",
            "data",
            "binaryData",
            "immutable",
        ],
        "secrets" => &[
            "apiVersion",
            "kind",
            "metadata",
            "data",
            "stringData",
            "type",
            "immutable",
        ],
        "serviceaccounts" => &[
            "apiVersion",
            "kind",
            "metadata",
            "secrets",
            "imagePullSecrets",
            "automountServiceAccountToken",
        ],
        "namespaces"
        | "services"
        | "persistentvolumeclaims"
        | "persistentvolumes"
        | "pods"
        | "replicationcontrollers"
        | "resourcequotas"
        | "limitranges"
        | "nodes" => &["apiVersion", "kind", "metadata", "spec", "status"],
        _ => return None,
    })
}

const GENERATE_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

fn generate_suffix() -> String {
    let mut rng = rand::rng();
    (0..5)
        .map(|_| GENERATE_ALPHABET[rng.random_range(0..GENERATE_ALPHABET.len())] as char)
        .collect()
}

/// The operation under admission.
#[derive(Debug, Clone, Copy)]
pub enum Operation<'a> {
    /// CREATE.
    Create,
    /// UPDATE (PUT or PATCH), of a subresource if given.
    Update(Option<&'a str>),
    /// DELETE.
    Delete,
}

impl Api {
    /// Run the admission webhooks for a write: mutating ones may change `obj` (stored
    /// form, without kind/apiVersion); returns their warnings.
    #[allow(clippy::too_many_arguments)]
    fn admit(
        &self,
        rt: &ResourceType,
        op: Operation<'_>,
        ns: Option<&str>,
        name: &str,
        old: Option<&Value>,
        obj: Option<&mut Value>,
        dry_run: bool,
    ) -> ApiResult<Vec<String>> {
        if !admission::any_configured(&self.store) {
            return Ok(Vec::new());
        }
        let services = self
            .service_routes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let is_namespace = rt.group.is_empty() && rt.plural == "namespaces";
        let namespace_labels = ns
            .and_then(|n| {
                self.store.get(
                    &StorageKey {
                        group: String::new(),
                        plural: "namespaces".into(),
                    },
                    None,
                    n,
                )
            })
            .and_then(|o| {
                o.pointer("/metadata/labels")
                    .and_then(Value::as_object)
                    .cloned()
            })
            .map(|m| {
                m.into_iter()
                    .map(|(k, v)| (k, v.as_str().unwrap_or("").to_owned()))
                    .collect()
            })
            .unwrap_or_default();
        let old_typed = old.map(|o| render::object(rt, o));
        let (operation, subresource) = match op {
            Operation::Create => ("CREATE", None),
            Operation::Update(sub) => ("UPDATE", sub),
            Operation::Delete => ("DELETE", None),
        };
        let a = admission::Attributes {
            rt,
            operation,
            subresource,
            namespace: if is_namespace { Some(name) } else { ns },
            name,
            old_object: old_typed.as_ref(),
            dry_run,
            namespace_labels,
        };
        let mut typed = obj.as_deref().map(|o| render::object(rt, o));
        // Mutating webhooks see a new object before the server fills in uid and
        // creationTimestamp.
        let kept = obj.as_deref().map(|o| {
            (
                meta(o).and_then(|m| m.get("uid")).cloned(),
                meta(o).and_then(|m| m.get("creationTimestamp")).cloned(),
            )
        });
        if let (Operation::Create, Some(t)) = (op, typed.as_mut()) {
            let m = meta_mut(t);
            m.remove("uid");
            m.insert("creationTimestamp".into(), Value::Null);
        }
        let mut warnings = admission::admit(
            &self.store,
            &services,
            admission::Phase::Mutating,
            &a,
            &mut typed,
        )?;
        let Some(obj) = obj else {
            warnings.extend(admission::admit(
                &self.store,
                &services,
                admission::Phase::Validating,
                &a,
                &mut None,
            )?);
            return Ok(warnings);
        };
        if let Some(mut mutated) = typed {
            render::strip_type(&mut mutated);
            if let (Operation::Create, Some((uid, created))) = (op, kept) {
                let m = meta_mut(&mut mutated);
                if let Some(uid) = uid {
                    m.insert("uid".into(), uid);
                }
                if let Some(created) = created {
                    m.insert("creationTimestamp".into(), created);
                }
            }
            *obj = mutated;
        }
        let mut typed = Some(render::object(rt, obj));
        warnings.extend(admission::admit(
            &self.store,
            &services,
            admission::Phase::Validating,
            &a,
            &mut typed,
        )?);
        Ok(warnings)
    }

    /// A cluster with only the built-in types and no objects.
    pub fn new(ca_pem: String) -> Result<Api, super::resources::Error> {
        Ok(Api {
            store: Store::new(),
            registry: RwLock::new(Registry::builtin()?),
            ca_pem,
            allocation: Mutex::new(()),
            service_routes: RwLock::default(),
        })
    }

    /// A snapshot of the served types.
    pub fn registry(&self) -> Registry {
        self.registry
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The served type at `group/version/plural`.
    pub fn lookup(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceType>> {
        self.registry
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .lookup(group, version, plural)
    }

    /// The served type of `kind` in `group/version`.
    pub fn lookup_kind(&self, group: &str, version: &str, kind: &str) -> Option<Arc<ResourceType>> {
        self.registry
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .lookup_kind(group, version, kind)
    }

    /// Is `group/version` served?
    pub fn has_group_version(&self, group: &str, version: &str) -> bool {
        self.registry
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .has_group_version(group, version)
    }

    fn ns_type(&self) -> Arc<ResourceType> {
        self.lookup("", "v1", "namespaces")
            .expect("namespaces are a built-in type")
    }

    /// Create the objects a fresh cluster has: system namespaces, the `kubernetes`
    /// Service, and what the controllers put in each namespace.
    pub fn bootstrap(&self) -> ApiResult<()> {
        let opts = WriteOptions {
            field_manager: "kube-apiserver".into(),
            ..Default::default()
        };
        let ns = self.ns_type();
        for name in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            self.create(&ns, None, json!({"metadata": {"name": name}}), &opts)?;
        }
        let svc = self
            .lookup("", "v1", "services")
            .expect("services are a built-in type");
        self.create(
            &svc,
            Some("default"),
            json!({
                "metadata": {"name": "kubernetes", "labels": {"component": "apiserver", "provider": "kubernetes"}},
                "spec": {"clusterIP": "10.96.0.1", "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}]}
            }),
            &opts,
        )?;
        self.bootstrap_system_objects(&opts)
    }

    /// The cluster-scoped objects every real control plane creates at start-up and a
    /// backup of "everything" meets: priority classes, the bootstrap RBAC roles, the
    /// `kubernetes` endpoints, and the local APIServices.
    fn bootstrap_system_objects(&self, opts: &WriteOptions) -> ApiResult<()> {
        let make = |group: &str,
                    version: &str,
                    plural: &str,
                    ns: Option<&str>,
                    obj: Value|
         -> ApiResult<()> {
            let rt = self
                .lookup(group, version, plural)
                .ok_or_else(|| ApiError::internal(format!("{plural} is not a built-in type")))?;
            self.create(&rt, ns, obj, opts).map(|_| ())
        };
        let bootstrap = json!({"kubernetes.io/bootstrapping": "rbac-defaults"});
        for (name, value) in [
            ("system-cluster-critical", 2_000_000_000),
            ("system-node-critical", 2_000_001_000),
        ] {
            make(
                "scheduling.k8s.io",
                "v1",
                "priorityclasses",
                None,
                json!({
                    "metadata": {"name": name},
                    "value": value,
                    "globalDefault": false,
                    "preemptionPolicy": "PreemptLowerPriority",
                    "description": "Used for system critical pods that must run in the cluster, but can be moved to another node if necessary."
                }),
            )?;
        }
        let rw = [
            "create",
            "delete",
            "deletecollection",
            "get",
            "list",
            "patch",
            "update",
            "watch",
        ];
        let ro = ["get", "list", "watch"];
        for (name, rules) in [
            (
                "cluster-admin",
                json!([{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}, {"nonResourceURLs": ["*"], "verbs": ["*"]}]),
            ),
            (
                "admin",
                json!([{"apiGroups": ["", "apps", "batch"], "resources": ["*"], "verbs": rw}]),
            ),
            (
                "edit",
                json!([{"apiGroups": ["", "apps", "batch"], "resources": ["*"], "verbs": rw}]),
            ),
            (
                "view",
                json!([{"apiGroups": ["", "apps", "batch"], "resources": ["*"], "verbs": ro}]),
            ),
        ] {
            make(
                "rbac.authorization.k8s.io",
                "v1",
                "clusterroles",
                None,
                json!({
                    "metadata": {"name": name, "labels": bootstrap,
                                 "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"}},
                    "rules": rules
                }),
            )?;
        }
        make(
            "rbac.authorization.k8s.io",
            "v1",
            "clusterrolebindings",
            None,
            json!({
                "metadata": {"name": "cluster-admin", "labels": bootstrap,
                             "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"}},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
                "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "system:masters"}]
            }),
        )?;
        make(
            "",
            "v1",
            "endpoints",
            Some("default"),
            json!({
                "metadata": {"name": "kubernetes", "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
                "subsets": [{"addresses": [{"ip": "127.0.0.1"}], "ports": [{"name": "https", "port": 6443, "protocol": "TCP"}]}]
            }),
        )?;
        make(
            "discovery.k8s.io",
            "v1",
            "endpointslices",
            Some("default"),
            json!({
                "metadata": {"name": "kubernetes", "labels": {"kubernetes.io/service-name": "kubernetes"}},
                "addressType": "IPv4",
                "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": true}}],
                "ports": [{"name": "https", "port": 6443, "protocol": "TCP"}]
            }),
        )?;
        let groups = self.registry().groups();
        for (priority, g) in groups.iter().enumerate() {
            for (vi, v) in g.versions.iter().enumerate() {
                let name = if g.name.is_empty() {
                    v.version.clone()
                } else {
                    format!("{}.{}", v.version, g.name)
                };
                let mut spec = json!({
                    "version": v.version,
                    "groupPriorityMinimum": 18000 - 100 * priority as i64,
                    "versionPriority": 15 - vi as i64,
                });
                if !g.name.is_empty() {
                    spec["group"] = json!(g.name);
                }
                make(
                    "apiregistration.k8s.io",
                    "v1",
                    "apiservices",
                    None,
                    json!({
                        "metadata": {"name": name, "labels": {"kube-aggregator.kubernetes.io/automanaged": "onstart"}},
                        "spec": spec,
                        "status": {"conditions": [{"type": "Available", "status": "True",
                            "lastTransitionTime": now(), "reason": "Local",
                            "message": "Local APIServices are always available"}]}
                    }),
                )?;
            }
        }
        Ok(())
    }

    // === reads ===

    /// GET one object.
    pub fn get(&self, rt: &ResourceType, ns: Option<&str>, name: &str) -> ApiResult<Arc<Value>> {
        self.store
            .get(&rt.storage_key(), ns, name)
            .ok_or_else(|| ApiError::not_found(rt, name))
    }

    /// LIST: the list metadata and the items, with pagination as the real server does it.
    pub fn list(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        opts: &ListOptions,
    ) -> ApiResult<(Value, Vec<Arc<Value>>)> {
        let sel = Selectors::parse(
            rt,
            opts.label_selector.as_deref(),
            opts.field_selector.as_deref(),
        )?;
        let current = self.store.current_rv();
        let cont = match opts.continue_token.as_deref().filter(|t| !t.is_empty()) {
            Some(t) => Some(pagination::decode(t, current, self.store.floor())?),
            None => None,
        };
        // resourceVersion=0 is served from the watch cache, which ignores limit (1.28).
        let from_cache = cont.is_none() && opts.resource_version.as_deref() == Some("0");
        let limit = if from_cache {
            None
        } else {
            opts.limit.filter(|l| *l > 0)
        };
        let page = self.store.list(
            &rt.storage_key(),
            ns,
            cont.as_ref().map(|c| c.start.as_str()),
            limit,
            |o| sel.matches(o),
        );
        let list_rv = cont.as_ref().map(|c| c.rv).unwrap_or(page.rv);
        let mut metadata = Map::new();
        metadata.insert("resourceVersion".into(), json!(list_rv.to_string()));
        if let Some(after) = &page.continue_after {
            metadata.insert(
                "continue".into(),
                json!(pagination::encode(list_rv as i64, after)),
            );
            if sel.is_empty() {
                metadata.insert("remainingItemCount".into(), json!(page.remaining));
            }
        }
        Ok((Value::Object(metadata), page.items))
    }

    // === create ===

    /// The namespace of a new object must exist and not be terminating.
    fn check_namespace(&self, rt: &ResourceType, ns: &str, name: &str) -> ApiResult<()> {
        let nst = self.ns_type();
        let Some(obj) = self.store.get(&nst.storage_key(), None, ns) else {
            return Err(ApiError::not_found_qualified("", "namespaces", ns));
        };
        if meta_str(&obj, "deletionTimestamp").is_some()
            || obj.pointer("/status/phase").and_then(Value::as_str) == Some("Terminating")
        {
            let mut details = serde_json::Map::new();
            details.insert("name".into(), json!(name));
            if !rt.group.is_empty() {
                details.insert("group".into(), json!(rt.group));
            }
            details.insert("kind".into(), json!(rt.plural));
            details.insert(
                "causes".into(),
                json!([{"reason": "NamespaceTerminating",
                        "message": format!("namespace {ns} is being terminated"),
                        "field": "metadata.namespace"}]),
            );
            return Err(ApiError::new(
                403,
                "Forbidden",
                format!(
                    "{} {name:?} is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                    rt.qualified()
                ),
            )
            .with_details(Value::Object(details)));
        }
        Ok(())
    }

    /// Decode-level checks shared by create and update: the body is an object, its kind
    /// (if given) is the resource's, and unknown metadata fields warn or fail.
    pub fn check_body(
        &self,
        rt: &ResourceType,
        obj: &mut Value,
        strict: bool,
    ) -> ApiResult<Vec<String>> {
        if !obj.is_object() {
            return Err(ApiError::bad_request(format!(
                "the object provided is unrecognized (must be of type {}): couldn't get version/kind; json parse error: json: cannot unmarshal {} into Go value of type struct {{ APIVersion string \"json:\\\"apiVersion,omitempty\\\"\"; Kind string \"json:\\\"kind,omitempty\\\"\" }}",
                rt.kind,
                match obj {
                    Value::Array(_) => "array",
                    Value::String(_) => "string",
                    Value::Number(_) => "number",
                    _ => "value",
                }
            )));
        }
        if let Some(kind) = obj.get("kind").and_then(Value::as_str)
            && kind != rt.kind
            && !kind.is_empty()
        {
            return Err(ApiError::bad_request(format!(
                "the server could not find the requested resource (kind {kind} is not {})",
                rt.kind
            )));
        }
        let mut unknown = Vec::new();
        if let Some(m) = meta(obj) {
            for k in m.keys() {
                if !OBJECT_META_FIELDS.contains(&k.as_str()) {
                    unknown.push(format!("metadata.{k}"));
                }
            }
        }
        if let (Some(known), Some(m)) = (known_top_level_fields(rt), obj.as_object()) {
            for k in m.keys() {
                if !known.contains(&k.as_str()) {
                    unknown.push(k.clone());
                }
            }
        }
        if strict && !unknown.is_empty() {
            let msgs: Vec<String> = unknown
                .iter()
                .map(|f| format!("unknown field {f:?}"))
                .collect();
            return Err(ApiError::bad_request(format!(
                "{kind} in version {version:?} cannot be handled as a {kind}: strict decoding error: {}",
                msgs.join(", "),
                kind = rt.kind,
                version = rt.version,
            )));
        }
        // Under the default (Warn) validation unknown fields are dropped with a warning.
        for f in &unknown {
            match f.strip_prefix("metadata.") {
                Some(k) => {
                    meta_mut(obj).remove(k);
                }
                None => {
                    if let Some(m) = obj.as_object_mut() {
                        m.remove(f);
                    }
                }
            }
        }
        Ok(unknown
            .into_iter()
            .map(|f| format!("unknown field {f:?}"))
            .collect())
    }

    fn defaults_context(&self, rt: &ResourceType) -> defaults::Context {
        let mut ctx = defaults::Context::default();
        if rt.custom {
            return ctx;
        }
        match (rt.group.as_str(), rt.plural.as_str()) {
            ("", "services") => {
                let held = self.store.service_allocations();
                ctx.used_cluster_ips = held.cluster_ips;
                ctx.used_node_ports = held.node_ports;
            }
            ("", "persistentvolumeclaims") => {
                let key = StorageKey {
                    group: "storage.k8s.io".into(),
                    plural: "storageclasses".into(),
                };
                // The newest default class wins, as in the DefaultStorageClass admission.
                ctx.default_storage_class = self
                    .store
                    .all(&key)
                    .iter()
                    .filter(|sc| {
                        sc.pointer("/metadata/annotations")
                            .and_then(Value::as_object)
                            .is_some_and(|a| {
                                a.get("storageclass.kubernetes.io/is-default-class")
                                    == Some(&json!("true"))
                                    || a.get("storageclass.beta.kubernetes.io/is-default-class")
                                        == Some(&json!("true"))
                            })
                    })
                    .max_by(|a, b| {
                        meta_str(a, "creationTimestamp")
                            .cmp(&meta_str(b, "creationTimestamp"))
                            .then_with(|| meta_str(a, "name").cmp(&meta_str(b, "name")).reverse())
                    })
                    .and_then(|sc| meta_str(sc, "name").map(str::to_owned));
            }
            _ => {}
        }
        ctx
    }

    fn validate_custom(
        &self,
        rt: &ResourceType,
        obj: &mut Value,
        name: &str,
    ) -> ApiResult<Vec<String>> {
        let Some(version) = rt.crd_version.as_deref() else {
            return Ok(Vec::new());
        };
        let (causes, pruned) = crd::validate_and_prune(version, obj);
        if !causes.is_empty() {
            return Err(ApiError::invalid(&rt.group, &rt.kind, name, &causes));
        }
        Ok(pruned
            .into_iter()
            .map(|p| format!("unknown field {p:?}"))
            .collect())
    }

    /// CREATE (POST on the collection).
    pub fn create(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        obj: Value,
        opts: &WriteOptions,
    ) -> ApiResult<Written> {
        self.create_with(rt, ns, obj, opts, None)
    }

    /// CREATE with the managedFields of an apply (None: recorded as an update).
    fn create_with(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        mut obj: Value,
        opts: &WriteOptions,
        apply_fields: Option<Value>,
    ) -> ApiResult<Written> {
        let mut warnings = self.check_body(rt, &mut obj, opts.strict)?;
        render::strip_type(&mut obj);
        let now = now();
        {
            let m = meta_mut(&mut obj);
            if let Some(ns) = ns {
                match m.get("namespace").and_then(Value::as_str) {
                    Some(body_ns) if !body_ns.is_empty() && body_ns != ns => {
                        return Err(ApiError::bad_request(
                            "the namespace of the provided object does not match the namespace sent on the request",
                        ));
                    }
                    _ => {
                        m.insert("namespace".into(), json!(ns));
                    }
                }
            } else {
                m.remove("namespace");
            }
            let name = m
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            if name.is_empty() {
                match m.get("generateName").and_then(Value::as_str) {
                    Some(prefix) if !prefix.is_empty() => {
                        let generated = format!("{prefix}{}", generate_suffix());
                        m.insert("name".into(), json!(generated));
                    }
                    _ => {
                        return Err(ApiError::invalid(
                            &rt.group,
                            &rt.kind,
                            "",
                            &[Cause::required(
                                "metadata.name",
                                "name or generateName is required",
                            )],
                        ));
                    }
                }
            }
            m.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
            m.insert("creationTimestamp".into(), json!(now));
            for k in [
                "resourceVersion",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "selfLink",
                "managedFields",
            ] {
                m.remove(k);
            }
            if tracks_generation(rt) {
                m.insert("generation".into(), json!(1));
            } else {
                m.remove("generation");
            }
        }
        let name = meta_str(&obj, "name").unwrap_or("").to_owned();
        let causes = defaults::validate_name(rt, &name);
        if !causes.is_empty() {
            return Err(ApiError::invalid(&rt.group, &rt.kind, &name, &causes));
        }
        if let Some(ns) = ns {
            self.check_namespace(rt, ns, &name)?;
        }
        // A status subresource means the main endpoint does not set status (CRs: dropped).
        if rt.custom
            && rt.has_status()
            && let Some(m) = obj.as_object_mut()
        {
            m.remove("status");
        }
        warnings.extend(self.validate_custom(rt, &mut obj, &name)?);
        defaults::on_write(rt, &mut obj)?;
        let _alloc = (rt.plural == "services" && rt.group.is_empty())
            .then(|| self.allocation.lock().unwrap_or_else(|e| e.into_inner()));
        defaults::on_create(rt, &mut obj, &self.defaults_context(rt))?;
        if rt.group == "apiextensions.k8s.io" && rt.plural == "customresourcedefinitions" {
            self.validate_crd(&obj, &name)?;
            crd::on_create(&mut obj);
        }
        match apply_fields {
            Some(mf) => {
                meta_mut(&mut obj).insert("managedFields".into(), mf);
            }
            None => managed::record_update(
                None,
                &mut obj,
                &opts.field_manager,
                &rt.api_version(),
                None,
                &now,
            ),
        }
        warnings.extend(self.admit(
            rt,
            Operation::Create,
            ns,
            &name,
            None,
            Some(&mut obj),
            opts.dry_run,
        )?);
        if opts.dry_run {
            // A dry run goes through storage's existence check like a real
            // create: an existing name is AlreadyExists, not a 201 preview.
            if self.store.get(&rt.storage_key(), ns, &name).is_some() {
                return Err(ApiError::already_exists(rt, &name));
            }
            return Ok(Written {
                code: 201,
                object: Arc::new(obj),
                warnings,
            });
        }
        let stored = self
            .store
            .create(&rt.storage_key(), ns, &name, obj)
            .map_err(|_| ApiError::already_exists(rt, &name))?;
        if rt.group.is_empty() && rt.plural == "namespaces" {
            self.populate_namespace(&name);
        }
        Ok(Written {
            code: 201,
            object: stored,
            warnings,
        })
    }

    fn validate_crd(&self, obj: &Value, name: &str) -> ApiResult<()> {
        let group = obj
            .pointer("/spec/group")
            .and_then(Value::as_str)
            .unwrap_or("");
        let plural = obj
            .pointer("/spec/names/plural")
            .and_then(Value::as_str)
            .unwrap_or("");
        let mut causes = Vec::new();
        if name != format!("{plural}.{group}") {
            causes.push(Cause::invalid(
                "metadata.name",
                &json!(name),
                "must be spec.names.plural+\".\"+spec.group",
            ));
        }
        let versions = obj
            .pointer("/spec/versions")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if versions.is_empty() {
            causes.push(Cause::required(
                "spec.versions",
                "must have exactly one version marked as storage version",
            ));
        } else if versions.iter().filter(|v| v["storage"] == true).count() != 1 {
            causes.push(Cause::invalid(
                "spec.versions",
                &Value::Array(versions.clone()),
                "must have exactly one version marked as storage version",
            ));
        }
        if !matches!(
            obj.pointer("/spec/scope").and_then(Value::as_str),
            Some("Namespaced" | "Cluster")
        ) {
            causes.push(Cause::not_supported(
                "spec.scope",
                obj.pointer("/spec/scope").unwrap_or(&Value::Null),
                &["Cluster".into(), "Namespaced".into()],
            ));
        }
        if causes.is_empty() {
            Ok(())
        } else {
            Err(ApiError::invalid(
                "apiextensions.k8s.io",
                "CustomResourceDefinition",
                name,
                &causes,
            ))
        }
    }

    /// What the service-account and root-CA controllers create in a new namespace.
    fn populate_namespace(&self, ns: &str) {
        let sa_key = StorageKey {
            group: String::new(),
            plural: "serviceaccounts".into(),
        };
        let cm_key = StorageKey {
            group: String::new(),
            plural: "configmaps".into(),
        };
        let now = now();
        let mut sa = json!({"metadata": {"name": "default", "namespace": ns,
            "uid": uuid::Uuid::new_v4().to_string(), "creationTimestamp": now}});
        managed::record_update(None, &mut sa, "kube-controller-manager", "v1", None, &now);
        let _ = self.store.create(&sa_key, Some(ns), "default", sa);
        let mut cm = json!({"metadata": {"name": "kube-root-ca.crt", "namespace": ns,
            "uid": uuid::Uuid::new_v4().to_string(), "creationTimestamp": now,
            "annotations": {"kubernetes.io/description": "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters."}},
            "data": {"ca.crt": self.ca_pem}});
        managed::record_update(None, &mut cm, "kube-controller-manager", "v1", None, &now);
        let _ = self.store.create(&cm_key, Some(ns), "kube-root-ca.crt", cm);
    }

    // === update / patch ===

    /// Turn the client's `new` version of `old` into what gets stored: system metadata
    /// kept, status or spec protected by the subresource rules, defaults, generation.
    fn prepare_update(
        &self,
        rt: &ResourceType,
        old: &Value,
        mut new: Value,
        subresource: Option<&str>,
        opts: &WriteOptions,
    ) -> ApiResult<(Value, Vec<String>)> {
        let mut warnings = Vec::new();
        render::strip_type(&mut new);
        let name = meta_str(old, "name").unwrap_or("").to_owned();
        if subresource == Some("finalize") {
            // namespaces/finalize changes only spec.finalizers.
            let mut merged = old.clone();
            let finalizers = new.pointer("/spec/finalizers").cloned();
            if let Some(m) = merged.as_object_mut() {
                let spec = m.entry("spec").or_insert_with(|| json!({}));
                if let Some(spec) = spec.as_object_mut() {
                    match finalizers {
                        Some(f) => spec.insert("finalizers".into(), f),
                        None => spec.remove("finalizers"),
                    };
                }
            }
            new = merged;
        } else if subresource == Some("status") {
            let mut merged = old.clone();
            if let Some(m) = merged.as_object_mut() {
                match new.get("status") {
                    Some(s) => m.insert("status".into(), s.clone()),
                    None => m.remove("status"),
                };
            }
            new = merged;
        } else {
            if rt.has_status()
                && let Some(m) = new.as_object_mut()
            {
                match old.get("status") {
                    Some(s) => m.insert("status".into(), s.clone()),
                    None => m.remove("status"),
                };
            }
            let om = meta(old).cloned().unwrap_or_default();
            let nm = meta_mut(&mut new);
            for k in [
                "name",
                "namespace",
                "uid",
                "creationTimestamp",
                "generation",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "managedFields",
                "generateName",
            ] {
                match om.get(k) {
                    Some(v) => nm.insert(k.into(), v.clone()),
                    None => nm.remove(k),
                };
            }
            nm.remove("resourceVersion");
            if rt.custom {
                warnings.extend(self.validate_custom(rt, &mut new, &name)?);
            }
            defaults::on_write(rt, &mut new)?;
            defaults::on_update(rt, old, &mut new)?;
            if tracks_generation(rt) && spec_part(old) != spec_part(&new) {
                let g = meta(old)
                    .and_then(|m| m.get("generation"))
                    .and_then(Value::as_i64)
                    .unwrap_or(1);
                meta_mut(&mut new).insert("generation".into(), json!(g + 1));
            }
        }
        // Terminating objects cannot gain finalizers back... but may drop them.
        if meta_str(old, "deletionTimestamp").is_some() {
            let old_f: HashSet<String> = finalizers(old).into_iter().collect();
            let added: Vec<String> = finalizers(&new)
                .into_iter()
                .filter(|f| !old_f.contains(f))
                .collect();
            if !added.is_empty() {
                return Err(ApiError::invalid(
                    &rt.group,
                    &rt.kind,
                    &name,
                    &[Cause::forbidden(
                        "metadata.finalizers",
                        &format!(
                            "no new finalizers can be added if the object is being deleted, found new finalizers {added:?}"
                        ),
                    )],
                ));
            }
        }
        let manager = opts.field_manager.clone();
        managed::record_update(
            Some(old),
            &mut new,
            &manager,
            &rt.api_version(),
            subresource,
            &now(),
        );
        Ok((new, warnings))
    }

    /// Store `new` over `old`; an object being deleted whose last finalizer goes away is
    /// removed. Returns the stored (or last) state.
    fn commit_update(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        old: &Value,
        new: Value,
        opts: &WriteOptions,
    ) -> Result<Arc<Value>, store::Error> {
        let name = meta_str(old, "name").unwrap_or("").to_owned();
        let old_rv = meta_str(old, "resourceVersion").map(str::to_owned);
        // A no-op update does not change the resourceVersion.
        let mut cmp_new = new.clone();
        let mut cmp_old = old.clone();
        for o in [&mut cmp_new, &mut cmp_old] {
            let m = meta_mut(o);
            m.remove("managedFields");
            m.remove("resourceVersion");
        }
        if cmp_new == cmp_old {
            return Ok(Arc::new(old.clone()));
        }
        if opts.dry_run {
            let mut shown = new;
            if let Some(rv) = &old_rv {
                meta_mut(&mut shown).insert("resourceVersion".into(), json!(rv));
            }
            return Ok(Arc::new(shown));
        }
        // Namespaces also wait for their spec finalizers (the namespace controller's).
        let spec_finalizers = rt.group.is_empty()
            && rt.plural == "namespaces"
            && new
                .pointer("/spec/finalizers")
                .and_then(Value::as_array)
                .is_some_and(|a| !a.is_empty());
        if meta_str(&new, "deletionTimestamp").is_some()
            && finalizers(&new).is_empty()
            && !spec_finalizers
        {
            // Store the final state first so watchers see it, then remove it.
            let stored = self
                .store
                .update(&rt.storage_key(), ns, &name, new, old_rv.as_deref())?;
            let rv = meta_str(&stored, "resourceVersion").map(str::to_owned);
            let _ = self
                .store
                .delete(&rt.storage_key(), ns, &name, rv.as_deref());
            return Ok(stored);
        }
        self.store
            .update(&rt.storage_key(), ns, &name, new, old_rv.as_deref())
    }

    /// UPDATE (PUT) of an object or its `status`.
    pub fn update(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        name: &str,
        mut obj: Value,
        subresource: Option<&str>,
        opts: &WriteOptions,
    ) -> ApiResult<Written> {
        let warnings = self.check_body(rt, &mut obj, opts.strict)?;
        let body_name = meta_str(&obj, "name").unwrap_or("");
        if body_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        if let (Some(ns), Some(body_ns)) = (ns, meta_str(&obj, "namespace"))
            && !body_ns.is_empty()
            && body_ns != ns
        {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        let client_rv = meta_str(&obj, "resourceVersion")
            .filter(|s| !s.is_empty())
            .map(str::to_owned);
        loop {
            let old = self.get(rt, ns, name)?;
            if let Some(rv) = &client_rv
                && meta_str(&old, "resourceVersion") != Some(rv.as_str())
            {
                return Err(ApiError::stale(rt, name));
            }
            let (mut new, mut w) = self.prepare_update(rt, &old, obj.clone(), subresource, opts)?;
            w.extend(self.admit(
                rt,
                Operation::Update(subresource),
                ns,
                name,
                Some(&old),
                Some(&mut new),
                opts.dry_run,
            )?);
            match self.commit_update(rt, ns, &old, new, opts) {
                Ok(stored) => {
                    w.extend(warnings);
                    return Ok(Written {
                        code: 200,
                        object: stored,
                        warnings: w,
                    });
                }
                Err(store::Error::Conflict) if client_rv.is_none() => continue,
                Err(store::Error::Conflict) => return Err(ApiError::stale(rt, name)),
                Err(_) => return Err(ApiError::not_found(rt, name)),
            }
        }
    }

    /// PATCH of an object or its `status`; apply patches may create.
    // The arguments are the parts of a PATCH request; a struct would only rename them.
    #[allow(clippy::too_many_arguments)]
    pub fn patch(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        name: &str,
        patch_type: PatchType,
        body: &[u8],
        subresource: Option<&str>,
        opts: &WriteOptions,
    ) -> ApiResult<Written> {
        if patch_type == PatchType::StrategicMerge && rt.custom {
            return Err(ApiError::unsupported_media_type("the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml".to_string()));
        }
        let applied = if patch_type == PatchType::Apply {
            if opts.field_manager.is_empty() {
                return Err(ApiError::invalid(
                    "meta.k8s.io",
                    "PatchOptions",
                    "",
                    &[Cause::required(
                        "fieldManager",
                        "is required for apply patch",
                    )],
                ));
            }
            let text =
                std::str::from_utf8(body).map_err(|e| ApiError::bad_request(e.to_string()))?;
            let v: Value = serde_yaml::from_str(text)
                .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?;
            if !v.is_object() {
                return Err(ApiError::bad_request("error decoding YAML: not an object"));
            }
            Some(v)
        } else {
            None
        };
        for _ in 0..16 {
            let old = match self.store.get(&rt.storage_key(), ns, name) {
                Some(o) => o,
                None => {
                    let Some(applied) = &applied else {
                        return Err(ApiError::not_found(rt, name));
                    };
                    if subresource.is_some() {
                        return Err(ApiError::not_found(rt, name));
                    }
                    let mut obj = managed::apply(
                        None,
                        applied,
                        &opts.field_manager,
                        opts.force,
                        &rt.api_version(),
                        &now(),
                    )?;
                    meta_mut(&mut obj).insert("name".into(), json!(name));
                    let mf = obj.pointer("/metadata/managedFields").cloned();
                    return self.create_with(rt, ns, obj, opts, mf);
                }
            };
            let mut target = render::object(rt, &old);
            match patch_type {
                PatchType::Json => patch::json_patch(&mut target, body)?,
                PatchType::Merge => patch::merge_patch(&mut target, body)?,
                PatchType::StrategicMerge => patch::strategic_merge_patch(&mut target, body)?,
                PatchType::Apply => {
                    let applied = applied.as_ref().expect("parsed above for apply");
                    if let Some(n) = meta_str(applied, "name")
                        && n != name
                    {
                        return Err(ApiError::bad_request(format!(
                            "the name of the object ({n}) does not match the name on the URL ({name})"
                        )));
                    }
                    target = managed::apply(
                        Some(&old),
                        applied,
                        &opts.field_manager,
                        opts.force,
                        &rt.api_version(),
                        &now(),
                    )?;
                }
            }
            if !target.is_object() {
                return Err(ApiError::bad_request(format!(
                    "the patched object is not a {} object",
                    rt.kind
                )));
            }
            if let Some(n) = meta_str(&target, "name")
                && n != name
            {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({n}) does not match the name on the URL ({name})"
                )));
            }
            let patched_rv = meta_str(&target, "resourceVersion").map(str::to_owned);
            if let Some(rv) = &patched_rv
                && meta_str(&old, "resourceVersion") != Some(rv.as_str())
            {
                return Err(ApiError::stale(rt, name));
            }
            let apply_fields = if patch_type == PatchType::Apply {
                target.pointer("/metadata/managedFields").cloned()
            } else {
                None
            };
            let (mut new, mut warnings) =
                self.prepare_update(rt, &old, target, subresource, opts)?;
            if let Some(mf) = apply_fields {
                meta_mut(&mut new).insert("managedFields".into(), mf);
            }
            warnings.extend(self.admit(
                rt,
                Operation::Update(subresource),
                ns,
                name,
                Some(&old),
                Some(&mut new),
                opts.dry_run,
            )?);
            match self.commit_update(rt, ns, &old, new, opts) {
                Ok(stored) => {
                    return Ok(Written {
                        code: 200,
                        object: stored,
                        warnings,
                    });
                }
                Err(store::Error::Conflict) => continue,
                Err(_) => return Err(ApiError::not_found(rt, name)),
            }
        }
        Err(ApiError::conflict(
            rt,
            name,
            "too many concurrent updates, try again",
        ))
    }

    // === delete ===

    /// DELETE one object.
    pub fn delete(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        name: &str,
        opts: &DeleteOptions,
    ) -> ApiResult<Deleted> {
        loop {
            let old = self.get(rt, ns, name)?;
            if let Some(uid) = &opts.uid {
                let have = meta_str(&old, "uid").unwrap_or("");
                if have != uid {
                    return Err(ApiError::conflict(
                        rt,
                        name,
                        &format!(
                            "Precondition failed: UID in precondition: {uid}, UID in object meta: {have}"
                        ),
                    ));
                }
            }
            if let Some(rv) = &opts.resource_version {
                let have = meta_str(&old, "resourceVersion").unwrap_or("");
                if have != rv {
                    return Err(ApiError::conflict(
                        rt,
                        name,
                        &format!(
                            "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {have}"
                        ),
                    ));
                }
            }
            self.admit(
                rt,
                Operation::Delete,
                ns,
                name,
                Some(&old),
                None,
                opts.dry_run,
            )?;
            let old_rv = meta_str(&old, "resourceVersion").map(str::to_owned);
            let mut f = finalizers(&old);
            let is_namespace = rt.group.is_empty() && rt.plural == "namespaces";
            match opts.propagation.as_deref() {
                Some("Foreground") if !f.iter().any(|x| x == "foregroundDeletion") => {
                    f.push("foregroundDeletion".into())
                }
                Some("Orphan") if !f.iter().any(|x| x == "orphan") => f.push("orphan".into()),
                _ => {}
            }
            let spec_finalizers = is_namespace
                && old
                    .pointer("/spec/finalizers")
                    .and_then(Value::as_array)
                    .is_some_and(|a| !a.is_empty());
            if !f.is_empty() || spec_finalizers {
                // Graceful: mark and let controllers/finalizers finish.
                if meta_str(&old, "deletionTimestamp").is_some() && f == finalizers(&old) {
                    return Ok(Deleted::Object(render::object(rt, &old)));
                }
                let mut new = (*old).clone();
                {
                    let m = meta_mut(&mut new);
                    if !m.contains_key("deletionTimestamp") {
                        m.insert("deletionTimestamp".into(), json!(now()));
                        m.insert("deletionGracePeriodSeconds".into(), json!(0));
                    }
                    if f.is_empty() {
                        m.remove("finalizers");
                    } else {
                        m.insert("finalizers".into(), json!(f));
                    }
                }
                if is_namespace && let Some(s) = new.as_object_mut() {
                    s.insert("status".into(), json!({"phase": "Terminating"}));
                }
                if tracks_generation(rt) {
                    let g = meta(&old)
                        .and_then(|m| m.get("generation"))
                        .and_then(Value::as_i64)
                        .unwrap_or(1);
                    meta_mut(&mut new).insert("generation".into(), json!(g + 1));
                }
                if opts.dry_run {
                    return Ok(Deleted::Object(render::object(rt, &new)));
                }
                match self
                    .store
                    .update(&rt.storage_key(), ns, name, new, old_rv.as_deref())
                {
                    Ok(stored) => return Ok(Deleted::Object(render::object(rt, &stored))),
                    Err(store::Error::Conflict) => continue,
                    Err(_) => return Err(ApiError::not_found(rt, name)),
                }
            }
            let uid = meta_str(&old, "uid").unwrap_or("").to_owned();
            if opts.dry_run {
                return Ok(Deleted::Status(delete_success(
                    &rt.group, &rt.plural, name, &uid,
                )));
            }
            match self
                .store
                .delete(&rt.storage_key(), ns, name, old_rv.as_deref())
            {
                Ok(last) => {
                    // Pods answer with the object; most kinds with a Status.
                    if rt.group.is_empty() && rt.plural == "pods" {
                        return Ok(Deleted::Object(render::object(rt, &last)));
                    }
                    return Ok(Deleted::Status(delete_success(
                        &rt.group, &rt.plural, name, &uid,
                    )));
                }
                Err(store::Error::Conflict) => continue,
                Err(_) => return Err(ApiError::not_found(rt, name)),
            }
        }
    }

    /// DELETE on a collection: deletes what the selectors match, answers the list of them.
    pub fn delete_collection(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        list: &ListOptions,
        opts: &DeleteOptions,
    ) -> ApiResult<Vec<u8>> {
        let (metadata, items) = self.list(
            rt,
            ns,
            &ListOptions {
                limit: None,
                continue_token: None,
                ..list.clone()
            },
        )?;
        let mut deleted = Vec::new();
        for item in items {
            let name = meta_str(&item, "name").unwrap_or("").to_owned();
            let item_ns = meta_str(&item, "namespace").map(str::to_owned);
            match self.delete(rt, item_ns.as_deref(), &name, opts) {
                Ok(_) => deleted.push(item),
                Err(e) if e.code() == 404 => {}
                Err(e) => return Err(e),
            }
        }
        Ok(render::list(rt, &metadata, &deleted))
    }

    /// Remove a namespaced object or cluster object directly (controllers), honouring
    /// finalizers like a DELETE with background propagation.
    pub fn delete_internal(&self, rt: &ResourceType, ns: Option<&str>, name: &str) {
        let _ = self.delete(rt, ns, name, &DeleteOptions::default());
    }

    /// The `autoscaling/v1` Scale of a workload.
    pub fn get_scale(&self, rt: &ResourceType, ns: Option<&str>, name: &str) -> ApiResult<Value> {
        let obj = self.get(rt, ns, name)?;
        let selector = obj
            .pointer("/spec/selector/matchLabels")
            .or_else(|| obj.pointer("/spec/selector"))
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| v.as_str().map(|v| format!("{k}={v}")))
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default();
        let mut metadata = Map::new();
        for k in [
            "name",
            "namespace",
            "uid",
            "resourceVersion",
            "creationTimestamp",
        ] {
            if let Some(v) = meta(&obj).and_then(|m| m.get(k)) {
                metadata.insert(k.into(), v.clone());
            }
        }
        Ok(json!({
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": metadata,
            "spec": {"replicas": obj.pointer("/spec/replicas").cloned().unwrap_or(json!(1))},
            "status": {
                "replicas": obj.pointer("/status/replicas").cloned().unwrap_or(json!(0)),
                "selector": selector,
            },
        }))
    }

    /// Write a Scale's `spec.replicas` to its workload; returns the new Scale.
    pub fn set_scale(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        name: &str,
        scale: &Value,
        opts: &WriteOptions,
    ) -> ApiResult<Value> {
        let Some(replicas) = scale.pointer("/spec/replicas").and_then(Value::as_i64) else {
            return Err(ApiError::invalid(
                "autoscaling",
                "Scale",
                name,
                &[Cause::required("spec.replicas", "")],
            ));
        };
        if replicas < 0 {
            return Err(ApiError::invalid(
                "autoscaling",
                "Scale",
                name,
                &[Cause::invalid(
                    "spec.replicas",
                    &json!(replicas),
                    "must be greater than or equal to 0",
                )],
            ));
        }
        let body = serde_json::to_vec(&json!({"spec": {"replicas": replicas}}))
            .map_err(|e| ApiError::internal(e.to_string()))?;
        self.patch(rt, ns, name, PatchType::Merge, &body, None, opts)?;
        self.get_scale(rt, ns, name)
    }

    /// The type a storage key is served as (preferred version).
    pub fn type_for(&self, key: &StorageKey) -> Option<Arc<ResourceType>> {
        self.registry
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .lookup_any_version(&key.group, &key.plural)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_whole_seconds_in_utc() {
        let t = now();
        assert_eq!(t.len(), "2026-11-22T05:10:12Z".len(), "{t}");
        let parsed = chrono::DateTime::parse_from_rfc3339(&t).unwrap();
        assert_eq!(parsed.offset().local_minus_utc(), 0);
        assert!(t.ends_with('Z') && !t.contains('.'), "{t}");
    }

    fn api() -> Api {
        let api = Api::new("CA".into()).unwrap();
        api.bootstrap().unwrap();
        api
    }

    fn opts() -> WriteOptions {
        WriteOptions {
            field_manager: "test".into(),
            ..Default::default()
        }
    }

    #[test]
    fn bootstrap_creates_system_namespaces_with_their_contents() {
        let api = api();
        let ns = api.lookup("", "v1", "namespaces").unwrap();
        let d = api.get(&ns, None, "default").unwrap();
        assert_eq!(
            d["metadata"]["labels"]["kubernetes.io/metadata.name"],
            "default"
        );
        assert_eq!(d["status"]["phase"], "Active");
        let cm = api.lookup("", "v1", "configmaps").unwrap();
        let root = api
            .get(&cm, Some("kube-system"), "kube-root-ca.crt")
            .unwrap();
        assert_eq!(root["data"]["ca.crt"], "CA");
        let sa = api.lookup("", "v1", "serviceaccounts").unwrap();
        assert!(api.get(&sa, Some("kube-public"), "default").is_ok());
        let svc = api.lookup("", "v1", "services").unwrap();
        assert_eq!(
            api.get(&svc, Some("default"), "kubernetes").unwrap()["spec"]["clusterIP"],
            "10.96.0.1"
        );
    }

    #[test]
    fn create_errors_and_dry_run() {
        let api = api();
        let cm = api.lookup("", "v1", "configmaps").unwrap();
        let e = api
            .create(
                &cm,
                Some("nope"),
                json!({"metadata": {"name": "a"}}),
                &opts(),
            )
            .unwrap_err();
        assert_eq!(e.code(), 404);
        let e = api
            .create(&cm, Some("default"), json!({"metadata": {}}), &opts())
            .unwrap_err();
        assert_eq!(e.code(), 422);
        let dry = WriteOptions {
            dry_run: true,
            ..opts()
        };
        let w = api
            .create(
                &cm,
                Some("default"),
                json!({"metadata": {"name": "a"}}),
                &dry,
            )
            .unwrap();
        assert_eq!(w.code, 201);
        assert!(w.object["metadata"]["uid"].is_string());
        assert!(w.object["metadata"].get("resourceVersion").is_none());
        assert!(api.get(&cm, Some("default"), "a").is_err());
        // A dry run of a name that exists is refused like a real create.
        api.create(
            &cm,
            Some("default"),
            json!({"metadata": {"name": "taken"}}),
            &opts(),
        )
        .unwrap();
        let e = api
            .create(
                &cm,
                Some("default"),
                json!({"metadata": {"name": "taken"}}),
                &dry,
            )
            .unwrap_err();
        assert_eq!(e.code(), 409);
        let w = api
            .create(
                &cm,
                Some("default"),
                json!({"metadata": {"generateName": "x-"}}),
                &opts(),
            )
            .unwrap();
        let name = w.object["metadata"]["name"].as_str().unwrap();
        assert!(name.starts_with("x-") && name.len() == 7, "{name}");
        api.create(
            &cm,
            Some("default"),
            json!({"metadata": {"name": "b"}}),
            &opts(),
        )
        .unwrap();
        let e = api
            .create(
                &cm,
                Some("default"),
                json!({"metadata": {"name": "b"}}),
                &opts(),
            )
            .unwrap_err();
        assert_eq!(e.code(), 409);
    }

    #[test]
    fn update_conflicts_and_noop() {
        let api = api();
        let cm = api.lookup("", "v1", "configmaps").unwrap();
        let w = api
            .create(
                &cm,
                Some("default"),
                json!({"metadata": {"name": "a"}, "data": {"k": "1"}}),
                &opts(),
            )
            .unwrap();
        let rv = w.object["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .to_owned();
        let mut obj = Value::clone(&w.object);
        obj["data"]["k"] = json!("2");
        let w2 = api
            .update(&cm, Some("default"), "a", obj.clone(), None, &opts())
            .unwrap();
        assert_ne!(w2.object["metadata"]["resourceVersion"], json!(rv));
        // Stale rv.
        let e = api
            .update(&cm, Some("default"), "a", obj.clone(), None, &opts())
            .unwrap_err();
        assert_eq!(e.code(), 409);
        // No-op keeps the rv.
        let w3 = api
            .update(
                &cm,
                Some("default"),
                "a",
                Value::clone(&w2.object),
                None,
                &opts(),
            )
            .unwrap();
        assert_eq!(
            w3.object["metadata"]["resourceVersion"],
            w2.object["metadata"]["resourceVersion"]
        );
        let mut renamed = Value::clone(&w2.object);
        renamed["metadata"]["name"] = json!("other");
        assert_eq!(
            api.update(&cm, Some("default"), "a", renamed, None, &opts())
                .unwrap_err()
                .code(),
            400
        );
    }

    #[test]
    fn finalizers_hold_deletion_until_removed() {
        let api = api();
        let cm = api.lookup("", "v1", "configmaps").unwrap();
        api.create(
            &cm,
            Some("default"),
            json!({"metadata": {"name": "f", "finalizers": ["x/y"]}}),
            &opts(),
        )
        .unwrap();
        match api
            .delete(&cm, Some("default"), "f", &DeleteOptions::default())
            .unwrap()
        {
            Deleted::Object(o) => assert!(o["metadata"]["deletionTimestamp"].is_string()),
            Deleted::Status(s) => panic!("deleted at once: {s}"),
        }
        let w = api
            .patch(
                &cm,
                Some("default"),
                "f",
                PatchType::Merge,
                br#"{"metadata":{"finalizers":null}}"#,
                None,
                &opts(),
            )
            .unwrap();
        assert!(w.object["metadata"]["deletionTimestamp"].is_string());
        assert!(api.get(&cm, Some("default"), "f").is_err());
    }

    #[test]
    fn status_subresource_separation() {
        let api = api();
        let d = api.lookup("apps", "v1", "deployments").unwrap();
        let body = json!({"metadata": {"name": "d"}, "spec": {"selector": {"matchLabels": {"a": "b"}},
            "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}},
            "status": {"replicas": 5}});
        let w = api.create(&d, Some("default"), body, &opts()).unwrap();
        assert_eq!(w.object["status"], json!({}));
        assert_eq!(w.object["metadata"]["generation"], 1);
        let mut s = Value::clone(&w.object);
        s["status"] = json!({"replicas": 1});
        let w = api
            .update(&d, Some("default"), "d", s, Some("status"), &opts())
            .unwrap();
        assert_eq!(w.object["status"]["replicas"], 1);
        assert_eq!(w.object["metadata"]["generation"], 1);
        let w = api
            .patch(
                &d,
                Some("default"),
                "d",
                PatchType::Merge,
                br#"{"spec":{"replicas":3},"status":{"replicas":9}}"#,
                None,
                &opts(),
            )
            .unwrap();
        assert_eq!(w.object["status"]["replicas"], 1);
        assert_eq!(w.object["metadata"]["generation"], 2);
    }

    #[test]
    fn apply_creates_then_updates() {
        let api = api();
        let cm = api.lookup("", "v1", "configmaps").unwrap();
        let o = WriteOptions {
            field_manager: "".into(),
            ..Default::default()
        };
        let e = api
            .patch(
                &cm,
                Some("default"),
                "s",
                PatchType::Apply,
                b"metadata: {name: s}",
                None,
                &o,
            )
            .unwrap_err();
        assert_eq!(e.code(), 422);
        let o = opts();
        let w = api
            .patch(
                &cm,
                Some("default"),
                "s",
                PatchType::Apply,
                b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: s}\ndata: {a: '1'}",
                None,
                &o,
            )
            .unwrap();
        assert_eq!(w.code, 201);
        assert_eq!(
            w.object["metadata"]["managedFields"][0]["operation"],
            "Apply"
        );
        let w = api
            .patch(
                &cm,
                Some("default"),
                "s",
                PatchType::Apply,
                b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: s}\ndata: {b: '2'}",
                None,
                &o,
            )
            .unwrap();
        assert_eq!(w.code, 200);
        assert_eq!(w.object["data"], json!({"b": "2"}));
    }
}

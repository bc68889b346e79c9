//! What the real API server adds to or checks on built-in objects when they
//! are written, for the fields that tools rely on: namespace labels and
//! finalizers, Service cluster IPs and node ports, PVC protection finalizers
//! and the DefaultStorageClass admission, Secret `stringData`, pod template
//! defaults, workload selectors, name validation, and the status that a
//! create resets.

use std::collections::HashSet;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};

use super::resources::ResourceType;
use super::status::{ApiError, Cause};

/// Facts about the rest of the cluster a defaulting step needs.
#[derive(Debug, Default)]
pub struct Context {
    /// Cluster IPs already allocated to Services.
    pub used_cluster_ips: Arc<HashSet<String>>,
    /// Node ports already allocated.
    pub used_node_ports: Arc<HashSet<u64>>,
    /// The name of the default StorageClass, if any.
    pub default_storage_class: Option<String>,
}

const SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const DNS1035_MSG: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";

fn is_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn is_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_label)
}

/// Check `metadata.name` as the real server does for the resource; the causes of a 422.
pub fn validate_name(rt: &ResourceType, name: &str) -> Vec<Cause> {
    let v = json!(name);
    let fail = |msg: &str| vec![Cause::invalid("metadata.name", &v, msg)];
    match (rt.group.as_str(), rt.plural.as_str()) {
        ("", "namespaces") if !is_label(name) => fail(LABEL_MSG),
        ("", "services")
            if !(is_label(name) && name.starts_with(|c: char| c.is_ascii_lowercase())) =>
        {
            fail(DNS1035_MSG)
        }
        // RBAC names are path segments; events and a few others are too.
        ("rbac.authorization.k8s.io", _) | ("", "events") | ("events.k8s.io", _) => {
            if name == "." || name == ".." || name.contains('/') || name.contains('%') {
                fail("may not contain '/' or '%', and may not be '.' or '..'")
            } else {
                Vec::new()
            }
        }
        _ if !is_subdomain(name) => fail(SUBDOMAIN_MSG),
        _ => Vec::new(),
    }
}

fn obj_mut<'a>(v: &'a mut Value, key: &str) -> &'a mut Map<String, Value> {
    if !v.get(key).is_some_and(Value::is_object)
        && let Some(m) = v.as_object_mut()
    {
        m.insert(key.to_owned(), json!({}));
    }
    v.get_mut(key)
        .and_then(Value::as_object_mut)
        .expect("just ensured an object")
}

fn default(m: &mut Map<String, Value>, key: &str, value: Value) {
    m.entry(key.to_owned()).or_insert(value);
}

const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
const QUALIFIED_NAME_MSG: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";

fn is_label_value(v: &str) -> bool {
    v.is_empty()
        || (v
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            && v.starts_with(|c: char| c.is_ascii_alphanumeric())
            && v.ends_with(|c: char| c.is_ascii_alphanumeric()))
}

/// Check a label or annotation key (a qualified name: `[prefix/]name`).
fn key_causes(field: &str, key: &str) -> Vec<Cause> {
    let v = json!(key);
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    let mut causes = Vec::new();
    if name.is_empty() {
        causes.push(Cause::invalid(field, &v, "name part must be non-empty"));
    } else if name.len() > 63 {
        causes.push(Cause::invalid(
            field,
            &v,
            "name part must be no more than 63 characters",
        ));
    } else if !is_label_value(name) {
        causes.push(Cause::invalid(field, &v, QUALIFIED_NAME_MSG));
    }
    if let Some(p) = prefix
        && !is_subdomain(p)
    {
        causes.push(Cause::invalid(
            field,
            &v,
            &format!("prefix part {SUBDOMAIN_MSG}"),
        ));
    }
    causes
}

/// Label and annotation validation of ObjectMeta (every kind, custom ones too).
pub fn validate_metadata(obj: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    if let Some(labels) = obj.pointer("/metadata/labels").and_then(Value::as_object) {
        for (k, v) in labels {
            causes.extend(key_causes("metadata.labels", k));
            let value = v.as_str().unwrap_or("");
            if value.len() > 63 {
                causes.push(Cause::invalid(
                    "metadata.labels",
                    v,
                    "must be no more than 63 characters",
                ));
            } else if !is_label_value(value) {
                causes.push(Cause::invalid("metadata.labels", v, LABEL_VALUE_MSG));
            }
        }
    }
    if let Some(ann) = obj
        .pointer("/metadata/annotations")
        .and_then(Value::as_object)
    {
        let mut total = 0;
        for (k, v) in ann {
            causes.extend(key_causes("metadata.annotations", &k.to_lowercase()));
            total += k.len() + v.as_str().map_or(0, str::len);
        }
        if total > 256 * 1024 {
            causes.push(Cause {
                reason: "FieldValueTooLong",
                field: "metadata.annotations".into(),
                message: "Too long: must have at most 262144 bytes".into(),
            });
        }
    }
    causes
}

/// What an update may not change, and what it keeps from the old object when the
/// client leaves it out (Service IPs and node ports).
pub fn on_update(rt: &ResourceType, old: &Value, new: &mut Value) -> Result<(), ApiError> {
    if rt.custom {
        return Ok(());
    }
    let name = old
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let immutable = |field: &str, pointer: &str, new: &Value| -> Option<Cause> {
        let (o, n) = (old.pointer(pointer), new.pointer(pointer));
        (o.is_some() && o != n)
            .then(|| Cause::invalid(field, n.unwrap_or(&Value::Null), "field is immutable"))
    };
    let mut causes = Vec::new();
    match (rt.group.as_str(), rt.plural.as_str()) {
        ("", "services") => {
            let old_spec = old.get("spec").cloned().unwrap_or(json!({}));
            let spec = obj_mut(new, "spec");
            for k in ["clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"] {
                if (!spec.contains_key(k) || spec.get(k) == Some(&json!("")))
                    && let Some(v) = old_spec.get(k)
                {
                    spec.insert(k.into(), v.clone());
                }
            }
            // Node ports are kept for ports that keep their number.
            if let (Some(Value::Array(ports)), Some(old_ports)) = (
                spec.get_mut("ports"),
                old_spec.get("ports").and_then(Value::as_array),
            ) {
                for p in ports.iter_mut().filter_map(Value::as_object_mut) {
                    if p.contains_key("nodePort") {
                        continue;
                    }
                    let old_np = old_ports
                        .iter()
                        .find(|op| op.get("port") == p.get("port"))
                        .and_then(|op| op.get("nodePort"))
                        .cloned();
                    if let Some(np) = old_np {
                        p.insert("nodePort".into(), np);
                    }
                }
            }
            let (o, n) = (
                old.pointer("/spec/clusterIP"),
                new.pointer("/spec/clusterIP"),
            );
            if o.is_some() && o != n && old.pointer("/spec/type") != Some(&json!("ExternalName")) {
                causes.push(Cause::invalid(
                    "spec.clusterIPs[0]",
                    n.unwrap_or(&Value::Null),
                    "may not change once set",
                ));
            }
        }
        ("", "persistentvolumeclaims") => {
            let strip = |v: &Value| {
                let mut s = v.get("spec").cloned().unwrap_or(json!({}));
                if let Some(m) = s.as_object_mut() {
                    m.remove("resources");
                    m.remove("volumeAttributesClassName");
                    // Binding (and the retroactive default class) are set by the controller.
                    if old.pointer("/spec/storageClassName").is_none() {
                        m.remove("storageClassName");
                    }
                    m.remove("volumeName");
                }
                s
            };
            if strip(old) != strip(new) {
                causes.push(Cause::forbidden(
                    "spec",
                    "spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims",
                ));
            }
        }
        ("apps", "deployments" | "statefulsets" | "daemonsets" | "replicasets") => {
            causes.extend(immutable("spec.selector", "/spec/selector", new));
        }
        ("batch", "jobs") => {
            causes.extend(immutable("spec.selector", "/spec/selector", new));
            causes.extend(immutable("spec.template", "/spec/template", new));
        }
        ("", "configmaps" | "secrets") if old.get("immutable") == Some(&json!(true)) => {
            for k in ["data", "binaryData", "immutable"] {
                if old.get(k) != new.get(k) {
                    causes.push(Cause::forbidden(
                        k,
                        "field is immutable when `immutable` is set",
                    ));
                }
            }
        }
        _ => {}
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(&rt.group, &rt.kind, &name, &causes))
    }
}

/// Defaults applied on every write (create and update) of a built-in object.
pub fn on_write(rt: &ResourceType, obj: &mut Value) -> Result<(), ApiError> {
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let causes = validate_metadata(obj);
    if !causes.is_empty() {
        return Err(ApiError::invalid(&rt.group, &rt.kind, &name, &causes));
    }
    if rt.custom {
        return Ok(());
    }
    match (rt.group.as_str(), rt.plural.as_str()) {
        ("", "namespaces") => {
            let meta = obj_mut(obj, "metadata");
            let labels = meta.entry("labels").or_insert_with(|| json!({}));
            if let Some(l) = labels.as_object_mut() {
                l.insert("kubernetes.io/metadata.name".into(), json!(name));
            }
            let spec = obj_mut(obj, "spec");
            default(spec, "finalizers", json!(["kubernetes"]));
        }
        ("", "secrets") => {
            let string_data = obj.as_object_mut().and_then(|m| m.remove("stringData"));
            if let Some(Value::Object(sd)) = string_data {
                let data = obj_mut(obj, "data");
                for (k, v) in sd {
                    let s = v.as_str().unwrap_or("").to_owned();
                    data.insert(k, json!(STANDARD.encode(s)));
                }
            }
            if let Some(data) = obj.get("data").and_then(Value::as_object) {
                for v in data.values() {
                    if let Some(s) = v.as_str()
                        && STANDARD.decode(s).is_err()
                    {
                        return Err(ApiError::bad_request(format!(
                            "Secret in version \"v1\" cannot be handled as a Secret: illegal base64 data in data value {s:?}"
                        )));
                    }
                }
            }
            if let Some(m) = obj.as_object_mut() {
                default(m, "type", json!("Opaque"));
            }
        }
        ("storage.k8s.io", "storageclasses") => {
            if let Some(m) = obj.as_object_mut() {
                default(m, "reclaimPolicy", json!("Delete"));
                default(m, "volumeBindingMode", json!("Immediate"));
            }
        }
        ("", "persistentvolumeclaims") => {
            let spec = obj_mut(obj, "spec");
            default(spec, "volumeMode", json!("Filesystem"));
        }
        ("", "persistentvolumes") => {
            let spec = obj_mut(obj, "spec");
            default(spec, "volumeMode", json!("Filesystem"));
            default(spec, "persistentVolumeReclaimPolicy", json!("Retain"));
        }
        ("", "pods") => {
            let spec = obj_mut(obj, "spec");
            pod_spec_defaults(spec);
            default(spec, "serviceAccountName", json!("default"));
            let sa = spec
                .get("serviceAccountName")
                .cloned()
                .unwrap_or(json!("default"));
            default(spec, "serviceAccount", sa);
            default(spec, "enableServiceLinks", json!(true));
            default(spec, "priority", json!(0));
            default(spec, "preemptionPolicy", json!("PreemptLowerPriority"));
        }
        ("apps", "deployments" | "statefulsets" | "daemonsets" | "replicasets") => {
            workload_selector_check(rt, obj, &name)?;
            let plural = rt.plural.clone();
            let spec = obj_mut(obj, "spec");
            if plural != "daemonsets" {
                default(spec, "replicas", json!(1));
            }
            match plural.as_str() {
                "deployments" => {
                    default(
                        spec,
                        "strategy",
                        json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}),
                    );
                    default(spec, "revisionHistoryLimit", json!(10));
                    default(spec, "progressDeadlineSeconds", json!(600));
                }
                "statefulsets" => {
                    default(spec, "podManagementPolicy", json!("OrderedReady"));
                    default(
                        spec,
                        "updateStrategy",
                        json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}),
                    );
                    default(spec, "revisionHistoryLimit", json!(10));
                    default(
                        spec,
                        "persistentVolumeClaimRetentionPolicy",
                        json!({"whenDeleted": "Retain", "whenScaled": "Retain"}),
                    );
                }
                "daemonsets" => {
                    default(
                        spec,
                        "updateStrategy",
                        json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}),
                    );
                    default(spec, "revisionHistoryLimit", json!(10));
                }
                _ => {}
            }
            template_defaults(spec);
        }
        ("batch", "jobs") => {
            let spec = obj_mut(obj, "spec");
            default(spec, "backoffLimit", json!(6));
            default(spec, "completionMode", json!("NonIndexed"));
            default(spec, "suspend", json!(false));
            template_defaults(spec);
        }
        (
            "admissionregistration.k8s.io",
            plural @ ("mutatingwebhookconfigurations" | "validatingwebhookconfigurations"),
        ) => {
            let mutating = plural == "mutatingwebhookconfigurations";
            let kind = rt.kind.clone();
            let mut causes = Vec::new();
            if let Some(Value::Array(hooks)) = obj.get_mut("webhooks") {
                for (i, h) in hooks.iter_mut().enumerate() {
                    let Some(h) = h.as_object_mut() else { continue };
                    default(h, "failurePolicy", json!("Fail"));
                    default(h, "matchPolicy", json!("Equivalent"));
                    default(h, "namespaceSelector", json!({}));
                    default(h, "objectSelector", json!({}));
                    default(h, "timeoutSeconds", json!(10));
                    if mutating {
                        default(h, "reinvocationPolicy", json!("Never"));
                    }
                    if let Some(Value::Array(rules)) = h.get_mut("rules") {
                        for r in rules.iter_mut().filter_map(Value::as_object_mut) {
                            default(r, "scope", json!("*"));
                        }
                    }
                    match h.get("sideEffects").and_then(Value::as_str) {
                        Some("None" | "NoneOnDryRun") => {}
                        Some(other) => causes.push(Cause::not_supported(
                            &format!("webhooks[{i}].sideEffects"),
                            &json!(other),
                            &["None".into(), "NoneOnDryRun".into()],
                        )),
                        None => causes.push(Cause::required(
                            &format!("webhooks[{i}].sideEffects"),
                            "must specify one of None, NoneOnDryRun",
                        )),
                    }
                    if h.get("admissionReviewVersions")
                        .and_then(Value::as_array)
                        .is_none_or(Vec::is_empty)
                    {
                        causes.push(Cause::required(
                            &format!("webhooks[{i}].admissionReviewVersions"),
                            "must specify one of v1, v1beta1",
                        ));
                    }
                }
            }
            if !causes.is_empty() {
                return Err(ApiError::invalid(&rt.group, &kind, &name, &causes));
            }
        }
        ("batch", "cronjobs") => {
            let spec = obj_mut(obj, "spec");
            default(spec, "concurrencyPolicy", json!("Allow"));
            default(spec, "suspend", json!(false));
            default(spec, "successfulJobsHistoryLimit", json!(3));
            default(spec, "failedJobsHistoryLimit", json!(1));
        }
        _ => {}
    }
    Ok(())
}

fn template_defaults(spec: &mut Map<String, Value>) {
    if let Some(template) = spec.get_mut("template").and_then(Value::as_object_mut) {
        let meta = template.entry("metadata").or_insert_with(|| json!({}));
        if let Some(m) = meta.as_object_mut() {
            default(m, "creationTimestamp", Value::Null);
        }
        if let Some(ps) = template.get_mut("spec").and_then(Value::as_object_mut) {
            pod_spec_defaults(ps);
        }
    }
}

fn pod_spec_defaults(spec: &mut Map<String, Value>) {
    for list in ["initContainers", "containers"] {
        if let Some(Value::Array(cs)) = spec.get_mut(list) {
            for c in cs.iter_mut().filter_map(Value::as_object_mut) {
                default(c, "resources", json!({}));
                default(c, "terminationMessagePath", json!("/dev/termination-log"));
                default(c, "terminationMessagePolicy", json!("File"));
                let image = c.get("image").and_then(Value::as_str).unwrap_or("");
                let last = image.rsplit('/').next().unwrap_or("");
                let latest =
                    !last.contains(':') && !image.contains('@') || last.ends_with(":latest");
                default(
                    c,
                    "imagePullPolicy",
                    json!(if latest { "Always" } else { "IfNotPresent" }),
                );
                if let Some(Value::Array(ports)) = c.get_mut("ports") {
                    for p in ports.iter_mut().filter_map(Value::as_object_mut) {
                        default(p, "protocol", json!("TCP"));
                    }
                }
            }
        }
    }
    default(spec, "restartPolicy", json!("Always"));
    default(spec, "terminationGracePeriodSeconds", json!(30));
    default(spec, "dnsPolicy", json!("ClusterFirst"));
    default(spec, "securityContext", json!({}));
    default(spec, "schedulerName", json!("default-scheduler"));
}

fn workload_selector_check(rt: &ResourceType, obj: &Value, name: &str) -> Result<(), ApiError> {
    let selector = obj.pointer("/spec/selector");
    let labels = obj
        .pointer("/spec/template/metadata/labels")
        .cloned()
        .unwrap_or(json!({}));
    let mut causes = Vec::new();
    let label_map: std::collections::BTreeMap<String, String> = labels
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_owned()))
                .collect()
        })
        .unwrap_or_default();
    let shown = format!(
        "map[string]string{{{}}}",
        label_map
            .iter()
            .map(|(k, v)| format!("{k:?}:{v:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let matches = match selector {
        None | Some(Value::Null) => {
            causes.push(Cause::required("spec.selector", ""));
            false
        }
        Some(s) => {
            let empty = s
                .get("matchLabels")
                .and_then(Value::as_object)
                .is_none_or(Map::is_empty)
                && s.get("matchExpressions")
                    .and_then(Value::as_array)
                    .is_none_or(Vec::is_empty);
            if empty {
                causes.push(Cause::invalid(
                    "spec.selector",
                    &json!("empty selector is invalid for deployment"),
                    "empty selector is invalid for deployment",
                ));
            }
            super::selectors::label_selector_object_matches(s, &label_map)
        }
    };
    if !matches {
        causes.push(Cause {
            reason: "FieldValueInvalid",
            field: "spec.template.metadata.labels".into(),
            message: format!("Invalid value: {shown}: `selector` does not match template `labels`"),
        });
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(&rt.group, &rt.kind, name, &causes))
    }
}

/// Defaults applied only when an object is created; `ctx` describes the cluster.
pub fn on_create(rt: &ResourceType, obj: &mut Value, ctx: &Context) -> Result<(), ApiError> {
    if rt.custom {
        return Ok(());
    }
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    match (rt.group.as_str(), rt.plural.as_str()) {
        ("", "namespaces") => {
            obj_mut(obj, "status").insert("phase".into(), json!("Active"));
        }
        ("", "persistentvolumeclaims") => {
            add_finalizer(obj, "kubernetes.io/pvc-protection");
            // DefaultStorageClass admission: only when the field is absent (not "").
            if obj.pointer("/spec/storageClassName").is_none()
                && let Some(sc) = &ctx.default_storage_class
            {
                obj_mut(obj, "spec").insert("storageClassName".into(), json!(sc));
            }
            obj.as_object_mut()
                .map(|m| m.insert("status".into(), json!({"phase": "Pending"})));
        }
        ("", "persistentvolumes") => {
            add_finalizer(obj, "kubernetes.io/pv-protection");
            obj.as_object_mut()
                .map(|m| m.insert("status".into(), json!({"phase": "Pending"})));
        }
        ("", "pods") => {
            obj.as_object_mut().map(|m| {
                m.insert(
                    "status".into(),
                    json!({"phase": "Pending", "qosClass": "BestEffort"}),
                )
            });
        }
        ("", "services") => service_create(obj, &name, ctx)?,
        ("apps", _) | ("batch", _) => {
            obj.as_object_mut()
                .map(|m| m.insert("status".into(), json!({})));
        }
        _ => {}
    }
    Ok(())
}

fn add_finalizer(obj: &mut Value, f: &str) {
    let meta = obj_mut(obj, "metadata");
    let list = meta.entry("finalizers").or_insert_with(|| json!([]));
    if let Value::Array(a) = list
        && !a.iter().any(|x| x == f)
    {
        a.push(json!(f));
    }
}

fn service_create(obj: &mut Value, name: &str, ctx: &Context) -> Result<(), ApiError> {
    let spec = obj_mut(obj, "spec");
    default(spec, "type", json!("ClusterIP"));
    default(spec, "sessionAffinity", json!("None"));
    let ty = spec
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP")
        .to_owned();
    if ty == "ExternalName" {
        return Ok(());
    }
    if let Some(Value::Array(ports)) = spec.get_mut("ports") {
        for p in ports.iter_mut().filter_map(Value::as_object_mut) {
            default(p, "protocol", json!("TCP"));
            let port = p.get("port").cloned().unwrap_or(Value::Null);
            default(p, "targetPort", port);
        }
    }
    let requested = spec
        .get("clusterIP")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let ip = match requested.as_deref() {
        Some("None") => "None".to_owned(),
        Some(ip) if !ip.is_empty() => {
            if ctx.used_cluster_ips.contains(ip) {
                return Err(ApiError::invalid(
                    "",
                    "Service",
                    name,
                    &[Cause::invalid(
                        "spec.clusterIPs",
                        &json!([ip]),
                        &format!("failed to allocate IP {ip}: provided IP is already allocated"),
                    )],
                ));
            }
            ip.to_owned()
        }
        _ => allocate_ip(&ctx.used_cluster_ips)
            .ok_or_else(|| ApiError::internal("failed to allocate a serviceIP: range is full"))?,
    };
    spec.insert("clusterIP".into(), json!(ip));
    spec.insert("clusterIPs".into(), json!([ip]));
    if ip != "None" || spec.contains_key("selector") {
        default(spec, "ipFamilies", json!(["IPv4"]));
        default(spec, "ipFamilyPolicy", json!("SingleStack"));
    }
    default(spec, "internalTrafficPolicy", json!("Cluster"));
    if ty == "NodePort" || ty == "LoadBalancer" {
        default(spec, "externalTrafficPolicy", json!("Cluster"));
        if ty == "LoadBalancer" {
            default(spec, "allocateLoadBalancerNodePorts", json!(true));
        }
        let mut used = (*ctx.used_node_ports).clone();
        if let Some(Value::Array(ports)) = spec.get_mut("ports") {
            for p in ports.iter_mut().filter_map(Value::as_object_mut) {
                match p.get("nodePort").and_then(Value::as_u64) {
                    Some(np) => {
                        if !used.insert(np) {
                            return Err(ApiError::invalid(
                                "",
                                "Service",
                                name,
                                &[Cause::invalid(
                                    "spec.ports[0].nodePort",
                                    &json!(np),
                                    "provided port is already allocated",
                                )],
                            ));
                        }
                    }
                    None => {
                        let np =
                            (30000..=32767u64)
                                .find(|n| !used.contains(n))
                                .ok_or_else(|| {
                                    ApiError::internal(
                                        "failed to allocate a nodePort: range is full",
                                    )
                                })?;
                        used.insert(np);
                        p.insert("nodePort".into(), json!(np));
                    }
                }
            }
        }
    }
    obj.as_object_mut()
        .map(|m| m.insert("status".into(), json!({"loadBalancer": {}})));
    Ok(())
}

/// A free address of the service range 10.96.0.0/12, picked at random as the
/// API server's allocator does (10.96.0.1-10.96.0.10 are left to the
/// well-known Services, such as `kubernetes`, that claim them explicitly).
fn allocate_ip(used: &HashSet<String>) -> Option<String> {
    const FIRST: u32 = 11;
    const END: u32 = (1 << 20) - 1;
    let span = END - FIRST;
    let start = rand::random_range(0..span);
    (0..span)
        .map(|i| {
            let addr = (10u32 << 24) | (96 << 16) | (FIRST + (start + i) % span);
            std::net::Ipv4Addr::from(addr).to_string()
        })
        .find(|ip| !used.contains(ip))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emulator::resources::Registry;

    fn recorded(name: &str) -> Value {
        let path = format!(
            "{}/fixtures/real-apiserver/{name}.json",
            env!("CARGO_MANIFEST_DIR")
        );
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    #[test]
    fn deployment_defaults_match_recording() {
        let reg = Registry::builtin().unwrap();
        let rt = reg.lookup("apps", "v1", "deployments").unwrap();
        let rec = recorded("deploy-create");
        let mut obj = rec["request"]["body"].clone();
        on_write(&rt, &mut obj).unwrap();
        on_create(&rt, &mut obj, &Context::default()).unwrap();
        assert_eq!(obj["spec"], rec["body"]["spec"]);
        assert_eq!(obj["status"], rec["body"]["status"]);
    }

    #[test]
    fn deployment_without_selector_is_the_recorded_422() {
        let reg = Registry::builtin().unwrap();
        let rt = reg.lookup("apps", "v1", "deployments").unwrap();
        let rec = recorded("error-create-deployment-missing-selector");
        let mut obj = rec["request"]["body"].clone();
        let err = on_write(&rt, &mut obj).unwrap_err();
        assert_eq!(err.to_status().unwrap(), rec["body"]);
    }

    #[test]
    fn pvc_gets_default_class_unless_explicitly_empty() {
        let reg = Registry::builtin().unwrap();
        let rt = reg.lookup("", "v1", "persistentvolumeclaims").unwrap();
        let ctx = Context {
            default_storage_class: Some("rec-default".into()),
            ..Default::default()
        };
        let rec = recorded("pvc-create-with-default-storageclass");
        let mut obj = rec["request"]["body"].clone();
        on_write(&rt, &mut obj).unwrap();
        on_create(&rt, &mut obj, &ctx).unwrap();
        assert_eq!(obj["spec"], rec["body"]["spec"]);
        assert_eq!(obj["status"], rec["body"]["status"]);
        assert_eq!(
            obj["metadata"]["finalizers"],
            rec["body"]["metadata"]["finalizers"]
        );
        let mut empty = json!({"metadata": {"name": "x"}, "spec": {"storageClassName": ""}});
        on_create(&rt, &mut empty, &ctx).unwrap();
        assert_eq!(empty["spec"]["storageClassName"], "");
    }

    #[test]
    fn services_get_cluster_ips_and_node_ports() {
        let reg = Registry::builtin().unwrap();
        let rt = reg.lookup("", "v1", "services").unwrap();
        let mut ctx = Context::default();
        Arc::make_mut(&mut ctx.used_cluster_ips).insert("10.96.0.11".into());
        Arc::make_mut(&mut ctx.used_node_ports).insert(30000);
        let mut svc = json!({"metadata": {"name": "web"}, "spec": {"type": "NodePort", "ports": [{"port": 80}]}});
        on_create(&rt, &mut svc, &ctx).unwrap();
        let ip: std::net::Ipv4Addr = svc["spec"]["clusterIP"].as_str().unwrap().parse().unwrap();
        // Random in the range, above the reserved first addresses, not the used one.
        let first_free = u32::from(std::net::Ipv4Addr::new(10, 96, 0, 12));
        let broadcast = u32::from(std::net::Ipv4Addr::new(10, 111, 255, 255));
        assert!((first_free..broadcast).contains(&u32::from(ip)), "{ip}");
        assert_eq!(svc["spec"]["clusterIPs"], json!([ip.to_string()]));
        assert_eq!(svc["spec"]["ports"][0]["nodePort"], 30001);
        assert_eq!(svc["spec"]["ports"][0]["targetPort"], 80);
        let mut taken = json!({"metadata": {"name": "x"}, "spec": {"clusterIP": "10.96.0.11"}});
        assert_eq!(on_create(&rt, &mut taken, &ctx).unwrap_err().code(), 422);
    }

    #[test]
    fn labels_and_annotations_are_validated() {
        assert!(validate_metadata(&json!({"metadata": {"labels": {"a.io/b": "c-d_e.f"}, "annotations": {"x/y": "anything at all"}}})).is_empty());
        let bad = validate_metadata(
            &json!({"metadata": {"labels": {"a": "bad value", "-x": "v", "k": "x".repeat(64)}}}),
        );
        assert_eq!(bad.len(), 3, "{bad:?}");
        assert!(bad.iter().all(|c| c.field == "metadata.labels"));
    }

    #[test]
    fn updates_keep_service_ips_and_refuse_immutable_changes() {
        let reg = Registry::builtin().unwrap();
        let svc = reg.lookup("", "v1", "services").unwrap();
        let old = json!({"metadata": {"name": "s"}, "spec": {"clusterIP": "10.96.0.20", "clusterIPs": ["10.96.0.20"],
            "type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}]}});
        let mut new = json!({"metadata": {"name": "s"}, "spec": {"type": "NodePort", "ports": [{"port": 80}]}});
        on_update(&svc, &old, &mut new).unwrap();
        assert_eq!(new["spec"]["clusterIP"], "10.96.0.20");
        assert_eq!(new["spec"]["ports"][0]["nodePort"], 30080);
        let mut moved = json!({"metadata": {"name": "s"}, "spec": {"clusterIP": "10.96.0.99"}});
        assert_eq!(on_update(&svc, &old, &mut moved).unwrap_err().code(), 422);

        let pvc = reg.lookup("", "v1", "persistentvolumeclaims").unwrap();
        let old = json!({"spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}, "storageClassName": "a"}});
        let mut bigger = json!({"spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "2Gi"}}, "storageClassName": "a"}});
        on_update(&pvc, &old, &mut bigger).unwrap();
        let mut other_class = json!({"spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}, "storageClassName": "b"}});
        assert_eq!(
            on_update(&pvc, &old, &mut other_class).unwrap_err().code(),
            422
        );
    }

    #[test]
    fn names_are_validated_per_kind() {
        let reg = Registry::builtin().unwrap();
        let cm = reg.lookup("", "v1", "configmaps").unwrap();
        assert!(validate_name(&cm, "a.b-c").is_empty());
        assert!(!validate_name(&cm, "Bad_Name").is_empty());
        let ns = reg.lookup("", "v1", "namespaces").unwrap();
        assert!(!validate_name(&ns, "a.b").is_empty());
        let role = reg
            .lookup("rbac.authorization.k8s.io", "v1", "clusterroles")
            .unwrap();
        assert!(validate_name(&role, "system:controller:x").is_empty());
    }
}

//! Dynamic admission: MutatingWebhookConfigurations, then
//! ValidatingWebhookConfigurations, called for webhooks given by
//! `clientConfig.url` (+ `caBundle`), with the matching rules (operations,
//! groups, versions, resources and subresources, scope), `namespaceSelector`,
//! `objectSelector`, `failurePolicy`, `timeoutSeconds`, `sideEffects` under
//! dry run, JSONPatch responses, warnings, and denials phrased as the real
//! API server phrases them. The AdmissionReview sent has the shape recorded
//! from kube-apiserver v1.28.7.
//!
//! `clientConfig.service` webhooks reach `<name>.<namespace>.svc` at the local
//! address a test registered with `Emulator::expose_service` (standing in for
//! the Service's pods); without one they fail as a Service without endpoints
//! does, and their failurePolicy decides.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use super::resources::{ResourceType, StorageKey};
use super::selectors::label_selector_object_matches;
use super::status::ApiError;
use super::store::Store;

/// Which webhooks to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// MutatingWebhookConfigurations (may patch the object).
    Mutating,
    /// ValidatingWebhookConfigurations.
    Validating,
}

impl Phase {
    fn plural(self) -> &'static str {
        match self {
            Phase::Mutating => "mutatingwebhookconfigurations",
            Phase::Validating => "validatingwebhookconfigurations",
        }
    }
}

/// One admission decision to make.
#[derive(Debug)]
pub struct Attributes<'a> {
    /// The resource type.
    pub rt: &'a ResourceType,
    /// `CREATE`, `UPDATE`, `DELETE`.
    pub operation: &'static str,
    /// `status` etc.
    pub subresource: Option<&'a str>,
    /// Namespace of the object (for Namespace objects: their own name).
    pub namespace: Option<&'a str>,
    /// Object name.
    pub name: &'a str,
    /// The old object (typed), for UPDATE and DELETE.
    pub old_object: Option<&'a Value>,
    /// `dryRun=All`.
    pub dry_run: bool,
    /// Labels of the object's namespace (for namespaceSelector).
    pub namespace_labels: BTreeMap<String, String>,
}

fn labels_of(obj: Option<&Value>) -> BTreeMap<String, String> {
    obj.and_then(|o| o.pointer("/metadata/labels"))
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

/// Does webhook `rule` match the request?
fn rule_matches(rule: &Value, a: &Attributes<'_>) -> bool {
    let list = |k: &str| -> Vec<&str> {
        rule.get(k)
            .and_then(Value::as_array)
            .map(|v| v.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default()
    };
    let has = |k: &str, want: &str| list(k).iter().any(|x| *x == "*" || *x == want);
    if !has("operations", a.operation)
        || !has("apiGroups", &a.rt.group)
        || !has("apiVersions", &a.rt.version)
    {
        return false;
    }
    let resource_ok = list("resources").iter().any(|r| {
        let (res, sub) = r.split_once('/').unwrap_or((r, ""));
        let res_ok = res == "*" || res == a.rt.plural;
        let sub_ok = match (sub, a.subresource) {
            ("", None) => true,
            ("*", _) => true,
            (s, Some(want)) => s == want,
            (_, None) => false,
        };
        res_ok && sub_ok
    });
    if !resource_ok {
        return false;
    }
    match rule.get("scope").and_then(Value::as_str).unwrap_or("*") {
        "Cluster" => !a.rt.namespaced,
        "Namespaced" => a.rt.namespaced,
        _ => true,
    }
}

/// Does `webhook` apply to the request with `object` (typed; None for DELETE)?
fn webhook_matches(webhook: &Value, a: &Attributes<'_>, object: Option<&Value>) -> bool {
    let rules = webhook.get("rules").and_then(Value::as_array);
    if !rules.into_iter().flatten().any(|r| rule_matches(r, a)) {
        return false;
    }
    let is_namespace = a.rt.group.is_empty() && a.rt.plural == "namespaces";
    if let Some(sel) = webhook.get("namespaceSelector").filter(|s| !s.is_null()) {
        let labels = if is_namespace {
            labels_of(object.or(a.old_object))
        } else {
            a.namespace_labels.clone()
        };
        // Cluster-scoped objects other than namespaces are not subject to it.
        if (a.rt.namespaced || is_namespace) && !label_selector_object_matches(sel, &labels) {
            return false;
        }
    }
    if let Some(sel) = webhook.get("objectSelector").filter(|s| !s.is_null()) {
        let new_ok =
            object.is_some_and(|o| label_selector_object_matches(sel, &labels_of(Some(o))));
        let old_ok = a
            .old_object
            .is_some_and(|o| label_selector_object_matches(sel, &labels_of(Some(o))));
        if !new_ok && !old_ok {
            return false;
        }
    }
    true
}

/// The webhooks of `phase` that apply, in the API server's order (configurations by
/// name, then webhooks in order).
fn matching_webhooks(
    store: &Store,
    phase: Phase,
    a: &Attributes<'_>,
    object: Option<&Value>,
) -> Vec<Value> {
    // Webhook configurations are never subject to webhooks themselves.
    if a.rt.group == "admissionregistration.k8s.io" {
        return Vec::new();
    }
    let key = StorageKey {
        group: "admissionregistration.k8s.io".into(),
        plural: phase.plural().into(),
    };
    let configs = store.all(&key);
    if configs.is_empty() {
        return Vec::new();
    }
    let mut configs: Vec<Arc<Value>> = configs;
    configs.sort_by(|x, y| {
        x["metadata"]["name"]
            .as_str()
            .cmp(&y["metadata"]["name"].as_str())
    });
    configs
        .iter()
        .flat_map(|c| c["webhooks"].as_array().cloned().unwrap_or_default())
        .filter(|w| webhook_matches(w, a, object))
        .collect()
}

fn gvk(rt: &ResourceType) -> Value {
    json!({"group": rt.group, "version": rt.version, "kind": rt.kind})
}

fn gvr(rt: &ResourceType) -> Value {
    json!({"group": rt.group, "version": rt.version, "resource": rt.plural})
}

/// The AdmissionReview kube-apiserver sends for `a` with `object`.
pub fn review(a: &Attributes<'_>, object: Option<&Value>, uid: &str) -> Value {
    let mut req = serde_json::Map::new();
    req.insert("uid".into(), json!(uid));
    req.insert("kind".into(), gvk(a.rt));
    req.insert("resource".into(), gvr(a.rt));
    if let Some(s) = a.subresource {
        req.insert("subResource".into(), json!(s));
    }
    req.insert("requestKind".into(), gvk(a.rt));
    req.insert("requestResource".into(), gvr(a.rt));
    if let Some(s) = a.subresource {
        req.insert("requestSubResource".into(), json!(s));
    }
    req.insert("name".into(), json!(a.name));
    if let Some(ns) = a.namespace {
        req.insert("namespace".into(), json!(ns));
    }
    req.insert("operation".into(), json!(a.operation));
    req.insert(
        "userInfo".into(),
        json!({"username": "kubernetes-admin", "groups": ["system:masters", "system:authenticated"]}),
    );
    req.insert("object".into(), object.cloned().unwrap_or(Value::Null));
    req.insert(
        "oldObject".into(),
        a.old_object.cloned().unwrap_or(Value::Null),
    );
    req.insert("dryRun".into(), json!(a.dry_run));
    let kind = match a.operation {
        "CREATE" => "CreateOptions",
        "UPDATE" => "UpdateOptions",
        _ => "DeleteOptions",
    };
    let mut options = json!({"kind": kind, "apiVersion": "meta.k8s.io/v1"});
    if a.dry_run {
        options["dryRun"] = json!(["All"]);
    }
    req.insert("options".into(), options);
    json!({"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1", "request": req})
}

/// Where Services that back webhooks are served from in a test: `(namespace, name)` →
/// a local address (the emulator has no pods or cluster network).
pub type ServiceRoutes = HashMap<(String, String), SocketAddr>;

/// The URL to POST to, and for `clientConfig.service` webhooks the host name to
/// resolve to a local address (TLS still verifies `<name>.<namespace>.svc`).
fn call_url(
    webhook: &Value,
    services: &ServiceRoutes,
) -> Result<(String, Option<(String, SocketAddr)>), String> {
    let timeout = webhook
        .get("timeoutSeconds")
        .and_then(Value::as_u64)
        .unwrap_or(10);
    if let Some(url) = webhook.pointer("/clientConfig/url").and_then(Value::as_str) {
        let sep = if url.contains('?') { '&' } else { '?' };
        return Ok((format!("{url}{sep}timeout={timeout}s"), None));
    }
    let Some(svc) = webhook.pointer("/clientConfig/service") else {
        return Err("webhook has neither clientConfig.url nor clientConfig.service".into());
    };
    let ns = svc.get("namespace").and_then(Value::as_str).unwrap_or("");
    let name = svc.get("name").and_then(Value::as_str).unwrap_or("");
    let path = svc.get("path").and_then(Value::as_str).unwrap_or("/");
    let port = svc.get("port").and_then(Value::as_u64).unwrap_or(443);
    let host = format!("{name}.{ns}.svc");
    match services.get(&(ns.to_owned(), name.to_owned())) {
        Some(addr) => Ok((
            format!("https://{host}:{}{path}?timeout={timeout}s", addr.port()),
            Some((host, *addr)),
        )),
        None => Err(format!(
            "Post \"https://{host}:{port}{path}?timeout={timeout}s\": no endpoints available for service \"{name}\""
        )),
    }
}

fn client_for(
    webhook: &Value,
    resolve: Option<(String, SocketAddr)>,
) -> Result<reqwest::Client, String> {
    let timeout = webhook
        .get("timeoutSeconds")
        .and_then(Value::as_u64)
        .unwrap_or(10);
    let mut builder = reqwest::Client::builder()
        .timeout(Duration::from_secs(timeout))
        .user_agent("kube-apiserver-admission");
    if let Some((host, addr)) = resolve {
        builder = builder.resolve(&host, addr);
    }
    if let Some(bundle) = webhook
        .pointer("/clientConfig/caBundle")
        .and_then(Value::as_str)
    {
        use rustls_pki_types::CertificateDer;
        use rustls_pki_types::pem::PemObject;
        let pem = STANDARD
            .decode(bundle)
            .map_err(|e| format!("invalid caBundle: {e}"))?;
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.map_err(|e| format!("invalid caBundle: {e}"))?;
            roots
                .add(cert)
                .map_err(|e| format!("invalid caBundle: {e}"))?;
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        builder = builder.tls_backend_preconfigured(config);
    }
    builder.build().map_err(|e| e.to_string())
}

/// What one webhook answered.
#[derive(Debug)]
struct Answer {
    allowed: bool,
    status: Value,
    patch: Option<Vec<u8>>,
    warnings: Vec<String>,
}

fn describe(e: &reqwest::Error, url: &str) -> String {
    let mut source: Option<&dyn std::error::Error> = Some(e);
    let mut text = String::new();
    while let Some(s) = source {
        text = s.to_string();
        source = s.source();
    }
    if e.is_timeout() {
        return format!("Post \"{url}\": context deadline exceeded");
    }
    if e.is_connect() && text.to_lowercase().contains("refused") {
        let host = url
            .split("://")
            .nth(1)
            .and_then(|r| r.split('/').next())
            .unwrap_or("");
        return format!("Post \"{url}\": dial tcp {host}: connect: connection refused");
    }
    format!("Post \"{url}\": {text}")
}

async fn call(
    webhook: &Value,
    services: &ServiceRoutes,
    body: &Value,
    uid: &str,
) -> Result<Answer, String> {
    let (url, resolve) = call_url(webhook, services)?;
    let client = client_for(webhook, resolve)?;
    let resp = client
        .post(&url)
        .header("content-type", "application/json")
        .header("accept", "application/json, */*")
        .body(serde_json::to_vec(body).unwrap_or_default())
        .send()
        .await
        .map_err(|e| describe(&e, &url))?;
    let status = resp.status();
    let bytes = resp.bytes().await.map_err(|e| describe(&e, &url))?;
    if !status.is_success() {
        return Err(format!(
            "received invalid webhook response: expected 200, got {}",
            status.as_u16()
        ));
    }
    let review: Value = serde_json::from_slice(&bytes)
        .map_err(|e| format!("received invalid webhook response: {e}"))?;
    let response = review
        .get("response")
        .ok_or("received invalid webhook response: response is missing")?;
    if response.get("uid").and_then(Value::as_str) != Some(uid) {
        return Err(format!(
            "expected response.uid=\"{uid}\", got \"{}\"",
            response.get("uid").and_then(Value::as_str).unwrap_or("")
        ));
    }
    let patch = match response.get("patch").and_then(Value::as_str) {
        Some(p) => {
            if response.get("patchType").and_then(Value::as_str) != Some("JSONPatch") {
                return Err("webhook returned a patch without patchType JSONPatch".into());
            }
            Some(
                STANDARD
                    .decode(p)
                    .map_err(|e| format!("invalid patch: {e}"))?,
            )
        }
        None => None,
    };
    Ok(Answer {
        allowed: response
            .get("allowed")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        status: response.get("status").cloned().unwrap_or(Value::Null),
        patch,
        warnings: response
            .get("warnings")
            .and_then(Value::as_array)
            .map(|w| {
                w.iter()
                    .filter_map(|x| x.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default(),
    })
}

fn run_async<F: std::future::Future>(fut: F) -> Result<F::Output, String> {
    match tokio::runtime::Handle::try_current() {
        // On a blocking thread of the emulator's runtime (how the server calls in).
        Ok(handle) => Ok(tokio::task::block_in_place(|| handle.block_on(fut))),
        Err(_) => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            Ok(rt.block_on(fut))
        }
    }
}

fn denial(name: &str, status: &Value, warnings: Vec<String>) -> ApiError {
    let message = status.get("message").and_then(Value::as_str).unwrap_or("");
    let message = if message.is_empty() {
        format!("admission webhook {name:?} denied the request without explanation")
    } else {
        format!("admission webhook {name:?} denied the request: {message}")
    };
    let code = status
        .get("code")
        .and_then(Value::as_u64)
        .filter(|c| *c != 0)
        .unwrap_or(400) as u16;
    let reason = status.get("reason").and_then(Value::as_str).unwrap_or("");
    let mut e = ApiError::new(code, reason, message);
    if let Some(d) = status.get("details").filter(|d| !d.is_null()) {
        e = e.with_details(d.clone());
    }
    e.with_warnings(warnings)
}

/// Run the webhooks of `phase` on `object` (typed; None for DELETE). Mutating
/// webhooks may change `object`. Returns the warnings to pass on.
pub fn admit(
    store: &Store,
    services: &ServiceRoutes,
    phase: Phase,
    a: &Attributes<'_>,
    object: &mut Option<Value>,
) -> Result<Vec<String>, ApiError> {
    let hooks = matching_webhooks(store, phase, a, object.as_ref());
    let mut warnings = Vec::new();
    for hook in hooks {
        let name = hook
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        if a.dry_run
            && !matches!(
                hook.get("sideEffects").and_then(Value::as_str),
                Some("None" | "NoneOnDryRun")
            )
        {
            return Err(ApiError::bad_request(format!(
                "admission webhook {name:?} does not support dry run"
            ))
            .with_warnings(warnings));
        }
        let uid = uuid::Uuid::new_v4().to_string();
        let body = review(a, object.as_ref(), &uid);
        let fail_open = hook.get("failurePolicy").and_then(Value::as_str) == Some("Ignore");
        let answer = run_async(call(&hook, services, &body, &uid)).and_then(|r| r);
        let answer = match answer {
            Ok(ans) => ans,
            Err(_) if fail_open => continue,
            Err(e) => {
                return Err(ApiError::internal(format!(
                    "failed calling webhook {name:?}: failed to call webhook: {e}"
                ))
                .with_warnings(warnings));
            }
        };
        warnings.extend(answer.warnings);
        if !answer.allowed {
            return Err(denial(&name, &answer.status, warnings));
        }
        if phase == Phase::Mutating
            && let (Some(patch), Some(obj)) = (answer.patch, object.as_mut())
        {
            let ops: json_patch::Patch = serde_json::from_slice(&patch).map_err(|e| {
                ApiError::internal(format!(
                    "admission webhook {name:?} returned an invalid patch: {e}"
                ))
            })?;
            json_patch::patch(obj, &ops.0).map_err(|e| {
                ApiError::internal(format!(
                    "admission webhook {name:?} returned a patch that cannot be applied: {e}"
                ))
            })?;
        }
    }
    Ok(warnings)
}

/// Are there any webhook configurations at all (fast path for the common case)?
pub fn any_configured(store: &Store) -> bool {
    [Phase::Mutating, Phase::Validating].iter().any(|p| {
        !store
            .all(&StorageKey {
                group: "admissionregistration.k8s.io".into(),
                plural: p.plural().into(),
            })
            .is_empty()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emulator::resources::Registry;

    fn attrs<'a>(rt: &'a ResourceType, op: &'static str) -> Attributes<'a> {
        Attributes {
            rt,
            operation: op,
            subresource: None,
            namespace: Some("rec"),
            name: "x",
            old_object: None,
            dry_run: false,
            namespace_labels: [("env".to_string(), "test".to_string())].into(),
        }
    }

    #[test]
    fn rules_match_operations_resources_and_scope() {
        let reg = Registry::builtin().unwrap();
        let pvc = reg.lookup("", "v1", "persistentvolumeclaims").unwrap();
        let ns = reg.lookup("", "v1", "namespaces").unwrap();
        let rule = json!({"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"],
                          "resources": ["persistentvolumeclaims", "namespaces"], "scope": "Namespaced"});
        assert!(rule_matches(&rule, &attrs(&pvc, "CREATE")));
        assert!(!rule_matches(&rule, &attrs(&pvc, "DELETE")));
        assert!(
            !rule_matches(&rule, &attrs(&ns, "CREATE")),
            "namespaces are cluster-scoped"
        );
        let mut status = attrs(&pvc, "UPDATE");
        status.subresource = Some("status");
        let star = json!({"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*"]});
        assert!(
            !rule_matches(&star, &status),
            "`*` does not cover subresources"
        );
        let star_sub = json!({"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*/*"]});
        assert!(rule_matches(&star_sub, &status));
    }

    #[test]
    fn selectors_filter_webhooks() {
        let reg = Registry::builtin().unwrap();
        let pvc = reg.lookup("", "v1", "persistentvolumeclaims").unwrap();
        let hook = |ns_sel: Value, obj_sel: Value| {
            json!({"rules": [{"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*"]}],
            "namespaceSelector": ns_sel, "objectSelector": obj_sel})
        };
        let a = attrs(&pvc, "CREATE");
        let obj = json!({"metadata": {"labels": {"app": "db"}}});
        assert!(webhook_matches(&hook(json!({}), json!({})), &a, Some(&obj)));
        assert!(webhook_matches(
            &hook(json!({"matchLabels": {"env": "test"}}), json!({})),
            &a,
            Some(&obj)
        ));
        assert!(!webhook_matches(
            &hook(json!({"matchLabels": {"env": "prod"}}), json!({})),
            &a,
            Some(&obj)
        ));
        assert!(!webhook_matches(
            &hook(json!({}), json!({"matchLabels": {"app": "web"}})),
            &a,
            Some(&obj)
        ));
        assert!(webhook_matches(
            &hook(
                json!({}),
                json!({"matchExpressions": [{"key": "app", "operator": "Exists"}]})
            ),
            &a,
            Some(&obj)
        ));
    }

    #[test]
    fn review_has_the_recorded_shape() {
        let rec: Value = serde_json::from_str(
            &std::fs::read_to_string(format!(
                "{}/fixtures/real-apiserver/admission-pvc-patch-update.json",
                env!("CARGO_MANIFEST_DIR")
            ))
            .unwrap(),
        )
        .unwrap();
        let sent = &rec["webhook_requests"][0]["body"];
        let reg = Registry::builtin().unwrap();
        let pvc = reg.lookup("", "v1", "persistentvolumeclaims").unwrap();
        let old = sent["request"]["oldObject"].clone();
        let mut a = attrs(&pvc, "UPDATE");
        a.name = "data-1";
        a.old_object = Some(&old);
        let ours = review(&a, Some(&sent["request"]["object"]), "u");
        let keys = |v: &Value| {
            v["request"]
                .as_object()
                .unwrap()
                .keys()
                .cloned()
                .collect::<Vec<_>>()
        };
        assert_eq!(keys(&ours), keys(sent));
        for k in [
            "kind",
            "resource",
            "requestKind",
            "requestResource",
            "name",
            "namespace",
            "operation",
            "userInfo",
            "dryRun",
            "options",
        ] {
            assert_eq!(ours["request"][k], sent["request"][k], "{k}");
        }
        assert_eq!(ours["apiVersion"], sent["apiVersion"]);
    }

    #[test]
    fn denials_are_phrased_like_the_api_server() {
        let e = denial(
            "validate.rec.example.com",
            &json!({"message": "no"}),
            vec![],
        );
        assert_eq!(e.code(), 400);
        let s = e.to_status().unwrap();
        assert!(s.get("reason").is_none());
        assert_eq!(
            s["message"],
            "admission webhook \"validate.rec.example.com\" denied the request: no"
        );
        let e = denial(
            "v",
            &json!({"code": 403, "reason": "Forbidden", "message": "m"}),
            vec![],
        );
        assert_eq!(e.code(), 403);
        assert_eq!(e.to_status().unwrap()["reason"], "Forbidden");
    }
}

//! Admission webhooks in the emulator, against a real HTTPS webhook server run
//! by the test: the AdmissionReviews sent (compared with the recorded ones),
//! JSONPatch mutations, denials and warnings as the real API server phrases
//! them, selectors, dry run, and failure policies.
//!
//! A webhook on 127.0.0.1 is only reachable from an emulator, so these tests
//! always start one.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use e2e::cluster::TestCluster;
use http::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};

fn recorded(name: &str) -> Value {
    let path = format!(
        "{}/fixtures/real-apiserver/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(&path).expect(&path)).expect("fixture JSON")
}

/// A webhook server that records what it receives.
struct Webhook {
    port: u16,
    ca_pem: String,
    seen: Arc<Mutex<Vec<(String, Value)>>>,
}

fn answer(path: &str, review: &Value) -> Value {
    let req = &review["request"];
    let uid = req["uid"].clone();
    let name = req["name"].as_str().unwrap_or("");
    let response = if path == "/mutate" {
        if req["operation"] == "CREATE" {
            let patch = json!([
                {"op": "add", "path": "/metadata/labels/mutated-by", "value": "test-webhook"},
                {"op": "add", "path": "/metadata/annotations", "value": {"test.example.com/patched": "true"}}
            ]);
            json!({"uid": uid, "allowed": true, "patchType": "JSONPatch",
                   "patch": STANDARD.encode(serde_json::to_vec(&patch).unwrap()),
                   "warnings": ["test-webhook: added a label", "test-webhook: second warning"]})
        } else {
            json!({"uid": uid, "allowed": true})
        }
    } else if name == "deny-me" {
        json!({"uid": uid, "allowed": false, "status": {"message": format!("test-webhook says no: objects named {name} are not allowed")},
               "warnings": ["test-webhook: a warning with a denial"]})
    } else if name == "deny-me-403" {
        json!({"uid": uid, "allowed": false, "status": {"code": 403, "reason": "Forbidden", "message": format!("test-webhook forbids {name}")}})
    } else {
        json!({"uid": uid, "allowed": true})
    };
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response})
}

async fn start_webhook() -> Webhook {
    let certs = e2e::emulator::tls::generate_with_names(&["hook.webhooks.svc"]).expect("certs");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let acceptor = tokio_rustls::TlsAcceptor::from(certs.server_config.clone());
    let seen: Arc<Mutex<Vec<(String, Value)>>> = Arc::default();
    let seen2 = seen.clone();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let acceptor = acceptor.clone();
            let seen = seen2.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                    let seen = seen.clone();
                    async move {
                        let path = req.uri().path().to_owned();
                        let full = req.uri().to_string();
                        let ua = req
                            .headers()
                            .get("user-agent")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("")
                            .to_owned();
                        let body = axum::body::to_bytes(
                            axum::body::Body::new(req.into_body()),
                            usize::MAX,
                        )
                        .await
                        .unwrap();
                        let review: Value = serde_json::from_slice(&body).unwrap();
                        let reply = answer(&path, &review);
                        seen.lock().unwrap().push((format!("{full} {ua}"), review));
                        Ok::<_, Infallible>(
                            Response::builder()
                                .header("content-type", "application/json")
                                .body(axum::body::Body::from(serde_json::to_vec(&reply).unwrap()))
                                .unwrap(),
                        )
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    Webhook {
        port,
        ca_pem: certs.ca_pem,
        seen,
    }
}

fn configs(wh: &Webhook, failure_policy: &str, port: u16) -> (Value, Value) {
    let ca = STANDARD.encode(&wh.ca_pem);
    let mutating = json!({
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": "test-mutating"},
        "webhooks": [{"name": "mutate.test.example.com",
            "clientConfig": {"url": format!("https://127.0.0.1:{port}/mutate"), "caBundle": ca},
            "rules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"], "resources": ["persistentvolumeclaims"]}],
            "namespaceSelector": {"matchLabels": {"webhooks": "on"}},
            "sideEffects": "None", "admissionReviewVersions": ["v1"], "failurePolicy": failure_policy, "timeoutSeconds": 5}]
    });
    let validating = json!({
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": "test-validating"},
        "webhooks": [{"name": "validate.test.example.com",
            "clientConfig": {"url": format!("https://127.0.0.1:{port}/validate"), "caBundle": ca},
            "rules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE", "DELETE"], "resources": ["persistentvolumeclaims"]}],
            "namespaceSelector": {"matchLabels": {"webhooks": "on"}},
            "objectSelector": {"matchExpressions": [{"key": "skip-validation", "operator": "DoesNotExist"}]},
            "sideEffects": "None", "admissionReviewVersions": ["v1"], "failurePolicy": failure_policy, "timeoutSeconds": 5}]
    });
    (mutating, validating)
}

struct Raw(kube::Client);

impl Raw {
    async fn call(
        &self,
        method: &str,
        uri: &str,
        ct: Option<&str>,
        body: Value,
    ) -> (u16, Vec<String>, Value) {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(ct) = ct {
            req = req.header("content-type", ct);
        }
        let body = if body.is_null() {
            Vec::new()
        } else {
            serde_json::to_vec(&body).unwrap()
        };
        let resp = self
            .0
            .send(req.body(kube::client::Body::from(body)).unwrap())
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let warnings = resp
            .headers()
            .get_all("warning")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        let bytes = axum::body::to_bytes(axum::body::Body::new(resp.into_body()), usize::MAX)
            .await
            .unwrap();
        (
            status,
            warnings,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }
}

fn pvc(name: &str, labels: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name, "labels": labels},
           "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_are_called_like_the_real_api_server_calls_them() {
    let wh = start_webhook().await;
    let cluster = TestCluster::start_emulator().unwrap();
    let raw = Raw(cluster.client().await.unwrap());
    let (m, v) = configs(&wh, "Fail", wh.port);
    let (code, _, body) = raw
        .call(
            "POST",
            "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations",
            Some("application/json"),
            m,
        )
        .await;
    assert_eq!(code, 201, "{body}");
    // Defaults as recorded.
    let want = &recorded("webhookconfig-mutating-create")["body"]["webhooks"][0];
    for k in ["matchPolicy", "objectSelector", "reinvocationPolicy"] {
        assert_eq!(body["webhooks"][0][k], want[k], "{k}");
    }
    assert_eq!(body["webhooks"][0]["rules"][0]["scope"], "*");
    let (code, _, _) = raw
        .call(
            "POST",
            "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations",
            Some("application/json"),
            v,
        )
        .await;
    assert_eq!(code, 201);
    raw.call(
        "POST",
        "/api/v1/namespaces",
        Some("application/json"),
        json!({"metadata": {"name": "hooked", "labels": {"webhooks": "on"}}}),
    )
    .await;
    raw.call(
        "POST",
        "/api/v1/namespaces",
        Some("application/json"),
        json!({"metadata": {"name": "plain"}}),
    )
    .await;
    let base = "/api/v1/namespaces/hooked/persistentvolumeclaims";

    // CREATE: patched by the mutating webhook, warnings passed on.
    let (code, warnings, body) = raw
        .call(
            "POST",
            base,
            Some("application/json"),
            pvc("patch-me", json!({"app": "t"})),
        )
        .await;
    assert_eq!(code, 201, "{body}");
    assert_eq!(body["metadata"]["labels"]["mutated-by"], "test-webhook");
    assert_eq!(
        body["metadata"]["annotations"]["test.example.com/patched"],
        "true"
    );
    assert_eq!(
        warnings,
        [
            "299 - \"test-webhook: added a label\"",
            "299 - \"test-webhook: second warning\""
        ]
    );
    {
        let seen = wh.seen.lock().unwrap();
        assert_eq!(seen.len(), 2);
        let (call, mreview) = &seen[0];
        assert!(
            call.starts_with("/mutate?timeout=5s kube-apiserver-admission"),
            "{call}"
        );
        let rec = recorded("admission-mutating-jsonpatch");
        let want = &rec["webhook_requests"][0]["body"]["request"];
        let got = &mreview["request"];
        let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
        assert_eq!(keys(got), keys(want));
        for k in [
            "kind",
            "resource",
            "requestKind",
            "requestResource",
            "operation",
            "dryRun",
            "options",
            "oldObject",
            "userInfo",
        ] {
            assert_eq!(got[k], want[k], "{k}");
        }
        assert!(
            got["object"]["metadata"].get("uid").is_none(),
            "mutating sees no uid"
        );
        assert!(got["object"]["metadata"]["creationTimestamp"].is_null());
        assert_eq!(
            got["object"]["metadata"]["finalizers"],
            json!(["kubernetes.io/pvc-protection"])
        );
        let (call, vreview) = &seen[1];
        assert!(call.starts_with("/validate?timeout=5s"), "{call}");
        assert!(vreview["request"]["object"]["metadata"]["uid"].is_string());
        assert_eq!(
            vreview["request"]["object"]["metadata"]["labels"]["mutated-by"],
            "test-webhook"
        );
    }

    // Denials, as the real server phrases them.
    let rec = recorded("admission-validating-deny-no-code");
    let (code, warnings, body) = raw
        .call(
            "POST",
            base,
            Some("application/json"),
            pvc("deny-me", json!({})),
        )
        .await;
    assert_eq!(code, 400);
    assert!(body.get("reason").is_none());
    assert_eq!(
        body["message"],
        "admission webhook \"validate.test.example.com\" denied the request: test-webhook says no: objects named deny-me are not allowed"
    );
    assert_eq!(
        body.as_object().unwrap().keys().collect::<Vec<_>>(),
        rec["body"].as_object().unwrap().keys().collect::<Vec<_>>()
    );
    assert_eq!(
        warnings,
        ["299 - \"test-webhook: a warning with a denial\""]
    );
    let (code, _, body) = raw
        .call(
            "POST",
            base,
            Some("application/json"),
            pvc("deny-me-403", json!({})),
        )
        .await;
    assert_eq!(code, 403);
    assert_eq!(body["reason"], "Forbidden");
    assert_eq!(
        body["message"],
        "admission webhook \"validate.test.example.com\" denied the request: test-webhook forbids deny-me-403"
    );
    let (code, _, _) = raw
        .call("GET", &format!("{base}/deny-me"), None, Value::Null)
        .await;
    assert_eq!(code, 404, "denied objects are not stored");

    // PATCH reaches webhooks as UPDATE with the old object.
    wh.seen.lock().unwrap().clear();
    let (code, _, _) = raw
        .call(
            "PATCH",
            &format!("{base}/patch-me"),
            Some("application/merge-patch+json"),
            json!({"metadata": {"labels": {"tier": "gold"}}}),
        )
        .await;
    assert_eq!(code, 200);
    {
        let seen = wh.seen.lock().unwrap();
        assert_eq!(seen.len(), 2);
        for (_, r) in seen.iter() {
            assert_eq!(r["request"]["operation"], "UPDATE");
            assert_eq!(r["request"]["options"]["kind"], "UpdateOptions");
            assert_eq!(r["request"]["oldObject"]["metadata"]["name"], "patch-me");
            assert_eq!(r["request"]["object"]["metadata"]["labels"]["tier"], "gold");
        }
    }

    // Dry run tells the webhooks.
    wh.seen.lock().unwrap().clear();
    let (code, _, _) = raw
        .call(
            "POST",
            &format!("{base}?dryRun=All"),
            Some("application/json"),
            pvc("dry", json!({})),
        )
        .await;
    assert_eq!(code, 201);
    {
        let seen = wh.seen.lock().unwrap();
        let want =
            &recorded("admission-pvc-create-dry-run")["webhook_requests"][0]["body"]["request"];
        assert_eq!(seen[0].1["request"]["dryRun"], true);
        assert_eq!(seen[0].1["request"]["options"], want["options"]);
    }

    // objectSelector and namespaceSelector skip webhooks.
    wh.seen.lock().unwrap().clear();
    raw.call(
        "POST",
        base,
        Some("application/json"),
        pvc("unvalidated", json!({"skip-validation": "yes"})),
    )
    .await;
    let paths: Vec<String> = wh
        .seen
        .lock()
        .unwrap()
        .iter()
        .map(|(c, _)| c.split('?').next().unwrap().to_owned())
        .collect();
    assert_eq!(paths, ["/mutate"]);
    wh.seen.lock().unwrap().clear();
    let (code, _, _) = raw
        .call(
            "POST",
            "/api/v1/namespaces/plain/persistentvolumeclaims",
            Some("application/json"),
            pvc("deny-me", json!({})),
        )
        .await;
    assert_eq!(code, 201, "no webhook for unlabelled namespaces");
    assert!(wh.seen.lock().unwrap().is_empty());

    // DELETE: validating webhook with object null and the old object.
    wh.seen.lock().unwrap().clear();
    let (code, _, body) = raw
        .call("DELETE", &format!("{base}/patch-me"), None, Value::Null)
        .await;
    assert_eq!(code, 200);
    assert!(
        body["metadata"]["deletionTimestamp"].is_string(),
        "held by pvc-protection"
    );
    {
        let seen = wh.seen.lock().unwrap();
        assert_eq!(seen.len(), 1);
        let r = &seen[0].1["request"];
        let want = &recorded("admission-pvc-delete")["webhook_requests"][0]["body"]["request"];
        assert_eq!(r["operation"], "DELETE");
        assert!(r["object"].is_null());
        assert_eq!(r["oldObject"]["metadata"]["name"], "patch-me");
        assert_eq!(r["options"], want["options"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_webhooks_follow_their_failure_policy() {
    let wh = start_webhook().await;
    let cluster = TestCluster::start_emulator().unwrap();
    let raw = Raw(cluster.client().await.unwrap());
    let dead = e2e::servers::free_port();
    let (m, _) = configs(&wh, "Fail", dead);
    raw.call(
        "POST",
        "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations",
        Some("application/json"),
        m,
    )
    .await;
    raw.call(
        "POST",
        "/api/v1/namespaces",
        Some("application/json"),
        json!({"metadata": {"name": "hooked", "labels": {"webhooks": "on"}}}),
    )
    .await;
    let base = "/api/v1/namespaces/hooked/persistentvolumeclaims";
    let (code, _, body) = raw
        .call(
            "POST",
            base,
            Some("application/json"),
            pvc("wh-down", json!({})),
        )
        .await;
    assert_eq!(code, 500);
    let want = &recorded("admission-webhook-unreachable-failurepolicy-fail")["body"];
    assert_eq!(body["reason"], want["reason"]);
    assert_eq!(
        body["message"],
        format!(
            "Internal error occurred: failed calling webhook \"mutate.test.example.com\": failed to call webhook: Post \"https://127.0.0.1:{dead}/mutate?timeout=5s\": dial tcp 127.0.0.1:{dead}: connect: connection refused"
        )
    );

    // failurePolicy Ignore lets the request through.
    let (_, _, cfg) = raw
        .call(
            "GET",
            "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/test-mutating",
            None,
            Value::Null,
        )
        .await;
    let mut cfg = cfg;
    cfg["webhooks"][0]["failurePolicy"] = json!("Ignore");
    let (code, _, _) = raw
        .call(
            "PUT",
            "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/test-mutating",
            Some("application/json"),
            cfg,
        )
        .await;
    assert_eq!(code, 200);
    let (code, _, _) = raw
        .call(
            "POST",
            base,
            Some("application/json"),
            pvc("wh-down", json!({})),
        )
        .await;
    assert_eq!(code, 201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_configurations_are_validated() {
    let cluster = TestCluster::start_emulator().unwrap();
    let raw = Raw(cluster.client().await.unwrap());
    let bad = json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": "bad"},
        "webhooks": [{"name": "v.example.com", "clientConfig": {"url": "https://127.0.0.1:1/v"}, "rules": []}]});
    let (code, _, body) = raw
        .call(
            "POST",
            "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations",
            Some("application/json"),
            bad,
        )
        .await;
    assert_eq!(code, 422);
    let fields: Vec<&str> = body["details"]["causes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        [
            "webhooks[0].sideEffects",
            "webhooks[0].admissionReviewVersions"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_webhooks_reach_an_exposed_local_server() {
    let wh = start_webhook().await;
    let cluster = TestCluster::start_emulator().unwrap();
    let raw = Raw(cluster.client().await.unwrap());
    let (_, mut v) = configs(&wh, "Fail", wh.port);
    v["webhooks"][0]["clientConfig"] = json!({
        "service": {"namespace": "webhooks", "name": "hook", "path": "/validate", "port": 443},
        "caBundle": STANDARD.encode(&wh.ca_pem)
    });
    raw.call(
        "POST",
        "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations",
        Some("application/json"),
        v,
    )
    .await;
    raw.call(
        "POST",
        "/api/v1/namespaces",
        Some("application/json"),
        json!({"metadata": {"name": "hooked", "labels": {"webhooks": "on"}}}),
    )
    .await;
    let base = "/api/v1/namespaces/hooked/persistentvolumeclaims";

    // No endpoints yet: the real server's error.
    let (code, _, body) = raw
        .call(
            "POST",
            base,
            Some("application/json"),
            pvc("deny-me", json!({})),
        )
        .await;
    assert_eq!(code, 500);
    assert_eq!(
        body["message"],
        "Internal error occurred: failed calling webhook \"validate.test.example.com\": failed to call webhook: Post \"https://hook.webhooks.svc:443/validate?timeout=5s\": no endpoints available for service \"hook\""
    );

    assert!(cluster.expose_service("webhooks", "hook", ([127, 0, 0, 1], wh.port).into()));
    let (code, _, body) = raw
        .call(
            "POST",
            base,
            Some("application/json"),
            pvc("deny-me", json!({})),
        )
        .await;
    assert_eq!(code, 400, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("admission webhook \"validate.test.example.com\" denied the request")
    );
    let (code, _, _) = raw
        .call(
            "POST",
            base,
            Some("application/json"),
            pvc("fine", json!({})),
        )
        .await;
    assert_eq!(code, 201);
}

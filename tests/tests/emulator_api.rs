//! The emulator answers the way the recorded real kube-apiserver v1.28.7 did
//! (`tests/fixtures/real-apiserver`): the recorded requests are replayed over
//! HTTPS against a fresh emulator and the answers compared, literally where
//! the recording has no run-specific values and by shape where it does.
//!
//! These tests are about the emulator's fidelity, so they always start one,
//! whatever `TEST_KUBECONFIG` says.

use std::time::Duration;

use e2e::cluster::TestCluster;
use http::{HeaderMap, Method, Request};
use serde_json::{Value, json};

fn recorded(name: &str) -> Value {
    let path = format!(
        "{}/fixtures/real-apiserver/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(&path).expect(&path)).expect("fixture JSON")
}

struct Reply {
    status: u16,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

struct Raw {
    client: kube::Client,
}

impl Raw {
    async fn call(
        &self,
        method: &str,
        uri: &str,
        content_type: Option<&str>,
        accept: Option<&str>,
        body: Vec<u8>,
    ) -> Reply {
        let mut req = Request::builder()
            .method(Method::from_bytes(method.as_bytes()).expect("method"))
            .uri(uri);
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        req = req.header("accept", accept.unwrap_or("*/*"));
        let req = req.body(kube::client::Body::from(body)).expect("request");
        let resp = self.client.send(req).await.expect("send");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = axum::body::to_bytes(axum::body::Body::new(resp.into_body()), usize::MAX)
            .await
            .expect("body")
            .to_vec();
        Reply {
            status,
            headers,
            body,
        }
    }

    async fn get(&self, uri: &str) -> Reply {
        self.call("GET", uri, None, None, Vec::new()).await
    }

    async fn post(&self, uri: &str, body: Value) -> Reply {
        self.call(
            "POST",
            uri,
            Some("application/json"),
            None,
            serde_json::to_vec(&body).expect("json"),
        )
        .await
    }

    /// Send the request of a recording as it was sent.
    async fn replay(&self, rec: &Value) -> Reply {
        let r = &rec["request"];
        let mut uri = r["path"].as_str().expect("path").to_owned();
        if let Some(q) = r["query"].as_object().filter(|q| !q.is_empty()) {
            let qs: String = url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(
                    q.iter()
                        .map(|(k, v)| (k.as_str(), v.as_str().unwrap_or(""))),
                )
                .finish();
            uri = format!("{uri}?{qs}");
        }
        let body = match &r["body"] {
            Value::Null => Vec::new(),
            Value::String(s) => s.clone().into_bytes(),
            other => serde_json::to_vec(other).expect("json"),
        };
        self.call(
            r["method"].as_str().expect("method"),
            &uri,
            r["content_type"].as_str(),
            r["accept"].as_str(),
            body,
        )
        .await
    }
}

async fn setup() -> (TestCluster, Raw) {
    let cluster = TestCluster::start_emulator().expect("emulator");
    let client = cluster.client().await.expect("client");
    let raw = Raw { client };
    let r = raw
        .post("/api/v1/namespaces", json!({"metadata": {"name": "rec"}}))
        .await;
    assert_eq!(r.status, 201);
    (cluster, raw)
}

/// Compare Status bodies, ignoring the order of `details.causes` and of the
/// `[a, b]` cause list in the message (the emulator does not keep schema order).
fn assert_status_eq(got: &Value, want: &Value, what: &str) {
    let norm = |v: &Value| {
        let mut v = v.clone();
        if let Some(c) = v
            .pointer_mut("/details/causes")
            .and_then(Value::as_array_mut)
        {
            c.sort_by_key(|x| x.to_string());
        }
        if let Some(Value::String(m)) = v.get_mut("message")
            && let (Some(start), true) = (m.find(": ["), m.ends_with(']'))
        {
            let inner = format!(", {}", &m[start + 3..m.len() - 1]);
            let mut parts: Vec<String> = inner
                .split(", spec.")
                .filter(|p| !p.is_empty())
                .map(str::to_owned)
                .collect();
            parts.sort();
            *m = format!("{}: [{}]", &m[..start], parts.join("|"));
        }
        v
    };
    assert_eq!(norm(got), norm(want), "{what}");
}

#[tokio::test]
async fn errors_match_recordings() {
    let (_cluster, raw) = setup().await;
    for name in ["cm1", "keep-0"] {
        let r = raw
            .post(
                "/api/v1/namespaces/rec/configmaps",
                json!({"metadata": {"name": name}, "data": {"k1": "v1"}}),
            )
            .await;
        assert_eq!(r.status, 201);
    }
    // Make the recorded PUT's resourceVersion stale.
    raw.call(
        "PATCH",
        "/api/v1/namespaces/rec/configmaps/cm1",
        Some("application/merge-patch+json"),
        None,
        br#"{"data":{"k2":"x"}}"#.to_vec(),
    )
    .await;
    for name in [
        "cm-get-not-found",
        "cm-create-already-exists",
        "cm-update-stale-rv-conflict",
        "cm-patch-json-patch-test-fails",
        "cm-apply-no-field-manager",
        "error-create-in-missing-namespace",
        "error-create-cm-without-name",
        "error-create-deployment-missing-selector",
        "error-create-malformed-json",
        "error-create-unknown-field-strict",
        "error-update-name-mismatch",
        "error-list-invalid-label-selector",
        "error-list-invalid-label-selector-2",
        "error-list-invalid-field-selector",
        "error-method-not-allowed",
        "error-unknown-resource-404",
        "watch-send-initial-events-disabled",
    ] {
        let rec = recorded(name);
        let got = raw.replay(&rec).await;
        assert_eq!(got.status, rec["status"].as_u64().unwrap() as u16, "{name}");
        assert_eq!(got.header("content-type"), "application/json", "{name}");
        assert_status_eq(&got.json(), &rec["body"], name);
    }
    for name in [
        "error-unknown-group-404",
        "cr-get-before-crd-exists-404",
        "cr-create-before-crd-exists-404",
    ] {
        let rec = recorded(name);
        let got = raw.replay(&rec).await;
        assert_eq!(got.status, 404, "{name}");
        assert_eq!(
            got.header("content-type"),
            "text/plain; charset=utf-8",
            "{name}"
        );
        assert_eq!(got.body, b"404 page not found\n", "{name}");
    }
    // Delete, then delete again.
    let got = raw.replay(&recorded("cm-delete")).await;
    assert_eq!(got.status, 200);
    let body = got.json();
    assert_eq!(body["status"], "Success");
    assert_eq!(body["details"]["kind"], "configmaps");
    let rec = recorded("cm-delete-not-found");
    let got = raw.replay(&rec).await;
    assert_eq!(got.status, 404);
    assert_status_eq(&got.json(), &rec["body"], "cm-delete-not-found");
}

#[tokio::test]
async fn creates_warn_about_and_drop_unknown_fields() {
    let (_cluster, raw) = setup().await;
    let rec = recorded("cm-create-unknown-field-default-warn");
    let got = raw.replay(&rec).await;
    assert_eq!(got.status, 201);
    let warnings: Vec<&str> = got
        .headers
        .get_all("warning")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let want: Vec<&str> = rec["headers"]["warning"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(warnings, want);
    let body = got.json();
    assert!(body.get("spec").is_none());
    assert!(body["metadata"].get("bogus").is_none());
    assert_eq!(body["data"], rec["body"]["data"]);
}

#[tokio::test]
async fn dry_run_create_persists_nothing() {
    let (_cluster, raw) = setup().await;
    let rec = recorded("cm-create-dry-run");
    let got = raw.replay(&rec).await;
    assert_eq!(got.status, 201);
    let body = got.json();
    assert!(body["metadata"]["uid"].is_string());
    assert!(body["metadata"]["creationTimestamp"].is_string());
    assert!(body["metadata"].get("resourceVersion").is_none());
    let rec = recorded("cm-create-dry-run-followup-get-404");
    let got = raw.replay(&rec).await;
    assert_eq!(got.status, 404);
    assert_status_eq(&got.json(), &rec["body"], "follow-up get");
}

#[tokio::test]
async fn writes_and_gets_answer_metadata_only_when_asked() {
    let (_cluster, raw) = setup().await;
    // What kube-apiserver's content negotiation serves for any single object:
    // `as=PartialObjectMetadata` first, a plain fallback after it.
    let metadata_only =
        "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1, application/json";
    let cm = json!({"metadata": {"name": "partial", "labels": {"a": "b"}}, "data": {"k": "v"}});
    let created = raw
        .call(
            "POST",
            "/api/v1/namespaces/rec/configmaps",
            Some("application/json"),
            Some(metadata_only),
            serde_json::to_vec(&cm).expect("json"),
        )
        .await;
    assert_eq!(created.status, 201);
    let body = created.json();
    assert_eq!(body["kind"], "PartialObjectMetadata");
    assert_eq!(body["apiVersion"], "meta.k8s.io/v1");
    assert_eq!(body["metadata"]["name"], "partial");
    assert_eq!(body["metadata"]["labels"], json!({"a": "b"}));
    assert!(body["metadata"]["uid"].is_string());
    assert!(body["metadata"]["managedFields"].is_array());
    assert!(body.get("data").is_none(), "{body}");

    let uri = "/api/v1/namespaces/rec/configmaps/partial";
    let got = raw
        .call("GET", uri, None, Some(metadata_only), Vec::new())
        .await;
    assert_eq!(got.status, 200);
    assert_eq!(got.json()["metadata"], body["metadata"]);
    assert!(got.json().get("data").is_none());

    let full = raw.get(uri).await.json();
    assert_eq!(full["kind"], "ConfigMap");
    assert_eq!(full["apiVersion"], "v1");
    assert_eq!(full["data"], json!({"k": "v"}));
    assert_eq!(full["metadata"], body["metadata"]);
}

fn continue_token(v: &Value) -> Option<Value> {
    use base64::Engine;
    let t = v.pointer("/metadata/continue")?.as_str()?;
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(t)
        .expect("base64url");
    Some(serde_json::from_slice(&raw).expect("token JSON"))
}

fn names(v: &Value) -> Vec<String> {
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn pagination_matches_recordings() {
    let (_cluster, raw) = setup().await;
    // The recording's namespace: page-0..6 labelled page=yes, plus four others.
    for i in 0..7 {
        raw.post(
            "/api/v1/namespaces/rec/configmaps",
            json!({"metadata": {"name": format!("page-{i}"), "labels": {"page": "yes"}}, "data": {"i": i.to_string()}}),
        )
        .await;
    }
    for n in ["keep-0", "ssa-cm", "unknown-field"] {
        raw.post(
            "/api/v1/namespaces/rec/configmaps",
            json!({"metadata": {"name": n}}),
        )
        .await;
    }
    let base = "/api/v1/namespaces/rec/configmaps";
    let p1 = raw
        .get(&format!("{base}?labelSelector=page%3Dyes&limit=3"))
        .await
        .json();
    let want1 = recorded("page-1-of-3")["body"].clone();
    assert_eq!(names(&p1), names(&want1));
    assert_eq!(p1["kind"], "ConfigMapList");
    assert!(
        p1["items"][0].get("kind").is_none(),
        "built-in list items are untyped"
    );
    let t1 = continue_token(&p1).expect("page 1 continues");
    assert_eq!(t1["v"], "meta.k8s.io/v1");
    assert_eq!(t1["start"], "page-2\u{0}");
    assert_eq!(
        t1["rv"].to_string(),
        p1["metadata"]["resourceVersion"].as_str().unwrap()
    );
    assert!(p1["metadata"].get("remainingItemCount").is_none());

    // Writes between pages do not change the list's resourceVersion.
    raw.post(base, json!({"metadata": {"name": "zzz-later"}}))
        .await;
    let c1 = p1["metadata"]["continue"].as_str().unwrap();
    let p2 = raw
        .get(&format!(
            "{base}?labelSelector=page%3Dyes&limit=3&continue={c1}"
        ))
        .await
        .json();
    assert_eq!(names(&p2), names(&recorded("page-2-of-3")["body"]));
    assert_eq!(
        p2["metadata"]["resourceVersion"],
        p1["metadata"]["resourceVersion"]
    );
    let c2 = p2["metadata"]["continue"].as_str().unwrap();
    let p3 = raw
        .get(&format!(
            "{base}?labelSelector=page%3Dyes&limit=3&continue={c2}"
        ))
        .await
        .json();
    assert_eq!(names(&p3), names(&recorded("page-3-of-3")["body"]));
    assert!(p3["metadata"].get("continue").is_none());

    let unfiltered = raw.get(&format!("{base}?limit=3")).await.json();
    assert_eq!(unfiltered["metadata"]["remainingItemCount"], 9);
    assert_eq!(names(&unfiltered), ["keep-0", "kube-root-ca.crt", "page-0"]);

    let cached = raw
        .get(&format!(
            "{base}?labelSelector=page%3Dyes&limit=3&resourceVersion=0"
        ))
        .await
        .json();
    assert_eq!(names(&cached).len(), 7);
    assert!(cached["metadata"].get("continue").is_none());

    for name in ["page-continue-garbage", "page-continue-future-rv"] {
        let rec = recorded(name);
        let got = raw.replay(&rec).await;
        assert_eq!(got.status, rec["status"].as_u64().unwrap() as u16, "{name}");
        assert_status_eq(&got.json(), &rec["body"], name);
    }

    // All namespaces: keys are namespace/name.
    let all = raw.get("/api/v1/configmaps?limit=2").await.json();
    let t = continue_token(&all).expect("continues");
    assert_eq!(names(&all), ["kube-root-ca.crt", "kube-root-ca.crt"]);
    assert_eq!(all["items"][0]["metadata"]["namespace"], "default");
    assert_eq!(t["start"], "kube-node-lease/kube-root-ca.crt\u{0}");
}

#[tokio::test]
async fn discovery_negotiation_matches_recordings() {
    let (_cluster, raw) = setup().await;
    for (name, aggregated) in [
        ("discovery-apis-aggregated-v2beta1", true),
        ("discovery-apis-accept-v2-first", true),
        ("discovery-apis-accept-v2-only", false),
        ("discovery-api-aggregated-v2beta1", true),
    ] {
        let rec = recorded(name);
        let got = raw.replay(&rec).await;
        assert_eq!(got.status, 200, "{name}");
        assert_eq!(
            got.header("content-type"),
            rec["headers"]["content-type"].as_str().unwrap(),
            "{name}"
        );
        assert_eq!(got.json(), rec["body"], "{name}");
        if aggregated {
            assert_eq!(got.header("vary"), "Accept");
            assert_eq!(got.header("cache-control"), "public");
            let etag = got.header("etag").to_owned();
            assert!(etag.starts_with('"'));
            let again = raw.replay(&rec).await;
            assert_eq!(again.header("etag"), etag, "stable ETag");
        }
    }
    let rec = recorded("discovery-apis-aggregated-v2beta1");
    let first = raw.replay(&rec).await;
    let mut req = Request::builder()
        .uri("/apis")
        .header("accept", rec["request"]["accept"].as_str().unwrap())
        .header("if-none-match", first.header("etag"))
        .body(kube::client::Body::empty())
        .unwrap();
    req.headers_mut();
    let resp = raw.client.send(req).await.unwrap();
    assert_eq!(resp.status().as_u16(), 304);

    let version = raw.get("/version").await.json();
    assert_eq!(version["gitVersion"], "v1.28.7");
    let api = raw.get("/api").await.json();
    assert_eq!(api["kind"], "APIVersions");
    assert_eq!(api["versions"], json!(["v1"]));
}

#[tokio::test]
async fn watch_matches_recordings() {
    let (_cluster, raw) = setup().await;
    let base = "/api/v1/namespaces/rec/configmaps";
    // Too old: HTTP 200 with a single ERROR event holding a 410 Status.
    let got = raw.get(&format!("{base}?watch=1&resourceVersion=1")).await;
    assert_eq!(got.status, 200);
    let text = String::from_utf8(got.body.clone()).unwrap();
    let events: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events.len(), 1);
    let want = &recorded("watch-rv-too-old")["body"][0];
    assert_eq!(events[0]["type"], "ERROR");
    assert_eq!(events[0]["object"]["code"], 410);
    assert_eq!(events[0]["object"]["reason"], want["object"]["reason"]);
    assert!(
        events[0]["object"]["message"]
            .as_str()
            .unwrap()
            .starts_with("too old resource version: 1 (")
    );

    // ADDED, MODIFIED, DELETED from a list's resourceVersion, with a bookmark at the end.
    let list = raw.get(base).await.json();
    let rv = list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_owned();
    let watch = {
        let client = raw.client.clone();
        let uri = format!(
            "{base}?watch=1&resourceVersion={rv}&allowWatchBookmarks=true&timeoutSeconds=4"
        );
        tokio::spawn(async move { Raw { client }.get(&uri).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    raw.post(
        base,
        json!({"metadata": {"name": "watched", "labels": {"w": "1"}}, "data": {"n": "1"}}),
    )
    .await;
    raw.call(
        "PATCH",
        &format!("{base}/watched"),
        Some("application/merge-patch+json"),
        None,
        br#"{"data":{"n":"2"}}"#.to_vec(),
    )
    .await;
    raw.call("DELETE", &format!("{base}/watched"), None, None, Vec::new())
        .await;
    let got = watch.await.unwrap();
    assert_eq!(got.header("content-type"), "application/json");
    let text = String::from_utf8(got.body).unwrap();
    let events: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // The bookmark comes ~2 s before the end; on a slow machine it may precede the changes.
    let (bookmarks, changes): (Vec<&Value>, Vec<&Value>) =
        events.iter().partition(|e| e["type"] == "BOOKMARK");
    let types: Vec<&str> = changes
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["ADDED", "MODIFIED", "DELETED"], "{text}");
    assert_eq!(bookmarks.len(), 1, "{text}");
    let recorded_events = &recorded("watch-events")["body"];
    for (got, want) in changes.iter().zip(recorded_events.as_array().unwrap()) {
        assert_eq!(got["object"]["kind"], want["object"]["kind"]);
        assert_eq!(got["object"]["apiVersion"], want["object"]["apiVersion"]);
        assert_eq!(got["object"]["data"], want["object"]["data"]);
    }
    let bookmark = &bookmarks[0]["object"];
    let want_bm = &recorded("watch-bookmark")["body"][1]["object"];
    assert_eq!(bookmark["kind"], want_bm["kind"]);
    assert_eq!(
        bookmark["metadata"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        want_bm["metadata"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>()
    );

    // No resourceVersion: the current state first, as ADDED events.
    let got = raw
        .get(&format!(
            "{base}?watch=1&fieldSelector=metadata.name%3Dkube-root-ca.crt&timeoutSeconds=1"
        ))
        .await;
    let text = String::from_utf8(got.body).unwrap();
    let first: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(first["type"], "ADDED");
    assert_eq!(first["object"]["metadata"]["name"], "kube-root-ca.crt");
}

#[tokio::test]
async fn crds_serve_custom_resources_until_deleted() {
    let (cluster, raw) = setup().await;
    let crd = recorded("crd-widgets-create");
    let got = raw.replay(&crd).await;
    assert_eq!(got.status, 201);
    let body = got.json();
    assert_eq!(body["status"], crd["body"]["status"]);
    assert_eq!(body["spec"]["conversion"], json!({"strategy": "None"}));
    cluster
        .wait_crd_established("widgets.example.com")
        .await
        .expect("established");
    let est = raw
        .get("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.example.com")
        .await
        .json();
    let want = &recorded("crd-widgets-get-established")["body"]["status"];
    assert_eq!(est["status"]["acceptedNames"], want["acceptedNames"]);
    let reasons: Vec<&Value> = est["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| &c["reason"])
        .collect();
    let want_reasons: Vec<&Value> = want["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| &c["reason"])
        .collect();
    assert_eq!(reasons, want_reasons);

    // Discovery shows the group and version.
    let group = raw.get("/apis/example.com").await.json();
    assert_eq!(group, recorded("discovery-example-com-group")["body"]);
    let mut v1 = raw.get("/apis/example.com/v1").await.json();
    let mut want_v1 = recorded("discovery-example-com-v1")["body"].clone();
    for d in [&mut v1, &mut want_v1] {
        d["resources"][0]
            .as_object_mut()
            .unwrap()
            .remove("storageVersionHash");
    }
    assert_eq!(v1, want_v1);

    let rec = recorded("cr-create");
    let got = raw.replay(&rec).await;
    assert_eq!(got.status, 201);
    let w = got.json();
    assert_eq!(w["kind"], "Widget");
    assert_eq!(w["metadata"]["generation"], 1);
    assert_eq!(w["spec"], rec["body"]["spec"]);

    for name in ["cr-create-schema-invalid", "cr-create-missing-required"] {
        let rec = recorded(name);
        let got = raw.replay(&rec).await;
        assert_eq!(got.status, 422, "{name}");
        assert_status_eq(&got.json(), &rec["body"], name);
    }
    let rec = recorded("cr-create-unknown-field-pruned-warn");
    let got = raw.replay(&rec).await;
    assert_eq!(got.status, 201);
    let mut warnings: Vec<&str> = got
        .headers
        .get_all("warning")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    warnings.sort();
    assert_eq!(
        warnings,
        [
            "299 - \"unknown field \\\"spec.extra\\\"\"",
            "299 - \"unknown field \\\"top\\\"\""
        ]
    );
    assert_eq!(got.json()["spec"], rec["body"]["spec"]);

    // Lists of custom resources keep kind/apiVersion on items.
    let list = raw
        .get("/apis/example.com/v1/namespaces/rec/widgets")
        .await
        .json();
    assert_eq!(list["kind"], "WidgetList");
    assert_eq!(list["items"][0]["kind"], "Widget");
    assert_eq!(list["items"][0]["apiVersion"], "example.com/v1");

    // Table for kubectl get.
    let rec = recorded("cr-as-table");
    let got = raw.replay(&rec).await.json();
    assert_eq!(got["columnDefinitions"], rec["body"]["columnDefinitions"]);
    assert_eq!(got["rows"][0]["cells"], json!(["w1", 3]));

    // status subresource.
    let mut w1 = raw
        .get("/apis/example.com/v1/namespaces/rec/widgets/w1")
        .await
        .json();
    w1["status"] = json!({"ready": true});
    w1["spec"]["size"] = json!(99);
    let got = raw
        .call(
            "PUT",
            "/apis/example.com/v1/namespaces/rec/widgets/w1/status",
            Some("application/json"),
            None,
            serde_json::to_vec(&w1).unwrap(),
        )
        .await
        .json();
    assert_eq!(got["status"]["ready"], true);
    assert_eq!(got["spec"]["size"], 3, "status updates ignore spec");

    // Strategic merge patch is not for custom resources.
    let got = raw
        .call(
            "PATCH",
            "/apis/example.com/v1/namespaces/rec/widgets/w1",
            Some("application/strategic-merge-patch+json"),
            None,
            b"{}".to_vec(),
        )
        .await;
    assert_eq!(got.status, 415);

    // Deleting the CRD removes its objects and then the API.
    let got = raw
        .call(
            "DELETE",
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.example.com",
            None,
            None,
            Vec::new(),
        )
        .await;
    assert_eq!(got.status, 200);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let got = raw.get("/apis/example.com/v1/namespaces/rec/widgets").await;
        if got.status == 404 {
            assert_eq!(got.body, b"404 page not found\n");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "CRD still served");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let gone = raw
        .get("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.example.com")
        .await;
    assert_eq!(gone.status, 404);
}

#[tokio::test]
async fn namespace_deletion_waits_for_finalizers() {
    let (cluster, raw) = setup().await;
    cluster
        .create_yaml(&recorded("crd-widgets-create")["request"]["body"].to_string())
        .await
        .unwrap();
    raw.post(
        "/api/v1/namespaces",
        json!({"metadata": {"name": "rec-term"}}),
    )
    .await;
    raw.post(
        "/apis/example.com/v1/namespaces/rec-term/widgets",
        json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "held", "finalizers": ["example.com/hold"]}, "spec": {"size": 1}}),
    )
    .await;
    raw.post(
        "/api/v1/namespaces/rec-term/configmaps",
        json!({"metadata": {"name": "c"}}),
    )
    .await;
    let got = raw
        .call(
            "DELETE",
            "/api/v1/namespaces/rec-term",
            None,
            None,
            Vec::new(),
        )
        .await;
    assert_eq!(got.status, 200);
    let ns = got.json();
    assert_eq!(ns["kind"], "Namespace");
    assert_eq!(ns["status"]["phase"], "Terminating");
    assert!(ns["metadata"]["deletionTimestamp"].is_string());

    // New content is refused as the real server refuses it.
    let rec = recorded("error-create-in-terminating-namespace");
    let got = raw.replay(&rec).await;
    assert_eq!(got.status, 403);
    assert_status_eq(&got.json(), &rec["body"], "terminating namespace");

    // The configmap goes; the widget stays, held by its finalizer; conditions say so.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let ns = raw.get("/api/v1/namespaces/rec-term").await.json();
        let cm = raw.get("/api/v1/namespaces/rec-term/configmaps/c").await;
        if cm.status == 404 && ns["status"]["conditions"].is_array() {
            let types: Vec<&str> = ns["status"]["conditions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["type"].as_str().unwrap())
                .collect();
            let want = &recorded("namespace-terminating-finalizers-remaining")["body"]["status"]["conditions"];
            let want_types: Vec<&str> = want
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["type"].as_str().unwrap())
                .collect();
            assert_eq!(types, want_types);
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "namespace content not removed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let held = raw
        .get("/apis/example.com/v1/namespaces/rec-term/widgets/held")
        .await
        .json();
    assert!(held["metadata"]["deletionTimestamp"].is_string());

    // Removing the finalizer lets the widget and then the namespace go.
    let got = raw
        .call(
            "PATCH",
            "/apis/example.com/v1/namespaces/rec-term/widgets/held",
            Some("application/merge-patch+json"),
            None,
            br#"{"metadata":{"finalizers":null}}"#.to_vec(),
        )
        .await;
    assert_eq!(got.status, 200);
    loop {
        let got = raw.get("/api/v1/namespaces/rec-term").await;
        if got.status == 404 {
            assert_status_eq(
                &got.json(),
                &recorded("namespace-rec-term-gone-404")["body"],
                "gone",
            );
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "namespace not removed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn strategic_merge_and_defaults_on_deployments() {
    let (_cluster, raw) = setup().await;
    let rec = recorded("deploy-create");
    let got = raw.replay(&rec).await;
    assert_eq!(got.status, 201);
    assert_eq!(got.json()["spec"], rec["body"]["spec"]);
    let rec = recorded("deploy-patch-strategic-merge-containers");
    let got = raw.replay(&rec).await.json();
    let names = |v: &Value| -> Vec<Value> {
        v["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| json!([c["name"], c["image"]]))
            .collect()
    };
    assert_eq!(names(&got), names(&rec["body"]));
    assert_eq!(got["metadata"]["generation"], 2);
    let rec = recorded("deploy-delete-foreground");
    let got = raw.replay(&rec).await.json();
    assert_eq!(got["metadata"]["finalizers"], json!(["foregroundDeletion"]));
    assert!(got["metadata"]["deletionTimestamp"].is_string());
}

#[tokio::test]
async fn services_and_pvcs_get_cluster_defaults() {
    let (_cluster, raw) = setup().await;
    let rec = recorded("pvc-create-no-default-storageclass");
    let got = raw.replay(&rec).await.json();
    assert_eq!(got["spec"], rec["body"]["spec"]);
    assert_eq!(got["status"], rec["body"]["status"]);
    raw.replay(&recorded("storageclass-create-default")).await;
    let rec = recorded("pvc-create-with-default-storageclass");
    let got = raw.replay(&rec).await.json();
    assert_eq!(got["spec"]["storageClassName"], "rec-default");
    let rec = recorded("pvc-create-explicit-empty-storageclass");
    let got = raw.replay(&rec).await.json();
    assert_eq!(got["spec"]["storageClassName"], "");

    let a = raw
        .post("/api/v1/namespaces/rec/services", json!({"metadata": {"name": "a"}, "spec": {"type": "NodePort", "ports": [{"port": 80}]}}))
        .await
        .json();
    let b = raw
        .post(
            "/api/v1/namespaces/rec/services",
            json!({"metadata": {"name": "b"}, "spec": {"ports": [{"port": 80}]}}),
        )
        .await
        .json();
    assert_ne!(a["spec"]["clusterIP"], b["spec"]["clusterIP"]);
    assert!(a["spec"]["ports"][0]["nodePort"].as_u64().unwrap() >= 30000);
    assert!(b["spec"]["ports"][0].get("nodePort").is_none());
}

async fn wait_until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn garbage_collection_follows_owner_references() {
    let (_cluster, raw) = setup().await;
    let deploy = |name: &str| {
        json!({"metadata": {"name": name}, "spec": {"selector": {"matchLabels": {"a": name}},
            "template": {"metadata": {"labels": {"a": name}}, "spec": {"containers": [{"name": "c", "image": "i:1"}]}}}})
    };
    let mut owners = Vec::new();
    for name in ["bg", "fg", "orphan"] {
        let d = raw
            .post("/apis/apps/v1/namespaces/rec/deployments", deploy(name))
            .await
            .json();
        let uid = d["metadata"]["uid"].as_str().unwrap().to_owned();
        let r = raw
            .post(
                "/api/v1/namespaces/rec/configmaps",
                json!({"metadata": {"name": format!("{name}-dep"), "ownerReferences": [
                    {"apiVersion": "apps/v1", "kind": "Deployment", "name": name, "uid": uid}]}}),
            )
            .await;
        assert_eq!(r.status, 201);
        owners.push(uid);
    }
    let cm = |name: &str| format!("/api/v1/namespaces/rec/configmaps/{name}");
    let deploy_url = |name: &str| format!("/apis/apps/v1/namespaces/rec/deployments/{name}");

    // Background (the default): the owner goes at once, the dependent soon after.
    let r = raw
        .call("DELETE", &deploy_url("bg"), None, None, Vec::new())
        .await;
    assert_eq!(r.status, 200);
    wait_until("background dependent deleted", || async {
        raw.get(&cm("bg-dep")).await.status == 404
    })
    .await;

    // Foreground: the owner waits (foregroundDeletion) until the dependent is gone.
    let body = serde_json::to_vec(
        &json!({"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Foreground"}),
    )
    .unwrap();
    let r = raw
        .call(
            "DELETE",
            &deploy_url("fg"),
            Some("application/json"),
            None,
            body,
        )
        .await;
    assert_eq!(
        r.json()["metadata"]["finalizers"],
        json!(["foregroundDeletion"])
    );
    wait_until("foreground owner deleted", || async {
        raw.get(&deploy_url("fg")).await.status == 404
    })
    .await;
    assert_eq!(raw.get(&cm("fg-dep")).await.status, 404);

    // Orphan: the dependent stays, without the reference.
    let r = raw
        .call(
            "DELETE",
            &format!("{}?propagationPolicy=Orphan", deploy_url("orphan")),
            None,
            None,
            Vec::new(),
        )
        .await;
    assert_eq!(r.status, 200);
    wait_until("orphaning owner deleted", || async {
        raw.get(&deploy_url("orphan")).await.status == 404
    })
    .await;
    let dep = raw.get(&cm("orphan-dep")).await.json();
    assert!(dep["metadata"].get("ownerReferences").is_none(), "{dep}");

    // An owner of a kind that is not served cannot be looked up: left alone.
    raw.post(
        "/api/v1/namespaces/rec/configmaps",
        json!({"metadata": {"name": "ghost-owned", "ownerReferences": [
            {"apiVersion": "nosuch.example.com/v1", "kind": "Ghost", "name": "g", "uid": "00000000-0000-0000-0000-000000000001"}]}}),
    )
    .await;
    // A reference to an owner that does not exist makes the object garbage, as on a real cluster.
    raw.post(
        "/api/v1/namespaces/rec/configmaps",
        json!({"metadata": {"name": "dangling", "ownerReferences": [
            {"apiVersion": "apps/v1", "kind": "Deployment", "name": "gone", "uid": "00000000-0000-0000-0000-000000000000"}]}}),
    )
    .await;
    wait_until("dangling dependent deleted", || async {
        raw.get(&cm("dangling")).await.status == 404
    })
    .await;
    assert_eq!(raw.get(&cm("ghost-owned")).await.status, 200);
}

#[tokio::test]
async fn pending_claims_get_a_default_class_retroactively() {
    let (_cluster, raw) = setup().await;
    let rec = recorded("pvc-create-no-default-storageclass");
    let got = raw.replay(&rec).await.json();
    let name = got["metadata"]["name"].as_str().unwrap().to_owned();
    assert!(got["spec"].get("storageClassName").is_none());
    raw.replay(&recorded("storageclass-create-default")).await;
    let url = format!("/api/v1/namespaces/rec/persistentvolumeclaims/{name}");
    wait_until("default class assigned", || async {
        raw.get(&url).await.json()["spec"]["storageClassName"] == "rec-default"
    })
    .await;
    let want = &recorded("pvc-retroactive-default-storageclass")["body"];
    wait_until("provisioner annotations", || async {
        raw.get(&url).await.json()["metadata"]["annotations"] == want["metadata"]["annotations"]
    })
    .await;
}

#[tokio::test]
async fn kube_runtime_watcher_lists_then_follows_changes() {
    use futures::StreamExt;
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::runtime::watcher;
    let (cluster, raw) = setup().await;
    for i in 0..3 {
        raw.post(
            "/api/v1/namespaces/rec/configmaps",
            json!({"metadata": {"name": format!("w-{i}")}}),
        )
        .await;
    }
    let api: kube::Api<ConfigMap> = kube::Api::namespaced(cluster.client().await.unwrap(), "rec");
    let cfg = watcher::Config::default().page_size(2).labels("!ignored");
    let mut stream = watcher(api, cfg).boxed();
    let mut initial = Vec::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
        {
            watcher::Event::Init => {}
            watcher::Event::InitApply(cm) => initial.push(cm.metadata.name.unwrap()),
            watcher::Event::InitDone => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    initial.sort();
    assert_eq!(initial, ["kube-root-ca.crt", "w-0", "w-1", "w-2"]);
    raw.post(
        "/api/v1/namespaces/rec/configmaps",
        json!({"metadata": {"name": "w-new"}}),
    )
    .await;
    raw.call(
        "DELETE",
        "/api/v1/namespaces/rec/configmaps/w-0",
        None,
        None,
        Vec::new(),
    )
    .await;
    let mut seen = Vec::new();
    while seen.len() < 2 {
        match tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
        {
            watcher::Event::Apply(cm) => seen.push(format!("apply {}", cm.metadata.name.unwrap())),
            watcher::Event::Delete(cm) => {
                seen.push(format!("delete {}", cm.metadata.name.unwrap()))
            }
            _ => {}
        }
    }
    assert_eq!(seen, ["apply w-new", "delete w-0"]);
}

#[tokio::test]
async fn terminating_namespaces_survive_updates_until_finalized() {
    let (_cluster, raw) = setup().await;
    raw.post("/api/v1/namespaces", json!({"metadata": {"name": "stuck"}}))
        .await;
    raw.post(
        "/api/v1/namespaces/stuck/configmaps",
        json!({"metadata": {"name": "held", "finalizers": ["example.com/hold"]}}),
    )
    .await;
    let r = raw
        .call("DELETE", "/api/v1/namespaces/stuck", None, None, Vec::new())
        .await;
    assert_eq!(r.json()["status"]["phase"], "Terminating");
    let r = raw
        .call(
            "PATCH",
            "/api/v1/namespaces/stuck",
            Some("application/merge-patch+json"),
            None,
            br#"{"metadata":{"labels":{"note":"still-here"}}}"#.to_vec(),
        )
        .await;
    assert_eq!(r.status, 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ns = raw.get("/api/v1/namespaces/stuck").await;
    assert_eq!(ns.status, 200, "an update does not finish the deletion");
    let mut body = ns.json();
    assert_eq!(body["spec"]["finalizers"], json!(["kubernetes"]));
    // Force-finalizing (PUT .../finalize without finalizers) removes it at once.
    body["spec"]["finalizers"] = json!([]);
    let r = raw
        .call(
            "PUT",
            "/api/v1/namespaces/stuck/finalize",
            Some("application/json"),
            None,
            serde_json::to_vec(&body).unwrap(),
        )
        .await;
    assert_eq!(r.status, 200);
    wait_until("finalized namespace gone", || async {
        raw.get("/api/v1/namespaces/stuck").await.status == 404
    })
    .await;
}

#[tokio::test]
async fn deployments_get_replica_sets_and_pending_pods() {
    let (_cluster, raw) = setup().await;
    let d = raw
        .post(
            "/apis/apps/v1/namespaces/rec/deployments",
            json!({"metadata": {"name": "web"}, "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "nginx:1.25"}]}}}}),
        )
        .await
        .json();
    let uid = d["metadata"]["uid"].as_str().unwrap().to_owned();
    let count = |v: &Value| v["items"].as_array().unwrap().len();
    wait_until("replica set and two pods", || async {
        count(
            &raw.get("/api/v1/namespaces/rec/pods?labelSelector=app%3Dweb")
                .await
                .json(),
        ) == 2
    })
    .await;
    let rs = raw
        .get("/apis/apps/v1/namespaces/rec/replicasets")
        .await
        .json();
    assert_eq!(count(&rs), 1);
    let rs = &rs["items"][0];
    let hash = rs["metadata"]["labels"]["pod-template-hash"]
        .as_str()
        .unwrap();
    assert_eq!(rs["metadata"]["name"], format!("web-{hash}"));
    assert_eq!(rs["metadata"]["ownerReferences"][0]["uid"], uid.as_str());
    assert_eq!(rs["metadata"]["ownerReferences"][0]["controller"], true);
    let pods = raw.get("/api/v1/namespaces/rec/pods").await.json();
    let pod = &pods["items"][0];
    assert!(
        pod["metadata"]["name"]
            .as_str()
            .unwrap()
            .starts_with(&format!("web-{hash}-"))
    );
    assert_eq!(pod["status"]["phase"], "Pending");
    assert_eq!(pod["metadata"]["ownerReferences"][0]["kind"], "ReplicaSet");

    // A new template makes a new ReplicaSet; the old one is scaled to zero.
    raw.call(
        "PATCH",
        "/apis/apps/v1/namespaces/rec/deployments/web",
        Some("application/strategic-merge-patch+json"),
        None,
        br#"{"spec":{"template":{"spec":{"containers":[{"name":"c","image":"nginx:1.26"}]}}}}"#
            .to_vec(),
    )
    .await;
    wait_until("rolled over", || async {
        let pods = raw.get("/api/v1/namespaces/rec/pods").await.json();
        let images: Vec<Value> = pods["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["spec"]["containers"][0]["image"].clone())
            .collect();
        images == [json!("nginx:1.26"), json!("nginx:1.26")]
    })
    .await;
    assert_eq!(
        count(
            &raw.get("/apis/apps/v1/namespaces/rec/replicasets")
                .await
                .json()
        ),
        2
    );

    // Deleting the Deployment takes its ReplicaSets and Pods along.
    raw.call(
        "DELETE",
        "/apis/apps/v1/namespaces/rec/deployments/web",
        None,
        None,
        Vec::new(),
    )
    .await;
    wait_until("everything collected", || async {
        count(&raw.get("/api/v1/namespaces/rec/pods").await.json()) == 0
            && count(
                &raw.get("/apis/apps/v1/namespaces/rec/replicasets")
                    .await
                    .json(),
            ) == 0
    })
    .await;
}

#[tokio::test]
async fn stateful_sets_get_their_claims_and_first_pod() {
    let (_cluster, raw) = setup().await;
    let rec = recorded("admission-statefulset-create");
    let got = raw.replay(&rec).await;
    assert_eq!(got.status, 201);
    wait_until("claim and pod", || async {
        raw.get("/api/v1/namespaces/rec/persistentvolumeclaims/data-db-0")
            .await
            .status
            == 200
            && raw.get("/api/v1/namespaces/rec/pods/db-0").await.status == 200
    })
    .await;
    let pvc = raw
        .get("/api/v1/namespaces/rec/persistentvolumeclaims/data-db-0")
        .await
        .json();
    let want = &recorded("admission-pvc-create-by-statefulset-controller")["webhook_requests"][0]["body"]
        ["request"]["object"];
    assert_eq!(pvc["metadata"]["labels"], want["metadata"]["labels"]);
    assert_eq!(pvc["spec"], want["spec"]);
    assert!(
        pvc["metadata"].get("ownerReferences").is_none(),
        "retained by default"
    );
    let pod = raw.get("/api/v1/namespaces/rec/pods/db-0").await.json();
    assert_eq!(
        pod["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"],
        "data-db-0"
    );
    assert_eq!(pod["metadata"]["ownerReferences"][0]["kind"], "StatefulSet");
}

#[tokio::test]
async fn claims_are_protected_while_pods_use_them() {
    let (_cluster, raw) = setup().await;
    raw.post(
        "/api/v1/namespaces/rec/persistentvolumeclaims",
        json!({"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}),
    )
    .await;
    raw.post(
        "/api/v1/namespaces/rec/pods",
        json!({"metadata": {"name": "user"}, "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}],
            "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}]}}),
    )
    .await;
    let r = raw
        .call(
            "DELETE",
            "/api/v1/namespaces/rec/persistentvolumeclaims/data",
            None,
            None,
            Vec::new(),
        )
        .await;
    assert!(r.json()["metadata"]["deletionTimestamp"].is_string());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        raw.get("/api/v1/namespaces/rec/persistentvolumeclaims/data")
            .await
            .status,
        200,
        "held by kubernetes.io/pvc-protection while the pod uses it"
    );
    raw.call(
        "DELETE",
        "/api/v1/namespaces/rec/pods/user",
        None,
        None,
        Vec::new(),
    )
    .await;
    wait_until("claim released", || async {
        raw.get("/api/v1/namespaces/rec/persistentvolumeclaims/data")
            .await
            .status
            == 404
    })
    .await;

    // A namespace with a workload and its claim goes away completely.
    raw.post("/api/v1/namespaces", json!({"metadata": {"name": "app"}}))
        .await;
    raw.post(
        "/api/v1/namespaces/app/persistentvolumeclaims",
        json!({"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}),
    )
    .await;
    raw.post(
        "/apis/apps/v1/namespaces/app/deployments",
        json!({"metadata": {"name": "db"}, "spec": {"selector": {"matchLabels": {"app": "db"}},
            "template": {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": [{"name": "c", "image": "postgres:16"}],
                "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}]}}}}),
    )
    .await;
    wait_until("pod running", || async {
        raw.get("/api/v1/namespaces/app/pods").await.json()["items"]
            .as_array()
            .unwrap()
            .len()
            == 1
    })
    .await;
    raw.call("DELETE", "/api/v1/namespaces/app", None, None, Vec::new())
        .await;
    wait_until("namespace gone", || async {
        raw.get("/api/v1/namespaces/app").await.status == 404
    })
    .await;
}

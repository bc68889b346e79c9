//! An API server that throttles and fails: the harness cluster behind a small
//! forwarding proxy that answers some LISTs with 429 or 503 (as an overloaded
//! or restarting kube-apiserver does) before letting them through. The plugin
//! must retry with backoff and succeed, or, when a resource never answers,
//! finish `PartiallyFailed` naming it.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use e2e::cluster::TestCluster;
use serde_json::{Value, json};

/// How many more faults to inject for LISTs of a resource (path suffix).
#[derive(Clone, Default)]
struct Faults {
    plan: Arc<Mutex<BTreeMap<String, Vec<u16>>>>,
    served: Arc<Mutex<Vec<(String, u16)>>>,
}

struct Proxy {
    target: String,
    client: reqwest::Client,
    faults: Faults,
}

async fn forward(State(proxy): State<Arc<Proxy>>, req: Request) -> Response {
    let path = req.uri().path().to_owned();
    let path_and_query = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| path.clone());
    if req.method() == http::Method::GET {
        let fault = {
            let mut plan = proxy.faults.plan.lock().expect("lock");
            plan.iter_mut()
                .find(|(suffix, codes)| path.ends_with(suffix.as_str()) && !codes.is_empty())
                .map(|(_, codes)| codes.remove(0))
        };
        if let Some(code) = fault {
            proxy
                .faults
                .served
                .lock()
                .expect("lock")
                .push((path.clone(), code));
            let (reason, message) = if code == 429 {
                (
                    "TooManyRequests",
                    "the server has received too many requests and has asked us to try again later",
                )
            } else {
                (
                    "ServiceUnavailable",
                    "the server is currently unable to handle the request",
                )
            };
            let status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                                "message": message, "reason": reason, "code": code});
            return Response::builder()
                .status(code)
                .header("content-type", "application/json")
                .header("retry-after", "1")
                .body(Body::from(status.to_string()))
                .expect("response");
        }
    }
    let method = req.method().clone();
    let headers = req.headers().clone();
    let body = axum::body::to_bytes(req.into_body(), usize::MAX)
        .await
        .unwrap_or_default();
    let mut upstream = proxy
        .client
        .request(method, format!("{}{path_and_query}", proxy.target))
        .body(body);
    for (k, v) in headers.iter() {
        if k != http::header::HOST {
            upstream = upstream.header(k, v);
        }
    }
    match upstream.send().await {
        Ok(resp) => {
            let mut builder = Response::builder().status(resp.status());
            for (k, v) in resp.headers() {
                if k != http::header::TRANSFER_ENCODING && k != http::header::CONTENT_LENGTH {
                    builder = builder.header(k, v);
                }
            }
            let bytes = resp.bytes().await.unwrap_or_default();
            builder.body(Body::from(bytes)).expect("response")
        }
        Err(e) => Response::builder()
            .status(502)
            .body(Body::from(e.to_string()))
            .expect("response"),
    }
}

/// Start the proxy in front of `cluster`; returns a kubeconfig pointing at it.
async fn start_proxy(
    cluster: &TestCluster,
    faults: Faults,
    dir: &std::path::Path,
) -> std::path::PathBuf {
    let kc: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(cluster.kubeconfig()).expect("kubeconfig"))
            .expect("yaml");
    let server = kc["clusters"][0]["cluster"]["server"]
        .as_str()
        .expect("server")
        .trim_end_matches('/')
        .to_owned();
    let token = kc["users"][0]["user"]["token"]
        .as_str()
        .expect("a token user")
        .to_owned();
    let client = reqwest::Client::builder()
        // Loopback only, to the harness's own self-signed server.
        .danger_accept_invalid_certs(true)
        .build()
        .expect("reqwest client");
    let proxy = Arc::new(Proxy {
        target: server,
        client,
        faults,
    });
    let app = axum::Router::new().fallback(forward).with_state(proxy);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let path = dir.join("proxy-kubeconfig");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: proxy\n  cluster:\n    server: http://127.0.0.1:{port}\n\
             contexts:\n- name: proxy\n  context:\n    cluster: proxy\n    user: u\nusers:\n- name: u\n  user:\n    token: {token}\n\
             current-context: proxy\n"
        ),
    )
    .expect("write kubeconfig");
    path
}

fn plugin(kubeconfig: &std::path::Path, location: &str, args: &[&str]) -> std::process::Output {
    Command::new(e2e::bin_path("kubectl-backup"))
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .args(["--location", location])
        .env_remove("KUBECONFIG")
        .stdin(Stdio::null())
        .output()
        .expect("run kubectl-backup")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_and_server_errors_are_retried_then_reported() {
    let cluster = TestCluster::start().await.expect("cluster");
    let ns = cluster.temp_namespace("bkfault").await.expect("namespace");
    let client = cluster.client().await.expect("client");
    for i in 0..3 {
        let req = http::Request::post(format!("/api/v1/namespaces/{}/configmaps", ns.name()))
            .header("content-type", "application/json")
            .body(
                serde_json::to_vec(&json!({"metadata": {"name": format!("cm-{i}")}}))
                    .expect("json"),
            )
            .expect("request");
        client
            .request::<Value>(req)
            .await
            .expect("create configmap");
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let location = format!("file://{}", dir.path().join("store").display());
    let faults = Faults::default();
    let kubeconfig = start_proxy(&cluster, faults.clone(), dir.path()).await;

    // Two 429s and a 503 on the ConfigMap LIST: retried, and the backup is complete.
    faults
        .plan
        .lock()
        .expect("lock")
        .insert("/configmaps".to_owned(), vec![429, 429, 503]);
    let out = plugin(
        &kubeconfig,
        &location,
        &[
            "create",
            "throttled",
            "--include-namespaces",
            ns.name(),
            "-o",
            "json",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let m: Value = serde_json::from_slice(&out.stdout).expect("manifest");
    assert_eq!(m["phase"], "Completed");
    assert_eq!(
        m["resources"]["configmaps"]["items"],
        3 + 1,
        "3 seeded + kube-root-ca.crt"
    );
    assert_eq!(
        faults.served.lock().expect("lock").len(),
        3,
        "every fault was met and retried"
    );

    // A LIST that keeps failing: reported, and the rest is still backed up.
    faults.served.lock().expect("lock").clear();
    faults
        .plan
        .lock()
        .expect("lock")
        .insert("/secrets".to_owned(), vec![503; 50]);
    let out = plugin(
        &kubeconfig,
        &location,
        &[
            "create",
            "broken",
            "--include-namespaces",
            ns.name(),
            "-o",
            "json",
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(3),
        "PartiallyFailed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let m: Value = serde_json::from_slice(&out.stdout).expect("manifest");
    assert_eq!(m["phase"], "PartiallyFailed");
    let errors = m["errors"].to_string();
    assert!(
        errors.contains("secrets") && errors.contains("unable to handle"),
        "{errors}"
    );
    assert_eq!(m["resources"]["configmaps"]["items"], 4);
    let served = faults.served.lock().expect("lock").len();
    assert!(served >= 2, "retried before giving up ({served} attempts)");

    // describe names the reason of PartiallyFailed.
    let out = plugin(&kubeconfig, &location, &["describe", "broken"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("PartiallyFailed") && text.contains("Errors (1)") && text.contains("secrets"),
        "{text}"
    );
}

//! Faults around `kubectl backup etcd snapshot`, with the real etcd and moto:
//! TLS with client certificates (wrong CA, foreign, expired or missing
//! client cert), an unreachable endpoint, a snapshot stream cut off in the
//! middle (by a TCP proxy) and an object store failing mid-upload (by an
//! HTTP proxy in front of moto). Every failure must leave nothing listed.

mod etcd_common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use e2e::servers::S3Server;
use e2e::servers::etcd::EtcdServer;
use etcd_common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn tls_flags(
    etcd: &EtcdServer,
    ca: &std::path::Path,
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Vec<String> {
    vec![
        format!("--endpoints={}", etcd.endpoint()),
        format!("--cacert={}", ca.display()),
        format!("--cert={}", cert.display()),
        format!("--key={}", key.display()),
        "--dial-timeout=3s".to_owned(),
    ]
}

#[tokio::test]
async fn tls_client_certificates() {
    let etcd = EtcdServer::start_tls();
    fill(&etcd, 500, 100).await;
    let tls = etcd.tls().unwrap();
    let good = tempfile::tempdir().unwrap();
    let out = ok(kb()
        .args([
            "etcd",
            "snapshot",
            "-o",
            "json",
            "--location",
            &file_url(good.path()),
        ])
        .args(etcd.client_flags()));
    let meta: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(meta["totalKeys"], 500);
    assert!(
        meta["member"]["endpoint"]
            .as_str()
            .unwrap()
            .starts_with("https://")
    );
    ok(kb().args([
        "etcd",
        "verify",
        "--all",
        "--location",
        &file_url(good.path()),
    ]));

    let bad = tempfile::tempdir().unwrap();
    let location = file_url(bad.path());
    let (foreign_ca, foreign_cert, foreign_key) = tls.foreign();
    let (expired_cert, expired_key) = tls.expired_client();
    let cases = [
        (
            "wrong CA",
            tls_flags(&etcd, &foreign_ca, &tls.client_cert, &tls.client_key),
        ),
        (
            "foreign client cert",
            tls_flags(&etcd, &tls.ca_cert, &foreign_cert, &foreign_key),
        ),
        (
            "expired client cert",
            tls_flags(&etcd, &tls.ca_cert, &expired_cert, &expired_key),
        ),
        (
            "no client cert",
            vec![
                format!("--endpoints={}", etcd.endpoint()),
                format!("--cacert={}", tls.ca_cert.display()),
                "--dial-timeout=3s".into(),
            ],
        ),
    ];
    for (what, flags) in cases {
        let started = Instant::now();
        let out = fails(
            kb().args(["etcd", "snapshot", "--location", &location])
                .args(&flags),
        );
        let err = stderr(&out);
        assert!(err.contains(etcd.endpoint()), "{what}: {err}");
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{what} took {:?}",
            started.elapsed()
        );
        assert_eq!(out.status.code(), Some(1), "{what}: {err}");
    }
    // A wrong CA is named as such.
    let out = fails(
        kb().args(["etcd", "snapshot", "--location", &location])
            .args(tls_flags(
                &etcd,
                &foreign_ca,
                &tls.client_cert,
                &tls.client_key,
            )),
    );
    assert!(stderr(&out).contains("--cacert"), "{}", stderr(&out));
    assert!(
        files_under(bad.path()).is_empty(),
        "{:?}",
        files_under(bad.path())
    );
}

#[test]
fn unreachable_endpoint_fails_fast_with_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    let port = e2e::servers::free_port();
    let started = Instant::now();
    let out = fails(kb().args([
        "etcd",
        "snapshot",
        "--endpoints",
        &format!("127.0.0.1:{port}"),
        "--dial-timeout",
        "2s",
        "--location",
        &file_url(dir.path()),
    ]));
    assert!(started.elapsed() < Duration::from_secs(20));
    let err = stderr(&out);
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
    assert!(err.contains("reachable"), "{err}");
    assert!(files_under(dir.path()).is_empty());
}

/// A TCP proxy that passes `limit` bytes from the server, then cuts every
/// connection: a snapshot stream broken off in the middle.
async fn cutting_proxy(upstream: String, limit: usize) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((client, _)) = listener.accept().await else {
                return;
            };
            let upstream = upstream.clone();
            tokio::spawn(async move {
                let Ok(server) = TcpStream::connect(&upstream).await else {
                    return;
                };
                let (mut cr, mut cw) = client.into_split();
                let (mut sr, mut sw) = server.into_split();
                let up = tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut cr, &mut sw).await;
                });
                let mut passed = 0usize;
                let mut buf = vec![0u8; 16 * 1024];
                while passed < limit {
                    let n = match sr.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n.min(limit - passed),
                    };
                    if cw.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                    passed += n;
                }
                up.abort();
                // Dropping both halves closes the connection mid-stream.
            });
        }
    });
    port
}

#[tokio::test]
async fn a_stream_cut_off_uploads_nothing() {
    let etcd = EtcdServer::start();
    fill(&etcd, 4000, 500).await; // ~2 MB of values that do not compress away
    let upstream = etcd.endpoint().trim_start_matches("http://").to_owned();
    let port = cutting_proxy(upstream, 512 * 1024).await;
    let dir = tempfile::tempdir().unwrap();
    let location = file_url(dir.path());
    let out = tokio::task::spawn_blocking(move || {
        fails(kb().args([
            "etcd",
            "snapshot",
            "--endpoints",
            &format!("127.0.0.1:{port}"),
            "--location",
            &location,
        ]))
    })
    .await
    .unwrap();
    let err = stderr(&out);
    assert!(
        err.contains("nothing was uploaded") || err.contains("broke off"),
        "{err}"
    );
    assert!(
        files_under(dir.path()).is_empty(),
        "{:?}",
        files_under(dir.path())
    );
}

/// How the S3 proxy misbehaves on part 2 of a multipart upload.
#[derive(Clone)]
struct Faults {
    upstream: String,
    client: reqwest::Client,
    /// Fail this many part-2 uploads (usize::MAX: always), with this status.
    failures_left: Arc<AtomicUsize>,
    status: u16,
    parts_seen: Arc<AtomicUsize>,
}

async fn forward(State(f): State<Faults>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, 64 << 20)
        .await
        .unwrap_or_default();
    let query = parts.uri.query().unwrap_or("");
    if parts.method == http::Method::PUT && query.contains("partNumber=") {
        f.parts_seen.fetch_add(1, Ordering::SeqCst);
    }
    if parts.method == http::Method::PUT
        && query.contains("partNumber=2")
        && f.failures_left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    {
        let code = http::StatusCode::from_u16(f.status).unwrap();
        return (
            code,
            "<?xml version=\"1.0\"?><Error><Code>Injected</Code><Message>injected fault</Message></Error>",
        )
            .into_response();
    }
    let url = format!(
        "{}{}",
        f.upstream,
        parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/")
    );
    let mut rb = f.client.request(parts.method.clone(), url);
    for (k, v) in parts.headers.iter() {
        if k != http::header::CONTENT_LENGTH {
            rb = rb.header(k, v);
        }
    }
    let resp = match rb.body(body).send().await {
        Ok(r) => r,
        Err(e) => return (http::StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    };
    let mut builder = Response::builder().status(resp.status().as_u16());
    for (k, v) in resp.headers() {
        if k != http::header::TRANSFER_ENCODING && k != http::header::CONTENT_LENGTH {
            builder = builder.header(k, v);
        }
    }
    let bytes = resp.bytes().await.unwrap_or_default();
    builder.body(Body::from(bytes)).unwrap()
}

async fn fault_proxy(s3: &S3Server, failures: usize, status: u16) -> (String, Arc<AtomicUsize>) {
    let parts_seen = Arc::new(AtomicUsize::new(0));
    let faults = Faults {
        upstream: s3.endpoint(),
        client: reqwest::Client::new(),
        failures_left: Arc::new(AtomicUsize::new(failures)),
        status,
        parts_seen: parts_seen.clone(),
    };
    let app = axum::Router::new().fallback(forward).with_state(faults);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://127.0.0.1:{port}"), parts_seen)
}

/// Put ~12 MiB of incompressible values, one key at a time (etcd refuses
/// requests over 1.5 MiB), so the upload needs several 5 MiB parts.
async fn fill_big(etcd: &EtcdServer) {
    let mut client = etcd.client().await.unwrap();
    for i in 0..96 {
        client
            .put(format!("/big/{i:03}"), value(i, 128 * 1024), None)
            .await
            .unwrap();
    }
}

fn env_with_endpoint(s3: &S3Server, endpoint: &str) -> Vec<(String, String)> {
    s3.env()
        .into_iter()
        .map(|(k, v)| {
            if k == "AWS_ENDPOINT" {
                (k, endpoint.to_owned())
            } else {
                (k, v)
            }
        })
        .collect()
}

#[tokio::test]
async fn object_store_failing_mid_upload_leaves_nothing_listed() {
    let etcd = EtcdServer::start();
    fill_big(&etcd).await;
    let s3 = S3Server::start();
    s3.create_bucket("fault-bucket").await.unwrap();
    let location = "s3://fault-bucket/etcd-faults";

    // Permanent failure of part 2: refused, and nothing is listed.
    let (proxy, parts_seen) = fault_proxy(&s3, usize::MAX, 403).await;
    let env = env_with_endpoint(&s3, &proxy);
    let flags = etcd.client_flags();
    let env2 = env.clone();
    let out = tokio::task::spawn_blocking(move || {
        fails(
            kb().args(["etcd", "snapshot", "--location", location])
                .args(&flags)
                .envs(env2.iter().map(|(k, v)| (k, v))),
        )
    })
    .await
    .unwrap();
    let err = stderr(&out);
    assert!(
        err.contains("aborted") && err.contains("nothing is listed"),
        "{err}"
    );
    assert!(
        parts_seen.load(Ordering::SeqCst) >= 2,
        "the upload really was multipart"
    );
    let direct = s3.env();
    let listed = tokio::task::spawn_blocking(move || list(location, &direct))
        .await
        .unwrap();
    assert!(listed.is_empty(), "{listed:?}");

    // A transient failure (503 once) is retried and the snapshot lands.
    let (proxy, _) = fault_proxy(&s3, 1, 503).await;
    let env = env_with_endpoint(&s3, &proxy);
    let flags = etcd.client_flags();
    let out = tokio::task::spawn_blocking(move || {
        ok(kb()
            .args(["etcd", "snapshot", "-o", "json", "--location", location])
            .args(&flags)
            .envs(env.iter().map(|(k, v)| (k, v))))
    })
    .await
    .unwrap();
    let meta: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(meta["storedSize"].as_u64().unwrap() > 10 * 1024 * 1024);
    let direct = s3.env();
    let listed = tokio::task::spawn_blocking(move || {
        ok(kb()
            .args(["etcd", "verify", "--all", "--location", location])
            .envs(direct.iter().map(|(k, v)| (k, v))));
        list(location, &direct)
    })
    .await
    .unwrap();
    assert_eq!(listed.len(), 1);
}

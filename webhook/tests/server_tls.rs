//! The admission server over real TLS, in process and without a cluster:
//! endpoints, malformed bodies, TLS versions, certificate rotation by
//! swapping the files, and a policy reload.

// A test: a failed unwrap is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use backup_common::policy::Policy;
use backup_webhook::{App, server, tls};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, ServerName};

struct Ca {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    pem: String,
}

fn ca() -> Ca {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "test CA");
    let cert = params.self_signed(&key).unwrap();
    Ca {
        pem: cert.pem(),
        issuer: rcgen::Issuer::new(params, key),
    }
}

/// A serving pair for 127.0.0.1 signed by `ca`: (cert PEM, key PEM, cert DER).
fn leaf(ca: &Ca, cn: &str) -> (String, String, Vec<u8>) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params =
        rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    let cert = params.signed_by(&key, &ca.issuer).unwrap();
    (cert.pem(), key.serialize_pem(), cert.der().to_vec())
}

/// Replace a file atomically, as a Secret volume update does.
fn swap(path: &Path, contents: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, contents).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// The certificate the server presents, and the negotiated ALPN protocol.
async fn served_cert(
    addr: SocketAddr,
    ca_pem: &str,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Result<(Vec<u8>, Option<Vec<u8>>), std::io::Error> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let stream = connector.connect(name, tcp).await?;
    let (_, conn) = stream.get_ref();
    let cert = conn.peer_certificates().unwrap()[0].as_ref().to_vec();
    Ok((cert, conn.alpn_protocol().map(<[u8]>::to_vec)))
}

fn fixture(file: &str, index: usize) -> serde_json::Value {
    let path = format!("{}/tests/fixtures/{file}", env!("CARGO_MANIFEST_DIR"));
    let recorded: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    recorded["webhook_requests"][index]["body"].clone()
}

#[tokio::test]
async fn serves_admission_over_tls_and_rotates_certificates() {
    backup_webhook::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let cert_path = dir.path().join("tls.crt");
    let key_path = dir.path().join("tls.key");
    let policy_path = dir.path().join("policy.yaml");
    let ca = ca();
    let (c1, k1, der1) = leaf(&ca, "first");
    std::fs::write(&cert_path, &c1).unwrap();
    std::fs::write(&key_path, &k1).unwrap();
    std::fs::write(&policy_path, "snapshotClass: {mode: mutate}\n").unwrap();

    let (policy, text) = backup_webhook::load_policy(&policy_path).unwrap();
    let (reloader, resolver) =
        tls::CertReloader::start(&cert_path, &key_path, Duration::from_secs(3600)).unwrap();
    let config = Arc::new(tls::server_config(resolver).unwrap());
    let app = Arc::new(App::new(policy, "kubectl-backup".into()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(server::serve(
        listener,
        config,
        server::router(app.clone()),
        async move {
            let _ = stop_rx.await;
        },
        Duration::from_secs(5),
    ));
    let reload = tokio::spawn(backup_webhook::reload_loop(
        app.clone(),
        reloader,
        policy_path.clone(),
        text,
        Duration::from_millis(50),
    ));

    // TLS 1.3 and 1.2 both work, HTTP/2 is offered, and the first pair is served.
    let (served, alpn) = served_cert(addr, &ca.pem, &[&rustls::version::TLS13])
        .await
        .unwrap();
    assert_eq!(served, der1);
    assert_eq!(alpn.as_deref(), Some(&b"h2"[..]));
    let (served, _) = served_cert(addr, &ca.pem, &[&rustls::version::TLS12])
        .await
        .unwrap();
    assert_eq!(served, der1);

    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca.pem.as_bytes()).unwrap())
        .build()
        .unwrap();
    let url = |p: &str| format!("https://127.0.0.1:{}{p}", addr.port());

    assert_eq!(
        client.get(url("/healthz")).send().await.unwrap().status(),
        200
    );
    assert_eq!(
        client.get(url("/readyz")).send().await.unwrap().status(),
        503
    );
    app.set_ready(true);
    assert_eq!(
        client.get(url("/readyz")).send().await.unwrap().status(),
        200
    );

    // A recorded VolumeSnapshotClass review gets its Retain patch.
    let review = fixture("admission-volumesnapshotclass-create.json", 0);
    let resp = client
        .post(url("/mutate"))
        .json(&review)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let answer: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(answer["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(answer["response"]["uid"], review["request"]["uid"]);
    assert_eq!(answer["response"]["allowed"], true);
    assert_eq!(answer["response"]["patchType"], "JSONPatch");

    // Malformed bodies get a clear 400, a wrong content type 415.
    let resp = client
        .post(url("/validate"))
        .header("content-type", "application/json")
        .body("{\"kind\": \"AdmissionReview\", ")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let text = resp.text().await.unwrap();
    assert!(text.contains("not a valid AdmissionReview"), "{text}");
    let resp = client
        .post(url("/validate"))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 415);

    // Swap in a new pair: the new certificate is served without a restart.
    let (c2, k2, der2) = leaf(&ca, "second");
    swap(&cert_path, &c2);
    swap(&key_path, &k2);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (served, _) = served_cert(addr, &ca.pem, &[&rustls::version::TLS13])
            .await
            .unwrap();
        if served == der2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the rotated certificate was never served"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A broken pair (key of another certificate) is refused; the second one stays.
    let (c3, _, _) = leaf(&ca, "third");
    let (_, k4, _) = leaf(&ca, "fourth");
    swap(&cert_path, &c3);
    swap(&key_path, &k4);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let metrics = client
            .get(url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if metrics.contains("backup_webhook_reloads_total{file=\"certificate\",result=\"error\"} 1")
        {
            assert!(
                metrics
                    .contains("backup_webhook_reloads_total{file=\"certificate\",result=\"ok\"} 1")
            );
            assert!(
                metrics
                    .contains("backup_webhook_requests_total{endpoint=\"mutate\",code=\"200\"} 1")
            );
            assert!(
                metrics.contains(
                    "backup_webhook_requests_total{endpoint=\"validate\",code=\"400\"} 1"
                )
            );
            assert!(metrics.contains(
                "backup_webhook_decisions_total{endpoint=\"mutate\",policy=\"snapshot-class\",outcome=\"mutated\"} 1"
            ));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the broken pair was never looked at:\n{metrics}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (served, _) = served_cert(addr, &ca.pem, &[&rustls::version::TLS13])
        .await
        .unwrap();
    assert_eq!(served, der2);

    // The policy file is reloaded on change; an invalid one is refused.
    swap(&policy_path, "snapshotClass: {mode: deny}\n");
    let deadline = Instant::now() + Duration::from_secs(10);
    while app.policy().config.snapshot_class.mode != backup_common::policy::Mode::Deny {
        assert!(Instant::now() < deadline, "policy never reloaded");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let resp = client
        .post(url("/validate"))
        .json(&fixture("admission-volumesnapshotclass-create.json", 1))
        .send()
        .await
        .unwrap();
    let answer: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(answer["response"]["allowed"], false);
    assert_eq!(answer["response"]["status"]["code"], 403);
    swap(&policy_path, "snapshotClass: {mode: sometimes}\n");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        app.policy().config.snapshot_class.mode,
        backup_common::policy::Mode::Deny
    );
    assert_ne!(*app.policy(), Policy::default());

    stop_tx.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .unwrap()
        .unwrap();
    reload.abort();
    // The listener is closed after shutdown.
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

//! The `backup-webhook` process as an operator meets it: a bad policy file or
//! certificate stops it at start with a precise message; it becomes ready
//! once the StorageClass cache synced; SIGTERM fails readiness first, then
//! drains and exits 0.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use e2e::cluster::TestCluster;
use e2e::servers::free_port;

/// (CA PEM, cert path, key path) for 127.0.0.1.
fn certs(dir: &Path) -> (String, std::path::PathBuf, std::path::PathBuf) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    let (c, k) = (dir.join("tls.crt"), dir.join("tls.key"));
    std::fs::write(&c, leaf.pem()).unwrap();
    std::fs::write(&k, key.serialize_pem()).unwrap();
    (ca_cert.pem(), c, k)
}

fn webhook(port: u16, cert: &Path, key: &Path, policy: &Path, kubeconfig: &Path) -> Command {
    let mut cmd = Command::new(e2e::bin_path("backup-webhook"));
    cmd.args(["--listen", &format!("127.0.0.1:{port}")])
        .arg("--tls-cert")
        .arg(cert)
        .arg("--tls-key")
        .arg(key)
        .arg("--policy")
        .arg(policy)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(["--namespace", "kubectl-backup", "--shutdown-delay", "1s"]);
    cmd
}

#[tokio::test]
async fn refuses_bad_files_at_start_and_shuts_down_gracefully() {
    let cluster = TestCluster::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    std::fs::create_dir(&a).unwrap();
    std::fs::create_dir(&b).unwrap();
    let (ca, cert, key) = certs(&a);
    let (_, _, other_key) = certs(&b);
    let policy = dir.path().join("policy.yaml");

    // A misspelt level: exit 1, naming the file, the value and the allowed ones.
    std::fs::write(
        &policy,
        "podSecurity:\n  defaults:\n    enforce: {level: privilegd}\n",
    )
    .unwrap();
    let out = webhook(free_port(), &cert, &key, &policy, cluster.kubeconfig())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("policy.yaml") && stderr.contains("privilegd"),
        "{stderr}"
    );
    assert!(stderr.contains("privileged"), "{stderr}");

    // A key that does not belong to the certificate.
    std::fs::write(&policy, "").unwrap();
    let out = webhook(
        free_port(),
        &cert,
        &other_key,
        &policy,
        cluster.kubeconfig(),
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("serving certificate") && stderr.contains("usable pair"),
        "{stderr}"
    );

    let port = free_port();
    let mut child = webhook(port, &cert, &key, &policy, cluster.kubeconfig())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca.as_bytes()).unwrap())
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let readyz = format!("https://127.0.0.1:{port}/readyz");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = client.get(&readyz).send().await
            && r.status() == 200
        {
            break;
        }
        assert!(Instant::now() < deadline, "never became ready");
        assert!(child.try_wait().unwrap().is_none(), "the webhook exited");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let metrics = client
        .get(format!("https://127.0.0.1:{port}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("backup_webhook_ready 1"), "{metrics}");

    // SIGTERM: readiness fails while the listener is still open, then exit 0.
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let mut saw_unready = false;
    let deadline = Instant::now() + Duration::from_secs(20);
    let code = loop {
        if let Some(code) = child.try_wait().unwrap() {
            break code;
        }
        if let Ok(r) = client.get(&readyz).send().await
            && r.status() == 503
        {
            saw_unready = true;
        }
        assert!(Instant::now() < deadline, "did not exit after SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        saw_unready,
        "readiness never failed during the shutdown delay"
    );
    assert!(code.success(), "{code:?}");
    assert!(
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
    );
}

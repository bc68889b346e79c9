//! The harness's real etcd comes up plain and with TLS, answers etcdctl and
//! etcd-client, and refuses clients without a trusted certificate.

use e2e::servers::etcd::EtcdServer;

#[test]
fn plain_member_answers_etcdctl() {
    let etcd = EtcdServer::start();
    let out = etcd.etcdctl().args(["put", "k", "v"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = etcd
        .etcdctl()
        .args(["get", "k", "--print-value-only"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "v");
}

#[tokio::test]
async fn tls_member_requires_a_trusted_client_cert() {
    let etcd = EtcdServer::start_tls();
    let mut client = etcd.client().await.unwrap();
    client.put("k", "v", None).await.unwrap();
    let got = client.get("k", None).await.unwrap();
    assert_eq!(got.kvs()[0].value(), b"v");

    let tls = etcd.tls().unwrap();
    let (_ca, foreign_cert, foreign_key) = tls.foreign();
    let out = std::process::Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={}", etcd.endpoint()))
        .arg(format!("--cacert={}", tls.ca_cert.display()))
        .arg(format!("--cert={}", foreign_cert.display()))
        .arg(format!("--key={}", foreign_key.display()))
        .args(["--command-timeout=3s", "get", "k"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "a foreign client cert was accepted");
}

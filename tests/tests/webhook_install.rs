//! `kubectl backup webhook install|status|uninstall` against the harness
//! cluster, in a throwaway tool namespace: a bad policy is refused before
//! anything is created; install creates the Secret (a certificate for the
//! Service, chaining to the CA injected as caBundle), RBAC, policy ConfigMap,
//! Deployment, Service, PDB and both webhook configurations; a re-install
//! keeps the certificate; status reports it; uninstall removes everything.
//!
//! `--wait=false` because no pod runs on the emulator (and the image is not
//! pulled on a real cluster either); readiness and admission through a
//! running webhook are covered by `webhook_admission.rs`.

use std::path::Path;
use std::process::{Command, Output};

use e2e::cluster::TestCluster;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use kube::Api;
use rustls::client::danger::ServerCertVerifier as _;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

const SHIPPED_POLICY: &str = include_str!("../../manifests/policy.yaml");

fn plugin(kubeconfig: &Path, ns: &str, args: &[&str]) -> Output {
    Command::new(e2e::bin_path("kubectl-backup"))
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(["--tool-namespace", ns])
        .args(args)
        .output()
        .expect("kubectl-backup runs")
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "failed ({:?}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Does `cert_pem` chain to `ca_pem` for `name`?
fn verifies(ca_pem: &[u8], cert_pem: &[u8], name: &str) -> bool {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca_pem).unwrap())
        .unwrap();
    let verifier = rustls::client::WebPkiServerVerifier::builder(roots.into())
        .build()
        .unwrap();
    let leaf = CertificateDer::from_pem_slice(cert_pem).unwrap();
    verifier
        .verify_server_cert(
            &leaf,
            &[],
            &ServerName::try_from(name.to_owned()).unwrap(),
            &[],
            UnixTime::now(),
        )
        .is_ok()
}

#[tokio::test]
async fn install_status_reinstall_uninstall() {
    let cluster = TestCluster::start().await.unwrap();
    let ns = cluster.temp_namespace("wh-install").await.unwrap();
    let kc = cluster.kubeconfig();
    let client = cluster.client().await.unwrap();
    let config_name = format!("backup-webhook-{}", &*ns);
    let role_name = format!("{}:backup-webhook", &*ns);

    // An invalid policy is a usage error (exit 2) and nothing is created.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("policy.yaml");
    std::fs::write(
        &bad,
        "podSecurity:\n  defaults:\n    enforce: {level: privilegd}\n",
    )
    .unwrap();
    let out = plugin(
        kc,
        &ns,
        &["webhook", "install", "--policy", bad.to_str().unwrap()],
    );
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("privilegd") && stderr.contains("privileged"),
        "{stderr}"
    );
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    assert!(
        deployments
            .get_opt("backup-webhook")
            .await
            .unwrap()
            .is_none()
    );

    let out = ok(plugin(
        kc,
        &ns,
        &[
            "webhook",
            "install",
            "--wait=false",
            "--replicas",
            "1",
            "--image",
            "example.invalid/backup-webhook:test",
        ],
    ));
    assert!(
        out.contains(&format!("installed in namespace {}", &*ns)),
        "{out}"
    );

    let secret = Api::<Secret>::namespaced(client.clone(), &ns)
        .get("backup-webhook-tls")
        .await
        .unwrap();
    assert_eq!(secret.type_.as_deref(), Some("kubernetes.io/tls"));
    let data = secret.data.clone().unwrap();
    let ca = data["ca.crt"].0.clone();
    let crt = data["tls.crt"].0.clone();
    assert!(
        data["tls.key"]
            .0
            .starts_with(b"-----BEGIN PRIVATE KEY-----")
    );
    assert!(verifies(&ca, &crt, &format!("backup-webhook.{}.svc", &*ns)));
    assert!(!verifies(&ca, &crt, "backup-webhook.elsewhere.svc"));

    let mutating = Api::<MutatingWebhookConfiguration>::all(client.clone())
        .get(&config_name)
        .await
        .unwrap();
    let hooks = mutating.webhooks.unwrap();
    assert_eq!(hooks.len(), 4);
    for w in &hooks {
        assert_eq!(w.client_config.ca_bundle.as_ref().unwrap().0, ca);
        let svc = w.client_config.service.as_ref().unwrap();
        assert_eq!(
            (svc.name.as_str(), svc.namespace.as_str()),
            ("backup-webhook", &*ns)
        );
        assert_eq!(svc.path.as_deref(), Some("/mutate"));
        assert_eq!(w.failure_policy.as_deref(), Some("Ignore"));
        assert_eq!(w.side_effects, "None");
        assert_eq!(w.reinvocation_policy.as_deref(), Some("IfNeeded"));
    }
    let ns_hook = hooks
        .iter()
        .find(|w| w.name.starts_with("namespaces."))
        .unwrap();
    let excluded = ns_hook
        .namespace_selector
        .as_ref()
        .unwrap()
        .match_expressions
        .as_ref()
        .unwrap()[0]
        .values
        .clone()
        .unwrap();
    assert_eq!(excluded, vec!["kube-system".to_owned(), ns.to_string()]);
    let validating = Api::<ValidatingWebhookConfiguration>::all(client.clone())
        .get(&config_name)
        .await
        .unwrap();
    for w in validating.webhooks.unwrap() {
        assert_eq!(w.failure_policy.as_deref(), Some("Fail"));
        assert_eq!(
            w.client_config.service.unwrap().path.as_deref(),
            Some("/validate")
        );
    }

    let deployment = deployments.get("backup-webhook").await.unwrap();
    let spec = deployment.spec.unwrap();
    assert_eq!(spec.replicas, Some(1));
    let pod = spec.template.spec.unwrap();
    assert_eq!(
        pod.containers[0].image.as_deref(),
        Some("example.invalid/backup-webhook:test")
    );
    assert_eq!(pod.service_account_name.as_deref(), Some("backup-webhook"));
    assert!(
        Api::<Service>::namespaced(client.clone(), &ns)
            .get_opt("backup-webhook")
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        Api::<PodDisruptionBudget>::namespaced(client.clone(), &ns)
            .get_opt("backup-webhook")
            .await
            .unwrap()
            .is_some()
    );
    let binding = Api::<ClusterRoleBinding>::all(client.clone())
        .get(&role_name)
        .await
        .unwrap();
    assert_eq!(
        binding.subjects.unwrap()[0].namespace.as_deref(),
        Some(&*ns)
    );
    assert!(
        Api::<ClusterRole>::all(client.clone())
            .get_opt(&role_name)
            .await
            .unwrap()
            .is_some()
    );
    let cm = Api::<ConfigMap>::namespaced(client.clone(), &ns)
        .get("backup-webhook-policy")
        .await
        .unwrap();
    assert_eq!(cm.data.unwrap()["policy.yaml"], SHIPPED_POLICY);

    // Status: installed, not ready (no pod runs), the certificate and the policy.
    let status: serde_json::Value =
        serde_json::from_str(&ok(plugin(kc, &ns, &["webhook", "status", "-o", "json"]))).unwrap();
    assert_eq!(status["installed"], true);
    assert_eq!(status["ready"], false);
    assert_eq!(status["replicas"], "0/1");
    let days = status["certificateDaysLeft"].as_i64().unwrap();
    assert!((360..=366).contains(&days), "{status}");
    assert!(
        status["policy"]
            .as_str()
            .unwrap()
            .starts_with("snapshotClass=mutate"),
        "{status}"
    );
    assert_eq!(
        status["registered"].as_array().unwrap().len(),
        8,
        "{status}"
    );
    let table = ok(plugin(kc, &ns, &["webhook", "status"]));
    assert!(
        table.contains("Certificate") && table.contains("days left"),
        "{table}"
    );

    // A re-install keeps the still-valid certificate (and the caBundle with it).
    ok(plugin(
        kc,
        &ns,
        &[
            "webhook",
            "install",
            "--wait=false",
            "--image",
            "example.invalid/backup-webhook:test2",
        ],
    ));
    let again = Api::<Secret>::namespaced(client.clone(), &ns)
        .get("backup-webhook-tls")
        .await
        .unwrap();
    assert_eq!(again.data.unwrap()["tls.crt"].0, crt);
    let image = deployments
        .get("backup-webhook")
        .await
        .unwrap()
        .spec
        .unwrap()
        .template
        .spec
        .unwrap()
        .containers[0]
        .image
        .clone();
    assert_eq!(
        image.as_deref(),
        Some("example.invalid/backup-webhook:test2")
    );

    // Uninstall removes everything it created, and only that.
    let out = ok(plugin(kc, &ns, &["webhook", "uninstall"]));
    assert!(out.contains("uninstalled"), "{out}");
    assert!(
        Api::<MutatingWebhookConfiguration>::all(client.clone())
            .get_opt(&config_name)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        Api::<ValidatingWebhookConfiguration>::all(client.clone())
            .get_opt(&config_name)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        deployments
            .get_opt("backup-webhook")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        Api::<Secret>::namespaced(client.clone(), &ns)
            .get_opt("backup-webhook-tls")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        Api::<ClusterRole>::all(client.clone())
            .get_opt(&role_name)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        Api::<ClusterRoleBinding>::all(client.clone())
            .get_opt(&role_name)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        Api::<Namespace>::all(client.clone())
            .get_opt(&ns)
            .await
            .unwrap()
            .is_some()
    );
    let status: serde_json::Value =
        serde_json::from_str(&ok(plugin(kc, &ns, &["webhook", "status", "-o", "json"]))).unwrap();
    assert_eq!(status["installed"], false);
    // Uninstalling twice is fine.
    ok(plugin(kc, &ns, &["webhook", "uninstall"]));
}

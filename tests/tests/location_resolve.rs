//! `location::resolve`, the one call other commands make to turn
//! `--location` into a `Store`, against the harness cluster; and the STS
//! AssumeRole provider against moto with authentication enforced.

use std::sync::Arc;

use e2e::cluster::TestCluster;
use e2e::servers::S3Server;
use kubectl_backup::cli::GlobalArgs;
use kubectl_backup::location::catalog::{self, NamedLocation};
use kubectl_backup::location::spec::{Credentials, LocationSpec, Provider};
use kubectl_backup::location::sts::{AssumeRoleProvider, Error as StsError};
use kubectl_backup::location::{Error, resolve};
use object_store::ObjectStoreExt;
use object_store::aws::AwsCredential;

fn fs_location(name: &str, dir: &std::path::Path, default: bool) -> NamedLocation {
    let mut spec = LocationSpec::new(Provider::Fs);
    spec.path = Some(dir.display().to_string());
    NamedLocation {
        name: name.to_owned(),
        spec,
        credentials: Credentials::default(),
        default,
        created: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resolve_names_urls_and_the_default() {
    kubectl_backup::install_crypto_provider();
    let cluster = TestCluster::start().await.expect("cluster");
    let tool_ns = cluster
        .temp_namespace("loc-resolve")
        .await
        .expect("namespace");
    let client = cluster.client().await.expect("client");
    let dirs = tempfile::tempdir().expect("tempdir");
    let global = GlobalArgs {
        kubeconfig: Some(cluster.kubeconfig().to_owned()),
        context: None,
        tool_namespace: tool_ns.name().to_owned(),
        verbose: 0,
    };

    // (Nothing saved resolves to the local default folder: covered in
    // location_cli.rs, where the plugin's environment can point it at a
    // temp dir.)
    catalog::create(
        &client,
        &global.tool_namespace,
        &fs_location("a", &dirs.path().join("a"), false),
    )
    .await
    .expect("save a");
    catalog::create(
        &client,
        &global.tool_namespace,
        &fs_location("b", &dirs.path().join("b"), false),
    )
    .await
    .expect("save b");
    catalog::set_default(&client, &global.tool_namespace, "b")
        .await
        .expect("default b");

    // By name: the saved location, writing where its spec says.
    let a = resolve(&global, Some("a")).await.expect("resolve a");
    assert_eq!(a.name(), "a");
    a.object_store()
        .put(&a.path("backups/x/backup.json"), "{}".into())
        .await
        .expect("put");
    assert!(dirs.path().join("a/backups/x/backup.json").is_file());

    // Nothing: the default.
    assert_eq!(resolve(&global, None).await.expect("default").name(), "b");

    // A URL: no lookup.
    let url = format!("file://{}", dirs.path().join("adhoc").display());
    assert_eq!(resolve(&global, Some(&url)).await.expect("url").name(), url);

    // Unknown name.
    let err = resolve(&global, Some("missing"))
        .await
        .expect_err("missing");
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    assert!(
        err.to_string().contains("kubectl backup location list"),
        "{err}"
    );

    // An explicitly named cluster that cannot be used is an error, with or
    // without a location name; a URL still works without it.
    let broken = GlobalArgs {
        kubeconfig: Some(dirs.path().join("no-such-kubeconfig")),
        ..global.clone()
    };
    assert!(matches!(
        resolve(&broken, Some("a")).await,
        Err(Error::NoCluster { .. })
    ));
    assert!(matches!(
        resolve(&broken, None).await,
        Err(Error::NoCluster { .. })
    ));
    assert!(resolve(&broken, Some(&url)).await.is_ok());
}

#[tokio::test]
async fn assume_role_caches_credentials_and_reports_refusals() {
    let server = S3Server::start_with_auth().await;
    let role = server.role().expect("role").clone();
    let base = || AwsCredential {
        key_id: server.credentials().access_key_id.clone(),
        secret_key: server.credentials().secret_access_key.clone(),
        token: None,
    };
    let provider = AssumeRoleProvider::new(
        reqwest::Client::new(),
        server.endpoint(),
        server.region(),
        role.role_arn.clone(),
        Some(role.external_id.clone()),
        base(),
    );
    let first = provider.credential().await.expect("assume role");
    assert!(first.key_id.starts_with("ASIA"), "{first:?}");
    assert!(first.token.is_some());
    let second = provider.credential().await.expect("cached");
    assert!(Arc::ptr_eq(&first, &second), "credentials were not cached");

    let wrong_id = AssumeRoleProvider::new(
        reqwest::Client::new(),
        server.endpoint(),
        server.region(),
        role.role_arn.clone(),
        Some("not-the-external-id".to_owned()),
        base(),
    );
    let err = wrong_id.credential().await.expect_err("wrong external id");
    assert!(err.is_access_denied(), "{err}");
    assert!(
        matches!(&err, StsError::Refused { code, .. } if code == "AccessDenied"),
        "{err:?}"
    );

    let mut bad_base = base();
    bad_base.secret_key = "wrong".to_owned();
    let wrong_key = AssumeRoleProvider::new(
        reqwest::Client::new(),
        server.endpoint(),
        server.region(),
        role.role_arn.clone(),
        Some(role.external_id.clone()),
        bad_base,
    );
    let err = wrong_key.credential().await.expect_err("wrong secret");
    assert!(err.is_access_denied(), "{err}");
    assert!(!err.to_string().contains("wrong\""), "{err}");
}

//! `kubectl backup location …` end to end: the built binary against the
//! harness cluster (emulator or `TEST_KUBECONFIG`) and the real object-store
//! servers. Each test keeps its locations in its own tool namespace.

use std::path::{Path, PathBuf};
use std::process::Output;

use e2e::cluster::TestCluster;
use e2e::servers::{AzuriteServer, GcsServer, S3Server, TlsProxy, free_port};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Api, DeleteParams};

/// Runs the plugin with a kubeconfig, a tool namespace and a clean
/// environment (no credentials leaking in from the developer's shell).
struct Plugin {
    kubeconfig: PathBuf,
    tool_namespace: String,
    local_dir: tempfile::TempDir,
}

impl Plugin {
    fn new(cluster: &TestCluster, tool_namespace: &str) -> Plugin {
        Plugin {
            kubeconfig: cluster.kubeconfig().to_owned(),
            tool_namespace: tool_namespace.to_owned(),
            local_dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    async fn run_env(&self, args: &[&str], env: &[(String, String)]) -> Output {
        let mut command = tokio::process::Command::new(e2e::bin_path("kubectl-backup"));
        for (key, _) in std::env::vars() {
            if key.starts_with("AWS_")
                || key.starts_with("AZURE_")
                || key.starts_with("GOOGLE_")
                || key.starts_with("KUBECTL_BACKUP_")
                || key == "KUBECONFIG"
            {
                command.env_remove(key);
            }
        }
        command
            .env("KUBECTL_BACKUP_LOCAL_DIR", self.local_dir.path())
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--tool-namespace")
            .arg(&self.tool_namespace)
            .args(args);
        command.output().await.expect("run kubectl-backup")
    }

    async fn run(&self, args: &[&str]) -> Output {
        self.run_env(args, &[]).await
    }

    /// Run and require success; returns stdout.
    async fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args).await;
        assert!(
            out.status.success(),
            "kubectl backup {} failed ({}):\n{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Run and require failure with `code`; returns stderr.
    async fn fails(&self, args: &[&str], code: i32) -> String {
        let out = self.run(args).await;
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(
            out.status.code(),
            Some(code),
            "kubectl backup {} should exit {code}; stdout:\n{}\nstderr:\n{stderr}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
        );
        stderr
    }
}

/// Deletes the tool namespace when dropped.
struct NamespaceCleanup {
    client: kube::Client,
    name: String,
}

impl Drop for NamespaceCleanup {
    fn drop(&mut self) {
        let client = self.client.clone();
        let name = self.name.clone();
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                let api: Api<Namespace> = Api::all(client);
                let _ = api.delete(&name, &DeleteParams::default()).await;
            });
        })
        .join();
    }
}

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write file");
    path.display().to_string()
}

fn aws_ini(key: &str, secret: &str) -> String {
    format!("[default]\naws_access_key_id = {key}\naws_secret_access_key = {secret}\n")
}

/// Run with owned arguments; require success (`ok`) or exit code 1.
async fn run(plugin: &Plugin, args: Vec<String>, ok: bool) -> String {
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    if ok {
        plugin.ok(&refs).await
    } else {
        plugin.fails(&refs, 1).await
    }
}

async fn setup(prefix: &str) -> (TestCluster, Plugin, NamespaceCleanup) {
    let cluster = TestCluster::start().await.expect("cluster");
    let namespace = unique(prefix);
    let cleanup = NamespaceCleanup {
        client: cluster.client().await.expect("client"),
        name: namespace.clone(),
    };
    let plugin = Plugin::new(&cluster, &namespace);
    (cluster, plugin, cleanup)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locations_are_added_listed_described_validated_and_deleted() {
    let (cluster, plugin, cleanup) = setup("loc-life").await;
    let server = S3Server::start();
    server.create_bucket("lifecycle").await.expect("bucket");
    let files = tempfile::tempdir().expect("tempdir");
    let secret = server.credentials().secret_access_key.clone();
    let creds = write(
        files.path(),
        "aws.ini",
        &aws_ini(&server.credentials().access_key_id, &secret),
    );
    let endpoint = server.endpoint();
    let folder = files.path().join("folder");
    let folder_arg = folder.display().to_string();

    // Nothing saved yet: the default is the local folder.
    let out = plugin.ok(&["location", "validate"]).await;
    let local = format!(
        "location file://{} is usable",
        plugin.local_dir.path().display()
    );
    assert!(out.contains(&local), "{out}");

    let out = plugin
        .ok(&[
            "location",
            "add",
            "s3loc",
            "--provider",
            "aws",
            "--bucket",
            "lifecycle",
            "--endpoint",
            &endpoint,
            "--force-path-style",
            "--prefix",
            "team/a",
            "--credentials-file",
            &creds,
        ])
        .await;
    assert!(
        out.contains("location s3loc added (s3://lifecycle/team/a)"),
        "{out}"
    );
    for step in ["write ok", "read ok", "list ok", "delete ok"] {
        assert!(out.contains(step), "{out}");
    }
    // The tool namespace did not exist: add created it.
    let client = cluster.client().await.expect("client");
    let namespaces: Api<Namespace> = Api::all(client.clone());
    assert!(
        namespaces
            .get_opt(&cleanup.name)
            .await
            .expect("get ns")
            .is_some()
    );

    plugin
        .ok(&[
            "location",
            "add",
            "local",
            "--provider",
            "fs",
            "--path",
            &folder_arg,
            "--default",
        ])
        .await;

    // The Secret holds the settings and the credentials.
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &cleanup.name);
    let stored = secrets.get("backup-location-s3loc").await.expect("secret");
    let data = stored.data.expect("data");
    assert_eq!(data["aws_secret_access_key"].0, secret.as_bytes());
    let config: serde_json::Value =
        serde_json::from_slice(&data["config.json"].0).expect("config.json");
    assert_eq!(config["bucket"], "lifecycle");
    assert_eq!(config["prefix"], "team/a");
    assert!(!String::from_utf8_lossy(&data["config.json"].0).contains(&secret));

    // list: table and JSON, never the secret.
    let table = plugin.ok(&["location", "list"]).await;
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("NAME"), "{table}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("local") && l.contains("fs") && l.contains("yes")),
        "{table}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("s3loc") && l.contains("s3://lifecycle/team/a")),
        "{table}"
    );
    let json = plugin.ok(&["location", "list", "-o", "json"]).await;
    assert!(!json.contains(&secret), "list leaks the secret: {json}");
    let listed: serde_json::Value = serde_json::from_str(&json).expect("json");
    let names: Vec<&str> = listed
        .as_array()
        .expect("array")
        .iter()
        .map(|l| l["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["local", "s3loc"]);

    // describe
    let described = plugin.ok(&["location", "describe", "s3loc"]).await;
    assert!(!described.contains(&secret), "{described}");
    for expected in [
        "Provider:",
        "aws",
        "Endpoint:",
        &endpoint,
        "Request style:",
        "path",
        "Credentials:",
        "access key",
        "aws_secret_access_key",
    ] {
        assert!(
            described.contains(expected),
            "missing {expected:?} in:\n{described}"
        );
    }

    // validate: by name, the default (no argument), and ad-hoc URLs.
    let validated = plugin.ok(&["location", "validate", "s3loc"]).await;
    assert!(
        validated.contains("location s3loc is usable"),
        "{validated}"
    );
    let validated = plugin.ok(&["location", "validate"]).await;
    assert!(
        validated.contains("location local is usable"),
        "{validated}"
    );
    let url_out = plugin
        .run_env(
            &["location", "validate", "s3://lifecycle/adhoc"],
            &server.env(),
        )
        .await;
    assert!(
        url_out.status.success(),
        "{}",
        String::from_utf8_lossy(&url_out.stderr)
    );
    let file_url = format!("file://{}", files.path().join("adhoc").display());
    plugin.ok(&["location", "validate", &file_url]).await;

    // set-default moves the mark.
    plugin.ok(&["location", "set-default", "s3loc"]).await;
    let listed: serde_json::Value =
        serde_json::from_str(&plugin.ok(&["location", "list", "-o", "json"]).await).expect("json");
    let defaults: Vec<&str> = listed
        .as_array()
        .expect("array")
        .iter()
        .filter(|l| l["default"] == true)
        .map(|l| l["name"].as_str().expect("name"))
        .collect();
    assert_eq!(defaults, ["s3loc"]);

    // Adding an existing name is refused, nothing changes.
    let err = plugin
        .fails(
            &[
                "location",
                "add",
                "s3loc",
                "--provider",
                "fs",
                "--path",
                &folder_arg,
            ],
            1,
        )
        .await;
    assert!(err.contains("already exists"), "{err}");

    // delete, twice.
    let out = plugin.ok(&["location", "delete", "local"]).await;
    assert!(out.contains("not touched"), "{out}");
    let err = plugin.fails(&["location", "delete", "local"], 1).await;
    assert!(err.contains("not found"), "{err}");
    let err = plugin.fails(&["location", "validate", "nope"], 1).await;
    assert!(err.contains("not found"), "{err}");
    drop(cleanup);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_refuses_broken_locations_and_says_why() {
    let (_cluster, plugin, _cleanup) = setup("loc-fail").await;
    let server = S3Server::start();
    server.create_bucket("exists").await.expect("bucket");
    let files = tempfile::tempdir().expect("tempdir");
    let creds = write(
        files.path(),
        "aws.ini",
        &aws_ini(
            &server.credentials().access_key_id,
            &server.credentials().secret_access_key,
        ),
    );
    let endpoint = server.endpoint();
    let s3 = |name: &'static str, endpoint: String, bucket: &'static str| {
        let creds = creds.clone();
        move |extra: &[&str]| -> Vec<String> {
            let mut v: Vec<String> = [
                "location",
                "add",
                name,
                "--provider",
                "minio",
                "--bucket",
                bucket,
                "--endpoint",
                &endpoint,
                "--credentials-file",
                &creds,
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            v.extend(extra.iter().map(|s| s.to_string()));
            v
        }
    };

    // Missing bucket.
    let err = run(
        &plugin,
        s3("nobucket", endpoint.clone(), "does-not-exist")(&[]),
        false,
    )
    .await;
    assert!(
        err.contains("the write step failed: bucket missing"),
        "{err}"
    );
    assert!(err.contains("NoSuchBucket"), "{err}");

    // Nothing listens on the endpoint.
    let dead = format!("http://127.0.0.1:{}", free_port());
    let err = run(&plugin, s3("dead", dead, "exists")(&[]), false).await;
    assert!(err.contains("endpoint unreachable"), "{err}");

    // TLS: a CA that did not sign the server's certificate, and no CA at all.
    let proxy = TlsProxy::start(server.port()).await;
    let other_ca = write(files.path(), "other-ca.pem", &TlsProxy::unrelated_ca_pem());
    let err = run(
        &plugin,
        s3("badca", proxy.endpoint(), "exists")(&["--ca-cert", &other_ca]),
        false,
    )
    .await;
    assert!(err.contains("TLS/CA problem"), "{err}");
    assert!(err.contains("--ca-cert"), "{err}");
    let err = run(&plugin, s3("noca", proxy.endpoint(), "exists")(&[]), false).await;
    assert!(err.contains("TLS/CA problem"), "{err}");
    // ... and the right CA works.
    let right_ca = write(files.path(), "ca.pem", proxy.ca_pem());
    let args = s3("goodca", proxy.endpoint(), "exists")(&["--ca-cert", &right_ca]);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    plugin.ok(&refs).await;

    // Azure: missing container, wrong key.
    let azurite = AzuriteServer::start();
    azurite
        .create_container("present")
        .await
        .expect("container");
    let right_key = write(
        files.path(),
        "azure.env",
        &format!("AZURE_STORAGE_ACCOUNT_ACCESS_KEY={}\n", azurite.key()),
    );
    let wrong_key = write(
        files.path(),
        "azure-wrong.env",
        &format!(
            "AZURE_STORAGE_ACCOUNT_ACCESS_KEY={}\n",
            "A".repeat(86) + "=="
        ),
    );
    let azure_endpoint = azurite.endpoint();
    let azure = |name: &str, container: &str, creds: &str| -> Vec<String> {
        [
            "location",
            "add",
            name,
            "--provider",
            "azure",
            "--storage-account",
            azurite.account(),
            "--container",
            container,
            "--endpoint",
            &azure_endpoint,
            "--credentials-file",
            creds,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let err = run(&plugin, azure("az-missing", "absent", &right_key), false).await;
    assert!(err.contains("bucket missing"), "{err}");
    let err = run(&plugin, azure("az-wrongkey", "present", &wrong_key), false).await;
    assert!(err.contains("access denied"), "{err}");
    let args = azure("az-good", "present", &right_key);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    plugin.ok(&refs).await;

    // Bad input is a usage error (exit 2) before anything is contacted.
    let err = plugin
        .fails(
            &[
                "location",
                "add",
                "Bad_Name",
                "--provider",
                "fs",
                "--path",
                "/tmp",
            ],
            2,
        )
        .await;
    assert!(err.contains("invalid location name"), "{err}");
    let err = plugin
        .fails(
            &["location", "add", "x", "--provider", "aws", "--bucket", "b"],
            2,
        )
        .await;
    assert!(err.contains("needs credentials"), "{err}");

    // Only the working locations were saved.
    let listed: serde_json::Value =
        serde_json::from_str(&plugin.ok(&["location", "list", "-o", "json"]).await).expect("json");
    let names: Vec<&str> = listed
        .as_array()
        .expect("array")
        .iter()
        .map(|l| l["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["az-good", "goodca"]);

    // validate re-checks a saved location and explains the same way.
    let args = s3("unchecked", endpoint.clone(), "does-not-exist")(&["--skip-validation"]);
    run(&plugin, args, true).await;
    let err = plugin
        .fails(&["location", "validate", "unchecked"], 1)
        .await;
    assert!(
        err.contains("location unchecked cannot be used: the write step failed: bucket missing"),
        "{err}"
    );
    let report = plugin
        .ok(&["location", "validate", "az-good", "-o", "json"])
        .await;
    let report: serde_json::Value = serde_json::from_str(&report).expect("json");
    assert_eq!(report["location"], "az-good");
    let steps: Vec<&str> = report["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| s["step"].as_str().expect("step"))
        .collect();
    assert_eq!(steps, ["write", "read", "list", "delete"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enforced_auth_refuses_wrong_keys_and_external_ids() {
    let (_cluster, plugin, _cleanup) = setup("loc-auth").await;
    let server = S3Server::start_with_auth().await;
    server.create_bucket("secure").await.expect("bucket");
    let role = server.role().expect("role").clone();
    let files = tempfile::tempdir().expect("tempdir");
    let key = server.credentials().access_key_id.clone();
    let good = write(
        files.path(),
        "good.ini",
        &aws_ini(&key, &server.credentials().secret_access_key),
    );
    let bad = write(files.path(), "bad.ini", &aws_ini(&key, "not-the-secret"));
    let endpoint = server.endpoint();
    let add = |name: &str, creds: &str, extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = [
            "location",
            "add",
            name,
            "--provider",
            "aws",
            "--bucket",
            "secure",
            "--endpoint",
            &endpoint,
            "--force-path-style",
            "--credentials-file",
            creds,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };

    let err = run(&plugin, add("wrongsecret", &bad, &[]), false).await;
    assert!(
        err.contains("the write step failed: access denied"),
        "{err}"
    );
    assert!(err.contains("SignatureDoesNotMatch"), "{err}");
    assert!(
        !err.contains("not-the-secret"),
        "the secret is printed: {err}"
    );

    let err = run(
        &plugin,
        add(
            "wrongext",
            &good,
            &["--role-arn", &role.role_arn, "--external-id", "not-the-id"],
        ),
        false,
    )
    .await;
    assert!(err.contains("access denied"), "{err}");
    assert!(err.contains("STS AssumeRole"), "{err}");

    let out = run(
        &plugin,
        add(
            "viarole",
            &good,
            &[
                "--role-arn",
                &role.role_arn,
                "--external-id",
                &role.external_id,
            ],
        ),
        true,
    )
    .await;
    assert!(out.contains("delete ok"), "{out}");
    let described = plugin.ok(&["location", "describe", "viarole"]).await;
    assert!(
        described.contains(&format!("assume role {} with external id", role.role_arn)),
        "{described}"
    );
    assert!(!described.contains(&role.external_id), "{described}");

    run(&plugin, add("static", &good, &[]), true).await;
    plugin.ok(&["location", "validate", "viarole"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gcs_location_is_configured_but_cannot_be_written_to_on_fake_gcs() {
    let (_cluster, plugin, _cleanup) = setup("loc-gcs").await;
    let server = GcsServer::start();
    server.create_bucket("gbucket").await.expect("bucket");
    let files = tempfile::tempdir().expect("tempdir");
    let key = write(files.path(), "sa.json", &server.service_account_json());

    // Validation really talks to the server and fails at the first write:
    // object_store writes through the XML API fake-gcs-server lacks.
    let err = plugin
        .fails(
            &[
                "location",
                "add",
                "gcs",
                "--provider",
                "gcs",
                "--bucket",
                "gbucket",
                "--credentials-file",
                &key,
            ],
            1,
        )
        .await;
    assert!(err.contains("the write step failed"), "{err}");

    let out = plugin
        .ok(&[
            "location",
            "add",
            "gcs",
            "--provider",
            "gcs",
            "--bucket",
            "gbucket",
            "--credentials-file",
            &key,
            "--skip-validation",
        ])
        .await;
    assert!(out.contains("not validated"), "{out}");
    let described = plugin.ok(&["location", "describe", "gcs"]).await;
    assert!(described.contains("gs://gbucket"), "{described}");
    assert!(described.contains("service account key"), "{described}");
    assert!(!described.contains("private_key\""), "{described}");

    let err = plugin
        .fails(
            &[
                "location",
                "add",
                "gcs2",
                "--provider",
                "gcs",
                "--bucket",
                "gbucket",
            ],
            2,
        )
        .await;
    assert!(err.contains("service-account"), "{err}");
}

/// Web identity without its environment is refused with the variables to
/// set. The successful path is not exercised here: object_store sends
/// AssumeRoleWithWebIdentity unsigned, and moto's single-port server routes
/// unsigned requests to S3, not STS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_identity_needs_its_environment() {
    let (_cluster, plugin, _cleanup) = setup("loc-irsa").await;
    let err = plugin
        .fails(
            &[
                "location",
                "add",
                "irsa",
                "--provider",
                "aws",
                "--bucket",
                "irsa",
                "--web-identity",
            ],
            1,
        )
        .await;
    assert!(err.contains("AWS_WEB_IDENTITY_TOKEN_FILE"), "{err}");
    assert!(err.contains("AWS_ROLE_ARN"), "{err}");
}

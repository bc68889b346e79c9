//! Scheduled backups end to end: the built `kubectl-backup` creates every
//! kind of schedule against the harness cluster, and the objects the cluster
//! receives are checked; then a run is executed exactly as the CronJob's pod
//! would execute it (its command and arguments read back from the CronJob,
//! in-cluster environment, a ServiceAccount token), and the backup it took,
//! its name and expiry, and the pruning of an expired backup are checked.
//!
//! The harness has no kubelet, so nothing runs the CronJob by itself: the
//! test plays the pod. Each test works in its own tool namespace (a
//! [`TempNamespace`]) and removes the cluster-scoped RBAC it made.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

use base64::Engine as _;
use e2e::cluster::{TempNamespace, TestCluster};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{ConfigMap, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::{Value, json};

const SA: &str = "kubectl-backup-scheduler";

/// One test's world: a cluster, a tool namespace, a folder location.
struct World {
    cluster: TestCluster,
    tool_ns: TempNamespace,
    dir: tempfile::TempDir,
}

impl World {
    async fn new() -> World {
        let cluster = TestCluster::start().await.expect("test cluster");
        let tool_ns = cluster.temp_namespace("kb-sched").await.expect("tool ns");
        World {
            cluster,
            tool_ns,
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    fn location(&self) -> String {
        format!("file://{}", self.dir.path().join("store").display())
    }

    fn store_dir(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    /// `kubectl-backup --kubeconfig K --tool-namespace NS ARGS...` as a user runs it.
    fn kb(&self, args: &[&str]) -> Output {
        let out = Command::new(e2e::bin_path("kubectl-backup"))
            .arg("--kubeconfig")
            .arg(self.cluster.kubeconfig())
            .arg("--tool-namespace")
            .arg(self.tool_ns.name())
            .args(args)
            .env("KUBECTL_BACKUP_LOCAL_DIR", self.dir.path().join("default"))
            .output()
            .expect("run kubectl-backup");
        eprintln!(
            "$ kubectl-backup {}\n{}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    fn kb_ok(&self, args: &[&str]) -> String {
        let out = self.kb(args);
        assert!(out.status.success(), "kubectl-backup {args:?} failed");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    async fn client(&self) -> kube::Client {
        self.cluster.client().await.expect("client")
    }

    async fn cron_job(&self, name: &str) -> Option<CronJob> {
        Api::<CronJob>::namespaced(self.client().await, self.tool_ns.name())
            .get_opt(&format!("schedule-{name}"))
            .await
            .expect("get CronJob")
    }

    async fn config_map(&self, name: &str) -> Option<ConfigMap> {
        Api::<ConfigMap>::namespaced(self.client().await, self.tool_ns.name())
            .get_opt(&format!("schedule-{name}"))
            .await
            .expect("get ConfigMap")
    }

    async fn stored_config(&self, name: &str) -> Value {
        let cm = self.config_map(name).await.expect("ConfigMap exists");
        let text = &cm.data.expect("data")["schedule.json"];
        serde_json::from_str(text).expect("schedule.json is JSON")
    }

    async fn last_run(&self, name: &str) -> Option<Value> {
        let cm = self.config_map(name).await?;
        let text = cm.data?.get("last-run.json")?.clone();
        serde_json::from_str(&text).ok()
    }

    fn cluster_role_name(&self) -> String {
        format!("{SA}-{}", self.tool_ns.name())
    }

    /// The backups in the folder location: name → manifest.
    fn backups(&self) -> Vec<(String, Value)> {
        let dir = self.store_dir().join("backups");
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Ok(text) = std::fs::read_to_string(entry.path().join("backup.json")) {
                out.push((name, serde_json::from_str(&text).expect("manifest JSON")));
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }
}

impl Drop for World {
    fn drop(&mut self) {
        // Cluster-scoped objects outlive the namespace: remove them.
        let kubeconfig = self.cluster.kubeconfig().to_path_buf();
        let name = self.cluster_role_name();
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                if let Ok(client) = e2e::cluster::client_for(&kubeconfig).await {
                    let dp = DeleteParams::default();
                    let _ = Api::<ClusterRoleBinding>::all(client.clone())
                        .delete(&name, &dp)
                        .await;
                    let _ = Api::<ClusterRole>::all(client).delete(&name, &dp).await;
                }
            });
        })
        .join();
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn pod_spec(cj: &CronJob) -> k8s_openapi::api::core::v1::PodSpec {
    cj.spec
        .as_ref()
        .and_then(|s| s.job_template.spec.as_ref())
        .and_then(|j| j.template.spec.clone())
        .expect("CronJob has a pod template")
}

#[tokio::test]
async fn every_kind_of_schedule_lands_as_cronjob_configmap_and_rbac() {
    let w = World::new().await;
    let location = w.location();
    // (name, flags, expected cron, expected time zone, suspended)
    type Case<'a> = (&'a str, &'a [&'a str], &'a str, Option<&'a str>, bool);
    let cases: [Case; 6] = [
        ("weekly", &["--preset", "weekly"], "0 0 * * 0", None, false),
        (
            "biweekly",
            &["--preset", "biweekly"],
            "0 0 * * 0",
            None,
            false,
        ),
        (
            "monthly",
            &["--preset", "monthly"],
            "0 0 1 * *",
            None,
            false,
        ),
        (
            "bimonthly",
            &["--preset", "bimonthly", "--timezone", "Europe/Berlin"],
            "0 0 1 */2 *",
            Some("Europe/Berlin"),
            false,
        ),
        ("never", &["--preset", "never"], "0 0 30 2 *", None, true),
        (
            "custom",
            &[
                "--cron",
                "30 2 * * MON-FRI",
                "--timezone",
                "America/New_York",
            ],
            "30 2 * * MON-FRI",
            Some("America/New_York"),
            false,
        ),
    ];
    for (name, when, _, _, _) in &cases {
        let mut args = vec![
            "schedule",
            "create",
            name,
            "--location",
            &location,
            "--ttl",
            "90d",
            "--include-namespaces",
            "shop,web-*",
            "--cluster-resources",
            "never",
            "--image",
            "registry.example/kubectl-backup:test",
        ];
        args.extend_from_slice(when);
        w.kb_ok(&args);
    }

    for (name, _, cron, tz, suspended) in &cases {
        let cj = w.cron_job(name).await.expect("CronJob created");
        let spec = cj.spec.clone().expect("spec");
        assert_eq!(spec.schedule, *cron, "{name}");
        assert_eq!(spec.time_zone.as_deref(), *tz, "{name}");
        assert_eq!(spec.suspend, Some(*suspended), "{name}");
        assert_eq!(spec.concurrency_policy.as_deref(), Some("Forbid"), "{name}");
        assert_eq!(spec.successful_jobs_history_limit, Some(3));
        assert_eq!(spec.failed_jobs_history_limit, Some(3));
        let job_spec = spec.job_template.spec.clone().expect("job spec");
        assert!(job_spec.pod_failure_policy.is_some(), "{name}");
        let labels = cj.metadata.labels.clone().expect("labels");
        assert_eq!(labels["kubectl-backup.dev/schedule-name"], *name);
        assert_eq!(labels["app.kubernetes.io/component"], "backup-schedule");
        let pod = pod_spec(&cj);
        assert_eq!(pod.service_account_name.as_deref(), Some(SA));
        let c = &pod.containers[0];
        assert_eq!(
            c.image.as_deref(),
            Some("registry.example/kubectl-backup:test")
        );
        assert_eq!(c.command.clone().expect("command"), ["kubectl-backup"]);
        assert_eq!(
            c.args.clone().expect("args"),
            [
                "create",
                "--from-schedule",
                name,
                "--tool-namespace",
                w.tool_ns.name(),
                "--v",
                "2"
            ]
        );

        let cfg = w.stored_config(name).await;
        assert_eq!(cfg["name"], *name);
        assert_eq!(cfg["cron"], *cron);
        assert_eq!(cfg["location"], location.as_str());
        assert_eq!(cfg["prefix"], *name, "the prefix defaults to the name");
        assert_eq!(cfg["ttlSeconds"], 90 * 86_400);
        assert_eq!(cfg["backup"]["includeNamespaces"], json!(["shop", "web-*"]));
        assert_eq!(cfg["backup"]["clusterResources"], "never");
        assert_eq!(cfg["backup"]["ttlSeconds"], 90 * 86_400);
    }
    assert_eq!(w.stored_config("weekly").await["preset"], "weekly");
    assert_eq!(w.stored_config("custom").await["preset"], Value::Null);

    // RBAC: a ServiceAccount that reads everything and writes little.
    let client = w.client().await;
    let ns = w.tool_ns.name();
    Api::<ServiceAccount>::namespaced(client.clone(), ns)
        .get(SA)
        .await
        .expect("ServiceAccount");
    let cr = Api::<ClusterRole>::all(client.clone())
        .get(&w.cluster_role_name())
        .await
        .expect("ClusterRole");
    let rules = cr.rules.expect("rules");
    assert!(rules.iter().any(|r| {
        r.api_groups.as_deref() == Some(&["*".to_owned()][..])
            && r.resources.as_deref() == Some(&["*".to_owned()][..])
            && r.verbs == ["get", "list", "watch"]
    }));
    assert!(rules.iter().any(|r| {
        r.resources.as_deref() == Some(&["volumesnapshots".to_owned()][..])
            && r.verbs.contains(&"create".to_owned())
    }));
    let crb = Api::<ClusterRoleBinding>::all(client.clone())
        .get(&w.cluster_role_name())
        .await
        .expect("ClusterRoleBinding");
    assert_eq!(crb.role_ref.name, w.cluster_role_name());
    let subject = &crb.subjects.expect("subjects")[0];
    assert_eq!(
        (
            subject.kind.as_str(),
            subject.name.as_str(),
            subject.namespace.as_deref()
        ),
        ("ServiceAccount", SA, Some(ns))
    );
    let role = Api::<Role>::namespaced(client.clone(), ns)
        .get(SA)
        .await
        .expect("Role");
    let role_rules = role.rules.expect("rules");
    assert!(
        role_rules.iter().any(|r| r
            .resources
            .as_deref()
            .is_some_and(|res| res.contains(&"configmaps".to_owned())
                && r.verbs.contains(&"patch".to_owned())))
    );
    Api::<RoleBinding>::namespaced(client.clone(), ns)
        .get(SA)
        .await
        .expect("RoleBinding");

    // list: words, cron, location, TTL, next run, paused.
    let table = w.kb_ok(&["schedule", "list"]);
    for header in [
        "NAME",
        "SCHEDULE",
        "CRON",
        "LOCATION",
        "TTL",
        "LAST RUN",
        "LAST RESULT",
        "NEXT RUN",
        "PAUSED",
    ] {
        assert!(table.contains(header), "{header} in\n{table}");
    }
    assert!(
        table.contains("every week on Sunday at midnight"),
        "{table}"
    );
    assert!(table.contains("every two months on the 1st at midnight (Europe/Berlin)"));
    assert!(table.contains("at 02:30 on Monday to Friday (America/New_York)"));
    let listed: Vec<Value> =
        serde_json::from_str(&w.kb_ok(&["schedule", "list", "-o", "json"])).expect("json");
    assert_eq!(listed.len(), cases.len());
    for s in &listed {
        let never = s["name"] == "never";
        assert_eq!(s["paused"], never, "{s}");
        assert_eq!(s["nextRun"].is_null(), never, "{s}");
        assert_eq!(s["ttl"], "90d");
    }

    // pause / resume toggle suspend; `never` cannot be resumed.
    w.kb_ok(&["schedule", "pause", "weekly"]);
    assert_eq!(
        w.cron_job("weekly").await.and_then(|c| c.spec?.suspend),
        Some(true)
    );
    w.kb_ok(&["schedule", "resume", "weekly"]);
    assert_eq!(
        w.cron_job("weekly").await.and_then(|c| c.spec?.suspend),
        Some(false)
    );
    let out = w.kb(&["schedule", "resume", "never"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("schedule run never"),
        "{}",
        stderr(&out)
    );

    // A second schedule of the same name is refused.
    let out = w.kb(&["schedule", "create", "weekly", "--preset", "monthly"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("already exists"));
    assert_eq!(
        w.cron_job("weekly")
            .await
            .expect("kept")
            .spec
            .expect("spec")
            .schedule,
        "0 0 * * 0"
    );

    // An unknown schedule is named, with the ones that exist.
    let out = w.kb(&["schedule", "describe", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("schedule \"nope\" not found"));
    assert!(
        stderr(&out).contains("bimonthly, biweekly, custom"),
        "{}",
        stderr(&out)
    );

    // delete removes CronJob and ConfigMap, says the backups stay; the last
    // one takes the shared RBAC with it.
    for (name, ..) in &cases {
        let text = w.kb_ok(&["schedule", "delete", name]);
        assert!(text.contains("deleted"), "{text}");
        assert!(
            text.contains("no backups") || text.contains("kept"),
            "{text}"
        );
        assert!(w.cron_job(name).await.is_none());
        assert!(w.config_map(name).await.is_none());
    }
    assert!(
        Api::<ClusterRole>::all(client.clone())
            .get_opt(&w.cluster_role_name())
            .await
            .expect("get")
            .is_none()
    );
    assert!(
        Api::<ServiceAccount>::namespaced(client, ns)
            .get_opt(SA)
            .await
            .expect("get")
            .is_none()
    );
}

#[tokio::test]
async fn invalid_schedules_are_refused_with_the_reason() {
    let w = World::new().await;
    let cases: [(&[&str], &str); 6] = [
        (&["--cron", "0 25 * * *"], "above the maximum 23"),
        (&["--cron", "0 0 * * 7"], "Sunday is 0"),
        (&["--cron", "0 0 * *"], "expected 5 fields"),
        (&["--cron", "0 0 31 2 *"], "never fires"),
        (
            &["--preset", "weekly", "--timezone", "europe/berlin"],
            "did you mean Europe/Berlin",
        ),
        (&["--preset", "weekly", "--ttl", "soon"], "invalid TTL"),
    ];
    for (args, expected) in cases {
        let mut argv = vec!["schedule", "create", "bad"];
        argv.extend_from_slice(args);
        let out = w.kb(&argv);
        assert_eq!(out.status.code(), Some(2), "{argv:?}");
        let err = stderr(&out);
        assert!(err.contains(expected), "{argv:?}: {err}");
    }
    // The caret points at the offending field.
    let err = stderr(&w.kb(&["schedule", "create", "bad", "--cron", "0 25 * * *"]));
    assert!(err.contains("0 25 * * *\n      ^^"), "{err}");
    assert!(w.cron_job("bad").await.is_none());
    assert!(w.config_map("bad").await.is_none());

    // --help lists the presets.
    let help = w.kb_ok(&["schedule", "create", "--help"]);
    for preset in ["weekly", "biweekly", "monthly", "bimonthly", "never"] {
        assert!(help.contains(preset), "{preset} in help");
    }
    assert!(help.contains("every two weeks on Sunday at midnight"));
    assert!(help.contains("13 days"));
}

/// The in-cluster environment of the CronJob's pod, pointing at the harness:
/// `KUBERNETES_SERVICE_HOST/PORT` from the kubeconfig's server, and a
/// ServiceAccount directory with `token`, `ca.crt` and `namespace`.
struct PodEnv {
    _dir: tempfile::TempDir,
    vars: Vec<(String, String)>,
    home: PathBuf,
}

async fn pod_env(w: &World) -> PodEnv {
    let kc = kube::config::Kubeconfig::read_from(w.cluster.kubeconfig()).expect("kubeconfig");
    let context_name = kc.current_context.clone().expect("current context");
    let context = kc
        .contexts
        .iter()
        .find(|c| c.name == context_name)
        .and_then(|c| c.context.clone())
        .expect("context");
    let cluster = kc
        .clusters
        .iter()
        .find(|c| c.name == context.cluster)
        .and_then(|c| c.cluster.clone())
        .expect("cluster");
    let server = url::Url::parse(cluster.server.as_deref().expect("server")).expect("server URL");
    let ca = match (
        &cluster.certificate_authority_data,
        &cluster.certificate_authority,
    ) {
        (Some(data), _) => base64::engine::general_purpose::STANDARD
            .decode(data)
            .expect("CA data"),
        (None, Some(path)) => std::fs::read(path).expect("CA file"),
        (None, None) => panic!("the harness kubeconfig has no CA"),
    };
    let token = service_account_token(w, &kc, context.user.as_deref()).await;

    let dir = tempfile::tempdir().expect("tempdir");
    let sa = dir.path().join("serviceaccount");
    std::fs::create_dir(&sa).expect("mkdir");
    std::fs::write(sa.join("token"), token).expect("token");
    std::fs::write(sa.join("ca.crt"), ca).expect("ca");
    std::fs::write(sa.join("namespace"), w.tool_ns.name()).expect("namespace");
    let home = dir.path().join("home");
    std::fs::create_dir(&home).expect("home");
    let vars = vec![
        (
            "KUBERNETES_SERVICE_HOST".to_owned(),
            server.host_str().expect("host").to_owned(),
        ),
        (
            "KUBERNETES_SERVICE_PORT".to_owned(),
            server.port_or_known_default().expect("port").to_string(),
        ),
        (
            "KUBECTL_BACKUP_SERVICEACCOUNT_DIR".to_owned(),
            sa.display().to_string(),
        ),
    ];
    PodEnv {
        _dir: dir,
        vars,
        home,
    }
}

/// A token for the schedules' ServiceAccount through the TokenRequest API
/// (so a real cluster's RBAC is exercised), or, where that API is not
/// served (the emulator, which accepts one bearer token), the harness's own.
async fn service_account_token(
    w: &World,
    kc: &kube::config::Kubeconfig,
    user: Option<&str>,
) -> String {
    let api: Api<ServiceAccount> = Api::namespaced(w.client().await, w.tool_ns.name());
    let request = json!({
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": { "expirationSeconds": 3600 },
    });
    match api
        .create_subresource::<Value, Value>("token", SA, &PostParams::default(), &request)
        .await
    {
        Ok(v) if v["status"]["token"].is_string() => {
            return v["status"]["token"].as_str().unwrap_or_default().to_owned();
        }
        Ok(v) => eprintln!("TokenRequest answered without a token: {v}"),
        Err(e) => eprintln!("TokenRequest not available ({e}); using the harness token"),
    }
    // kube's Kubeconfig keeps tokens secret; read the file itself.
    let text = std::fs::read_to_string(w.cluster.kubeconfig()).expect("kubeconfig");
    let yaml: serde_yaml::Value = serde_yaml::from_str(&text).expect("kubeconfig YAML");
    let _ = kc;
    yaml["users"]
        .as_sequence()
        .into_iter()
        .flatten()
        .find(|u| u["name"].as_str() == user)
        .and_then(|u| u["user"]["token"].as_str())
        .map(str::to_owned)
        .expect("the harness kubeconfig carries a bearer token")
}

/// Run the CronJob's container command as its pod would: the command and
/// arguments read back from the cluster's CronJob, the pod's environment,
/// no kubeconfig anywhere.
async fn run_as_cron_job(w: &World, name: &str, env: &PodEnv) -> Output {
    let cj = w.cron_job(name).await.expect("CronJob");
    let c = pod_spec(&cj).containers[0].clone();
    assert_eq!(c.command.clone().expect("command"), ["kubectl-backup"]);
    let mut cmd = Command::new(e2e::bin_path("kubectl-backup"));
    cmd.args(c.args.clone().expect("args"))
        .env_remove("KUBECONFIG")
        .env_remove("KUBECTL_BACKUP_NAMESPACE")
        .env("HOME", &env.home);
    for e in c.env.clone().unwrap_or_default() {
        cmd.env(e.name, e.value.unwrap_or_default());
    }
    for (k, v) in &env.vars {
        cmd.env(k, v);
    }
    // The container's TMPDIR is an emptyDir; here, a temp dir.
    cmd.env("TMPDIR", env.home.as_os_str());
    let out = cmd.output().expect("run the CronJob's command");
    eprintln!(
        "$ [pod] kubectl-backup {}\n{}{}",
        c.args.unwrap_or_default().join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn is_timestamped(name: &str, prefix: &str) -> bool {
    name.strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('-'))
        .is_some_and(|stamp| stamp.len() == 14 && stamp.bytes().all(|b| b.is_ascii_digit()))
}

fn parse_time(v: &Value) -> chrono::DateTime<chrono::Utc> {
    v.as_str()
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&chrono::Utc))
        .unwrap_or_else(|| panic!("not a timestamp: {v}"))
}

#[tokio::test]
async fn a_scheduled_run_backs_up_names_expires_and_prunes() {
    let w = World::new().await;
    let workload = w.cluster.temp_namespace("kb-shop").await.expect("ns");
    let client = w.client().await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), workload.name());
    cms.create(
        &PostParams::default(),
        &serde_json::from_value(json!({
            "metadata": { "name": "settings" },
            "data": { "colour": "blue" },
        }))
        .expect("cm"),
    )
    .await
    .expect("create ConfigMap");
    let location = w.location();

    // An older backup that has already expired, taken by hand.
    w.kb_ok(&[
        "create",
        "old-manual",
        "--location",
        &location,
        "--include-namespaces",
        workload.name(),
        "--ttl",
        "1s",
    ]);
    tokio::time::sleep(Duration::from_millis(1500)).await;

    w.kb_ok(&[
        "schedule",
        "create",
        "nightly",
        "--cron",
        "0 3 * * *",
        "--prefix",
        "shop",
        "--location",
        &location,
        "--include-namespaces",
        workload.name(),
        "--ttl",
        "90d",
    ]);

    let env = pod_env(&w).await;
    let before = chrono::Utc::now();
    let out = run_as_cron_job(&w, "nightly", &env).await;
    assert!(out.status.success(), "the scheduled run failed");
    assert!(stderr(&out).contains("pruned expired backup old-manual"));

    let backups = w.backups();
    let names: Vec<&str> = backups.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names.len(),
        1,
        "old-manual is pruned, one new backup: {names:?}"
    );
    let (name, manifest) = &backups[0];
    assert!(is_timestamped(name, "shop"), "{name}");
    assert_eq!(manifest["phase"], "Completed");
    assert_eq!(manifest["schedule"], "nightly");
    assert_eq!(
        manifest["options"]["includeNamespaces"],
        json!([workload.name()])
    );
    let started = parse_time(&manifest["startedAt"]);
    assert!(started >= before - chrono::Duration::seconds(1));
    // The name is the start time in UTC, to the second.
    assert_eq!(
        &name["shop-".len()..],
        started.format("%Y%m%d%H%M%S").to_string()
    );
    assert_eq!(
        parse_time(&manifest["expiresAt"]) - started,
        chrono::Duration::days(90)
    );
    let configmaps = &manifest["resources"]["configmaps"]["items"];
    assert!(configmaps.as_u64().is_some_and(|n| n >= 1), "{manifest}");

    // The run recorded itself for `schedule list`.
    let last = w.last_run("nightly").await.expect("last run recorded");
    assert_eq!(last["result"], "Completed");
    assert_eq!(last["backup"], name.as_str());
    let listed: Vec<Value> =
        serde_json::from_str(&w.kb_ok(&["schedule", "list", "-o", "json"])).expect("json");
    assert_eq!(listed[0]["lastResult"], "Completed");
    assert_eq!(listed[0]["lastBackup"], name.as_str());
    // describe shows the backups it produced.
    let described = w.kb_ok(&["schedule", "describe", "nightly"]);
    assert!(described.contains("Backups produced:"), "{described}");
    assert!(described.contains(name.as_str()), "{described}");
    assert!(described.contains("at 03:00 every day"), "{described}");
    assert!(described.contains("removed by the run of"), "{described}");

    // delete keeps the backup and says so.
    let text = w.kb_ok(&["schedule", "delete", "nightly"]);
    assert!(
        text.contains("1 backup(s)") && text.contains("kept"),
        "{text}"
    );
    assert_eq!(w.backups().len(), 1);
}

#[tokio::test]
async fn biweekly_runs_skip_while_the_last_backup_is_younger_than_13_days() {
    let w = World::new().await;
    let workload = w.cluster.temp_namespace("kb-bi").await.expect("ns");
    let location = w.location();
    w.kb_ok(&[
        "schedule",
        "create",
        "fortnightly",
        "--preset",
        "biweekly",
        "--location",
        &location,
        "--include-namespaces",
        workload.name(),
    ]);
    let env = pod_env(&w).await;
    let first = run_as_cron_job(&w, "fortnightly", &env).await;
    assert!(first.status.success());
    assert_eq!(w.backups().len(), 1);
    tokio::time::sleep(Duration::from_millis(1100)).await;

    let second = run_as_cron_job(&w, "fortnightly", &env).await;
    assert!(second.status.success(), "a skipped run is not a failure");
    assert!(
        stderr(&second).contains("skipped by the two-week rule"),
        "{}",
        stderr(&second)
    );
    assert_eq!(w.backups().len(), 1, "no second backup within two weeks");
    let last = w.last_run("fortnightly").await.expect("recorded");
    assert_eq!(last["result"], "Skipped");
    // The next backup is two weeks after the first, on a Sunday.
    let listed: Vec<Value> =
        serde_json::from_str(&w.kb_ok(&["schedule", "list", "-o", "json"])).expect("json");
    let next = parse_time(&listed[0]["nextRun"]);
    let first_started = parse_time(&w.backups()[0].1["startedAt"]);
    assert!(next - first_started >= chrono::Duration::days(13), "{next}");
    assert!(next - first_started <= chrono::Duration::days(21), "{next}");
    assert_eq!(next.format("%a %H:%M").to_string(), "Sun 00:00");

    // --delete-backups takes the schedule's backups with it.
    let text = w.kb_ok(&["schedule", "delete", "fortnightly", "--delete-backups"]);
    assert!(text.contains("deleted its 1 backup(s)"), "{text}");
    assert!(w.backups().is_empty());
}

#[tokio::test]
async fn schedule_run_starts_a_job_and_says_when_it_cannot_finish() {
    let w = World::new().await;
    w.kb_ok(&[
        "schedule",
        "create",
        "adhoc",
        "--preset",
        "never",
        "--location",
        &w.location(),
    ]);
    let out = w.kb(&["schedule", "run", "adhoc", "--timeout", "4s"]);
    let err = stderr(&out);
    let jobs = Api::<Job>::namespaced(w.client().await, w.tool_ns.name())
        .list(&Default::default())
        .await
        .expect("list Jobs")
        .items;
    assert_eq!(jobs.len(), 1, "one Job started");
    let job = &jobs[0];
    let job_name = job.metadata.name.clone().expect("name");
    assert!(job_name.starts_with("schedule-adhoc-run-"), "{job_name}");
    assert_eq!(
        job.metadata.annotations.as_ref().expect("annotations")["cronjob.kubernetes.io/instantiate"],
        "manual"
    );
    let owner = &job.metadata.owner_references.as_ref().expect("owner")[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("CronJob", "schedule-adhoc")
    );
    if w.cluster.is_external() {
        // A real cluster may really run it (if the image exists).
        return;
    }
    // Nothing runs pods in the harness: the run is reported as stuck.
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("did not finish within 4s"), "{err}");
    assert!(err.contains("no pod was ever created"), "{err}");
    assert!(err.contains(&format!(
        "kubectl -n {} get job {job_name}",
        w.tool_ns.name()
    )));
}

#[tokio::test]
async fn without_location_the_default_named_location_is_pinned_and_used_in_the_pod() {
    let w = World::new().await;
    let workload = w.cluster.temp_namespace("kb-lab").await.expect("ns");
    let folder = w.dir.path().join("lab");
    w.kb_ok(&[
        "location",
        "add",
        "lab",
        "--provider",
        "fs",
        "--path",
        &folder.display().to_string(),
        "--default",
    ]);
    w.kb_ok(&[
        "schedule",
        "create",
        "weekly-lab",
        "--preset",
        "weekly",
        "--include-namespaces",
        workload.name(),
    ]);
    // The default location is pinned by name, so changing the default later
    // does not move the schedule.
    assert_eq!(w.stored_config("weekly-lab").await["location"], "lab");

    // In the pod the name is resolved through the API with the pod's credentials.
    let env = pod_env(&w).await;
    let out = run_as_cron_job(&w, "weekly-lab", &env).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let backups: Vec<String> = std::fs::read_dir(folder.join("backups"))
        .expect("backups in the named location's folder")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(backups.len(), 1, "{backups:?}");
    assert!(is_timestamped(&backups[0], "weekly-lab"), "{backups:?}");
}

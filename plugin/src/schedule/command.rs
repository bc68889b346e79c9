//! The `kubectl backup schedule ...` commands: arguments and what each does
//! against the cluster. Decisions come from [`super::spec`]; manifests from
//! [`super::objects`].

use std::time::Duration as StdDuration;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use clap::{ArgGroup, Args, Subcommand};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use kube::api::{Api, DeleteParams, ListParams, LogParams, Patch, PatchParams, PostParams};
use kube::{Client, Resource};
use serde::Serialize;
use serde_json::json;

use super::objects::{self, LastRun, ScheduleConfig};
use super::produced::{self, ProducedBackup};
use super::spec::{self, Preset, ScheduleSpec};
use crate::archive::BackupOptions;
use crate::backup::{self, catalog};
use crate::cli::GlobalArgs;
use crate::output::{OutputFormat, Table, print_structured, write_stdout};
use crate::{Outcome, UsageError};

/// Field manager for the server-side applies of the shared RBAC objects.
const FIELD_MANAGER: &str = "kubectl-backup";

/// What the schedule commands report besides cluster and usage errors
/// (exit code 1, as kubectl's NotFound and AlreadyExists).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No schedule of that name.
    #[error("schedule {name:?} not found in namespace {namespace} ({known})")]
    NotFound {
        /// The name asked for.
        name: String,
        /// The tool namespace.
        namespace: String,
        /// The schedules that do exist, in words.
        known: String,
    },
    /// A schedule of that name exists: never overwritten.
    #[error(
        "schedule {name:?} already exists in namespace {namespace}: delete it first or choose another name"
    )]
    AlreadyExists {
        /// The name.
        name: String,
        /// The tool namespace.
        namespace: String,
    },
    /// The ConfigMap is there but its CronJob is not.
    #[error("the CronJob of schedule {name:?} is missing; delete and recreate the schedule")]
    CronJobMissing {
        /// The schedule.
        name: String,
    },
    /// The Job of `schedule run` failed.
    #[error("job {job} failed: {reason}; see 'kubectl -n {namespace} logs job/{job}'")]
    JobFailed {
        /// The Job.
        job: String,
        /// The tool namespace.
        namespace: String,
        /// The Job's Failed condition.
        reason: String,
    },
    /// The Job of `schedule run` did not finish in time.
    #[error(
        "job {job} did not finish within {timeout}: it is still {state} ({why}). It stays in the \
         cluster: watch it with 'kubectl -n {namespace} get job {job}', or delete it with \
         'kubectl -n {namespace} delete job {job}'"
    )]
    JobTimeout {
        /// The Job.
        job: String,
        /// The tool namespace.
        namespace: String,
        /// The timeout, as humantime prints it.
        timeout: String,
        /// The Job's state.
        state: String,
        /// The pod's state, or that there is none.
        why: String,
    },
}

/// The presets and the cron syntax, shown under `schedule --help` and
/// `schedule create --help`.
const PRESETS_HELP: &str = "\
Presets (--preset), as in Palette:
  weekly      every week on Sunday at midnight             0 0 * * 0
  biweekly    every two weeks on Sunday at midnight        0 0 * * 0, and a run is skipped while
              the schedule's last successful backup is younger than 13 days (cron cannot say
              \"every other week\")
  monthly     every month on the 1st at midnight           0 0 1 * *
  bimonthly   every two months on the 1st at midnight      0 0 1 */2 *  (Jan, Mar, May, ...)
  never       exists but never runs by itself; start a run with 'kubectl backup schedule run NAME'

Custom: --cron 'MIN HOUR DAY-OF-MONTH MONTH DAY-OF-WEEK' in Kubernetes CronJob syntax (Sunday is 0;
names like MON-FRI and JAN-DEC; @daily, @weekly, @monthly), read in --timezone (an IANA name such
as Europe/Berlin; default UTC).";

/// Arguments of `schedule`.
#[derive(Debug, Args)]
#[command(after_help = PRESETS_HELP)]
pub struct ScheduleArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: ScheduleCommand,
}

/// The `schedule` subcommands.
#[derive(Debug, Subcommand)]
pub enum ScheduleCommand {
    /// Create a schedule: a CronJob in the cluster that backs up on a preset or cron schedule.
    #[command(after_help = PRESETS_HELP)]
    Create(Box<CreateArgs>),
    /// List schedules with their last and next runs.
    List(ListArgs),
    /// Show a schedule, its upcoming runs, recent Jobs and the backups it produced.
    Describe(DescribeArgs),
    /// Stop a schedule from starting runs (its CronJob is suspended).
    Pause(NameArgs),
    /// Let a paused schedule run again.
    Resume(NameArgs),
    /// Start one run now (a Job from the schedule's CronJob) and follow it.
    Run(RunArgs),
    /// Delete a schedule (its CronJob and ConfigMap). Its backups are kept.
    Delete(DeleteArgs),
}

/// Arguments of `schedule create`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("when").required(true).args(["preset", "cron"])))]
pub struct CreateArgs {
    /// Name of the schedule (a DNS-1123 label, at most 43 characters).
    pub name: String,

    /// Backup location (a location's name, or a URL); default: the cluster's default location,
    /// pinned by name.
    #[arg(long, value_name = "LOCATION")]
    pub location: Option<String>,

    /// A preset schedule (see below).
    #[arg(long, value_enum)]
    pub preset: Option<Preset>,

    /// A cron expression in Kubernetes CronJob syntax, e.g. '0 3 * * *'.
    #[arg(long, value_name = "EXPR")]
    pub cron: Option<String>,

    /// IANA time zone the schedule is read in (the CronJob's spec.timeZone), e.g. Europe/Berlin.
    #[arg(long, value_name = "TZ")]
    pub timezone: Option<String>,

    /// Backups are named <prefix>-<UTC yyyymmddhhmmss>; default: the schedule's name.
    #[arg(long, value_name = "PREFIX")]
    pub prefix: Option<String>,

    /// How long each backup is kept (period until expiry), e.g. 720h, 90d, 2w.
    #[arg(long, value_name = "DURATION", default_value = "30d")]
    pub ttl: String,

    /// What each run backs up: the selection flags of `kubectl backup create`.
    #[command(flatten)]
    pub selection: crate::backup::commands::SelectionArgs,

    /// Image the CronJob runs (must contain kubectl-backup).
    #[arg(long, value_name = "IMAGE", default_value_t = objects::default_image())]
    pub image: String,

    /// Output format for the created schedule.
    #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
}

/// Arguments of `schedule list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
}

/// Arguments of `schedule describe`.
#[derive(Debug, Args)]
pub struct DescribeArgs {
    /// The schedule.
    pub name: String,

    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
}

/// A command that takes only a schedule name.
#[derive(Debug, Args)]
pub struct NameArgs {
    /// The schedule.
    pub name: String,
}

/// Arguments of `schedule run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The schedule.
    pub name: String,

    /// Start the Job and return without following it.
    #[arg(long)]
    pub no_wait: bool,

    /// How long to follow the Job before giving up (it keeps running in the cluster).
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = humantime::parse_duration)]
    pub timeout: StdDuration,
}

/// Arguments of `schedule delete`.
#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// The schedule.
    pub name: String,

    /// Also delete every backup this schedule produced in its location.
    #[arg(long)]
    pub delete_backups: bool,
}

/// Run a `schedule` subcommand.
pub async fn run(global: &GlobalArgs, args: ScheduleArgs) -> anyhow::Result<Outcome> {
    match args.command {
        ScheduleCommand::Create(a) => create(global, *a).await,
        ScheduleCommand::List(a) => list(global, a).await,
        ScheduleCommand::Describe(a) => describe(global, a).await,
        ScheduleCommand::Pause(a) => set_paused(global, &a.name, true).await,
        ScheduleCommand::Resume(a) => set_paused(global, &a.name, false).await,
        ScheduleCommand::Run(a) => run_now(global, a).await,
        ScheduleCommand::Delete(a) => delete(global, a).await,
    }
}

// === validation ===

fn check_name(name: &str) -> Result<(), UsageError> {
    if !backup_common::is_dns1123_label(name) || name.len() > objects::MAX_NAME_LEN {
        return Err(UsageError(format!(
            "invalid schedule name {name:?}: use lowercase letters, digits and '-', starting and ending \
             with a letter or digit, at most {} characters",
            objects::MAX_NAME_LEN
        )));
    }
    Ok(())
}

fn check_prefix(prefix: &str) -> Result<(), UsageError> {
    if !backup_common::is_dns1123_label(prefix) || prefix.len() > spec::MAX_PREFIX_LEN {
        return Err(UsageError(format!(
            "invalid --prefix {prefix:?}: backup names are <prefix>-<14-digit timestamp> and must be \
             DNS-1123 labels, so the prefix is lowercase letters, digits and '-', at most {} characters",
            spec::MAX_PREFIX_LEN
        )));
    }
    Ok(())
}

/// Build the schedule's timing from the flags, with usage errors that show
/// what is wrong.
fn spec_from_args(args: &CreateArgs) -> Result<ScheduleSpec, UsageError> {
    let tz = args
        .timezone
        .as_deref()
        .map(spec::parse_time_zone)
        .transpose()
        .map_err(|e| UsageError(format!("--timezone: {e}")))?;
    match (&args.preset, &args.cron) {
        (Some(preset), None) => Ok(ScheduleSpec::from_preset(*preset, tz)),
        (None, Some(expr)) => {
            ScheduleSpec::from_cron(expr, tz).map_err(|e| UsageError(format!("--cron: {e}")))
        }
        _ => Err(UsageError(
            "give exactly one of --preset and --cron".to_owned(),
        )),
    }
}

// === shared helpers ===

async fn client(global: &GlobalArgs) -> anyhow::Result<Client> {
    crate::cluster::connect(global).await
}

fn is_status(error: &kube::Error, code: u16) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == code)
}

/// The schedule's ConfigMap, or a "not found" that lists what exists.
async fn get_config_map(client: &Client, ns: &str, name: &str) -> anyhow::Result<ConfigMap> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    match api.get_opt(&objects::object_name(name)).await? {
        Some(cm) => Ok(cm),
        None => {
            let names = schedule_names(client, ns).await.unwrap_or_default();
            let known = if names.is_empty() {
                "there are no schedules".to_owned()
            } else {
                format!("schedules: {}", names.join(", "))
            };
            Err(Error::NotFound {
                name: name.to_owned(),
                namespace: ns.to_owned(),
                known,
            }
            .into())
        }
    }
}

async fn schedule_names(client: &Client, ns: &str) -> anyhow::Result<Vec<String>> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let list = api
        .list(&ListParams::default().labels(&objects::schedule_selector()))
        .await?;
    let mut names: Vec<String> = list
        .items
        .iter()
        .filter_map(|cm| {
            cm.metadata
                .labels
                .as_ref()?
                .get(backup_common::LABEL_SCHEDULE_NAME)
                .cloned()
        })
        .collect();
    names.sort();
    Ok(names)
}

/// A Kubernetes timestamp as a chrono instant.
fn to_chrono(t: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(t.0.as_second(), t.0.subsec_nanosecond().max(0) as u32)
}

fn format_time(t: Option<DateTime<Utc>>) -> String {
    t.map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_else(|| "-".to_owned())
}

fn format_ttl(config: &ScheduleConfig) -> String {
    backup::naming::format_ttl(config.ttl_seconds)
}

// === create ===

async fn create(global: &GlobalArgs, args: CreateArgs) -> anyhow::Result<Outcome> {
    check_name(&args.name)?;
    let prefix = args.prefix.clone().unwrap_or_else(|| args.name.clone());
    check_prefix(&prefix)?;
    let spec = spec_from_args(&args)?;
    let ttl = backup::naming::parse_ttl(&args.ttl).map_err(backup::Error::into_anyhow)?;
    // A bad selector or glob is refused now, not at the first run in the cluster.
    args.selection.validate()?;
    let ns = global.tool_namespace.as_str();

    let client = client(global).await?;
    // Without --location, pin the cluster's current default location by name,
    // so changing the default later does not silently move this schedule.
    let location = match &args.location {
        Some(l) => Some(l.clone()),
        None => crate::location::catalog::default_location(&client, ns)
            .await
            .context("looking up the default location")?
            .map(|l| l.name),
    };
    let config = ScheduleConfig {
        format_version: objects::CONFIG_FORMAT,
        name: args.name.clone(),
        preset: spec.preset,
        cron: spec.cron.as_str().to_owned(),
        time_zone: spec.time_zone.map(|tz| tz.name().to_owned()),
        location,
        prefix,
        ttl: args.ttl.clone(),
        ttl_seconds: ttl.as_secs(),
        backup: args.selection.to_options(ttl.as_secs()),
        created_at: Utc::now(),
    };
    // Check the location can be opened before anything lands in the cluster.
    let store = produced::open_location(global, config.location.as_deref()).await?;

    ensure_namespace(&client, ns).await?;
    apply_shared_rbac(&client, ns).await?;

    let cm = objects::config_map(ns, &config)?;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    match cms.create(&PostParams::default(), &cm).await {
        Ok(_) => {}
        Err(e) if is_status(&e, 409) => {
            return Err(Error::AlreadyExists {
                name: args.name.clone(),
                namespace: ns.to_owned(),
            }
            .into());
        }
        Err(e) => return Err(e).context("creating the schedule's ConfigMap"),
    }
    let cron_job = objects::cron_job(ns, &config, &spec, &args.image)?;
    let cron_jobs: Api<CronJob> = Api::namespaced(client.clone(), ns);
    if let Err(e) = cron_jobs.create(&PostParams::default(), &cron_job).await {
        // Do not leave half a schedule behind.
        let _ = cms
            .delete(&objects::object_name(&args.name), &DeleteParams::default())
            .await;
        return Err(e).context("creating the schedule's CronJob");
    }

    let status = ScheduleStatus::new(&config, &spec, Some(&cron_job), None, Utc::now());
    if args.output.is_machine() {
        print_structured(args.output, &status)?;
    } else {
        let mut text = format!(
            "schedule {:?} created in namespace {ns}: {} ({})\n",
            config.name,
            spec.words(),
            spec.cron
        );
        match spec.preset {
            Some(Preset::Never) => text.push_str(&format!(
                "it never runs by itself: start a run with 'kubectl backup schedule run {}'\n",
                config.name
            )),
            _ => text.push_str(&format!("next run: {}\n", format_time(status.next_run))),
        }
        if spec.preset == Some(Preset::Biweekly) {
            text.push_str(
                "biweekly runs every Sunday and skips while the last successful backup is younger than 13 days\n",
            );
        }
        text.push_str(&format!(
            "backups: {}-<UTC timestamp> in {}, kept {}\n",
            config.prefix,
            config.location.as_deref().unwrap_or("the default location"),
            config.ttl
        ));
        write_stdout(&text)?;
    }
    if store.name().starts_with("file://") {
        eprintln!(
            "warning: {} is a local folder: in the CronJob's pod that is a folder inside the pod, lost \
             when the pod ends; use an object-store location for scheduled backups",
            store.name()
        );
    }
    Ok(Outcome::Success)
}

async fn ensure_namespace(client: &Client, ns: &str) -> anyhow::Result<()> {
    let api: Api<Namespace> = Api::all(client.clone());
    if api.get_opt(ns).await?.is_some() {
        return Ok(());
    }
    let namespace: Namespace = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": { "name": ns, "labels": { backup_common::LABEL_MANAGED_BY: backup_common::MANAGED_BY } },
    }))?;
    match api.create(&PostParams::default(), &namespace).await {
        Ok(_) => Ok(()),
        Err(e) if is_status(&e, 409) => Ok(()),
        Err(e) => Err(e).with_context(|| format!("creating namespace {ns}")),
    }
}

/// Server-side apply an object we own entirely.
async fn apply<K>(api: Api<K>, object: &K) -> anyhow::Result<()>
where
    K: Resource + Clone + serde::de::DeserializeOwned + Serialize + std::fmt::Debug,
{
    let name = object.meta().name.clone().unwrap_or_default();
    api.patch(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(object),
    )
    .await
    .with_context(|| format!("applying {name}"))?;
    Ok(())
}

/// The ServiceAccount and RBAC every schedule's runs share; applied on each
/// create so an upgraded plugin brings its rules up to date.
async fn apply_shared_rbac(client: &Client, ns: &str) -> anyhow::Result<()> {
    apply(
        Api::<ServiceAccount>::namespaced(client.clone(), ns),
        &objects::service_account(ns)?,
    )
    .await?;
    apply(
        Api::<ClusterRole>::all(client.clone()),
        &objects::cluster_role(ns)?,
    )
    .await?;
    apply(
        Api::<ClusterRoleBinding>::all(client.clone()),
        &objects::cluster_role_binding(ns)?,
    )
    .await?;
    apply(
        Api::<Role>::namespaced(client.clone(), ns),
        &objects::role(ns)?,
    )
    .await?;
    apply(
        Api::<RoleBinding>::namespaced(client.clone(), ns),
        &objects::role_binding(ns)?,
    )
    .await?;
    Ok(())
}

// === list and describe ===

/// One schedule as `list` and `describe` show it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleStatus {
    /// The name.
    pub name: String,
    /// The schedule in words.
    pub schedule: String,
    /// The preset, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preset: Option<Preset>,
    /// The cron expression.
    pub cron: String,
    /// The time zone, if not UTC.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    /// The location (`None`: the default location).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// Backup name prefix.
    pub prefix: String,
    /// Time to live of each backup.
    pub ttl: String,
    /// What each backup selects.
    pub backup: BackupOptions,
    /// Is the CronJob suspended?
    pub paused: bool,
    /// When a run last started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_run: Option<DateTime<Utc>>,
    /// How it ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_result: Option<String>,
    /// The backup it took.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_backup: Option<String>,
    /// Why it failed or skipped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_message: Option<String>,
    /// When the next backup will be taken (none when paused or `never`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_run: Option<DateTime<Utc>>,
    /// The image the CronJob runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Is the CronJob missing (someone deleted it)?
    pub cron_job_missing: bool,
}

impl ScheduleStatus {
    fn new(
        config: &ScheduleConfig,
        spec: &ScheduleSpec,
        cron_job: Option<&CronJob>,
        last: Option<LastRun>,
        now: DateTime<Utc>,
    ) -> Self {
        let cj_spec = cron_job.and_then(|c| c.spec.as_ref());
        let cj_status = cron_job.and_then(|c| c.status.as_ref());
        let paused = cj_spec.and_then(|s| s.suspend).unwrap_or(false);
        // The run's own record is the best source; the CronJob's status
        // covers runs that died before they could write one.
        let scheduled = cj_status
            .and_then(|s| s.last_schedule_time.as_ref())
            .and_then(to_chrono);
        let last_run = match (&last, scheduled) {
            (Some(l), Some(s)) => Some(l.time.max(s)),
            (Some(l), None) => Some(l.time),
            (None, s) => s,
        };
        let last_result = match &last {
            Some(l) if Some(l.time) == last_run => Some(l.result.clone()),
            _ if last_run.is_some() => Some("Unknown (no record from the run)".to_owned()),
            _ => None,
        };
        let last_success = last.as_ref().and_then(|l| l.last_success);
        let next_run = if paused || cron_job.is_none() {
            None
        } else {
            spec.next_backup(now, last_success)
        };
        let image = cj_spec
            .and_then(|s| s.job_template.spec.as_ref())
            .and_then(|j| j.template.spec.as_ref())
            .and_then(|p| p.containers.first())
            .and_then(|c| c.image.clone());
        ScheduleStatus {
            name: config.name.clone(),
            schedule: spec.words(),
            preset: spec.preset,
            cron: spec.cron.as_str().to_owned(),
            time_zone: config.time_zone.clone(),
            location: config.location.clone(),
            prefix: config.prefix.clone(),
            ttl: format_ttl(config),
            backup: config.backup.clone(),
            paused,
            last_run,
            last_result,
            last_backup: last.as_ref().and_then(|l| l.backup.clone()),
            last_message: last.and_then(|l| l.message),
            next_run,
            image,
            cron_job_missing: cron_job.is_none(),
        }
    }
}

async fn load_statuses(client: &Client, ns: &str) -> anyhow::Result<Vec<ScheduleStatus>> {
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let cjs: Api<CronJob> = Api::namespaced(client.clone(), ns);
    let lp = ListParams::default().labels(&objects::schedule_selector());
    let config_maps = cms.list(&lp).await.context("listing schedules")?;
    let cron_jobs = cjs.list(&lp).await.context("listing schedule CronJobs")?;
    let now = Utc::now();
    let mut out = Vec::new();
    for cm in &config_maps.items {
        let config = objects::read_config(cm)?;
        let spec = config.spec()?;
        let cj = cron_jobs
            .items
            .iter()
            .find(|c| c.metadata.name.as_deref() == Some(&objects::object_name(&config.name)));
        out.push(ScheduleStatus::new(
            &config,
            &spec,
            cj,
            objects::read_last_run(cm),
            now,
        ));
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

async fn list(global: &GlobalArgs, args: ListArgs) -> anyhow::Result<Outcome> {
    let client = client(global).await?;
    let statuses = load_statuses(&client, &global.tool_namespace).await?;
    if args.output.is_machine() {
        print_structured(args.output, &statuses)?;
        return Ok(Outcome::Success);
    }
    if statuses.is_empty() {
        eprintln!(
            "No schedules in namespace {}. Create one with 'kubectl backup schedule create NAME --preset weekly'.",
            global.tool_namespace
        );
        return Ok(Outcome::Success);
    }
    let mut table = Table::new([
        "name",
        "schedule",
        "cron",
        "location",
        "ttl",
        "last run",
        "last result",
        "next run",
        "paused",
    ]);
    for s in &statuses {
        table.row([
            s.name.clone(),
            s.schedule.clone(),
            s.cron.clone(),
            s.location.clone().unwrap_or_else(|| "default".to_owned()),
            s.ttl.clone(),
            format_time(s.last_run),
            s.last_result.clone().unwrap_or_else(|| "-".to_owned()),
            if s.cron_job_missing {
                "CronJob missing".to_owned()
            } else {
                format_time(s.next_run)
            },
            if s.paused { "yes" } else { "no" }.to_owned(),
        ]);
    }
    table.print()?;
    Ok(Outcome::Success)
}

/// `describe`'s structured output.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Description {
    #[serde(flatten)]
    status: ScheduleStatus,
    upcoming_runs: Vec<DateTime<Utc>>,
    jobs: Vec<JobSummary>,
    backups: Vec<ProducedBackup>,
    #[serde(skip_serializing_if = "Option::is_none")]
    backups_error: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct JobSummary {
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    started: Option<DateTime<Utc>>,
    state: String,
}

fn job_state(job: &Job) -> String {
    let status = job.status.clone().unwrap_or_default();
    for c in status.conditions.unwrap_or_default() {
        if c.status == "True" && (c.type_ == "Complete" || c.type_ == "Failed") {
            return match c.message {
                Some(m) if c.type_ == "Failed" => format!("Failed: {m}"),
                _ => c.type_,
            };
        }
    }
    if status.active.unwrap_or(0) > 0 {
        "Running".to_owned()
    } else {
        "Pending".to_owned()
    }
}

async fn describe(global: &GlobalArgs, args: DescribeArgs) -> anyhow::Result<Outcome> {
    let client = client(global).await?;
    let ns = global.tool_namespace.as_str();
    let cm = get_config_map(&client, ns, &args.name).await?;
    let config = objects::read_config(&cm)?;
    let spec = config.spec()?;
    let cron_job = Api::<CronJob>::namespaced(client.clone(), ns)
        .get_opt(&objects::object_name(&config.name))
        .await?;
    let now = Utc::now();
    let status = ScheduleStatus::new(
        &config,
        &spec,
        cron_job.as_ref(),
        objects::read_last_run(&cm),
        now,
    );
    let upcoming = if status.paused {
        Vec::new()
    } else {
        let mut runs = Vec::new();
        let mut t = now;
        while runs.len() < 3 {
            match spec.next_run(t) {
                Some(next) => {
                    runs.push(next);
                    t = next;
                }
                None => break,
            }
        }
        runs
    };
    let jobs = Api::<Job>::namespaced(client.clone(), ns)
        .list(&ListParams::default().labels(&objects::one_schedule_selector(&config.name)))
        .await
        .map(|l| l.items)
        .unwrap_or_default();
    let mut jobs: Vec<JobSummary> = jobs
        .iter()
        .map(|j| JobSummary {
            name: j.metadata.name.clone().unwrap_or_default(),
            started: j.metadata.creation_timestamp.as_ref().and_then(to_chrono),
            state: job_state(j),
        })
        .collect();
    jobs.sort_by_key(|j| std::cmp::Reverse(j.started));
    let (backups, backups_error) = match produced::list_produced(global, &config).await {
        Ok(b) => (b, None),
        Err(e) => (Vec::new(), Some(format!("{e:#}"))),
    };
    let description = Description {
        status,
        upcoming_runs: upcoming,
        jobs,
        backups,
        backups_error,
    };
    if args.output.is_machine() {
        print_structured(args.output, &description)?;
    } else {
        write_stdout(&render_description(&description, &spec))?;
    }
    Ok(Outcome::Success)
}

fn render_description(d: &Description, spec: &ScheduleSpec) -> String {
    let s = &d.status;
    let b = &s.backup;
    let list_or = |v: &[String], all: &str| {
        if v.is_empty() {
            all.to_owned()
        } else {
            v.join(", ")
        }
    };
    let mut out = String::new();
    let mut line = |k: &str, v: String| out.push_str(&format!("{:<20}{v}\n", format!("{k}:")));
    line("Name", s.name.clone());
    line("Schedule", s.schedule.clone());
    line(
        "Cron",
        format!("{} ({})", s.cron, s.time_zone.as_deref().unwrap_or("UTC")),
    );
    if spec.preset == Some(Preset::Biweekly) {
        line(
            "Two-week rule",
            "runs every Sunday; skipped while the last successful backup is younger than 13 days"
                .to_owned(),
        );
    }
    line("Paused", if s.paused { "yes" } else { "no" }.to_owned());
    line(
        "Location",
        s.location.clone().unwrap_or_else(|| "default".to_owned()),
    );
    line("Backup names", format!("{}-<UTC yyyymmddhhmmss>", s.prefix));
    line("TTL", s.ttl.clone());
    line("Namespaces", list_or(&b.include_namespaces, "all"));
    if !b.exclude_namespaces.is_empty() {
        line("Excluded namespaces", b.exclude_namespaces.join(", "));
    }
    line("Resources", list_or(&b.include_resources, "all"));
    if !b.exclude_resources.is_empty() {
        line("Excluded resources", b.exclude_resources.join(", "));
    }
    if let Some(sel) = &b.label_selector {
        line("Label selector", sel.clone());
    }
    line("Cluster resources", b.cluster_resources.as_str().to_owned());
    line(
        "All disks",
        if b.include_all_disks { "yes" } else { "no" }.to_owned(),
    );
    line("Image", s.image.clone().unwrap_or_else(|| "-".to_owned()));
    line("Last run", format_time(s.last_run));
    line(
        "Last result",
        match (&s.last_result, &s.last_message) {
            (Some(r), Some(m)) => format!("{r}: {m}"),
            (Some(r), None) => r.clone(),
            _ => "-".to_owned(),
        },
    );
    if let Some(backup) = &s.last_backup {
        line("Last backup", backup.clone());
    }
    if s.cron_job_missing {
        line(
            "CronJob",
            "MISSING: the schedule will not run; delete and recreate it".to_owned(),
        );
    }
    let upcoming = if d.upcoming_runs.is_empty() {
        "none".to_owned()
    } else {
        d.upcoming_runs
            .iter()
            .map(|t| {
                if spec.time_zone.is_some() {
                    format!(
                        "{} ({})",
                        format_time(Some(*t)),
                        spec::local_time(*t, spec.zone())
                    )
                } else {
                    format_time(Some(*t))
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    line("Upcoming runs", upcoming);
    if let Some(next) = s.next_run
        && spec.preset == Some(Preset::Biweekly)
    {
        line("Next backup", format_time(Some(next)));
    }

    out.push_str("\nJobs:\n");
    if d.jobs.is_empty() {
        out.push_str("  none\n");
    } else {
        let mut t = Table::new(["name", "started", "state"]);
        for j in &d.jobs {
            t.row([j.name.clone(), format_time(j.started), j.state.clone()]);
        }
        for l in t.render().lines() {
            out.push_str(&format!("  {l}\n"));
        }
    }

    out.push_str("\nBackups produced:\n");
    if let Some(e) = &d.backups_error {
        out.push_str(&format!("  cannot list the location: {e}\n"));
    } else if d.backups.is_empty() {
        out.push_str("  none\n");
    } else {
        let mut t = Table::new(["name", "status", "started", "expires"]);
        for b in &d.backups {
            // Every run prunes after its backup: say which one removes this.
            let expires = match b.expires_at {
                Some(at) => match spec.pruned_by(at) {
                    Some(run) if !s.paused => format!(
                        "{} (removed by the run of {})",
                        format_time(Some(at)),
                        format_time(Some(run))
                    ),
                    _ => format!(
                        "{} (removed by 'kubectl backup prune')",
                        format_time(Some(at))
                    ),
                },
                None => "-".to_owned(),
            };
            t.row([
                b.name.clone(),
                b.phase.clone(),
                format_time(Some(b.started_at)),
                expires,
            ]);
        }
        for l in t.render().lines() {
            out.push_str(&format!("  {l}\n"));
        }
    }
    out
}

// === pause, resume ===

async fn set_paused(global: &GlobalArgs, name: &str, paused: bool) -> anyhow::Result<Outcome> {
    let client = client(global).await?;
    let ns = global.tool_namespace.as_str();
    let cm = get_config_map(&client, ns, name).await?;
    let config = objects::read_config(&cm)?;
    let spec = config.spec()?;
    if !paused && spec.never_runs() {
        return Err(UsageError(format!(
            "schedule {name:?} uses the 'never' preset and does not run by itself; start a run with \
             'kubectl backup schedule run {name}', or recreate it with another --preset or --cron"
        ))
        .into());
    }
    let api: Api<CronJob> = Api::namespaced(client.clone(), ns);
    api.patch(
        &objects::object_name(name),
        &PatchParams::default(),
        &Patch::Merge(json!({ "spec": { "suspend": paused } })),
    )
    .await
    .with_context(|| format!("updating the CronJob of schedule {name:?}"))?;
    let text = if paused {
        format!(
            "schedule {name:?} paused: no new runs start (a run already going finishes); resume with \
             'kubectl backup schedule resume {name}'\n"
        )
    } else {
        let last_success = objects::read_last_run(&cm).and_then(|l| l.last_success);
        format!(
            "schedule {name:?} resumed: next run {}\n",
            format_time(spec.next_backup(Utc::now(), last_success))
        )
    };
    write_stdout(&text)?;
    Ok(Outcome::Success)
}

// === run ===

/// A Job name for a manual run: the CronJob's name plus a random suffix,
/// within the 63 characters of the `job-name` label.
fn manual_job_name(name: &str) -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    let suffix: String = (0..5)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
    format!("{}-run-{suffix}", objects::object_name(name))
}

/// How long to wait for the Job controller to make a pod before saying so.
const NO_POD_NOTICE: StdDuration = StdDuration::from_secs(20);

async fn run_now(global: &GlobalArgs, args: RunArgs) -> anyhow::Result<Outcome> {
    let client = client(global).await?;
    let ns = global.tool_namespace.as_str();
    // Through the ConfigMap first: its "not found" lists the schedules.
    get_config_map(&client, ns, &args.name).await?;
    let cron_jobs: Api<CronJob> = Api::namespaced(client.clone(), ns);
    let cron_job = cron_jobs
        .get_opt(&objects::object_name(&args.name))
        .await?
        .ok_or_else(|| Error::CronJobMissing {
            name: args.name.clone(),
        })?;
    let job = objects::manual_job(&cron_job, &manual_job_name(&args.name))?;
    let jobs: Api<Job> = Api::namespaced(client.clone(), ns);
    let job = jobs
        .create(&PostParams::default(), &job)
        .await
        .context("creating the Job")?;
    let job_name = job.metadata.name.clone().unwrap_or_default();
    eprintln!("job {job_name} created in namespace {ns}");
    if args.no_wait {
        write_stdout(&format!("{job_name}\n"))?;
        return Ok(Outcome::Success);
    }
    follow_job(&client, ns, &job_name, args.timeout).await
}

/// Follow a Job until it completes, fails or `timeout` passes, saying what
/// it is waiting for. On a cluster where nothing runs pods (no controller
/// manager or no kubelet) the Job stays pending: that is reported plainly.
async fn follow_job(
    client: &Client,
    ns: &str,
    job_name: &str,
    timeout: StdDuration,
) -> anyhow::Result<Outcome> {
    let jobs: Api<Job> = Api::namespaced(client.clone(), ns);
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let started = std::time::Instant::now();
    let mut last_report = String::new();
    let mut said_no_pod = false;
    loop {
        let job = jobs.get(job_name).await?;
        let state = job_state(&job);
        let pod_list = pods
            .list(&ListParams::default().labels(&format!("job-name={job_name}")))
            .await
            .map(|l| l.items)
            .unwrap_or_default();
        let pod_state = pod_list.last().map(describe_pod);
        if state == "Complete" || state.starts_with("Failed") {
            if let Some(pod) = pod_list.last().and_then(|p| p.metadata.name.clone()) {
                match pods.logs(&pod, &LogParams::default()).await {
                    Ok(logs) if !logs.is_empty() => write_stdout(&logs)?,
                    _ => {}
                }
            }
            return if state == "Complete" {
                eprintln!("job {job_name} completed");
                Ok(Outcome::Success)
            } else {
                Err(Error::JobFailed {
                    job: job_name.to_owned(),
                    namespace: ns.to_owned(),
                    reason: state.trim_start_matches("Failed: ").to_owned(),
                }
                .into())
            };
        }
        let report = match &pod_state {
            Some(p) => format!("job {job_name}: {state}, {p}"),
            None => format!("job {job_name}: {state}, no pod yet"),
        };
        if report != last_report {
            eprintln!("{report}");
            last_report = report;
        }
        if pod_state.is_none() && !said_no_pod && started.elapsed() >= NO_POD_NOTICE {
            eprintln!(
                "no pod has been created for job {job_name} after {}s: the cluster's Job controller \
                 is not acting on it (a cluster without kube-controller-manager or kubelet never runs it)",
                NO_POD_NOTICE.as_secs()
            );
            said_no_pod = true;
        }
        if started.elapsed() >= timeout {
            let why = pod_state.unwrap_or_else(|| "no pod was ever created".to_owned());
            return Err(Error::JobTimeout {
                job: job_name.to_owned(),
                namespace: ns.to_owned(),
                timeout: humantime::format_duration(timeout).to_string(),
                state,
                why,
            }
            .into());
        }
        tokio::time::sleep(StdDuration::from_secs(2).min(timeout)).await;
    }
}

/// A pod's state in a few words, with the reason it is stuck if it is.
fn describe_pod(pod: &Pod) -> String {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let status = pod.status.clone().unwrap_or_default();
    let phase = status.phase.unwrap_or_else(|| "Pending".to_owned());
    let waiting = status
        .container_statuses
        .unwrap_or_default()
        .into_iter()
        .filter_map(|c| c.state?.waiting)
        .map(|w| match w.message {
            Some(m) => format!("{}: {m}", w.reason.unwrap_or_default()),
            None => w.reason.unwrap_or_default(),
        })
        .next();
    let unscheduled = status
        .conditions
        .unwrap_or_default()
        .into_iter()
        .find(|c| c.type_ == "PodScheduled" && c.status == "False")
        .map(|c| c.message.or(c.reason).unwrap_or_default());
    match (waiting, unscheduled) {
        (Some(w), _) => format!("pod {name} {phase} ({w})"),
        (None, Some(u)) => format!("pod {name} {phase} (not scheduled: {u})"),
        (None, None) => format!("pod {name} {phase}"),
    }
}

// === delete ===

async fn delete(global: &GlobalArgs, args: DeleteArgs) -> anyhow::Result<Outcome> {
    let client = client(global).await?;
    let ns = global.tool_namespace.as_str();
    let cm = get_config_map(&client, ns, &args.name).await?;
    let config = objects::read_config(&cm)?;
    let object = objects::object_name(&args.name);

    // Jobs (and their pods) go with the CronJob.
    let background = DeleteParams::background();
    let cron_jobs: Api<CronJob> = Api::namespaced(client.clone(), ns);
    match cron_jobs.delete(&object, &background).await {
        Ok(_) => {}
        Err(e) if is_status(&e, 404) => {}
        Err(e) => return Err(e).context("deleting the schedule's CronJob"),
    }
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    match cms.delete(&object, &DeleteParams::default()).await {
        Ok(_) => {}
        Err(e) if is_status(&e, 404) => {}
        Err(e) => return Err(e).context("deleting the schedule's ConfigMap"),
    }
    let location = config
        .location
        .clone()
        .unwrap_or_else(|| "the default location".to_owned());
    let mut text = format!("schedule {:?} deleted (CronJob and ConfigMap)\n", args.name);

    let produced = produced::list_produced(global, &config).await;
    if args.delete_backups {
        let backups = produced.context("listing the schedule's backups to delete them")?;
        let store = produced::open_location(global, config.location.as_deref()).await?;
        for b in &backups {
            catalog::delete_backup(&store, &b.name, Some(&client))
                .await
                .map_err(backup::Error::into_anyhow)
                .with_context(|| format!("deleting backup {}", b.name))?;
        }
        text.push_str(&format!(
            "deleted its {} backup(s) from {location}\n",
            backups.len()
        ));
    } else {
        match produced {
            Ok(b) if !b.is_empty() => text.push_str(&format!(
                "its {} backup(s) in {location} were kept; they expire by their TTL, or delete them with \
                 'kubectl backup delete NAME' (or run this with --delete-backups)\n",
                b.len()
            )),
            Ok(_) => text.push_str(&format!("it had no backups in {location}\n")),
            Err(e) => text.push_str(&format!(
                "its backups in {location} were kept (could not count them: {e:#})\n"
            )),
        }
    }

    if schedule_names(&client, ns).await?.is_empty() {
        remove_shared_rbac(&client, ns).await?;
    }
    write_stdout(&text)?;
    Ok(Outcome::Success)
}

/// With the last schedule gone, its ServiceAccount and RBAC go too.
async fn remove_shared_rbac(client: &Client, ns: &str) -> anyhow::Result<()> {
    let name = objects::SERVICE_ACCOUNT;
    let dp = DeleteParams::default();
    let results = [
        Api::<RoleBinding>::namespaced(client.clone(), ns)
            .delete(name, &dp)
            .await
            .map(|_| ()),
        Api::<Role>::namespaced(client.clone(), ns)
            .delete(name, &dp)
            .await
            .map(|_| ()),
        Api::<ClusterRoleBinding>::all(client.clone())
            .delete(&objects::cluster_role_name(ns), &dp)
            .await
            .map(|_| ()),
        Api::<ClusterRole>::all(client.clone())
            .delete(&objects::cluster_role_name(ns), &dp)
            .await
            .map(|_| ()),
        Api::<ServiceAccount>::namespaced(client.clone(), ns)
            .delete(name, &dp)
            .await
            .map(|_| ()),
    ];
    for r in results {
        match r {
            Ok(()) => {}
            Err(e) if is_status(&e, 404) => {}
            Err(e) => return Err(e).context("removing the schedules' ServiceAccount and RBAC"),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Test {
        #[command(subcommand)]
        command: ScheduleCommand,
    }

    fn create_args(argv: &[&str]) -> Result<CreateArgs, clap::Error> {
        let mut full = vec!["test", "create"];
        full.extend_from_slice(argv);
        match Test::try_parse_from(full)?.command {
            ScheduleCommand::Create(a) => Ok(*a),
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn preset_or_cron_is_required_and_exclusive() {
        assert!(create_args(&["nightly"]).is_err());
        assert!(create_args(&["nightly", "--preset", "weekly", "--cron", "0 0 * * *"]).is_err());
        let a = create_args(&["nightly", "--preset", "biweekly"]).expect("parses");
        let spec = spec_from_args(&a).expect("valid");
        assert_eq!(spec.preset, Some(Preset::Biweekly));
        assert!(create_args(&["nightly", "--preset", "daily"]).is_err());
    }

    #[test]
    fn invalid_cron_and_zone_are_usage_errors_that_show_the_problem() {
        let a = create_args(&["x", "--cron", "0 0 * * 8"]).expect("parses");
        let e = spec_from_args(&a).expect_err("invalid");
        assert!(e.0.starts_with("--cron: invalid cron expression"), "{e}");
        assert!(e.0.contains("day-of-week"), "{e}");
        let a = create_args(&["x", "--preset", "weekly", "--timezone", "Europe/Berln"])
            .expect("parses");
        let e = spec_from_args(&a).expect_err("invalid");
        assert!(e.0.starts_with("--timezone: unknown time zone"), "{e}");
    }

    #[test]
    fn selection_flags_become_backup_options() {
        let a = create_args(&[
            "x",
            "--preset",
            "monthly",
            "--include-namespaces",
            "shop,web-*",
            "--exclude-resources",
            "secrets",
            "-l",
            "app=web",
            "--cluster-resources",
            "never",
            "--include-all-disks",
            "--ttl",
            "90d",
        ])
        .expect("parses");
        let ttl = backup::naming::parse_ttl(&a.ttl).expect("ttl");
        assert_eq!(ttl.as_secs(), 90 * 86_400);
        let o = a.selection.to_options(ttl.as_secs());
        assert_eq!(o.include_namespaces, ["shop", "web-*"]);
        assert_eq!(o.exclude_resources, ["secrets"]);
        assert_eq!(o.label_selector.as_deref(), Some("app=web"));
        assert_eq!(o.cluster_resources, crate::archive::ClusterResources::Never);
        assert!(o.include_all_disks);
        assert_eq!(o.ttl_seconds, 90 * 86_400);
        assert_eq!(a.image, objects::default_image());
    }

    #[test]
    fn names_and_prefixes_are_checked() {
        assert!(check_name("nightly").is_ok());
        assert!(check_name("Nightly").is_err());
        assert!(check_name(&"a".repeat(objects::MAX_NAME_LEN + 1)).is_err());
        assert!(check_prefix(&"p".repeat(spec::MAX_PREFIX_LEN)).is_ok());
        assert!(check_prefix(&"p".repeat(spec::MAX_PREFIX_LEN + 1)).is_err());
    }

    #[test]
    fn manual_job_names_fit_the_job_name_label() {
        let name = manual_job_name(&"n".repeat(objects::MAX_NAME_LEN));
        assert!(name.len() <= 63, "{name}");
        assert!(backup_common::is_dns1123_label(&name));
        assert_ne!(manual_job_name("a"), manual_job_name("a"));
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("time")
            .with_timezone(&Utc)
    }

    fn weekly_config() -> (ScheduleConfig, ScheduleSpec) {
        let spec = ScheduleSpec::from_preset(Preset::Biweekly, None);
        let config = ScheduleConfig {
            format_version: objects::CONFIG_FORMAT,
            name: "fortnightly".to_owned(),
            preset: spec.preset,
            cron: spec.cron.as_str().to_owned(),
            time_zone: None,
            location: None,
            prefix: "fortnightly".to_owned(),
            ttl: "30d".to_owned(),
            ttl_seconds: 30 * 86_400,
            backup: BackupOptions::default(),
            created_at: utc("2026-11-01T00:00:00Z"),
        };
        (config, spec)
    }

    fn cron_job_with(suspend: bool, last_schedule: Option<&str>) -> CronJob {
        serde_json::from_value(json!({
            "metadata": { "name": "schedule-fortnightly" },
            "spec": { "schedule": "0 0 * * 0", "suspend": suspend, "jobTemplate": {} },
            "status": { "lastScheduleTime": last_schedule },
        }))
        .expect("cron job")
    }

    #[test]
    fn status_merges_the_runs_record_with_the_cron_jobs() {
        let (config, spec) = weekly_config();
        let now = utc("2026-11-21T15:00:00Z");
        // Never ran.
        let s = ScheduleStatus::new(&config, &spec, Some(&cron_job_with(false, None)), None, now);
        assert_eq!((s.last_run, s.last_result.clone()), (None, None));
        assert_eq!(s.next_run, Some(utc("2026-11-22T00:00:00Z")));
        assert!(!s.paused && !s.cron_job_missing);
        assert_eq!(s.ttl, "30d");

        // A run that recorded itself; biweekly's next backup is two weeks on.
        let record = LastRun {
            time: utc("2026-11-15T00:00:02Z"),
            result: "Completed".to_owned(),
            backup: Some("fortnightly-20261115000002".to_owned()),
            message: None,
            last_success: Some(utc("2026-11-15T00:00:02Z")),
        };
        let cj = cron_job_with(false, Some("2026-11-15T00:00:00Z"));
        let s = ScheduleStatus::new(&config, &spec, Some(&cj), Some(record.clone()), now);
        assert_eq!(s.last_run, Some(record.time));
        assert_eq!(s.last_result.as_deref(), Some("Completed"));
        assert_eq!(s.last_backup, record.backup);
        assert_eq!(s.next_run, Some(utc("2026-11-29T00:00:00Z")));

        // The controller started a later run that left no record (it died).
        let cj = cron_job_with(false, Some("2026-11-22T00:00:00Z"));
        let s = ScheduleStatus::new(&config, &spec, Some(&cj), Some(record.clone()), now);
        assert_eq!(s.last_run, Some(utc("2026-11-22T00:00:00Z")));
        assert_eq!(
            s.last_result.as_deref(),
            Some("Unknown (no record from the run)")
        );

        // Paused, or the CronJob gone: no next run.
        let s = ScheduleStatus::new(&config, &spec, Some(&cron_job_with(true, None)), None, now);
        assert!(s.paused);
        assert_eq!(s.next_run, None);
        let s = ScheduleStatus::new(&config, &spec, None, Some(record), now);
        assert!(s.cron_job_missing);
        assert_eq!(s.next_run, None);
    }

    #[test]
    fn describe_says_which_run_removes_each_backup() {
        let (config, spec) = weekly_config();
        let now = utc("2026-11-21T15:00:00Z");
        let backup = ProducedBackup {
            name: "fortnightly-20261115000002".to_owned(),
            phase: "Completed".to_owned(),
            started_at: utc("2026-11-15T00:00:02Z"),
            expires_at: Some(utc("2026-12-15T00:00:02Z")),
        };
        let describe = |paused: bool| {
            let cj = cron_job_with(paused, None);
            let d = Description {
                status: ScheduleStatus::new(&config, &spec, Some(&cj), None, now),
                upcoming_runs: Vec::new(),
                jobs: Vec::new(),
                backups: vec![backup.clone()],
                backups_error: None,
            };
            render_description(&d, &spec)
        };
        let text = describe(false);
        assert!(text.contains("Two-week rule:"), "{text}");
        // Expires Tuesday 12-15; the weekly run of Sunday 12-20 prunes it (even
        // if the two-week rule skips that run's backup).
        assert!(
            text.contains("2026-12-15 00:00 UTC (removed by the run of 2026-12-20 00:00 UTC)"),
            "{text}"
        );
        let text = describe(true);
        assert!(text.contains("Paused:             yes"), "{text}");
        assert!(
            text.contains("(removed by 'kubectl backup prune')"),
            "{text}"
        );
    }

    #[test]
    fn stuck_pods_say_why() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": { "name": "p1" },
            "status": {
                "phase": "Pending",
                "conditions": [{ "type": "PodScheduled", "status": "False",
                                 "reason": "Unschedulable", "message": "0/0 nodes are available" }],
            },
        }))
        .expect("pod");
        assert_eq!(
            describe_pod(&pod),
            "pod p1 Pending (not scheduled: 0/0 nodes are available)"
        );
        let pod: Pod = serde_json::from_value(json!({
            "metadata": { "name": "p2" },
            "status": {
                "phase": "Pending",
                "containerStatuses": [{ "name": "backup", "image": "i", "imageID": "", "ready": false,
                    "restartCount": 0, "state": { "waiting": { "reason": "ImagePullBackOff" } } }],
            },
        }))
        .expect("pod");
        assert_eq!(describe_pod(&pod), "pod p2 Pending (ImagePullBackOff)");
    }
}

//! One scheduled run: `kubectl-backup create --from-schedule NAME`, what the
//! schedule's CronJob executes (and `schedule run` starts by hand).
//!
//! 1. Read the schedule's ConfigMap from the tool's namespace.
//! 2. For `biweekly`, apply the two-week rule against the location's catalog
//!    (the source of truth, not the ConfigMap's record) and maybe skip.
//! 3. Take the backup `<prefix>-<UTC timestamp>` with the stored options,
//!    through the same code as `kubectl backup create`.
//! 4. Prune every expired backup of the location, whatever 2 and 3 did.
//! 5. Record the outcome in the ConfigMap for `schedule list`.

use std::time::Duration as StdDuration;

use anyhow::Context as _;
use chrono::Utc;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use super::command;
use super::objects::{self, LastRun};
use super::produced;
use super::spec::{Preset, RunDecision, two_week_rule};
use crate::Outcome;
use crate::archive::{self, Phase};
use crate::backup::run::BackupRequest;
use crate::backup::{self, catalog, naming};
use crate::cli::GlobalArgs;
use crate::output::OutputFormat;

/// How long a scheduled run waits for each volume snapshot (as `create`'s default).
const SNAPSHOT_TIMEOUT: StdDuration = StdDuration::from_secs(600);

/// Run schedule `name` once, now.
pub async fn run_scheduled(
    global: &GlobalArgs,
    name: &str,
    output: Option<OutputFormat>,
) -> anyhow::Result<Outcome> {
    let client = crate::cluster::connect(global).await?;
    let ns = global.tool_namespace.as_str();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let cm = cms
        .get_opt(&objects::object_name(name))
        .await
        .with_context(|| format!("reading schedule {name:?} from namespace {ns}"))?
        .ok_or_else(|| command::Error::NotFound {
            name: name.to_owned(),
            namespace: ns.to_owned(),
            known: "see 'kubectl backup schedule list'".to_owned(),
        })?;
    let config = objects::read_config(&cm)?;
    let spec = config.spec()?;
    let started = Utc::now();
    let store = produced::open_location(global, config.location.as_deref()).await?;
    let backups = produced::produced_in(&store, &config).await?;
    let last_success = produced::last_success(&backups);

    let mut record = LastRun {
        time: started,
        result: String::new(),
        backup: None,
        message: None,
        last_success,
    };

    let decision = if spec.preset == Some(Preset::Biweekly) {
        two_week_rule(last_success, started)
    } else {
        RunDecision::Run
    };
    let backup_result = match decision {
        RunDecision::Skip { last_success, age } => {
            let message = format!(
                "skipped by the two-week rule: the last successful backup started {} ago ({}), \
                 less than 13 days",
                humantime::format_duration(StdDuration::from_secs(age.num_seconds().max(0) as u64)),
                last_success.format("%Y-%m-%d %H:%M UTC")
            );
            eprintln!("schedule {name:?}: {message}");
            record.result = "Skipped".to_owned();
            record.message = Some(message);
            Ok(Outcome::Success)
        }
        RunDecision::Run => {
            let backup_name = naming::name_from_prefix(&config.prefix, started)
                .map_err(backup::Error::into_anyhow)?;
            record.backup = Some(backup_name.clone());
            let request = BackupRequest {
                name: backup_name.clone(),
                started_at: started,
                options: config.backup.clone(),
                schedule: Some(config.name.clone()),
                snapshot_timeout: SNAPSHOT_TIMEOUT,
                snapshot_classes: Default::default(),
            };
            let result = backup::create_backup(global, &store, &request, output).await;
            // The manifest says how it ended, also when create_backup failed
            // after writing it.
            let phase = archive::read_manifest(&store, &backup_name)
                .await
                .ok()
                .map(|m| m.phase);
            record.result = match (&result, phase) {
                (_, Some(p)) => p.as_str().to_owned(),
                (Ok(_), None) => Phase::Completed.as_str().to_owned(),
                (Err(_), None) => Phase::Failed.as_str().to_owned(),
            };
            if let Err(e) = &result {
                record.message = Some(format!("{e:#}"));
            }
            if phase == Some(Phase::Completed) {
                record.last_success = Some(started);
            }
            result
        }
    };

    // Expiry is honoured on every run, whatever the backup did.
    let prune = catalog::prune(&store, Some(&client), Utc::now(), false).await;
    match &prune {
        Ok(report) => {
            for gone in &report.expired {
                eprintln!("pruned expired backup {gone}");
            }
            for failed in &report.failed {
                eprintln!(
                    "warning: could not prune expired backup {}: {}",
                    failed.name, failed.reason
                );
            }
        }
        Err(e) => eprintln!("warning: pruning expired backups failed: {e}"),
    }
    if record.message.is_none()
        && let Err(e) = &prune
    {
        record.message = Some(format!("pruning expired backups failed: {e}"));
    }

    if let Err(e) = save_record(&cms, name, &record).await {
        // The run itself is done; a missing record only makes `list` vaguer.
        eprintln!("warning: could not record the run in the schedule's ConfigMap: {e:#}");
    }
    backup_result
}

/// Write the run's record into the schedule's ConfigMap.
async fn save_record(cms: &Api<ConfigMap>, name: &str, record: &LastRun) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(record)?;
    cms.patch(
        &objects::object_name(name),
        &PatchParams::default(),
        &Patch::Merge(json!({ "data": { objects::LAST_RUN_KEY: text } })),
    )
    .await?;
    Ok(())
}

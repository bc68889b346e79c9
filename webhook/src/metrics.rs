//! Prometheus metrics in the text exposition format, kept in atomics so that
//! recording costs a few nanoseconds on the request path.
//!
//! - `backup_webhook_requests_total{endpoint,code}`
//! - `backup_webhook_decisions_total{endpoint,policy,outcome}`
//! - `backup_webhook_request_duration_seconds{endpoint}` (histogram)
//! - `backup_webhook_reloads_total{file,result}`
//! - `backup_webhook_ready`, `backup_webhook_storage_classes`

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use crate::policy::{Outcome, PolicyName, Stage};

/// Upper bounds of the latency histogram buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

/// HTTP status codes the admission endpoints answer with.
const CODES: [u16; 4] = [200, 400, 413, 415];

/// Which file a reload was about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReloadFile {
    /// The serving certificate and key.
    Certificate,
    /// The policy YAML.
    Policy,
}

#[derive(Debug, Default)]
struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_nanos: AtomicU64,
}

/// All metrics of one server.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: [[AtomicU64; CODES.len()]; 2],
    decisions: [[[AtomicU64; Outcome::ALL.len()]; PolicyName::ALL.len()]; 2],
    latency: [Histogram; 2],
    reloads: [[AtomicU64; 2]; 2],
    ready: AtomicU64,
    storage_classes: AtomicU64,
}

fn stage_index(stage: Stage) -> usize {
    match stage {
        Stage::Mutate => 0,
        Stage::Validate => 1,
    }
}

const STAGES: [Stage; 2] = [Stage::Mutate, Stage::Validate];

impl Metrics {
    /// Count a request and its latency.
    pub fn observe_request(&self, stage: Stage, code: u16, elapsed: Duration) {
        let s = stage_index(stage);
        if let Some(i) = CODES.iter().position(|c| *c == code) {
            self.requests[s][i].fetch_add(1, Relaxed);
        }
        let h = &self.latency[s];
        let secs = elapsed.as_secs_f64();
        // Buckets are stored non-cumulatively and summed when rendered.
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            h.buckets[i].fetch_add(1, Relaxed);
        }
        h.count.fetch_add(1, Relaxed);
        h.sum_nanos.fetch_add(
            u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX),
            Relaxed,
        );
    }

    /// Count a policy decision.
    pub fn observe_decision(&self, stage: Stage, policy: PolicyName, outcome: Outcome) {
        let p = PolicyName::ALL.iter().position(|x| *x == policy);
        let o = Outcome::ALL.iter().position(|x| *x == outcome);
        if let (Some(p), Some(o)) = (p, o) {
            self.decisions[stage_index(stage)][p][o].fetch_add(1, Relaxed);
        }
    }

    /// Count a reload attempt.
    pub fn observe_reload(&self, file: ReloadFile, ok: bool) {
        let f = match file {
            ReloadFile::Certificate => 0,
            ReloadFile::Policy => 1,
        };
        self.reloads[f][usize::from(!ok)].fetch_add(1, Relaxed);
    }

    /// Set the readiness gauge.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(u64::from(ready), Relaxed);
    }

    /// Set the number of cached StorageClasses.
    pub fn set_storage_classes(&self, n: usize) {
        self.storage_classes
            .store(u64::try_from(n).unwrap_or(u64::MAX), Relaxed);
    }

    /// Render in the Prometheus text format (version 0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        // Writing to a String cannot fail.
        let _ = self.render_into(&mut out);
        out
    }

    fn render_into(&self, out: &mut String) -> std::fmt::Result {
        writeln!(
            out,
            "# HELP backup_webhook_requests_total Admission requests by endpoint and HTTP status."
        )?;
        writeln!(out, "# TYPE backup_webhook_requests_total counter")?;
        for stage in STAGES {
            for (i, code) in CODES.iter().enumerate() {
                let n = self.requests[stage_index(stage)][i].load(Relaxed);
                writeln!(
                    out,
                    "backup_webhook_requests_total{{endpoint=\"{}\",code=\"{code}\"}} {n}",
                    stage.as_str()
                )?;
            }
        }
        writeln!(
            out,
            "# HELP backup_webhook_decisions_total Policy decisions by endpoint, policy and outcome."
        )?;
        writeln!(out, "# TYPE backup_webhook_decisions_total counter")?;
        for stage in STAGES {
            for (p, policy) in PolicyName::ALL.iter().enumerate() {
                for (o, outcome) in Outcome::ALL.iter().enumerate() {
                    let n = self.decisions[stage_index(stage)][p][o].load(Relaxed);
                    writeln!(
                        out,
                        "backup_webhook_decisions_total{{endpoint=\"{}\",policy=\"{}\",outcome=\"{}\"}} {n}",
                        stage.as_str(),
                        policy.as_str(),
                        outcome.as_str()
                    )?;
                }
            }
        }
        writeln!(
            out,
            "# HELP backup_webhook_request_duration_seconds Time from request to response."
        )?;
        writeln!(
            out,
            "# TYPE backup_webhook_request_duration_seconds histogram"
        )?;
        for stage in STAGES {
            let h = &self.latency[stage_index(stage)];
            let mut cumulative = 0;
            for (i, bound) in BUCKETS.iter().enumerate() {
                cumulative += h.buckets[i].load(Relaxed);
                writeln!(
                    out,
                    "backup_webhook_request_duration_seconds_bucket{{endpoint=\"{}\",le=\"{bound}\"}} {cumulative}",
                    stage.as_str()
                )?;
            }
            let count = h.count.load(Relaxed);
            writeln!(
                out,
                "backup_webhook_request_duration_seconds_bucket{{endpoint=\"{}\",le=\"+Inf\"}} {count}",
                stage.as_str()
            )?;
            // Nanoseconds to seconds for display; precision loss is irrelevant here.
            #[allow(clippy::cast_precision_loss)]
            let sum = h.sum_nanos.load(Relaxed) as f64 / 1e9;
            writeln!(
                out,
                "backup_webhook_request_duration_seconds_sum{{endpoint=\"{}\"}} {sum}",
                stage.as_str()
            )?;
            writeln!(
                out,
                "backup_webhook_request_duration_seconds_count{{endpoint=\"{}\"}} {count}",
                stage.as_str()
            )?;
        }
        writeln!(
            out,
            "# HELP backup_webhook_reloads_total Certificate and policy reloads by result."
        )?;
        writeln!(out, "# TYPE backup_webhook_reloads_total counter")?;
        for (f, file) in ["certificate", "policy"].iter().enumerate() {
            for (r, result) in ["ok", "error"].iter().enumerate() {
                writeln!(
                    out,
                    "backup_webhook_reloads_total{{file=\"{file}\",result=\"{result}\"}} {}",
                    self.reloads[f][r].load(Relaxed)
                )?;
            }
        }
        writeln!(
            out,
            "# HELP backup_webhook_ready 1 once the StorageClass cache has synced."
        )?;
        writeln!(out, "# TYPE backup_webhook_ready gauge")?;
        writeln!(out, "backup_webhook_ready {}", self.ready.load(Relaxed))?;
        writeln!(
            out,
            "# HELP backup_webhook_storage_classes StorageClasses in the watch cache."
        )?;
        writeln!(out, "# TYPE backup_webhook_storage_classes gauge")?;
        writeln!(
            out,
            "backup_webhook_storage_classes {}",
            self.storage_classes.load(Relaxed)
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_a_cumulative_histogram() {
        let m = Metrics::default();
        m.observe_request(Stage::Mutate, 200, Duration::from_micros(80));
        m.observe_request(Stage::Mutate, 200, Duration::from_micros(700));
        m.observe_request(Stage::Validate, 400, Duration::from_secs(5));
        m.observe_decision(Stage::Mutate, PolicyName::SnapshotClass, Outcome::Mutated);
        m.observe_reload(ReloadFile::Policy, false);
        m.set_ready(true);
        let text = m.render();
        assert!(text.contains("backup_webhook_requests_total{endpoint=\"mutate\",code=\"200\"} 2"));
        assert!(
            text.contains("backup_webhook_requests_total{endpoint=\"validate\",code=\"400\"} 1")
        );
        assert!(text.contains(
            "backup_webhook_decisions_total{endpoint=\"mutate\",policy=\"snapshot-class\",outcome=\"mutated\"} 1"
        ));
        assert!(text.contains(
            "backup_webhook_request_duration_seconds_bucket{endpoint=\"mutate\",le=\"0.0001\"} 1"
        ));
        assert!(text.contains(
            "backup_webhook_request_duration_seconds_bucket{endpoint=\"mutate\",le=\"0.001\"} 2"
        ));
        // 5 s is beyond the last bucket: only in +Inf.
        assert!(text.contains(
            "backup_webhook_request_duration_seconds_bucket{endpoint=\"validate\",le=\"1\"} 0"
        ));
        assert!(text.contains(
            "backup_webhook_request_duration_seconds_bucket{endpoint=\"validate\",le=\"+Inf\"} 1"
        ));
        assert!(text.contains("backup_webhook_reloads_total{file=\"policy\",result=\"error\"} 1"));
        assert!(text.contains("backup_webhook_ready 1"));
    }
}

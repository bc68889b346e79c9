//! When a schedule runs: Palette's presets, custom cron expressions, the time
//! zone, and the decisions a run makes from timestamps (the two-week rule,
//! expiry). Everything here is pure and unit-tested; the cluster side lives in
//! the sibling modules.

use std::fmt;

use chrono::{DateTime, Duration, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use clap::ValueEnum;
use serde::{Deserialize, Serialize};

use super::cron::{self, CronError, CronExpr};
use crate::backup::naming::PREFIX_TIMESTAMP_FORMAT;

/// Palette's schedule presets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    /// Every week on Sunday at midnight (`0 0 * * 0`).
    Weekly,
    /// Every two weeks on Sunday at midnight: a weekly CronJob whose run is
    /// skipped while the schedule's last successful backup is younger than 13 days.
    Biweekly,
    /// Every month on the 1st at midnight (`0 0 1 * *`).
    Monthly,
    /// Every two months on the 1st at midnight (`0 0 1 */2 *`: Jan, Mar, May, ...).
    Bimonthly,
    /// Never: the schedule exists, is suspended, and runs only with `schedule run`.
    Never,
}

/// The CronJob schedule of the `never` preset: February 30th does not exist,
/// so even a resumed CronJob would not fire. It is also created suspended.
const NEVER_CRON: &str = "0 0 30 2 *";

impl Preset {
    /// The cron expression the CronJob gets.
    pub fn cron(self) -> &'static str {
        match self {
            Preset::Weekly | Preset::Biweekly => "0 0 * * 0",
            Preset::Monthly => "0 0 1 * *",
            Preset::Bimonthly => "0 0 1 */2 *",
            Preset::Never => NEVER_CRON,
        }
    }

    /// Palette's wording.
    pub fn words(self) -> &'static str {
        match self {
            Preset::Weekly => "every week on Sunday at midnight",
            Preset::Biweekly => "every two weeks on Sunday at midnight",
            Preset::Monthly => "every month on the 1st at midnight",
            Preset::Bimonthly => "every two months on the 1st at midnight",
            Preset::Never => "never (run on demand with 'schedule run')",
        }
    }

    /// The value as typed on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Preset::Weekly => "weekly",
            Preset::Biweekly => "biweekly",
            Preset::Monthly => "monthly",
            Preset::Bimonthly => "bimonthly",
            Preset::Never => "never",
        }
    }
}

impl fmt::Display for Preset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An IANA time zone name that is not known.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown time zone {given:?}: {hint}")]
pub struct TimeZoneError {
    /// The name as given.
    pub given: String,
    /// What to do instead.
    pub hint: String,
}

/// Validate a time zone for a CronJob's `spec.timeZone`: an IANA name from the
/// tz database, spelled exactly (the API server loads it case-sensitively).
/// "Local" is refused as the API server refuses it.
pub fn parse_time_zone(name: &str) -> Result<Tz, TimeZoneError> {
    let fail = |hint: String| TimeZoneError {
        given: name.to_owned(),
        hint,
    };
    if name.eq_ignore_ascii_case("local") {
        return Err(fail(
            "the cluster's local time is not allowed; name a zone such as Europe/Berlin, or UTC"
                .to_owned(),
        ));
    }
    if let Ok(tz) = name.parse::<Tz>() {
        return Ok(tz);
    }
    if let Some(tz) = chrono_tz::TZ_VARIANTS
        .iter()
        .find(|tz| tz.name().eq_ignore_ascii_case(name))
    {
        return Err(fail(format!(
            "time zone names are case-sensitive; did you mean {}?",
            tz.name()
        )));
    }
    // Suggest zones whose last component matches ("berlin" → Europe/Berlin).
    let wanted = name.rsplit('/').next().unwrap_or(name).replace(' ', "_");
    let similar: Vec<&str> = chrono_tz::TZ_VARIANTS
        .iter()
        .map(|tz| tz.name())
        .filter(|n| {
            n.rsplit('/')
                .next()
                .is_some_and(|last| last.eq_ignore_ascii_case(&wanted))
        })
        .take(3)
        .collect();
    if similar.is_empty() {
        Err(fail(
            "use an IANA name from the tz database, e.g. UTC, Europe/Berlin, America/New_York"
                .to_owned(),
        ))
    } else {
        Err(fail(format!("did you mean {}?", similar.join(" or "))))
    }
}

/// An invalid schedule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// The cron expression does not parse.
    #[error(transparent)]
    Cron(#[from] CronError),
    /// The cron expression parses but names no time that exists.
    #[error(
        "the cron expression {expr:?} never fires ({words}); to keep a schedule that only runs on demand use --preset never"
    )]
    NeverFires {
        /// The expression.
        expr: String,
        /// It in words.
        words: String,
    },
    /// The time zone is unknown.
    #[error(transparent)]
    TimeZone(#[from] TimeZoneError),
}

/// When a schedule runs: a preset or a custom expression, in a time zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleSpec {
    /// The preset, when the schedule was made from one.
    pub preset: Option<Preset>,
    /// The expression the CronJob gets.
    pub cron: CronExpr,
    /// `spec.timeZone`; `None` means the controller's zone, UTC on every
    /// managed Kubernetes and in kube-controller-manager's default image.
    pub time_zone: Option<Tz>,
}

impl ScheduleSpec {
    /// A schedule from a preset.
    pub fn from_preset(preset: Preset, time_zone: Option<Tz>) -> Self {
        ScheduleSpec {
            preset: Some(preset),
            // Presets are constants covered by a unit test.
            cron: preset
                .cron()
                .parse()
                .unwrap_or_else(|e: CronError| unreachable!("preset cron is valid: {e}")),
            time_zone,
        }
    }

    /// A schedule from a user's cron expression, refused when it does not
    /// parse or never fires.
    pub fn from_cron(expr: &str, time_zone: Option<Tz>) -> Result<Self, SpecError> {
        let cron = cron::parse(expr)?;
        let zone = time_zone.unwrap_or(Tz::UTC);
        if cron.next_after(Utc::now(), zone).is_none() {
            return Err(SpecError::NeverFires {
                expr: cron.as_str().to_owned(),
                words: cron.describe(),
            });
        }
        Ok(ScheduleSpec {
            preset: None,
            cron,
            time_zone,
        })
    }

    /// Rebuild a spec from what a ConfigMap stored (a preset name or a cron
    /// expression, and a zone name).
    pub fn from_stored(
        preset: Option<Preset>,
        cron: &str,
        time_zone: Option<&str>,
    ) -> Result<Self, SpecError> {
        let time_zone = time_zone.map(parse_time_zone).transpose()?;
        match preset {
            Some(p) => Ok(Self::from_preset(p, time_zone)),
            None => Ok(ScheduleSpec {
                preset: None,
                cron: cron::parse(cron)?,
                time_zone,
            }),
        }
    }

    /// Does the CronJob stay suspended whatever `resume` says?
    pub fn never_runs(&self) -> bool {
        self.preset == Some(Preset::Never)
    }

    /// The zone the fields are read in.
    pub fn zone(&self) -> Tz {
        self.time_zone.unwrap_or(Tz::UTC)
    }

    /// The schedule in words, with the zone when it is not UTC.
    pub fn words(&self) -> String {
        let words = match self.preset {
            Some(p) => p.words().to_owned(),
            None => self.cron.describe(),
        };
        match self.time_zone {
            Some(tz) if tz != Tz::UTC && !self.never_runs() => format!("{words} ({})", tz.name()),
            _ => words,
        }
    }

    /// The next time the CronJob fires after `after` (for `biweekly`, a run
    /// that may still skip by the two-week rule; see [`next_backup`]).
    pub fn next_run(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if self.never_runs() {
            return None;
        }
        self.cron.next_after(after, self.zone())
    }

    /// The next run that will actually take a backup, given the schedule's
    /// last successful backup: for `biweekly` the first weekly run at which
    /// the two-week rule lets the backup happen.
    pub fn next_backup(
        &self,
        after: DateTime<Utc>,
        last_success: Option<DateTime<Utc>>,
    ) -> Option<DateTime<Utc>> {
        let mut t = self.next_run(after)?;
        if self.preset != Some(Preset::Biweekly) {
            return Some(t);
        }
        // At most two weekly runs can be skipped before 13 days have passed.
        for _ in 0..3 {
            if two_week_rule(last_success, t).runs() {
                return Some(t);
            }
            t = self.next_run(t)?;
        }
        Some(t)
    }
}

/// The shortest age of the last successful backup at which a `biweekly` run
/// takes a new one. The CronJob fires every Sunday at 00:00; the previous
/// successful backup of a two-week cycle is then about 14 days old (a little
/// less if that run started late), and last week's skipped run saw it 7 days
/// old. 13 days separates the two with a day of slack for late starts.
pub const BIWEEKLY_MIN_AGE: Duration = Duration::days(13);

/// What a `biweekly` run does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunDecision {
    /// Take the backup.
    Run,
    /// Skip: the last successful backup is younger than [`BIWEEKLY_MIN_AGE`].
    Skip {
        /// When the last successful backup started.
        last_success: DateTime<Utc>,
        /// How old it is.
        age: Duration,
    },
}

impl RunDecision {
    /// Does the backup happen?
    pub fn runs(self) -> bool {
        matches!(self, RunDecision::Run)
    }
}

/// The two-week rule: run unless the last successful backup of this schedule
/// started less than [`BIWEEKLY_MIN_AGE`] before `now`. A backup "from the
/// future" (clock skew) counts as recent, so skew never doubles backups.
pub fn two_week_rule(last_success: Option<DateTime<Utc>>, now: DateTime<Utc>) -> RunDecision {
    match last_success {
        Some(last) if now - last < BIWEEKLY_MIN_AGE => RunDecision::Skip {
            last_success: last,
            age: now - last,
        },
        _ => RunDecision::Run,
    }
}

/// The longest prefix that still leaves room for `-` and the 14-digit
/// timestamp inside a 63-character DNS-1123 label.
pub const MAX_PREFIX_LEN: usize = 63 - 1 - 14;

/// If `name` is a backup taken by a schedule with this prefix, the time in
/// its name (`<prefix>-<UTC yyyymmddhhmmss>`, as `create --prefix` names
/// backups). A schedule with prefix `nightly` does not claim `nightly-db-…`.
pub fn backup_time(prefix: &str, name: &str) -> Option<DateTime<Utc>> {
    let stamp = name.strip_prefix(prefix)?.strip_prefix('-')?;
    if stamp.len() != 14 || !stamp.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    NaiveDateTime::parse_from_str(stamp, PREFIX_TIMESTAMP_FORMAT)
        .ok()
        .map(|t| Utc.from_utc_datetime(&t))
}

impl ScheduleSpec {
    /// The run that will delete a backup expiring at `expires_at`: every run
    /// (including a biweekly run that skips its backup) prunes the location
    /// after its backup, and a backup is expired from the instant of its
    /// expiry on, so it is the first run at or after that instant. `None`
    /// for `never`: only `kubectl backup prune` (or a manual run) removes it.
    pub fn pruned_by(&self, expires_at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.next_run(expires_at - Duration::seconds(1))
    }
}

/// Render a UTC instant in the schedule's zone for people (RFC 3339 with the offset).
pub fn local_time(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz).format("%Y-%m-%d %H:%M %Z").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("test timestamp")
            .with_timezone(&Utc)
    }

    #[test]
    fn presets_map_to_palettes_cron() {
        let expected = [
            (Preset::Weekly, "0 0 * * 0"),
            (Preset::Biweekly, "0 0 * * 0"),
            (Preset::Monthly, "0 0 1 * *"),
            (Preset::Bimonthly, "0 0 1 */2 *"),
            (Preset::Never, "0 0 30 2 *"),
        ];
        for (preset, cron) in expected {
            assert_eq!(preset.cron(), cron);
            let spec = ScheduleSpec::from_preset(preset, None);
            assert_eq!(spec.cron.as_str(), cron);
        }
    }

    #[test]
    fn preset_runs_fall_where_palette_says() {
        let after = utc("2026-11-21T15:12:00Z"); // a Saturday
        let weekly = ScheduleSpec::from_preset(Preset::Weekly, None);
        assert_eq!(weekly.next_run(after), Some(utc("2026-11-22T00:00:00Z")));
        let monthly = ScheduleSpec::from_preset(Preset::Monthly, None);
        assert_eq!(monthly.next_run(after), Some(utc("2026-12-01T00:00:00Z")));
        let bimonthly = ScheduleSpec::from_preset(Preset::Bimonthly, None);
        assert_eq!(bimonthly.next_run(after), Some(utc("2027-01-01T00:00:00Z")));
        let never = ScheduleSpec::from_preset(Preset::Never, None);
        assert_eq!(never.next_run(after), None);
        assert!(never.never_runs());
        // The never preset's cron does not fire even if resumed by hand.
        assert_eq!(never.cron.next_after(after, Tz::UTC), None);
    }

    #[test]
    fn biweekly_runs_every_other_sunday() {
        let spec = ScheduleSpec::from_preset(Preset::Biweekly, None);
        // No backup yet: the first Sunday takes one.
        let after = utc("2026-11-21T15:12:00Z");
        assert_eq!(
            spec.next_backup(after, None),
            Some(utc("2026-11-22T00:00:00Z"))
        );
        // Last backup on 2026-11-22 00:00:03: the run on the 29th skips, the
        // one on December 6th takes the next.
        let last = utc("2026-11-22T00:00:03Z");
        assert_eq!(
            spec.next_backup(utc("2026-11-22T00:05:00Z"), Some(last)),
            Some(utc("2026-12-06T00:00:00Z"))
        );
        // Simulate a year of weekly runs: exactly every other one backs up.
        let mut last_success = None;
        let mut t = after;
        let mut taken = Vec::new();
        for _ in 0..52 {
            t = spec.next_run(t).expect("weekly runs");
            if two_week_rule(last_success, t).runs() {
                // The backup starts a few seconds after the scheduled time.
                last_success = Some(t + Duration::seconds(5));
                taken.push(t);
            }
        }
        assert_eq!(taken.len(), 26);
        assert!(taken.windows(2).all(|w| w[1] - w[0] == Duration::days(14)));
    }

    #[test]
    fn two_week_rule_boundaries() {
        let now = utc("2026-12-06T00:00:00Z");
        assert_eq!(two_week_rule(None, now), RunDecision::Run);
        // 7 days old: skip.
        let week = utc("2026-11-29T00:00:02Z");
        assert_eq!(
            two_week_rule(Some(week), now),
            RunDecision::Skip {
                last_success: week,
                age: now - week
            }
        );
        // A late start two weeks ago (00:40) still leaves it over 13 days old.
        assert!(two_week_rule(Some(utc("2026-11-22T00:40:00Z")), now).runs());
        // Exactly 13 days: run; a second less: skip.
        assert!(two_week_rule(Some(now - Duration::days(13)), now).runs());
        assert!(!two_week_rule(Some(now - Duration::days(13) + Duration::seconds(1)), now).runs());
        // A backup stamped in the future (clock skew) is treated as recent.
        assert!(!two_week_rule(Some(now + Duration::hours(1)), now).runs());
    }

    #[test]
    fn biweekly_in_a_time_zone() {
        let tz = parse_time_zone("America/New_York").expect("tz");
        let spec = ScheduleSpec::from_preset(Preset::Biweekly, Some(tz));
        // Midnight Sunday in New York is 05:00 UTC in winter.
        let first = spec
            .next_backup(utc("2026-11-21T15:12:00Z"), None)
            .expect("runs");
        assert_eq!(first, utc("2026-11-22T05:00:00Z"));
        assert_eq!(
            spec.next_backup(first, Some(first)),
            Some(utc("2026-12-06T05:00:00Z"))
        );
        assert_eq!(
            spec.words(),
            "every two weeks on Sunday at midnight (America/New_York)"
        );
    }

    #[test]
    fn time_zones_are_validated() {
        assert_eq!(parse_time_zone("Europe/Berlin"), Ok(Tz::Europe__Berlin));
        assert_eq!(parse_time_zone("UTC"), Ok(Tz::UTC));
        let e = parse_time_zone("europe/berlin").expect_err("case");
        assert!(e.to_string().contains("did you mean Europe/Berlin"), "{e}");
        let e = parse_time_zone("Berlin").expect_err("bare city");
        assert!(e.to_string().contains("did you mean Europe/Berlin"), "{e}");
        let e = parse_time_zone("Mars/Olympus").expect_err("unknown");
        assert!(e.to_string().contains("IANA"), "{e}");
        assert!(parse_time_zone("Local").is_err());
    }

    #[test]
    fn custom_cron_is_validated() {
        let spec = ScheduleSpec::from_cron("30 2 * * 1-5", None).expect("valid");
        assert_eq!(spec.preset, None);
        assert_eq!(spec.words(), "at 02:30 on Monday to Friday");
        let e = ScheduleSpec::from_cron("0 0 31 4 *", None).expect_err("April 31st");
        assert!(matches!(e, SpecError::NeverFires { .. }), "{e}");
        assert!(e.to_string().contains("--preset never"), "{e}");
        assert!(matches!(
            ScheduleSpec::from_cron("0 24 * * *", None),
            Err(SpecError::Cron(_))
        ));
        let tz = parse_time_zone("Asia/Kolkata").expect("tz");
        let spec = ScheduleSpec::from_cron("0 1 * * *", Some(tz)).expect("valid");
        assert_eq!(spec.words(), "at 01:00 every day (Asia/Kolkata)");
        // 01:00 IST is 19:30 UTC the day before.
        assert_eq!(
            spec.next_run(utc("2026-11-21T15:12:00Z")),
            Some(utc("2026-11-21T19:30:00Z"))
        );
    }

    #[test]
    fn stored_specs_round_trip() {
        let spec =
            ScheduleSpec::from_stored(Some(Preset::Monthly), "0 0 1 * *", Some("Europe/Paris"))
                .expect("stored");
        assert_eq!(spec.preset, Some(Preset::Monthly));
        assert_eq!(spec.zone(), Tz::Europe__Paris);
        let spec = ScheduleSpec::from_stored(None, "15 3 * * *", None).expect("stored");
        assert_eq!(spec.cron.as_str(), "15 3 * * *");
        assert!(ScheduleSpec::from_stored(None, "nope", None).is_err());
    }

    #[test]
    fn backup_names_carry_the_utc_time() {
        let at = utc("2026-11-22T01:02:03+01:00");
        let name = crate::backup::naming::name_from_prefix("nightly", at).expect("name");
        assert_eq!(name, "nightly-20261122000203");
        assert_eq!(backup_time("nightly", &name), Some(at));
        assert_eq!(backup_time("nightly", "nightly-db-20261122000203"), None);
        assert_eq!(backup_time("nightly", "nightly-2026112200020"), None);
        assert_eq!(backup_time("nightly", "other-20261122000203"), None);
        assert_eq!(backup_time("nightly", "nightly-20261322000203"), None);
        let longest = crate::backup::naming::name_from_prefix(&"p".repeat(MAX_PREFIX_LEN), at)
            .expect("the longest prefix still makes a name");
        assert_eq!(longest.len(), 63);
    }

    #[test]
    fn expired_backups_are_pruned_by_the_next_run() {
        // Weekly: a backup of Sunday 2026-11-22 00:00 kept 30 days expires on
        // Tuesday 2026-12-22 00:00 and goes with the run of Sunday 12-27.
        let weekly = ScheduleSpec::from_preset(Preset::Weekly, None);
        let created = utc("2026-11-22T00:00:04Z");
        let expiry = created + Duration::days(30);
        assert_eq!(weekly.pruned_by(expiry), Some(utc("2026-12-27T00:00:00Z")));
        // A backup expiring exactly at a run time goes with that run.
        assert_eq!(
            weekly.pruned_by(utc("2026-12-27T00:00:00Z")),
            Some(utc("2026-12-27T00:00:00Z"))
        );
        // Monthly across month ends: 30 days after January 31st is March 2nd
        // (March 1st in a leap year); the next run on the 1st is April 1st (March 1st).
        let monthly = ScheduleSpec::from_preset(Preset::Monthly, None);
        assert_eq!(
            monthly.pruned_by(utc("2027-01-31T00:00:00Z") + Duration::days(30)),
            Some(utc("2027-04-01T00:00:00Z"))
        );
        assert_eq!(
            monthly.pruned_by(utc("2028-01-31T00:00:00Z") + Duration::days(30)),
            Some(utc("2028-03-01T00:00:00Z"))
        );
        // In a time zone: a backup expiring at 2026-11-30 23:30 UTC is already
        // December 1st 00:30 in Berlin, after that month's run at 00:00 CET
        // (23:00 UTC), so January's run removes it.
        let berlin = parse_time_zone("Europe/Berlin").expect("tz");
        let monthly_berlin = ScheduleSpec::from_preset(Preset::Monthly, Some(berlin));
        assert_eq!(
            monthly_berlin.pruned_by(utc("2026-11-30T23:30:00Z")),
            Some(utc("2026-12-31T23:00:00Z"))
        );
        assert_eq!(
            monthly_berlin.pruned_by(utc("2026-11-30T22:30:00Z")),
            Some(utc("2026-11-30T23:00:00Z"))
        );
        // never: no run prunes.
        let never = ScheduleSpec::from_preset(Preset::Never, None);
        assert_eq!(never.pruned_by(expiry), None);
        // Shown in the schedule's zone.
        assert_eq!(
            local_time(utc("2026-12-31T23:00:00Z"), berlin),
            "2027-01-01 00:00 CET"
        );
    }
}

//! Backup names and time-to-live: pure functions, no I/O.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::Error;

/// Timestamp format appended to a `--prefix`: UTC `yyyymmddhhmmss`.
pub const PREFIX_TIMESTAMP_FORMAT: &str = "%Y%m%d%H%M%S";

/// Length of the timestamp suffix, plus its dash.
const SUFFIX_LEN: usize = 15;

/// Check a backup name: a DNS-1123 label, because it becomes a label value
/// and part of VolumeSnapshot names.
pub fn validate_name(name: &str) -> Result<(), Error> {
    if backup_common::is_dns1123_label(name) {
        Ok(())
    } else {
        Err(Error::InvalidName {
            name: name.to_owned(),
        })
    }
}

/// `<prefix>-<UTC yyyymmddhhmmss>`. The prefix must leave room for the
/// timestamp in a 63-character label.
pub fn name_from_prefix(prefix: &str, now: DateTime<Utc>) -> Result<String, Error> {
    if prefix.len() + SUFFIX_LEN > 63 || !backup_common::is_dns1123_label(prefix) {
        return Err(Error::InvalidPrefix {
            prefix: prefix.to_owned(),
        });
    }
    let name = format!("{prefix}-{}", now.format(PREFIX_TIMESTAMP_FORMAT));
    validate_name(&name)?;
    Ok(name)
}

/// Parse a `--ttl` such as `720h`, `90d`, `2w`, `1h30m` or Velero's
/// `720h0m0s`. Zero is refused: a backup that expires immediately is a
/// mistake, not a wish.
pub fn parse_ttl(text: &str) -> Result<Duration, Error> {
    let invalid = |reason: &str| Error::InvalidTtl {
        ttl: text.to_owned(),
        reason: reason.to_owned(),
    };
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(invalid("it is empty"));
    }
    if trimmed.chars().all(|c| c.is_ascii_digit()) {
        return Err(invalid("give a unit, e.g. 720h or 30d"));
    }
    let ttl = humantime::parse_duration(trimmed).map_err(|e| invalid(&e.to_string()))?;
    if ttl.is_zero() {
        return Err(invalid("it must be longer than zero"));
    }
    // chrono cannot represent absurd durations; ten thousand years is plenty.
    if ttl.as_secs() > 10_000 * 365 * 24 * 3600 {
        return Err(invalid("it is longer than 10000 years"));
    }
    Ok(ttl)
}

/// Show a TTL the way users write it: whole days as `30d`, else hours, else
/// humantime's form.
pub fn format_ttl(seconds: u64) -> String {
    const DAY: u64 = 24 * 3600;
    if seconds.is_multiple_of(DAY) {
        format!("{}d", seconds / DAY)
    } else if seconds.is_multiple_of(3600) {
        format!("{}h", seconds / 3600)
    } else {
        humantime::format_duration(Duration::from_secs(seconds)).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_must_be_dns_labels() {
        assert!(validate_name("nightly-1").is_ok());
        for bad in ["Nightly", "a_b", "-a", "", "a.b"] {
            assert!(matches!(validate_name(bad), Err(Error::InvalidName { .. })));
        }
    }

    #[test]
    fn prefix_gets_a_utc_timestamp() {
        let now = DateTime::parse_from_rfc3339("2026-11-21T15:04:05+02:00")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            name_from_prefix("daily", now).unwrap(),
            "daily-20261121130405"
        );
        assert!(name_from_prefix(&"a".repeat(48), now).is_ok());
        assert!(name_from_prefix(&"a".repeat(49), now).is_err());
        assert!(name_from_prefix("Bad", now).is_err());
    }

    #[test]
    fn ttl_forms() {
        assert_eq!(parse_ttl("720h").unwrap().as_secs(), 720 * 3600);
        assert_eq!(parse_ttl("90d").unwrap().as_secs(), 90 * 86400);
        assert_eq!(parse_ttl("2w").unwrap().as_secs(), 14 * 86400);
        assert_eq!(parse_ttl("1h30m").unwrap().as_secs(), 5400);
        assert_eq!(parse_ttl("720h0m0s").unwrap().as_secs(), 720 * 3600);
        for bad in ["", "0h", "30", "soon", "-1h", "5x"] {
            assert!(parse_ttl(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn ttl_formatting() {
        assert_eq!(format_ttl(30 * 86400), "30d");
        assert_eq!(format_ttl(36 * 3600), "36h");
        assert_eq!(format_ttl(90), "1m 30s");
    }
}

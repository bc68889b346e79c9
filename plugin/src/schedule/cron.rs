//! Cron expressions exactly as a Kubernetes CronJob reads them.
//!
//! The CronJob controller parses `spec.schedule` with robfig/cron v3's
//! standard parser: five fields (minute, hour, day of month, month, day of
//! week), Sunday is 0 and 7 is refused, month and weekday names are
//! case-insensitive, `?` means `*`, `N/step` means `N-max/step`, and the
//! `@yearly`/`@monthly`/`@weekly`/`@daily`/`@hourly` descriptors. When both
//! day fields are restricted a day matches if EITHER matches (classic cron);
//! if one of them is `*` the other alone decides.
//!
//! The `cron` crate speaks a different dialect (six or seven fields with
//! seconds, Sunday = 1, and both day fields must match), so converting to it
//! would silently change meanings. This module parses the Kubernetes form
//! itself, computes next runs in any IANA time zone (the CronJob's
//! `spec.timeZone`) and describes a schedule in words.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, Days, LocalResult, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;

/// An invalid cron expression, with enough context to show what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid cron expression {expr:?}: {reason}{}", caret(expr, span))]
pub struct CronError {
    /// The expression as given.
    pub expr: String,
    /// What is wrong, naming the field and the value.
    pub reason: String,
    /// Byte range of the offending part of `expr`, when there is one.
    pub span: Option<(usize, usize)>,
}

/// A second line pointing at the offending part of the expression.
fn caret(expr: &str, span: &Option<(usize, usize)>) -> String {
    match span {
        Some((start, end)) if *end > *start && *end <= expr.len() => format!(
            "\n    {expr}\n    {}{}",
            " ".repeat(expr[..*start].chars().count()),
            "^".repeat(expr[*start..*end].chars().count())
        ),
        _ => String::new(),
    }
}

/// One of the five fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Minute,
    Hour,
    DayOfMonth,
    Month,
    DayOfWeek,
}

impl Field {
    const ALL: [Field; 5] = [
        Field::Minute,
        Field::Hour,
        Field::DayOfMonth,
        Field::Month,
        Field::DayOfWeek,
    ];

    fn name(self) -> &'static str {
        match self {
            Field::Minute => "minute",
            Field::Hour => "hour",
            Field::DayOfMonth => "day-of-month",
            Field::Month => "month",
            Field::DayOfWeek => "day-of-week",
        }
    }

    fn bounds(self) -> (u32, u32) {
        match self {
            Field::Minute => (0, 59),
            Field::Hour => (0, 23),
            Field::DayOfMonth => (1, 31),
            Field::Month => (1, 12),
            Field::DayOfWeek => (0, 6),
        }
    }

    /// A hint appended to out-of-range errors where people commonly trip.
    fn range_hint(self) -> &'static str {
        match self {
            Field::Minute => " (minutes are 0-59)",
            Field::Hour => " (hours are 0-23)",
            Field::DayOfMonth => " (days of the month are 1-31)",
            Field::Month => " (months are 1-12 or JAN-DEC)",
            Field::DayOfWeek => {
                " (days of the week are 0-6 or SUN-SAT; Sunday is 0, 7 is not accepted)"
            }
        }
    }

    fn name_value(self, name: &str) -> Option<u32> {
        const MONTHS: [&str; 12] = [
            "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
        ];
        const DAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];
        let lower = name.to_ascii_lowercase();
        let table: &[&str] = match self {
            Field::Month => &MONTHS,
            Field::DayOfWeek => &DAYS,
            _ => return None,
        };
        let offset = if self == Field::Month { 1 } else { 0 };
        table
            .iter()
            .position(|n| *n == lower)
            .map(|i| i as u32 + offset)
    }
}

/// A parsed five-field cron expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronExpr {
    source: String,
    minutes: u64,
    hours: u64,
    days_of_month: u64,
    months: u64,
    days_of_week: u64,
    /// The day-of-month field contained `*` (robfig's "star bit").
    dom_star: bool,
    /// The day-of-week field contained `*`.
    dow_star: bool,
}

impl FromStr for CronExpr {
    type Err = CronError;

    fn from_str(expr: &str) -> Result<Self, Self::Err> {
        parse(expr)
    }
}

impl fmt::Display for CronExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

fn error(expr: &str, reason: impl Into<String>, span: Option<(usize, usize)>) -> CronError {
    CronError {
        expr: expr.to_owned(),
        reason: reason.into(),
        span,
    }
}

/// Parse a Kubernetes CronJob schedule.
pub fn parse(expr: &str) -> Result<CronExpr, CronError> {
    let trimmed = expr.trim();
    if trimmed.is_empty() {
        return Err(error(
            expr,
            "it is empty; expected five fields: minute hour day-of-month month day-of-week",
            None,
        ));
    }
    let upper = trimmed.to_ascii_uppercase();
    if upper.starts_with("TZ=") || upper.starts_with("CRON_TZ=") {
        return Err(error(
            expr,
            "a time zone inside the schedule is not supported by Kubernetes; pass it with --timezone",
            None,
        ));
    }
    if let Some(descriptor) = trimmed.strip_prefix('@') {
        let standard = match descriptor.to_ascii_lowercase().as_str() {
            "yearly" | "annually" => "0 0 1 1 *",
            "monthly" => "0 0 1 * *",
            "weekly" => "0 0 * * 0",
            "daily" | "midnight" => "0 0 * * *",
            "hourly" => "0 * * * *",
            other if other.starts_with("every") => {
                return Err(error(
                    expr,
                    "@every intervals drift with the controller's clock; write a five-field expression instead, e.g. '*/15 * * * *'",
                    None,
                ));
            }
            _ => {
                return Err(error(
                    expr,
                    "unknown descriptor; use @yearly, @monthly, @weekly, @daily or @hourly",
                    None,
                ));
            }
        };
        let mut parsed = parse(standard)?;
        parsed.source = trimmed.to_owned();
        return Ok(parsed);
    }

    // Fields with their byte offsets in `expr`, so errors can point at them.
    let mut fields: Vec<(usize, &str)> = Vec::new();
    let mut start = None;
    for (i, c) in expr.char_indices() {
        match (c.is_whitespace(), start) {
            (true, Some(s)) => {
                fields.push((s, &expr[s..i]));
                start = None;
            }
            (false, None) => start = Some(i),
            _ => {}
        }
    }
    if let Some(s) = start {
        fields.push((s, &expr[s..]));
    }
    if fields.len() != 5 {
        let hint = match fields.len() {
            6 | 7 => "; this looks like a form with seconds (or years), which CronJobs do not take",
            _ => "",
        };
        return Err(error(
            expr,
            format!(
                "expected 5 fields (minute hour day-of-month month day-of-week), found {}{hint}",
                fields.len()
            ),
            None,
        ));
    }

    let mut sets = [0u64; 5];
    let mut stars = [false; 5];
    for (i, field) in Field::ALL.iter().enumerate() {
        let (offset, text) = fields[i];
        let (bits, star) = parse_field(expr, *field, offset, text)?;
        sets[i] = bits;
        stars[i] = star;
    }
    Ok(CronExpr {
        source: fields.iter().map(|(_, t)| *t).collect::<Vec<_>>().join(" "),
        minutes: sets[0],
        hours: sets[1],
        days_of_month: sets[2],
        months: sets[3],
        days_of_week: sets[4],
        dom_star: stars[2],
        dow_star: stars[4],
    })
}

/// Parse one field: a comma-separated list of `*`, `?`, `N`, `N-M`, each with
/// an optional `/step`. Returns the bit set and whether it contained a star.
fn parse_field(
    expr: &str,
    field: Field,
    offset: usize,
    text: &str,
) -> Result<(u64, bool), CronError> {
    let (min, max) = field.bounds();
    let mut bits = 0u64;
    let mut star = false;
    let mut part_offset = offset;
    for part in text.split(',') {
        let span = Some((part_offset, part_offset + part.len()));
        part_offset += part.len() + 1;
        let fail = |reason: String| {
            error(
                expr,
                format!("the {} field {part:?} {reason}", field.name()),
                span,
            )
        };
        if part.is_empty() {
            return Err(fail("has an empty list item".to_owned()));
        }
        let (range, step) = match part.split_once('/') {
            Some((range, step)) => {
                let step: u32 = step
                    .parse()
                    .map_err(|_| fail(format!("has a step {step:?} that is not a number")))?;
                if step == 0 {
                    return Err(fail("has a step of 0; steps must be positive".to_owned()));
                }
                (range, Some(step))
            }
            None => (part, None),
        };
        let value = |s: &str| -> Result<u32, CronError> {
            if let Ok(n) = s.parse::<u32>() {
                return Ok(n);
            }
            field.name_value(s).ok_or_else(|| {
                let names = match field {
                    Field::Month => ", nor a month name (JAN-DEC)",
                    Field::DayOfWeek => ", nor a day name (SUN-SAT)",
                    _ => "",
                };
                fail(format!("contains {s:?}, which is not a number{names}"))
            })
        };
        let (start, end, is_star) = if range == "*" || range == "?" {
            (min, max, true)
        } else if let Some((low, high)) = range.split_once('-') {
            (value(low)?, value(high)?, false)
        } else {
            let n = value(range)?;
            // robfig: "N/step" means "N-max/step".
            (n, if step.is_some() { max } else { n }, false)
        };
        if start < min {
            return Err(fail(format!(
                "starts at {start}, below the minimum {min}{}",
                field.range_hint()
            )));
        }
        if end > max {
            return Err(fail(format!(
                "goes up to {end}, above the maximum {max}{}",
                field.range_hint()
            )));
        }
        if start > end {
            return Err(fail(format!(
                "is a range from {start} down to {end}; ranges must go upwards"
            )));
        }
        let step = step.unwrap_or(1);
        // As robfig: a star with a step greater than one is not "every value".
        star |= is_star && step == 1;
        let mut n = start;
        while n <= end {
            bits |= 1 << n;
            n += step;
        }
    }
    Ok((bits, star))
}

fn has(bits: u64, n: u32) -> bool {
    bits & (1 << n) != 0
}

/// The values in a bit set, in order.
fn values(bits: u64, (min, max): (u32, u32)) -> Vec<u32> {
    (min..=max).filter(|n| has(bits, *n)).collect()
}

/// How far ahead [`CronExpr::next_after`] looks: February 29th recurs within
/// eight years even across a skipped century leap day.
const SEARCH_DAYS: u64 = 366 * 9;

impl CronExpr {
    /// The expression, normalised to single spaces.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Does the schedule fire on this calendar day (classic cron day rule)?
    pub fn matches_day(&self, date: NaiveDate) -> bool {
        if !has(self.months, date.month()) {
            return false;
        }
        let dom = has(self.days_of_month, date.day());
        let dow = has(self.days_of_week, date.weekday().num_days_from_sunday());
        if self.dom_star || self.dow_star {
            dom && dow
        } else {
            dom || dow
        }
    }

    /// The first run strictly after `after`, reading the fields as wall-clock
    /// time in `tz` (what `spec.timeZone` does). Times that do not exist on a
    /// spring-forward day are skipped and times that occur twice on a
    /// fall-back day run twice, as the CronJob controller does. `None` when
    /// the schedule never fires (e.g. `0 0 30 2 *`).
    pub fn next_after(&self, after: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
        let local_start = after.with_timezone(&tz).date_naive();
        // Start a day early: a fall-back day's second hour may map back before
        // `after`'s local date boundary.
        let mut date = local_start.checked_sub_days(Days::new(1))?;
        let minutes = values(self.minutes, Field::Minute.bounds());
        let hours = values(self.hours, Field::Hour.bounds());
        for _ in 0..SEARCH_DAYS {
            if self.matches_day(date) {
                let mut best: Option<DateTime<Utc>> = None;
                for h in &hours {
                    for m in &minutes {
                        let Some(naive) = date.and_hms_opt(*h, *m, 0) else {
                            continue;
                        };
                        let candidates: Vec<DateTime<Utc>> = match tz.from_local_datetime(&naive) {
                            LocalResult::Single(t) => vec![t.with_timezone(&Utc)],
                            LocalResult::Ambiguous(a, b) => {
                                vec![a.with_timezone(&Utc), b.with_timezone(&Utc)]
                            }
                            LocalResult::None => Vec::new(),
                        };
                        for t in candidates {
                            if t > after && best.is_none_or(|b| t < b) {
                                best = Some(t);
                            }
                        }
                    }
                }
                if best.is_some() {
                    return best;
                }
            }
            date = date.checked_add_days(Days::new(1))?;
        }
        None
    }

    /// The next `n` runs after `after`.
    pub fn upcoming(&self, after: DateTime<Utc>, tz: Tz, n: usize) -> Vec<DateTime<Utc>> {
        let mut out = Vec::with_capacity(n);
        let mut t = after;
        while out.len() < n {
            match self.next_after(t, tz) {
                Some(next) => {
                    out.push(next);
                    t = next;
                }
                None => break,
            }
        }
        out
    }

    /// The schedule in words, e.g. "at 00:00 on Sunday" or "every 15 minutes".
    pub fn describe(&self) -> String {
        let minutes = values(self.minutes, Field::Minute.bounds());
        let hours = values(self.hours, Field::Hour.bounds());
        let all_minutes = minutes.len() == 60;
        let all_hours = hours.len() == 24;

        let time = if all_minutes && all_hours {
            "every minute".to_owned()
        } else if all_hours && let Some(step) = even_step(&minutes, Field::Minute.bounds()) {
            format!("every {step} minutes")
        } else if all_hours && minutes.len() == 1 {
            format!("every hour at minute {}", minutes[0])
        } else if minutes.len() == 1
            && let Some(step) = even_step(&hours, Field::Hour.bounds())
        {
            format!("every {step} hours at minute {}", minutes[0])
        } else if minutes.len() * hours.len() <= 4 {
            let times: Vec<String> = hours
                .iter()
                .flat_map(|h| minutes.iter().map(move |m| format!("{h:02}:{m:02}")))
                .collect();
            format!("at {}", join_words(&times))
        } else if minutes.len() == 1 {
            format!(
                "at minute {} past hours {}",
                minutes[0],
                compress(&hours, |h| h.to_string())
            )
        } else {
            format!(
                "at minutes {} past {}",
                compress(&minutes, |m| m.to_string()),
                if all_hours {
                    "every hour".to_owned()
                } else {
                    format!("hours {}", compress(&hours, |h| h.to_string()))
                }
            )
        };

        let dom = values(self.days_of_month, Field::DayOfMonth.bounds());
        let dow = values(self.days_of_week, Field::DayOfWeek.bounds());
        let dom_all = dom.len() == 31;
        let dow_all = dow.len() == 7;
        let dom_words = || {
            if let Some(step) = even_step(&dom, Field::DayOfMonth.bounds()) {
                format!("every {step} days of the month")
            } else {
                let days = compress(&dom, ordinal);
                if dom.len() == 1 {
                    format!("on the {days}")
                } else {
                    format!("on the {days} day of the month")
                }
            }
        };
        let dow_words = || {
            format!(
                "on {}",
                compress(&dow, |d| DAY_NAMES[d as usize].to_owned())
            )
        };
        let days = match (dom_all, dow_all) {
            (true, true) => String::new(),
            (false, true) => dom_words(),
            (true, false) => dow_words(),
            // Both restricted: the star rule decides AND vs OR.
            (false, false) if self.dom_star || self.dow_star => {
                format!(
                    "{} if it is {}",
                    dom_words(),
                    dow_words().trim_start_matches("on ")
                )
            }
            (false, false) => format!("{} or {}", dom_words(), dow_words()),
        };

        let months = values(self.months, Field::Month.bounds());
        let month_words = if months.len() == 12 {
            String::new()
        } else if months.len() == 6 && even_step(&months, Field::Month.bounds()) == Some(2) {
            "every two months (January, March, May, July, September, November)".to_owned()
        } else {
            format!(
                "in {}",
                compress(&months, |m| MONTH_NAMES[m as usize - 1].to_owned())
            )
        };

        let mut out = time;
        // "at 03:00" alone reads as a one-off; say it repeats.
        let days = if days.is_empty() && out.starts_with("at ") {
            "every day".to_owned()
        } else {
            days
        };
        for part in [days, month_words] {
            if !part.is_empty() {
                out.push(' ');
                out.push_str(&part);
            }
        }
        out
    }
}

const DAY_NAMES: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

const MONTH_NAMES: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

fn ordinal(n: u32) -> String {
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

/// If `values` is every `step`-th value of a field from its minimum (what
/// `*/step` gives), the step.
fn even_step(values: &[u32], (min, max): (u32, u32)) -> Option<u32> {
    let [first, second, ..] = values else {
        return None;
    };
    let step = second - first;
    let even = *first == min
        && step >= 2
        && values.windows(2).all(|w| w[1] - w[0] == step)
        && values[values.len() - 1] + step > max;
    even.then_some(step)
}

/// "a, b and c".
fn join_words(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// A list with runs of three or more consecutive values shown as ranges.
fn compress(values: &[u32], label: impl Fn(u32) -> String) -> String {
    let mut parts = Vec::new();
    let mut i = 0;
    while i < values.len() {
        let mut j = i;
        while j + 1 < values.len() && values[j + 1] == values[j] + 1 {
            j += 1;
        }
        if j - i >= 2 {
            parts.push(format!("{} to {}", label(values[i]), label(values[j])));
        } else {
            for v in &values[i..=j] {
                parts.push(label(*v));
            }
        }
        i = j + 1;
    }
    join_words(&parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("test timestamp")
            .with_timezone(&Utc)
    }

    fn cron(s: &str) -> CronExpr {
        parse(s).unwrap_or_else(|e| panic!("{s} should parse: {e}"))
    }

    #[test]
    fn standard_fields_parse() {
        let c = cron("0 0 * * 0");
        assert_eq!(c.as_str(), "0 0 * * 0");
        assert_eq!(values(c.days_of_week, Field::DayOfWeek.bounds()), vec![0]);
        let c = cron("*/15 9-17 1,15 JAN-mar mon-FRI");
        assert_eq!(
            values(c.minutes, Field::Minute.bounds()),
            vec![0, 15, 30, 45]
        );
        assert_eq!(values(c.hours, Field::Hour.bounds()).len(), 9);
        assert_eq!(values(c.months, Field::Month.bounds()), vec![1, 2, 3]);
        assert_eq!(
            values(c.days_of_week, Field::DayOfWeek.bounds()),
            vec![1, 2, 3, 4, 5]
        );
        // "N/step" means "N-max/step".
        let c = cron("5/20 * * * *");
        assert_eq!(values(c.minutes, Field::Minute.bounds()), vec![5, 25, 45]);
        // Extra whitespace is fine and normalised.
        assert_eq!(cron("  0  0 1 */2 ? ").as_str(), "0 0 1 */2 ?");
    }

    #[test]
    fn descriptors_expand() {
        assert_eq!(cron("@weekly").days_of_week, cron("0 0 * * 0").days_of_week);
        assert_eq!(cron("@monthly").days_of_month, 1 << 1);
        assert_eq!(cron("@daily").as_str(), "@daily");
        assert_eq!(cron("@yearly").months, 1 << 1);
    }

    fn err(s: &str) -> String {
        parse(s).expect_err(s).to_string()
    }

    #[test]
    fn errors_say_what_is_wrong() {
        let e = err("0 25 * * *");
        assert!(e.contains("hour field \"25\""), "{e}");
        assert!(e.contains("above the maximum 23"), "{e}");
        // The caret line points at the hour field.
        assert!(e.ends_with("\n    0 25 * * *\n      ^^"), "{e}");

        let e = err("0 0 * * 7");
        assert!(e.contains("Sunday is 0"), "{e}");
        let e = err("0 0 0 * *");
        assert!(e.contains("below the minimum 1"), "{e}");
        let e = err("0 0 * 13 *");
        assert!(e.contains("month field"), "{e}");
        let e = err("0 0 * * FUN");
        assert!(e.contains("not a number, nor a day name"), "{e}");
        let e = err("*/0 * * * *");
        assert!(e.contains("step of 0"), "{e}");
        let e = err("30-10 * * * *");
        assert!(e.contains("ranges must go upwards"), "{e}");
        let e = err("0 0 * *");
        assert!(
            e.contains("expected 5 fields") && e.contains("found 4"),
            "{e}"
        );
        let e = err("0 0 0 * * *");
        assert!(e.contains("seconds"), "{e}");
        let e = err("TZ=Europe/Berlin 0 0 * * *");
        assert!(e.contains("--timezone"), "{e}");
        let e = err("@every 1h");
        assert!(e.contains("@every"), "{e}");
        let e = err("1,,2 * * * *");
        assert!(e.contains("empty list item"), "{e}");
        let e = err("");
        assert!(e.contains("empty"), "{e}");
        // The caret points at the right list item inside a field.
        let e = err("0 1,2,99 * * *");
        assert!(e.ends_with("\n    0 1,2,99 * * *\n          ^^"), "{e}");
    }

    #[test]
    fn day_rule_is_or_unless_a_star() {
        let day = |d| NaiveDate::from_ymd_opt(2026, 11, d).expect("date");
        // Both restricted: the 13th (a Friday) OR any Monday.
        let c = cron("0 0 13 * 1");
        assert!(c.matches_day(day(13)));
        assert!(c.matches_day(day(16))); // Monday
        assert!(!c.matches_day(day(17)));
        // A star in day-of-month: day-of-week alone decides.
        let c = cron("0 0 * * 1");
        assert!(c.matches_day(day(16)));
        assert!(!c.matches_day(day(13)));
        // "*/2" in day-of-month is not a star (robfig): OR with the weekday.
        let c = cron("0 0 */2 * 1");
        assert!(c.matches_day(day(16))); // Monday, an even day
        assert!(c.matches_day(day(17))); // odd day
        assert!(!c.matches_day(day(18))); // even day, Wednesday
    }

    #[test]
    fn next_run_in_utc() {
        let weekly = cron("0 0 * * 0");
        // Saturday 2026-11-21 15:00 UTC → Sunday 2026-11-22 00:00.
        assert_eq!(
            weekly.next_after(utc("2026-11-21T15:00:00Z"), Tz::UTC),
            Some(utc("2026-11-22T00:00:00Z"))
        );
        // Exactly at a run time: the next one, not the same.
        assert_eq!(
            weekly.next_after(utc("2026-11-22T00:00:00Z"), Tz::UTC),
            Some(utc("2026-11-29T00:00:00Z"))
        );
        let every15 = cron("*/15 * * * *");
        assert_eq!(
            every15.upcoming(utc("2026-11-21T15:07:30Z"), Tz::UTC, 3),
            vec![
                utc("2026-11-21T15:15:00Z"),
                utc("2026-11-21T15:30:00Z"),
                utc("2026-11-21T15:45:00Z")
            ]
        );
    }

    #[test]
    fn next_run_across_month_and_year_ends() {
        let monthly = cron("0 0 1 * *");
        assert_eq!(
            monthly.next_after(utc("2026-12-31T23:59:59Z"), Tz::UTC),
            Some(utc("2027-01-01T00:00:00Z"))
        );
        // The 31st skips the months that do not have one.
        let last = cron("0 12 31 * *");
        assert_eq!(
            last.upcoming(utc("2027-01-31T13:00:00Z"), Tz::UTC, 2),
            vec![utc("2027-03-31T12:00:00Z"), utc("2027-05-31T12:00:00Z")]
        );
        // February 29th waits for the next leap year.
        let leap = cron("0 0 29 2 *");
        assert_eq!(
            leap.next_after(utc("2026-11-21T00:00:00Z"), Tz::UTC),
            Some(utc("2028-02-29T00:00:00Z"))
        );
        // ... and across 2100, which is not a leap year.
        assert_eq!(
            leap.next_after(utc("2096-03-01T00:00:00Z"), Tz::UTC),
            Some(utc("2104-02-29T00:00:00Z"))
        );
        // A day that never exists: no next run.
        assert_eq!(
            cron("0 0 30 2 *").next_after(utc("2026-01-01T00:00:00Z"), Tz::UTC),
            None
        );
        // Every two months on the 1st: Jan, Mar, May, ...
        let bimonthly = cron("0 0 1 */2 *");
        assert_eq!(
            bimonthly.upcoming(utc("2026-11-21T00:00:00Z"), Tz::UTC, 3),
            vec![
                utc("2027-01-01T00:00:00Z"),
                utc("2027-03-01T00:00:00Z"),
                utc("2027-05-01T00:00:00Z")
            ]
        );
    }

    #[test]
    fn next_run_in_a_time_zone() {
        let tz: Tz = "Europe/Berlin".parse().expect("tz");
        let midnight = cron("0 0 * * *");
        // Midnight in Berlin is 23:00 UTC in winter, 22:00 UTC in summer.
        assert_eq!(
            midnight.next_after(utc("2026-11-21T15:00:00Z"), tz),
            Some(utc("2026-11-21T23:00:00Z"))
        );
        assert_eq!(
            midnight.next_after(utc("2026-07-01T12:00:00Z"), tz),
            Some(utc("2026-07-01T22:00:00Z"))
        );
        // Just after midnight UTC it is already 01:xx in Berlin: the next local
        // midnight is that evening.
        assert_eq!(
            midnight.next_after(utc("2026-11-21T23:30:00Z"), tz),
            Some(utc("2026-11-22T23:00:00Z"))
        );
        // Monthly in Tokyo: the 1st at 00:00 JST is the last day of the previous
        // month in UTC.
        let tokyo: Tz = "Asia/Tokyo".parse().expect("tz");
        assert_eq!(
            cron("0 0 1 * *").next_after(utc("2026-11-21T00:00:00Z"), tokyo),
            Some(utc("2026-11-30T15:00:00Z"))
        );
    }

    #[test]
    fn daylight_saving_transitions() {
        let tz: Tz = "Europe/Berlin".parse().expect("tz");
        // 2026-03-29: clocks jump from 02:00 to 03:00; 02:30 does not exist
        // that day and is skipped, as the CronJob controller does.
        let c = cron("30 2 * * *");
        assert_eq!(
            c.upcoming(utc("2026-03-27T12:00:00Z"), tz, 3),
            vec![
                utc("2026-03-28T01:30:00Z"),
                utc("2026-03-30T00:30:00Z"),
                utc("2026-03-31T00:30:00Z")
            ]
        );
        // 2026-10-25: 02:30 happens twice (CEST then CET).
        assert_eq!(
            c.upcoming(utc("2026-10-24T12:00:00Z"), tz, 3),
            vec![
                utc("2026-10-25T00:30:00Z"),
                utc("2026-10-25T01:30:00Z"),
                utc("2026-10-26T01:30:00Z")
            ]
        );
    }

    #[test]
    fn schedules_in_words() {
        assert_eq!(cron("0 0 * * 0").describe(), "at 00:00 on Sunday");
        assert_eq!(cron("0 0 1 * *").describe(), "at 00:00 on the 1st");
        assert_eq!(
            cron("0 0 1 */2 *").describe(),
            "at 00:00 on the 1st every two months (January, March, May, July, September, November)"
        );
        assert_eq!(cron("*/15 * * * *").describe(), "every 15 minutes");
        assert_eq!(cron("* * * * *").describe(), "every minute");
        assert_eq!(cron("30 * * * *").describe(), "every hour at minute 30");
        assert_eq!(
            cron("0 9,17 * * 1-5").describe(),
            "at 09:00 and 17:00 on Monday to Friday"
        );
        assert_eq!(
            cron("0 0 13 * 5").describe(),
            "at 00:00 on the 13th or on Friday"
        );
        assert_eq!(
            cron("0 3 1,15 6,12 *").describe(),
            "at 03:00 on the 1st and 15th day of the month in June and December"
        );
        assert_eq!(cron("0 */6 * * *").describe(), "every 6 hours at minute 0");
        assert_eq!(
            cron("0 6,18 * * *").describe(),
            "at 06:00 and 18:00 every day"
        );
        assert_eq!(cron("0 3 * * *").describe(), "at 03:00 every day");
        assert_eq!(
            cron("0 3 * 1 *").describe(),
            "at 03:00 every day in January"
        );
        assert_eq!(
            cron("5 0-23/2 * * *").describe(),
            "every 2 hours at minute 5"
        );
        assert_eq!(
            cron("5 1,2,3,9,20 * * *").describe(),
            "at minute 5 past hours 1 to 3, 9 and 20 every day"
        );
    }
}

//! Cron schedules as upstream's CronJob controller reads them: a port of robfig/cron v3's
//! `ParseStandard` and `SpecSchedule.Next` onto jiff, with time zones from the system's zoneinfo.
//!
//! Why not a cron crate: upstream's meaning is robfig's, down to the corners a user can hit
//! (day-of-month and day-of-week OR-ed unless one is `*`, `@every <duration>`, `TZ=` prefixes, the
//! five-year search that makes `0 0 30 2 *` parse yet never fire, the DST adjustments), and the Rust
//! crates (`cron`, `croner`) have other grammars (seconds fields, `L`/`W`/`#`) on chrono, while rkube's
//! times are jiff's. Start at [`Schedule::parse`] and [`Schedule::next`].

use k8s_openapi::jiff::civil::date;
use k8s_openapi::jiff::tz::TimeZone;
use k8s_openapi::jiff::{SignedDuration, Timestamp, ToSpan, Zoned};

/// robfig's marker for a field written `*` or `?` (it decides how day-of-month and day-of-week combine).
const STAR: u64 = 1 << 63;

/// A parsed schedule.
#[derive(Clone, Debug)]
pub enum Schedule {
    /// Five cron fields as bit sets, in a time zone.
    Spec {
        minute: u64,
        hour: u64,
        dom: u64,
        month: u64,
        dow: u64,
        tz: TimeZone,
    },
    /// `@every <duration>`: a constant delay (whole seconds, at least one).
    Every(SignedDuration),
}

struct Bounds {
    min: u32,
    max: u32,
    names: &'static [&'static str],
}

const MINUTES: Bounds = Bounds {
    min: 0,
    max: 59,
    names: &[],
};
const HOURS: Bounds = Bounds {
    min: 0,
    max: 23,
    names: &[],
};
const DOM: Bounds = Bounds {
    min: 1,
    max: 31,
    names: &[],
};
const MONTHS: Bounds = Bounds {
    min: 1,
    max: 12,
    names: &[
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ],
};
const DOW: Bounds = Bounds {
    min: 0,
    max: 6,
    names: &["sun", "mon", "tue", "wed", "thu", "fri", "sat"],
};

/// The time zone named `name` from the system's zoneinfo (Go's `time.LoadLocation`): "" and "UTC" are
/// UTC, "Local" is the system's zone.
pub fn load_time_zone(name: &str) -> Result<TimeZone, String> {
    if name.is_empty() || name == "UTC" {
        return Ok(TimeZone::UTC);
    }
    if name == "Local" {
        return Ok(load_time_zone_file("/etc/localtime", name).unwrap_or(TimeZone::UTC));
    }
    if name.contains("..") || name.starts_with(['/', '\\']) {
        return Err("time: invalid location name".into());
    }
    for dir in [
        "/usr/share/zoneinfo/",
        "/usr/share/lib/zoneinfo/",
        "/usr/lib/locale/TZ/",
        "/etc/zoneinfo/",
    ] {
        if let Some(tz) = load_time_zone_file(&format!("{dir}{name}"), name) {
            return Ok(tz);
        }
    }
    Err(format!("unknown time zone {name}"))
}

fn load_time_zone_file(path: &str, name: &str) -> Option<TimeZone> {
    let data = std::fs::read(path).ok()?;
    TimeZone::tzif(name, &data).ok()
}

impl Schedule {
    /// robfig's `ParseStandard`: five fields (minute hour day-of-month month day-of-week) or a
    /// descriptor (`@hourly`, `@every 1h30m`, ...), optionally prefixed by `TZ=<zone>` or
    /// `CRON_TZ=<zone>`; `default_tz` applies otherwise. Errors carry robfig's messages.
    pub fn parse(spec: &str, default_tz: TimeZone) -> Result<Schedule, String> {
        if spec.is_empty() {
            return Err("empty spec string".into());
        }
        let mut spec = spec.trim().to_string();
        let mut tz = default_tz;
        if spec.starts_with("TZ=") || spec.starts_with("CRON_TZ=") {
            let eq = spec.find('=').unwrap_or(0);
            let Some(space) = spec.find(' ') else {
                return Err("expected exactly 5 fields, found 0: []".into());
            };
            let loc = &spec[eq + 1..space];
            tz = load_time_zone(loc).map_err(|e| format!("provided bad location {loc}: {e}"))?;
            spec = spec[space..].trim().to_string();
        }
        if spec.starts_with('@') {
            return descriptor(&spec, tz);
        }
        let fields: Vec<&str> = spec.split_whitespace().collect();
        if fields.len() != 5 {
            return Err(format!(
                "expected exactly 5 fields, found {}: [{}]",
                fields.len(),
                fields.join(" ")
            ));
        }
        Ok(Schedule::Spec {
            minute: field(fields[0], &MINUTES)?,
            hour: field(fields[1], &HOURS)?,
            dom: field(fields[2], &DOM)?,
            month: field(fields[3], &MONTHS)?,
            dow: field(fields[4], &DOW)?,
            tz,
        })
    }

    /// The first activation strictly after `t` (robfig's `Next`), or None when there is none in the
    /// next five years (a schedule such as `0 0 30 2 *` that parses but can never fire).
    pub fn next(&self, t: Timestamp) -> Option<Timestamp> {
        match self {
            Schedule::Every(delay) => {
                // Activations fall on whole seconds: drop the sub-second part of `t`.
                let sub = SignedDuration::from_nanos(t.subsec_nanosecond() as i64);
                t.checked_add(*delay - sub).ok()
            }
            Schedule::Spec {
                minute,
                hour,
                dom,
                month,
                dow,
                tz,
            } => next_spec(t, *minute, *hour, *dom, *month, *dow, tz),
        }
    }
}

fn descriptor(spec: &str, tz: TimeZone) -> Result<Schedule, String> {
    let all = |b: &Bounds| bits(b.min, b.max, 1) | STAR;
    let (minute, hour, dom, month, dow) = match spec {
        "@yearly" | "@annually" => (1, 1, 1 << 1, 1 << 1, all(&DOW)),
        "@monthly" => (1, 1, 1 << 1, all(&MONTHS), all(&DOW)),
        "@weekly" => (1, 1, all(&DOM), all(&MONTHS), 1),
        "@daily" | "@midnight" => (1, 1, all(&DOM), all(&MONTHS), all(&DOW)),
        "@hourly" => (1, all(&HOURS), all(&DOM), all(&MONTHS), all(&DOW)),
        _ => {
            let Some(d) = spec.strip_prefix("@every ") else {
                return Err(format!("unrecognized descriptor: {spec}"));
            };
            let delay = go_duration(d.trim())
                .map_err(|e| format!("failed to parse duration {spec}: {e}"))?;
            // robfig: at least a second, in whole seconds.
            let delay = if delay < SignedDuration::from_secs(1) {
                SignedDuration::from_secs(1)
            } else {
                SignedDuration::from_secs(delay.as_secs())
            };
            return Ok(Schedule::Every(delay));
        }
    };
    Ok(Schedule::Spec {
        minute,
        hour,
        dom,
        month,
        dow,
        tz,
    })
}

/// Go's `time.ParseDuration` (what `@every` takes, what metav1.Duration prints): a sequence of
/// decimal numbers with units, with Go's error messages.
pub fn go_duration(s: &str) -> Result<SignedDuration, String> {
    let invalid = || format!("time: invalid duration \"{s}\"");
    let (neg, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if rest == "0" {
        return Ok(SignedDuration::ZERO);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut nanos: f64 = 0.0;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let value: f64 = rest[..num_len].parse().map_err(|_| invalid())?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "" => return Err(format!("time: missing unit in duration \"{s}\"")),
            u => return Err(format!("time: unknown unit \"{u}\" in duration \"{s}\"")),
        };
        nanos += value * scale;
        rest = &rest[unit_len..];
    }
    let d = SignedDuration::from_nanos(nanos as i64);
    Ok(if neg { -d } else { d })
}

fn bits(min: u32, max: u32, step: u32) -> u64 {
    if step == 1 {
        return !(u64::MAX << (max + 1)) & (u64::MAX << min);
    }
    (min..=max)
        .step_by(step as usize)
        .fold(0, |b, i| b | 1 << i)
}

/// One field: comma-separated ranges (robfig's `getField`).
fn field(text: &str, b: &Bounds) -> Result<u64, String> {
    text.split(',')
        .try_fold(0u64, |acc, expr| Ok(acc | range(expr, b)?))
}

/// `*`, `?`, `N`, `N-M`, each optionally `/step` (robfig's `getRange`, messages included).
fn range(expr: &str, b: &Bounds) -> Result<u64, String> {
    let range_and_step: Vec<&str> = expr.split('/').collect();
    let low_and_high: Vec<&str> = range_and_step[0].split('-').collect();
    let single = low_and_high.len() == 1;
    let (start, mut end, mut extra) = if low_and_high[0] == "*" || low_and_high[0] == "?" {
        (b.min, b.max, STAR)
    } else {
        let start = int_or_name(low_and_high[0], b)?;
        let end = match low_and_high.len() {
            1 => start,
            2 => int_or_name(low_and_high[1], b)?,
            _ => return Err(format!("too many hyphens: {expr}")),
        };
        (start, end, 0)
    };
    let step = match range_and_step.len() {
        1 => 1,
        2 => {
            let step = positive_int(range_and_step[1])?;
            // `N/step` means N through the maximum.
            if single {
                end = b.max;
            }
            if step > 1 {
                extra = 0;
            }
            step
        }
        _ => return Err(format!("too many slashes: {expr}")),
    };
    if start < b.min {
        return Err(format!(
            "beginning of range ({start}) below minimum ({}): {expr}",
            b.min
        ));
    }
    if end > b.max {
        return Err(format!(
            "end of range ({end}) above maximum ({}): {expr}",
            b.max
        ));
    }
    if start > end {
        return Err(format!(
            "beginning of range ({start}) beyond end of range ({end}): {expr}"
        ));
    }
    if step == 0 {
        return Err(format!("step of range should be a positive number: {expr}"));
    }
    Ok(bits(start, end, step) | extra)
}

fn int_or_name(text: &str, b: &Bounds) -> Result<u32, String> {
    let lower = text.to_ascii_lowercase();
    if let Some(i) = b.names.iter().position(|n| *n == lower) {
        // Month names count from 1, weekday names from 0.
        return Ok(i as u32 + b.min);
    }
    positive_int(text)
}

fn positive_int(text: &str) -> Result<u32, String> {
    let n: i64 = text
        .parse()
        .map_err(|e| format!("failed to parse int from {text}: {e}"))?;
    if n < 0 {
        return Err(format!("negative number ({n}) not allowed: {text}"));
    }
    u32::try_from(n).map_err(|_| format!("failed to parse int from {text}"))
}

fn has(set: u64, i: i8) -> bool {
    i >= 0 && set & (1 << i) != 0
}

fn day_matches(dom: u64, dow: u64, t: &Zoned) -> bool {
    let dom_match = has(dom, t.day());
    let dow_match = has(dow, t.weekday().to_sunday_zero_offset());
    if dom & STAR != 0 || dow & STAR != 0 {
        dom_match && dow_match
    } else {
        dom_match || dow_match
    }
}

/// The local midnight (or the given hour) of a civil day in `tz`; a time in a DST gap moves forward.
fn at(tz: &TimeZone, y: i16, m: i8, d: i8, h: i8) -> Option<Zoned> {
    date(y, m, d).at(h, 0, 0, 0).to_zoned(tz.clone()).ok()
}

/// robfig's `SpecSchedule.Next`: walk forward month, day, hour, minute until every field matches.
fn next_spec(
    t: Timestamp,
    minute: u64,
    hour: u64,
    dom: u64,
    month: u64,
    dow: u64,
    tz: &TimeZone,
) -> Option<Timestamp> {
    // Start at the next whole second; the seconds field of a standard schedule is 0.
    let start = t
        .checked_add(SignedDuration::from_nanos(
            1_000_000_000 - t.subsec_nanosecond() as i64,
        ))
        .ok()?;
    let mut t = start.to_zoned(tz.clone());
    let mut added = false;
    let year_limit = t.year() + 5;
    'wrap: loop {
        if t.year() > year_limit {
            return None;
        }
        while !has(month, t.month()) {
            if !added {
                added = true;
                t = at(tz, t.year(), t.month(), 1, 0)?;
            }
            t = t.checked_add(1.month()).ok()?;
            if t.month() == 1 {
                continue 'wrap;
            }
        }
        while !day_matches(dom, dow, &t) {
            if !added {
                added = true;
                t = at(tz, t.year(), t.month(), t.day(), 0)?;
            }
            t = t.checked_add(1.day()).ok()?;
            // A DST change can leave the day starting at 23:00 or 01:00: back to midnight.
            if t.hour() != 0 {
                let fix = if t.hour() > 12 {
                    24 - t.hour() as i64
                } else {
                    -(t.hour() as i64)
                };
                t = t.checked_add(SignedDuration::from_hours(fix)).ok()?;
            }
            if t.day() == 1 {
                continue 'wrap;
            }
        }
        while !has(hour, t.hour()) {
            if !added {
                added = true;
                t = at(tz, t.year(), t.month(), t.day(), t.hour())?;
            }
            t = t.checked_add(SignedDuration::from_hours(1)).ok()?;
            if t.hour() == 0 {
                continue 'wrap;
            }
        }
        while !has(minute, t.minute()) {
            if !added {
                added = true;
                t = t
                    .checked_sub(SignedDuration::from_secs(t.second() as i64))
                    .ok()?;
            }
            t = t.checked_add(SignedDuration::from_mins(1)).ok()?;
            if t.minute() == 0 {
                continue 'wrap;
            }
        }
        while t.second() != 0 {
            if !added {
                added = true;
            }
            t = t.checked_add(SignedDuration::from_secs(1)).ok()?;
            if t.second() == 0 {
                continue 'wrap;
            }
        }
        return Some(t.timestamp());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn next(spec: &str, tz: &str, after: &str) -> Option<String> {
        let s = Schedule::parse(spec, load_time_zone(tz).unwrap()).unwrap();
        s.next(ts(after)).map(|t| t.to_string())
    }

    #[test]
    fn every_minute_and_steps() {
        assert_eq!(
            next("*/1 * * * *", "", "2026-12-04T16:02:39Z").as_deref(),
            Some("2026-12-04T16:03:00Z")
        );
        assert_eq!(
            next("*/15 * * * *", "", "2026-12-04T16:15:00Z").as_deref(),
            Some("2026-12-04T16:30:00Z")
        );
        assert_eq!(
            next("5 4 * * *", "", "2026-12-31T23:59:00Z").as_deref(),
            Some("2027-01-01T04:05:00Z")
        );
        assert_eq!(
            next("@hourly", "", "2026-12-04T16:02:39Z").as_deref(),
            Some("2026-12-04T17:00:00Z")
        );
        assert_eq!(
            next("@every 90s", "", "2026-12-04T16:02:39.5Z").as_deref(),
            Some("2026-12-04T16:04:09Z")
        );
    }

    #[test]
    fn day_of_month_or_day_of_week() {
        // Both restricted: either matches (1st of the month OR a Monday).
        assert_eq!(
            next("0 0 1 * mon", "", "2026-12-02T00:00:00Z").as_deref(),
            Some("2026-12-07T00:00:00Z")
        );
        // Day-of-month `*`: both must match, so every Monday.
        assert_eq!(
            next("0 0 * * MON", "", "2026-12-02T00:00:00Z").as_deref(),
            Some("2026-12-07T00:00:00Z")
        );
        assert_eq!(
            next("0 12 29 feb *", "", "2026-03-01T00:00:00Z").as_deref(),
            Some("2028-02-29T12:00:00Z")
        );
    }

    #[test]
    fn impossible_schedule_never_fires() {
        assert_eq!(next("0 0 30 2 *", "", "2026-12-04T00:00:00Z"), None);
    }

    #[test]
    fn time_zones_and_dst() {
        // 09:00 in Berlin is 08:00 UTC in winter, 07:00 UTC in summer.
        assert_eq!(
            next("0 9 * * *", "Europe/Berlin", "2026-12-04T10:00:00Z").as_deref(),
            Some("2026-12-05T08:00:00Z")
        );
        assert_eq!(
            next("0 9 * * *", "Europe/Berlin", "2026-06-04T10:00:00Z").as_deref(),
            Some("2026-06-05T07:00:00Z")
        );
        // The TZ= prefix overrides the default zone.
        assert_eq!(
            next("TZ=America/New_York 30 2 * * *", "", "2026-12-04T00:00:00Z").as_deref(),
            Some("2026-12-04T07:30:00Z")
        );
        // 02:30 does not exist in New York on 2026-03-08 (clocks jump from 02:00 to 03:00): as
        // robfig, that day is skipped.
        assert_eq!(
            next("30 2 * * *", "America/New_York", "2026-03-08T05:00:00Z").as_deref(),
            Some("2026-03-09T06:30:00Z")
        );
    }

    #[test]
    fn parse_errors_are_robfigs() {
        let p = |s: &str| Schedule::parse(s, TimeZone::UTC).map(|_| ());
        assert_eq!(
            p("* * * *"),
            Err("expected exactly 5 fields, found 4: [* * * *]".into())
        );
        assert_eq!(
            p("60 * * * *"),
            Err("end of range (60) above maximum (59): 60".into())
        );
        assert_eq!(
            p("5-1 * * * *"),
            Err("beginning of range (5) beyond end of range (1): 5-1".into())
        );
        assert_eq!(p("@often"), Err("unrecognized descriptor: @often".into()));
        assert!(p("0 0 30 2 *").is_ok());
        assert!(load_time_zone("Not/AZone").is_err());
    }
}

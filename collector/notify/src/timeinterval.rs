//! Named time intervals for muting routes: Alertmanager's
//! `time_intervals` and Lookout's cron windows.
//!
//! Alertmanager's rules: an interval holds when any of its periods holds; a
//! period holds when every field it gives holds (a field left out always
//! holds). Times of day are `[start, end)` in minutes, weekdays and months
//! are inclusive ranges, negative days of the month count from the end
//! (`-1` is the last day), and every field is read in the period's
//! `location` (UTC by default).
//!
//! A cron window holds from each time its schedule fires for `duration`;
//! the latest fire time at or before the instant decides, since it gives
//! the window that reaches furthest.

use std::collections::HashMap;

use chrono::{DateTime, Datelike, Local, NaiveDate, NaiveDateTime, TimeZone, Timelike, Utc};
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

use crate::config::{
    ConfigErrors, ConfigProblem, CronWindowConfig, TimeIntervalConfig, TimePeriodConfig,
};

/// Where a period's fields are read.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Location {
    Zone(chrono_tz::Tz),
    /// The host's zone, as Alertmanager's `Local`.
    Local,
}

impl Location {
    pub fn parse(name: Option<&str>) -> Result<Location, String> {
        match name.map(str::trim) {
            None | Some("") | Some("UTC") => Ok(Location::Zone(chrono_tz::UTC)),
            Some("Local") => Ok(Location::Local),
            Some(n) => n
                .parse::<chrono_tz::Tz>()
                .map(Location::Zone)
                .map_err(|_| format!("unknown time zone {n:?}")),
        }
    }

    /// Wall-clock date and time of an instant in this location.
    fn civil(self, ms: i64) -> Option<NaiveDateTime> {
        let utc = Utc.timestamp_millis_opt(ms).single()?;
        Some(match self {
            Location::Zone(tz) => utc.with_timezone(&tz).naive_local(),
            Location::Local => utc.with_timezone(&Local).naive_local(),
        })
    }
}

/// One Alertmanager period, compiled.
#[derive(Clone, Debug, PartialEq)]
pub struct TimePeriod {
    /// Minutes of the day, `[start, end)`.
    times: Vec<(u32, u32)>,
    /// Days from Sunday (0) to Saturday (6), inclusive.
    weekdays: Vec<(u32, u32)>,
    /// Inclusive; negative counts from the end of the month.
    days_of_month: Vec<(i32, i32)>,
    months: Vec<(u32, u32)>,
    years: Vec<(i32, i32)>,
    location: Location,
}

impl TimePeriod {
    pub fn contains(&self, ms: i64) -> bool {
        let Some(t) = self.location.civil(ms) else {
            return false;
        };
        let minute = t.hour() * 60 + t.minute();
        if !self.times.is_empty() && !self.times.iter().any(|&(s, e)| s <= minute && minute < e) {
            return false;
        }
        let wd = t.weekday().num_days_from_sunday();
        if !self.weekdays.is_empty() && !self.weekdays.iter().any(|&(b, e)| b <= wd && wd <= e) {
            return false;
        }
        if !self.days_of_month.is_empty() {
            let len = days_in_month(t.date());
            let day = t.day() as i32;
            let hit = self.days_of_month.iter().any(|&(b, e)| {
                let from_end = |d: i32| if d < 0 { len + d + 1 } else { d };
                let (b, e) = (from_end(b), from_end(e));
                // A range starting past this month's end (31 in April) does
                // not spill into the next month.
                if b > len {
                    return false;
                }
                b.max(1) <= day && day <= e.min(len)
            });
            if !hit {
                return false;
            }
        }
        let month = t.month();
        if !self.months.is_empty() && !self.months.iter().any(|&(b, e)| b <= month && month <= e) {
            return false;
        }
        let year = t.year();
        if !self.years.is_empty() && !self.years.iter().any(|&(b, e)| b <= year && year <= e) {
            return false;
        }
        true
    }
}

fn days_in_month(d: NaiveDate) -> i32 {
    let (y, m) = if d.month() == 12 {
        (d.year() + 1, 1)
    } else {
        (d.year(), d.month() + 1)
    };
    match (
        NaiveDate::from_ymd_opt(y, m, 1),
        NaiveDate::from_ymd_opt(d.year(), d.month(), 1),
    ) {
        (Some(next), Some(first)) => (next - first).num_days() as i32,
        _ => 31,
    }
}

/// A Lookout cron window, compiled.
#[derive(Clone, Debug)]
pub struct CronWindow {
    cron: Cron,
    duration_ms: i64,
    location: Location,
}

impl CronWindow {
    pub fn contains(&self, ms: i64) -> bool {
        match self.last_fire(ms) {
            Some(fire) => fire <= ms && ms < fire.saturating_add(self.duration_ms),
            None => false,
        }
    }

    /// The latest time the schedule fired at or before `ms`.
    pub fn last_fire(&self, ms: i64) -> Option<i64> {
        let utc = Utc.timestamp_millis_opt(ms).single()?;
        match self.location {
            Location::Zone(tz) => previous(&self.cron, utc.with_timezone(&tz)),
            Location::Local => previous(&self.cron, utc.with_timezone(&Local)),
        }
    }
}

fn previous<T: TimeZone>(cron: &Cron, t: DateTime<T>) -> Option<i64> {
    cron.find_previous_occurrence(&t, true)
        .ok()
        .map(|d| d.timestamp_millis())
}

/// A named interval: holds when any of its periods or cron windows does.
#[derive(Clone, Debug)]
pub struct TimeInterval {
    pub name: String,
    pub periods: Vec<TimePeriod>,
    pub crons: Vec<CronWindow>,
}

impl TimeInterval {
    /// Compiles one config entry; problems are reported under `path`.
    pub fn compile(cfg: &TimeIntervalConfig, path: &str) -> Result<TimeInterval, ConfigErrors> {
        let mut problems = Vec::new();
        let ti = compile(cfg, path, &mut problems);
        if problems.is_empty() {
            Ok(ti)
        } else {
            Err(ConfigErrors(problems))
        }
    }

    pub fn contains(&self, ms: i64) -> bool {
        self.periods.iter().any(|p| p.contains(ms)) || self.crons.iter().any(|c| c.contains(ms))
    }
}

/// Every named interval of a config.
#[derive(Clone, Debug, Default)]
pub struct TimeIntervals {
    by_name: HashMap<String, TimeInterval>,
}

impl TimeIntervals {
    pub fn compile(cfgs: &[TimeIntervalConfig]) -> Result<TimeIntervals, ConfigErrors> {
        let mut problems = Vec::new();
        let mut by_name = HashMap::new();
        for (i, cfg) in cfgs.iter().enumerate() {
            let ti = compile(
                cfg,
                &format!("{}.time_intervals[{i}]", crate::config::ROOT_PATH),
                &mut problems,
            );
            by_name.insert(cfg.name.clone(), ti);
        }
        if problems.is_empty() {
            Ok(TimeIntervals { by_name })
        } else {
            Err(ConfigErrors(problems))
        }
    }

    pub fn get(&self, name: &str) -> Option<&TimeInterval> {
        self.by_name.get(name)
    }

    /// Whether the named interval holds at `ms`; `None` for an unknown name.
    pub fn contains(&self, name: &str, ms: i64) -> Option<bool> {
        self.by_name.get(name).map(|ti| ti.contains(ms))
    }
}

/// Reports every problem of a config entry under `path`.
pub(crate) fn check_config(
    cfg: &TimeIntervalConfig,
    path: &str,
    problems: &mut Vec<ConfigProblem>,
) {
    compile(cfg, path, problems);
}

fn compile(
    cfg: &TimeIntervalConfig,
    path: &str,
    problems: &mut Vec<ConfigProblem>,
) -> TimeInterval {
    let periods = cfg
        .time_intervals
        .iter()
        .enumerate()
        .map(|(i, p)| compile_period(p, &format!("{path}.time_intervals[{i}]"), problems))
        .collect();
    let crons = cfg
        .cron
        .iter()
        .enumerate()
        .filter_map(|(i, c)| compile_cron(c, &format!("{path}.cron[{i}]"), problems))
        .collect();
    TimeInterval {
        name: cfg.name.clone(),
        periods,
        crons,
    }
}

fn compile_cron(
    cfg: &CronWindowConfig,
    path: &str,
    problems: &mut Vec<ConfigProblem>,
) -> Option<CronWindow> {
    // Exactly five fields: with optional seconds or years a six-field
    // pattern would be ambiguous.
    let parser = CronParser::builder()
        .seconds(Seconds::Disallowed)
        .year(Year::Disallowed)
        .build();
    let cron = match parser.parse(&cfg.schedule) {
        Ok(c) => Some(c),
        Err(e) => {
            problems.push(ConfigProblem::error(
                format!("{path}.schedule"),
                format!("bad cron schedule {:?}: {e}", cfg.schedule),
            ));
            None
        }
    };
    if cfg.duration.is_zero() {
        problems.push(ConfigProblem::error(
            format!("{path}.duration"),
            "must be positive",
        ));
    }
    let location = match Location::parse(cfg.location.as_deref()) {
        Ok(l) => Some(l),
        Err(e) => {
            problems.push(ConfigProblem::error(format!("{path}.location"), e));
            None
        }
    };
    Some(CronWindow {
        cron: cron?,
        duration_ms: i64::try_from(cfg.duration.as_millis()).unwrap_or(i64::MAX),
        location: location?,
    })
}

fn compile_period(
    cfg: &TimePeriodConfig,
    path: &str,
    problems: &mut Vec<ConfigProblem>,
) -> TimePeriod {
    let mut times = Vec::new();
    for (i, t) in cfg.times.iter().enumerate() {
        let p = format!("{path}.times[{i}]");
        let start = parse_time_of_day(&t.start_time);
        let end = parse_time_of_day(&t.end_time);
        for (value, field, parsed) in [
            (&t.start_time, "start_time", start),
            (&t.end_time, "end_time", end),
        ] {
            if parsed.is_none() {
                problems.push(ConfigProblem::error(
                    format!("{p}.{field}"),
                    format!("{value:?} is not a time of day HH:MM between 00:00 and 24:00"),
                ));
            }
        }
        if let (Some(s), Some(e)) = (start, end) {
            if s >= e {
                problems.push(ConfigProblem::error(
                    p,
                    format!(
                        "start_time {} must be before end_time {}",
                        t.start_time, t.end_time
                    ),
                ));
            } else {
                times.push((s, e));
            }
        }
    }
    let weekdays = ranges(
        &cfg.weekdays,
        &format!("{path}.weekdays"),
        problems,
        |s| weekday(s).ok_or_else(|| format!("{s:?} is not a weekday")),
        " (sunday is first)",
    );
    let mut days_of_month = Vec::new();
    for (i, s) in cfg.days_of_month.iter().enumerate() {
        let p = format!("{path}.days_of_month[{i}]");
        let bad =
            || format!("{s:?}: days of the month are 1 to 31, or -1 to -31 counting from the end");
        let day = |v: &str| {
            v.trim()
                .parse::<i64>()
                .ok()
                .filter(|d| *d != 0 && (-31..=31).contains(d))
        };
        let (b, e) = match s.split_once(':') {
            Some((b, e)) => (day(b), day(e)),
            None => (day(s), day(s)),
        };
        let (Some(b), Some(e)) = (b, e) else {
            problems.push(ConfigProblem::error(p, bad()));
            continue;
        };
        // Negative days are compared as if the month had 31 days: enough
        // to reject ranges that can never hold, such as `-1:5`.
        let abs = |d: i64| if d < 0 { 32 + d } else { d };
        if abs(b) > abs(e) {
            problems.push(ConfigProblem::error(
                p,
                format!("{s:?}: the start of a range must not be after its end"),
            ));
            continue;
        }
        days_of_month.push((b as i32, e as i32));
    }
    let months = ranges(
        &cfg.months,
        &format!("{path}.months"),
        problems,
        |s| month(s).ok_or_else(|| format!("{s:?} is not a month")),
        "",
    );
    let years = ranges(
        &cfg.years,
        &format!("{path}.years"),
        problems,
        |s| {
            s.trim()
                .parse::<i64>()
                .ok()
                .filter(|y| (1..=9999).contains(y))
                .ok_or_else(|| format!("{s:?} is not a year"))
        },
        "",
    );
    let location = match Location::parse(cfg.location.as_deref()) {
        Ok(l) => l,
        Err(e) => {
            problems.push(ConfigProblem::error(format!("{path}.location"), e));
            Location::Zone(chrono_tz::UTC)
        }
    };
    TimePeriod {
        times,
        weekdays: weekdays
            .into_iter()
            .map(|(b, e)| (b as u32, e as u32))
            .collect(),
        days_of_month,
        months: months
            .into_iter()
            .map(|(b, e)| (b as u32, e as u32))
            .collect(),
        years: years
            .into_iter()
            .map(|(b, e)| (b as i32, e as i32))
            .collect(),
        location,
    }
}

/// Parses `item` or `from:to` lists with `one` for each end.
fn ranges(
    items: &[String],
    path: &str,
    problems: &mut Vec<ConfigProblem>,
    one: impl Fn(&str) -> Result<i64, String>,
    order_hint: &str,
) -> Vec<(i64, i64)> {
    let mut out = Vec::new();
    for (i, s) in items.iter().enumerate() {
        let p = format!("{path}[{i}]");
        let parsed = match s.split_once(':') {
            Some((b, e)) => one(b).and_then(|b| one(e).map(|e| (b, e))),
            None => one(s).map(|v| (v, v)),
        };
        match parsed {
            Ok((b, e)) if b > e => problems.push(ConfigProblem::error(
                p,
                format!("{s:?}: the start of a range must not be after its end{order_hint}"),
            )),
            Ok(r) => out.push(r),
            Err(e) => problems.push(ConfigProblem::error(p, e)),
        }
    }
    out
}

fn parse_time_of_day(s: &str) -> Option<u32> {
    let (h, m) = s.trim().split_once(':')?;
    if h.is_empty() || h.len() > 2 || m.len() != 2 {
        return None;
    }
    let h: u32 = h.parse().ok()?;
    let m: u32 = m.parse().ok()?;
    match (h, m) {
        (24, 0) => Some(24 * 60),
        (0..=23, 0..=59) => Some(h * 60 + m),
        _ => None,
    }
}

const WEEKDAYS: [&str; 7] = [
    "sunday",
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
];
const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];

fn weekday(s: &str) -> Option<i64> {
    let s = s.trim().to_ascii_lowercase();
    WEEKDAYS.iter().position(|d| *d == s).map(|i| i as i64)
}

fn month(s: &str) -> Option<i64> {
    let s = s.trim().to_ascii_lowercase();
    if let Some(i) = MONTHS.iter().position(|m| *m == s) {
        return Some(i as i64 + 1);
    }
    s.parse::<i64>().ok().filter(|m| (1..=12).contains(m))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TimeRangeConfig;
    use std::time::Duration;

    fn ms(s: &str) -> i64 {
        match DateTime::parse_from_rfc3339(s) {
            Ok(t) => t.timestamp_millis(),
            Err(e) => panic!("{s}: {e}"),
        }
    }

    fn interval(periods: Vec<TimePeriodConfig>, crons: Vec<CronWindowConfig>) -> TimeInterval {
        let cfg = TimeIntervalConfig {
            name: "t".into(),
            time_intervals: periods,
            cron: crons,
        };
        match TimeInterval::compile(&cfg, "t") {
            Ok(t) => t,
            Err(e) => panic!("{e}"),
        }
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn weekday_office_hours_in_a_time_zone() {
        let ti = interval(
            vec![TimePeriodConfig {
                times: vec![TimeRangeConfig {
                    start_time: "09:00".into(),
                    end_time: "17:00".into(),
                }],
                weekdays: strings(&["monday:friday"]),
                location: Some("Asia/Shanghai".into()),
                ..Default::default()
            }],
            vec![],
        );
        // 2025-01-06 is a Monday; Shanghai is UTC+8.
        assert!(!ti.contains(ms("2025-01-06T00:59:59.999Z")));
        assert!(ti.contains(ms("2025-01-06T01:00:00Z")));
        assert!(ti.contains(ms("2025-01-06T08:59:59Z")));
        assert!(!ti.contains(ms("2025-01-06T09:00:00Z")), "end is exclusive");
        // Friday 16:30 local, Saturday 10:00 local.
        assert!(ti.contains(ms("2025-01-10T08:30:00Z")));
        assert!(!ti.contains(ms("2025-01-11T02:00:00Z")));
        // Sunday 23:30 UTC is already Monday 07:30 in Shanghai: still out.
        assert!(!ti.contains(ms("2025-01-05T23:30:00Z")));
    }

    #[test]
    fn end_of_day_and_days_of_month_from_the_end() {
        let ti = interval(
            vec![TimePeriodConfig {
                times: vec![TimeRangeConfig {
                    start_time: "17:00".into(),
                    end_time: "24:00".into(),
                }],
                days_of_month: strings(&["-1"]),
                ..Default::default()
            }],
            vec![],
        );
        assert!(ti.contains(ms("2024-02-29T23:59:00Z")), "leap year");
        assert!(!ti.contains(ms("2024-02-28T23:59:00Z")));
        assert!(ti.contains(ms("2025-02-28T17:00:00Z")));
        assert!(!ti.contains(ms("2025-02-28T16:59:00Z")));

        let ti = interval(
            vec![TimePeriodConfig {
                days_of_month: strings(&["-3:-1", "1:2"]),
                ..Default::default()
            }],
            vec![],
        );
        // April has 30 days: the last three are 28..30.
        assert!(!ti.contains(ms("2025-04-27T12:00:00Z")));
        assert!(ti.contains(ms("2025-04-28T00:00:00Z")));
        assert!(ti.contains(ms("2025-04-30T23:59:00Z")));
        assert!(ti.contains(ms("2025-05-02T12:00:00Z")));
        assert!(!ti.contains(ms("2025-05-03T12:00:00Z")));

        // The 31st never holds in a 30-day month.
        let ti = interval(
            vec![TimePeriodConfig {
                days_of_month: strings(&["31"]),
                ..Default::default()
            }],
            vec![],
        );
        assert!(!ti.contains(ms("2025-04-30T12:00:00Z")));
        assert!(!ti.contains(ms("2025-05-01T12:00:00Z")));
        assert!(ti.contains(ms("2025-05-31T12:00:00Z")));
    }

    #[test]
    fn months_years_and_union_of_periods() {
        let ti = interval(
            vec![
                TimePeriodConfig {
                    months: strings(&["november:december"]),
                    years: strings(&["2025"]),
                    ..Default::default()
                },
                TimePeriodConfig {
                    months: strings(&["3"]),
                    weekdays: strings(&["saturday", "sunday"]),
                    ..Default::default()
                },
            ],
            vec![],
        );
        assert!(ti.contains(ms("2025-11-01T00:00:00Z")));
        assert!(ti.contains(ms("2025-12-31T23:59:59Z")));
        assert!(!ti.contains(ms("2026-01-01T00:00:00Z")));
        assert!(!ti.contains(ms("2024-12-01T00:00:00Z")));
        // 2025-03-01 is a Saturday, 2025-03-03 a Monday.
        assert!(ti.contains(ms("2025-03-01T10:00:00Z")));
        assert!(!ti.contains(ms("2025-03-03T10:00:00Z")));
    }

    #[test]
    fn cron_window_in_utc_and_in_a_zone() {
        let ti = interval(
            vec![],
            vec![CronWindowConfig {
                schedule: "0 2 * * *".into(),
                duration: Duration::from_secs(2 * 3600),
                location: None,
            }],
        );
        assert!(!ti.contains(ms("2025-01-06T01:59:59.999Z")));
        assert!(ti.contains(ms("2025-01-06T02:00:00Z")));
        assert!(ti.contains(ms("2025-01-06T03:59:59.999Z")));
        assert!(!ti.contains(ms("2025-01-06T04:00:00Z")));

        let ti = interval(
            vec![],
            vec![CronWindowConfig {
                schedule: "0 2 * * 6".into(),
                duration: Duration::from_secs(2 * 3600),
                location: Some("Asia/Shanghai".into()),
            }],
        );
        // Saturday 2025-01-11 02:00 in Shanghai is Friday 18:00 UTC.
        assert!(ti.contains(ms("2025-01-10T18:00:00Z")));
        assert!(ti.contains(ms("2025-01-10T19:30:00Z")));
        assert!(!ti.contains(ms("2025-01-10T20:00:00Z")));
        assert!(!ti.contains(ms("2025-01-11T18:00:00Z")), "not on Sunday");
        assert_eq!(
            ti.crons[0].last_fire(ms("2025-01-12T00:00:00Z")),
            Some(ms("2025-01-10T18:00:00Z"))
        );
    }

    #[test]
    fn a_window_longer_than_the_schedule_overlaps() {
        let ti = interval(
            vec![],
            vec![CronWindowConfig {
                schedule: "*/10 * * * *".into(),
                duration: Duration::from_secs(3600),
                location: None,
            }],
        );
        assert!(ti.contains(ms("2025-01-06T02:05:00Z")));
    }

    #[test]
    fn parsing_helpers() {
        assert_eq!(parse_time_of_day("00:00"), Some(0));
        assert_eq!(parse_time_of_day("9:30"), Some(570));
        assert_eq!(parse_time_of_day("24:00"), Some(1440));
        assert_eq!(parse_time_of_day("24:01"), None);
        assert_eq!(parse_time_of_day("12:60"), None);
        assert_eq!(parse_time_of_day("1200"), None);
        assert_eq!(weekday("Sunday"), Some(0));
        assert_eq!(month("SEPTEMBER"), Some(9));
        assert_eq!(month("13"), None);
        assert_eq!(Location::parse(Some("Local")), Ok(Location::Local));
        assert!(Location::parse(Some("Nowhere")).is_err());
        let all = TimeIntervals::compile(&[TimeIntervalConfig {
            name: "always".into(),
            time_intervals: vec![TimePeriodConfig::default()],
            cron: vec![],
        }])
        .unwrap();
        assert_eq!(all.contains("always", 0), Some(true));
        assert_eq!(all.contains("other", 0), None);
    }
}

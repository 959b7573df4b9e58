//! The `notify:` section of `lookout.yaml`, in Alertmanager's shape:
//!
//! ```yaml
//! notify:
//!   resolve_timeout: 5m
//!   route:
//!     receiver: ops
//!     group_by: [alertname, cluster]
//!     group_wait: 30s
//!     group_interval: 5m
//!     repeat_interval: 4h
//!     routes:
//!       - matchers: ['severity="critical"']
//!         receiver: pager
//!         continue: true
//!         mute_time_intervals: [weekly-maintenance]
//!   receivers: [{name: ops}, {name: pager}]
//!   inhibit_rules:
//!     - source_matchers: ['alertname="NodeDown"']
//!       target_matchers: ['alertname=~"Container.*"']
//!       equal: [node]
//!   time_intervals:
//!     - name: offhours
//!       time_intervals:
//!         - times: [{start_time: "18:00", end_time: "24:00"}]
//!           weekdays: ['monday:friday']
//!           location: Europe/Berlin
//!     - name: weekly-maintenance     # Lookout's cron windows
//!       cron: [{schedule: "0 2 * * 6", duration: 2h, location: Asia/Shanghai}]
//! ```
//!
//! Matchers and time-interval fields are kept as written and checked by
//! [`NotifyConfig::validate`], so one run reports every problem with its
//! path instead of stopping at the first.

use std::collections::HashSet;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};

use crate::matchers::parse_matchers;
use crate::receivers::config::ReceiverConfig;
use crate::route::{GROUP_BY_ALL, RouteOpts};
use crate::timeinterval;

pub const DEFAULT_RESOLVE_TIMEOUT: Duration = Duration::from_secs(5 * 60);

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct NotifyConfig {
    /// How long an alert that arrives without `endsAt` stays firing unless
    /// it is sent again (Alertmanager's `global.resolve_timeout`).
    #[serde(with = "humantime_serde")]
    pub resolve_timeout: Duration,
    pub route: RouteConfig,
    pub receivers: Vec<ReceiverConfig>,
    pub inhibit_rules: Vec<InhibitRuleConfig>,
    /// Named windows for routes' `mute_time_intervals` and
    /// `active_time_intervals`.
    pub time_intervals: Vec<TimeIntervalConfig>,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        NotifyConfig {
            resolve_timeout: DEFAULT_RESOLVE_TIMEOUT,
            route: RouteConfig::default(),
            receivers: Vec::new(),
            inhibit_rules: Vec::new(),
            time_intervals: Vec::new(),
        }
    }
}

/// One node of the routing tree. Unset fields are inherited from the
/// parent; the root's unset timers take Alertmanager's defaults.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RouteConfig {
    /// Empty: the parent's receiver.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub receiver: String,
    /// Unset: the parent's; `['...']`: every label (no aggregation).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_by: Option<Vec<String>>,
    /// Go on matching the following siblings after this route matched.
    #[serde(rename = "continue")]
    pub continue_matching: bool,
    /// Alertmanager matchers such as `severity=~"critical|page"`; each
    /// string may hold several, comma-separated.
    pub matchers: Vec<String>,
    /// Wait before a new group's first notification (root default 30s).
    #[serde(with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub group_wait: Option<Duration>,
    /// Wait before notifying about changes to a notified group (5m).
    #[serde(with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub group_interval: Option<Duration>,
    /// Wait before repeating an unchanged firing group (4h), rounded up to
    /// a multiple of `group_interval`.
    #[serde(with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub repeat_interval: Option<Duration>,
    /// Names of time intervals during which this route sends nothing. Like
    /// Alertmanager, not inherited by child routes.
    pub mute_time_intervals: Vec<String>,
    /// Names of time intervals outside which this route sends nothing; not
    /// inherited.
    pub active_time_intervals: Vec<String>,
    pub routes: Vec<RouteConfig>,
}

/// Mutes alerts matching `target_matchers` while an alert matching
/// `source_matchers` with the same values of the `equal` labels fires.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct InhibitRuleConfig {
    pub source_matchers: Vec<String>,
    pub target_matchers: Vec<String>,
    pub equal: Vec<String>,
}

/// A named set of windows: Alertmanager's `time_intervals` entries and/or
/// Lookout's cron windows. The interval holds when any of its windows does.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TimeIntervalConfig {
    pub name: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub time_intervals: Vec<TimePeriodConfig>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cron: Vec<CronWindowConfig>,
}

/// Alertmanager's time interval: every field given must hold; a field left
/// out holds always.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TimePeriodConfig {
    /// Times of day, `start_time` inclusive, `end_time` exclusive.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub times: Vec<TimeRangeConfig>,
    /// `monday`, or inclusive ranges such as `monday:friday`.
    #[serde(
        deserialize_with = "string_list",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub weekdays: Vec<String>,
    /// `1`..`31` or from the end `-1`..`-31`, or ranges `'1:5'`, `'-3:-1'`.
    #[serde(
        deserialize_with = "string_list",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub days_of_month: Vec<String>,
    /// `january`..`december` or `1`..`12`, or ranges.
    #[serde(
        deserialize_with = "string_list",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub months: Vec<String>,
    /// Years or ranges such as `'2024:2026'`.
    #[serde(
        deserialize_with = "string_list",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub years: Vec<String>,
    /// IANA time zone the fields are read in (`UTC` when unset; `Local`
    /// is the host's zone).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TimeRangeConfig {
    /// `HH:MM`.
    pub start_time: String,
    /// `HH:MM`, up to `24:00`.
    pub end_time: String,
}

/// Lookout's cron window: active from each time `schedule` fires for
/// `duration`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CronWindowConfig {
    /// Five-field cron (`minute hour day-of-month month day-of-week`).
    pub schedule: String,
    #[serde(with = "humantime_serde")]
    pub duration: Duration,
    /// IANA time zone the schedule is read in; UTC when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
}

/// YAML users write `days_of_month: [1, 15]` and `years: [2025]`; accept
/// numbers as well as strings.
fn string_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Item {
        S(String),
        I(i64),
    }
    Ok(Vec::<Item>::deserialize(d)?
        .into_iter()
        .map(|i| match i {
            Item::S(s) => s,
            Item::I(n) => n.to_string(),
        })
        .collect())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProblemLevel {
    Error,
    Warning,
}

/// One problem in the config, with the path of the field it is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigProblem {
    pub level: ProblemLevel,
    /// e.g. `notify.route.routes[1].receiver`.
    pub path: String,
    pub message: String,
}

impl ConfigProblem {
    pub fn error(path: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigProblem {
            level: ProblemLevel::Error,
            path: path.into(),
            message: message.into(),
        }
    }

    pub fn warning(path: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigProblem {
            level: ProblemLevel::Warning,
            path: path.into(),
            message: message.into(),
        }
    }

    pub fn is_error(&self) -> bool {
        self.level == ProblemLevel::Error
    }
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Every error found in a config, for one message listing them all.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigProblem>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        write!(
            f,
            "{n} problem{} in the notify config",
            if n == 1 { "" } else { "s" }
        )?;
        for p in &self.0 {
            write!(f, "\n  {p}")?;
        }
        Ok(())
    }
}

/// The prefix of every problem's path.
pub const ROOT_PATH: &str = "notify";

impl NotifyConfig {
    /// A config with no receivers and no routes: alerts are tracked but no
    /// notification is sent.
    pub fn is_disabled(&self) -> bool {
        self.receivers.is_empty() && self.route == RouteConfig::default()
    }

    /// Checks everything at once: errors (unknown receivers or time
    /// intervals, bad matchers, regexes, cron schedules and time zones,
    /// zero intervals, misplaced root settings) and warnings (a
    /// `repeat_interval` rounded up to a multiple of `group_interval`).
    pub fn validate(&self) -> Vec<ConfigProblem> {
        let mut problems = Vec::new();
        if self.resolve_timeout.is_zero() {
            problems.push(ConfigProblem::error(
                format!("{ROOT_PATH}.resolve_timeout"),
                "must be positive",
            ));
        }

        for (i, r) in self.receivers.iter().enumerate() {
            for p in r.validate(&format!("{ROOT_PATH}.receivers[{i}]")) {
                problems.push(ConfigProblem::error(p.path, p.message));
            }
        }

        let mut receivers = HashSet::new();
        for (i, r) in self.receivers.iter().enumerate() {
            let path = format!("{ROOT_PATH}.receivers[{i}].name");
            if r.name.is_empty() {
                problems.push(ConfigProblem::error(path, "a receiver needs a name"));
            } else if !receivers.insert(r.name.as_str()) {
                problems.push(ConfigProblem::error(
                    path,
                    format!("receiver name {:?} is used twice", r.name),
                ));
            }
        }

        let mut intervals = HashSet::new();
        for (i, ti) in self.time_intervals.iter().enumerate() {
            let path = format!("{ROOT_PATH}.time_intervals[{i}]");
            if ti.name.is_empty() {
                problems.push(ConfigProblem::error(
                    format!("{path}.name"),
                    "a time interval needs a name",
                ));
            } else if !intervals.insert(ti.name.as_str()) {
                problems.push(ConfigProblem::error(
                    format!("{path}.name"),
                    format!("time interval name {:?} is used twice", ti.name),
                ));
            }
            timeinterval::check_config(ti, &path, &mut problems);
        }

        if !self.is_disabled() {
            let ctx = RouteCheck {
                receivers: &receivers,
                intervals: &intervals,
            };
            let root_path = format!("{ROOT_PATH}.route");
            if self.route.receiver.is_empty() {
                problems.push(ConfigProblem::error(
                    format!("{root_path}.receiver"),
                    "the root route must name a receiver",
                ));
            }
            if !self.route.matchers.is_empty() {
                problems.push(ConfigProblem::error(
                    format!("{root_path}.matchers"),
                    "the root route must not have matchers: it takes every alert",
                ));
            }
            if self.route.continue_matching {
                problems.push(ConfigProblem::error(
                    format!("{root_path}.continue"),
                    "the root route has no siblings to continue to",
                ));
            }
            if !self.route.mute_time_intervals.is_empty() {
                problems.push(ConfigProblem::error(
                    format!("{root_path}.mute_time_intervals"),
                    "the root route must not have mute time intervals (put them on a child route)",
                ));
            }
            ctx.check(&self.route, &root_path, None, &mut problems);
        }

        for (i, rule) in self.inhibit_rules.iter().enumerate() {
            let path = format!("{ROOT_PATH}.inhibit_rules[{i}]");
            check_matchers(
                &rule.source_matchers,
                &format!("{path}.source_matchers"),
                &mut problems,
            );
            check_matchers(
                &rule.target_matchers,
                &format!("{path}.target_matchers"),
                &mut problems,
            );
            for (j, l) in rule.equal.iter().enumerate() {
                if l.is_empty() {
                    problems.push(ConfigProblem::error(
                        format!("{path}.equal[{j}]"),
                        "empty label name",
                    ));
                }
            }
        }
        problems
    }

    /// [`validate`](Self::validate), failing on errors and returning the
    /// warnings otherwise.
    pub fn check(&self) -> Result<Vec<ConfigProblem>, ConfigErrors> {
        let (errors, warnings): (Vec<_>, Vec<_>) = self
            .validate()
            .into_iter()
            .partition(ConfigProblem::is_error);
        if errors.is_empty() {
            Ok(warnings)
        } else {
            Err(ConfigErrors(errors))
        }
    }
}

fn check_matchers(lines: &[String], path: &str, problems: &mut Vec<ConfigProblem>) {
    for (i, line) in lines.iter().enumerate() {
        if let Err(e) = parse_matchers(line) {
            problems.push(ConfigProblem::error(format!("{path}[{i}]"), e.to_string()));
        }
    }
}

struct RouteCheck<'a> {
    receivers: &'a HashSet<&'a str>,
    intervals: &'a HashSet<&'a str>,
}

impl RouteCheck<'_> {
    fn check(
        &self,
        route: &RouteConfig,
        path: &str,
        parent: Option<&RouteOpts>,
        problems: &mut Vec<ConfigProblem>,
    ) {
        if !route.receiver.is_empty() && !self.receivers.contains(route.receiver.as_str()) {
            problems.push(ConfigProblem::error(
                format!("{path}.receiver"),
                format!("no receiver named {:?}", route.receiver),
            ));
        }
        check_matchers(&route.matchers, &format!("{path}.matchers"), problems);
        if let Some(group_by) = &route.group_by {
            let mut seen = HashSet::new();
            for (i, l) in group_by.iter().enumerate() {
                let p = format!("{path}.group_by[{i}]");
                if l.is_empty() {
                    problems.push(ConfigProblem::error(p, "empty label name"));
                } else if l == GROUP_BY_ALL && group_by.len() > 1 {
                    problems.push(ConfigProblem::error(
                        p,
                        "'...' groups by every label and cannot be listed with other labels",
                    ));
                } else if !seen.insert(l.as_str()) {
                    problems.push(ConfigProblem::error(
                        p,
                        format!("label {l:?} is listed twice"),
                    ));
                }
            }
        }
        if route.group_interval.is_some_and(|d| d.is_zero()) {
            problems.push(ConfigProblem::error(
                format!("{path}.group_interval"),
                "must be positive",
            ));
        }
        if route.repeat_interval.is_some_and(|d| d.is_zero()) {
            problems.push(ConfigProblem::error(
                format!("{path}.repeat_interval"),
                "must be positive",
            ));
        }
        for (field, names) in [
            ("mute_time_intervals", &route.mute_time_intervals),
            ("active_time_intervals", &route.active_time_intervals),
        ] {
            for (i, name) in names.iter().enumerate() {
                if !self.intervals.contains(name.as_str()) {
                    problems.push(ConfigProblem::error(
                        format!("{path}.{field}[{i}]"),
                        format!("no time interval named {name:?}"),
                    ));
                }
            }
        }

        let opts = RouteOpts::inherit(parent, route);
        let sets_timers = route.repeat_interval.is_some() || route.group_interval.is_some();
        if (parent.is_none() || sets_timers)
            && !opts.group_interval.is_zero()
            && !opts.repeat_interval.is_zero()
        {
            let rounded = RouteOpts::round_repeat(opts.repeat_interval, opts.group_interval);
            if rounded != opts.repeat_interval {
                problems.push(ConfigProblem::warning(
                    format!("{path}.repeat_interval"),
                    format!(
                        "{} is not a multiple of group_interval {}: repeats go out every {}",
                        humantime::format_duration(opts.repeat_interval),
                        humantime::format_duration(opts.group_interval),
                        humantime::format_duration(rounded),
                    ),
                ));
            }
        }
        for (i, child) in route.routes.iter().enumerate() {
            self.check(child, &format!("{path}.routes[{i}]"), Some(&opts), problems);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> NotifyConfig {
        match serde_yaml_ng::from_str(yaml) {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        }
    }

    fn messages(cfg: &NotifyConfig) -> Vec<String> {
        cfg.validate().iter().map(|p| p.to_string()).collect()
    }

    #[test]
    fn defaults_and_full_shape() {
        let cfg = NotifyConfig::default();
        assert!(cfg.is_disabled());
        assert!(cfg.validate().is_empty());
        assert_eq!(cfg.resolve_timeout, Duration::from_secs(300));

        let cfg = parse(
            r#"
resolve_timeout: 1m
route:
  receiver: ops
  group_by: ['...']
  group_wait: 5s
  routes:
    - matchers: ['severity="critical"', '{team=~"a|b", env!=dev}']
      receiver: pager
      continue: true
      group_by: [alertname]
      repeat_interval: 1h
      mute_time_intervals: [night]
      active_time_intervals: [maint]
receivers: [{name: ops}, {name: pager}]
inhibit_rules:
  - source_matchers: ['alertname="NodeDown"']
    target_matchers: ['alertname="ContainerDown"']
    equal: [node]
time_intervals:
  - name: night
    time_intervals:
      - times: [{start_time: "22:00", end_time: "24:00"}]
        weekdays: ['monday:friday', sunday]
        days_of_month: ['1:5', '-3:-1', 15]
        months: [january, '3:4']
        years: [2025, '2026:2027']
        location: Asia/Shanghai
  - name: maint
    cron: [{schedule: "0 2 * * 6", duration: 2h, location: Asia/Shanghai}]
"#,
        );
        assert_eq!(cfg.validate(), Vec::<ConfigProblem>::new());
        assert_eq!(cfg.resolve_timeout, Duration::from_secs(60));
        assert_eq!(
            cfg.route.group_by.as_deref(),
            Some(&["...".to_string()][..])
        );
        let child = &cfg.route.routes[0];
        assert!(child.continue_matching);
        assert_eq!(child.repeat_interval, Some(Duration::from_secs(3600)));
        assert_eq!(child.group_wait, None);
        assert_eq!(
            cfg.time_intervals[0].time_intervals[0].days_of_month,
            ["1:5", "-3:-1", "15"]
        );
        assert_eq!(
            cfg.time_intervals[1].cron[0].duration,
            Duration::from_secs(7200)
        );
        // Round trip through YAML keeps everything.
        let text = serde_yaml_ng::to_string(&cfg).unwrap();
        assert_eq!(parse(&text), cfg);
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let err = serde_yaml_ng::from_str::<NotifyConfig>("route: {receiver: a, gruop_by: [x]}")
            .unwrap_err();
        assert!(
            err.to_string().contains("unknown field `gruop_by`"),
            "{err}"
        );
    }

    #[test]
    fn every_problem_with_its_path() {
        let cfg = parse(
            r#"
route:
  receiver: ops
  continue: true
  routes:
    - receiver: ops
      matchers: ['a=~(']
    - receiver: x
      group_by: ['...', alertname]
      mute_time_intervals: [nope]
      routes:
        - active_time_intervals: [night]
          group_interval: 0s
receivers: [{name: ops}, {name: ops}, {name: ""}]
inhibit_rules:
  - source_matchers: ['a=']
    target_matchers: ['b!~[']
    equal: ['']
time_intervals:
  - name: night
    time_intervals:
      - times: [{start_time: "25:00", end_time: "24:00"}, {start_time: "10:00", end_time: "09:00"}]
        weekdays: ['friday:monday', funday]
        days_of_month: ['0', '5:-40']
        months: [smarch, '12:1']
        years: ['20x']
        location: Mars/Olympus
  - name: night
    cron: [{schedule: "61 * * * *", duration: 0s, location: Nowhere/Land}]
"#,
        );
        let got = messages(&cfg);
        let expected = [
            r#"notify.receivers[1].name: receiver name "ops" is used twice"#,
            "notify.receivers[2].name: a receiver needs a name",
            "notify.time_intervals[0].time_intervals[0].times[0].start_time: \"25:00\" is not a time of day HH:MM between 00:00 and 24:00",
            "notify.time_intervals[0].time_intervals[0].times[1]: start_time 10:00 must be before end_time 09:00",
            "notify.time_intervals[0].time_intervals[0].weekdays[0]: \"friday:monday\": the start of a range must not be after its end (sunday is first)",
            "notify.time_intervals[0].time_intervals[0].weekdays[1]: \"funday\" is not a weekday",
            "notify.time_intervals[0].time_intervals[0].days_of_month[0]: \"0\": days of the month are 1 to 31, or -1 to -31 counting from the end",
            "notify.time_intervals[0].time_intervals[0].days_of_month[1]: \"5:-40\": days of the month are 1 to 31, or -1 to -31 counting from the end",
            "notify.time_intervals[0].time_intervals[0].months[0]: \"smarch\" is not a month",
            "notify.time_intervals[0].time_intervals[0].months[1]: \"12:1\": the start of a range must not be after its end",
            "notify.time_intervals[0].time_intervals[0].years[0]: \"20x\" is not a year",
            "notify.time_intervals[0].time_intervals[0].location: unknown time zone \"Mars/Olympus\"",
            r#"notify.time_intervals[1].name: time interval name "night" is used twice"#,
            "notify.time_intervals[1].cron[0].schedule: bad cron schedule \"61 * * * *\"",
            "notify.time_intervals[1].cron[0].duration: must be positive",
            "notify.time_intervals[1].cron[0].location: unknown time zone \"Nowhere/Land\"",
            "notify.route.continue: the root route has no siblings to continue to",
            "notify.route.routes[0].matchers[0]: bad matcher \"a=~(\"",
            r#"notify.route.routes[1].receiver: no receiver named "x""#,
            "notify.route.routes[1].group_by[0]: '...' groups by every label and cannot be listed with other labels",
            r#"notify.route.routes[1].mute_time_intervals[0]: no time interval named "nope""#,
            "notify.route.routes[1].routes[0].group_interval: must be positive",
            "notify.inhibit_rules[0].target_matchers[0]: bad matcher \"b!~[\"",
            "notify.inhibit_rules[0].equal[0]: empty label name",
        ];
        for (i, want) in expected.iter().enumerate() {
            let Some(line) = got.get(i) else {
                panic!("missing problem {i}: {want}\n got: {got:#?}");
            };
            assert!(
                line.starts_with(want),
                "problem {i}:\n got: {line}\nwant: {want}\n all: {got:#?}"
            );
        }
        assert_eq!(got.len(), expected.len(), "{got:#?}");
        assert!(cfg.check().is_err());
        let text = cfg.check().unwrap_err().to_string();
        assert!(
            text.starts_with("24 problems in the notify config\n  notify.receivers[1]"),
            "{text}"
        );
    }

    #[test]
    fn root_rules_and_disabled_config() {
        let cfg = parse(
            "route: {matchers: ['a=b'], mute_time_intervals: [x]}\ntime_intervals: [{name: x}]",
        );
        assert_eq!(
            messages(&cfg),
            [
                "notify.route.receiver: the root route must name a receiver",
                "notify.route.matchers: the root route must not have matchers: it takes every alert",
                "notify.route.mute_time_intervals: the root route must not have mute time intervals (put them on a child route)",
            ]
        );
    }

    #[test]
    fn repeat_interval_rounding_warns() {
        let cfg = parse(
            r#"
route:
  receiver: ops
  group_interval: 5m
  repeat_interval: 7m
  routes:
    - matchers: [a=b]
    - matchers: [a=c]
      repeat_interval: 1h
    - matchers: [a=d]
      group_interval: 7m
receivers: [{name: ops}]
"#,
        );
        assert_eq!(
            messages(&cfg),
            [
                "notify.route.repeat_interval: 7m is not a multiple of group_interval 5m: repeats go out every 10m",
            ]
        );
        let warnings = cfg.check().unwrap();
        assert_eq!(warnings.len(), 1);
        assert_eq!(warnings[0].level, ProblemLevel::Warning);
    }
}

//! The routing tree. The root takes every alert; an alert descends into
//! the first child whose matchers match (and on into further siblings
//! while the matching child says `continue: true`); a node none of whose
//! children match handles the alert itself. Children inherit the
//! receiver, `group_by` and timers of their parent; time intervals are the
//! route's own, as in Alertmanager.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::alert::LabelSet;
use crate::config::{ConfigErrors, ConfigProblem, RouteConfig};
use crate::matchers::{Matcher, Matchers, matches_all, parse_matcher_lines};

/// `group_by: ['...']`: group by every label.
pub const GROUP_BY_ALL: &str = "...";

pub const DEFAULT_GROUP_WAIT: Duration = Duration::from_secs(30);
pub const DEFAULT_GROUP_INTERVAL: Duration = Duration::from_secs(5 * 60);
pub const DEFAULT_REPEAT_INTERVAL: Duration = Duration::from_secs(4 * 3600);

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GroupBy {
    /// These labels (an empty set puts every alert of the route in one
    /// group).
    Labels(BTreeSet<String>),
    /// Every label: one group per alert.
    All,
}

/// A route's settings after inheritance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteOpts {
    pub receiver: String,
    pub group_by: GroupBy,
    pub group_wait: Duration,
    pub group_interval: Duration,
    /// As configured; see [`RouteOpts::effective_repeat_interval`].
    pub repeat_interval: Duration,
    pub mute_time_intervals: Vec<String>,
    pub active_time_intervals: Vec<String>,
}

impl RouteOpts {
    /// The settings of `route` under `parent` (`None` for the root, whose
    /// unset timers take Alertmanager's defaults).
    pub fn inherit(parent: Option<&RouteOpts>, route: &RouteConfig) -> RouteOpts {
        let base = parent.cloned().unwrap_or(RouteOpts {
            receiver: String::new(),
            group_by: GroupBy::Labels(BTreeSet::new()),
            group_wait: DEFAULT_GROUP_WAIT,
            group_interval: DEFAULT_GROUP_INTERVAL,
            repeat_interval: DEFAULT_REPEAT_INTERVAL,
            mute_time_intervals: Vec::new(),
            active_time_intervals: Vec::new(),
        });
        RouteOpts {
            receiver: if route.receiver.is_empty() {
                base.receiver
            } else {
                route.receiver.clone()
            },
            group_by: match &route.group_by {
                None => base.group_by,
                Some(l) if l.iter().any(|l| l == GROUP_BY_ALL) => GroupBy::All,
                Some(l) => GroupBy::Labels(l.iter().cloned().collect()),
            },
            group_wait: route.group_wait.unwrap_or(base.group_wait),
            group_interval: route.group_interval.unwrap_or(base.group_interval),
            repeat_interval: route.repeat_interval.unwrap_or(base.repeat_interval),
            mute_time_intervals: route.mute_time_intervals.clone(),
            active_time_intervals: route.active_time_intervals.clone(),
        }
    }

    /// `repeat` rounded up to a multiple of `group_interval`: a group is
    /// only looked at every `group_interval`, so that is when repeats
    /// actually happen.
    pub fn round_repeat(repeat: Duration, group_interval: Duration) -> Duration {
        let gi = group_interval.as_millis();
        if gi == 0 {
            return repeat;
        }
        let n = repeat.as_millis().div_ceil(gi).max(1);
        Duration::from_millis(u64::try_from(n * gi).unwrap_or(u64::MAX))
    }

    pub fn effective_repeat_interval(&self) -> Duration {
        RouteOpts::round_repeat(self.repeat_interval, self.group_interval)
    }

    /// The labels an alert is grouped by here: the `group_by` labels it
    /// has (a missing one is left out, not set empty).
    pub fn group_labels(&self, labels: &LabelSet) -> LabelSet {
        match &self.group_by {
            GroupBy::All => labels.clone(),
            GroupBy::Labels(names) => labels
                .iter()
                .filter(|(k, _)| names.contains(k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    }
}

/// One node of the compiled tree.
#[derive(Clone, Debug)]
pub struct Route {
    /// Index in [`RouteTree::routes`]; 0 is the root.
    pub index: usize,
    pub parent: Option<usize>,
    pub children: Vec<usize>,
    /// Sorted, as in Alertmanager, so keys do not depend on config order.
    pub matchers: Vec<Matcher>,
    pub continue_matching: bool,
    pub opts: RouteOpts,
    /// Alertmanager's route key, `{}/{severity="critical"}`: the start of
    /// group keys. Siblings with the same matchers share it.
    pub key: String,
    /// The key plus the position among siblings (`{}/{a="b"}/0`), unique.
    pub id: String,
    /// Where the route is in the config, `notify.route.routes[0]`.
    pub config_path: String,
}

#[derive(Clone, Debug)]
pub struct RouteTree {
    pub routes: Vec<Route>,
}

impl RouteTree {
    /// Compiles a route config (expected to have passed
    /// [`NotifyConfig::validate`](crate::config::NotifyConfig::validate);
    /// bad matchers are reported again here).
    pub fn new(root: &RouteConfig) -> Result<RouteTree, ConfigErrors> {
        let mut tree = RouteTree { routes: Vec::new() };
        let mut problems = Vec::new();
        tree.add(
            root,
            None,
            &format!("{}.route", crate::config::ROOT_PATH),
            0,
            &mut problems,
        );
        if problems.is_empty() {
            Ok(tree)
        } else {
            Err(ConfigErrors(problems))
        }
    }

    fn add(
        &mut self,
        cfg: &RouteConfig,
        parent: Option<usize>,
        path: &str,
        position: usize,
        problems: &mut Vec<ConfigProblem>,
    ) -> usize {
        let mut matchers = match parse_matcher_lines(&cfg.matchers) {
            Ok(m) => m,
            Err((i, e)) => {
                problems.push(ConfigProblem::error(
                    format!("{path}.matchers[{i}]"),
                    e.to_string(),
                ));
                Vec::new()
            }
        };
        matchers.sort();
        let parent_route = parent.and_then(|p| self.routes.get(p));
        let opts = RouteOpts::inherit(parent_route.map(|p| &p.opts), cfg);
        let own = Matchers(matchers.clone()).to_string();
        let key = match parent_route {
            Some(p) => format!("{}/{own}", p.key),
            None => own,
        };
        let id = if parent.is_some() {
            format!("{key}/{position}")
        } else {
            key.clone()
        };
        let index = self.routes.len();
        self.routes.push(Route {
            index,
            parent,
            children: Vec::new(),
            matchers,
            continue_matching: cfg.continue_matching,
            opts,
            key,
            id,
            config_path: path.to_string(),
        });
        for (i, child) in cfg.routes.iter().enumerate() {
            let c = self.add(
                child,
                Some(index),
                &format!("{path}.routes[{i}]"),
                i,
                problems,
            );
            if let Some(r) = self.routes.get_mut(index) {
                r.children.push(c);
            }
        }
        index
    }

    pub fn root(&self) -> &Route {
        // `new` always pushes the root first.
        &self.routes[0]
    }

    pub fn get(&self, index: usize) -> Option<&Route> {
        self.routes.get(index)
    }

    /// The routes that handle an alert with these labels, in tree order
    /// (depth first, left to right).
    pub fn matching(&self, labels: &LabelSet) -> Vec<&Route> {
        let mut out = Vec::new();
        self.walk(0, labels, &mut out);
        out
    }

    /// Appends the matches under `index`; returns whether `index` matched.
    fn walk<'a>(&'a self, index: usize, labels: &LabelSet, out: &mut Vec<&'a Route>) -> bool {
        let Some(route) = self.routes.get(index) else {
            return false;
        };
        if !matches_all(&route.matchers, labels) {
            return false;
        }
        let before = out.len();
        for &c in &route.children {
            let matched = self.walk(c, labels, out);
            if matched && !self.routes.get(c).is_some_and(|r| r.continue_matching) {
                break;
            }
        }
        if out.len() == before {
            out.push(route);
        }
        true
    }

    /// The receivers an alert with these labels goes to, in route order.
    pub fn receivers(&self, labels: &LabelSet) -> Vec<String> {
        self.matching(labels)
            .into_iter()
            .map(|r| r.opts.receiver.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(yaml: &str) -> RouteTree {
        let cfg: RouteConfig = match serde_yaml_ng::from_str(yaml) {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        };
        match RouteTree::new(&cfg) {
            Ok(t) => t,
            Err(e) => panic!("{e}"),
        }
    }

    fn labels(pairs: &[(&str, &str)]) -> LabelSet {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const TREE: &str = r#"
receiver: default
group_by: [alertname]
group_wait: 10s
routes:
  - matchers: ['severity="critical"']
    receiver: pager
    continue: true
    repeat_interval: 1h
    routes:
      - matchers: ['team="db"']
        receiver: db-pager
        group_by: ['...']
  - matchers: ['severity=~"critical|warning"', 'env="prod"']
    receiver: chat
    group_by: [alertname, node]
    mute_time_intervals: [night]
  - matchers: ['severity="warning"']
    receiver: never-after-first-match
"#;

    #[test]
    fn first_match_wins_unless_continue() {
        let t = tree(TREE);
        let recv = |l: &[(&str, &str)]| t.receivers(&labels(l));
        assert_eq!(recv(&[("alertname", "X")]), ["default"]);
        assert_eq!(recv(&[("severity", "critical")]), ["pager"]);
        assert_eq!(
            recv(&[("severity", "critical"), ("env", "prod")]),
            ["pager", "chat"]
        );
        assert_eq!(
            recv(&[("severity", "critical"), ("env", "prod"), ("team", "db")]),
            ["db-pager", "chat"]
        );
        // The second child matches and does not continue: the third is
        // never reached.
        assert_eq!(recv(&[("severity", "warning"), ("env", "prod")]), ["chat"]);
        assert_eq!(
            recv(&[("severity", "warning")]),
            ["never-after-first-match"]
        );
    }

    #[test]
    fn inheritance_keys_and_ids() {
        let t = tree(TREE);
        let m = t.matching(&labels(&[
            ("severity", "critical"),
            ("team", "db"),
            ("env", "prod"),
        ]));
        let db = m[0];
        assert_eq!(db.key, r#"{}/{severity="critical"}/{team="db"}"#);
        assert_eq!(db.id, r#"{}/{severity="critical"}/{team="db"}/0"#);
        assert_eq!(db.opts.group_by, GroupBy::All);
        assert_eq!(db.opts.group_wait, Duration::from_secs(10));
        assert_eq!(db.opts.repeat_interval, Duration::from_secs(3600));
        assert_eq!(db.opts.group_interval, DEFAULT_GROUP_INTERVAL);
        let chat = m[1];
        assert_eq!(chat.key, r#"{}/{env="prod",severity=~"critical|warning"}"#);
        assert_eq!(chat.id, r#"{}/{env="prod",severity=~"critical|warning"}/1"#);
        assert_eq!(chat.opts.mute_time_intervals, ["night"]);
        assert_eq!(chat.config_path, "notify.route.routes[1]");
        let root = t.root();
        assert_eq!((root.key.as_str(), root.id.as_str()), ("{}", "{}"));
        assert_eq!(root.opts.repeat_interval, DEFAULT_REPEAT_INTERVAL);
        // Mute intervals are not inherited.
        let t = tree(
            "receiver: a\nroutes: [{matchers: [x=y], mute_time_intervals: [m], routes: [{matchers: [z=w]}]}]",
        );
        let r = t.matching(&labels(&[("x", "y"), ("z", "w")]));
        assert_eq!(r[0].config_path, "notify.route.routes[0].routes[0]");
        assert!(r[0].opts.mute_time_intervals.is_empty());
        assert_eq!(r[0].opts.receiver, "a");
    }

    #[test]
    fn group_labels_leave_out_missing_labels() {
        let t = tree(TREE);
        let l = labels(&[
            ("alertname", "A"),
            ("severity", "warning"),
            ("env", "prod"),
            ("x", "1"),
        ]);
        let chat = t.matching(&l)[0];
        assert_eq!(chat.opts.group_labels(&l), labels(&[("alertname", "A")]));
        let all = RouteOpts {
            group_by: GroupBy::All,
            ..chat.opts.clone()
        };
        assert_eq!(all.group_labels(&l), l);
        let none = RouteOpts {
            group_by: GroupBy::Labels(BTreeSet::new()),
            ..chat.opts.clone()
        };
        assert!(none.group_labels(&l).is_empty());
    }

    #[test]
    fn repeat_rounding() {
        let m = |s: u64| Duration::from_secs(s * 60);
        assert_eq!(RouteOpts::round_repeat(m(240), m(5)), m(240));
        assert_eq!(RouteOpts::round_repeat(m(7), m(5)), m(10));
        assert_eq!(RouteOpts::round_repeat(m(1), m(5)), m(5));
        assert_eq!(RouteOpts::round_repeat(m(0), m(5)), m(5));
    }
}

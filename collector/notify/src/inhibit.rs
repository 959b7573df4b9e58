//! Inhibition: an alert matching a rule's `target_matchers` is muted while
//! a firing alert matching its `source_matchers` has the same values for
//! every `equal` label (a missing label counts as empty).
//!
//! As in Alertmanager, when the target also matches the source matchers,
//! sources that also match the target matchers are not counted, so a rule
//! like "critical inhibits warning or critical" never lets an alert (or
//! its peers of the same kind) inhibit itself.

use std::collections::HashMap;

use crate::alert::{Alert, AlertStatus, LabelSet};
use crate::config::{ConfigErrors, ConfigProblem, InhibitRuleConfig, ROOT_PATH};
use crate::matchers::{Matcher, matches_all, parse_matcher_lines};

#[derive(Clone, Debug)]
pub struct InhibitRule {
    pub source: Vec<Matcher>,
    pub target: Vec<Matcher>,
    pub equal: Vec<String>,
}

impl InhibitRule {
    fn key(&self, labels: &LabelSet) -> Vec<String> {
        self.equal
            .iter()
            .map(|l| labels.get(l).cloned().unwrap_or_default())
            .collect()
    }
}

#[derive(Clone, Debug, Default)]
pub struct Inhibitor {
    rules: Vec<InhibitRule>,
}

impl Inhibitor {
    pub fn new(cfgs: &[InhibitRuleConfig]) -> Result<Inhibitor, ConfigErrors> {
        let mut problems = Vec::new();
        let mut rules = Vec::new();
        for (i, cfg) in cfgs.iter().enumerate() {
            let path = format!("{ROOT_PATH}.inhibit_rules[{i}]");
            let mut parse = |lines: &[String], field: &str| match parse_matcher_lines(lines) {
                Ok(m) => m,
                Err((j, e)) => {
                    problems.push(ConfigProblem::error(
                        format!("{path}.{field}[{j}]"),
                        e.to_string(),
                    ));
                    Vec::new()
                }
            };
            let source = parse(&cfg.source_matchers, "source_matchers");
            let target = parse(&cfg.target_matchers, "target_matchers");
            rules.push(InhibitRule {
                source,
                target,
                equal: cfg.equal.clone(),
            });
        }
        if problems.is_empty() {
            Ok(Inhibitor { rules })
        } else {
            Err(ConfigErrors(problems))
        }
    }

    pub fn from_rules(rules: Vec<InhibitRule>) -> Inhibitor {
        Inhibitor { rules }
    }

    pub fn rules(&self) -> &[InhibitRule] {
        &self.rules
    }

    /// Indexes the alerts firing at `now_ms` that can inhibit, by rule and
    /// by their values of the rule's `equal` labels, so each target is
    /// checked with one lookup per rule.
    pub fn snapshot<'a>(
        &'a self,
        alerts: impl IntoIterator<Item = &'a Alert>,
        now_ms: i64,
    ) -> InhibitState<'a> {
        let mut per_rule: Vec<HashMap<Vec<String>, Vec<Source>>> =
            vec![HashMap::new(); self.rules.len()];
        if !self.rules.is_empty() {
            for a in alerts {
                if a.status_at(now_ms) != AlertStatus::Firing {
                    continue;
                }
                for (rule, index) in self.rules.iter().zip(per_rule.iter_mut()) {
                    if matches_all(&rule.source, &a.labels) {
                        index.entry(rule.key(&a.labels)).or_default().push(Source {
                            fingerprint: a.fingerprint(),
                            matches_target: matches_all(&rule.target, &a.labels),
                        });
                    }
                }
            }
            // Sources come from a hash map upstream: sort so the reported
            // inhibitor does not change from run to run.
            for index in &mut per_rule {
                for sources in index.values_mut() {
                    sources.sort_by_key(|s| s.fingerprint);
                }
            }
        }
        InhibitState {
            rules: &self.rules,
            per_rule,
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Source {
    fingerprint: u64,
    matches_target: bool,
}

/// The firing sources at one instant.
#[derive(Debug)]
pub struct InhibitState<'a> {
    rules: &'a [InhibitRule],
    per_rule: Vec<HashMap<Vec<String>, Vec<Source>>>,
}

impl InhibitState<'_> {
    /// The fingerprint of an alert that inhibits these labels, if any.
    pub fn inhibited_by(&self, labels: &LabelSet) -> Option<u64> {
        self.sources(labels).next()
    }

    /// Every inhibiting alert's fingerprint, sorted, without repeats.
    pub fn all_inhibited_by(&self, labels: &LabelSet) -> Vec<u64> {
        let mut all: Vec<u64> = self.sources(labels).collect();
        all.sort_unstable();
        all.dedup();
        all
    }

    fn sources<'s>(&'s self, labels: &'s LabelSet) -> impl Iterator<Item = u64> + 's {
        self.rules
            .iter()
            .zip(&self.per_rule)
            .filter(move |(rule, _)| matches_all(&rule.target, labels))
            .flat_map(move |(rule, index)| {
                let target_is_source = matches_all(&rule.source, labels);
                index
                    .get(&rule.key(labels))
                    .into_iter()
                    .flatten()
                    .filter(move |s| !(target_is_source && s.matches_target))
                    .map(|s| s.fingerprint)
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(pairs: &[(&str, &str)], ends_at_ms: Option<i64>) -> Alert {
        Alert {
            labels: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            annotations: LabelSet::new(),
            starts_at_ms: 0,
            ends_at_ms,
            generator_url: String::new(),
        }
    }

    fn inhibitor(yaml: &str) -> Inhibitor {
        let cfgs: Vec<InhibitRuleConfig> = match serde_yaml_ng::from_str(yaml) {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        };
        match Inhibitor::new(&cfgs) {
            Ok(i) => i,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn node_down_inhibits_its_containers_only() {
        let inh = inhibitor(
            r#"
- source_matchers: ['alertname="NodeDown"']
  target_matchers: ['alertname="ContainerDown"']
  equal: [node]
"#,
        );
        let node = alert(&[("alertname", "NodeDown"), ("node", "n1")], None);
        let c1 = alert(
            &[
                ("alertname", "ContainerDown"),
                ("node", "n1"),
                ("container", "web"),
            ],
            None,
        );
        let c2 = alert(
            &[
                ("alertname", "ContainerDown"),
                ("node", "n2"),
                ("container", "web"),
            ],
            None,
        );
        let all = [node.clone(), c1.clone(), c2.clone()];
        let state = inh.snapshot(&all, 1000);
        assert_eq!(state.inhibited_by(&c1.labels), Some(node.fingerprint()));
        assert_eq!(state.inhibited_by(&c2.labels), None);
        assert_eq!(state.inhibited_by(&node.labels), None);

        // A resolved source inhibits nothing.
        let resolved = alert(&[("alertname", "NodeDown"), ("node", "n1")], Some(1000));
        let state = inh.snapshot([&resolved, &c1], 1000);
        assert_eq!(state.inhibited_by(&c1.labels), None);
        let state = inh.snapshot([&resolved, &c1], 999);
        assert_eq!(state.inhibited_by(&c1.labels), Some(resolved.fingerprint()));
    }

    #[test]
    fn missing_equal_labels_count_as_empty() {
        let inh =
            inhibitor("- {source_matchers: [a=src], target_matchers: [a=tgt], equal: [zone]}");
        let src = alert(&[("a", "src")], None);
        let t_none = alert(&[("a", "tgt")], None);
        let t_empty = alert(&[("a", "tgt"), ("zone", "")], None);
        let t_zone = alert(&[("a", "tgt"), ("zone", "z1")], None);
        let state = inh.snapshot([&src], 0);
        assert!(state.inhibited_by(&t_none.labels).is_some());
        assert!(state.inhibited_by(&t_empty.labels).is_some());
        assert!(state.inhibited_by(&t_zone.labels).is_none());
    }

    #[test]
    fn an_alert_never_inhibits_itself() {
        let inh = inhibitor(
            r#"
- source_matchers: ['severity="critical"']
  target_matchers: ['severity=~"critical|warning"']
  equal: [alertname]
"#,
        );
        let crit = alert(
            &[("alertname", "Disk"), ("severity", "critical"), ("i", "1")],
            None,
        );
        let crit2 = alert(
            &[("alertname", "Disk"), ("severity", "critical"), ("i", "2")],
            None,
        );
        let warn = alert(&[("alertname", "Disk"), ("severity", "warning")], None);
        let state = inh.snapshot([&crit, &crit2, &warn], 0);
        assert_eq!(state.inhibited_by(&crit.labels), None);
        assert_eq!(state.inhibited_by(&crit2.labels), None);
        let mut both = vec![crit.fingerprint(), crit2.fingerprint()];
        both.sort_unstable();
        assert_eq!(state.all_inhibited_by(&warn.labels), both);
        assert_eq!(state.inhibited_by(&warn.labels), Some(both[0]));
    }

    #[test]
    fn bad_matchers_are_reported_with_their_path() {
        let cfgs: Vec<InhibitRuleConfig> =
            serde_yaml_ng::from_str("- {source_matchers: [a=b], target_matchers: ['c=~(']}")
                .unwrap();
        let err = Inhibitor::new(&cfgs).unwrap_err();
        assert!(
            err.0[0]
                .to_string()
                .starts_with("notify.inhibit_rules[0].target_matchers[0]: bad matcher")
        );
    }
}

//! The alert annotations of kubernetes-mixin and kube-prometheus, read
//! from the shared conformance data beside the repository: every one
//! must parse and render, and where the mixin's own promtool tests give
//! the expected text (and it does not depend on the alert's value), ours
//! must be the same.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use lookout_template::{Funcs, Template, Value};
use serde_yaml_ng::Value as Yaml;

/// Prometheus puts this before every annotation template.
const HEADER: &str = "{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}{{$externalURL := .ExternalURL}}{{$value := .Value}}";

fn conformance_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("LOOKOUT_CONFORMANCE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance")
        });
    if dir.is_dir() {
        return Some(dir);
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!(
            "conformance data not found at {} (set LOOKOUT_CONFORMANCE_DIR)",
            dir.display()
        );
    }
    eprintln!(
        "note: conformance data not found at {}; skipping",
        dir.display()
    );
    None
}

fn read_yaml(path: &Path) -> Yaml {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn string_map(v: Option<&Yaml>) -> BTreeMap<String, String> {
    let Some(Yaml::Mapping(m)) = v else {
        return BTreeMap::new();
    };
    m.iter()
        .filter_map(|(k, v)| {
            let v = match v {
                Yaml::String(s) => s.clone(),
                Yaml::Number(n) => n.to_string(),
                Yaml::Bool(b) => b.to_string(),
                _ => return None,
            };
            Some((k.as_str()?.to_string(), v))
        })
        .collect()
}

struct Rule {
    file: String,
    alert: String,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
}

fn alerting_rules(path: &Path) -> Vec<Rule> {
    let doc = read_yaml(path);
    let file = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut out = Vec::new();
    let groups = doc
        .get("groups")
        .and_then(Yaml::as_sequence)
        .cloned()
        .unwrap_or_default();
    for g in &groups {
        for r in g
            .get("rules")
            .and_then(Yaml::as_sequence)
            .into_iter()
            .flatten()
        {
            let Some(alert) = r.get("alert").and_then(Yaml::as_str) else {
                continue;
            };
            out.push(Rule {
                file: file.clone(),
                alert: alert.to_string(),
                labels: string_map(r.get("labels")),
                annotations: string_map(r.get("annotations")),
            });
        }
    }
    out
}

fn rule_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = vec![dir.join("kubernetes-mixin/prometheus_alerts.yaml")];
    let mut kp: Vec<PathBuf> = std::fs::read_dir(dir.join("kube-prometheus"))
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    kp.retain(|p| p.extension().is_some_and(|e| e == "yaml"));
    kp.sort();
    files.extend(kp);
    files
}

/// Prometheus's functions plus a `query` that finds one sample (one
/// annotation reads `query ... | first | value`).
fn funcs() -> Funcs<'static> {
    let mut f = Funcs::prometheus();
    f.insert(
        "query",
        Box::new(|_: &[Value]| {
            Ok(Value::list([Value::map([
                ("Labels", Value::map([("instance", "10.0.0.1:9090")])),
                ("Value", Value::Float(200.0)),
            ])]))
        }),
    );
    f
}

fn alert_data(labels: &BTreeMap<String, String>, value: f64) -> Value {
    Value::map([
        (
            "Labels",
            Value::map(labels.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
        ),
        (
            "ExternalLabels",
            Value::map([("prometheus", "monitoring/k8s")]),
        ),
        ("ExternalURL", Value::from("http://prometheus.example:9090")),
        ("Value", Value::Float(value)),
    ])
}

#[test]
fn every_conformance_annotation_parses_and_renders() {
    let Some(dir) = conformance_dir() else {
        return;
    };
    let funcs = funcs();
    let labels: BTreeMap<String, String> = [
        "namespace",
        "pod",
        "container",
        "cluster",
        "instance",
        "job",
        "node",
        "device",
        "mountpoint",
        "service",
        "persistentvolumeclaim",
        "persistentvolume",
        "phase",
        "controller",
        "resource",
        "name",
        "url",
        "statefulset",
        "deployment",
        "daemonset",
        "job_name",
        "horizontalpodautoscaler",
        "reason",
        "integration",
        "remote_name",
        "alertmanager",
        "handler",
        "condition",
        "eviction_signal",
        "master",
        "mechanism",
        "poddisruptionbudget",
    ]
    .iter()
    .map(|k| (k.to_string(), format!("{k}-x")))
    .collect();
    let mut rendered = 0;
    let mut failures = Vec::new();
    for file in rule_files(&dir) {
        for rule in alerting_rules(&file) {
            for (key, text) in &rule.annotations {
                let name = format!("{}/{}/{key}", rule.file, rule.alert);
                let full = format!("{HEADER}{text}");
                let t = match Template::parse(&name, &full, &funcs) {
                    Ok(t) => t,
                    Err(e) => {
                        failures.push(format!("parse: {e}"));
                        continue;
                    }
                };
                for (data, value) in [(&labels, 0.4275), (&BTreeMap::new(), 1234567.0)] {
                    match t.render(&alert_data(data, value), &funcs) {
                        Ok(out) if out.contains("<no value>") || out.contains("%!") => {
                            failures.push(format!("{name}: suspicious output {out:?}"));
                        }
                        Ok(_) => rendered += 1,
                        Err(e) => failures.push(format!("render: {e}")),
                    }
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // kubernetes-mixin and kube-prometheus have hundreds of annotations.
    assert!(rendered > 500, "only {rendered} annotations rendered");
}

#[test]
fn spot_checks_of_conformance_annotations() {
    let Some(dir) = conformance_dir() else {
        return;
    };
    let funcs = funcs();
    let rules = alerting_rules(&dir.join("kubernetes-mixin/prometheus_alerts.yaml"));
    let find = |alert: &str, key: &str| {
        rules
            .iter()
            .find(|r| r.alert == alert)
            .and_then(|r| r.annotations.get(key))
            .unwrap_or_else(|| panic!("{alert} has no {key}"))
            .clone()
    };
    let render = |text: &str, labels: &[(&str, &str)], value: f64| {
        let labels = labels
            .iter()
            .map(|&(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let t = Template::parse("spot", &format!("{HEADER}{text}"), &funcs)
            .unwrap_or_else(|e| panic!("{e}"));
        t.render(&alert_data(&labels, value), &funcs)
            .unwrap_or_else(|e| panic!("{e}"))
    };
    let text = find("KubePodCrashLooping", "description");
    let out = render(
        &text,
        &[
            ("namespace", "ns"),
            ("pod", "p-1"),
            ("container", "c"),
            ("reason", "CrashLoopBackOff"),
        ],
        1.0,
    );
    assert!(out.contains("ns/p-1 (c)"), "{out}");
    let text = find("KubeletTooManyPods", "description");
    let out = render(&text, &[("node", "node0"), ("cluster", "k")], 1.0);
    assert!(out.contains("100%") && out.contains("node0"), "{out}");
}

/// One alert a promtool test expects: its labels and annotations.
struct Expected {
    test_file: String,
    alert: String,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
}

fn expected_alerts(dir: &Path) -> Vec<Expected> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join("kubernetes-mixin/tests"))
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let doc = read_yaml(&f);
        let test_file = f
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        for t in doc
            .get("tests")
            .and_then(Yaml::as_sequence)
            .into_iter()
            .flatten()
        {
            for a in t
                .get("alert_rule_test")
                .and_then(Yaml::as_sequence)
                .into_iter()
                .flatten()
            {
                let alert = a
                    .get("alertname")
                    .and_then(Yaml::as_str)
                    .unwrap_or_default()
                    .to_string();
                for e in a
                    .get("exp_alerts")
                    .and_then(Yaml::as_sequence)
                    .into_iter()
                    .flatten()
                {
                    out.push(Expected {
                        test_file: test_file.clone(),
                        alert: alert.clone(),
                        labels: string_map(e.get("exp_labels")),
                        annotations: string_map(e.get("exp_annotations")),
                    });
                }
            }
        }
    }
    out
}

#[test]
fn promtool_expected_annotations_match() {
    let Some(dir) = conformance_dir() else {
        return;
    };
    let funcs = funcs();
    let rules = alerting_rules(&dir.join("kubernetes-mixin/prometheus_alerts.yaml"));
    let mut compared = 0;
    let mut mismatches = Vec::new();
    for exp in expected_alerts(&dir) {
        let Some(rule) = rules.iter().find(|r| {
            r.alert == exp.alert && r.labels.iter().all(|(k, v)| exp.labels.get(k) == Some(v))
        }) else {
            continue;
        };
        // $labels are the series' labels: the alert's, less the rule's own.
        let series: BTreeMap<String, String> = exp
            .labels
            .iter()
            .filter(|(k, _)| !rule.labels.contains_key(*k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (key, want) in &exp.annotations {
            let Some(text) = rule.annotations.get(key) else {
                continue;
            };
            // The value comes from evaluating the rule, which is not done here.
            if text.contains("$value") || text.contains(".Value") || text.contains("query") {
                continue;
            }
            let t = Template::parse(&exp.alert, &format!("{HEADER}{text}"), &funcs)
                .unwrap_or_else(|e| panic!("{}: {e}", exp.test_file));
            let got = t
                .render(&alert_data(&series, f64::NAN), &funcs)
                .unwrap_or_else(|e| panic!("{}: {e}", exp.test_file));
            compared += 1;
            if &got != want {
                mismatches.push(format!(
                    "{} {} {key}:\n  want {want:?}\n  got  {got:?}",
                    exp.test_file, exp.alert
                ));
            }
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
    eprintln!("{compared} annotations compared with promtool's expectations");
    assert!(compared >= 20, "only {compared} annotations compared");
}

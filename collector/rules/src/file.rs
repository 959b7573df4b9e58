//! Rule files in Prometheus's format: loading, checking, and errors that
//! name the file, group, rule and line.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

use lookout_promql::durations::parse_duration_ms;
use lookout_protocol::model::{is_valid_label_name, is_valid_metric_name};
use lookout_template::{Funcs, Template};
use promql_parser::parser::Expr;
use serde::Deserialize;

/// Rule files larger than this are refused: a rule file is configuration,
/// and a runaway generator should not exhaust memory.
pub const MAX_FILE_BYTES: u64 = 16 << 20;

/// A problem in a rule file, located as precisely as it can be.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleError {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub group: Option<String>,
    pub rule: Option<String>,
    pub message: String,
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        write!(f, ":")?;
        if let Some(g) = &self.group {
            write!(f, " group {g:?}")?;
        }
        if let Some(r) = &self.rule {
            write!(
                f,
                "{} rule {r:?}",
                if self.group.is_some() { "," } else { "" }
            )?;
        }
        if self.group.is_some() || self.rule.is_some() {
            write!(f, ":")?;
        }
        write!(f, " {}", self.message)
    }
}

impl std::error::Error for RuleError {}

/// Every problem found in a set of files, so an operator fixes them in one
/// pass rather than one per reload.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleErrors(pub Vec<RuleError>);

impl fmt::Display for RuleErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for RuleErrors {}

/// A loaded, checked group of rules.
#[derive(Clone, Debug)]
pub struct RuleGroup {
    pub file: PathBuf,
    pub name: String,
    /// Evaluation interval; `None` uses the global one.
    pub interval_ms: Option<i64>,
    /// Most alerts (or recorded series) one rule may produce; 0 = no limit.
    pub limit: usize,
    /// How far in the past the group evaluates, to let late data arrive.
    pub query_offset_ms: Option<i64>,
    /// Labels added to every rule's output (rule labels win).
    pub labels: BTreeMap<String, String>,
    pub rules: Vec<Rule>,
}

#[derive(Clone, Debug)]
pub struct Rule {
    /// The record or alert name.
    pub name: String,
    pub kind: RuleKind,
    pub expr_text: String,
    pub expr: Expr,
    /// The rule's labels as written, sorted by name.
    pub labels: Vec<(String, String)>,
    pub line: Option<usize>,
}

#[derive(Clone, Debug)]
pub enum RuleKind {
    Recording,
    Alerting {
        for_ms: i64,
        keep_firing_for_ms: i64,
        /// The label values as templates, in the order of `labels`.
        label_templates: Vec<(String, Template)>,
        annotations: Vec<(String, Template)>,
        /// The annotations as written, for APIs that show the rule.
        annotation_texts: Vec<(String, String)>,
    },
}

impl Rule {
    pub fn is_alerting(&self) -> bool {
        matches!(self.kind, RuleKind::Alerting { .. })
    }
}

/// A finding that does not stop the rules from loading (promtool's lints).
#[derive(Debug, Clone, PartialEq)]
pub struct Lint {
    pub file: PathBuf,
    pub group: String,
    pub message: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    groups: Vec<RawGroup>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGroup {
    name: Option<String>,
    interval: Option<Scalar>,
    limit: Option<usize>,
    query_offset: Option<Scalar>,
    #[serde(default)]
    labels: BTreeMap<String, Scalar>,
    #[serde(default)]
    rules: Vec<RawRule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    record: Option<String>,
    alert: Option<String>,
    expr: Option<Scalar>,
    #[serde(rename = "for")]
    for_: Option<Scalar>,
    keep_firing_for: Option<Scalar>,
    #[serde(default)]
    labels: BTreeMap<String, Scalar>,
    #[serde(default)]
    annotations: BTreeMap<String, Scalar>,
}

/// A YAML scalar read as text: `expr: 1` and `severity: 5` are as valid as
/// quoted strings.
#[derive(Debug, Clone)]
struct Scalar(String);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match serde_yaml_ng::Value::deserialize(d)? {
            serde_yaml_ng::Value::String(s) => Ok(Scalar(s)),
            serde_yaml_ng::Value::Number(n) => Ok(Scalar(n.to_string())),
            serde_yaml_ng::Value::Bool(b) => Ok(Scalar(b.to_string())),
            serde_yaml_ng::Value::Null => Ok(Scalar(String::new())),
            _ => Err(serde::de::Error::custom(
                "expected a string, number or boolean",
            )),
        }
    }
}

/// Header Prometheus puts before every annotation and label template, so
/// templates can say `$labels`, `$value` and `$externalLabels`.
pub const TEMPLATE_HEADER: &str = "{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}{{$externalURL := .ExternalURL}}{{$value := .Value}}";

/// The functions annotation templates may call; `query` is bound to the
/// store at evaluation time, so here it only needs to exist by name.
pub fn template_funcs_for_checking() -> Funcs<'static> {
    let mut f = Funcs::prometheus();
    f.insert(
        "query",
        Box::new(|_| Ok(lookout_template::Value::List(Vec::new(), BTreeMap::new()))),
    );
    f
}

/// Reads and checks one rule file.
pub fn load_file(path: &Path) -> Result<(Vec<RuleGroup>, Vec<Lint>), RuleErrors> {
    let err = |message: String| {
        RuleErrors(vec![RuleError {
            file: path.to_path_buf(),
            line: None,
            group: None,
            rule: None,
            message,
        }])
    };
    let meta = std::fs::metadata(path).map_err(|e| err(format!("cannot read: {e}")))?;
    if meta.len() > MAX_FILE_BYTES {
        return Err(err(format!(
            "file is {} bytes, more than the {MAX_FILE_BYTES} a rule file may have",
            meta.len()
        )));
    }
    let text = std::fs::read_to_string(path).map_err(|e| err(format!("cannot read: {e}")))?;
    parse_rules(path, &text)
}

/// Parses and checks rule-file text; `path` names it in errors.
pub fn parse_rules(path: &Path, text: &str) -> Result<(Vec<RuleGroup>, Vec<Lint>), RuleErrors> {
    let raw: RawFile = if text.trim().is_empty() {
        RawFile { groups: Vec::new() }
    } else {
        serde_yaml_ng::from_str(text).map_err(|e| {
            RuleErrors(vec![RuleError {
                file: path.to_path_buf(),
                line: e.location().map(|l| l.line()),
                group: None,
                rule: None,
                message: yaml_message(&e),
            }])
        })?
    };
    let rule_lines = rule_lines(text);
    let group_lines = group_lines(text);
    let funcs = template_funcs_for_checking();
    let mut errors = Vec::new();
    let mut lints = Vec::new();
    let mut groups = Vec::new();
    let mut seen_groups: HashMap<String, ()> = HashMap::new();
    let mut rule_index = 0usize;
    for (gi, g) in raw.groups.into_iter().enumerate() {
        let group_line = group_lines.get(gi).copied();
        let name = g.name.clone().unwrap_or_default();
        let mut push = |line: Option<usize>, rule: Option<String>, message: String| {
            errors.push(RuleError {
                file: path.to_path_buf(),
                line,
                group: Some(name.clone()),
                rule,
                message,
            })
        };
        if name.is_empty() {
            push(group_line, None, "group name must not be empty".into());
        } else if seen_groups.insert(name.clone(), ()).is_some() {
            push(
                group_line,
                None,
                "group name is repeated in this file".into(),
            );
        }
        let interval_ms = match &g.interval {
            None => None,
            Some(s) => match parse_duration_ms(&s.0) {
                Some(ms) if ms > 0 => Some(ms),
                _ => {
                    push(
                        group_line,
                        None,
                        format!("interval {:?} is not a positive duration", s.0),
                    );
                    None
                }
            },
        };
        let query_offset_ms = match &g.query_offset {
            None => None,
            Some(s) => match parse_duration_ms(&s.0) {
                Some(ms) if ms >= 0 => Some(ms),
                _ => {
                    push(
                        group_line,
                        None,
                        format!("query_offset {:?} is not a duration", s.0),
                    );
                    None
                }
            },
        };
        let mut group_labels = BTreeMap::new();
        for (k, v) in g.labels {
            if !is_valid_label_name(&k) || k == "__name__" {
                push(group_line, None, format!("invalid label name {k:?}"));
            }
            group_labels.insert(k, v.0);
        }
        let mut rules = Vec::new();
        let mut seen_rules: HashMap<(String, Vec<(String, String)>), ()> = HashMap::new();
        for r in g.rules {
            let line = rule_lines.get(rule_index).copied();
            rule_index += 1;
            let label_pairs: Vec<(String, String)> = r
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.0.clone()))
                .collect();
            match check_rule(r, &funcs) {
                Ok(rule) => {
                    if seen_rules
                        .insert((rule.name.clone(), label_pairs), ())
                        .is_some()
                    {
                        lints.push(Lint {
                            file: path.to_path_buf(),
                            group: name.clone(),
                            message: format!(
                                "{} rule {:?} is repeated with the same labels",
                                kind_word(&rule),
                                rule.name
                            ),
                        });
                    }
                    rules.push(Rule { line, ..rule });
                }
                Err((rule, problems)) => {
                    for p in problems {
                        push(line, rule.clone(), p);
                    }
                }
            }
        }
        groups.push(RuleGroup {
            file: path.to_path_buf(),
            name,
            interval_ms,
            limit: g.limit.unwrap_or(0),
            query_offset_ms,
            labels: group_labels,
            rules,
        });
    }
    if errors.is_empty() {
        Ok((groups, lints))
    } else {
        Err(RuleErrors(errors))
    }
}

fn kind_word(rule: &Rule) -> &'static str {
    if rule.is_alerting() {
        "alerting"
    } else {
        "recording"
    }
}

/// Checks one rule; on failure gives its name (if any) and every problem.
fn check_rule(r: RawRule, funcs: &Funcs<'_>) -> Result<Rule, (Option<String>, Vec<String>)> {
    let mut problems = Vec::new();
    let name = match (&r.record, &r.alert) {
        (Some(rec), None) => {
            if !is_valid_metric_name(rec) {
                problems.push(format!("invalid recording rule name {rec:?}"));
            }
            rec.clone()
        }
        (None, Some(alert)) => {
            if alert.is_empty() {
                problems.push("alert name must not be empty".into());
            }
            alert.clone()
        }
        (Some(_), Some(_)) => {
            problems.push("only one of 'record' and 'alert' may be set".into());
            String::new()
        }
        (None, None) => {
            problems.push("one of 'record' or 'alert' must be set".into());
            String::new()
        }
    };
    let rule_name = (!name.is_empty()).then(|| name.clone());
    let expr_text = r.expr.as_ref().map(|s| s.0.clone()).unwrap_or_default();
    let expr = if expr_text.trim().is_empty() {
        problems.push("field 'expr' must be set".into());
        None
    } else {
        match lookout_promql::parse(&expr_text) {
            Ok(e) => Some(e),
            Err(e) => {
                problems.push(format!("could not parse expression: {}", e.message));
                None
            }
        }
    };
    let mut labels = Vec::new();
    let mut label_templates = Vec::new();
    for (k, v) in &r.labels {
        if !is_valid_label_name(k) || k == "__name__" {
            problems.push(format!("invalid label name {k:?}"));
            continue;
        }
        labels.push((k.clone(), v.0.clone()));
        // Alerting rules template their label values; recording rules
        // take them literally, as Prometheus does.
        if r.alert.is_some() {
            match Template::parse(
                &format!("__alert_{name}"),
                &format!("{TEMPLATE_HEADER}{}", v.0),
                funcs,
            ) {
                Ok(t) => label_templates.push((k.clone(), t)),
                Err(e) => problems.push(format!("label {k:?}: {}", e.message)),
            }
        }
    }
    let parse_duration = |what: &str, s: &Option<Scalar>, problems: &mut Vec<String>| -> i64 {
        match s {
            None => 0,
            Some(s) => match parse_duration_ms(&s.0) {
                Some(ms) if ms >= 0 => ms,
                _ => {
                    problems.push(format!("{what} {:?} is not a duration", s.0));
                    0
                }
            },
        }
    };
    let kind = if r.record.is_some() {
        if r.for_.is_some() {
            problems.push("invalid field 'for' in recording rule".into());
        }
        if r.keep_firing_for.is_some() {
            problems.push("invalid field 'keep_firing_for' in recording rule".into());
        }
        if !r.annotations.is_empty() {
            problems.push("invalid field 'annotations' in recording rule".into());
        }
        RuleKind::Recording
    } else {
        let for_ms = parse_duration("for", &r.for_, &mut problems);
        let keep_firing_for_ms =
            parse_duration("keep_firing_for", &r.keep_firing_for, &mut problems);
        let mut annotations = Vec::new();
        let annotation_texts: Vec<(String, String)> = r
            .annotations
            .iter()
            .map(|(k, v)| (k.clone(), v.0.clone()))
            .collect();
        for (k, v) in &r.annotations {
            if !is_valid_label_name(k) {
                problems.push(format!("invalid annotation name {k:?}"));
                continue;
            }
            match Template::parse(k, &format!("{TEMPLATE_HEADER}{}", v.0), funcs) {
                Ok(t) => annotations.push((k.clone(), t)),
                Err(e) => problems.push(format!("annotation {k:?}: {}", e.message)),
            }
        }
        RuleKind::Alerting {
            for_ms,
            keep_firing_for_ms,
            label_templates,
            annotations,
            annotation_texts,
        }
    };
    match (expr, problems.is_empty()) {
        (Some(expr), true) => Ok(Rule {
            name,
            kind,
            expr_text,
            expr,
            labels,
            line: None,
        }),
        _ => Err((rule_name, problems)),
    }
}

/// serde_yaml_ng's message without its own location suffix, which the
/// error already carries as a line.
fn yaml_message(e: &serde_yaml_ng::Error) -> String {
    let msg = e.to_string();
    match msg.find(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg,
    }
}

/// 1-based lines of each `record:`/`alert:` key, in document order. Rules
/// appear in the YAML in the order serde reads them, so the n-th key is
/// the n-th rule.
fn rule_lines(text: &str) -> Vec<usize> {
    key_lines(text, &["record", "alert"])
}

fn group_lines(text: &str) -> Vec<usize> {
    key_lines(text, &["name"])
        .into_iter()
        .filter(|&l| {
            // Group names sit at the shallowest `name:` indentation.
            text.lines().nth(l - 1).is_some_and(|s| {
                let indent = s.len() - s.trim_start().len();
                indent <= 4
            })
        })
        .collect()
}

fn key_lines(text: &str, keys: &[&str]) -> Vec<usize> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let t = line.trim_start().trim_start_matches("- ").trim_start();
        for k in keys {
            if let Some(rest) = t.strip_prefix(k)
                && rest.starts_with(':')
            {
                out.push(i + 1);
            }
        }
    }
    out
}

/// Loads many files; errors from all of them are gathered.
pub fn load_files(paths: &[PathBuf]) -> Result<(Vec<RuleGroup>, Vec<Lint>), RuleErrors> {
    let mut groups = Vec::new();
    let mut lints = Vec::new();
    let mut errors = Vec::new();
    for p in paths {
        match load_file(p) {
            Ok((g, l)) => {
                groups.extend(g);
                lints.extend(l);
            }
            Err(RuleErrors(e)) => errors.extend(e),
        }
    }
    if errors.is_empty() {
        Ok((groups, lints))
    } else {
        Err(RuleErrors(errors))
    }
}

/// Expands glob patterns (`*`, `?`, `[..]` in the last path component)
/// relative to `base`; plain paths pass through even if missing, so the
/// loader reports them.
pub fn expand_globs(base: &Path, patterns: &[String]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for pat in patterns {
        let full = if Path::new(pat).is_absolute() {
            PathBuf::from(pat)
        } else {
            base.join(pat)
        };
        let name = full
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if !name.contains(['*', '?', '[']) {
            out.push(full);
            continue;
        }
        let dir = full
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        let re = glob_regex(&name);
        let mut found: Vec<PathBuf> = std::fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| {
                re.as_ref()
                    .is_some_and(|r| r.is_match(&e.file_name().to_string_lossy()))
            })
            .map(|e| e.path())
            .collect();
        found.sort();
        out.extend(found);
    }
    out
}

fn glob_regex(pattern: &str) -> Option<regex::Regex> {
    let mut re = String::from("^");
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            '*' => re.push_str("[^/]*"),
            '?' => re.push_str("[^/]"),
            '[' => {
                re.push('[');
                for c in chars.by_ref() {
                    if c == ']' {
                        break;
                    }
                    if c == '\\' {
                        re.push_str("\\\\");
                    } else {
                        re.push(c);
                    }
                }
                re.push(']');
            }
            c => re.push_str(&regex::escape(&c.to_string())),
        }
    }
    re.push('$');
    regex::Regex::new(&re).ok()
}

//! Message text: the built-in English and Chinese messages, custom Go
//! templates (through `lookout-template`) that replace them, and the
//! vendors' length limits.
//!
//! The built-in messages are rendered here rather than by Go templates:
//! each chat kind needs its own markup and escaping (Slack's mrkdwn,
//! Telegram's HTML, DingTalk's paragraphs), and the body is filled alert
//! by alert until the vendor's limit so that a long notification ends with
//! "… and 7 more" instead of a message cut mid-line. Custom templates see
//! Alertmanager's data model ([`super::template_data`]).

use std::borrow::Cow;
use std::sync::{Arc, OnceLock};

use lookout_template::{Funcs, Template, TemplateError, Value};

use super::config::{Language, Problems};
use super::template_data::{format_human_time, notification_data};
use crate::alert::{Alert, AlertStatus, LabelSet, Notification};
use crate::severity::Severity;

/// Alertmanager's template functions, made once and only when a custom
/// template needs them.
#[derive(Default)]
pub(crate) struct TemplateFuncs {
    cell: OnceLock<Arc<Funcs<'static>>>,
}

impl TemplateFuncs {
    pub(crate) fn get(&self) -> Arc<Funcs<'static>> {
        self.cell
            .get_or_init(|| Arc::new(Funcs::alertmanager()))
            .clone()
    }
}

/// A parsed custom template with the functions it renders with.
pub(crate) struct CustomTemplate {
    template: Template,
    funcs: Arc<Funcs<'static>>,
    /// The config field it came from, for logs.
    field: String,
}

impl CustomTemplate {
    /// Parses `text` if set; a syntax error becomes a problem at `field`.
    pub(crate) fn parse(
        problems: &mut Problems,
        field: &str,
        text: &Option<String>,
        funcs: &TemplateFuncs,
    ) -> Option<CustomTemplate> {
        let text = text.as_ref()?;
        let funcs = funcs.get();
        match Template::parse(field, text, &funcs) {
            Ok(template) => Some(CustomTemplate {
                template,
                funcs,
                field: field.to_string(),
            }),
            Err(err) => {
                problems.push(field, err.to_string());
                None
            }
        }
    }

    pub(crate) fn render(&self, data: &Value) -> Result<String, TemplateError> {
        self.template.render(data, &self.funcs)
    }

    /// Renders, or logs why not and returns `None` so the caller falls back
    /// to the built-in text: a message that reads worse beats no message.
    pub(crate) fn render_or_log(&self, data: &Value, integration: &str) -> Option<String> {
        match self.render(data) {
            Ok(text) => Some(text),
            Err(err) => {
                tracing::warn!(
                    integration,
                    field = %self.field,
                    error = %err,
                    "custom template failed; sending the built-in message instead"
                );
                None
            }
        }
    }
}

/// How a length limit is counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Unit {
    Bytes,
    Chars,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Limit {
    pub(crate) max: usize,
    pub(crate) unit: Unit,
}

impl Limit {
    pub(crate) const fn bytes(max: usize) -> Limit {
        Limit {
            max,
            unit: Unit::Bytes,
        }
    }

    pub(crate) const fn chars(max: usize) -> Limit {
        Limit {
            max,
            unit: Unit::Chars,
        }
    }

    pub(crate) fn measure(&self, s: &str) -> usize {
        match self.unit {
            Unit::Bytes => s.len(),
            Unit::Chars => s.chars().count(),
        }
    }
}

/// Markup of one vendor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Style {
    /// CommonMark-ish with single line breaks (WeCom, Feishu).
    Markdown,
    /// Markdown where a single newline does not break the line (DingTalk,
    /// Teams' TextBlock): every line is its own paragraph.
    Paragraphs,
    /// Slack's mrkdwn.
    Slack,
    /// Telegram's HTML.
    Html,
}

impl Style {
    fn newline(self) -> &'static str {
        match self {
            Style::Paragraphs => "\n\n",
            _ => "\n",
        }
    }

    fn bold(self, s: &str) -> String {
        match self {
            Style::Markdown | Style::Paragraphs => format!("**{s}**"),
            Style::Slack => format!("*{s}*"),
            Style::Html => format!("<b>{s}</b>"),
        }
    }

    fn link(self, text: &str, url: &str) -> String {
        match self {
            Style::Markdown | Style::Paragraphs => format!("[{text}]({url})"),
            Style::Slack => format!("<{url}|{text}>"),
            Style::Html => format!("<a href=\"{}\">{text}</a>", escape_html(url)),
        }
    }

    /// Escapes a value (label, annotation) so the vendor shows it as text.
    pub(crate) fn escape(self, s: &str) -> Cow<'_, str> {
        match self {
            Style::Html => escape_html(s),
            // Slack documents exactly these three as control characters.
            Style::Slack if s.contains(['&', '<', '>']) => Cow::Owned(
                s.replace('&', "&amp;")
                    .replace('<', "&lt;")
                    .replace('>', "&gt;"),
            ),
            _ => Cow::Borrowed(s),
        }
    }
}

pub(crate) fn escape_html(s: &str) -> Cow<'_, str> {
    if !s.contains(['&', '<', '>', '"']) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            _ => out.push(c),
        }
    }
    Cow::Owned(out)
}

struct Words {
    firing_title: &'static str,
    resolved_title: &'static str,
    firing: &'static str,
    resolved: &'static str,
    labels: &'static str,
    started: &'static str,
    ended: &'static str,
    runbook: &'static str,
    source: &'static str,
    colon: &'static str,
    separator: &'static str,
}

const EN: Words = Words {
    firing_title: "FIRING",
    resolved_title: "RESOLVED",
    firing: "Firing",
    resolved: "Resolved",
    labels: "Labels",
    started: "Started",
    ended: "Resolved",
    runbook: "Runbook",
    source: "Source",
    colon: ": ",
    separator: ", ",
};

const ZH: Words = Words {
    firing_title: "告警",
    resolved_title: "已恢复",
    firing: "告警中",
    resolved: "已恢复",
    labels: "标签",
    started: "开始时间",
    ended: "恢复时间",
    runbook: "处理手册",
    source: "查看来源",
    colon: "：",
    separator: "，",
};

fn words(lang: Language) -> &'static Words {
    match lang {
        Language::En => &EN,
        Language::Zh => &ZH,
    }
}

/// What ends a text cut to fit a vendor's limit.
pub(crate) fn truncation_marker(lang: Language) -> &'static str {
    match lang {
        Language::En => "\n…(truncated)",
        Language::Zh => "\n……(内容过长，已截断)",
    }
}

fn more_line(lang: Language, n: usize) -> String {
    match lang {
        Language::En => format!("… and {n} more"),
        Language::Zh => format!("…… 另有 {n} 条未显示"),
    }
}

/// Zabbix's severity level (0 not classified … 5 disaster) of an alert's
/// `severity` label, by the pipeline's mapping.
pub(crate) fn severity_level(labels: &LabelSet) -> u8 {
    Severity::from_labels(labels).zabbix_level()
}

/// Zabbix's Chinese names of the levels.
fn severity_zh(level: u8) -> &'static str {
    match level {
        1 => "信息",
        2 => "警告",
        3 => "一般严重",
        4 => "严重",
        5 => "灾难",
        _ => "未分类",
    }
}

/// Labels that say nothing about where the problem is: shown elsewhere
/// (alertname, severity) or naming the Prometheus that evaluated the rule.
const HIDDEN_LABELS: &[&str] = &["alertname", "severity", "prometheus", "prometheus_replica"];

/// Labels people look for first, in this order; the rest follow by name.
const KEY_LABELS: &[&str] = &[
    "cluster",
    "namespace",
    "node",
    "instance",
    "pod",
    "container",
    "job",
    "service",
    "deployment",
    "statefulset",
    "daemonset",
    "persistentvolumeclaim",
];

/// The labels worth showing for an alert, most telling first.
pub(crate) fn key_labels(labels: &LabelSet) -> Vec<(&str, &str)> {
    let mut out: Vec<(&str, &str)> = KEY_LABELS
        .iter()
        .filter_map(|k| {
            labels
                .get_key_value(*k)
                .map(|(k, v)| (k.as_str(), v.as_str()))
        })
        .collect();
    for (k, v) in labels {
        if !KEY_LABELS.contains(&k.as_str()) && !HIDDEN_LABELS.contains(&k.as_str()) {
            out.push((k, v));
        }
    }
    out
}

/// `[FIRING:2] KubePodCrashLooping (prod)` / `[告警:2] …`, or
/// `[RESOLVED] …` / `[已恢复] …`: the alert name, then the other group
/// labels' values. Plain text; callers escape it for their markup.
pub(crate) fn default_title(n: &Notification, lang: Language) -> String {
    let w = words(lang);
    let firing = n.firing().count();
    let status = if firing > 0 {
        format!("[{}:{firing}]", w.firing_title)
    } else {
        format!("[{}]", w.resolved_title)
    };
    let common = n.common_labels();
    let alertname = n
        .group_labels
        .get("alertname")
        .or_else(|| common.get("alertname"))
        .filter(|s| !s.is_empty());
    let rest: Vec<&str> = n
        .group_labels
        .iter()
        .filter(|(k, v)| k.as_str() != "alertname" && !v.is_empty())
        .map(|(_, v)| v.as_str())
        .collect();
    let subject = match (alertname, rest.is_empty()) {
        (Some(name), true) => name.clone(),
        (Some(name), false) => format!("{name} ({})", rest.join(" ")),
        (None, false) => rest.join(" "),
        (None, true) => match (lang, n.alerts.len()) {
            (Language::En, 1) => "1 alert".to_string(),
            (Language::En, k) => format!("{k} alerts"),
            (Language::Zh, k) => format!("{k} 条告警"),
        },
    };
    format!("{status} {subject}")
}

/// One alert's lines.
fn alert_block(a: &Alert, now_ms: i64, lang: Language, style: Style) -> String {
    let w = words(lang);
    let nl = style.newline();
    let mut lines = Vec::with_capacity(6);

    let name = style.escape(a.name()).into_owned();
    let name = if name.is_empty() {
        "?".to_string()
    } else {
        name
    };
    let heading = match (a.labels.get("severity").filter(|s| !s.is_empty()), lang) {
        (Some(sev), Language::En) => format!("[{}] {name}", style.escape(sev)),
        (Some(_), Language::Zh) => format!("[{}] {name}", severity_zh(severity_level(&a.labels))),
        (None, _) => name,
    };
    lines.push(style.bold(&heading));

    let summary = a
        .annotations
        .get("summary")
        .or_else(|| a.annotations.get("message"))
        .filter(|s| !s.trim().is_empty());
    let description = a
        .annotations
        .get("description")
        .filter(|s| !s.trim().is_empty());
    if let Some(s) = summary {
        lines.push(style.escape(s.trim()).into_owned());
    }
    if let Some(d) = description
        && summary.is_none_or(|s| s.trim() != d.trim())
    {
        lines.push(style.escape(d.trim()).into_owned());
    }

    let labels = key_labels(&a.labels);
    if !labels.is_empty() {
        let list: Vec<String> = labels
            .iter()
            .map(|(k, v)| format!("{k}={}", style.escape(v)))
            .collect();
        lines.push(format!("{}{}{}", w.labels, w.colon, list.join(w.separator)));
    }

    let mut when = format!(
        "{}{}{}",
        w.started,
        w.colon,
        format_human_time(a.starts_at_ms)
    );
    if a.status_at(now_ms) == AlertStatus::Resolved
        && let Some(end) = a.ends_at_ms
    {
        when.push_str(w.separator);
        when.push_str(&format!("{}{}{}", w.ended, w.colon, format_human_time(end)));
    }
    lines.push(when);

    let mut links = Vec::new();
    if let Some(url) = a.annotations.get("runbook_url").filter(|u| !u.is_empty()) {
        links.push(style.link(w.runbook, url));
    }
    if !a.generator_url.is_empty() {
        links.push(style.link(w.source, &a.generator_url));
    }
    if !links.is_empty() {
        lines.push(links.join(" | "));
    }
    lines.join(nl)
}

/// The built-in body: every alert's severity, name, summary and
/// description, key labels, times and links, firing first. Alerts are
/// added while they fit `limit`; the rest are counted in a last line.
pub(crate) fn default_body(n: &Notification, lang: Language, style: Style, limit: Limit) -> String {
    let w = words(lang);
    let nl = style.newline();
    let block_sep = "\n\n";
    let firing: Vec<&Alert> = n.firing().collect();
    let resolved: Vec<&Alert> = n.resolved().collect();
    let both = !firing.is_empty() && !resolved.is_empty();

    let mut out = String::new();
    let mut omitted = 0usize;
    // Room kept for the "… and N more" line, so it always fits.
    let reserve = limit.measure(&more_line(lang, n.alerts.len())) + limit.measure(block_sep);
    for (heading, alerts) in [(w.firing, &firing), (w.resolved, &resolved)] {
        if alerts.is_empty() {
            continue;
        }
        let mut section = String::new();
        if both {
            section = style.bold(&format!("{heading} · {}", alerts.len()));
        }
        for a in alerts.iter() {
            let block = alert_block(a, n.now_ms, lang, style);
            let sep = if section.is_empty() { "" } else { nl };
            let pending = format!("{section}{sep}{block}");
            let joiner = if out.is_empty() { "" } else { block_sep };
            let budget = limit.max.saturating_sub(reserve);
            // The first alert goes in even when too long alone, to be cut
            // below: part of it says more than "1 more".
            if out.is_empty()
                || limit.measure(&out) + limit.measure(joiner) + limit.measure(&pending) <= budget
            {
                out.push_str(joiner);
                out.push_str(&pending);
                section.clear();
            } else {
                omitted += 1;
            }
        }
    }
    if omitted > 0 {
        if !out.is_empty() {
            out.push_str(block_sep);
        }
        out.push_str(&more_line(lang, omitted));
    }
    truncate(&out, limit, truncation_marker(lang))
}

/// Cuts `text` to `limit` at a character boundary, preferring the end of
/// a line near the cut, and appends `marker`.
pub(crate) fn truncate(text: &str, limit: Limit, marker: &str) -> String {
    if limit.measure(text) <= limit.max {
        return text.to_string();
    }
    let budget = limit.max.saturating_sub(limit.measure(marker));
    let cut = prefix_end(text, budget, limit.unit);
    let mut head = &text[..cut];
    if let Some(nl) = head.rfind('\n')
        && nl >= cut / 4 * 3
    {
        head = &text[..nl];
    }
    let mut out = head.trim_end().to_string();
    out.push_str(marker);
    if limit.measure(&out) > limit.max {
        // Only when the marker alone is longer than the limit.
        let end = prefix_end(&out, limit.max, limit.unit);
        out.truncate(end);
    }
    out
}

/// Byte index of the longest prefix of `s` within `budget`.
fn prefix_end(s: &str, budget: usize, unit: Unit) -> usize {
    match unit {
        Unit::Bytes => {
            let mut i = budget.min(s.len());
            while !s.is_char_boundary(i) {
                i -= 1;
            }
            i
        }
        Unit::Chars => s.char_indices().nth(budget).map_or(s.len(), |(i, _)| i),
    }
}

/// Splits `text` into pieces of at most `max` characters, at line breaks
/// where possible (Slack's 3000-character sections).
pub(crate) fn split_chars(text: &str, max: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut current_len = 0usize;
    for line in text.split_inclusive('\n') {
        let mut line = line;
        let mut len = line.chars().count();
        if current_len + len > max && !current.is_empty() {
            out.push(std::mem::take(&mut current).trim_end().to_string());
            current_len = 0;
        }
        while len > max {
            let end = prefix_end(line, max, Unit::Chars);
            out.push(line[..end].to_string());
            line = &line[end..];
            len -= max;
        }
        current.push_str(line);
        current_len += len;
    }
    if !current.trim().is_empty() {
        out.push(current.trim_end().to_string());
    }
    out
}

/// Cuts Telegram HTML to at most `max` characters without breaking a tag
/// or an entity, closes the tags left open and appends `marker`.
pub(crate) fn truncate_html(text: &str, max: usize, marker: &str) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let marker_len = marker.chars().count();
    let mut out = String::new();
    let mut out_len = 0usize;
    let mut open: Vec<String> = Vec::new();
    let closers_len = |open: &[String]| open.iter().map(|t| t.chars().count() + 3).sum::<usize>();
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        let token_end = match c {
            '<' => rest.find('>').map_or(c.len_utf8(), |i| i + 1),
            '&' => rest
                .char_indices()
                .take(12)
                .find(|&(_, ch)| ch == ';')
                .map_or(c.len_utf8(), |(i, _)| i + 1),
            _ => c.len_utf8(),
        };
        let token = &rest[..token_end];
        let mut next_open = open.clone();
        if token.len() > 2 && token.starts_with('<') && token.ends_with('>') {
            let inner = &token[1..token.len() - 1];
            if let Some(name) = inner.strip_prefix('/') {
                let name = tag_name(name);
                if next_open.last().is_some_and(|t| *t == name) {
                    next_open.pop();
                }
            } else if !inner.ends_with('/') {
                next_open.push(tag_name(inner));
            }
        }
        let token_len = token.chars().count();
        if out_len + token_len + closers_len(&next_open) + marker_len > max {
            break;
        }
        out.push_str(token);
        out_len += token_len;
        open = next_open;
        rest = &rest[token_end..];
    }
    let mut out = out.trim_end().to_string();
    for tag in open.iter().rev() {
        out.push_str(&format!("</{tag}>"));
    }
    out.push_str(marker);
    out
}

fn tag_name(s: &str) -> String {
    s.chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect::<String>()
        .to_ascii_lowercase()
}

/// A kind's title and text templates with the language of the built-in
/// ones.
pub(crate) struct Messages {
    pub(crate) language: Language,
    title: Option<CustomTemplate>,
    text: Option<CustomTemplate>,
}

pub(crate) struct Rendered {
    pub(crate) title: String,
    /// The title came from a custom template: already in the vendor's
    /// markup, not to be escaped.
    pub(crate) custom_title: bool,
    pub(crate) text: String,
    /// The text came from a custom template, so the kind adds nothing to it.
    pub(crate) custom_text: bool,
}

impl Messages {
    pub(crate) fn new(
        language: Language,
        title: Option<CustomTemplate>,
        text: Option<CustomTemplate>,
    ) -> Messages {
        Messages {
            language,
            title,
            text,
        }
    }

    /// The messages of a receiver with optional `title` and `text`
    /// templates; their syntax errors become problems at `field.title` and
    /// `field.text`.
    pub(crate) fn parse(
        problems: &mut Problems,
        field: &str,
        language: Language,
        title: &Option<String>,
        text: &Option<String>,
        funcs: &TemplateFuncs,
    ) -> Arc<Messages> {
        let title = CustomTemplate::parse(problems, &format!("{field}.title"), title, funcs);
        let text = CustomTemplate::parse(problems, &format!("{field}.text"), text, funcs);
        Arc::new(Messages::new(language, title, text))
    }

    /// Renders title and text; `body_limit`, given the title, bounds the
    /// built-in body (so a kind can leave room for a heading made of it).
    pub(crate) fn render(
        &self,
        n: &Notification,
        integration: &str,
        style: Style,
        body_limit: impl Fn(&str) -> Limit,
    ) -> Rendered {
        let data = (self.title.is_some() || self.text.is_some()).then(|| notification_data(n));
        let custom_title = match (&self.title, &data) {
            (Some(t), Some(d)) => t
                .render_or_log(d, integration)
                .map(|s| s.trim().to_string()),
            _ => None,
        };
        let (title, custom_title) = match custom_title {
            Some(t) => (t, true),
            None => (default_title(n, self.language), false),
        };
        let custom = match (&self.text, &data) {
            (Some(t), Some(d)) => t.render_or_log(d, integration),
            _ => None,
        };
        match custom {
            Some(text) => Rendered {
                title,
                custom_title,
                text,
                custom_text: true,
            },
            None => {
                let text = default_body(n, self.language, style, body_limit(&title));
                Rendered {
                    title,
                    custom_title,
                    text,
                    custom_text: false,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncate_bytes_keeps_utf8() {
        let text = "告警".repeat(100);
        let out = truncate(&text, Limit::bytes(50), "…");
        assert!(out.len() <= 50, "{}", out.len());
        assert!(out.ends_with('…'));
        assert!(out.starts_with("告警告"));
    }

    #[test]
    fn truncate_prefers_line_end() {
        let text = "aaaa\nbbbbbbbbbbbbbbbbbbbb\ncccccccccccccccccccccccccc\n";
        let out = truncate(text, Limit::chars(40), "[cut]");
        assert_eq!(out, "aaaa\nbbbbbbbbbbbbbbbbbbbb[cut]");
    }

    #[test]
    fn html_truncation_closes_tags_and_skips_entities() {
        let text = format!("<b>{}</b> &amp; <a href=\"x\">link</a>", "x".repeat(30));
        let out = truncate_html(&text, 20, "…");
        assert!(out.chars().count() <= 20, "{out}");
        assert!(out.starts_with("<b>xxx"));
        assert!(out.ends_with("</b>…"), "{out}");
        let text = format!("{}&amp;tail", "y".repeat(10));
        let out = truncate_html(&text, 13, "!");
        assert_eq!(out, "yyyyyyyyyy!");
    }

    #[test]
    fn slack_sections_split_at_lines() {
        let text = format!("{}\n{}\n{}", "a".repeat(10), "b".repeat(10), "c".repeat(25));
        let parts = split_chars(&text, 22);
        assert_eq!(
            parts,
            vec![
                format!("{}\n{}", "a".repeat(10), "b".repeat(10)),
                "c".repeat(22),
                "c".repeat(3)
            ]
        );
    }

    #[test]
    fn severity_levels() {
        let mut l = LabelSet::new();
        assert_eq!(severity_level(&l), 0);
        l.insert("severity".into(), "Critical".into());
        assert_eq!(severity_level(&l), 4);
        l.insert("severity".into(), "warning".into());
        assert_eq!(severity_level(&l), 2);
    }
}

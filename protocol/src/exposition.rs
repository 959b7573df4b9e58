//! Prometheus text exposition (0.0.4) and OpenMetrics 1.0 encoding, and a
//! parser for the text format.
//!
//! The encoder keeps every family's lines together even when several sources
//! contribute samples under one name, because Prometheus 3 rejects a scrape in
//! which a family is split.

use std::fmt::Write as _;

use crate::model::{Family, Labels, MetricKind, Str};

/// The wire formats `/metrics` can answer with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `text/plain; version=0.0.4`
    PrometheusText,
    /// `application/openmetrics-text; version=1.0.0`
    OpenMetrics,
}

impl Format {
    /// Picks the format from an `Accept` header: OpenMetrics when the client
    /// lists it, text otherwise. Prometheus sends OpenMetrics first in its
    /// default header, so it gets OpenMetrics; curl gets text.
    pub fn negotiate(accept: Option<&str>) -> Format {
        match accept {
            Some(a) if a.contains("application/openmetrics-text") => Format::OpenMetrics,
            _ => Format::PrometheusText,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::PrometheusText => "text/plain; version=0.0.4; charset=utf-8",
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

/// Encodes families in the given format. Families that share a name are
/// written as one (the first one's help and type win).
pub fn encode<'a, I>(families: I, format: Format, out: &mut String)
where
    I: IntoIterator<Item = &'a Family>,
{
    let mut all: Vec<&Family> = families.into_iter().collect();
    // Stable, so samples keep their source order within a name.
    all.sort_by(|a, b| a.name.cmp(&b.name));
    let mut i = 0;
    while i < all.len() {
        let head = all[i];
        let mut j = i + 1;
        while j < all.len() && all[j].name == head.name {
            j += 1;
        }
        if all[i..j].iter().any(|f| !f.samples.is_empty()) {
            write_header(head, format, out);
            for f in &all[i..j] {
                for s in &f.samples {
                    write_sample(&head.name, &s.labels, s.value, out);
                }
            }
        }
        i = j;
    }
    if format == Format::OpenMetrics {
        out.push_str("# EOF\n");
    }
}

fn write_header(f: &Family, format: Format, out: &mut String) {
    let (family_name, type_name) = match (format, f.kind) {
        (Format::PrometheusText, MetricKind::Counter) => (f.name.as_str(), "counter"),
        (Format::PrometheusText, MetricKind::Gauge) => (f.name.as_str(), "gauge"),
        (Format::PrometheusText, MetricKind::Untyped) => (f.name.as_str(), "untyped"),
        (Format::OpenMetrics, MetricKind::Counter) => match f.name.strip_suffix("_total") {
            Some(base) => (base, "counter"),
            // OpenMetrics counters must end in _total; anything else is
            // declared unknown rather than mislabelled.
            None => (f.name.as_str(), "unknown"),
        },
        (Format::OpenMetrics, MetricKind::Gauge) => (f.name.as_str(), "gauge"),
        (Format::OpenMetrics, MetricKind::Untyped) => (f.name.as_str(), "unknown"),
    };
    if !f.help.is_empty() {
        out.push_str("# HELP ");
        out.push_str(family_name);
        out.push(' ');
        escape_help(&f.help, format, out);
        out.push('\n');
    }
    out.push_str("# TYPE ");
    out.push_str(family_name);
    out.push(' ');
    out.push_str(type_name);
    out.push('\n');
}

fn write_sample(name: &str, labels: &Labels, value: f64, out: &mut String) {
    out.push_str(name);
    if !labels.is_empty() {
        out.push('{');
        for (i, l) in labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(&l.name);
            out.push_str("=\"");
            escape_label_value(&l.value, out);
            out.push('"');
        }
        out.push('}');
    }
    out.push(' ');
    write_value(value, out);
    out.push('\n');
}

/// Writes a float the way both formats accept: `NaN`, `+Inf`, `-Inf`, and
/// integers without a fraction.
pub fn write_value(v: f64, out: &mut String) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v.is_infinite() {
        out.push_str(if v > 0.0 { "+Inf" } else { "-Inf" });
    } else if v == v.trunc() && v.abs() < 1e15 {
        let _ = write!(out, "{}", v as i64);
    } else {
        let _ = write!(out, "{v}");
    }
}

fn escape_label_value(v: &str, out: &mut String) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

fn escape_help(v: &str, format: Format, out: &mut String) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if format == Format::OpenMetrics => out.push_str("\\\""),
            c => out.push(c),
        }
    }
}

/// One sample read back from the text format.
#[derive(Clone, Debug, PartialEq)]
pub struct ParsedSample {
    pub name: Str,
    pub labels: Labels,
    pub value: f64,
    pub timestamp_ms: Option<i64>,
}

/// What is wrong with a line of exposition text.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("line {line}: {reason}")]
pub struct ParseError {
    pub line: usize,
    pub reason: String,
}

/// Parses the Prometheus text format (and the sample lines of OpenMetrics).
/// Comments, `# HELP`, `# TYPE` and `# EOF` are skipped; the first bad line
/// stops parsing with an error that names it.
pub fn parse_text(input: &str) -> Result<Vec<ParsedSample>, ParseError> {
    let mut out = Vec::new();
    for (idx, raw) in input.lines().enumerate() {
        let line = raw.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let err = |reason: String| ParseError {
            line: idx + 1,
            reason,
        };
        out.push(parse_sample_line(line).map_err(err)?);
    }
    Ok(out)
}

fn parse_sample_line(line: &str) -> Result<ParsedSample, String> {
    let name_end = line
        .find(|c: char| c == '{' || c.is_ascii_whitespace())
        .ok_or_else(|| "sample line has no value".to_string())?;
    let name = &line[..name_end];
    if !crate::model::is_valid_metric_name(name) {
        return Err(format!("invalid metric name {name:?}"));
    }
    let mut rest = &line[name_end..];
    let mut labels = Labels::new();
    if let Some(after_brace) = rest.strip_prefix('{') {
        let (parsed, remaining) = parse_labels(after_brace)?;
        labels = parsed;
        rest = remaining;
    }
    let mut fields = rest.split_ascii_whitespace();
    let value_text = fields
        .next()
        .ok_or_else(|| format!("sample {name} has no value"))?;
    let value = parse_float(value_text).ok_or_else(|| format!("invalid value {value_text:?}"))?;
    let timestamp_ms = match fields.next() {
        None => None,
        Some(t) => Some(
            t.parse::<i64>()
                .map_err(|_| format!("invalid timestamp {t:?}"))?,
        ),
    };
    if let Some(extra) = fields.next() {
        return Err(format!("unexpected text after the timestamp: {extra:?}"));
    }
    Ok(ParsedSample {
        name: name.into(),
        labels,
        value,
        timestamp_ms,
    })
}

fn parse_labels(mut s: &str) -> Result<(Labels, &str), String> {
    let mut labels = Labels::new();
    loop {
        s = s.trim_start();
        if let Some(rest) = s.strip_prefix('}') {
            return Ok((labels, rest));
        }
        let eq = s.find('=').ok_or_else(|| "label without '='".to_string())?;
        let lname = s[..eq].trim();
        if !crate::model::is_valid_label_name(lname) {
            return Err(format!("invalid label name {lname:?}"));
        }
        if labels.get(lname).is_some() {
            return Err(format!("label {lname:?} appears twice"));
        }
        s = s[eq + 1..].trim_start();
        s = s
            .strip_prefix('"')
            .ok_or_else(|| format!("value of label {lname:?} is not quoted"))?;
        let mut value = String::new();
        let mut chars = s.char_indices();
        let end = loop {
            match chars.next() {
                None => return Err(format!("value of label {lname:?} is not closed")),
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, c)) => {
                        return Err(format!("unknown escape \\{c} in label {lname:?}"));
                    }
                    None => return Err(format!("value of label {lname:?} is not closed")),
                },
                Some((_, c)) => value.push(c),
            }
        };
        labels.set(lname, value.as_str());
        s = s[end + 1..].trim_start();
        if let Some(rest) = s.strip_prefix(',') {
            s = rest;
        } else if !s.starts_with('}') {
            return Err("expected ',' or '}' after a label".to_string());
        }
    }
}

/// Parses a float as the exposition formats write it.
pub fn parse_float(s: &str) -> Option<f64> {
    match s {
        "NaN" | "nan" => Some(f64::NAN),
        "+Inf" | "+inf" | "Inf" | "inf" => Some(f64::INFINITY),
        "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
        _ => s.parse::<f64>().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Labels;

    fn fam(name: &str, kind: MetricKind, samples: &[(&[(&str, &str)], f64)]) -> Family {
        let mut f = Family::new(name, "Help with \\ and\nnewline.", kind);
        for (labels, v) in samples {
            f.push(Labels::from_pairs(labels.iter().copied()), *v);
        }
        f
    }

    #[test]
    fn text_format_groups_families_and_escapes() {
        let a = fam(
            "x_total",
            MetricKind::Counter,
            &[(&[("a", "q\"\\\nz")], 1.0)],
        );
        let b = fam("g", MetricKind::Gauge, &[(&[], f64::NAN)]);
        let a2 = fam("x_total", MetricKind::Counter, &[(&[("a", "2")], 2.5)]);
        let mut out = String::new();
        encode([&a, &b, &a2], Format::PrometheusText, &mut out);
        assert_eq!(
            out,
            "# HELP g Help with \\\\ and\\nnewline.\n# TYPE g gauge\ng NaN\n\
             # HELP x_total Help with \\\\ and\\nnewline.\n# TYPE x_total counter\n\
             x_total{a=\"q\\\"\\\\\\nz\"} 1\nx_total{a=\"2\"} 2.5\n"
        );
    }

    #[test]
    fn openmetrics_strips_total_and_ends_with_eof() {
        let a = fam("x_total", MetricKind::Counter, &[(&[], f64::INFINITY)]);
        let u = fam("u", MetricKind::Untyped, &[(&[], -1.0)]);
        let mut out = String::new();
        encode([&a, &u], Format::OpenMetrics, &mut out);
        assert!(out.contains("# TYPE u unknown\nu -1\n"), "{out}");
        assert!(out.contains("# TYPE x counter\nx_total +Inf\n"), "{out}");
        assert!(out.ends_with("# EOF\n"));
    }

    #[test]
    fn empty_families_are_left_out() {
        let e = Family::gauge("empty", "nothing");
        let mut out = String::new();
        encode([&e], Format::PrometheusText, &mut out);
        assert_eq!(out, "");
    }

    #[test]
    fn negotiation_prefers_openmetrics_only_when_asked() {
        assert_eq!(Format::negotiate(None), Format::PrometheusText);
        assert_eq!(Format::negotiate(Some("*/*")), Format::PrometheusText);
        assert_eq!(
            Format::negotiate(Some(
                "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"
            )),
            Format::OpenMetrics
        );
    }

    #[test]
    fn values_round_trip_through_text() {
        for v in [0.0, 1.0, -3.0, 0.1, 1e-300, 1e300, 123456789012.5, 2e15] {
            let mut s = String::new();
            write_value(v, &mut s);
            assert_eq!(parse_float(&s), Some(v), "{s}");
        }
    }

    #[test]
    fn parser_reads_what_encoder_writes() {
        let a = fam(
            "x_total",
            MetricKind::Counter,
            &[(&[("a", "q\"\\\nz"), ("b", "")], 7.0)],
        );
        let mut out = String::new();
        encode([&a], Format::PrometheusText, &mut out);
        let parsed = parse_text(&out).expect("parses");
        assert_eq!(parsed.len(), 1);
        assert_eq!(parsed[0].labels.get("a"), Some("q\"\\\nz"));
        assert_eq!(parsed[0].labels.get("b"), Some(""));
        assert_eq!(parsed[0].value, 7.0);
    }

    #[test]
    fn parser_names_the_bad_line() {
        let err = parse_text("ok 1\nbad{a=\"x} 1\n").unwrap_err();
        assert_eq!(err.line, 2);
        assert!(parse_text("m{a=\"1\",a=\"2\"} 1").is_err());
        assert!(parse_text("m 1 2 3").is_err());
        assert!(parse_text("m abc").is_err());
        assert_eq!(
            parse_text("m{a=\"1\",} 2 1700000000000").unwrap()[0].timestamp_ms,
            Some(1_700_000_000_000)
        );
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_input_never_panics(input in "(?s).{0,400}") {
            let _ = parse_text(&input);
        }

        #[test]
        fn exposition_shaped_input_never_panics(input in r#"([a-z_]{1,8}(\{([a-z]{1,3}="[^"\n]{0,5}",?){0,3}\})? ?[-+0-9.eEINaf]{0,8}( [0-9]{0,5})?\n){0,6}"#) {
            let _ = parse_text(&input);
        }

        #[test]
        fn any_label_value_round_trips(value in ".*", v in proptest::num::f64::NORMAL) {
            let mut f = Family::gauge("m", "h");
            f.push(Labels::from_pairs([("l", value.as_str())]), v);
            let mut out = String::new();
            encode([&f], Format::PrometheusText, &mut out);
            let parsed = parse_text(&out).unwrap();
            proptest::prop_assert_eq!(parsed[0].labels.get("l"), Some(value.as_str()));
            proptest::prop_assert_eq!(parsed[0].value, v);
        }
    }
}

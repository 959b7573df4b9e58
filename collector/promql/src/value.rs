//! What a query returns, and the label-set helpers evaluation shares.

use lookout_protocol::{Label, Labels};

pub const METRIC_NAME: &str = "__name__";

/// Maps keyed by label bytes. XXH3 is several times faster than SipHash on
/// these keys; it is not flood-resistant, but every query runs under a
/// deadline, so crafted labels can slow one query, not the collector.
pub(crate) type HashMap<K, V> = std::collections::HashMap<K, V, xxhash_rust::xxh3::Xxh3Builder>;

/// One sample of a result: milliseconds and value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Point {
    pub t: i64,
    pub v: f64,
}

/// One series of a result with its points in time order.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub labels: Labels,
    pub points: Vec<Point>,
}

/// A query's answer, typed as Prometheus types it.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Scalar(Point),
    String {
        t: i64,
        value: String,
    },
    /// An instant vector: each series has exactly one point.
    Vector(Vec<Series>),
    Matrix(Vec<Series>),
}

impl Value {
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Scalar(_) => "scalar",
            Value::String { .. } => "string",
            Value::Vector(_) => "vector",
            Value::Matrix(_) => "matrix",
        }
    }
}

/// Non-fatal findings, worded as Prometheus words them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Annotations {
    pub warnings: Vec<String>,
    pub infos: Vec<String>,
}

impl Annotations {
    pub fn warn(&mut self, msg: String) {
        let msg = format!("PromQL warning: {msg}");
        if !self.warnings.contains(&msg) {
            self.warnings.push(msg);
        }
    }

    pub fn info(&mut self, msg: String) {
        let msg = format!("PromQL info: {msg}");
        if !self.infos.contains(&msg) {
            self.infos.push(msg);
        }
    }
}

/// Formats a float the way Go's `strconv.FormatFloat(f, 'f', -1, 64)` does,
/// which is how Prometheus prints values and `count_values` labels.
pub fn format_float(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        // Rust's Display is the shortest round-trip form without exponent.
        format!("{v}")
    }
}

pub(crate) fn labels_from(mut v: Vec<Label>) -> Labels {
    v.sort_by(|a, b| a.name.cmp(&b.name));
    Labels::from(v)
}

pub(crate) fn without_labels(l: &Labels, names: &[&str]) -> Labels {
    if !l.iter().any(|x| names.contains(&x.name.as_str())) {
        return l.clone();
    }
    Labels::from(
        l.iter()
            .filter(|x| !names.contains(&x.name.as_str()))
            .cloned()
            .collect::<Vec<_>>(),
    )
}

/// Removes the metric name, and with it the type and unit labels that
/// describe it (Prometheus's `__type__`/`__unit__` labels).
pub(crate) fn drop_name(l: &Labels) -> Labels {
    without_labels(l, &[METRIC_NAME, "__type__", "__unit__"])
}

pub(crate) fn keep_labels(l: &Labels, names: &[&str]) -> Labels {
    Labels::from(
        l.iter()
            .filter(|x| names.contains(&x.name.as_str()))
            .cloned()
            .collect::<Vec<_>>(),
    )
}

/// A copy with `name` set to `value`, or removed when `value` is empty.
pub(crate) fn set_label(l: &Labels, name: &str, value: &str) -> Labels {
    let mut v: Vec<Label> = l.iter().filter(|x| x.name != name).cloned().collect();
    if !value.is_empty() {
        v.push(Label::new(name, value));
    }
    labels_from(v)
}

/// A stable key for grouping: the pairs joined with separators that cannot
/// occur in valid UTF-8 label text.
pub(crate) fn labels_key(l: &Labels) -> Vec<u8> {
    let mut k = Vec::with_capacity(l.len() * 16);
    for x in l.iter() {
        k.extend_from_slice(x.name.as_bytes());
        k.push(0xfe);
        k.extend_from_slice(x.value.as_bytes());
        k.push(0xff);
    }
    k
}

/// Key of the labels named (`on`) or of all but those named and the metric
/// name (`ignoring`), without building a new label set.
pub(crate) fn signature(l: &Labels, on: bool, names: &[String]) -> Vec<u8> {
    let mut k = Vec::with_capacity(64);
    for x in l.iter() {
        let listed = names.iter().any(|n| n == x.name.as_str());
        let keep = if on {
            listed
        } else {
            !listed && x.name != METRIC_NAME
        };
        if keep {
            k.extend_from_slice(x.name.as_bytes());
            k.push(0xfe);
            k.extend_from_slice(x.value.as_bytes());
            k.push(0xff);
        }
    }
    k
}

pub(crate) fn labels_string(l: &Labels) -> String {
    let mut s = String::from("{");
    for (i, x) in l.iter().enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        s.push_str(&x.name);
        s.push_str("=\"");
        s.push_str(&x.value.replace('\\', "\\\\").replace('"', "\\\""));
        s.push('"');
    }
    s.push('}');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_like_go() {
        assert_eq!(format_float(1.0), "1");
        assert_eq!(format_float(0.1), "0.1");
        assert_eq!(format_float(-2.5e-7), "-0.00000025");
        assert_eq!(format_float(1e21), "1000000000000000000000");
        assert_eq!(format_float(f64::NAN), "NaN");
        assert_eq!(format_float(f64::NEG_INFINITY), "-Inf");
    }

    #[test]
    fn signatures_follow_on_and_ignoring() {
        let l = labels_from(vec![
            Label::new("__name__", "m"),
            Label::new("a", "1"),
            Label::new("b", "2"),
        ]);
        let m = labels_from(vec![Label::new("a", "1"), Label::new("b", "3")]);
        assert_eq!(
            signature(&l, true, &["a".into()]),
            signature(&m, true, &["a".into()])
        );
        assert_ne!(signature(&l, false, &[]), signature(&m, false, &[]));
        assert_eq!(
            signature(&l, false, &["b".into()]),
            signature(&m, false, &["b".into()])
        );
    }
}

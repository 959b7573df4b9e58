//! The sample model shared by the agent and the collector.
//!
//! A [`Family`] is one metric name with its type, help text and samples. A
//! [`Sample`] carries its label set without the metric name; the name lives
//! on the family so that every encoder can keep a family's lines together.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use compact_str::CompactString;

/// Label names and values. Short strings (up to 24 bytes) are stored inline,
/// which covers almost every label value a sampler produces.
pub type Str = CompactString;

/// One `name="value"` pair.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Label {
    pub name: Str,
    pub value: Str,
}

impl Label {
    pub fn new(name: impl Into<Str>, value: impl Into<Str>) -> Self {
        Label {
            name: name.into(),
            value: value.into(),
        }
    }
}

/// A label set in insertion order. Exposition keeps the order; remote write
/// sorts at encoding time.
///
/// Cloning is a reference-count increment: the many series of one container
/// or disk share one label set, which keeps samplers cheap and snapshots
/// small. Changing a shared set copies it first.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Labels(Arc<Vec<Label>>);

impl Labels {
    pub fn new() -> Self {
        Labels::default()
    }

    pub fn with_capacity(n: usize) -> Self {
        Labels(Arc::new(Vec::with_capacity(n)))
    }

    /// Builds a label set from pairs; later pairs do not replace earlier ones,
    /// so callers pass each name once.
    pub fn from_pairs<N, V, I>(pairs: I) -> Self
    where
        N: Into<Str>,
        V: Into<Str>,
        I: IntoIterator<Item = (N, V)>,
    {
        Labels(Arc::new(
            pairs.into_iter().map(|(n, v)| Label::new(n, v)).collect(),
        ))
    }

    /// Adds a label, replacing the value of an existing label of that name.
    pub fn set(&mut self, name: impl Into<Str>, value: impl Into<Str>) {
        let name = name.into();
        let value = value.into();
        let labels = Arc::make_mut(&mut self.0);
        match labels.iter_mut().find(|l| l.name == name) {
            Some(existing) => existing.value = value,
            None => labels.push(Label { name, value }),
        }
    }

    /// Returns a copy with one more label (or that label's value replaced).
    pub fn with(&self, name: impl Into<Str>, value: impl Into<Str>) -> Self {
        let mut v = Vec::with_capacity(self.0.len() + 1);
        v.extend_from_slice(&self.0);
        let mut out = Labels(Arc::new(v));
        out.set(name, value);
        out
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|l| l.name == name)
            .map(|l| l.value.as_str())
    }

    pub fn iter(&self) -> std::slice::Iter<'_, Label> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Labels sorted by name, as remote write and series identity need them.
    pub fn sorted(&self) -> Labels {
        let mut v: Vec<Label> = self.0.as_ref().clone();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        Labels(Arc::new(v))
    }
}

impl From<Vec<Label>> for Labels {
    fn from(labels: Vec<Label>) -> Self {
        Labels(Arc::new(labels))
    }
}

impl<'a> IntoIterator for &'a Labels {
    type Item = &'a Label;
    type IntoIter = std::slice::Iter<'a, Label>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl fmt::Display for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, l) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{}={:?}", l.name, l.value.as_str())?;
        }
        f.write_str("}")
    }
}

/// The metric types Lookout produces. Histograms and summaries come with the
/// components that need them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MetricKind {
    Counter,
    Gauge,
    Untyped,
}

/// One metric name with its samples.
#[derive(Clone, Debug, PartialEq)]
pub struct Family {
    /// The full sample name; counters end in `_total`.
    pub name: Str,
    pub help: Cow<'static, str>,
    pub kind: MetricKind,
    pub samples: Vec<Sample>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub labels: Labels,
    pub value: f64,
}

impl Family {
    pub fn new(name: impl Into<Str>, help: impl Into<Cow<'static, str>>, kind: MetricKind) -> Self {
        Family {
            name: name.into(),
            help: help.into(),
            kind,
            samples: Vec::new(),
        }
    }

    pub fn counter(name: impl Into<Str>, help: impl Into<Cow<'static, str>>) -> Self {
        Self::new(name, help, MetricKind::Counter)
    }

    pub fn gauge(name: impl Into<Str>, help: impl Into<Cow<'static, str>>) -> Self {
        Self::new(name, help, MetricKind::Gauge)
    }

    pub fn push(&mut self, labels: Labels, value: f64) {
        self.samples.push(Sample { labels, value });
    }

    /// A family with a single unlabelled sample.
    pub fn single(
        name: impl Into<Str>,
        help: impl Into<Cow<'static, str>>,
        kind: MetricKind,
        value: f64,
    ) -> Self {
        let mut f = Self::new(name, help, kind);
        f.push(Labels::new(), value);
        f
    }
}

/// Whether `name` is a valid Prometheus metric name.
pub fn is_valid_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':' => {}
        _ => return false,
    }
    chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Whether `name` is a valid Prometheus label name.
pub fn is_valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || c == '_' => {}
        _ => return false,
    }
    chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Turns an arbitrary key (a Docker label such as `com.example.team`) into a
/// valid label name by replacing every other character with `_`.
pub fn sanitize_label_name(raw: &str) -> String {
    let mut out: String = raw
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if out.chars().next().is_none_or(|c| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_replaces_and_with_copies() {
        let mut l = Labels::from_pairs([("a", "1"), ("b", "2")]);
        l.set("a", "3");
        assert_eq!(l.get("a"), Some("3"));
        assert_eq!(l.len(), 2);
        let m = l.with("c", "4");
        assert_eq!(l.len(), 2);
        assert_eq!(m.get("c"), Some("4"));
    }

    #[test]
    fn sorted_orders_by_name() {
        let l = Labels::from_pairs([("z", "1"), ("a", "2"), ("m", "3")]);
        let names: Vec<_> = l.sorted().iter().map(|l| l.name.to_string()).collect();
        assert_eq!(names, ["a", "m", "z"]);
    }

    #[test]
    fn names_are_validated_and_sanitized() {
        assert!(is_valid_metric_name("node_load1"));
        assert!(is_valid_metric_name("job:up:sum"));
        assert!(!is_valid_metric_name("1abc"));
        assert!(!is_valid_metric_name(""));
        assert!(is_valid_label_name("_x9"));
        assert!(!is_valid_label_name("a:b"));
        assert_eq!(sanitize_label_name("com.example.team"), "com_example_team");
        assert_eq!(sanitize_label_name("9lives"), "_9lives");
        assert_eq!(sanitize_label_name(""), "_");
        assert!(is_valid_label_name(&sanitize_label_name("ü-x.y")));
    }
}

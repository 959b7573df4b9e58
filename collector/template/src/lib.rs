//! Go's text/template language as Prometheus (annotations) and
//! Alertmanager (notification messages) use it.
//!
//! API (stable; the implementation fills it in):
//! - [`Template::parse`] checks syntax and that every called function is
//!   known to the given [`Funcs`];
//! - [`Template::render`] executes it over a [`Value`].
//!
//! Output follows Go's: numbers print as Go's fmt prints them (a float64
//! with `%v` is `strconv.FormatFloat(v, 'g', -1, 64)`), `printf` follows
//! Go's verbs and flags, and a missing map key behaves as under
//! `missingkey=zero`, the option both Prometheus and Alertmanager set
//! (see [`MissingKey`]).
//!
//! Execution is bounded: [`MAX_OUTPUT_BYTES`] of output (and per string
//! value), [`MAX_DEPTH`] levels of nesting and template calls, and
//! [`MAX_STEPS`] evaluation steps; past any of them rendering fails with
//! an error instead of running away.

mod builtins;
mod exec;
mod format;
mod funcs;
mod lex;
mod parse;
mod time;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;

/// Largest output (and largest string any function may return).
pub const MAX_OUTPUT_BYTES: usize = 1 << 20;
/// Deepest nesting of control structures, parentheses and template calls.
pub const MAX_DEPTH: usize = 100;
/// Most evaluation steps (actions, iterations, calls) one render may take.
pub const MAX_STEPS: u64 = 4_000_000;

/// Data a template reads. `.Field` on a map looks up the key `Field`;
/// a [`Value::List`] may also carry named fields (Alertmanager's
/// `.Alerts.Firing` on the alert list), looked up the same way.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Nil,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    List(Vec<Value>, BTreeMap<String, Value>),
    Map(BTreeMap<String, Value>),
}

impl Value {
    /// A list without named fields.
    pub fn list(items: impl IntoIterator<Item = Value>) -> Value {
        Value::List(items.into_iter().collect(), BTreeMap::new())
    }

    /// A map from any key/value pairs.
    pub fn map<K: Into<String>, V: Into<Value>>(
        entries: impl IntoIterator<Item = (K, V)>,
    ) -> Value {
        Value::Map(
            entries
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }

    /// Go's truth: false, 0, nil, and empty strings, lists and maps are false.
    pub fn is_true(&self) -> bool {
        match self {
            Value::Nil => false,
            Value::Bool(b) => *b,
            Value::Int(i) => *i != 0,
            // NaN is not zero, so Go counts it as true.
            Value::Float(f) => *f != 0.0,
            Value::Str(s) => !s.is_empty(),
            Value::List(items, _) => !items.is_empty(),
            Value::Map(m) => !m.is_empty(),
        }
    }
}

/// As `{{ . }}` prints it: Go's `%v`, and `<no value>` for nil.
impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Nil => f.write_str("<no value>"),
            v => f.write_str(&format::print_value(v)),
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::Str(s.to_string())
    }
}
impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::Str(s)
    }
}
impl From<f64> for Value {
    fn from(v: f64) -> Value {
        Value::Float(v)
    }
}
impl From<i64> for Value {
    fn from(v: i64) -> Value {
        Value::Int(v)
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Value {
        Value::Bool(v)
    }
}

/// A template function: arguments in, value or error message out.
pub type Func<'a> = Box<dyn Fn(&[Value]) -> Result<Value, String> + Send + Sync + 'a>;

/// The functions a template may call, beyond Go's builtins. A function
/// added under a builtin's name replaces the builtin, as in Go.
pub struct Funcs<'a> {
    funcs: HashMap<String, Func<'a>>,
}

impl<'a> Funcs<'a> {
    /// Go's builtins only.
    pub fn builtin() -> Funcs<'a> {
        Funcs {
            funcs: HashMap::new(),
        }
    }
    /// Prometheus's template functions (humanize, printf, ...), without
    /// `query`, which the caller adds over its own data, nor the
    /// functions that need the server (`externalURL`, `pathPrefix`) or
    /// the clock.
    pub fn prometheus() -> Funcs<'a> {
        let mut f = Funcs::builtin();
        funcs::add_prometheus(&mut f);
        f
    }
    /// Alertmanager's template functions. Times (`date`, `tz`) are Unix
    /// milliseconds in a [`Value::Int`], in UTC.
    pub fn alertmanager() -> Funcs<'a> {
        let mut f = Funcs::builtin();
        funcs::add_alertmanager(&mut f);
        f
    }
    pub fn insert(&mut self, name: &str, func: Func<'a>) {
        self.funcs.insert(name.to_string(), func);
    }
    pub fn contains(&self, name: &str) -> bool {
        self.funcs.contains_key(name)
    }
    pub(crate) fn get(&self, name: &str) -> Option<&Func<'a>> {
        self.funcs.get(name)
    }
    /// The names of the added functions, sorted (builtins not included).
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.funcs.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }
}

impl Default for Funcs<'_> {
    fn default() -> Self {
        Funcs::builtin()
    }
}

impl fmt::Debug for Funcs<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Funcs")
            .field("funcs", &self.names())
            .finish()
    }
}

#[derive(Debug, thiserror::Error, Clone, PartialEq)]
#[error("template {name}:{line}: {message}")]
pub struct TemplateError {
    pub name: String,
    pub line: usize,
    pub message: String,
}

/// An error before it is given the template's name.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Fault {
    pub line: usize,
    pub message: String,
}

/// What `.key` gives when a map has no such key.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MissingKey {
    /// Go's `missingkey=zero`, which Prometheus and Alertmanager set: the
    /// zero value of the map's element type. Maps here are untyped, so a
    /// map whose values are all strings (label sets, and empty maps) gives
    /// `""`, and any other map gives nil (printed `<no value>`).
    #[default]
    Zero,
    /// Go's default: nil, printed `<no value>`.
    NoValue,
    /// Go's `missingkey=error`: execution fails.
    Error,
}

#[derive(Clone, Debug)]
pub struct Template {
    name: String,
    /// The main template under `name`, and every `define`/`block`.
    trees: Arc<BTreeMap<String, parse::List>>,
    missing_key: MissingKey,
}

impl Template {
    pub fn parse(name: &str, text: &str, funcs: &Funcs<'_>) -> Result<Template, TemplateError> {
        let trees = parse::parse(name, text, funcs).map_err(|f| TemplateError {
            name: name.to_string(),
            line: f.line,
            message: f.message,
        })?;
        Ok(Template {
            name: name.to_string(),
            trees: Arc::new(trees),
            missing_key: MissingKey::default(),
        })
    }

    /// The same template with another missing-key behaviour.
    pub fn with_missing_key(mut self, missing_key: MissingKey) -> Template {
        self.missing_key = missing_key;
        self
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether `define`/`block` (or the main text) made a template of that name.
    pub fn has_template(&self, name: &str) -> bool {
        self.trees.contains_key(name)
    }

    /// Names of all templates in the text, the main one included.
    pub fn template_names(&self) -> Vec<&str> {
        self.trees.keys().map(String::as_str).collect()
    }

    /// Executes the main template (or, with `define`, any named one via
    /// [`Template::render_named`]).
    pub fn render(&self, data: &Value, funcs: &Funcs<'_>) -> Result<String, TemplateError> {
        self.render_named(&self.name, data, funcs)
    }

    pub fn render_named(
        &self,
        template: &str,
        data: &Value,
        funcs: &Funcs<'_>,
    ) -> Result<String, TemplateError> {
        exec::render(self, template, data, funcs).map_err(|f| TemplateError {
            name: self.name.clone(),
            line: f.line,
            message: f.message,
        })
    }
}

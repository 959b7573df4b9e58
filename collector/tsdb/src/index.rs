//! Interned label sets and the inverted index that answers label matchers.
//!
//! Every label name and value is stored once in [`Symbols`]; a series' label
//! set is then a sorted list of `(name, value)` symbol ids, eight bytes a
//! label. [`MemIndex`] maps each `(name, value)` to the sorted ids of the
//! series carrying it. The head and every loaded block use the same index
//! type, so matchers have one implementation.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use lookout_protocol::model::Labels;
use regex::Regex;

pub type SymbolId = u32;
pub type SeriesId = u32;

/// Interned strings.
#[derive(Default)]
pub struct Symbols {
    ids: HashMap<Arc<str>, SymbolId>,
    strs: Vec<Arc<str>>,
}

impl Symbols {
    pub fn intern(&mut self, s: &str) -> SymbolId {
        if let Some(&id) = self.ids.get(s) {
            return id;
        }
        let id = self.strs.len() as SymbolId;
        let shared: Arc<str> = Arc::from(s);
        self.strs.push(shared.clone());
        self.ids.insert(shared, id);
        id
    }

    pub fn lookup(&self, s: &str) -> Option<SymbolId> {
        self.ids.get(s).copied()
    }

    pub fn get(&self, id: SymbolId) -> &str {
        &self.strs[id as usize]
    }

    pub fn len(&self) -> usize {
        self.strs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.strs.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.strs.iter().map(|s| &**s)
    }
}

/// A series' labels as symbol ids, sorted by name: `[name0, value0, name1, ...]`.
pub type SymbolLabels = Box<[SymbolId]>;

pub fn labels_from_symbols(symbols: &Symbols, ids: &[SymbolId]) -> Labels {
    Labels::from_pairs(
        ids.chunks_exact(2)
            .map(|p| (symbols.get(p[0]), symbols.get(p[1]))),
    )
}

/// True when the interned label set equals the given sorted pairs.
pub fn symbols_equal<'a>(
    symbols: &Symbols,
    ids: &[SymbolId],
    mut pairs: impl Iterator<Item = (&'a str, &'a str)>,
) -> bool {
    for p in ids.chunks_exact(2) {
        match pairs.next() {
            Some((n, v)) if symbols.get(p[0]) == n && symbols.get(p[1]) == v => {}
            _ => return false,
        }
    }
    pairs.next().is_none()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatchKind {
    Equal,
    NotEqual,
    Regex,
    NotRegex,
}

impl fmt::Display for MatchKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MatchKind::Equal => "=",
            MatchKind::NotEqual => "!=",
            MatchKind::Regex => "=~",
            MatchKind::NotRegex => "!~",
        })
    }
}

/// One label matcher, with Prometheus's semantics: regular expressions are
/// anchored at both ends, and a matcher that accepts the empty string also
/// accepts series that lack the label.
#[derive(Clone, Debug)]
pub struct Matcher {
    pub name: String,
    pub kind: MatchKind,
    pub value: String,
    regex: Option<Regex>,
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}{:?}", self.name, self.kind, self.value)
    }
}

/// Compiled regexes by source. Rules run the same selectors every few
/// seconds, and compiling a regex costs far more than matching with it.
static REGEX_CACHE: std::sync::LazyLock<parking_lot::Mutex<HashMap<String, Regex>>> =
    std::sync::LazyLock::new(Default::default);

/// Entries kept before the cache starts afresh; bounds memory when queries
/// carry ever-new regexes.
const REGEX_CACHE_MAX: usize = 4096;

fn compiled_regex(value: &str) -> Result<Regex, regex::Error> {
    if let Some(r) = REGEX_CACHE.lock().get(value) {
        return Ok(r.clone());
    }
    let r = Regex::new(&format!("^(?s:{value})$"))?;
    let mut cache = REGEX_CACHE.lock();
    if cache.len() >= REGEX_CACHE_MAX {
        cache.clear();
    }
    cache.insert(value.to_string(), r.clone());
    Ok(r)
}

impl Matcher {
    pub fn new(
        kind: MatchKind,
        name: impl Into<String>,
        value: impl Into<String>,
    ) -> Result<Self, regex::Error> {
        let value = value.into();
        let regex = match kind {
            MatchKind::Regex | MatchKind::NotRegex => Some(compiled_regex(&value)?),
            _ => None,
        };
        Ok(Matcher {
            name: name.into(),
            kind,
            value,
            regex,
        })
    }

    pub fn equal(name: impl Into<String>, value: impl Into<String>) -> Self {
        Matcher {
            name: name.into(),
            kind: MatchKind::Equal,
            value: value.into(),
            regex: None,
        }
    }

    pub fn matches(&self, v: &str) -> bool {
        match self.kind {
            MatchKind::Equal => v == self.value,
            MatchKind::NotEqual => v != self.value,
            MatchKind::Regex => self.regex.as_ref().is_some_and(|r| r.is_match(v)),
            MatchKind::NotRegex => !self.regex.as_ref().is_some_and(|r| r.is_match(v)),
        }
    }

    pub fn matches_empty(&self) -> bool {
        self.matches("")
    }

    /// True when the label set (absent label = empty value) passes.
    pub fn matches_labels(&self, labels: &Labels) -> bool {
        self.matches(labels.get(&self.name).unwrap_or(""))
    }
}

/// Postings: for each label name and value, the sorted ids of the series
/// that carry it. Ids are appended in increasing order, so lists stay sorted
/// without sorting.
#[derive(Default)]
pub struct MemIndex {
    postings: HashMap<SymbolId, HashMap<SymbolId, Vec<SeriesId>>>,
    all: Vec<SeriesId>,
}

impl MemIndex {
    /// Adds a series; `id` must exceed every id added before.
    pub fn add(&mut self, id: SeriesId, labels: &[SymbolId]) {
        debug_assert!(self.all.last().is_none_or(|&l| l < id));
        self.all.push(id);
        for p in labels.chunks_exact(2) {
            self.postings
                .entry(p[0])
                .or_default()
                .entry(p[1])
                .or_default()
                .push(id);
        }
    }

    /// Adds a series whose id is below ids already added (log replay after
    /// a damaged record); slower, keeps lists sorted.
    pub fn add_unordered(&mut self, id: SeriesId, labels: &[SymbolId]) {
        insert_sorted(&mut self.all, id);
        for p in labels.chunks_exact(2) {
            let list = self
                .postings
                .entry(p[0])
                .or_default()
                .entry(p[1])
                .or_default();
            insert_sorted(list, id);
        }
    }

    /// Removes the ids for which `dead` holds.
    pub fn remove_where(&mut self, dead: impl Fn(SeriesId) -> bool) {
        self.all.retain(|&id| !dead(id));
        for values in self.postings.values_mut() {
            for list in values.values_mut() {
                list.retain(|&id| !dead(id));
            }
            values.retain(|_, l| !l.is_empty());
        }
        self.postings.retain(|_, v| !v.is_empty());
    }

    pub fn series_count(&self) -> usize {
        self.all.len()
    }

    /// Sorted ids of the series matching every matcher.
    pub fn select(&self, symbols: &Symbols, matchers: &[Matcher]) -> Vec<SeriesId> {
        let mut include: Vec<Vec<SeriesId>> = Vec::new();
        let mut exclude: Vec<Vec<SeriesId>> = Vec::new();
        for m in matchers {
            let values = symbols.lookup(&m.name).and_then(|n| self.postings.get(&n));
            if m.matches_empty() {
                // Series without the label pass; subtract those whose value fails.
                let Some(values) = values else { continue };
                let failing: Vec<&Vec<SeriesId>> = values
                    .iter()
                    .filter(|(v, _)| !m.matches(symbols.get(**v)))
                    .map(|(_, l)| l)
                    .collect();
                if !failing.is_empty() {
                    exclude.push(union(&failing));
                }
            } else {
                let Some(values) = values else {
                    return Vec::new();
                };
                let list = if m.kind == MatchKind::Equal {
                    match symbols.lookup(&m.value).and_then(|v| values.get(&v)) {
                        Some(l) => l.clone(),
                        None => Vec::new(),
                    }
                } else {
                    let passing: Vec<&Vec<SeriesId>> = values
                        .iter()
                        .filter(|(v, _)| m.matches(symbols.get(**v)))
                        .map(|(_, l)| l)
                        .collect();
                    union(&passing)
                };
                if list.is_empty() {
                    return Vec::new();
                }
                include.push(list);
            }
        }
        include.sort_by_key(|l| l.len());
        let mut result = match include.split_first() {
            Some((first, rest)) => rest.iter().fold(first.clone(), |acc, l| intersect(&acc, l)),
            None => self.all.clone(),
        };
        for ex in &exclude {
            result = subtract(&result, ex);
        }
        result
    }

    /// Label names used by at least one series.
    pub fn label_names<'a>(&'a self, symbols: &'a Symbols) -> impl Iterator<Item = &'a str> {
        self.postings.keys().map(|&n| symbols.get(n))
    }

    /// Values of one label name.
    pub fn label_values<'a>(
        &'a self,
        symbols: &'a Symbols,
        name: &str,
    ) -> impl Iterator<Item = &'a str> {
        symbols
            .lookup(name)
            .and_then(|n| self.postings.get(&n))
            .into_iter()
            .flat_map(|values| values.keys().map(|&v| symbols.get(v)))
    }
}

fn insert_sorted(list: &mut Vec<SeriesId>, id: SeriesId) {
    if let Err(i) = list.binary_search(&id) {
        list.insert(i, id);
    }
}

fn union(lists: &[&Vec<SeriesId>]) -> Vec<SeriesId> {
    match lists {
        [] => Vec::new(),
        [one] => (*one).clone(),
        _ => {
            let mut out: Vec<SeriesId> = lists.iter().flat_map(|l| l.iter().copied()).collect();
            out.sort_unstable();
            out.dedup();
            out
        }
    }
}

fn intersect(a: &[SeriesId], b: &[SeriesId]) -> Vec<SeriesId> {
    let mut out = Vec::with_capacity(a.len().min(b.len()));
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out
}

fn subtract(a: &[SeriesId], b: &[SeriesId]) -> Vec<SeriesId> {
    let mut out = Vec::with_capacity(a.len());
    let mut j = 0;
    for &x in a {
        while j < b.len() && b[j] < x {
            j += 1;
        }
        if j >= b.len() || b[j] != x {
            out.push(x);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn build(series: &[Vec<(&str, &str)>]) -> (Symbols, MemIndex, Vec<Labels>) {
        let mut symbols = Symbols::default();
        let mut index = MemIndex::default();
        let mut all = Vec::new();
        for (id, s) in series.iter().enumerate() {
            let mut pairs = s.clone();
            pairs.sort();
            let ids: Vec<SymbolId> = pairs
                .iter()
                .flat_map(|(n, v)| [symbols.intern(n), symbols.intern(v)])
                .collect();
            index.add(id as SeriesId, &ids);
            all.push(Labels::from_pairs(pairs));
        }
        (symbols, index, all)
    }

    fn brute(all: &[Labels], matchers: &[Matcher]) -> Vec<SeriesId> {
        all.iter()
            .enumerate()
            .filter(|(_, l)| matchers.iter().all(|m| m.matches_labels(l)))
            .map(|(i, _)| i as SeriesId)
            .collect()
    }

    #[test]
    fn matchers_follow_prometheus_semantics() {
        let (sym, idx, all) = build(&[
            vec![("__name__", "up"), ("job", "node"), ("instance", "a")],
            vec![("__name__", "up"), ("job", "cadvisor"), ("instance", "b")],
            vec![("__name__", "up"), ("instance", "c")],
            vec![("__name__", "load1"), ("job", "node"), ("instance", "a")],
        ]);
        let sel = |ms: Vec<Matcher>| {
            let got = idx.select(&sym, &ms);
            assert_eq!(got, brute(&all, &ms), "{ms:?}");
            got
        };
        let m = |k, n: &str, v: &str| Matcher::new(k, n, v).unwrap();
        assert_eq!(
            sel(vec![m(MatchKind::Equal, "__name__", "up")]),
            vec![0, 1, 2]
        );
        assert_eq!(sel(vec![m(MatchKind::Equal, "job", "")]), vec![2]);
        assert_eq!(sel(vec![m(MatchKind::NotEqual, "job", "")]), vec![0, 1, 3]);
        assert_eq!(
            sel(vec![
                m(MatchKind::Equal, "__name__", "up"),
                m(MatchKind::NotEqual, "job", "node")
            ]),
            vec![1, 2]
        );
        assert_eq!(
            sel(vec![m(MatchKind::Regex, "job", "node|cad.*")]),
            vec![0, 1, 3]
        );
        // Anchored: "od" alone does not match "node".
        assert_eq!(
            sel(vec![m(MatchKind::Regex, "job", "od")]),
            Vec::<u32>::new()
        );
        assert_eq!(sel(vec![m(MatchKind::NotRegex, "job", "node")]), vec![1, 2]);
        assert_eq!(
            sel(vec![m(MatchKind::Regex, "job", "node|")]),
            vec![0, 2, 3]
        );
        assert_eq!(
            sel(vec![m(MatchKind::Regex, "nope", ".+")]),
            Vec::<u32>::new()
        );
        assert_eq!(
            sel(vec![m(MatchKind::Regex, "nope", ".*")]),
            vec![0, 1, 2, 3]
        );
    }

    #[test]
    fn removed_series_leave_every_list() {
        let (sym, mut idx, _) = build(&[
            vec![("__name__", "up"), ("job", "node")],
            vec![("__name__", "up"), ("job", "x")],
        ]);
        idx.remove_where(|id| id == 1);
        assert_eq!(
            idx.select(&sym, &[Matcher::equal("__name__", "up")]),
            vec![0]
        );
        assert_eq!(
            idx.label_values(&sym, "job").collect::<Vec<_>>(),
            vec!["node"]
        );
        assert_eq!(idx.series_count(), 1);
    }

    fn matcher_strategy() -> impl Strategy<Value = Matcher> {
        (
            prop::sample::select(vec!["a", "b", "c"]),
            0..4usize,
            prop::sample::select(vec!["", "1", "2", "1|2", ".*", ".+", "[12]", "x"]),
        )
            .prop_filter_map("valid", |(n, k, v)| {
                let kind = [
                    MatchKind::Equal,
                    MatchKind::NotEqual,
                    MatchKind::Regex,
                    MatchKind::NotRegex,
                ][k];
                Matcher::new(kind, n, v).ok()
            })
    }

    proptest! {
        #[test]
        fn select_equals_a_scan(
            series in proptest::collection::vec(
                proptest::collection::btree_map(
                    prop::sample::select(vec!["a", "b", "c"]),
                    prop::sample::select(vec!["1", "2", "3"]),
                    0..3,
                ),
                0..40,
            ),
            matchers in proptest::collection::vec(matcher_strategy(), 0..4),
        ) {
            let series: Vec<Vec<(&str, &str)>> =
                series.iter().map(|m| m.iter().map(|(k, v)| (*k, *v)).collect()).collect();
            let (sym, idx, all) = build(&series);
            prop_assert_eq!(idx.select(&sym, &matchers), brute(&all, &matchers));
        }
    }
}

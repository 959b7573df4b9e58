//! The head: the most recent samples, in memory, as XOR chunks per series.
//!
//! In-order samples append to the series' open chunk; a chunk closes at 120
//! samples or at a block boundary, so a block cut never splits a chunk.
//! Older samples inside the out-of-order window go to a small sorted buffer
//! per series; a sample whose series already has that timestamp is a no-op.
//! Queries merge chunks and buffer; a block cut drains both.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use lookout_protocol::model::Labels;
use parking_lot::{Mutex, RwLock};

use crate::chunk::{self, XorAppender};
use crate::index::{
    Matcher, MemIndex, SeriesId, SymbolId, SymbolLabels, Symbols, labels_from_symbols,
    symbols_equal,
};

/// Hashes are already well mixed; hashing them again is waste.
#[derive(Default)]
pub struct IdentityHasher(u64);

impl Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | b as u64;
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

type ByHash = HashMap<u64, SeriesId, BuildHasherDefault<IdentityHasher>>;

/// Hash of a sorted label set, over names and values with separators.
pub fn hash_labels<'a>(
    pairs: impl Iterator<Item = (&'a str, &'a str)>,
    scratch: &mut Vec<u8>,
) -> u64 {
    scratch.clear();
    for (n, v) in pairs {
        scratch.extend_from_slice(n.as_bytes());
        scratch.push(0xff);
        scratch.extend_from_slice(v.as_bytes());
        scratch.push(0xff);
    }
    xxhash_rust::xxh3::xxh3_64(scratch)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AppendResult {
    Appended,
    /// Same timestamp and same value as a stored sample: nothing to do.
    Duplicate,
    /// Same timestamp, different value: the first value is kept.
    Conflict,
    /// Older than the out-of-order window allows.
    TooOld,
}

pub use crate::chunk::ClosedChunk;

/// One series' samples. A head holds hundreds of thousands of these, most
/// with nothing but an open chunk, so the rest sits behind one pointer: with
/// it `MemSeries` and its reference counts fit a 128-byte allocation.
#[derive(Default)]
pub struct SeriesData {
    open: XorAppender,
    max_t: Option<i64>,
    older: Option<Box<Older>>,
}

#[derive(Default)]
struct Older {
    /// Chunks no longer appended to, oldest first. A boxed slice, not a
    /// `Vec`: one closes every 120 samples, and a `Vec`'s spare capacity
    /// would cost more than growing by one each time.
    closed: Box<[ClosedChunk]>,
    /// Samples older than the newest, inside the out-of-order window, sorted.
    ooo: Vec<(i64, f64)>,
}

impl SeriesData {
    fn closed(&self) -> &[ClosedChunk] {
        self.older.as_deref().map_or(&[], |o| &o.closed)
    }

    fn ooo(&self) -> &[(i64, f64)] {
        self.older.as_deref().map_or(&[], |o| &o.ooo)
    }

    fn older_mut(&mut self) -> &mut Older {
        self.older.get_or_insert_with(Box::default)
    }

    fn push_closed(&mut self, chunk: ClosedChunk) {
        let older = self.older_mut();
        let mut closed = std::mem::take(&mut older.closed).into_vec();
        closed.reserve_exact(1);
        closed.push(chunk);
        older.closed = closed.into_boxed_slice();
    }

    fn is_empty(&self) -> bool {
        self.open.is_empty() && self.closed().is_empty() && self.ooo().is_empty()
    }
}

pub struct MemSeries {
    pub labels: SymbolLabels,
    data: Mutex<SeriesData>,
}

struct Meta {
    symbols: Symbols,
    index: MemIndex,
    by_hash: ByHash,
    /// Series whose label hash equals an earlier series' (practically never).
    collisions: HashMap<u64, Vec<SeriesId>>,
    next_id: SeriesId,
}

pub struct Head {
    block_range: i64,
    meta: RwLock<Meta>,
    series: RwLock<Vec<Option<Arc<MemSeries>>>>,
    max_t: AtomicI64,
    min_t: AtomicI64,
}

/// A series as a block receives it.
pub struct DrainedSeries {
    pub labels: Labels,
    pub chunks: Vec<ClosedChunk>,
}

fn boundary_after(t: i64, range: i64) -> i64 {
    (t.div_euclid(range) + 1) * range
}

impl Head {
    pub fn new(block_range: i64) -> Head {
        Head {
            block_range,
            meta: RwLock::new(Meta {
                symbols: Symbols::default(),
                index: MemIndex::default(),
                by_hash: ByHash::default(),
                collisions: HashMap::new(),
                next_id: 0,
            }),
            series: RwLock::new(Vec::new()),
            max_t: AtomicI64::new(i64::MIN),
            min_t: AtomicI64::new(i64::MAX),
        }
    }

    pub fn max_time(&self) -> Option<i64> {
        Some(self.max_t.load(Ordering::Acquire)).filter(|&t| t != i64::MIN)
    }

    pub fn min_time(&self) -> Option<i64> {
        Some(self.min_t.load(Ordering::Acquire)).filter(|&t| t != i64::MAX)
    }

    pub fn series_count(&self) -> usize {
        self.meta.read().index.series_count()
    }

    /// Finds the series with these sorted labels.
    pub fn lookup<'a>(
        &self,
        hash: u64,
        pairs: impl Iterator<Item = (&'a str, &'a str)> + Clone,
    ) -> Option<SeriesId> {
        let meta = self.meta.read();
        self.lookup_in(&meta, hash, pairs)
    }

    fn lookup_in<'a>(
        &self,
        meta: &Meta,
        hash: u64,
        pairs: impl Iterator<Item = (&'a str, &'a str)> + Clone,
    ) -> Option<SeriesId> {
        let series = self.series.read();
        let check = |id: SeriesId| {
            series
                .get(id as usize)
                .and_then(|s| s.as_ref())
                .is_some_and(|s| symbols_equal(&meta.symbols, &s.labels, pairs.clone()))
        };
        let id = *meta.by_hash.get(&hash)?;
        if check(id) {
            return Some(id);
        }
        meta.collisions
            .get(&hash)?
            .iter()
            .copied()
            .find(|&id| check(id))
    }

    /// Creates series for label sets not yet present; `on_created` sees each
    /// new series while the index lock is held, so the caller can log it
    /// before any other appender can find it. Returns one id per input.
    pub fn get_or_create<'a, L>(
        &self,
        wanted: &[(u64, L)],
        mut on_created: impl FnMut(&[(SeriesId, usize)]),
    ) -> Vec<SeriesId>
    where
        L: Iterator<Item = (&'a str, &'a str)> + Clone,
    {
        let mut meta = self.meta.write();
        let mut ids = Vec::with_capacity(wanted.len());
        let mut created = Vec::new();
        for (i, (hash, pairs)) in wanted.iter().enumerate() {
            if let Some(id) = self.lookup_in(&meta, *hash, pairs.clone()) {
                ids.push(id);
                continue;
            }
            let id = meta.next_id;
            self.insert(&mut meta, id, *hash, pairs.clone());
            created.push((id, i));
            ids.push(id);
        }
        if !created.is_empty() {
            on_created(&created);
        }
        ids
    }

    /// Recreates a series under its logged id (WAL replay).
    pub fn restore<'a>(
        &self,
        id: SeriesId,
        pairs: impl Iterator<Item = (&'a str, &'a str)> + Clone,
    ) {
        let mut scratch = Vec::new();
        let hash = hash_labels(pairs.clone(), &mut scratch);
        let mut meta = self.meta.write();
        if self.lookup_in(&meta, hash, pairs.clone()) == Some(id) {
            return;
        }
        if id < meta.next_id {
            // Ids only grow; an older id arriving late means the series
            // was already restored under another id. Keep both readable.
            let exists = self
                .series
                .read()
                .get(id as usize)
                .is_some_and(|s| s.is_some());
            if exists {
                return;
            }
        }
        self.insert(&mut meta, id, hash, pairs);
    }

    fn insert<'a>(
        &self,
        meta: &mut Meta,
        id: SeriesId,
        hash: u64,
        pairs: impl Iterator<Item = (&'a str, &'a str)>,
    ) {
        let labels: SymbolLabels = pairs
            .flat_map(|(n, v)| [meta.symbols.intern(n), meta.symbols.intern(v)])
            .collect::<Vec<SymbolId>>()
            .into_boxed_slice();
        if id >= meta.next_id {
            meta.index.add(id, &labels);
            meta.next_id = id + 1;
        } else {
            // Out-of-order id from replay: rebuild that postings entry.
            meta.index.add_unordered(id, &labels);
        }
        match meta.by_hash.entry(hash) {
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(id);
            }
            std::collections::hash_map::Entry::Occupied(_) => {
                meta.collisions.entry(hash).or_default().push(id);
            }
        }
        let mut series = self.series.write();
        if series.len() <= id as usize {
            series.resize(id as usize + 1, None);
        }
        series[id as usize] = Some(Arc::new(MemSeries {
            labels,
            data: Mutex::new(SeriesData::default()),
        }));
    }

    /// The series handles for a batch of ids.
    pub fn handles(&self, ids: &[SeriesId]) -> Vec<Option<Arc<MemSeries>>> {
        let series = self.series.read();
        ids.iter()
            .map(|&id| series.get(id as usize).and_then(|s| s.clone()))
            .collect()
    }

    /// Appends one sample. `min_valid` is the oldest timestamp the
    /// out-of-order window admits.
    pub fn append(&self, series: &MemSeries, t: i64, v: f64, min_valid: i64) -> AppendResult {
        let mut d = series.data.lock();
        let result = append_locked(&mut d, t, v, min_valid, self.block_range);
        drop(d);
        if result == AppendResult::Appended {
            self.max_t.fetch_max(t, Ordering::AcqRel);
            self.min_t.fetch_min(t, Ordering::AcqRel);
        }
        result
    }

    /// Ids of series matching every matcher.
    pub fn select_ids(&self, matchers: &[Matcher]) -> Vec<SeriesId> {
        let meta = self.meta.read();
        meta.index.select(&meta.symbols, matchers)
    }

    /// Labels and handles of many series under one lock.
    pub fn labels_of_ids(&self, ids: &[SeriesId]) -> Vec<(Labels, Arc<MemSeries>)> {
        let meta = self.meta.read();
        let series = self.series.read();
        ids.iter()
            .filter_map(|&id| {
                let s = series.get(id as usize)?.as_ref()?;
                Some((labels_from_symbols(&meta.symbols, &s.labels), s.clone()))
            })
            .collect()
    }

    /// Samples of one series in `[mint, maxt]`, sorted, one per timestamp.
    pub fn samples(&self, series: &MemSeries, mint: i64, maxt: i64, out: &mut Vec<(i64, f64)>) {
        let d = series.data.lock();
        let start = out.len();
        for c in d.closed() {
            if c.max_t >= mint && c.min_t <= maxt {
                // Chunks the head wrote itself; damage here is a bug, not input.
                let _ = chunk::decode_into(&c.bytes, mint, maxt, out);
            }
        }
        if !d.open.is_empty() && d.open.max_time() >= mint && d.open.min_time() <= maxt {
            let _ = chunk::decode_into(d.open.bytes(), mint, maxt, out);
        }
        let ooo: Vec<(i64, f64)> = d
            .ooo()
            .iter()
            .copied()
            .filter(|&(t, _)| t >= mint && t <= maxt)
            .collect();
        drop(d);
        if !ooo.is_empty() {
            let in_order = out.split_off(start);
            merge_sorted(&in_order, &ooo, out);
        }
    }

    pub fn label_names(&self) -> Vec<String> {
        let meta = self.meta.read();
        meta.index
            .label_names(&meta.symbols)
            .map(str::to_string)
            .collect()
    }

    pub fn label_values(&self, name: &str) -> Vec<String> {
        let meta = self.meta.read();
        meta.index
            .label_values(&meta.symbols, name)
            .map(str::to_string)
            .collect()
    }

    /// Takes every sample older than `boundary` out of the head, as chunks
    /// per series sorted by labels, and forgets series left empty.
    pub fn drain_before(&self, boundary: i64) -> Vec<DrainedSeries> {
        let handles: Vec<(SeriesId, Arc<MemSeries>)> = {
            let series = self.series.read();
            series
                .iter()
                .enumerate()
                .filter_map(|(i, s)| Some((i as SeriesId, s.clone()?)))
                .collect()
        };
        let mut out = Vec::new();
        let mut dead = Vec::new();
        let mut new_min = i64::MAX;
        for (id, s) in &handles {
            let mut d = s.data.lock();
            let chunks = drain_series(&mut d, boundary);
            let empty = d.is_empty();
            if let Some(t) = series_min_time(&d) {
                new_min = new_min.min(t);
            }
            drop(d);
            if empty {
                dead.push(*id);
            }
            if !chunks.is_empty() {
                out.push((s.clone(), chunks));
            }
        }
        self.min_t.store(new_min, Ordering::Release);
        let mut drained: Vec<DrainedSeries> = {
            let meta = self.meta.read();
            out.into_iter()
                .map(|(s, chunks)| DrainedSeries {
                    labels: labels_from_symbols(&meta.symbols, &s.labels),
                    chunks,
                })
                .collect()
        };
        drained.sort_by(|a, b| cmp_labels(&a.labels, &b.labels));
        self.forget(&dead);
        drained
    }

    /// Removes series that hold no samples, unless a sample arrived since.
    fn forget(&self, ids: &[SeriesId]) {
        if ids.is_empty() {
            return;
        }
        let mut meta = self.meta.write();
        let mut series = self.series.write();
        let mut gone = std::collections::HashSet::new();
        let mut scratch = Vec::new();
        for &id in ids {
            let Some(s) = series.get(id as usize).and_then(|s| s.clone()) else {
                continue;
            };
            let d = s.data.lock();
            if d.max_t.is_some() && !d.is_empty() {
                continue;
            }
            drop(d);
            let pairs = s
                .labels
                .chunks_exact(2)
                .map(|p| (meta.symbols.get(p[0]), meta.symbols.get(p[1])));
            let hash = hash_labels(pairs, &mut scratch);
            if meta.by_hash.get(&hash) == Some(&id) {
                meta.by_hash.remove(&hash);
                if let Some(mut rest) = meta.collisions.remove(&hash)
                    && let Some(first) = rest.pop()
                {
                    meta.by_hash.insert(hash, first);
                    if !rest.is_empty() {
                        meta.collisions.insert(hash, rest);
                    }
                }
            } else if let Some(list) = meta.collisions.get_mut(&hash) {
                list.retain(|&x| x != id);
            }
            series[id as usize] = None;
            gone.insert(id);
        }
        meta.index.remove_where(|id| gone.contains(&id));
        // Symbols are kept: they are few, shared, and rebuilt at restart.
    }
}

pub fn cmp_labels(a: &Labels, b: &Labels) -> std::cmp::Ordering {
    a.iter()
        .map(|l| (l.name.as_str(), l.value.as_str()))
        .cmp(b.iter().map(|l| (l.name.as_str(), l.value.as_str())))
}

fn series_min_time(d: &SeriesData) -> Option<i64> {
    let mut m = d.closed().first().map(|c| c.min_t);
    if !d.open.is_empty() {
        m = Some(m.map_or(d.open.min_time(), |x| x.min(d.open.min_time())));
    }
    if let Some(&(t, _)) = d.ooo().first() {
        m = Some(m.map_or(t, |x| x.min(t)));
    }
    m
}

fn append_locked(d: &mut SeriesData, t: i64, v: f64, min_valid: i64, range: i64) -> AppendResult {
    match d.max_t {
        Some(max) if t == max => {
            if d.open.is_empty() {
                // The newest sample was drained into a block; treat as old.
                return ooo_insert(d, t, v);
            }
            same_value(d.open.last_value(), v)
        }
        Some(max) if t < max => {
            if t < min_valid {
                return AppendResult::TooOld;
            }
            if let Some(existing) = find_in_chunks(d, t) {
                return same_value(existing, v);
            }
            ooo_insert(d, t, v)
        }
        _ => {
            if !d.open.is_empty()
                && (d.open.is_full() || t >= boundary_after(d.open.min_time(), range))
            {
                let full = std::mem::take(&mut d.open);
                d.push_closed(ClosedChunk::from_appender(full));
            }
            if d.open.is_empty() && d.max_t.is_none() && t < min_valid {
                return AppendResult::TooOld;
            }
            d.open.append(t, v);
            d.max_t = Some(t);
            AppendResult::Appended
        }
    }
}

fn same_value(existing: f64, v: f64) -> AppendResult {
    if existing.to_bits() == v.to_bits() {
        AppendResult::Duplicate
    } else {
        AppendResult::Conflict
    }
}

fn ooo_insert(d: &mut SeriesData, t: i64, v: f64) -> AppendResult {
    match d.ooo().binary_search_by_key(&t, |s| s.0) {
        Ok(i) => same_value(d.ooo()[i].1, v),
        Err(i) => {
            d.older_mut().ooo.insert(i, (t, v));
            AppendResult::Appended
        }
    }
}

fn find_in_chunks(d: &SeriesData, t: i64) -> Option<f64> {
    let mut buf = Vec::new();
    for c in d.closed() {
        if c.min_t <= t && t <= c.max_t {
            let _ = chunk::decode_into(&c.bytes, t, t, &mut buf);
        }
    }
    if buf.is_empty() && !d.open.is_empty() && d.open.min_time() <= t && t <= d.open.max_time() {
        let _ = chunk::decode_into(d.open.bytes(), t, t, &mut buf);
    }
    buf.first().map(|s| s.1)
}

fn drain_series(d: &mut SeriesData, boundary: i64) -> Vec<ClosedChunk> {
    let (mut closed, mut ooo) = match d.older.take() {
        Some(o) => {
            let Older { closed, ooo } = *o;
            (closed.into_vec(), ooo)
        }
        None => (Vec::new(), Vec::new()),
    };
    let mut out: Vec<ClosedChunk> = Vec::new();
    let keep_from = closed.partition_point(|c| c.max_t < boundary);
    out.extend(closed.drain(..keep_from));
    // A chunk straddles the boundary only when the boundary is not aligned
    // to the block range (an explicit cut); split it.
    let mut early: Vec<(i64, f64)> = Vec::new();
    if closed.first().is_some_and(|c| c.min_t < boundary) {
        let c = closed.remove(0);
        let mut all = Vec::new();
        let _ = chunk::decode_into(&c.bytes, i64::MIN, i64::MAX, &mut all);
        let split = all.partition_point(|s| s.0 < boundary);
        early.extend_from_slice(&all[..split]);
        let rest = &all[split..];
        if !rest.is_empty() {
            closed.insert(0, chunk::encode(rest));
        }
    }
    if !d.open.is_empty() && d.open.min_time() < boundary {
        let open = std::mem::take(&mut d.open);
        if open.max_time() < boundary {
            out.push(ClosedChunk::from_appender(open));
        } else {
            let mut all = Vec::new();
            let _ = chunk::decode_into(open.bytes(), i64::MIN, i64::MAX, &mut all);
            let split = all.partition_point(|s| s.0 < boundary);
            early.extend_from_slice(&all[..split]);
            for &(t, v) in &all[split..] {
                d.open.append(t, v);
            }
        }
    }
    let split = ooo.partition_point(|s| s.0 < boundary);
    if split > 0 || !early.is_empty() {
        let mut extra: Vec<(i64, f64)> = ooo.drain(..split).collect();
        if !early.is_empty() {
            let prev = std::mem::take(&mut extra);
            merge_sorted(&early, &prev, &mut extra);
        }
        let mut in_order = Vec::new();
        for c in &out {
            let _ = chunk::decode_into(&c.bytes, i64::MIN, i64::MAX, &mut in_order);
        }
        let mut merged = Vec::with_capacity(in_order.len() + extra.len());
        merge_sorted(&in_order, &extra, &mut merged);
        out = chunk::encode_all(&merged);
    }
    if !(closed.is_empty() && ooo.is_empty()) {
        ooo.shrink_to_fit();
        d.older = Some(Box::new(Older {
            closed: closed.into_boxed_slice(),
            ooo,
        }));
    }
    out
}

/// Merges two sorted runs; on equal timestamps the first run wins.
pub fn merge_sorted(a: &[(i64, f64)], b: &[(i64, f64)], out: &mut Vec<(i64, f64)>) {
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match a[i].0.cmp(&b[j].0) {
            std::cmp::Ordering::Less => {
                out.push(a[i]);
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                out.push(b[j]);
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000;

    fn series(head: &Head, pairs: &[(&str, &str)]) -> Arc<MemSeries> {
        let mut scratch = Vec::new();
        let hash = hash_labels(pairs.iter().copied(), &mut scratch);
        let ids = head.get_or_create(&[(hash, pairs.iter().copied())], |_| {});
        head.handles(&ids)[0].clone().unwrap()
    }

    fn all(head: &Head, s: &MemSeries) -> Vec<(i64, f64)> {
        let mut out = Vec::new();
        head.samples(s, i64::MIN, i64::MAX, &mut out);
        out
    }

    #[test]
    fn a_series_fits_a_128_byte_allocation() {
        // The Arc's two counts plus the series: the size class most of a
        // head's memory goes to. Growing past it costs 64 bytes a series.
        assert!(
            2 * std::mem::size_of::<usize>() + std::mem::size_of::<MemSeries>() <= 128,
            "MemSeries is {} bytes",
            std::mem::size_of::<MemSeries>()
        );
    }

    #[test]
    fn in_order_duplicates_and_late_samples() {
        let head = Head::new(2 * H);
        let s = series(&head, &[("__name__", "up"), ("job", "a")]);
        for t in (0..300).map(|i| i * 10_000) {
            assert_eq!(
                head.append(&s, t, t as f64, i64::MIN),
                AppendResult::Appended
            );
        }
        assert_eq!(
            head.append(&s, 2_990_000, 2_990_000.0, i64::MIN),
            AppendResult::Duplicate
        );
        assert_eq!(
            head.append(&s, 50_000, 50_000.0, i64::MIN),
            AppendResult::Duplicate
        );
        assert_eq!(
            head.append(&s, 50_000, 1.0, i64::MIN),
            AppendResult::Conflict
        );
        assert_eq!(
            head.append(&s, 55_000, 7.0, i64::MIN),
            AppendResult::Appended
        );
        assert_eq!(
            head.append(&s, 55_000, 7.0, i64::MIN),
            AppendResult::Duplicate
        );
        assert_eq!(head.append(&s, 1_000, 7.0, 2_000), AppendResult::TooOld);
        let got = all(&head, &s);
        assert_eq!(got.len(), 301);
        assert!(got.windows(2).all(|w| w[0].0 < w[1].0));
        assert_eq!(got[6], (55_000, 7.0));
    }

    #[test]
    fn draining_splits_at_the_boundary_and_forgets_empty_series() {
        let head = Head::new(2 * H);
        let a = series(&head, &[("__name__", "a")]);
        let b = series(&head, &[("__name__", "b")]);
        for i in 0..1000 {
            let t = i * 10_000; // 0 .. 2h46m
            head.append(&a, t, 1.0, i64::MIN);
            if t < H {
                head.append(&b, t, 2.0, i64::MIN);
            }
        }
        head.append(&b, 100, 5.0, i64::MIN); // out of order, still before the boundary
        let drained = head.drain_before(2 * H);
        assert_eq!(drained.len(), 2);
        let count = |d: &DrainedSeries| {
            let mut v = Vec::new();
            for c in &d.chunks {
                chunk::decode_into(&c.bytes, i64::MIN, i64::MAX, &mut v).unwrap();
            }
            v
        };
        assert_eq!(count(&drained[0]).len(), 720);
        let bs = count(&drained[1]);
        assert_eq!(bs.len(), 361);
        assert_eq!(bs[1], (100, 5.0));
        assert_eq!(all(&head, &a).len(), 280);
        assert_eq!(
            head.series_count(),
            1,
            "b had nothing left and is forgotten"
        );
        assert_eq!(head.min_time(), Some(2 * H));
        assert!(
            head.select_ids(&[Matcher::equal("__name__", "b")])
                .is_empty()
        );
    }
}

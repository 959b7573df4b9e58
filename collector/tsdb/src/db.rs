//! The store: head, write-ahead log and blocks behind one append path and
//! one [`Querier`].
//!
//! Append order, and why: labels are normalized; series are looked up, and
//! missing ones created with their WAL series record queued while the index
//! lock is held (so no other append can log a sample for a series whose
//! record is not yet queued); samples go into the head, which decides what
//! is new; the new samples are queued in the WAL; the call returns once the
//! syncer has fsynced them. Only then does the HTTP layer answer 2xx.
//!
//! Maintenance (called periodically): cut a block from the head once it
//! spans 1.5 block ranges, checkpoint the WAL, compact blocks, apply
//! retention.

use std::collections::HashMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use lookout_protocol::model::Labels;
use lookout_protocol::remote_write::{self, TimeSeries};
use parking_lot::{Mutex, RwLock};

use crate::block::{self, Block, BlockError, BlockMeta};
use crate::head::{self, AppendResult, Head, cmp_labels, hash_labels, merge_sorted};
use crate::index::{Matcher, SeriesId};
use crate::wal::{self, Record, Wal, WalError};

/// Milliseconds in an hour, for option defaults.
pub const HOUR_MS: i64 = 3_600_000;

#[derive(Clone, Debug)]
pub struct Options {
    /// Time span of a block cut from the head.
    pub block_range_ms: i64,
    /// How far behind the newest sample a sample may arrive and still land.
    pub out_of_order_window_ms: i64,
    /// Blocks whose newest sample is older than this (behind the newest
    /// data) are deleted. 0 keeps everything.
    pub retention_ms: i64,
    /// Oldest blocks are deleted while blocks and WAL together exceed this.
    /// 0 means no size limit.
    pub retention_bytes: u64,
    /// A WAL segment is closed past this size.
    pub wal_segment_bytes: u64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            block_range_ms: 2 * HOUR_MS,
            out_of_order_window_ms: HOUR_MS,
            retention_ms: 15 * 24 * HOUR_MS,
            retention_bytes: 0,
            wal_segment_bytes: 128 << 20,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Wal(#[from] WalError),
    #[error(transparent)]
    Block(#[from] BlockError),
    #[error("storage directory {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("storage directory {0} is in use by another process")]
    Locked(PathBuf),
    #[error("invalid option: {0}")]
    Options(String),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What one append did with its input.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AppendReport {
    pub samples_appended: u64,
    pub duplicates: u64,
    pub conflicts: u64,
    pub too_old: u64,
    pub series_created: u64,
    /// Series refused for their labels, with the first reason.
    pub invalid_series: u64,
    pub first_invalid: Option<String>,
}

/// Counters since open, for self-metrics.
#[derive(Default)]
pub struct Stats {
    pub samples_appended: AtomicU64,
    pub duplicates: AtomicU64,
    pub conflicts: AtomicU64,
    pub too_old: AtomicU64,
    pub invalid_series: AtomicU64,
    pub series_created: AtomicU64,
    pub appends: AtomicU64,
    pub replayed_samples: AtomicU64,
    pub wal_corrupt_records: AtomicU64,
    pub blocks_cut: AtomicU64,
    pub compactions: AtomicU64,
    pub blocks_deleted: AtomicU64,
    pub maintenance_failures: AtomicU64,
}

/// One series with its samples in the asked range.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub labels: Labels,
    pub samples: Vec<(i64, f64)>,
}

/// Read access to stored series: what the query engine and the read API use.
pub trait Querier: Send + Sync {
    /// Series matching every matcher with samples in `[mint, maxt]`, sorted
    /// by labels, samples sorted by time, one per timestamp.
    fn select(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Result<Vec<Series>, Error>;

    /// Label sets of the series `select` would return.
    fn series(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Result<Vec<Labels>, Error> {
        Ok(self
            .select(matchers, mint, maxt)?
            .into_iter()
            .map(|s| s.labels)
            .collect())
    }

    /// Sorted label names; with matchers, only those of matching series.
    fn label_names(&self, matchers: &[Matcher], mint: i64, maxt: i64)
    -> Result<Vec<String>, Error>;

    /// Sorted values of one label; with matchers, only of matching series.
    fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<String>, Error>;
}

pub struct Db {
    dir: PathBuf,
    opts: Options,
    head: Head,
    wal: Wal,
    blocks: RwLock<Vec<Arc<Block>>>,
    /// Appends hold it shared from head insert to WAL queueing; a block cut
    /// holds it exclusively to rotate the WAL between whole appends.
    barrier: RwLock<()>,
    maintenance: Mutex<()>,
    stats: Stats,
    _lock: File,
}

/// What maintenance did.
#[derive(Debug, Default, Clone)]
pub struct MaintenanceReport {
    pub blocks_cut: Vec<BlockMeta>,
    pub compacted: Vec<BlockMeta>,
    pub deleted: Vec<String>,
}

impl Db {
    pub fn open(dir: &Path, opts: Options) -> Result<Db, Error> {
        if opts.block_range_ms < 60_000 {
            return Err(Error::Options("block range must be at least 1m".into()));
        }
        if opts.out_of_order_window_ms < 0 || opts.out_of_order_window_ms > opts.block_range_ms * 4
        {
            return Err(Error::Options(
                "out-of-order window must be between 0 and four block ranges".into(),
            ));
        }
        let blocks_dir = dir.join("blocks");
        let wal_dir = dir.join("wal");
        for d in [dir, &blocks_dir, &wal_dir] {
            fs::create_dir_all(d).map_err(io_err(d))?;
        }
        let lock = lock_dir(dir)?;
        let started = Instant::now();
        let blocks = load_blocks(&blocks_dir)?;
        let head = Head::new(opts.block_range_ms);
        let stats = Stats::default();
        let last_segment = replay(&wal_dir, &head, &stats)?;
        let wal = Wal::open(&wal_dir, last_segment, opts.wal_segment_bytes)?;
        tracing::info!(
            dir = %dir.display(),
            blocks = blocks.len(),
            head_series = head.series_count(),
            replayed_samples = stats.replayed_samples.load(Ordering::Relaxed),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "storage opened"
        );
        Ok(Db {
            dir: dir.to_path_buf(),
            opts,
            head,
            wal,
            blocks: RwLock::new(blocks),
            barrier: RwLock::new(()),
            maintenance: Mutex::new(()),
            stats,
            _lock: lock,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    pub fn head(&self) -> &Head {
        &self.head
    }

    pub fn blocks(&self) -> Vec<Arc<Block>> {
        self.blocks.read().clone()
    }

    /// Stores a batch of series and returns once the new samples are
    /// durable. Series with unusable labels are skipped and reported.
    pub fn append(&self, series: &mut [TimeSeries]) -> Result<AppendReport, Error> {
        let mut report = AppendReport::default();
        let mut scratch = Vec::with_capacity(256);
        let mut wanted: Vec<(u64, usize)> = Vec::with_capacity(series.len());
        for (i, ts) in series.iter_mut().enumerate() {
            if ts.samples.is_empty() {
                continue;
            }
            if let Err(e) = remote_write::normalize_labels(&mut ts.labels) {
                report.invalid_series += 1;
                if report.first_invalid.is_none() {
                    report.first_invalid = Some(e.to_string());
                }
                continue;
            }
            let hash = hash_labels(pairs(ts), &mut scratch);
            wanted.push((hash, i));
        }

        let seq;
        {
            let _barrier = self.barrier.read();
            let mut ids: Vec<Option<SeriesId>> = wanted
                .iter()
                .map(|&(hash, i)| self.head.lookup(hash, pairs(&series[i])))
                .collect();
            let missing: Vec<usize> = (0..ids.len()).filter(|&k| ids[k].is_none()).collect();
            if !missing.is_empty() {
                let request: Vec<_> = missing
                    .iter()
                    .map(|&k| (wanted[k].0, pairs(&series[wanted[k].1])))
                    .collect();
                let mut wal_err = None;
                let created_ids = self.head.get_or_create(&request, |created| {
                    let mut buf = Vec::new();
                    let label_lists: Vec<Vec<(&str, &str)>> = created
                        .iter()
                        .map(|&(_, r)| pairs(&series[wanted[missing[r]].1]).collect())
                        .collect();
                    wal::encode_series(
                        &mut buf,
                        created
                            .iter()
                            .zip(&label_lists)
                            .map(|(&(id, _), l)| (id, l.as_slice())),
                    );
                    if let Err(e) = self.wal.submit(&buf) {
                        wal_err = Some(e);
                    }
                    report.series_created += created.len() as u64;
                });
                if let Some(e) = wal_err {
                    return Err(e.into());
                }
                for (n, &k) in missing.iter().enumerate() {
                    ids[k] = Some(created_ids[n]);
                }
            }
            let ids: Vec<SeriesId> = ids.into_iter().flatten().collect();
            let handles = self.head.handles(&ids);
            let min_valid = self.head.max_time().map_or(i64::MIN, |m| {
                m.saturating_sub(self.opts.out_of_order_window_ms)
            });
            let mut logged: Vec<(SeriesId, i64, f64)> = Vec::with_capacity(series.len());
            for (k, handle) in handles.iter().enumerate() {
                let Some(handle) = handle else { continue };
                let ts = &series[wanted[k].1];
                for s in &ts.samples {
                    match self.head.append(handle, s.timestamp, s.value, min_valid) {
                        AppendResult::Appended => logged.push((ids[k], s.timestamp, s.value)),
                        AppendResult::Duplicate => report.duplicates += 1,
                        AppendResult::Conflict => report.conflicts += 1,
                        AppendResult::TooOld => report.too_old += 1,
                    }
                }
            }
            report.samples_appended = logged.len() as u64;
            let mut buf = Vec::with_capacity(logged.len() * 12 + 16);
            wal::encode_samples(&mut buf, &logged);
            seq = if buf.is_empty() {
                None
            } else {
                Some(self.wal.submit(&buf)?)
            };
        }
        // Series records were queued before the samples, so waiting for the
        // samples covers them; a batch of only duplicates still waits for
        // its own series records, if any.
        match seq {
            Some(seq) => self.wal.wait(seq)?,
            None if report.series_created > 0 => {
                let seq = self.wal.submit(&[])?;
                self.wal.wait(seq)?;
            }
            None => {}
        }
        let st = &self.stats;
        st.appends.fetch_add(1, Ordering::Relaxed);
        st.samples_appended
            .fetch_add(report.samples_appended, Ordering::Relaxed);
        st.duplicates
            .fetch_add(report.duplicates, Ordering::Relaxed);
        st.conflicts.fetch_add(report.conflicts, Ordering::Relaxed);
        st.too_old.fetch_add(report.too_old, Ordering::Relaxed);
        st.invalid_series
            .fetch_add(report.invalid_series, Ordering::Relaxed);
        st.series_created
            .fetch_add(report.series_created, Ordering::Relaxed);
        Ok(report)
    }

    /// Cuts blocks, compacts and applies retention as due.
    pub fn maintain(&self) -> Result<MaintenanceReport, Error> {
        let _one = self.maintenance.lock();
        let mut report = MaintenanceReport::default();
        let result = (|| {
            while let Some(boundary) = self.cut_boundary() {
                report.blocks_cut.push(self.cut(boundary)?);
            }
            report.compacted = self.compact()?;
            report.deleted = self.apply_retention()?;
            Ok::<(), Error>(())
        })();
        if let Err(e) = result {
            self.stats
                .maintenance_failures
                .fetch_add(1, Ordering::Relaxed);
            return Err(e);
        }
        Ok(report)
    }

    /// Writes everything in the head older than `boundary` into a block now
    /// (tests and shutdown use it; maintenance picks its own boundary).
    pub fn cut_before(&self, boundary: i64) -> Result<Option<BlockMeta>, Error> {
        let _one = self.maintenance.lock();
        match self.head.min_time() {
            Some(min) if min < boundary => Ok(Some(self.cut(boundary)?)),
            _ => Ok(None),
        }
    }

    fn cut_boundary(&self) -> Option<i64> {
        let (min, max) = (self.head.min_time()?, self.head.max_time()?);
        let range = self.opts.block_range_ms;
        if max - min <= range * 3 / 2 {
            return None;
        }
        Some((min.div_euclid(range) + 1) * range)
    }

    fn cut(&self, boundary: i64) -> Result<BlockMeta, Error> {
        let started = Instant::now();
        let segment = {
            let _exclusive = self.barrier.write();
            self.wal.rotate()?
        };
        let drained = self.head.drain_before(boundary);
        let blocks_dir = self.dir.join("blocks");
        let id = block::new_block_id();
        let meta = if drained.is_empty() {
            BlockMeta {
                id,
                min_time: 0,
                max_time: 0,
                num_series: 0,
                num_samples: 0,
                num_chunks: 0,
                level: 1,
                sources: Vec::new(),
            }
        } else {
            let meta = block::write_block(
                &blocks_dir,
                drained.into_iter().map(|d| (d.labels, d.chunks)),
                1,
                vec![id.clone()],
                Some(id),
            )?;
            let opened = Arc::new(Block::open(&blocks_dir.join(&meta.id))?);
            let mut blocks = self.blocks.write();
            blocks.push(opened);
            blocks.sort_by_key(|b| (b.meta.min_time, b.meta.max_time));
            meta
        };
        self.checkpoint(segment, boundary)?;
        self.stats.blocks_cut.fetch_add(1, Ordering::Relaxed);
        tracing::info!(
            block = %meta.id,
            series = meta.num_series,
            samples = meta.num_samples,
            boundary,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "cut block from head"
        );
        Ok(meta)
    }

    /// Replaces WAL files below `segment` with a checkpoint holding the
    /// series still in the head and the samples at or after `boundary`.
    fn checkpoint(&self, segment: u64, boundary: i64) -> Result<(), Error> {
        let wal_dir = self.dir.join("wal");
        let mut sources: Vec<PathBuf> = Vec::new();
        if let Some((n, path)) = wal::latest_checkpoint(&wal_dir)?
            && n < segment
        {
            sources.push(path);
        }
        for s in wal::list_segments(&wal_dir)? {
            if s < segment {
                sources.push(wal_dir.join(wal::segment_name(s)));
            }
        }
        let live: std::collections::HashSet<SeriesId> =
            self.head.select_ids(&[]).into_iter().collect();
        let mut out = Vec::new();
        for path in &sources {
            wal::read_file(path, false, |record| match record {
                Record::Series(list) => {
                    let kept: Vec<(SeriesId, Vec<(&str, &str)>)> = list
                        .iter()
                        .filter(|(id, _)| live.contains(id))
                        .map(|(id, l)| {
                            (
                                *id,
                                l.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect(),
                            )
                        })
                        .collect();
                    if !kept.is_empty() {
                        wal::encode_series(
                            &mut out,
                            kept.iter().map(|(id, l)| (*id, l.as_slice())),
                        );
                    }
                }
                Record::Samples(list) => {
                    let kept: Vec<_> = list
                        .into_iter()
                        .filter(|(id, t, _)| *t >= boundary && live.contains(id))
                        .collect();
                    wal::encode_samples(&mut out, &kept);
                }
            })?;
        }
        wal::write_checkpoint(&wal_dir, segment, &out)?;
        wal::remove_before(&wal_dir, segment)?;
        Ok(())
    }

    fn compact(&self) -> Result<Vec<BlockMeta>, Error> {
        let mut done = Vec::new();
        while let Some(group) = self.plan_compaction() {
            done.push(self.merge_blocks(&group)?);
        }
        Ok(done)
    }

    /// Picks blocks to merge: any overlapping ones first; then blocks that
    /// fill an aligned window of 3 or 9 block ranges the head has passed.
    fn plan_compaction(&self) -> Option<Vec<Arc<Block>>> {
        let blocks = self.blocks.read().clone();
        for pair in blocks.windows(2) {
            if pair[1].meta.min_time <= pair[0].meta.max_time {
                let lo = pair[0].meta.min_time;
                let mut hi = pair[0].meta.max_time.max(pair[1].meta.max_time);
                let mut group: Vec<Arc<Block>> = Vec::new();
                for b in &blocks {
                    if b.meta.min_time >= lo && b.meta.min_time <= hi {
                        hi = hi.max(b.meta.max_time);
                        group.push(b.clone());
                    }
                }
                return Some(group);
            }
        }
        let head_min = self.head.min_time().unwrap_or(i64::MAX);
        let range = self.opts.block_range_ms;
        let limit = if self.opts.retention_ms > 0 {
            self.opts.retention_ms / 10
        } else {
            i64::MAX
        };
        for window in [range * 3, range * 9] {
            if window > limit.max(range * 3) {
                break;
            }
            let mut by_window: HashMap<i64, Vec<Arc<Block>>> = HashMap::new();
            for b in &blocks {
                let w = b.meta.min_time.div_euclid(window);
                if b.meta.max_time.div_euclid(window) == w {
                    by_window.entry(w).or_default().push(b.clone());
                }
            }
            let mut candidates: Vec<(i64, Vec<Arc<Block>>)> = by_window
                .into_iter()
                .filter(|(w, g)| g.len() > 1 && (w + 1) * window <= head_min)
                .collect();
            candidates.sort_by_key(|(w, _)| *w);
            if let Some((_, group)) = candidates.into_iter().next() {
                return Some(group);
            }
        }
        None
    }

    fn merge_blocks(&self, group: &[Arc<Block>]) -> Result<BlockMeta, Error> {
        let started = Instant::now();
        let blocks_dir = self.dir.join("blocks");
        let mut sources: Vec<String> = group.iter().flat_map(|b| b.meta.sources.clone()).collect();
        sources.sort();
        sources.dedup();
        let level = group.iter().map(|b| b.meta.level).max().unwrap_or(1) + 1;
        let merged = merge_series(group)?;
        let meta = block::write_block(&blocks_dir, merged.into_iter(), level, sources, None)?;
        let new_block = Arc::new(Block::open(&blocks_dir.join(&meta.id))?);
        {
            let mut blocks = self.blocks.write();
            blocks.retain(|b| !group.iter().any(|g| Arc::ptr_eq(b, g)));
            blocks.push(new_block);
            blocks.sort_by_key(|b| (b.meta.min_time, b.meta.max_time));
        }
        for b in group {
            fs::remove_dir_all(&b.dir).map_err(io_err(&b.dir))?;
        }
        self.stats.compactions.fetch_add(1, Ordering::Relaxed);
        tracing::info!(
            block = %meta.id,
            merged = group.len(),
            level,
            samples = meta.num_samples,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "compacted blocks"
        );
        Ok(meta)
    }

    fn apply_retention(&self) -> Result<Vec<String>, Error> {
        let blocks = self.blocks.read().clone();
        let newest = blocks
            .iter()
            .map(|b| b.meta.max_time)
            .chain(self.head.max_time())
            .max()
            .unwrap_or(i64::MIN);
        let mut doomed: Vec<Arc<Block>> = Vec::new();
        if self.opts.retention_ms > 0 {
            for b in &blocks {
                if b.meta.max_time < newest.saturating_sub(self.opts.retention_ms) {
                    doomed.push(b.clone());
                }
            }
        }
        if self.opts.retention_bytes > 0 {
            let wal_bytes = dir_bytes(&self.dir.join("wal"));
            let mut total: u64 = wal_bytes + blocks.iter().map(|b| b.size_bytes).sum::<u64>();
            for b in &blocks {
                if total <= self.opts.retention_bytes {
                    break;
                }
                if !doomed.iter().any(|d| Arc::ptr_eq(d, b)) {
                    doomed.push(b.clone());
                }
                total = total.saturating_sub(b.size_bytes);
            }
        }
        if doomed.is_empty() {
            return Ok(Vec::new());
        }
        self.blocks
            .write()
            .retain(|b| !doomed.iter().any(|d| Arc::ptr_eq(b, d)));
        let mut ids = Vec::new();
        for b in doomed {
            fs::remove_dir_all(&b.dir).map_err(io_err(&b.dir))?;
            tracing::info!(block = %b.meta.id, max_time = b.meta.max_time, "retention deleted block");
            self.stats.blocks_deleted.fetch_add(1, Ordering::Relaxed);
            ids.push(b.meta.id.clone());
        }
        Ok(ids)
    }

    /// Bytes on disk: blocks and WAL.
    pub fn disk_bytes(&self) -> u64 {
        dir_bytes(&self.dir.join("wal"))
            + self.blocks.read().iter().map(|b| b.size_bytes).sum::<u64>()
    }

    /// Stops the WAL syncer after writing what is pending.
    pub fn close(&self) {
        self.wal.close();
    }
}

fn pairs(ts: &TimeSeries) -> impl Iterator<Item = (&str, &str)> + Clone {
    ts.labels
        .iter()
        .map(|l| (l.name.as_str(), l.value.as_str()))
}

fn dir_bytes(dir: &Path) -> u64 {
    fs::read_dir(dir)
        .map(|it| {
            it.flatten()
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

fn lock_dir(dir: &Path) -> Result<File, Error> {
    use std::os::fd::AsRawFd;
    let path = dir.join("lock");
    let f = File::create(&path).map_err(io_err(&path))?;
    // Safety: flock on a descriptor we own.
    let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        return Err(Error::Locked(dir.to_path_buf()));
    }
    Ok(f)
}

fn load_blocks(dir: &Path) -> Result<Vec<Arc<Block>>, Error> {
    let mut blocks = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().to_string();
        if name.ends_with(".tmp") {
            tracing::warn!(path = %path.display(), "removing a block left half-written by a crash");
            fs::remove_dir_all(&path).map_err(io_err(&path))?;
            continue;
        }
        if !path.is_dir() || name.ends_with(".damaged") {
            continue;
        }
        match Block::open(&path) {
            Ok(b) => blocks.push(Arc::new(b)),
            Err(e) => {
                let aside = dir.join(format!("{name}.damaged"));
                tracing::error!(error = %e, moved_to = %aside.display(), "block cannot be read; set aside");
                fs::rename(&path, &aside).map_err(io_err(&path))?;
            }
        }
    }
    // A compaction that crashed after writing its result but before
    // deleting its inputs leaves blocks whose sources another covers.
    let covered: Vec<usize> = (0..blocks.len())
        .filter(|&i| {
            blocks.iter().enumerate().any(|(j, other)| {
                j != i
                    && other.meta.sources.len() > blocks[i].meta.sources.len()
                    && blocks[i]
                        .meta
                        .sources
                        .iter()
                        .all(|s| other.meta.sources.contains(s))
            })
        })
        .collect();
    for &i in covered.iter().rev() {
        let b = blocks.remove(i);
        tracing::warn!(block = %b.meta.id, "removing a block already merged into another");
        fs::remove_dir_all(&b.dir).map_err(io_err(&b.dir))?;
    }
    blocks.sort_by_key(|b| (b.meta.min_time, b.meta.max_time));
    Ok(blocks)
}

/// Replays checkpoint and segments into the head; returns the newest
/// segment number (0 when the log is empty).
fn replay(dir: &Path, head: &Head, stats: &Stats) -> Result<u64, Error> {
    let checkpoint = wal::latest_checkpoint(dir)?;
    let first = checkpoint.as_ref().map_or(0, |(n, _)| *n);
    let mut apply = |record: Record| match record {
        Record::Series(list) => {
            for (id, labels) in &list {
                head.restore(*id, labels.iter().map(|(n, v)| (n.as_str(), v.as_str())));
            }
        }
        Record::Samples(list) => {
            let ids: Vec<SeriesId> = list.iter().map(|s| s.0).collect();
            let handles = head.handles(&ids);
            let mut n = 0;
            for (h, (_, t, v)) in handles.iter().zip(&list) {
                if let Some(h) = h
                    && head.append(h, *t, *v, i64::MIN) == AppendResult::Appended
                {
                    n += 1;
                }
            }
            stats.replayed_samples.fetch_add(n, Ordering::Relaxed);
        }
    };
    if let Some((_, path)) = &checkpoint {
        let r = wal::read_file(path, false, &mut apply)?;
        stats
            .wal_corrupt_records
            .fetch_add(r.corrupt, Ordering::Relaxed);
    }
    let segments: Vec<u64> = wal::list_segments(dir)?
        .into_iter()
        .filter(|&s| s >= first)
        .collect();
    for (i, &s) in segments.iter().enumerate() {
        let path = dir.join(wal::segment_name(s));
        let last = i + 1 == segments.len();
        let r = wal::read_file(&path, last, &mut apply)?;
        if r.corrupt > 0 || (r.torn_bytes > 0 && !last) {
            tracing::error!(
                segment = %path.display(),
                damaged_bytes = r.torn_bytes,
                "write-ahead log segment is damaged; its remaining records are skipped"
            );
            stats
                .wal_corrupt_records
                .fetch_add(r.corrupt.max(1), Ordering::Relaxed);
        } else if r.torn_bytes > 0 {
            tracing::warn!(
                segment = %path.display(),
                bytes = r.torn_bytes,
                "cut a torn write from the end of the write-ahead log (an unacknowledged append)"
            );
        }
    }
    let last = segments.last().copied().unwrap_or(0).max(first);
    Ok(last)
}

/// Merges the series of several blocks, in label order; chunks are copied
/// when they do not overlap, re-encoded when they do.
fn merge_series(group: &[Arc<Block>]) -> Result<Vec<(Labels, Vec<head::ClosedChunk>)>, Error> {
    let mut group: Vec<Arc<Block>> = group.to_vec();
    // Older blocks first, so that on a timestamp conflict the first value wins.
    group.sort_by(|a, b| a.age_key().cmp(b.age_key()));
    let mut all: Vec<(Labels, usize, SeriesId)> = Vec::new();
    for (bi, b) in group.iter().enumerate() {
        for id in b.select_ids(&[]) {
            all.push((b.labels(id), bi, id));
        }
    }
    all.sort_by(|a, b| cmp_labels(&a.0, &b.0).then(a.1.cmp(&b.1)));
    let mut out = Vec::new();
    let mut i = 0;
    while i < all.len() {
        let mut j = i + 1;
        while j < all.len() && all[j].0 == all[i].0 {
            j += 1;
        }
        let mut chunks: Vec<head::ClosedChunk> = Vec::new();
        for (_, bi, id) in &all[i..j] {
            chunks.extend(group[*bi].raw_chunks(*id)?);
        }
        let mut by_time: Vec<(i64, i64)> = chunks.iter().map(|c| (c.min_t, c.max_t)).collect();
        by_time.sort_unstable();
        let overlapping = by_time.windows(2).any(|w| w[1].0 <= w[0].1);
        if !overlapping {
            chunks.sort_by_key(|c| c.min_t);
        } else {
            // `chunks` is in block age order here; merging keeps earlier values.
            let mut merged: Vec<(i64, f64)> = Vec::new();
            for c in &chunks {
                let mut part = Vec::new();
                let _ = crate::chunk::decode_into(&c.bytes, i64::MIN, i64::MAX, &mut part);
                let prev = std::mem::take(&mut merged);
                merge_sorted(&prev, &part, &mut merged);
            }
            chunks = crate::chunk::encode_all(&merged);
        }
        out.push((all[i].0.clone(), chunks));
        i = j;
    }
    Ok(out)
}

impl Querier for Db {
    fn select(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Result<Vec<Series>, Error> {
        let mut merged: HashMap<Labels, Vec<(i64, f64)>> = HashMap::new();
        let mut add = |labels: Labels, samples: Vec<(i64, f64)>| {
            if samples.is_empty() {
                return;
            }
            match merged.entry(labels) {
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert(samples);
                }
                std::collections::hash_map::Entry::Occupied(mut e) => {
                    let prev = std::mem::take(e.get_mut());
                    merge_sorted(&prev, &samples, e.get_mut());
                }
            }
        };
        let mut blocks: Vec<Arc<Block>> = self
            .blocks()
            .into_iter()
            .filter(|b| b.overlaps(mint, maxt))
            .collect();
        // On a timestamp conflict the value written first wins: older blocks first.
        blocks.sort_by(|a, b| a.age_key().cmp(b.age_key()));
        for b in &blocks {
            for id in b.select_ids(matchers) {
                if !b.has_data(id, mint, maxt) {
                    continue;
                }
                let mut samples = Vec::new();
                b.samples(id, mint, maxt, &mut samples)?;
                add(b.labels(id), samples);
            }
        }
        let ids = self.head.select_ids(matchers);
        if blocks.is_empty() {
            // The head holds each series once: no merging needed, which
            // spares hashing every label set of a large selection.
            let mut out: Vec<Series> = Vec::with_capacity(ids.len());
            for (labels, handle) in self.head.labels_of_ids(&ids) {
                let mut samples = Vec::new();
                self.head.samples(&handle, mint, maxt, &mut samples);
                if !samples.is_empty() {
                    out.push(Series { labels, samples });
                }
            }
            out.sort_unstable_by(|a, b| cmp_labels(&a.labels, &b.labels));
            return Ok(out);
        }
        for (labels, handle) in self.head.labels_of_ids(&ids) {
            let mut samples = Vec::new();
            self.head.samples(&handle, mint, maxt, &mut samples);
            add(labels, samples);
        }
        let mut out: Vec<Series> = merged
            .into_iter()
            .map(|(labels, samples)| Series { labels, samples })
            .collect();
        out.sort_by(|a, b| cmp_labels(&a.labels, &b.labels));
        Ok(out)
    }

    fn label_names(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<String>, Error> {
        let mut names: Vec<String> = if matchers.is_empty() {
            let mut n = self.head.label_names();
            for b in self.blocks().iter().filter(|b| b.overlaps(mint, maxt)) {
                n.extend(b.label_names().map(str::to_string));
            }
            n
        } else {
            self.series(matchers, mint, maxt)?
                .iter()
                .flat_map(|l| l.iter().map(|l| l.name.to_string()).collect::<Vec<_>>())
                .collect()
        };
        names.sort();
        names.dedup();
        Ok(names)
    }

    fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<String>, Error> {
        let mut values: Vec<String> = if matchers.is_empty() {
            let mut v = self.head.label_values(name);
            for b in self.blocks().iter().filter(|b| b.overlaps(mint, maxt)) {
                v.extend(b.label_values(name).map(str::to_string));
            }
            v
        } else {
            self.series(matchers, mint, maxt)?
                .iter()
                .filter_map(|l| l.get(name).map(str::to_string))
                .collect()
        };
        values.sort();
        values.dedup();
        Ok(values)
    }
}

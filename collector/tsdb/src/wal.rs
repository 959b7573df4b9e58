//! The write-ahead log: every accepted series and sample is written here and
//! fsynced before the push that carried it is acknowledged.
//!
//! Records go into numbered segment files (`wal/00000001`, ...). Each record
//! is framed as `len u32 LE | crc32c u32 LE | type u8 | payload`, the CRC
//! covering type and payload. A torn write at the end of the newest segment
//! is cut off at open; a damaged record elsewhere ends that segment's replay
//! and is counted.
//!
//! Group commit: appenders encode their records into a shared buffer and
//! wait; one syncer thread writes the buffer, calls `fdatasync` and wakes
//! every appender whose record that sync covered. Under load, one fsync
//! acknowledges many pushes.
//!
//! A checkpoint (`wal/checkpoint.NNNNNNNN`) replaces the segments below
//! `NNNNNNNN` once their old samples are in a block: it keeps the series
//! records still alive and the samples not yet in a block.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread;

use parking_lot::{Condvar, Mutex};

use crate::chunk::{read_uvarint, unzigzag, write_uvarint, zigzag};
use crate::index::SeriesId;

const RECORD_SERIES: u8 = 1;
const RECORD_SAMPLES: u8 = 2;
const FRAME_HEADER: usize = 9;
/// A record larger than this is damage, not data.
const MAX_RECORD: usize = 256 << 20;

#[derive(Debug, thiserror::Error)]
pub enum WalError {
    #[error("write-ahead log {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("write-ahead log is closed after an earlier write failure: {0}")]
    Failed(String),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> WalError + '_ {
    move |source| WalError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// One decoded record.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    Series(Vec<(SeriesId, Vec<(String, String)>)>),
    Samples(Vec<(SeriesId, i64, f64)>),
}

pub fn encode_series<'a>(
    out: &mut Vec<u8>,
    series: impl Iterator<Item = (SeriesId, &'a [(&'a str, &'a str)])>,
) {
    frame(out, RECORD_SERIES, |buf| {
        for (id, labels) in series {
            write_uvarint(buf, id as u64);
            write_uvarint(buf, labels.len() as u64);
            for (n, v) in labels {
                write_uvarint(buf, n.len() as u64);
                buf.extend_from_slice(n.as_bytes());
                write_uvarint(buf, v.len() as u64);
                buf.extend_from_slice(v.as_bytes());
            }
        }
    });
}

pub fn encode_samples(out: &mut Vec<u8>, samples: &[(SeriesId, i64, f64)]) {
    if samples.is_empty() {
        return;
    }
    frame(out, RECORD_SAMPLES, |buf| {
        let base = samples[0].1;
        write_uvarint(buf, zigzag(base));
        for &(id, t, v) in samples {
            write_uvarint(buf, id as u64);
            write_uvarint(buf, zigzag(t.wrapping_sub(base)));
            buf.extend_from_slice(&v.to_bits().to_le_bytes());
        }
    });
}

fn frame(out: &mut Vec<u8>, kind: u8, body: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    out.extend_from_slice(&[0; FRAME_HEADER]);
    out[start + 8] = kind;
    body(out);
    let payload_len = out.len() - start - FRAME_HEADER;
    let crc = crc32c::crc32c(&out[start + 8..]);
    out[start..start + 4].copy_from_slice(&(payload_len as u32).to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

#[derive(Debug, PartialEq, Eq)]
pub enum FrameError {
    /// The buffer ends inside the frame.
    Truncated,
    /// Checksum or structure is wrong.
    Corrupt,
}

/// Decodes one frame at the start of `buf`; returns the record and its size.
pub fn decode_frame(buf: &[u8]) -> Result<(Record, usize), FrameError> {
    if buf.len() < FRAME_HEADER {
        return Err(FrameError::Truncated);
    }
    let len = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    let crc = u32::from_le_bytes([buf[4], buf[5], buf[6], buf[7]]);
    if len > MAX_RECORD {
        return Err(FrameError::Corrupt);
    }
    let end = FRAME_HEADER + len;
    if buf.len() < end {
        return Err(FrameError::Truncated);
    }
    if crc32c::crc32c(&buf[8..end]) != crc {
        return Err(FrameError::Corrupt);
    }
    let payload = &buf[FRAME_HEADER..end];
    let record = match buf[8] {
        RECORD_SERIES => decode_series(payload),
        RECORD_SAMPLES => decode_samples(payload),
        _ => None,
    }
    .ok_or(FrameError::Corrupt)?;
    Ok((record, end))
}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn uvarint(&mut self) -> Option<u64> {
        let (v, n) = read_uvarint(&self.buf[self.pos..])?;
        self.pos += n;
        Some(v)
    }
    fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let out = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(out)
    }
    fn string(&mut self) -> Option<String> {
        let n = self.uvarint()? as usize;
        String::from_utf8(self.bytes(n)?.to_vec()).ok()
    }
    fn done(&self) -> bool {
        self.pos >= self.buf.len()
    }
}

fn decode_series(payload: &[u8]) -> Option<Record> {
    let mut c = Cursor {
        buf: payload,
        pos: 0,
    };
    let mut out = Vec::new();
    while !c.done() {
        let id = u32::try_from(c.uvarint()?).ok()?;
        let n = c.uvarint()? as usize;
        if n > 1024 {
            return None;
        }
        let mut labels = Vec::with_capacity(n);
        for _ in 0..n {
            labels.push((c.string()?, c.string()?));
        }
        out.push((id, labels));
    }
    Some(Record::Series(out))
}

fn decode_samples(payload: &[u8]) -> Option<Record> {
    let mut c = Cursor {
        buf: payload,
        pos: 0,
    };
    let base = unzigzag(c.uvarint()?);
    let mut out = Vec::with_capacity(payload.len() / 11);
    while !c.done() {
        let id = u32::try_from(c.uvarint()?).ok()?;
        let t = base.wrapping_add(unzigzag(c.uvarint()?));
        let b = c.bytes(8)?;
        let v = f64::from_bits(u64::from_le_bytes(b.try_into().ok()?));
        out.push((id, t, v));
    }
    Some(Record::Samples(out))
}

pub fn segment_name(n: u64) -> String {
    format!("{n:08}")
}

/// Segment numbers present in `dir`, ascending.
pub fn list_segments(dir: &Path) -> Result<Vec<u64>, WalError> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        if let Some(n) = entry
            .file_name()
            .to_str()
            .filter(|s| s.len() == 8)
            .and_then(|s| s.parse::<u64>().ok())
        {
            out.push(n);
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// The newest complete checkpoint: its number and path.
pub fn latest_checkpoint(dir: &Path) -> Result<Option<(u64, PathBuf)>, WalError> {
    let mut best = None;
    for entry in fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        let name = entry.file_name();
        let Some(n) = name
            .to_str()
            .and_then(|s| s.strip_prefix("checkpoint."))
            .and_then(|s| s.parse::<u64>().ok())
        else {
            continue;
        };
        if best.as_ref().is_none_or(|(b, _)| n > *b) {
            best = Some((n, entry.path()));
        }
    }
    Ok(best)
}

/// What reading one file found.
#[derive(Debug, Default, Clone, Copy)]
pub struct ReadReport {
    pub records: u64,
    /// Bytes cut from a torn end.
    pub torn_bytes: u64,
    /// Records skipped because they failed their checksum.
    pub corrupt: u64,
}

/// Reads every record of one file in order. With `repair`, a torn or damaged
/// tail is cut off so appends continue after the last good record.
pub fn read_file(
    path: &Path,
    repair: bool,
    mut each: impl FnMut(Record),
) -> Result<ReadReport, WalError> {
    let mut data = Vec::new();
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut data))
        .map_err(io_err(path))?;
    let mut report = ReadReport::default();
    let mut pos = 0;
    while pos < data.len() {
        match decode_frame(&data[pos..]) {
            Ok((record, n)) => {
                each(record);
                report.records += 1;
                pos += n;
            }
            Err(e) => {
                if e == FrameError::Corrupt {
                    report.corrupt += 1;
                }
                report.torn_bytes = (data.len() - pos) as u64;
                if repair {
                    let f = OpenOptions::new()
                        .write(true)
                        .open(path)
                        .map_err(io_err(path))?;
                    f.set_len(pos as u64).map_err(io_err(path))?;
                    f.sync_all().map_err(io_err(path))?;
                }
                break;
            }
        }
    }
    Ok(report)
}

struct Pending {
    buf: Vec<u8>,
    /// Sequence number of the newest record in `buf`.
    seq: u64,
    rotate: bool,
    shutdown: bool,
}

struct Shared {
    pending: Mutex<Pending>,
    work: Condvar,
    synced: Mutex<SyncState>,
    done: Condvar,
}

struct SyncState {
    seq: u64,
    segment: u64,
    error: Option<String>,
}

/// The log's writer. Cheap to share; dropping the last handle stops the
/// syncer after it writes what is pending.
pub struct Wal {
    shared: Arc<Shared>,
    syncer: Mutex<Option<thread::JoinHandle<()>>>,
}

impl Wal {
    /// Opens for appending into a fresh segment after `last_segment`.
    pub fn open(dir: &Path, last_segment: u64, segment_bytes: u64) -> Result<Wal, WalError> {
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        let segment = last_segment + 1;
        let file = create_segment(dir, segment)?;
        let shared = Arc::new(Shared {
            pending: Mutex::new(Pending {
                buf: Vec::new(),
                seq: 0,
                rotate: false,
                shutdown: false,
            }),
            work: Condvar::new(),
            synced: Mutex::new(SyncState {
                seq: 0,
                segment,
                error: None,
            }),
            done: Condvar::new(),
        });
        let syncer = {
            let shared = shared.clone();
            let owned = dir.to_path_buf();
            thread::Builder::new()
                .name("wal-sync".into())
                .spawn(move || sync_loop(shared, owned, file, segment, segment_bytes))
                .map_err(io_err(dir))?
        };
        Ok(Wal {
            shared,
            syncer: Mutex::new(Some(syncer)),
        })
    }

    /// Queues encoded records; returns the sequence number to wait for.
    pub fn submit(&self, encoded: &[u8]) -> Result<u64, WalError> {
        if let Some(e) = &self.shared.synced.lock().error {
            return Err(WalError::Failed(e.clone()));
        }
        let mut p = self.shared.pending.lock();
        if encoded.is_empty() {
            // Nothing to write: the syncer would never see it, and waiting
            // for the last record submitted covers everything before it.
            return Ok(p.seq);
        }
        p.buf.extend_from_slice(encoded);
        p.seq += 1;
        let seq = p.seq;
        drop(p);
        self.shared.work.notify_one();
        Ok(seq)
    }

    /// Blocks until record `seq` is on disk.
    pub fn wait(&self, seq: u64) -> Result<(), WalError> {
        let mut s = self.shared.synced.lock();
        loop {
            if let Some(e) = &s.error {
                return Err(WalError::Failed(e.clone()));
            }
            if s.seq >= seq {
                return Ok(());
            }
            self.shared.done.wait(&mut s);
        }
    }

    /// Writes and syncs what is pending, then starts a new segment; returns
    /// its number. Records submitted later land in the new segment.
    pub fn rotate(&self) -> Result<u64, WalError> {
        let mut p = self.shared.pending.lock();
        p.rotate = true;
        p.seq += 1;
        let seq = p.seq;
        drop(p);
        self.shared.work.notify_one();
        self.wait(seq)?;
        Ok(self.shared.synced.lock().segment)
    }

    /// Writes pending records and stops the syncer.
    pub fn close(&self) {
        self.shared.pending.lock().shutdown = true;
        self.shared.work.notify_one();
        if let Some(h) = self.syncer.lock().take() {
            let _ = h.join();
        }
    }
}

impl Drop for Wal {
    fn drop(&mut self) {
        self.close();
    }
}

fn create_segment(dir: &Path, n: u64) -> Result<File, WalError> {
    let path = dir.join(segment_name(n));
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(io_err(&path))?;
    sync_dir(dir)?;
    Ok(file)
}

pub fn sync_dir(dir: &Path) -> Result<(), WalError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

fn sync_loop(shared: Arc<Shared>, dir: PathBuf, mut file: File, mut segment: u64, max: u64) {
    let mut written = 0u64;
    let mut spare = Vec::new();
    loop {
        let (buf, seq, rotate, shutdown) = {
            let mut p = shared.pending.lock();
            while p.buf.is_empty() && !p.rotate && !p.shutdown {
                shared.work.wait(&mut p);
            }
            std::mem::swap(&mut p.buf, &mut spare);
            let r = (std::mem::take(&mut spare), p.seq, p.rotate, p.shutdown);
            p.rotate = false;
            r
        };
        let result = (|| -> Result<(), WalError> {
            if !buf.is_empty() {
                let path = dir.join(segment_name(segment));
                file.write_all(&buf).map_err(io_err(&path))?;
                file.sync_data().map_err(io_err(&path))?;
                written += buf.len() as u64;
            }
            if rotate || written >= max {
                segment += 1;
                file = create_segment(&dir, segment)?;
                written = 0;
            }
            Ok(())
        })();
        spare = buf;
        spare.clear();
        let failed = {
            let mut s = shared.synced.lock();
            match result {
                Ok(()) => {
                    s.seq = seq;
                    s.segment = segment;
                    false
                }
                Err(e) => {
                    tracing::error!(error = %e, "write-ahead log write failed; ingest stops");
                    s.error = Some(e.to_string());
                    true
                }
            }
        };
        shared.done.notify_all();
        if shutdown || failed {
            return;
        }
    }
}

/// Writes `records` (already framed) as checkpoint `n`, atomically.
pub fn write_checkpoint(dir: &Path, n: u64, records: &[u8]) -> Result<PathBuf, WalError> {
    let final_path = dir.join(format!("checkpoint.{n:08}"));
    let tmp = dir.join(format!("checkpoint.{n:08}.tmp"));
    let mut f = File::create(&tmp).map_err(io_err(&tmp))?;
    f.write_all(records).map_err(io_err(&tmp))?;
    f.sync_all().map_err(io_err(&tmp))?;
    fs::rename(&tmp, &final_path).map_err(io_err(&final_path))?;
    sync_dir(dir)?;
    Ok(final_path)
}

/// Removes segments below `n` and checkpoints older than `n`.
pub fn remove_before(dir: &Path, n: u64) -> Result<(), WalError> {
    for s in list_segments(dir)? {
        if s < n {
            let p = dir.join(segment_name(s));
            fs::remove_file(&p).map_err(io_err(&p))?;
        }
    }
    for entry in fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        let name = entry.file_name();
        let Some(s) = name.to_str() else { continue };
        let old = s
            .strip_prefix("checkpoint.")
            .map(|rest| match rest.strip_suffix(".tmp") {
                Some(_) => true,
                None => rest.parse::<u64>().is_ok_and(|c| c < n),
            })
            .unwrap_or(false);
        if old {
            let p = entry.path();
            fs::remove_file(&p).map_err(io_err(&p))?;
        }
    }
    sync_dir(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(path: &Path) -> Vec<Record> {
        let mut out = Vec::new();
        read_file(path, false, |r| out.push(r)).unwrap();
        out
    }

    #[test]
    fn records_round_trip() {
        let mut buf = Vec::new();
        let labels = [("__name__", "up"), ("job", "x")];
        encode_series(&mut buf, [(7u32, &labels[..])].into_iter());
        encode_samples(
            &mut buf,
            &[(7, 1000, 1.5), (7, 999, f64::NAN), (8, -5, 0.0)],
        );
        let (r1, n1) = decode_frame(&buf).unwrap();
        assert_eq!(
            r1,
            Record::Series(vec![(
                7,
                vec![("__name__".into(), "up".into()), ("job".into(), "x".into())]
            )])
        );
        let (r2, n2) = decode_frame(&buf[n1..]).unwrap();
        assert_eq!(n1 + n2, buf.len());
        let Record::Samples(s) = r2 else { panic!() };
        assert_eq!(s[0], (7, 1000, 1.5));
        assert!(s[1].2.is_nan() && s[1].1 == 999);
        assert_eq!(s[2], (8, -5, 0.0));
    }

    #[test]
    fn every_damaged_byte_is_caught() {
        let mut buf = Vec::new();
        encode_samples(&mut buf, &[(1, 10, 2.0), (2, 20, 3.0)]);
        for i in 0..buf.len() {
            let mut bad = buf.clone();
            bad[i] ^= 0x10;
            assert!(decode_frame(&bad).is_err(), "flip at {i} went unnoticed");
        }
        for cut in 0..buf.len() {
            assert_eq!(
                decode_frame(&buf[..cut]).unwrap_err(),
                FrameError::Truncated
            );
        }
    }

    #[test]
    fn an_empty_submission_is_already_durable_once_what_came_before_is() {
        let dir = tempfile::tempdir().unwrap();
        let wal = Wal::open(dir.path(), 0, 1 << 20).unwrap();
        let mut buf = Vec::new();
        encode_samples(&mut buf, &[(1, 10, 2.0)]);
        let first = wal.submit(&buf).unwrap();
        wal.wait(first).unwrap();
        // Before the fix this waited forever: an empty record bumped the
        // sequence but gave the syncer nothing to write.
        let empty = wal.submit(&[]).unwrap();
        assert_eq!(empty, first);
        wal.wait(empty).unwrap();
    }

    #[test]
    fn group_commit_acknowledges_after_the_write_and_rotates() {
        let dir = tempfile::tempdir().unwrap();
        let wal = Wal::open(dir.path(), 0, 1 << 20).unwrap();
        let mut handles = Vec::new();
        let wal = Arc::new(wal);
        for i in 0..8u32 {
            let wal = wal.clone();
            handles.push(thread::spawn(move || {
                let mut buf = Vec::new();
                encode_samples(&mut buf, &[(i, i as i64, i as f64)]);
                let seq = wal.submit(&buf).unwrap();
                wal.wait(seq).unwrap();
            }));
        }
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(read_all(&dir.path().join(segment_name(1))).len(), 8);
        let next = wal.rotate().unwrap();
        assert_eq!(next, 2);
        let mut buf = Vec::new();
        encode_samples(&mut buf, &[(9, 9, 9.0)]);
        let seq = wal.submit(&buf).unwrap();
        wal.wait(seq).unwrap();
        assert_eq!(read_all(&dir.path().join(segment_name(2))).len(), 1);
        assert_eq!(list_segments(dir.path()).unwrap(), vec![1, 2]);
    }

    #[test]
    fn a_torn_tail_is_cut_on_repair() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(segment_name(1));
        let mut buf = Vec::new();
        encode_samples(&mut buf, &[(1, 10, 2.0)]);
        let good = buf.len();
        encode_samples(&mut buf, &[(1, 20, 3.0)]);
        fs::write(&path, &buf[..buf.len() - 3]).unwrap();
        let report = read_file(&path, true, |_| {}).unwrap();
        assert_eq!(report.records, 1);
        assert_eq!(fs::metadata(&path).unwrap().len(), good as u64);
    }
}

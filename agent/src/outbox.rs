//! The on-disk outbox: batches waiting for a receiver's 2xx.
//!
//! Batches are appended to segment files as checksummed records and read
//! back in order. The read position (the cursor) moves only when a batch is
//! acknowledged, and is stored atomically, so a batch leaves the outbox only
//! after a 2xx and survives the agent being killed at any moment. The outbox
//! is bounded: when full, whole oldest segments are dropped and counted.
//!
//! Layout of `dir`:
//! - `<20-digit sequence>.seg`: records `[len u32][crc32c u32][created_ms i64][body]`
//!   (little-endian; the checksum covers `created_ms` and the body). The
//!   sequence is the segment's number; a new segment starts when the current
//!   one passes `segment_bytes`.
//! - `cursor`: `<segment> <offset>` of the next unacknowledged record,
//!   replaced by rename.
//!
//! A record cut short by a crash (or damaged on disk) ends its segment: it
//! and anything after it in that segment are counted as dropped with reason
//! `corrupt`, and reading goes on with the next segment.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

const HEADER: usize = 16;
/// A single record larger than this is refused (and a length field larger
/// than this read back from disk is corruption).
pub const MAX_RECORD: usize = 64 << 20;

/// Why batches were dropped without being delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// The outbox reached its size bound; the oldest data went.
    Full,
    /// A record failed its checksum or was cut short.
    Corrupt,
    /// The receiver refused the batch with a 4xx other than 429.
    Rejected,
}

impl DropReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::Full => "outbox_full",
            DropReason::Corrupt => "corrupt",
            DropReason::Rejected => "rejected",
        }
    }
}

/// Counts kept by the outbox, for self-metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub appended_records: u64,
    pub acknowledged_records: u64,
    pub dropped_records: Vec<(DropReason, u64)>,
    pub dropped_bytes: u64,
}

impl Stats {
    fn dropped(&mut self, reason: DropReason, records: u64, bytes: u64) {
        self.dropped_bytes += bytes;
        match self.dropped_records.iter_mut().find(|(r, _)| *r == reason) {
            Some((_, n)) => *n += records,
            None => self.dropped_records.push((reason, records)),
        }
    }

    pub fn dropped_total(&self, reason: DropReason) -> u64 {
        self.dropped_records
            .iter()
            .find(|(r, _)| *r == reason)
            .map(|(_, n)| *n)
            .unwrap_or(0)
    }
}

/// A batch read from the outbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub created_ms: i64,
    pub body: Vec<u8>,
    /// Where the next record starts; pass to [`Outbox::ack`].
    next: (u64, u64),
    len_on_disk: u64,
}

pub struct Outbox {
    dir: PathBuf,
    max_bytes: u64,
    segment_bytes: u64,
    /// Segments on disk, oldest first, with their sizes.
    segments: Vec<(u64, u64)>,
    active: Option<File>,
    cursor: (u64, u64),
    stats: Stats,
}

fn segment_name(seq: u64) -> String {
    format!("{seq:020}.seg")
}

fn crc(created_ms: i64, body: &[u8]) -> u32 {
    let c = crc32c::crc32c(&created_ms.to_le_bytes());
    crc32c::crc32c_append(c, body)
}

impl Outbox {
    /// Opens (or creates) an outbox in `dir`, bounded to `max_bytes` on
    /// disk, starting a new segment every `segment_bytes`.
    pub fn open(dir: &Path, max_bytes: u64, segment_bytes: u64) -> io::Result<Outbox> {
        fs::create_dir_all(dir)?;
        let mut segments = Vec::new();
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(seq) = name
                .to_str()
                .and_then(|n| n.strip_suffix(".seg"))
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            segments.push((seq, entry.metadata()?.len()));
        }
        segments.sort();
        let cursor = match fs::read_to_string(dir.join("cursor")) {
            Ok(text) => {
                let mut f = text.split_whitespace().map(|v| v.parse::<u64>());
                match (f.next(), f.next()) {
                    (Some(Ok(seg)), Some(Ok(off))) => (seg, off),
                    _ => (segments.first().map(|s| s.0).unwrap_or(0), 0),
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                (segments.first().map(|s| s.0).unwrap_or(0), 0)
            }
            Err(e) => return Err(e),
        };
        let mut outbox = Outbox {
            dir: dir.to_path_buf(),
            max_bytes,
            segment_bytes: segment_bytes.max(HEADER as u64 + 1),
            segments,
            active: None,
            cursor,
            stats: Stats::default(),
        };
        // Segments wholly before the cursor were acknowledged already.
        let before: Vec<u64> = outbox
            .segments
            .iter()
            .filter(|(s, _)| *s < cursor.0)
            .map(|(s, _)| *s)
            .collect();
        for seq in before {
            outbox.remove_segment(seq)?;
        }
        if let Some(&(first, _)) = outbox.segments.first()
            && outbox.cursor.0 < first
        {
            outbox.cursor = (first, 0);
        }
        outbox.repair_tail()?;
        Ok(outbox)
    }

    /// Cuts a record torn by a crash off the end of the newest segment, so
    /// that appends continue from a clean end.
    fn repair_tail(&mut self) -> io::Result<()> {
        let Some(&(seq, len)) = self.segments.last() else {
            return Ok(());
        };
        let path = self.dir.join(segment_name(seq));
        let mut f = File::open(&path)?;
        let mut offset = 0u64;
        let mut header = [0u8; HEADER];
        let good_end = loop {
            if offset + HEADER as u64 > len {
                break offset;
            }
            f.seek(SeekFrom::Start(offset))?;
            f.read_exact(&mut header)?;
            let body_len = u32::from_le_bytes(header[0..4].try_into().expect("4 bytes")) as u64;
            if body_len as usize > MAX_RECORD || offset + HEADER as u64 + body_len > len {
                break offset;
            }
            let mut body = vec![0u8; body_len as usize];
            f.read_exact(&mut body)?;
            let want = u32::from_le_bytes(header[4..8].try_into().expect("4 bytes"));
            let created = i64::from_le_bytes(header[8..16].try_into().expect("8 bytes"));
            if crc(created, &body) != want {
                break offset;
            }
            offset += HEADER as u64 + body_len;
        };
        if good_end < len {
            tracing::warn!(
                "outbox {}: segment {seq} ends in {} damaged or incomplete bytes (an interrupted write); they are dropped",
                self.dir.display(),
                len - good_end
            );
            self.stats.dropped(DropReason::Corrupt, 1, len - good_end);
            OpenOptions::new()
                .write(true)
                .open(&path)?
                .set_len(good_end)?;
            if let Some(last) = self.segments.last_mut() {
                last.1 = good_end;
            }
        }
        Ok(())
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Bytes on disk.
    pub fn bytes(&self) -> u64 {
        self.segments.iter().map(|(_, len)| len).sum()
    }

    /// Bytes not yet acknowledged.
    pub fn pending_bytes(&self) -> u64 {
        self.segments
            .iter()
            .map(|(seq, len)| match seq.cmp(&self.cursor.0) {
                std::cmp::Ordering::Less => 0,
                std::cmp::Ordering::Equal => len.saturating_sub(self.cursor.1),
                std::cmp::Ordering::Greater => *len,
            })
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.pending_bytes() == 0
    }

    /// Appends a batch and syncs it to disk.
    pub fn append(&mut self, created_ms: i64, body: &[u8]) -> io::Result<()> {
        if body.len() > MAX_RECORD {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "batch of {} bytes exceeds the outbox record limit",
                    body.len()
                ),
            ));
        }
        let record_len = (HEADER + body.len()) as u64;
        let need_new = match self.segments.last() {
            None => true,
            Some((_, len)) => *len > 0 && len + record_len > self.segment_bytes,
        };
        if need_new {
            let seq = self
                .segments
                .last()
                .map(|s| s.0 + 1)
                .unwrap_or(self.cursor.0.max(1));
            let f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.dir.join(segment_name(seq)))?;
            sync_dir(&self.dir)?;
            self.segments.push((seq, 0));
            self.active = Some(f);
            if self.cursor.1 == 0 && self.segments.len() == 1 {
                self.cursor = (seq, 0);
            }
        }
        if self.active.is_none() {
            let seq = self.segments.last().expect("a segment exists").0;
            self.active = Some(
                OpenOptions::new()
                    .append(true)
                    .open(self.dir.join(segment_name(seq)))?,
            );
        }
        let mut record = Vec::with_capacity(record_len as usize);
        record.extend_from_slice(&(body.len() as u32).to_le_bytes());
        record.extend_from_slice(&crc(created_ms, body).to_le_bytes());
        record.extend_from_slice(&created_ms.to_le_bytes());
        record.extend_from_slice(body);
        let f = self.active.as_mut().expect("opened above");
        f.write_all(&record)?;
        f.sync_data()?;
        if let Some(last) = self.segments.last_mut() {
            last.1 += record_len;
        }
        self.stats.appended_records += 1;
        self.enforce_bound()
    }

    /// Drops whole oldest segments while over the bound (never the one being
    /// written).
    fn enforce_bound(&mut self) -> io::Result<()> {
        while self.bytes() > self.max_bytes && self.segments.len() > 1 {
            let (seq, len) = self.segments[0];
            let records = self.count_unacked_records(seq)?;
            if records > 0 {
                tracing::warn!(
                    "outbox {} is over its bound of {} bytes: dropping its oldest {} unsent batches",
                    self.dir.display(),
                    self.max_bytes,
                    records
                );
                self.stats.dropped(DropReason::Full, records, len);
            }
            self.remove_segment(seq)?;
            if self.cursor.0 <= seq {
                let next = self.segments.first().map(|s| s.0).unwrap_or(seq + 1);
                self.cursor = (next, 0);
                self.store_cursor()?;
            }
        }
        Ok(())
    }

    fn count_unacked_records(&self, seq: u64) -> io::Result<u64> {
        let start = if seq == self.cursor.0 {
            self.cursor.1
        } else if seq < self.cursor.0 {
            return Ok(0);
        } else {
            0
        };
        let mut n = 0;
        let mut pos = (seq, start);
        while let Some(r) = self.read_at(pos)? {
            if r.next.0 != seq {
                break;
            }
            n += 1;
            pos = r.next;
        }
        Ok(n)
    }

    fn remove_segment(&mut self, seq: u64) -> io::Result<()> {
        match fs::remove_file(self.dir.join(segment_name(seq))) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        self.segments.retain(|(s, _)| *s != seq);
        if self.segments.is_empty() {
            self.active = None;
        }
        Ok(())
    }

    /// The oldest unacknowledged batch, if any.
    pub fn peek(&mut self) -> io::Result<Option<Record>> {
        loop {
            match self.read_at(self.cursor) {
                Ok(r) => return Ok(r),
                Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                    // A damaged record: skip the rest of its segment.
                    let seq = self.cursor.0;
                    let len = self
                        .segments
                        .iter()
                        .find(|s| s.0 == seq)
                        .map(|s| s.1)
                        .unwrap_or(0);
                    tracing::warn!(
                        "outbox {}: {e}; skipping the rest of segment {seq}",
                        self.dir.display()
                    );
                    self.stats
                        .dropped(DropReason::Corrupt, 1, len.saturating_sub(self.cursor.1));
                    let next = self.segments.iter().map(|s| s.0).find(|s| *s > seq);
                    match next {
                        Some(n) => {
                            self.cursor = (n, 0);
                            self.store_cursor()?;
                            if seq != self.segments.last().map(|s| s.0).unwrap_or(seq) {
                                self.remove_segment(seq)?;
                            }
                        }
                        None => return Ok(None),
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Where the record at or after `pos` starts: `pos` itself, or the
    /// start of the next segment when `pos` is at the end of one. `None`
    /// past the newest record; an error for a record cut short.
    fn locate(&self, mut pos: (u64, u64)) -> io::Result<Option<(u64, u64, u64)>> {
        loop {
            let Some(&(seq, len)) = self.segments.iter().find(|s| s.0 >= pos.0) else {
                return Ok(None);
            };
            if seq > pos.0 {
                pos = (seq, 0);
            }
            if pos.1 + HEADER as u64 <= len {
                return Ok(Some((seq, pos.1, len)));
            }
            if pos.1 < len {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("record at {} in segment {seq} is cut short", pos.1),
                ));
            }
            // End of this segment: try the next one.
            pos = (seq + 1, 0);
        }
    }

    /// Opens a segment positioned at `offset`.
    fn open_at(&self, seq: u64, offset: u64) -> io::Result<File> {
        let mut f = File::open(self.dir.join(segment_name(seq)))?;
        f.seek(SeekFrom::Start(offset))?;
        Ok(f)
    }

    /// Reads the record at `pos`, moving on to the next segment at the end
    /// of one.
    fn read_at(&self, pos: (u64, u64)) -> io::Result<Option<Record>> {
        let Some((seq, offset, len)) = self.locate(pos)? else {
            return Ok(None);
        };
        let pos = (seq, offset);
        let mut f = self.open_at(seq, offset)?;
        let mut header = [0u8; HEADER];
        f.read_exact(&mut header)?;
        let body_len = u32::from_le_bytes(header[0..4].try_into().expect("4 bytes")) as u64;
        if body_len as usize > MAX_RECORD || pos.1 + HEADER as u64 + body_len > len {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "record at {} in segment {seq} has an impossible length {body_len}",
                    pos.1
                ),
            ));
        }
        let mut body = vec![0u8; body_len as usize];
        f.read_exact(&mut body)?;
        let want = u32::from_le_bytes(header[4..8].try_into().expect("4 bytes"));
        let created_ms = i64::from_le_bytes(header[8..16].try_into().expect("8 bytes"));
        if crc(created_ms, &body) != want {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("record at {} in segment {seq} fails its checksum", pos.1),
            ));
        }
        let len_on_disk = HEADER as u64 + body_len;
        Ok(Some(Record {
            created_ms,
            body,
            next: (seq, pos.1 + len_on_disk),
            len_on_disk,
        }))
    }

    /// Marks `record` (the one [`peek`](Self::peek) returned) as delivered
    /// (or as dropped, with a reason): the cursor moves past it, durably, and
    /// segments left behind are deleted.
    pub fn ack(&mut self, record: &Record, dropped: Option<DropReason>) -> io::Result<()> {
        self.cursor = record.next;
        self.store_cursor()?;
        match dropped {
            None => self.stats.acknowledged_records += 1,
            Some(reason) => self.stats.dropped(reason, 1, record.len_on_disk),
        }
        let done: Vec<u64> = self
            .segments
            .iter()
            .filter(|(s, _)| *s < self.cursor.0)
            .map(|(s, _)| *s)
            .collect();
        for seq in done {
            self.remove_segment(seq)?;
        }
        // The segment being read is finished and a newer one exists.
        if let Some(&(seq, len)) = self.segments.iter().find(|s| s.0 == self.cursor.0)
            && self.cursor.1 >= len
            && self.segments.last().is_some_and(|l| l.0 > seq)
        {
            self.remove_segment(seq)?;
        }
        Ok(())
    }

    fn store_cursor(&self) -> io::Result<()> {
        let tmp = self.dir.join("cursor.tmp");
        {
            let mut f = File::create(&tmp)?;
            write!(f, "{} {}", self.cursor.0, self.cursor.1)?;
            f.sync_data()?;
        }
        fs::rename(&tmp, self.dir.join("cursor"))?;
        sync_dir(&self.dir)
    }

    /// When the oldest unacknowledged batch was made, in ms since the epoch.
    /// Reads only that record's header (for the age metric); the record is
    /// checked when it is read for sending.
    pub fn oldest_pending_ms(&self) -> io::Result<Option<i64>> {
        let Some((seq, offset, _)) = self.locate(self.cursor)? else {
            return Ok(None);
        };
        let mut f = self.open_at(seq, offset + 8)?;
        let mut created = [0u8; 8];
        f.read_exact(&mut created)?;
        Ok(Some(i64::from_le_bytes(created)))
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(o: &mut Outbox) -> Vec<(i64, Vec<u8>)> {
        let mut out = Vec::new();
        while let Some(r) = o.peek().unwrap() {
            out.push((r.created_ms, r.body.clone()));
            o.ack(&r, None).unwrap();
        }
        out
    }

    #[test]
    fn batches_come_back_in_order_and_leave_only_when_acknowledged() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = Outbox::open(dir.path(), 1 << 20, 100).unwrap();
        for i in 0..10 {
            o.append(i, format!("batch {i}").as_bytes()).unwrap();
        }
        let first = o.peek().unwrap().unwrap();
        assert_eq!(first.body, b"batch 0");
        // Not acknowledged: still there, even after reopening.
        drop(o);
        let mut o = Outbox::open(dir.path(), 1 << 20, 100).unwrap();
        let got = drain(&mut o);
        assert_eq!(got.len(), 10);
        for (i, (created, body)) in got.iter().enumerate() {
            assert_eq!(*created, i as i64);
            assert_eq!(body, format!("batch {i}").as_bytes());
        }
        assert!(o.is_empty());
        // Acknowledged segments are deleted, all but the one being written.
        let segs = fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".seg"))
            .count();
        assert!(segs <= 1, "{segs} segments left");
        drop(o);
        let mut o = Outbox::open(dir.path(), 1 << 20, 100).unwrap();
        assert!(
            o.peek().unwrap().is_none(),
            "acknowledged batches never come back"
        );
        o.append(99, b"after").unwrap();
        assert_eq!(drain(&mut o), vec![(99, b"after".to_vec())]);
    }

    #[test]
    fn a_torn_tail_is_cut_and_counted_and_appends_go_on() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = Outbox::open(dir.path(), 1 << 20, 1 << 20).unwrap();
        o.append(1, b"whole").unwrap();
        o.append(2, b"also whole").unwrap();
        drop(o);
        // A crash in the middle of a write leaves part of a record.
        let seg = fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .find(|e| e.file_name().to_string_lossy().ends_with(".seg"))
            .unwrap()
            .path();
        let mut f = OpenOptions::new().append(true).open(&seg).unwrap();
        f.write_all(&[200, 0, 0, 0, 1, 2, 3]).unwrap();
        drop(f);
        let mut o = Outbox::open(dir.path(), 1 << 20, 1 << 20).unwrap();
        assert_eq!(o.stats().dropped_total(DropReason::Corrupt), 1);
        o.append(3, b"after the crash").unwrap();
        let got: Vec<i64> = drain(&mut o).into_iter().map(|(c, _)| c).collect();
        assert_eq!(got, [1, 2, 3]);
    }

    #[test]
    fn a_damaged_record_is_skipped_with_its_segment_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = Outbox::open(dir.path(), 1 << 20, 40).unwrap();
        for i in 0..6 {
            o.append(i, b"0123456789").unwrap();
        }
        drop(o);
        // Flip a byte in the body of the first segment's first record.
        let mut segs: Vec<PathBuf> = fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "seg"))
            .collect();
        segs.sort();
        let mut bytes = fs::read(&segs[0]).unwrap();
        bytes[HEADER + 2] ^= 0xff;
        fs::write(&segs[0], &bytes).unwrap();
        let mut o = Outbox::open(dir.path(), 1 << 20, 40).unwrap();
        let got: Vec<i64> = drain(&mut o).into_iter().map(|(c, _)| c).collect();
        assert!(!got.is_empty() && !got.contains(&0), "{got:?}");
        assert!(
            got.windows(2).all(|w| w[0] < w[1]),
            "still in order: {got:?}"
        );
        assert!(o.stats().dropped_total(DropReason::Corrupt) >= 1);
    }

    #[test]
    fn the_bound_drops_oldest_segments_and_counts_them() {
        let dir = tempfile::tempdir().unwrap();
        let body = vec![7u8; 100];
        let mut o = Outbox::open(dir.path(), 1000, 300).unwrap();
        for i in 0..30 {
            o.append(i, &body).unwrap();
            assert!(o.bytes() <= 1000 + 300, "bound kept: {}", o.bytes());
        }
        let dropped = o.stats().dropped_total(DropReason::Full);
        assert!(dropped > 0);
        let got: Vec<i64> = drain(&mut o).into_iter().map(|(c, _)| c).collect();
        assert_eq!(
            got.len() as u64 + dropped,
            30,
            "every batch delivered or counted"
        );
        assert_eq!(*got.last().unwrap(), 29, "the newest survive");
        assert!(got.windows(2).all(|w| w[1] == w[0] + 1));
    }

    #[test]
    fn rejected_batches_are_counted_as_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = Outbox::open(dir.path(), 1 << 20, 1 << 20).unwrap();
        o.append(1, b"bad").unwrap();
        o.append(2, b"good").unwrap();
        let r = o.peek().unwrap().unwrap();
        o.ack(&r, Some(DropReason::Rejected)).unwrap();
        assert_eq!(o.stats().dropped_total(DropReason::Rejected), 1);
        assert_eq!(o.peek().unwrap().unwrap().body, b"good");
        assert_eq!(o.oldest_pending_ms().unwrap(), Some(2));
    }

    proptest::proptest! {
        // Every append is an fsync: fewer, longer cases keep this quick.
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]

        /// Whatever bytes a damaged disk leaves in a segment and the cursor,
        /// opening and draining never panics, and appending still works.
        #[test]
        fn damaged_files_never_panic(segment in proptest::collection::vec(proptest::num::u8::ANY, 0..300), cursor in ".{0,20}") {
            let dir = tempfile::tempdir().unwrap();
            fs::write(dir.path().join(segment_name(1)), &segment).unwrap();
            fs::write(dir.path().join("cursor"), cursor).unwrap();
            let mut o = Outbox::open(dir.path(), 1 << 20, 1 << 20).unwrap();
            while let Some(r) = o.peek().unwrap() {
                o.ack(&r, None).unwrap();
            }
            o.append(7, b"fresh").unwrap();
            let r = o.peek().unwrap().expect("the fresh batch");
            proptest::prop_assert_eq!(r.body, b"fresh".to_vec());
        }

        /// Whatever the mix of appends, deliveries and restarts, every batch
        /// is delivered exactly once and in order.
        #[test]
        fn every_batch_is_delivered_once_in_order(ops in proptest::collection::vec(0u8..10, 1..120), segment in 40u64..400) {
            let dir = tempfile::tempdir().unwrap();
            let mut o = Outbox::open(dir.path(), 1 << 30, segment).unwrap();
            let mut next = 0i64;
            let mut delivered: Vec<i64> = Vec::new();
            for op in ops {
                match op {
                    0..=5 => {
                        o.append(next, &vec![next as u8; (next as usize % 50) + 1]).unwrap();
                        next += 1;
                    }
                    6..=8 => {
                        if let Some(r) = o.peek().unwrap() {
                            delivered.push(r.created_ms);
                            o.ack(&r, None).unwrap();
                        }
                    }
                    _ => {
                        drop(o);
                        o = Outbox::open(dir.path(), 1 << 30, segment).unwrap();
                    }
                }
            }
            while let Some(r) = o.peek().unwrap() {
                delivered.push(r.created_ms);
                o.ack(&r, None).unwrap();
            }
            proptest::prop_assert_eq!(delivered, (0..next).collect::<Vec<_>>());
        }
    }
}

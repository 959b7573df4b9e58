//! XOR chunks: timestamps as delta-of-delta, values as XOR against the
//! previous value (the scheme of Facebook's Gorilla paper, VLDB 2015).
//!
//! Layout: a `u16` sample count, the first timestamp as a zig-zag varint and
//! the first value as 64 raw bits, then a bit stream. The second timestamp is
//! a zig-zag varint delta; later ones write the change of delta in one of
//! five buckets (`0`, `10`+14 bits, `110`+17, `1110`+20, `1111`+64). A value
//! writes `0` when equal to the previous one, `10` plus the meaningful bits
//! when they fit the previous leading/trailing-zero window, or `11` plus a
//! new window (5 bits of leading zeros, 6 bits of length) and the bits.
//!
//! Scrapes every 10 s make most timestamp changes zero (one bit), and the
//! many constant series of an agent (limits, states, info series) cost one
//! bit per value.

use std::fmt;

/// Samples per chunk before it is closed. Past ~120 the compression gain is
/// small and every read decodes more than it needs.
pub const SAMPLES_PER_CHUNK: u16 = 120;

const HEADER_BYTES: usize = 2;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ChunkError {
    #[error("chunk is truncated")]
    Truncated,
    #[error("chunk header promises {0} samples but the chunk is empty")]
    BadHeader(u16),
}

/// Appends bits most-significant first, into bytes and a free-bit count that
/// the caller owns: an appender keeps them among its other small fields, so
/// a head of many series does not pay a padded struct for them.
struct BitWriter<'a> {
    bytes: &'a mut Vec<u8>,
    /// Free bits in the last byte (0 when the last byte is full or absent).
    free: &'a mut u8,
}

impl BitWriter<'_> {
    fn write_bit(&mut self, bit: bool) {
        if *self.free == 0 {
            self.bytes.push(0);
            *self.free = 8;
        }
        *self.free -= 1;
        if bit {
            let last = self.bytes.len() - 1;
            self.bytes[last] |= 1 << *self.free;
        }
    }

    /// Writes the low `n` bits of `v` (n ≤ 64).
    fn write_bits(&mut self, v: u64, mut n: u8) {
        while n > 0 {
            if *self.free == 0 {
                self.bytes.push(0);
                *self.free = 8;
            }
            let take = n.min(*self.free);
            let shift = n - take;
            let chunk = ((v >> shift) & ((1u64 << take) - 1)) as u8;
            let last = self.bytes.len() - 1;
            self.bytes[last] |= chunk << (*self.free - take);
            *self.free -= take;
            n -= take;
        }
    }

    fn write_byte_aligned(&mut self, data: &[u8]) {
        debug_assert_eq!(*self.free, 0);
        self.bytes.extend_from_slice(data);
    }
}

struct BitReader<'a> {
    bytes: &'a [u8],
    /// Bit position from the start of `bytes`.
    pos: usize,
}

impl<'a> BitReader<'a> {
    fn read_bit(&mut self) -> Result<bool, ChunkError> {
        let byte = *self.bytes.get(self.pos / 8).ok_or(ChunkError::Truncated)?;
        let bit = byte & (0x80 >> (self.pos % 8)) != 0;
        self.pos += 1;
        Ok(bit)
    }

    fn read_bits(&mut self, n: u8) -> Result<u64, ChunkError> {
        if self.pos + n as usize > self.bytes.len() * 8 {
            return Err(ChunkError::Truncated);
        }
        let mut out = 0u64;
        let mut left = n;
        while left > 0 {
            let byte = self.bytes[self.pos / 8];
            let offset = (self.pos % 8) as u8;
            let avail = 8 - offset;
            let take = left.min(avail);
            let bits = (byte >> (avail - take)) & ((1u16 << take) - 1) as u8;
            out = (out << take) | bits as u64;
            self.pos += take as usize;
            left -= take;
        }
        Ok(out)
    }

    fn read_uvarint(&mut self) -> Result<u64, ChunkError> {
        debug_assert_eq!(self.pos % 8, 0);
        let (v, n) = read_uvarint(&self.bytes[self.pos / 8..]).ok_or(ChunkError::Truncated)?;
        self.pos += n * 8;
        Ok(v)
    }
}

pub(crate) fn write_uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Returns the value and the bytes used, or `None` when `buf` ends first.
pub(crate) fn read_uvarint(buf: &[u8]) -> Option<(u64, usize)> {
    let mut v = 0u64;
    for (i, &b) in buf.iter().enumerate().take(10) {
        v |= ((b & 0x7f) as u64) << (7 * i);
        if b < 0x80 {
            return Some((v, i + 1));
        }
    }
    None
}

pub(crate) fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

pub(crate) fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// A chunk being appended to. `t` must grow strictly; the head routes
/// anything else elsewhere before it gets here.
#[derive(Clone)]
pub struct XorAppender {
    bytes: Vec<u8>,
    /// Free bits in the last byte of `bytes`.
    free: u8,
    count: u16,
    min_t: i64,
    last_t: i64,
    last_delta: i64,
    last_v: u64,
    leading: u8,
    trailing: u8,
}

impl Default for XorAppender {
    fn default() -> Self {
        XorAppender::new()
    }
}

impl fmt::Debug for XorAppender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("XorAppender")
            .field("count", &self.count)
            .field("min_t", &self.min_t)
            .field("last_t", &self.last_t)
            .field("bytes", &self.bytes.len())
            .finish()
    }
}

impl XorAppender {
    pub fn new() -> Self {
        XorAppender {
            bytes: vec![0; HEADER_BYTES],
            free: 0,
            count: 0,
            min_t: 0,
            last_t: 0,
            last_delta: 0,
            last_v: 0,
            leading: u8::MAX,
            trailing: 0,
        }
    }

    fn bits(&mut self) -> BitWriter<'_> {
        BitWriter {
            bytes: &mut self.bytes,
            free: &mut self.free,
        }
    }

    pub fn len(&self) -> u16 {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn is_full(&self) -> bool {
        self.count >= SAMPLES_PER_CHUNK
    }

    pub fn min_time(&self) -> i64 {
        self.min_t
    }

    pub fn max_time(&self) -> i64 {
        self.last_t
    }

    pub fn last_value(&self) -> f64 {
        f64::from_bits(self.last_v)
    }

    pub fn append(&mut self, t: i64, v: f64) {
        let v = v.to_bits();
        match self.count {
            0 => {
                let mut tmp = Vec::with_capacity(10);
                write_uvarint(&mut tmp, zigzag(t));
                self.bits().write_byte_aligned(&tmp);
                self.bits().write_bits(v, 64);
                self.min_t = t;
            }
            1 => {
                let delta = t.wrapping_sub(self.last_t);
                // The varint is not byte aligned here; write it bit by bit.
                let mut tmp = Vec::with_capacity(10);
                write_uvarint(&mut tmp, zigzag(delta));
                for b in tmp {
                    self.bits().write_bits(b as u64, 8);
                }
                self.last_delta = delta;
                self.write_value(v);
            }
            _ => {
                let delta = t.wrapping_sub(self.last_t);
                let dod = delta.wrapping_sub(self.last_delta);
                match dod {
                    0 => self.bits().write_bit(false),
                    -8192..=8191 => {
                        self.bits().write_bits(0b10, 2);
                        self.bits().write_bits(dod as u64, 14);
                    }
                    -65536..=65535 => {
                        self.bits().write_bits(0b110, 3);
                        self.bits().write_bits(dod as u64, 17);
                    }
                    -524288..=524287 => {
                        self.bits().write_bits(0b1110, 4);
                        self.bits().write_bits(dod as u64, 20);
                    }
                    _ => {
                        self.bits().write_bits(0b1111, 4);
                        self.bits().write_bits(dod as u64, 64);
                    }
                }
                self.last_delta = delta;
                self.write_value(v);
            }
        }
        self.last_t = t;
        self.last_v = v;
        self.count += 1;
        let [hi, lo] = self.count.to_be_bytes();
        self.bytes[0] = hi;
        self.bytes[1] = lo;
    }

    fn write_value(&mut self, v: u64) {
        let xor = v ^ self.last_v;
        if xor == 0 {
            self.bits().write_bit(false);
            return;
        }
        self.bits().write_bit(true);
        // Five bits hold at most 31 leading zeros.
        let leading = (xor.leading_zeros() as u8).min(31);
        let trailing = xor.trailing_zeros() as u8;
        if self.leading != u8::MAX && leading >= self.leading && trailing >= self.trailing {
            self.bits().write_bit(false);
            let width = 64 - self.leading - self.trailing;
            let meaningful = xor >> self.trailing;
            self.bits().write_bits(meaningful, width);
        } else {
            self.leading = leading;
            self.trailing = trailing;
            let width = 64 - leading - trailing;
            self.bits().write_bit(true);
            self.bits().write_bits(leading as u64, 5);
            // A width of 64 does not fit six bits; 0 stands for it.
            self.bits().write_bits((width % 64) as u64, 6);
            self.bits().write_bits(xor >> trailing, width);
        }
    }

    /// The encoded chunk so far (valid to decode at any time).
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Closes the chunk, giving up spare capacity.
    pub fn finish(self) -> Box<[u8]> {
        self.bytes.into_boxed_slice()
    }

    /// Bytes held, including spare capacity.
    pub fn allocated(&self) -> usize {
        self.bytes.capacity()
    }
}

/// Decodes a chunk produced by [`XorAppender`].
pub struct XorIter<'a> {
    reader: BitReader<'a>,
    total: u16,
    read: u16,
    t: i64,
    delta: i64,
    v: u64,
    leading: u8,
    trailing: u8,
}

impl<'a> XorIter<'a> {
    pub fn new(chunk: &'a [u8]) -> Result<Self, ChunkError> {
        if chunk.len() < HEADER_BYTES {
            return Err(ChunkError::Truncated);
        }
        let total = u16::from_be_bytes([chunk[0], chunk[1]]);
        if total > 0 && chunk.len() == HEADER_BYTES {
            return Err(ChunkError::BadHeader(total));
        }
        Ok(XorIter {
            reader: BitReader {
                bytes: chunk,
                pos: HEADER_BYTES * 8,
            },
            total,
            read: 0,
            t: 0,
            delta: 0,
            v: 0,
            leading: 0,
            trailing: 0,
        })
    }

    pub fn sample_count(&self) -> u16 {
        self.total
    }

    fn next_sample(&mut self) -> Result<(i64, f64), ChunkError> {
        match self.read {
            0 => {
                self.t = unzigzag(self.reader.read_uvarint()?);
                self.v = self.reader.read_bits(64)?;
            }
            1 => {
                let mut v = 0u64;
                let mut shift = 0;
                loop {
                    let b = self.reader.read_bits(8)?;
                    v |= (b & 0x7f) << shift;
                    if b < 0x80 {
                        break;
                    }
                    shift += 7;
                    if shift >= 70 {
                        return Err(ChunkError::Truncated);
                    }
                }
                self.delta = unzigzag(v);
                self.t = self.t.wrapping_add(self.delta);
                self.read_value()?;
            }
            _ => {
                let mut prefix = 0u8;
                while prefix < 4 && self.reader.read_bit()? {
                    prefix += 1;
                }
                let dod = match prefix {
                    0 => 0,
                    1 => sign_extend(self.reader.read_bits(14)?, 14),
                    2 => sign_extend(self.reader.read_bits(17)?, 17),
                    3 => sign_extend(self.reader.read_bits(20)?, 20),
                    _ => self.reader.read_bits(64)? as i64,
                };
                self.delta = self.delta.wrapping_add(dod);
                self.t = self.t.wrapping_add(self.delta);
                self.read_value()?;
            }
        }
        self.read += 1;
        Ok((self.t, f64::from_bits(self.v)))
    }

    fn read_value(&mut self) -> Result<(), ChunkError> {
        if !self.reader.read_bit()? {
            return Ok(());
        }
        if self.reader.read_bit()? {
            self.leading = self.reader.read_bits(5)? as u8;
            let width = match self.reader.read_bits(6)? as u8 {
                0 => 64,
                w => w,
            };
            if self.leading + width > 64 {
                return Err(ChunkError::Truncated);
            }
            self.trailing = 64 - self.leading - width;
        }
        let width = 64 - self.leading - self.trailing;
        let bits = self.reader.read_bits(width)?;
        self.v ^= bits << self.trailing;
        Ok(())
    }
}

fn sign_extend(v: u64, bits: u32) -> i64 {
    let shift = 64 - bits;
    ((v << shift) as i64) >> shift
}

impl Iterator for XorIter<'_> {
    type Item = Result<(i64, f64), ChunkError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.read >= self.total {
            return None;
        }
        match self.next_sample() {
            Ok(s) => Some(Ok(s)),
            Err(e) => {
                // A damaged chunk yields its error once, then ends.
                self.read = self.total;
                Some(Err(e))
            }
        }
    }
}

/// Decodes a whole chunk, appending the samples in `[mint, maxt]` to `out`.
pub fn decode_into(
    chunk: &[u8],
    mint: i64,
    maxt: i64,
    out: &mut Vec<(i64, f64)>,
) -> Result<(), ChunkError> {
    for s in XorIter::new(chunk)? {
        let (t, v) = s?;
        if t > maxt {
            break;
        }
        if t >= mint {
            out.push((t, v));
        }
    }
    Ok(())
}

/// A finished chunk with the times of its first and last sample.
pub struct ClosedChunk {
    pub min_t: i64,
    pub max_t: i64,
    pub bytes: Box<[u8]>,
}

impl ClosedChunk {
    /// Closes an appender's chunk.
    pub fn from_appender(app: XorAppender) -> ClosedChunk {
        ClosedChunk {
            min_t: app.min_time(),
            max_t: app.max_time(),
            bytes: app.finish(),
        }
    }
}

/// Encodes sorted samples (at most [`SAMPLES_PER_CHUNK`]) into one chunk.
pub fn encode(samples: &[(i64, f64)]) -> ClosedChunk {
    let mut app = XorAppender::new();
    for &(t, v) in samples {
        app.append(t, v);
    }
    ClosedChunk::from_appender(app)
}

/// Encodes sorted samples into as many chunks as they need.
pub fn encode_all(samples: &[(i64, f64)]) -> Vec<ClosedChunk> {
    samples
        .chunks(SAMPLES_PER_CHUNK as usize)
        .map(encode)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn roundtrip(samples: &[(i64, f64)]) -> Vec<(i64, f64)> {
        let mut app = XorAppender::new();
        for &(t, v) in samples {
            app.append(t, v);
        }
        XorIter::new(app.bytes())
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap()
    }

    fn same_bits(a: &[(i64, f64)], b: &[(i64, f64)]) -> bool {
        a.len() == b.len()
            && a.iter()
                .zip(b)
                .all(|(x, y)| x.0 == y.0 && x.1.to_bits() == y.1.to_bits())
    }

    #[test]
    fn regular_scrapes_of_a_constant_cost_about_two_bits_a_sample() {
        let samples: Vec<_> = (0..120)
            .map(|i| (1_700_000_000_000 + i * 10_000, 1.0))
            .collect();
        let mut app = XorAppender::new();
        for &(t, v) in &samples {
            app.append(t, v);
        }
        // header 2 + first t varint 6 + value 8 + second delta 3 + ~2 bits * 119.
        assert!(
            app.bytes().len() < 2 + 6 + 8 + 3 + 32,
            "{} bytes",
            app.bytes().len()
        );
        assert!(same_bits(&roundtrip(&samples), &samples));
    }

    #[test]
    fn special_values_survive_bit_for_bit() {
        let stale = f64::from_bits(0x7ff0_0000_0000_0002);
        let samples = vec![
            (-5, f64::NAN),
            (0, stale),
            (1, f64::INFINITY),
            (2, f64::NEG_INFINITY),
            (3, -0.0),
            (4, f64::MIN_POSITIVE),
            (i64::MAX / 4, f64::MAX),
            (i64::MAX / 2, 0.0),
        ];
        assert!(same_bits(&roundtrip(&samples), &samples));
    }

    #[test]
    fn a_truncated_chunk_is_an_error_not_a_panic() {
        let samples: Vec<_> = (0..50).map(|i| (i * 1000, i as f64 * 1.5)).collect();
        let mut app = XorAppender::new();
        for &(t, v) in &samples {
            app.append(t, v);
        }
        let bytes = app.bytes();
        for cut in 0..bytes.len() {
            let got: Vec<_> = match XorIter::new(&bytes[..cut]) {
                Ok(it) => it.collect(),
                Err(_) => continue,
            };
            assert!(
                got.iter().any(|r| r.is_err()),
                "cut at {cut} decoded cleanly"
            );
        }
    }

    proptest! {
        #[test]
        fn what_goes_in_comes_out(
            start in any::<i32>(),
            steps in proptest::collection::vec((1i64..10_000_000, any::<u64>(), 0u8..4), 0..300),
        ) {
            let mut t = start as i64 * 1000;
            let mut v = 0.0f64;
            let mut samples = Vec::new();
            for (dt, bits, kind) in steps {
                t += dt;
                v = match kind {
                    0 => v,
                    1 => v + (bits % 1000) as f64,
                    2 => f64::from_bits(bits),
                    _ => (bits % 100_000) as f64 / 7.0,
                };
                samples.push((t, v));
            }
            for part in samples.chunks(SAMPLES_PER_CHUNK as usize) {
                prop_assert!(same_bits(&roundtrip(part), part));
            }
            let chunks = encode_all(&samples);
            let mut back = Vec::new();
            for c in &chunks {
                decode_into(&c.bytes, i64::MIN, i64::MAX, &mut back).unwrap();
            }
            prop_assert!(same_bits(&back, &samples));
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Ok(it) = XorIter::new(&bytes) {
                for s in it {
                    if s.is_err() { break; }
                }
            }
        }
    }
}

//! Immutable on-disk blocks: the samples of a time range, written once.
//!
//! A block is a directory named by its id with three files:
//! - `chunks`: chunk frames, `uvarint len | XOR chunk | crc32c u32 LE`;
//! - `index`: a magic, the sorted symbol table, then every series sorted by
//!   labels (label symbol ids, then its chunks as min time, max time and
//!   offset into `chunks`), ending with a crc32c of all that precedes;
//! - `meta.json`: id, time range, counts, compaction level and sources.
//!
//! A block is written under `<id>.tmp` and renamed into place after every
//! file is synced, so a crash leaves either the whole block or a `.tmp`
//! directory that the next open removes.

use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use lookout_protocol::model::Labels;
use memmap2::Mmap;
use serde::{Deserialize, Serialize};

use crate::chunk::{self, read_uvarint, unzigzag, write_uvarint, zigzag};
use crate::head::ClosedChunk;
use crate::index::{Matcher, MemIndex, SeriesId, SymbolId, Symbols, labels_from_symbols};

const INDEX_MAGIC: &[u8; 6] = b"LKIDX1";

#[derive(Debug, thiserror::Error)]
pub enum BlockError {
    #[error("block {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("block {path}: {what}")]
    Corrupt { path: PathBuf, what: String },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> BlockError + '_ {
    move |source| BlockError::Io {
        path: path.to_path_buf(),
        source,
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BlockMeta {
    pub id: String,
    /// Oldest sample, milliseconds, inclusive.
    pub min_time: i64,
    /// Newest sample, milliseconds, inclusive.
    pub max_time: i64,
    pub num_series: u64,
    pub num_samples: u64,
    pub num_chunks: u64,
    /// 1 for a block cut from the head; one more than its highest source
    /// for a compacted block.
    pub level: u32,
    /// Ids of the level-1 blocks whose data this block holds.
    pub sources: Vec<String>,
}

/// A new block id: sortable by creation time, unique within the process.
pub fn new_block_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{now:013}-{:06}-{:05}", n, std::process::id() % 100_000)
}

pub struct ChunkMeta {
    pub min_t: i64,
    pub max_t: i64,
    pub offset: u64,
}

struct BlockSeries {
    labels: Box<[SymbolId]>,
    chunks: Vec<ChunkMeta>,
}

/// An open block: its index in memory, its chunks mapped.
pub struct Block {
    pub dir: PathBuf,
    pub meta: BlockMeta,
    symbols: Symbols,
    index: MemIndex,
    series: Vec<BlockSeries>,
    chunks: Mmap,
    pub size_bytes: u64,
}

/// Writes series (sorted by labels, chunks in time order) as a new block
/// under `parent`. Returns the metadata of what was written.
pub fn write_block(
    parent: &Path,
    series: impl Iterator<Item = (Labels, Vec<ClosedChunk>)>,
    level: u32,
    sources: Vec<String>,
    id: Option<String>,
) -> Result<BlockMeta, BlockError> {
    let id = id.unwrap_or_else(new_block_id);
    let tmp = parent.join(format!("{id}.tmp"));
    let _ = fs::remove_dir_all(&tmp);
    fs::create_dir_all(&tmp).map_err(io_err(&tmp))?;

    let chunks_path = tmp.join("chunks");
    let mut chunks_out = BufWriter::with_capacity(
        1 << 20,
        File::create(&chunks_path).map_err(io_err(&chunks_path))?,
    );
    let mut offset = 0u64;
    let mut symbols = Symbols::default();
    let mut entries: Vec<(Vec<SymbolId>, Vec<ChunkMeta>)> = Vec::new();
    let mut meta = BlockMeta {
        id: id.clone(),
        min_time: i64::MAX,
        max_time: i64::MIN,
        num_series: 0,
        num_samples: 0,
        num_chunks: 0,
        level,
        sources,
    };
    let mut frame = Vec::new();
    for (labels, chunks) in series {
        if chunks.is_empty() {
            continue;
        }
        let label_ids: Vec<SymbolId> = labels
            .iter()
            .flat_map(|l| [symbols.intern(&l.name), symbols.intern(&l.value)])
            .collect();
        let mut metas = Vec::with_capacity(chunks.len());
        for c in chunks {
            frame.clear();
            write_uvarint(&mut frame, c.bytes.len() as u64);
            frame.extend_from_slice(&c.bytes);
            frame.extend_from_slice(&crc32c::crc32c(&c.bytes).to_le_bytes());
            chunks_out.write_all(&frame).map_err(io_err(&chunks_path))?;
            metas.push(ChunkMeta {
                min_t: c.min_t,
                max_t: c.max_t,
                offset,
            });
            offset += frame.len() as u64;
            meta.num_samples += u16::from_be_bytes([c.bytes[0], c.bytes[1]]) as u64;
            meta.num_chunks += 1;
            meta.min_time = meta.min_time.min(c.min_t);
            meta.max_time = meta.max_time.max(c.max_t);
        }
        meta.num_series += 1;
        entries.push((label_ids, metas));
    }
    let f = chunks_out.into_inner().map_err(|e| BlockError::Io {
        path: chunks_path.clone(),
        source: e.into_error(),
    })?;
    f.sync_all().map_err(io_err(&chunks_path))?;

    // Symbols are written sorted; series refer to them by position.
    let mut order: Vec<(String, SymbolId)> = symbols
        .iter()
        .enumerate()
        .map(|(i, s)| (s.to_string(), i as SymbolId))
        .collect();
    order.sort();
    let mut remap = vec![0u32; order.len()];
    for (pos, (_, old)) in order.iter().enumerate() {
        remap[*old as usize] = pos as u32;
    }
    let mut index = Vec::with_capacity(entries.len() * 64);
    index.extend_from_slice(INDEX_MAGIC);
    write_uvarint(&mut index, order.len() as u64);
    for (s, _) in &order {
        write_uvarint(&mut index, s.len() as u64);
        index.extend_from_slice(s.as_bytes());
    }
    write_uvarint(&mut index, entries.len() as u64);
    for (labels, metas) in &entries {
        write_uvarint(&mut index, labels.len() as u64 / 2);
        for id in labels {
            write_uvarint(&mut index, remap[*id as usize] as u64);
        }
        write_uvarint(&mut index, metas.len() as u64);
        let mut prev_max = 0i64;
        let mut prev_off = 0u64;
        for m in metas {
            write_uvarint(&mut index, zigzag(m.min_t - prev_max));
            write_uvarint(&mut index, (m.max_t - m.min_t) as u64);
            write_uvarint(&mut index, m.offset - prev_off);
            prev_max = m.max_t;
            prev_off = m.offset;
        }
    }
    let crc = crc32c::crc32c(&index);
    index.extend_from_slice(&crc.to_le_bytes());
    let index_path = tmp.join("index");
    write_synced(&index_path, &index)?;
    let meta_path = tmp.join("meta.json");
    let json = serde_json::to_vec_pretty(&meta).map_err(|e| BlockError::Corrupt {
        path: meta_path.clone(),
        what: e.to_string(),
    })?;
    write_synced(&meta_path, &json)?;
    sync_dir(&tmp)?;
    let final_dir = parent.join(&id);
    fs::rename(&tmp, &final_dir).map_err(io_err(&final_dir))?;
    sync_dir(parent)?;
    Ok(meta)
}

fn write_synced(path: &Path, data: &[u8]) -> Result<(), BlockError> {
    let mut f = File::create(path).map_err(io_err(path))?;
    f.write_all(data).map_err(io_err(path))?;
    f.sync_all().map_err(io_err(path))
}

fn sync_dir(dir: &Path) -> Result<(), BlockError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

impl Block {
    pub fn open(dir: &Path) -> Result<Block, BlockError> {
        let corrupt = |what: &str| BlockError::Corrupt {
            path: dir.to_path_buf(),
            what: what.to_string(),
        };
        let meta_path = dir.join("meta.json");
        let meta: BlockMeta =
            serde_json::from_slice(&fs::read(&meta_path).map_err(io_err(&meta_path))?)
                .map_err(|e| corrupt(&format!("meta.json: {e}")))?;
        let index_path = dir.join("index");
        let mut index = Vec::new();
        File::open(&index_path)
            .and_then(|mut f| f.read_to_end(&mut index))
            .map_err(io_err(&index_path))?;
        if index.len() < INDEX_MAGIC.len() + 4 || &index[..INDEX_MAGIC.len()] != INDEX_MAGIC {
            return Err(corrupt("index has no header"));
        }
        let (body, crc) = index.split_at(index.len() - 4);
        if crc32c::crc32c(body) != u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]) {
            return Err(corrupt("index checksum mismatch"));
        }
        let mut pos = INDEX_MAGIC.len();
        let uv = |pos: &mut usize| -> Result<u64, BlockError> {
            let (v, n) = read_uvarint(&body[*pos..]).ok_or_else(|| corrupt("index truncated"))?;
            *pos += n;
            Ok(v)
        };
        let nsym = uv(&mut pos)? as usize;
        let mut symbols = Symbols::default();
        for _ in 0..nsym {
            let len = uv(&mut pos)? as usize;
            let s = body
                .get(pos..pos.saturating_add(len))
                .and_then(|b| std::str::from_utf8(b).ok())
                .ok_or_else(|| corrupt("bad symbol"))?;
            symbols.intern(s);
            pos += len;
        }
        let nseries = uv(&mut pos)? as usize;
        let mut series = Vec::with_capacity(nseries.min(body.len()));
        let mut mem_index = MemIndex::default();
        for i in 0..nseries {
            let nlabels = uv(&mut pos)? as usize;
            if nlabels > body.len() {
                return Err(corrupt("label count past the end of the index"));
            }
            let mut labels = Vec::with_capacity(nlabels * 2);
            for _ in 0..nlabels * 2 {
                let id = uv(&mut pos)?;
                if id as usize >= nsym {
                    return Err(corrupt("symbol reference out of range"));
                }
                labels.push(id as SymbolId);
            }
            let nchunks = uv(&mut pos)? as usize;
            let mut chunks = Vec::with_capacity(nchunks.min(1 << 16));
            let mut prev_max = 0i64;
            let mut prev_off = 0u64;
            for _ in 0..nchunks {
                let min_t = prev_max.wrapping_add(unzigzag(uv(&mut pos)?));
                let max_t = min_t.wrapping_add(uv(&mut pos)? as i64);
                let offset = prev_off.wrapping_add(uv(&mut pos)?);
                chunks.push(ChunkMeta {
                    min_t,
                    max_t,
                    offset,
                });
                prev_max = max_t;
                prev_off = offset;
            }
            mem_index.add(i as SeriesId, &labels);
            series.push(BlockSeries {
                labels: labels.into_boxed_slice(),
                chunks,
            });
        }
        let chunks_path = dir.join("chunks");
        let file = File::open(&chunks_path).map_err(io_err(&chunks_path))?;
        // Safety: block files are never modified after the rename that
        // published them; the map lives as long as the block.
        let chunks = unsafe { Mmap::map(&file) }.map_err(io_err(&chunks_path))?;
        let size_bytes = index.len() as u64
            + chunks.len() as u64
            + fs::metadata(&meta_path).map(|m| m.len()).unwrap_or(0);
        Ok(Block {
            dir: dir.to_path_buf(),
            meta,
            symbols,
            index: mem_index,
            series,
            chunks,
            size_bytes,
        })
    }

    /// Orders blocks by when their data was first written: the oldest
    /// source block's id.
    pub fn age_key(&self) -> &str {
        self.meta
            .sources
            .iter()
            .min()
            .map_or(self.meta.id.as_str(), String::as_str)
    }

    pub fn overlaps(&self, mint: i64, maxt: i64) -> bool {
        self.meta.min_time <= maxt && self.meta.max_time >= mint
    }

    pub fn select_ids(&self, matchers: &[Matcher]) -> Vec<SeriesId> {
        self.index.select(&self.symbols, matchers)
    }

    pub fn labels(&self, id: SeriesId) -> Labels {
        labels_from_symbols(&self.symbols, &self.series[id as usize].labels)
    }

    pub fn label_names(&self) -> impl Iterator<Item = &str> {
        self.index.label_names(&self.symbols)
    }

    pub fn label_values(&self, name: &str) -> impl Iterator<Item = &str> {
        self.index.label_values(&self.symbols, name)
    }

    /// True when the series has a chunk overlapping `[mint, maxt]`.
    pub fn has_data(&self, id: SeriesId, mint: i64, maxt: i64) -> bool {
        self.series[id as usize]
            .chunks
            .iter()
            .any(|c| c.max_t >= mint && c.min_t <= maxt)
    }

    fn chunk_bytes(&self, offset: u64) -> Result<&[u8], BlockError> {
        let corrupt = |what: &str| BlockError::Corrupt {
            path: self.dir.join("chunks"),
            what: format!("{what} at offset {offset}"),
        };
        let at = &self
            .chunks
            .get(offset as usize..)
            .ok_or_else(|| corrupt("chunk reference past the end"))?;
        let (len, n) = read_uvarint(at).ok_or_else(|| corrupt("truncated chunk"))?;
        let end = usize::try_from(len)
            .ok()
            .and_then(|l| n.checked_add(l))
            .filter(|&e| e.checked_add(4).is_some_and(|e4| e4 <= at.len()))
            .ok_or_else(|| corrupt("truncated chunk"))?;
        let data = &at[n..end];
        let crc = &at[end..end + 4];
        if crc32c::crc32c(data) != u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]) {
            return Err(corrupt("chunk checksum mismatch"));
        }
        Ok(data)
    }

    /// Appends the samples of series `id` in `[mint, maxt]` to `out`.
    pub fn samples(
        &self,
        id: SeriesId,
        mint: i64,
        maxt: i64,
        out: &mut Vec<(i64, f64)>,
    ) -> Result<(), BlockError> {
        for c in &self.series[id as usize].chunks {
            if c.max_t < mint || c.min_t > maxt {
                continue;
            }
            let data = self.chunk_bytes(c.offset)?;
            chunk::decode_into(data, mint, maxt, out).map_err(|e| BlockError::Corrupt {
                path: self.dir.join("chunks"),
                what: format!("chunk at {}: {e}", c.offset),
            })?;
        }
        Ok(())
    }

    /// The raw chunks of series `id`, for compaction.
    pub fn raw_chunks(&self, id: SeriesId) -> Result<Vec<ClosedChunk>, BlockError> {
        self.series[id as usize]
            .chunks
            .iter()
            .map(|c| {
                Ok(ClosedChunk {
                    min_t: c.min_t,
                    max_t: c.max_t,
                    bytes: self.chunk_bytes(c.offset)?.into(),
                })
            })
            .collect()
    }
}

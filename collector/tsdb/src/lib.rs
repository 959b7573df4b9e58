//! Lookout's embedded time-series store.
//!
//! Data flows `append` → [`head`] (in memory, XOR [`chunk`]s) and [`wal`]
//! (fsynced before the append returns) → [`block`]s cut from the head and
//! compacted on disk. Reads go through the [`Querier`] trait, which merges
//! blocks and head and answers label [`Matcher`]s from the [`index`].

pub mod block;
pub mod chunk;
pub mod db;
pub mod head;
pub mod index;
pub mod wal;

pub use db::{AppendReport, Db, Error, MaintenanceReport, Options, Querier, Series, Stats};
pub use index::{MatchKind, Matcher};

//! openraft wiring: the type configuration, the RocksDB log store, the state
//! machine over [`crate::meta::MetaState`], and the tonic transport. openraft
//! types stay inside this module; the rest of the controller sees [`Raft`],
//! [`NodeId`] and the shared applied state.

// openraft's StorageError and RPCError are large and fixed by its traits; boxing
// them in our helpers would only add conversions at every trait boundary.
#![allow(clippy::result_large_err)]

pub mod log_store;
pub mod network;
pub mod proposals;
pub mod read_barrier;
pub mod read_lease;
pub mod service;
pub mod state_machine;

use std::io::Cursor;
use std::path::Path;
use std::sync::Arc;

use rocksdb::{ColumnFamilyDescriptor, Options, DB};

use crate::error::MetaError;
use crate::events::Command;

/// Outcome of applying one command; errors are deterministic domain errors.
pub type ApplyResult = Result<(), MetaError>;

/// What applying one log entry answers: one result per command it carries
/// (one, or many for an `Event::Batch`). Never stored, so its shape is free.
pub type EntryResults = Vec<ApplyResult>;

openraft::declare_raft_types!(
    pub TypeConfig:
        D = Command,
        R = EntryResults,
);

pub type NodeId = u64;
pub type Raft = openraft::Raft<TypeConfig>;
pub type StorageError = openraft::StorageError<NodeId>;

/// Starts a batch with `first` and adds what is already queued, up to `max`
/// items: what the read barrier and the proposal batcher hand on together.
pub(crate) fn take_batch<T>(queue: &mut tokio::sync::mpsc::Receiver<T>, first: T, max: usize) -> Vec<T> {
    let mut batch = vec![first];
    while batch.len() < max {
        match queue.try_recv() {
            Ok(item) => batch.push(item),
            Err(_) => break,
        }
    }
    batch
}

pub(crate) const CF_LOGS: &str = "logs";
pub(crate) const CF_META: &str = "meta";
pub(crate) const CF_SNAPSHOT: &str = "snapshot";

/// Opens (or creates) the controller's RocksDB with one column family each
/// for log entries, Raft metadata (vote, committed, purged) and snapshots.
pub fn open_db(dir: &Path) -> Result<Arc<DB>, rocksdb::Error> {
    let mut opts = Options::default();
    opts.create_if_missing(true);
    opts.create_missing_column_families(true);
    let cfs = [CF_LOGS, CF_META, CF_SNAPSHOT].map(|name| ColumnFamilyDescriptor::new(name, Options::default()));
    Ok(Arc::new(DB::open_cf_descriptors(&opts, dir, cfs)?))
}

pub(crate) fn io_error(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

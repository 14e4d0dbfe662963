//! The Raft log in RocksDB: entries keyed by big-endian index in CF `logs`,
//! vote / committed / last-purged in CF `meta`.
//!
//! Durability: appends and votes are written with `sync = true` (WAL fsync)
//! and openraft is told an append is flushed only after that write returned,
//! so an acknowledged entry survives power loss. Blocking RocksDB calls run on
//! the blocking pool, never on the reactor.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{AnyError, Entry, LogId, LogState, OptionalSend, RaftLogReader, StorageIOError, Vote};
use rocksdb::{Direction, IteratorMode, WriteBatch, WriteOptions, DB};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{io_error, NodeId, StorageError, TypeConfig, CF_LOGS, CF_META};

const KEY_VOTE: &[u8] = b"vote";
const KEY_COMMITTED: &[u8] = b"committed";
const KEY_LAST_PURGED: &[u8] = b"last_purged";

#[derive(Clone)]
pub struct LogStore {
    db: Arc<DB>,
}

fn index_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

fn read_err(e: impl std::fmt::Display) -> StorageError {
    StorageIOError::read_logs(AnyError::new(&io_error(e))).into()
}

fn write_err(e: impl std::fmt::Display) -> StorageError {
    StorageIOError::write_logs(AnyError::new(&io_error(e))).into()
}

impl LogStore {
    pub fn new(db: Arc<DB>) -> Self {
        Self { db }
    }

    fn get_meta<T: DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, StorageError> {
        let cf = self.db.cf_handle(CF_META).ok_or_else(|| read_err("missing column family meta"))?;
        let bytes = tokio::task::block_in_place(|| self.db.get_cf(cf, key)).map_err(read_err)?;
        bytes.map(|b| bincode::deserialize(&b).map_err(read_err)).transpose()
    }

    /// Writes one metadata key durably (WAL fsync) off the reactor.
    async fn put_meta_sync<T: Serialize>(&self, key: &'static [u8], value: &T) -> Result<(), StorageError> {
        self.put_meta(key, value, true).await
    }

    /// Writes one metadata key off the reactor; `sync`: wait for the WAL fsync.
    async fn put_meta<T: Serialize>(&self, key: &'static [u8], value: &T, sync: bool) -> Result<(), StorageError> {
        let bytes = bincode::serialize(value).map_err(write_err)?;
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || {
            let cf = db.cf_handle(CF_META).ok_or_else(|| write_err("missing column family meta"))?;
            let mut opts = WriteOptions::default();
            opts.set_sync(sync);
            db.put_cf_opt(cf, key, bytes, &opts).map_err(write_err)
        })
        .await
        .map_err(write_err)?
    }

    fn last_entry_log_id(&self) -> Result<Option<LogId<NodeId>>, StorageError> {
        let cf = self.db.cf_handle(CF_LOGS).ok_or_else(|| read_err("missing column family logs"))?;
        let last = tokio::task::block_in_place(|| self.db.iterator_cf(cf, IteratorMode::End).next());
        match last {
            None => Ok(None),
            Some(item) => {
                let (_, value) = item.map_err(read_err)?;
                let entry: Entry<TypeConfig> = bincode::deserialize(&value).map_err(read_err)?;
                Ok(Some(entry.log_id))
            }
        }
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError> {
        let start = match range.start_bound() {
            Bound::Included(&i) => i,
            Bound::Excluded(&i) => i + 1,
            Bound::Unbounded => 0,
        };
        let cf = self.db.cf_handle(CF_LOGS).ok_or_else(|| read_err("missing column family logs"))?;
        tokio::task::block_in_place(|| {
            let mut entries = Vec::new();
            let iter = self.db.iterator_cf(cf, IteratorMode::From(&index_key(start), Direction::Forward));
            for item in iter {
                let (key, value) = item.map_err(read_err)?;
                let index = u64::from_be_bytes(key.as_ref().try_into().map_err(read_err)?);
                if !range.contains(&index) {
                    break;
                }
                entries.push(bincode::deserialize(&value).map_err(read_err)?);
            }
            Ok(entries)
        })
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let last_purged_log_id: Option<LogId<NodeId>> = self.get_meta(KEY_LAST_PURGED)?;
        let last_log_id = self.last_entry_log_id()?.or(last_purged_log_id);
        Ok(LogState { last_purged_log_id, last_log_id })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError> {
        self.put_meta_sync(KEY_VOTE, vote).await
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError> {
        self.get_meta(KEY_VOTE)
    }

    async fn save_committed(&mut self, committed: Option<LogId<NodeId>>) -> Result<(), StorageError> {
        // Not synced: it only lets a restart re-apply up to here without
        // waiting for the leader. Losing it in a crash loses nothing (the
        // entries are in the synced log, and the leader re-sends the commit
        // index), so it need not cost an fsync on every commit.
        self.put_meta(KEY_COMMITTED, &committed, false).await
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>, StorageError> {
        Ok(self.get_meta::<Option<LogId<NodeId>>>(KEY_COMMITTED)?.flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut batch = WriteBatch::default();
        {
            let cf = self.db.cf_handle(CF_LOGS).ok_or_else(|| write_err("missing column family logs"))?;
            for entry in entries {
                let bytes = bincode::serialize(&entry).map_err(write_err)?;
                batch.put_cf(cf, index_key(entry.log_id.index), bytes);
            }
        }
        let db = self.db.clone();
        // One synced write per append. openraft 0.9 appends each client
        // write on its own and waits for its flush before the next, so the
        // batching happens before the log: `raft::proposals` puts concurrent
        // proposals into one entry. (A follower gets every entry the leader
        // sent in one AppendEntries here at once.)
        let result = tokio::task::spawn_blocking(move || {
            let mut opts = WriteOptions::default();
            opts.set_sync(true);
            db.write_opt(batch, &opts).map_err(io_error)
        })
        .await
        .map_err(io_error)
        .and_then(|r| r);
        let failed = result.as_ref().err().map(|e| e.to_string());
        callback.log_io_completed(result);
        match failed {
            Some(e) => Err(write_err(e)),
            None => Ok(()),
        }
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError> {
        self.delete_range(log_id.index, u64::MAX).await
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError> {
        // Record the purge point first: if we crash between the two writes the
        // log state still reads consistently (entries below it are ignored).
        self.put_meta_sync(KEY_LAST_PURGED, &log_id).await?;
        self.delete_range(0, log_id.index + 1).await
    }
}

impl LogStore {
    async fn delete_range(&self, from: u64, to: u64) -> Result<(), StorageError> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || {
            let cf = db.cf_handle(CF_LOGS).ok_or_else(|| write_err("missing column family logs"))?;
            let mut batch = WriteBatch::default();
            batch.delete_range_cf(cf, index_key(from), index_key(to));
            if to == u64::MAX {
                batch.delete_cf(cf, index_key(u64::MAX));
            }
            let mut opts = WriteOptions::default();
            opts.set_sync(true);
            db.write_opt(batch, &opts).map_err(write_err)
        })
        .await
        .map_err(write_err)?
    }
}

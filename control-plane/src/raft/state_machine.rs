//! The Raft state machine: applies log entries to the in-memory
//! [`MetaState`] and snapshots it to RocksDB (CF `snapshot`).
//!
//! The applied state lives behind a `std::sync::RwLock` shared with the API
//! layer: every critical section is a short, non-async read or fold, so a
//! blocking lock is cheaper than an async one. On start the state is loaded
//! from the last snapshot; openraft then re-applies the committed log tail.

use std::collections::{HashMap, VecDeque};
use std::io::Cursor;
use std::sync::{Arc, RwLock, RwLockReadGuard};

use openraft::storage::RaftStateMachine;
use openraft::{
    AnyError, BasicNode, Entry, EntryPayload, LogId, OptionalSend, RaftSnapshotBuilder, Snapshot, SnapshotMeta,
    StorageIOError, StoredMembership,
};
use rocksdb::{WriteOptions, DB};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{io_error, ApplyResult, EntryResults, NodeId, StorageError, TypeConfig, CF_SNAPSHOT};
use crate::events::{Command, Event};
use crate::meta::MetaState;

const KEY_SNAPSHOT: &[u8] = b"current";

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AppliedState {
    pub meta: MetaState,
    pub last_applied: Option<LogId<NodeId>>,
    pub last_membership: StoredMembership<NodeId, BasicNode>,
    pub requests: RequestLog,
}

/// Results of the most recent client requests, by request id, so a retried
/// request is answered without being applied twice. Bounded: the oldest
/// entries go first; a retry comes within seconds, not after 100,000 writes.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RequestLog {
    results: HashMap<Uuid, ApplyResult>,
    order: VecDeque<Uuid>,
}

const REQUEST_LOG_CAPACITY: usize = 100_000;

impl RequestLog {
    pub fn get(&self, id: &Uuid) -> Option<&ApplyResult> {
        self.results.get(id)
    }

    fn record(&mut self, id: Uuid, result: ApplyResult) {
        if self.results.insert(id, result).is_none() {
            self.order.push_back(id);
        }
        while self.order.len() > REQUEST_LOG_CAPACITY {
            if let Some(old) = self.order.pop_front() {
                self.results.remove(&old);
            }
        }
    }
}

/// The applied state, shared between the state machine and the readers.
#[derive(Clone, Default)]
pub struct SharedState(Arc<RwLock<AppliedState>>);

impl SharedState {
    pub fn read(&self) -> RwLockReadGuard<'_, AppliedState> {
        // A panic while holding the lock cannot leave a half-applied event
        // (apply checks before it mutates), so a poisoned lock is still sound.
        self.0.read().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, AppliedState> {
        self.0.write().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[derive(Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta<NodeId, BasicNode>,
    data: Vec<u8>,
}

#[derive(Clone)]
pub struct StateMachineStore {
    state: SharedState,
    db: Arc<DB>,
}

fn sm_err(e: impl std::fmt::Display) -> StorageError {
    StorageIOError::write_state_machine(AnyError::new(&io_error(e))).into()
}

fn snap_read_err(e: impl std::fmt::Display) -> StorageError {
    StorageIOError::read_snapshot(None, AnyError::new(&io_error(e))).into()
}

fn snap_write_err(e: impl std::fmt::Display) -> StorageError {
    StorageIOError::write_snapshot(None, AnyError::new(&io_error(e))).into()
}

impl StateMachineStore {
    /// Opens the state machine, restoring the last snapshot if there is one.
    pub fn open(db: Arc<DB>) -> Result<Self, StorageError> {
        let store = Self { state: SharedState::default(), db };
        if let Some(stored) = store.load_snapshot()? {
            let applied: AppliedState = bincode::deserialize(&stored.data).map_err(snap_read_err)?;
            *store.state.write() = applied;
        }
        Ok(store)
    }

    pub fn shared(&self) -> SharedState {
        self.state.clone()
    }

    fn load_snapshot(&self) -> Result<Option<StoredSnapshot>, StorageError> {
        let cf = self.db.cf_handle(CF_SNAPSHOT).ok_or_else(|| snap_read_err("missing column family snapshot"))?;
        let bytes = tokio::task::block_in_place(|| self.db.get_cf(cf, KEY_SNAPSHOT)).map_err(snap_read_err)?;
        bytes.map(|b| bincode::deserialize(&b).map_err(snap_read_err)).transpose()
    }

    async fn save_snapshot(&self, stored: &StoredSnapshot) -> Result<(), StorageError> {
        let bytes = bincode::serialize(stored).map_err(snap_write_err)?;
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || {
            let cf = db.cf_handle(CF_SNAPSHOT).ok_or_else(|| snap_write_err("missing column family snapshot"))?;
            let mut opts = WriteOptions::default();
            opts.set_sync(true);
            db.put_cf_opt(cf, KEY_SNAPSHOT, bytes, &opts).map_err(snap_write_err)
        })
        .await
        .map_err(snap_write_err)?
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachineStore {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let (data, last_log_id, last_membership) = {
            let state = self.state.read();
            let data = bincode::serialize(&*state).map_err(snap_write_err)?;
            (data, state.last_applied, state.last_membership.clone())
        };
        let snapshot_id = match last_log_id {
            Some(id) => format!("{}-{}-{}", id.leader_id.term, id.index, tessera_proto::now_ms()),
            None => format!("empty-{}", tessera_proto::now_ms()),
        };
        let meta = SnapshotMeta { last_log_id, last_membership, snapshot_id };
        let stored = StoredSnapshot { meta: meta.clone(), data };
        self.save_snapshot(&stored).await?;
        tracing::info!(snapshot = %meta.snapshot_id, bytes = stored.data.len(), "snapshot built");
        Ok(Snapshot { meta, snapshot: Box::new(Cursor::new(stored.data)) })
    }
}

/// Applies one command unless its request id was applied before, in which
/// case the first result is answered again.
fn apply_command(state: &mut AppliedState, command: &Command, index: u64) -> ApplyResult {
    if let Some(first) = command.request_id.and_then(|id| state.requests.get(&id)) {
        return first.clone();
    }
    let result = state.meta.apply(&command.event);
    if let Err(e) = &result {
        tracing::debug!(index, error = %e, "event refused by the state machine");
    }
    if let Some(id) = command.request_id {
        state.requests.record(id, result.clone());
    }
    result
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotBuilder = Self;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, StoredMembership<NodeId, BasicNode>), StorageError> {
        let state = self.state.read();
        Ok((state.last_applied, state.last_membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<EntryResults>, StorageError>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut state = self.state.write();
        let mut results = Vec::new();
        for entry in entries {
            state.last_applied = Some(entry.log_id);
            let result = match entry.payload {
                EntryPayload::Blank => vec![Ok(())],
                EntryPayload::Normal(Command { event: Event::Batch(commands), .. }) => {
                    commands.iter().map(|c| apply_command(&mut state, c, entry.log_id.index)).collect()
                }
                EntryPayload::Normal(command) => vec![apply_command(&mut state, &command, entry.log_id.index)],
                EntryPayload::Membership(membership) => {
                    state.last_membership = StoredMembership::new(Some(entry.log_id), membership);
                    vec![Ok(())]
                }
            };
            results.push(result);
        }
        Ok(results)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let data = snapshot.into_inner();
        let applied: AppliedState = bincode::deserialize(&data).map_err(sm_err)?;
        let stored = StoredSnapshot { meta: meta.clone(), data };
        self.save_snapshot(&stored).await?;
        *self.state.write() = applied;
        tracing::info!(snapshot = %meta.snapshot_id, "snapshot installed from the leader");
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        Ok(self
            .load_snapshot()?
            .map(|stored| Snapshot { meta: stored.meta, snapshot: Box::new(Cursor::new(stored.data)) }))
    }
}

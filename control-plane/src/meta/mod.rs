//! The metadata the controllers agree on (SPEC §3): files, their chunks and
//! replicas, data nodes and their health, and garbage replicas still to be
//! removed from disk. Plain data and a pure [`MetaState::apply`], so it is
//! unit-tested without Raft or sockets; [`query`] holds the read side.

pub mod accounts;
pub mod query;
pub mod tasks;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::MetaError;
use crate::events::Event;
use accounts::{OwnerUsage, TokenRecord, UserRecord};
use tasks::{TaskCounts, TaskRecord, TaskState, KEEP_FINISHED};

pub type ChunkKey = (Uuid, u32);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NodeHealth {
    Healthy,
    Suspect,
    Dead,
    Decommissioning,
    Removed,
    FailedSimulated,
}

impl NodeHealth {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeHealth::Healthy => "healthy",
            NodeHealth::Suspect => "suspect",
            NodeHealth::Dead => "dead",
            NodeHealth::Decommissioning => "decommissioning",
            NodeHealth::Removed => "removed",
            NodeHealth::FailedSimulated => "failed_simulated",
        }
    }

    /// A replica on a node in this state can still be read.
    pub fn holds_live_replicas(self) -> bool {
        matches!(self, NodeHealth::Healthy | NodeHealth::Suspect | NodeHealth::Decommissioning)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FileState {
    Uploading,
    Committed,
}

impl FileState {
    pub fn as_str(self) -> &'static str {
        match self {
            FileState::Uploading => "uploading",
            FileState::Committed => "committed",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkRecord {
    pub size: u64,
    pub crc32c: u32,
    pub replicas: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRecord {
    pub id: Uuid,
    pub name: String,
    pub size: u64,
    pub chunk_size: u64,
    pub total_chunks: u32,
    pub replication: u32,
    pub state: FileState,
    pub created_at_ms: i64,
    pub checksum: String,
    pub chunks: BTreeMap<u32, ChunkRecord>,
    /// The user the file belongs to; empty for files made by internal tools.
    pub owner: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    pub node_id: String,
    pub host: String,
    pub grpc_port: u32,
    pub capacity_bytes: u64,
    pub mac: String,
    pub health: NodeHealth,
    pub health_changed_at_ms: i64,
}

impl NodeRecord {
    pub fn addr(&self) -> String {
        format!("{}:{}", self.host, self.grpc_port)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetaState {
    pub files: BTreeMap<Uuid, FileRecord>,
    pub nodes: BTreeMap<String, NodeRecord>,
    /// Replicas that are on a node's disk but wanted by no file, by node.
    /// The leader asks each node to delete them; the node confirms with
    /// [`Event::GarbagePurged`].
    pub garbage: BTreeMap<String, BTreeSet<ChunkKey>>,
    /// Copy tasks by id (ids sort by creation time).
    pub tasks: BTreeMap<String, TaskRecord>,
    pub task_counts: TaskCounts,
    pub users: BTreeMap<String, UserRecord>,
    /// Live tokens by SHA-256 hex of the secret.
    pub tokens: BTreeMap<String, TokenRecord>,
    pub owner_usage: BTreeMap<String, OwnerUsage>,
}

impl MetaState {
    /// Applies one event. An error leaves the state untouched: every check
    /// comes before the first change.
    pub fn apply(&mut self, event: &Event) -> Result<(), MetaError> {
        match event {
            Event::NodeRegistered { node_id, host, grpc_port, capacity_bytes, mac, at_ms } => {
                // A registering node is healthy again, unless an operator
                // is draining it or has removed it.
                let health = match self.nodes.get(node_id).map(|n| n.health) {
                    Some(h @ (NodeHealth::Decommissioning | NodeHealth::Removed)) => h,
                    _ => NodeHealth::Healthy,
                };
                self.nodes.insert(
                    node_id.clone(),
                    NodeRecord {
                        node_id: node_id.clone(),
                        host: host.clone(),
                        grpc_port: *grpc_port,
                        capacity_bytes: *capacity_bytes,
                        mac: mac.clone(),
                        health,
                        health_changed_at_ms: *at_ms,
                    },
                );
                Ok(())
            }
            Event::NodeHealthChanged { node_id, health, at_ms } => {
                let node = self.nodes.get_mut(node_id).ok_or_else(|| MetaError::NodeNotFound(node_id.clone()))?;
                node.health = *health;
                node.health_changed_at_ms = *at_ms;
                Ok(())
            }
            Event::FileCreated { file_id, name, chunk_size, replication, at_ms, owner } => {
                if self.files.contains_key(file_id) {
                    return Err(MetaError::FileExists(file_id.to_string()));
                }
                if !owner.is_empty() && !self.users.contains_key(owner) {
                    return Err(MetaError::UserNotFound(owner.clone()));
                }
                self.files.insert(
                    *file_id,
                    FileRecord {
                        id: *file_id,
                        name: name.clone(),
                        size: 0,
                        chunk_size: *chunk_size,
                        total_chunks: 0,
                        replication: *replication,
                        state: FileState::Uploading,
                        created_at_ms: *at_ms,
                        checksum: String::new(),
                        chunks: BTreeMap::new(),
                        owner: owner.clone(),
                    },
                );
                Ok(())
            }
            Event::ChunkStored { file_id, index, size, crc32c, replicas } => {
                self.check_chunk_fits(file_id, *index, *size)?;
                self.store_chunk(file_id, *index, *size, *crc32c, replicas);
                Ok(())
            }
            Event::ChunksStored { file_id, chunks } => {
                // Every chunk is checked before the first is recorded.
                for chunk in chunks {
                    self.check_chunk_fits(file_id, chunk.index, chunk.size)?;
                }
                for chunk in chunks {
                    self.store_chunk(file_id, chunk.index, chunk.size, chunk.crc32c, &chunk.replicas);
                }
                Ok(())
            }
            Event::FileCommitted { file_id, size, total_chunks, checksum, .. } => {
                let file = self.files.get(file_id).ok_or_else(|| MetaError::FileNotFound(file_id.to_string()))?;
                if file.state == FileState::Committed {
                    // A retried commit of the same content is a success.
                    if file.size == *size && file.checksum == *checksum {
                        return Ok(());
                    }
                    return Err(MetaError::NotUploading { file: file_id.to_string(), state: "committed".into() });
                }
                check_complete(file, *size, *total_chunks)?;
                let owner = file.owner.clone();
                // Checked here, in the log's order, so two uploads racing to
                // the last free byte of a quota cannot both commit.
                self.check_quota(&owner, *size)?;
                let extra: Vec<(u32, ChunkRecord)> =
                    file.chunks.range(*total_chunks..).map(|(i, c)| (*i, c.clone())).collect();
                for (index, chunk) in extra {
                    for node in chunk.replicas {
                        self.garbage.entry(node).or_default().insert((*file_id, index));
                    }
                }
                if let Some(file) = self.files.get_mut(file_id) {
                    file.chunks.retain(|i, _| *i < *total_chunks);
                    file.size = *size;
                    file.total_chunks = *total_chunks;
                    file.checksum = checksum.clone();
                    file.state = FileState::Committed;
                }
                self.count_usage(&owner, FileState::Committed, *size, true);
                Ok(())
            }
            Event::FileDeleted { file_id } => self.remove_file(file_id),
            Event::ReplicaDropped { file_id, index, node_id, .. } => {
                let file = self.files.get_mut(file_id).ok_or_else(|| MetaError::FileNotFound(file_id.to_string()))?;
                if let Some(chunk) = file.chunks.get_mut(index) {
                    chunk.replicas.retain(|n| n != node_id);
                }
                self.garbage.entry(node_id.clone()).or_default().insert((*file_id, *index));
                Ok(())
            }
            Event::FileWritten {
                file_id,
                name,
                chunk_size,
                replication,
                owner,
                size,
                crc32c,
                replicas,
                checksum,
                at_ms,
            } => {
                if let Some(file) = self.files.get(file_id) {
                    // A retry of the same write is a success.
                    if file.state == FileState::Committed && file.size == *size && file.checksum == *checksum {
                        return Ok(());
                    }
                    return Err(MetaError::FileExists(file_id.to_string()));
                }
                let written = self.write_file(
                    *file_id,
                    name,
                    *chunk_size,
                    *replication,
                    owner,
                    (*size, *crc32c, replicas),
                    checksum,
                    *at_ms,
                );
                if written.is_err() {
                    // Refused (over quota, unknown owner, ...): nothing of
                    // it stays, and its stored chunk is garbage.
                    let _ = self.remove_file(file_id);
                    for node in replicas {
                        if self.nodes.contains_key(node) {
                            self.garbage.entry(node.clone()).or_default().insert((*file_id, 0));
                        }
                    }
                }
                written
            }
            Event::GarbageFound { node_id, chunks } => {
                for key in chunks {
                    if !self.is_wanted(node_id, key) {
                        self.garbage.entry(node_id.clone()).or_default().insert(*key);
                    }
                }
                Ok(())
            }
            Event::TaskStarted { task_id, kind, file_id, index, from, to, at_ms } => {
                self.tasks.insert(
                    task_id.clone(),
                    TaskRecord {
                        id: task_id.clone(),
                        kind: *kind,
                        file_id: *file_id,
                        index: *index,
                        from: from.clone(),
                        to: to.clone(),
                        state: TaskState::Running,
                        created_at_ms: *at_ms,
                        finished_at_ms: 0,
                        error: String::new(),
                    },
                );
                Ok(())
            }
            Event::TaskFinished { task_id, ok, error, at_ms } => {
                if let Some(task) = self.tasks.get_mut(task_id) {
                    if task.state == TaskState::Running {
                        task.state = if *ok { TaskState::Completed } else { TaskState::Failed };
                        task.finished_at_ms = *at_ms;
                        task.error = error.clone();
                        if *ok {
                            self.task_counts.completed += 1;
                        } else {
                            self.task_counts.failed += 1;
                        }
                    }
                }
                self.prune_finished_tasks();
                Ok(())
            }
            Event::ReplicaAdded { file_id, index, node_id, replaces } => {
                let chunk = self.files.get_mut(file_id).and_then(|f| f.chunks.get_mut(index));
                match chunk {
                    Some(chunk) => {
                        // Only a copy that adds a replica may replace one:
                        // two moves racing to the same target must not
                        // leave the chunk a copy short.
                        let added = !chunk.replicas.contains(node_id);
                        if added {
                            chunk.replicas.push(node_id.clone());
                        }
                        unmark_garbage(&mut self.garbage, node_id, &(*file_id, *index));
                        if let Some(old) = replaces.as_ref().filter(|old| added && *old != node_id) {
                            chunk.replicas.retain(|n| n != old);
                            self.garbage.entry(old.clone()).or_default().insert((*file_id, *index));
                        }
                    }
                    // Deleted while the copy ran: the copy itself is garbage.
                    None => {
                        self.garbage.entry(node_id.clone()).or_default().insert((*file_id, *index));
                    }
                }
                Ok(())
            }
            Event::UserCreated { username, password_hash, role, quota_bytes, at_ms } => self.create_user(UserRecord {
                username: username.clone(),
                password_hash: password_hash.clone(),
                role: *role,
                quota_bytes: *quota_bytes,
                created_at_ms: *at_ms,
            }),
            Event::UserDeleted { username } => self.delete_user(username),
            Event::TokenIssued { token_id, token_hash, username, kind, label, at_ms, expires_at_ms } => self
                .issue_token(
                    TokenRecord {
                        id: token_id.clone(),
                        hash: token_hash.clone(),
                        username: username.clone(),
                        kind: *kind,
                        label: label.clone(),
                        created_at_ms: *at_ms,
                        expires_at_ms: *expires_at_ms,
                    },
                    *at_ms,
                ),
            Event::TokenRevoked { token_hash } => self.revoke_token(token_hash),
            // Unpacked by the state machine, which applies each command.
            Event::Batch(_) => Err(MetaError::Invalid("a batch is applied command by command".into())),
            Event::GarbagePurged { node_id, chunks } => {
                if let Some(set) = self.garbage.get_mut(node_id) {
                    for key in chunks {
                        set.remove(key);
                    }
                    if set.is_empty() {
                        self.garbage.remove(node_id);
                    }
                }
                Ok(())
            }
        }
    }

    /// Whether the metadata wants `node` to keep this replica. Replicas of
    /// files still uploading are wanted: the gateway may not have reported
    /// them yet.
    pub fn is_wanted(&self, node: &str, key: &ChunkKey) -> bool {
        match self.files.get(&key.0) {
            None => false,
            Some(file) if file.state == FileState::Uploading => true,
            Some(file) => file.chunks.get(&key.1).is_some_and(|c| c.replicas.iter().any(|r| r == node)),
        }
    }

    /// Whether `node` has been told (or will be told) to delete this replica.
    pub fn is_garbage(&self, node: &str, key: &ChunkKey) -> bool {
        self.garbage.get(node).is_some_and(|set| set.contains(key))
    }

    /// Drops the oldest finished tasks (smallest ids) beyond [`KEEP_FINISHED`].
    /// Runs on every finished task, on every controller: a heal finishes
    /// thousands, so it counts without allocating and clones only the ids it
    /// removes. (It used to clone every kept task's id each time: 24 µs per
    /// finished task against 1.5 now, ~0.13 CPU s over the three
    /// controllers in a heal of 1,900 copies.)
    fn prune_finished_tasks(&mut self) {
        if self.tasks.len() <= KEEP_FINISHED {
            return;
        }
        let finished = self.tasks.values().filter(|t| t.state != TaskState::Running).count();
        let excess = finished.saturating_sub(KEEP_FINISHED);
        if excess == 0 {
            return;
        }
        let oldest: Vec<String> =
            self.tasks.values().filter(|t| t.state != TaskState::Running).take(excess).map(|t| t.id.clone()).collect();
        for id in &oldest {
            self.tasks.remove(id);
        }
    }

    /// [`Event::FileWritten`] as the three events it stands for.
    #[allow(clippy::too_many_arguments)]
    fn write_file(
        &mut self,
        file_id: Uuid,
        name: &str,
        chunk_size: u64,
        replication: u32,
        owner: &str,
        (size, crc32c, replicas): (u64, u32, &[String]),
        checksum: &str,
        at_ms: i64,
    ) -> Result<(), MetaError> {
        if size > chunk_size {
            return Err(MetaError::Invalid(format!("{size} bytes do not fit in one chunk of {chunk_size}")));
        }
        // Before anything changes: a refused write leaves no trace.
        if !owner.is_empty() && !self.users.contains_key(owner) {
            return Err(MetaError::UserNotFound(owner.to_string()));
        }
        self.check_quota(owner, size)?;
        self.apply(&Event::FileCreated {
            file_id,
            name: name.to_string(),
            chunk_size,
            replication,
            at_ms,
            owner: owner.to_string(),
        })?;
        let total_chunks = u32::from(size > 0);
        if size > 0 {
            self.apply(&Event::ChunkStored { file_id, index: 0, size, crc32c, replicas: replicas.to_vec() })?;
        }
        self.apply(&Event::FileCommitted { file_id, size, total_chunks, checksum: checksum.to_string(), at_ms })
    }

    /// Removes a file from the namespace; its replicas become garbage.
    fn remove_file(&mut self, file_id: &Uuid) -> Result<(), MetaError> {
        let file = self.files.remove(file_id).ok_or_else(|| MetaError::FileNotFound(file_id.to_string()))?;
        self.count_usage(&file.owner, file.state, file.size, false);
        for (index, chunk) in file.chunks {
            for node in chunk.replicas {
                self.garbage.entry(node).or_default().insert((*file_id, index));
            }
        }
        Ok(())
    }

    /// A chunk of `size` bytes may be recorded for `file_id`: the file is
    /// uploading and the chunk no larger than its chunk size.
    fn check_chunk_fits(&self, file_id: &Uuid, index: u32, size: u64) -> Result<(), MetaError> {
        let file = self.uploading_file(file_id)?;
        if size > file.chunk_size {
            return Err(MetaError::Invalid(format!(
                "chunk {index} is {size} bytes, larger than the chunk size {}",
                file.chunk_size
            )));
        }
        Ok(())
    }

    /// Records a chunk durable on `replicas` (after [`Self::check_chunk_fits`]).
    fn store_chunk(&mut self, file_id: &Uuid, index: u32, size: u64, crc32c: u32, replicas: &[String]) {
        let Some(file) = self.files.get_mut(file_id) else { return };
        let mut stale = Vec::new();
        match file.chunks.get_mut(&index) {
            // Same bytes stored again (a retry): add the new replicas.
            Some(chunk) if chunk.crc32c == crc32c && chunk.size == size => {
                for node in replicas {
                    if !chunk.replicas.contains(node) {
                        chunk.replicas.push(node.clone());
                    }
                }
            }
            // Different bytes for the same index: the new ones win,
            // the old replicas become garbage.
            existing => {
                if let Some(old) = existing {
                    stale = old.replicas.clone();
                }
                let mut unique = replicas.to_vec();
                unique.dedup();
                file.chunks.insert(index, ChunkRecord { size, crc32c, replicas: unique });
            }
        }
        for node in stale {
            if !replicas.contains(&node) {
                self.garbage.entry(node).or_default().insert((*file_id, index));
            }
        }
        for node in replicas {
            unmark_garbage(&mut self.garbage, node, &(*file_id, index));
        }
    }

    fn uploading_file(&self, file_id: &Uuid) -> Result<&FileRecord, MetaError> {
        let file = self.files.get(file_id).ok_or_else(|| MetaError::FileNotFound(file_id.to_string()))?;
        if file.state != FileState::Uploading {
            return Err(MetaError::NotUploading { file: file_id.to_string(), state: file.state.as_str().into() });
        }
        Ok(file)
    }
}

/// The replica is wanted again (stored anew): it must not be deleted.
fn unmark_garbage(garbage: &mut BTreeMap<String, BTreeSet<ChunkKey>>, node: &str, key: &ChunkKey) {
    if let Some(set) = garbage.get_mut(node) {
        set.remove(key);
        if set.is_empty() {
            garbage.remove(node);
        }
    }
}

/// A commit is accepted only if chunks `0..total_chunks` are all stored, each
/// on at least one node, and their sizes add up to `size` with every chunk but
/// the last one full.
fn check_complete(file: &FileRecord, size: u64, total_chunks: u32) -> Result<(), MetaError> {
    let incomplete = |reason: String| MetaError::IncompleteUpload { file: file.id.to_string(), reason };
    let expected_chunks = size.div_ceil(file.chunk_size);
    if u64::from(total_chunks) != expected_chunks {
        return Err(incomplete(format!(
            "{size} bytes in chunks of {} need {expected_chunks} chunks, not {total_chunks}",
            file.chunk_size
        )));
    }
    let mut sum = 0u64;
    for index in 0..total_chunks {
        let chunk = file.chunks.get(&index).ok_or_else(|| incomplete(format!("chunk {index} was never stored")))?;
        if chunk.replicas.is_empty() {
            return Err(incomplete(format!("chunk {index} has no replica")));
        }
        let last = index + 1 == total_chunks;
        if !last && chunk.size != file.chunk_size {
            return Err(incomplete(format!("chunk {index} is short ({} bytes)", chunk.size)));
        }
        sum += chunk.size;
    }
    if sum != size {
        return Err(incomplete(format!("chunks hold {sum} bytes, the file is {size}")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn created(state: &mut MetaState, chunk_size: u64) -> Uuid {
        let file_id = Uuid::now_v7();
        state
            .apply(&Event::FileCreated {
                file_id,
                name: "a.bin".into(),
                chunk_size,
                replication: 3,
                at_ms: 1,
                owner: String::new(),
            })
            .unwrap();
        file_id
    }

    fn stored(state: &mut MetaState, file_id: Uuid, index: u32, size: u64) {
        state
            .apply(&Event::ChunkStored {
                file_id,
                index,
                size,
                crc32c: 7,
                replicas: vec!["a".into(), "b".into(), "c".into()],
            })
            .unwrap();
    }

    fn commit(state: &mut MetaState, file_id: Uuid, size: u64, total_chunks: u32) -> Result<(), MetaError> {
        state.apply(&Event::FileCommitted { file_id, size, total_chunks, checksum: "x".into(), at_ms: 2 })
    }

    fn task_started(state: &mut MetaState, n: usize) {
        let event = Event::TaskStarted {
            task_id: format!("t{n:06}"),
            kind: tasks::TaskKind::ReReplicate,
            file_id: Uuid::nil(),
            index: 0,
            from: "a".into(),
            to: "b".into(),
            at_ms: n as i64,
        };
        state.apply(&event).unwrap();
    }

    fn task_finished(state: &mut MetaState, n: usize) {
        let event = Event::TaskFinished { task_id: format!("t{n:06}"), ok: true, error: String::new(), at_ms: 0 };
        state.apply(&event).unwrap();
    }

    #[test]
    fn only_the_newest_finished_tasks_are_kept_and_running_ones_never_go() {
        let mut s = MetaState::default();
        // Task 0 runs throughout; 1..=KEEP_FINISHED + 10 start and finish.
        task_started(&mut s, 0);
        for n in 1..=KEEP_FINISHED + 10 {
            task_started(&mut s, n);
            task_finished(&mut s, n);
        }
        assert_eq!(s.tasks.len(), KEEP_FINISHED + 1);
        assert_eq!(s.tasks["t000000"].state, TaskState::Running);
        // The ten oldest finished went, the newest stayed.
        assert!(!s.tasks.contains_key("t000010"));
        assert!(s.tasks.contains_key("t000011"));
        assert!(s.tasks.contains_key(&format!("t{:06}", KEEP_FINISHED + 10)));
        assert_eq!(s.task_counts.completed, (KEEP_FINISHED + 10) as u64);
        // The oldest id goes first, whenever it finished: task 0, finishing
        // last, is the one dropped; task 11 stays.
        task_started(&mut s, KEEP_FINISHED + 11);
        task_finished(&mut s, 0);
        assert_eq!(s.tasks.len(), KEEP_FINISHED + 1);
        assert!(!s.tasks.contains_key("t000000"));
        assert!(s.tasks.contains_key("t000011"));
    }

    #[test]
    fn upload_then_commit() {
        let mut s = MetaState::default();
        let f = created(&mut s, 4);
        stored(&mut s, f, 0, 4);
        stored(&mut s, f, 1, 1);
        assert_eq!(commit(&mut s, f, 5, 2), Ok(()));
        assert_eq!(s.files[&f].state, FileState::Committed);
        // Retried commit is idempotent.
        assert_eq!(commit(&mut s, f, 5, 2), Ok(()));
        // No more chunks once committed.
        assert!(matches!(
            s.apply(&Event::ChunkStored { file_id: f, index: 2, size: 1, crc32c: 1, replicas: vec![] }),
            Err(MetaError::NotUploading { .. })
        ));
    }

    #[test]
    fn chunks_stored_together_all_or_none() {
        let mut s = MetaState::default();
        let f = created(&mut s, 4);
        let chunk = |index, size| crate::events::StoredChunk {
            index,
            size,
            crc32c: 7,
            replicas: vec!["a".into(), "b".into(), "c".into()],
        };
        // One chunk larger than the chunk size refuses the whole batch.
        let before = s.clone();
        assert!(matches!(
            s.apply(&Event::ChunksStored { file_id: f, chunks: vec![chunk(0, 4), chunk(1, 5)] }),
            Err(MetaError::Invalid(_))
        ));
        assert_eq!(s, before);
        // Each chunk recorded as ChunkStored would, a retry included.
        s.apply(&Event::ChunksStored { file_id: f, chunks: vec![chunk(0, 4), chunk(1, 1)] }).unwrap();
        s.apply(&Event::ChunksStored { file_id: f, chunks: vec![chunk(1, 1)] }).unwrap();
        let mut one_by_one = before.clone();
        stored(&mut one_by_one, f, 0, 4);
        stored(&mut one_by_one, f, 1, 1);
        assert_eq!(s, one_by_one);
        assert_eq!(commit(&mut s, f, 5, 2), Ok(()));
        assert!(matches!(
            s.apply(&Event::ChunksStored { file_id: f, chunks: vec![chunk(2, 1)] }),
            Err(MetaError::NotUploading { .. })
        ));
    }

    #[test]
    fn empty_file_commits_without_chunks() {
        let mut s = MetaState::default();
        let f = created(&mut s, 4);
        assert_eq!(commit(&mut s, f, 0, 0), Ok(()));
    }

    #[test]
    fn incomplete_commit_refused_and_state_unchanged() {
        let mut s = MetaState::default();
        let f = created(&mut s, 4);
        stored(&mut s, f, 0, 4);
        let before = s.clone();
        assert!(matches!(commit(&mut s, f, 5, 2), Err(MetaError::IncompleteUpload { .. })));
        assert!(matches!(commit(&mut s, f, 9, 2), Err(MetaError::IncompleteUpload { .. })));
        assert_eq!(s, before);
    }

    #[test]
    fn delete_turns_replicas_into_garbage_and_purge_clears_it() {
        let mut s = MetaState::default();
        let f = created(&mut s, 4);
        stored(&mut s, f, 0, 3);
        commit(&mut s, f, 3, 1).unwrap();
        s.apply(&Event::FileDeleted { file_id: f }).unwrap();
        assert!(s.files.is_empty());
        assert_eq!(s.garbage.len(), 3);
        assert!(s.garbage["a"].contains(&(f, 0)));
        s.apply(&Event::GarbagePurged { node_id: "a".into(), chunks: vec![(f, 0)] }).unwrap();
        assert!(!s.garbage.contains_key("a"));
        assert!(matches!(s.apply(&Event::FileDeleted { file_id: f }), Err(MetaError::FileNotFound(_))));
    }

    #[test]
    fn dropped_replica_leaves_the_chunk() {
        let mut s = MetaState::default();
        let f = created(&mut s, 4);
        stored(&mut s, f, 0, 3);
        s.apply(&Event::ReplicaDropped { file_id: f, index: 0, node_id: "b".into(), reason: "crc".into() }).unwrap();
        assert_eq!(s.files[&f].chunks[&0].replicas, vec!["a".to_string(), "c".to_string()]);
        assert!(s.garbage["b"].contains(&(f, 0)));
    }

    #[test]
    fn a_copy_to_a_node_that_already_holds_the_chunk_replaces_nothing() {
        let mut s = MetaState::default();
        let f = created(&mut s, 4);
        stored(&mut s, f, 0, 3);
        s.apply(&Event::ReplicaAdded { file_id: f, index: 0, node_id: "b".into(), replaces: Some("a".into()) })
            .unwrap();
        assert_eq!(s.files[&f].chunks[&0].replicas.len(), 3);
        s.apply(&Event::ReplicaAdded { file_id: f, index: 0, node_id: "d".into(), replaces: Some("a".into()) })
            .unwrap();
        assert_eq!(s.files[&f].chunks[&0].replicas, vec!["b".to_string(), "c".to_string(), "d".to_string()]);
    }

    #[test]
    fn rewritten_chunk_makes_old_replicas_garbage() {
        let mut s = MetaState::default();
        let f = created(&mut s, 4);
        stored(&mut s, f, 0, 3);
        s.apply(&Event::ChunkStored { file_id: f, index: 0, size: 3, crc32c: 9, replicas: vec!["d".into()] }).unwrap();
        assert_eq!(s.files[&f].chunks[&0].replicas, vec!["d".to_string()]);
        assert_eq!(s.garbage.len(), 3);
    }
}

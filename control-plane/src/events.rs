//! The metadata event log: every change to the metadata is one [`Event`], the
//! payload of one Raft log entry. The state machine is the fold of these
//! events (see [`crate::meta::MetaState::apply`]); nothing else mutates it.
//!
//! Events carry every value their application needs (timestamps included),
//! so applying them is deterministic on every controller. The encoding is
//! bincode: variants may be appended, never reordered or removed.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::meta::accounts::{Role, TokenKind};
use crate::meta::tasks::TaskKind;
use crate::meta::NodeHealth;

/// One Raft log payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Command {
    pub event: Event,
    /// The client's id for the request that caused this event. A command
    /// whose request id was applied before is not applied again: its first
    /// result is returned, so a request retried across a leader change
    /// takes effect once.
    pub request_id: Option<Uuid>,
}

impl std::fmt::Display for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.event)
    }
}

impl From<Event> for Command {
    fn from(event: Event) -> Self {
        Command { event, request_id: None }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    /// A data node announced itself (first start or after being dead).
    NodeRegistered {
        node_id: String,
        host: String,
        grpc_port: u32,
        capacity_bytes: u64,
        mac: String,
        at_ms: i64,
    },
    /// The leader's health sweep saw a node change health.
    NodeHealthChanged {
        node_id: String,
        health: NodeHealth,
        at_ms: i64,
    },
    /// An upload started: the file exists in state `uploading`, invisible to listings.
    FileCreated {
        file_id: Uuid,
        name: String,
        chunk_size: u64,
        replication: u32,
        at_ms: i64,
        owner: String,
    },
    /// A chunk is durable on these nodes.
    ChunkStored {
        file_id: Uuid,
        index: u32,
        size: u64,
        crc32c: u32,
        replicas: Vec<String>,
    },
    /// Every chunk is stored: the file becomes visible.
    FileCommitted {
        file_id: Uuid,
        size: u64,
        total_chunks: u32,
        checksum: String,
        at_ms: i64,
    },
    /// The file is gone from the namespace (a delete, or an aborted upload);
    /// its replicas become garbage for the data nodes to remove.
    FileDeleted {
        file_id: Uuid,
    },
    /// A replica is no longer trusted (e.g. corrupt); it becomes garbage.
    ReplicaDropped {
        file_id: Uuid,
        index: u32,
        node_id: String,
        reason: String,
    },
    /// A registering data node holds replicas no file wants (e.g. of a file
    /// deleted while it was down): they become garbage.
    GarbageFound {
        node_id: String,
        chunks: Vec<(Uuid, u32)>,
    },
    /// A data node removed these garbage replicas from its disk.
    GarbagePurged {
        node_id: String,
        chunks: Vec<(Uuid, u32)>,
    },
    /// The leader started copying a replica (repair, rebalance or drain).
    TaskStarted {
        task_id: String,
        kind: TaskKind,
        file_id: Uuid,
        index: u32,
        from: String,
        to: String,
        at_ms: i64,
    },
    /// The copy is verified on `node_id`; the replica on `replaces` (if any)
    /// is no longer wanted and becomes garbage.
    ReplicaAdded {
        file_id: Uuid,
        index: u32,
        node_id: String,
        replaces: Option<String>,
    },
    /// A task ended; `error` is empty on success.
    TaskFinished {
        task_id: String,
        ok: bool,
        error: String,
        at_ms: i64,
    },
    /// An account was created; `password_hash` is an argon2 PHC string.
    UserCreated {
        username: String,
        password_hash: String,
        role: Role,
        quota_bytes: u64,
        at_ms: i64,
    },
    /// An account was removed, with its tokens and its files.
    UserDeleted {
        username: String,
    },
    /// A login or an API token; only the SHA-256 of the secret is kept.
    TokenIssued {
        token_id: String,
        token_hash: String,
        username: String,
        kind: TokenKind,
        label: String,
        at_ms: i64,
        expires_at_ms: i64,
    },
    TokenRevoked {
        token_hash: String,
    },
    /// A file of at most one chunk, created and committed at once: its
    /// chunk (if `size > 0`, index 0 of `size` bytes) is already durable on
    /// `replicas`. One log entry instead of three for a small file.
    FileWritten {
        file_id: Uuid,
        name: String,
        chunk_size: u64,
        replication: u32,
        owner: String,
        size: u64,
        crc32c: u32,
        replicas: Vec<String>,
        checksum: String,
        at_ms: i64,
    },
    /// Several commands in one log entry (one fsync and one replication
    /// round for all): concurrent proposals are batched by the leader, see
    /// `raft::proposals`. Each is applied (and deduplicated by its request
    /// id) as if it were an entry of its own, in order; one refused command
    /// does not affect the others.
    Batch(Vec<Command>),
    /// Several chunks of one uploading file are durable (the gateway
    /// reports a large upload's chunks a batch at a time): applied as
    /// [`Event::ChunkStored`] for each, all or none.
    ChunksStored {
        file_id: Uuid,
        chunks: Vec<StoredChunk>,
    },
}

/// One chunk of [`Event::ChunksStored`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredChunk {
    pub index: u32,
    pub size: u64,
    pub crc32c: u32,
    pub replicas: Vec<String>,
}

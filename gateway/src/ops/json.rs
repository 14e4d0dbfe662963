//! The JSON shapes of SPEC §5, built from controller replies. Each is a
//! typed struct that also describes itself in the OpenAPI document, so the
//! document and the answers cannot drift apart.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use tessera_proto::checksum::{crc32c_hex, parse_file_checksum};
use tessera_proto::pb;
use utoipa::ToSchema;

/// RFC 3339 from unix milliseconds; `None` (JSON null) for 0 (never).
pub fn time(ms: i64) -> Option<String> {
    if ms <= 0 {
        return None;
    }
    DateTime::<Utc>::from_timestamp_millis(ms).map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
}

/// A committed file.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct File {
    pub id: String,
    pub name: String,
    pub size: u64,
    pub chunk_size: u64,
    pub total_chunks: u32,
    pub replication: u32,
    /// RFC 3339.
    pub created_at: Option<String>,
    /// The content's checksum, lowercase hex, by `checksum_algorithm`.
    pub checksum: String,
    /// `blake3`; `sha256` for files uploaded before Tessera used BLAKE3;
    /// empty while a file is still being uploaded.
    pub checksum_algorithm: String,
    pub state: String,
}

/// A file with where each of its chunks lives.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct FileWithChunks {
    #[serde(flatten)]
    pub file: File,
    pub chunks: Vec<Chunk>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Chunk {
    pub index: u32,
    pub size: u64,
    /// CRC32C of the chunk, 8 hex digits.
    pub checksum: String,
    /// Ids of the data nodes holding a replica.
    pub replicas: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct FileList {
    pub files: Vec<File>,
    /// Pass as `?cursor=` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MultipartResult {
    pub files: Vec<File>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Usage {
    /// The signed-in user's files and their bytes.
    pub files: u64,
    pub bytes: u64,
    /// Their bytes on data nodes, counting every replica.
    pub stored_bytes: u64,
    /// The user's quota in bytes; 0 means none.
    pub quota_bytes: u64,
    /// Cluster-wide.
    pub capacity_bytes: u64,
    pub free_bytes: u64,
}

pub fn file(f: &pb::FileMetadata) -> File {
    // The controller accepts no other form; a file still uploading has none.
    let (algorithm, file_checksum) = parse_file_checksum(&f.checksum).unwrap_or(("", &f.checksum));
    File {
        id: f.file_id.clone(),
        name: f.name.clone(),
        size: f.size,
        chunk_size: f.chunk_size,
        total_chunks: f.total_chunks,
        replication: f.replication,
        created_at: time(f.created_at_ms),
        checksum: file_checksum.to_string(),
        checksum_algorithm: algorithm.to_string(),
        state: f.state.clone(),
    }
}

pub fn file_with_chunks(f: &pb::FileMetadata) -> FileWithChunks {
    FileWithChunks {
        file: file(f),
        chunks: f
            .chunks
            .iter()
            .map(|c| Chunk {
                index: c.index,
                size: c.size,
                checksum: crc32c_hex(c.crc32c),
                replicas: c.replicas.iter().map(|r| r.node_id.clone()).collect(),
            })
            .collect(),
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Node {
    pub node_id: String,
    pub host: String,
    pub grpc_port: u32,
    pub capacity_bytes: u64,
    pub free_bytes: u64,
    /// healthy, suspect, dead, decommissioning, removed or failed_simulated.
    pub health: String,
    pub last_seen: Option<String>,
    pub mac: String,
    pub chunks: u64,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct NodeList {
    pub nodes: Vec<Node>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct NodeActionResult {
    pub node: Option<Node>,
}

pub fn node(n: &pb::NodeInfo) -> Node {
    Node {
        node_id: n.node_id.clone(),
        host: n.host.clone(),
        grpc_port: n.grpc_port,
        capacity_bytes: n.capacity_bytes,
        free_bytes: n.free_bytes,
        health: n.health.clone(),
        last_seen: time(n.last_seen_ms),
        mac: n.mac.clone(),
        chunks: n.chunks,
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Controller {
    pub id: u64,
    pub addr: String,
    /// leader, follower, candidate or learner.
    pub role: String,
    pub term: u64,
    pub last_log_index: u64,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ControllerList {
    pub controllers: Vec<Controller>,
}

pub fn controller(c: &pb::ControllerInfo) -> Controller {
    Controller { id: c.id, addr: c.addr.clone(), role: c.role.clone(), term: c.term, last_log_index: c.last_log_index }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ChunkCounts {
    pub total: u64,
    pub fully_replicated: u64,
    pub under_replicated: u64,
    pub lost: u64,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TaskCounts {
    pub pending: u64,
    pub running: u64,
    pub completed: u64,
    pub failed: u64,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Summary {
    /// Data nodes by health.
    pub nodes: BTreeMap<String, u64>,
    pub chunks: ChunkCounts,
    pub rebalances: TaskCounts,
    pub controllers: Vec<Controller>,
    /// Raft id of the leader.
    pub leader: Option<u64>,
    pub capacity_bytes: u64,
    pub used_bytes: u64,
    pub free_bytes: u64,
    pub files: u64,
    pub file_bytes: u64,
    pub stored_bytes: u64,
    pub replication: u32,
}

pub fn summary(s: &pb::ClusterSummary) -> Summary {
    Summary {
        nodes: s.nodes_by_health.iter().map(|(k, v)| (k.clone(), *v)).collect(),
        chunks: ChunkCounts {
            total: s.chunks_total,
            fully_replicated: s.chunks_fully_replicated,
            under_replicated: s.chunks_under_replicated,
            lost: s.chunks_lost,
        },
        rebalances: TaskCounts {
            pending: s.rebalances_pending,
            running: s.rebalances_running,
            completed: s.rebalances_completed,
            failed: s.rebalances_failed,
        },
        controllers: s.controllers.iter().map(controller).collect(),
        leader: (s.leader_id != 0).then_some(s.leader_id),
        capacity_bytes: s.capacity_bytes,
        used_bytes: s.used_bytes,
        free_bytes: s.free_bytes,
        files: s.files,
        file_bytes: s.file_bytes,
        stored_bytes: s.stored_bytes,
        replication: s.replication,
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Task {
    pub id: String,
    /// re-replicate, rebalance or drain.
    pub kind: String,
    /// `<file_id>/<index>`.
    pub chunk_id: String,
    pub file_id: String,
    pub index: u32,
    pub from: String,
    pub to: String,
    /// running, completed or failed.
    pub state: String,
    pub created_at: Option<String>,
    pub finished_at: Option<String>,
    pub error: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TaskList {
    pub counts: TaskCounts,
    pub tasks: Vec<Task>,
}

pub fn task(t: &pb::TaskInfo) -> Task {
    Task {
        id: t.id.clone(),
        kind: t.kind.clone(),
        chunk_id: format!("{}/{}", t.file_id, t.index),
        file_id: t.file_id.clone(),
        index: t.index,
        from: t.from.clone(),
        to: t.to.clone(),
        state: t.state.clone(),
        created_at: time(t.created_at_ms),
        finished_at: time(t.finished_at_ms),
        error: (!t.error.is_empty()).then(|| t.error.clone()),
    }
}

/// An account.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct User {
    pub username: String,
    /// admin or user.
    pub role: String,
    /// 0: no quota.
    pub quota_bytes: u64,
    pub used_bytes: u64,
    pub files: u64,
    pub created_at: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UserList {
    pub users: Vec<User>,
}

pub fn user(u: &pb::UserInfo) -> User {
    User {
        username: u.username.clone(),
        role: u.role.clone(),
        quota_bytes: u.quota_bytes,
        used_bytes: u.used_bytes,
        files: u.files,
        created_at: time(u.created_at_ms),
    }
}

/// A token as listed (never its secret).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Token {
    pub id: String,
    pub label: String,
    /// session or api.
    pub kind: String,
    pub created_at: Option<String>,
    pub expires_at: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TokenList {
    pub tokens: Vec<Token>,
}

pub fn token(t: &pb::TokenInfo) -> Token {
    Token {
        id: t.id.clone(),
        label: t.label.clone(),
        kind: t.kind.clone(),
        created_at: time(t.created_at_ms),
        expires_at: time(t.expires_at_ms),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339() {
        assert_eq!(time(0), None);
        assert_eq!(time(1_700_000_000_123).as_deref(), Some("2023-11-14T22:13:20.123Z"));
    }

    #[test]
    fn a_file_with_chunks_is_flat_json() {
        let f = pb::FileMetadata { file_id: "x".into(), name: "a".into(), ..Default::default() };
        let v = serde_json::to_value(file_with_chunks(&f)).expect("json");
        assert_eq!(v["id"], "x");
        assert!(v["chunks"].as_array().is_some_and(Vec::is_empty));
        assert!(v["created_at"].is_null());
    }
}

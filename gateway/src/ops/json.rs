//! The JSON shapes of SPEC §5 built from controller replies.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};
use tessera_proto::checksum::crc32c_hex;
use tessera_proto::pb;

/// RFC 3339 from unix milliseconds; `null` for 0 (never).
pub fn time(ms: i64) -> Value {
    if ms <= 0 {
        return Value::Null;
    }
    DateTime::<Utc>::from_timestamp_millis(ms)
        .map(|t| Value::String(t.to_rfc3339_opts(SecondsFormat::Millis, true)))
        .unwrap_or(Value::Null)
}

pub fn file(f: &pb::FileMetadata) -> Value {
    json!({
        "id": f.file_id,
        "name": f.name,
        "size": f.size,
        "chunk_size": f.chunk_size,
        "total_chunks": f.total_chunks,
        "replication": f.replication,
        "created_at": time(f.created_at_ms),
        "checksum": f.checksum,
        "state": f.state,
    })
}

pub fn file_with_chunks(f: &pb::FileMetadata) -> Value {
    let mut value = file(f);
    let chunks: Vec<Value> = f
        .chunks
        .iter()
        .map(|c| {
            json!({
                "index": c.index,
                "size": c.size,
                "checksum": crc32c_hex(c.crc32c),
                "replicas": c.replicas.iter().map(|r| r.node_id.clone()).collect::<Vec<_>>(),
            })
        })
        .collect();
    value["chunks"] = Value::Array(chunks);
    value
}

pub fn node(n: &pb::NodeInfo) -> Value {
    json!({
        "node_id": n.node_id,
        "host": n.host,
        "grpc_port": n.grpc_port,
        "capacity_bytes": n.capacity_bytes,
        "free_bytes": n.free_bytes,
        "health": n.health,
        "last_seen": time(n.last_seen_ms),
        "mac": n.mac,
        "chunks": n.chunks,
    })
}

pub fn controller(c: &pb::ControllerInfo) -> Value {
    json!({ "id": c.id, "addr": c.addr, "role": c.role, "term": c.term, "last_log_index": c.last_log_index })
}

pub fn summary(s: &pb::ClusterSummary) -> Value {
    json!({
        "nodes": s.nodes_by_health,
        "chunks": {
            "total": s.chunks_total,
            "fully_replicated": s.chunks_fully_replicated,
            "under_replicated": s.chunks_under_replicated,
            "lost": s.chunks_lost,
        },
        "rebalances": {
            "pending": s.rebalances_pending,
            "running": s.rebalances_running,
            "completed": s.rebalances_completed,
            "failed": s.rebalances_failed,
        },
        "controllers": s.controllers.iter().map(controller).collect::<Vec<_>>(),
        "leader": if s.leader_id == 0 { Value::Null } else { json!(s.leader_id) },
        "capacity_bytes": s.capacity_bytes,
        "used_bytes": s.used_bytes,
        "free_bytes": s.free_bytes,
        "files": s.files,
        "file_bytes": s.file_bytes,
        "stored_bytes": s.stored_bytes,
        "replication": s.replication,
    })
}

pub fn task(t: &pb::TaskInfo) -> Value {
    json!({
        "id": t.id,
        "kind": t.kind,
        "chunk_id": format!("{}/{}", t.file_id, t.index),
        "file_id": t.file_id,
        "index": t.index,
        "from": t.from,
        "to": t.to,
        "state": t.state,
        "created_at": time(t.created_at_ms),
        "finished_at": time(t.finished_at_ms),
        "error": if t.error.is_empty() { Value::Null } else { json!(t.error) },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339() {
        assert_eq!(time(0), Value::Null);
        assert_eq!(time(1_700_000_000_123), json!("2023-11-14T22:13:20.123Z"));
    }
}

//! Domain → protobuf conversions.

use tessera_proto::pb;

use crate::meta::accounts::{OwnerUsage, TokenRecord, UserRecord};
use crate::meta::{FileRecord, MetaState};

/// A file for the wire; `with_chunks` adds chunks with replica addresses.
pub fn file_metadata(file: &FileRecord, meta: &MetaState, with_chunks: bool) -> pb::FileMetadata {
    let chunks = if with_chunks {
        file.chunks
            .iter()
            .map(|(index, chunk)| pb::ChunkMetadata {
                index: *index,
                size: chunk.size,
                crc32c: chunk.crc32c,
                replicas: chunk
                    .replicas
                    .iter()
                    .map(|node_id| pb::NodeAddr {
                        node_id: node_id.clone(),
                        addr: meta.nodes.get(node_id).map(|n| n.addr()).unwrap_or_default(),
                    })
                    .collect(),
            })
            .collect()
    } else {
        Vec::new()
    };
    pb::FileMetadata {
        file_id: file.id.to_string(),
        name: file.name.clone(),
        size: file.size,
        chunk_size: file.chunk_size,
        total_chunks: file.total_chunks,
        replication: file.replication,
        state: file.state.as_str().to_string(),
        created_at_ms: file.created_at_ms,
        checksum: file.checksum.clone(),
        chunks,
        owner: file.owner.clone(),
    }
}

pub fn user_info(user: &UserRecord, usage: OwnerUsage) -> pb::UserInfo {
    pb::UserInfo {
        username: user.username.clone(),
        role: user.role.as_str().to_string(),
        quota_bytes: user.quota_bytes,
        used_bytes: usage.bytes,
        files: usage.files,
        created_at_ms: user.created_at_ms,
    }
}

pub fn token_info(token: &TokenRecord) -> pb::TokenInfo {
    pb::TokenInfo {
        id: token.id.clone(),
        username: token.username.clone(),
        kind: token.kind.as_str().to_string(),
        label: token.label.clone(),
        created_at_ms: token.created_at_ms,
        expires_at_ms: token.expires_at_ms,
    }
}

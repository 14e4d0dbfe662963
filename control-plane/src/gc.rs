//! Garbage collection of abandoned uploads: a file still `uploading` long
//! after it was created (its gateway crashed, or the client vanished before
//! the gateway could abort) is deleted, which turns the chunks it stored
//! into garbage the data nodes are then told to remove.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::controller::Controller;
use crate::events::Event;
use crate::meta::{FileState, MetaState};

/// Uploads started before `now_ms - grace_ms` and never committed.
pub fn abandoned_uploads(meta: &MetaState, now_ms: i64, grace_ms: i64) -> Vec<Uuid> {
    meta.files
        .values()
        .filter(|f| f.state == FileState::Uploading && now_ms - f.created_at_ms > grace_ms)
        .map(|f| f.id)
        .collect()
}

pub async fn run_upload_gc(controller: Arc<Controller>, shutdown: CancellationToken) {
    let grace_ms = controller.config.upload_grace_ms as i64;
    let period = Duration::from_millis((controller.config.upload_grace_ms / 4).clamp(200, 30_000));
    loop {
        if !controller.next_leader_tick(period, &shutdown).await {
            return;
        }
        let stale = abandoned_uploads(&controller.state.read().meta, tessera_proto::now_ms(), grace_ms);
        for file_id in stale {
            tracing::info!(file = %file_id, "collecting an abandoned upload");
            if let Err(e) = controller.propose(Event::FileDeleted { file_id }).await {
                tracing::warn!(file = %file_id, error = %e, "could not collect an abandoned upload");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_old_uncommitted_uploads() {
        let mut meta = MetaState::default();
        let old = Uuid::now_v7();
        let young = Uuid::now_v7();
        let done = Uuid::now_v7();
        for (id, at) in [(old, 0), (young, 900), (done, 0)] {
            meta.apply(&Event::FileCreated {
                file_id: id,
                name: "f".into(),
                chunk_size: 4,
                replication: 3,
                at_ms: at,
                owner: String::new(),
            })
            .unwrap();
        }
        meta.apply(&Event::FileCommitted { file_id: done, size: 0, total_chunks: 0, checksum: "x".into(), at_ms: 1 })
            .unwrap();
        assert_eq!(abandoned_uploads(&meta, 1000, 500), vec![old]);
    }
}

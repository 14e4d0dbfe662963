//! The scrubber: re-reads every chunk at a bounded rate, verifying its
//! checksum, and reports corrupt ones to the controllers, which drop the bad
//! replica (so it is deleted here) and re-replicate the chunk from a good one.

use std::time::Duration;

use tessera_proto::control_client::ControlClient;
use tessera_proto::pb;
use tokio_util::sync::CancellationToken;

use crate::chunk_store::{layout, ChunkStore};
use crate::error::StoreError;

pub struct Scrubber {
    pub node_id: String,
    pub store: ChunkStore,
    pub control: ControlClient,
    /// Bytes re-read per second; 0 disables scrubbing.
    pub bytes_per_sec: u64,
    /// Pause between two full passes.
    pub pass_interval: Duration,
}

impl Scrubber {
    pub async fn run(self, shutdown: CancellationToken) {
        if self.bytes_per_sec == 0 {
            return;
        }
        loop {
            match self.pass(&shutdown).await {
                Ok((chunks, corrupt)) if chunks > 0 => {
                    tracing::info!(chunks, corrupt, "scrub pass finished");
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "scrub pass failed"),
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(self.pass_interval) => {}
            }
        }
    }

    async fn pass(&self, shutdown: &CancellationToken) -> Result<(usize, usize), StoreError> {
        let inventory = self.store.inventory().await?;
        let mut corrupt = 0;
        for chunk in &inventory {
            if shutdown.is_cancelled() {
                break;
            }
            let Ok(id) = layout::file_id(&chunk.file_id) else { continue };
            // Read once: a scrub pass must not push what users read out of the page cache.
            match self.store.read_once(id, chunk.index).await {
                Ok(_) => {}
                Err(StoreError::Corrupt(name, reason)) => {
                    corrupt += 1;
                    tracing::warn!(chunk = %name, %reason, "scrubber found a corrupt chunk");
                    self.report(chunk, &reason).await;
                }
                // Deleted since the inventory was taken.
                Err(StoreError::NotFound(_)) => {}
                Err(e) => tracing::warn!(error = %e, "scrub read failed"),
            }
            // Rate limit: sleep as long as reading this many bytes should take.
            let pause = Duration::from_secs_f64(chunk.size.max(1) as f64 / self.bytes_per_sec as f64);
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(pause) => {}
            }
        }
        Ok((inventory.len(), corrupt))
    }

    async fn report(&self, chunk: &pb::StoredChunk, reason: &str) {
        let request = pb::ReportBadReplicaRequest {
            file_id: chunk.file_id.clone(),
            index: chunk.index,
            node_id: self.node_id.clone(),
            reason: format!("scrub: {reason}"),
        };
        let result = self
            .control
            .call(|mut c| {
                let request = request.clone();
                async move { c.report_bad_replica(request).await }
            })
            .await;
        if let Err(e) = result {
            tracing::warn!(error = %e.message(), "could not report a corrupt chunk");
        }
    }
}

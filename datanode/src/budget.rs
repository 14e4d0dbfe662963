//! Byte budgets of a data node's memory: one for incoming chunks (uploads
//! and replica copies), one for outgoing ones (downloads and the sources of
//! copies). A chunk is held in memory whole while it is received or sent;
//! each takes its size from a budget first and gives it back when done, so
//! the node's memory stays bounded whatever the chunk size and however many
//! callers there are: many small chunks proceed together, a few large ones
//! wait their turn.

use std::sync::Arc;

use bytes::Bytes;
use tessera_proto::pb;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::Status;
use uuid::Uuid;

use crate::chunk_store::ChunkStore;

/// One permit per KiB.
const UNIT: u64 = 1024;

#[derive(Clone, Debug)]
pub struct ByteBudget {
    permits: Arc<Semaphore>,
    total_units: u32,
}

impl ByteBudget {
    pub fn from_mib(mib: u32) -> Self {
        let total_units = mib.max(1).saturating_mul(1024);
        ByteBudget { permits: Arc::new(Semaphore::new(total_units as usize)), total_units }
    }

    /// Waits for room for `bytes` and takes it until the permit is
    /// dropped. A chunk larger than the whole budget waits for all of it
    /// (not forever); even an empty one takes a unit, so the number of
    /// chunks held stays bounded too.
    pub async fn reserve(&self, bytes: u64) -> Result<OwnedSemaphorePermit, Status> {
        let units = u32::try_from(bytes.div_ceil(UNIT)).unwrap_or(u32::MAX).clamp(1, self.total_units);
        self.permits.clone().acquire_many_owned(units).await.map_err(|_| Status::unavailable("shutting down"))
    }

    #[cfg(test)]
    pub fn available_kib(&self) -> usize {
        self.permits.available_permits()
    }
}

/// Reads the chunk `req` names within the read budget: its announced size
/// is taken before the read; an unknown or understated size is taken after
/// it, by what was read. The permit is the chunk's room until dropped.
pub async fn read_within(
    store: &ChunkStore,
    reads: &ByteBudget,
    id: Uuid,
    req: &pb::DownloadChunkRequest,
) -> Result<(Bytes, u32, OwnedSemaphorePermit), Status> {
    let before = if req.size > 0 { Some(reads.reserve(req.size).await?) } else { None };
    // Verified in full before the first byte goes out.
    let (data, crc) =
        if req.read_once { store.read_once(id, req.index).await? } else { store.read(id, req.index).await? };
    let held = match before {
        Some(permit) if data.len() as u64 <= req.size => permit,
        // Not held while waiting for more: nothing waits holding room.
        understated => {
            drop(understated);
            reads.reserve(data.len() as u64).await?
        }
    };
    Ok((data, crc, held))
}

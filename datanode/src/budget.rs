//! Byte budgets of a data node's memory: one for incoming chunks (uploads
//! and replica copies), one for outgoing ones (downloads and the sources of
//! copies). A chunk is held in memory whole while it is received or sent;
//! each takes its size from a budget first and gives it back when done, so
//! the node's memory stays bounded whatever the chunk size and however many
//! callers there are: many small chunks proceed together, a few large ones
//! wait their turn.

use bytes::Bytes;
use tessera_proto::budget;
use tessera_proto::pb;
use tokio::sync::OwnedSemaphorePermit;
use tonic::Status;
use uuid::Uuid;

use crate::chunk_store::ChunkStore;

/// A budget counted in KiB.
#[derive(Clone, Debug)]
pub struct ByteBudget(budget::ByteBudget);

impl ByteBudget {
    pub fn from_mib(mib: u32) -> Self {
        ByteBudget(budget::ByteBudget::new(u64::from(mib.max(1)) << 20, 1024))
    }

    /// Waits for room for `bytes` and takes it until the permit is dropped
    /// (see [`budget::ByteBudget::reserve`]).
    pub async fn reserve(&self, bytes: u64) -> Result<OwnedSemaphorePermit, Status> {
        self.0.reserve(bytes).await.map_err(|_| Status::unavailable("shutting down"))
    }

    #[cfg(test)]
    pub fn available_kib(&self) -> usize {
        (self.0.available_bytes() / 1024) as usize
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

/// A chunk's messages as the items of a response stream that keep `held`
/// (its room in the read budget) until the last of them has been taken, or
/// the rest are dropped with the call.
pub fn sent_within<H: Send + 'static>(
    messages: Vec<pb::DownloadChunkResponse>,
    held: H,
) -> impl Iterator<Item = Result<pb::DownloadChunkResponse, Status>> + Send + 'static {
    messages.into_iter().map(move |m| {
        let _held = &held;
        Ok(m)
    })
}

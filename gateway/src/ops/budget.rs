//! The gateway's memory for transfers, shared by every upload and download.
//!
//! Each upload holds at most `--chunks-in-flight` chunks and each download
//! `--download-window`, but nothing bounded how many transfers run at
//! once: sixteen concurrent 128 MB uploads took the gateway to 1.2 GB of
//! RSS, sixteen downloads to 300 MB. Now every chunk a transfer holds is
//! first reserved from one budget (`--transfer-memory-mib`); a transfer
//! that finds it used up waits (an upload stops reading its body, a
//! download stops fetching), so the gateway's memory is bounded whatever
//! the number and size of the transfers.
//!
//! What a chunk costs: a download chunk its length; an upload chunk its
//! length once for itself and once per replica, because each replica's
//! gRPC stream encodes its own copy into HTTP/2 and TLS buffers while it
//! waits for the data node (measured: ~75 MB of RSS per upload of six
//! 4 MiB chunks in flight).
//!
//! No deadlock: a transfer reserves a chunk only when every chunk it
//! already holds can finish without more memory (an upload reserves the
//! whole cost of the chunk it is about to fill before reading it; a
//! download reserves its chunks in file order), so what is held is always
//! released, and the semaphore serves waiters in order.

use tessera_proto::budget::ByteBudget;
use tokio::sync::OwnedSemaphorePermit;

use crate::error::ApiError;

/// Bytes per permit: fine enough for a small file's chunk.
const UNIT: u64 = 64 * 1024;

/// The shared budget; clones share it.
#[derive(Clone, Debug)]
pub struct TransferBudget(ByteBudget);

/// Memory reserved for one chunk, given back when dropped.
pub type Reservation = OwnedSemaphorePermit;

impl TransferBudget {
    /// A budget of `bytes` (at least one unit).
    pub fn new(bytes: u64) -> Self {
        TransferBudget(ByteBudget::new(bytes, UNIT))
    }

    /// Waits until `bytes` of the budget are free and reserves them (see
    /// [`ByteBudget::reserve`]).
    pub async fn reserve(&self, bytes: u64) -> Result<Reservation, ApiError> {
        self.0.reserve(bytes).await.map_err(|e| ApiError::Internal(e.to_string()))
    }

    /// Bytes of the budget not reserved right now.
    #[cfg(test)]
    pub fn available_bytes(&self) -> u64 {
        self.0.available_bytes()
    }
}

/// The budget an upload chunk of `len` bytes stored on `replicas` nodes costs.
pub fn upload_chunk_cost(len: u64, replicas: usize) -> u64 {
    len.saturating_mul(1 + replicas as u64)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn an_upload_chunk_costs_itself_and_one_copy_per_replica() {
        assert_eq!(upload_chunk_cost(4 << 20, 3), 16 << 20);
    }

    #[tokio::test]
    async fn a_reservation_waits_for_memory_and_gets_it_when_freed() {
        let budget = TransferBudget::new(4 * UNIT);
        let first = budget.reserve(3 * UNIT).await.expect("reserve");
        assert_eq!(budget.available_bytes(), UNIT);
        let mut waiting = tokio::spawn({
            let budget = budget.clone();
            async move { budget.reserve(2 * UNIT).await.map(|_| ()) }
        });
        assert!(
            tokio::time::timeout(Duration::from_millis(100), &mut waiting).await.is_err(),
            "a reservation larger than what is free waits while the first holds its share"
        );
        drop(first);
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("the waiter gets the memory once it is freed")
            .expect("task")
            .expect("reserve");
        assert_eq!(budget.available_bytes(), 4 * UNIT);
    }

    #[tokio::test]
    async fn a_chunk_larger_than_the_budget_runs_alone() {
        let budget = TransferBudget::new(2 * UNIT);
        let whole = tokio::time::timeout(Duration::from_secs(5), budget.reserve(100 * UNIT))
            .await
            .expect("not stuck")
            .expect("reserve");
        assert_eq!(budget.available_bytes(), 0);
        drop(whole);
        assert_eq!(budget.available_bytes(), 2 * UNIT);
    }
}

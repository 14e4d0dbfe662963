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

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::ApiError;

/// Bytes per semaphore permit: fine enough for a small file's chunk.
const UNIT: u64 = 64 * 1024;

/// The shared budget; clones share it.
#[derive(Clone, Debug)]
pub struct TransferBudget {
    permits: Arc<Semaphore>,
    total_units: u32,
}

/// Memory reserved for one chunk, given back when dropped.
#[derive(Debug)]
pub struct Reservation {
    _permit: OwnedSemaphorePermit,
}

impl TransferBudget {
    /// A budget of `bytes` (at least one unit).
    pub fn new(bytes: u64) -> Self {
        let total_units = u32::try_from(bytes.div_ceil(UNIT)).unwrap_or(u32::MAX).clamp(1, max_units());
        TransferBudget { permits: Arc::new(Semaphore::new(total_units as usize)), total_units }
    }

    /// Waits until `bytes` of the budget are free and reserves them. A
    /// request larger than the whole budget reserves the whole budget, so
    /// it runs alone rather than never.
    pub async fn reserve(&self, bytes: u64) -> Result<Reservation, ApiError> {
        let permit = self
            .permits
            .clone()
            .acquire_many_owned(self.units(bytes))
            .await
            .map_err(|_| ApiError::Internal("the transfer budget is closed".into()))?;
        Ok(Reservation { _permit: permit })
    }

    /// Bytes of the budget not reserved right now.
    #[cfg(test)]
    pub fn available_bytes(&self) -> u64 {
        self.permits.available_permits() as u64 * UNIT
    }

    fn units(&self, bytes: u64) -> u32 {
        u32::try_from(bytes.div_ceil(UNIT)).unwrap_or(u32::MAX).clamp(1, self.total_units)
    }
}

/// tokio's semaphore holds at most `Semaphore::MAX_PERMITS`.
fn max_units() -> u32 {
    u32::try_from(Semaphore::MAX_PERMITS).unwrap_or(u32::MAX)
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
    fn costs_round_up_to_units_and_never_exceed_the_budget() {
        let budget = TransferBudget::new(1 << 20);
        assert_eq!(budget.units(1), 1);
        assert_eq!(budget.units(UNIT), 1);
        assert_eq!(budget.units(UNIT + 1), 2);
        assert_eq!(budget.units(0), 1);
        assert_eq!(budget.units(64 << 20), 16, "clamped to the whole budget");
        assert_eq!(TransferBudget::new(0).total_units, 1);
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

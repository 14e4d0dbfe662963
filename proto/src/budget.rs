//! A byte budget of memory, shared by every task that holds data of a kind
//! (the gateway's transfers; a data node's incoming and outgoing chunks):
//! each takes room for what it is about to hold and gives it back by
//! dropping the permit, so the process's memory stays bounded whatever the
//! number and size of the pieces. Waiters are served in order.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The budget's semaphore was closed (the process is shutting down).
#[derive(Debug, thiserror::Error)]
#[error("the memory budget is closed")]
pub struct BudgetClosed;

#[derive(Clone, Debug)]
pub struct ByteBudget {
    permits: Arc<Semaphore>,
    /// Bytes per permit.
    unit: u64,
    total_units: u32,
}

impl ByteBudget {
    /// A budget of `bytes` (at least one unit), counted in units of `unit` bytes.
    pub fn new(bytes: u64, unit: u64) -> Self {
        let unit = unit.max(1);
        let most = u32::try_from(Semaphore::MAX_PERMITS).unwrap_or(u32::MAX);
        let total_units = u32::try_from(bytes.div_ceil(unit)).unwrap_or(u32::MAX).clamp(1, most);
        ByteBudget { permits: Arc::new(Semaphore::new(total_units as usize)), unit, total_units }
    }

    /// Waits until `bytes` are free and takes them until the permit is
    /// dropped. More than the whole budget takes the whole budget (it runs
    /// alone rather than never); even nothing takes a unit, so the number
    /// of holders stays bounded too.
    pub async fn reserve(&self, bytes: u64) -> Result<OwnedSemaphorePermit, BudgetClosed> {
        self.permits.clone().acquire_many_owned(self.units(bytes)).await.map_err(|_| BudgetClosed)
    }

    /// Bytes not taken right now.
    pub fn available_bytes(&self) -> u64 {
        self.permits.available_permits() as u64 * self.unit
    }

    fn units(&self, bytes: u64) -> u32 {
        u32::try_from(bytes.div_ceil(self.unit)).unwrap_or(u32::MAX).clamp(1, self.total_units)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn costs_round_up_to_units_and_never_exceed_the_budget() {
        let budget = ByteBudget::new(1 << 20, 64 * 1024);
        assert_eq!(budget.units(1), 1);
        assert_eq!(budget.units(64 * 1024), 1);
        assert_eq!(budget.units(64 * 1024 + 1), 2);
        assert_eq!(budget.units(0), 1);
        assert_eq!(budget.units(64 << 20), 16, "clamped to the whole budget");
        assert_eq!(ByteBudget::new(0, 1024).total_units, 1);
    }
}

//! Coalesced linearizable reads. A read must not be served before the leader
//! has confirmed, after the read arrived, that it still leads (a heartbeat
//! round to a quorum) and has applied everything committed by then. One such
//! confirmation serves every read that arrived before it started, so under
//! load one round answers a whole batch instead of one round per read (every
//! authenticated request and every metadata read needs one).

use std::future::Future;

use tokio::sync::{mpsc, oneshot};

use super::take_batch;
use crate::error::ControllerError;

/// How many reads wait for the next round before callers feel back pressure.
const QUEUE: usize = 4096;

/// Each waiter gets a clone of its round's outcome.
type Waiter = oneshot::Sender<Result<(), ControllerError>>;

pub struct ReadBarrier {
    waiters: mpsc::Sender<Waiter>,
}

impl ReadBarrier {
    /// Starts the task that runs `confirm` once per batch, one at a time.
    /// It ends when the barrier is dropped.
    pub fn spawn<F, Fut>(confirm: F) -> Self
    where
        F: Fn() -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), ControllerError>> + Send + 'static,
    {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(run(rx, confirm));
        Self { waiters: tx }
    }

    /// Returns once a confirmation that started after this call has ended.
    pub async fn wait(&self) -> Result<(), ControllerError> {
        let stopped = || ControllerError::Raft("the read barrier has stopped".into());
        let (tx, rx) = oneshot::channel();
        self.waiters.send(tx).await.map_err(|_| stopped())?;
        rx.await.unwrap_or_else(|_| Err(stopped()))
    }
}

async fn run<F, Fut>(mut waiters: mpsc::Receiver<Waiter>, confirm: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<(), ControllerError>>,
{
    while let Some(first) = waiters.recv().await {
        // Everything queued now arrived before the round below starts, so
        // the round is a valid confirmation for all of it; later arrivals
        // wait for the next round.
        let batch = take_batch(&mut waiters, first, QUEUE);
        let outcome = confirm().await;
        for w in batch {
            // A caller that gave up (request cancelled) is simply skipped.
            let _ = w.send(outcome.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    /// A fake confirmation that counts rounds and takes a while, so reads
    /// pile up behind it.
    fn counting_barrier(rounds: Arc<AtomicU64>, started: Arc<AtomicU64>) -> ReadBarrier {
        ReadBarrier::spawn(move || {
            let rounds = rounds.clone();
            let started = started.clone();
            async move {
                started.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(20)).await;
                rounds.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }
        })
    }

    #[tokio::test]
    async fn concurrent_reads_share_rounds() {
        let rounds = Arc::new(AtomicU64::new(0));
        let barrier = Arc::new(counting_barrier(rounds.clone(), Arc::new(AtomicU64::new(0))));
        let reads: Vec<_> = (0..200)
            .map(|_| {
                let b = barrier.clone();
                tokio::spawn(async move { b.wait().await })
            })
            .collect();
        for r in reads {
            assert!(r.await.expect("task").is_ok());
        }
        let n = rounds.load(Ordering::SeqCst);
        assert!((1..=3).contains(&n), "200 concurrent reads took {n} rounds");
    }

    #[tokio::test]
    async fn a_read_is_never_served_by_a_round_that_started_before_it() {
        let rounds = Arc::new(AtomicU64::new(0));
        let started = Arc::new(AtomicU64::new(0));
        let barrier = Arc::new(counting_barrier(rounds.clone(), started.clone()));
        // Start a round and wait until it is under way.
        let first = {
            let b = barrier.clone();
            tokio::spawn(async move { b.wait().await })
        };
        while started.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        // This read arrives during round 1, so only round 2 may answer it.
        barrier.wait().await.expect("confirmed");
        assert_eq!(rounds.load(Ordering::SeqCst), 2);
        first.await.expect("task").expect("confirmed");
    }

    #[tokio::test]
    async fn every_waiter_of_a_round_gets_its_outcome() {
        let barrier =
            ReadBarrier::spawn(|| async { Err(ControllerError::NotLeader { leader_addr: Some("c2:7000".into()) }) });
        match barrier.wait().await {
            Err(ControllerError::NotLeader { leader_addr }) => assert_eq!(leader_addr.as_deref(), Some("c2:7000")),
            other => panic!("expected not-leader, got {other:?}"),
        }
    }
}

//! Batched proposals. openraft 0.9 appends each `client_write` as its own
//! entry and waits for that entry's fsync before it looks at the next one,
//! so one write costs the leader one fsync in series, however many clients
//! wait. Here concurrent proposals are gathered into one `Event::Batch`
//! entry: one fsync on the leader, one on a follower and one replication
//! round for all of them, each still answered with its own result.
//!
//! Under concurrent load a batch may also wait a moment for more proposals
//! ([`Linger`]): an entry costs the three controllers about the same CPU
//! whatever it carries, so fewer, fuller entries leave more of the machine
//! to everything else.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, Semaphore};

use super::{take_batch, ApplyResult};
use crate::error::ControllerError;
use crate::events::{Command, Event};

/// At most this many commands in one entry (a few hundred bytes each).
const MAX_BATCH: usize = 256;
/// Proposals waiting for the next batch before callers feel back pressure.
const QUEUE: usize = 4096;

type Reply = oneshot::Sender<Result<(), ControllerError>>;

/// Group commit under load, as PostgreSQL's `commit_delay` with
/// `commit_siblings`: when the previous entry carried at least
/// `after_batch` proposals (several clients are writing), the next batch
/// waits up to `max_wait` until it holds `target` proposals. After a
/// smaller entry nothing waits: a client writing alone waits at most once,
/// for the first write after a burst.
#[derive(Clone, Copy, Debug)]
pub struct Linger {
    pub after_batch: usize,
    pub target: usize,
    pub max_wait: Duration,
}

impl Linger {
    /// Adds proposals to `batch` as they come, until it holds `target` or
    /// `max_wait` has passed; each time with whatever else has queued.
    async fn gather<T>(&self, queue: &mut mpsc::Receiver<T>, batch: &mut Vec<T>) {
        let target = self.target.min(MAX_BATCH);
        let deadline = tokio::time::Instant::now() + self.max_wait;
        while batch.len() < target {
            match tokio::time::timeout_at(deadline, queue.recv()).await {
                Ok(Some(item)) => {
                    let more = take_batch(queue, item, MAX_BATCH - batch.len());
                    batch.extend(more);
                }
                // Out of time, or the batcher is being dropped.
                Ok(None) | Err(_) => break,
            }
        }
    }
}

pub struct ProposalBatcher {
    queue: mpsc::Sender<(Command, Reply)>,
}

impl ProposalBatcher {
    /// Starts the batching task; `write` appends one command (a single one,
    /// or a batch) and returns one result per command it carries, with at
    /// most `in_flight` appends under way at once: with one, the next batch
    /// gathers everything proposed while the previous one commits, and
    /// with a `linger` waits a moment for more under load. The task ends
    /// when the batcher is dropped.
    pub fn spawn<W, Fut>(in_flight: usize, linger: Option<Linger>, write: W) -> Self
    where
        W: Fn(Command) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Vec<ApplyResult>, ControllerError>> + Send + 'static,
    {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(run(rx, in_flight.max(1), linger, Arc::new(write)));
        Self { queue: tx }
    }

    /// Proposes one command and waits for its own result.
    pub async fn propose(&self, command: Command) -> Result<(), ControllerError> {
        let stopped = || ControllerError::Raft("the proposal batcher has stopped".into());
        let (tx, rx) = oneshot::channel();
        self.queue.send((command, tx)).await.map_err(|_| stopped())?;
        rx.await.unwrap_or_else(|_| Err(stopped()))
    }
}

async fn run<W, Fut>(
    mut queue: mpsc::Receiver<(Command, Reply)>,
    in_flight: usize,
    linger: Option<Linger>,
    write: Arc<W>,
) where
    W: Fn(Command) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Vec<ApplyResult>, ControllerError>> + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(in_flight));
    let mut previous_batch = 0;
    while let Some(first) = queue.recv().await {
        // Wait for a free slot first: whatever queues meanwhile joins this batch.
        let Ok(slot) = slots.clone().acquire_owned().await else { return };
        let mut batch = take_batch(&mut queue, first, MAX_BATCH);
        if let Some(linger) = linger.filter(|l| previous_batch >= l.after_batch) {
            linger.gather(&mut queue, &mut batch).await;
        }
        previous_batch = batch.len();
        let write = write.clone();
        tokio::spawn(async move {
            let (commands, replies): (Vec<Command>, Vec<Reply>) = batch.into_iter().unzip();
            let n = commands.len();
            let entry = match <[Command; 1]>::try_from(commands) {
                Ok([one]) => one,
                Err(many) => Command { event: Event::Batch(many), request_id: None },
            };
            let outcome = write(entry).await;
            drop(slot);
            let results: Vec<Result<(), ControllerError>> = match outcome {
                Ok(results) if results.len() == n => {
                    results.into_iter().map(|r| r.map_err(ControllerError::Meta)).collect()
                }
                Ok(results) => {
                    vec![Err(ControllerError::Raft(format!("{} results for {n} commands", results.len()))); n]
                }
                Err(e) => vec![Err(e); n],
            };
            for (reply, result) in replies.into_iter().zip(results) {
                let _ = reply.send(result);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::MetaError;
    use std::sync::Mutex;
    use std::time::Duration;

    fn revoke(token: &str) -> Command {
        Command { event: Event::TokenRevoked { token_hash: token.into() }, request_id: None }
    }

    /// What a fake log appended: each entry, and when.
    type Appended = Arc<Mutex<Vec<(Command, tokio::time::Instant)>>>;

    /// Commands an entry carries.
    fn commands_in(entry: &Command) -> usize {
        if let Event::Batch(cs) = &entry.event {
            cs.len()
        } else {
            1
        }
    }

    /// A fake log with one entry in flight: records each entry as its
    /// append starts, takes 10 ms per entry so proposals pile up, refuses
    /// token "bad".
    fn recording_batcher(linger: Option<Linger>, appended: Appended) -> Arc<ProposalBatcher> {
        Arc::new(ProposalBatcher::spawn(1, linger, move |entry: Command| {
            let appended = appended.clone();
            async move {
                let commands = match &entry.event {
                    Event::Batch(cs) => cs.clone(),
                    _ => vec![entry.clone()],
                };
                appended.lock().expect("lock").push((entry, tokio::time::Instant::now()));
                tokio::time::sleep(Duration::from_millis(10)).await;
                Ok(commands
                    .iter()
                    .map(|c| match &c.event {
                        Event::TokenRevoked { token_hash } if token_hash == "bad" => Err(MetaError::TokenNotFound),
                        _ => Ok(()),
                    })
                    .collect())
            }
        }))
    }

    /// Proposes `revoke(token)` on a task of its own.
    fn spawn_proposal(
        batcher: &Arc<ProposalBatcher>,
        token: &str,
    ) -> tokio::task::JoinHandle<Result<(), ControllerError>> {
        let (batcher, command) = (batcher.clone(), revoke(token));
        tokio::spawn(async move { batcher.propose(command).await })
    }

    #[tokio::test]
    async fn concurrent_proposals_share_entries_and_keep_their_own_results() {
        let appended = Appended::default();
        let batcher = recording_batcher(None, appended.clone());
        let tasks: Vec<_> = (0..300)
            .map(|i| {
                let b = batcher.clone();
                let token = if i % 7 == 0 { "bad".to_string() } else { format!("t{i}") };
                tokio::spawn(async move { (i, b.propose(revoke(&token)).await) })
            })
            .collect();
        for t in tasks {
            let (i, result) = t.await.expect("task");
            if i % 7 == 0 {
                assert!(matches!(result, Err(ControllerError::Meta(MetaError::TokenNotFound))), "{i}: {result:?}");
            } else {
                assert!(result.is_ok(), "{i}: {result:?}");
            }
        }
        let entries = entries(&appended);
        let commands: usize = entries.iter().map(commands_in).sum();
        assert_eq!(commands, 300, "every proposal appended exactly once");
        assert!(entries.len() < 30, "300 concurrent proposals took {} entries", entries.len());
        assert!(entries.iter().all(|e| !matches!(&e.event, Event::Batch(cs) if cs.len() > MAX_BATCH)));
    }

    /// Whether a second proposal's append starts while the first one's is
    /// still under way (each append is held until both are released).
    async fn second_append_overlaps_the_first(in_flight: usize) -> bool {
        let (appends, mut appends_seen) = tokio::sync::watch::channel(0usize);
        let appends = Arc::new(appends);
        let gate = Arc::new(Semaphore::new(0));
        let batcher = Arc::new(ProposalBatcher::spawn(in_flight, None, {
            let (appends, gate) = (appends.clone(), gate.clone());
            move |_entry: Command| {
                let (appends, gate) = (appends.clone(), gate.clone());
                async move {
                    appends.send_modify(|n| *n += 1);
                    gate.acquire().await.expect("gate open").forget();
                    Ok(vec![Ok(())])
                }
            }
        }));
        let first = spawn_proposal(&batcher, "t1");
        appends_seen.wait_for(|n| *n >= 1).await.expect("first append");
        let second = spawn_proposal(&batcher, "t2");
        // Generous when the overlap is expected; when it is not, a second
        // append that has not started within this while counts as waiting.
        let patience = Duration::from_millis(if in_flight > 1 { 5000 } else { 200 });
        let overlapped = tokio::time::timeout(patience, appends_seen.wait_for(|n| *n >= 2)).await.is_ok();
        gate.add_permits(2);
        first.await.expect("task").expect("first applied");
        second.await.expect("task").expect("second applied");
        overlapped
    }

    #[tokio::test]
    async fn appends_under_way_at_once_stay_within_the_limit() {
        assert!(!second_append_overlaps_the_first(1).await, "one in flight: the second waits for the first");
        assert!(second_append_overlaps_the_first(2).await, "two in flight: the second starts at once");
    }

    /// The entries appended, in order.
    fn entries(appended: &Appended) -> Vec<Command> {
        appended.lock().expect("lock").iter().map(|(e, _)| e.clone()).collect()
    }

    /// Commands per entry, and when each entry was appended.
    fn sizes_and_times(appended: &Appended) -> Vec<(usize, tokio::time::Instant)> {
        appended.lock().expect("lock").iter().map(|(e, at)| (commands_in(e), *at)).collect()
    }

    // The clock is tokio's paused one: it moves only when every task waits
    // on a timer, so the times below are exact, not measured.
    #[tokio::test(start_paused = true)]
    async fn proposals_linger_only_after_a_full_entry() {
        let linger = Linger { after_batch: 3, target: 5, max_wait: Duration::from_millis(3) };
        let appended = Appended::default();
        let batcher = recording_batcher(Some(linger), appended.clone());
        let propose = |token: &str| spawn_proposal(&batcher, token);
        let start = tokio::time::Instant::now();
        // A lone proposal, then four that queue while it is appended: two
        // entries, neither delayed (no entry before them carried three).
        let first = propose("a");
        // Let the batcher take it alone (without advancing the clock).
        for _ in 0..100 {
            if !appended.lock().expect("lock").is_empty() {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert_eq!(appended.lock().expect("lock").len(), 1, "a first proposal is appended at once");
        let queued: Vec<_> = (0..4).map(|i| propose(&format!("b{i}"))).collect();
        first.await.expect("task").expect("applied");
        for t in queued {
            t.await.expect("task").expect("applied");
        }
        // After an entry of four, a lone proposal waits the whole 3 ms for
        // company; two more arriving 1 ms apart join it.
        let waiting_from = tokio::time::Instant::now();
        let lone = propose("c");
        tokio::time::sleep(Duration::from_millis(1)).await;
        let second = propose("d");
        tokio::time::sleep(Duration::from_millis(1)).await;
        let third = propose("e");
        for t in [lone, second, third] {
            t.await.expect("task").expect("applied");
        }
        // That entry held three, enough to linger after: the next lone
        // proposal waits out max_wait, alone.
        let after_three = tokio::time::Instant::now();
        propose("f").await.expect("task").expect("applied");
        // After an entry of one, nothing waits.
        let after_one = tokio::time::Instant::now();
        propose("g").await.expect("task").expect("applied");

        let appends = sizes_and_times(&appended);
        let sizes: Vec<usize> = appends.iter().map(|(n, _)| *n).collect();
        assert_eq!(sizes, vec![1, 4, 3, 1, 1]);
        assert_eq!(appends[0].1, start, "the first proposal is appended at once");
        assert_eq!(appends[1].1, start + Duration::from_millis(10), "the queued four follow the first append");
        assert_eq!(appends[2].1, waiting_from + Duration::from_millis(3), "lingered the whole max_wait");
        assert_eq!(
            appends[3].1,
            after_three + Duration::from_millis(3),
            "an entry of three is full enough to wait after"
        );
        assert_eq!(appends[4].1, after_one, "after an entry of one nothing waits");
    }

    #[tokio::test(start_paused = true)]
    async fn a_lingering_batch_stops_waiting_once_it_holds_its_target() {
        let linger = Linger { after_batch: 1, target: 3, max_wait: Duration::from_secs(60) };
        let appended = Appended::default();
        let batcher = recording_batcher(Some(linger), appended.clone());
        let propose = |token: &str| spawn_proposal(&batcher, token);
        propose("a").await.expect("task").expect("applied");
        // Lingering after an entry of one: the third proposal, 2 ms in,
        // completes the batch long before the minute is up, and the fourth,
        // queued with it, comes along.
        let from = tokio::time::Instant::now();
        let mut tasks = vec![propose("b")];
        tokio::time::sleep(Duration::from_millis(1)).await;
        tasks.push(propose("c"));
        tokio::time::sleep(Duration::from_millis(1)).await;
        tasks.push(propose("d"));
        tasks.push(propose("e"));
        for t in tasks {
            t.await.expect("task").expect("applied");
        }
        let appends = sizes_and_times(&appended);
        let sizes: Vec<usize> = appends.iter().map(|(n, _)| *n).collect();
        assert_eq!(sizes, vec![1, 4]);
        assert_eq!(appends[1].1, from + Duration::from_millis(2));
    }

    #[tokio::test]
    async fn a_lone_proposal_is_appended_as_itself() {
        let appended = Appended::default();
        let batcher = recording_batcher(None, appended.clone());
        batcher.propose(revoke("t1")).await.expect("applied");
        let entries = entries(&appended);
        assert_eq!(entries, vec![revoke("t1")]);
    }

    #[tokio::test]
    async fn a_failed_append_fails_every_proposal_of_its_batch() {
        let batcher = ProposalBatcher::spawn(2, None, |_entry: Command| async {
            Err::<Vec<ApplyResult>, _>(ControllerError::NotLeader { leader_addr: Some("c2:7000".into()) })
        });
        match batcher.propose(revoke("t1")).await {
            Err(ControllerError::NotLeader { leader_addr }) => assert_eq!(leader_addr.as_deref(), Some("c2:7000")),
            other => panic!("expected not-leader, got {other:?}"),
        }
    }
}

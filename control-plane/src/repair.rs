//! Re-replication: the leader restores every chunk to its replication
//! factor after nodes die or replicas are dropped.
//!
//! Planning is pure: [`chunks_wanting_repair`] scans the metadata for
//! chunks below their factor (fewest live replicas first); [`plan_jobs`]
//! gives each a healthy live replica as source and the least-utilised
//! healthy node that does not hold the chunk as target, at most
//! `per_node_limit` copies in flight per target. [`run_repair_worker`]
//! scans once per tick and carries the plan out: each copy is a logged
//! task; the target pulls the chunk from the source
//! (`StorageService.ReplicateChunk`; small chunks from one source to one
//! target several to a call, `ReplicateChunks`), verifies its CRC32C, and
//! only then is the new replica committed to the log.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tessera_proto::pb;
use tessera_proto::pb::storage_service_client::StorageServiceClient;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::controller::Controller;
use crate::error::ControllerError;
use crate::events::Event;
use crate::meta::tasks::{TaskKind, TaskState};
use crate::meta::{ChunkKey, FileState, MetaState, NodeHealth};
use crate::placement::NodeLoad;

/// How often the leader scans the metadata for chunks below their
/// replication factor (and retries failed copies).
const REPAIR_TICK: Duration = Duration::from_millis(500);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepairJob {
    pub file_id: Uuid,
    pub index: u32,
    pub size: u64,
    pub crc32c: u32,
    pub source: String,
    pub source_addr: String,
    pub target: String,
    pub target_addr: String,
    /// A replica on a node that cannot serve it, replaced by this copy.
    pub replaces: Option<String>,
    pub live_replicas: usize,
    pub kind: TaskKind,
}

/// How a chunk's replicas stand, by the health of the nodes holding them.
struct ReplicaHealth<'a> {
    meta: &'a MetaState,
}

impl ReplicaHealth<'_> {
    fn health(&self, node: &str) -> Option<NodeHealth> {
        self.meta.nodes.get(node).map(|n| n.health)
    }
    fn live(&self, node: &str) -> bool {
        self.health(node).is_some_and(|h| h.holds_live_replicas())
    }
    fn serving(&self, node: &str) -> bool {
        self.health(node) == Some(NodeHealth::Healthy)
    }
    /// Replicas that will stay: not on a draining node.
    fn staying(&self, node: &str) -> bool {
        matches!(self.health(node), Some(NodeHealth::Healthy | NodeHealth::Suspect))
    }
    /// Live replicas of a chunk that needs another copy (and has a source).
    fn wants_copy(&self, replicas: &[String], replication: u32) -> Option<usize> {
        let live = replicas.iter().filter(|n| self.live(n)).count();
        let staying = replicas.iter().filter(|n| self.staying(n)).count();
        (live > 0 && staying < replication as usize).then_some(live)
    }
}

/// Every chunk below its replication factor and not being copied, fewest
/// live replicas first, then in an order that mixes files (see
/// [`spread_order`]): a scan of the whole metadata.
pub fn chunks_wanting_repair(meta: &MetaState, busy_chunks: &HashSet<ChunkKey>) -> Vec<ChunkKey> {
    let replicas = ReplicaHealth { meta };
    let mut wanting: Vec<(usize, ChunkKey)> = Vec::new();
    for file in meta.files.values().filter(|f| f.state == FileState::Committed) {
        for (index, chunk) in &file.chunks {
            let key = (file.id, *index);
            if busy_chunks.contains(&key) {
                continue;
            }
            if let Some(live) = replicas.wants_copy(&chunk.replicas, file.replication) {
                wanting.push((live, key));
            }
        }
    }
    wanting.sort_by_key(|&(live, key)| (live, spread_order(&key), key));
    wanting.into_iter().map(|(_, key)| key).collect()
}

/// A fixed pseudo-random rank per chunk. Taking chunks in file order
/// copies a node's large files first and its small ones last: a phase
/// bound by bandwidth, then one bound by file creations and fsyncs.
/// Mixed, both kinds of copy overlap (measured below in docs/performance.md).
fn spread_order(key: &ChunkKey) -> u64 {
    let (_, random_bits) = key.0.as_u64_pair();
    (random_bits ^ u64::from(key.1)).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// Copies for `candidates`, in their order: a healthy live replica as
/// source, the least-utilised healthy node without the chunk as target, at
/// most `per_node_limit` copies in flight per target. Candidates that no
/// longer need a copy are skipped, so a list from an earlier scan is safe.
pub fn plan_jobs(
    meta: &MetaState,
    healthy: &[NodeLoad],
    candidates: &[ChunkKey],
    busy_chunks: &HashSet<ChunkKey>,
    busy_targets: &HashMap<String, usize>,
    per_node_limit: usize,
    max_jobs: usize,
) -> Vec<RepairJob> {
    let replicas = ReplicaHealth { meta };
    let health = |node: &str| replicas.health(node);
    let live = |node: &str| replicas.live(node);
    let serving = |node: &str| replicas.serving(node);
    let mut loads: Vec<NodeLoad> = healthy.to_vec();
    let mut in_flight = busy_targets.clone();
    let mut jobs = Vec::new();
    for &(file_id, index) in candidates {
        // Every target busy: the rest of a long list cannot get a copy now.
        let slots_left = loads.iter().any(|l| in_flight.get(&l.node_id).copied().unwrap_or(0) < per_node_limit);
        if jobs.len() >= max_jobs || !slots_left {
            break;
        }
        if busy_chunks.contains(&(file_id, index)) {
            continue;
        }
        let Some(file) = meta.files.get(&file_id).filter(|f| f.state == FileState::Committed) else { continue };
        let Some(chunk) = file.chunks.get(&index) else { continue };
        let Some(live_count) = replicas.wants_copy(&chunk.replicas, file.replication) else { continue };
        let Some(source) =
            chunk.replicas.iter().find(|n| serving(n)).or_else(|| chunk.replicas.iter().find(|n| live(n)))
        else {
            continue;
        };
        let target = loads
            .iter_mut()
            .filter(|l| !chunk.replicas.contains(&l.node_id))
            // A node about to delete this chunk must not receive it: the
            // delete could land after the copy.
            .filter(|l| !meta.is_garbage(&l.node_id, &(file_id, index)))
            .filter(|l| in_flight.get(&l.node_id).copied().unwrap_or(0) < per_node_limit)
            .filter(|l| l.capacity_bytes.saturating_sub(l.used_bytes) >= chunk.size)
            .min_by(|a, b| a.placement_order(b));
        let Some(target) = target else { continue };
        target.add(chunk.size);
        *in_flight.entry(target.node_id.clone()).or_default() += 1;
        let Some(source_node) = meta.nodes.get(source) else { continue };
        // Replace a replica that cannot serve first, else one being drained.
        let lost = chunk.replicas.iter().find(|n| !live(n)).cloned();
        let draining = chunk.replicas.iter().find(|n| health(n) == Some(NodeHealth::Decommissioning)).cloned();
        let kind = if lost.is_none() && draining.is_some() { TaskKind::Drain } else { TaskKind::ReReplicate };
        jobs.push(RepairJob {
            file_id,
            index,
            size: chunk.size,
            crc32c: chunk.crc32c,
            source: source.clone(),
            source_addr: source_node.addr(),
            target: target.node_id.clone(),
            target_addr: target.addr.clone(),
            replaces: lost.or(draining),
            live_replicas: live_count,
            kind,
        });
    }
    jobs
}

/// Copies in flight, so a chunk is never scheduled twice and each target
/// gets at most `per_node_limit` at once. Behind a plain mutex: it is never
/// held across an await.
#[derive(Default)]
struct InFlight {
    chunks: HashSet<ChunkKey>,
    targets: HashMap<String, usize>,
}

fn lock(in_flight: &std::sync::Mutex<InFlight>) -> std::sync::MutexGuard<'_, InFlight> {
    in_flight.lock().unwrap_or_else(|p| p.into_inner())
}

pub async fn run_repair_worker(controller: Arc<Controller>, shutdown: CancellationToken) {
    let in_flight = Arc::new(std::sync::Mutex::new(InFlight::default()));
    let per_node_limit = controller.config.repair_copies_per_node.max(1);
    // A finished copy frees a slot: plan the next one at once instead of at
    // the next tick (a tick-paced planner capped healing at slots / tick,
    // 24 chunks a second whatever their size).
    let copy_done = Arc::new(tokio::sync::Notify::new());
    // Chunks found wanting by the last scan of the metadata, in order. A
    // scan visits every chunk of every file, so it runs once per tick; a
    // finished copy fills its slot from this list (rescanning per copy made
    // the leader's CPU the bound of healing: 3 ms per copied chunk).
    let mut backlog: Vec<ChunkKey> = Vec::new();
    let mut scanned_at: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(REPAIR_TICK) => {}
            _ = copy_done.notified() => {}
            _ = controller.repair_wanted.notified() => scanned_at = None,
        }
        if !controller.is_leader() {
            backlog.clear();
            scanned_at = None;
            continue;
        }
        let jobs = {
            // A snapshot, so the scan below holds no lock the copies need;
            // they only free slots meanwhile, and only this loop adds.
            let (mut busy_chunks, busy_targets) = {
                let busy = lock(&in_flight);
                (busy.chunks.clone(), busy.targets.clone())
            };
            let copies_under_way = busy_chunks.len();
            // Chunks another worker (rebalance) is copying right now are left alone.
            busy_chunks.extend(
                controller.copies_in_flight.lock().unwrap_or_else(|p| p.into_inner()).iter().map(|(f, i, _)| (*f, *i)),
            );
            let healthy = controller.healthy_loads();
            let state = controller.state.read();
            if scanned_at.is_none_or(|at| at.elapsed() >= REPAIR_TICK) {
                backlog = chunks_wanting_repair(&state.meta, &busy_chunks);
                scanned_at = Some(Instant::now());
            }
            // Copies whose target has answered but whose replica is not in
            // the log yet hold no target slot; this bounds them too.
            let room = (2 * per_node_limit * healthy.len()).saturating_sub(copies_under_way).min(256);
            plan_jobs(&state.meta, &healthy, &backlog, &busy_chunks, &busy_targets, per_node_limit, room)
        };
        let dispatched: HashSet<ChunkKey> = jobs.iter().map(|j| (j.file_id, j.index)).collect();
        backlog.retain(|key| !dispatched.contains(key));
        {
            let mut busy = lock(&in_flight);
            for job in &jobs {
                busy.chunks.insert((job.file_id, job.index));
                *busy.targets.entry(job.target.clone()).or_default() += 1;
            }
        }
        for call in batch_jobs(jobs) {
            let controller = controller.clone();
            let in_flight = in_flight.clone();
            let copy_done = copy_done.clone();
            tokio::spawn(async move {
                let keys: Vec<ChunkKey> = call.iter().map(|j| (j.file_id, j.index)).collect();
                let Some(target) = call.first().map(|j| j.target.clone()) else { return };
                // The target's slots are free once it has answered: waiting
                // for the replicas' log entries too held every slot ~100 ms
                // longer while healing (the disk the log is synced to is the
                // one the copies keep busy). The chunks stay busy until then.
                let target_answered = || {
                    if let Some(n) = lock(&in_flight).targets.get_mut(&target) {
                        *n = n.saturating_sub(keys.len());
                    }
                    copy_done.notify_one();
                };
                let copied = copy_call(&controller, call, target_answered).await;
                {
                    let mut busy = lock(&in_flight);
                    for key in &keys {
                        busy.chunks.remove(key);
                    }
                }
                // A failed copy waits for the tick: retrying it at once
                // would spin on a source or target that is down.
                if copied > 0 {
                    copy_done.notify_one();
                }
            });
        }
    }
}

/// A copy as a logged task, from its start to its end: the start is
/// proposed while the target copies (a copy waits for one log entry less);
/// the replica is recorded only once both are done, and the task's end
/// after that, without holding up the next copy.
struct CopyTask {
    job: RepairJob,
    task_id: String,
    /// In `Controller::copies_in_flight` from before the task is in the log
    /// until its end is: a running task that is not in flight was orphaned
    /// by a leader change (see [`finish_orphaned_tasks`]).
    copy_key: (Uuid, u32, String),
}

impl CopyTask {
    /// The task and the event that starts it.
    fn begin(controller: &Controller, job: RepairJob) -> (Self, Event) {
        let task_id = format!("{:013}-{}", tessera_proto::now_ms(), &Uuid::new_v4().simple().to_string()[..8]);
        let started = Event::TaskStarted {
            task_id: task_id.clone(),
            kind: job.kind,
            file_id: job.file_id,
            index: job.index,
            from: job.source.clone(),
            to: job.target.clone(),
            at_ms: tessera_proto::now_ms(),
        };
        let copy_key = (job.file_id, job.index, job.target.clone());
        controller.copies_in_flight.lock().unwrap_or_else(|p| p.into_inner()).insert(copy_key.clone());
        (Self { job, task_id, copy_key }, started)
    }

    /// Records the replica if the target stored it (`copied`) and the task's
    /// start is in the log (`logged`); returns whether the copy landed, as
    /// soon as its replica is in the log. The task's end is logged after.
    async fn finish(
        self,
        controller: &Arc<Controller>,
        logged: Result<(), ControllerError>,
        copied: Result<(), String>,
    ) -> bool {
        let job = self.job;
        if let Err(e) = logged {
            // Not the leader any more, say: what the target stored is garbage
            // its next inventory reports.
            controller.copies_in_flight.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.copy_key);
            tracing::debug!(error = %e, "could not start a copy task");
            return false;
        }
        let outcome = match copied {
            Ok(()) => controller
                .propose(Event::ReplicaAdded {
                    file_id: job.file_id,
                    index: job.index,
                    node_id: job.target.clone(),
                    replaces: job.replaces.clone(),
                })
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(e),
        };
        let (ok, error) = match outcome {
            Ok(()) => {
                tracing::info!(file = %job.file_id, chunk = job.index, from = %job.source, to = %job.target, kind = job.kind.as_str(), "replica copied");
                (true, String::new())
            }
            Err(e) => {
                tracing::warn!(file = %job.file_id, chunk = job.index, to = %job.target, error = %e, "replica copy failed");
                (false, e)
            }
        };
        let finished = Event::TaskFinished { task_id: self.task_id, ok, error, at_ms: tessera_proto::now_ms() };
        let controller = controller.clone();
        let copy_key = self.copy_key;
        tokio::spawn(async move {
            if let Err(e) = controller.propose(finished).await {
                tracing::debug!(error = %e, "could not record the end of a copy task");
            }
            // Still "in flight" until its end is logged: a running task that
            // is not in flight counts as orphaned.
            controller.copies_in_flight.lock().unwrap_or_else(|p| p.into_inner()).remove(&copy_key);
        });
        ok
    }
}

/// A failed call to a target, as a copy's error; a full disk keeps
/// placements away from the target until it reports free space again.
fn copy_call_error(controller: &Controller, target: &str, status: &tonic::Status) -> String {
    if status.code() == tonic::Code::ResourceExhausted {
        controller.liveness.mark_full(target);
    }
    format!("{}: {}", status.code(), status.message())
}

/// One copy as a logged task: started, copied and verified by the target
/// (`StorageService.ReplicateChunk`), replica committed, finished.
/// `target_answered` runs as soon as the target has replied, success or
/// not (its work on the copy is over). Returns whether the copy landed.
pub async fn copy_replica(controller: &Arc<Controller>, job: RepairJob, target_answered: impl FnOnce()) -> bool {
    let mut client = StorageServiceClient::new(controller.datanode_channels.channel(&job.target_addr));
    let request = pb::ReplicateChunkRequest {
        file_id: job.file_id.to_string(),
        index: job.index,
        source_addr: job.source_addr.clone(),
        crc32c: job.crc32c,
        size: job.size,
    };
    let (size, crc32c, target) = (job.size, job.crc32c, job.target.clone());
    let (task, started) = CopyTask::begin(controller, job);
    let copying = async {
        let reply = client.replicate_chunk(request).await;
        target_answered();
        reply
    };
    let (logged, copied) = tokio::join!(controller.propose(started), copying);
    let copied = match copied {
        Ok(reply) if reply.get_ref().crc32c == crc32c && reply.get_ref().size == size => Ok(()),
        Ok(_) => Err("the copy's checksum does not match".to_string()),
        Err(status) => Err(copy_call_error(controller, &target, &status)),
    };
    task.finish(controller, logged, copied).await
}

/// Copies of small chunks from one source to one target in one call
/// (`StorageService.ReplicateChunks`), each still a task of its own that
/// lands or fails on its own. `target_answered` runs once the target has
/// replied. Returns how many copies landed.
pub async fn copy_replicas(
    controller: &Arc<Controller>,
    jobs: Vec<RepairJob>,
    target_answered: impl FnOnce(),
) -> usize {
    let Some(first) = jobs.first() else { return 0 };
    let mut client = StorageServiceClient::new(controller.datanode_channels.channel(&first.target_addr));
    let target = first.target.clone();
    let request = pb::ReplicateChunksRequest {
        source_addr: first.source_addr.clone(),
        chunks: jobs
            .iter()
            .map(|job| pb::ChunkHeader {
                file_id: job.file_id.to_string(),
                index: job.index,
                size: job.size,
                crc32c: job.crc32c,
            })
            .collect(),
    };
    let (tasks, starts): (Vec<CopyTask>, Vec<Event>) =
        jobs.into_iter().map(|job| CopyTask::begin(controller, job)).unzip();
    let copying = async {
        let reply = client.replicate_chunks(request).await;
        target_answered();
        reply
    };
    // The starts reach the proposal batcher together: one log entry.
    let (logged, copied) =
        tokio::join!(futures::future::join_all(starts.into_iter().map(|event| controller.propose(event))), copying);
    let copied: Vec<Result<(), String>> = match copied {
        Ok(reply) => {
            let reply = reply.into_inner().chunks;
            tasks.iter().enumerate().map(|(at, task)| chunk_copied(controller, &task.job, reply.get(at))).collect()
        }
        Err(status) => {
            let error = copy_call_error(controller, &target, &status);
            tasks.iter().map(|_| Err(error.clone())).collect()
        }
    };
    let landed = futures::future::join_all(
        tasks
            .into_iter()
            .zip(logged)
            .zip(copied)
            .map(|((task, logged), copied)| task.finish(controller, logged, copied)),
    )
    .await;
    landed.into_iter().filter(|&ok| ok).count()
}

/// What the target says of one chunk of a batch, checked against the job.
fn chunk_copied(controller: &Controller, job: &RepairJob, reply: Option<&pb::ChunkCopied>) -> Result<(), String> {
    let Some((reply, chunk)) = reply.and_then(|r| Some((r, r.chunk.as_ref()?))) else {
        return Err("the target did not answer for this chunk".into());
    };
    if chunk.file_id != job.file_id.to_string() || chunk.index != job.index {
        return Err("the target answered for another chunk".into());
    }
    if reply.code != tonic::Code::Ok as i32 {
        return Err(copy_call_error(
            controller,
            &job.target,
            &tonic::Status::new(reply.code.into(), reply.error.clone()),
        ));
    }
    if chunk.crc32c != job.crc32c || chunk.size != job.size {
        return Err("the copy's checksum does not match".into());
    }
    Ok(())
}

/// One call of [`batch_jobs`]: a lone copy through `ReplicateChunk`,
/// several through `ReplicateChunks`. Returns how many copies landed.
pub async fn copy_call(controller: &Arc<Controller>, call: Vec<RepairJob>, target_answered: impl FnOnce()) -> usize {
    match <[RepairJob; 1]>::try_from(call) {
        Ok([job]) => usize::from(copy_replica(controller, job, target_answered).await),
        Err(call) => copy_replicas(controller, call, target_answered).await,
    }
}

/// Chunks below this size are copied in batches ([`copy_replicas`]): for
/// them the calls, not the bytes, are most of a copy's cost.
const BATCH_COPY_BELOW: u64 = 1024 * 1024;
/// Most copies in one batch.
const COPY_BATCH: usize = 16;

/// The planned jobs as calls: small chunks from the same source to the
/// same target together, up to [`COPY_BATCH`] a call, in plan order;
/// every other job alone.
pub fn batch_jobs(jobs: Vec<RepairJob>) -> Vec<Vec<RepairJob>> {
    let mut calls: Vec<Vec<RepairJob>> = Vec::new();
    // Open batch per (source, target): its place in `calls`.
    let mut open: HashMap<(String, String), usize> = HashMap::new();
    for job in jobs {
        if job.size >= BATCH_COPY_BELOW {
            calls.push(vec![job]);
            continue;
        }
        let pair = (job.source_addr.clone(), job.target.clone());
        match open.get(&pair).copied() {
            Some(at) if calls[at].len() < COPY_BATCH => calls[at].push(job),
            _ => {
                open.insert(pair, calls.len());
                calls.push(vec![job]);
            }
        }
    }
    calls
}

/// Tasks the log shows running that no copy on this leader is running:
/// their leader died or was deposed mid-copy, so nobody would ever finish
/// them. Pure, for tests.
pub fn orphaned_tasks(meta: &MetaState, in_flight: &HashSet<(Uuid, u32, String)>) -> Vec<String> {
    meta.tasks
        .values()
        .filter(|t| t.state == TaskState::Running && !in_flight.contains(&(t.file_id, t.index, t.to.clone())))
        .map(|t| t.id.clone())
        .collect()
}

/// Leader-only: records orphaned tasks as failed, so `/admin/rebalances`
/// does not show copies running forever after a failover.
pub async fn finish_orphaned_tasks(controller: &Controller) {
    let orphans = {
        let state = controller.state.read();
        let in_flight = controller.copies_in_flight.lock().unwrap_or_else(|p| p.into_inner());
        orphaned_tasks(&state.meta, &in_flight)
    };
    for task_id in orphans {
        let finished = Event::TaskFinished {
            task_id,
            ok: false,
            error: "interrupted: the controller running it lost the lead; repair plans the copy again if needed".into(),
            at_ms: tessera_proto::now_ms(),
        };
        if let Err(e) = controller.propose(finished).await {
            tracing::debug!(error = %e, "could not finish an orphaned task");
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::{ChunkRecord, FileRecord, NodeRecord};
    use std::collections::BTreeMap;

    /// A scan and a plan from it, as the worker does on a tick.
    fn plan_repairs(
        meta: &MetaState,
        healthy: &[NodeLoad],
        busy_chunks: &HashSet<ChunkKey>,
        busy_targets: &HashMap<String, usize>,
        per_node_limit: usize,
        max_jobs: usize,
    ) -> Vec<RepairJob> {
        let wanting = chunks_wanting_repair(meta, busy_chunks);
        plan_jobs(meta, healthy, &wanting, busy_chunks, busy_targets, per_node_limit, max_jobs)
    }

    fn node(id: &str, health: NodeHealth) -> NodeRecord {
        NodeRecord {
            node_id: id.into(),
            host: "127.0.0.1".into(),
            grpc_port: 1,
            capacity_bytes: 1000,
            mac: String::new(),
            health,
            health_changed_at_ms: 0,
        }
    }

    fn load(id: &str, used: u64) -> NodeLoad {
        NodeLoad {
            node_id: id.into(),
            addr: format!("{id}:1"),
            capacity_bytes: 1000,
            used_bytes: used,
            stored_bytes: 0,
        }
    }

    fn state_with(chunks: Vec<Vec<&str>>, health: &[(&str, NodeHealth)]) -> MetaState {
        let mut meta = MetaState::default();
        for (id, h) in health {
            meta.nodes.insert(id.to_string(), node(id, *h));
        }
        let mut records = BTreeMap::new();
        for (i, replicas) in chunks.into_iter().enumerate() {
            records.insert(
                i as u32,
                ChunkRecord { size: 10, crc32c: 1, replicas: replicas.into_iter().map(String::from).collect() },
            );
        }
        let id = Uuid::now_v7();
        meta.files.insert(
            id,
            FileRecord {
                id,
                name: "f".into(),
                size: 0,
                chunk_size: 10,
                total_chunks: records.len() as u32,
                replication: 3,
                state: FileState::Committed,
                created_at_ms: 0,
                checksum: String::new(),
                chunks: records,
                owner: String::new(),
            },
        );
        meta
    }

    #[test]
    fn fewest_live_replicas_first_to_a_node_without_the_chunk() {
        use NodeHealth::*;
        let meta = state_with(
            vec![vec!["a", "b", "d"], vec!["a", "d", "e"], vec!["a", "b", "c"]],
            &[("a", Healthy), ("b", Healthy), ("c", Healthy), ("d", Dead), ("e", Dead)],
        );
        let healthy = vec![load("a", 0), load("b", 0), load("c", 0)];
        let jobs = plan_repairs(&meta, &healthy, &HashSet::new(), &HashMap::new(), 4, 10);
        // Chunk 1 (one live replica) goes first; chunk 2 is complete.
        assert_eq!(jobs.len(), 2);
        assert_eq!(jobs[0].index, 1);
        assert_eq!(jobs[0].live_replicas, 1);
        assert_eq!(jobs[0].source, "a");
        assert!(["b", "c"].contains(&jobs[0].target.as_str()));
        assert_eq!(jobs[0].replaces.as_deref(), Some("d"));
        assert_eq!(jobs[1].index, 0);
        assert_eq!(jobs[1].target, "c");
    }

    #[test]
    fn respects_per_node_limit_and_busy_chunks() {
        use NodeHealth::*;
        let meta = state_with(
            vec![vec!["a", "b", "d"], vec!["a", "b", "d"], vec!["a", "b", "d"]],
            &[("a", Healthy), ("b", Healthy), ("c", Healthy), ("d", Dead)],
        );
        let healthy = vec![load("a", 0), load("b", 0), load("c", 0)];
        let jobs = plan_repairs(&meta, &healthy, &HashSet::new(), &HashMap::new(), 2, 10);
        assert_eq!(jobs.len(), 2, "only two copies at once to c");
        let file = *meta.files.keys().next().unwrap();
        let busy: HashSet<ChunkKey> = [(file, 0), (file, 1), (file, 2)].into_iter().collect();
        assert!(plan_repairs(&meta, &healthy, &busy, &HashMap::new(), 2, 10).is_empty());
    }

    #[test]
    fn draining_nodes_are_copied_away_first_from_healthy_sources() {
        use NodeHealth::*;
        let meta = state_with(
            vec![vec!["a", "b", "c"], vec!["a", "b", "d"]],
            &[("a", Healthy), ("b", Healthy), ("c", Decommissioning), ("d", Healthy)],
        );
        let healthy = vec![load("a", 0), load("b", 0), load("d", 0)];
        let jobs = plan_repairs(&meta, &healthy, &HashSet::new(), &HashMap::new(), 4, 10);
        assert_eq!(jobs.len(), 1);
        assert_eq!(jobs[0].kind, TaskKind::Drain);
        assert_eq!(jobs[0].target, "d");
        assert_eq!(jobs[0].replaces.as_deref(), Some("c"));
        assert_ne!(jobs[0].source, "c");
    }

    #[test]
    fn lost_chunks_and_full_nodes_are_skipped() {
        use NodeHealth::*;
        let meta = state_with(vec![vec!["d", "e"]], &[("a", Healthy), ("d", Dead), ("e", Dead)]);
        assert!(plan_repairs(&meta, &[load("a", 0)], &HashSet::new(), &HashMap::new(), 2, 10).is_empty());
        let meta = state_with(vec![vec!["a", "d"]], &[("a", Healthy), ("b", Healthy), ("d", Dead)]);
        assert!(
            plan_repairs(&meta, &[load("a", 0), load("b", 995)], &HashSet::new(), &HashMap::new(), 2, 10).is_empty()
        );
    }

    #[test]
    fn a_list_from_an_earlier_scan_skips_chunks_repaired_since() {
        use NodeHealth::*;
        let mut meta = state_with(
            vec![vec!["a", "b", "d"], vec!["a", "b", "d"]],
            &[("a", Healthy), ("b", Healthy), ("c", Healthy), ("d", Dead)],
        );
        let healthy = vec![load("a", 0), load("b", 0), load("c", 0)];
        let backlog = chunks_wanting_repair(&meta, &HashSet::new());
        assert_eq!(backlog.len(), 2);
        // Chunk 0 got its copy meanwhile; chunk 1 is being copied by someone else.
        let file = backlog[0].0;
        meta.apply(&Event::ReplicaAdded { file_id: file, index: 0, node_id: "c".into(), replaces: Some("d".into()) })
            .unwrap();
        let busy: HashSet<ChunkKey> = [(file, 1)].into_iter().collect();
        assert!(plan_jobs(&meta, &healthy, &backlog, &busy, &HashMap::new(), 4, 10).is_empty());
        let jobs = plan_jobs(&meta, &healthy, &backlog, &HashSet::new(), &HashMap::new(), 4, 10);
        assert_eq!(jobs.len(), 1);
        assert_eq!((jobs[0].index, jobs[0].target.as_str()), (1, "c"));
    }

    #[test]
    fn files_are_mixed_within_the_same_number_of_live_replicas() {
        let health = [("a", NodeHealth::Healthy), ("b", NodeHealth::Healthy), ("c", NodeHealth::Dead)];
        let mut meta = state_with(vec![vec!["a", "b", "c"]; 12], &health);
        let other = state_with(vec![vec!["a", "b", "c"]; 12], &health);
        meta.files.extend(other.files);
        // One chunk with a single live replica goes first whatever its rank.
        let (&lonely, _) = meta.files.iter().next().expect("a file");
        meta.files.get_mut(&lonely).and_then(|f| f.chunks.get_mut(&11)).expect("chunk 11").replicas =
            vec!["a".into(), "c".into()];
        let backlog = chunks_wanting_repair(&meta, &HashSet::new());
        assert_eq!(backlog.len(), 24);
        assert_eq!(backlog[0], (lonely, 11));
        // Not one file's chunks and then the other's.
        let first_half: HashSet<Uuid> = backlog[..12].iter().map(|(file, _)| *file).collect();
        assert_eq!(first_half.len(), 2, "{backlog:?}");
    }

    #[test]
    fn small_copies_between_the_same_pair_share_a_call() {
        let job = |index: u32, size: u64, source: &str, target: &str| RepairJob {
            file_id: Uuid::nil(),
            index,
            size,
            crc32c: 0,
            source: source.into(),
            source_addr: format!("{source}:1"),
            target: target.into(),
            target_addr: format!("{target}:1"),
            replaces: None,
            live_replicas: 2,
            kind: TaskKind::ReReplicate,
        };
        let mut jobs =
            vec![job(0, 4 << 20, "a", "c"), job(1, 100, "a", "c"), job(2, 100, "b", "c"), job(3, 0, "a", "c")];
        jobs.extend((10..30).map(|i| job(i, 65536, "a", "d")));
        let calls = batch_jobs(jobs);
        let indexes: Vec<Vec<u32>> = calls.iter().map(|c| c.iter().map(|j| j.index).collect()).collect();
        assert_eq!(indexes[..3], [vec![0], vec![1, 3], vec![2]], "a large chunk goes alone; pairs do not mix");
        assert_eq!(indexes[3], (10..26).collect::<Vec<_>>(), "at most {COPY_BATCH} a call, in plan order");
        assert_eq!(indexes[4], (26..30).collect::<Vec<_>>());
        assert_eq!(calls.len(), 5);
    }

    #[test]
    fn a_running_task_no_copy_runs_is_orphaned() {
        let mut meta = MetaState::default();
        let file = Uuid::now_v7();
        meta.apply(&Event::TaskStarted {
            task_id: "t1".into(),
            kind: TaskKind::ReReplicate,
            file_id: file,
            index: 2,
            from: "a".into(),
            to: "b".into(),
            at_ms: 1,
        })
        .unwrap();
        let mut in_flight = HashSet::new();
        assert_eq!(orphaned_tasks(&meta, &in_flight), vec!["t1".to_string()]);
        in_flight.insert((file, 2, "b".to_string()));
        assert!(orphaned_tasks(&meta, &in_flight).is_empty());
        meta.apply(&Event::TaskFinished { task_id: "t1".into(), ok: false, error: "x".into(), at_ms: 2 }).unwrap();
        assert!(orphaned_tasks(&meta, &HashSet::new()).is_empty());
    }
}

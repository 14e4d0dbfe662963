//! Rebalance: move replicas from the fullest healthy nodes to the emptiest
//! until stored bytes are even (within one chunk), e.g. after a node joins.
//!
//! A pass runs when asked (`POST /admin/rebalances`), when a new node
//! registers, or on its own when utilisation (used ÷ capacity) of the
//! fullest and emptiest nodes differs by more than the configured threshold.
//! Each move is a copy task: copy to the receiver, verify, commit the new
//! replica while dropping the donor's in the same event, so a chunk never
//! has fewer than its replication factor of copies. Small chunks between
//! the same two nodes move several to a call, as healing copies them
//! (`repair::batch_jobs`).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::controller::Controller;
use crate::meta::tasks::TaskKind;
use crate::meta::{ChunkKey, FileState, MetaState, NodeHealth};
use crate::placement::NodeLoad;
use crate::repair::{batch_jobs, copy_call, RepairJob};

/// Stored bytes per healthy node according to the metadata.
fn stored_bytes(meta: &MetaState, healthy: &[NodeLoad]) -> HashMap<String, u64> {
    let mut stored: HashMap<String, u64> = healthy.iter().map(|n| (n.node_id.clone(), 0)).collect();
    for file in meta.files.values() {
        for chunk in file.chunks.values() {
            for node in &chunk.replicas {
                if let Some(bytes) = stored.get_mut(node) {
                    *bytes += chunk.size;
                }
            }
        }
    }
    stored
}

/// Whether utilisation differs by more than `threshold_points` percentage points.
pub fn unbalanced(healthy: &[NodeLoad], threshold_points: f64) -> bool {
    let utilisation: Vec<f64> =
        healthy.iter().map(|n| 100.0 * n.used_bytes as f64 / n.capacity_bytes.max(1) as f64).collect();
    let max = utilisation.iter().copied().fold(f64::MIN, f64::max);
    let min = utilisation.iter().copied().fold(f64::MAX, f64::min);
    utilisation.len() > 1 && max - min > threshold_points
}

/// Up to `max_moves` moves from the node storing the most bytes to the one
/// storing the least that has room for the chunk (by its reported free
/// space: a node whose disk is full receives nothing), while that narrows
/// the gap.
pub fn plan_rebalance(
    meta: &MetaState,
    healthy: &[NodeLoad],
    busy_chunks: &HashSet<ChunkKey>,
    max_moves: usize,
) -> Vec<RepairJob> {
    let mut stored = stored_bytes(meta, healthy);
    let addr: HashMap<&str, &str> = healthy.iter().map(|n| (n.node_id.as_str(), n.addr.as_str())).collect();
    let mut live: HashMap<String, NodeLoad> = healthy.iter().map(|n| (n.node_id.clone(), n.clone())).collect();
    // Smallest move worth making; a receiver without room for it is skipped.
    let min_chunk = meta.files.values().flat_map(|f| f.chunks.values()).map(|c| c.size).filter(|s| *s > 0).min();
    let mut moved: HashSet<ChunkKey> = HashSet::new();
    let mut jobs = Vec::new();
    while jobs.len() < max_moves {
        let Some((donor, donor_bytes)) = stored.iter().max_by_key(|(n, b)| (**b, std::cmp::Reverse((*n).clone())))
        else {
            break;
        };
        let Some((receiver, receiver_bytes)) = stored
            .iter()
            .filter(|(n, _)| **n != *donor && live.get(*n).is_some_and(|l| l.fits(min_chunk.unwrap_or(1))))
            .min_by_key(|(n, b)| (**b, (*n).clone()))
        else {
            break;
        };
        let (donor, receiver) = (donor.clone(), receiver.clone());
        let room = live.get(&receiver).map_or(0, |l| l.capacity_bytes.saturating_sub(l.used_bytes));
        let gap = donor_bytes.saturating_sub(*receiver_bytes);
        // Largest chunk on the donor that the receiver lacks and whose move
        // narrows the gap (size < gap).
        let candidate = meta
            .files
            .values()
            .filter(|f| f.state == FileState::Committed)
            .flat_map(|f| f.chunks.iter().map(move |(i, c)| ((f.id, *i), c)))
            .filter(|(key, c)| {
                c.size > 0
                    && c.size < gap
                    && c.size <= room
                    && c.replicas.contains(&donor)
                    && !c.replicas.contains(&receiver)
                    && !meta.is_garbage(&receiver, key)
                    && !busy_chunks.contains(key)
                    && !moved.contains(key)
            })
            .max_by_key(|(key, c)| (c.size, std::cmp::Reverse(*key)));
        let Some((key, chunk)) = candidate else { break };
        moved.insert(key);
        *stored.entry(donor.clone()).or_default() -= chunk.size;
        *stored.entry(receiver.clone()).or_default() += chunk.size;
        if let Some(l) = live.get_mut(&receiver) {
            l.used_bytes = l.used_bytes.saturating_add(chunk.size);
        }
        jobs.push(RepairJob {
            file_id: key.0,
            index: key.1,
            size: chunk.size,
            crc32c: chunk.crc32c,
            source: donor.clone(),
            source_addr: addr.get(donor.as_str()).map(|a| a.to_string()).unwrap_or_default(),
            target: receiver.clone(),
            target_addr: addr.get(receiver.as_str()).map(|a| a.to_string()).unwrap_or_default(),
            replaces: Some(donor),
            live_replicas: chunk.replicas.len(),
            kind: TaskKind::Rebalance,
        });
    }
    jobs
}

/// Leader-only: runs rebalance passes, one batch of moves at a time.
pub async fn run_rebalance_worker(controller: Arc<Controller>, shutdown: CancellationToken) {
    let copy_limit = u32::try_from(controller.config.repair_copies_per_node.max(1)).unwrap_or(u32::MAX);
    let copies = Arc::new(Semaphore::new(copy_limit as usize));
    loop {
        if !controller.next_leader_tick(Duration::from_secs(1), &shutdown).await {
            return;
        }
        crate::repair::finish_orphaned_tasks(&controller).await;
        let healthy = controller.healthy_loads();
        let repairs_pending = controller.state.read().meta.replication_stats().under_replicated > 0;
        // Repair and drains first: moving replicas while chunks lack copies
        // (or while a node drains) would race those copies for the same chunks.
        let draining = controller.state.read().meta.nodes.values().any(|n| n.health == NodeHealth::Decommissioning);
        let copying = !controller.copies_in_flight.lock().unwrap_or_else(|p| p.into_inner()).is_empty();
        if repairs_pending || draining || copying {
            continue;
        }
        let requested = controller.rebalance_requested.load(Ordering::Relaxed);
        if !requested && !unbalanced(&healthy, controller.config.rebalance_threshold_points) {
            continue;
        }
        let jobs = {
            let state = controller.state.read();
            let all_healthy = state.meta.nodes.values().filter(|n| n.health == NodeHealth::Healthy).count();
            if all_healthy < 2 {
                Vec::new()
            } else {
                plan_rebalance(&state.meta, &healthy, &HashSet::new(), 16)
            }
        };
        if jobs.is_empty() {
            if requested {
                tracing::info!("rebalance pass finished: stored bytes are even");
            }
            controller.rebalance_requested.store(false, Ordering::Relaxed);
            continue;
        }
        tracing::info!(moves = jobs.len(), "rebalancing");
        let mut running = Vec::new();
        for call in batch_jobs(jobs) {
            // A copy a permit, a batch no more than the semaphore holds.
            let wanted = u32::try_from(call.len()).unwrap_or(u32::MAX).min(copy_limit);
            let Ok(permit) = copies.clone().acquire_many_owned(wanted).await else { return };
            let controller = controller.clone();
            running.push(tokio::spawn(async move {
                copy_call(&controller, call, || {}).await;
                drop(permit);
            }));
        }
        for task in running {
            let _ = task.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::{ChunkRecord, FileRecord};
    use std::collections::BTreeMap;
    use uuid::Uuid;

    fn load(id: &str) -> NodeLoad {
        NodeLoad { node_id: id.into(), addr: format!("{id}:1"), capacity_bytes: 1000, used_bytes: 0, stored_bytes: 0 }
    }

    /// One file of 12 chunks of 10 bytes, each on "a", "b" and "c".
    fn twelve_chunks_on_abc() -> MetaState {
        let mut meta = MetaState::default();
        let mut chunks = BTreeMap::new();
        for i in 0..12u32 {
            chunks.insert(i, ChunkRecord { size: 10, crc32c: 1, replicas: vec!["a".into(), "b".into(), "c".into()] });
        }
        let id = Uuid::now_v7();
        meta.files.insert(
            id,
            FileRecord {
                id,
                name: "f".into(),
                size: 120,
                chunk_size: 10,
                total_chunks: 12,
                replication: 3,
                state: FileState::Committed,
                created_at_ms: 0,
                checksum: String::new(),
                chunks,
                owner: String::new(),
            },
        );
        meta
    }

    #[test]
    fn moves_replicas_to_a_new_empty_node_until_even() {
        let meta = twelve_chunks_on_abc();
        let healthy = vec![load("a"), load("b"), load("c"), load("d")];
        let jobs = plan_rebalance(&meta, &healthy, &HashSet::new(), 100);
        // 36 replicas over 4 nodes: 9 each, so d receives 9.
        assert_eq!(jobs.len(), 9);
        assert!(jobs.iter().all(|j| j.target == "d" && j.replaces.as_deref() == Some(j.source.as_str())));
        let distinct: HashSet<(Uuid, u32)> = jobs.iter().map(|j| (j.file_id, j.index)).collect();
        assert_eq!(distinct.len(), 9, "one move per chunk");
    }

    #[test]
    fn a_node_without_room_receives_nothing() {
        let meta = twelve_chunks_on_abc();
        // "d" stores nothing but its disk is full (filled by something else).
        let mut full = load("d");
        full.used_bytes = 1000;
        assert!(plan_rebalance(&meta, &[load("a"), load("b"), load("c"), full], &HashSet::new(), 100).is_empty());
        // Room for 3 chunks: exactly 3 moves go there.
        let mut small = load("d");
        small.used_bytes = 970;
        let jobs = plan_rebalance(&meta, &[load("a"), load("b"), load("c"), small], &HashSet::new(), 100);
        assert_eq!(jobs.len(), 3);
    }

    #[test]
    fn detects_utilisation_spread() {
        let mut a = load("a");
        a.used_bytes = 200;
        assert!(unbalanced(&[a.clone(), load("b")], 10.0));
        a.used_bytes = 50;
        assert!(!unbalanced(&[a, load("b")], 10.0));
    }
}

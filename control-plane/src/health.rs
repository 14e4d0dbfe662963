//! Data node health. Heartbeats are soft state kept on the leader only
//! ([`Liveness`]); the sweep ([`run_health_sweep`]) turns silence into
//! logged health transitions: healthy → suspect → dead.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::controller::Controller;
use crate::meta::NodeHealth;
use crate::nodes::SpaceReport;
use crate::placement::NodeLoad;

/// What the leader last heard from a data node.
#[derive(Debug, Clone)]
pub struct LiveNode {
    pub last_seen: Instant,
    pub last_seen_ms: i64,
    pub capacity_bytes: u64,
    pub free_bytes: u64,
    /// Bytes of chunks the node stores, by its last report.
    pub stored_bytes: u64,
    /// Bytes placed on the node since its last heartbeat, so concurrent
    /// uploads between two heartbeats do not all pick the same nodes.
    pub reserved_bytes: u64,
}

#[derive(Default)]
pub struct Liveness {
    nodes: Mutex<HashMap<String, LiveNode>>,
}

impl Liveness {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, LiveNode>> {
        self.nodes.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn record(&self, node_id: &str, space: &SpaceReport) {
        self.lock().insert(
            node_id.to_string(),
            LiveNode {
                last_seen: Instant::now(),
                last_seen_ms: tessera_proto::now_ms(),
                capacity_bytes: space.capacity_bytes,
                free_bytes: space.free_bytes,
                stored_bytes: space.stored_bytes,
                reserved_bytes: 0,
            },
        );
    }

    /// Restarts a node's silence clock now (e.g. on recovery), keeping the
    /// last figures it reported.
    pub fn touch(&self, node_id: &str) {
        let mut nodes = self.lock();
        let entry = nodes.entry(node_id.to_string()).or_insert_with(|| LiveNode {
            last_seen: Instant::now(),
            last_seen_ms: tessera_proto::now_ms(),
            capacity_bytes: 0,
            free_bytes: 0,
            stored_bytes: 0,
            reserved_bytes: 0,
        });
        entry.last_seen = Instant::now();
    }

    pub fn get(&self, node_id: &str) -> Option<LiveNode> {
        self.lock().get(node_id).cloned()
    }

    /// The node said its disk is full: place nothing there until its next
    /// heartbeat reports free space again.
    pub fn mark_full(&self, node_id: &str) {
        if let Some(node) = self.lock().get_mut(node_id) {
            node.free_bytes = 0;
        }
    }

    pub fn reserve(&self, node_id: &str, bytes: u64) {
        if let Some(node) = self.lock().get_mut(node_id) {
            node.reserved_bytes = node.reserved_bytes.saturating_add(bytes);
        }
    }

    /// Load of a node for placement: reported use plus reservations. A node
    /// not heard from yet (e.g. just after a leader change) is assumed empty
    /// at its registered capacity.
    pub fn load(&self, node_id: &str, addr: String, registered_capacity: u64) -> NodeLoad {
        match self.lock().get(node_id) {
            Some(live) => {
                let capacity = if live.capacity_bytes > 0 { live.capacity_bytes } else { registered_capacity };
                NodeLoad {
                    node_id: node_id.to_string(),
                    addr,
                    capacity_bytes: capacity,
                    used_bytes: capacity.saturating_sub(live.free_bytes).saturating_add(live.reserved_bytes),
                    stored_bytes: live.stored_bytes.saturating_add(live.reserved_bytes),
                }
            }
            None => NodeLoad {
                node_id: node_id.to_string(),
                addr,
                capacity_bytes: registered_capacity,
                used_bytes: 0,
                stored_bytes: 0,
            },
        }
    }
}

/// The health a node should have after `silence` without a heartbeat. Only
/// the heartbeat-driven states are decided here; operator states
/// (decommissioning, removed, failed_simulated) are left alone.
pub fn classify(current: NodeHealth, silence: Duration, suspect_after: Duration, dead_after: Duration) -> NodeHealth {
    match current {
        NodeHealth::Healthy | NodeHealth::Suspect => {
            if silence >= dead_after {
                NodeHealth::Dead
            } else if silence >= suspect_after {
                NodeHealth::Suspect
            } else {
                NodeHealth::Healthy
            }
        }
        other => other,
    }
}

/// Runs on every controller; acts only while this one leads. Silence is
/// measured from the later of the last heartbeat and the start of this
/// leadership, so a new leader gives every node a full timeout to check in.
pub async fn run_health_sweep(controller: std::sync::Arc<Controller>, shutdown: CancellationToken) {
    let period = (controller.config.heartbeat_interval() / 4).clamp(Duration::from_millis(100), Duration::from_secs(1));
    let mut leader_since: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(period) => {}
        }
        if !controller.is_leader() {
            leader_since = None;
            continue;
        }
        let since = *leader_since.get_or_insert_with(Instant::now);
        let now = Instant::now();
        // A decommissioning node holding no replica any more is done.
        let drained: Vec<String> = {
            let state = controller.state.read();
            let draining: Vec<&str> = state
                .meta
                .nodes
                .values()
                .filter(|n| n.health == NodeHealth::Decommissioning)
                .map(|n| n.node_id.as_str())
                .collect();
            // Counting replicas visits every chunk: only while a node drains.
            if draining.is_empty() {
                Vec::new()
            } else {
                let replicas = state.meta.replicas_per_node();
                draining.into_iter().filter(|n| !replicas.contains_key(n)).map(String::from).collect()
            }
        };
        for node_id in drained {
            tracing::info!(node = %node_id, "data node drained: removed");
            if let Err(e) = controller.set_health(&node_id, NodeHealth::Removed).await {
                tracing::warn!(error = %e, "could not record a removal");
            }
        }
        let nodes: Vec<(String, NodeHealth)> =
            controller.state.read().meta.nodes.values().map(|n| (n.node_id.clone(), n.health)).collect();
        for (node_id, health) in nodes {
            let last = controller.liveness.get(&node_id).map(|l| l.last_seen.max(since)).unwrap_or(since);
            let next = classify(
                health,
                now.saturating_duration_since(last),
                controller.config.suspect_after(),
                controller.config.dead_after(),
            );
            if next != health {
                tracing::info!(node = %node_id, from = health.as_str(), to = next.as_str(), "data node health changed");
                if let Err(e) = controller.set_health(&node_id, next).await {
                    tracing::warn!(error = %e, "could not record a health change");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silence_makes_suspect_then_dead() {
        let s = Duration::from_secs(10);
        let d = Duration::from_secs(15);
        assert_eq!(classify(NodeHealth::Healthy, Duration::from_secs(1), s, d), NodeHealth::Healthy);
        assert_eq!(classify(NodeHealth::Healthy, Duration::from_secs(11), s, d), NodeHealth::Suspect);
        assert_eq!(classify(NodeHealth::Suspect, Duration::from_secs(16), s, d), NodeHealth::Dead);
        assert_eq!(classify(NodeHealth::Suspect, Duration::from_secs(1), s, d), NodeHealth::Healthy);
        // Dead stays dead until the node registers again.
        assert_eq!(classify(NodeHealth::Dead, Duration::from_secs(0), s, d), NodeHealth::Dead);
        assert_eq!(classify(NodeHealth::FailedSimulated, Duration::from_secs(99), s, d), NodeHealth::FailedSimulated);
    }
}

//! Cluster views for operators: data nodes with live figures, replication
//! statistics, usage and the controllers with their Raft roles.

use std::collections::BTreeMap;

use openraft::ServerState;
use tessera_proto::pb;

use crate::controller::Controller;
use crate::error::ControllerError;
use crate::meta::tasks::TaskState;
use crate::meta::{MetaState, NodeHealth};

impl Controller {
    pub async fn list_nodes(&self) -> Result<Vec<pb::NodeInfo>, ControllerError> {
        self.ensure_leader()?;
        let state = self.state.read();
        Ok(self.node_infos(&state.meta, &state.meta.replicas_per_node()))
    }

    /// Each data node with its live figures from the latest heartbeat.
    fn node_infos(&self, meta: &MetaState, replicas: &BTreeMap<&str, u64>) -> Vec<pb::NodeInfo> {
        meta.nodes
            .values()
            .map(|n| {
                let live = self.liveness.get(&n.node_id);
                pb::NodeInfo {
                    node_id: n.node_id.clone(),
                    host: n.host.clone(),
                    grpc_port: n.grpc_port,
                    capacity_bytes: live
                        .as_ref()
                        .map(|l| l.capacity_bytes)
                        .filter(|c| *c > 0)
                        .unwrap_or(n.capacity_bytes),
                    free_bytes: live.as_ref().map(|l| l.free_bytes).unwrap_or(0),
                    health: n.health.as_str().to_string(),
                    last_seen_ms: live.as_ref().map(|l| l.last_seen_ms).unwrap_or(0),
                    mac: n.mac.clone(),
                    chunks: replicas.get(n.node_id.as_str()).copied().unwrap_or(0),
                }
            })
            .collect()
    }

    pub async fn summary(&self) -> Result<pb::ClusterSummary, ControllerError> {
        self.read_current().await?;
        self.ensure_leader()?;
        let state = self.state.read();
        let overview = state.meta.overview();
        let nodes = self.node_infos(&state.meta, &overview.replicas_per_node);
        let (stats, usage) = (overview.replication, overview.usage);
        let mut summary = pb::ClusterSummary {
            chunks_total: stats.total,
            chunks_fully_replicated: stats.fully_replicated,
            chunks_under_replicated: stats.under_replicated,
            chunks_lost: stats.lost,
            controllers: self.controllers(),
            leader_id: self.id,
            files: usage.files,
            file_bytes: usage.bytes,
            stored_bytes: usage.stored_bytes,
            replication: self.config.replication,
            ..Default::default()
        };
        for node in &nodes {
            *summary.nodes_by_health.entry(node.health.clone()).or_default() += 1;
            let serving = matches!(node.health.as_str(), "healthy" | "suspect" | "decommissioning");
            if serving {
                summary.capacity_bytes += node.capacity_bytes;
                summary.free_bytes += node.free_bytes;
            }
            if node.health == NodeHealth::Healthy.as_str() {
                summary.healthy_nodes += 1;
            }
        }
        summary.used_bytes = summary.capacity_bytes.saturating_sub(summary.free_bytes);
        let counts = task_counts(&state.meta);
        summary.rebalances_pending = stats.under_replicated.saturating_sub(counts.running);
        summary.rebalances_running = counts.running;
        summary.rebalances_completed = counts.completed;
        summary.rebalances_failed = counts.failed;
        Ok(summary)
    }

    pub async fn list_tasks(&self, limit: usize) -> Result<pb::ListTasksResponse, ControllerError> {
        self.read_current().await?;
        let state = self.state.read();
        let counts = task_counts(&state.meta);
        let stats = state.meta.replication_stats();
        let tasks = state
            .meta
            .tasks
            .values()
            .rev()
            .take(limit)
            .map(|t| pb::TaskInfo {
                id: t.id.clone(),
                kind: t.kind.as_str().into(),
                file_id: t.file_id.to_string(),
                index: t.index,
                from: t.from.clone(),
                to: t.to.clone(),
                state: t.state.as_str().into(),
                created_at_ms: t.created_at_ms,
                finished_at_ms: t.finished_at_ms,
                error: t.error.clone(),
            })
            .collect();
        Ok(pb::ListTasksResponse {
            tasks,
            pending: stats.under_replicated.saturating_sub(counts.running),
            running: counts.running,
            completed: counts.completed,
            failed: counts.failed,
        })
    }

    /// Every controller in the membership with its role, term and last log
    /// index as seen from here (the leader knows its followers' progress).
    pub fn controllers(&self) -> Vec<pb::ControllerInfo> {
        let metrics = self.raft.metrics();
        let m = metrics.borrow();
        let voters: Vec<u64> = m.membership_config.membership().voter_ids().collect();
        m.membership_config
            .membership()
            .nodes()
            .map(|(id, node)| {
                let mut info = pb::ControllerInfo { id: *id, addr: node.addr.clone(), ..Default::default() };
                if *id == self.id {
                    info.role = role_name(m.state).to_string();
                    info.term = m.current_term;
                    info.last_log_index = m.last_log_index.unwrap_or(0);
                } else {
                    let matched = m.replication.as_ref().and_then(|r| r.get(id).cloned().flatten());
                    info.role = if !voters.contains(id) {
                        "learner".into()
                    } else if matched.is_some() {
                        "follower".into()
                    } else {
                        "unreachable".into()
                    };
                    info.term = matched.map(|l| l.leader_id.term).unwrap_or(0);
                    info.last_log_index = matched.map(|l| l.index).unwrap_or(0);
                }
                info
            })
            .collect()
    }
}

struct Counts {
    running: u64,
    completed: u64,
    failed: u64,
}

fn task_counts(meta: &MetaState) -> Counts {
    let running = meta.tasks.values().filter(|t| t.state == TaskState::Running).count() as u64;
    Counts { running, completed: meta.task_counts.completed, failed: meta.task_counts.failed }
}

fn role_name(state: ServerState) -> &'static str {
    match state {
        ServerState::Leader => "leader",
        ServerState::Follower => "follower",
        ServerState::Candidate => "candidate",
        ServerState::Learner => "learner",
        ServerState::Shutdown => "shutdown",
    }
}

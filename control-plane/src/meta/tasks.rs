//! Repair and rebalance tasks as the log records them: each copy of a
//! replica is a task (started, then completed or failed), counted for
//! `/admin/rebalances`. Finished tasks are kept up to [`KEEP_FINISHED`].

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Finished tasks kept for display; older ones only remain in the counters.
pub const KEEP_FINISHED: usize = 500;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TaskKind {
    /// Restore a chunk to its replication factor.
    ReReplicate,
    /// Move a replica towards even utilisation.
    Rebalance,
    /// Move a replica off a decommissioning node.
    Drain,
}

impl TaskKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskKind::ReReplicate => "re-replicate",
            TaskKind::Rebalance => "rebalance",
            TaskKind::Drain => "drain",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TaskState {
    Running,
    Completed,
    Failed,
}

impl TaskState {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Running => "running",
            TaskState::Completed => "completed",
            TaskState::Failed => "failed",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskRecord {
    pub id: String,
    pub kind: TaskKind,
    pub file_id: Uuid,
    pub index: u32,
    pub from: String,
    pub to: String,
    pub state: TaskState,
    pub created_at_ms: i64,
    pub finished_at_ms: i64,
    pub error: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskCounts {
    pub completed: u64,
    pub failed: u64,
}

//! Liveness and readiness probes (no sign-in: load balancers call them).

use axum::extract::State;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    pub status: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Ready {
    pub status: String,
    /// Raft id of the controller leader.
    pub leader: u64,
    pub healthy_nodes: u64,
}

/// The process serves.
#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok".into() })
}

/// A controller leader answers and enough data nodes are healthy to place a chunk.
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses((status = 200, body = Ready), (status = 503, body = ErrorBody)))]
pub async fn readyz(State(app): State<AppState>) -> Result<Json<Ready>, ApiError> {
    let summary = crate::routes::admin::summary_of(&app).await?;
    if summary.healthy_nodes < u64::from(summary.replication) {
        return Err(ApiError::InsufficientNodes(format!(
            "{} healthy data nodes, replication needs {}",
            summary.healthy_nodes, summary.replication
        )));
    }
    Ok(Json(Ready { status: "ready".into(), leader: summary.leader_id, healthy_nodes: summary.healthy_nodes }))
}

//! Liveness and readiness probes.

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::state::AppState;

/// `GET /healthz`: the process serves.
pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// `GET /readyz`: a controller leader answers and enough data nodes are
/// healthy to place a chunk.
pub async fn readyz(State(app): State<AppState>) -> Result<Json<Value>, ApiError> {
    let summary = crate::routes::admin::summary_of(&app).await?;
    if summary.healthy_nodes < u64::from(summary.replication) {
        return Err(ApiError::InsufficientNodes(format!(
            "{} healthy data nodes, replication needs {}",
            summary.healthy_nodes, summary.replication
        )));
    }
    Ok(Json(json!({ "status": "ready", "leader": summary.leader_id, "healthy_nodes": summary.healthy_nodes })))
}

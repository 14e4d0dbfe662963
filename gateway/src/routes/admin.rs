//! `/admin/*`: cluster state and operator commands.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use tessera_proto::pb;

use crate::error::ApiError;
use crate::ops::json;
use crate::state::AppState;

pub async fn summary_of(app: &AppState) -> Result<pb::ClusterSummary, ApiError> {
    Ok(app.control.call(|mut c| async move { c.get_cluster_summary(pb::GetClusterSummaryRequest {}).await }).await?)
}

pub async fn summary(State(app): State<AppState>) -> Result<Json<Value>, ApiError> {
    Ok(Json(json::summary(&summary_of(&app).await?)))
}

pub async fn nodes(State(app): State<AppState>) -> Result<Json<Value>, ApiError> {
    let reply = app.control.call(|mut c| async move { c.list_nodes(pb::ListNodesRequest {}).await }).await?;
    Ok(Json(json!({ "nodes": reply.nodes.iter().map(json::node).collect::<Vec<_>>() })))
}

#[derive(Clone, Copy)]
enum NodeAction {
    Decommission,
    Fail,
    Recover,
}

async fn node_action(app: &AppState, node_id: String, action: NodeAction) -> Result<Json<Value>, ApiError> {
    tessera_proto::ids::validate_node_id(&node_id)
        .map_err(|_| ApiError::NotFound(format!("no such node: {node_id}")))?;
    let reply = app
        .control
        .call(|mut c| {
            let request = pb::NodeActionRequest { node_id: node_id.clone() };
            async move {
                match action {
                    NodeAction::Decommission => c.decommission_node(request).await,
                    NodeAction::Fail => c.simulate_node_failure(request).await,
                    NodeAction::Recover => c.recover_node(request).await,
                }
            }
        })
        .await?;
    Ok(Json(json!({ "node": reply.node.as_ref().map(json::node) })))
}

/// `DELETE /admin/nodes/{id}`: decommission (drain, then removed).
pub async fn decommission(State(app): State<AppState>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    node_action(&app, id, NodeAction::Decommission).await
}

/// `POST /admin/nodes/{id}/fail`: simulate a crash.
pub async fn fail(State(app): State<AppState>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    node_action(&app, id, NodeAction::Fail).await
}

/// `POST /admin/nodes/{id}/recover`: end a simulated crash.
pub async fn recover(State(app): State<AppState>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    node_action(&app, id, NodeAction::Recover).await
}

/// `POST /admin/nodes`: start a data node. With `--add-node-command` (the
/// local cluster sets it) the gateway runs that command; elsewhere it
/// answers how to start one.
pub async fn add_node(State(app): State<AppState>) -> Result<(StatusCode, Json<Value>), ApiError> {
    let controllers = app.control.controllers().join(",");
    let Some(command) = app.settings.add_node_command.clone() else {
        return Ok((
            StatusCode::ACCEPTED,
            Json(json!({
                "started": false,
                "message": "start a data node on the new host; it registers itself",
                "command": format!("tessera-datanode --node-id <new-id> --data-root <dir> --listen <host:port> --advertise-host <host> --controllers {controllers}"),
            })),
        ));
    };
    let output = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(&command)
        .output()
        .await
        .map_err(|e| ApiError::Internal(format!("running the add-node command: {e}")))?;
    if !output.status.success() {
        return Err(ApiError::Internal(format!(
            "the add-node command failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    let node_id = String::from_utf8_lossy(&output.stdout).trim().to_string();
    Ok((StatusCode::CREATED, Json(json!({ "started": true, "node_id": node_id }))))
}

pub async fn rebalances(State(app): State<AppState>) -> Result<Json<Value>, ApiError> {
    let reply =
        app.control.call(|mut c| async move { c.list_tasks(pb::ListTasksRequest { limit: 100 }).await }).await?;
    Ok(Json(json!({
        "counts": {
            "pending": reply.pending,
            "running": reply.running,
            "completed": reply.completed,
            "failed": reply.failed,
        },
        "tasks": reply.tasks.iter().map(json::task).collect::<Vec<_>>(),
    })))
}

pub async fn start_rebalance(State(app): State<AppState>) -> Result<(StatusCode, Json<Value>), ApiError> {
    app.control.call(|mut c| async move { c.start_rebalance(pb::StartRebalanceRequest {}).await }).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "started": true }))))
}

#[derive(Debug, Deserialize)]
pub struct AddController {
    id: u64,
    addr: String,
}

pub async fn add_controller(
    State(app): State<AppState>,
    body: Result<Json<AddController>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(body) = body.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let request = pb::AddControllerRequest { id: body.id, addr: body.addr };
    let reply = app
        .control
        .call(|mut c| {
            let request = request.clone();
            async move { c.add_controller(request).await }
        })
        .await?;
    Ok(Json(json!({ "controllers": reply.controllers.iter().map(json::controller).collect::<Vec<_>>() })))
}

pub async fn remove_controller(State(app): State<AppState>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let id: u64 = id.parse().map_err(|_| ApiError::NotFound(format!("no such controller: {id}")))?;
    let reply =
        app.control.call(|mut c| async move { c.remove_controller(pb::RemoveControllerRequest { id }).await }).await?;
    Ok(Json(json!({ "controllers": reply.controllers.iter().map(json::controller).collect::<Vec<_>>() })))
}

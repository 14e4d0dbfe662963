//! `/admin/*`: cluster state, operator commands and accounts. Every handler
//! takes an [`AdminUser`]: without the admin role, 403.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use tessera_proto::pb;
use utoipa::ToSchema;

use crate::auth::AdminUser;
use crate::error::{ApiError, ErrorBody};
use crate::ops::json::{
    self, ControllerList, NodeActionResult, NodeList, Summary, TaskCounts, TaskList, User, UserList,
};
use crate::routes::json_body;
use crate::state::AppState;

pub async fn summary_of(app: &AppState) -> Result<pb::ClusterSummary, ApiError> {
    Ok(app.control.call(|mut c| async move { c.get_cluster_summary(pb::GetClusterSummaryRequest {}).await }).await?)
}

/// Cluster summary: nodes by health, replication, tasks, controllers.
#[utoipa::path(get, path = "/admin/summary", tag = "admin",
    responses((status = 200, body = Summary), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn summary(State(app): State<AppState>, _admin: AdminUser) -> Result<Json<Summary>, ApiError> {
    Ok(Json(json::summary(&summary_of(&app).await?)))
}

/// Data nodes.
#[utoipa::path(get, path = "/admin/nodes", tag = "admin",
    responses((status = 200, body = NodeList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn nodes(State(app): State<AppState>, _admin: AdminUser) -> Result<Json<NodeList>, ApiError> {
    let reply = app.control.call(|mut c| async move { c.list_nodes(pb::ListNodesRequest {}).await }).await?;
    Ok(Json(NodeList { nodes: reply.nodes.iter().map(json::node).collect() }))
}

#[derive(Clone, Copy)]
enum NodeAction {
    Decommission,
    Fail,
    Recover,
}

async fn node_action(app: &AppState, node_id: String, action: NodeAction) -> Result<Json<NodeActionResult>, ApiError> {
    tessera_proto::ids::validate_node_id(&node_id)
        .map_err(|_| ApiError::NotFound(format!("no such node: {}", node_id.chars().take(64).collect::<String>())))?;
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
    Ok(Json(NodeActionResult { node: reply.node.as_ref().map(json::node) }))
}

/// Decommission a node: its replicas are copied away, then it is removed.
#[utoipa::path(delete, path = "/admin/nodes/{id}", tag = "admin", params(("id" = String, Path)),
    responses((status = 200, body = NodeActionResult), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn decommission(
    State(app): State<AppState>,
    _admin: AdminUser,
    Path(id): Path<String>,
) -> Result<Json<NodeActionResult>, ApiError> {
    node_action(&app, id, NodeAction::Decommission).await
}

/// Simulate a crash of a node (it stops serving and heartbeating).
#[utoipa::path(post, path = "/admin/nodes/{id}/fail", tag = "admin", params(("id" = String, Path)),
    responses((status = 200, body = NodeActionResult), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn fail(
    State(app): State<AppState>,
    _admin: AdminUser,
    Path(id): Path<String>,
) -> Result<Json<NodeActionResult>, ApiError> {
    node_action(&app, id, NodeAction::Fail).await
}

/// End a simulated crash.
#[utoipa::path(post, path = "/admin/nodes/{id}/recover", tag = "admin", params(("id" = String, Path)),
    responses((status = 200, body = NodeActionResult), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn recover(
    State(app): State<AppState>,
    _admin: AdminUser,
    Path(id): Path<String>,
) -> Result<Json<NodeActionResult>, ApiError> {
    node_action(&app, id, NodeAction::Recover).await
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AddNodeResult {
    pub started: bool,
    /// The new node's id, when the gateway started it.
    pub node_id: Option<String>,
    /// How to start a node by hand, when it could not.
    pub message: Option<String>,
    pub command: Option<String>,
}

/// Add a data node. With `--add-node-command` (the local cluster sets it)
/// the gateway runs that command; elsewhere it answers how to start one.
#[utoipa::path(post, path = "/admin/nodes", tag = "admin",
    responses((status = 201, body = AddNodeResult, description = "started"), (status = 202, body = AddNodeResult, description = "start it by hand"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn add_node(
    State(app): State<AppState>,
    _admin: AdminUser,
) -> Result<(StatusCode, Json<AddNodeResult>), ApiError> {
    let controllers = app.control.controllers().join(",");
    let Some(command) = app.settings.add_node_command.clone() else {
        return Ok((
            StatusCode::ACCEPTED,
            Json(AddNodeResult {
                started: false,
                node_id: None,
                message: Some("start a data node on the new host; it registers itself".into()),
                command: Some(format!("tessera-datanode --node-id <new-id> --data-root <dir> --listen <host:port> --advertise-host <host> --tls-dir <dir> --controllers {controllers}")),
            }),
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
    Ok((
        StatusCode::CREATED,
        Json(AddNodeResult { started: true, node_id: Some(node_id), message: None, command: None }),
    ))
}

/// Replica copy tasks (re-replication, rebalance, drain), newest first.
#[utoipa::path(get, path = "/admin/rebalances", tag = "admin",
    responses((status = 200, body = TaskList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn rebalances(State(app): State<AppState>, _admin: AdminUser) -> Result<Json<TaskList>, ApiError> {
    let reply =
        app.control.call(|mut c| async move { c.list_tasks(pb::ListTasksRequest { limit: 100 }).await }).await?;
    Ok(Json(TaskList {
        counts: TaskCounts {
            pending: reply.pending,
            running: reply.running,
            completed: reply.completed,
            failed: reply.failed,
        },
        tasks: reply.tasks.iter().map(json::task).collect(),
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Started {
    pub started: bool,
}

/// Start a rebalance pass now.
#[utoipa::path(post, path = "/admin/rebalances", tag = "admin",
    responses((status = 202, body = Started), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn start_rebalance(
    State(app): State<AppState>,
    _admin: AdminUser,
) -> Result<(StatusCode, Json<Started>), ApiError> {
    app.control.call(|mut c| async move { c.start_rebalance(pb::StartRebalanceRequest {}).await }).await?;
    Ok((StatusCode::ACCEPTED, Json(Started { started: true })))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct AddController {
    /// Raft id of the new controller (unused so far).
    pub id: u64,
    /// host:port of its gRPC server; start it first without --peers.
    pub addr: String,
}

/// Add a controller (it catches up as a learner, then votes).
#[utoipa::path(post, path = "/admin/controllers", tag = "admin", request_body = AddController,
    responses((status = 200, body = ControllerList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn add_controller(
    State(app): State<AppState>,
    _admin: AdminUser,
    body: Result<Json<AddController>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<ControllerList>, ApiError> {
    let Json(body) = json_body(body)?;
    let request = pb::AddControllerRequest { id: body.id, addr: body.addr };
    let reply = app.control.call_with(request, |mut c, r| async move { c.add_controller(r).await }).await?;
    Ok(Json(ControllerList { controllers: reply.controllers.iter().map(json::controller).collect() }))
}

/// Remove a controller from the cluster.
#[utoipa::path(delete, path = "/admin/controllers/{id}", tag = "admin", params(("id" = String, Path)),
    responses((status = 200, body = ControllerList), (status = 400, body = ErrorBody, description = "the last controller"), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn remove_controller(
    State(app): State<AppState>,
    _admin: AdminUser,
    Path(id): Path<String>,
) -> Result<Json<ControllerList>, ApiError> {
    let id: u64 = id
        .parse()
        .map_err(|_| ApiError::NotFound(format!("no such controller: {}", id.chars().take(64).collect::<String>())))?;
    let reply =
        app.control.call(|mut c| async move { c.remove_controller(pb::RemoveControllerRequest { id }).await }).await?;
    Ok(Json(ControllerList { controllers: reply.controllers.iter().map(json::controller).collect() }))
}

/// Accounts.
#[utoipa::path(get, path = "/admin/users", tag = "admin",
    responses((status = 200, body = UserList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn users(State(app): State<AppState>, _admin: AdminUser) -> Result<Json<UserList>, ApiError> {
    let reply = app.control.call(|mut c| async move { c.list_users(pb::ListUsersRequest {}).await }).await?;
    Ok(Json(UserList { users: reply.users.iter().map(json::user).collect() }))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct NewUser {
    pub username: String,
    /// 8 to 1024 bytes.
    pub password: String,
    /// admin or user (default).
    #[serde(default)]
    pub role: String,
    /// 0 or absent: no quota.
    #[serde(default)]
    pub quota_bytes: u64,
}

/// Create an account.
#[utoipa::path(post, path = "/admin/users", tag = "admin", request_body = NewUser,
    responses((status = 201, body = User), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "the user exists")))]
pub async fn create_user(
    State(app): State<AppState>,
    _admin: AdminUser,
    body: Result<Json<NewUser>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<User>), ApiError> {
    let Json(body) = json_body(body)?;
    tessera_proto::ids::validate_username(&body.username).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let role = if body.role.is_empty() { "user".to_string() } else { body.role };
    if role != "user" && role != "admin" {
        return Err(ApiError::BadRequest(format!("role must be \"admin\" or \"user\", not {role:?}")));
    }
    let password = body.password;
    let password_hash = tokio::task::spawn_blocking(move || tessera_proto::secrets::hash_password(&password))
        .await
        .map_err(|e| ApiError::Internal(format!("hashing the password: {e}")))?
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let request = pb::CreateUserRequest { username: body.username, password_hash, role, quota_bytes: body.quota_bytes };
    let user = app.control.call_with(request, |mut c, r| async move { c.create_user(r).await }).await?;
    Ok((StatusCode::CREATED, Json(json::user(&user))))
}

/// Delete an account with its tokens and files.
#[utoipa::path(delete, path = "/admin/users/{username}", tag = "admin", params(("username" = String, Path)),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "an admin cannot delete their own account")))]
pub async fn delete_user(
    State(app): State<AppState>,
    AdminUser(admin): AdminUser,
    Path(username): Path<String>,
) -> Result<StatusCode, ApiError> {
    if username == admin.username {
        return Err(ApiError::Conflict("you cannot delete your own account".into()));
    }
    tessera_proto::ids::validate_username(&username)
        .map_err(|_| ApiError::NotFound(format!("no such user: {}", username.chars().take(64).collect::<String>())))?;
    app.control
        .call(|mut c| {
            let username = username.clone();
            async move { c.delete_user(pb::DeleteUserRequest { username }).await }
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

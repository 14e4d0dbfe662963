//! `MasterService` over [`Controller`].

use std::sync::Arc;

use tessera_proto::ids::{parse_file_id, validate_node_id};
use tessera_proto::pb;
use tessera_proto::pb::master_service_server::MasterService;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::convert::{file_metadata, token_info, user_info};
use crate::accounts::{authenticated, NewToken};
use crate::controller::Controller;
use crate::error::{ControllerError, MetaError};
use crate::events::StoredChunk;
use crate::meta::accounts::{Role, TokenKind};
use crate::meta::MetaState;
use crate::nodes::{Registration, SpaceReport};
use crate::uploads::{PlanRequest, WrittenFile};

pub struct MasterApi {
    controller: Arc<Controller>,
}

impl MasterApi {
    pub fn new(controller: Arc<Controller>) -> Self {
        Self { controller }
    }
}

type RpcResult<T> = Result<Response<T>, Status>;

/// Whom a user-scoped call acts for, in `meta`: with `token_hash` (the
/// gateway's way) the token is authenticated here, in the same call, and
/// its user is the owner; without it, `owner` as sent (internal tools).
fn acting_owner(meta: &MetaState, token_hash: &str, owner: String) -> Result<(String, Option<pb::UserInfo>), Status> {
    if token_hash.is_empty() {
        return Ok((owner, None));
    }
    if !owner.is_empty() {
        return Err(Status::invalid_argument("send either owner or token_hash, not both"));
    }
    let (user, usage) = authenticated(meta, token_hash)?;
    Ok((user.username.clone(), Some(user_info(&user, usage))))
}

impl MasterApi {
    /// [`acting_owner`] on the leader's applied state.
    fn caller(&self, token_hash: &str, owner: String) -> Result<(String, Option<pb::UserInfo>), Status> {
        if !token_hash.is_empty() {
            // Only the leader's state is current enough to authenticate.
            self.controller.ensure_leader()?;
        }
        acting_owner(&self.controller.state.read().meta, token_hash, owner)
    }
}

fn file_id(s: &str) -> Result<Uuid, Status> {
    parse_file_id(s).map_err(|e| Status::invalid_argument(e.to_string()))
}

/// An unknown or malformed id in a read is "not found", like in the HTTP API.
fn file_id_for_lookup(s: &str) -> Result<Uuid, Status> {
    parse_file_id(s)
        .map_err(|_| ControllerError::from(MetaError::FileNotFound(s.chars().take(80).collect())).into_status())
}

/// The client's request id, if it sent a well-formed one.
fn request_id<T>(request: &Request<T>) -> Option<Uuid> {
    request
        .metadata()
        .get(tessera_proto::REQUEST_ID_METADATA_KEY)
        .and_then(|v| v.to_str().ok())
        .and_then(|s| Uuid::try_parse(s).ok())
}

fn chunk_refs(refs: Vec<pb::ChunkRef>) -> Result<Vec<(Uuid, u32)>, Status> {
    refs.into_iter().map(|r| Ok((file_id(&r.file_id)?, r.index))).collect()
}

#[tonic::async_trait]
impl MasterService for MasterApi {
    async fn register_node(&self, request: Request<pb::RegisterNodeRequest>) -> RpcResult<pb::RegisterNodeResponse> {
        let req = request.into_inner();
        let inventory = req
            .inventory
            .into_iter()
            .map(|c| Ok((file_id(&c.file_id)?, c.index)))
            .collect::<Result<Vec<_>, Status>>()?;
        self.controller
            .register_node(Registration {
                node_id: req.node_id,
                host: req.host,
                grpc_port: req.grpc_port,
                space: SpaceReport {
                    capacity_bytes: req.capacity_bytes,
                    free_bytes: req.free_bytes,
                    stored_bytes: req.stored_bytes,
                },
                mac: req.mac,
                inventory,
            })
            .await?;
        Ok(Response::new(pb::RegisterNodeResponse {
            heartbeat_interval_ms: self.controller.config.heartbeat_interval_ms,
        }))
    }

    async fn heartbeat(&self, request: Request<pb::HeartbeatRequest>) -> RpcResult<pb::HeartbeatResponse> {
        let req = request.into_inner();
        validate_node_id(&req.node_id).map_err(|e| Status::invalid_argument(e.to_string()))?;
        let deleted = chunk_refs(req.deleted)?;
        let report = SpaceReport {
            capacity_bytes: req.capacity_bytes,
            free_bytes: req.free_bytes,
            stored_bytes: req.stored_bytes,
        };
        let reply = self.controller.heartbeat(&req.node_id, report, deleted).await?;
        let commands = reply
            .delete
            .into_iter()
            .map(|(file_id, index)| pb::NodeCommand {
                command: Some(pb::node_command::Command::DeleteChunk(pb::DeleteChunkCommand {
                    file_id: file_id.to_string(),
                    index,
                })),
            })
            .collect();
        Ok(Response::new(pb::HeartbeatResponse { commands, reregister: reply.reregister }))
    }

    async fn get_upload_plan(
        &self,
        request: Request<pb::GetUploadPlanRequest>,
    ) -> RpcResult<pb::GetUploadPlanResponse> {
        let request_id = request_id(&request);
        let req = request.into_inner();
        let (owner, caller) = self.caller(&req.token_hash, req.owner)?;
        let existing = if req.file_id.is_empty() { None } else { Some(file_id(&req.file_id)?) };
        let plan = self
            .controller
            .upload_plan(PlanRequest {
                file_id: existing,
                name: req.name,
                first_chunk: req.first_chunk,
                chunk_count: req.chunk_count,
                exclude_nodes: req.exclude_nodes,
                owner,
                size_hint: req.size_hint,
                defer_create: req.defer_create,
                request_id,
            })
            .await?;
        Ok(Response::new(pb::GetUploadPlanResponse {
            caller,
            deferred: plan.deferred,
            file_id: plan.file_id.to_string(),
            chunk_size: plan.chunk_size,
            replication: plan.replication,
            placements: plan
                .placements
                .into_iter()
                .map(|p| pb::ChunkPlacement {
                    index: p.index,
                    targets: p.targets.into_iter().map(|(node_id, addr)| pb::NodeAddr { node_id, addr }).collect(),
                })
                .collect(),
        }))
    }

    async fn report_chunk_stored(
        &self,
        request: Request<pb::ReportChunkStoredRequest>,
    ) -> RpcResult<pb::ReportChunkStoredResponse> {
        let request_id = request_id(&request);
        let req = request.into_inner();
        let id = file_id(&req.file_id)?;
        let first = StoredChunk { index: req.index, size: req.size, crc32c: req.crc32c, replicas: req.node_ids };
        let more = req.more.into_iter().map(|c| StoredChunk {
            index: c.index,
            size: c.size,
            crc32c: c.crc32c,
            replicas: c.node_ids,
        });
        let chunks = std::iter::once(first).chain(more).collect();
        self.controller.report_chunks_stored(id, chunks, request_id).await?;
        Ok(Response::new(pb::ReportChunkStoredResponse {}))
    }

    async fn commit_file(&self, request: Request<pb::CommitFileRequest>) -> RpcResult<pb::CommitFileResponse> {
        let request_id = request_id(&request);
        let req = request.into_inner();
        let id = file_id(&req.file_id)?;
        let checksum = req.checksum.to_lowercase();
        let file = self.controller.commit_file(id, req.size, req.total_chunks, checksum, request_id).await?;
        let state = self.controller.state.read();
        Ok(Response::new(pb::CommitFileResponse { file: Some(file_metadata(&file, &state.meta, true)) }))
    }

    async fn create_file(&self, request: Request<pb::CreateFileRequest>) -> RpcResult<pb::CommitFileResponse> {
        let request_id = request_id(&request);
        let req = request.into_inner();
        let (owner, _) = self.caller(&req.token_hash, req.owner)?;
        let written = WrittenFile {
            file_id: file_id(&req.file_id)?,
            name: req.name,
            owner,
            size: req.size,
            checksum: req.checksum.to_lowercase(),
            crc32c: req.crc32c,
            replicas: req.node_ids,
        };
        let file = self.controller.create_file(written, request_id).await?;
        let state = self.controller.state.read();
        Ok(Response::new(pb::CommitFileResponse { file: Some(file_metadata(&file, &state.meta, true)) }))
    }

    async fn abort_upload(&self, request: Request<pb::AbortUploadRequest>) -> RpcResult<pb::AbortUploadResponse> {
        let request_id = request_id(&request);
        let req = request.into_inner();
        let id = file_id(&req.file_id)?;
        self.controller.abort_upload(id, req.stored_on, request_id).await?;
        Ok(Response::new(pb::AbortUploadResponse {}))
    }

    async fn get_file_metadata(&self, request: Request<pb::GetFileMetadataRequest>) -> RpcResult<pb::FileMetadata> {
        let req = request.into_inner();
        self.controller.read_current().await?;
        let state = self.controller.state.read();
        // The caller first: a bad token is "unauthenticated" whatever the id.
        let (owner, _) = acting_owner(&state.meta, &req.token_hash, req.owner)?;
        let id = file_id_for_lookup(&req.file_id)?;
        let file = state
            .meta
            .visible_file(&id, &owner)
            .ok_or_else(|| ControllerError::from(MetaError::FileNotFound(id.to_string())).into_status())?;
        Ok(Response::new(file_metadata(file, &state.meta, true)))
    }

    async fn list_files(&self, request: Request<pb::ListFilesRequest>) -> RpcResult<pb::ListFilesResponse> {
        let req = request.into_inner();
        self.controller.read_current().await?;
        let state = self.controller.state.read();
        let limit = if req.limit == 0 { 100 } else { req.limit.min(1000) } as usize;
        let page = state
            .meta
            .list_files(&req.owner, &req.query, limit, Some(&req.cursor))
            .map_err(|e| ControllerError::from(e).into_status())?;
        let usage = state.meta.usage(&req.owner);
        Ok(Response::new(pb::ListFilesResponse {
            files: page.files.iter().map(|f| file_metadata(f, &state.meta, false)).collect(),
            next_cursor: page.next_cursor.unwrap_or_default(),
            total_files: usage.files,
            total_bytes: usage.bytes,
            stored_bytes: usage.stored_bytes,
        }))
    }

    async fn delete_file(&self, request: Request<pb::DeleteFileRequest>) -> RpcResult<pb::DeleteFileResponse> {
        let request_id = request_id(&request);
        let req = request.into_inner();
        let id = file_id_for_lookup(&req.file_id)?;
        self.controller.delete_file(id, &req.owner, request_id).await?;
        Ok(Response::new(pb::DeleteFileResponse {}))
    }

    async fn report_bad_replica(
        &self,
        request: Request<pb::ReportBadReplicaRequest>,
    ) -> RpcResult<pb::ReportBadReplicaResponse> {
        let req = request.into_inner();
        let id = file_id(&req.file_id)?;
        validate_node_id(&req.node_id).map_err(|e| Status::invalid_argument(e.to_string()))?;
        self.controller.report_bad_replica(id, req.index, req.node_id, req.reason).await?;
        Ok(Response::new(pb::ReportBadReplicaResponse {}))
    }

    async fn list_nodes(&self, _request: Request<pb::ListNodesRequest>) -> RpcResult<pb::ListNodesResponse> {
        let nodes = self.controller.list_nodes().await?;
        Ok(Response::new(pb::ListNodesResponse { nodes }))
    }

    async fn get_cluster_summary(
        &self,
        _request: Request<pb::GetClusterSummaryRequest>,
    ) -> RpcResult<pb::ClusterSummary> {
        Ok(Response::new(self.controller.summary().await?))
    }

    async fn decommission_node(&self, request: Request<pb::NodeActionRequest>) -> RpcResult<pb::NodeActionResponse> {
        let node_id = request.into_inner().node_id;
        self.controller.decommission_node(&node_id).await?;
        Ok(Response::new(pb::NodeActionResponse { node: Some(self.controller.node_info(&node_id).await?) }))
    }

    async fn simulate_node_failure(
        &self,
        request: Request<pb::NodeActionRequest>,
    ) -> RpcResult<pb::NodeActionResponse> {
        let node_id = request.into_inner().node_id;
        self.controller.simulate_node_failure(&node_id).await?;
        Ok(Response::new(pb::NodeActionResponse { node: Some(self.controller.node_info(&node_id).await?) }))
    }

    async fn recover_node(&self, request: Request<pb::NodeActionRequest>) -> RpcResult<pb::NodeActionResponse> {
        let node_id = request.into_inner().node_id;
        self.controller.recover_node(&node_id).await?;
        Ok(Response::new(pb::NodeActionResponse { node: Some(self.controller.node_info(&node_id).await?) }))
    }

    async fn add_controller(&self, request: Request<pb::AddControllerRequest>) -> RpcResult<pb::ControllersResponse> {
        let req = request.into_inner();
        self.controller.add_controller(req.id, req.addr).await?;
        Ok(Response::new(pb::ControllersResponse { controllers: self.controller.controllers() }))
    }

    async fn remove_controller(
        &self,
        request: Request<pb::RemoveControllerRequest>,
    ) -> RpcResult<pb::ControllersResponse> {
        self.controller.remove_controller(request.into_inner().id).await?;
        Ok(Response::new(pb::ControllersResponse { controllers: self.controller.controllers() }))
    }

    async fn start_rebalance(
        &self,
        _request: Request<pb::StartRebalanceRequest>,
    ) -> RpcResult<pb::StartRebalanceResponse> {
        self.controller.ensure_leader()?;
        self.controller.rebalance_requested.store(true, std::sync::atomic::Ordering::Relaxed);
        Ok(Response::new(pb::StartRebalanceResponse { started: true }))
    }

    async fn list_tasks(&self, request: Request<pb::ListTasksRequest>) -> RpcResult<pb::ListTasksResponse> {
        let limit = match request.into_inner().limit {
            0 => 100,
            n => n.min(1000),
        } as usize;
        Ok(Response::new(self.controller.list_tasks(limit).await?))
    }

    async fn create_user(&self, request: Request<pb::CreateUserRequest>) -> RpcResult<pb::UserInfo> {
        let request_id = request_id(&request);
        let req = request.into_inner();
        let role = Role::parse(&req.role).map_err(|e| ControllerError::from(e).into_status())?;
        let (user, usage) =
            self.controller.create_user(req.username, req.password_hash, role, req.quota_bytes, request_id).await?;
        Ok(Response::new(user_info(&user, usage)))
    }

    async fn delete_user(&self, request: Request<pb::DeleteUserRequest>) -> RpcResult<pb::DeleteUserResponse> {
        let request_id = request_id(&request);
        let files_deleted = self.controller.delete_user(&request.into_inner().username, request_id).await?;
        Ok(Response::new(pb::DeleteUserResponse { files_deleted }))
    }

    async fn list_users(&self, _request: Request<pb::ListUsersRequest>) -> RpcResult<pb::ListUsersResponse> {
        let users = self.controller.users().await?;
        Ok(Response::new(pb::ListUsersResponse {
            users: users.iter().map(|(u, usage)| user_info(u, *usage)).collect(),
        }))
    }

    async fn get_user_credentials(
        &self,
        request: Request<pb::GetUserCredentialsRequest>,
    ) -> RpcResult<pb::UserCredentials> {
        let (user, usage) = self.controller.credentials(&request.into_inner().username).await?;
        Ok(Response::new(pb::UserCredentials {
            password_hash: user.password_hash.clone(),
            user: Some(user_info(&user, usage)),
        }))
    }

    async fn issue_token(&self, request: Request<pb::IssueTokenRequest>) -> RpcResult<pb::TokenInfo> {
        let request_id = request_id(&request);
        let req = request.into_inner();
        let kind = TokenKind::parse(&req.kind).map_err(|e| ControllerError::from(e).into_status())?;
        let token = NewToken {
            username: req.username,
            token_hash: req.token_hash,
            kind,
            label: req.label,
            expires_at_ms: req.expires_at_ms,
        };
        Ok(Response::new(token_info(&self.controller.issue_token(token, request_id).await?)))
    }

    async fn revoke_token(&self, request: Request<pb::RevokeTokenRequest>) -> RpcResult<pb::RevokeTokenResponse> {
        let request_id = request_id(&request);
        let req = request.into_inner();
        self.controller.revoke_token(&req.username, &req.token_id, &req.token_hash, request_id).await?;
        Ok(Response::new(pb::RevokeTokenResponse {}))
    }

    async fn list_tokens(&self, request: Request<pb::ListTokensRequest>) -> RpcResult<pb::ListTokensResponse> {
        let tokens = self.controller.tokens(&request.into_inner().username).await?;
        Ok(Response::new(pb::ListTokensResponse { tokens: tokens.iter().map(token_info).collect() }))
    }

    async fn authenticate(&self, request: Request<pb::AuthenticateRequest>) -> RpcResult<pb::UserInfo> {
        let (user, usage) = self.controller.authenticate(&request.into_inner().token_hash)?;
        Ok(Response::new(user_info(&user, usage)))
    }
}

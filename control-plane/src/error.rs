//! Errors of the controller. [`MetaError`] is the domain error a state-machine
//! event can produce (it travels in the Raft log response, so it is serde);
//! [`ControllerError`] adds the Raft and storage failures. Both become a
//! `tonic::Status` in one place, [`ControllerError::into_status`].

use serde::{Deserialize, Serialize};
use thiserror::Error;
use tonic::Status;

#[derive(Debug, Clone, PartialEq, Eq, Error, Serialize, Deserialize)]
pub enum MetaError {
    #[error("no such file: {0}")]
    FileNotFound(String),
    #[error("file {0} already exists")]
    FileExists(String),
    #[error("file {file} is {state}, not uploading")]
    NotUploading { file: String, state: String },
    #[error("cannot commit file {file}: {reason}")]
    IncompleteUpload { file: String, reason: String },
    #[error("no such data node: {0}")]
    NodeNotFound(String),
    #[error("invalid request: {0}")]
    Invalid(String),
    #[error("only {healthy} healthy data nodes, but the replication factor is {replication}")]
    NotEnoughNodes { healthy: usize, replication: usize },
    #[error(
        "only {fitting} of {healthy} healthy data nodes have room for a chunk of {chunk_bytes} bytes, but the replication factor is {replication}"
    )]
    NoRoom { fitting: usize, healthy: usize, chunk_bytes: u64, replication: usize },
    #[error("user {0} already exists")]
    UserExists(String),
    #[error("no such user: {0}")]
    UserNotFound(String),
    #[error("controller {0} is not a member of the cluster")]
    ControllerNotFound(u64),
    #[error("no such token")]
    TokenNotFound,
    #[error("the token is unknown, revoked or expired")]
    Unauthenticated,
    #[error("quota exceeded: {user} stores {used} of {quota} bytes; {more} more bytes do not fit")]
    QuotaExceeded { user: String, used: u64, quota: u64, more: u64 },
}

#[derive(Debug, Clone, Error)]
pub enum ControllerError {
    #[error(transparent)]
    Meta(#[from] MetaError),
    #[error("not the leader")]
    NotLeader { leader_addr: Option<String> },
    #[error("raft: {0}")]
    Raft(String),
    #[error("storage: {0}")]
    Storage(String),
}

impl ControllerError {
    pub fn into_status(self) -> Status {
        match self {
            ControllerError::Meta(e) => {
                let msg = e.to_string();
                match e {
                    MetaError::FileNotFound(_) | MetaError::NodeNotFound(_) => Status::not_found(msg),
                    MetaError::FileExists(_) => Status::already_exists(msg),
                    MetaError::NotUploading { .. } | MetaError::IncompleteUpload { .. } => Status::aborted(msg),
                    MetaError::Invalid(_) => Status::invalid_argument(msg),
                    MetaError::NotEnoughNodes { .. } | MetaError::NoRoom { .. } => Status::failed_precondition(msg),
                    MetaError::UserExists(_) => Status::already_exists(msg),
                    MetaError::UserNotFound(_) | MetaError::TokenNotFound | MetaError::ControllerNotFound(_) => {
                        Status::not_found(msg)
                    }
                    MetaError::Unauthenticated => Status::unauthenticated(msg),
                    MetaError::QuotaExceeded { .. } => Status::resource_exhausted(msg),
                }
            }
            ControllerError::NotLeader { leader_addr } => {
                tessera_proto::control_client::not_leader_status(leader_addr.as_deref())
            }
            ControllerError::Raft(msg) => Status::unavailable(format!("raft: {msg}")),
            ControllerError::Storage(msg) => Status::internal(format!("storage: {msg}")),
        }
    }
}

impl From<ControllerError> for Status {
    fn from(e: ControllerError) -> Self {
        e.into_status()
    }
}

impl From<tessera_proto::ids::IdError> for MetaError {
    fn from(e: tessera_proto::ids::IdError) -> Self {
        MetaError::Invalid(e.to_string())
    }
}

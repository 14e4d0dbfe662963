//! Errors of the data node, mapped to gRPC status once (`From<StoreError> for Status`).

use thiserror::Error;
use tonic::Status;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("no such chunk: {0}")]
    NotFound(String),
    #[error("chunk {0} is corrupt: {1}")]
    Corrupt(String, String),
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("received chunk does not match its header: {0}")]
    Mismatch(String),
    #[error("the node is failed (simulation)")]
    Failed,
    #[error("disk: {0}")]
    Io(#[from] std::io::Error),
}

impl From<StoreError> for Status {
    fn from(e: StoreError) -> Self {
        let msg = e.to_string();
        match e {
            StoreError::NotFound(_) => Status::not_found(msg),
            StoreError::Corrupt(..) => Status::data_loss(msg),
            StoreError::BadRequest(_) | StoreError::Mismatch(_) => Status::invalid_argument(msg),
            StoreError::Failed => Status::unavailable(msg),
            // A full disk is this node's problem, not the request's: the
            // sender should try another node.
            StoreError::Io(ref io) if io.kind() == std::io::ErrorKind::StorageFull => {
                Status::resource_exhausted(format!("disk full: {msg}"))
            }
            StoreError::Io(_) => Status::internal(msg),
        }
    }
}

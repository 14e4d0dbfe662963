//! gRPC adapters: decode the request, call the controller, encode the reply.
//! Errors become `tonic::Status` through `ControllerError::into_status` only.

mod convert;
pub mod master;

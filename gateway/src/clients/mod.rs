//! gRPC calls the gateway makes to data nodes.

pub mod datanode;

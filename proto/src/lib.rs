//! Shared by every Tessera service: the generated gRPC types ([`pb`], [`raft_pb`]),
//! identifier validation ([`ids`]), chunk checksums ([`checksum`]), wire limits
//! ([`limits`]), mutual TLS ([`tls`]), accepted sockets ([`net`]) and the
//! leader-following controller client ([`control_client`]).

pub mod budget;
pub mod checksum;
pub mod config;
pub mod control_client;
pub mod ids;
pub mod limits;
pub mod net;
pub mod secrets;
pub mod shutdown;
pub mod tls;

/// Client-facing services: `MasterService` (controllers) and `StorageService` (data nodes).
pub mod pb {
    tonic::include_proto!("tessera.v1");
}

/// The Raft transport between controllers.
pub mod raft_pb {
    tonic::include_proto!("tessera.raft.v1");
}

/// gRPC metadata key in which a follower names the current leader's address.
pub const LEADER_METADATA_KEY: &str = "tessera-leader";

/// gRPC metadata key carrying a client's request id (a UUID), the same on
/// every retry of one logical request, so the controllers apply it once.
pub const REQUEST_ID_METADATA_KEY: &str = "tessera-request-id";

/// Milliseconds since the unix epoch, the time unit of every gRPC message.
pub fn now_ms() -> i64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

//! Shared state of every handler: the controller client, the data node
//! channel pool, the transfers' memory budget and the configuration.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tessera_proto::control_client::{ChannelPool, ControlClient};
use tonic::transport::Channel;

use crate::auth::LoginLimiter;
use crate::ops::budget::TransferBudget;

#[derive(Debug, Clone)]
pub struct Settings {
    pub chunks_in_flight: usize,
    pub download_window: usize,
    pub max_upload_bytes: u64,
    pub static_dir: PathBuf,
    pub add_node_command: Option<String>,
    /// How long a dashboard sign-in lasts.
    pub session_ttl: Duration,
    /// Mark the session cookie `Secure` (behind HTTPS).
    pub secure_cookies: bool,
    pub login_attempts_per_minute: u32,
    /// Bytes of chunks all transfers together may hold (`ops/budget.rs`).
    pub transfer_memory_bytes: u64,
}

impl Settings {
    #[cfg(test)]
    pub fn for_tests() -> Self {
        Settings {
            chunks_in_flight: 2,
            download_window: 2,
            max_upload_bytes: 1 << 30,
            static_dir: PathBuf::from("/nonexistent"),
            add_node_command: None,
            session_ttl: Duration::from_secs(3600),
            secure_cookies: false,
            login_attempts_per_minute: 10,
            transfer_memory_bytes: 64 << 20,
        }
    }
}

#[derive(Clone)]
pub struct AppState {
    pub control: ControlClient,
    pub datanodes: DatanodePool,
    pub settings: Arc<Settings>,
    pub login_limiter: LoginLimiter,
    pub transfer_budget: TransferBudget,
}

impl AppState {
    pub fn new(control: ControlClient, datanodes: DatanodePool, settings: Settings) -> Self {
        let login_limiter = LoginLimiter::new(settings.login_attempts_per_minute);
        let transfer_budget = TransferBudget::new(settings.transfer_memory_bytes);
        Self { control, datanodes, settings: Arc::new(settings), login_limiter, transfer_budget }
    }
}

/// The data nodes' channels, one per address (see [`ChannelPool`]).
#[derive(Clone)]
pub struct DatanodePool(ChannelPool);

impl Default for DatanodePool {
    fn default() -> Self {
        Self(ChannelPool::new(Duration::from_secs(60)))
    }
}

impl DatanodePool {
    pub fn channel(&self, addr: &str) -> Channel {
        self.0.channel(addr)
    }
}

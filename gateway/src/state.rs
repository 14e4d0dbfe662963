//! Shared state of every handler: the controller client, the data node
//! channel pool and the configuration.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tessera_proto::control_client::{lazy_channel, ControlClient};
use tonic::transport::Channel;

#[derive(Debug, Clone)]
pub struct Settings {
    pub chunks_in_flight: usize,
    pub download_window: usize,
    pub max_upload_bytes: u64,
    pub static_dir: PathBuf,
    pub add_node_command: Option<String>,
}

#[derive(Clone)]
pub struct AppState {
    pub control: ControlClient,
    pub datanodes: DatanodePool,
    pub settings: Arc<Settings>,
}

/// One lazily connected HTTP/2 channel per data node address, shared by
/// every request (HTTP/2 multiplexes the streams).
#[derive(Clone, Default)]
pub struct DatanodePool {
    channels: Arc<Mutex<HashMap<String, Channel>>>,
}

impl DatanodePool {
    pub fn channel(&self, addr: &str) -> Channel {
        let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        channels.entry(addr.to_string()).or_insert_with(|| lazy_channel(addr, Duration::from_secs(60))).clone()
    }
}

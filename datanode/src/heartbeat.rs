//! Registration and heartbeats: announces the node (with its inventory) to
//! the controller leader, then heartbeats every interval and carries out the
//! delete commands the leader sends back, confirming them in the next beat.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tessera_proto::control_client::ControlClient;
use tessera_proto::pb;
use tokio_util::sync::CancellationToken;

use crate::chunk_store::{layout, ChunkStore};

pub struct Announcer {
    pub node_id: String,
    pub host: String,
    pub grpc_port: u32,
    pub capacity_bytes: u64,
    pub interval: Duration,
    pub inventory_interval: Duration,
    pub store: ChunkStore,
    /// For registration (a full inventory may take a while).
    pub control: ControlClient,
    /// For heartbeats: attempts time out well within the leader's suspect
    /// timeout, so a node whose leader was cut off finds the new one before
    /// the new one declares it dead.
    pub heartbeat_control: ControlClient,
    pub failed: Arc<AtomicBool>,
}

/// Space of the filesystem holding `path`: (total, available) bytes.
pub fn filesystem_space(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: c_path is a valid NUL-terminated string and stat a valid out pointer.
    let rc = unsafe { libc::statvfs(c_path.as_ptr(), &mut stat) };
    if rc != 0 {
        return None;
    }
    let block = stat.f_frsize as u64;
    Some((stat.f_blocks as u64 * block, stat.f_bavail as u64 * block))
}

/// Space kept free on the filesystem for temp files, checksum sidecars and
/// directories, so a node reported as having room for a chunk has it.
const FREE_SPACE_RESERVE: u64 = 16 * 1024 * 1024;

/// Free bytes as the controllers should see them: what the filesystem has
/// left (minus a reserve), but never more than the configured capacity
/// minus what we store.
pub fn free_bytes(store: &ChunkStore, capacity_bytes: u64) -> u64 {
    let by_capacity = capacity_bytes.saturating_sub(store.used_bytes());
    match filesystem_space(store.node_dir()) {
        Some((_, available)) => available.saturating_sub(FREE_SPACE_RESERVE).min(by_capacity),
        None => by_capacity,
    }
}

/// The MAC address of the first non-loopback interface.
pub fn mac_address() -> String {
    let mut names: Vec<_> = std::fs::read_dir("/sys/class/net").into_iter().flatten().flatten().collect();
    names.sort_by_key(|e| e.file_name());
    for entry in names {
        if entry.file_name() == "lo" {
            continue;
        }
        if let Ok(mac) = std::fs::read_to_string(entry.path().join("address")) {
            let mac = mac.trim();
            if !mac.is_empty() && mac != "00:00:00:00:00:00" {
                return mac.to_string();
            }
        }
    }
    "00:00:00:00:00:00".to_string()
}

impl Announcer {
    async fn register(&self) -> Result<(), tonic::Status> {
        let inventory = self.store.inventory().await.map_err(tonic::Status::from)?;
        let request = pb::RegisterNodeRequest {
            node_id: self.node_id.clone(),
            host: self.host.clone(),
            grpc_port: self.grpc_port,
            capacity_bytes: self.capacity_bytes,
            free_bytes: free_bytes(&self.store, self.capacity_bytes),
            mac: mac_address(),
            inventory,
            stored_bytes: self.store.used_bytes(),
        };
        self.control
            .call(|mut c| {
                let request = request.clone();
                async move { c.register_node(request).await }
            })
            .await?;
        tracing::info!(node = %self.node_id, chunks = self.store.chunk_count(), "registered with the controllers");
        Ok(())
    }

    pub async fn run(self, shutdown: CancellationToken) {
        let mut registered = false;
        let mut deleted: Vec<pb::ChunkRef> = Vec::new();
        let mut backoff = Duration::from_millis(200);
        let mut last_inventory = tokio::time::Instant::now();
        loop {
            if shutdown.is_cancelled() {
                return;
            }
            if self.failed.load(Ordering::Relaxed) {
                // A simulated crash: silent until recovered, then register
                // again as a restarted node would.
                registered = false;
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_millis(200)) => continue,
                }
            }
            if registered && last_inventory.elapsed() >= self.inventory_interval {
                // Registering again is how the inventory travels.
                registered = false;
            }
            if !registered {
                match self.register().await {
                    Ok(()) => {
                        registered = true;
                        last_inventory = tokio::time::Instant::now();
                        backoff = Duration::from_millis(200);
                    }
                    Err(e) => {
                        tracing::warn!(error = %e.message(), "registration failed; retrying");
                        tokio::select! {
                            _ = shutdown.cancelled() => return,
                            _ = tokio::time::sleep(backoff) => {}
                        }
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                        continue;
                    }
                }
            }
            let request = pb::HeartbeatRequest {
                node_id: self.node_id.clone(),
                capacity_bytes: self.capacity_bytes,
                free_bytes: free_bytes(&self.store, self.capacity_bytes),
                chunk_count: self.store.chunk_count(),
                deleted: deleted.clone(),
                stored_bytes: self.store.used_bytes(),
            };
            let reply = self
                .heartbeat_control
                .call(|mut c| {
                    let request = request.clone();
                    async move { c.heartbeat(request).await }
                })
                .await;
            match reply {
                Ok(reply) => {
                    deleted.clear();
                    if reply.reregister {
                        registered = false;
                        continue;
                    }
                    for command in reply.commands {
                        if let Some(pb::node_command::Command::DeleteChunk(d)) = command.command {
                            let Ok(id) = layout::file_id(&d.file_id) else { continue };
                            match self.store.delete(id, d.index).await {
                                Ok(_) => deleted.push(pb::ChunkRef { file_id: d.file_id, index: d.index }),
                                Err(e) => tracing::warn!(error = %e, "could not delete a chunk on command"),
                            }
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e.message(), "heartbeat failed"),
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(self.interval) => {}
            }
        }
    }
}

//! Data nodes talking to the leader: registration (with inventory
//! reconciliation) and heartbeats (soft state in, delete commands out).

use uuid::Uuid;

use crate::controller::Controller;
use crate::error::{ControllerError, MetaError};
use crate::events::Event;
use crate::meta::NodeHealth;

/// Most delete commands handed to a node per heartbeat, to keep replies small.
const MAX_COMMANDS_PER_HEARTBEAT: usize = 1000;

/// Files younger than this are left out of the missing-replica check: the
/// node's inventory may have been taken before their chunks landed.
const INVENTORY_SETTLE_MS: i64 = 30_000;

/// Whether a file id (a UUIDv7, so it carries its creation time) was made
/// less than `grace_ms` ago. Ids without a time count as old.
fn young_id(id: &Uuid, grace_ms: i64) -> bool {
    id.get_timestamp().is_some_and(|t| {
        let (secs, nanos) = t.to_unix();
        let made_ms = (secs as i64).saturating_mul(1000) + i64::from(nanos / 1_000_000);
        tessera_proto::now_ms() - made_ms < grace_ms
    })
}

pub struct Registration {
    pub node_id: String,
    pub host: String,
    pub grpc_port: u32,
    pub space: SpaceReport,
    pub mac: String,
    pub inventory: Vec<(Uuid, u32)>,
}

/// What a data node says about its space when it registers or heartbeats.
pub struct SpaceReport {
    pub capacity_bytes: u64,
    pub free_bytes: u64,
    /// Bytes of chunks the node stores, by its own count.
    pub stored_bytes: u64,
}

pub struct HeartbeatReply {
    pub delete: Vec<(Uuid, u32)>,
    pub reregister: bool,
}

impl Controller {
    pub async fn register_node(&self, reg: Registration) -> Result<(), ControllerError> {
        self.ensure_leader()?;
        tessera_proto::ids::validate_node_id(&reg.node_id).map_err(MetaError::from)?;
        // A node joining a cluster that holds files gets a rebalance pass;
        // the first nodes of an empty cluster do not need one.
        let is_new = {
            let state = self.state.read();
            !state.meta.nodes.contains_key(&reg.node_id) && !state.meta.files.is_empty()
        };
        if reg.host.is_empty() || reg.grpc_port == 0 || reg.grpc_port > u32::from(u16::MAX) {
            return Err(MetaError::Invalid(format!("bad address {}:{}", reg.host, reg.grpc_port)).into());
        }
        let unchanged = self.state.read().meta.nodes.get(&reg.node_id).is_some_and(|n| {
            n.host == reg.host
                && n.grpc_port == reg.grpc_port
                && n.capacity_bytes == reg.space.capacity_bytes
                && n.mac == reg.mac
                && matches!(n.health, NodeHealth::Healthy | NodeHealth::Decommissioning | NodeHealth::Removed)
        });
        // Periodic re-registrations only bring the inventory; log nothing new.
        if !unchanged {
            self.propose(Event::NodeRegistered {
                node_id: reg.node_id.clone(),
                host: reg.host,
                grpc_port: reg.grpc_port,
                capacity_bytes: reg.space.capacity_bytes,
                mac: reg.mac,
                at_ms: tessera_proto::now_ms(),
            })
            .await?;
        }
        self.liveness.record(&reg.node_id, &reg.space);
        if is_new {
            // A node joined: spread existing replicas onto it.
            self.rebalance_requested.store(true, std::sync::atomic::Ordering::Relaxed);
        }

        // Replicas the metadata places on this node that its disk no longer
        // has (lost, deleted by hand): dropped, so repair copies them again.
        let missing = self.missing_replicas(&reg.node_id, &reg.inventory);
        for (file_id, index) in missing {
            tracing::warn!(node = %reg.node_id, file = %file_id, chunk = index, "a replica is missing from the node's disk");
            let dropped = Event::ReplicaDropped {
                file_id,
                index,
                node_id: reg.node_id.clone(),
                reason: "missing from the node's disk".into(),
            };
            if let Err(e) = self.propose(dropped).await {
                tracing::warn!(error = %e, "could not drop a missing replica");
            }
        }

        let grace_ms = self.config.upload_grace_ms as i64;
        let unwanted: Vec<(Uuid, u32)> = {
            let state = self.state.read();
            let copying = self.copies_in_flight.lock().unwrap_or_else(|p| p.into_inner());
            reg.inventory
                .into_iter()
                .filter(|key| !state.meta.is_wanted(&reg.node_id, key))
                .filter(|key| !copying.contains(&(key.0, key.1, reg.node_id.clone())))
                // A small file's chunk is stored before its file exists
                // (`FileWritten`): an unknown file younger than the upload
                // grace may still be committed.
                .filter(|key| state.meta.files.contains_key(&key.0) || !young_id(&key.0, grace_ms))
                .collect()
        };
        if !unwanted.is_empty() {
            tracing::info!(node = %reg.node_id, chunks = unwanted.len(), "registering node holds unwanted replicas");
            self.propose(Event::GarbageFound { node_id: reg.node_id, chunks: unwanted }).await?;
        }
        Ok(())
    }

    /// Chunks of committed files whose metadata names `node_id` as a
    /// replica but which are not in its inventory. Skips chunks with no
    /// other replica (better a wrong entry than none until repair finds
    /// one), copies in flight, and files younger than the inventory may be.
    fn missing_replicas(&self, node_id: &str, inventory: &[(Uuid, u32)]) -> Vec<(Uuid, u32)> {
        let held: std::collections::HashSet<&(Uuid, u32)> = inventory.iter().collect();
        let recent = tessera_proto::now_ms() - INVENTORY_SETTLE_MS;
        let state = self.state.read();
        let copying = self.copies_in_flight.lock().unwrap_or_else(|p| p.into_inner());
        let mut missing = Vec::new();
        for file in state.meta.files.values() {
            if file.state != crate::meta::FileState::Committed || file.created_at_ms > recent {
                continue;
            }
            for (index, chunk) in &file.chunks {
                let key = (file.id, *index);
                if chunk.replicas.len() > 1
                    && chunk.replicas.iter().any(|n| n == node_id)
                    && !held.contains(&key)
                    && !copying.contains(&(file.id, *index, node_id.to_string()))
                {
                    missing.push(key);
                }
            }
        }
        missing
    }

    pub async fn heartbeat(
        &self,
        node_id: &str,
        report: SpaceReport,
        deleted: Vec<(Uuid, u32)>,
    ) -> Result<HeartbeatReply, ControllerError> {
        self.ensure_leader()?;
        let health = self.state.read().meta.nodes.get(node_id).map(|n| n.health);
        match health {
            None | Some(NodeHealth::Dead) => return Ok(HeartbeatReply { delete: Vec::new(), reregister: true }),
            // Deaf until recovered.
            Some(NodeHealth::FailedSimulated) => return Ok(HeartbeatReply { delete: Vec::new(), reregister: false }),
            // A removed node still gets its leftovers deleted.
            Some(NodeHealth::Removed) => {}
            _ => self.liveness.record(node_id, &report),
        }
        if !deleted.is_empty() {
            self.propose(Event::GarbagePurged { node_id: node_id.to_string(), chunks: deleted.clone() }).await?;
        }
        let delete = self
            .state
            .read()
            .meta
            .garbage
            .get(node_id)
            .map(|set| set.iter().filter(|k| !deleted.contains(k)).take(MAX_COMMANDS_PER_HEARTBEAT).copied().collect())
            .unwrap_or_default();
        Ok(HeartbeatReply { delete, reregister: false })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_ids_carry_their_age() {
        assert!(young_id(&tessera_proto::ids::new_file_id(), 60_000));
        let old = Uuid::new_v7(uuid::Timestamp::from_unix(uuid::NoContext, 1_600_000_000, 0));
        assert!(!young_id(&old, 60_000));
        // No time in it: old.
        assert!(!young_id(&Uuid::new_v4(), 60_000));
    }
}

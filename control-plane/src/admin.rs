//! Operator commands on data nodes: decommission (drain, then removed),
//! simulated failure and recovery.

use std::time::Duration;

use tessera_proto::pb;
use tessera_proto::pb::storage_service_client::StorageServiceClient;

use crate::controller::Controller;
use crate::error::{ControllerError, MetaError};
use crate::events::Event;
use crate::meta::NodeHealth;

impl Controller {
    /// Logs a node's new health and wakes the repair worker: a dead or
    /// draining node's chunks are planned now, not at its next tick.
    pub(crate) async fn set_health(&self, node_id: &str, health: NodeHealth) -> Result<(), ControllerError> {
        self.propose(Event::NodeHealthChanged { node_id: node_id.to_string(), health, at_ms: tessera_proto::now_ms() })
            .await?;
        self.repair_wanted.notify_one();
        Ok(())
    }

    fn node_health(&self, node_id: &str) -> Result<NodeHealth, ControllerError> {
        self.state
            .read()
            .meta
            .nodes
            .get(node_id)
            .map(|n| n.health)
            .ok_or_else(|| MetaError::NodeNotFound(node_id.to_string()).into())
    }

    pub async fn node_info(&self, node_id: &str) -> Result<pb::NodeInfo, ControllerError> {
        self.list_nodes()
            .await?
            .into_iter()
            .find(|n| n.node_id == node_id)
            .ok_or_else(|| MetaError::NodeNotFound(node_id.to_string()).into())
    }

    /// Starts draining a node: the repair worker copies each of its replicas
    /// to another node before dropping it, so no chunk loses a copy; the
    /// health sweep marks the node removed once it holds nothing.
    pub async fn decommission_node(&self, node_id: &str) -> Result<(), ControllerError> {
        self.ensure_leader()?;
        match self.node_health(node_id)? {
            NodeHealth::Decommissioning | NodeHealth::Removed => Ok(()),
            _ => self.set_health(node_id, NodeHealth::Decommissioning).await,
        }
    }

    /// Tells the data node itself to play dead (or stop playing dead).
    /// Best effort: a node that cannot be reached is as good as failed.
    async fn tell_node(&self, node_id: &str, failed: bool) {
        let addr = self.state.read().meta.nodes.get(node_id).map(|n| n.addr());
        let Some(addr) = addr else { return };
        let mut client = StorageServiceClient::new(self.datanode_channels.channel(&addr));
        let mut request = tonic::Request::new(pb::SetFailureSimulationRequest { failed });
        // A node that does not answer soon counts as failed anyway.
        request.set_timeout(Duration::from_secs(3));
        if let Err(e) = client.set_failure_simulation(request).await {
            tracing::warn!(node = %node_id, error = %e.message(), "could not reach the node for failure simulation");
        }
    }

    /// Makes a node stop serving and heartbeating, as if it crashed, and
    /// marks it failed: its replicas stop counting as live, so repair starts.
    pub async fn simulate_node_failure(&self, node_id: &str) -> Result<(), ControllerError> {
        self.ensure_leader()?;
        match self.node_health(node_id)? {
            NodeHealth::Removed => Err(MetaError::Invalid(format!("node {node_id} is removed")).into()),
            NodeHealth::FailedSimulated => Ok(()),
            _ => {
                self.tell_node(node_id, true).await;
                self.set_health(node_id, NodeHealth::FailedSimulated).await
            }
        }
    }

    /// Ends a simulated failure. The node is healthy again as soon as it
    /// heartbeats; if it stays silent the health sweep says so.
    pub async fn recover_node(&self, node_id: &str) -> Result<(), ControllerError> {
        self.ensure_leader()?;
        match self.node_health(node_id)? {
            NodeHealth::FailedSimulated | NodeHealth::Dead | NodeHealth::Suspect => {
                self.tell_node(node_id, false).await;
                self.liveness.touch(node_id);
                self.set_health(node_id, NodeHealth::Healthy).await
            }
            NodeHealth::Healthy => Ok(()),
            other => Err(MetaError::Invalid(format!("node {node_id} is {}", other.as_str())).into()),
        }
    }
}

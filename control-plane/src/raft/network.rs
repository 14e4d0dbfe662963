//! Outgoing Raft RPCs over tonic. openraft's messages are bincode-encoded
//! into a `RaftPayload`; the reply carries the remote `Result` the same way,
//! so a remote Raft error comes back as `RemoteError`, and only transport
//! failures become `Unreachable`.

use std::time::Duration;

use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use openraft::BasicNode;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tessera_proto::control_client::ChannelPool;
use tessera_proto::limits::MAX_GRPC_MESSAGE_BYTES;
use tessera_proto::raft_pb::raft_service_client::RaftServiceClient;
use tessera_proto::raft_pb::RaftPayload;
use tonic::transport::Channel;

use super::{io_error, NodeId, TypeConfig};

/// Hands out clients over one pooled channel (one HTTP/2 connection) per
/// peer address. openraft asks for a new client for every leadership check
/// and every election, not only per replication stream: a fresh channel
/// each time meant a TCP and TLS handshake per check.
#[derive(Clone)]
pub struct NetworkFactory {
    channels: ChannelPool,
}

impl Default for NetworkFactory {
    fn default() -> Self {
        // The per-call deadline comes from openraft's RPCOption; this one
        // only backs it up.
        Self { channels: ChannelPool::new(Duration::from_secs(30)) }
    }
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> Self::Network {
        let client = RaftServiceClient::new(self.channels.channel(&node.addr))
            .max_decoding_message_size(MAX_GRPC_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_GRPC_MESSAGE_BYTES);
        PeerClient { target, node: node.clone(), client }
    }
}

pub struct PeerClient {
    target: NodeId,
    node: BasicNode,
    client: RaftServiceClient<Channel>,
}

type RpcResult<T, E> = Result<T, RPCError<NodeId, BasicNode, E>>;

impl PeerClient {
    fn encode<E: std::error::Error>(req: &impl Serialize) -> RpcResult<RaftPayload, E> {
        let data = bincode::serialize(req).map_err(|e| RPCError::Network(NetworkError::new(&io_error(e))))?;
        Ok(RaftPayload { data: data.into() })
    }

    fn decode<T: DeserializeOwned, E: std::error::Error + DeserializeOwned>(
        &self,
        reply: Result<tonic::Response<RaftPayload>, tonic::Status>,
    ) -> RpcResult<T, E> {
        let reply = reply.map_err(|status| RPCError::Unreachable(Unreachable::new(&io_error(status))))?;
        let result: Result<T, E> = bincode::deserialize(&reply.into_inner().data)
            .map_err(|e| RPCError::Network(NetworkError::new(&io_error(e))))?;
        result.map_err(|e| RPCError::RemoteError(RemoteError::new_with_node(self.target, self.node.clone(), e)))
    }

    fn request(payload: RaftPayload, option: &RPCOption) -> tonic::Request<RaftPayload> {
        let mut request = tonic::Request::new(payload);
        request.set_timeout(option.hard_ttl());
        request
    }
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<NodeId>, RaftError<NodeId>> {
        let payload = Self::encode(&rpc)?;
        let reply = self.client.append_entries(Self::request(payload, &option)).await;
        self.decode(reply)
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>> {
        let payload = Self::encode(&rpc)?;
        let reply = self.client.install_snapshot(Self::request(payload, &option)).await;
        self.decode(reply)
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<NodeId>, RaftError<NodeId>> {
        let payload = Self::encode(&rpc)?;
        let reply = self.client.vote(Self::request(payload, &option)).await;
        self.decode(reply)
    }
}

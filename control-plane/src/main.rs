//! `tessera-controller`: one member of the controller trio.
//!
//! Start-up order: open RocksDB → restore the state machine from its last
//! snapshot → start openraft → serve gRPC (MasterService + Raft transport) →
//! form the cluster if pristine → start the leader-only workers.
//! Shutdown (SIGINT/SIGTERM): stop workers, stop serving, shut Raft down,
//! then drop RocksDB (flushed on drop).

mod accounts;
mod admin;
mod api;
mod cluster;
mod config;
mod controller;
mod error;
mod events;
mod gc;
mod health;
mod meta;
mod nodes;
mod placement;
mod raft;
mod rebalance;
mod repair;
mod uploads;

use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use tessera_proto::limits::MAX_GRPC_MESSAGE_BYTES;
use tessera_proto::pb::master_service_server::MasterServiceServer;
use tessera_proto::raft_pb::raft_service_server::RaftServiceServer;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::controller::Controller;
use crate::raft::log_store::LogStore;
use crate::raft::network::NetworkFactory;
use crate::raft::service::RaftRpc;
use crate::raft::state_machine::StateMachineStore;

fn main() -> std::process::ExitCode {
    tessera_proto::shutdown::exit_status(start())
}

fn start() -> anyhow::Result<()> {
    // Before the runtime starts any thread: it may set environment variables.
    tessera_proto::config::load_config_file()?;
    let config = Config::parse();
    config.validate().map_err(anyhow::Error::msg)?;
    tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(run(config))
}

async fn run(config: Config) -> anyhow::Result<()> {
    tessera_proto::shutdown::init_tracing("info,openraft=warn");
    let peers = config.peer_map().map_err(anyhow::Error::msg)?;
    let tls = config.tls.load("controller")?;
    if tls.is_none() {
        tracing::warn!("--insecure: gRPC is plaintext and unauthenticated");
    }
    tessera_proto::tls::install(tls.as_ref());

    let data_dir = config.data_dir();
    std::fs::create_dir_all(&data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
    let db = raft::open_db(&data_dir).with_context(|| format!("opening RocksDB in {}", data_dir.display()))?;
    let log_store = LogStore::new(db.clone());
    let state_machine = StateMachineStore::open(db.clone()).map_err(|e| anyhow::anyhow!("restoring snapshot: {e}"))?;
    let shared = state_machine.shared();

    let raft_config = openraft::Config {
        cluster_name: "tessera".into(),
        heartbeat_interval: config.raft_heartbeat_ms,
        election_timeout_min: config.election_timeout_min_ms,
        election_timeout_max: config.election_timeout_max_ms,
        snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(config.snapshot_every),
        max_in_snapshot_log_to_keep: 1000,
        // Snapshot chunks must fit in one gRPC message with room to spare.
        snapshot_max_chunk_size: (MAX_GRPC_MESSAGE_BYTES / 4) as u64,
        ..Default::default()
    }
    .validate()
    .context("invalid raft configuration")?;
    let raft = raft::Raft::new(config.id, Arc::new(raft_config), NetworkFactory::default(), log_store, state_machine)
        .await
        .context("starting raft")?;

    let controller = Controller::new(config.clone(), raft.clone(), shared);
    let shutdown = CancellationToken::new();

    let listen: std::net::SocketAddr =
        config.listen.parse().with_context(|| format!("bad --listen {}", config.listen))?;
    let listener = tokio::net::TcpListener::bind(&listen).await.with_context(|| format!("binding {listen}"))?;
    let incoming = tessera_proto::net::NoDelayIncoming::new(listener);
    let mut server = tessera_proto::net::grpc_server();
    if let Some(tls) = &tls {
        server = server.tls_config(tls.server_config()).context("configuring TLS")?;
    }
    let server = server
        .add_service(
            MasterServiceServer::new(api::master::MasterApi::new(controller.clone()))
                .max_decoding_message_size(MAX_GRPC_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_GRPC_MESSAGE_BYTES),
        )
        .add_service(
            RaftServiceServer::new(RaftRpc::new(raft.clone()))
                .max_decoding_message_size(MAX_GRPC_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_GRPC_MESSAGE_BYTES),
        )
        .serve_with_incoming_shutdown(incoming, shutdown.clone().cancelled_owned());
    let server = tokio::spawn(server);
    tracing::info!(id = config.id, listen = %config.listen, data_dir = %data_dir.display(), "controller serving");

    controller.bootstrap(peers).await.context("forming the cluster")?;
    let sweep = tokio::spawn(health::run_health_sweep(controller.clone(), shutdown.clone()));
    let repair = tokio::spawn(repair::run_repair_worker(controller.clone(), shutdown.clone()));
    let rebalance = tokio::spawn(rebalance::run_rebalance_worker(controller.clone(), shutdown.clone()));
    let upload_gc = tokio::spawn(gc::run_upload_gc(controller.clone(), shutdown.clone()));

    tessera_proto::shutdown::wait_for_signal().await;
    shutdown.cancel();
    let _ = sweep.await;
    let _ = repair.await;
    let _ = rebalance.await;
    let _ = upload_gc.await;
    match server.await {
        Ok(Err(e)) => tracing::warn!(error = %e, "grpc server ended with an error"),
        Err(e) => tracing::warn!(error = %e, "grpc server task failed"),
        Ok(Ok(())) => {}
    }
    if let Err(e) = raft.shutdown().await {
        tracing::warn!(error = %e, "raft shutdown");
    }
    drop(controller);
    drop(db);
    Ok(())
}

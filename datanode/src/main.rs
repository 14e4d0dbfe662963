//! `tessera-datanode`: stores chunk files and serves them over gRPC.
//!
//! Start-up: open the chunk store (clearing crash leftovers) → serve
//! `StorageService` → register and heartbeat. Shutdown (SIGINT/SIGTERM):
//! stop heartbeating, stop serving; every acknowledged chunk is already
//! fsynced, so nothing needs flushing.

mod batch;
mod budget;
mod chunk_store;
mod error;
mod heartbeat;
mod scrub;
mod service;

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use tessera_proto::control_client::{ControlClient, RetryPolicy};
use tessera_proto::limits::MAX_GRPC_MESSAGE_BYTES;
use tessera_proto::pb::storage_service_server::StorageServiceServer;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Parser)]
#[command(
    name = "tessera-datanode",
    version,
    about = "Tessera data node: stores chunks, heartbeats to the controllers"
)]
struct Config {
    /// File of `TESSERA_*=value` lines read before the environment.
    #[arg(long, env = "TESSERA_CONFIG")]
    config: Option<PathBuf>,
    #[command(flatten)]
    tls: tessera_proto::tls::TlsArgs,
    /// This node's id (A-Z, a-z, 0-9, '-', '_'; at most 64).
    #[arg(long, env = "TESSERA_NODE_ID")]
    node_id: String,
    /// Chunks are stored under <data-root>/<node-id>/.
    #[arg(long, env = "TESSERA_DATA_ROOT", default_value = "./data")]
    data_root: PathBuf,
    /// Address the gRPC server listens on.
    #[arg(long, env = "TESSERA_LISTEN", default_value = "127.0.0.1:9101")]
    listen: String,
    /// Host other services reach this node at (the port is --listen's).
    #[arg(long, env = "TESSERA_ADVERTISE_HOST", default_value = "127.0.0.1")]
    advertise_host: String,
    /// Controller addresses, comma-separated host:port.
    #[arg(long, env = "TESSERA_CONTROLLERS", value_delimiter = ',', required = true)]
    controllers: Vec<String>,
    /// Capacity offered to the cluster (default: size of the filesystem).
    #[arg(long, env = "TESSERA_CAPACITY_BYTES")]
    capacity_bytes: Option<u64>,
    /// Bytes per second the scrubber re-reads to verify checksums (0: off).
    #[arg(long, env = "TESSERA_SCRUB_BYTES_PER_SEC", default_value_t = 32 * 1024 * 1024)]
    scrub_bytes_per_sec: u64,
    /// Pause between two scrub passes, in milliseconds.
    #[arg(long, env = "TESSERA_SCRUB_INTERVAL_MS", default_value_t = 3_600_000)]
    scrub_interval_ms: u64,
    /// Interval at which the full chunk inventory is sent again, so the
    /// controllers find replicas nothing wants (milliseconds).
    #[arg(long, env = "TESSERA_INVENTORY_INTERVAL_MS", default_value_t = 300_000)]
    inventory_interval_ms: u64,
    /// Heartbeat interval in milliseconds.
    #[arg(long, env = "TESSERA_HEARTBEAT_INTERVAL_MS", default_value_t = 5000)]
    heartbeat_interval_ms: u64,
    /// MiB of incoming chunks (uploads and replica copies) held in memory
    /// at once; further writes wait. Bounds the node's memory whatever the
    /// chunk size: 64 chunks of 4 MiB, or 4 of 64 MiB.
    #[arg(long, env = "TESSERA_WRITE_BUFFER_MIB", default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=1_048_576))]
    write_buffer_mib: u32,
    /// MiB of outgoing chunks (downloads, and this node's chunks copied to
    /// others) held in memory at once; further reads wait.
    #[arg(long, env = "TESSERA_READ_BUFFER_MIB", default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=1_048_576))]
    read_buffer_mib: u32,
}

fn main() -> std::process::ExitCode {
    tessera_proto::shutdown::exit_status(start())
}

fn start() -> anyhow::Result<()> {
    tessera_proto::config::load_config_file()?;
    let config = Config::parse();
    tessera_proto::ids::validate_node_id(&config.node_id)?;
    keep_chunk_buffers(config.write_buffer_mib);
    tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(run(config))
}

/// Chunk-sized blocks (4 MiB) come and go with every write, read and
/// copy. glibc serves them from fresh mappings, or returns them to the
/// kernel soon after they are freed, so each chunk's buffer was faulted in
/// and zeroed again page by page (clear_page: 7 % of the CPU samples of a
/// heal, 4 % with this). They stay in the heap instead; the write budget
/// and the copies in flight bound what that keeps.
fn keep_chunk_buffers(write_buffer_mib: u32) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let keep_bytes = i32::try_from(u64::from(write_buffer_mib) << 20).unwrap_or(i32::MAX);
        // SAFETY: mallopt only changes the allocator's thresholds; it is
        // called before any other thread exists.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
            libc::mallopt(libc::M_TRIM_THRESHOLD, keep_bytes);
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let _ = write_buffer_mib;
}

async fn run(config: Config) -> anyhow::Result<()> {
    tessera_proto::shutdown::init_tracing("info");
    let tls = config.tls.load("datanode")?;
    if tls.is_none() {
        tracing::warn!("--insecure: gRPC is plaintext and unauthenticated");
    }
    tessera_proto::tls::install(tls.as_ref());
    let listen: std::net::SocketAddr =
        config.listen.parse().with_context(|| format!("bad --listen {}", config.listen))?;
    let store = chunk_store::ChunkStore::open(&config.data_root, &config.node_id)
        .await
        .with_context(|| format!("opening the chunk store in {}", config.data_root.display()))?;
    let capacity_bytes = match config.capacity_bytes {
        Some(c) => c,
        None => heartbeat::filesystem_space(store.node_dir()).map(|(total, _)| total).unwrap_or(0),
    };
    let failed = Arc::new(AtomicBool::new(false));
    let shutdown = CancellationToken::new();

    let listener = tokio::net::TcpListener::bind(listen).await.with_context(|| format!("binding {listen}"))?;
    let api = service::StorageApi::new(
        config.node_id.clone(),
        store.clone(),
        capacity_bytes,
        failed.clone(),
        config.write_buffer_mib,
        config.read_buffer_mib,
    );
    let mut server = tessera_proto::net::grpc_server();
    if let Some(tls) = &tls {
        server = server.tls_config(tls.server_config()).context("configuring TLS")?;
    }
    let server = server
        .add_service(
            StorageServiceServer::new(api)
                .max_decoding_message_size(MAX_GRPC_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_GRPC_MESSAGE_BYTES),
        )
        .serve_with_incoming_shutdown(
            tessera_proto::net::NoDelayIncoming::new(listener),
            shutdown.clone().cancelled_owned(),
        );
    let server = tokio::spawn(server);
    tracing::info!(node = %config.node_id, %listen, chunks = store.chunk_count(), capacity_bytes, "data node serving");

    let control = ControlClient::new(config.controllers.clone(), RetryPolicy::default());
    // A heartbeat is tiny: an attempt that takes longer than half an
    // interval is talking to a controller that is gone or cut off.
    let heartbeat_policy = RetryPolicy {
        attempt_timeout: (Duration::from_millis(config.heartbeat_interval_ms) / 2)
            .clamp(Duration::from_millis(250), Duration::from_secs(2)),
        ..RetryPolicy::default()
    };
    let heartbeat_control = ControlClient::new(config.controllers.clone(), heartbeat_policy);
    let scrubber = scrub::Scrubber {
        node_id: config.node_id.clone(),
        store: store.clone(),
        control: control.clone(),
        bytes_per_sec: config.scrub_bytes_per_sec,
        pass_interval: Duration::from_millis(config.scrub_interval_ms),
    };
    let scrubbing = tokio::spawn(scrubber.run(shutdown.clone()));
    let announcer = heartbeat::Announcer {
        node_id: config.node_id.clone(),
        host: config.advertise_host.clone(),
        grpc_port: u32::from(listen.port()),
        capacity_bytes,
        interval: Duration::from_millis(config.heartbeat_interval_ms.max(50)),
        inventory_interval: Duration::from_millis(config.inventory_interval_ms.max(100)),
        store,
        control,
        heartbeat_control,
        failed,
    };
    let beats = tokio::spawn(announcer.run(shutdown.clone()));

    tessera_proto::shutdown::wait_for_signal().await;
    shutdown.cancel();
    let _ = beats.await;
    let _ = scrubbing.await;
    match server.await {
        Ok(Err(e)) => tracing::warn!(error = %e, "grpc server ended with an error"),
        Err(e) => tracing::warn!(error = %e, "grpc server task failed"),
        Ok(Ok(())) => {}
    }
    Ok(())
}

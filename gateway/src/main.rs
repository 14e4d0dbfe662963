//! `tessera-gateway`: the HTTP API and the dashboards.
//!
//! Start-up: build the controller client and the data node pool, bind, serve.
//! Shutdown (SIGINT/SIGTERM): stop accepting, let requests in flight finish.

mod auth;
mod clients;
mod connection;
mod dashboard;
mod error;
mod ops;
mod routes;
mod state;

use std::path::PathBuf;

use anyhow::Context;
use axum::serve::ListenerExt;
use clap::Parser;
use tessera_proto::control_client::{ControlClient, RetryPolicy};

use crate::state::{AppState, DatanodePool, Settings};

#[derive(Debug, Parser)]
#[command(name = "tessera-gateway", version, about = "Tessera gateway: HTTP API and dashboards")]
struct Config {
    /// File of `TESSERA_*=value` lines read before the environment.
    #[arg(long, env = "TESSERA_CONFIG")]
    config: Option<PathBuf>,
    /// Address the HTTP server listens on.
    #[arg(long, env = "TESSERA_HTTP_LISTEN", default_value = "127.0.0.1:8080")]
    listen: String,
    #[command(flatten)]
    tls: tessera_proto::tls::TlsArgs,
    /// Controller addresses, comma-separated host:port.
    #[arg(long, env = "TESSERA_CONTROLLERS", value_delimiter = ',', required = true)]
    controllers: Vec<String>,
    /// Built dashboards (user app at the root, admin app in admin/).
    #[arg(long, env = "TESSERA_STATIC_DIR", default_value = "frontend/dist")]
    static_dir: PathBuf,
    /// Chunks of one upload being written to data nodes at once. Six, not
    /// four: with four, a 1 GiB upload left both cores idle ~6 % of the
    /// time, every chunk in flight waiting for a replica's durable write;
    /// six keep them 95-97 % busy (+5-15 % MB/s) for ~20 MiB more peak RSS
    /// (docs/performance.md, fourteenth round).
    #[arg(long, env = "TESSERA_CHUNKS_IN_FLIGHT", default_value_t = 6)]
    chunks_in_flight: usize,
    /// Chunks of one download being fetched at once.
    #[arg(long, env = "TESSERA_DOWNLOAD_WINDOW", default_value_t = 4)]
    download_window: usize,
    /// Memory, in MiB, that the chunks of all uploads and downloads together
    /// may hold; transfers beyond it wait (back pressure). One upload at full
    /// speed holds up to (chunks in flight + 1) x chunk size x (1 + replicas):
    /// 112 MiB with the defaults; a download, download window x chunk size.
    #[arg(long, env = "TESSERA_TRANSFER_MEMORY_MIB", default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..=1_048_576))]
    transfer_memory_mib: u64,
    /// Largest accepted upload in bytes.
    #[arg(long, env = "TESSERA_MAX_UPLOAD_BYTES", default_value_t = 1 << 40)]
    max_upload_bytes: u64,
    /// Seconds a client connection may wait with nothing sent or read
    /// (half a request, a stalled upload body, a download nobody reads)
    /// before it is closed.
    #[arg(long, env = "TESSERA_IDLE_TIMEOUT_SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    idle_timeout_secs: u64,
    /// Shell command `POST /admin/nodes` runs to start a data node; it
    /// prints the new node's id. Unset: the endpoint explains how.
    #[arg(long, env = "TESSERA_ADD_NODE_COMMAND")]
    add_node_command: Option<String>,
    /// Hours a dashboard sign-in lasts.
    #[arg(long, env = "TESSERA_SESSION_TTL_HOURS", default_value_t = 168)]
    session_ttl_hours: u64,
    /// Mark the session cookie `Secure` (set it when users reach the gateway over HTTPS).
    #[arg(long, env = "TESSERA_SECURE_COOKIES")]
    secure_cookies: bool,
    /// Sign-in attempts per minute per client address and user name.
    #[arg(long, env = "TESSERA_LOGIN_ATTEMPTS_PER_MINUTE", default_value_t = 10)]
    login_attempts_per_minute: u32,
}

fn main() -> std::process::ExitCode {
    tessera_proto::shutdown::exit_status(start())
}

fn start() -> anyhow::Result<()> {
    tessera_proto::config::load_config_file()?;
    let config = Config::parse();
    few_allocator_arenas();
    tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(run(config))
}

/// The gateway's memory is bounded by design (chunks in flight per upload,
/// the download window), but glibc gives each thread that allocates at the
/// same time an arena of its own (up to eight per core, the hashing
/// threads included), and each arena keeps what was freed in it: the peak
/// RSS of a 1 GiB upload and download was 91-133 MiB with the default,
/// 84-99 MiB with two arenas, at the same speed.
fn few_allocator_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes the allocator's settings; it is called
    // before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

async fn run(config: Config) -> anyhow::Result<()> {
    tessera_proto::shutdown::init_tracing("info,tower_http=warn");
    let tls = config.tls.load("gateway")?;
    if tls.is_none() {
        tracing::warn!("--insecure: gRPC to the controllers and data nodes is plaintext and unauthenticated");
    }
    tessera_proto::tls::install(tls.as_ref());
    let app = AppState::new(
        ControlClient::new(config.controllers.clone(), RetryPolicy::default()),
        DatanodePool::default(),
        Settings {
            chunks_in_flight: config.chunks_in_flight.max(1),
            download_window: config.download_window.max(1),
            max_upload_bytes: config.max_upload_bytes,
            static_dir: config.static_dir.clone(),
            add_node_command: config.add_node_command.clone(),
            session_ttl: std::time::Duration::from_secs(config.session_ttl_hours.max(1) * 3600),
            secure_cookies: config.secure_cookies,
            login_attempts_per_minute: config.login_attempts_per_minute,
            transfer_memory_bytes: config.transfer_memory_mib.saturating_mul(1 << 20),
        },
    );
    // TCP_NODELAY: a response's last small write must not wait for an ACK.
    // Idle timeout, and lingering so that a refused upload's answer reaches
    // clients that send the whole body before reading (connection.rs).
    let listener =
        tokio::net::TcpListener::bind(&config.listen).await.with_context(|| format!("binding {}", config.listen))?;
    let idle_timeout = std::time::Duration::from_secs(config.idle_timeout_secs);
    let listener = connection::ClientListener::new(listener, idle_timeout).tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
    });
    tracing::info!(listen = %config.listen, static_dir = %config.static_dir.display(), "gateway serving");
    // The client address keys the sign-in rate limit.
    let service = routes::router(app).into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, service).with_graceful_shutdown(tessera_proto::shutdown::wait_for_signal()).await?;
    Ok(())
}

//! Raw cost of the transport every small-file request pays, before any of
//! Tessera's own work: CPU per call (both ends, one process) of
//!
//! - a gRPC call over mutual TLS with the cluster's kind of certificates,
//!   tonic settings and HTTP/2 windows (`tessera_proto::net`,
//!   `tessera_proto::control_client::lazy_channel`): an empty unary call
//!   (what a metadata lookup or a commit is on the wire), a 64 KiB chunk
//!   streamed back (a download from a data node) and a 64 KiB chunk
//!   streamed in (an upload to one);
//! - an HTTP/1.1 keep-alive request with hyper on both ends: a GET and a
//!   POST of 64 KiB (the gateway's side of a small download and upload).
//!
//! With `--payload-bytes` of a whole chunk (sent in the services' 1 MiB
//! messages) the same calls measure each hop of a large upload or download.
//! The server here answers from memory and the clients check nothing, so
//! the figures are a floor: no real request can cost less.

use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::json;
use tessera_proto::limits::stream_pieces;
use tessera_proto::pb;
use tessera_proto::pb::storage_service_client::StorageServiceClient;
use tessera_proto::pb::storage_service_server::{StorageService, StorageServiceServer};
use tessera_proto::tls::ClusterTls;
use tokio::net::TcpListener;
use tonic::transport::Channel;
use tonic::{Request, Response, Status, Streaming};

use crate::cpu::process_cpu_s;

#[derive(clap::Args)]
pub struct RpcArgs {
    /// Calls of each kind.
    #[arg(long, default_value_t = 4000)]
    calls: usize,
    /// Calls in flight at once (the bench's small-file clients).
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Size of a chunk in the chunk calls and of an HTTP body.
    #[arg(long, default_value_t = 64 * 1024)]
    payload_bytes: usize,
    /// An empty or missing directory for the generated certificates.
    #[arg(long)]
    scratch: PathBuf,
    /// Plaintext gRPC instead of mutual TLS (what `bench.py --plaintext`
    /// runs the cluster with), so that run's ceilings count its transport.
    #[arg(long)]
    plaintext: bool,
}

pub async fn run(args: RpcArgs) -> anyhow::Result<String> {
    let payload = Bytes::from(vec![0x5a_u8; args.payload_bytes]);
    let client = grpc_channel(&args.scratch, payload.clone(), args.plaintext).await?;
    let calls = args.calls.max(1);
    let concurrency = args.concurrency.max(1);

    let channel = client.clone();
    let empty = per_call(calls, concurrency, move || {
        let mut c = StorageServiceClient::new(channel.clone());
        async move {
            c.health_check(pb::HealthCheckRequest {}).await?;
            Ok(())
        }
    })
    .await?;
    let channel = client.clone();
    let download = per_call(calls, concurrency, move || {
        let mut c = StorageServiceClient::new(channel.clone());
        async move {
            let request = pb::DownloadChunkRequest { file_id: String::new(), index: 0, read_once: false, size: 0 };
            let mut stream = c.download_chunk(request).await?.into_inner();
            while stream.message().await?.is_some() {}
            Ok(())
        }
    })
    .await?;
    let chunk = payload.clone();
    let upload = per_call(calls, concurrency, move || {
        let mut c = StorageServiceClient::new(client.clone());
        let payload = chunk.clone();
        async move {
            let messages = chunk_messages(&payload);
            c.upload_chunk(tokio_stream::iter(messages)).await?;
            Ok(())
        }
    })
    .await?;

    let addr = http_server(payload.clone()).await?;
    let get = http_per_call(addr, calls, concurrency, hyper::Method::GET, Bytes::new()).await?;
    let post = http_per_call(addr, calls, concurrency, hyper::Method::POST, payload).await?;
    Ok(json!({
        "grpc_call_cpu_ms": empty,
        "grpc_download_cpu_ms": download,
        "grpc_upload_cpu_ms": upload,
        "http_get_cpu_ms": get,
        "http_post_cpu_ms": post,
    })
    .to_string())
}

/// Runs `calls` calls made by `call`, `concurrency` at a time; returns the
/// process's CPU milliseconds per call.
async fn per_call<F, Fut>(calls: usize, concurrency: usize, call: F) -> anyhow::Result<f64>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
{
    // A first round outside the clock: connections, handshakes, buffers.
    for _ in 0..concurrency {
        call().await?;
    }
    let call = Arc::new(call);
    let next = Arc::new(AtomicUsize::new(0));
    let before = process_cpu_s();
    let mut workers = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let (call, next) = (call.clone(), next.clone());
        workers.push(tokio::spawn(async move {
            while next.fetch_add(1, Ordering::Relaxed) < calls {
                call().await?;
            }
            Ok::<_, anyhow::Error>(())
        }));
    }
    for w in workers {
        w.await??;
    }
    Ok((process_cpu_s() - before) * 1000.0 / calls as f64)
}

/// An upload's messages: the header, then the bytes in the services'
/// pieces.
fn chunk_messages(payload: &Bytes) -> Vec<pb::UploadChunkRequest> {
    use pb::upload_chunk_request::Kind;
    std::iter::once(Kind::Header(probe_header(payload)))
        .chain(stream_pieces(payload.clone()).map(Kind::Data))
        .map(|kind| pb::UploadChunkRequest { kind: Some(kind) })
        .collect()
}

/// The header the services send before a chunk's bytes.
fn probe_header(payload: &Bytes) -> pb::ChunkHeader {
    pb::ChunkHeader { file_id: String::new(), index: 0, size: payload.len() as u64, crc32c: 0 }
}

/// Answers the chunk calls from memory; the others are not used.
struct MemoryStorage {
    payload: Bytes,
}

type DownloadStream =
    std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Result<pb::DownloadChunkResponse, Status>> + Send>>;

#[tonic::async_trait]
impl StorageService for MemoryStorage {
    async fn upload_chunk(
        &self,
        request: Request<Streaming<pb::UploadChunkRequest>>,
    ) -> Result<Response<pb::UploadChunkResponse>, Status> {
        let mut stream = request.into_inner();
        let mut size = 0u64;
        while let Some(message) = stream.message().await? {
            if let Some(pb::upload_chunk_request::Kind::Data(d)) = message.kind {
                size += d.len() as u64;
            }
        }
        Ok(Response::new(pb::UploadChunkResponse { size, crc32c: 0 }))
    }

    type DownloadChunkStream = DownloadStream;

    async fn download_chunk(
        &self,
        _request: Request<pb::DownloadChunkRequest>,
    ) -> Result<Response<Self::DownloadChunkStream>, Status> {
        use pb::download_chunk_response::Kind;
        let messages = std::iter::once(Kind::Header(probe_header(&self.payload)))
            .chain(stream_pieces(self.payload.clone()).map(Kind::Data))
            .map(|kind| Ok(pb::DownloadChunkResponse { kind: Some(kind) }));
        Ok(Response::new(Box::pin(tokio_stream::iter(messages.collect::<Vec<_>>()))))
    }

    async fn delete_chunk(
        &self,
        _request: Request<pb::DeleteChunkRequest>,
    ) -> Result<Response<pb::DeleteChunkResponse>, Status> {
        Err(Status::unimplemented("not part of the probe"))
    }

    async fn health_check(
        &self,
        _request: Request<pb::HealthCheckRequest>,
    ) -> Result<Response<pb::HealthCheckResponse>, Status> {
        Ok(Response::new(pb::HealthCheckResponse::default()))
    }

    async fn replicate_chunk(
        &self,
        _request: Request<pb::ReplicateChunkRequest>,
    ) -> Result<Response<pb::ReplicateChunkResponse>, Status> {
        Err(Status::unimplemented("not part of the probe"))
    }

    async fn replicate_chunks(
        &self,
        _request: Request<pb::ReplicateChunksRequest>,
    ) -> Result<Response<pb::ReplicateChunksResponse>, Status> {
        Err(Status::unimplemented("not part of the probe"))
    }

    type DownloadChunksStream = DownloadStream;

    async fn download_chunks(
        &self,
        _request: Request<pb::DownloadChunksRequest>,
    ) -> Result<Response<Self::DownloadChunksStream>, Status> {
        Err(Status::unimplemented("not part of the probe"))
    }

    async fn set_failure_simulation(
        &self,
        _request: Request<pb::SetFailureSimulationRequest>,
    ) -> Result<Response<pb::SetFailureSimulationResponse>, Status> {
        Err(Status::unimplemented("not part of the probe"))
    }
}

/// A gRPC server on loopback serving [`MemoryStorage`], and a client
/// channel to it, both set up as the services set up theirs: mutual TLS,
/// or plaintext as `--insecure` services run.
async fn grpc_channel(scratch: &std::path::Path, payload: Bytes, plaintext: bool) -> anyhow::Result<Channel> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let mut server = tessera_proto::net::grpc_server();
    let client_tls = if plaintext {
        None
    } else {
        let generated = tessera_proto::tls::generate(scratch, &["server", "client"], &[])?;
        let server_tls = ClusterTls::load(&generated.dir, "server")?;
        server = server.tls_config(server_tls.server_config()).context("configuring the probe's server TLS")?;
        Some(ClusterTls::load(&generated.dir, "client")?)
    };
    let server = server
        .add_service(StorageServiceServer::new(MemoryStorage { payload }))
        .serve_with_incoming(tessera_proto::net::NoDelayIncoming::new(listener));
    tokio::spawn(server);
    tessera_proto::tls::install(client_tls.as_ref());
    Ok(tessera_proto::control_client::lazy_channel(&addr.to_string(), Duration::from_secs(30)))
}

/// An HTTP/1.1 server on loopback: a GET gets `payload`, a POST has its
/// body read and gets an empty answer.
async fn http_server(payload: Bytes) -> anyhow::Result<std::net::SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let _ = socket.set_nodelay(true);
            let payload = payload.clone();
            let service = hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                let payload = payload.clone();
                async move {
                    let answer = if request.method() == hyper::Method::GET {
                        payload
                    } else {
                        // A body that fails to arrive is the client's error to see.
                        let _ = request.into_body().collect().await;
                        Bytes::new()
                    };
                    Ok::<_, Infallible>(hyper::Response::new(Full::new(answer)))
                }
            });
            tokio::spawn(hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(socket), service));
        }
    });
    Ok(addr)
}

/// CPU milliseconds per request (both ends) of `calls` requests over
/// `concurrency` keep-alive connections.
async fn http_per_call(
    addr: std::net::SocketAddr,
    calls: usize,
    concurrency: usize,
    method: hyper::Method,
    body: Bytes,
) -> anyhow::Result<f64> {
    let mut senders = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        senders.push(Arc::new(tokio::sync::Mutex::new(crate::load::connect(&addr.to_string()).await?)));
    }
    let pick = Arc::new(AtomicUsize::new(0));
    per_call(calls, concurrency, move || {
        // Each in-flight call holds one connection; with as many
        // connections as calls in flight, none waits for another.
        let sender = senders[pick.fetch_add(1, Ordering::Relaxed) % senders.len()].clone();
        let (method, body) = (method.clone(), body.clone());
        async move {
            let mut sender = sender.lock().await;
            let request = hyper::Request::builder()
                .method(method)
                .uri("/probe")
                .header(hyper::header::HOST, "127.0.0.1")
                .body(Full::new(body))?;
            sender.ready().await?;
            let response = sender.send_request(request).await?;
            anyhow::ensure!(response.status().is_success(), "probe answered {}", response.status());
            response.into_body().collect().await?;
            Ok(())
        }
    })
    .await
}

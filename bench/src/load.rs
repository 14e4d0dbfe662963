//! HTTP load generator: `clients` workers, each with its own keep-alive
//! HTTP/1.1 connection (hyper's bare client connection: no pool, no URL
//! parsing per request; reqwest cost as much CPU per request as curl),
//! take request numbers from one counter until `count` are done. Request
//! `i` goes to line `i % lines` of the paths file; uploads send the same
//! body (read once) every time.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::net::TcpStream;

use crate::cpu::process_cpu_s;

#[derive(clap::Args)]
pub struct LoadArgs {
    /// Gateway address, e.g. 127.0.0.1:8080.
    #[arg(long)]
    addr: String,
    /// Bearer token sent with every request.
    #[arg(long)]
    token: String,
    /// Concurrent clients (one connection each).
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Requests in all.
    #[arg(long)]
    count: usize,
    /// GET or POST.
    #[arg(long, default_value = "GET")]
    method: String,
    /// File with one request path per line (used round-robin).
    #[arg(long)]
    paths: PathBuf,
    /// Body of every POST (an empty body without it).
    #[arg(long)]
    body: Option<PathBuf>,
}

/// What one request came to.
struct Outcome {
    latency_s: f64,
    failure: Option<String>,
}

/// A request (or its body) that takes longer failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// Failures quoted in the report (the count covers all of them).
const QUOTED_FAILURES: usize = 5;

pub async fn run(args: LoadArgs) -> anyhow::Result<String> {
    let paths: Vec<String> = tokio::fs::read_to_string(&args.paths)
        .await
        .with_context(|| format!("reading {}", args.paths.display()))?
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect();
    if paths.is_empty() {
        bail!("{} names no request path", args.paths.display());
    }
    let method: hyper::Method = args.method.parse().with_context(|| format!("method {:?}", args.method))?;
    let body = match &args.body {
        Some(path) => Bytes::from(tokio::fs::read(path).await.with_context(|| format!("reading {}", path.display()))?),
        None => Bytes::new(),
    };
    let shared = Arc::new(Shared {
        addr: args.addr.clone(),
        authorization: format!("Bearer {}", args.token),
        method,
        paths,
        body,
        count: args.count,
        next: AtomicUsize::new(0),
    });

    let cpu_before = process_cpu_s();
    let start = Instant::now();
    let mut workers = Vec::with_capacity(args.clients);
    for _ in 0..args.clients.max(1) {
        workers.push(tokio::spawn(worker(shared.clone())));
    }
    let mut outcomes = Vec::with_capacity(args.count);
    for w in workers {
        outcomes.extend(w.await??);
    }
    let elapsed = start.elapsed().as_secs_f64();
    let cpu = process_cpu_s() - cpu_before;

    let failures: Vec<&String> = outcomes.iter().filter_map(|o| o.failure.as_ref()).collect();
    Ok(json!({
        "requests": outcomes.len(),
        "elapsed_s": elapsed,
        "cpu_s": cpu,
        "failed": failures.len(),
        "failures": failures.iter().take(QUOTED_FAILURES).collect::<Vec<_>>(),
        "latencies_s": outcomes.iter().map(|o| o.latency_s).collect::<Vec<_>>(),
    })
    .to_string())
}

struct Shared {
    /// The gateway's host:port, connected to and sent as `Host`.
    addr: String,
    authorization: String,
    method: hyper::Method,
    paths: Vec<String>,
    body: Bytes,
    count: usize,
    next: AtomicUsize,
}

pub(crate) type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

pub(crate) async fn connect(addr: &str) -> anyhow::Result<Sender> {
    let stream = TcpStream::connect(addr).await.with_context(|| format!("connecting to {addr}"))?;
    stream.set_nodelay(true)?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    Ok(sender)
}

/// One request on `sender`, its whole response body read (a download is
/// only done when its last byte has arrived). `None` when it succeeded.
async fn request(shared: &Shared, sender: &mut Sender, path: &str) -> anyhow::Result<Option<String>> {
    let body = if shared.method == hyper::Method::POST { shared.body.clone() } else { Bytes::new() };
    let request = hyper::Request::builder()
        .method(shared.method.clone())
        .uri(path)
        .header(hyper::header::HOST, &shared.addr)
        .header(hyper::header::AUTHORIZATION, &shared.authorization)
        .header(hyper::header::CONTENT_TYPE, "application/octet-stream")
        .body(Full::new(body))?;
    sender.ready().await?;
    let response = tokio::time::timeout(REQUEST_TIMEOUT, sender.send_request(request)).await??;
    let status = response.status();
    let body = tokio::time::timeout(REQUEST_TIMEOUT, response.into_body().collect()).await??.to_bytes();
    Ok((!status.is_success())
        .then(|| format!("{status} {path}: {}", String::from_utf8_lossy(&body[..body.len().min(200)]))))
}

async fn worker(shared: Arc<Shared>) -> anyhow::Result<Vec<Outcome>> {
    let mut outcomes = Vec::new();
    let mut sender = connect(&shared.addr).await?;
    loop {
        let i = shared.next.fetch_add(1, Ordering::Relaxed);
        if i >= shared.count {
            return Ok(outcomes);
        }
        let path = &shared.paths[i % shared.paths.len()];
        let start = Instant::now();
        let failure = match request(&shared, &mut sender, path).await {
            Ok(failure) => failure,
            Err(e) => {
                // The connection may be gone: the next request gets a new one.
                if let Ok(fresh) = connect(&shared.addr).await {
                    sender = fresh;
                }
                Some(format!("{path}: {e}"))
            }
        };
        outcomes.push(Outcome { latency_s: start.elapsed().as_secs_f64(), failure });
    }
}

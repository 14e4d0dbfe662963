//! HTTP load generator: `clients` workers, each with its own keep-alive
//! connection, take request numbers from one counter until `count` are
//! done. Request `i` goes to line `i % lines` of the paths file; uploads
//! send the same body (read once) every time.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use serde_json::json;

use crate::cpu::process_cpu_s;

#[derive(clap::Args)]
pub struct LoadArgs {
    /// Gateway base URL, e.g. http://127.0.0.1:8080.
    #[arg(long)]
    base: String,
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
    let method: reqwest::Method = args.method.parse().with_context(|| format!("method {:?}", args.method))?;
    let body = match &args.body {
        Some(path) => Bytes::from(tokio::fs::read(path).await.with_context(|| format!("reading {}", path.display()))?),
        None => Bytes::new(),
    };
    let shared = Arc::new(Shared {
        base: args.base.trim_end_matches('/').to_owned(),
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
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(1)
            .tcp_nodelay(true)
            .timeout(Duration::from_secs(120))
            .build()?;
        workers.push(tokio::spawn(worker(shared.clone(), client)));
    }
    let mut outcomes = Vec::with_capacity(args.count);
    for w in workers {
        outcomes.extend(w.await?);
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
    base: String,
    authorization: String,
    method: reqwest::Method,
    paths: Vec<String>,
    body: Bytes,
    count: usize,
    next: AtomicUsize,
}

async fn worker(shared: Arc<Shared>, client: reqwest::Client) -> Vec<Outcome> {
    let mut outcomes = Vec::new();
    loop {
        let i = shared.next.fetch_add(1, Ordering::Relaxed);
        if i >= shared.count {
            return outcomes;
        }
        let path = &shared.paths[i % shared.paths.len()];
        let mut request = client
            .request(shared.method.clone(), format!("{}{path}", shared.base))
            .header("Authorization", &shared.authorization);
        if shared.method == reqwest::Method::POST {
            request = request.header("Content-Type", "application/octet-stream").body(shared.body.clone());
        }
        let start = Instant::now();
        let failure = match request.send().await {
            Ok(response) => {
                let status = response.status();
                // Read the whole body: a download is only done when its
                // last byte has arrived.
                match response.bytes().await {
                    Ok(_) if status.is_success() => None,
                    Ok(body) => {
                        Some(format!("{status} {path}: {}", String::from_utf8_lossy(&body[..body.len().min(200)])))
                    }
                    Err(e) => Some(format!("{status} {path}: body cut off: {e}")),
                }
            }
            Err(e) => Some(format!("{path}: {e}")),
        };
        outcomes.push(Outcome { latency_s: start.elapsed().as_secs_f64(), failure });
    }
}

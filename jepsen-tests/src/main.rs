//! `tessera-jepsen`: a Jepsen-style chaos test of Tessera.
//!
//! It starts 3 controllers, N data nodes and 1-2 gateways as separate
//! processes, each in its own network namespace (loopback when that is not
//! possible), runs concurrent clients over the HTTP API while a nemesis
//! injects faults, then heals everything, reads the final state, and checks
//! the whole history. Exit status 1 on any anomaly.
//!
//! ```text
//! tessera-jepsen --time-limit 180 --seed 7 --nemesis all --clients 6     # the short run of `make test`
//! tessera-jepsen --time-limit 1800 --nemesis all                         # the long run (docs/chaos.md)
//! tessera-jepsen --check target/jepsen/<run>/history.jsonl               # check a recorded history
//! ```

mod checker;
mod cluster;
mod history;
mod nemesis;
mod topology;
mod workload;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use serde_json::{json, Value};
use tokio::sync::Mutex;

use crate::cluster::{Cluster, Options};
use crate::history::{Kind, Recorder};
use crate::nemesis::{Fault, Nemesis};
use crate::workload::{sha256, slim, Workload};

#[derive(Debug, Parser)]
#[command(name = "tessera-jepsen", about = "Chaos test: faults during a concurrent workload, then a history check")]
struct Args {
    /// Seconds of workload under faults.
    #[arg(long, default_value_t = 180)]
    time_limit: u64,
    /// Seed of the workload and the fault schedule (default: from the clock).
    #[arg(long)]
    seed: Option<u64>,
    /// Faults, comma-separated: kill, pause, partition, slow, disk, membership, all, none.
    #[arg(long, default_value = "all", value_delimiter = ',')]
    nemesis: Vec<String>,
    /// Concurrent HTTP clients.
    #[arg(long, default_value_t = 6)]
    clients: usize,
    #[arg(long, default_value_t = 5)]
    datanodes: usize,
    #[arg(long, default_value_t = 2)]
    gateways: usize,
    /// Seconds between faults, and how long each is held.
    #[arg(long, default_value_t = 6)]
    interval: u64,
    #[arg(long, default_value_t = 6)]
    hold: u64,
    /// Run on loopback even where namespaces are possible.
    #[arg(long)]
    loopback: bool,
    /// Directory for the history, logs and cluster data (default target/jepsen/<seed>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Only check an existing history file.
    #[arg(long)]
    check: Option<PathBuf>,
}

fn parse_faults(names: &[String]) -> anyhow::Result<Vec<Fault>> {
    let mut faults = Vec::new();
    for name in names {
        match name.as_str() {
            "all" => faults.extend(nemesis::ALL),
            "none" | "" => {}
            other => faults.push(other.parse().map_err(anyhow::Error::msg)?),
        }
    }
    faults.dedup();
    Ok(faults)
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let valid = runtime.block_on(run(args))?;
    std::process::exit(if valid { 0 } else { 1 });
}

async fn run(args: Args) -> anyhow::Result<bool> {
    if let Some(path) = &args.check {
        let history = history::load(path)?;
        let report = checker::check(&history);
        print_report(&report, &history);
        return Ok(report.valid());
    }
    let seed = args.seed.unwrap_or_else(tessera_seed);
    let mut faults = parse_faults(&args.nemesis)?;
    let out =
        args.out.clone().unwrap_or_else(|| cluster::bin_dir().join("..").join("jepsen").join(format!("seed-{seed}")));
    println!(
        "tessera-jepsen: seed {seed}, {} s, clients {}, faults {faults:?}, out {}",
        args.time_limit,
        args.clients,
        out.display()
    );

    let started = Instant::now();
    let cluster = Cluster::start(
        out.join("cluster"),
        Options { datanodes: args.datanodes.max(4), gateways: args.gateways.clamp(1, 2), chunk_size: 1 << 20 },
        args.loopback,
    )
    .await
    .context("starting the cluster")?;
    if cluster.net.namespaces {
        println!("topology: every process in its own network namespace on a bridge (partitions are real)");
    } else {
        let skipped: Vec<Fault> = faults.iter().copied().filter(|f| f.needs_network()).collect();
        println!(
            "topology: loopback only (no root or no `ip netns`); skipped faults that need a network cut: {skipped:?}"
        );
        faults.retain(|f| !f.needs_network());
    }
    println!("network faults: partitions by moving links to a cut-off bridge; slow links by a token bucket (this kernel has no netem: no packet loss)");
    println!("cluster ready in {:.1} s", started.elapsed().as_secs_f64());

    let (recorder, writer) = history::start(&out.join("history.jsonl"))?;
    let stop = Arc::new(AtomicBool::new(false));
    let gateways = cluster.gateway_urls();
    let http = reqwest::Client::builder()
        .default_headers({
            let mut h = reqwest::header::HeaderMap::new();
            h.insert(reqwest::header::AUTHORIZATION, format!("Bearer {}", cluster.token).parse()?);
            h
        })
        .timeout(workload::REQUEST_TIMEOUT)
        .connect_timeout(Duration::from_secs(2))
        .build()?;
    let chunk_size = cluster.chunk_size() as usize;
    let cluster = Arc::new(Mutex::new(cluster));
    let workload = Arc::new(Workload {
        http: http.clone(),
        gateways: gateways.clone(),
        chunk_size,
        recorder: recorder.clone(),
        known: Arc::new(StdMutex::new(Vec::new())),
        stop: stop.clone(),
    });
    let clients: Vec<_> = (0..args.clients.max(1)).map(|i| tokio::spawn(workload.clone().client(i, seed))).collect();
    let nemesis = Nemesis {
        cluster: cluster.clone(),
        faults,
        recorder: recorder.clone(),
        stop: stop.clone(),
        interval: Duration::from_secs(args.interval),
        hold: Duration::from_secs(args.hold),
    };
    let nemesis = tokio::spawn(nemesis.run(seed));

    let deadline = Instant::now() + Duration::from_secs(args.time_limit);
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_secs(1)).await;
        record_crashes(&cluster, &recorder).await;
        let elapsed = args.time_limit - deadline.saturating_duration_since(Instant::now()).as_secs();
        if elapsed.is_multiple_of(30) {
            println!("  {elapsed} s of {} s", args.time_limit);
        }
    }
    stop.store(true, Ordering::Relaxed);
    let _ = nemesis.await;
    for c in clients {
        let _ = c.await;
    }

    println!("healing: every process up, links restored, waiting for full replication");
    record_crashes(&cluster, &recorder).await;
    {
        let mut guard = cluster.lock().await;
        let c = &mut *guard;
        c.net.heal()?;
        for p in c.procs_mut() {
            if p.is_paused() {
                p.resume();
            }
            if !p.is_started() {
                p.start()?;
            }
        }
    }
    let healed = wait_healed(&cluster, Duration::from_secs(300)).await;
    if !healed {
        println!("warning: the cluster did not report full replication within 300 s (the final check will tell)");
    }
    final_reads(&cluster, &http, &gateways, &recorder).await;
    drop(recorder);
    drop(workload);
    let history = writer.await??;
    let report = checker::check(&history);
    print_report(&report, &history);
    println!("history: {}", out.join("history.jsonl").display());
    cluster.lock().await.shutdown();
    if report.valid() {
        let _ = std::fs::remove_dir_all(out.join("cluster").join("data"));
    }
    Ok(report.valid())
}

fn tessera_seed() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(1)
}

/// Records every service that exited on its own since the last look (a
/// `crashed` entry, which the checker reports as an anomaly).
async fn record_crashes(cluster: &Arc<Mutex<Cluster>>, recorder: &Recorder) {
    let crashed = cluster.lock().await.reap_crashed();
    for crash in crashed {
        println!("  a service exited on its own: {crash}");
        recorder.record("supervisor", Kind::Info, "crashed", crash).await;
    }
}

/// Waits until every chunk is at RF, no node is suspect or dead and no copy
/// is running; says every 30 s what it still waits for.
async fn wait_healed(cluster: &Arc<Mutex<Cluster>>, timeout: Duration) -> bool {
    let started = Instant::now();
    let mut next_report = started + Duration::from_secs(30);
    let mut waiting_for = String::from("no answer from /admin/summary");
    while started.elapsed() < timeout {
        let summary = cluster.lock().await.admin_json("/admin/summary").await;
        if let Some(s) = summary {
            let chunks = &s["chunks"];
            let unhealthy = s["nodes"].as_object().map_or(0, |n| {
                n.iter()
                    .filter(|(k, _)| k.as_str() == "suspect" || k.as_str() == "dead")
                    .map(|(_, v)| v.as_u64().unwrap_or(0))
                    .sum::<u64>()
            });
            if chunks["under_replicated"] == 0
                && chunks["lost"] == 0
                && unhealthy == 0
                && s["rebalances"]["running"] == 0
            {
                return true;
            }
            waiting_for = format!(
                "under-replicated {}, lost {}, suspect/dead nodes {unhealthy}, copies running {}",
                chunks["under_replicated"], chunks["lost"], s["rebalances"]["running"]
            );
        }
        if Instant::now() >= next_report {
            println!("  healing for {} s: {waiting_for}", started.elapsed().as_secs());
            next_report += Duration::from_secs(30);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    println!("  not healed after {} s: {waiting_for}", timeout.as_secs());
    false
}

/// The end state, as history entries: every listed file, a read of each
/// (and of every acknowledged upload), and the replication check against
/// the disks.
async fn final_reads(cluster: &Arc<Mutex<Cluster>>, http: &reqwest::Client, gateways: &[String], recorder: &Recorder) {
    let gateway = gateways[0].clone();
    recorder.record("final", Kind::Invoke, "final-list", json!({})).await;
    let mut files: Vec<Value> = Vec::new();
    let mut cursor: Option<String> = None;
    let mut failed = None;
    for _ in 0..1000 {
        let mut req = http.get(format!("{gateway}/api/files")).query(&[("limit", "1000")]);
        if let Some(c) = &cursor {
            req = req.query(&[("cursor", c)]);
        }
        match req.send().await {
            Ok(r) if r.status().is_success() => {
                let body: Value = r.json().await.unwrap_or(Value::Null);
                files.extend(slim(&body));
                cursor = body["next_cursor"].as_str().map(str::to_string);
                if cursor.is_none() {
                    break;
                }
            }
            other => {
                failed = Some(format!("{other:?}"));
                break;
            }
        }
    }
    match failed {
        Some(e) => recorder.record("final", Kind::Fail, "final-list", json!({ "error": e })).await,
        None => recorder.record("final", Kind::Ok, "final-list", json!({ "files": files })).await,
    }
    // Eight readers, each its own history process (one operation at a time each).
    const READERS: usize = 8;
    let per = files.len().div_ceil(READERS).max(1);
    let readers = files.chunks(per).enumerate().map(|(w, part)| {
        let process = format!("final-{w}");
        let gateway = gateway.clone();
        async move {
            for f in part {
                let id = f["id"].as_str().unwrap_or_default();
                recorder.record(&process, Kind::Invoke, "final-read", json!({ "file_id": id })).await;
                let result = http.get(format!("{gateway}/api/files/{id}/content")).send().await;
                let value = match result {
                    Ok(r) if r.status().is_success() => match r.bytes().await {
                        Ok(b) => (Kind::Ok, json!({ "found": true, "size": b.len(), "sha256": sha256(&b) })),
                        Err(e) => (Kind::Fail, json!({ "error": e.to_string() })),
                    },
                    Ok(r) if r.status().as_u16() == 404 => (Kind::Ok, json!({ "found": false })),
                    Ok(r) => (Kind::Fail, json!({ "status": r.status().as_u16() })),
                    Err(e) => (Kind::Fail, json!({ "error": e.to_string() })),
                };
                recorder.record(&process, value.0, "final-read", value.1).await;
            }
        }
    });
    futures::future::join_all(readers).await;

    // Replication after healing, and the metadata against the disks: given
    // the reads' time as well to finish repairs, then it must hold.
    wait_healed(cluster, Duration::from_secs(120)).await;
    recorder.record("final", Kind::Invoke, "check", json!({})).await;
    // A chunk file deleted behind the cluster's back late in the run is
    // noticed only by an inventory taken after its file's settle window:
    // the disks are compared until they agree and the dropped replica is
    // copied back, or until that has had time.
    let deadline = Instant::now() + Cluster::DISK_LOSS_NOTICED_WITHIN;
    let (summary, mismatches) = loop {
        let c = cluster.lock().await;
        let summary = c.admin_json("/admin/summary").await.unwrap_or(Value::Null);
        let mismatches = disk_mismatches(&c, http, &gateway, &files).await;
        drop(c);
        let replicated = summary["chunks"]["under_replicated"] == 0 && summary["chunks"]["lost"] == 0;
        if (mismatches.is_empty() && replicated) || Instant::now() >= deadline {
            break (summary, mismatches);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    let value = json!({
        "under_replicated": summary["chunks"]["under_replicated"],
        "lost": summary["chunks"]["lost"],
        "total_chunks": summary["chunks"]["total"],
        "disk_mismatches": mismatches,
    });
    recorder.record("final", if summary.is_null() { Kind::Fail } else { Kind::Ok }, "check", value).await;
}

/// Replicas the metadata names that the disks do not hold at their size.
async fn disk_mismatches(c: &Cluster, http: &reqwest::Client, gateway: &str, files: &[Value]) -> Vec<String> {
    let mut mismatches = Vec::new();
    for f in files {
        let id = f["id"].as_str().unwrap_or_default();
        let Ok(r) = http.get(format!("{gateway}/api/files/{id}")).send().await else { continue };
        let meta: Value = r.json().await.unwrap_or(Value::Null);
        for chunk in meta["chunks"].as_array().into_iter().flatten() {
            let index = chunk["index"].as_u64().unwrap_or(0);
            let size = chunk["size"].as_u64().unwrap_or(0);
            for node in chunk["replicas"].as_array().into_iter().flatten() {
                let node = node.as_str().unwrap_or_default();
                let on_disk = std::fs::metadata(c.chunk_path(node, id, index)).map(|m| m.len()).ok();
                if on_disk != Some(size) {
                    mismatches.push(format!("{node}/{id}/{index}: metadata says {size} bytes, disk has {on_disk:?}"));
                }
            }
        }
    }
    mismatches
}

fn print_report(report: &checker::Report, history: &[history::Entry]) {
    println!("\n{:<14} {:>8} {:>8} {:>8}", "operation", "ok", "fail", "info");
    let mut fs: Vec<&String> = report.ops.keys().map(|(f, _)| f).collect();
    fs.dedup();
    for f in fs {
        let get = |o: &str| report.ops.get(&(f.clone(), o.to_string())).copied().unwrap_or(0);
        println!("{:<14} {:>8} {:>8} {:>8}", f, get("ok"), get("fail"), get("info"));
    }
    let total: u64 = report.ops.values().sum();
    println!("{:<14} {:>8}", "operations", total);
    println!("\nfaults injected:");
    if report.faults.is_empty() {
        println!("  none");
    }
    for (f, n) in &report.faults {
        println!("  {f:<14} {n}");
    }
    println!("\nanomalies: {}", report.anomalies.len());
    for a in &report.anomalies {
        println!("  {}: {}", a.kind, a.detail);
        for line in &a.lines {
            if let Some(e) = history.get(*line) {
                println!("    line {line}: {}", serde_json::to_string(e).unwrap_or_default());
            }
        }
    }
    println!("{}", if report.valid() { "\nVALID: no anomaly" } else { "\nINVALID" });
}

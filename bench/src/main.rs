//! `tessera-bench`: the native half of `bench/bench.py`.
//!
//! - `http` drives the gateway with many keep-alive HTTP clients and prints
//!   every request's latency as JSON. A load generator shares the machine's
//!   two cores with the cluster it measures, so it has to be cheap: curl
//!   spent 0.13-0.16 ms of CPU per request, this one a fraction of that.
//! - `tls` measures a raw limit: one mutual-TLS stream over loopback with
//!   the cluster's kind of certificates and rustls settings, as MB/s and
//!   CPU seconds per GiB (both ends). Every byte between Tessera's services
//!   pays at least this.
//! - `rpc` measures the CPU a gRPC call over mutual TLS and an HTTP
//!   request cost on this machine (both ends, answered from memory): the
//!   floor under every small-file request.
//! - `wakeup` measures what handing work from one thread to another costs:
//!   two threads passing a byte back and forth, each asleep until the
//!   other answers.

mod cpu;
mod load;
mod rpc_probe;
mod tls_probe;
mod wakeup_probe;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "Tessera benchmark tools (used by bench/bench.py)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs requests against the gateway and prints a JSON report.
    Http(load::LoadArgs),
    /// Streams bytes through one mutual-TLS connection over loopback.
    Tls(tls_probe::TlsArgs),
    /// CPU per gRPC call (mutual TLS) and per HTTP request, both ends.
    Rpc(rpc_probe::RpcArgs),
    /// Wall time and CPU per round trip between two sleeping threads.
    Wakeup(wakeup_probe::WakeupArgs),
}

fn main() -> anyhow::Result<()> {
    let report = match Cli::parse().command {
        // The load generator runs on one thread: it shares the cores with
        // the cluster it measures, and a second worker only adds wake-ups
        // across threads to every request.
        Command::Http(args) => {
            tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(load::run(args))?
        }
        Command::Tls(args) => multi_thread()?.block_on(tls_probe::run(args))?,
        Command::Rpc(args) => multi_thread()?.block_on(rpc_probe::run(args))?,
        // Plain threads: a runtime's idle workers would only add to what it measures.
        Command::Wakeup(args) => wakeup_probe::run(args)?,
    };
    println!("{report}");
    Ok(())
}

fn multi_thread() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build()
}

//! Raw limit of handing work between threads on this machine: two threads
//! pass one byte back and forth over a socket pair, each blocking until the
//! other answers, so every round trip is two sleeps and two wake-ups, as
//! when a request moves between a gateway and a data node, or between a
//! tokio worker and the blocking pool. The threads are not pinned: the
//! scheduler places them as it places the cluster's. The report is wall
//! time and this process's CPU per round trip. `bench.py` records the
//! whole machine's CPU instead (from `/proc/stat`), as for its other
//! limits: on this virtual machine the two disagree (the process's own
//! accounting said 38-41 µs per round trip where the machine was busy
//! 21-24 µs), and the machine's is what the cluster's figures compare to.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Instant;

use anyhow::Context;
use serde_json::json;

use crate::cpu::process_cpu_s;

#[derive(clap::Args)]
pub struct WakeupArgs {
    /// Round trips to time.
    #[arg(long, default_value_t = 20_000)]
    round_trips: u32,
}

fn echo(mut peer: UnixStream, round_trips: u32) -> std::io::Result<()> {
    let mut byte = [0u8; 1];
    for _ in 0..round_trips {
        peer.read_exact(&mut byte)?;
        peer.write_all(&byte)?;
    }
    Ok(())
}

pub fn run(args: WakeupArgs) -> anyhow::Result<String> {
    anyhow::ensure!(args.round_trips > 0, "--round-trips must be at least 1");
    let (mut near, far) = UnixStream::pair().context("socket pair")?;
    let round_trips = args.round_trips;
    let echoer = std::thread::spawn(move || echo(far, round_trips));
    let mut byte = [7u8; 1];
    let cpu_before = process_cpu_s();
    let start = Instant::now();
    for _ in 0..round_trips {
        near.write_all(&byte).context("write to the echo thread")?;
        near.read_exact(&mut byte).context("read from the echo thread")?;
    }
    let wall_s = start.elapsed().as_secs_f64();
    let cpu_s = process_cpu_s() - cpu_before;
    echoer.join().map_err(|_| anyhow::anyhow!("the echo thread panicked"))?.context("echo thread")?;
    let per_round_trip_us = |seconds: f64| seconds * 1e6 / f64::from(round_trips);
    Ok(json!({
        "round_trips": round_trips,
        "wall_us_per_round_trip": per_round_trip_us(wall_s),
        "process_cpu_us_per_round_trip": per_round_trip_us(cpu_s),
    })
    .to_string())
}

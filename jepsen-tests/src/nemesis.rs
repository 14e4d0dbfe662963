//! The nemesis: a seeded schedule of faults, one at a time, each held for a
//! few seconds and then healed, recorded in the history as `nemesis` entries.

use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::json;
use tokio::sync::Mutex;

use crate::cluster::{Cluster, Role};
use crate::history::{Kind, Recorder};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// kill -9 and restart: controller leader or follower, data node, gateway.
    Kill,
    /// SIGSTOP, then SIGCONT.
    Pause,
    /// Isolate the leader, split the cluster, isolate a data node.
    Partition,
    /// A rate-limited link (no netem on this kernel: no loss).
    Slow,
    /// Flip bytes in a chunk file, delete one, or fill a data node's disk.
    Disk,
    /// Add a data node, or decommission one.
    Membership,
}

pub const ALL: [Fault; 6] = [Fault::Kill, Fault::Pause, Fault::Partition, Fault::Slow, Fault::Disk, Fault::Membership];

impl FromStr for Fault {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "kill" => Fault::Kill,
            "pause" => Fault::Pause,
            "partition" => Fault::Partition,
            "slow" => Fault::Slow,
            "disk" => Fault::Disk,
            "membership" => Fault::Membership,
            other => {
                return Err(format!("unknown nemesis {other:?} (kill, pause, partition, slow, disk, membership, all)"))
            }
        })
    }
}

impl Fault {
    pub fn needs_network(self) -> bool {
        matches!(self, Fault::Partition | Fault::Slow)
    }
}

pub struct Nemesis {
    pub cluster: Arc<Mutex<Cluster>>,
    pub faults: Vec<Fault>,
    pub recorder: Recorder,
    pub stop: Arc<AtomicBool>,
    /// Pause between two faults and how long each is held.
    pub interval: Duration,
    pub hold: Duration,
}

async fn sleep_unless_stopped(stop: &AtomicBool, d: Duration) {
    let step = Duration::from_millis(100);
    let mut left = d;
    while !left.is_zero() && !stop.load(Ordering::Relaxed) {
        let s = left.min(step);
        tokio::time::sleep(s).await;
        left -= s;
    }
}

impl Nemesis {
    /// Rounds of every selected fault, each round in a seeded order, until stopped.
    pub async fn run(self, seed: u64) {
        let mut rng = StdRng::seed_from_u64(seed ^ 0x004E_454D_4553_4953);
        while !self.stop.load(Ordering::Relaxed) && !self.faults.is_empty() {
            let mut order = self.faults.clone();
            order.shuffle(&mut rng);
            self.apply_round(order, &mut rng).await;
        }
    }

    async fn apply_round(&self, order: Vec<Fault>, rng: &mut StdRng) {
        for fault in order {
            sleep_unless_stopped(&self.stop, self.interval).await;
            if self.stop.load(Ordering::Relaxed) {
                return;
            }
            if let Err(e) = self.apply(fault, rng).await {
                self.recorder
                    .record(
                        "nemesis",
                        Kind::Info,
                        "error",
                        json!({ "fault": format!("{fault:?}"), "error": e.to_string() }),
                    )
                    .await;
            }
        }
    }

    async fn record(&self, f: &str, value: serde_json::Value) {
        self.recorder.record("nemesis", Kind::Info, f, value).await;
    }

    /// A process to hit: the leader, a follower, a data node or a gateway.
    async fn pick(&self, rng: &mut StdRng) -> (Role, usize) {
        let cluster = self.cluster.lock().await;
        let leader = cluster.leader().await;
        match rng.gen_range(0..4) {
            0 => (Role::Controller, leader.unwrap_or(0)),
            1 => {
                let followers: Vec<usize> = (0..cluster.controllers.len()).filter(|i| Some(*i) != leader).collect();
                (Role::Controller, *followers.choose(rng).unwrap_or(&0))
            }
            2 => (Role::Gateway, rng.gen_range(0..cluster.gateways.len())),
            _ => {
                let live: Vec<usize> =
                    (0..cluster.datanodes.len()).filter(|i| cluster.datanodes[*i].is_started()).collect();
                (Role::Datanode, *live.choose(rng).unwrap_or(&0))
            }
        }
    }

    async fn apply(&self, fault: Fault, rng: &mut StdRng) -> anyhow::Result<()> {
        match fault {
            Fault::Kill | Fault::Pause => {
                let (role, i) = self.pick(rng).await;
                let name = {
                    let mut cluster = self.cluster.lock().await;
                    let proc = proc_mut(&mut cluster, role, i);
                    if fault == Fault::Kill {
                        proc.kill();
                    } else {
                        proc.pause();
                    }
                    proc.name.clone()
                };
                let f = if fault == Fault::Kill { "kill" } else { "pause" };
                self.record(f, json!({ "target": name })).await;
                sleep_unless_stopped(&self.stop, self.hold).await;
                let mut cluster = self.cluster.lock().await;
                let proc = proc_mut(&mut cluster, role, i);
                if fault == Fault::Kill {
                    proc.start()?;
                    self.record("restart", json!({ "target": name })).await;
                } else {
                    proc.resume();
                    self.record("resume", json!({ "target": name })).await;
                }
            }
            Fault::Partition => {
                let cluster = self.cluster.lock().await;
                if !cluster.net.namespaces {
                    return Ok(());
                }
                let leader = cluster.leader().await.unwrap_or(0);
                let (kind, cut): (&str, Vec<&crate::topology::Host>) = match rng.gen_range(0..3) {
                    0 => ("isolate-leader", vec![&cluster.controllers[leader].host]),
                    1 => {
                        // The leader and a data node on the minority side.
                        let dn = rng.gen_range(0..cluster.datanodes.len());
                        ("minority-with-leader", vec![&cluster.controllers[leader].host, &cluster.datanodes[dn].host])
                    }
                    _ => {
                        let dn = rng.gen_range(0..cluster.datanodes.len());
                        ("isolate-datanode", vec![&cluster.datanodes[dn].host])
                    }
                };
                let names: Vec<String> = cut.iter().map(|h| h.name.clone()).collect();
                cluster.net.partition(&cut)?;
                drop(cluster);
                self.record("partition", json!({ "kind": kind, "cut_off": names })).await;
                sleep_unless_stopped(&self.stop, self.hold).await;
                self.cluster.lock().await.net.heal()?;
                self.record("heal", json!({})).await;
            }
            Fault::Slow => {
                let cluster = self.cluster.lock().await;
                if !cluster.net.namespaces {
                    return Ok(());
                }
                let host = if rng.gen_bool(0.5) {
                    cluster.controllers[rng.gen_range(0..cluster.controllers.len())].host.clone()
                } else {
                    cluster.datanodes[rng.gen_range(0..cluster.datanodes.len())].host.clone()
                };
                cluster.net.slow(&host)?;
                drop(cluster);
                self.record("slow", json!({ "target": host.name })).await;
                sleep_unless_stopped(&self.stop, self.hold).await;
                self.cluster.lock().await.net.heal()?;
                self.record("heal", json!({})).await;
            }
            Fault::Disk if rng.gen_bool(0.3) && self.cluster.lock().await.has_small_disk() => {
                let filler = self.cluster.lock().await.fill_small_disk()?;
                self.record("disk", json!({ "action": "fill", "node": Cluster::SMALL_DISK_NODE })).await;
                sleep_unless_stopped(&self.stop, self.hold).await;
                std::fs::remove_file(&filler)?;
                self.record("disk", json!({ "action": "unfill", "node": Cluster::SMALL_DISK_NODE })).await;
            }
            Fault::Disk => {
                let cluster = self.cluster.lock().await;
                let nodes: Vec<String> = cluster.datanodes.iter().map(|d| d.name.clone()).collect();
                let node = nodes.choose(rng).cloned().unwrap_or_default();
                let files = cluster.chunk_files(&node);
                let Some(file) = files.choose(rng).cloned() else { return Ok(()) };
                let action = if rng.gen_bool(0.5) { "flip-bytes" } else { "delete-chunk" };
                if action == "flip-bytes" {
                    let mut data = std::fs::read(&file)?;
                    if data.is_empty() {
                        return Ok(());
                    }
                    let at = rng.gen_range(0..data.len());
                    data[at] ^= 0xFF;
                    std::fs::write(&file, data)?;
                } else {
                    std::fs::remove_file(&file)?;
                }
                drop(cluster);
                self.record("disk", json!({ "action": action, "node": node, "file": file.display().to_string() }))
                    .await;
            }
            Fault::Membership => {
                let mut cluster = self.cluster.lock().await;
                let serving: Vec<String> = cluster
                    .datanodes
                    .iter()
                    .filter(|d| !cluster.decommissioned.contains(&d.name))
                    .map(|d| d.name.clone())
                    .collect();
                if serving.len() > 5 && rng.gen_bool(0.5) || serving.len() > 6 {
                    // Decommission one (never below RF + 2, so faults elsewhere still leave room).
                    let node = serving.choose(rng).cloned().unwrap_or_default();
                    cluster.decommissioned.insert(node.clone());
                    let mut done = false;
                    for url in cluster.gateway_urls() {
                        if let Ok(r) = cluster.http.delete(format!("{url}/admin/nodes/{node}")).send().await {
                            done = r.status().is_success();
                            break;
                        }
                    }
                    drop(cluster);
                    self.record("decommission", json!({ "node": node, "accepted": done })).await;
                } else {
                    let i = cluster.new_datanode()?;
                    cluster.datanodes[i].start()?;
                    let node = cluster.datanodes[i].name.clone();
                    drop(cluster);
                    self.record("add-node", json!({ "node": node })).await;
                }
            }
        }
        Ok(())
    }
}

fn proc_mut(cluster: &mut Cluster, role: Role, i: usize) -> &mut crate::cluster::Proc {
    match role {
        Role::Controller => &mut cluster.controllers[i],
        Role::Gateway => &mut cluster.gateways[i],
        Role::Datanode => &mut cluster.datanodes[i],
    }
}

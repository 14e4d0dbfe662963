//! Controller configuration: every flag can also be given as an environment
//! variable (and so in a `--config` file of `TESSERA_*=value` lines).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "tessera-controller",
    version,
    about = "Tessera controller: Raft-replicated metadata, placement and node health"
)]
pub struct Config {
    /// File of `TESSERA_*=value` lines read before the environment (see `tessera_proto::config`).
    #[arg(long, env = "TESSERA_CONFIG")]
    pub config: Option<PathBuf>,

    #[command(flatten)]
    pub tls: tessera_proto::tls::TlsArgs,

    /// This controller's Raft id (a positive integer, unique in the cluster).
    #[arg(long, env = "TESSERA_CONTROLLER_ID")]
    pub id: u64,

    /// Address the gRPC server (MasterService and Raft transport) listens on.
    #[arg(long, env = "TESSERA_CONTROLLER_LISTEN", default_value = "127.0.0.1:7001")]
    pub listen: String,

    /// Initial controller set, `id=host:port,...`, identical on every
    /// controller. A pristine controller uses it to form the cluster.
    #[arg(long, env = "TESSERA_PEERS", value_delimiter = ',')]
    pub peers: Vec<String>,

    /// Directory of this controller's RocksDB (Raft log and snapshots).
    #[arg(long, env = "TESSERA_CONTROLLER_DATA_DIR")]
    pub data_dir: Option<PathBuf>,

    /// Replicas per chunk.
    #[arg(long, env = "TESSERA_REPLICATION", default_value_t = 3)]
    pub replication: u32,

    /// Chunk size in bytes for new files.
    #[arg(long, env = "TESSERA_CHUNK_SIZE", default_value_t = 4 * 1024 * 1024)]
    pub chunk_size: u64,

    /// Interval at which data nodes heartbeat, in milliseconds.
    #[arg(long, env = "TESSERA_HEARTBEAT_INTERVAL_MS", default_value_t = 5000)]
    pub heartbeat_interval_ms: u64,

    /// A data node silent for this long is suspect (default: 2/3 of --dead-after-ms).
    #[arg(long, env = "TESSERA_SUSPECT_AFTER_MS")]
    pub suspect_after_ms: Option<u64>,

    /// A data node silent for this long is dead.
    #[arg(long, env = "TESSERA_DEAD_AFTER_MS", default_value_t = 15000)]
    pub dead_after_ms: u64,

    /// Raft leader heartbeat interval in milliseconds. Several heartbeats
    /// fit in the smallest election timeout, so a delayed one or two do not
    /// depose a healthy leader.
    #[arg(long, env = "TESSERA_RAFT_HEARTBEAT_MS", default_value_t = 50)]
    pub raft_heartbeat_ms: u64,

    /// Raft election timeout range in milliseconds: a follower that hears no
    /// leader for a random time in this range starts an election. A dead
    /// leader is replaced in about two to three of these (the voters first
    /// let the old leader's lease expire), measured at ~1.2 s median with
    /// 200-400 ms on loopback; 4 heartbeats fit in the minimum.
    #[arg(long, env = "TESSERA_ELECTION_TIMEOUT_MIN_MS", default_value_t = 200)]
    pub election_timeout_min_ms: u64,
    #[arg(long, env = "TESSERA_ELECTION_TIMEOUT_MAX_MS", default_value_t = 400)]
    pub election_timeout_max_ms: u64,

    /// How long after a heartbeat round to a quorum the leader answers
    /// linearizable reads without another round (milliseconds; 0: a round
    /// for every batch of reads). Followers refuse votes for
    /// --election-timeout-max-ms after a heartbeat, so no other leader can
    /// appear sooner; at most half of that is allowed, the rest is margin
    /// for clocks that run at different rates. Default: half of it.
    #[arg(long, env = "TESSERA_READ_LEASE_MS")]
    pub read_lease_ms: Option<u64>,

    /// Most replica copies (repair, rebalance, drain) in flight per target
    /// node. A copy spends most of its time waiting (a log entry, a cold
    /// read on the source, an fsync on the target), so healing gains from
    /// many at once (measured, 4 MiB chunks: 16 → 163-183 MB/s of copying,
    /// 48 → 190-267); the data node itself buffers at most
    /// `--write-buffer-mib` of incoming chunks and makes the rest wait.
    /// Lower it to leave more of slow disks to clients while a node heals.
    #[arg(long, env = "TESSERA_REPAIR_COPIES_PER_NODE", default_value_t = 48)]
    pub repair_copies_per_node: usize,

    /// Rebalance on its own when the utilisation of the fullest and the
    /// emptiest healthy node differ by more than this many percentage points.
    #[arg(long, env = "TESSERA_REBALANCE_THRESHOLD", default_value_t = 10.0)]
    pub rebalance_threshold_points: f64,

    /// An upload not committed this long after it started is abandoned and
    /// its chunks collected (milliseconds).
    #[arg(long, env = "TESSERA_UPLOAD_GRACE_MS", default_value_t = 3_600_000)]
    pub upload_grace_ms: u64,

    /// Take a snapshot after this many log entries since the last one.
    #[arg(long, env = "TESSERA_SNAPSHOT_EVERY", default_value_t = 5000)]
    pub snapshot_every: u64,
}

impl Config {
    pub fn data_dir(&self) -> PathBuf {
        self.data_dir.clone().unwrap_or_else(|| PathBuf::from(format!("data/controller-{}", self.id)))
    }

    pub fn heartbeat_interval(&self) -> Duration {
        Duration::from_millis(self.heartbeat_interval_ms)
    }

    pub fn read_lease(&self) -> Duration {
        Duration::from_millis(self.read_lease_ms.unwrap_or(self.election_timeout_max_ms / 2))
    }

    pub fn dead_after(&self) -> Duration {
        Duration::from_millis(self.dead_after_ms)
    }

    pub fn suspect_after(&self) -> Duration {
        Duration::from_millis(self.suspect_after_ms.unwrap_or(self.dead_after_ms * 2 / 3))
    }

    /// Parses `--peers` into id → address.
    pub fn peer_map(&self) -> Result<BTreeMap<u64, String>, String> {
        let mut peers = BTreeMap::new();
        for peer in self.peers.iter().filter(|p| !p.is_empty()) {
            let (id, addr) =
                peer.split_once('=').ok_or_else(|| format!("peer {peer:?} is not of the form id=host:port"))?;
            let id: u64 = id.trim().parse().map_err(|_| format!("peer id {id:?} is not a number"))?;
            peers.insert(id, addr.trim().to_string());
        }
        Ok(peers)
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.replication == 0 {
            return Err("--replication must be at least 1".into());
        }
        if self.chunk_size == 0 || self.chunk_size > tessera_proto::limits::MAX_CHUNK_SIZE {
            return Err(format!("--chunk-size must be between 1 and {}", tessera_proto::limits::MAX_CHUNK_SIZE));
        }
        if self.election_timeout_min_ms <= self.raft_heartbeat_ms
            || self.election_timeout_max_ms <= self.election_timeout_min_ms
        {
            return Err("need raft heartbeat < election timeout min < election timeout max".into());
        }
        if self.read_lease_ms.is_some_and(|lease| lease.saturating_mul(2) > self.election_timeout_max_ms) {
            return Err("--read-lease-ms may be at most half of --election-timeout-max-ms".into());
        }
        let peers = self.peer_map()?;
        if !peers.is_empty() && !peers.contains_key(&self.id) {
            return Err(format!("--peers does not contain this controller's id {}", self.id));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Config {
        let mut argv = vec!["tessera-controller", "--id", "1"];
        argv.extend_from_slice(args);
        Config::try_parse_from(argv).expect("flags parse")
    }

    #[test]
    fn the_read_lease_defaults_to_half_the_longest_election_timeout() {
        assert_eq!(parse(&[]).read_lease(), Duration::from_millis(200));
        let config = parse(&["--election-timeout-min-ms", "500", "--election-timeout-max-ms", "1000"]);
        assert_eq!(config.read_lease(), Duration::from_millis(500));
        assert_eq!(parse(&["--read-lease-ms", "0"]).read_lease(), Duration::ZERO);
    }

    #[test]
    fn a_read_lease_longer_than_half_the_election_timeout_is_refused() {
        assert!(parse(&["--read-lease-ms", "200"]).validate().is_ok());
        let err = parse(&["--read-lease-ms", "201"]).validate().expect_err("too long");
        assert!(err.contains("--read-lease-ms"), "{err}");
        assert!(parse(&["--read-lease-ms", &u64::MAX.to_string()]).validate().is_err());
    }
}

//! The composition root: one [`Controller`] holds the Raft node, the shared
//! applied state, the leader's soft state and the configuration, and offers
//! the two primitives every operation is built from: [`Controller::propose`]
//! (a logged change) and [`Controller::read_current`] (a linearizable read).

use std::collections::BTreeMap;
use std::collections::HashSet;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::error::{CheckIsLeaderError, ClientWriteError, RaftError};
use openraft::{BasicNode, ServerState};

use tessera_proto::control_client::ChannelPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::config::Config;
use crate::error::ControllerError;
use crate::events::{Command, Event};
use crate::health::Liveness;
use crate::raft::proposals::{Linger, ProposalBatcher};
use crate::raft::read_barrier::ReadBarrier;
use crate::raft::read_lease::{LeaderView, LeaseKeeper};
use crate::raft::state_machine::SharedState;
use crate::raft::{ApplyResult, NodeId, Raft};

/// Clients' proposals: one batch commits while the next gathers, so a log
/// entry carries everything proposed meanwhile (small uploads: controllers'
/// CPU per upload 0.73-0.90 -> 0.54-0.72 ms with one, against two;
/// docs/performance.md, eleventh round).
const REQUEST_BATCHES_IN_FLIGHT: usize = 1;
/// The controller's own proposals: repair copies each wait for their log
/// entry, and healing was 13 % slower with one batch in flight than with
/// two (docs/performance.md, tenth round).
const UPKEEP_BATCHES_IN_FLIGHT: usize = 2;
/// Clients' proposals wait up to 3 ms for 8 in an entry once entries carry
/// 3 or more: with 16 clients uploading small files, entries carried
/// ~3.5 uploads without and ~5 with it, for ~0.1 ms (15 %) less
/// controller CPU per upload (docs/performance.md, item 48).
const REQUEST_LINGER: Linger = Linger { after_batch: 3, target: 8, max_wait: Duration::from_millis(3) };
/// The controller's own proposals wait up to 5 ms for 64 in an entry once
/// entries carry 4 or more: a heal proposes three events per copy, and
/// with a hundred copies in flight entries carried only 3-6 of them, each
/// entry costing the three controllers about the same CPU whatever it
/// carries. With it, heals after a metadata load and leader changes took
/// 346-670 entries instead of 919-1,513 (8-16 events each), the
/// controllers 0.5-1.5 CPU s less, and healing was faster in three pairs
/// of three (docs/performance.md, item 72). The wait holds a copy's chunk,
/// not its target's slot: a copy's start is logged while the target
/// copies, and the slot frees when the target answers.
const UPKEEP_LINGER: Linger = Linger { after_batch: 4, target: 64, max_wait: Duration::from_millis(5) };

pub struct Controller {
    pub id: NodeId,
    pub config: Config,
    pub raft: Raft,
    pub state: SharedState,
    pub liveness: Liveness,
    /// A rebalance pass was asked for (operator, or a node joined).
    pub rebalance_requested: AtomicBool,
    /// Replica copies under way (file, chunk, target node): a copy that has
    /// landed on the target but is not yet in the log is not garbage.
    pub copies_in_flight: Mutex<HashSet<(Uuid, u32, String)>>,
    /// A node's health changed: the repair worker rescans at once rather
    /// than at its next tick.
    pub repair_wanted: tokio::sync::Notify,
    /// One leadership confirmation per batch of concurrent reads.
    reads: ReadBarrier,
    /// One log entry per batch of concurrent proposals: clients' requests
    /// (uploads, deletes, accounts) in one stream, the controller's own
    /// upkeep (repair, node registration and health, garbage) in another.
    request_proposals: ProposalBatcher,
    upkeep_proposals: ProposalBatcher,
    /// Channels to the data nodes (repair copies), one per address.
    pub datanode_channels: ChannelPool,
}

impl Controller {
    /// Must be called inside the tokio runtime (it starts the read barrier
    /// and the proposal batcher).
    pub fn new(config: Config, raft: Raft, state: SharedState) -> Arc<Self> {
        let reads = ReadBarrier::spawn({
            let raft = raft.clone();
            let lease = Arc::new(Mutex::new(LeaseKeeper::new(config.read_lease())));
            move || confirm_leadership(raft.clone(), lease.clone())
        });
        let append = {
            let raft = raft.clone();
            move |entry| append_entry(raft.clone(), entry)
        };
        let request_proposals = ProposalBatcher::spawn(REQUEST_BATCHES_IN_FLIGHT, Some(REQUEST_LINGER), append.clone());
        let upkeep_proposals = ProposalBatcher::spawn(UPKEEP_BATCHES_IN_FLIGHT, Some(UPKEEP_LINGER), append);
        Arc::new(Self {
            id: config.id,
            config,
            raft,
            state,
            liveness: Liveness::default(),
            rebalance_requested: AtomicBool::new(false),
            copies_in_flight: Mutex::new(HashSet::new()),
            repair_wanted: tokio::sync::Notify::new(),
            reads,
            request_proposals,
            upkeep_proposals,
            datanode_channels: ChannelPool::new(std::time::Duration::from_secs(60)),
        })
    }

    /// Forms the cluster from `--peers` if this controller has never been
    /// part of one. Every pristine controller may do this with the same peer
    /// set (openraft allows it); a controller with state ignores it.
    pub async fn bootstrap(&self, peers: BTreeMap<u64, String>) -> Result<(), ControllerError> {
        if peers.is_empty() {
            return Ok(());
        }
        let initialized = self.raft.is_initialized().await.map_err(|e| ControllerError::Raft(e.to_string()))?;
        if initialized {
            return Ok(());
        }
        let members: BTreeMap<NodeId, BasicNode> =
            peers.into_iter().map(|(id, addr)| (id, BasicNode::new(addr))).collect();
        match self.raft.initialize(members).await {
            Ok(()) => {
                tracing::info!("cluster initialised from --peers");
                Ok(())
            }
            // Someone else initialised first: that is the goal anyway.
            Err(RaftError::APIError(openraft::error::InitializeError::NotAllowed(_))) => Ok(()),
            Err(e) => Err(ControllerError::Raft(e.to_string())),
        }
    }

    /// For the leader-only workers: waits `period`, then until this
    /// controller leads; false once shutdown is requested.
    pub async fn next_leader_tick(&self, period: std::time::Duration, shutdown: &CancellationToken) -> bool {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return false,
                _ = tokio::time::sleep(period) => {}
            }
            if self.is_leader() {
                return true;
            }
        }
    }

    pub fn is_leader(&self) -> bool {
        let metrics = self.raft.metrics();
        let m = metrics.borrow();
        m.state == ServerState::Leader && m.current_leader == Some(self.id)
    }

    /// The address of the current leader, as far as this controller knows.
    pub fn leader_addr(&self) -> Option<String> {
        let metrics = self.raft.metrics();
        let m = metrics.borrow();
        let leader = m.current_leader?;
        m.membership_config.membership().get_node(&leader).map(|n| n.addr.clone())
    }

    /// Fails fast with a redirect when this controller is not the leader.
    pub fn ensure_leader(&self) -> Result<(), ControllerError> {
        if self.is_leader() {
            Ok(())
        } else {
            Err(ControllerError::NotLeader { leader_addr: self.leader_addr() })
        }
    }

    /// Appends one event of the controller's own upkeep to the Raft log and
    /// waits until it is committed and applied here; returns the state
    /// machine's verdict on it. Concurrent proposals share a log entry (see
    /// [`ProposalBatcher`]).
    pub async fn propose(&self, event: Event) -> Result<(), ControllerError> {
        self.upkeep_proposals.propose(Command { event, request_id: None }).await
    }

    /// [`Controller::propose`] on behalf of a client request, with its id if
    /// it has one: applied at most once however often the request is retried.
    pub async fn propose_request(&self, event: Event, request_id: Option<Uuid>) -> Result<(), ControllerError> {
        self.request_proposals.propose(Command { event, request_id }).await
    }

    /// Adds a controller: first as a learner that catches up (blocking until
    /// it has the log), then as a voter.
    pub async fn add_controller(&self, id: NodeId, addr: String) -> Result<(), ControllerError> {
        self.ensure_leader()?;
        if !addr.contains(':') {
            return Err(crate::error::MetaError::Invalid(format!("bad controller address {addr:?}")).into());
        }
        self.raft.add_learner(id, BasicNode::new(addr), true).await.map_err(write_error)?;
        let mut voters = self.voters();
        voters.insert(id);
        self.raft.change_membership(voters, false).await.map_err(write_error)?;
        Ok(())
    }

    /// Removes a controller from the voters and the cluster.
    pub async fn remove_controller(&self, id: NodeId) -> Result<(), ControllerError> {
        self.ensure_leader()?;
        let mut voters = self.voters();
        if !voters.remove(&id) {
            return Err(crate::error::MetaError::ControllerNotFound(id).into());
        }
        if voters.is_empty() {
            return Err(crate::error::MetaError::Invalid("cannot remove the last controller".into()).into());
        }
        self.raft.change_membership(voters, false).await.map_err(write_error)?;
        Ok(())
    }

    fn voters(&self) -> std::collections::BTreeSet<NodeId> {
        self.raft.metrics().borrow().membership_config.membership().voter_ids().collect()
    }

    /// Waits until this controller's state reflects every write committed
    /// before the call (read index): a deposed leader cannot serve a stale
    /// view, it answers "not leader" instead. Concurrent reads share one
    /// confirmation (see [`ReadBarrier`]), and a leader holding a lease
    /// confirms without asking the followers (see [`LeaseKeeper`]).
    pub async fn read_current(&self) -> Result<(), ControllerError> {
        self.reads.wait().await
    }
}

async fn append_entry(raft: Raft, entry: Command) -> Result<Vec<ApplyResult>, ControllerError> {
    raft.client_write(entry).await.map(|response| response.data).map_err(write_error)
}

/// One confirmation for a batch of reads that have all arrived: under a
/// lease, the Raft core's word that this controller still leads in the same
/// term; otherwise a heartbeat round to a quorum, which may grant a lease.
async fn confirm_leadership(raft: Raft, lease: Arc<Mutex<LeaseKeeper>>) -> Result<(), ControllerError> {
    let keeper = || lease.lock().unwrap_or_else(|p| p.into_inner());
    let before = leader_view(&raft).await?;
    // The clock is read after the core answered: the lease must still hold
    // when the core vouched for the leadership.
    if keeper().covers(&before, tokio::time::Instant::now()) {
        return Ok(());
    }
    keeper().revoke();
    let started = tokio::time::Instant::now();
    match raft.ensure_linearizable().await {
        Ok(_) => {
            let after = leader_view(&raft).await?;
            keeper().round_succeeded(&before, &after, started);
            Ok(())
        }
        Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f))) => {
            Err(ControllerError::NotLeader { leader_addr: f.leader_node.map(|n| n.addr) })
        }
        Err(e) => Err(ControllerError::Raft(e.to_string())),
    }
}

async fn leader_view(raft: &Raft) -> Result<LeaderView, ControllerError> {
    raft.with_raft_state(LeaderView::of).await.map_err(|e| ControllerError::Raft(e.to_string()))
}

fn write_error(e: RaftError<NodeId, ClientWriteError<NodeId, BasicNode>>) -> ControllerError {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => {
            ControllerError::NotLeader { leader_addr: f.leader_node.map(|n| n.addr) }
        }
        e => ControllerError::Raft(e.to_string()),
    }
}

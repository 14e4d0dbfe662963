//! Leader leases for linearizable reads. A full confirmation (a heartbeat
//! round to a quorum, [`openraft::Raft::ensure_linearizable`]) costs every
//! follower a gRPC call; under a steady read load that is most of what a
//! metadata read costs the cluster. A successful round that started at `t`
//! also proves that no other leader can be elected before `t +
//! election_timeout_max`: every follower that answered it refuses votes for
//! that long after a heartbeat (openraft's follower lease, see its
//! `docs::protocol::leader_lease`), and a quorum needs one of them. So for a
//! shorter while (`--read-lease-ms`), the leader may confirm a read by
//! asking only its own Raft core whether it still holds the same vote.
//!
//! Why the core and not the metrics: the leader itself may grant a vote to a
//! candidate (openraft does not make the leader refuse), and the candidate
//! may win with the two of them. Granting changes the leader's vote in its
//! core at once, so a check answered by the core after a read arrived shows
//! it; the metrics are published later. Any leader elected after that check
//! takes its writes after the read arrived, so the read may miss them.
//!
//! The pure rules live in [`LeaseKeeper`]; `Controller` wires them to Raft.

use std::time::Duration;

use openraft::{LogId, ServerState, Vote};
use tokio::time::Instant;

use super::NodeId;

/// What the Raft core says about this controller's leadership, at one point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderView {
    pub vote: Vote<NodeId>,
    /// The effective membership's log id: a lease is for one set of voters.
    pub membership: Option<LogId<NodeId>>,
    pub leading: bool,
}

impl LeaderView {
    pub fn of<I>(state: &openraft::RaftState<NodeId, openraft::BasicNode, I>) -> Self
    where
        I: openraft::Instant,
    {
        Self {
            vote: *state.vote_ref(),
            membership: *state.membership_state.effective().log_id(),
            leading: state.server_state == ServerState::Leader && state.vote_ref().is_committed(),
        }
    }
}

#[derive(Debug, Clone)]
struct Lease {
    view: LeaderView,
    until: Instant,
}

/// The lease, if any, and the rules for taking and using one.
#[derive(Debug)]
pub struct LeaseKeeper {
    duration: Duration,
    lease: Option<Lease>,
}

impl LeaseKeeper {
    /// `duration` zero: no leases, every read waits for a full round.
    pub fn new(duration: Duration) -> Self {
        Self { duration, lease: None }
    }

    /// Whether a lease still in force at `now` covers the core's current
    /// `view`. Callers take `view` from the core after the reads they
    /// confirm arrived, and `now` after `view`.
    pub fn covers(&self, view: &LeaderView, now: Instant) -> bool {
        match &self.lease {
            Some(lease) => view.leading && *view == lease.view && now < lease.until,
            None => false,
        }
    }

    /// After a full round that started at `started`, with the core's view
    /// taken before it (`before`) and after it (`after`): a lease when both
    /// views are the same leadership (votes only grow, so it held
    /// throughout), none otherwise.
    pub fn round_succeeded(&mut self, before: &LeaderView, after: &LeaderView, started: Instant) {
        self.lease = (!self.duration.is_zero() && before.leading && before == after)
            .then(|| Lease { view: after.clone(), until: started + self.duration });
    }

    /// After a failed round, or a view the lease does not cover.
    pub fn revoke(&mut self) {
        self.lease = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::CommittedLeaderId;

    fn leader(term: u64, membership_index: u64) -> LeaderView {
        LeaderView {
            vote: Vote::new_committed(term, 1),
            membership: Some(LogId::new(CommittedLeaderId::new(1, 1), membership_index)),
            leading: true,
        }
    }

    const LEASE: Duration = Duration::from_millis(200);

    #[test]
    fn a_round_grants_a_lease_from_its_start() {
        let mut keeper = LeaseKeeper::new(LEASE);
        let start = Instant::now();
        let view = leader(3, 1);
        assert!(!keeper.covers(&view, start), "no lease before any round");
        keeper.round_succeeded(&view, &view, start);
        assert!(keeper.covers(&view, start + Duration::from_millis(199)));
        assert!(!keeper.covers(&view, start + LEASE), "expires at start + duration");
    }

    #[test]
    fn a_changed_vote_membership_or_role_is_not_covered() {
        let mut keeper = LeaseKeeper::new(LEASE);
        let start = Instant::now();
        keeper.round_succeeded(&leader(3, 1), &leader(3, 1), start);
        let soon = start + Duration::from_millis(10);
        assert!(!keeper.covers(&leader(4, 1), soon), "a later term");
        assert!(!keeper.covers(&leader(3, 7), soon), "a membership change");
        let mut voted_away = leader(3, 1);
        voted_away.vote = Vote::new(4, 2);
        voted_away.leading = false;
        assert!(!keeper.covers(&voted_away, soon), "granted a vote to a candidate");
        let mut stepped_down = leader(3, 1);
        stepped_down.leading = false;
        assert!(!keeper.covers(&stepped_down, soon));
    }

    #[test]
    fn no_lease_when_the_view_changed_during_the_round() {
        let mut keeper = LeaseKeeper::new(LEASE);
        let start = Instant::now();
        keeper.round_succeeded(&leader(3, 1), &leader(4, 1), start);
        assert!(!keeper.covers(&leader(4, 1), start));
        assert!(!keeper.covers(&leader(3, 1), start));
    }

    #[test]
    fn a_follower_or_a_zero_duration_never_gets_a_lease() {
        let start = Instant::now();
        let mut follower = leader(3, 1);
        follower.leading = false;
        let mut keeper = LeaseKeeper::new(LEASE);
        keeper.round_succeeded(&follower, &follower, start);
        assert!(!keeper.covers(&follower, start));
        let mut disabled = LeaseKeeper::new(Duration::ZERO);
        disabled.round_succeeded(&leader(3, 1), &leader(3, 1), start);
        assert!(!disabled.covers(&leader(3, 1), start));
    }

    #[test]
    fn revoke_ends_the_lease() {
        let mut keeper = LeaseKeeper::new(LEASE);
        let start = Instant::now();
        keeper.round_succeeded(&leader(3, 1), &leader(3, 1), start);
        keeper.revoke();
        assert!(!keeper.covers(&leader(3, 1), start));
    }
}

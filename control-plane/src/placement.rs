//! Chunk placement: a pure function from node loads to replica targets.
//!
//! Each chunk goes to `replication` distinct nodes, least utilised first
//! (used ÷ capacity, in whole percentage points), then those storing the
//! fewest bytes. Bytes placed earlier in the same plan count as used, so
//! the chunks of one file spread over every node instead of piling onto the
//! three emptiest ones.

use std::cmp::Ordering;
use std::collections::HashSet;

use crate::error::MetaError;

#[derive(Debug, Clone)]
pub struct NodeLoad {
    pub node_id: String,
    pub addr: String,
    pub capacity_bytes: u64,
    pub used_bytes: u64,
    /// Bytes of Tessera's chunks on the node (its last report plus what was
    /// placed there since). Nodes that share one filesystem (a local
    /// cluster) report the same free space, and so the same utilisation;
    /// this tells them apart.
    pub stored_bytes: u64,
}

impl NodeLoad {
    /// Used ÷ capacity in whole percentage points (a node without capacity
    /// is full).
    fn fullness_points(&self) -> u64 {
        match self.capacity_bytes {
            0 => u64::MAX,
            capacity => (u128::from(self.used_bytes) * 100 / u128::from(capacity)) as u64,
        }
    }

    /// The order in which nodes receive new replicas: the least full first;
    /// among nodes equally full to the percentage point, the one storing
    /// the fewest bytes; then by id, so plans are reproducible.
    pub fn placement_order(&self, other: &Self) -> Ordering {
        self.fullness_points()
            .cmp(&other.fullness_points())
            .then_with(|| self.stored_bytes.cmp(&other.stored_bytes))
            .then_with(|| self.node_id.cmp(&other.node_id))
    }

    /// Counts `bytes` placed on the node.
    pub fn add(&mut self, bytes: u64) {
        self.used_bytes = self.used_bytes.saturating_add(bytes);
        self.stored_bytes = self.stored_bytes.saturating_add(bytes);
    }

    pub fn fits(&self, bytes: u64) -> bool {
        self.capacity_bytes.saturating_sub(self.used_bytes) >= bytes
    }
}

/// Places one chunk per entry of `chunk_bytes` (the bytes each is expected
/// to hold) on the healthy `nodes`. Returns, per chunk, indices into
/// `nodes`. `min_replicas` is how many targets a chunk must get at least
/// (fewer is an error); up to `replication` are given.
pub fn place_chunks(
    nodes: &[NodeLoad],
    chunk_bytes: &[u64],
    replication: usize,
    min_replicas: usize,
    exclude: &HashSet<&str>,
) -> Result<Vec<Vec<usize>>, MetaError> {
    let mut loads: Vec<NodeLoad> = nodes.to_vec();
    let mut plan = Vec::with_capacity(chunk_bytes.len());
    for &bytes in chunk_bytes {
        let candidates: Vec<usize> =
            (0..loads.len()).filter(|&i| !exclude.contains(loads[i].node_id.as_str())).collect();
        if candidates.len() < min_replicas {
            return Err(MetaError::NotEnoughNodes { healthy: candidates.len(), replication });
        }
        let mut order: Vec<usize> = candidates.iter().copied().filter(|&i| loads[i].fits(bytes)).collect();
        if order.len() < min_replicas {
            return Err(MetaError::NoRoom {
                fitting: order.len(),
                healthy: candidates.len(),
                chunk_bytes: bytes,
                replication,
            });
        }
        order.sort_by(|&a, &b| loads[a].placement_order(&loads[b]));
        order.truncate(replication);
        for &i in &order {
            loads[i].add(bytes);
        }
        plan.push(order);
    }
    Ok(plan)
}

/// The bytes each of `count` chunks from `first_chunk` on will hold, for a
/// file of `size_hint` bytes (0: unknown, every chunk may be full).
/// Reservations and placement use these, so a small file does not hold a
/// whole chunk's worth of space on each target until the next heartbeat.
pub fn expected_chunk_bytes(size_hint: u64, chunk_size: u64, first_chunk: u32, count: usize) -> Vec<u64> {
    (0..count as u64)
        .map(|i| {
            let start = (u64::from(first_chunk) + i).saturating_mul(chunk_size);
            if size_hint > start {
                (size_hint - start).min(chunk_size)
            } else {
                chunk_size
            }
        })
        .collect()
}

/// How many chunks a file of `size_hint` bytes still has from `first_chunk`
/// on (at least one: a size hint is a hint).
pub fn chunks_left(size_hint: u64, chunk_size: u64, first_chunk: u32) -> usize {
    let total = size_hint.div_ceil(chunk_size.max(1));
    total.saturating_sub(u64::from(first_chunk)).max(1) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str, capacity: u64, used: u64) -> NodeLoad {
        NodeLoad {
            node_id: id.into(),
            addr: format!("{id}:1"),
            capacity_bytes: capacity,
            used_bytes: used,
            stored_bytes: 0,
        }
    }

    /// Nodes on one filesystem report the same free space: those storing
    /// less get the replicas, until they hold as much as the others.
    #[test]
    fn nodes_sharing_a_filesystem_fill_evenly() {
        let shared = |id: &str, stored: u64| NodeLoad { stored_bytes: stored, ..node(id, 1_000_000, 500_000) };
        let nodes = vec![shared("a", 300), shared("b", 100), shared("c", 200), shared("d", 200)];
        let plan = place_chunks(&nodes, &[100], 3, 3, &HashSet::new()).unwrap();
        assert_eq!(plan, vec![vec![1, 2, 3]]);
        let plan = place_chunks(&nodes, &[100; 4], 3, 3, &HashSet::new()).unwrap();
        let mut stored: Vec<u64> = nodes.iter().map(|n| n.stored_bytes).collect();
        for chunk in &plan {
            for &i in chunk {
                stored[i] += 100;
            }
        }
        assert_eq!(stored, vec![500, 500, 500, 500]);
        // Fullness still comes first: a node fuller by a percentage point
        // gets nothing while others have room.
        let nodes =
            vec![shared("a", 0), NodeLoad { used_bytes: 520_000, ..shared("b", 0) }, shared("c", 9), shared("d", 9)];
        assert_eq!(place_chunks(&nodes, &[1], 3, 3, &HashSet::new()).unwrap(), vec![vec![0, 2, 3]]);
    }

    #[test]
    fn least_loaded_first_and_distinct() {
        let nodes = vec![node("a", 100, 90), node("b", 100, 10), node("c", 100, 50), node("d", 100, 20)];
        let plan = place_chunks(&nodes, &[1], 3, 3, &HashSet::new()).unwrap();
        assert_eq!(plan, vec![vec![1, 3, 2]]);
    }

    #[test]
    fn spreads_a_file_over_all_nodes() {
        let nodes = vec![node("a", 1000, 0), node("b", 1000, 0), node("c", 1000, 0), node("d", 1000, 0)];
        let plan = place_chunks(&nodes, &[10; 8], 3, 3, &HashSet::new()).unwrap();
        let mut per_node = [0; 4];
        for chunk in &plan {
            let mut distinct = chunk.clone();
            distinct.sort();
            distinct.dedup();
            assert_eq!(distinct.len(), 3);
            for &i in chunk {
                per_node[i] += 1;
            }
        }
        assert_eq!(per_node, [6, 6, 6, 6]);
    }

    #[test]
    fn too_few_nodes_is_an_error() {
        let nodes = vec![node("a", 100, 0), node("b", 100, 0)];
        assert_eq!(
            place_chunks(&nodes, &[1], 3, 3, &HashSet::new()),
            Err(MetaError::NotEnoughNodes { healthy: 2, replication: 3 })
        );
    }

    #[test]
    fn excluded_and_full_nodes_are_skipped() {
        let nodes = vec![node("a", 100, 0), node("b", 100, 0), node("c", 100, 99), node("d", 100, 0)];
        let exclude: HashSet<&str> = ["a"].into_iter().collect();
        let plan = place_chunks(&nodes, &[5], 3, 1, &exclude).unwrap();
        assert_eq!(plan, vec![vec![1, 3]]);
    }

    #[test]
    fn nodes_without_room_are_named_as_such() {
        let nodes = vec![node("a", 100, 0), node("b", 100, 98), node("c", 100, 99), node("d", 100, 0)];
        assert_eq!(
            place_chunks(&nodes, &[5], 3, 3, &HashSet::new()),
            Err(MetaError::NoRoom { fitting: 2, healthy: 4, chunk_bytes: 5, replication: 3 })
        );
        // Small chunks still fit where a full one would not.
        assert!(place_chunks(&nodes, &[1], 3, 3, &HashSet::new()).is_ok());
    }

    #[test]
    fn chunks_are_expected_as_large_as_the_size_hint_says() {
        assert_eq!(expected_chunk_bytes(64 << 10, 4 << 20, 0, 1), vec![64 << 10]);
        assert_eq!(expected_chunk_bytes(10 << 20, 4 << 20, 0, 3), vec![4 << 20, 4 << 20, 2 << 20]);
        assert_eq!(expected_chunk_bytes(10 << 20, 4 << 20, 2, 2), vec![2 << 20, 4 << 20]);
        // Unknown size: every chunk may be full.
        assert_eq!(expected_chunk_bytes(0, 4 << 20, 0, 2), vec![4 << 20, 4 << 20]);
        assert_eq!(chunks_left(10 << 20, 4 << 20, 0), 3);
        assert_eq!(chunks_left(10 << 20, 4 << 20, 2), 1);
        assert_eq!(chunks_left(10 << 20, 4 << 20, 5), 1);
        assert_eq!(chunks_left(0, 4 << 20, 0), 1);
    }
}

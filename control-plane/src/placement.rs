//! Chunk placement: a pure function from node loads to replica targets.
//!
//! Each chunk goes to `replication` distinct nodes, least utilised first
//! (used ÷ capacity). Bytes placed earlier in the same plan count as used, so
//! the chunks of one file spread over every node instead of piling onto the
//! three emptiest ones.

use std::collections::HashSet;

use crate::error::MetaError;

#[derive(Debug, Clone)]
pub struct NodeLoad {
    pub node_id: String,
    pub addr: String,
    pub capacity_bytes: u64,
    pub used_bytes: u64,
}

impl NodeLoad {
    fn utilisation(&self) -> f64 {
        if self.capacity_bytes == 0 {
            return 1.0;
        }
        self.used_bytes as f64 / self.capacity_bytes as f64
    }

    pub fn fits(&self, bytes: u64) -> bool {
        self.capacity_bytes.saturating_sub(self.used_bytes) >= bytes
    }
}

/// Places `chunks` chunks of up to `chunk_size` bytes on the healthy `nodes`.
/// Returns, per chunk, indices into `nodes`. `min_replicas` is how many
/// targets a chunk must get at least (fewer is an error); up to
/// `replication` are given.
pub fn place_chunks(
    nodes: &[NodeLoad],
    chunks: usize,
    replication: usize,
    min_replicas: usize,
    chunk_size: u64,
    exclude: &HashSet<&str>,
) -> Result<Vec<Vec<usize>>, MetaError> {
    let mut loads: Vec<NodeLoad> = nodes.to_vec();
    let mut plan = Vec::with_capacity(chunks);
    for _ in 0..chunks {
        let mut order: Vec<usize> = (0..loads.len())
            .filter(|&i| !exclude.contains(loads[i].node_id.as_str()) && loads[i].fits(chunk_size))
            .collect();
        order.sort_by(|&a, &b| {
            loads[a]
                .utilisation()
                .total_cmp(&loads[b].utilisation())
                .then_with(|| loads[a].node_id.cmp(&loads[b].node_id))
        });
        order.truncate(replication);
        if order.len() < min_replicas {
            return Err(MetaError::NotEnoughNodes { healthy: order.len(), replication });
        }
        for &i in &order {
            loads[i].used_bytes = loads[i].used_bytes.saturating_add(chunk_size);
        }
        plan.push(order);
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str, capacity: u64, used: u64) -> NodeLoad {
        NodeLoad { node_id: id.into(), addr: format!("{id}:1"), capacity_bytes: capacity, used_bytes: used }
    }

    #[test]
    fn least_loaded_first_and_distinct() {
        let nodes = vec![node("a", 100, 90), node("b", 100, 10), node("c", 100, 50), node("d", 100, 20)];
        let plan = place_chunks(&nodes, 1, 3, 3, 1, &HashSet::new()).unwrap();
        assert_eq!(plan, vec![vec![1, 3, 2]]);
    }

    #[test]
    fn spreads_a_file_over_all_nodes() {
        let nodes = vec![node("a", 1000, 0), node("b", 1000, 0), node("c", 1000, 0), node("d", 1000, 0)];
        let plan = place_chunks(&nodes, 8, 3, 3, 10, &HashSet::new()).unwrap();
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
            place_chunks(&nodes, 1, 3, 3, 1, &HashSet::new()),
            Err(MetaError::NotEnoughNodes { healthy: 2, replication: 3 })
        );
    }

    #[test]
    fn excluded_and_full_nodes_are_skipped() {
        let nodes = vec![node("a", 100, 0), node("b", 100, 0), node("c", 100, 99), node("d", 100, 0)];
        let exclude: HashSet<&str> = ["a"].into_iter().collect();
        let plan = place_chunks(&nodes, 1, 3, 1, 5, &exclude).unwrap();
        assert_eq!(plan, vec![vec![1, 3]]);
    }
}

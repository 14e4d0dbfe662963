//! Read side of the metadata: listings, replication statistics and usage.

use std::collections::BTreeMap;

use uuid::Uuid;

use super::{FileRecord, FileState, MetaState};
use crate::error::MetaError;

pub struct FilePage<'a> {
    pub files: Vec<&'a FileRecord>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ReplicationStats {
    pub total: u64,
    pub fully_replicated: u64,
    pub under_replicated: u64,
    pub lost: u64,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub files: u64,
    /// Sum of file sizes.
    pub bytes: u64,
    /// Bytes on data nodes counting every replica.
    pub stored_bytes: u64,
}

/// The cluster-wide counts of [`MetaState::overview`].
#[derive(Debug, Default)]
pub struct Overview<'a> {
    pub replicas_per_node: BTreeMap<&'a str, u64>,
    /// Of committed files.
    pub replication: ReplicationStats,
    /// Of everyone's committed files.
    pub usage: Usage,
}

/// Listing order is newest first; a cursor is the sort key of the last file
/// of the previous page.
type SortKey = (i64, Uuid);

fn sort_key(file: &FileRecord) -> SortKey {
    (file.created_at_ms, file.id)
}

fn encode_cursor(key: SortKey) -> String {
    format!("{}_{}", key.0, key.1)
}

fn decode_cursor(cursor: &str) -> Result<SortKey, MetaError> {
    let bad = || MetaError::Invalid(format!("bad cursor {cursor:?}"));
    let (ms, id) = cursor.split_once('_').ok_or_else(bad)?;
    Ok((ms.parse().map_err(|_| bad())?, Uuid::try_parse(id).map_err(|_| bad())?))
}

impl MetaState {
    /// A committed file; uploading files are invisible to readers.
    pub fn committed_file(&self, id: &Uuid) -> Option<&FileRecord> {
        self.files.get(id).filter(|f| f.state == FileState::Committed)
    }

    /// A committed file as `owner` sees it: another user's file does not
    /// exist for them. An empty `owner` sees every file.
    pub fn visible_file(&self, id: &Uuid, owner: &str) -> Option<&FileRecord> {
        self.committed_file(id).filter(|f| owner.is_empty() || f.owner == owner)
    }

    /// Committed files of `owner` (everyone's if empty), newest first.
    pub fn list_files(
        &self,
        owner: &str,
        query: &str,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<FilePage<'_>, MetaError> {
        let after = cursor.filter(|c| !c.is_empty()).map(decode_cursor).transpose()?;
        let needle = query.to_lowercase();
        let mut files: Vec<&FileRecord> = self
            .files
            .values()
            .filter(|f| f.state == FileState::Committed)
            .filter(|f| owner.is_empty() || f.owner == owner)
            .filter(|f| needle.is_empty() || f.name.to_lowercase().contains(&needle))
            .filter(|f| after.is_none_or(|a| sort_key(f) < a))
            .collect();
        files.sort_by_key(|f| std::cmp::Reverse(sort_key(f)));
        let limit = limit.max(1);
        let next_cursor = (files.len() > limit).then(|| encode_cursor(sort_key(files[limit - 1])));
        files.truncate(limit);
        Ok(FilePage { files, next_cursor })
    }

    /// Replicas held per node (committed and uploading files alike: both use disk).
    pub fn replicas_per_node(&self) -> BTreeMap<&str, u64> {
        let mut counts = BTreeMap::new();
        for file in self.files.values() {
            count_replicas(&mut counts, file);
        }
        counts
    }

    /// Chunks of committed files by how many of their replicas are on nodes
    /// that can serve them, against each file's replication factor.
    pub fn replication_stats(&self) -> ReplicationStats {
        let mut stats = ReplicationStats::default();
        for file in self.files.values().filter(|f| f.state == FileState::Committed) {
            self.count_replication(&mut stats, file);
        }
        stats
    }

    /// Everything the cluster summary counts, in one pass over the files:
    /// the summary is polled (by the admin dashboard, and while healing)
    /// and its scan holds the state's read lock, which applying the log
    /// waits for.
    pub fn overview(&self) -> Overview<'_> {
        let mut overview = Overview::default();
        for file in self.files.values() {
            count_replicas(&mut overview.replicas_per_node, file);
            if file.state == FileState::Committed {
                self.count_replication(&mut overview.replication, file);
                count_usage(&mut overview.usage, file);
            }
        }
        overview
    }

    fn count_replication(&self, stats: &mut ReplicationStats, file: &FileRecord) {
        for chunk in file.chunks.values() {
            let live = chunk
                .replicas
                .iter()
                .filter(|n| self.nodes.get(*n).is_some_and(|node| node.health.holds_live_replicas()))
                .count() as u32;
            stats.total += 1;
            if live == 0 {
                stats.lost += 1;
            } else if live < file.replication {
                stats.under_replicated += 1;
            } else {
                stats.fully_replicated += 1;
            }
        }
    }

    /// What committed files take, of `owner` (of everyone if empty).
    pub fn usage(&self, owner: &str) -> Usage {
        let mut usage = Usage::default();
        for file in
            self.files.values().filter(|f| f.state == FileState::Committed && (owner.is_empty() || f.owner == owner))
        {
            count_usage(&mut usage, file);
        }
        usage
    }
}

// A B-tree over a handful of node ids: a few short compares per replica
// instead of a SipHash (this runs over every replica).
fn count_replicas<'a>(counts: &mut BTreeMap<&'a str, u64>, file: &'a FileRecord) {
    for chunk in file.chunks.values() {
        for node in &chunk.replicas {
            *counts.entry(node.as_str()).or_default() += 1;
        }
    }
}

fn count_usage(usage: &mut Usage, file: &FileRecord) {
    usage.files += 1;
    usage.bytes += file.size;
    usage.stored_bytes += file.chunks.values().map(|c| c.size * c.replicas.len() as u64).sum::<u64>();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::Event;
    use crate::meta::NodeHealth;

    fn committed(state: &mut MetaState, name: &str, at_ms: i64) -> Uuid {
        let file_id = Uuid::now_v7();
        state
            .apply(&Event::FileCreated {
                file_id,
                name: name.into(),
                chunk_size: 4,
                replication: 3,
                at_ms,
                owner: String::new(),
            })
            .unwrap();
        state.apply(&Event::FileCommitted { file_id, size: 0, total_chunks: 0, checksum: "e".into(), at_ms }).unwrap();
        file_id
    }

    #[test]
    fn lists_newest_first_with_paging_and_filter() {
        let mut s = MetaState::default();
        let a = committed(&mut s, "alpha.txt", 1);
        let b = committed(&mut s, "beta.txt", 2);
        let c = committed(&mut s, "Alphabet.pdf", 3);
        s.apply(&Event::FileCreated {
            file_id: Uuid::now_v7(),
            name: "hidden".into(),
            chunk_size: 4,
            replication: 3,
            at_ms: 4,
            owner: String::new(),
        })
        .unwrap();

        let page = s.list_files("", "", 2, None).unwrap();
        assert_eq!(page.files.iter().map(|f| f.id).collect::<Vec<_>>(), vec![c, b]);
        let page2 = s.list_files("", "", 2, page.next_cursor.as_deref()).unwrap();
        assert_eq!(page2.files.iter().map(|f| f.id).collect::<Vec<_>>(), vec![a]);
        assert!(page2.next_cursor.is_none());

        let alpha = s.list_files("", "ALPHA", 10, None).unwrap();
        assert_eq!(alpha.files.len(), 2);
        assert!(s.list_files("", "", 10, Some("garbage")).is_err());
    }

    #[test]
    fn the_overview_counts_what_the_separate_queries_count() {
        let mut s = MetaState::default();
        for node in ["a", "b", "c"] {
            let event = Event::NodeRegistered {
                node_id: node.into(),
                host: "127.0.0.1".into(),
                grpc_port: 1,
                capacity_bytes: 1 << 30,
                mac: String::new(),
                at_ms: 1,
            };
            s.apply(&event).unwrap();
        }
        s.apply(&Event::NodeHealthChanged { node_id: "c".into(), health: NodeHealth::Dead, at_ms: 2 }).unwrap();
        let mut file = |name: &str, replicas: &[&str], commit: bool| {
            let file_id = Uuid::now_v7();
            let created = Event::FileCreated {
                file_id,
                name: name.into(),
                chunk_size: 4,
                replication: 2,
                at_ms: 3,
                owner: String::new(),
            };
            s.apply(&created).unwrap();
            let replicas: Vec<String> = replicas.iter().map(|r| r.to_string()).collect();
            for index in 0..2 {
                s.apply(&Event::ChunkStored { file_id, index, size: 4, crc32c: 7, replicas: replicas.clone() })
                    .unwrap();
            }
            if commit {
                s.apply(&Event::FileCommitted { file_id, size: 8, total_chunks: 2, checksum: "x".into(), at_ms: 4 })
                    .unwrap();
            }
        };
        file("full", &["a", "b"], true);
        file("under", &["a", "c"], true);
        file("lost", &["c"], true);
        file("uploading", &["b", "c"], false);

        let overview = s.overview();
        assert_eq!(overview.replicas_per_node, s.replicas_per_node());
        assert_eq!(overview.replication, s.replication_stats());
        assert_eq!(overview.usage, s.usage(""));
        assert_eq!(
            overview.replication,
            ReplicationStats { total: 6, fully_replicated: 2, under_replicated: 2, lost: 2 }
        );
        assert_eq!(overview.replicas_per_node, BTreeMap::from([("a", 4), ("b", 4), ("c", 6)]));
        assert_eq!(overview.usage, Usage { files: 3, bytes: 24, stored_bytes: 40 });
    }
}

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
        // A B-tree over a handful of node ids: a few short compares per
        // replica instead of a SipHash (this runs over every replica).
        let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
        for file in self.files.values() {
            for chunk in file.chunks.values() {
                for node in &chunk.replicas {
                    *counts.entry(node.as_str()).or_default() += 1;
                }
            }
        }
        counts
    }

    /// Chunks of committed files by how many of their replicas are on nodes
    /// that can serve them, against each file's replication factor.
    pub fn replication_stats(&self) -> ReplicationStats {
        let mut stats = ReplicationStats::default();
        for file in self.files.values().filter(|f| f.state == FileState::Committed) {
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
        stats
    }

    /// What committed files take, of `owner` (of everyone if empty).
    pub fn usage(&self, owner: &str) -> Usage {
        let mut usage = Usage::default();
        for file in
            self.files.values().filter(|f| f.state == FileState::Committed && (owner.is_empty() || f.owner == owner))
        {
            usage.files += 1;
            usage.bytes += file.size;
            usage.stored_bytes += file.chunks.values().map(|c| c.size * c.replicas.len() as u64).sum::<u64>();
        }
        usage
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::Event;

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
}

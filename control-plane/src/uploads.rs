//! The upload protocol on the leader: plan (create the file, place chunks),
//! record stored chunks, commit, abort; plus delete and bad-replica reports.

use std::collections::HashSet;

use uuid::Uuid;

use crate::controller::Controller;
use crate::error::{ControllerError, MetaError};
use crate::events::{Event, StoredChunk};
use crate::meta::{FileRecord, FileState, NodeHealth};
use crate::placement::{chunks_left, expected_chunk_bytes, place_chunks, NodeLoad};

/// Most chunks placed by one plan call; the gateway asks again for more.
const MAX_CHUNKS_PER_PLAN: u32 = 64;

pub struct PlanRequest {
    pub file_id: Option<Uuid>,
    pub name: String,
    pub first_chunk: u32,
    pub chunk_count: u32,
    pub exclude_nodes: Vec<String>,
    /// The user the new file belongs to (empty: none).
    pub owner: String,
    /// Expected file size if known, checked against the owner's quota.
    pub size_hint: u64,
    /// `size_hint` is exact: a file that fits in one chunk is not created by
    /// the plan but by [`Controller::create_file`] once its chunk is stored.
    pub defer_create: bool,
    /// Becomes the id of a new file, so a retried plan finds the file its
    /// first attempt created instead of creating another.
    pub request_id: Option<Uuid>,
}

/// A file of at most one chunk whose chunk is stored: created and
/// committed by one log entry.
pub struct WrittenFile {
    pub file_id: Uuid,
    pub name: String,
    pub owner: String,
    pub size: u64,
    pub checksum: String,
    pub crc32c: u32,
    pub replicas: Vec<String>,
}

pub struct Placement {
    pub index: u32,
    /// (node id, address) per target.
    pub targets: Vec<(String, String)>,
}

pub struct Plan {
    pub file_id: Uuid,
    pub chunk_size: u64,
    pub replication: u32,
    pub placements: Vec<Placement>,
    /// The file was not created (see [`PlanRequest::defer_create`]).
    pub deferred: bool,
}

/// A file's checksum as the gateway sends it: `blake3:<hex>`, or a bare
/// hex SHA-256 from a gateway older than BLAKE3 (during an upgrade).
fn check_file_checksum(checksum: &str) -> Result<(), ControllerError> {
    let why = "checksum must be blake3:<64 hex digits> (or 64 hex digits of SHA-256)";
    tessera_proto::checksum::parse_file_checksum(checksum)
        .map(|_| ())
        .ok_or_else(|| MetaError::Invalid(why.into()).into())
}

impl Controller {
    pub fn healthy_loads(&self) -> Vec<NodeLoad> {
        let state = self.state.read();
        state
            .meta
            .nodes
            .values()
            .filter(|n| n.health == NodeHealth::Healthy)
            .map(|n| self.liveness.load(&n.node_id, n.addr(), n.capacity_bytes))
            .collect()
    }

    pub async fn upload_plan(&self, req: PlanRequest) -> Result<Plan, ControllerError> {
        self.ensure_leader()?;
        if req.file_id.is_none() {
            tessera_proto::ids::validate_file_name(&req.name).map_err(MetaError::from)?;
        }
        // One look at the state for everything the plan checks.
        let (deferred_replacement, chunk_size, replication) = {
            let state = self.state.read();
            match req.file_id {
                Some(id) => match state.meta.files.get(&id) {
                    // Replacement targets for a deferred upload: its file does not exist yet.
                    None if req.defer_create => (true, self.config.chunk_size, self.config.replication),
                    None => return Err(MetaError::FileNotFound(id.to_string()).into()),
                    Some(file) if file.state != FileState::Uploading => {
                        return Err(
                            MetaError::NotUploading { file: id.to_string(), state: file.state.as_str().into() }.into()
                        )
                    }
                    Some(file) => (false, file.chunk_size, file.replication),
                },
                None => {
                    if !req.owner.is_empty() && !state.meta.users.contains_key(&req.owner) {
                        return Err(MetaError::UserNotFound(req.owner.clone()).into());
                    }
                    // Refused before a byte is sent; CommitFile checks again
                    // with the real size.
                    state.meta.check_quota(&req.owner, req.size_hint)?;
                    (false, self.config.chunk_size, self.config.replication)
                }
            }
        };
        let loads = self.healthy_loads();
        let exclude: HashSet<&str> = req.exclude_nodes.iter().map(String::as_str).collect();
        // A fresh plan needs a full set of replicas; a replacement plan (with
        // exclusions) takes whatever healthy nodes are left.
        let min_replicas = if exclude.is_empty() { replication as usize } else { 1 };
        let deferred =
            deferred_replacement || (req.file_id.is_none() && req.defer_create && req.size_hint <= chunk_size);
        let wanted = if deferred && !deferred_replacement {
            usize::from(req.size_hint > 0)
        } else {
            req.chunk_count.min(MAX_CHUNKS_PER_PLAN) as usize
        };
        // No more placements (and reservations) than the file has chunks.
        let count = if req.size_hint > 0 {
            wanted.min(chunks_left(req.size_hint, chunk_size, req.first_chunk))
        } else {
            wanted
        };
        let expected = expected_chunk_bytes(req.size_hint, chunk_size, req.first_chunk, count);
        let plan = place_chunks(&loads, &expected, replication as usize, min_replicas, &exclude)?;
        if req.file_id.is_none() && loads.len() < replication as usize {
            return Err(MetaError::NotEnoughNodes { healthy: loads.len(), replication: replication as usize }.into());
        }

        let file_id = match req.file_id {
            Some(id) => id,
            None if deferred => req.request_id.unwrap_or_else(tessera_proto::ids::new_file_id),
            None => {
                let file_id = req.request_id.unwrap_or_else(tessera_proto::ids::new_file_id);
                let created = Event::FileCreated {
                    file_id,
                    name: req.name.clone(),
                    chunk_size,
                    replication,
                    at_ms: tessera_proto::now_ms(),
                    owner: req.owner.clone(),
                };
                match self.propose_request(created, req.request_id).await {
                    Ok(()) => {}
                    // A retry whose first attempt is out of the request log.
                    Err(ControllerError::Meta(MetaError::FileExists(_)))
                        if self
                            .state
                            .read()
                            .meta
                            .files
                            .get(&file_id)
                            .is_some_and(|f| f.state == FileState::Uploading && f.name == req.name) => {}
                    Err(e) => return Err(e),
                }
                file_id
            }
        };
        let placements = plan
            .into_iter()
            .enumerate()
            .map(|(i, targets)| {
                let targets = targets
                    .into_iter()
                    .map(|n| {
                        self.liveness.reserve(&loads[n].node_id, expected[i]);
                        (loads[n].node_id.clone(), loads[n].addr.clone())
                    })
                    .collect();
                Placement { index: req.first_chunk + i as u32, targets }
            })
            .collect();
        Ok(Plan { file_id, chunk_size, replication, placements, deferred })
    }

    /// Creates and commits a file planned with `defer_create` whose chunk
    /// (if any) is stored. Refused (e.g. over quota): its chunk is garbage.
    pub async fn create_file(
        &self,
        file: WrittenFile,
        request_id: Option<Uuid>,
    ) -> Result<FileRecord, ControllerError> {
        self.ensure_leader()?;
        tessera_proto::ids::validate_file_name(&file.name).map_err(MetaError::from)?;
        check_file_checksum(&file.checksum)?;
        if file.size > 0 && file.replicas.is_empty() {
            return Err(MetaError::Invalid("a non-empty file needs the nodes that store its chunk".into()).into());
        }
        self.ensure_nodes_known(&file.replicas)?;
        let file_id = file.file_id;
        let written = Event::FileWritten {
            file_id,
            name: file.name,
            chunk_size: self.config.chunk_size,
            replication: self.config.replication,
            owner: file.owner,
            size: file.size,
            crc32c: file.crc32c,
            replicas: if file.size > 0 { file.replicas } else { Vec::new() },
            checksum: file.checksum,
            at_ms: tessera_proto::now_ms(),
        };
        self.propose_request(written, request_id).await?;
        let state = self.state.read();
        state.meta.committed_file(&file_id).cloned().ok_or_else(|| MetaError::FileNotFound(file_id.to_string()).into())
    }

    /// Every node named as holding a replica is one the cluster knows.
    fn ensure_nodes_known(&self, nodes: &[String]) -> Result<(), ControllerError> {
        let state = self.state.read();
        match nodes.iter().find(|n| !state.meta.nodes.contains_key(*n)) {
            Some(unknown) => Err(MetaError::NodeNotFound(unknown.clone()).into()),
            None => Ok(()),
        }
    }

    /// Records chunks of an uploading file as durable on their nodes, in
    /// one log entry.
    pub async fn report_chunks_stored(
        &self,
        file_id: Uuid,
        mut chunks: Vec<StoredChunk>,
        request_id: Option<Uuid>,
    ) -> Result<(), ControllerError> {
        self.ensure_leader()?;
        for chunk in &chunks {
            self.ensure_nodes_known(&chunk.replicas)?;
        }
        // One chunk is logged as `ChunkStored`, which controllers of every
        // version read (see docs/operations.md, Upgrade).
        let event = match chunks.len() {
            0 => return Ok(()),
            1 => {
                let StoredChunk { index, size, crc32c, replicas } = chunks.remove(0);
                Event::ChunkStored { file_id, index, size, crc32c, replicas }
            }
            _ => Event::ChunksStored { file_id, chunks },
        };
        self.propose_request(event, request_id).await
    }

    pub async fn commit_file(
        &self,
        file_id: Uuid,
        size: u64,
        total_chunks: u32,
        checksum: String,
        request_id: Option<Uuid>,
    ) -> Result<FileRecord, ControllerError> {
        self.ensure_leader()?;
        check_file_checksum(&checksum)?;
        let committed = Event::FileCommitted { file_id, size, total_chunks, checksum, at_ms: tessera_proto::now_ms() };
        match self.propose_request(committed, request_id).await {
            Ok(()) => {}
            // Over quota: the upload is dropped, so nothing of it stays behind.
            Err(ControllerError::Meta(e @ MetaError::QuotaExceeded { .. })) => {
                if let Err(abort) = self.abort_upload(file_id, Vec::new(), None).await {
                    tracing::warn!(file = %file_id, error = %abort, "could not drop an upload over quota");
                }
                return Err(e.into());
            }
            Err(e) => return Err(e),
        }
        let state = self.state.read();
        state.meta.committed_file(&file_id).cloned().ok_or_else(|| MetaError::FileNotFound(file_id.to_string()).into())
    }

    /// Drops an upload that will not complete; its stored chunks become
    /// garbage. Aborting an unknown upload is a no-op (it may be a retry),
    /// but for a deferred one (never created) the nodes in `stored_on` are
    /// told its chunk 0 is garbage.
    pub async fn abort_upload(
        &self,
        file_id: Uuid,
        stored_on: Vec<String>,
        request_id: Option<Uuid>,
    ) -> Result<(), ControllerError> {
        self.ensure_leader()?;
        let state_of = self.state.read().meta.files.get(&file_id).map(|f| f.state);
        match state_of {
            None => {
                for node_id in stored_on {
                    if self.state.read().meta.nodes.contains_key(&node_id) {
                        self.propose(Event::GarbageFound { node_id, chunks: vec![(file_id, 0)] }).await?;
                    }
                }
                Ok(())
            }
            Some(FileState::Committed) => {
                Err(MetaError::NotUploading { file: file_id.to_string(), state: "committed".into() }.into())
            }
            Some(FileState::Uploading) => {
                match self.propose_request(Event::FileDeleted { file_id }, request_id).await {
                    Err(ControllerError::Meta(MetaError::FileNotFound(_))) => Ok(()),
                    other => other,
                }
            }
        }
    }

    /// Deletes a committed file of `owner` (of anyone if empty): gone from
    /// listings as soon as this returns.
    pub async fn delete_file(
        &self,
        file_id: Uuid,
        owner: &str,
        request_id: Option<Uuid>,
    ) -> Result<(), ControllerError> {
        self.ensure_leader()?;
        let retried = request_id.is_some_and(|id| self.state.read().requests.get(&id).is_some());
        if !retried && self.state.read().meta.visible_file(&file_id, owner).is_none() {
            return Err(MetaError::FileNotFound(file_id.to_string()).into());
        }
        self.propose_request(Event::FileDeleted { file_id }, request_id).await
    }

    /// A reader found a replica corrupt. It is dropped from the metadata
    /// (and so deleted from the node) unless it is the last one: a suspect
    /// copy is better than none until repair finds a good one.
    pub async fn report_bad_replica(
        &self,
        file_id: Uuid,
        index: u32,
        node_id: String,
        reason: String,
    ) -> Result<(), ControllerError> {
        self.ensure_leader()?;
        let droppable = {
            let state = self.state.read();
            let file = state.meta.files.get(&file_id).ok_or_else(|| MetaError::FileNotFound(file_id.to_string()))?;
            file.chunks.get(&index).is_some_and(|c| c.replicas.contains(&node_id) && c.replicas.len() > 1)
        };
        tracing::warn!(file = %file_id, chunk = index, node = %node_id, %reason, dropped = droppable, "bad replica reported");
        if !droppable {
            return Ok(());
        }
        self.propose(Event::ReplicaDropped { file_id, index, node_id, reason }).await
    }
}

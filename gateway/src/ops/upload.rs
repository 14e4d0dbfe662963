//! Streamed upload: the body is cut into chunks as it arrives; each chunk is
//! sent to its replicas in parallel while the next one is read, with at most
//! `chunks_in_flight` chunks held, so memory stays bounded whatever the file
//! size. Stored chunks are reported to the controller in batches (one log
//! entry each). The file becomes visible only when `CommitFile` succeeds;
//! any failure aborts the upload, leaving nothing visible.
//!
//! A body whose Content-Length fits in one chunk takes a shorter path: the
//! plan does not create the file (`deferred`), the chunk's replicas are not
//! reported one by one, and `CreateFile` creates and commits it in one log
//! entry. Small files are most files, and each log entry is a synced,
//! replicated write.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures::{Stream, StreamExt};
use tessera_proto::checksum::{crc32c, FileHasher};
use tessera_proto::pb;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

use crate::auth::{token_call_error, Credentials, CurrentUser};
use crate::clients::datanode;
use crate::error::ApiError;
use crate::ops::budget::{upload_chunk_cost, Reservation};
use crate::state::AppState;

/// Placements asked for per plan call.
const PLAN_BATCH: u32 = 16;
/// How long a failed upload waits for its chunks in flight before aborting.
const DRAIN_ON_FAILURE: std::time::Duration = std::time::Duration::from_secs(10);
/// Rounds of replacement targets for a chunk whose replicas failed.
const REPLACEMENT_ROUNDS: usize = 3;
/// Stored chunks reported to the controller in one call (one log entry).
/// Each log entry costs the three controllers ~2.5 ms of CPU: reported one
/// by one, a large upload's chunks cost them 0.65-0.79 CPU s per GiB, in
/// batches 0.17-0.19 (docs/performance.md, item 40).
const REPORT_BATCH: usize = 16;

/// Chunks up to this size are hashed on the reactor (~15 us of BLAKE3
/// for 64 KiB): handing them to the blocking pool cost two thread
/// wake-ups each, more than the hashing.
const HASH_INLINE_BYTES: usize = 64 * 1024;

/// What a chunk on its way to its replicas holds: one of the upload's
/// slots and its share of the gateway's memory budget.
struct HeldForChunk {
    _slot: OwnedSemaphorePermit,
    _memory: Option<Reservation>,
}

/// Chunks stored but not yet reported to the controller.
type PendingReports = Arc<std::sync::Mutex<Vec<pb::DurableChunk>>>;

struct Upload {
    app: AppState,
    name: String,
    reporting: Reporting,
    /// Bytes the owner may still store (`None`: no quota).
    quota_left: Option<u64>,
    owner: String,
    file_id: String,
    /// Content-Length of the body (0: unknown), for the plans of later chunks.
    size_hint: u64,
    replication: usize,
    placements: HashMap<u32, Vec<pb::NodeAddr>>,
}

/// How the controller learns which nodes hold the upload's chunks; each
/// chunk's task holds a clone and leaves its nodes here.
#[derive(Clone)]
enum Reporting {
    /// Planned with `defer_create` and the controller agreed: the file
    /// does not exist until `CreateFile`, which names its one chunk.
    Deferred(Arc<std::sync::Mutex<DeferredChunk>>),
    /// Stored chunks wait here to be reported in a batch.
    Batched(PendingReports),
}

/// A deferred upload's one chunk: its CRC32C and the nodes that stored it.
#[derive(Default, Clone)]
struct DeferredChunk {
    crc: u32,
    stored_on: Vec<String>,
}

impl Reporting {
    /// Stored chunks not reported yet, once there are at least `at_least`
    /// of them (none for a deferred upload).
    fn take_reports(&self, at_least: usize) -> Vec<pb::DurableChunk> {
        match self {
            Reporting::Deferred(_) => Vec::new(),
            Reporting::Batched(unreported) => {
                let mut unreported = unreported.lock().unwrap_or_else(|p| p.into_inner());
                if unreported.len() >= at_least {
                    std::mem::take(&mut *unreported)
                } else {
                    Vec::new()
                }
            }
        }
    }

    /// The deferred chunk as stored so far (`None` for a batched upload).
    fn deferred_chunk(&self) -> Option<DeferredChunk> {
        match self {
            Reporting::Deferred(chunk) => Some(chunk.lock().unwrap_or_else(|p| p.into_inner()).clone()),
            Reporting::Batched(_) => None,
        }
    }
}

/// A plan call; one that carries the caller's token reports a bad token
/// as every route does.
async fn plan(app: &AppState, request: pb::GetUploadPlanRequest) -> Result<pb::GetUploadPlanResponse, ApiError> {
    app.control.call_with(request, |mut c, r| async move { c.get_upload_plan(r).await }).await.map_err(token_call_error)
}

/// Uploads `body` as a file of the caller named `name`; returns the
/// committed file. The first controller call authenticates the caller.
pub async fn upload<S, E>(
    app: &AppState,
    caller: &Credentials,
    name: &str,
    size_hint: Option<u64>,
    body: S,
) -> Result<pb::FileMetadata, ApiError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: Into<BodyError>,
{
    tessera_proto::ids::validate_file_name(name).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    if size_hint.is_some_and(|size| size > app.settings.max_upload_bytes) {
        return Err(too_large(app.settings.max_upload_bytes));
    }
    if size_hint == Some(0) {
        return create_empty(app, caller, name, body).await;
    }
    // Created before the body is read: a cluster that cannot take the file
    // (503), a caller without a valid token (401) or without the quota for
    // size_hint (413) learn so without sending it.
    let first = plan(
        app,
        pb::GetUploadPlanRequest {
            name: name.to_string(),
            size_hint: size_hint.unwrap_or(0),
            first_chunk: 0,
            // A body of unknown length may well be small: one placement
            // (and one chunk's reservation per target) until it proves
            // longer. With a size the controller plans no more than it needs.
            chunk_count: if size_hint.is_some() { PLAN_BATCH } else { 1 },
            defer_create: size_hint.is_some(),
            token_hash: caller.token_hash.clone(),
            ..Default::default()
        },
    )
    .await?;
    let owner = CurrentUser::from_info(
        first.caller.ok_or_else(|| ApiError::Internal("the controller's plan names no caller".into()))?,
        caller.token_hash.clone(),
    );
    let chunk_size = first.chunk_size.max(1) as usize;
    let mut upload = Upload {
        app: app.clone(),
        name: name.to_string(),
        reporting: if first.deferred {
            Reporting::Deferred(Arc::default())
        } else {
            Reporting::Batched(PendingReports::default())
        },
        quota_left: owner.remaining_quota(),
        owner: owner.username,
        file_id: first.file_id.clone(),
        size_hint: size_hint.unwrap_or(0),
        replication: first.replication.max(1) as usize,
        placements: first.placements.into_iter().map(|p| (p.index, p.targets)).collect(),
    };
    match upload.run(chunk_size, body).await {
        Ok(file) => Ok(file),
        Err(e) => {
            upload.abort().await;
            Err(e)
        }
    }
}

/// An empty file needs no data node and no plan: one `CreateFile`, whose
/// id the gateway makes (a retried call carries the same id).
async fn create_empty<S, E>(
    app: &AppState,
    caller: &Credentials,
    name: &str,
    mut body: S,
) -> Result<pb::FileMetadata, ApiError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: Into<BodyError>,
{
    while let Some(piece) = body.next().await {
        let piece = piece.map_err(body_read_failed)?;
        if !piece.is_empty() {
            return Err(ApiError::BadRequest("the body is longer than its Content-Length".into()));
        }
    }
    let request = pb::CreateFileRequest {
        file_id: tessera_proto::ids::new_file_id().to_string(),
        name: name.to_string(),
        owner: String::new(),
        size: 0,
        checksum: FileHasher::new().finish(),
        crc32c: 0,
        node_ids: Vec::new(),
        token_hash: caller.token_hash.clone(),
    };
    let reply = app
        .control
        .call_with(request, |mut c, r| async move { c.create_file(r).await })
        .await
        .map_err(token_call_error)?;
    reply.file.ok_or_else(|| ApiError::Internal("the controller created the file but returned no file".into()))
}

/// 1536 -> "1.5 KiB", for messages people read.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// An empty buffer for the chunk that starts at byte `start` of a body of
/// `size_hint` bytes (0: unknown): no larger than what is left of a body of
/// known length, so a 64 KiB file does not take (and, freed, hand back to
/// the system) a whole chunk's memory; a body longer than announced grows it.
fn chunk_buffer(chunk_size: usize, size_hint: u64, start: u64) -> BytesMut {
    let left = if size_hint == 0 { chunk_size as u64 } else { size_hint.saturating_sub(start) };
    BytesMut::with_capacity(left.clamp(1, chunk_size as u64) as usize)
}

/// Why an upload body could not be read.
pub type BodyError = Box<dyn std::error::Error + Send + Sync>;

/// A body that stopped arriving for the idle timeout (`connection.rs`) is
/// 408; any other failure to read it is the request's fault (400).
fn body_read_failed(error: impl Into<BodyError>) -> ApiError {
    let error: BodyError = error.into();
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error.as_ref());
    while let Some(e) = cause {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::TimedOut {
                return ApiError::RequestTimeout(format!("the upload body stopped arriving: {io}"));
            }
        }
        cause = e.source();
    }
    ApiError::BadRequest(format!("reading the upload body failed: {error}"))
}

fn too_large(limit: u64) -> ApiError {
    ApiError::TooLarge(format!("the upload exceeds the limit of {limit} bytes"))
}

impl Upload {
    async fn run<S, E>(&mut self, chunk_size: usize, body: S) -> Result<pb::FileMetadata, ApiError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: Into<BodyError>,
    {
        let mut tasks: JoinSet<Result<(), ApiError>> = JoinSet::new();
        let result = self.stream_chunks(chunk_size, body, &mut tasks).await;
        if result.is_err() {
            // Let the chunks already on their way land and be reported
            // before the upload is aborted: the abort then turns them into
            // garbage the data nodes delete at once, instead of orphans
            // found only by the next inventory.
            let drain = async { while tasks.join_next().await.is_some() {} };
            if tokio::time::timeout(DRAIN_ON_FAILURE, drain).await.is_err() {
                tasks.abort_all();
            }
        }
        result
    }

    async fn stream_chunks<S, E>(
        &mut self,
        chunk_size: usize,
        mut body: S,
        tasks: &mut JoinSet<Result<(), ApiError>>,
    ) -> Result<pb::FileMetadata, ApiError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: Into<BodyError>,
    {
        let in_flight = Arc::new(Semaphore::new(self.app.settings.chunks_in_flight.max(1)));
        let mut hasher = FileHasher::new();
        let mut buffer = chunk_buffer(chunk_size, self.size_hint, 0);
        // The memory of the chunk being filled and its replicas' copies,
        // reserved from the gateway's budget before its first byte is read.
        let mut reserved: Option<Reservation> = None;
        let mut index = 0u32;
        let mut total = 0u64;
        while let Some(piece) = body.next().await {
            let piece = piece.map_err(body_read_failed)?;
            total += piece.len() as u64;
            if total > self.app.settings.max_upload_bytes {
                return Err(too_large(self.app.settings.max_upload_bytes));
            }
            if self.quota_left.is_some_and(|left| total > left) {
                return Err(ApiError::TooLarge(format!(
                    "quota exceeded: {} may store {} more; the upload is larger",
                    self.owner,
                    human_bytes(self.quota_left.unwrap_or(0))
                )));
            }
            let mut piece = &piece[..];
            while !piece.is_empty() {
                if reserved.is_none() {
                    let cost = upload_chunk_cost(buffer.capacity() as u64, self.replication);
                    reserved = Some(self.app.transfer_budget.reserve(cost).await?);
                }
                let take = (chunk_size - buffer.len()).min(piece.len());
                buffer.extend_from_slice(&piece[..take]);
                piece = &piece[take..];
                if buffer.len() == chunk_size {
                    let next = chunk_buffer(chunk_size, self.size_hint, u64::from(index + 1) * chunk_size as u64);
                    let chunk = std::mem::replace(&mut buffer, next).freeze();
                    hasher = self.dispatch(tasks, &in_flight, hasher, index, chunk, reserved.take()).await?;
                    index += 1;
                }
            }
            // Fail fast: a chunk that could not be stored ends the upload.
            while let Some(done) = tasks.try_join_next() {
                done.map_err(|e| ApiError::Internal(format!("chunk task: {e}")))??;
            }
        }
        if !buffer.is_empty() {
            hasher = self.dispatch(tasks, &in_flight, hasher, index, buffer.freeze(), reserved.take()).await?;
            index += 1;
        }
        while let Some(done) = tasks.join_next().await {
            done.map_err(|e| ApiError::Internal(format!("chunk task: {e}")))??;
        }
        report_stored(&self.app, &self.file_id, self.reporting.take_reports(0)).await?;
        let checksum = hasher.finish();
        let reply = match self.reporting.deferred_chunk() {
            Some(chunk) => {
                let request = pb::CreateFileRequest {
                    file_id: self.file_id.clone(),
                    name: self.name.clone(),
                    owner: self.owner.clone(),
                    size: total,
                    checksum,
                    crc32c: chunk.crc,
                    node_ids: chunk.stored_on,
                    token_hash: String::new(),
                };
                self.app.control.call_with(request, |mut c, r| async move { c.create_file(r).await }).await?
            }
            None => {
                let request =
                    pb::CommitFileRequest { file_id: self.file_id.clone(), size: total, total_chunks: index, checksum };
                self.app.control.call_with(request, |mut c, r| async move { c.commit_file(r).await }).await?
            }
        };
        reply.file.ok_or_else(|| ApiError::Internal("the controller committed but returned no file".into()))
    }

    /// Hashes a chunk (off the reactor unless it is small), then hands it
    /// to a task that stores it; waits first for a free slot (back
    /// pressure on the body). The chunk's slot and reserved memory are
    /// held until it is stored.
    async fn dispatch(
        &mut self,
        tasks: &mut JoinSet<Result<(), ApiError>>,
        in_flight: &Arc<Semaphore>,
        hasher: FileHasher,
        index: u32,
        chunk: Bytes,
        memory: Option<Reservation>,
    ) -> Result<FileHasher, ApiError> {
        let slot =
            in_flight.clone().acquire_owned().await.map_err(|_| ApiError::Internal("semaphore closed".into()))?;
        let held = HeldForChunk { _slot: slot, _memory: memory };
        let hash = |mut hasher: FileHasher, bytes: &[u8]| {
            hasher.update(bytes);
            (hasher, crc32c(bytes))
        };
        let (hasher, crc) = if chunk.len() <= HASH_INLINE_BYTES {
            hash(hasher, &chunk)
        } else {
            let hashed = chunk.clone();
            tokio::task::spawn_blocking(move || hash(hasher, &hashed))
                .await
                .map_err(|e| ApiError::Internal(format!("hashing: {e}")))?
        };
        if let Reporting::Deferred(first) = &self.reporting {
            if index > 0 {
                return Err(ApiError::BadRequest("the body is longer than its Content-Length".into()));
            }
            first.lock().unwrap_or_else(|p| p.into_inner()).crc = crc;
        }
        let report_to = self.reporting.clone();
        let targets = self.targets(index).await?;
        let app = self.app.clone();
        let file_id = self.file_id.clone();
        let replication = self.replication;
        tasks.spawn(store_chunk(app, file_id, index, chunk, crc, targets, replication, report_to, held));
        let full_batch = self.reporting.take_reports(REPORT_BATCH);
        if !full_batch.is_empty() {
            let app = self.app.clone();
            let file_id = self.file_id.clone();
            tasks.spawn(async move { report_stored(&app, &file_id, full_batch).await });
        }
        Ok(hasher)
    }

    async fn targets(&mut self, index: u32) -> Result<Vec<pb::NodeAddr>, ApiError> {
        if let Some(targets) = self.placements.remove(&index) {
            return Ok(targets);
        }
        let reply = plan(
            &self.app,
            pb::GetUploadPlanRequest {
                file_id: self.file_id.clone(),
                first_chunk: index,
                chunk_count: PLAN_BATCH,
                size_hint: self.size_hint,
                ..Default::default()
            },
        )
        .await?;
        self.placements.extend(reply.placements.into_iter().map(|p| (p.index, p.targets)));
        self.placements.remove(&index).ok_or_else(|| ApiError::Internal(format!("no placement for chunk {index}")))
    }

    async fn abort(&self) {
        // Chunks stored but not yet reported: once reported, the abort
        // turns them into garbage the data nodes delete at once.
        if let Err(e) = report_stored(&self.app, &self.file_id, self.reporting.take_reports(0)).await {
            tracing::warn!(file = %self.file_id, error = %e, "could not report stored chunks before aborting");
        }
        // A deferred upload's file does not exist: the abort names the
        // nodes holding its chunk so they can be told to delete it.
        let stored_on = self.reporting.deferred_chunk().map(|chunk| chunk.stored_on).unwrap_or_default();
        let request = pb::AbortUploadRequest { file_id: self.file_id.clone(), stored_on };
        let result = self
            .app
            .control
            .call(|mut c| {
                let request = request.clone();
                async move { c.abort_upload(request).await }
            })
            .await;
        if let Err(e) = result {
            tracing::warn!(file = %self.file_id, error = %e.message(), "could not abort an upload; GC will collect it");
        }
    }
}

/// Tells the controller that these chunks of the file are durable, in one
/// call (one log entry).
async fn report_stored(app: &AppState, file_id: &str, mut chunks: Vec<pb::DurableChunk>) -> Result<(), ApiError> {
    if chunks.is_empty() {
        return Ok(());
    }
    let first = chunks.remove(0);
    let request = pb::ReportChunkStoredRequest {
        file_id: file_id.to_string(),
        index: first.index,
        size: first.size,
        crc32c: first.crc32c,
        node_ids: first.node_ids,
        more: chunks,
    };
    app.control.call_with(request, |mut c, r| async move { c.report_chunk_stored(r).await }).await?;
    Ok(())
}

/// Stores one chunk on `replication` nodes: the planned targets in
/// parallel, then replacements for the ones that failed. The nodes that
/// stored it go to `report_to`; the chunk counts as stored once a
/// majority of replicas is durable.
#[allow(clippy::too_many_arguments)]
async fn store_chunk(
    app: AppState,
    file_id: String,
    index: u32,
    chunk: Bytes,
    crc: u32,
    targets: Vec<pb::NodeAddr>,
    replication: usize,
    report_to: Reporting,
    _held: HeldForChunk,
) -> Result<(), ApiError> {
    let mut stored: Vec<String> = Vec::new();
    let mut tried: Vec<String> = Vec::new();
    let mut current = targets;
    let mut last_error = String::from("no data node was available");
    for round in 0..=REPLACEMENT_ROUNDS {
        let attempts = current.iter().map(|t| {
            let app = &app;
            let file_id = &file_id;
            let chunk = chunk.clone();
            async move { (t, datanode::upload_chunk(&app.datanodes, &t.addr, file_id, index, chunk, crc).await) }
        });
        for (target, result) in futures::future::join_all(attempts).await {
            tried.push(target.node_id.clone());
            match result {
                Ok(()) => stored.push(target.node_id.clone()),
                Err(status) => {
                    tracing::warn!(file = %file_id, chunk = index, node = %target.node_id, error = %status.message(), "replica write failed");
                    last_error = format!("{}: {}", target.node_id, status.message());
                }
            }
        }
        if stored.len() >= replication || round == REPLACEMENT_ROUNDS {
            break;
        }
        let replacement = plan(
            &app,
            pb::GetUploadPlanRequest {
                file_id: file_id.clone(),
                first_chunk: index,
                chunk_count: 1,
                exclude_nodes: tried.clone(),
                defer_create: matches!(report_to, Reporting::Deferred(_)),
                ..Default::default()
            },
        )
        .await;
        current = match replacement {
            Ok(reply) => reply
                .placements
                .into_iter()
                .next()
                .map(|p| p.targets.into_iter().take(replication - stored.len()).collect())
                .unwrap_or_default(),
            Err(_) => Vec::new(),
        };
        if current.is_empty() {
            break;
        }
    }
    match &report_to {
        Reporting::Deferred(first) => {
            first.lock().unwrap_or_else(|p| p.into_inner()).stored_on.extend(stored.iter().cloned())
        }
        Reporting::Batched(unreported) if !stored.is_empty() => {
            let chunk = pb::DurableChunk { index, size: chunk.len() as u64, crc32c: crc, node_ids: stored.clone() };
            unreported.lock().unwrap_or_else(|p| p.into_inner()).push(chunk);
        }
        Reporting::Batched(_) => {}
    }
    let quorum = replication / 2 + 1;
    if stored.len() < quorum {
        return Err(ApiError::Unavailable(format!(
            "chunk {index} was stored on {} of {replication} data nodes (need {quorum}); last error: {last_error}",
            stored.len()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{body_read_failed, chunk_buffer};
    use crate::error::ApiError;

    #[test]
    fn a_stalled_body_is_a_timeout_and_other_read_failures_are_bad_requests() {
        // As hyper and axum report it: an error whose source is the I/O error.
        #[derive(Debug, thiserror::Error)]
        #[error("error reading a body from connection")]
        struct Wrapped(#[source] std::io::Error);
        let stalled = Wrapped(std::io::Error::new(std::io::ErrorKind::TimedOut, "nothing for 60s"));
        assert!(matches!(body_read_failed(stalled), ApiError::RequestTimeout(m) if m.contains("nothing for 60s")));
        let reset = Wrapped(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        assert!(matches!(body_read_failed(reset), ApiError::BadRequest(_)));
        assert!(matches!(body_read_failed("malformed multipart body".to_string()), ApiError::BadRequest(_)));
    }

    #[test]
    fn chunk_buffers_fit_what_is_left_of_a_known_body() {
        const MIB: usize = 1 << 20;
        let chunk = 4 * MIB;
        assert_eq!(chunk_buffer(chunk, 65_536, 0).capacity(), 65_536);
        // A whole chunk, then the 1 MiB tail.
        assert_eq!(chunk_buffer(chunk, 9 * MIB as u64, 4 * MIB as u64).capacity(), chunk);
        assert_eq!(chunk_buffer(chunk, 9 * MIB as u64, 8 * MIB as u64).capacity(), MIB);
        // Unknown length, or a body longer than announced: whole chunks (at least a byte).
        assert_eq!(chunk_buffer(chunk, 0, 0).capacity(), chunk);
        assert!(chunk_buffer(chunk, 10, 10).capacity() >= 1);
    }
}

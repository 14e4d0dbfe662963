//! Batches of small chunks between data nodes: `DownloadChunks` sends
//! several chunks in one stream, `ReplicateChunks` pulls several from one
//! peer with it and stores each. Healing a node that held many small files
//! otherwise costs one call from the controller and one stream from the
//! source per 64 KiB chunk, more CPU than the bytes themselves.
//!
//! Each chunk of a batch succeeds or fails on its own: one missing or
//! corrupt chunk at the source does not fail the others.

use bytes::Bytes;
use futures::{Stream, StreamExt};
use tessera_proto::limits::{stream_pieces, MAX_BATCH_BYTES, MAX_BATCH_CHUNKS};
use tessera_proto::pb;
use tessera_proto::pb::download_chunk_response::Kind;
use tokio::task::JoinSet;
use tonic::{Code, Status};
use uuid::Uuid;

use crate::budget::{read_within, sent_within, ByteBudget};
use crate::chunk_store::{layout, ChunkBuffer, ChunkStore};

/// Durable writes of one batch running at once on the target.
const WRITES_IN_FLIGHT: usize = 8;

/// The messages that send one chunk: its header, then its bytes in pieces
/// (slices of `data`, no copy).
pub fn chunk_messages(file_id: String, index: u32, data: Bytes, crc32c: u32) -> Vec<pb::DownloadChunkResponse> {
    let header = pb::ChunkHeader { file_id, index, size: data.len() as u64, crc32c };
    std::iter::once(Kind::Header(header))
        .chain(stream_pieces(data).map(Kind::Data))
        .map(|kind| pb::DownloadChunkResponse { kind: Some(kind) })
        .collect()
}

/// Refuses a batch naming more chunks than [`MAX_BATCH_CHUNKS`].
pub fn check_batch_len(chunks: usize) -> Result<(), Status> {
    if chunks > MAX_BATCH_CHUNKS {
        return Err(Status::invalid_argument(format!("a batch of {chunks} chunks exceeds {MAX_BATCH_CHUNKS}")));
    }
    Ok(())
}

/// The bytes a `ReplicateChunks` batch adds up to, refused beyond
/// [`MAX_BATCH_BYTES`] (the target holds the whole batch at worst).
pub fn batch_bytes(chunks: &[pb::ChunkHeader]) -> Result<u64, Status> {
    check_batch_len(chunks.len())?;
    let total = chunks.iter().fold(0u64, |sum, c| sum.saturating_add(c.size));
    if total > MAX_BATCH_BYTES {
        return Err(Status::invalid_argument(format!("a batch of {total} bytes exceeds {MAX_BATCH_BYTES}")));
    }
    Ok(total)
}

/// `DownloadChunks`: the chunks in the order asked, each verified in full
/// before its first byte goes out, or a `ChunkFailure` in its place. One
/// chunk is read ahead of the one being sent: the disk and the transport
/// overlap, and at most two chunks are in memory.
pub fn download_stream(
    store: ChunkStore,
    reads: ByteBudget,
    chunks: Vec<pb::DownloadChunkRequest>,
) -> impl Stream<Item = Result<pb::DownloadChunkResponse, Status>> + Send + 'static {
    futures::stream::iter(chunks)
        .map(move |chunk| {
            let store = store.clone();
            let reads = reads.clone();
            async move {
                let read = match layout::file_id(&chunk.file_id) {
                    Ok(id) => read_within(&store, &reads, id, &chunk).await,
                    Err(e) => Err(e.into()),
                };
                match read {
                    Ok((data, crc, held)) => (chunk_messages(chunk.file_id, chunk.index, data, crc), Some(held)),
                    Err(status) => {
                        let failure = pb::ChunkFailure {
                            file_id: chunk.file_id,
                            index: chunk.index,
                            code: status.code() as i32,
                            message: status.message().to_string(),
                        };
                        (vec![pb::DownloadChunkResponse { kind: Some(Kind::Failure(failure)) }], None)
                    }
                }
            }
        })
        .buffered(2)
        .flat_map(|(messages, held)| futures::stream::iter(sent_within(messages, held)))
}

/// A chunk of the batch being received.
struct Receiving {
    /// Its place in the batch.
    at: usize,
    id: Uuid,
    /// `None`: its header did not match what was asked; its bytes are
    /// counted and dropped.
    buffer: Option<ChunkBuffer>,
    received: u64,
}

/// What became of each chunk of a `ReplicateChunks` batch, in its order.
struct Outcomes {
    source: String,
    outcomes: Vec<Option<Result<(), Status>>>,
}

impl Outcomes {
    fn set(&mut self, at: usize, outcome: Result<(), Status>) {
        if let Some(slot) = self.outcomes.get_mut(at) {
            slot.get_or_insert(outcome);
        }
    }

    fn fail_from_source(&mut self, at: usize, code: Code, message: &str) {
        let status = Status::new(code, format!("source {}: {message}", self.source));
        self.set(at, Err(status));
    }
}

/// `ReplicateChunks`: pulls `request.chunks` from `request.source_addr`
/// with one `DownloadChunks` stream and stores each chunk that arrives
/// whole with the size and CRC32C asked (`ChunkStore::write` checks the
/// bytes again and syncs them). Writes overlap the receiving of the next
/// chunks. Fails as a whole only if the source cannot be reached.
pub async fn replicate(
    store: &ChunkStore,
    mut source: pb::storage_service_client::StorageServiceClient<tonic::transport::Channel>,
    request: pb::ReplicateChunksRequest,
) -> Result<Vec<pb::ChunkCopied>, Status> {
    let wanted = request.chunks;
    let mut outcomes = Outcomes { source: request.source_addr.clone(), outcomes: vec![None; wanted.len()] };
    // Chunks asked of the source, as places in the batch with their file
    // ids: a bad id is refused here and not asked for.
    let mut asked: Vec<(usize, Uuid)> = Vec::with_capacity(wanted.len());
    for (at, chunk) in wanted.iter().enumerate() {
        match layout::file_id(&chunk.file_id) {
            Ok(id) => asked.push((at, id)),
            Err(e) => outcomes.set(at, Err(e.into())),
        }
    }
    let download = pb::DownloadChunksRequest {
        chunks: asked
            .iter()
            .map(|&(at, _)| pb::DownloadChunkRequest {
                file_id: wanted[at].file_id.clone(),
                index: wanted[at].index,
                read_once: true,
                size: wanted[at].size,
            })
            .collect(),
    };
    let mut stream = source
        .download_chunks(download)
        .await
        .map_err(|s| Status::unavailable(format!("source {}: {}", request.source_addr, s.message())))?
        .into_inner();

    let mut writes: JoinSet<(usize, Result<(), Status>)> = JoinSet::new();
    let mut next = 0usize;
    let mut current: Option<Receiving> = None;
    let mut ended_by: Option<String> = None;
    loop {
        let message = match stream.next().await {
            Some(Ok(message)) => message,
            Some(Err(status)) => {
                ended_by = Some(status.message().to_string());
                break;
            }
            None => break,
        };
        let kind = message.kind;
        // A header or a failure starts the next chunk asked: the one before
        // must be whole by then.
        if matches!(kind, Some(Kind::Header(_)) | Some(Kind::Failure(_))) {
            if let Some(cut) = current.take() {
                outcomes.fail_from_source(cut.at, Code::DataLoss, "sent fewer bytes than it announced");
            }
        }
        match kind {
            Some(Kind::Header(header)) => {
                let Some(&(at, id)) = asked.get(next) else {
                    ended_by = Some("sent more chunks than asked".into());
                    break;
                };
                next += 1;
                let want = &wanted[at];
                if header.file_id != want.file_id || header.index != want.index {
                    outcomes.fail_from_source(at, Code::Internal, "sent another chunk than the one asked");
                    ended_by = Some("sent the chunks out of order".into());
                    break;
                }
                let buffer = if header.size != want.size || header.crc32c != want.crc32c {
                    let message = format!(
                        "has crc32c {:08x}/{} bytes, expected {:08x}/{}",
                        header.crc32c, header.size, want.crc32c, want.size
                    );
                    outcomes.fail_from_source(at, Code::DataLoss, &message);
                    None
                } else {
                    Some(ChunkBuffer::with_capacity(want.size as usize))
                };
                current = Some(Receiving { at, id, buffer, received: 0 });
            }
            Some(Kind::Data(piece)) => {
                let Some(receiving) = current.as_mut() else {
                    ended_by = Some("sent data before a chunk header".into());
                    break;
                };
                receiving.received += piece.len() as u64;
                if receiving.received > wanted[receiving.at].size {
                    outcomes.fail_from_source(receiving.at, Code::DataLoss, "sent more bytes than it announced");
                    receiving.buffer = None;
                } else if let Some(buffer) = receiving.buffer.as_mut() {
                    buffer.extend_from_slice(&piece);
                }
            }
            Some(Kind::Failure(failure)) => {
                let Some(&(at, _)) = asked.get(next) else {
                    ended_by = Some("sent more chunks than asked".into());
                    break;
                };
                next += 1;
                let code = Code::from(failure.code);
                let code = if code == Code::Ok { Code::Unknown } else { code };
                outcomes.fail_from_source(at, code, &failure.message);
            }
            None => {
                ended_by = Some("sent an empty message".into());
                break;
            }
        }
        // A chunk received whole (an empty one as soon as its header came) is stored.
        if let Some(Receiving { at, id, buffer: Some(data), .. }) =
            current.take_if(|r| r.buffer.is_some() && r.received == wanted[r.at].size)
        {
            if writes.len() >= WRITES_IN_FLIGHT {
                if let Some(Ok((at, outcome))) = writes.join_next().await {
                    outcomes.set(at, outcome);
                }
            }
            let (store, want) = (store.clone(), &wanted[at]);
            let (index, size, crc) = (want.index, want.size, want.crc32c);
            writes.spawn(async move { (at, store.write(id, index, data, size, crc).await.map_err(Status::from)) });
        }
    }
    if let Some(cut) = current.take() {
        outcomes.fail_from_source(cut.at, Code::Unavailable, "ended the stream inside this chunk");
    }
    while let Some(joined) = writes.join_next().await {
        match joined {
            Ok((at, outcome)) => outcomes.set(at, outcome),
            Err(e) => tracing::error!(error = %e, "a chunk write of a batch panicked"),
        }
    }
    let ended_by = ended_by.unwrap_or_else(|| "ended the stream before this chunk".into());
    Ok(wanted
        .into_iter()
        .zip(outcomes.outcomes)
        .map(|(chunk, outcome)| {
            let outcome = outcome
                .unwrap_or_else(|| Err(Status::unavailable(format!("source {}: {ended_by}", request.source_addr))));
            let (code, error) = match outcome {
                Ok(()) => (Code::Ok as i32, String::new()),
                Err(status) => (status.code() as i32, status.message().to_string()),
            };
            pb::ChunkCopied { chunk: Some(chunk), code, error }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;

    use tessera_proto::pb::storage_service_client::StorageServiceClient;
    use tessera_proto::pb::storage_service_server::StorageServiceServer;

    use super::*;
    use crate::service::StorageApi;

    fn temp_root(name: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("tessera-batch-{name}-{}-{}", std::process::id(), Uuid::now_v7()))
    }

    /// A data node serving `store` on loopback (plaintext), and a client to it.
    async fn serve(store: ChunkStore) -> StorageServiceClient<tonic::transport::Channel> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let api = StorageApi::new("src".into(), store, 1 << 30, Arc::new(AtomicBool::new(false)), 64, 64);
        tokio::spawn(
            tessera_proto::net::grpc_server()
                .add_service(StorageServiceServer::new(api))
                .serve_with_incoming(tessera_proto::net::NoDelayIncoming::new(listener)),
        );
        let channel =
            tonic::transport::Endpoint::from_shared(format!("http://{addr}")).expect("endpoint").connect_lazy();
        StorageServiceClient::new(channel)
    }

    fn copy_of(file_id: &str, index: u32, data: &[u8]) -> pb::ChunkHeader {
        pb::ChunkHeader { file_id: file_id.into(), index, size: data.len() as u64, crc32c: crc32c::crc32c(data) }
    }

    /// Good chunks land on the target; a chunk missing at the source, one
    /// whose bytes differ from what was asked, one corrupt at the source and
    /// a bad id each fail alone, with their own reason.
    #[tokio::test]
    async fn each_chunk_of_a_batch_lands_or_fails_on_its_own() {
        let (source_root, target_root) = (temp_root("source"), temp_root("target"));
        let source_store = ChunkStore::open(&source_root, "src").await.expect("source store");
        let target_store = ChunkStore::open(&target_root, "dst").await.expect("target store");
        let file = Uuid::now_v7();
        let chunks: Vec<Vec<u8>> = vec![
            vec![7u8; 65536],
            Vec::new(),
            (0..100_000u32).map(|i| i as u8).collect(),
            vec![1u8; 10],
            vec![2u8; 300],
        ];
        for (index, data) in chunks.iter().enumerate() {
            let index = index as u32;
            let buffer = ChunkBuffer::from(&data[..]);
            source_store
                .write(file, index, buffer, data.len() as u64, crc32c::crc32c(data))
                .await
                .expect("source chunk");
        }
        // Chunk 4 rots on the source's disk.
        let rotten = source_root.join("src").join(file.to_string()).join("4.chk");
        std::fs::write(&rotten, vec![3u8; 300]).expect("corrupt chunk 4");

        let id = file.to_string();
        let asked = vec![
            copy_of(&id, 0, &chunks[0]),
            copy_of(&id, 1, &chunks[1]),
            copy_of(&id, 9, b"not there"),
            copy_of(&id, 2, &chunks[2]),
            copy_of("../escape", 0, b"x"),
            copy_of(&id, 3, b"other bytes"),
            copy_of(&id, 4, &chunks[4]),
        ];
        let request = pb::ReplicateChunksRequest { source_addr: "src".into(), chunks: asked.clone() };
        let copied = replicate(&target_store, serve(source_store).await, request).await.expect("the batch runs");

        let codes: Vec<Code> = copied.iter().map(|c| Code::from(c.code)).collect();
        assert_eq!(
            codes,
            [Code::Ok, Code::Ok, Code::NotFound, Code::Ok, Code::InvalidArgument, Code::DataLoss, Code::DataLoss],
            "{copied:?}"
        );
        for (answer, want) in copied.iter().zip(&asked) {
            assert_eq!(answer.chunk.as_ref(), Some(want));
        }
        assert!(copied[5].error.contains("expected"), "{}", copied[5].error);
        for index in [0u32, 1, 2] {
            let (data, _) = target_store.read(file, index).await.expect("copied chunk");
            assert_eq!(data, chunks[index as usize], "chunk {index}");
        }
        for index in [3u32, 4, 9] {
            assert!(target_store.read(file, index).await.is_err(), "chunk {index} must not be stored");
        }
        let _ = std::fs::remove_dir_all(source_root);
        let _ = std::fs::remove_dir_all(target_root);
    }

    #[tokio::test]
    async fn an_unreachable_source_fails_the_call_and_oversized_batches_are_refused() {
        let root = temp_root("unreachable");
        let store = ChunkStore::open(&root, "dst").await.expect("store");
        // A port nobody listens on.
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = closed.local_addr().expect("address");
        drop(closed);
        let channel =
            tonic::transport::Endpoint::from_shared(format!("http://{addr}")).expect("endpoint").connect_lazy();
        let request = pb::ReplicateChunksRequest {
            source_addr: addr.to_string(),
            chunks: vec![copy_of(&Uuid::now_v7().to_string(), 0, b"abc")],
        };
        let status = replicate(&store, StorageServiceClient::new(channel), request).await.expect_err("no source");
        assert_eq!(status.code(), Code::Unavailable);

        let many = vec![copy_of(&Uuid::now_v7().to_string(), 0, b"abc"); MAX_BATCH_CHUNKS + 1];
        assert_eq!(batch_bytes(&many).expect_err("too many").code(), Code::InvalidArgument);
        let mut large = vec![copy_of(&Uuid::now_v7().to_string(), 0, b"abc"); 2];
        large[1].size = MAX_BATCH_BYTES;
        assert_eq!(batch_bytes(&large).expect_err("too large").code(), Code::InvalidArgument);
        assert_eq!(batch_bytes(&large[..1]).expect("small enough"), 3);
        let _ = std::fs::remove_dir_all(root);
    }
}

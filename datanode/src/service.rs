//! `StorageService` over the [`ChunkStore`]: decode, check, call, encode.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tessera_proto::control_client::ChannelPool;
use tessera_proto::limits::{MAX_CHUNK_SIZE, MAX_GRPC_MESSAGE_BYTES};
use tessera_proto::pb;
use tessera_proto::pb::storage_service_client::StorageServiceClient;
use tessera_proto::pb::storage_service_server::StorageService;
use tokio::sync::OwnedSemaphorePermit;
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status, Streaming};
use uuid::Uuid;

use crate::batch;
use crate::budget::{self, ByteBudget};
use crate::chunk_store::{layout, ChunkBuffer, ChunkStore};
use crate::error::StoreError;

pub struct StorageApi {
    node_id: String,
    store: ChunkStore,
    capacity_bytes: u64,
    failed: Arc<AtomicBool>,
    /// Incoming chunks held at once (uploads, replica copies).
    writes: ByteBudget,
    /// Outgoing chunks held at once (downloads, sources of copies).
    reads: ByteBudget,
    /// Channels to other data nodes (replica copies), one per address.
    peers: ChannelPool,
}

impl StorageApi {
    pub fn new(
        node_id: String,
        store: ChunkStore,
        capacity_bytes: u64,
        failed: Arc<AtomicBool>,
        write_buffer_mib: u32,
        read_buffer_mib: u32,
    ) -> Self {
        Self {
            node_id,
            store,
            capacity_bytes,
            failed,
            writes: ByteBudget::from_mib(write_buffer_mib),
            reads: ByteBudget::from_mib(read_buffer_mib),
            peers: ChannelPool::new(Duration::from_secs(60)),
        }
    }

    /// Room in the write budget for a chunk of `size` bytes.
    async fn buffer_room(&self, size: u64) -> Result<OwnedSemaphorePermit, Status> {
        self.writes.reserve(size).await
    }

    fn check_serving(&self) -> Result<(), Status> {
        if self.failed.load(Ordering::Relaxed) {
            return Err(StoreError::Failed.into());
        }
        Ok(())
    }
}

/// Reads the header that starts every chunk stream.
async fn receive_header<S, M>(stream: &mut S, kind: impl Fn(M) -> Option<ChunkPiece>) -> Result<pb::ChunkHeader, Status>
where
    S: tokio_stream::Stream<Item = Result<M, Status>> + Unpin,
{
    let header = match stream.next().await {
        Some(Ok(message)) => match kind(message) {
            Some(ChunkPiece::Header(header)) => header,
            _ => return Err(Status::invalid_argument("a chunk stream must start with its header")),
        },
        Some(Err(status)) => return Err(status),
        None => return Err(Status::invalid_argument("empty chunk stream")),
    };
    check_size(header.size)?;
    Ok(header)
}

fn check_size(size: u64) -> Result<(), Status> {
    if size > MAX_CHUNK_SIZE {
        return Err(Status::invalid_argument(format!("chunk of {size} bytes exceeds {MAX_CHUNK_SIZE}")));
    }
    Ok(())
}

/// Receives the rest of a chunk stream into one buffer, refusing anything
/// longer than the header announced.
async fn receive_data<S, M>(
    stream: &mut S,
    kind: impl Fn(M) -> Option<ChunkPiece>,
    header: &pb::ChunkHeader,
) -> Result<ChunkBuffer, Status>
where
    S: tokio_stream::Stream<Item = Result<M, Status>> + Unpin,
{
    // Received straight into the buffer the store writes from.
    let mut data = ChunkBuffer::with_capacity(header.size as usize);
    while let Some(message) = stream.next().await {
        match kind(message?) {
            Some(ChunkPiece::Data(piece)) => {
                if (data.len() + piece.len()) as u64 > header.size {
                    return Err(Status::invalid_argument("more bytes than the header announced"));
                }
                data.extend_from_slice(&piece);
            }
            _ => return Err(Status::invalid_argument("a second header in one chunk stream")),
        }
    }
    Ok(data)
}

pub enum ChunkPiece {
    Header(pb::ChunkHeader),
    Data(Bytes),
}

fn upload_piece(message: pb::UploadChunkRequest) -> Option<ChunkPiece> {
    match message.kind? {
        pb::upload_chunk_request::Kind::Header(h) => Some(ChunkPiece::Header(h)),
        pb::upload_chunk_request::Kind::Data(d) => Some(ChunkPiece::Data(d)),
    }
}

fn download_piece(message: pb::DownloadChunkResponse) -> Option<ChunkPiece> {
    match message.kind? {
        pb::download_chunk_response::Kind::Header(h) => Some(ChunkPiece::Header(h)),
        pb::download_chunk_response::Kind::Data(d) => Some(ChunkPiece::Data(d)),
        pb::download_chunk_response::Kind::Failure(_) => None,
    }
}

fn file_id(s: &str) -> Result<Uuid, Status> {
    Ok(layout::file_id(s)?)
}

type DownloadStream =
    std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Result<pb::DownloadChunkResponse, Status>> + Send>>;

#[tonic::async_trait]
impl StorageService for StorageApi {
    async fn upload_chunk(
        &self,
        request: Request<Streaming<pb::UploadChunkRequest>>,
    ) -> Result<Response<pb::UploadChunkResponse>, Status> {
        self.check_serving()?;
        let mut stream = request.into_inner();
        let header = receive_header(&mut stream, upload_piece).await?;
        let _room = self.buffer_room(header.size).await?;
        let data = receive_data(&mut stream, upload_piece, &header).await?;
        let id = file_id(&header.file_id)?;
        self.store.write(id, header.index, data, header.size, header.crc32c).await?;
        Ok(Response::new(pb::UploadChunkResponse { size: header.size, crc32c: header.crc32c }))
    }

    type DownloadChunkStream = DownloadStream;

    async fn download_chunk(
        &self,
        request: Request<pb::DownloadChunkRequest>,
    ) -> Result<Response<Self::DownloadChunkStream>, Status> {
        self.check_serving()?;
        let req = request.into_inner();
        let id = file_id(&req.file_id)?;
        let (data, crc, held) = budget::read_within(&self.store, &self.reads, id, &req).await?;
        // The chunk is in memory already: its pieces are slices of it, sent
        // as the transport takes them (no task or channel per download). Its
        // room in the read budget goes with them, back when the last is sent
        // or the call is dropped.
        let messages = batch::chunk_messages(req.file_id, req.index, data, crc);
        Ok(Response::new(Box::pin(tokio_stream::iter(budget::sent_within(messages, held)))))
    }

    type DownloadChunksStream = DownloadStream;

    async fn download_chunks(
        &self,
        request: Request<pb::DownloadChunksRequest>,
    ) -> Result<Response<Self::DownloadChunksStream>, Status> {
        self.check_serving()?;
        let chunks = request.into_inner().chunks;
        batch::check_batch_len(chunks.len())?;
        Ok(Response::new(Box::pin(batch::download_stream(self.store.clone(), self.reads.clone(), chunks))))
    }

    async fn delete_chunk(
        &self,
        request: Request<pb::DeleteChunkRequest>,
    ) -> Result<Response<pb::DeleteChunkResponse>, Status> {
        self.check_serving()?;
        let req = request.into_inner();
        let existed = self.store.delete(file_id(&req.file_id)?, req.index).await?;
        Ok(Response::new(pb::DeleteChunkResponse { existed }))
    }

    async fn health_check(
        &self,
        _request: Request<pb::HealthCheckRequest>,
    ) -> Result<Response<pb::HealthCheckResponse>, Status> {
        self.check_serving()?;
        Ok(Response::new(pb::HealthCheckResponse {
            node_id: self.node_id.clone(),
            status: "serving".into(),
            capacity_bytes: self.capacity_bytes,
            free_bytes: crate::heartbeat::free_bytes(&self.store, self.capacity_bytes),
            chunk_count: self.store.chunk_count(),
        }))
    }

    async fn replicate_chunk(
        &self,
        request: Request<pb::ReplicateChunkRequest>,
    ) -> Result<Response<pb::ReplicateChunkResponse>, Status> {
        self.check_serving()?;
        let req = request.into_inner();
        let id = file_id(&req.file_id)?;
        check_size(req.size)?;
        let _room = self.buffer_room(req.size).await?;
        let mut source = StorageServiceClient::new(self.peers.channel(&req.source_addr))
            .max_decoding_message_size(MAX_GRPC_MESSAGE_BYTES);
        let mut stream = source
            .download_chunk(pb::DownloadChunkRequest {
                file_id: req.file_id.clone(),
                index: req.index,
                read_once: true,
                size: req.size,
            })
            .await
            .map_err(|s| Status::unavailable(format!("source {}: {}", req.source_addr, s.message())))?
            .into_inner();
        // Checked before the data: the budget was taken for `req.size`.
        let header = receive_header(&mut stream, download_piece).await?;
        if header.crc32c != req.crc32c || header.size != req.size {
            return Err(Status::data_loss(format!(
                "source {} has crc32c {:08x}/{} bytes, expected {:08x}/{}",
                req.source_addr, header.crc32c, header.size, req.crc32c, req.size
            )));
        }
        let data = receive_data(&mut stream, download_piece, &header).await?;
        // `write` recomputes the CRC32C over the received bytes.
        self.store.write(id, req.index, data, req.size, req.crc32c).await?;
        Ok(Response::new(pb::ReplicateChunkResponse { size: req.size, crc32c: req.crc32c }))
    }

    async fn replicate_chunks(
        &self,
        request: Request<pb::ReplicateChunksRequest>,
    ) -> Result<Response<pb::ReplicateChunksResponse>, Status> {
        self.check_serving()?;
        let req = request.into_inner();
        let _room = self.buffer_room(batch::batch_bytes(&req.chunks)?).await?;
        let source = StorageServiceClient::new(self.peers.channel(&req.source_addr))
            .max_decoding_message_size(MAX_GRPC_MESSAGE_BYTES);
        let chunks = batch::replicate(&self.store, source, req).await?;
        Ok(Response::new(pb::ReplicateChunksResponse { chunks }))
    }

    async fn set_failure_simulation(
        &self,
        request: Request<pb::SetFailureSimulationRequest>,
    ) -> Result<Response<pb::SetFailureSimulationResponse>, Status> {
        let failed = request.into_inner().failed;
        self.failed.store(failed, Ordering::Relaxed);
        tracing::warn!(failed, "failure simulation changed");
        Ok(Response::new(pb::SetFailureSimulationResponse {}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_write_budget_counts_bytes_not_chunks() {
        let dir = std::env::temp_dir().join(format!("tessera-write-budget-{}", std::process::id()));
        let store = ChunkStore::open(&dir, "dn").await.expect("open store");
        let api = StorageApi::new("dn".into(), store, 1 << 30, Arc::new(AtomicBool::new(false)), 1, 1);
        // A 1 MiB budget holds sixteen 64 KiB chunks at once, and no more.
        let mut held = Vec::new();
        for _ in 0..16 {
            held.push(api.buffer_room(64 * 1024).await.expect("room"));
        }
        assert_eq!(api.writes.available_kib(), 0);
        drop(held);
        assert_eq!(api.writes.available_kib(), 1024);
        // A chunk larger than the whole budget waits for all of it, not forever.
        let big = api.buffer_room(64 << 20).await.expect("room for a large chunk");
        assert_eq!(api.writes.available_kib(), 0);
        drop(big);
        // Even an empty chunk takes a permit: the count of writes stays bounded.
        let _empty = api.buffer_room(0).await.expect("room");
        assert_eq!(api.writes.available_kib(), 1023);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn a_download_holds_its_room_in_the_read_budget_until_it_is_sent() {
        let dir = std::env::temp_dir().join(format!("tessera-read-budget-{}-{}", std::process::id(), Uuid::now_v7()));
        let store = ChunkStore::open(&dir, "dn").await.expect("open store");
        let id = Uuid::now_v7();
        let data = vec![7u8; 768 * 1024];
        let crc = tessera_proto::checksum::crc32c(&data);
        store.write(id, 0, ChunkBuffer::from(&data[..]), data.len() as u64, crc).await.expect("write");
        // A 1 MiB read budget: one 768 KiB chunk at a time.
        let api = StorageApi::new("dn".into(), store, 1 << 30, Arc::new(AtomicBool::new(false)), 1, 1);
        let ask = |size: u64| {
            Request::new(pb::DownloadChunkRequest { file_id: id.to_string(), index: 0, read_once: false, size })
        };
        let first = api.download_chunk(ask(data.len() as u64)).await.expect("first download").into_inner();
        assert_eq!(api.reads.available_kib(), 256);
        let second = api.download_chunk(ask(data.len() as u64));
        tokio::pin!(second);
        assert!(
            tokio::time::timeout(Duration::from_millis(100), &mut second).await.is_err(),
            "a second chunk waits while the first one's bytes are unsent"
        );
        drop(first);
        let second = tokio::time::timeout(Duration::from_secs(5), second)
            .await
            .expect("the room comes back when the first download is dropped")
            .expect("second download")
            .into_inner();
        let received: Vec<_> = second.collect().await;
        assert!(received.len() >= 2 && received.iter().all(Result::is_ok), "header and data: {}", received.len());
        assert_eq!(api.reads.available_kib(), 1024, "given back once the last message is taken");
        // Size unknown (0): taken after the read, by what was read.
        let unknown = api.download_chunk(ask(0)).await.expect("download").into_inner();
        assert_eq!(api.reads.available_kib(), 256);
        drop(unknown);
        assert_eq!(api.reads.available_kib(), 1024);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

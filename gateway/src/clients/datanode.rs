//! Chunk transfers to and from one data node.

use bytes::Bytes;
use tessera_proto::checksum::crc32c_append;
use tessera_proto::limits::{stream_pieces, MAX_GRPC_MESSAGE_BYTES};
use tessera_proto::pb;
use tessera_proto::pb::storage_service_client::StorageServiceClient;
use tokio_stream::StreamExt;
use tonic::Status;

use crate::state::DatanodePool;

fn client(pool: &DatanodePool, addr: &str) -> StorageServiceClient<tonic::transport::Channel> {
    StorageServiceClient::new(pool.channel(addr))
        .max_decoding_message_size(MAX_GRPC_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_GRPC_MESSAGE_BYTES)
}

/// Streams one chunk to a data node; returns once it is fsynced there.
pub async fn upload_chunk(
    pool: &DatanodePool,
    addr: &str,
    file_id: &str,
    index: u32,
    data: Bytes,
    crc32c: u32,
) -> Result<(), Status> {
    let header = pb::ChunkHeader { file_id: file_id.to_string(), index, size: data.len() as u64, crc32c };
    let messages = std::iter::once(pb::upload_chunk_request::Kind::Header(header))
        .chain(stream_pieces(data).map(pb::upload_chunk_request::Kind::Data))
        .map(|kind| pb::UploadChunkRequest { kind: Some(kind) });
    let reply = client(pool, addr).upload_chunk(tokio_stream::iter(messages)).await?.into_inner();
    if reply.crc32c != crc32c {
        return Err(Status::data_loss(format!("{addr} acknowledged crc32c {:08x}, sent {crc32c:08x}", reply.crc32c)));
    }
    Ok(())
}

/// A chunk as the pieces it arrived in (never copied into one buffer) and
/// the CRC32C of their bytes, computed as they came.
pub struct ReceivedChunk {
    pub pieces: Vec<Bytes>,
    pub len: u64,
    pub crc32c: u32,
}

/// Downloads one whole chunk (at most `max_size` bytes) with the CRC32C of
/// what arrived; the caller verifies both against the metadata.
pub async fn download_chunk(
    pool: &DatanodePool,
    addr: &str,
    file_id: &str,
    index: u32,
    max_size: u64,
) -> Result<ReceivedChunk, Status> {
    let mut stream = client(pool, addr)
        .download_chunk(pb::DownloadChunkRequest {
            file_id: file_id.to_string(),
            index,
            read_once: false,
            size: max_size,
        })
        .await?
        .into_inner();
    let header = match stream.next().await {
        Some(Ok(pb::DownloadChunkResponse { kind: Some(pb::download_chunk_response::Kind::Header(h)) })) => h,
        Some(Err(status)) => return Err(status),
        _ => return Err(Status::internal(format!("{addr} sent no chunk header"))),
    };
    if header.size > max_size {
        return Err(Status::data_loss(format!("{addr} announces {} bytes, expected at most {max_size}", header.size)));
    }
    let mut chunk = ReceivedChunk { pieces: Vec::new(), len: 0, crc32c: 0 };
    while let Some(message) = stream.next().await {
        match message?.kind {
            Some(pb::download_chunk_response::Kind::Data(piece)) => {
                chunk.len += piece.len() as u64;
                if chunk.len > header.size {
                    return Err(Status::data_loss(format!("{addr} sent more bytes than announced")));
                }
                chunk.crc32c = crc32c_append(chunk.crc32c, &piece);
                chunk.pieces.push(piece);
            }
            _ => return Err(Status::internal(format!("{addr} sent a second header"))),
        }
    }
    Ok(chunk)
}

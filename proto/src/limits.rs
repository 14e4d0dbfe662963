//! Size limits shared by every edge, so that one service never sends what the
//! next one refuses.

/// Largest gRPC message any service encodes or accepts. Chunk data travels in
/// pieces of [`STREAM_PIECE_BYTES`], so this only bounds control messages and
/// one piece with its framing.
pub const MAX_GRPC_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

/// Size of one data message in chunk upload and download streams.
pub const STREAM_PIECE_BYTES: usize = 1024 * 1024;

/// `chunk` cut into the data messages of a chunk stream: slices sharing its
/// buffer, so sending it to several replicas copies nothing here.
pub fn stream_pieces(chunk: prost::bytes::Bytes) -> impl Iterator<Item = prost::bytes::Bytes> {
    (0..chunk.len())
        .step_by(STREAM_PIECE_BYTES)
        .map(move |at| chunk.slice(at..(at + STREAM_PIECE_BYTES).min(chunk.len())))
}

/// Largest chunk size a controller may be configured with.
pub const MAX_CHUNK_SIZE: u64 = 64 * 1024 * 1024;

/// Most chunks one `ReplicateChunks` or `DownloadChunks` call may name,
/// and the most bytes they may add up to: a batch is for small chunks, and
/// the target holds a whole batch in memory at worst.
pub const MAX_BATCH_CHUNKS: usize = 64;
pub const MAX_BATCH_BYTES: u64 = 16 * 1024 * 1024;

/// Longest file name, in bytes (as on ext4).
pub const MAX_NAME_BYTES: usize = 255;

/// HTTP/2 flow-control windows of every gRPC connection. hyper's defaults
/// (1 MiB per stream and per connection on a server) make a sender of a
/// 4 MiB chunk wait for credit several times per chunk, and let the chunks
/// of parallel transfers on one connection starve each other. A chunk's
/// worth per stream; what a peer may buffer here stays bounded by these.
pub const STREAM_WINDOW_BYTES: u32 = 4 * 1024 * 1024;
pub const CONNECTION_WINDOW_BYTES: u32 = 16 * 1024 * 1024;

/// Largest HTTP/2 frame every gRPC connection accepts. h2's default of
/// 16 KiB cuts each 1 MiB piece of chunk data into 64 DATA frames, each
/// decoded, flow-controlled and handed over on its own. Measured with
/// `tessera-bench rpc` on 4 MiB chunks (CPU per GiB, both ends): 256 KiB
/// frames cost ~10 % less than 16 KiB; 1 MiB frames cost more than either
/// (the receiver holds a frame whole before it passes any of it on).
pub const MAX_FRAME_BYTES: u32 = 256 * 1024;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_pieces_cover_the_chunk_in_order() {
        let chunk = prost::bytes::Bytes::from((0..STREAM_PIECE_BYTES * 5 / 2).map(|i| i as u8).collect::<Vec<_>>());
        let pieces: Vec<_> = stream_pieces(chunk.clone()).collect();
        assert_eq!(
            pieces.iter().map(|p| p.len()).collect::<Vec<_>>(),
            [STREAM_PIECE_BYTES, STREAM_PIECE_BYTES, STREAM_PIECE_BYTES / 2]
        );
        assert_eq!(pieces.concat(), chunk);
        assert_eq!(stream_pieces(prost::bytes::Bytes::new()).count(), 0);
    }
}

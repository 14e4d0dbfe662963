//! Size limits shared by every edge, so that one service never sends what the
//! next one refuses.

/// Largest gRPC message any service encodes or accepts. Chunk data travels in
/// pieces of [`STREAM_PIECE_BYTES`], so this only bounds control messages and
/// one piece with its framing.
pub const MAX_GRPC_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

/// Size of one data message in chunk upload and download streams.
pub const STREAM_PIECE_BYTES: usize = 1024 * 1024;

/// Largest chunk size a controller may be configured with.
pub const MAX_CHUNK_SIZE: u64 = 64 * 1024 * 1024;

/// Longest file name, in bytes (as on ext4).
pub const MAX_NAME_BYTES: usize = 255;

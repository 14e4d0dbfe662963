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

//! The chunk store: durable chunk files, each carrying its checksum.
//!
//! A write is verified (size and CRC32C against what the sender announced)
//! before anything becomes visible, then goes to a temp file with the
//! checksum as an extended attribute ([`xattr`]; a `.crc` sidecar where the
//! filesystem has none), fsynced, renamed into place, and the directory
//! fsynced: when `write` returns, the chunk survives a crash. Every read verifies the CRC32C of the
//! whole chunk before returning a byte. File work runs on the blocking
//! pool, except reading a small chunk that is wholly cached
//! ([`cached_read`]); the store holds no lock across it.

mod cached_read;
pub mod layout;
mod xattr;

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use tessera_proto::checksum::{crc32c, crc32c_append};
use tessera_proto::pb::StoredChunk;
use uuid::Uuid;

use crate::error::StoreError;
use layout::Layout;

#[derive(Clone)]
pub struct ChunkStore {
    inner: Arc<Inner>,
}

struct Inner {
    layout: Layout,
    /// Large chunks are written with `O_DIRECT` (see [`create_chunk_file`]),
    /// chunks read once read with it (see [`read_chunk_file`]).
    direct_io: AtomicBool,
    chunk_count: AtomicU64,
    used_bytes: AtomicU64,
}

/// The `.crc` sidecar: `<crc32c hex> <size>`.
fn encode_sidecar(crc: u32, size: u64) -> String {
    format!("{crc:08x} {size}\n")
}

fn decode_sidecar(text: &str) -> Option<(u32, u64)> {
    let (crc, size) = text.trim().split_once(' ')?;
    Some((u32::from_str_radix(crc, 16).ok()?, size.parse().ok()?))
}

fn corrupt(name: &str, why: String) -> StoreError {
    tracing::warn!(chunk = %name, reason = %why, "corrupt chunk");
    StoreError::Corrupt(name.to_string(), why)
}

/// A chunk's bytes checked against its checksum record (`<crc> <size>`).
fn verified(name: &str, data: Bytes, sidecar: &str) -> Result<(Bytes, u32), StoreError> {
    let (crc, size) = decode_sidecar(sidecar).ok_or_else(|| corrupt(name, "checksum file malformed".into()))?;
    if data.len() as u64 != size {
        return Err(corrupt(name, format!("{} bytes on disk, {size} expected", data.len())));
    }
    let actual = crc32c(&data);
    if actual != crc {
        return Err(corrupt(name, format!("crc32c {actual:08x} on disk, {crc:08x} expected")));
    }
    Ok((data, crc))
}

fn temp_name(path: &Path) -> PathBuf {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("chunk");
    path.with_file_name(format!(".{name}.tmp-{:016x}", rand::random::<u64>()))
}

fn write_synced(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let mut file = OpenOptions::new().write(true).create_new(true).open(path)?;
    file.write_all(data)?;
    file.sync_all()
}

/// Chunks at least this large are written with `O_DIRECT`. Through the
/// page cache, the kernel's copy of the data costs far more CPU than the
/// write: 1.2-3.7 s against 0.15-0.19 s of system time per 768 MB of
/// 4 MiB files (fsync'd, on this machine), and an upload at RF 3 writes
/// every byte three times on the same cores. Small chunks stay buffered:
/// their cost is creating the file, and they are often read right back.
const DIRECT_IO_MIN_BYTES: usize = 1024 * 1024;
/// Buffer address, length and file offset of an `O_DIRECT` write are
/// multiples of this (the largest logical block size in common use).
const DIRECT_IO_ALIGN: usize = 4096;

/// `len` bytes rounded up to whole `O_DIRECT` blocks.
fn whole_blocks(len: usize) -> usize {
    len.div_ceil(DIRECT_IO_ALIGN) * DIRECT_IO_ALIGN
}

/// A chunk's bytes as they arrive, laid out so that `O_DIRECT` writes them
/// without another copy: the first byte is block-aligned and there is room
/// for the zero padding up to a whole block.
pub struct ChunkBuffer {
    bytes: Vec<u8>,
    /// Where the chunk starts in `bytes` (the alignment offset).
    start: usize,
    /// CRC32C of the bytes appended so far, computed as they are copied in
    /// (see [`Self::extend_from_slice`]).
    crc: u32,
}

/// [`ChunkBuffer::extend_from_slice`] copies and checksums this much at a
/// time, so the checksum reads what the copy just brought into the cache.
const COPY_CRC_STEP: usize = 64 * 1024;

impl ChunkBuffer {
    pub fn with_capacity(size: usize) -> Self {
        let mut bytes: Vec<u8> = Vec::with_capacity(size + 2 * DIRECT_IO_ALIGN);
        let start = bytes.as_ptr().align_offset(DIRECT_IO_ALIGN);
        let start = if start < DIRECT_IO_ALIGN { start } else { 0 };
        bytes.resize(start, 0);
        Self { bytes, start, crc: 0 }
    }

    pub fn len(&self) -> usize {
        self.bytes.len() - self.start
    }

    /// Appends `piece`, extending the running CRC32C over it step by step
    /// while each step is still in the cache from its copy: checksummed
    /// afterwards in one pass over a 4 MiB chunk, the CRC32C read it back
    /// from memory and cost a data node 8 % of its CPU during an upload
    /// (docs/performance.md, item 54).
    pub fn extend_from_slice(&mut self, piece: &[u8]) {
        for step in piece.chunks(COPY_CRC_STEP) {
            self.bytes.extend_from_slice(step);
            self.crc = crc32c_append(self.crc, step);
        }
    }

    /// CRC32C of everything appended with [`Self::extend_from_slice`].
    pub fn crc32c(&self) -> u32 {
        self.crc
    }

    pub fn as_slice(&self) -> &[u8] {
        &self.bytes[self.start..]
    }

    /// The chunk zero-padded to whole blocks, or `None` if its start is no
    /// longer aligned (a buffer that outgrew its capacity moved).
    fn padded_to_blocks(&mut self) -> Option<&[u8]> {
        let padded = whole_blocks(self.len());
        if self.as_slice().as_ptr().align_offset(DIRECT_IO_ALIGN) != 0 {
            return None;
        }
        self.bytes.resize(self.start + padded, 0);
        Some(&self.bytes[self.start..])
    }

    /// Room for `size` bytes in whole blocks, block-aligned (zeroed), for
    /// an `O_DIRECT` read; an empty buffer must have the capacity for it.
    fn padded_to_blocks_of(&mut self, size: usize) -> &mut [u8] {
        self.bytes.resize(self.start + whole_blocks(size), 0);
        &mut self.bytes[self.start..]
    }

    /// The first `len` bytes of the chunk, without a copy.
    fn into_bytes(self, len: usize) -> Bytes {
        let end = (self.start + len).min(self.bytes.len());
        Bytes::from(self.bytes).slice(self.start..end)
    }
}

impl From<&[u8]> for ChunkBuffer {
    fn from(data: &[u8]) -> Self {
        let mut buffer = Self::with_capacity(data.len());
        buffer.extend_from_slice(data);
        buffer
    }
}

/// Creates `path` holding `data`, not yet synced. Large chunks bypass the
/// page cache while the filesystem allows it (tmpfs and some others refuse
/// `O_DIRECT`; `direct_io` is cleared on the first refusal).
fn create_chunk_file(path: &Path, data: &mut ChunkBuffer, direct_io: &AtomicBool) -> std::io::Result<File> {
    if data.len() >= DIRECT_IO_MIN_BYTES && direct_io.load(Ordering::Relaxed) {
        match OpenOptions::new().write(true).create_new(true).custom_flags(libc::O_DIRECT).open(path) {
            Ok(file) => {
                write_direct(&file, data)?;
                return Ok(file);
            }
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                tracing::info!(error = %e, "the filesystem refuses O_DIRECT; chunks go through the page cache");
                direct_io.store(false, Ordering::Relaxed);
                // Linux creates the file before it checks the flag.
                match fs::remove_file(path) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
            }
            Err(e) => return Err(e),
        }
    }
    let mut file = OpenOptions::new().write(true).create_new(true).open(path)?;
    file.write_all(data.as_slice())?;
    Ok(file)
}

/// Writes whole blocks (the buffer's zero padding included), then cuts
/// the padding off.
fn write_direct(mut file: &File, data: &mut ChunkBuffer) -> std::io::Result<()> {
    let len = data.len();
    match data.padded_to_blocks() {
        Some(blocks) => file.write_all(blocks)?,
        // Not aligned: once more through an aligned copy.
        None => file.write_all(
            ChunkBuffer::from(data.as_slice())
                .padded_to_blocks()
                .ok_or_else(|| std::io::Error::other("cannot align a buffer for O_DIRECT"))?,
        )?,
    }
    file.set_len(len as u64)
}

/// A chunk file's bytes and its checksum attribute, both from one open
/// file (a chunk rewritten meanwhile is replaced by rename, never mixed).
/// `direct`: read with `O_DIRECT` while the filesystem allows it (cleared,
/// as for writes, on the first refusal).
fn read_chunk_file(path: &Path, direct: Option<&AtomicBool>) -> std::io::Result<(Bytes, Option<Vec<u8>>)> {
    if let Some(direct_io) = direct.filter(|d| d.load(Ordering::Relaxed)) {
        match OpenOptions::new().read(true).custom_flags(libc::O_DIRECT).open(path) {
            Ok(file) => {
                if let Some(data) = read_direct(&file)? {
                    return Ok((data, xattr::get(&file)?));
                }
            }
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {}
            Err(e) => return Err(e),
        }
        tracing::info!("the filesystem refuses O_DIRECT reads; chunks are read through the page cache");
        direct_io.store(false, Ordering::Relaxed);
    }
    let mut file = File::open(path)?;
    let mut data = Vec::new();
    file.read_to_end(&mut data)?;
    Ok((Bytes::from(data), xattr::get(&file)?))
}

/// The whole file opened with `O_DIRECT`, read in whole blocks into an
/// aligned buffer (the read reaching the end of the file comes back
/// short); `None` if the filesystem refuses the aligned read.
fn read_direct(mut file: &File) -> std::io::Result<Option<Bytes>> {
    let size = usize::try_from(file.metadata()?.len()).map_err(std::io::Error::other)?;
    let mut buffer = ChunkBuffer::with_capacity(size);
    let blocks = buffer.padded_to_blocks_of(size);
    let mut filled = 0;
    loop {
        match file.read(&mut blocks[filled..]) {
            Ok(n) if n > 0 && filled + n < size && n % DIRECT_IO_ALIGN == 0 => filled += n,
            Ok(n) => return Ok(Some(buffer.into_bytes(filled + n))),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) && filled == 0 => return Ok(None),
            Err(e) => return Err(e),
        }
    }
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

impl ChunkStore {
    /// Opens the store, removing temp files a crash left behind and
    /// counting the chunks present.
    pub async fn open(data_root: &Path, node_id: &str) -> Result<Self, StoreError> {
        let layout = Layout::new(data_root, node_id);
        let dir = layout.node_dir().to_path_buf();
        tokio::task::spawn_blocking(move || {
            fs::create_dir_all(&dir)?;
            for file_dir in fs::read_dir(&dir)?.flatten() {
                if file_dir.path().is_dir() {
                    for entry in fs::read_dir(file_dir.path())?.flatten() {
                        if entry.file_name().to_string_lossy().starts_with('.') {
                            let _ = fs::remove_file(entry.path());
                        }
                    }
                }
            }
            Ok::<_, std::io::Error>(())
        })
        .await
        .map_err(|e| StoreError::Io(std::io::Error::other(e)))??;
        let store = Self {
            inner: Arc::new(Inner {
                layout,
                direct_io: AtomicBool::new(true),
                chunk_count: AtomicU64::new(0),
                used_bytes: AtomicU64::new(0),
            }),
        };
        let inventory = store.inventory().await?;
        store.inner.chunk_count.store(inventory.len() as u64, Ordering::Relaxed);
        store.inner.used_bytes.store(inventory.iter().map(|c| c.size).sum(), Ordering::Relaxed);
        Ok(store)
    }

    pub fn chunk_count(&self) -> u64 {
        self.inner.chunk_count.load(Ordering::Relaxed)
    }

    pub fn used_bytes(&self) -> u64 {
        self.inner.used_bytes.load(Ordering::Relaxed)
    }

    pub fn node_dir(&self) -> &Path {
        self.inner.layout.node_dir()
    }

    /// Stores a chunk durably after checking it against the announced size
    /// and CRC32C. Rewriting an existing chunk replaces it atomically.
    pub async fn write(
        &self,
        file_id: Uuid,
        index: u32,
        mut data: ChunkBuffer,
        size: u64,
        crc: u32,
    ) -> Result<(), StoreError> {
        if data.len() as u64 != size {
            return Err(StoreError::Mismatch(format!("announced {size} bytes, received {}", data.len())));
        }
        let store = self.clone();
        tokio::task::spawn_blocking(move || {
            let actual = data.crc32c();
            if actual != crc {
                return Err(StoreError::Mismatch(format!("announced crc32c {crc:08x}, received {actual:08x}")));
            }
            let layout = &store.inner.layout;
            let dir = layout.file_dir(&file_id);
            let new_dir = !dir.exists();
            fs::create_dir_all(&dir)?;
            let chunk_path = layout.chunk_path(&file_id, index);
            let crc_path = layout.crc_path(&file_id, index);
            let previous = fs::metadata(&chunk_path).ok().map(|m| m.len());
            let chunk_tmp = temp_name(&chunk_path);
            let crc_tmp = temp_name(&crc_path);
            let checksum = encode_sidecar(crc, size);
            let result = (|| {
                let file = create_chunk_file(&chunk_tmp, &mut data, &store.inner.direct_io)?;
                let in_xattr = match xattr::set(&file, checksum.as_bytes()) {
                    Ok(()) => true,
                    Err(e) if xattr::unsupported(&e) => false,
                    Err(e) => return Err(e),
                };
                file.sync_all()?;
                drop(file);
                if !in_xattr {
                    write_synced(&crc_tmp, checksum.as_bytes())?;
                    // Sidecar first: a chunk file never exists without its checksum.
                    fs::rename(&crc_tmp, &crc_path)?;
                }
                fs::rename(&chunk_tmp, &chunk_path)?;
                sync_dir(&dir)?;
                if new_dir {
                    sync_dir(layout.node_dir())?;
                }
                Ok::<_, std::io::Error>(())
            })();
            if let Err(e) = result {
                let _ = fs::remove_file(&chunk_tmp);
                let _ = fs::remove_file(&crc_tmp);
                return Err(StoreError::Io(e));
            }
            match previous {
                Some(old) => {
                    store.inner.used_bytes.fetch_sub(old.min(store.used_bytes()), Ordering::Relaxed);
                }
                None => {
                    store.inner.chunk_count.fetch_add(1, Ordering::Relaxed);
                }
            }
            store.inner.used_bytes.fetch_add(size, Ordering::Relaxed);
            Ok(())
        })
        .await
        .map_err(|e| StoreError::Io(std::io::Error::other(e)))?
    }

    /// Reads a whole chunk and verifies it; returns the bytes and CRC32C.
    pub async fn read(&self, file_id: Uuid, index: u32) -> Result<(Bytes, u32), StoreError> {
        self.read_chunk(file_id, index, false).await
    }

    /// [`Self::read`] for bytes wanted once (a replica copy, a scrub): a
    /// chunk not already in memory is read with `O_DIRECT`, straight from
    /// the disk into the buffer. Through the page cache, the kernel's copy
    /// out of it and the pages it fills took a sixth of a data node's CPU
    /// while healing, for data nobody reads again soon; and what users do
    /// read stays cached.
    pub async fn read_once(&self, file_id: Uuid, index: u32) -> Result<(Bytes, u32), StoreError> {
        self.read_chunk(file_id, index, true).await
    }

    async fn read_chunk(&self, file_id: Uuid, index: u32, once: bool) -> Result<(Bytes, u32), StoreError> {
        let name = format!("{file_id}/{index}");
        let chunk_path = self.inner.layout.chunk_path(&file_id, index);
        if let Some((data, attribute)) = cached_read::read_if_cached(&chunk_path) {
            return verified(&name, Bytes::from(data), &String::from_utf8_lossy(&attribute));
        }
        let crc_path = self.inner.layout.crc_path(&file_id, index);
        let store = self.clone();
        tokio::task::spawn_blocking(move || {
            let direct = once.then_some(&store.inner.direct_io);
            let (data, attribute) = match read_chunk_file(&chunk_path, direct) {
                Ok(read) => read,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(StoreError::NotFound(name)),
                Err(e) => return Err(e.into()),
            };
            let sidecar = match attribute {
                Some(value) => String::from_utf8_lossy(&value).into_owned(),
                None => fs::read_to_string(crc_path)
                    .map_err(|e| corrupt(&name, format!("checksum file unreadable: {e}")))?,
            };
            verified(&name, data, &sidecar)
        })
        .await
        .map_err(|e| StoreError::Io(std::io::Error::other(e)))?
    }

    /// Deletes a chunk; returns whether it existed. Idempotent.
    pub async fn delete(&self, file_id: Uuid, index: u32) -> Result<bool, StoreError> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || {
            let layout = &store.inner.layout;
            let chunk_path = layout.chunk_path(&file_id, index);
            let size = fs::metadata(&chunk_path).ok().map(|m| m.len());
            let existed = match fs::remove_file(&chunk_path) {
                Ok(()) => true,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
                Err(e) => return Err(e.into()),
            };
            let _ = fs::remove_file(layout.crc_path(&file_id, index));
            let dir = layout.file_dir(&file_id);
            // Only succeeds when empty, which is what we want.
            let _ = fs::remove_dir(&dir);
            if existed {
                store.inner.chunk_count.fetch_sub(1, Ordering::Relaxed);
                let size = size.unwrap_or(0).min(store.used_bytes());
                store.inner.used_bytes.fetch_sub(size, Ordering::Relaxed);
            }
            Ok(existed)
        })
        .await
        .map_err(|e| StoreError::Io(std::io::Error::other(e)))?
    }

    /// Every chunk on disk, with the size and CRC32C its sidecar records.
    pub async fn inventory(&self) -> Result<Vec<StoredChunk>, StoreError> {
        let dir = self.node_dir().to_path_buf();
        tokio::task::spawn_blocking(move || {
            let mut chunks = Vec::new();
            for file_dir in fs::read_dir(&dir)?.flatten() {
                let Some(file_id) = file_dir.file_name().to_str().and_then(|n| layout::file_id(n).ok()) else {
                    continue;
                };
                for entry in fs::read_dir(file_dir.path())?.flatten() {
                    let Some(index) = entry.file_name().to_str().and_then(layout::chunk_index) else { continue };
                    let sidecar = match xattr::get_path(&entry.path()) {
                        Ok(Some(value)) => String::from_utf8_lossy(&value).into_owned(),
                        _ => fs::read_to_string(file_dir.path().join(format!("{index}.crc"))).unwrap_or_default(),
                    };
                    let (crc32c, size) =
                        decode_sidecar(&sidecar).unwrap_or((0, entry.metadata().map(|m| m.len()).unwrap_or(0)));
                    chunks.push(StoredChunk { file_id: file_id.to_string(), index, size, crc32c });
                }
            }
            Ok(chunks)
        })
        .await
        .map_err(|e| StoreError::Io(std::io::Error::other(e)))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_root() -> PathBuf {
        std::env::temp_dir().join(format!("tessera-store-{:016x}", rand::random::<u64>()))
    }

    #[tokio::test]
    async fn round_trip_corruption_delete_inventory() {
        let root = temp_root();
        let store = ChunkStore::open(&root, "dn1").await.unwrap();
        let id = Uuid::now_v7();
        let data = Bytes::from(vec![7u8; 1000]);
        store.write(id, 0, ChunkBuffer::from(&data[..]), 1000, crc32c(&data)).await.unwrap();
        assert_eq!(store.chunk_count(), 1);
        let (read, crc) = store.read(id, 0).await.unwrap();
        assert_eq!(read, data);
        assert_eq!(crc, crc32c(&data));
        assert!(root.join("dn1").join(id.to_string()).join("0.chk").exists());

        // Wrong checksum or size: refused, nothing left behind.
        assert!(matches!(
            store.write(id, 1, ChunkBuffer::from(&data[..]), 1000, 1).await,
            Err(StoreError::Mismatch(_))
        ));
        assert!(matches!(
            store.write(id, 1, ChunkBuffer::from(&data[..]), 999, crc32c(&data)).await,
            Err(StoreError::Mismatch(_))
        ));
        assert!(!root.join("dn1").join(id.to_string()).join("1.chk").exists());
        let left: Vec<String> = fs::read_dir(root.join("dn1").join(id.to_string()))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(left.iter().all(|n| n == "0.chk" || n == "0.crc"), "no temp file left: {left:?}");

        // Bytes flipped on disk: detected on read.
        let path = root.join("dn1").join(id.to_string()).join("0.chk");
        let mut bytes = fs::read(&path).unwrap();
        bytes[10] ^= 0xff;
        fs::write(&path, bytes).unwrap();
        assert!(matches!(store.read(id, 0).await, Err(StoreError::Corrupt(..))));

        let inventory = store.inventory().await.unwrap();
        assert_eq!(inventory.len(), 1);
        assert_eq!(inventory[0].size, 1000);

        assert!(store.delete(id, 0).await.unwrap());
        assert!(!store.delete(id, 0).await.unwrap());
        assert_eq!(store.chunk_count(), 0);
        assert!(matches!(store.read(id, 0).await, Err(StoreError::NotFound(_))));
        assert!(!root.join("dn1").join(id.to_string()).exists());
        let _ = fs::remove_dir_all(root);
    }

    #[test]
    fn a_chunk_buffer_checksums_what_it_is_given_in_pieces_of_any_size() {
        let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
        for cuts in [&[][..], &[1][..], &[65_535, 65_537][..], &[131_072, 200_000, 299_999][..]] {
            let mut buffer = ChunkBuffer::with_capacity(data.len());
            let mut at = 0;
            for &cut in cuts.iter().chain(std::iter::once(&data.len())) {
                buffer.extend_from_slice(&data[at..cut]);
                at = cut;
            }
            assert_eq!(buffer.as_slice(), &data[..], "cuts {cuts:?}");
            assert_eq!(buffer.crc32c(), crc32c(&data), "cuts {cuts:?}");
        }
        assert_eq!(ChunkBuffer::with_capacity(0).crc32c(), crc32c(b""));
    }

    #[test]
    fn a_received_chunk_is_written_from_its_own_aligned_buffer() {
        let mut buffer = ChunkBuffer::with_capacity(3 * DIRECT_IO_ALIGN + 5);
        buffer.extend_from_slice(&[1u8; DIRECT_IO_ALIGN]);
        buffer.extend_from_slice(&[2u8; 2 * DIRECT_IO_ALIGN + 5]);
        let first_byte = buffer.as_slice().as_ptr();
        let blocks = buffer.padded_to_blocks().expect("aligned");
        assert_eq!(blocks.as_ptr(), first_byte, "written in place, not copied");
        assert_eq!(blocks.len(), 4 * DIRECT_IO_ALIGN);
        assert_eq!(blocks[3 * DIRECT_IO_ALIGN + 4], 2);
        assert!(blocks[3 * DIRECT_IO_ALIGN + 5..].iter().all(|&b| b == 0), "zero padding");
    }

    /// Large chunks of any length (not a multiple of the O_DIRECT block)
    /// come back byte for byte, with their exact size, in the data
    /// directory and on a tmpfs (which may refuse O_DIRECT).
    #[tokio::test]
    async fn large_chunks_of_odd_sizes_round_trip() {
        let shm = PathBuf::from("/dev/shm").join(format!("tessera-store-{:016x}", rand::random::<u64>()));
        let roots = if Path::new("/dev/shm").is_dir() { vec![temp_root(), shm] } else { vec![temp_root()] };
        for root in roots {
            let store = ChunkStore::open(&root, "dn1").await.unwrap();
            let id = Uuid::now_v7();
            for (index, len) in
                [DIRECT_IO_MIN_BYTES, DIRECT_IO_MIN_BYTES + 1, 4 * 1024 * 1024 - 7].into_iter().enumerate()
            {
                let data = Bytes::from((0..len).map(|i| (i * 31 % 251) as u8).collect::<Vec<u8>>());
                store.write(id, index as u32, ChunkBuffer::from(&data[..]), len as u64, crc32c(&data)).await.unwrap();
                let path = root.join("dn1").join(id.to_string()).join(format!("{index}.chk"));
                assert_eq!(fs::metadata(&path).unwrap().len(), len as u64, "{}", root.display());
                let (read, _) = store.read(id, index as u32).await.unwrap();
                assert_eq!(read, data, "{}", root.display());
                let (read, crc) = store.read_once(id, index as u32).await.unwrap();
                assert_eq!((read, crc), (data.clone(), crc32c(&data)), "read once, {}", root.display());
            }
            // Rewriting a chunk replaces it.
            let data = Bytes::from(vec![1u8; DIRECT_IO_MIN_BYTES + 4096]);
            store.write(id, 0, ChunkBuffer::from(&data[..]), data.len() as u64, crc32c(&data)).await.unwrap();
            assert_eq!(store.read(id, 0).await.unwrap().0, data);
            let _ = fs::remove_dir_all(root);
        }
    }

    /// A chunk read once (`O_DIRECT` for large ones) is verified like any
    /// other: flipped bytes or a cut-off file are corrupt, whatever the
    /// size, and a missing chunk is missing.
    #[tokio::test]
    async fn chunks_read_once_are_verified() {
        let root = temp_root();
        let store = ChunkStore::open(&root, "dn1").await.unwrap();
        let id = Uuid::now_v7();
        for (index, len) in [(0u32, 0usize), (1, 100), (2, 4 * 1024 * 1024), (3, 3 * 1024 * 1024 + 5)] {
            let data = Bytes::from((0..len).map(|i| (i % 253) as u8).collect::<Vec<u8>>());
            store.write(id, index, ChunkBuffer::from(&data[..]), len as u64, crc32c(&data)).await.unwrap();
            assert_eq!(store.read_once(id, index).await.unwrap().0, data, "{len} bytes");
            if len == 0 {
                continue;
            }
            let path = root.join("dn1").join(id.to_string()).join(format!("{index}.chk"));
            let mut bytes = fs::read(&path).unwrap();
            bytes[len / 2] ^= 0x40;
            fs::write(&path, &bytes).unwrap();
            assert!(matches!(store.read_once(id, index).await, Err(StoreError::Corrupt(..))), "{len} bytes flipped");
            let file = OpenOptions::new().write(true).open(&path).unwrap();
            file.set_len(len as u64 - 1).unwrap();
            assert!(matches!(store.read_once(id, index).await, Err(StoreError::Corrupt(..))), "{len} bytes cut");
        }
        assert!(matches!(store.read_once(id, 9).await, Err(StoreError::NotFound(_))));
        let _ = fs::remove_dir_all(root);
    }

    /// Chunks written with a `.crc` sidecar (older versions, filesystems
    /// without user xattrs) are still read, verified and inventoried.
    #[tokio::test]
    async fn sidecar_checksums_are_read() {
        let root = temp_root();
        let id = Uuid::now_v7();
        let dir = root.join("dn1").join(id.to_string());
        fs::create_dir_all(&dir).unwrap();
        let data = vec![3u8; 500];
        fs::write(dir.join("0.chk"), &data).unwrap();
        fs::write(dir.join("0.crc"), encode_sidecar(crc32c(&data), 500)).unwrap();
        let store = ChunkStore::open(&root, "dn1").await.unwrap();
        assert_eq!(store.read(id, 0).await.unwrap().1, crc32c(&data));
        let inventory = store.inventory().await.unwrap();
        assert_eq!((inventory[0].size, inventory[0].crc32c), (500, crc32c(&data)));
        fs::write(dir.join("0.crc"), encode_sidecar(crc32c(&data) ^ 1, 500)).unwrap();
        assert!(matches!(store.read(id, 0).await, Err(StoreError::Corrupt(..))));
        let _ = fs::remove_dir_all(root);
    }

    #[tokio::test]
    async fn leftover_temp_files_are_removed_on_open() {
        let root = temp_root();
        let id = Uuid::now_v7();
        let dir = root.join("dn1").join(id.to_string());
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join(".0.chk.tmp-1"), b"half").unwrap();
        let store = ChunkStore::open(&root, "dn1").await.unwrap();
        assert!(!dir.join(".0.chk.tmp-1").exists());
        assert_eq!(store.chunk_count(), 0);
        let _ = fs::remove_dir_all(root);
    }
}

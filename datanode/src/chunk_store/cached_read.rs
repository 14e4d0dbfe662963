//! Reading a small chunk on the calling task, when that cannot block.
//!
//! File work goes to the blocking pool so a slow disk never stalls the
//! runtime, but the hop there and back costs two thread wake-ups: for a
//! 64 KiB chunk in the page cache that was about a quarter of the data
//! node's CPU per download (0.24-0.27 ms against 0.32-0.37, measured).
//! Linux can say in advance whether a read would wait for the disk:
//! `openat2` with `RESOLVE_CACHED` fails with `EAGAIN` unless every path
//! component is in the dentry cache, and `preadv2` with `RWF_NOWAIT` never
//! sleeps for the disk: it fails or reads short when a page is not ready.
//! A chunk that passes both is read here; any other outcome (not cached,
//! too large, an error, an old kernel, a filesystem without `RWF_NOWAIT`,
//! a checksum kept in a `.crc` sidecar) returns `None` and the caller
//! reads it on the blocking pool, which also reports the errors. The
//! checksum attribute is read from the open inode; values this short live
//! inside the inode on ext4 and XFS.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use super::xattr;

/// Larger chunks go to the blocking pool: copying and checksumming them
/// would hold a runtime thread for too long (256 KiB: ~20 µs of CRC32C),
/// and their own transfer dwarfs the hop.
pub const INLINE_MAX_BYTES: u64 = 256 * 1024;

/// Cleared when the kernel lacks `openat2` or `RESOLVE_CACHED` (before
/// 5.12), so such a machine stops asking.
static KERNEL_SUPPORTS: AtomicBool = AtomicBool::new(true);

/// The chunk's bytes and its checksum attribute, if reading them cannot
/// wait for the disk; `None` otherwise (see the module doc).
pub fn read_if_cached(path: &Path) -> Option<(Vec<u8>, Vec<u8>)> {
    if !KERNEL_SUPPORTS.load(Ordering::Relaxed) {
        return None;
    }
    let file = open_cached(path)?;
    let len = file.metadata().ok()?.len();
    if len > INLINE_MAX_BYTES {
        return None;
    }
    let mut data = vec![0u8; len as usize];
    let iov = libc::iovec { iov_base: data.as_mut_ptr().cast(), iov_len: data.len() };
    // SAFETY: `iov` describes `data`, writable for its length; the
    // descriptor stays open for the call.
    let n = unsafe { libc::preadv2(file.as_raw_fd(), &iov, 1, 0, libc::RWF_NOWAIT) };
    // EAGAIN (a page is not cached), EOPNOTSUPP (the filesystem cannot
    // tell), or a short read (some pages cached): the blocking pool reads it.
    if u64::try_from(n).ok()? != len {
        return None;
    }
    let attribute = xattr::get(&file).ok()??;
    Some((data, attribute))
}

fn open_cached(path: &Path) -> Option<File> {
    let c_path = CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: open_how is three integers (non-exhaustive in libc, so no
    // struct literal); all zeros is a valid value of it.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (libc::O_RDONLY | libc::O_CLOEXEC) as u64;
    how.resolve = libc::RESOLVE_CACHED;
    // SAFETY: the path is NUL-terminated and `how` is a valid open_how of
    // the size passed; the kernel only reads both.
    let fd = unsafe {
        libc::syscall(libc::SYS_openat2, libc::AT_FDCWD, c_path.as_ptr(), &how, std::mem::size_of::<libc::open_how>())
    };
    if fd < 0 {
        if matches!(io::Error::last_os_error().raw_os_error(), Some(libc::ENOSYS) | Some(libc::EINVAL)) {
            KERNEL_SUPPORTS.store(false, Ordering::Relaxed);
        }
        return None;
    }
    // SAFETY: a descriptor the kernel just returned, owned by nobody else.
    Some(unsafe { File::from_raw_fd(fd as i32) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn temp_file(name: &str, data: &[u8], attribute: Option<&[u8]>) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("tessera-cached-{:016x}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        let mut file = File::create(&path).unwrap();
        file.write_all(data).unwrap();
        if let Some(value) = attribute {
            xattr::set(&file, value).unwrap();
        }
        file.sync_all().unwrap();
        path
    }

    /// Drops the file's pages from the page cache (they are clean after
    /// the fsync), as memory pressure would.
    fn evict(path: &Path) {
        let file = File::open(path).unwrap();
        // SAFETY: an open descriptor; the call only advises the kernel.
        let rc = unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
        assert_eq!(rc, 0);
    }

    #[test]
    fn a_cached_chunk_is_read_with_its_attribute() {
        let data = vec![5u8; 64 * 1024];
        let path = temp_file("0.chk", &data, Some(b"00000000 65536\n"));
        let (read, attribute) = read_if_cached(&path).expect("just written, so cached");
        assert_eq!(read, data);
        assert_eq!(attribute, b"00000000 65536\n");
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    #[test]
    fn what_is_not_small_or_has_no_attribute_is_left_to_the_blocking_pool() {
        let data = vec![6u8; 64 * 1024];
        let path = temp_file("0.chk", &data, Some(b"x"));
        evict(&path);
        // The kernel does not wait for the disk here, but it may start the
        // read and find it done (a fast virtual disk): either way, never
        // part of the chunk.
        if let Some((read, _)) = read_if_cached(&path) {
            assert_eq!(read, data);
        }

        let large = temp_file("1.chk", &vec![1u8; INLINE_MAX_BYTES as usize + 1], Some(b"x"));
        assert!(read_if_cached(&large).is_none(), "too large to read on the runtime");

        let sidecar_only = temp_file("2.chk", &data, None);
        assert!(read_if_cached(&sidecar_only).is_none(), "no attribute: the sidecar is read on the pool");

        assert!(read_if_cached(&path.with_file_name("9.chk")).is_none(), "missing: the pool reports it");
        for p in [&path, &large, &sidecar_only] {
            let _ = std::fs::remove_dir_all(p.parent().unwrap());
        }
    }
}

//! A chunk's checksum as an extended attribute of its own file
//! (`user.tessera.crc32c`, value `<crc32c hex> <size>`): written before the
//! file's fsync, so one inode and one fsync carry the data and its checksum,
//! and a rename publishes both at once. A `.crc` sidecar file is the
//! fallback for filesystems without user xattrs (and what older versions
//! wrote); readers take the attribute first.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// NUL-terminated for the C calls.
const NAME: &[u8] = b"user.tessera.crc32c\0";

/// The longest value we write is `ffffffff 18446744073709551615\n`.
const MAX_VALUE: usize = 64;

/// Sets the checksum attribute on an open file.
pub fn set(file: &File, value: &[u8]) -> io::Result<()> {
    // SAFETY: NAME is NUL-terminated, `value` is readable for its length,
    // and the descriptor stays open for the duration of the call.
    let rc = unsafe { libc::fsetxattr(file.as_raw_fd(), NAME.as_ptr().cast(), value.as_ptr().cast(), value.len(), 0) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The attribute of an open file; `None` if it has none (or the filesystem
/// keeps no user xattrs).
pub fn get(file: &File) -> io::Result<Option<Vec<u8>>> {
    let mut buf = [0u8; MAX_VALUE];
    // SAFETY: NAME is NUL-terminated and `buf` is writable for its length.
    let n = unsafe { libc::fgetxattr(file.as_raw_fd(), NAME.as_ptr().cast(), buf.as_mut_ptr().cast(), buf.len()) };
    value_or_absent(n, &buf)
}

/// [`get`] by path, without opening the file.
pub fn get_path(path: &Path) -> io::Result<Option<Vec<u8>>> {
    let c_path = CString::new(path.as_os_str().as_bytes()).map_err(|_| io::Error::other("NUL in a chunk path"))?;
    let mut buf = [0u8; MAX_VALUE];
    // SAFETY: both strings are NUL-terminated and `buf` is writable for its length.
    let n = unsafe { libc::getxattr(c_path.as_ptr(), NAME.as_ptr().cast(), buf.as_mut_ptr().cast(), buf.len()) };
    value_or_absent(n, &buf)
}

fn value_or_absent(n: isize, buf: &[u8]) -> io::Result<Option<Vec<u8>>> {
    if let Ok(len) = usize::try_from(n) {
        return Ok(Some(buf[..len.min(buf.len())].to_vec()));
    }
    let e = io::Error::last_os_error();
    if matches!(e.raw_os_error(), Some(libc::ENODATA) | Some(libc::ENOTSUP)) {
        Ok(None)
    } else {
        Err(e)
    }
}

/// The filesystem has no user extended attributes.
pub fn unsupported(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::ENOTSUP)
}

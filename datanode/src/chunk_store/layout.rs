//! Where chunks live: `<data_root>/<node_id>/<file_id>/<index>.chk`, with the
//! checksum in an extended attribute (see `xattr`) or, as a fallback, in
//! `<index>.crc` beside it. Ids are validated before they become
//! path components, so nothing outside the node's directory is reachable.

use std::path::{Path, PathBuf};

use tessera_proto::ids::parse_file_id;
use uuid::Uuid;

use crate::error::StoreError;

#[derive(Debug, Clone)]
pub struct Layout {
    node_dir: PathBuf,
}

impl Layout {
    pub fn new(data_root: &Path, node_id: &str) -> Self {
        Self { node_dir: data_root.join(node_id) }
    }

    pub fn node_dir(&self) -> &Path {
        &self.node_dir
    }

    pub fn file_dir(&self, file_id: &Uuid) -> PathBuf {
        self.node_dir.join(file_id.hyphenated().to_string())
    }

    pub fn chunk_path(&self, file_id: &Uuid, index: u32) -> PathBuf {
        self.file_dir(file_id).join(format!("{index}.chk"))
    }

    pub fn crc_path(&self, file_id: &Uuid, index: u32) -> PathBuf {
        self.file_dir(file_id).join(format!("{index}.crc"))
    }
}

/// Parses a file id from the wire; anything but a canonical UUID is refused.
pub fn file_id(s: &str) -> Result<Uuid, StoreError> {
    parse_file_id(s).map_err(|e| StoreError::BadRequest(e.to_string()))
}

/// Parses `<index>.chk` into the index.
pub fn chunk_index(file_name: &str) -> Option<u32> {
    let index = file_name.strip_suffix(".chk")?;
    if index.is_empty() || !index.bytes().all(|b| b.is_ascii_digit()) || (index.len() > 1 && index.starts_with('0')) {
        return None;
    }
    index.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_names() {
        let layout = Layout::new(Path::new("/data"), "dn1");
        let id = Uuid::now_v7();
        assert_eq!(layout.chunk_path(&id, 3), PathBuf::from(format!("/data/dn1/{id}/3.chk")));
        assert_eq!(chunk_index("12.chk"), Some(12));
        for bad in ["x.chk", "1.crc", ".chk", "01.chk", "-1.chk", "99999999999.chk"] {
            assert_eq!(chunk_index(bad), None, "{bad}");
        }
        for bad in ["../../etc/passwd", "/etc/passwd", "a\0b", &"f".repeat(300)] {
            assert!(file_id(bad).is_err(), "{bad:?}");
        }
    }
}

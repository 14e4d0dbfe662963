//! Checksums. Chunks: CRC32C, hardware-accelerated on x86-64 and ARM, fast
//! enough to verify every chunk on every read. Whole files: BLAKE3, which
//! an upload computes over every byte on the gateway's hot path (0.24 s of
//! CPU per GiB on one core here, SHA-256 0.60 even with the SHA
//! extensions; docs/performance.md, fourteenth round).

/// CRC32C of a whole buffer.
pub fn crc32c(data: &[u8]) -> u32 {
    crc32c::crc32c(data)
}

/// Extends a running CRC32C with more bytes (start from 0).
pub fn crc32c_append(crc: u32, data: &[u8]) -> u32 {
    crc32c::crc32c_append(crc, data)
}

/// The form shown to humans and in the HTTP API: 8 lowercase hex digits.
pub fn crc32c_hex(crc: u32) -> String {
    format!("{crc:08x}")
}

/// How a file's checksum is stored and sent between services: BLAKE3 as
/// `blake3:<64 hex digits>`; 64 bare hex digits are a SHA-256, the
/// algorithm of files uploaded before BLAKE3 (their records keep it).
const BLAKE3_PREFIX: &str = "blake3:";

/// The running checksum of a file's content, in upload order.
#[derive(Default, Clone)]
pub struct FileHasher(blake3::Hasher);

impl FileHasher {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    /// The stored form: `blake3:<hex>`.
    pub fn finish(&self) -> String {
        format!("{BLAKE3_PREFIX}{}", self.0.finalize().to_hex())
    }
}

/// A stored file checksum split into its algorithm (`"blake3"` or
/// `"sha256"`) and its lowercase hex digits; `None` if it is neither form.
pub fn parse_file_checksum(stored: &str) -> Option<(&'static str, &str)> {
    let (algorithm, digits) = match stored.strip_prefix(BLAKE3_PREFIX) {
        Some(digits) => ("blake3", digits),
        None => ("sha256", stored),
    };
    let valid = digits.len() == 64 && digits.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    valid.then_some((algorithm, digits))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_checksums_name_their_algorithm() {
        let mut hasher = FileHasher::new();
        hasher.update(b"tessera ");
        hasher.update(b"file");
        let stored = hasher.finish();
        let whole = blake3::hash(b"tessera file").to_hex();
        assert_eq!(parse_file_checksum(&stored), Some(("blake3", whole.as_str())));
        // SHA-256 of "", as files uploaded before BLAKE3 keep it.
        let legacy = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert_eq!(parse_file_checksum(legacy), Some(("sha256", legacy)));
        for bad in ["", "blake3:", "blake3:abc", &legacy.to_uppercase(), &format!("md5:{legacy}"), &legacy[1..]] {
            assert_eq!(parse_file_checksum(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn append_equals_whole() {
        let data = b"tessera chunk checksum";
        let (a, b) = data.split_at(7);
        assert_eq!(crc32c_append(crc32c(a), b), crc32c(data));
        assert_eq!(crc32c_hex(0xab), "000000ab");
    }
}

//! Chunk checksums: CRC32C, hardware-accelerated on x86-64 and ARM, fast enough
//! to verify every chunk on every read.

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn append_equals_whole() {
        let data = b"tessera chunk checksum";
        let (a, b) = data.split_at(7);
        assert_eq!(crc32c_append(crc32c(a), b), crc32c(data));
        assert_eq!(crc32c_hex(0xab), "000000ab");
    }
}

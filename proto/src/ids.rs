//! Identifiers and names, validated before they reach a map key or a path.
//!
//! File ids are UUIDs (v7, so they sort by creation time) in their canonical
//! hyphenated form; node ids are short `[A-Za-z0-9_-]` words. Both become path
//! components on data nodes, so anything else is refused here, at every layer.

use thiserror::Error;
use uuid::Uuid;

use crate::limits::MAX_NAME_BYTES;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum IdError {
    #[error("file id {0:?} is not a valid file id (expected a UUID such as 0193a6e4-7b1c-7d2e-8f00-1234567890ab)")]
    BadFileId(String),
    #[error("node id {0:?} is not valid (1-64 characters of A-Z, a-z, 0-9, '-' or '_')")]
    BadNodeId(String),
    #[error("file name must not be empty")]
    EmptyName,
    #[error("file name is {0} bytes long; the limit is {MAX_NAME_BYTES}")]
    NameTooLong(usize),
    #[error("file name must not contain '/', '\\\\', '..' or control characters (NUL included)")]
    BadNameCharacters,
}

/// A new, time-ordered file id.
pub fn new_file_id() -> Uuid {
    Uuid::now_v7()
}

/// Parses a file id; only the canonical lowercase hyphenated form is accepted,
/// so one file has exactly one spelling on disk and in URLs.
pub fn parse_file_id(s: &str) -> Result<Uuid, IdError> {
    let id = Uuid::try_parse(s).map_err(|_| IdError::BadFileId(truncate(s)))?;
    if id.hyphenated().to_string() != s {
        return Err(IdError::BadFileId(truncate(s)));
    }
    Ok(id)
}

/// Checks a data node id.
pub fn validate_node_id(s: &str) -> Result<(), IdError> {
    let ok = !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(IdError::BadNodeId(truncate(s)))
    }
}

/// Checks a user-visible file name. Names are flat (no folders yet), so path
/// separators and `..` are refused rather than interpreted.
pub fn validate_file_name(name: &str) -> Result<(), IdError> {
    if name.is_empty() {
        return Err(IdError::EmptyName);
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(IdError::NameTooLong(name.len()));
    }
    if name.contains('/') || name.contains('\\') || name.contains("..") || name.chars().any(char::is_control) {
        return Err(IdError::BadNameCharacters);
    }
    if name == "." {
        return Err(IdError::BadNameCharacters);
    }
    Ok(())
}

fn truncate(s: &str) -> String {
    s.chars().take(80).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_ids() {
        let id = new_file_id();
        assert_eq!(parse_file_id(&id.to_string()), Ok(id));
        for bad in [
            "",
            "../../etc/passwd",
            "/etc/passwd",
            "a\0b",
            "0193A6E4-7B1C-7D2E-8F00-1234567890AB",
            "0193a6e47b1c7d2e8f001234567890ab",
        ] {
            assert!(parse_file_id(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn node_ids() {
        assert!(validate_node_id("dn1").is_ok());
        assert!(validate_node_id("node_2-b").is_ok());
        for bad in ["", "..", "a/b", "/abs", "a\0", &"x".repeat(65)] {
            assert!(validate_node_id(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn file_names() {
        assert!(validate_file_name("report 2026.pdf").is_ok());
        assert!(validate_file_name("ünïcödé.txt").is_ok());
        assert_eq!(validate_file_name(""), Err(IdError::EmptyName));
        assert_eq!(validate_file_name(&"a".repeat(256)), Err(IdError::NameTooLong(256)));
        assert!(validate_file_name(&"a".repeat(255)).is_ok());
        for bad in ["a/b", "..", "../x", "a\0b", "a\\b", ".", "tab\there"] {
            assert!(validate_file_name(bad).is_err(), "{bad:?} accepted");
        }
    }
}

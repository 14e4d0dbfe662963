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
    #[error(
        "user name {0:?} is not valid (1-64 characters of a-z, 0-9, '.', '-' or '_', starting with a letter or digit)"
    )]
    BadUsername(String),
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

/// Checks a user name: it appears in URLs, logs and token listings.
pub fn validate_username(s: &str) -> Result<(), IdError> {
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.bytes().next().is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(IdError::BadUsername(truncate(s)))
    }
}

/// `<node_id>/<file_id>/<index>.chk`, relative to a data root, built from
/// wire strings. Every component is validated first, so the result never
/// leaves the data root: no `..`, no absolute part, no NUL.
pub fn chunk_relative_path(node_id: &str, file_id: &str, index: u32) -> Result<std::path::PathBuf, IdError> {
    validate_node_id(node_id)?;
    let file_id = parse_file_id(file_id)?;
    Ok(std::path::Path::new(node_id).join(file_id.hyphenated().to_string()).join(format!("{index}.chk")))
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
    fn usernames() {
        for good in ["admin", "alice", "bob.smith", "u_2-x", "7eleven"] {
            assert!(validate_username(good).is_ok(), "{good:?} refused");
        }
        for bad in ["", "Alice", ".hidden", "-x", "a/b", "../x", "a b", "a\0", &"a".repeat(65)] {
            assert!(validate_username(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn chunk_paths_stay_inside_the_data_root() {
        let id = new_file_id();
        let path = chunk_relative_path("dn1", &id.to_string(), 7).expect("valid");
        assert_eq!(path, std::path::PathBuf::from(format!("dn1/{id}/7.chk")));
        for (node, file) in [
            ("../../etc", id.to_string()),
            ("/etc", id.to_string()),
            ("dn1", "../../etc/passwd".to_string()),
            ("dn1", "/etc/passwd".to_string()),
            ("dn\0x", id.to_string()),
            ("dn1", format!("{id}\0")),
            (&"n".repeat(65), id.to_string()),
        ] {
            assert!(chunk_relative_path(node, &file, 0).is_err(), "{node:?}/{file:?} accepted");
        }
    }

    proptest::proptest! {
        // Whatever arrives on the wire, a chunk path is three plain components.
        #[test]
        fn any_accepted_chunk_path_is_three_plain_components(node in ".{0,70}", file in ".{0,40}", index: u32) {
            if let Ok(path) = chunk_relative_path(&node, &file, index) {
                let parts: Vec<_> = path.components().collect();
                proptest::prop_assert_eq!(parts.len(), 3);
                for part in parts {
                    proptest::prop_assert!(matches!(part, std::path::Component::Normal(_)));
                }
            }
        }

        #[test]
        fn names_never_panic_and_accepted_ones_are_safe(name in "\\PC{0,300}") {
            if validate_file_name(&name).is_ok() {
                proptest::prop_assert!(!name.contains('/') && !name.contains("..") && !name.contains('\0'));
                proptest::prop_assert!(name.len() <= MAX_NAME_BYTES);
            }
            let _ = parse_file_id(&name);
            let _ = validate_username(&name);
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

//! Whatever bytes arrive as ids or names, parsing never panics, and a chunk
//! path built from accepted ids never leaves the data root.
#![no_main]

use std::path::Component;

use libfuzzer_sys::fuzz_target;
use tessera_proto::ids;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // Split the input into a node id, a file id and an index.
    let mut parts = text.splitn(3, '|');
    let node = parts.next().unwrap_or("");
    let file = parts.next().unwrap_or("");
    let index = parts.next().and_then(|s| s.parse::<u32>().ok()).unwrap_or(0);
    if let Ok(path) = ids::chunk_relative_path(node, file, index) {
        let components: Vec<_> = path.components().collect();
        assert_eq!(components.len(), 3, "{path:?}");
        assert!(components.iter().all(|c| matches!(c, Component::Normal(_))), "{path:?}");
    }
    if ids::validate_file_name(&text).is_ok() {
        assert!(!text.contains('/') && !text.contains("..") && !text.contains('\0'));
    }
    let _ = ids::parse_file_id(&text);
    let _ = ids::validate_node_id(&text);
    let _ = ids::validate_username(&text);
    let _ = tessera_proto::secrets::looks_like_token(&text);
});

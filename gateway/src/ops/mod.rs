//! What the HTTP handlers do, independent of HTTP extraction: streamed
//! upload, ranged download, the memory budget they share, and the JSON
//! shapes of files.

pub mod budget;
pub mod download;
pub mod json;
pub mod range;
pub mod upload;

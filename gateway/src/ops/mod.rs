//! What the HTTP handlers do, independent of HTTP extraction: streamed
//! upload, ranged download, and the JSON shapes of files.

pub mod download;
pub mod json;
pub mod range;
pub mod upload;

//! Generates the gRPC code from `proto/*.proto` with the protoc binary that
//! the `protoc-bin-vendored` crate ships, so a fresh machine needs no system
//! protoc.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // SAFETY of set_var: build scripts are single-threaded.
    std::env::set_var("PROTOC", protoc);
    println!("cargo:rerun-if-changed=proto");
    // Chunk data as `bytes::Bytes`: sliced and forwarded without copies.
    tonic_prost_build::configure()
        .bytes(".")
        .compile_protos(&["proto/tessera.proto", "proto/raft.proto"], &["proto"])?;
    Ok(())
}

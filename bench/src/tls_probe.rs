//! Raw limit of encrypted transport on this machine: one stream over
//! loopback through rustls with mutual TLS, certificates made exactly as
//! the cluster's (`tessera_proto::tls::generate`), the same crypto
//! provider (ring) and default cipher suites as tonic. The same stream in
//! plaintext is measured beside it, so the report shows what encryption
//! adds per byte, and BLAKE3 (the file checksum every upload computes),
//! SHA-256 (the one it replaced, for comparison) and CRC32C (the chunk
//! checksum the gateway and every replica compute) on one core.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde_json::json;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::cpu::process_cpu_s;

#[derive(clap::Args)]
pub struct TlsArgs {
    /// Bytes to stream each way of measuring.
    #[arg(long, default_value_t = 1 << 30)]
    bytes: u64,
    /// An empty or missing directory for the generated certificates.
    #[arg(long)]
    scratch: PathBuf,
}

/// Size of each write (hyper and tonic hand rustls buffers of this order).
const WRITE_BYTES: usize = 256 * 1024;

struct Measured {
    mb_s: f64,
    cpu_s_per_gib: f64,
}

pub async fn run(args: TlsArgs) -> anyhow::Result<String> {
    let (server, client, cipher) = configs(&args.scratch)?;
    let tls = stream(args.bytes, Some((server, client))).await?;
    let tcp = stream(args.bytes, None).await?;
    let sha256_s_per_gib = tokio::task::spawn_blocking(sha256_s_per_gib).await?;
    let blake3_s_per_gib = tokio::task::spawn_blocking(blake3_s_per_gib).await?;
    let crc32c_s_per_gib = tokio::task::spawn_blocking(crc32c_s_per_gib).await?;
    Ok(json!({
        "sha256_s_per_gib": sha256_s_per_gib,
        "blake3_s_per_gib": blake3_s_per_gib,
        "crc32c_s_per_gib": crc32c_s_per_gib,
        "tls_mb_s": tls.mb_s,
        "tls_cpu_s_per_gib": tls.cpu_s_per_gib,
        "tcp_mb_s": tcp.mb_s,
        "tcp_cpu_s_per_gib": tcp.cpu_s_per_gib,
        "cipher": cipher,
    })
    .to_string())
}

type Configs = (Arc<rustls::ServerConfig>, Arc<rustls::ClientConfig>, String);

fn configs(scratch: &Path) -> anyhow::Result<Configs> {
    let generated = tessera_proto::tls::generate(scratch, &["server", "client"], &[])?;
    let certs = |role: &str| -> anyhow::Result<Vec<CertificateDer<'static>>> {
        let path = generated.dir.join(format!("{role}.pem"));
        CertificateDer::pem_file_iter(&path)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .with_context(|| format!("reading {}", path.display()))
    };
    let key = |role: &str| -> anyhow::Result<PrivateKeyDer<'static>> {
        let path = generated.dir.join(format!("{role}.key"));
        PrivateKeyDer::from_pem_file(&path).with_context(|| format!("reading {}", path.display()))
    };
    let mut roots = rustls::RootCertStore::empty();
    for ca in certs("ca")? {
        roots.add(ca)?;
    }
    let roots = Arc::new(roots);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cipher = provider.cipher_suites.first().map(|s| format!("{:?}", s.suite())).unwrap_or_default();
    let verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone()).build()?;
    let server = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs("server")?, key("server")?)?;
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_client_auth_cert(certs("client")?, key("client")?)?;
    Ok((Arc::new(server), Arc::new(client), cipher))
}

/// Streams `bytes` from a client task to a server task over loopback,
/// through TLS when given its configs.
async fn stream(
    bytes: u64,
    tls: Option<(Arc<rustls::ServerConfig>, Arc<rustls::ClientConfig>)>,
) -> anyhow::Result<Measured> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let acceptor = tls.as_ref().map(|(server, _)| tokio_rustls::TlsAcceptor::from(server.clone()));
    let receiver = tokio::spawn(async move {
        let (socket, _) = listener.accept().await?;
        socket.set_nodelay(true)?;
        match acceptor {
            Some(acceptor) => drain(acceptor.accept(socket).await?).await,
            None => drain(socket).await,
        }
    });
    let socket = TcpStream::connect(addr).await?;
    socket.set_nodelay(true)?;
    // The handshake is not what is measured: start the clocks after it.
    let (received, elapsed, cpu) = match tls {
        Some((_, client)) => {
            let connector = tokio_rustls::TlsConnector::from(client);
            let name = ServerName::try_from(tessera_proto::tls::CLUSTER_DOMAIN)?;
            let stream = connector.connect(name, socket).await?;
            timed(bytes, stream, receiver).await?
        }
        None => timed(bytes, socket, receiver).await?,
    };
    anyhow::ensure!(received == bytes, "sent {bytes} bytes, {received} arrived");
    let gib = bytes as f64 / f64::from(1u32 << 30);
    Ok(Measured { mb_s: bytes as f64 / 1048576.0 / elapsed, cpu_s_per_gib: cpu / gib })
}

async fn timed(
    bytes: u64,
    mut stream: impl AsyncWrite + Unpin,
    receiver: tokio::task::JoinHandle<anyhow::Result<u64>>,
) -> anyhow::Result<(u64, f64, f64)> {
    let block = vec![0x5a_u8; WRITE_BYTES];
    let cpu_before = process_cpu_s();
    let start = Instant::now();
    let mut sent = 0u64;
    while sent < bytes {
        let n = (bytes - sent).min(WRITE_BYTES as u64) as usize;
        stream.write_all(&block[..n]).await?;
        sent += n as u64;
    }
    stream.shutdown().await?;
    let received = receiver.await??;
    Ok((received, start.elapsed().as_secs_f64(), process_cpu_s() - cpu_before))
}

/// Seconds `checksum` takes per GiB on one core, fed `blocks` blocks of
/// `block_bytes` (the result scaled to a GiB).
fn one_core_s_per_gib(block_bytes: usize, blocks: usize, mut checksum: impl FnMut(&[u8])) -> f64 {
    let block = vec![0xa5_u8; block_bytes];
    let start = Instant::now();
    for _ in 0..blocks {
        checksum(std::hint::black_box(&block));
    }
    start.elapsed().as_secs_f64() * (1u64 << 30) as f64 / (block_bytes * blocks) as f64
}

/// SHA-256 (the `sha2` crate, which the gateway used for file checksums
/// before BLAKE3), in 1 MiB blocks over 256 MiB.
fn sha256_s_per_gib() -> f64 {
    use sha2::Digest;
    let mut hasher = sha2::Sha256::new();
    let seconds = one_core_s_per_gib(1 << 20, 256, |block| hasher.update(block));
    std::hint::black_box(hasher.finalize());
    seconds
}

/// The file checksum as the gateway computes it over every upload
/// (`tessera_proto::checksum::FileHasher`, BLAKE3), in 1 MiB blocks over
/// 256 MiB.
fn blake3_s_per_gib() -> f64 {
    let mut hasher = tessera_proto::checksum::FileHasher::new();
    let seconds = one_core_s_per_gib(1 << 20, 256, |block| hasher.update(block));
    std::hint::black_box(hasher.finish());
    seconds
}

/// CRC32C (`tessera_proto::checksum`, as chunks are checked), over 4 MiB
/// chunks as the services check them, 1 GiB in all.
fn crc32c_s_per_gib() -> f64 {
    let mut crc = 0;
    let seconds = one_core_s_per_gib(4 << 20, 256, |chunk| crc ^= tessera_proto::checksum::crc32c(chunk));
    std::hint::black_box(crc);
    seconds
}

async fn drain(mut stream: impl AsyncRead + Unpin) -> anyhow::Result<u64> {
    let mut buffer = vec![0u8; WRITE_BYTES];
    let mut total = 0u64;
    loop {
        match stream.read(&mut buffer).await? {
            0 => return Ok(total),
            n => total += n as u64,
        }
    }
}

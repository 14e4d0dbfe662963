//! Mutual TLS between Tessera services.
//!
//! A cluster has one certificate authority; every service (controller, data
//! node, gateway, the admin CLI) holds a certificate signed by it and
//! presents it both as a server and as a client. A service accepts a peer
//! only if the peer's certificate chains to the cluster CA, so a client with
//! no certificate, or one from another CA, cannot call anything.
//!
//! Every certificate names [`CLUSTER_DOMAIN`], and clients verify servers
//! against that name rather than the address they dial: addresses change
//! (loopback ports, network namespaces, a node moved to a new host), the CA
//! does not.
//!
//! [`install`] records the client side once per process; every channel built
//! by [`crate::control_client::lazy_channel`] uses it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};

/// The DNS name in every service certificate, checked by every client.
pub const CLUSTER_DOMAIN: &str = "tessera.cluster";

/// The certificate roles `tessera-admin certs` writes, one key pair each.
pub const ROLES: [&str; 4] = ["controller", "datanode", "gateway", "admin"];

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("no TLS material: pass --tls-dir <dir> (made by `tessera-admin certs`) or --insecure for plaintext gRPC")]
    NotConfigured,
    // `error`, not `source`: the message already carries it (see
    // `config::ConfigFileError`).
    #[error("reading {path}: {error}")]
    Read { path: PathBuf, error: std::io::Error },
    #[error("writing {path}: {error}")]
    Write { path: PathBuf, error: std::io::Error },
    #[error("{0} already holds a cluster CA; refusing to overwrite it (use another directory)")]
    CaExists(PathBuf),
    #[error("creating certificates: {0}")]
    Generate(String),
}

/// The command-line flags every service shares.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TlsArgs {
    /// Directory with the cluster CA (`ca.pem`) and this service's
    /// certificate and key (`<role>.pem`, `<role>.key`), as written by
    /// `tessera-admin certs`.
    #[arg(long, env = "TESSERA_TLS_DIR")]
    pub tls_dir: Option<PathBuf>,
    /// Plaintext gRPC without certificates. Anyone who reaches a gRPC port
    /// can then read and delete everything: only for a trusted network.
    #[arg(long, env = "TESSERA_INSECURE", value_parser = clap::builder::BoolishValueParser::new(), action = clap::ArgAction::SetTrue)]
    pub insecure: bool,
}

impl TlsArgs {
    /// The TLS material of `role`, or `None` with `--insecure`.
    pub fn load(&self, role: &str) -> Result<Option<ClusterTls>, TlsError> {
        match (&self.tls_dir, self.insecure) {
            (Some(dir), _) => ClusterTls::load(dir, role).map(Some),
            (None, true) => Ok(None),
            (None, false) => Err(TlsError::NotConfigured),
        }
    }
}

/// The PEM files of one service.
#[derive(Debug, Clone)]
pub struct ClusterTls {
    ca_pem: Vec<u8>,
    cert_pem: Vec<u8>,
    key_pem: Vec<u8>,
}

fn read(path: PathBuf) -> Result<Vec<u8>, TlsError> {
    std::fs::read(&path).map_err(|error| TlsError::Read { path, error })
}

impl ClusterTls {
    pub fn load(dir: &Path, role: &str) -> Result<Self, TlsError> {
        Ok(Self {
            ca_pem: read(dir.join("ca.pem"))?,
            cert_pem: read(dir.join(format!("{role}.pem")))?,
            key_pem: read(dir.join(format!("{role}.key")))?,
        })
    }

    pub fn from_pem(ca_pem: Vec<u8>, cert_pem: Vec<u8>, key_pem: Vec<u8>) -> Self {
        Self { ca_pem, cert_pem, key_pem }
    }

    /// Server side: present our certificate, demand one signed by the CA.
    pub fn server_config(&self) -> ServerTlsConfig {
        ServerTlsConfig::new()
            .identity(Identity::from_pem(&self.cert_pem, &self.key_pem))
            .client_ca_root(Certificate::from_pem(&self.ca_pem))
    }

    /// Client side: trust only the cluster CA, present our certificate.
    pub fn client_config(&self) -> ClientTlsConfig {
        ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&self.ca_pem))
            .identity(Identity::from_pem(&self.cert_pem, &self.key_pem))
            .domain_name(CLUSTER_DOMAIN)
    }
}

static CLIENT_TLS: OnceLock<Option<ClientTlsConfig>> = OnceLock::new();

/// Sets this process's client TLS once, before the first channel is built.
/// Later calls are ignored (the first one wins).
pub fn install(tls: Option<&ClusterTls>) {
    let _ = CLIENT_TLS.set(tls.map(ClusterTls::client_config));
}

/// The client TLS of this process, if [`install`]ed with one.
pub fn client_config() -> Option<&'static ClientTlsConfig> {
    CLIENT_TLS.get().and_then(Option::as_ref)
}

/// What [`generate`] wrote.
#[derive(Debug)]
pub struct GeneratedCerts {
    pub dir: PathBuf,
    pub files: Vec<PathBuf>,
}

fn gen_err(e: impl std::fmt::Display) -> TlsError {
    TlsError::Generate(e.to_string())
}

/// Creates a cluster CA and one certificate per role in `dir`: `ca.pem`,
/// `ca.key`, `<role>.pem`, `<role>.key`. Keys are written owner-only.
/// Refuses to overwrite an existing CA: certificates issued by it would
/// stop working.
pub fn generate(dir: &Path, roles: &[&str], extra_names: &[String]) -> Result<GeneratedCerts, TlsError> {
    use rcgen::{
        BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
        KeyUsagePurpose, SanType,
    };

    if dir.join("ca.pem").exists() {
        return Err(TlsError::CaExists(dir.to_path_buf()));
    }
    std::fs::create_dir_all(dir).map_err(|error| TlsError::Write { path: dir.to_path_buf(), error })?;

    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(gen_err)?;
    let mut ca_name = DistinguishedName::new();
    ca_name.push(DnType::CommonName, "Tessera cluster CA");
    ca_params.distinguished_name = ca_name;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca_params.not_before = rcgen::date_time_ymd(2024, 1, 1);
    ca_params.not_after = rcgen::date_time_ymd(2124, 1, 1);
    let ca_key = KeyPair::generate().map_err(gen_err)?;
    let ca_cert = ca_params.self_signed(&ca_key).map_err(gen_err)?;

    let mut files = Vec::new();
    let mut write = |name: String, contents: String, secret: bool| -> Result<(), TlsError> {
        let path = dir.join(name);
        write_file(&path, contents.as_bytes(), secret)?;
        files.push(path);
        Ok(())
    };
    write("ca.pem".into(), ca_cert.pem(), false)?;
    write("ca.key".into(), ca_key.serialize_pem(), true)?;

    for role in roles {
        let mut names = vec![CLUSTER_DOMAIN.to_string(), format!("{role}.{CLUSTER_DOMAIN}"), "localhost".into()];
        names.extend(extra_names.iter().cloned());
        let mut params = CertificateParams::new(names).map_err(gen_err)?;
        params.subject_alt_names.push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        params.subject_alt_names.push(SanType::IpAddress(IpAddr::V6(Ipv6Addr::LOCALHOST)));
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, format!("tessera {role}"));
        params.distinguished_name = dn;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        // Every service is both a server and a client of its peers.
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        params.not_before = rcgen::date_time_ymd(2024, 1, 1);
        params.not_after = rcgen::date_time_ymd(2124, 1, 1);
        let key = KeyPair::generate().map_err(gen_err)?;
        let cert = params.signed_by(&key, &ca_cert, &ca_key).map_err(gen_err)?;
        write(format!("{role}.pem"), cert.pem(), false)?;
        write(format!("{role}.key"), key.serialize_pem(), true)?;
    }
    Ok(GeneratedCerts { dir: dir.to_path_buf(), files })
}

/// Writes via a temp file and rename, so a crash never leaves half a key.
fn write_file(path: &Path, contents: &[u8], secret: bool) -> Result<(), TlsError> {
    use std::io::Write;
    let err = |error| TlsError::Write { path: path.to_path_buf(), error };
    let tmp = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = secret;
    let mut file = options.open(&tmp).map_err(err)?;
    file.write_all(contents).map_err(err)?;
    file.sync_all().map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_a_ca_and_one_pair_per_role_and_refuses_to_overwrite() {
        let dir = std::env::temp_dir().join(format!("tessera-tls-{}", uuid::Uuid::now_v7()));
        let out = generate(&dir, &ROLES, &[]).expect("generate");
        assert_eq!(out.files.len(), 2 + 2 * ROLES.len());
        for role in ROLES {
            let tls = ClusterTls::load(&dir, role).expect("load");
            assert!(String::from_utf8_lossy(&tls.cert_pem).contains("BEGIN CERTIFICATE"));
            assert!(String::from_utf8_lossy(&tls.key_pem).contains("PRIVATE KEY"));
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join("gateway.key")).expect("stat").permissions().mode();
            assert_eq!(mode & 0o077, 0, "keys must be owner-only");
        }
        assert!(matches!(generate(&dir, &ROLES, &[]), Err(TlsError::CaExists(_))));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_service_needs_tls_or_an_explicit_insecure_flag() {
        assert!(matches!(TlsArgs::default().load("gateway"), Err(TlsError::NotConfigured)));
        assert!(TlsArgs { tls_dir: None, insecure: true }.load("gateway").expect("insecure").is_none());
        let missing = TlsArgs { tls_dir: Some("/nonexistent/tessera".into()), insecure: false };
        assert!(matches!(missing.load("gateway"), Err(TlsError::Read { .. })));
    }
}

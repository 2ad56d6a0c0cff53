//! TLS beside plain HTTP on the gateway's port: the local certificate authority ([`LocalCa`]),
//! each run's server certificate, and the variables that make runtimes trust the CA.
//!
//! Handlers in the wild build the management endpoint as `https://{domainName}/{stage}`. The
//! gateway therefore serves TLS on its port too, with a server certificate for `127.0.0.1`,
//! `localhost`, `::1` and its configured host, issued at every start by a CA that is generated
//! once and kept (a user or a runner trusts it once):
//!
//! | file in the CA directory | what |
//! |---|---|
//! | `ca.pem` | the CA's certificate (ECDSA P-256, 10 years) |
//! | `ca-key.pem` | its private key, mode 0600; refused when others can read it |
//! | `ca-bundle.pem` | `ca.pem` followed by the system's roots (rewritten when they change) |
//!
//! The bundle exists because `SSL_CERT_FILE` and `AWS_CA_BUNDLE` *replace* a process's trust
//! store: with the CA alone, the same function could no longer reach real AWS endpoints.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, Write as _};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SerialNumber,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

/// The CA's certificate in a CA directory.
pub const CA_CERT_FILE: &str = "ca.pem";
/// The CA's private key in a CA directory (mode 0600).
pub const CA_KEY_FILE: &str = "ca-key.pem";
/// The CA's certificate followed by the system's roots, in a CA directory.
pub const CA_BUNDLE_FILE: &str = "ca-bundle.pem";

/// Where the system's roots are read from for `ca-bundle.pem`: Debian/Ubuntu (and Amazon Linux's
/// compatibility link) first, then Fedora/RHEL, then Alpine/macOS.
const SYSTEM_ROOTS: [&str; 3] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
];

/// The CA certificate's subject. Leaf certificates name it as their issuer, so it must stay the
/// same for a kept CA to go on verifying them (checked at every start).
const CA_NAME: &str = "stateless-ws-local CA";
const CA_DAYS: i64 = 3_650;
/// A run's server certificate: long enough for a gateway left running, short enough that a
/// leaked one is soon useless (and under the 398 days some clients require).
const LEAF_DAYS: i64 = 90;

/// What is wrong with a CA directory, or with issuing the gateway's certificate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaError {
    /// No CA directory was given and neither `XDG_DATA_HOME` nor `HOME` names one.
    #[error(
        "no directory for the local CA: XDG_DATA_HOME and HOME are unset (set LocalGatewayConfig::ca_dir or --ca-dir)"
    )]
    NoDirectory,
    /// Reading or writing a file of the CA directory failed.
    #[error("cannot {action} {}", path.display())]
    Io {
        /// What was being done: `create`, `read`, `write`, ...
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The CA key can be read by other users: whoever reads it can impersonate any site to
    /// every process that trusts the CA.
    #[error(
        "{} can be read by other users (mode {mode:03o}); run chmod 600 on it",
        path.display()
    )]
    KeyReadableByOthers {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A file of the CA directory is not what it should be (unparsable, or a certificate that
    /// does not belong to the key).
    #[error("{}: {message}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// The gateway's server certificate could not be made (e.g. a host name that cannot be a
    /// certificate name).
    #[error("issuing the gateway's TLS certificate: {0}")]
    Issue(String),
}

fn io_error<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> CaError + 'a {
    move |source| CaError::Io {
        action,
        path: path.to_owned(),
        source,
    }
}

/// The variables that make each runtime trust a CA kept in `dir`, with the files as values:
///
/// | variable | read by | file |
/// |---|---|---|
/// | `AWS_CA_BUNDLE` | botocore / boto3, the AWS CLI (replaces their roots) | `ca-bundle.pem` |
/// | `SSL_CERT_FILE` | OpenSSL (Python's `ssl`, `urllib`), Go, and `rustls-native-certs`, hence the Rust AWS SDK's default HTTPS client (replaces the roots) | `ca-bundle.pem` |
/// | `REQUESTS_CA_BUNDLE` | Python `requests` (replaces `certifi`'s roots) | `ca-bundle.pem` |
/// | `NODE_EXTRA_CA_CERTS` | Node.js, so the JavaScript AWS SDK (added to its roots) | `ca.pem` |
///
/// The Rust SDK: `aws-smithy-http-client` 1.5's default `TlsContext` has a `TrustStore` with
/// native roots enabled (`src/client/tls.rs`, `impl Default for TrustStore`), loaded once per
/// process by `rustls_native_certs::load_native_certs()` (`NATIVE_ROOTS` in
/// `src/client/tls/rustls_provider.rs`), which reads only `SSL_CERT_FILE` / `SSL_CERT_DIR` when
/// either is set (rustls-native-certs 0.8, `load_native_certs`). So `SSL_CERT_FILE` must be set
/// before the process builds its first client, as a function's environment is.
pub fn trust_env(dir: &Path) -> BTreeMap<String, String> {
    let bundle = dir.join(CA_BUNDLE_FILE).display().to_string();
    let cert = dir.join(CA_CERT_FILE).display().to_string();
    BTreeMap::from([
        ("AWS_CA_BUNDLE".to_owned(), bundle.clone()),
        ("NODE_EXTRA_CA_CERTS".to_owned(), cert),
        ("REQUESTS_CA_BUNDLE".to_owned(), bundle.clone()),
        ("SSL_CERT_FILE".to_owned(), bundle),
    ])
}

/// The local certificate authority of a CA directory: generated on first use, then reused.
pub struct LocalCa {
    dir: PathBuf,
    key: KeyPair,
    cert_der: CertificateDer<'static>,
}

impl fmt::Debug for LocalCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the key.
        f.debug_struct("LocalCa")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl LocalCa {
    /// The default CA directory: `$XDG_DATA_HOME/stateless-ws-local`, else
    /// `$HOME/.local/share/stateless-ws-local` (the XDG default); `None` when neither variable
    /// is set (a relative `XDG_DATA_HOME` is ignored, as the XDG specification says).
    pub fn default_dir() -> Option<PathBuf> {
        default_dir_in(std::env::var_os("XDG_DATA_HOME"), std::env::var_os("HOME"))
    }

    /// The CA kept in `dir`, made there (directory mode 0700, key 0600) when absent. Safe
    /// against other gateways starting at the same moment: the key is stored with an exclusive
    /// create, and the loser uses the winner's.
    ///
    /// # Errors
    ///
    /// [`CaError`] naming the file: unreadable or unwritable, a key others can read, or files
    /// that do not make a CA (a certificate of another key).
    pub fn open_or_create(dir: impl AsRef<Path>) -> Result<Self, CaError> {
        let dir = dir.as_ref().to_owned();
        create_private_dir(&dir)?;
        let key_path = dir.join(CA_KEY_FILE);
        let key = match read_key(&key_path)? {
            Some(key) => key,
            None => {
                let key = KeyPair::generate().map_err(|e| CaError::Issue(e.to_string()))?;
                if store_new(&key_path, key.serialize_pem().as_bytes())? {
                    key
                } else {
                    // Another process stored its key first: use that one.
                    read_key(&key_path)?.ok_or_else(|| CaError::Invalid {
                        path: key_path.clone(),
                        message: "vanished while being created".to_owned(),
                    })?
                }
            }
        };
        let cert_path = dir.join(CA_CERT_FILE);
        let cert_der = match std::fs::read(&cert_path) {
            Ok(pem) => CertificateDer::from_pem_slice(&pem).map_err(|e| CaError::Invalid {
                path: cert_path.clone(),
                message: format!("not a PEM certificate ({e})"),
            })?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                // A new key, or a crash between the two files: certify the key. Two processes
                // doing so at once both write a valid certificate of the same name and key.
                let cert = ca_params()
                    .self_signed(&key)
                    .map_err(|e| CaError::Issue(e.to_string()))?;
                replace(&cert_path, cert.pem().as_bytes(), 0o644)?;
                cert.der().clone()
            }
            Err(e) => return Err(io_error("read", &cert_path)(e)),
        };
        Ok(Self { dir, key, cert_der })
    }

    /// The CA directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `ca.pem`: the certificate to trust (`NODE_EXTRA_CA_CERTS`, a browser, `curl --cacert`).
    pub fn cert_path(&self) -> PathBuf {
        self.dir.join(CA_CERT_FILE)
    }

    /// `ca-bundle.pem`: the CA and the system's roots (`AWS_CA_BUNDLE`, `SSL_CERT_FILE`); see
    /// [`write_bundle`](Self::write_bundle).
    pub fn bundle_path(&self) -> PathBuf {
        self.dir.join(CA_BUNDLE_FILE)
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> String {
        pem_of(&self.cert_der)
    }

    /// [`trust_env`] of this CA's directory.
    pub fn trust_env(&self) -> BTreeMap<String, String> {
        trust_env(&self.dir)
    }

    /// Writes `ca-bundle.pem` — the CA, then the roots this process would trust: the file
    /// `SSL_CERT_FILE` names, else the first of `/etc/ssl/certs/ca-certificates.crt`,
    /// `/etc/pki/tls/certs/ca-bundle.crt`, `/etc/ssl/cert.pem` — and returns its path and the
    /// roots file used (`None`: the bundle holds the CA alone, and a process given it can reach
    /// no public endpoint). The file is replaced atomically, and only when its content changes.
    ///
    /// # Errors
    ///
    /// [`CaError::Io`] when the roots cannot be read or the bundle written.
    pub fn write_bundle(&self) -> Result<(PathBuf, Option<PathBuf>), CaError> {
        let bundle = self.bundle_path();
        let roots = system_roots(&bundle);
        let mut content = self.cert_pem().into_bytes();
        if let Some(roots) = &roots {
            let system = std::fs::read(roots).map_err(io_error("read", roots))?;
            content.extend_from_slice(b"\n");
            content.extend_from_slice(&system);
        }
        if std::fs::read(&bundle).ok().as_deref() != Some(&content[..]) {
            replace(&bundle, &content, 0o644)?;
        }
        Ok((bundle, roots))
    }

    /// A TLS server configuration for the gateway: a fresh key and certificate for
    /// `127.0.0.1`, `localhost`, `::1` and `hosts`, issued by this CA, HTTP/1.1
    /// by ALPN; checked to verify under the CA before it is used.
    pub(crate) fn server_config(&self, hosts: &[String]) -> Result<rustls::ServerConfig, CaError> {
        let issue = |e: rcgen::Error| CaError::Issue(e.to_string());
        let mut names = vec![
            "127.0.0.1".to_owned(),
            "localhost".to_owned(),
            "::1".to_owned(),
        ];
        for host in hosts {
            if !names.contains(host) {
                names.push(host.clone());
            }
        }
        let mut params = CertificateParams::new(names.clone())
            .map_err(|e| CaError::Issue(format!("names {names:?}: {e}")))?;
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, "stateless-ws-local gateway");
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        params.serial_number = Some(random_serial());
        let now = time::OffsetDateTime::now_utc();
        // An hour back: a runner's clock (a container, a VM) may be a little behind ours.
        params.not_before = now - time::Duration::hours(1);
        params.not_after = now + time::Duration::days(LEAF_DAYS);
        let leaf_key = KeyPair::generate().map_err(issue)?;
        let issuer = Issuer::new(ca_params(), &self.key);
        let leaf = params.signed_by(&leaf_key, &issuer).map_err(issue)?;
        // The leaf alone: a client verifies it against the CA it trusts (TLS lets a server leave
        // the root out; sent, it only turns "unknown issuer" into "self-signed certificate in
        // the chain" for clients that do not trust it).
        let chain = vec![leaf.der().clone()];
        self.check(leaf.der())?;

        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let tls = |e: rustls::Error| CaError::Issue(e.to_string());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(tls)?
            .with_no_client_auth()
            .with_single_cert(chain, PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()))
            .map_err(tls)?;
        // The gateway speaks HTTP/1.1 only (WebSocket upgrades need it): a client offering h2
        // and http/1.1 picks the latter.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(config)
    }

    /// That `leaf` verifies under the stored CA certificate, as a client will check it: a kept
    /// `ca.pem` of another key, an expired CA or a changed CA name are caught at start, not by
    /// every client.
    fn check(&self, leaf: &CertificateDer<'static>) -> Result<(), CaError> {
        let invalid = |message: String| CaError::Invalid {
            path: self.cert_path(),
            message,
        };
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(self.cert_der.clone())
            .map_err(|e| invalid(format!("not a usable CA certificate ({e})")))?;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        use rustls::client::danger::ServerCertVerifier as _;
        let verifier =
            rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| invalid(e.to_string()))?;
        let name = ServerName::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST).into());
        verifier
            .verify_server_cert(leaf, &[], &name, &[], UnixTime::now())
            .map_err(|e| {
                invalid(format!(
                    "does not verify a certificate signed with {CA_KEY_FILE} ({e}); remove the directory to make a new CA (and trust the new one)"
                ))
            })?;
        Ok(())
    }
}

fn default_dir_in(
    xdg_data_home: Option<std::ffi::OsString>,
    home: Option<std::ffi::OsString>,
) -> Option<PathBuf> {
    let set = |v: Option<std::ffi::OsString>| v.filter(|v| !v.is_empty()).map(PathBuf::from);
    set(xdg_data_home)
        .filter(|p| p.is_absolute())
        .or_else(|| set(home).map(|home| home.join(".local/share")))
        .map(|data| data.join("stateless-ws-local"))
}

fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, CA_NAME);
    params
        .distinguished_name
        .push(DnType::OrganizationName, "stateless-ws-local");
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.serial_number = Some(random_serial());
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(CA_DAYS);
    params
}

/// 16 random bytes, positive (certificate serials must be unique per issuer, not secret).
fn random_serial() -> SerialNumber {
    let mut bytes = [0u8; 16];
    fastrand::fill(&mut bytes);
    bytes[0] = (bytes[0] & 0x7f) | 0x01;
    SerialNumber::from_slice(&bytes)
}

fn pem_of(der: &CertificateDer<'_>) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
    let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    pem
}

/// The roots file for the bundle: `SSL_CERT_FILE` when set (and not the bundle itself, which
/// would nest the CA once more at each run), else the first system file that exists.
fn system_roots(bundle: &Path) -> Option<PathBuf> {
    let ours = std::fs::canonicalize(bundle).ok();
    std::env::var_os("SSL_CERT_FILE")
        .map(PathBuf::from)
        .filter(|p| p.is_file() && std::fs::canonicalize(p).ok() != ours)
        .or_else(|| SYSTEM_ROOTS.iter().map(PathBuf::from).find(|p| p.is_file()))
}

/// The key in `path`, `None` when there is no such file.
fn read_key(path: &Path) -> Result<Option<KeyPair>, CaError> {
    let pem = match std::fs::read_to_string(path) {
        Ok(pem) => pem,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error("read", path)(e)),
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(path)
            .map_err(io_error("read", path))?
            .permissions()
            .mode()
            & 0o777;
        if mode & 0o077 != 0 {
            return Err(CaError::KeyReadableByOthers {
                path: path.to_owned(),
                mode,
            });
        }
    }
    KeyPair::from_pem(&pem)
        .map(Some)
        .map_err(|e| CaError::Invalid {
            path: path.to_owned(),
            message: format!("not a PEM private key ({e})"),
        })
}

fn create_private_dir(dir: &Path) -> Result<(), CaError> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(io_error("create", dir))
}

/// A temporary file beside `path` with `content` and `mode`, for an atomic rename or link.
fn temporary(path: &Path, content: &[u8], mode: u32) -> Result<PathBuf, CaError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(
        ".{name}.{}.{:016x}.tmp",
        std::process::id(),
        fastrand::u64(..)
    ));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
    #[cfg(not(unix))]
    let _ = mode;
    let written = options
        .open(&tmp)
        .and_then(|mut file| file.write_all(content).and_then(|()| file.sync_all()));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(io_error("write", &tmp)(e));
    }
    Ok(tmp)
}

/// Writes `content` to `path` (mode 0600) unless `path` exists: `false` when it does. Readers
/// never see a partial file (the complete file is linked into place).
fn store_new(path: &Path, content: &[u8]) -> Result<bool, CaError> {
    let tmp = temporary(path, content, 0o600)?;
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(io_error("create", path)(e)),
    }
}

/// Replaces `path` with `content` atomically (readers see the old or the new file).
fn replace(path: &Path, content: &[u8], mode: u32) -> Result<(), CaError> {
    let tmp = temporary(path, content, mode)?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io_error("write", path)(e)
    })
}

#[cfg(test)]
#[path = "tls_tests.rs"]
mod tests;

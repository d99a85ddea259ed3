//! TLS for `https://` targets, with rustls.
//!
//! rustls is used through its sans-I/O connection ([`rustls::ClientConnection`]) rather than an
//! async stream wrapper: [`crate::http1`] still reads the socket itself, with the kernel receive
//! timestamp of each read, and hands the ciphertext to rustls; the plaintext that comes out of it
//! is dated by the read that brought it. So TLS costs decryption, not precision.
//!
//! Trust: the platform's roots (`rustls-native-certs`) plus Mozilla's (`webpki-roots`), or a
//! given CA file (`--ca-cert`), or nothing at all with `--insecure` (flagged in the report). The
//! server name is sent as SNI when it is a DNS name; ALPN asks for `http/1.1`.

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::target::TargetError;

/// How the server's certificate is checked.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// Trust only the CA certificates (PEM) in this file.
    pub ca_cert: Option<PathBuf>,
    /// Accept any certificate (for self-signed test servers; flagged in the report).
    pub insecure: bool,
}

/// Everything needed to open TLS connections to one server.
#[derive(Clone)]
pub struct TlsClient {
    pub(crate) config: Arc<ClientConfig>,
    pub(crate) server_name: ServerName<'static>,
    pub options: TlsOptions,
}

impl std::fmt::Debug for TlsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsClient")
            .field("server_name", &self.server_name)
            .field("options", &self.options)
            .finish()
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn ca_file(path: &Path) -> Result<RootCertStore, TargetError> {
    let bad = |reason: String| TargetError::CaCert {
        path: path.display().to_string(),
        reason,
    };
    let mut roots = RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(path).map_err(|e| bad(e.to_string()))?;
    for c in certs {
        let c = c.map_err(|e| bad(e.to_string()))?;
        roots.add(c).map_err(|e| bad(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(bad("it holds no PEM certificate".into()));
    }
    Ok(roots)
}

fn system_roots() -> RootCertStore {
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for c in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(c);
    }
    roots
}

impl TlsClient {
    /// A client for `host` (the URL's host: a DNS name or an IP address).
    pub fn new(host: &str, options: &TlsOptions) -> Result<TlsClient, TargetError> {
        let provider = provider();
        let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| TargetError::Tls(e.to_string()))?;
        let mut config = if options.insecure {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnything(provider)))
                .with_no_client_auth()
        } else {
            let roots = match &options.ca_cert {
                Some(p) => ca_file(p)?,
                None => system_roots(),
            };
            builder.with_root_certificates(roots).with_no_client_auth()
        };
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let server_name = ServerName::try_from(host.to_owned())
            .map_err(|_| TargetError::Tls(format!("`{host}` is not a valid TLS server name")))?;
        Ok(TlsClient {
            config: Arc::new(config),
            server_name,
            options: options.clone(),
        })
    }

    /// The rustls configuration (trust, ALPN `http/1.1`), for a TLS stream wrapper.
    pub fn config(&self) -> Arc<ClientConfig> {
        Arc::clone(&self.config)
    }

    /// The name the certificate is checked against (and sent as SNI).
    pub fn server_name(&self) -> ServerName<'static> {
        self.server_name.clone()
    }

    pub(crate) fn connection(&self) -> std::io::Result<rustls::ClientConnection> {
        rustls::ClientConnection::new(Arc::clone(&self.config), self.server_name.clone())
            .map_err(std::io::Error::other)
    }
}

/// `--insecure`: every certificate is accepted; signatures are still checked to be well formed.
#[derive(Debug)]
struct AcceptAnything(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AcceptAnything {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

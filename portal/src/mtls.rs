//! The mutual-TLS CAC host: a second listener whose handshake asks the browser for a client
//! certificate, as most CAC portals do (a browser presents the card's certificate through a
//! PKCS#11 module, CAC Bridge's or another, and the card signs the handshake).
//!
//! The handshake proves that the client holds the certificate's key; it does not decide who
//! may register. Client authentication is offered, not required (a handshake without a
//! certificate gets the guide's 403 page, not a TLS alert), and every certificate is checked
//! on each request with the same rules as a page-API token's (`Verifier::verify_certificate`:
//! validity, authentication-certificate profile, chain to the configured trust with its
//! intermediates, issuer and policy allow-lists). The trust's names go to the browser as the
//! acceptable issuers, so it offers only certificates from those CAs.

use std::future::Future;
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;

use axum_server::accept::Accept;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use tokio_rustls::server::TlsStream;

use cacbridge_verify::TrustStore;

/// The end-entity certificate the client proved in this connection's handshake, if any, and
/// the TLS version of that handshake.
#[derive(Debug, Clone)]
pub struct PeerCertificate {
    pub der: Option<Vec<u8>>,
    pub protocol: Option<rustls::ProtocolVersion>,
}

impl PeerCertificate {
    /// The handshake's TLS version as people write it ("TLS 1.3").
    pub fn protocol_name(&self) -> &'static str {
        match self.protocol {
            Some(rustls::ProtocolVersion::TLSv1_3) => "TLS 1.3",
            Some(rustls::ProtocolVersion::TLSv1_2) => "TLS 1.2",
            _ => "TLS",
        }
    }
}

/// Asks for a client certificate, checks the handshake signature, and leaves the certificate's
/// validity to the application (see the module documentation).
#[derive(Debug)]
struct CardholderVerifier {
    acceptable_issuers: Vec<DistinguishedName>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for CardholderVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.acceptable_issuers
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        // Checked per request by cacbridge-verify, against the full trust (see above).
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        // What a card signed a TLS 1.3 login with (RSA keys: RSA-PSS, as RFC 8446 requires).
        tracing::info!(scheme = ?dss.scheme, "client certificate's handshake signature");
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The mTLS listener's TLS configuration: the portal's certificate, and a request for a client
/// certificate from one of `trust`'s CAs.
pub fn server_config(
    cert: &Path,
    key: &Path,
    trust: &TrustStore,
) -> Result<Arc<rustls::ServerConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let acceptable_issuers = trust
        .anchors()
        .iter()
        .map(|anchor| DistinguishedName::in_sequence(anchor.subject.as_ref()))
        .chain(trust.intermediates().iter().filter_map(|der| {
            let (_, parsed) = x509_parser::parse_x509_certificate(der).ok()?;
            Some(DistinguishedName::from(parsed.subject().as_raw().to_vec()))
        }))
        .collect();
    let verifier = Arc::new(CardholderVerifier {
        acceptable_issuers,
        algorithms: provider.signature_verification_algorithms,
    });
    let (chain, key) = crate::tls::load(cert, key)?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| e.to_string())?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The TLS acceptor of the mTLS listener: after the handshake, the connection's service
/// gets the client's certificate as a request extension ([`PeerCertificate`]). A slow client
/// cannot hold the listener (the second security review's L4): its ClientHello must come
/// within [`HELLO_TIMEOUT`], and one address has at most [`HANDSHAKES_PER_ADDRESS`] handshakes
/// in progress; only a handshake under way gets the long [`HANDSHAKE_TIMEOUT`] (the PIN).
#[derive(Clone)]
pub struct PeerCertificateAcceptor {
    config: Arc<rustls::ServerConfig>,
    in_progress: HandshakesInProgress,
}

/// How long a TLS handshake may take: the person types the card's PIN in the middle of it
/// (the browser asks for the signature that proves the client certificate), so the usual 10 s
/// would cut most people off. The PIN windows give up after 120 s.
pub const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(180);
/// A connection's first message, the ClientHello, comes at once from any browser.
pub const HELLO_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// Handshakes one client address may have in progress (a browser opens a few connections at
/// once; several people may share an address).
pub const HANDSHAKES_PER_ADDRESS: usize = 16;

impl PeerCertificateAcceptor {
    pub fn new(config: Arc<rustls::ServerConfig>) -> Self {
        Self {
            config,
            in_progress: Arc::default(),
        }
    }
}

/// Handshakes in progress, by client address.
type HandshakesInProgress =
    Arc<std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>>;

/// One handshake of `address` counted while it lives.
struct HandshakeSlot {
    address: std::net::IpAddr,
    in_progress: HandshakesInProgress,
}

impl HandshakeSlot {
    fn take(acceptor: &PeerCertificateAcceptor, address: std::net::IpAddr) -> Option<Self> {
        let mut counts = acceptor
            .in_progress
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let count = counts.entry(address).or_insert(0);
        if *count >= HANDSHAKES_PER_ADDRESS {
            return None;
        }
        *count += 1;
        Some(Self {
            address,
            in_progress: Arc::clone(&acceptor.in_progress),
        })
    }
}

impl Drop for HandshakeSlot {
    fn drop(&mut self) {
        let mut counts = self.in_progress.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = counts.get_mut(&self.address) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.address);
            }
        }
    }
}

impl<S> Accept<tokio::net::TcpStream, S> for PeerCertificateAcceptor
where
    S: Send + 'static,
{
    type Stream = TlsStream<tokio::net::TcpStream>;
    type Service = <axum::Extension<PeerCertificate> as tower_layer::Layer<S>>::Service;
    type Future = Pin<Box<dyn Future<Output = io::Result<(Self::Stream, Self::Service)>> + Send>>;

    fn accept(&self, stream: tokio::net::TcpStream, service: S) -> Self::Future {
        let acceptor = self.clone();
        Box::pin(async move {
            let refused =
                |why: &str| io::Error::new(io::ErrorKind::ConnectionRefused, why.to_owned());
            let address = stream.peer_addr()?.ip();
            let _slot = HandshakeSlot::take(&acceptor, address).ok_or_else(|| {
                tracing::warn!(%address, "too many TLS handshakes in progress from one address");
                refused("too many handshakes from this address")
            })?;
            let hello =
                tokio_rustls::LazyConfigAcceptor::new(rustls::server::Acceptor::default(), stream);
            let start = tokio::time::timeout(HELLO_TIMEOUT, hello)
                .await
                .map_err(|_| refused("no ClientHello in time"))??;
            let stream =
                tokio::time::timeout(HANDSHAKE_TIMEOUT, start.into_stream(acceptor.config))
                    .await
                    .map_err(|_| refused("the handshake took too long"))??;
            let connection = stream.get_ref().1;
            let der = connection
                .peer_certificates()
                .and_then(|chain| chain.first())
                .map(|der| der.as_ref().to_vec());
            let layer = axum::Extension(PeerCertificate {
                der,
                protocol: connection.protocol_version(),
            });
            Ok((stream, tower_layer::Layer::layer(&layer, service)))
        })
    }
}

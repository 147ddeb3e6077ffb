//! CAC Bridge card layer: PC/SC readers, the PIV and legacy CAC applets, certificates and
//! signatures. It knows nothing of browsers, JSON or the host's protocol.
//!
//! Layers, bottom up: [`transport`] (ISO 7816 rules over any [`transport::Transport`]),
//! [`piv`] and [`cac`] (one module per applet), [`session`] (multi-APDU operations),
//! [`pcsc_backend`] (readers, connections, caching, recovery). Callers use the [`Backend`] trait,
//! which a PKCS#11 backend implements too.

pub mod apdu;
pub mod cac;
pub mod chain;
/// The certificate view (crate `cacbridge-cert`).
pub use cacbridge_cert as certificate;
pub mod crypto;
pub mod disk_cache;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
mod inflate;
pub mod model;
pub mod monitor;
pub mod pcsc_backend;
pub mod pin;
pub mod piv;
pub mod pkcs11_backend;
pub mod session;
pub mod signature_check;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod timed;
pub mod tlv;
pub mod transport;

pub use certificate::{CertificateInfo, ExtendedKeyUsage, KeyAlgorithm, KeyUsage};
pub use chain::Chain;
pub use crypto::{Digest, HashFunction};
pub use error::CardError;
pub use model::{
    CardCertificate, CardInsertion, CardStatus, CardType, PinStatus, Purpose, ReaderEvent,
    ReaderStatus, Slot,
};
pub use pcsc_backend::PcscBackend;
pub use pin::Pin;
pub use pkcs11_backend::Pkcs11Backend;
pub use session::{PinUse, SignatureInput};
pub use timed::TimedBackend;

/// A source of certificates and signatures: the PC/SC card layer, or a PKCS#11 module.
pub trait Backend: Send {
    /// Short name for logs and policy ("pcsc", "pkcs11").
    fn name(&self) -> &'static str;

    /// Every reader, with the card in it and that card's PIN state.
    fn readers(&mut self) -> Result<Vec<ReaderStatus>, CardError>;

    /// Every reader and whether a card is in it, without talking to any card (no APDU, where
    /// the backend can tell): for callers that ask often, such as a PKCS#11 slot list.
    fn presence(&mut self) -> Result<Vec<(String, bool)>, CardError> {
        Ok(self
            .readers()?
            .into_iter()
            .map(|r| (r.name, r.card.is_some()))
            .collect())
    }

    /// The certificates of every inserted card, or of the card in one reader.
    fn certificates(&mut self, reader: Option<&str>) -> Result<Vec<CardCertificate>, CardError>;

    /// The certificates `purpose` needs; a backend that can reads only those from the card.
    fn certificates_for(
        &mut self,
        reader: Option<&str>,
        purpose: Purpose,
    ) -> Result<Vec<CardCertificate>, CardError> {
        let mut certificates = self.certificates(reader)?;
        certificates.retain(|c| purpose.includes(c.slot));
        Ok(certificates)
    }

    /// Verify `pin` and sign `digest` with the key of `certificate` (as [`Backend::certificates`]
    /// listed it), in one card transaction. RSA keys give a PKCS#1 v1.5 signature, EC keys a
    /// DER ECDSA signature. A card no longer holding the certificate is `CertificateNotFound`.
    fn sign(
        &mut self,
        certificate: &CardCertificate,
        digest: &Digest,
        pin: &Pin,
    ) -> Result<Vec<u8>, CardError> {
        let input = SignatureInput::for_digest(certificate.info.key_algorithm, digest)?;
        self.sign_input(certificate, &input, Some(pin))
    }

    /// Sign an input the caller prepared (an RSA block padded on the host, PKCS#1 v1.5 or PSS;
    /// or an ECDSA hash), verifying `pin` first in the same transaction when the key needs one.
    fn sign_input(
        &mut self,
        certificate: &CardCertificate,
        input: &SignatureInput,
        pin: Option<&Pin>,
    ) -> Result<Vec<u8>, CardError>;

    /// The insertion of the card now in `reader` (an opaque value that changes when a card is
    /// removed or put in), without talking to the card; `None` when the reader is empty or the
    /// backend cannot tell insertions apart. What is remembered for one insertion (a PIN held
    /// for TLS logins) must be forgotten when this changes.
    fn insertion(&mut self, reader: &str) -> Result<Option<CardInsertion>, CardError> {
        let _ = reader;
        Ok(None)
    }

    /// Forget what is known of the card in `reader` (its certificates, in memory and in the
    /// disk cache): another program found them rewritten in the reader
    /// ([`CardError::CertificatesChanged`]), so the next listing reads the card again.
    fn forget(&mut self, reader: &str) -> Result<(), CardError> {
        let _ = reader;
        Ok(())
    }

    /// Check `pin` on the card in `reader`, and leave the card not verified.
    fn verify_pin(&mut self, reader: &str, pin: &Pin) -> Result<(), CardError>;

    /// APDUs sent so far (for benchmarks and tests); 0 where not applicable.
    fn apdu_count(&self) -> u64 {
        0
    }
}

//! Test doubles for code above the card layer and for the card layer's own tests: a scripted
//! card that replays an exact APDU transcript under the real applet code, a scripted PC/SC
//! service that runs the PC/SC backend over such cards, and a [`FakeBackend`]
//! that answers the [`Backend`] trait from memory and records what it was asked. Behind the
//! `testing` feature (and always in this crate's own tests).

mod pcsc;
mod scripted;

pub use pcsc::{PcscEvent, ScriptedPcsc};
pub use scripted::ScriptedCard;

/// Self-signed certificates of a DoD card's shape (subject, key usage) for tests that need DER
/// the certificate view parses: RSA-2048, P-384 and P-256 keys.
pub mod certificates {
    pub const RSA2048: &[u8] = include_bytes!("certs/rsa2048.der");
    pub const P384: &[u8] = include_bytes!("certs/p384.der");
    pub const P256: &[u8] = include_bytes!("certs/p256.der");
}

/// A new P-256 key and a self-signed certificate for it (CN `DOE.JOHN.A.1234567890`): for
/// this crate's tests of signatures checked against their certificate (rcgen is a
/// dev-dependency, so not for the `testing` feature's users).
#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) fn p256_certificate_with_key() -> (Vec<u8>, p256::ecdsa::SigningKey) {
    use p256::pkcs8::DecodePrivateKey as _;
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = rcgen::CertificateParams::new(vec![]).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "DOE.JOHN.A.1234567890");
    let der = params.self_signed(&key).unwrap().der().to_vec();
    let signing = p256::ecdsa::SigningKey::from_pkcs8_der(&key.serialize_der()).unwrap();
    (der, signing)
}

use crate::certificate::{CertificateInfo, ExtendedKeyUsage, KeyAlgorithm, KeyUsage};
use crate::crypto::Digest;
use crate::error::CardError;
use crate::model::{CardCertificate, ReaderStatus, Slot};
use crate::pin::Pin;
use crate::{Backend, SignatureInput};

/// What a [`FakeBackend`] was asked, in order. PINs are not recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    Readers,
    Certificates {
        reader: Option<String>,
    },
    Sign {
        certificate_id: String,
        digest: Digest,
    },
    SignInput {
        certificate_id: String,
        input: SignatureInput,
        with_pin: bool,
    },
    VerifyPin {
        reader: String,
    },
}

/// A token in memory: certificates, readers, and what `sign` answers.
pub struct FakeBackend {
    pub readers: Vec<ReaderStatus>,
    pub certificates: Vec<CardCertificate>,
    /// The raw signature `sign` returns (RSA as is, ECDSA in DER), or the error it fails with.
    pub signature: Result<Vec<u8>, CardError>,
    pub calls: Vec<Call>,
}

impl FakeBackend {
    pub fn new(certificates: Vec<CardCertificate>) -> Self {
        Self {
            readers: Vec::new(),
            certificates,
            signature: Ok(vec![0x5A; 256]),
            calls: Vec::new(),
        }
    }

    /// How many times the certificates were listed.
    pub fn listings(&self) -> usize {
        self.calls
            .iter()
            .filter(|c| matches!(c, Call::Certificates { .. }))
            .count()
    }
}

impl Backend for FakeBackend {
    fn name(&self) -> &'static str {
        "fake"
    }

    fn readers(&mut self) -> Result<Vec<ReaderStatus>, CardError> {
        self.calls.push(Call::Readers);
        Ok(self.readers.clone())
    }

    fn certificates(&mut self, reader: Option<&str>) -> Result<Vec<CardCertificate>, CardError> {
        self.calls.push(Call::Certificates {
            reader: reader.map(str::to_owned),
        });
        Ok(self
            .certificates
            .iter()
            .filter(|c| reader.is_none_or(|r| c.reader == r))
            .cloned()
            .collect())
    }

    fn sign(
        &mut self,
        certificate: &CardCertificate,
        digest: &Digest,
        pin: &Pin,
    ) -> Result<Vec<u8>, CardError> {
        let _ = pin;
        self.calls.push(Call::Sign {
            certificate_id: certificate.info.id.clone(),
            digest: digest.clone(),
        });
        self.signature.clone()
    }

    fn sign_input(
        &mut self,
        certificate: &CardCertificate,
        input: &SignatureInput,
        pin: Option<&Pin>,
    ) -> Result<Vec<u8>, CardError> {
        self.calls.push(Call::SignInput {
            certificate_id: certificate.info.id.clone(),
            input: input.clone(),
            with_pin: pin.is_some(),
        });
        self.signature.clone()
    }

    fn verify_pin(&mut self, reader: &str, pin: &Pin) -> Result<(), CardError> {
        let _ = pin;
        self.calls.push(Call::VerifyPin {
            reader: reader.to_owned(),
        });
        self.signature.clone().map(|_| ())
    }
}

/// A certificate as a card would list it, without DER: enough for the rules above the card
/// layer. `id` is 64 hex digits made from `n`.
pub fn certificate(
    n: u8,
    slot: Slot,
    key_algorithm: KeyAlgorithm,
    key_usage: &[KeyUsage],
    extended_key_usage: &[ExtendedKeyUsage],
) -> CardCertificate {
    CardCertificate {
        reader: "Fake Reader 00 00".into(),
        slot,
        der: vec![0x30, n],
        info: CertificateInfo {
            id: format!("{n:02x}").repeat(32),
            subject: "C=US, O=U.S. Government, CN=DOE.JOHN.A.1234567890".into(),
            issuer: "C=US, O=U.S. Government, CN=DOD ID CA-80".into(),
            common_name: Some("DOE.JOHN.A.1234567890".into()),
            issuer_common_name: Some("DOD ID CA-80".into()),
            serial_number: format!("{n:02X}"),
            not_before: "2025-01-01T00:00:00Z".into(),
            not_after: "2028-01-01T00:00:00Z".into(),
            not_before_unix: 1_735_689_600,
            not_after_unix: 1_830_297_600,
            key_algorithm,
            key_usage: key_usage.to_vec(),
            extended_key_usage: extended_key_usage.to_vec(),
            edipi: Some("1234567890".into()),
            upn: Some("1234567890123456@mil".into()),
            email: None,
            fasc_n: None,
            card_uuid: None,
        },
    }
}

//! What a person and a portal need to know about a CAC certificate, read with x509-parser, and
//! the token contract ([`token`]). Shared by the card layer (the host) and the verification
//! library (servers), so both name keys, EDIPIs and UPNs, and build and check tokens, the same
//! way.

pub mod fascn;
pub mod token;

/// DISA's public DoD PKI bundle (v5.14: DoD Root CA 3-6 and their ID, EMAIL, SW and DERILITY
/// intermediates, PEM): the verifier's default trust store, and the roots the host offers a
/// person to trust in their browsers.
pub const DOD_BUNDLE: &[u8] = include_bytes!("../data/dod-ca-bundle-v5.14.pem");

/// A root CA of the DoD bundle, as a person is shown it before trusting it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootCertificate {
    /// Its common name ("DoD Root CA 3").
    pub name: String,
    /// SHA-256 of the DER, upper-case hex pairs joined by colons (as browsers show it).
    pub sha256: String,
    /// RFC 3339, UTC.
    pub not_after: String,
    pub der: Vec<u8>,
}

/// The root CAs of [`DOD_BUNDLE`] (its self-signed CA certificates), by name.
pub fn dod_roots() -> Vec<RootCertificate> {
    let mut roots = Vec::new();
    for block in x509_parser::pem::Pem::iter_from_buffer(DOD_BUNDLE).flatten() {
        let Ok((_, certificate)) = X509Certificate::from_der(&block.contents) else {
            continue;
        };
        let is_ca = certificate
            .basic_constraints()
            .ok()
            .flatten()
            .is_some_and(|constraints| constraints.value.ca);
        if !is_ca || certificate.subject() != certificate.issuer() {
            continue;
        }
        let Some(name) = certificate
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
        else {
            continue;
        };
        roots.push(RootCertificate {
            name: name.to_owned(),
            sha256: Sha256::digest(&block.contents)
                .iter()
                .map(|byte| format!("{byte:02X}"))
                .collect::<Vec<_>>()
                .join(":"),
            not_after: rfc3339(&certificate.validity().not_after),
            der: block.contents.clone(),
        });
    }
    roots.sort_by(|a, b| a.name.cmp(&b.name));
    roots
}

use sha2::{Digest as _, Sha256};
use x509_parser::prelude::*;

/// A certificate that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("certificate: {0}")]
pub struct CertificateError(pub String);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAlgorithm {
    Rsa { bits: usize },
    EcP256,
    EcP384,
}

impl KeyAlgorithm {
    /// "RSA-2048", "EC-P256", "EC-P384".
    pub fn name(self) -> String {
        match self {
            KeyAlgorithm::Rsa { bits } => format!("RSA-{bits}"),
            KeyAlgorithm::EcP256 => "EC-P256".into(),
            KeyAlgorithm::EcP384 => "EC-P384".into(),
        }
    }

    /// Bytes in an RSA modulus or an EC field element.
    pub fn size_bytes(self) -> usize {
        match self {
            KeyAlgorithm::Rsa { bits } => bits.div_ceil(8),
            KeyAlgorithm::EcP256 => 32,
            KeyAlgorithm::EcP384 => 48,
        }
    }
}

/// A key usage bit (RFC 5280 4.2.1.3). `encipherOnly` and `decipherOnly` qualify
/// keyAgreement and are not kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyUsage {
    DigitalSignature,
    NonRepudiation,
    KeyEncipherment,
    DataEncipherment,
    KeyAgreement,
    KeyCertSign,
    CrlSign,
}

impl KeyUsage {
    /// RFC 5280's name, as the host reports it.
    pub fn name(self) -> &'static str {
        match self {
            KeyUsage::DigitalSignature => "digitalSignature",
            KeyUsage::NonRepudiation => "nonRepudiation",
            KeyUsage::KeyEncipherment => "keyEncipherment",
            KeyUsage::DataEncipherment => "dataEncipherment",
            KeyUsage::KeyAgreement => "keyAgreement",
            KeyUsage::KeyCertSign => "keyCertSign",
            KeyUsage::CrlSign => "cRLSign",
        }
    }
}

/// An extended key usage (RFC 5280 4.2.1.12): the ones CAC and PIV certificates carry by name,
/// any other by its dotted OID.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ExtendedKeyUsage {
    Any,
    ServerAuth,
    ClientAuth,
    CodeSigning,
    EmailProtection,
    TimeStamping,
    OcspSigning,
    /// Microsoft's Smart Card Logon (1.3.6.1.4.1.311.20.2.2).
    SmartcardLogon,
    /// id-PIV-cardAuth (2.16.840.1.101.3.6.8): the Card Authentication key's.
    PivCardAuth,
    /// Microsoft's Document Signing (1.3.6.1.4.1.311.10.3.12).
    DocumentSigning,
    /// Kerberos PKINIT client authentication, id-pkinit-KPClientAuth (1.3.6.1.5.2.3.4): DoD
    /// PIV Authentication certificates carry it.
    PkinitClientAuth,
    Other(String),
}

impl ExtendedKeyUsage {
    /// The usual name ("clientAuth"), or the dotted OID of one without a name here.
    pub fn name(&self) -> &str {
        match self {
            ExtendedKeyUsage::Any => "anyExtendedKeyUsage",
            ExtendedKeyUsage::ServerAuth => "serverAuth",
            ExtendedKeyUsage::ClientAuth => "clientAuth",
            ExtendedKeyUsage::CodeSigning => "codeSigning",
            ExtendedKeyUsage::EmailProtection => "emailProtection",
            ExtendedKeyUsage::TimeStamping => "timeStamping",
            ExtendedKeyUsage::OcspSigning => "OCSPSigning",
            ExtendedKeyUsage::SmartcardLogon => "smartcardLogon",
            ExtendedKeyUsage::PivCardAuth => "pivCardAuth",
            ExtendedKeyUsage::DocumentSigning => "documentSigning",
            ExtendedKeyUsage::PkinitClientAuth => "pkinitClientAuth",
            ExtendedKeyUsage::Other(oid) => oid,
        }
    }

    fn from_oid(oid: String) -> Self {
        match oid.as_str() {
            OID_SMARTCARD_LOGON => ExtendedKeyUsage::SmartcardLogon,
            OID_PIV_CARD_AUTH => ExtendedKeyUsage::PivCardAuth,
            OID_DOCUMENT_SIGNING => ExtendedKeyUsage::DocumentSigning,
            OID_PKINIT_CLIENT_AUTH => ExtendedKeyUsage::PkinitClientAuth,
            _ => ExtendedKeyUsage::Other(oid),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateInfo {
    /// Hex SHA-256 of the DER: stable across readers, cards and sessions.
    pub id: String,
    pub subject: String,
    pub issuer: String,
    pub common_name: Option<String>,
    pub issuer_common_name: Option<String>,
    /// Hex, upper case, no separators.
    pub serial_number: String,
    /// RFC 3339, UTC.
    pub not_before: String,
    pub not_after: String,
    pub not_before_unix: i64,
    pub not_after_unix: i64,
    pub key_algorithm: KeyAlgorithm,
    pub key_usage: Vec<KeyUsage>,
    pub extended_key_usage: Vec<ExtendedKeyUsage>,
    /// The DoD ID number: last part of a CN `LAST.FIRST[.MIDDLE].EDIPI`.
    pub edipi: Option<String>,
    pub upn: Option<String>,
    pub email: Option<String>,
    /// The FASC-N in the subject alternative name (PIV and CAC certificates carry one).
    pub fasc_n: Option<fascn::FascN>,
    /// The card's UUID: the SAN's `urn:uuid:` URI, lower case.
    pub card_uuid: Option<String>,
}

const OID_UPN: &str = "1.3.6.1.4.1.311.20.2.3";
const OID_SMARTCARD_LOGON: &str = "1.3.6.1.4.1.311.20.2.2";
const OID_PIV_CARD_AUTH: &str = "2.16.840.1.101.3.6.8";
const OID_DOCUMENT_SIGNING: &str = "1.3.6.1.4.1.311.10.3.12";
const OID_PKINIT_CLIENT_AUTH: &str = "1.3.6.1.5.2.3.4";
const OID_P256: &str = "1.2.840.10045.3.1.7";
const OID_P384: &str = "1.3.132.0.34";

pub fn certificate_id(der: &[u8]) -> String {
    hex::encode(Sha256::digest(der))
}

/// The RSA key sizes a certificate may carry: PIV and CAC cards hold 1024 to 4096 bits.
pub const RSA_KEY_BITS_MIN: usize = 1024;
pub const RSA_KEY_BITS_MAX: usize = 4096;

/// A certificate's public key, as the numbers a signature check needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicKey {
    /// Big-endian modulus and public exponent, without leading zeros.
    Rsa { modulus: Vec<u8>, exponent: Vec<u8> },
    /// The SEC1 point (04 || x || y, or compressed) on the named curve.
    Ec {
        algorithm: KeyAlgorithm,
        point: Vec<u8>,
    },
}

/// The public key of the certificate `der` (one [`inspect`] accepts).
pub fn public_key(der: &[u8]) -> Result<PublicKey, CertificateError> {
    let bad = CertificateError;
    let (_, cert) = X509Certificate::from_der(der).map_err(|e| bad(e.to_string()))?;
    let spki = cert.public_key();
    match spki.parsed().map_err(|e| bad(e.to_string()))? {
        x509_parser::public_key::PublicKey::RSA(rsa) => {
            let trimmed = |bytes: &[u8]| {
                let start = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
                bytes[start..].to_vec()
            };
            Ok(PublicKey::Rsa {
                modulus: trimmed(rsa.modulus),
                exponent: trimmed(rsa.exponent),
            })
        }
        x509_parser::public_key::PublicKey::EC(point) => Ok(PublicKey::Ec {
            algorithm: inspect(der)?.key_algorithm,
            point: point.data().to_vec(),
        }),
        _ => Err(bad("unsupported key type".into())),
    }
}

/// Parse a certificate.
pub fn inspect(der: &[u8]) -> Result<CertificateInfo, CertificateError> {
    let bad = CertificateError;
    let (rest, cert) = X509Certificate::from_der(der).map_err(|e| bad(e.to_string()))?;
    if !rest.is_empty() {
        return Err(bad(format!("{} bytes after the certificate", rest.len())));
    }

    let spki = cert.public_key();
    let key_algorithm = match spki.parsed().map_err(|e| bad(e.to_string()))? {
        // A size outside what cards hold (a hostile card, a damaged cache) is refused here,
        // so no caller sizes buffers from it.
        x509_parser::public_key::PublicKey::RSA(rsa) => match rsa.key_size() {
            bits @ RSA_KEY_BITS_MIN..=RSA_KEY_BITS_MAX => KeyAlgorithm::Rsa { bits },
            bits => {
                return Err(bad(format!(
                "an RSA key of {bits} bits (cards hold {RSA_KEY_BITS_MIN} to {RSA_KEY_BITS_MAX})"
            )))
            }
        },
        x509_parser::public_key::PublicKey::EC(_) => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .map(|oid| oid.to_id_string());
            match curve.as_deref() {
                Some(OID_P256) => KeyAlgorithm::EcP256,
                Some(OID_P384) => KeyAlgorithm::EcP384,
                other => return Err(bad(format!("unsupported EC curve {other:?}"))),
            }
        }
        _ => return Err(bad("unsupported key type".into())),
    };

    let common_name = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_owned);
    let edipi = common_name.as_deref().and_then(edipi_from_cn);
    let issuer_common_name = cert
        .issuer()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_owned);

    let mut key_usage = Vec::new();
    if let Ok(Some(ku)) = cert.key_usage() {
        let ku = ku.value;
        for (set, usage) in [
            (ku.digital_signature(), KeyUsage::DigitalSignature),
            (ku.non_repudiation(), KeyUsage::NonRepudiation),
            (ku.key_encipherment(), KeyUsage::KeyEncipherment),
            (ku.data_encipherment(), KeyUsage::DataEncipherment),
            (ku.key_agreement(), KeyUsage::KeyAgreement),
            (ku.key_cert_sign(), KeyUsage::KeyCertSign),
            (ku.crl_sign(), KeyUsage::CrlSign),
        ] {
            if set {
                key_usage.push(usage);
            }
        }
    }

    let mut extended_key_usage = Vec::new();
    if let Ok(Some(eku)) = cert.extended_key_usage() {
        let eku = eku.value;
        for (set, usage) in [
            (eku.any, ExtendedKeyUsage::Any),
            (eku.server_auth, ExtendedKeyUsage::ServerAuth),
            (eku.client_auth, ExtendedKeyUsage::ClientAuth),
            (eku.code_signing, ExtendedKeyUsage::CodeSigning),
            (eku.email_protection, ExtendedKeyUsage::EmailProtection),
            (eku.time_stamping, ExtendedKeyUsage::TimeStamping),
            (eku.ocsp_signing, ExtendedKeyUsage::OcspSigning),
        ] {
            if set {
                extended_key_usage.push(usage);
            }
        }
        extended_key_usage.extend(
            eku.other
                .iter()
                .map(|oid| ExtendedKeyUsage::from_oid(oid.to_id_string())),
        );
    }

    let mut upn = None;
    let mut email = None;
    let mut fasc_n = None;
    let mut card_uuid = None;
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::RFC822Name(address) if email.is_none() => {
                    email = Some((*address).to_owned());
                }
                GeneralName::OtherName(oid, value) if oid.to_id_string() == OID_UPN => {
                    upn = upn.or_else(|| other_name_string(value));
                }
                GeneralName::OtherName(oid, value) if oid.to_id_string() == fascn::OID_FASC_N => {
                    fasc_n = fasc_n.or_else(|| {
                        other_name_content(value)
                            .filter(|(tag, _)| *tag == 0x04)
                            .and_then(|(_, octets)| fascn::decode(octets))
                    });
                }
                GeneralName::URI(uri) if card_uuid.is_none() => card_uuid = uuid_of(uri),
                _ => {}
            }
        }
    }

    let validity = cert.validity();
    Ok(CertificateInfo {
        id: certificate_id(der),
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        common_name,
        issuer_common_name,
        serial_number: hex::encode_upper(cert.tbs_certificate.raw_serial()),
        not_before: rfc3339(&validity.not_before),
        not_after: rfc3339(&validity.not_after),
        not_before_unix: validity.not_before.timestamp(),
        not_after_unix: validity.not_after.timestamp(),
        key_algorithm,
        key_usage,
        extended_key_usage,
        edipi,
        upn,
        email,
        fasc_n,
        card_uuid,
    })
}

/// `urn:uuid:` and 36 characters of hex and hyphens in the 8-4-4-4-12 form (RFC 4122), lower
/// case; anything else is no UUID.
fn uuid_of(uri: &str) -> Option<String> {
    let rest = uri
        .get(..9)?
        .eq_ignore_ascii_case("urn:uuid:")
        .then(|| &uri[9..])?;
    let groups: Vec<&str> = rest.split('-').collect();
    let sizes = groups.iter().map(|g| g.len()).collect::<Vec<_>>();
    (sizes == [8, 4, 4, 4, 12]
        && groups
            .iter()
            .all(|g| g.bytes().all(|b| b.is_ascii_hexdigit())))
    .then(|| rest.to_ascii_lowercase())
}

/// Why a certificate is not an authentication certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NotAuthentication {
    #[error("the certificate's key usage lacks digitalSignature")]
    MissingDigitalSignature,
    /// Signing (nonRepudiation) keys sign whatever hash a page submits: a signature from one
    /// can be shaped into any origin's login proof.
    #[error("the certificate is for document signatures (nonRepudiation), not for logging in")]
    NonRepudiation,
    #[error("the certificate is an e-mail certificate (emailProtection), not for logging in")]
    EmailProtection,
    #[error("a Card Authentication certificate does not prove who holds the card")]
    CardAuthentication,
    #[error("the certificate's extended key usage lacks clientAuth")]
    MissingClientAuth,
}

/// The authentication profile: what a PIV Authentication (or legacy CAC ID) certificate looks
/// like under the FPKI and DoD certificate profiles, and what no signing certificate looks like.
///
/// Policy OIDs cannot tell the two apart (DoD e-mail signing certificates assert the same
/// medium-hardware policies as PIV Authentication ones, and carry clientAuth and Smart Card
/// Logon too), so the key usages decide: an authentication certificate has digitalSignature
/// and clientAuth, and neither nonRepudiation nor emailProtection, which every DoD and FPKI
/// signature and e-mail certificate asserts. The host signs login proofs only with such
/// certificates and page-supplied hashes only with others, and the verifier accepts only such
/// certificates, so a document signature can never be replayed as a login.
pub fn check_authentication_profile(info: &CertificateInfo) -> Result<(), NotAuthentication> {
    let eku = |usage: ExtendedKeyUsage| info.extended_key_usage.contains(&usage);
    if !info.key_usage.contains(&KeyUsage::DigitalSignature) {
        return Err(NotAuthentication::MissingDigitalSignature);
    }
    if info.key_usage.contains(&KeyUsage::NonRepudiation) {
        return Err(NotAuthentication::NonRepudiation);
    }
    if eku(ExtendedKeyUsage::EmailProtection) {
        return Err(NotAuthentication::EmailProtection);
    }
    if !eku(ExtendedKeyUsage::ClientAuth) {
        return Err(if eku(ExtendedKeyUsage::PivCardAuth) {
            NotAuthentication::CardAuthentication
        } else {
            NotAuthentication::MissingClientAuth
        });
    }
    Ok(())
}

/// `LAST.FIRST[.MIDDLE].EDIPI` -> EDIPI (10 digits). Names may hold spaces and hyphens.
pub fn edipi_from_cn(cn: &str) -> Option<String> {
    let parts: Vec<&str> = cn.split('.').collect();
    let last = *parts.last()?;
    if parts.len() >= 3
        && last.len() == 10
        && last.bytes().all(|b| b.is_ascii_digit())
        && parts[..parts.len() - 1].iter().all(|p| !p.is_empty())
    {
        Some(last.to_owned())
    } else {
        None
    }
}

/// An otherName value: `[0] EXPLICIT UTF8String` (or IA5String). x509-parser hands us the
/// bytes inside the otherName's `[0]`, which some encoders repeat.
fn other_name_string(value: &[u8]) -> Option<String> {
    match other_name_content(value)? {
        (0x0C | 0x16, content) => std::str::from_utf8(content).ok().map(str::to_owned),
        _ => None,
    }
}

/// The tag and content of the value inside an otherName's `[0]` (however often repeated).
fn other_name_content(value: &[u8]) -> Option<(u8, &[u8])> {
    let mut bytes = value;
    loop {
        let (&tag, rest) = bytes.split_first()?;
        let (&len, rest) = rest.split_first()?;
        let (len, rest) = match len {
            0..=0x7F => (usize::from(len), rest),
            0x81 => (usize::from(*rest.first()?), &rest[1..]),
            _ => return None,
        };
        let content = rest.get(..len)?;
        match tag {
            0xA0 => bytes = content,
            tag => return Some((tag, content)),
        }
    }
}

fn rfc3339(time: &ASN1Time) -> String {
    let t = time.to_datetime();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A certificate in the real DoD PIV Authentication layout (UPN, FASC-N, `urn:uuid:`,
    /// Smart Card Logon, clientAuth and PKINIT), made with openssl from
    /// testdata/dod-piv-layout.cnf (its FASC-N: fascn.rs's DOE).
    const DOD_LAYOUT: &[u8] = include_bytes!("../testdata/dod-piv-layout.der");

    #[test]
    fn a_dod_layout_certificate_gives_its_fasc_n_uuid_and_pkinit_usage() {
        let info = inspect(DOD_LAYOUT).unwrap();
        assert_eq!(info.edipi.as_deref(), Some("1234567890"));
        assert_eq!(info.upn.as_deref(), Some("1234567890123456@mil"));
        let fasc_n = info.fasc_n.as_ref().unwrap();
        assert_eq!(fasc_n.agency, "0097");
        assert_eq!(
            fasc_n.person, "1234567890",
            "the person identifier is the EDIPI"
        );
        assert_eq!(
            info.card_uuid.as_deref(),
            Some("4f2a9c1e-7b3d-4e8a-9c2f-1d5e6a7b8c9d")
        );
        let names: Vec<&str> = info.extended_key_usage.iter().map(|u| u.name()).collect();
        assert_eq!(names, ["clientAuth", "smartcardLogon", "pkinitClientAuth"]);
        assert_eq!(check_authentication_profile(&info), Ok(()));
    }

    #[test]
    fn only_a_urn_uuid_is_a_card_uuid() {
        assert_eq!(
            uuid_of("urn:uuid:4F2A9C1E-7B3D-4E8A-9C2F-1D5E6A7B8C9D").as_deref(),
            Some("4f2a9c1e-7b3d-4e8a-9c2f-1d5e6a7b8c9d")
        );
        for other in [
            "https://example.mil",
            "urn:uuid:4F2A9C1E7B3D4E8A9C2F1D5E6A7B8C9D",
            "urn:uuid:4F2A9C1E-7B3D-4E8A-9C2F-1D5E6A7B8C9",
            "urn:uuid:zzzzzzzz-7B3D-4E8A-9C2F-1D5E6A7B8C9D",
            "urn:uu",
        ] {
            assert_eq!(uuid_of(other), None, "{other}");
        }
    }

    #[test]
    #[ignore = "needs the openssl tool: run scripts/test"]
    fn an_rsa_key_of_a_size_no_card_holds_is_refused() {
        let dir = std::env::temp_dir().join(format!("cacbridge-cert-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let made = std::process::Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "rsa:512",
                "-nodes",
                "-subj",
                "/CN=SMALL",
            ])
            .arg("-keyout")
            .arg(dir.join("small.key"))
            .args(["-outform", "DER", "-out"])
            .arg(dir.join("small.der"))
            .output()
            .unwrap();
        assert!(
            made.status.success(),
            "{}",
            String::from_utf8_lossy(&made.stderr)
        );
        let der = std::fs::read(dir.join("small.der")).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        let err = inspect(&der).unwrap_err();
        assert!(err.0.contains("512 bits"), "{}", err.0);
    }

    #[test]
    fn edipi_comes_from_dod_style_names() {
        assert_eq!(
            edipi_from_cn("DOE.JOHN.A.1234567890").as_deref(),
            Some("1234567890")
        );
        assert_eq!(
            edipi_from_cn("SMITH.JANE.1098765432").as_deref(),
            Some("1098765432")
        );
        assert_eq!(
            edipi_from_cn("VAN DER BERG.ANNA MARIE.Q.1000000001").as_deref(),
            Some("1000000001")
        );
        assert_eq!(edipi_from_cn("JOHN DOE"), None);
        assert_eq!(edipi_from_cn("DOE.1234567890"), None);
        assert_eq!(edipi_from_cn("DOE.JOHN.123456789"), None);
        assert_eq!(edipi_from_cn("DOE..1234567890"), None);
    }

    #[test]
    fn other_name_accepts_explicit_wrappers() {
        let inner = [0x0C, 0x03, b'a', b'@', b'b'];
        assert_eq!(other_name_string(&inner).as_deref(), Some("a@b"));
        let wrapped = [0xA0, 0x05, 0x0C, 0x03, b'a', b'@', b'b'];
        assert_eq!(other_name_string(&wrapped).as_deref(), Some("a@b"));
        assert_eq!(other_name_string(&[0x0C, 0x09, b'a']), None);
    }
}

//! A card's certificates as PKCS#11 objects: for each certificate, the certificate, its public
//! key and its private key, sharing one `CKA_ID`, with the attributes NSS, OpenSSL and GnuTLS
//! read to pair a certificate with its key. The ids are the ones other PIV modules use
//! (01..04 for 9A, 9C, 9D, 9E), so existing configurations keep working.

use cryptoki_sys::*;
use x509_parser::asn1_rs::ToDer;
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::public_key::PublicKey;

use cacbridge_card::{CardCertificate, Slot};

/// One object and its attributes, encoded as PKCS#11 wants them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    pub handle: CK_OBJECT_HANDLE,
    attributes: Vec<(CK_ATTRIBUTE_TYPE, Vec<u8>)>,
}

impl Object {
    pub fn attribute(&self, kind: CK_ATTRIBUTE_TYPE) -> Option<&[u8]> {
        self.attributes
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, v)| v.as_slice())
    }

    /// Does every attribute of `template` match this object's?
    pub fn matches(&self, template: &[(CK_ATTRIBUTE_TYPE, Vec<u8>)]) -> bool {
        template
            .iter()
            .all(|(kind, value)| self.attribute(*kind) == Some(value.as_slice()))
    }

    pub fn class(&self) -> Option<CK_OBJECT_CLASS> {
        self.attribute(CKA_CLASS).and_then(ulong_of)
    }
}

pub fn ulong(value: CK_ULONG) -> Vec<u8> {
    value.to_ne_bytes().to_vec()
}

fn ulong_of(bytes: &[u8]) -> Option<CK_ULONG> {
    Some(CK_ULONG::from_ne_bytes(bytes.try_into().ok()?))
}

fn bool(value: bool) -> Vec<u8> {
    vec![if value { CK_TRUE } else { CK_FALSE }]
}

/// The `CKA_ID` other PIV modules give a slot's key and certificate.
pub fn key_id(slot: Slot) -> u8 {
    match slot {
        Slot::PivAuthentication | Slot::CacId => 1,
        Slot::DigitalSignature | Slot::CacEmailSignature => 2,
        Slot::KeyManagement | Slot::CacEmailEncryption => 3,
        Slot::CardAuthentication => 4,
        Slot::RetiredKeyManagement(n) => 4 + n,
    }
}

/// What the key is for, as object labels name it.
pub fn role(slot: Slot) -> String {
    match slot {
        Slot::PivAuthentication => "PIV AUTH".into(),
        Slot::DigitalSignature => "SIGN".into(),
        Slot::KeyManagement => "KEY MAN".into(),
        Slot::CardAuthentication => "CARD AUTH".into(),
        Slot::RetiredKeyManagement(n) => format!("RETIRED KEY {n}"),
        Slot::CacId => "CAC ID".into(),
        Slot::CacEmailSignature => "CAC EMAIL SIGNATURE".into(),
        Slot::CacEmailEncryption => "CAC EMAIL ENCRYPTION".into(),
    }
}

/// A DER length.
fn der_length(length: usize) -> Vec<u8> {
    match length {
        0..=0x7F => vec![length as u8],
        0x80..=0xFF => vec![0x81, length as u8],
        _ => vec![0x82, (length >> 8) as u8, length as u8],
    }
}

fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend(der_length(content.len()));
    out.extend_from_slice(content);
    out
}

/// Why a certificate cannot become objects.
#[derive(Debug, thiserror::Error)]
#[error("certificate: {0}")]
pub struct ObjectError(String);

/// The three objects of `cert`, with handles from `first_handle` on.
pub fn objects_for(
    cert: &CardCertificate,
    first_handle: CK_OBJECT_HANDLE,
) -> Result<Vec<Object>, ObjectError> {
    let (_, x509) = X509Certificate::from_der(&cert.der).map_err(|e| ObjectError(e.to_string()))?;
    let id = vec![key_id(cert.slot)];
    let label = format!(
        "{} {}",
        role(cert.slot),
        cert.info.common_name.as_deref().unwrap_or("")
    )
    .trim()
    .to_owned()
    .into_bytes();
    let subject = x509.subject().as_raw().to_vec();
    let common = |class: CK_OBJECT_CLASS, private: bool| {
        vec![
            (CKA_CLASS, ulong(class)),
            (CKA_TOKEN, bool(true)),
            (CKA_PRIVATE, bool(private)),
            (CKA_MODIFIABLE, bool(false)),
            (CKA_ID, id.clone()),
            (CKA_LABEL, label.clone()),
        ]
    };

    let mut certificate = common(CKO_CERTIFICATE, false);
    certificate.extend([
        (CKA_CERTIFICATE_TYPE, ulong(CKC_X_509)),
        (CKA_TRUSTED, bool(false)),
        (CKA_SUBJECT, subject.clone()),
        (CKA_ISSUER, x509.issuer().as_raw().to_vec()),
        (
            CKA_SERIAL_NUMBER,
            der(0x02, x509.tbs_certificate.raw_serial()),
        ),
        (CKA_VALUE, cert.der.clone()),
    ]);

    let mut key_attributes = vec![(CKA_SUBJECT, subject)];
    let key_type = match x509.public_key().parsed() {
        Ok(PublicKey::RSA(rsa)) => {
            key_attributes.push((CKA_MODULUS, strip_zero(rsa.modulus).to_vec()));
            key_attributes.push((CKA_PUBLIC_EXPONENT, strip_zero(rsa.exponent).to_vec()));
            key_attributes.push((CKA_MODULUS_BITS, ulong(rsa.key_size() as CK_ULONG)));
            CKK_RSA
        }
        Ok(PublicKey::EC(point)) => {
            let params = x509
                .public_key()
                .algorithm
                .parameters
                .as_ref()
                .map(|p| p.to_der_vec())
                .transpose()
                .map_err(|e| ObjectError(e.to_string()))?
                .ok_or_else(|| ObjectError("EC key without curve".into()))?;
            key_attributes.push((CKA_EC_PARAMS, params));
            key_attributes.push((CKA_EC_POINT, der(0x04, point.data())));
            CKK_EC
        }
        _ => return Err(ObjectError("unsupported key type".into())),
    };
    key_attributes.push((CKA_KEY_TYPE, ulong(key_type)));
    // Neither key wraps, unwraps or derives; whether the card generated it is not known.
    for kind in [CKA_WRAP, CKA_UNWRAP, CKA_DERIVE, CKA_LOCAL] {
        key_attributes.push((kind, bool(false)));
    }

    let mut public = common(CKO_PUBLIC_KEY, false);
    public.extend(key_attributes.iter().cloned());
    public.extend([(CKA_VERIFY, bool(true)), (CKA_ENCRYPT, bool(false))]);

    let key_management = matches!(
        cert.slot,
        Slot::KeyManagement | Slot::RetiredKeyManagement(_) | Slot::CacEmailEncryption
    );
    let mut private = common(CKO_PRIVATE_KEY, cert.slot.pin_required());
    private.extend(key_attributes);
    private.extend([
        (CKA_SIGN, bool(!key_management || key_type == CKK_RSA)),
        // The module decrypts nothing (no C_Decrypt): a key that claimed it would send
        // Thunderbird and p11test's usage test into a call that cannot succeed.
        (CKA_DECRYPT, bool(false)),
        (CKA_SENSITIVE, bool(true)),
        (CKA_EXTRACTABLE, bool(false)),
        (CKA_NEVER_EXTRACTABLE, bool(true)),
        (CKA_ALWAYS_SENSITIVE, bool(true)),
        (CKA_ALWAYS_AUTHENTICATE, bool(cert.slot.pin_always())),
    ]);

    Ok([certificate, public, private]
        .into_iter()
        .enumerate()
        .map(|(i, attributes)| Object {
            handle: first_handle + i as CK_OBJECT_HANDLE,
            attributes,
        })
        .collect())
}

/// An unsigned big-endian integer without its DER sign byte.
fn strip_zero(bytes: &[u8]) -> &[u8] {
    match bytes {
        [0, rest @ ..] if !rest.is_empty() => rest,
        _ => bytes,
    }
}

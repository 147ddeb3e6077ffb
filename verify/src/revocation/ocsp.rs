//! OCSP answers (RFC 6960) checked: about this certificate (the CertID), signed by the issuing
//! CA, a responder it delegated or a configured signer, and current.

use super::*;

pub(super) const SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");
pub(super) const BASIC_RESPONSE: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.1");
pub(super) const OCSP_SIGNING_EKU: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x09];

pub(super) fn sha1(bytes: &[u8]) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, bytes)
        .as_ref()
        .to_vec()
}

/// The subjectPublicKey bits of a DER SubjectPublicKeyInfo.
pub(super) fn public_key_bits(spki: &[u8]) -> Result<Vec<u8>, String> {
    x509_parser::x509::SubjectPublicKeyInfo::from_der(spki)
        .map(|(_, spki)| spki.subject_public_key.data.to_vec())
        .map_err(|e| format!("issuer key: {e}"))
}

/// RFC 6960's CertID with SHA-1, as RFC 5019 asks of clients and DoD's responders expect.
pub(super) fn cert_id(cert: &X509Certificate<'_>, issuer: &Issuer) -> Result<CertId, String> {
    let name_hash = sha1(cert.tbs_certificate.issuer.as_raw());
    let key_hash = sha1(&public_key_bits(&issuer.spki)?);
    Ok(CertId {
        hash_algorithm: AlgorithmIdentifierOwned {
            oid: SHA1,
            parameters: Some(Any::from(Null)),
        },
        issuer_name_hash: OctetString::new(name_hash).map_err(|e| e.to_string())?,
        issuer_key_hash: OctetString::new(key_hash).map_err(|e| e.to_string())?,
        serial_number: SerialNumber::new(cert.tbs_certificate.raw_serial())
            .map_err(|e| e.to_string())?,
    })
}

pub(super) fn same_cert(a: &CertId, b: &CertId) -> bool {
    a.hash_algorithm.oid == b.hash_algorithm.oid
        && a.issuer_name_hash == b.issuer_name_hash
        && a.issuer_key_hash == b.issuer_key_hash
        && a.serial_number == b.serial_number
}

pub(super) fn unix(time: &x509_ocsp::OcspGeneralizedTime) -> u64 {
    time.0.to_unix_duration().as_secs()
}

/// Check an OCSP response: status, type, that it speaks of `id`, its signer and signature,
/// and its dates. The answer, and until when it may be cached.
pub(super) fn check_ocsp_response(
    bytes: &[u8],
    id: &CertId,
    issuer: &Issuer,
    settings: &RevocationSettings,
    now: SystemTime,
    now_s: u64,
) -> (Answer, Option<u64>) {
    let invalid = |why: String| (Answer::Invalid(why), None);
    let response = match OcspResponse::from_der(bytes) {
        Ok(r) => r,
        Err(e) => return invalid(format!("OCSP response: {e}")),
    };
    if response.response_status != OcspResponseStatus::Successful {
        return (
            Answer::Unavailable(format!(
                "the OCSP responder answered {:?}",
                response.response_status
            )),
            None,
        );
    }
    let Some(body) = response.response_bytes else {
        return invalid("an OCSP response without a body".into());
    };
    if body.response_type != BASIC_RESPONSE {
        return invalid(format!("OCSP response type {}", body.response_type));
    }
    let basic = match BasicOcspResponse::from_der(body.response.as_bytes()) {
        Ok(b) => b,
        Err(e) => return invalid(format!("OCSP basic response: {e}")),
    };
    let Some(single) = basic
        .tbs_response_data
        .responses
        .iter()
        .find(|r| same_cert(&r.cert_id, id))
    else {
        return invalid("the OCSP response is about another certificate".into());
    };
    if let Err(why) = check_ocsp_signature(&basic, issuer, settings, now) {
        return invalid(why);
    }
    let this_update = unix(&single.this_update);
    let next_update = single.next_update.as_ref().map(unix);
    if this_update > now_s + CLOCK_SKEW {
        return invalid("the OCSP response is dated in the future".into());
    }
    let stale = match next_update {
        Some(next) => now_s > next,
        None => now_s > this_update + MAX_AGE_WITHOUT_NEXT_UPDATE,
    };
    match single.cert_status {
        // Revocation is final: a stale "revoked" is still revoked.
        CertStatus::Revoked(_) => (Answer::Revoked, next_update.filter(|_| !stale)),
        _ if stale => (
            Answer::Unavailable("the OCSP response is past its nextUpdate (stale)".into()),
            None,
        ),
        CertStatus::Good(_) => (Answer::Good, next_update),
        CertStatus::Unknown(_) => (Answer::Unknown, next_update),
    }
}

/// The response is signed by a configured responder, by the issuing CA, or by a certificate
/// the issuing CA made for OCSP signing, and the signature verifies.
pub(super) fn check_ocsp_signature(
    basic: &BasicOcspResponse,
    issuer: &Issuer,
    settings: &RevocationSettings,
    now: SystemTime,
) -> Result<(), String> {
    let tbs = basic
        .tbs_response_data
        .to_der()
        .map_err(|e| format!("OCSP response data: {e}"))?;
    let signature = basic.signature.raw_bytes();
    let algorithms = signature_algorithms(&basic.signature_algorithm.oid.to_string())?;
    let verifies = |spki: &[u8]| {
        public_key_bits(spki).is_ok_and(|key| {
            algorithms.iter().any(|algorithm| {
                UnparsedPublicKey::new(*algorithm, &key)
                    .verify(&tbs, signature)
                    .is_ok()
            })
        })
    };
    let configured = settings.ocsp_signers.iter().filter_map(|der| {
        X509Certificate::from_der(der)
            .ok()
            .map(|(_, c)| c.tbs_certificate.subject_pki.raw.to_vec())
    });
    let mut candidates: Vec<Vec<u8>> = configured.collect();
    candidates.push(issuer.spki.clone());
    // Delegated responders: certificates in the response that the issuer made for OCSP
    // signing, valid now.
    let time = UnixTime::since_unix_epoch(now.duration_since(UNIX_EPOCH).unwrap_or_default());
    for cert in basic.certs.iter().flatten() {
        let Ok(der) = cert.to_der() else { continue };
        let der = CertificateDer::from(der);
        let Ok(delegate) = webpki::EndEntityCert::try_from(&der) else {
            continue;
        };
        let issued_by_issuer = delegate
            .verify_for_usage(
                webpki::ALL_VERIFICATION_ALGS,
                std::slice::from_ref(&issuer.anchor),
                &[],
                time,
                webpki::KeyUsage::required(OCSP_SIGNING_EKU),
                None,
                None,
            )
            .is_ok();
        if issued_by_issuer {
            if let Ok((_, parsed)) = X509Certificate::from_der(&der) {
                candidates.push(parsed.tbs_certificate.subject_pki.raw.to_vec());
            }
        }
    }
    if candidates.iter().any(|spki| verifies(spki)) {
        Ok(())
    } else {
        Err("the OCSP response is not signed by the issuing CA, a responder it delegated, or a configured responder".into())
    }
}

/// The ring algorithms an OCSP signature algorithm OID may mean (for ECDSA the OID names the
/// hash, the key names the curve).
pub(super) fn signature_algorithms(
    oid: &str,
) -> Result<Vec<&'static dyn signature::VerificationAlgorithm>, String> {
    Ok(match oid {
        "1.2.840.113549.1.1.11" => vec![&signature::RSA_PKCS1_2048_8192_SHA256],
        "1.2.840.113549.1.1.12" => vec![&signature::RSA_PKCS1_2048_8192_SHA384],
        "1.2.840.113549.1.1.13" => vec![&signature::RSA_PKCS1_2048_8192_SHA512],
        // Older responders still sign with SHA-1.
        "1.2.840.113549.1.1.5" => vec![&signature::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY],
        "1.2.840.10045.4.3.2" => vec![
            &signature::ECDSA_P256_SHA256_ASN1,
            &signature::ECDSA_P384_SHA256_ASN1,
        ],
        "1.2.840.10045.4.3.3" => vec![
            &signature::ECDSA_P384_SHA384_ASN1,
            &signature::ECDSA_P256_SHA384_ASN1,
        ],
        other => return Err(format!("OCSP signature algorithm {other} is not supported")),
    })
}

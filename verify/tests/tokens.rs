//! The verifier against tokens made here with a throw-away PKI (rcgen) and keys signed with
//! RustCrypto, independent of the verifier's own code (ring, webpki).
#![allow(clippy::unwrap_used)]

use cacbridge_verify::{CertificateError, NonceError, TokenError};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use rcgen::{
    BasicConstraints, Certificate, CertificateParams, CustomExtension, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SanType,
};
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256, Sha384};

use cacbridge_verify::{NonceStore, TrustStore, Verifier, VerifyError, VerifyPolicy};

const ORIGIN: &str = "https://portal.example.mil";
const NONCE: &str = "f6n7JxCj2sH3u6m5fX1xVb0p9r8s7t6u5v4w3x2y1z0=";
const CN: &str = "DOE.JOHN.A.1234567890";
const UPN: &str = "1234567890123456@mil";
const MEDIUM_HARDWARE: &str = "2.16.840.1.101.2.1.11.42";

/// 2030-06-01: inside every good certificate's validity.
fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_906_502_400)
}

struct Ca {
    cert: Certificate,
    key: KeyPair,
}

fn ca(name: &str, parent: Option<&Ca>) -> Ca {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = CertificateParams::new(vec![]).unwrap();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "U.S. Government");
    dn.push(DnType::CommonName, name);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = rcgen::date_time_ymd(2040, 1, 1);
    let cert = match parent {
        None => params.self_signed(&key).unwrap(),
        Some(parent) => params.signed_by(&key, &parent.cert, &parent.key).unwrap(),
    };
    Ca { cert, key }
}

/// A test PKI: root and issuing CA, made once.
fn pki() -> &'static (Ca, Ca) {
    static PKI: OnceLock<(Ca, Ca)> = OnceLock::new();
    PKI.get_or_init(|| {
        let root = ca("CACBRIDGE TEST ROOT", None);
        let issuing = ca("CACBRIDGE TEST ID CA-1", Some(&root));
        (root, issuing)
    })
}

fn trust() -> TrustStore {
    let (root, issuing) = pki();
    TrustStore::from_pem(format!("{}{}", root.cert.pem(), issuing.cert.pem()).as_bytes()).unwrap()
}

fn verifier() -> Verifier {
    Verifier::new(trust(), VerifyPolicy::default())
}

#[derive(Clone, Copy, PartialEq)]
enum KeyType {
    Rsa,
    P256,
    P384,
}

#[derive(Clone, Copy, PartialEq)]
enum Profile {
    PivAuth,
    NoClientAuth,
    CardAuth,
    NoDigitalSignature,
    /// A DoD e-mail signing certificate: nonRepudiation, emailProtection, and also clientAuth
    /// and Smart Card Logon.
    EmailSigning,
    /// Signing key usage without the e-mail EKU.
    NonRepudiationOnly,
    /// clientAuth with an emailProtection EKU but no nonRepudiation.
    EmailClientAuth,
}

enum Signer {
    Rsa(rsa::RsaPrivateKey),
    P256(p256::ecdsa::SigningKey),
    P384(p384::ecdsa::SigningKey),
}

fn rsa_key() -> &'static rsa::RsaPrivateKey {
    static KEY: OnceLock<rsa::RsaPrivateKey> = OnceLock::new();
    KEY.get_or_init(|| rsa::RsaPrivateKey::new(&mut rand_core::OsRng, 2048).unwrap())
}

struct Leaf {
    der: Vec<u8>,
    signer: Signer,
}

/// certificatePolicies { policyIdentifier 2.16.840.1.101.2.1.11.42 }
fn medium_hardware_policy() -> CustomExtension {
    let oid = [
        0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x02, 0x01, 0x0B, 0x2A,
    ];
    let mut info = vec![0x30, oid.len() as u8];
    info.extend(oid);
    let mut policies = vec![0x30, info.len() as u8];
    policies.extend(info);
    CustomExtension::from_oid_content(&[2, 5, 29, 32], policies)
}

fn leaf_with(key: KeyType, profile: Profile, issuer: &Ca, from: (i32, u8), to: (i32, u8)) -> Leaf {
    use p256::pkcs8::DecodePrivateKey;
    use rsa::pkcs8::EncodePrivateKey;
    let (key_pair, signer) = match key {
        KeyType::Rsa => {
            let der = rsa_key().to_pkcs8_der().unwrap();
            let pair = KeyPair::from_pkcs8_der_and_sign_algo(
                &rustls_pki_types::PrivatePkcs8KeyDer::from(der.as_bytes().to_vec()),
                &rcgen::PKCS_RSA_SHA256,
            )
            .unwrap();
            (pair, Signer::Rsa(rsa_key().clone()))
        }
        KeyType::P256 => {
            let pair = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
            let signer = p256::ecdsa::SigningKey::from_pkcs8_der(&pair.serialize_der()).unwrap();
            (pair, Signer::P256(signer))
        }
        KeyType::P384 => {
            let pair = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
            let signer = p384::ecdsa::SigningKey::from_pkcs8_der(&pair.serialize_der()).unwrap();
            (pair, Signer::P384(signer))
        }
    };
    let mut params = CertificateParams::new(vec![]).unwrap();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CountryName, "US");
    dn.push(DnType::OrganizationName, "U.S. Government");
    dn.push(DnType::OrganizationalUnitName, "DoD");
    dn.push(DnType::CommonName, CN);
    params.distinguished_name = dn;
    params.not_before = rcgen::date_time_ymd(from.0, from.1, 1);
    params.not_after = rcgen::date_time_ymd(to.0, to.1, 1);
    params.subject_alt_names = vec![SanType::OtherName((
        vec![1, 3, 6, 1, 4, 1, 311, 20, 2, 3],
        UPN.into(),
    ))];
    params.custom_extensions = vec![medium_hardware_policy()];
    params.key_usages = match profile {
        Profile::NoDigitalSignature => vec![KeyUsagePurpose::KeyEncipherment],
        Profile::EmailSigning | Profile::NonRepudiationOnly => vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::ContentCommitment,
        ],
        _ => vec![KeyUsagePurpose::DigitalSignature],
    };
    params.extended_key_usages = match profile {
        Profile::PivAuth | Profile::NoDigitalSignature | Profile::NonRepudiationOnly => vec![
            ExtendedKeyUsagePurpose::ClientAuth,
            ExtendedKeyUsagePurpose::Other(vec![1, 3, 6, 1, 4, 1, 311, 20, 2, 2]),
        ],
        Profile::EmailSigning | Profile::EmailClientAuth => vec![
            ExtendedKeyUsagePurpose::EmailProtection,
            ExtendedKeyUsagePurpose::ClientAuth,
            ExtendedKeyUsagePurpose::Other(vec![1, 3, 6, 1, 4, 1, 311, 20, 2, 2]),
            ExtendedKeyUsagePurpose::Other(vec![1, 3, 6, 1, 4, 1, 311, 10, 3, 12]),
        ],
        Profile::NoClientAuth => vec![ExtendedKeyUsagePurpose::Other(vec![
            1, 3, 6, 1, 4, 1, 311, 10, 3, 12,
        ])],
        Profile::CardAuth => vec![ExtendedKeyUsagePurpose::Other(vec![
            2, 16, 840, 1, 101, 3, 6, 8,
        ])],
    };
    let cert = params
        .signed_by(&key_pair, &issuer.cert, &issuer.key)
        .unwrap();
    Leaf {
        der: cert.der().to_vec(),
        signer,
    }
}

fn leaf(key: KeyType, profile: Profile) -> Leaf {
    leaf_with(key, profile, &pki().1, (2025, 1), (2035, 1))
}

/// What the host would return, signed with RustCrypto.
fn token_for(leaf: &Leaf, origin: &str, nonce: &str) -> Value {
    let (algorithm, signature) = match &leaf.signer {
        Signer::Rsa(key) => {
            let message = [
                Sha256::digest(origin).to_vec(),
                Sha256::digest(nonce).to_vec(),
            ]
            .concat();
            let digest = Sha256::digest(message);
            let sig = key
                .sign(rsa::Pkcs1v15Sign::new::<Sha256>(), &digest)
                .unwrap();
            ("RS256", sig)
        }
        Signer::P256(key) => {
            use p256::ecdsa::signature::Signer as _;
            let message = [
                Sha256::digest(origin).to_vec(),
                Sha256::digest(nonce).to_vec(),
            ]
            .concat();
            let sig: p256::ecdsa::Signature = key.sign(&message);
            ("ES256", sig.to_bytes().to_vec())
        }
        Signer::P384(key) => {
            use p384::ecdsa::signature::Signer as _;
            let message = [
                Sha384::digest(origin).to_vec(),
                Sha384::digest(nonce).to_vec(),
            ]
            .concat();
            let sig: p384::ecdsa::Signature = key.sign(&message);
            ("ES384", sig.to_bytes().to_vec())
        }
    };
    json!({
        "format": "cacbridge:1",
        "unverifiedCertificate": B64.encode(&leaf.der),
        "algorithm": algorithm,
        "signature": B64.encode(signature),
        "appVersion": "cacbridge-host/0.1.0",
    })
}

fn verify(token: &Value) -> Result<cacbridge_verify::Identity, VerifyError> {
    verifier().verify(&token.to_string(), ORIGIN, NONCE, now())
}

#[test]
fn good_tokens_of_every_algorithm_verify_and_name_the_person() {
    for key in [KeyType::Rsa, KeyType::P256, KeyType::P384] {
        let leaf = leaf(key, Profile::PivAuth);
        let identity = verify(&token_for(&leaf, ORIGIN, NONCE)).unwrap();
        assert_eq!(identity.edipi.as_deref(), Some("1234567890"));
        assert_eq!(identity.upn.as_deref(), Some(UPN));
        assert_eq!(identity.common_name.as_deref(), Some(CN));
        assert_eq!(
            identity.fingerprint_sha256,
            hex::encode(Sha256::digest(&leaf.der))
        );
        assert!(identity.issuer.contains("CACBRIDGE TEST ID CA-1"));
        assert!(identity.subject.contains(CN));
        assert_eq!(identity.not_after, "2035-01-01T00:00:00Z");
        assert!(!identity.serial_number.is_empty());
    }
}

#[test]
fn a_tampered_signature_is_rejected() {
    let leaf = leaf(KeyType::P256, Profile::PivAuth);
    let mut token = token_for(&leaf, ORIGIN, NONCE);
    let mut sig = B64.decode(token["signature"].as_str().unwrap()).unwrap();
    sig[10] ^= 0x01;
    token["signature"] = json!(B64.encode(sig));
    assert_eq!(
        verify(&token),
        Err(VerifyError::Token(TokenError::BadSignature))
    );

    let leaf = leaf_rsa_cached();
    let mut token = token_for(leaf, ORIGIN, NONCE);
    let mut sig = B64.decode(token["signature"].as_str().unwrap()).unwrap();
    sig[200] ^= 0x80;
    token["signature"] = json!(B64.encode(sig));
    assert_eq!(
        verify(&token),
        Err(VerifyError::Token(TokenError::BadSignature))
    );
}

fn leaf_rsa_cached() -> &'static Leaf {
    static LEAF: OnceLock<Leaf> = OnceLock::new();
    LEAF.get_or_init(|| leaf(KeyType::Rsa, Profile::PivAuth))
}

#[test]
fn a_token_for_another_origin_or_nonce_is_rejected() {
    let leaf = leaf_rsa_cached();
    let token = token_for(leaf, "https://evil.example", NONCE);
    assert_eq!(
        verify(&token),
        Err(VerifyError::Token(TokenError::BadSignature))
    );
    let token = token_for(leaf, ORIGIN, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=");
    assert_eq!(
        verify(&token),
        Err(VerifyError::Token(TokenError::BadSignature))
    );
}

#[test]
fn nonces_are_single_use_and_expire() {
    let store = NonceStore::new();
    let nonce = store.issue(now());
    // Within the host's 44 to 128 characters: 16 random bytes, the time and an HMAC.
    assert_eq!(nonce.len(), 76);
    assert_eq!(B64.decode(&nonce).unwrap().len(), 56);
    assert_ne!(store.issue(now()), nonce, "random");

    let leaf = leaf(KeyType::P256, Profile::PivAuth);
    let token = token_for(&leaf, ORIGIN, &nonce).to_string();
    let v = verifier();
    assert!(v
        .verify_with_store(&store, &token, ORIGIN, &nonce, now())
        .is_ok());
    assert_eq!(
        v.verify_with_store(&store, &token, ORIGIN, &nonce, now()),
        Err(VerifyError::Nonce(NonceError::NonceReused))
    );

    let old = store.issue(now());
    let token = token_for(&leaf, ORIGIN, &old).to_string();
    let later = now() + Duration::from_secs(5 * 60 + 1);
    assert_eq!(
        v.verify_with_store(&store, &token, ORIGIN, &old, later),
        Err(VerifyError::Nonce(NonceError::NonceExpired))
    );
    assert_eq!(
        v.verify_with_store(&store, &token, ORIGIN, NONCE, now()),
        Err(VerifyError::Nonce(NonceError::NonceUnknown))
    );
    let fresh = store.issue(now());
    let within = now() + Duration::from_secs(5 * 60 - 1);
    assert!(store.consume(&fresh, within).is_ok());
}

#[test]
fn certificates_outside_their_validity_are_rejected() {
    let expired = leaf_with(
        KeyType::P256,
        Profile::PivAuth,
        &pki().1,
        (2020, 1),
        (2029, 1),
    );
    assert!(matches!(
        verify(&token_for(&expired, ORIGIN, NONCE)),
        Err(VerifyError::Certificate(CertificateError::CertificateExpired(at))) if at.starts_with("2029-01-01")
    ));
    let future = leaf_with(
        KeyType::P256,
        Profile::PivAuth,
        &pki().1,
        (2031, 1),
        (2035, 1),
    );
    assert!(matches!(
        verify(&token_for(&future, ORIGIN, NONCE)),
        Err(VerifyError::Certificate(
            CertificateError::CertificateNotYetValid(_)
        ))
    ));
}

#[test]
fn a_certificate_from_an_untrusted_ca_is_rejected() {
    let other = ca("SOMEONE ELSE'S CA", None);
    let stranger = leaf_with(
        KeyType::P256,
        Profile::PivAuth,
        &other,
        (2025, 1),
        (2035, 1),
    );
    assert_eq!(
        verify(&token_for(&stranger, ORIGIN, NONCE)),
        Err(VerifyError::Certificate(CertificateError::UntrustedIssuer))
    );
    // The shipped DoD bundle does not trust the test PKI either.
    let dod = Verifier::new(TrustStore::dod(), VerifyPolicy::default());
    let good = leaf(KeyType::P256, Profile::PivAuth);
    assert_eq!(
        dod.verify(
            &token_for(&good, ORIGIN, NONCE).to_string(),
            ORIGIN,
            NONCE,
            now()
        ),
        Err(VerifyError::Certificate(CertificateError::UntrustedIssuer))
    );
}

#[test]
fn usage_rules_reject_the_wrong_certificates() {
    let no_client_auth = leaf(KeyType::P256, Profile::NoClientAuth);
    assert_eq!(
        verify(&token_for(&no_client_auth, ORIGIN, NONCE)),
        Err(VerifyError::Certificate(
            CertificateError::MissingClientAuth
        ))
    );
    let card_auth = leaf(KeyType::P256, Profile::CardAuth);
    assert_eq!(
        verify(&token_for(&card_auth, ORIGIN, NONCE)),
        Err(VerifyError::Certificate(
            CertificateError::CardAuthenticationCertificate
        ))
    );
    let no_ds = leaf(KeyType::P256, Profile::NoDigitalSignature);
    assert_eq!(
        verify(&token_for(&no_ds, ORIGIN, NONCE)),
        Err(VerifyError::Certificate(
            CertificateError::MissingDigitalSignature
        ))
    );
}

#[test]
fn signing_and_email_certificates_never_log_in_even_with_client_auth() {
    // The cross-use attack: a page has a signing key sign SHA-256(H(origin) || H(nonce)) as a
    // "document" hash. Such a signature is a valid login proof unless the verifier refuses
    // the certificate, whatever its chain, policy OIDs or clientAuth say.
    for key in [KeyType::Rsa, KeyType::P256, KeyType::P384] {
        let email_signing = leaf(key, Profile::EmailSigning);
        let token = token_for(&email_signing, ORIGIN, NONCE);
        assert_eq!(
            verify(&token),
            Err(VerifyError::Certificate(
                CertificateError::SigningCertificate
            ))
        );
        let with_policy = Verifier::new(
            trust(),
            VerifyPolicy::from_lists(vec![MEDIUM_HARDWARE.into()], vec![]),
        );
        assert_eq!(
            with_policy.verify(&token.to_string(), ORIGIN, NONCE, now()),
            Err(VerifyError::Certificate(
                CertificateError::SigningCertificate
            ))
        );
    }
    let non_repudiation = leaf(KeyType::P256, Profile::NonRepudiationOnly);
    assert_eq!(
        verify(&token_for(&non_repudiation, ORIGIN, NONCE)),
        Err(VerifyError::Certificate(
            CertificateError::SigningCertificate
        ))
    );
    let email = leaf(KeyType::P256, Profile::EmailClientAuth);
    assert_eq!(
        verify(&token_for(&email, ORIGIN, NONCE)),
        Err(VerifyError::Certificate(CertificateError::EmailCertificate))
    );
    assert_eq!(
        VerifyError::Certificate(CertificateError::SigningCertificate).code(),
        "signing-certificate"
    );
    assert_eq!(
        VerifyError::Certificate(CertificateError::EmailCertificate).code(),
        "email-certificate"
    );
}

#[test]
fn the_issuing_ca_family_allow_list() {
    let leaf = leaf(KeyType::P256, Profile::PivAuth);
    let token = token_for(&leaf, ORIGIN, NONCE).to_string();
    let id_cas = Verifier::new(
        trust(),
        VerifyPolicy::from_lists(vec![], vec!["CACBRIDGE TEST ID CA-".into()]),
    );
    assert!(id_cas.verify(&token, ORIGIN, NONCE, now()).is_ok());
    let email_cas = Verifier::new(
        trust(),
        VerifyPolicy::from_lists(vec![], vec!["CACBRIDGE TEST EMAIL CA-".into(), "".into()]),
    );
    assert_eq!(
        email_cas.verify(&token, ORIGIN, NONCE, now()),
        Err(VerifyError::Certificate(CertificateError::IssuerNotAllowed))
    );
}

#[test]
fn the_policy_oid_allow_list() {
    let leaf = leaf(KeyType::P256, Profile::PivAuth);
    let token = token_for(&leaf, ORIGIN, NONCE).to_string();
    let allowing = Verifier::new(
        trust(),
        VerifyPolicy::from_lists(vec![MEDIUM_HARDWARE.into()], vec![]),
    );
    assert!(allowing.verify(&token, ORIGIN, NONCE, now()).is_ok());
    let refusing = Verifier::new(
        trust(),
        VerifyPolicy::from_lists(vec!["2.16.840.1.101.2.1.11.39".into()], vec![]),
    );
    assert_eq!(
        refusing.verify(&token, ORIGIN, NONCE, now()),
        Err(VerifyError::Certificate(CertificateError::PolicyNotAllowed))
    );
}

#[test]
fn malformed_tokens_of_every_field() {
    let leaf = leaf(KeyType::P256, Profile::PivAuth);
    let good = token_for(&leaf, ORIGIN, NONCE);
    let v = verifier();
    let check = |token: String, expected: VerifyError| {
        assert_eq!(
            v.verify(&token, ORIGIN, NONCE, now()),
            Err(expected),
            "{token:.80}"
        );
    };
    check("{}".into(), VerifyError::Token(TokenError::TokenLength(2)));
    check(
        format!("[{}]", " ".repeat(200)),
        VerifyError::Token(TokenError::TokenNotJson),
    );
    check(
        format!("{{\"a\": \"{}\"", "x".repeat(200)),
        VerifyError::Token(TokenError::TokenNotJson),
    );
    check(
        format!("\"{}\"", "x".repeat(20_000)),
        VerifyError::Token(TokenError::TokenLength(20_002)),
    );
    for field in [
        "format",
        "unverifiedCertificate",
        "algorithm",
        "signature",
        "appVersion",
    ] {
        let mut t = good.clone();
        t.as_object_mut().unwrap().remove(field);
        t["padding"] = json!("x".repeat(100));
        check(
            t.to_string(),
            VerifyError::Token(TokenError::MissingField(field)),
        );
        let mut t = good.clone();
        t[field] = json!(12345);
        check(
            t.to_string(),
            VerifyError::Token(TokenError::FieldNotString(field)),
        );
    }
    for field in ["unverifiedCertificate", "signature"] {
        let mut t = good.clone();
        t[field] = json!("not base64!!");
        check(
            t.to_string(),
            VerifyError::Token(TokenError::FieldNotBase64(field)),
        );
    }
    let mut t = good.clone();
    t["format"] = json!("web-eid:1.0");
    check(
        t.to_string(),
        VerifyError::Token(TokenError::UnsupportedFormat("web-eid:1.0".into())),
    );
    let mut t = good.clone();
    t["algorithm"] = json!("PS256");
    check(
        t.to_string(),
        VerifyError::Token(TokenError::UnsupportedAlgorithm("PS256".into())),
    );
    let mut t = good.clone();
    t["algorithm"] = json!("RS256");
    check(
        t.to_string(),
        VerifyError::Token(TokenError::AlgorithmMismatch {
            algorithm: "RS256".into(),
            key: "EC-P256".into(),
        }),
    );
    let mut t = good.clone();
    t["signature"] = json!(B64.encode([1u8; 70]));
    check(
        t.to_string(),
        VerifyError::Token(TokenError::SignatureLength("ES256".into())),
    );
    let mut t = good.clone();
    t["unverifiedCertificate"] = json!(B64.encode([0x30u8, 0x03, 0x02, 0x01, 0x01]));
    assert!(matches!(
        v.verify(&t.to_string(), ORIGIN, NONCE, now()),
        Err(VerifyError::Certificate(CertificateError::BadCertificate(
            _
        )))
    ));
}

#[test]
fn the_dod_bundle_ships_inside() {
    let dod = TrustStore::dod();
    assert_eq!(dod.anchors().len(), 4, "DoD Root CA 3, 4, 5 and 6");
    assert_eq!(dod.anchors().len() + dod.intermediates().len(), 49);
}

#[test]
fn the_cli_prints_the_identity_or_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let (root, issuing) = pki();
    let bundle = dir.path().join("bundle.pem");
    std::fs::write(
        &bundle,
        format!("{}{}", root.cert.pem(), issuing.cert.pem()),
    )
    .unwrap();
    let leaf = leaf(KeyType::P384, Profile::PivAuth);
    let token = dir.path().join("token.json");
    std::fs::write(&token, token_for(&leaf, ORIGIN, NONCE).to_string()).unwrap();
    let run_with = |origin: &str, revocation: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_cacbridge-verify"))
            .args([
                "--token",
                token.to_str().unwrap(),
                "--origin",
                origin,
                "--nonce",
                NONCE,
            ])
            .args(["--trust", bundle.to_str().unwrap(), "--time", "1906502400"])
            .args(["--revocation", revocation])
            .output()
            .unwrap()
    };
    // Revocation is required by default: this test PKI names no responder and no CRL.
    let out = run_with(ORIGIN, "require");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("(revocation-unavailable)"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let run = |origin: &str| run_with(origin, "off");
    let out = run(ORIGIN);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let identity: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(identity["edipi"], "1234567890");
    assert_eq!(identity["revocation"]["status"], "not-checked");
    let out = run("https://evil.example");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("(bad-signature)"));
}

#[test]
fn a_certificate_proved_by_a_tls_handshake_meets_the_same_rules() {
    // verify_certificate is what a mutual-TLS host calls: no token, the same certificate rules.
    let good = leaf(KeyType::P256, Profile::PivAuth);
    let identity = verifier().verify_certificate(&good.der, now()).unwrap();
    assert_eq!(identity.edipi.as_deref(), Some("1234567890"));
    for (profile, refused) in [
        (
            Profile::EmailSigning,
            VerifyError::Certificate(CertificateError::SigningCertificate),
        ),
        (
            Profile::EmailClientAuth,
            VerifyError::Certificate(CertificateError::EmailCertificate),
        ),
        (
            Profile::NoClientAuth,
            VerifyError::Certificate(CertificateError::MissingClientAuth),
        ),
        (
            Profile::CardAuth,
            VerifyError::Certificate(CertificateError::CardAuthenticationCertificate),
        ),
    ] {
        let leaf = leaf(KeyType::P256, profile);
        assert_eq!(
            verifier().verify_certificate(&leaf.der, now()),
            Err(refused)
        );
    }
    let untrusted = Verifier::new(TrustStore::dod(), VerifyPolicy::default());
    assert!(untrusted.verify_certificate(&good.der, now()).is_err());
}

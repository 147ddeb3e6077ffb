//! The module's rules in a plain `cargo test`, over the card layer's FakeBackend and a real
//! certificate: slots and tokens, private objects hidden until login, the PIN checked on the
//! card at login and bound to that card, and what the card is asked to sign.
#![allow(clippy::unwrap_used)]

use cryptoki_sys::*;

use cacbridge_card::testing::FakeBackend;
use cacbridge_card::{CardCertificate, CardStatus, CardType, PinStatus, ReaderStatus, Slot};
use cacbridge_pkcs11::module::Module;
use cacbridge_pkcs11::objects::ulong;

const READER: &str = "Test Reader 00 00";

/// A P-256 PIV Authentication certificate for DOE.JOHN.A.1234567890, made here.
fn certificate(cn: &str) -> CardCertificate {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = rcgen::CertificateParams::new(vec![]).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
    let der = params.self_signed(&key).unwrap().der().to_vec();
    CardCertificate {
        reader: READER.into(),
        slot: Slot::PivAuthentication,
        info: cacbridge_card::certificate::inspect(&der).unwrap(),
        der,
    }
}

fn token(certificates: Vec<CardCertificate>, retries_left: u8) -> FakeBackend {
    let mut token = FakeBackend::new(certificates);
    token.readers = vec![ReaderStatus {
        name: READER.into(),
        card: Some(CardStatus {
            atr: vec![0x3B],
            card_type: CardType::Piv,
            dual_cac: true,
            pin: Some(PinStatus {
                retries_left: Some(retries_left),
                blocked: false,
            }),
            error: None,
            backend: "pcsc",
        }),
    }];
    token.signature = Ok(der_ecdsa());
    token
}

/// A DER ECDSA signature with 32-byte r and s.
fn der_ecdsa() -> Vec<u8> {
    let integer = |b: u8| [vec![0x02, 0x20], vec![b; 32]].concat();
    let body = [integer(0x11), integer(0x22)].concat();
    [vec![0x30, body.len() as u8], body].concat()
}

fn find(
    module: &mut Module,
    session: CK_SESSION_HANDLE,
    class: CK_OBJECT_CLASS,
) -> Vec<CK_OBJECT_HANDLE> {
    module
        .find_init(session, &[(CKA_CLASS, ulong(class))])
        .unwrap();
    let found = module.find(session, 16).unwrap();
    module.find_final(session).unwrap();
    found
}

#[test]
fn a_token_is_named_for_its_holder_and_hides_its_keys_until_login() {
    let mut module = Module::new(Box::new(token(
        vec![certificate("DOE.JOHN.A.1234567890")],
        2,
    )));
    assert_eq!(module.slot_list(true).unwrap(), vec![1]);
    let info = module.token_info(1).unwrap();
    assert_eq!(info.label, "DOE.JOHN.A.1234567890");
    assert_eq!(info.model, "PIV");
    assert_eq!(info.pin_flags, CKF_USER_PIN_COUNT_LOW, "two tries left");

    let session = module.open_session(1, false).unwrap();
    assert_eq!(find(&mut module, session, CKO_CERTIFICATE).len(), 1);
    assert_eq!(find(&mut module, session, CKO_PUBLIC_KEY).len(), 1);
    assert!(
        find(&mut module, session, CKO_PRIVATE_KEY).is_empty(),
        "hidden before login"
    );
    assert_eq!(
        module.login(session, CKU_USER, b"12ab56"),
        Err(CKR_PIN_LEN_RANGE)
    );
    module.login(session, CKU_USER, b"123456").unwrap();
    assert_eq!(find(&mut module, session, CKO_PRIVATE_KEY).len(), 1);
    assert_eq!(
        module.login(session, CKU_USER, b"123456"),
        Err(CKR_USER_ALREADY_LOGGED_IN)
    );
}

#[test]
fn a_signature_needs_the_login_fits_the_key_and_comes_back_as_r_and_s() {
    let mut module = Module::new(Box::new(token(
        vec![certificate("DOE.JOHN.A.1234567890")],
        3,
    )));
    // As every caller does: the slot list first, which names the slots.
    assert_eq!(module.slot_list(true).unwrap(), vec![1]);
    let session = module.open_session(1, false).unwrap();
    // The private key is the certificate's third object: hidden, and not usable before login.
    let key = find(&mut module, session, CKO_CERTIFICATE)[0] + 2;
    assert_eq!(
        module.sign_init(session, CKM_ECDSA_SHA256, None, key),
        Err(CKR_USER_NOT_LOGGED_IN)
    );
    module.login(session, CKU_USER, b"123456").unwrap();
    assert_eq!(find(&mut module, session, CKO_PRIVATE_KEY), vec![key]);
    assert_eq!(
        module.sign_init(session, CKM_SHA256_RSA_PKCS, None, key),
        Err(CKR_KEY_TYPE_INCONSISTENT),
        "an RSA mechanism on an EC key"
    );
    module
        .sign_init(session, CKM_ECDSA_SHA256, None, key)
        .unwrap();
    assert_eq!(
        module.sign_init(session, CKM_ECDSA_SHA256, None, key),
        Err(CKR_OPERATION_ACTIVE)
    );
    assert_eq!(module.signature_len(session).unwrap(), 64);
    module.sign_update(session, b"handshake").unwrap();
    let signature = module.sign_final(session).unwrap().complete().unwrap();
    assert_eq!(
        signature,
        [vec![0x11; 32], vec![0x22; 32]].concat(),
        "DER turned into r || s"
    );
    assert_eq!(
        module.sign_final(session).err(),
        Some(CKR_OPERATION_NOT_INITIALIZED),
        "the operation ended"
    );

    // Logging out, or closing the token's last session, forgets the PIN.
    module.logout(session).unwrap();
    assert_eq!(module.logout(session), Err(CKR_USER_NOT_LOGGED_IN));
    module.login(session, CKU_USER, b"123456").unwrap();
    module.close_session(session).unwrap();
    let again = module.open_session(1, false).unwrap();
    assert!(!module.is_logged_in(1));
    assert!(find(&mut module, again, CKO_PRIVATE_KEY).is_empty());
}

/// CAC Bridge's window as the module sees it: what it was asked to sign, and its answer.
struct FakeWindow {
    asked: std::sync::Mutex<Vec<(String, cacbridge_card::SignatureInput)>>,
    answer: Result<Vec<u8>, CK_RV>,
}

impl cacbridge_pkcs11::window::WindowSigner for FakeWindow {
    fn sign(
        &self,
        certificate: &CardCertificate,
        input: &cacbridge_card::SignatureInput,
    ) -> Result<Vec<u8>, CK_RV> {
        self.asked
            .lock()
            .unwrap()
            .push((certificate.info.id.clone(), input.clone()));
        self.answer.clone()
    }
}

#[test]
fn in_a_browser_a_signature_goes_to_the_window_without_a_login_and_the_card_is_not_asked() {
    use std::sync::Arc;
    // The card itself would fail any signature: only the window can make one here.
    let refusing = |card: CardCertificate| {
        let mut fake = token(vec![card], 3);
        fake.signature = Err(cacbridge_card::CardError::CardRemoved);
        fake
    };
    let card = certificate("DOE.JOHN.A.1234567890");
    let id = card.info.id.clone();
    let window = Arc::new(FakeWindow {
        asked: std::sync::Mutex::new(Vec::new()),
        answer: Ok(der_ecdsa()),
    });
    let mut module = Module::for_browser(Box::new(refusing(card)), window.clone());
    // A browser never logs in: the keys are visible, and signing needs no C_Login.
    assert!(!module.login_required());
    assert_eq!(module.slot_list(true).unwrap(), vec![1]);
    let session = module.open_session(1, false).unwrap();
    let key = find(&mut module, session, CKO_PRIVATE_KEY)[0];
    module
        .sign_init(session, CKM_ECDSA_SHA256, None, key)
        .unwrap();
    module
        .sign_update(session, b"TLS 1.3, CertificateVerify")
        .unwrap();
    // The window path is taken with the module's lock released (the caller completes it).
    let finished = module.sign_final(session).unwrap();
    let signature = finished.complete().unwrap();
    assert_eq!(signature, [vec![0x11; 32], vec![0x22; 32]].concat());
    let asked = window.asked.lock().unwrap().clone();
    assert_eq!(asked.len(), 1);
    assert_eq!(asked[0].0, id);
    let expected = cacbridge_card::HashFunction::Sha256.hash(b"TLS 1.3, CertificateVerify");
    assert_eq!(asked[0].1, cacbridge_card::SignatureInput::EcHash(expected));

    // A cancel in the window is the caller's CKR_FUNCTION_CANCELED, and still no card call.
    let cancelled = Arc::new(FakeWindow {
        asked: std::sync::Mutex::new(Vec::new()),
        answer: Err(CKR_FUNCTION_CANCELED),
    });
    let mut module = Module::for_browser(
        Box::new(refusing(certificate("DOE.JOHN.A.1234567890"))),
        cancelled,
    );
    module.slot_list(true).unwrap();
    let session = module.open_session(1, false).unwrap();
    let key = find(&mut module, session, CKO_PRIVATE_KEY)[0];
    module
        .sign_init(session, CKM_ECDSA_SHA256, None, key)
        .unwrap();
    module.sign_update(session, b"handshake").unwrap();
    assert_eq!(
        module.sign_final(session).unwrap().complete(),
        Err(CKR_FUNCTION_CANCELED)
    );
}

#[test]
fn a_browser_is_offered_the_piv_authentication_certificate_alone() {
    use std::sync::Arc;
    // Beside 9A, a second certificate a TLS server might take as well (DoD's e-mail signing
    // certificates carry clientAuth): the filter is the slot, not the extended key usage.
    let authentication = certificate("DOE.JOHN.A.1234567890");
    let mut signature = certificate("DOE.JOHN.A.1234567890");
    signature.slot = Slot::DigitalSignature;
    let cards = || token(vec![authentication.clone(), signature.clone()], 3);
    let window = Arc::new(FakeWindow {
        asked: std::sync::Mutex::new(Vec::new()),
        answer: Ok(der_ecdsa()),
    });
    let certificates_seen = |module: &mut Module| {
        module.slot_list(true).unwrap();
        let session = module.open_session(1, false).unwrap();
        find(module, session, CKO_CERTIFICATE).len()
    };
    assert_eq!(
        certificates_seen(&mut Module::for_browser(Box::new(cards()), window)),
        1
    );
    // Other programs (pkcs11-tool, OpenSSL, S/MIME clients) see every certificate.
    assert_eq!(certificates_seen(&mut Module::new(Box::new(cards()))), 2);
}

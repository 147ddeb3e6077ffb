//! The module against conformance suites nobody here wrote: OpenSC's p11test (built from
//! Debian's source by tests/harness/build-p11test) on a PIV card and on a legacy CAC, and the
//! faults Google's pkcs11test found, each as a test of its own through the raw C function list.
//! Ignored by a plain `cargo test`; scripts/test runs them.
#![allow(clippy::unwrap_used, unsafe_code)]

use std::process::Command;

use cryptoki_sys::*;

use cacbridge_testbed::{lock, VirtualCard};

/// The module of this build, loaded as a C program loads it: its function list, initialized.
struct Raw {
    list: &'static CK_FUNCTION_LIST,
    _library: libloading::Library,
}

impl Raw {
    fn load() -> Raw {
        // SAFETY: the module is a PKCS#11 library; C_GetFunctionList has this signature and
        // returns a list that lives as long as the library, which `Raw` holds.
        unsafe {
            let library =
                libloading::Library::new(cacbridge_testbed::host::pkcs11_module()).unwrap();
            let get: libloading::Symbol<unsafe extern "C" fn(*mut *mut CK_FUNCTION_LIST) -> CK_RV> =
                library.get(b"C_GetFunctionList").unwrap();
            let mut list = std::ptr::null_mut();
            assert_eq!(get(&mut list), CKR_OK);
            let list: &'static CK_FUNCTION_LIST = &*list;
            assert_eq!((list.C_Initialize.unwrap())(std::ptr::null_mut()), CKR_OK);
            Raw {
                list,
                _library: library,
            }
        }
    }

    /// The slots with a token, as C_GetSlotList gives them.
    fn slots_with_tokens(&self) -> Vec<CK_SLOT_ID> {
        let mut count = 0;
        unsafe {
            assert_eq!(
                (self.list.C_GetSlotList.unwrap())(CK_TRUE, std::ptr::null_mut(), &mut count),
                CKR_OK
            );
            let mut slots = vec![0; count as usize];
            assert_eq!(
                (self.list.C_GetSlotList.unwrap())(CK_TRUE, slots.as_mut_ptr(), &mut count),
                CKR_OK
            );
            slots
        }
    }

    fn open_session(&self, slot: CK_SLOT_ID) -> Result<CK_SESSION_HANDLE, CK_RV> {
        let mut session = 0;
        let rv = unsafe {
            (self.list.C_OpenSession.unwrap())(
                slot,
                CKF_SERIAL_SESSION,
                std::ptr::null_mut(),
                None,
                &mut session,
            )
        };
        if rv == CKR_OK {
            Ok(session)
        } else {
            Err(rv)
        }
    }

    /// Finalize, then initialize again: a new process's view, with no slot list read yet.
    fn restart(&self) {
        unsafe {
            assert_eq!(
                (self.list.C_Finalize.unwrap())(std::ptr::null_mut()),
                CKR_OK
            );
            assert_eq!(
                (self.list.C_Initialize.unwrap())(std::ptr::null_mut()),
                CKR_OK
            );
        }
    }
}

impl Drop for Raw {
    fn drop(&mut self) {
        unsafe {
            (self.list.C_Finalize.unwrap())(std::ptr::null_mut());
        }
    }
}

#[test]
#[ignore = "needs pcscd and virtual cards: run scripts/test"]
fn openscs_p11test_passes_on_a_piv_card_and_a_legacy_cac() {
    let _guard = lock();
    for (name, reader) in [("doe", 0), ("legacy", 1)] {
        let card = VirtualCard::insert(name, reader);
        let log = tempfile::NamedTempFile::new().unwrap();
        let out = Command::new(cacbridge_testbed::p11test())
            .arg("-m")
            .arg(cacbridge_testbed::host::pkcs11_module())
            .args(["-p", &card.info.pin, "-o"])
            .arg(log.path())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        // cmocka's summary: every case run passed, but the two that need a person (wait, -i)
        // or PKCS#11 3.0's C_GetInterface.
        assert!(out.status.success(), "p11test on {name}:\n{text}");
        assert!(
            text.contains("[  PASSED  ] 9 test(s)."),
            "p11test on {name}:\n{text}"
        );
        let results = std::fs::read_to_string(log.path()).unwrap();
        assert!(
            !results.contains("\"result\": \"fail\""),
            "p11test on {name}: {results}"
        );
    }
}

#[test]
#[ignore = "needs pcscd and virtual cards: run scripts/test"]
fn the_legacy_parallel_functions_answer_function_not_parallel() {
    let _guard = lock();
    let _card = VirtualCard::insert("doe", 0);
    let raw = Raw::load();
    let session = raw.open_session(raw.slots_with_tokens()[0]).unwrap();
    unsafe {
        assert_eq!(
            (raw.list.C_GetFunctionStatus.unwrap())(session),
            CKR_FUNCTION_NOT_PARALLEL
        );
        assert_eq!(
            (raw.list.C_CancelFunction.unwrap())(session),
            CKR_FUNCTION_NOT_PARALLEL
        );
        assert_eq!(
            (raw.list.C_GetFunctionStatus.unwrap())(session + 1000),
            CKR_SESSION_HANDLE_INVALID
        );
    }
}

#[test]
#[ignore = "needs pcscd and virtual cards: run scripts/test"]
fn a_slot_id_is_taken_before_the_slot_list_is_read() {
    let _guard = lock();
    let _card = VirtualCard::insert("doe", 0);
    let raw = Raw::load();
    let slot = raw.slots_with_tokens()[0];
    raw.restart();
    unsafe {
        let mut token = std::mem::zeroed::<CK_TOKEN_INFO>();
        assert_eq!((raw.list.C_GetTokenInfo.unwrap())(slot, &mut token), CKR_OK);
        assert!(String::from_utf8_lossy(&token.label).starts_with("DOE.JOHN.A.1234567890"));
    }
    raw.restart();
    assert!(
        raw.open_session(slot).is_ok(),
        "C_OpenSession before C_GetSlotList"
    );
    assert_eq!(
        raw.open_session(slot + 50),
        Err(CKR_SLOT_ID_INVALID),
        "a slot that is not there"
    );
}

#[test]
#[ignore = "needs pcscd and virtual cards: run scripts/test"]
fn random_numbers_check_the_session_and_arguments_then_say_there_is_no_rng() {
    let _guard = lock();
    let _card = VirtualCard::insert("doe", 0);
    let raw = Raw::load();
    let session = raw.open_session(raw.slots_with_tokens()[0]).unwrap();
    let mut buffer = [0u8; 16];
    unsafe {
        let random = raw.list.C_GenerateRandom.unwrap();
        assert_eq!(
            random(session + 1000, buffer.as_mut_ptr(), 16),
            CKR_SESSION_HANDLE_INVALID
        );
        assert_eq!(random(session, std::ptr::null_mut(), 16), CKR_ARGUMENTS_BAD);
        assert_eq!(random(session, buffer.as_mut_ptr(), 16), CKR_RANDOM_NO_RNG);
        let seed = raw.list.C_SeedRandom.unwrap();
        assert_eq!(
            seed(session + 1000, buffer.as_mut_ptr(), 16),
            CKR_SESSION_HANDLE_INVALID
        );
        assert_eq!(seed(session, buffer.as_mut_ptr(), 16), CKR_RANDOM_NO_RNG);
        // The token says so too.
        let mut token = std::mem::zeroed::<CK_TOKEN_INFO>();
        assert_eq!(
            (raw.list.C_GetTokenInfo.unwrap())(raw.slots_with_tokens()[0], &mut token),
            CKR_OK
        );
        assert_eq!(token.flags & CKF_RNG, 0);
    }
    assert_eq!(buffer, [0u8; 16], "nothing written");
}

#[test]
#[ignore = "needs pcscd and virtual cards: run scripts/test"]
fn no_key_claims_decryption_the_module_does_not_offer() {
    use cryptoki::context::{CInitializeArgs, Pkcs11};
    use cryptoki::object::{Attribute, AttributeType, ObjectClass};
    let _guard = lock();
    let card = VirtualCard::insert("doe", 0);
    let pkcs11 = Pkcs11::new(cacbridge_testbed::host::pkcs11_module()).unwrap();
    pkcs11.initialize(CInitializeArgs::OsThreads).unwrap();
    let slot = pkcs11.get_slots_with_token().unwrap()[0];
    let session = pkcs11.open_ro_session(slot).unwrap();
    session
        .login(
            cryptoki::session::UserType::User,
            Some(&cryptoki::types::AuthPin::new(card.info.pin.clone())),
        )
        .unwrap();
    let keys = session
        .find_objects(&[Attribute::Class(ObjectClass::PRIVATE_KEY)])
        .unwrap();
    // 9A, 9C, 9D and 9E on this card: the Key Management key (9D) among them.
    assert_eq!(keys.len(), 4);
    for key in keys {
        let attributes = session
            .get_attributes(key, &[AttributeType::Decrypt, AttributeType::Id])
            .unwrap();
        assert!(
            attributes.contains(&Attribute::Decrypt(false)),
            "{attributes:?}"
        );
    }
}

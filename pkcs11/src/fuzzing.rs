//! The C interface as a hostile or careless caller drives it, for fuzzing (pkcs11/fuzz) and
//! for replaying the fuzz corpus in `cargo test`. Every input is a sequence of calls through
//! the function list, with attribute templates, mechanism parameters, PINs, data and output
//! buffers made from the input bytes, over a token in memory holding three real
//! certificates (RSA-2048, P-256, P-384).
//!
//! What must hold for every input: no panic (the module turns one into
//! `CKR_GENERAL_ERROR`, so that code is itself a failure here), no byte written outside a
//! buffer the caller handed over, and no length reported beyond what was written.
//!
//! Pointers are always valid for the lengths given: a caller lying about its own memory is
//! outside any module's contract.
#![allow(unsafe_code)]

use cryptoki_sys::*;

use cacbridge_card::testing::{certificates, FakeBackend};
use cacbridge_card::{CardCertificate, CardStatus, CardType, PinStatus, ReaderStatus, Slot};

use crate::module::Module;

const READER: &str = "Fuzz Reader 00 00";
/// Bytes after each output buffer that nothing may touch.
const GUARD: usize = 16;
const GUARD_BYTE: u8 = 0xA5;

fn card_certificate(slot: Slot, der: &[u8]) -> CardCertificate {
    CardCertificate {
        reader: READER.into(),
        slot,
        info: cacbridge_card::certificate::inspect(der).expect("a fixture certificate"),
        der: der.to_vec(),
    }
}

fn token() -> FakeBackend {
    let mut token = FakeBackend::new(vec![
        card_certificate(Slot::PivAuthentication, certificates::RSA2048),
        card_certificate(Slot::DigitalSignature, certificates::P384),
        card_certificate(Slot::CardAuthentication, certificates::P256),
    ]);
    token.readers = vec![ReaderStatus {
        name: READER.into(),
        card: Some(CardStatus {
            atr: vec![0x3B],
            card_type: CardType::Piv,
            dual_cac: false,
            pin: Some(PinStatus {
                retries_left: Some(3),
                blocked: false,
            }),
            error: None,
            backend: "pcsc",
        }),
    }];
    token
}

/// The fuzz input, read front to back; zeros once it runs out.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        let len = len.min(self.0.len());
        let (taken, rest) = self.0.split_at(len);
        self.0 = rest;
        taken.to_vec()
    }

    /// A length byte (times `scale`, modulo `modulo`), then that many bytes.
    fn sized(&mut self, scale: usize, modulo: usize) -> Vec<u8> {
        let len = usize::from(self.byte()) * scale % modulo;
        self.bytes(len)
    }

    fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.byte(), self.byte(), self.byte(), self.byte()])
    }

    /// One of `known`, or (one time in eight) any value at all.
    fn pick(&mut self, known: &[CK_ULONG]) -> CK_ULONG {
        let b = self.byte();
        if b % 8 == 7 || known.is_empty() {
            CK_ULONG::from(self.u32())
        } else {
            known[usize::from(b / 8) % known.len()]
        }
    }
}

const ATTRIBUTES: &[CK_ATTRIBUTE_TYPE] = &[
    CKA_CLASS,
    CKA_TOKEN,
    CKA_PRIVATE,
    CKA_LABEL,
    CKA_ID,
    CKA_VALUE,
    CKA_SUBJECT,
    CKA_ISSUER,
    CKA_SERIAL_NUMBER,
    CKA_CERTIFICATE_TYPE,
    CKA_KEY_TYPE,
    CKA_SIGN,
    CKA_MODULUS,
    CKA_MODULUS_BITS,
    CKA_PUBLIC_EXPONENT,
    CKA_EC_PARAMS,
    CKA_EC_POINT,
    CKA_ALWAYS_AUTHENTICATE,
    CKA_SENSITIVE,
    CKA_EXTRACTABLE,
];

const MECHANISMS: &[CK_MECHANISM_TYPE] = &[
    CKM_RSA_X_509,
    CKM_RSA_PKCS,
    CKM_SHA256_RSA_PKCS,
    CKM_SHA384_RSA_PKCS,
    CKM_SHA512_RSA_PKCS,
    CKM_RSA_PKCS_PSS,
    CKM_SHA256_RSA_PKCS_PSS,
    CKM_SHA384_RSA_PKCS_PSS,
    CKM_ECDSA,
    CKM_ECDSA_SHA256,
    CKM_ECDSA_SHA384,
    CKM_SHA_1,
];

const CLASSES: &[CK_ULONG] = &[CKO_CERTIFICATE, CKO_PUBLIC_KEY, CKO_PRIVATE_KEY, CKO_DATA];

/// An output buffer of `capacity` bytes followed by guard bytes.
struct Output {
    bytes: Vec<u8>,
    capacity: usize,
}

impl Output {
    fn new(capacity: usize) -> Self {
        Self {
            bytes: vec![GUARD_BYTE; capacity + GUARD],
            capacity,
        }
    }

    fn ptr(&mut self) -> *mut u8 {
        self.bytes.as_mut_ptr()
    }

    /// Nothing past the capacity was written, and the length the module reported fits.
    fn check(&self, reported: CK_ULONG, rv: CK_RV, what: &str) {
        assert!(
            self.bytes[self.capacity..].iter().all(|&b| b == GUARD_BYTE),
            "{what} wrote past the caller's buffer"
        );
        if rv == CKR_OK {
            assert!(
                reported as usize <= self.capacity,
                "{what} reported {reported} bytes in a {}-byte buffer",
                self.capacity
            );
        }
    }
}

fn checked(rv: CK_RV, what: &str) -> CK_RV {
    assert_ne!(rv, CKR_GENERAL_ERROR, "{what} panicked inside the module");
    rv
}

/// Run the calls `data` describes against a fresh module over the in-memory token.
pub fn calls(data: &[u8]) {
    crate::ffi::install(Module::new(Box::new(token())));
    let mut list: *mut CK_FUNCTION_LIST = std::ptr::null_mut();
    // SAFETY (this whole function): every pointer handed to the module points into a live
    // local buffer at least as long as the length passed with it.
    unsafe {
        assert_eq!(crate::ffi::C_GetFunctionList(&mut list), CKR_OK);
        let f = &*list;
        let mut slots = [0 as CK_SLOT_ID; 4];
        let mut count = slots.len() as CK_ULONG;
        let get_slot_list = f.C_GetSlotList.expect("listed");
        assert_eq!(
            get_slot_list(CK_TRUE, slots.as_mut_ptr(), &mut count),
            CKR_OK
        );
        let mut sessions: Vec<CK_SESSION_HANDLE> = Vec::new();
        let mut handles: Vec<CK_OBJECT_HANDLE> = Vec::new();
        let mut input = Input(data);
        for _ in 0..64 {
            if input.0.is_empty() {
                break;
            }
            let session = match input.byte() % 4 {
                0 => CK_ULONG::from(input.u32()),
                _ if sessions.is_empty() => 1,
                n => sessions[usize::from(n) % sessions.len()],
            };
            match input.byte() % 12 {
                0 => {
                    let mut handle = 0;
                    let rv = f.C_OpenSession.expect("listed")(
                        input.pick(&[1]),
                        input.pick(&[CKF_SERIAL_SESSION]),
                        std::ptr::null_mut(),
                        None,
                        &mut handle,
                    );
                    if checked(rv, "C_OpenSession") == CKR_OK {
                        sessions.push(handle);
                    }
                }
                1 => {
                    checked(f.C_CloseSession.expect("listed")(session), "C_CloseSession");
                }
                2 => {
                    let user = input.pick(&[CKU_USER, CKU_CONTEXT_SPECIFIC, CKU_SO]);
                    let mut pin = input.sized(1, 12);
                    let (pointer, length) = match input.byte() % 4 {
                        0 => (std::ptr::null_mut(), pin.len() as CK_ULONG),
                        _ => (pin.as_mut_ptr(), pin.len() as CK_ULONG),
                    };
                    let rv = f.C_Login.expect("listed")(session, user, pointer, length);
                    checked(rv, "C_Login");
                }
                3 => {
                    checked(f.C_Logout.expect("listed")(session), "C_Logout");
                }
                4 => {
                    // A template whose values point into buffers of exactly their length.
                    let mut values: Vec<Vec<u8>> = Vec::new();
                    let mut template: Vec<CK_ATTRIBUTE> = Vec::new();
                    for _ in 0..input.byte() % 6 {
                        let kind = input.pick(ATTRIBUTES);
                        let value = match input.byte() % 3 {
                            0 => input.pick(CLASSES).to_ne_bytes().to_vec(),
                            _ => input.sized(1, 256),
                        };
                        values.push(value);
                        let value = values.last_mut().expect("pushed");
                        let null = input.byte() % 8 == 0;
                        template.push(CK_ATTRIBUTE {
                            type_: kind,
                            pValue: if null {
                                std::ptr::null_mut()
                            } else {
                                value.as_mut_ptr().cast()
                            },
                            ulValueLen: value.len() as CK_ULONG,
                        });
                    }
                    let pointer = if template.is_empty() && input.byte() % 2 == 0 {
                        std::ptr::null_mut()
                    } else {
                        template.as_mut_ptr()
                    };
                    let rv = f.C_FindObjectsInit.expect("listed")(
                        session,
                        pointer,
                        template.len() as CK_ULONG,
                    );
                    checked(rv, "C_FindObjectsInit");
                }
                5 => {
                    let max = usize::from(input.byte() % 8);
                    let mut found = vec![0 as CK_OBJECT_HANDLE; max + 2];
                    found[max..].fill(CK_OBJECT_HANDLE::MAX);
                    let mut count = CK_ULONG::MAX;
                    let rv = f.C_FindObjects.expect("listed")(
                        session,
                        found.as_mut_ptr(),
                        max as CK_ULONG,
                        &mut count,
                    );
                    if checked(rv, "C_FindObjects") == CKR_OK {
                        assert!(
                            count as usize <= max,
                            "C_FindObjects found {count} of {max}"
                        );
                        handles.extend_from_slice(&found[..count as usize]);
                    }
                    assert!(found[max..].iter().all(|&h| h == CK_OBJECT_HANDLE::MAX));
                }
                6 => {
                    checked(
                        f.C_FindObjectsFinal.expect("listed")(session),
                        "C_FindObjectsFinal",
                    );
                }
                7 => {
                    let object = pick_handle(&mut input, &handles);
                    let n = usize::from(input.byte() % 6);
                    let mut outputs: Vec<Option<Output>> = (0..n)
                        .map(|_| match input.byte() % 3 {
                            0 => None,
                            _ => Some(Output::new(usize::from(input.byte()) * 2)),
                        })
                        .collect();
                    let mut template: Vec<CK_ATTRIBUTE> = outputs
                        .iter_mut()
                        .map(|output| CK_ATTRIBUTE {
                            type_: input.pick(ATTRIBUTES),
                            pValue: output
                                .as_mut()
                                .map_or(std::ptr::null_mut(), |o| o.ptr().cast()),
                            ulValueLen: output.as_ref().map_or(0, |o| o.capacity as CK_ULONG),
                        })
                        .collect();
                    let rv = f.C_GetAttributeValue.expect("listed")(
                        session,
                        object,
                        template.as_mut_ptr(),
                        template.len() as CK_ULONG,
                    );
                    checked(rv, "C_GetAttributeValue");
                    for (attribute, output) in template.iter().zip(&outputs) {
                        if let Some(output) = output {
                            let reported = if attribute.ulValueLen == CK_UNAVAILABLE_INFORMATION {
                                0
                            } else {
                                attribute.ulValueLen
                            };
                            output.check(reported, CKR_OK, "C_GetAttributeValue");
                        }
                    }
                }
                8 => {
                    let mut parameter = match input.byte() % 4 {
                        // A well-formed PSS parameter block, with any values in it.
                        0 => {
                            let params = CK_RSA_PKCS_PSS_PARAMS {
                                hashAlg: input.pick(&[CKM_SHA256, CKM_SHA384, CKM_SHA512]),
                                mgf: input.pick(&[CKG_MGF1_SHA256, CKG_MGF1_SHA384]),
                                sLen: input.pick(&[32, 48, 64, 0]),
                            };
                            let size = std::mem::size_of::<CK_RSA_PKCS_PSS_PARAMS>();
                            std::slice::from_raw_parts(
                                std::ptr::addr_of!(params).cast::<u8>(),
                                size,
                            )
                            .to_vec()
                        }
                        1 => Vec::new(),
                        _ => input.sized(1, 48),
                    };
                    let mut mechanism = CK_MECHANISM {
                        mechanism: input.pick(MECHANISMS),
                        pParameter: if parameter.is_empty() {
                            std::ptr::null_mut()
                        } else {
                            parameter.as_mut_ptr().cast()
                        },
                        ulParameterLen: parameter.len() as CK_ULONG,
                    };
                    let key = pick_handle(&mut input, &handles);
                    checked(
                        f.C_SignInit.expect("listed")(session, &mut mechanism, key),
                        "C_SignInit",
                    );
                }
                9 | 10 => {
                    let mut data = input.sized(2, 512);
                    let mut output = Output::new(usize::from(input.byte()) * 2);
                    let mut length = output.capacity as CK_ULONG;
                    let query = input.byte() % 4 == 0;
                    let out = if query {
                        std::ptr::null_mut()
                    } else {
                        output.ptr()
                    };
                    let rv = if input.byte() % 2 == 0 {
                        f.C_Sign.expect("listed")(
                            session,
                            data.as_mut_ptr(),
                            data.len() as CK_ULONG,
                            out,
                            &mut length,
                        )
                    } else {
                        let rv = f.C_SignUpdate.expect("listed")(
                            session,
                            data.as_mut_ptr(),
                            data.len() as CK_ULONG,
                        );
                        checked(rv, "C_SignUpdate");
                        f.C_SignFinal.expect("listed")(session, out, &mut length)
                    };
                    checked(rv, "C_Sign");
                    if !query {
                        output.check(length, rv, "C_Sign");
                    }
                }
                _ => {
                    let mut info = std::mem::zeroed::<CK_MECHANISM_INFO>();
                    let rv = f.C_GetMechanismInfo.expect("listed")(
                        input.pick(&[1]),
                        input.pick(MECHANISMS),
                        &mut info,
                    );
                    checked(rv, "C_GetMechanismInfo");
                    let mut token = std::mem::zeroed::<CK_TOKEN_INFO>();
                    checked(
                        f.C_GetTokenInfo.expect("listed")(input.pick(&[1]), &mut token),
                        "C_GetTokenInfo",
                    );
                }
            }
        }
        checked(
            f.C_CloseAllSessions.expect("listed")(1),
            "C_CloseAllSessions",
        );
    }
}

/// An object handle the module gave out, or any number.
fn pick_handle(input: &mut Input, handles: &[CK_OBJECT_HANDLE]) -> CK_OBJECT_HANDLE {
    match input.byte() {
        b if b % 4 == 0 || handles.is_empty() => CK_ULONG::from(input.u32()),
        b => handles[usize::from(b) % handles.len()],
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    /// The committed corpus (what the fuzzer kept), replayed on every `cargo test`.
    #[test]
    fn the_fuzz_corpus_replays_cleanly() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/corpus/calls");
        let mut replayed = 0;
        for entry in std::fs::read_dir(dir).expect("the corpus directory") {
            let path = entry.unwrap().path();
            super::calls(&std::fs::read(&path).unwrap());
            replayed += 1;
        }
        assert!(replayed > 0, "an empty corpus proves nothing");
    }
}

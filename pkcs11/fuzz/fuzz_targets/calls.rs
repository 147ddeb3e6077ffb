//! Templates, mechanism parameters, PINs and buffers from a careless caller, through the C
//! function list: `cargo fuzz run calls` (in pkcs11/).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    cacbridge_pkcs11::fuzzing::calls(data);
});

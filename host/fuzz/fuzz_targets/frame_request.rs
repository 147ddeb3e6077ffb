//! Untrusted bytes on stdin: frames, then requests. `cargo fuzz run frame_request`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = cacbridge_host::messaging::parse_stream(data);
});

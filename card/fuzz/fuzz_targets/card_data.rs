//! Hostile card answers: `cargo fuzz run card_data` (in card/).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    cacbridge_card::fuzzing::card_data(data);
});

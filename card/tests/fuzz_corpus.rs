//! Replays the card fuzz corpus (card/fuzz/corpus/card_data) through the same entry point the
//! fuzz target drives: hostile card answers and malformed card data must never panic.

#[test]
fn card_fuzz_corpus_replays_without_panics() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/corpus/card_data");
    let mut replayed = 0;
    for entry in std::fs::read_dir(dir).expect("the corpus directory") {
        let path = entry.expect("a corpus entry").path();
        let data = std::fs::read(&path).expect("a corpus file");
        cacbridge_card::fuzzing::card_data(&data);
        replayed += 1;
    }
    assert!(replayed >= 9, "the corpus went missing: {replayed} files");
}

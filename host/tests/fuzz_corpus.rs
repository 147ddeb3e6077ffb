//! Replays the fuzz corpus (`host/fuzz/corpus/frame_request`) through the same parser the
//! fuzz target drives, so every input the fuzzer ever kept stays a regression test.
#![allow(clippy::unwrap_used)]

use cacbridge_host::messaging::parse_stream;

#[test]
fn fuzz_corpus_replays_without_panics() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/corpus/frame_request");
    let mut replayed = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let parsed = parse_stream(&data);
        // Every complete frame costs at least its 4-byte prefix.
        assert!(
            parsed.requests.len() * 4 <= data.len(),
            "{}",
            path.display()
        );
        replayed += 1;
    }
    assert!(replayed >= 10, "the corpus went missing: {replayed} files");
}

#[test]
fn seeds_parse_as_their_names_say() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/corpus/frame_request");
    let parse = |name: &str| parse_stream(&std::fs::read(format!("{dir}/{name}")).unwrap());

    let version = parse("version");
    assert_eq!(version.requests.len(), 1);
    assert_eq!(version.requests[0].as_ref().unwrap().command, "version");
    assert!(version.ended_by.is_none());

    assert_eq!(parse("pipelined").requests.len(), 2);
    assert!(parse("bad-utf8").requests[0].is_err());
    assert!(matches!(
        parse("too-large").ended_by,
        Some(cacbridge_host::messaging::codec::FrameError::TooLarge { .. })
    ));
    assert!(matches!(
        parse("truncated-body").ended_by,
        Some(cacbridge_host::messaging::codec::FrameError::Truncated { .. })
    ));
    // serde_json caps nesting at 128 levels: deep input is refused, not a stack overflow.
    assert!(parse("deep-nesting").requests[0].is_err());
}

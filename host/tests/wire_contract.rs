//! The wire contract has one owner: the host's protocol module. Its documents and the
//! extension's generated module must agree with it, in both directions.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::PathBuf;

use cacbridge_host::contract::extension_module;
use cacbridge_host::messaging::protocol::{ErrorCode, PageErrorCode};

fn root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// The codes in the first column of the table under `heading` in a document.
fn documented_codes(document: &str, heading: &str) -> BTreeSet<String> {
    let text = std::fs::read_to_string(root().join(document)).unwrap();
    let section = text
        .split("\n## ")
        .find(|s| s.starts_with(heading))
        .unwrap_or_else(|| panic!("{document} has no section {heading}"));
    section
        .lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|rest| rest.split('`').next())
        .map(str::to_owned)
        .collect()
}

fn difference(a: &BTreeSet<String>, b: &BTreeSet<String>) -> Vec<String> {
    a.difference(b).cloned().collect()
}

#[test]
fn every_host_error_code_is_documented_and_every_documented_one_exists() {
    let documented = documented_codes("docs/protocol.md", "Error codes");
    let defined: BTreeSet<String> = ErrorCode::all().map(|c| c.as_str().to_owned()).collect();
    assert_eq!(
        difference(&defined, &documented),
        Vec::<String>::new(),
        "codes missing from docs/protocol.md"
    );
    assert_eq!(
        difference(&documented, &defined),
        Vec::<String>::new(),
        "documented codes the host does not have"
    );
}

#[test]
fn every_page_error_code_is_documented_and_every_documented_one_exists() {
    let documented = documented_codes("docs/page-api.md", "Error codes");
    let defined: BTreeSet<String> = PageErrorCode::all()
        .map(|c| c.as_str().to_owned())
        .collect();
    assert_eq!(
        difference(&defined, &documented),
        Vec::<String>::new(),
        "codes missing from docs/page-api.md"
    );
    assert_eq!(
        difference(&documented, &defined),
        Vec::<String>::new(),
        "documented page codes the extension does not have"
    );
}

#[test]
fn the_serde_names_are_the_listed_names() {
    for code in ErrorCode::all() {
        assert_eq!(serde_json::to_value(code).unwrap(), code.as_str());
        let back: ErrorCode = serde_json::from_value(code.as_str().into()).unwrap();
        assert_eq!(back, code);
    }
}

#[test]
fn the_extension_wire_module_is_current() {
    let path = root().join("extension/src/lib/wire.js");
    let expected = extension_module();
    if std::env::var_os("CACBRIDGE_WRITE_WIRE").is_some() {
        std::fs::write(&path, &expected).unwrap();
    }
    let current = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        current == expected,
        "{} is stale: run CACBRIDGE_WRITE_WIRE=1 cargo test -p cacbridge-host --test wire_contract",
        path.display()
    );
}

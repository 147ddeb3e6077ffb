//! The wire contract as the extension needs it, generated from the one place each fact is
//! defined on the host's side: the host name, the protocol version, every error code (the
//! host's and the extension's own), and the rules for nonces, PINs, hashes and origins.
//!
//! `extension/src/lib/wire.js` is this module's output. The test `wire_contract` fails when
//! the file is stale; `CACBRIDGE_WRITE_WIRE=1 cargo test -p cacbridge-host --test
//! wire_contract` rewrites it.

use std::fmt::Write as _;

use crate::arguments::{
    HASH_FUNCTIONS, MAX_ORIGIN, NONCE_ALPHABET, NONCE_MAX, NONCE_MIN, PIN_DIGITS,
};
use crate::commands::{Command, Event};
use crate::messaging::protocol::{ErrorCode, PageErrorCode, HOST_NAME, PROTOCOL_VERSION};

/// `list-certificates` as a JavaScript name: `listCertificates`.
fn camel(name: &str) -> String {
    let mut out = String::new();
    let mut upper = false;
    for c in name.chars() {
        if c == '-' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

fn list(codes: impl Iterator<Item = &'static str>) -> String {
    codes
        .map(|code| format!("  \"{code}\",\n"))
        .collect::<String>()
}

/// The text of `extension/src/lib/wire.js`.
pub fn extension_module() -> String {
    let mut out = String::new();
    out.push_str(
        "// Generated from the host's protocol module (host/src/contract.rs): do not edit.\n\
         // CACBRIDGE_WRITE_WIRE=1 cargo test -p cacbridge-host --test wire_contract rewrites it.\n\n",
    );
    let _ = writeln!(out, "export const HOST_NAME = \"{HOST_NAME}\";");
    let _ = writeln!(out, "export const PROTOCOL = {PROTOCOL_VERSION};\n");
    let _ = writeln!(
        out,
        "/** Every error code the host answers with (docs/protocol.md). */\nexport const HOST_ERROR_CODES = Object.freeze([\n{}]);\n",
        list(ErrorCode::all().map(ErrorCode::as_str))
    );
    let _ = writeln!(
        out,
        "/** The codes the extension itself answers a page with (docs/page-api.md). */\nexport const PAGE_ERROR_CODES = Object.freeze([\n{}]);\n",
        list(PageErrorCode::all().map(PageErrorCode::as_str))
    );
    let _ = writeln!(
        out,
        "/** `challengeNonce`: length and characters. */\nexport const NONCE = Object.freeze({{ min: {NONCE_MIN}, max: {NONCE_MAX}, pattern: /^[{NONCE_ALPHABET}]+$/ }});\n"
    );
    let _ = writeln!(
        out,
        "/** A PIN: digits only. */\nexport const PIN = Object.freeze({{ min: {}, max: {} }});\n",
        PIN_DIGITS.start(),
        PIN_DIGITS.end()
    );
    let hashes = HASH_FUNCTIONS
        .iter()
        .map(|(name, function)| format!("\"{name}\": {}", function.output_len()))
        .collect::<Vec<_>>()
        .join(", ");
    let _ = writeln!(
        out,
        "/** `hashFunction` and the length of its hash in bytes. */\nexport const HASH_FUNCTIONS = Object.freeze({{ {hashes} }});\n"
    );
    let _ = writeln!(
        out,
        "/** The longest origin the host accepts. */\nexport const ORIGIN_MAX = {MAX_ORIGIN};\n"
    );
    let names = |pairs: Vec<(&'static str, String)>| {
        pairs
            .into_iter()
            .map(|(name, key)| format!("  {key}: \"{name}\",\n"))
            .collect::<String>()
    };
    let _ = writeln!(
        out,
        "/** The commands the host answers (docs/protocol.md). */\nexport const COMMANDS = Object.freeze({{\n{}}});\n",
        names(Command::all().map(|c| (c.name(), camel(c.name()))).collect())
    );
    let _ = writeln!(
        out,
        "/** The events the host sends. */\nexport const EVENTS = Object.freeze({{\n{}}});\n",
        names(Event::all().map(|e| (e.name(), camel(e.name()))).collect())
    );
    let _ = writeln!(
        out,
        "/** How long the person has in CAC Bridge's window (the host's TLS requests wait as long). */\nexport const WINDOW_TIMEOUT_MS = {};",
        cacbridge_channel::WINDOW_TIMEOUT.as_millis()
    );
    out
}

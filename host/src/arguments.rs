//! Checking command arguments before anything reaches a card. Every rule has its own `reason`
//! in the `invalid-argument` error, so the extension and integrators see what was wrong.

use serde_json::Value;

use crate::messaging::protocol::{Arguments, ErrorCode, Secret, WireError};

use cacbridge_card::HashFunction;

pub const MAX_ORIGIN: usize = 255;
pub const NONCE_MIN: usize = 44;
pub const NONCE_MAX: usize = 128;
/// The characters of a nonce: both base64 alphabets and padding.
pub const NONCE_ALPHABET: &str = "A-Za-z0-9+/=_-";
/// A PIN's length, in digits (the card layer's rule).
pub const PIN_DIGITS: std::ops::RangeInclusive<usize> = cacbridge_card::Pin::LENGTH;
/// `hashFunction` on the wire.
pub const HASH_FUNCTIONS: [(&str, HashFunction); 3] = [
    ("SHA-256", HashFunction::Sha256),
    ("SHA-384", HashFunction::Sha384),
    ("SHA-512", HashFunction::Sha512),
];

pub fn hash_function(name: &str) -> Option<HashFunction> {
    HASH_FUNCTIONS
        .iter()
        .find(|(wire, _)| *wire == name)
        .map(|(_, function)| *function)
}

pub fn hash_function_name(function: HashFunction) -> &'static str {
    HASH_FUNCTIONS
        .iter()
        .find(|(_, f)| *f == function)
        .map_or("", |(wire, _)| wire)
}

pub fn invalid(argument: &str, reason: &str, message: impl Into<String>) -> WireError {
    WireError::new(ErrorCode::InvalidArgument, message)
        .with_detail("argument", argument)
        .with_detail("reason", reason)
}

/// A required string argument.
pub fn required_string<'a>(arguments: &'a Arguments, name: &str) -> Result<&'a str, WireError> {
    match arguments.get(name) {
        Some(Value::String(s)) => Ok(s),
        None | Some(Value::Null) => {
            Err(invalid(name, "missing", format!("\"{name}\" is required")))
        }
        Some(_) => Err(invalid(
            name,
            "type",
            format!("\"{name}\" must be a string"),
        )),
    }
}

/// A required secret argument (the PIN), borrowed from its wiped-on-drop buffer.
pub fn required_secret<'a>(arguments: &'a Arguments, name: &str) -> Result<&'a str, WireError> {
    match arguments.secret(name) {
        Some(Secret::Text(text)) => Ok(text.as_str()),
        Some(Secret::NotText) => Err(invalid(
            name,
            "type",
            format!("\"{name}\" must be a string"),
        )),
        None => Err(invalid(name, "missing", format!("\"{name}\" is required"))),
    }
}

/// An optional string argument.
pub fn optional_string(arguments: &Arguments, name: &str) -> Result<Option<String>, WireError> {
    match arguments.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(invalid(
            name,
            "type",
            format!("\"{name}\" must be a string"),
        )),
    }
}

/// An origin as the browser serializes it: `https://host[:port]`, nothing more. `http` only
/// for localhost and 127.0.0.1, and only when `allow_localhost`.
pub fn check_origin(origin: &str, allow_localhost: bool) -> Result<(), WireError> {
    let bad = |reason: &str, message: &str| Err(invalid("origin", reason, message));
    if origin.len() > MAX_ORIGIN {
        return bad("too-long", "an origin is at most 255 characters");
    }
    let (scheme, authority) = match origin.split_once("://") {
        Some(parts) => parts,
        None => return bad("scheme", "an origin starts with https://"),
    };
    if authority.contains('/') {
        return bad("path", "an origin has no path (not even a trailing /)");
    }
    if authority.contains('?') {
        return bad("query", "an origin has no query");
    }
    if authority.contains('#') {
        return bad("fragment", "an origin has no fragment");
    }
    if authority.contains('@') {
        return bad("userinfo", "an origin has no user name or password");
    }
    let Some((host, port)) = split_host_port(authority) else {
        return bad("host", "after an IPv6 address's ] only :port may follow");
    };
    if let Some(port) = port {
        let default = if scheme == "http" { "80" } else { "443" };
        if port.is_empty()
            || !port.bytes().all(|b| b.is_ascii_digit())
            || port.starts_with('0')
            || port.len() > 5
            || port.parse::<u32>().map_or(true, |p| p == 0 || p > 65535)
            || port == default
        {
            return bad(
                "port",
                "the port must be a number from 1 to 65535, as a browser writes it (no leading zeros, no default port)",
            );
        }
    }
    if !valid_host(host) {
        return bad(
            "host",
            "the host must be a lower-case domain name or IP address",
        );
    }
    match scheme {
        "https" => Ok(()),
        "http" if matches!(host, "localhost" | "127.0.0.1") => {
            if allow_localhost {
                Ok(())
            } else {
                bad(
                    "insecure-localhost",
                    "http://localhost is allowed only when the host policy enables it for developers",
                )
            }
        }
        _ => bad("scheme", "an origin must use https"),
    }
}

/// `host[:port]` or `[v6][:port]`; `None` when anything but `:port` follows the `]`.
fn split_host_port(authority: &str) -> Option<(&str, Option<&str>)> {
    if authority.starts_with('[') {
        let end = authority.find(']')?;
        let (host, rest) = authority.split_at(end + 1);
        if rest.is_empty() {
            Some((host, None))
        } else {
            rest.strip_prefix(':').map(|port| (host, Some(port)))
        }
    } else {
        Some(match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        })
    }
}

/// A host as a browser serializes it in an origin: a lower-case domain name, a dotted IPv4
/// address, or a bracketed IPv6 address in its RFC 5952 form. Anything a browser would have
/// rewritten (`127.1`, `[0:0::1]`, `[::ffff:1.2.3.4]`) is refused rather than guessed at.
fn valid_host(host: &str) -> bool {
    if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return !v6.contains('.')
            && v6
                .parse::<std::net::Ipv6Addr>()
                .is_ok_and(|address| address.to_string() == v6);
    }
    // A name whose last label is a number is an IPv4 address to a browser.
    let last = host.rsplit('.').next().unwrap_or_default();
    let hex_number = |label: &str| {
        (label
            .strip_prefix("0x")
            .or_else(|| label.strip_prefix("0X")))
        .is_some_and(|digits| digits.bytes().all(|b| b.is_ascii_hexdigit()))
    };
    if last.bytes().all(|b| b.is_ascii_digit()) || hex_number(last) {
        return host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|address| address.to_string() == host);
    }
    !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
}

/// A server challenge: 44 to 128 base64 characters (32 random bytes are 44).
pub fn check_nonce(nonce: &str) -> Result<(), WireError> {
    if !(NONCE_MIN..=NONCE_MAX).contains(&nonce.len()) {
        return Err(invalid(
            "challengeNonce",
            "length",
            format!("the challenge nonce must be {NONCE_MIN} to {NONCE_MAX} characters"),
        ));
    }
    // NONCE_ALPHABET, as bytes.
    let base64 = |b: u8| b.is_ascii_alphanumeric() || b"+/=-_".contains(&b);
    if !nonce.bytes().all(base64) {
        return Err(invalid(
            "challengeNonce",
            "alphabet",
            "the challenge nonce must be base64",
        ));
    }
    Ok(())
}

/// A certificate id as `list-certificates` gives it: 64 lower-case hex digits.
pub fn check_certificate_id(id: &str) -> Result<(), WireError> {
    if id.len() == 64
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        Ok(())
    } else {
        Err(invalid(
            "certificateId",
            "format",
            "a certificate id is the 64 hex digits list-certificates returns",
        ))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn reason(result: Result<(), WireError>) -> String {
        result.unwrap_err().details["reason"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    #[test]
    fn good_origins() {
        for origin in [
            "https://portal.example.mil",
            "https://portal.example.mil:8443",
            "https://127.0.0.1:9443",
            "https://[::1]:8443",
            "https://a-b.c0.example",
        ] {
            assert!(check_origin(origin, false).is_ok(), "{origin}");
        }
    }

    #[test]
    fn each_bad_origin_has_its_own_reason() {
        let cases = [
            ("portal.example", "scheme"),
            ("ftp://portal.example", "scheme"),
            ("http://portal.example", "scheme"),
            ("https://portal.example/", "path"),
            ("https://portal.example/login", "path"),
            ("https://portal.example?x=1", "query"),
            ("https://portal.example#top", "fragment"),
            ("https://user:pw@portal.example", "userinfo"),
            ("https://portal.example:0", "port"),
            ("https://portal.example:70000", "port"),
            ("https://portal.example:", "port"),
            ("https://portal.example:8a", "port"),
            ("https://Portal.Example", "host"),
            ("https://", "host"),
            ("https://bad_host.example", "host"),
            ("https://-x.example", "host"),
            ("http://localhost:8080", "insecure-localhost"),
            ("http://127.0.0.1", "insecure-localhost"),
        ];
        for (origin, expected) in cases {
            assert_eq!(reason(check_origin(origin, false)), expected, "{origin}");
        }
        let long = format!("https://{}.example", "a".repeat(250));
        assert_eq!(reason(check_origin(&long, false)), "too-long");
    }

    #[test]
    fn only_canonical_hosts_and_ports_as_browsers_write_them() {
        for origin in [
            "https://[::1]junk",
            "https://[::1]]",
            "https://[::1]x:8443",
            "https://[0:0::1]",
            "https://[::FFFF]",
            "https://[::ffff:1.2.3.4]",
            "https://[]",
            "https://127.1",
            "https://127.000.0.1",
            "https://0x7f.0.0.1",
            "https://portal.123",
            "https://portal.example.",
        ] {
            assert_eq!(reason(check_origin(origin, false)), "host", "{origin}");
        }
        for origin in [
            "https://portal.example:443",
            "https://portal.example:08443",
            "https://[::1]:443",
            "https://[::1]:8443x",
        ] {
            assert_eq!(reason(check_origin(origin, false)), "port", "{origin}");
        }
        assert_eq!(reason(check_origin("http://localhost:80", true)), "port");
        assert!(check_origin("https://[2001:db8::1]:8443", false).is_ok());
        assert!(check_origin("https://10.0.0.1", false).is_ok());
    }

    mod against_the_url_crate {
        use super::*;
        use proptest::prelude::*;

        fn serialized_origin(text: &str) -> Option<String> {
            url::Url::parse(text)
                .ok()
                .map(|url| url.origin().ascii_serialization())
        }

        /// Origin-like strings: the pieces browsers and attackers put in an origin, each
        /// sometimes well formed and sometimes not.
        fn origin_like() -> impl Strategy<Value = String> {
            let scheme = prop_oneof!["https", "http", "HTTPS", "ftp", "wss", ""];
            let label = "[a-zA-Z0-9_-]{0,6}";
            let name = prop::collection::vec(label, 1..4).prop_map(|labels| labels.join("."));
            let ipv4 = prop::collection::vec("(0x)?[0-9]{1,4}", 1..5).prop_map(|p| p.join("."));
            let ipv6 = "\\[[0-9a-fA-F:.]{0,16}\\][a-z0-9:\\]]{0,3}";
            let host = prop_oneof![name, ipv4, ipv6, Just("localhost".to_owned())];
            let userinfo = prop_oneof![Just(""), Just("user@"), Just("u:p@")];
            let port = prop_oneof![Just(String::new()), ":[0-9a]{0,6}".prop_map(|p| p)];
            let tail = prop_oneof![
                Just(""),
                Just("/"),
                Just("/x"),
                Just("?q"),
                Just("#f"),
                Just(".")
            ];
            (scheme, userinfo, host, port, tail).prop_map(|(scheme, user, host, port, tail)| {
                format!("{scheme}://{user}{host}{port}{tail}")
            })
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 20_000, max_global_rejects: 20_000, ..ProptestConfig::default() })]

            /// Whatever the host accepts, a browser would have serialized exactly so.
            #[test]
            fn an_accepted_origin_is_its_own_serialization(text in origin_like()) {
                if check_origin(&text, true).is_ok() {
                    prop_assert_eq!(serialized_origin(&text), Some(text.clone()));
                    prop_assert!(text.starts_with("https://") || text.starts_with("http://"));
                }
            }

            /// And every https origin a browser serializes from a plain DNS name or IP address
            /// passes.
            #[test]
            fn a_serialized_origin_is_accepted(
                labels in prop::collection::vec("[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?", 1..4),
                v4 in any::<[u8; 4]>(),
                v6 in any::<u128>(),
                port in prop::option::of(1u16..),
                which in 0..3u8,
            ) {
                let v6 = std::net::Ipv6Addr::from(v6);
                prop_assume!(v6.to_ipv4_mapped().is_none());
                let host = match which {
                    0 => labels.join("."),
                    1 => std::net::Ipv4Addr::from(v4).to_string(),
                    _ => format!("[{v6}]"),
                };
                // A name ending in a number is an IPv4 address to a browser, not a name.
                prop_assume!(which != 0 || !labels[labels.len() - 1].bytes().all(|b| b.is_ascii_digit()));
                let port = port.map(|p| format!(":{p}")).unwrap_or_default();
                let origin = serialized_origin(&format!("https://{host}{port}/"));
                prop_assume!(origin.is_some());
                let origin = origin.unwrap_or_default();
                prop_assert!(check_origin(&origin, false).is_ok(), "{}", origin);
            }
        }
    }

    #[test]
    fn localhost_over_http_when_allowed() {
        assert!(check_origin("http://localhost:8080", true).is_ok());
        assert!(check_origin("http://127.0.0.1", true).is_ok());
        assert_eq!(reason(check_origin("http://example.test", true)), "scheme");
    }

    #[test]
    fn nonce_rules() {
        assert!(check_nonce(&"A".repeat(44)).is_ok());
        assert!(check_nonce(&format!("{}=", "a/+9".repeat(11))).is_ok());
        assert_eq!(reason(check_nonce(&"A".repeat(43))), "length");
        assert_eq!(reason(check_nonce(&"A".repeat(129))), "length");
        assert_eq!(
            reason(check_nonce(&format!("{}!", "A".repeat(44)))),
            "alphabet"
        );
    }

    #[test]
    fn certificate_id_rules() {
        assert!(check_certificate_id(&"ab".repeat(32)).is_ok());
        assert_eq!(reason(check_certificate_id(&"AB".repeat(32))), "format");
        assert_eq!(reason(check_certificate_id("abc")), "format");
    }
}

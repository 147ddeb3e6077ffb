//! Checking command arguments before anything reaches a card. Every rule has its own `reason`
//! in the `invalid-argument` error, so the extension and integrators see what was wrong.

use serde_json::Value;

use crate::messaging::protocol::{Arguments, ErrorCode, WireError};

pub const MAX_ORIGIN: usize = 255;
pub const NONCE_MIN: usize = 44;
pub const NONCE_MAX: usize = 128;

pub fn invalid(argument: &str, reason: &str, message: impl Into<String>) -> WireError {
    WireError::new(ErrorCode::InvalidArgument, message)
        .with_detail("argument", argument)
        .with_detail("reason", reason)
}

/// A required string argument.
pub fn required_string<'a>(arguments: &'a Arguments, name: &str) -> Result<&'a str, WireError> {
    match arguments.0.get(name) {
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

/// An optional string argument.
pub fn optional_string(arguments: &Arguments, name: &str) -> Result<Option<String>, WireError> {
    match arguments.0.get(name) {
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
    let (host, port) = split_host_port(authority);
    if let Some(port) = port {
        if port.is_empty()
            || !port.bytes().all(|b| b.is_ascii_digit())
            || port.len() > 5
            || port.parse::<u32>().map_or(true, |p| p == 0 || p > 65535)
        {
            return bad("port", "the port must be a number from 1 to 65535");
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

fn split_host_port(authority: &str) -> (&str, Option<&str>) {
    if authority.starts_with('[') {
        // [v6]:port
        match authority.find(']') {
            Some(end) => {
                let (host, rest) = authority.split_at(end + 1);
                (host, rest.strip_prefix(':'))
            }
            None => (authority, None),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    }
}

fn valid_host(host: &str) -> bool {
    if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return !v6.is_empty()
            && v6
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.');
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

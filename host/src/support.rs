//! `cacbridge-host doctor --report`: a support bundle a person can send to a help desk. It has
//! what a helper needs (versions, browsers, manifests, readers, card type, certificate expiry
//! dates, the last log lines) and nothing that identifies the person or could act as them: no
//! PIN, no certificate, no DoD ID number (EDIPI), no name or e-mail address. Everything in it
//! passes through [`redact`], the doctor's own lines included.

use std::path::Path;
use std::sync::OnceLock;

use regex::Regex;

/// How many of the log's last lines the bundle carries.
pub const LOG_LINES: usize = 200;

fn rules() -> &'static [(Regex, &'static str)] {
    static RULES: OnceLock<Vec<(Regex, &'static str)>> = OnceLock::new();
    RULES.get_or_init(|| {
        [
            // A PIN argument, should one ever reach a log (none does by design).
            (r#"(?i)"pin"\s*:\s*"[^"]*""#, r#""pin":"[PIN]""#),
            // Certificates, tokens, signatures: long base64.
            (r"[A-Za-z0-9+/_-]{64,}={0,2}", "[base64]"),
            // Certificate ids and fingerprints (they name one person's certificate).
            (r"\b[0-9A-Fa-f]{40,}\b", "[id]"),
            // A CAC common name: LAST.FIRST[.MIDDLE].EDIPI.
            (
                r"\b[A-Z][A-Z'-]*\.[A-Z][A-Z'-]*(\.[A-Z][A-Z'-]*)?\.\d{10}\b",
                "[name]",
            ),
            (
                r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}",
                "[e-mail]",
            ),
            // EDIPIs (10 digits) and UPNs (16): any long run of digits.
            (r"\d{10,}", "[number]"),
        ]
        .into_iter()
        .map(|(pattern, replacement)| {
            (
                Regex::new(pattern).expect("the redaction patterns are valid"),
                replacement,
            )
        })
        .collect()
    })
}

/// `text` with everything personal replaced by a placeholder.
pub fn redact(text: &str) -> String {
    rules()
        .iter()
        .fold(text.to_owned(), |text, (pattern, replacement)| {
            pattern.replace_all(&text, *replacement).into_owned()
        })
}

/// The last `n` lines of the file at `path` (empty when there is none).
pub fn log_tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Browsers installed here, by the programs their packages put on the path.
pub fn browsers() -> Vec<&'static str> {
    const KNOWN: [(&str, &str); 8] = [
        ("Chromium", "/usr/bin/chromium"),
        ("Google Chrome", "/usr/bin/google-chrome"),
        ("Microsoft Edge", "/usr/bin/microsoft-edge"),
        ("Brave", "/usr/bin/brave-browser"),
        ("Vivaldi", "/usr/bin/vivaldi"),
        ("Firefox ESR", "/usr/bin/firefox-esr"),
        ("Firefox", "/usr/bin/firefox"),
        ("Snap store", "/usr/bin/snap"),
    ];
    KNOWN
        .into_iter()
        .filter(|(_, path)| Path::new(path).exists())
        .map(|(name, _)| name)
        .collect()
}

/// The bundle: a header, the doctor's lines, the log's tail; all redacted.
pub fn bundle(os: &str, doctor: &[String], log: &str) -> String {
    let mut text = String::new();
    text.push_str("CAC Bridge support report\n");
    text.push_str("(redacted: no PIN, certificate, DoD ID number, name or e-mail address)\n\n");
    text.push_str(&format!("Operating system: {os}\n"));
    text.push_str(&format!("Browsers: {}\n\n", browsers().join(", ")));
    text.push_str("cacbridge-host doctor:\n");
    for line in doctor {
        text.push_str(line);
        text.push('\n');
    }
    text.push_str(&format!(
        "\nLast {LOG_LINES} lines of the host's log:\n{log}\n"
    ));
    redact(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_numbers_mail_pins_and_certificates_are_taken_out() {
        let text = concat!(
            "ok DOE.JOHN.A.1234567890: valid until 2027-11-27\n",
            "upn=1234567890123456@mil mail=john.a.doe.mil@mail.mil\n",
            r#"{"pin": "97531864"} "#,
            "cert=MIIDdzCCAl+gAwIBAgIUabcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJ\n",
            "id=0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0\n",
            "2026-11-27T13:57:00.123456Z INFO host started pid=4242\n",
        );
        let redacted = redact(text);
        for secret in [
            "DOE",
            "1234567890",
            "john.a.doe",
            "97531864",
            "MIIDdzCC",
            "0f1e2d3c4b5a",
        ] {
            assert!(!redacted.contains(secret), "{secret} in {redacted}");
        }
        // What a helper needs stays.
        assert!(redacted.contains("valid until 2027-11-27"), "{redacted}");
        assert!(redacted.contains("2026-11-27T13:57:00.123456Z INFO host started pid=4242"));
    }
}

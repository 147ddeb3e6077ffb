//! `cacbridge-verify`: check a CAC Bridge token by hand, to debug an integration.
//!
//! ```text
//! cacbridge-verify --token token.json --origin https://portal.example.mil --nonce <nonce>
//!                  [--trust bundle.pem] [--time <unix seconds>] [--policy-oid <oid>]...
//!                  [--issuer-family <CA name prefix>]...
//!                  [--revocation require|prefer|off] [--revocation-sources ocsp,crl]
//!                  [--ocsp-responder <url>] [--ocsp-signer <pem>]... [--revocation-timeout <s>]
//! ```
//!
//! Prints the identity as JSON and exits 0, or prints why the token was rejected and exits 1.

use std::io::Read;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Parser;

use cacbridge_verify::cli::Args;

use cacbridge_verify::{TrustStore, Verifier};

#[allow(clippy::print_stdout)] // the CLI's output is its point
fn main() -> ExitCode {
    let args = Args::parse();
    let token = if args.token.as_os_str() == "-" {
        let mut text = String::new();
        if std::io::stdin().read_to_string(&mut text).is_err() {
            eprintln!("cacbridge-verify: cannot read the token from standard input");
            return ExitCode::from(2);
        }
        text
    } else {
        match std::fs::read_to_string(&args.token) {
            Ok(text) => text,
            Err(err) => {
                eprintln!("cacbridge-verify: {}: {err}", args.token.display());
                return ExitCode::from(2);
            }
        }
    };
    let trust = match TrustStore::load(args.trust.as_deref()) {
        Ok(trust) => trust,
        Err(err) => {
            eprintln!("cacbridge-verify: {err}");
            return ExitCode::from(2);
        }
    };
    let revocation = match args.revocation.settings() {
        Ok(settings) => settings,
        Err(err) => {
            eprintln!("cacbridge-verify: {err}");
            return ExitCode::from(2);
        }
    };
    let policy = args.policy.policy();
    let now = args
        .time
        .map(|t| UNIX_EPOCH + Duration::from_secs(t))
        .unwrap_or_else(SystemTime::now);
    match Verifier::new(trust, policy)
        .with_revocation(revocation)
        .verify(token.trim(), &args.origin, &args.nonce, now)
    {
        Ok(identity) => {
            println!(
                "{}",
                serde_json::to_string_pretty(&identity).unwrap_or_default()
            );
            ExitCode::SUCCESS
        }
        Err(err) => {
            println!("rejected: {err} ({})", err.code());
            ExitCode::from(1)
        }
    }
}

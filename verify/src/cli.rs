//! The command line, as clap defines it: parsed by main.rs, and the source of the man page
//! (packaging/manpages).

use std::path::PathBuf;

use clap::Parser;

use crate::{RevocationArgs, VerifyPolicy};

#[derive(Parser)]
#[command(
    name = "cacbridge-verify",
    version,
    about = "Verify a CAC Bridge authentication token"
)]
pub struct Args {
    /// The token JSON, as `authenticate` returned it; `-` reads standard input.
    #[arg(long)]
    pub token: PathBuf,
    /// The origin the portal expects, e.g. https://portal.example.mil
    #[arg(long)]
    pub origin: String,
    /// The nonce the portal issued for this login.
    #[arg(long)]
    pub nonce: String,
    /// PEM bundle of trust anchors and intermediates (default: the DoD bundle shipped inside).
    #[arg(long)]
    pub trust: Option<PathBuf>,
    /// Verify as of this time (seconds since 1970) instead of now.
    #[arg(long)]
    pub time: Option<u64>,
    #[command(flatten)]
    pub policy: PolicyArgs,
    #[command(flatten)]
    pub revocation: RevocationArgs,
}

/// Which certificates are accepted, as `cacbridge-verify` and the portal take it alike.
#[derive(Debug, Clone, clap::Args)]
pub struct PolicyArgs {
    /// Accept only certificates with one of these policy OIDs (repeatable).
    #[arg(long = "policy-oid")]
    pub policy_oids: Vec<String>,
    /// Accept only certificates whose issuer's CN starts with one of these (repeatable), e.g.
    /// "DOD ID CA-".
    #[arg(long = "issuer-family")]
    pub issuer_families: Vec<String>,
}

impl PolicyArgs {
    pub fn policy(self) -> VerifyPolicy {
        VerifyPolicy::from_lists(self.policy_oids, self.issuer_families)
    }
}

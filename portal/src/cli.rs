//! The command line, as clap defines it: parsed by main.rs, and the source of the man page
//! (packaging/manpages).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use cacbridge_verify::cli::PolicyArgs;
use cacbridge_verify::RevocationArgs;

#[derive(Parser)]
#[command(
    name = "cacbridge-portal",
    version,
    about = "CAC Bridge reference portal"
)]
pub struct Cli {
    /// Directory for the database and the self-signed certificate.
    #[arg(long, global = true)]
    pub data_dir: Option<PathBuf>,
    /// The database: a SQLite file (default: DATA_DIR/portal.db), or postgres://... for
    /// PostgreSQL, which several instances behind a load balancer share (docs/deploy.md).
    #[arg(long, global = true, alias = "db", value_name = "PATH|URL")]
    pub database: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Serve the portal over HTTPS.
    Serve(Box<ServeArgs>),
    /// Create an account; the password is read from standard input.
    CreateAccount {
        #[arg(long)]
        username: String,
    },
}

#[derive(clap::Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8443")]
    pub listen: SocketAddr,
    /// The origin browsers use for this portal (default: https://localhost:PORT). Tokens
    /// must be bound to it.
    #[arg(long)]
    pub origin: Option<String>,
    /// TLS certificate chain (PEM); self-signed in DATA_DIR when absent.
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// PEM bundle of CAs whose certificates may register and log in (default: the DoD
    /// bundle shipped with cacbridge-verify).
    #[arg(long)]
    pub trust_bundle: Option<PathBuf>,
    #[command(flatten)]
    pub policy: PolicyArgs,
    #[command(flatten)]
    pub revocation: RevocationArgs,
    /// Create the demo account (demo / demo-password) when missing.
    #[arg(long)]
    pub demo_account: bool,
    /// Also serve the mutual-TLS CAC host here (e.g. 127.0.0.1:8444): registration and
    /// CAC login with the certificate the browser presents in the TLS handshake.
    #[arg(long)]
    pub mtls_listen: Option<SocketAddr>,
}

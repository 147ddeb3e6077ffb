//! The command line, as clap defines it: parsed by main.rs, and the source of the man page
//! (packaging/manpages).

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "cacbridge-host",
    version,
    about = "CAC Bridge native-messaging host: lets the CAC Bridge browser extension use your CAC.",
    long_about = "CAC Bridge native-messaging host.\n\n\
        Browsers start it with their own arguments and talk to it over stdin/stdout; with no \
        subcommand it does the same. The subcommands below are for people.",
    after_help = "Logs: see the log file under the platform's state directory (CACBRIDGE_LOG sets the level)."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Cmd>,
}

#[derive(Subcommand)]
pub enum Cmd {
    /// Print the host version and protocol version.
    Version {
        /// Print JSON, as the `version` command returns it.
        #[arg(long)]
        json: bool,
    },
    /// List the card readers, cards and certificates this host can see.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Check the installation: host manifests, PC/SC service, readers, card.
    Doctor {
        /// Also write a redacted support bundle to this file (versions, browsers, manifests,
        /// readers, card type, certificate expiry, the log's last lines; no PIN, certificate,
        /// DoD ID number, name or e-mail address).
        #[arg(long, value_name = "FILE")]
        report: Option<PathBuf>,
        /// A directory standing for / when looking for Snap and Flatpak browsers (tests).
        #[arg(long, default_value = "/")]
        root: PathBuf,
        /// Repair what can safely be repaired first: missing or stale manifests, a database
        /// made by root in your home, a second smart-card module showing the card twice, the
        /// DoD root CAs missing from your browsers (trusted for web sites only, each named
        /// with its fingerprint), a stopped smart card service (started only as root).
        #[arg(long)]
        fix: bool,
    },
    /// Install the native-messaging host manifests for Chrome, Chromium, Edge, Brave, Vivaldi
    /// and Firefox, pointing at this program.
    Install {
        /// For every user of this computer (system directories; needs root).
        #[arg(long)]
        system: bool,
        /// Mutual-TLS logins ask for the PIN in the browser's own prompt instead of CAC
        /// Bridge's window (for browsers without the CAC Bridge extension).
        #[arg(long)]
        browser_prompt: bool,
    },
    /// Remove the native-messaging host manifests.
    Uninstall {
        /// The system-wide ones.
        #[arg(long, conflicts_with = "first_start")]
        system: bool,
        /// Only what the first start registered for you (the module in Chrome's database), its
        /// marker and the certificate cache: what the package's removal runs for every user,
        /// as that user.
        #[arg(long)]
        first_start: bool,
    },
    /// The extension for every user (Chrome family: external-extension files; Firefox: its
    /// enterprise policy) and Firefox's PKCS#11 module, as the cacbridge-browser-integration
    /// package does it (/etc/cacbridge/browser-integration.json chooses the source), or take
    /// exactly that back.
    SystemIntegration {
        /// Take CAC Bridge's entries out again.
        #[arg(long)]
        remove: bool,
        /// A directory standing for / (packaging tests).
        #[arg(long, default_value = "/")]
        root: PathBuf,
    },
    /// Speak native messaging on stdin/stdout (what a browser does when it starts the host).
    Serve,
}

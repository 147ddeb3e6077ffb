//! `cacbridge-host`: started by a browser, it speaks native messaging on stdin/stdout; started
//! by a person, it runs a subcommand.

use std::ffi::OsString;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use cacbridge_host::caller::{self, Caller};
use cacbridge_host::commands::{Host, HOST_VERSION};
use cacbridge_host::logging;
use cacbridge_host::messaging::protocol::PROTOCOL_VERSION;
use cacbridge_host::messaging::server;

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
struct Cli {
    #[command(subcommand)]
    command: Option<Cmd>,
}

#[derive(Subcommand)]
enum Cmd {
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
    Doctor,
    /// Install the native-messaging host manifests for the browsers found.
    Install,
    /// Remove the native-messaging host manifests.
    Uninstall,
    /// Speak native messaging on stdin/stdout (what a browser does when it starts the host).
    Serve,
}

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    if caller::is_browser_launch(&args) {
        return serve(caller::identify(&args));
    }
    match Cli::parse().command {
        None | Some(Cmd::Serve) => serve(Caller::Unidentified),
        Some(Cmd::Version { json }) => {
            if json {
                say(&cacbridge_host::commands::version_result().to_string());
            } else {
                say(&format!(
                    "cacbridge-host {HOST_VERSION} (protocol {PROTOCOL_VERSION})"
                ));
            }
            ExitCode::SUCCESS
        }
        Some(Cmd::List { .. } | Cmd::Doctor | Cmd::Install | Cmd::Uninstall) => {
            eprintln!("cacbridge-host: this subcommand is not yet available in {HOST_VERSION}");
            ExitCode::from(2)
        }
    }
}

/// Person-facing output of subcommands. Native-messaging mode never reaches this.
#[allow(clippy::print_stdout)]
fn say(line: &str) {
    println!("{line}");
}

fn serve(caller: Caller) -> ExitCode {
    if std::io::stdin().is_terminal() {
        eprintln!(
            "cacbridge-host speaks the browser's native-messaging protocol on stdin; \
             run `cacbridge-host --help` for commands."
        );
    }
    logging::init();
    tracing::info!(pid = std::process::id(), %caller, version = HOST_VERSION, "host started");
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            tracing::error!(%err, "cannot start the async runtime");
            return ExitCode::from(1);
        }
    };
    let host = Arc::new(Host::new(caller));
    let exit = runtime.block_on(server::serve(tokio::io::stdin(), tokio::io::stdout(), host));
    // The blocking stdin reader may still be parked in read(); don't wait for it.
    runtime.shutdown_background();
    ExitCode::from(exit.code())
}

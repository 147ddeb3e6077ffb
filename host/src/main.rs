//! `cacbridge-host`: started by a browser, it speaks native messaging on stdin/stdout; started
//! by a person, it runs a subcommand.

use std::ffi::OsString;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use cacbridge_card::CardError;
use clap::Parser;

use cacbridge_host::cli::{Cli, Cmd};

use cacbridge_host::caller::{self, Caller};
use cacbridge_host::commands::{version, Host};
use cacbridge_host::logging;
use cacbridge_host::messaging::protocol::{WireError, PROTOCOL_VERSION};
use cacbridge_host::messaging::server;
use cacbridge_host::module_install;
use cacbridge_host::policy::Policy;
use cacbridge_host::system_integration;
use cacbridge_host::{table, HOST_VERSION};

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    if caller::is_browser_launch(&args) {
        return serve(caller::identify(&args));
    }
    match Cli::parse().command {
        None | Some(Cmd::Serve) => serve(Caller::Unidentified),
        Some(Cmd::Version { json }) => {
            if json {
                say(&serde_json::json!(version::version()).to_string());
            } else {
                say(&format!(
                    "cacbridge-host {HOST_VERSION} (protocol {PROTOCOL_VERSION})"
                ));
            }
            ExitCode::SUCCESS
        }
        Some(Cmd::List { json }) => list(json),
        Some(Cmd::SystemIntegration { remove, root }) => {
            let module = Path::new("/usr/lib/cacbridge").join(module_install::BROWSER_LIBRARY);
            said(system_integration::system_integration(
                &root, !remove, &module,
            ))
        }
        Some(Cmd::Install {
            system,
            browser_prompt,
        }) => install(
            system,
            if browser_prompt {
                module_install::PinEntry::BrowserPrompt
            } else {
                module_install::PinEntry::Window
            },
        ),
        Some(Cmd::Uninstall {
            first_start: true, ..
        }) => forget_first_start(),
        Some(Cmd::Uninstall { system, .. }) => uninstall(system),
        Some(Cmd::Doctor { report, root, fix }) => {
            if fix {
                doctor_fix();
            }
            doctor(report.as_deref(), &root)
        }
    }
}

fn home() -> PathBuf {
    dirs::home_dir().unwrap_or_else(|| PathBuf::from("."))
}

/// A person's own setup is theirs to make: as root (`sudo -E`, `sudo HOME=...`) on another
/// user's home, writing there would follow that user's links. The refusal, when so.
fn refuse_root_on_anothers_home(system: bool) -> Option<ExitCode> {
    let owner = module_install::root_on_anothers_home(&home()).filter(|_| !system)?;
    eprintln!(
        "cacbridge-host: {} belongs to uid {owner}: run this as that user, without sudo (or use --system as root)",
        home().display()
    );
    Some(ExitCode::from(1))
}

fn install(system: bool, pin_entry: module_install::PinEntry) -> ExitCode {
    if let Some(refused) = refuse_root_on_anothers_home(system) {
        return refused;
    }
    let host = match std::env::current_exe().and_then(|p| p.canonicalize()) {
        Ok(path) => path,
        Err(err) => {
            eprintln!("cacbridge-host: cannot tell where this program is: {err}");
            return ExitCode::from(1);
        }
    };
    match cacbridge_host::install::install(&home(), system, &host) {
        Ok(files) => {
            for file in files {
                say(&format!("installed {}", file.display()));
            }
            // The PKCS#11 module, for portals that ask for a TLS client certificate.
            match module_install::find_module(&host) {
                Some(module) => match module_install::register(&home(), system, &module, pin_entry)
                {
                    Ok(lines) => lines
                        .iter()
                        .for_each(|line| say(&format!("module: {line}"))),
                    Err(err) => say(&format!("module: not registered: {err}")),
                },
                None => say(&format!(
                    "module: {} not found beside {}: mutual-TLS portals will not see the card",
                    module_install::LIBRARY,
                    host.display()
                )),
            }
            say("Restart your browser, then open the CAC Bridge toolbar button to check.");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("cacbridge-host: {err}");
            ExitCode::from(1)
        }
    }
}

fn uninstall(system: bool) -> ExitCode {
    if let Some(refused) = refuse_root_on_anothers_home(system) {
        return refused;
    }
    match cacbridge_host::install::uninstall(&home(), system) {
        Ok(files) => {
            for file in &files {
                say(&format!("removed {}", file.display()));
            }
            let module = module_install::unregister(&home(), system);
            match &module {
                Ok(lines) => lines
                    .iter()
                    .for_each(|line| say(&format!("module: {line}"))),
                Err(err) => say(&format!("module: {err}")),
            }
            if files.is_empty() && module.as_ref().is_ok_and(Vec::is_empty) {
                say("nothing to remove");
            }
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("cacbridge-host: {err}");
            ExitCode::from(1)
        }
    }
}

/// `cacbridge-host uninstall --first-start`: what the first start registered, taken out.
fn forget_first_start() -> ExitCode {
    if let Some(refused) = refuse_root_on_anothers_home(false) {
        return refused;
    }
    let state = logging::state_dir();
    let mut result = match &state {
        Some(state) => module_install::forget_first_start(&home(), state),
        None => Ok(Vec::new()),
    };
    // The host's logs and the certificates read from the person's cards (public): of no use
    // without the program. Best effort: what cannot go is said, and the rest still goes.
    let mut removed = Vec::new();
    match logging::forget_logs() {
        Ok(paths) => removed.extend(paths),
        Err(err) => eprintln!("cacbridge-host: the log stays: {err}"),
    }
    match cacbridge_card::disk_cache::DiskCache::forget_for_user() {
        Ok(path) => removed.extend(path),
        Err(err) => eprintln!("cacbridge-host: the certificate cache stays: {err}"),
    }
    if let Ok(lines) = &mut result {
        lines.extend(
            removed
                .iter()
                .map(|path| format!("{}: removed", path.display())),
        );
    }
    // Empty once nothing of the person's choosing is kept there (the DoD roots' note is).
    if let Some(state) = &state {
        let _ = std::fs::remove_dir(state);
    }
    said(result)
}

/// A command's lines printed, or its error: the exit code that goes with it.
fn said(result: Result<Vec<String>, module_install::InstallError>) -> ExitCode {
    match result {
        Ok(lines) => {
            lines.iter().for_each(|line| say(line));
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("cacbridge-host: {err}");
            ExitCode::from(1)
        }
    }
}

/// `cacbridge-host doctor --fix`: repair, then say what was done.
fn doctor_fix() {
    say("Fixing:");
    let host = std::env::current_exe().and_then(|p| p.canonicalize());
    for line in cacbridge_host::doctor::fix(&home(), host) {
        say(&format!("  {line}"));
    }
}

/// `cacbridge-host doctor [--report FILE]`.
fn doctor(report: Option<&Path>, root: &Path) -> ExitCode {
    let lines = cacbridge_host::doctor::checklist(root, &home());
    for line in &lines {
        say(line);
    }
    let Some(file) = report else {
        return ExitCode::SUCCESS;
    };
    match cacbridge_host::doctor::write_report(file, &lines) {
        Ok(()) => {
            say(&format!("support report written to {}", file.display()));
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("cacbridge-host: {}: {err}", file.display());
            ExitCode::from(1)
        }
    }
}

/// `cacbridge-host list`: what `status` and `list-certificates` return, for a person.
fn list(json: bool) -> ExitCode {
    let mut backend = cacbridge_host::backends::token(&Policy::load().backends());
    let readers = match backend.readers() {
        Ok(readers) => readers,
        Err(err) => {
            eprintln!("cacbridge-host: {err} ({})", WireError::from(&err).code);
            return ExitCode::from(1);
        }
    };
    let certificates = match backend.certificates(None) {
        Ok(certificates) => certificates,
        Err(CardError::NoCard | CardError::NoReader) => Vec::new(),
        Err(err) => {
            eprintln!("cacbridge-host: {err} ({})", WireError::from(&err).code);
            return ExitCode::from(1);
        }
    };
    let text = if json {
        table::json(&readers, &certificates)
    } else {
        table::table(&readers, &certificates)
    };
    say(text.trim_end());
    ExitCode::SUCCESS
}

/// Person-facing output of subcommands. Native-messaging mode never reaches this.
#[allow(clippy::print_stdout)]
fn say(line: &str) {
    println!("{line}");
}

/// The local channel the browser's PKCS#11 module sends TLS signatures on (Unix sockets;
/// on Windows a named pipe would do, not built yet).
#[cfg(unix)]
fn local_channel(host: Arc<Host>) -> Option<tokio::task::JoinHandle<()>> {
    match cacbridge_host::local::open() {
        Ok(channel) => Some(tokio::spawn(cacbridge_host::local::serve(channel, host))),
        Err(err) => {
            tracing::warn!(%err, "no local channel: TLS portals get the browser's PIN prompt");
            None
        }
    }
}

#[cfg(not(unix))]
fn local_channel(_host: Arc<Host>) -> Option<tokio::task::JoinHandle<()>> {
    None
}

/// A person's first start of the host from a Chrome-family browser puts CAC Bridge's module in
/// their NSS database (module_install/first_start.rs); the popup then asks for one restart.
fn first_start() {
    let (Some(home), Some(state), Ok(host)) = (
        dirs::home_dir(),
        logging::state_dir(),
        std::env::current_exe(),
    ) else {
        return;
    };
    match module_install::register_at_first_start(&home, &state, &host) {
        Ok(module_install::FirstStart::Registered(line)) => {
            tracing::info!(%line, "module registered at the first start")
        }
        Ok(module_install::FirstStart::Nothing) => {}
        Err(err) => tracing::warn!(%err, "could not register the module at the first start"),
    }
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
    cacbridge_host::held_pin::keep_memory_private();
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
    if matches!(caller, Caller::Chromium { .. }) {
        first_start();
    }
    let policy = Policy::load();
    // Every card operation has a deadline: a hung reader answers `card-timeout` instead of
    // holding the card lane (and every later request) forever.
    let card = cacbridge_host::backends::timed_token(
        &policy.backends(),
        cacbridge_card::timed::timeout_from_env(),
    );
    // Only a host the CAC Bridge extension's browser started opens the local channel: its PKCS#11
    // module, inside that browser, sends TLS signatures there for the window's PIN.
    let for_the_extension = caller
        .extension_id()
        .is_some_and(cacbridge_host::caller::is_allowed_extension);
    let host = Arc::new(Host::new(caller, Box::new(card), policy));
    let input = cacbridge_host::messaging::stdin::wiped_stdin();
    let exit = runtime.block_on(async {
        let local = for_the_extension
            .then(|| local_channel(Arc::clone(&host)))
            .flatten();
        let exit = server::serve(input, tokio::io::stdout(), Arc::clone(&host)).await;
        if let Some(local) = local {
            local.abort();
        }
        // The browser is gone: no PIN is held for a TLS login it no longer makes.
        host.end_pin_sessions();
        exit
    });
    // The stdin reader may still be parked in read(); don't wait for it.
    runtime.shutdown_background();
    ExitCode::from(exit.code())
}

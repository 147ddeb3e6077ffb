//! `cacbridge-portal`: the reference portal over HTTPS.
//!
//! ```text
//! cacbridge-portal serve --demo-account                 # https://localhost:8443, demo / demo-password
//! cacbridge-portal create-account --username jdoe       # password from standard input
//! ```
#![allow(clippy::print_stdout)] // a server's start-up banner and a command's answers

use std::io::{BufRead, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;

use cacbridge_portal::cli::{Cli, Command, ServeArgs};

use cacbridge_portal::{create_account, db, router, tls, AppState};
use cacbridge_verify::{TrustStore, Verifier};

pub const DEMO_USER: &str = "demo";
pub const DEMO_PASSWORD: &str = "demo-password";

/// Why the portal cannot go on: what to print, and the exit code.
struct Fail(String, u8);

impl Fail {
    /// A start-up failure (exit code 1), said with what it was about.
    fn at(what: &str) -> impl FnOnce(String) -> Fail + '_ {
        move |err| Fail(format!("{what}{err}"), 1)
    }

    fn exit(self) -> ExitCode {
        eprintln!("cacbridge-portal: {}", self.0);
        ExitCode::from(self.1)
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CACBRIDGE_PORTAL_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let data_dir = cli
        .data_dir
        .clone()
        .or_else(|| dirs::data_dir().map(|d| d.join("cacbridge-portal")))
        .unwrap_or_else(|| PathBuf::from("cacbridge-portal-data"));
    // The blocking pool runs Argon2, one a core (passwords.rs, its own semaphore), and token
    // and certificate verification, which may wait on an OCSP responder (up to the revocation
    // timeout): a bounded pool keeps idle threads, and their malloc arenas, from piling up,
    // with room for verifications waiting on the network beside the password checks.
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(cores + 16)
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => return Fail(err.to_string(), 1).exit(),
    };
    let database = cli
        .database
        .clone()
        .unwrap_or_else(|| data_dir.join("portal.db").to_string_lossy().into_owned());
    let conn = match runtime.block_on(db::Db::open(&database)) {
        Ok(conn) => conn,
        Err(err) => {
            // A URL's password is not printed.
            let shown = if database.contains("://") {
                "the database"
            } else {
                database.as_str()
            };
            return Fail(format!("{shown}: {err}"), 1).exit();
        }
    };
    let done = match cli.command {
        Command::CreateAccount { username } => create_account_command(&runtime, &conn, &username),
        Command::Serve(args) => serve(&runtime, conn, &data_dir, *args),
    };
    done.map_or_else(Fail::exit, |()| ExitCode::SUCCESS)
}

/// `create-account`: the password from standard input.
fn create_account_command(
    runtime: &tokio::runtime::Runtime,
    conn: &db::Db,
    username: &str,
) -> Result<(), Fail> {
    let mut password = String::new();
    if std::io::stdin().lock().read_line(&mut password).is_err() {
        return Err(Fail(
            "cannot read the password from standard input".into(),
            2,
        ));
    }
    runtime
        .block_on(create_account(
            conn,
            username,
            password.trim_end_matches(['\r', '\n']),
        ))
        .map_err(|err| Fail(err.to_string(), 1))?;
    println!("account {username} created");
    Ok(())
}

/// The demo account, made when missing. Another instance may create it at the same moment:
/// only a missing account after the attempt is an error.
fn ensure_demo_account(runtime: &tokio::runtime::Runtime, conn: &db::Db) -> Result<(), Fail> {
    let exists =
        |conn: &db::Db| matches!(runtime.block_on(conn.user_by_name(DEMO_USER)), Ok(Some(_)));
    if exists(conn) {
        return Ok(());
    }
    match runtime.block_on(create_account(conn, DEMO_USER, DEMO_PASSWORD)) {
        Ok(_) => Ok(()),
        Err(_) if exists(conn) => Ok(()),
        Err(err) => Err(Fail(format!("demo account: {err}"), 1)),
    }
}

/// `serve`: everything checked and bound first (a mistake is said before anything listens),
/// then both hosts served.
fn serve(
    runtime: &tokio::runtime::Runtime,
    conn: db::Db,
    data_dir: &std::path::Path,
    args: ServeArgs,
) -> Result<(), Fail> {
    if args.demo_account {
        ensure_demo_account(runtime, &conn)?;
    }
    let revocation = args.revocation.settings().map_err(|err| Fail(err, 2))?;
    tracing::info!(
        policy = ?revocation.policy,
        ocsp = revocation.ocsp,
        crl = revocation.crl,
        responder = revocation.ocsp_responder.as_deref().unwrap_or("(each certificate's)"),
        "revocation checking"
    );
    let trust =
        TrustStore::load(args.trust_bundle.as_deref()).map_err(|e| Fail(e.to_string(), 1))?;
    let listen = args.listen;
    let listener = std::net::TcpListener::bind(listen)
        .map_err(|e| Fail(format!("listen on {listen}: {e}"), 1))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| Fail(e.to_string(), 1))?;
    let port = listener
        .local_addr()
        .map(|a| a.port())
        .unwrap_or(listen.port());
    let origin = args
        .origin
        .unwrap_or_else(|| format!("https://localhost:{port}"));
    let (cert, key) = match (args.tls_cert, args.tls_key) {
        (Some(cert), Some(key)) => (cert, key),
        _ => tls::ensure_self_signed(data_dir, &["localhost".into(), "127.0.0.1".into()])
            .map_err(|e| Fail(format!("self-signed certificate: {e}"), 1))?,
    };
    let config = tls::server_config(&cert, &key).map_err(|e| Fail(format!("TLS: {e}"), 1))?;
    let mtls = args
        .mtls_listen
        .map(|address| bind_mtls(address, &cert, &key, &trust))
        .transpose()
        .map_err(Fail::at("mutual-TLS host: "))?;
    let policy = args.policy.policy();
    let verifier = Verifier::new(trust, policy).with_revocation(revocation);
    let mut state = runtime
        .block_on(AppState::open(conn, verifier, origin.clone()))
        .map_err(|e| Fail(e.to_string(), 1))?;
    state.cac_host = args
        .mtls_listen
        .map(|address| cac_host_origin(&origin, address.port()));
    let state = Arc::new(state);
    // A closed stdout must not stop the server: the banner is best effort.
    let mut out = std::io::stdout();
    let _ = writeln!(
        out,
        "CAC Bridge reference portal: {origin} (listening on port {port})"
    );
    let _ = writeln!(out, "TLS certificate: {}", cert.display());
    if args.demo_account {
        let _ = writeln!(out, "demo account: {DEMO_USER} / {DEMO_PASSWORD}");
    }
    runtime.block_on(run(listener, config, mtls, state, &mut out))
}

/// Serve the main host (and the CAC host, when bound) until the server stops.
async fn run(
    listener: std::net::TcpListener,
    config: Arc<rustls::ServerConfig>,
    mtls: Option<(std::net::TcpListener, Arc<rustls::ServerConfig>)>,
    state: Arc<AppState>,
    out: &mut std::io::Stdout,
) -> Result<(), Fail> {
    if let Some((listener, config)) = mtls {
        let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
        let _ = writeln!(out, "mutual-TLS CAC host: https://localhost:{port}");
        let server = axum_server::from_tcp(listener)
            .acceptor(cacbridge_portal::mtls::PeerCertificateAcceptor::new(config));
        let service = cacbridge_portal::mtls_router(Arc::clone(&state))
            .into_make_service_with_connect_info::<std::net::SocketAddr>();
        tokio::spawn(async move {
            if let Err(err) = server.serve(service).await {
                eprintln!("cacbridge-portal: mutual-TLS host: {err}");
            }
        });
    }
    let _ = out.flush();
    let server = axum_server::from_tcp_rustls(
        listener,
        axum_server::tls_rustls::RustlsConfig::from_config(config),
    );
    let housekeeping = Arc::clone(&state);
    tokio::spawn(async move {
        let mut every = tokio::time::interval(cacbridge_portal::HOUSEKEEPING_INTERVAL);
        loop {
            every.tick().await;
            housekeeping.housekeeping().await;
        }
    });
    // The client address feeds the login throttle.
    let service = router(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    server
        .serve(service)
        .await
        .map_err(|err| Fail(err.to_string(), 1))
}

/// The mutual-TLS CAC host's listener and TLS configuration (the portal's certificate; client
/// certificates from `trust`'s CAs asked for).
/// The CAC host's origin: the portal's host name on the mutual-TLS port.
fn cac_host_origin(origin: &str, port: u16) -> String {
    let without_port = match origin.rsplit_once(':') {
        Some((head, tail)) if tail.chars().all(|c| c.is_ascii_digit()) => head,
        _ => origin,
    };
    format!("{without_port}:{port}")
}

fn bind_mtls(
    address: SocketAddr,
    cert: &std::path::Path,
    key: &std::path::Path,
    trust: &TrustStore,
) -> Result<(std::net::TcpListener, Arc<rustls::ServerConfig>), String> {
    let listener =
        std::net::TcpListener::bind(address).map_err(|e| format!("listen on {address}: {e}"))?;
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;
    let config = cacbridge_portal::mtls::server_config(cert, key, trust)?;
    Ok((listener, config))
}

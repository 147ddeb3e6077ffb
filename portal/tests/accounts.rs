//! Accounts without a card: the create-account command, password login, sessions, headers.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

const PORTAL: &str = env!("CARGO_BIN_EXE_cacbridge-portal");

/// The CSRF token of the first form on a page.
fn csrf_of(body: &str) -> String {
    let marker = "name=\"csrf\" value=\"";
    let start = body.find(marker).expect("a form with a CSRF token") + marker.len();
    body[start..].split('"').next().unwrap().to_owned()
}

#[test]
fn create_account_then_log_in_and_out_with_the_password() {
    let data = tempfile::tempdir().unwrap();
    let mut create = Command::new(PORTAL)
        .arg("--data-dir")
        .arg(data.path())
        .args(["create-account", "--username", "jdoe"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    create
        .stdin
        .take()
        .unwrap()
        .write_all(b"correct horse battery\n")
        .unwrap();
    let out = create.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "account jdoe created"
    );

    // A second account of the same name is refused; short passwords too.
    let again = Command::new(PORTAL)
        .arg("--data-dir")
        .arg(data.path())
        .args(["create-account", "--username", "jdoe"])
        .stdin(Stdio::piped())
        .output()
        .unwrap();
    assert!(!again.status.success());

    let mut server = Command::new(PORTAL)
        .arg("--data-dir")
        .arg(data.path())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(server.stdout.take().unwrap());
    let mut banner = String::new();
    stdout.read_line(&mut banner).unwrap();
    std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    let origin = banner.split_whitespace().nth(4).unwrap().to_owned();
    let cert = std::fs::read(data.path().join("portal-cert.pem")).unwrap();
    let client = reqwest::blocking::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&cert).unwrap())
        .cookie_store(true)
        .build()
        .unwrap();

    let login = client.get(format!("{origin}/login")).send().unwrap();
    let headers = login.headers().clone();
    let cookie = headers
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        cookie.contains("Secure") && cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    assert!(headers.get("content-security-policy").is_some());
    assert_eq!(headers.get("x-frame-options").unwrap(), "DENY");
    let body = login.text().unwrap();
    let csrf = csrf_of(&body);

    let wrong = client
        .post(format!("{origin}/login"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("username", "jdoe"),
            ("password", "wrong"),
        ])
        .send()
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let body = wrong.text().unwrap();
    let csrf = csrf_of(&body);
    let ok = client
        .post(format!("{origin}/login"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("username", "jdoe"),
            ("password", "correct horse battery"),
        ])
        .send()
        .unwrap();
    assert!(ok.url().path().ends_with("/account"));
    let body = ok.text().unwrap();
    assert!(body.contains("Signed in as <strong>jdoe</strong>"));
    // The page shows no registration yet and the menu leads to CAC registration.
    let cac = client
        .get(format!("{origin}/account/cac"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(cac.contains("No certificate is registered to this account yet."));
    assert!(cac.contains("<meta name=\"cacbridge-challenge\" content=\""));

    let csrf = csrf_of(&body);
    let out = client
        .post(format!("{origin}/logout"))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .unwrap();
    assert!(out.url().path().ends_with("/login"));
    let account = client.get(format!("{origin}/account")).send().unwrap();
    assert!(account.url().path().ends_with("/login"), "logged out");
    let _ = server.kill();
    let _ = server.wait();
}

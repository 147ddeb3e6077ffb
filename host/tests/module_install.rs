//! `cacbridge-host install` registers the PKCS#11 module where browsers look, checked with
//! NSS's own tools on the real stack: Chrome's shared NSS database lists the card's
//! certificates through it, an existing module entry survives install and uninstall, and a
//! database owned by someone else is reported, not changed.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::Command;

use cacbridge_testbed::{lock, VirtualCard};
use common::HOST;

const OPENSC: &str = "/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so";

fn host(home: &Path, command: &str) -> String {
    let out = Command::new(HOST)
        .args(command.split(' '))
        .env("HOME", home)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn nss(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

#[test]
#[ignore = "needs pcscd and virtual cards: run scripts/test"]
fn install_registers_the_module_for_chrome_and_firefox_and_uninstall_removes_only_it() {
    let _guard = lock();
    let card = VirtualCard::insert("doe", 0);
    let home = tempfile::tempdir().unwrap();
    let database = format!("sql:{}", home.path().join(".pki/nssdb").display());
    // Someone registered OpenSC before: it must survive, and doctor must warn about it.
    std::fs::create_dir_all(home.path().join(".pki/nssdb")).unwrap();
    nss("certutil", &["-N", "-d", &database, "--empty-password"]);
    nss(
        "modutil",
        &[
            "-dbdir", &database, "-add", "OpenSC", "-libfile", OPENSC, "-force",
        ],
    );

    let said = host(home.path(), "install");
    assert!(
        said.contains("registered for Chrome and Chromium"),
        "{said}"
    );
    // NSS loads the module from Chrome's database and finds the card's certificates.
    let listed = nss("certutil", &["-L", "-h", "all", "-d", &database]);
    assert!(listed.contains("DOE.JOHN.A.1234567890:"), "{listed}");
    let modules = std::fs::read_to_string(home.path().join(".pki/nssdb/pkcs11.txt")).unwrap();
    assert!(
        modules.contains("name=CAC Bridge") && modules.contains("name=OpenSC"),
        "{modules}"
    );
    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(home.path().join(".mozilla/pkcs11-modules/cacbridge.json"))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(manifest["type"], "pkcs11");
    assert!(Path::new(manifest["path"].as_str().unwrap()).is_file());

    let doctor = host(home.path(), "doctor");
    assert!(doctor.contains("ok    Chrome/Chromium"), "{doctor}");
    assert!(doctor.contains("WARN  OpenSC is registered in"), "{doctor}");

    // Installing again changes nothing.
    assert!(host(home.path(), "install").contains("already registered"));
    let library = |home: &Path| {
        let modules = std::fs::read_to_string(home.join(".pki/nssdb/pkcs11.txt")).unwrap();
        let block = modules
            .split("\n\n")
            .find(|b| b.contains("name=CAC Bridge"))
            .unwrap()
            .to_owned();
        block
            .lines()
            .find_map(|l| l.strip_prefix("library="))
            .unwrap()
            .to_owned()
    };
    assert!(
        library(home.path()).ends_with("/libcacbridge_pkcs11_browser.so"),
        "CAC Bridge's window by default"
    );
    // For a browser without the extension: the module under its own name, the browser's
    // own PIN prompt.
    host(home.path(), "install --browser-prompt");
    assert!(library(home.path()).ends_with("/libcacbridge_pkcs11.so"));
    let listed = nss("certutil", &["-L", "-h", "all", "-d", &database]);
    assert!(listed.contains("DOE.JOHN.A.1234567890:"), "{listed}");

    let said = host(home.path(), "uninstall");
    assert!(said.contains("module removed"), "{said}");
    let modules = std::fs::read_to_string(home.path().join(".pki/nssdb/pkcs11.txt")).unwrap();
    assert!(!modules.contains("name=CAC Bridge"), "{modules}");
    assert!(
        modules.contains("name=OpenSC"),
        "the other module stays: {modules}"
    );
    assert!(!home
        .path()
        .join(".mozilla/pkcs11-modules/cacbridge.json")
        .exists());
    drop(card);
}

#[test]
#[ignore = "needs pcscd and virtual cards: run scripts/test"]
fn a_database_owned_by_someone_else_is_reported_and_left_alone() {
    let _guard = lock();
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join(".pki/nssdb");
    std::fs::create_dir_all(&dir).unwrap();
    nss(
        "certutil",
        &[
            "-N",
            "-d",
            &format!("sql:{}", dir.display()),
            "--empty-password",
        ],
    );
    let before = std::fs::read(dir.join("pkcs11.txt")).unwrap();
    // Tests run as root: hand the database to "nobody", as a root-owned one would be to a user.
    let chown = Command::new("chown")
        .args(["-R", "65534:65534"])
        .arg(&dir)
        .status()
        .unwrap();
    assert!(chown.success());
    let said = host(home.path(), "install");
    assert!(said.contains("belongs to another user"), "{said}");
    assert_eq!(
        std::fs::read(dir.join("pkcs11.txt")).unwrap(),
        before,
        "not changed"
    );
}

#[test]
fn doctor_explains_snap_and_flatpak_browsers_found_under_a_fake_root() {
    let root = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    for path in ["snap/bin/firefox", "snap/bin/chromium"] {
        let file = root.path().join(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, "").unwrap();
    }
    std::fs::create_dir_all(root.path().join("var/lib/flatpak/app/org.mozilla.firefox")).unwrap();
    let out = Command::new(HOST)
        .args(["doctor", "--root"])
        .arg(root.path())
        .env("HOME", home.path())
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    for expected in [
        "NOTE  Firefox is a Snap",
        "after a one-time prompt",
        "NOTE  Chromium is a Snap: it has no native messaging",
        "NOTE  Firefox is a Flatpak (org.mozilla.firefox)",
    ] {
        assert!(said.contains(expected), "{expected:?} missing:\n{said}");
    }
    // On this machine's own root (Debian's packages), no such note.
    let plain = Command::new(HOST)
        .arg("doctor")
        .env("HOME", home.path())
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&plain.stdout).contains("is a Snap"));
}

#[test]
#[ignore = "needs pcscd and virtual cards: run scripts/test"]
fn doctor_fix_rewrites_stale_manifests_returns_a_root_made_database_and_drops_a_second_module() {
    let _guard = lock();
    let home = tempfile::tempdir().unwrap();
    host(home.path(), "install");
    let database = format!("sql:{}", home.path().join(".pki/nssdb").display());
    // A manifest left pointing at a host that moved.
    let manifest = home
        .path()
        .join(".config/chromium/NativeMessagingHosts/org.cacbridge.host.json");
    let text = std::fs::read_to_string(&manifest).unwrap();
    let path = serde_json::from_str::<serde_json::Value>(&text).unwrap()["path"]
        .as_str()
        .unwrap()
        .to_owned();
    std::fs::write(&manifest, text.replace(&path, "/opt/old/cacbridge-host")).unwrap();
    // OpenSC registered beside CAC Bridge: the card twice.
    nss(
        "modutil",
        &[
            "-dbdir", &database, "-add", "OpenSC", "-libfile", OPENSC, "-force",
        ],
    );
    // The home belongs to someone; its database was made by root (`sudo certutil`).
    let someone = 4242;
    std::os::unix::fs::chown(home.path(), Some(someone), Some(someone)).unwrap();

    let said = host(home.path(), "doctor --fix");
    assert!(
        said.contains("fixed: ") && said.contains("manifest(s) written"),
        "{said}"
    );
    let fixed: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&manifest).unwrap()).unwrap();
    assert_eq!(fixed["path"], path.as_str(), "{said}");
    assert!(said.contains("OpenSC"), "{said}");
    let modules = std::fs::read_to_string(home.path().join(".pki/nssdb/pkcs11.txt")).unwrap();
    assert!(!modules.contains("name=OpenSC"), "{modules}");
    assert!(modules.contains("name=CAC Bridge"), "{modules}");
    use std::os::unix::fs::MetadataExt as _;
    for file in ["cert9.db", "key4.db", "pkcs11.txt"] {
        let owner = std::fs::metadata(home.path().join(".pki/nssdb").join(file))
            .unwrap()
            .uid();
        assert_eq!(owner, someone, "{file}: {said}");
    }
    // Run again: nothing left to fix.
    std::os::unix::fs::chown(home.path(), Some(0), Some(0)).unwrap();
    for file in ["", "cert9.db", "key4.db", "pkcs11.txt"] {
        let _ =
            std::os::unix::fs::chown(home.path().join(".pki/nssdb").join(file), Some(0), Some(0));
    }
    let again = host(home.path(), "doctor --fix");
    assert!(again.contains("nothing to fix"), "{again}");
}

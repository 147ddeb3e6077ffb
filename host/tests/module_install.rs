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
    run_host(Command::new(HOST), home, command)
}

/// `program` (the host, or a launcher that runs it) with `command`'s words and `home`; its
/// output, once it succeeded.
fn run_host(mut program: Command, home: &Path, command: &str) -> String {
    let out = program
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

/// A new, empty NSS database where Chrome looks in `home`; its `sql:` name.
fn new_database(home: &Path) -> String {
    let dir = home.join(".pki/nssdb");
    std::fs::create_dir_all(&dir).unwrap();
    let database = format!("sql:{}", dir.display());
    nss("certutil", &["-N", "-d", &database, "--empty-password"]);
    database
}

/// Register OpenSC in `database`, as a person who used it before would have.
fn add_opensc(database: &str) {
    nss(
        "modutil",
        &[
            "-dbdir", database, "-add", "OpenSC", "-libfile", OPENSC, "-force",
        ],
    );
}

#[test]
#[ignore = "needs pcscd and virtual cards: run scripts/test"]
fn install_registers_the_module_for_chrome_and_firefox_and_uninstall_removes_only_it() {
    let _guard = lock();
    let card = VirtualCard::insert("doe", 0);
    let home = tempfile::tempdir().unwrap();
    // Someone registered OpenSC before: it must survive, and doctor must warn about it.
    let database = new_database(home.path());
    add_opensc(&database);

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

/// `cacbridge-host COMMAND` run as `uid` (what the person runs, without sudo).
fn host_as(uid: u32, home: &Path, command: &str) -> String {
    let mut setpriv = Command::new("setpriv");
    setpriv.args([
        format!("--reuid={uid}"),
        format!("--regid={uid}"),
        "--clear-groups".into(),
        HOST.into(),
    ]);
    run_host(setpriv, home, command)
}

fn chown_all(path: &Path, uid: u32) {
    let status = Command::new("chown")
        .args(["-R", "--no-dereference", &format!("{uid}:{uid}")])
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success());
}

fn owner(path: &Path) -> u32 {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::symlink_metadata(path).unwrap().uid()
}

#[test]
#[ignore = "needs pcscd and virtual cards: run scripts/test"]
fn doctor_fix_as_root_on_a_users_home_gives_files_back_and_loads_and_follows_nothing() {
    let _guard = lock();
    let home = tempfile::tempdir().unwrap();
    host(home.path(), "install");
    let nssdb = home.path().join(".pki/nssdb");
    let database = format!("sql:{}", nssdb.display());
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
    add_opensc(&database);
    // The user's own library, listed a second time under OpenSC's name (the review's H1): NSS
    // would run its constructor as whoever opens the database.
    let hostile = home.path().join("hostile.so");
    let marker = std::env::temp_dir().join(format!("cacbridge-h1-{}", std::process::id()));
    let _ = std::fs::remove_file(&marker);
    let source = home.path().join("hostile.c");
    std::fs::write(
        &source,
        format!(
            "#include <stdio.h>\n#include <unistd.h>\n\
             __attribute__((constructor)) static void ran(void) {{\n\
             FILE *f = fopen({marker:?}, \"a\"); if (f) {{ fprintf(f, \"uid %d\\n\", (int)getuid()); fclose(f); }} }}\n"
        ),
    )
    .unwrap();
    let built = Command::new("gcc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(&hostile)
        .arg(&source)
        .status()
        .unwrap();
    assert!(built.success());
    let mut modules = std::fs::read_to_string(nssdb.join("pkcs11.txt")).unwrap();
    modules.push_str(&format!(
        "\nlibrary={}\nname=OpenSC 2\nNSS=trustOrder=100\n",
        hostile.display()
    ));
    std::fs::write(nssdb.join("pkcs11.txt"), modules).unwrap();

    // Everything is the person's (uid 4242), but the database: made by root (`sudo certutil`).
    let someone = 4242;
    chown_all(home.path(), someone);
    for file in ["", "cert9.db", "key4.db", "pkcs11.txt"] {
        std::os::unix::fs::chown(nssdb.join(file), Some(0), Some(0)).unwrap();
    }
    // A root-owned secret the person links into their home (the review's H2): a manifest
    // path made a link to it.
    let secret_dir = tempfile::tempdir().unwrap();
    let secret = secret_dir.path().join("secret");
    std::fs::write(&secret, "root's").unwrap();
    let firefox_manifest = home
        .path()
        .join(".mozilla/native-messaging-hosts/org.cacbridge.host.json");
    std::fs::remove_file(&firefox_manifest).unwrap();
    std::os::unix::fs::symlink(&secret, &firefox_manifest).unwrap();

    // Root, with the person's HOME (`sudo -E cacbridge-host doctor --fix`).
    let said = host(home.path(), "doctor --fix");
    for file in ["", "cert9.db", "key4.db", "pkcs11.txt"] {
        assert_eq!(owner(&nssdb.join(file)), someone, "{file}: {said}");
    }
    assert!(
        said.contains("run `cacbridge-host doctor --fix` as that user"),
        "{said}"
    );
    assert!(!marker.exists(), "the user's library ran as root: {said}");
    assert_eq!(
        std::fs::read_to_string(&secret).unwrap(),
        "root's",
        "{said}"
    );
    assert_eq!(owner(&secret), 0);
    let modules = std::fs::read_to_string(nssdb.join("pkcs11.txt")).unwrap();
    assert!(
        modules.contains("name=OpenSC\n"),
        "modutil ran as root: {said}"
    );
    assert!(!said.contains("manifest(s) written"), "{said}");
    // `install` as root on that home is refused as well.
    let refused = Command::new(HOST)
        .arg("install")
        .env("HOME", home.path())
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("run this as that user"));

    // Links in the database are not followed: cert9.db made a link to a root-owned file.
    std::os::unix::fs::chown(nssdb.join("key4.db"), Some(0), Some(0)).unwrap();
    let cert9 = nssdb.join("cert9.db");
    let kept = home.path().join("cert9.kept");
    std::fs::rename(&cert9, &kept).unwrap();
    std::os::unix::fs::symlink(&secret, &cert9).unwrap();
    let said = host(home.path(), "doctor --fix");
    assert_eq!(owner(&secret), 0, "followed the link: {said}");
    assert!(
        said.contains("cert9.db is a symbolic link: left alone"),
        "{said}"
    );
    assert_eq!(owner(&nssdb.join("key4.db")), someone, "{said}");
    std::fs::remove_file(&cert9).unwrap();
    std::fs::rename(&kept, &cert9).unwrap();
    std::fs::remove_file(&firefox_manifest).unwrap();

    // The person runs it: the manifests are rewritten and the second modules go, in their own
    // process (their library runs as them, as it would in their browser).
    let said = host_as(someone, home.path(), "doctor --fix");
    assert!(said.contains("manifest(s) written"), "{said}");
    // ... and the DoD roots their Chrome lacked are trusted, each named with its fingerprint.
    let root3 = &cacbridge_cert::dod_roots()[0];
    assert!(
        said.contains(&format!(
            "{} trusted for web sites (SHA-256 {})",
            root3.name, root3.sha256
        )),
        "{said}"
    );
    let fixed: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&manifest).unwrap()).unwrap();
    assert_eq!(fixed["path"], path.as_str(), "{said}");
    let modules = std::fs::read_to_string(nssdb.join("pkcs11.txt")).unwrap();
    assert!(!modules.contains("name=OpenSC\n"), "{modules}");
    assert!(modules.contains("name=CAC Bridge"), "{modules}");
    if let Ok(ran) = std::fs::read_to_string(&marker) {
        assert!(!ran.contains("uid 0"), "{ran}");
    }
    let _ = std::fs::remove_file(&marker);
}

#[test]
#[ignore = "needs pcscd and virtual cards: run scripts/test"]
fn the_first_start_from_a_chrome_family_browser_registers_the_module_once() {
    use common::{HostProcess, CHROME_ORIGIN};
    let _guard = lock();
    let home = tempfile::tempdir().unwrap();
    // The host's state directory is the default one, under this home.
    let state = home.path().join(".local/state");
    let env = [("HOME", home.path().to_str().unwrap())];
    // The person's own second module, registered before.
    let database = new_database(home.path());
    add_opensc(&database);
    let browser_setup = || {
        let mut host = HostProcess::spawn_with_env(&[CHROME_ORIGIN], "debug", &env);
        let reply = host.call("1", "browser-setup", serde_json::json!({}));
        host.close_stdin();
        host.wait();
        reply["result"].clone()
    };

    // A person's Chromium starts the host for the first time: the module goes in, and since
    // this "browser" (the test) started before that, it must be restarted to load it.
    let setup = browser_setup();
    assert_eq!(setup["tlsModule"], true, "{setup}");
    assert_eq!(setup["moduleNeedsRestart"], true, "{setup}");
    let listed = nss("modutil", &["-dbdir", &database, "-list"]);
    assert!(listed.contains("CAC Bridge"), "{listed}");
    assert!(
        listed.contains("libcacbridge_pkcs11_browser.so"),
        "{listed}"
    );

    // The next start registers nothing twice.
    browser_setup();
    let again = nss("modutil", &["-dbdir", &database, "-list"]);
    assert_eq!(again.matches("CAC Bridge").count(), 1, "{again}");

    // The package's removal runs this for every user, as that user: the first start's
    // registration and marker go, the person's own OpenSC stays.
    let said = host(home.path(), "uninstall --first-start");
    assert!(said.contains("CAC Bridge's module removed"), "{said}");
    let after = nss("modutil", &["-dbdir", &database, "-list"]);
    assert!(!after.contains("CAC Bridge"), "{after}");
    assert!(after.contains("OpenSC"), "{after}");
    assert!(!state.join("cacbridge/module-registered").exists());
    assert_eq!(host(home.path(), "uninstall --first-start"), "");

    // Installed again, the first start registers it again.
    assert_eq!(browser_setup()["tlsModule"], true);

    // The person takes the module out: it stays out at the next start.
    host(home.path(), "uninstall");
    let setup = browser_setup();
    assert_eq!(setup["tlsModule"], false, "{setup}");
    assert!(!nss("modutil", &["-dbdir", &database, "-list"]).contains("CAC Bridge"));

    // Firefox's start registers nothing in Chrome's database (Firefox has its own way).
    let other = tempfile::tempdir().unwrap();
    let mut firefox = HostProcess::spawn_with_env(
        &[
            "/usr/lib/mozilla/native-messaging-hosts/org.cacbridge.host.json",
            "cacbridge@cacbridge.app",
        ],
        "debug",
        &[("HOME", other.path().to_str().unwrap())],
    );
    firefox.assert_version_works("1");
    firefox.close_stdin();
    firefox.wait();
    assert!(!other.path().join(".pki").exists());
}

#[test]
#[ignore = "needs NSS's tools (libnss3-tools): run scripts/test"]
fn the_dod_roots_are_trusted_for_web_sites_only_and_only_cac_bridges_are_taken_out() {
    use common::{HostProcess, CHROME_ORIGIN};
    let home = tempfile::tempdir().unwrap();
    let state = home.path().join("state");
    let env = [
        ("HOME", home.path().to_str().unwrap()),
        ("XDG_STATE_HOME", state.to_str().unwrap()),
    ];
    // The person trusted DoD Root CA 3 themselves before (DISA's InstallRoot, say).
    let database = new_database(home.path());
    let root3 = cacbridge_cert::dod_roots()
        .into_iter()
        .find(|r| r.name == "DoD Root CA 3")
        .unwrap();
    let file = home.path().join("root3.der");
    std::fs::write(&file, &root3.der).unwrap();
    nss(
        "certutil",
        &[
            "-A",
            "-d",
            &database,
            "-n",
            "DoD Root CA 3",
            "-t",
            "CT,C,C",
            "-i",
            file.to_str().unwrap(),
        ],
    );

    let mut host = HostProcess::spawn_with_env(&[CHROME_ORIGIN], "debug", &env);
    let before = host.call("1", "dod-roots", serde_json::json!({}));
    let roots = before["result"]["roots"].as_array().unwrap().clone();
    assert_eq!(roots.len(), 4, "{before}");
    assert_eq!(roots[0]["name"], "DoD Root CA 3");
    assert_eq!(roots[0]["sha256"], root3.sha256);
    assert_eq!(roots[0]["trusted"], true);
    assert_eq!(roots[0]["addedByCacBridge"], false);
    assert!(roots[1..].iter().all(|r| r["trusted"] == false), "{before}");

    let trusted = host.call("2", "trust-dod-roots", serde_json::json!({"trust": true}));
    assert_eq!(trusted["result"]["changed"], 3, "{trusted}");
    let listing = nss("certutil", &["-L", "-d", &database]);
    for n in 4..=6 {
        // Web sites only: C in the SSL column, nothing for e-mail or code signing.
        let line = listing
            .lines()
            .find(|l| l.starts_with(&format!("DoD Root CA {n}")))
            .unwrap_or_else(|| panic!("{listing}"));
        assert!(line.trim_end().ends_with("C,,"), "{line}");
    }
    let setup = host.call("3", "browser-setup", serde_json::json!({}));
    assert_eq!(setup["result"]["dodRoots"], true, "{setup}");

    // Taken out again: CAC Bridge's three, not the person's own.
    let removed = host.call("4", "trust-dod-roots", serde_json::json!({"trust": false}));
    assert_eq!(removed["result"]["changed"], 3, "{removed}");
    let listing = nss("certutil", &["-L", "-d", &database]);
    assert!(listing.contains("DoD Root CA 3"), "{listing}");
    assert!(!listing.contains("DoD Root CA 4"), "{listing}");
    let bad = host.call("5", "trust-dod-roots", serde_json::json!({"trust": "yes"}));
    assert_eq!(bad["error"]["code"], "invalid-argument", "{bad}");
    host.close_stdin();
    host.wait();
}

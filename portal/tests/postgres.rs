//! Several portal instances on one PostgreSQL database, crash safety on both databases, and the
//! password throttle's writes and races on both. Ignored by a plain `cargo test`;
//! scripts/test runs them.
#![allow(clippy::unwrap_used)]

mod guide;

use cacbridge_testbed::PostgresServer;
use guide::*;

/// Two portal instances on one PostgreSQL database, as behind a load balancer: one public
/// origin (A's), one TLS certificate, and whatever a browser did at one is known at the other.
fn two_instances(db: &PostgresServer) -> (Portal, Portal) {
    let a = Portal::launch(
        tempfile::tempdir().unwrap(),
        &[],
        &["--database".into(), db.url.clone()],
        &[],
    );
    let b = Portal::launch(
        tempfile::tempdir().unwrap(),
        &[],
        &[
            "--database".into(),
            db.url.clone(),
            "--origin".into(),
            a.origin.clone(),
            "--tls-cert".into(),
            a._data.path().join("portal-cert.pem").display().to_string(),
            "--tls-key".into(),
            a._data.path().join("portal-key.pem").display().to_string(),
        ],
        &[],
    );
    (a, b)
}

#[test]
#[ignore = "needs pcscd, virtual cards and PostgreSQL: run scripts/test"]
fn two_instances_on_postgresql_share_challenges_sessions_and_registrations() {
    let _guard = lock();
    let card = VirtualCard::insert("doe", 0);
    let db = PostgresServer::start();
    let (a, b) = two_instances(&db);
    assert_ne!(a.origin, b.origin, "two servers");
    let mut host = Host::start();
    // One browser (one cookie jar: cookies do not tell ports apart), at either instance.
    let at_a = a.browser();
    let at_b = Browser {
        client: at_a.client.clone(),
        origin: b.origin.clone(),
    };
    // A session made at A is valid at B.
    assert_eq!(at_a.login("demo", "demo-password").status, StatusCode::OK);
    let account = at_b.get("/account");
    assert!(account.body.contains("My Account"), "{}", account.body);

    // A's page, challenge and CSRF token, submitted to B: B consumes A's challenge.
    let page = at_a.get("/account/cac");
    let token = host.token(&card, &a.origin, &page.challenge());
    let form = [
        ("csrf", page.csrf()),
        ("cacbridge_challenge", page.challenge()),
        ("cacbridge_token", token),
        ("password", "demo-password".to_owned()),
    ];
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let registered = at_b.post("/account/cac/register", &form);
    assert_eq!(registered.status, StatusCode::OK, "{}", registered.body);
    assert!(registered
        .body
        .contains("<dd id=\"confirmation-edipi\">1234567890</dd>"));
    // The registration made at B is visible at A at once.
    let listed = at_a.get("/account/cac");
    assert!(
        listed.body.contains("<td class=\"edipi\">1234567890</td>"),
        "{}",
        listed.body
    );
    // The same form again, at either instance: the challenge was used.
    for (name, at) in [("A", &at_a), ("B", &at_b)] {
        let replay = at.post("/account/cac/register", &form);
        assert_eq!(replay.status, StatusCode::FORBIDDEN, "replay at {name}");
        assert!(
            replay.body.contains("already used"),
            "replay at {name}: {}",
            replay.body
        );
    }
    assert_eq!(db.query("SELECT count(*) FROM registrations"), "1");
    assert_eq!(
        db.query("SELECT count(*) FROM account_events WHERE what LIKE 'CAC registered%'"),
        "1"
    );
}

/// `kill -9` of a portal inside a registration's transaction (held open by the fault
/// injection pause) leaves neither the registration nor its history entry; the portal started
/// again registers the card.
fn killed_mid_registration_leaves_nothing_half_written(
    database: Option<&PostgresServer>,
    count: &dyn Fn(&Portal, &str) -> String,
) {
    let card = VirtualCard::insert("doe", 0);
    let data = tempfile::tempdir().unwrap();
    let args: Vec<String> = database
        .map(|db| vec!["--database".into(), db.url.clone()])
        .unwrap_or_default();
    let mut portal = Portal::launch(
        data,
        &[],
        &args,
        &[("CACBRIDGE_PORTAL_FAULT_REGISTRATION_PAUSE_MS", "5000")],
    );
    let mut host = Host::start();
    let browser = portal.browser();
    browser.login("demo", "demo-password");
    let page = browser.get("/account/cac");
    let token = host.token(&card, &browser.origin, &page.challenge());
    let (csrf, challenge) = (page.csrf(), page.challenge());
    let submit = std::thread::spawn(move || {
        browser
            .client
            .post(format!("{}/account/cac/register", browser.origin))
            .form(&[
                ("csrf", csrf.as_str()),
                ("cacbridge_challenge", challenge.as_str()),
                ("cacbridge_token", token.as_str()),
                ("password", "demo-password"),
            ])
            .send()
    });
    // The registration is inside its transaction, paused between its two writes.
    std::thread::sleep(std::time::Duration::from_millis(2500));
    portal.kill();
    assert!(
        submit.join().unwrap().is_err(),
        "no answer from a killed portal"
    );
    assert_eq!(count(&portal, "registrations"), "0", "no registration row");
    assert_eq!(count(&portal, "account_events"), "0", "no history row");

    // Started again on the same database (no pause): the card registers, once.
    let portal = portal.relaunch(&args);
    let browser = portal.browser();
    browser.login("demo", "demo-password");
    let registered = register(&browser, &mut host, &card, "demo-password");
    assert_eq!(registered.status, StatusCode::OK, "{}", registered.body);
    assert_eq!(count(&portal, "registrations"), "1");
    assert_eq!(count(&portal, "account_events"), "1");
}

#[test]
#[ignore = "needs pcscd, virtual cards and PostgreSQL: run scripts/test"]
fn kill_9_mid_registration_leaves_no_half_written_rows_on_postgresql_or_sqlite() {
    let _guard = lock();
    let db = PostgresServer::start();
    killed_mid_registration_leaves_nothing_half_written(Some(&db), &|_, table| {
        db.query(&format!("SELECT count(*) FROM {table}"))
    });
    killed_mid_registration_leaves_nothing_half_written(None, &|portal, table| {
        let conn = rusqlite::Connection::open(portal._data.path().join("portal.db")).unwrap();
        conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| {
            r.get::<_, i64>(0)
        })
        .unwrap()
        .to_string()
    });
}

/// The account throttle's writes, the same on both databases: failures count up, the
/// `lock_after`-th locks (the streak restarts, the lock's time is kept), no write shortens a
/// stored wait, and a failure after a lock counts again without touching the lock's record.
async fn account_failures_count_and_lock(db: &cacbridge_portal::db::Db) {
    let id = db.create_user("throttled", "hash", 1000).await.unwrap();
    let retry_at = |failures: u32| 5000 + i64::from(failures);
    let failure = |now| cacbridge_portal::db::PasswordFailure {
        now,
        retry_at: &retry_at,
        lock_after: 3,
        lock_seconds: 900,
    };
    let mut user = db.user_by_id(id).await.unwrap().unwrap();
    let mut seen = Vec::new();
    for now in [2000, 2001, 2002, 2003] {
        user = db
            .password_failed(&user, user.failed_logins, 7, &failure(now))
            .await
            .unwrap();
        seen.push((
            user.failed_logins,
            user.retry_at,
            user.locked_until,
            user.last_locked_at,
        ));
    }
    assert_eq!(
        seen,
        [
            (1, 5001, 0, None),
            (2, 5002, 0, None),
            // A stored wait is never shortened: the lock's own end (2902) is earlier than
            // the wait already stored (5002).
            (0, 5002, 2902, Some(2002)),
            (1, 5002, 2902, Some(2002)),
        ],
        "{}",
        db.kind()
    );
}

/// One guess per account in flight: a claimed slot refuses a second claim, the failure written
/// under it frees it, a wait already stored is never shortened, and a released slot is free.
async fn one_attempt_slot_per_account(db: &cacbridge_portal::db::Db) {
    let id = db.create_user("slotted", "hash", 1000).await.unwrap();
    let retry_at = |failures: u32| 3000 + i64::from(failures);
    let failure = cacbridge_portal::db::PasswordFailure {
        now: 2000,
        retry_at: &retry_at,
        lock_after: 10,
        lock_seconds: 900,
    };
    assert_eq!(
        db.claim_password_attempt(id, 2000, 11, 2030).await.unwrap(),
        Some(0)
    );
    assert_eq!(
        db.claim_password_attempt(id, 2000, 12, 2030).await.unwrap(),
        None
    );
    let user = db.user_by_id(id).await.unwrap().unwrap();
    let user = db.password_failed(&user, 0, 11, &failure).await.unwrap();
    assert_eq!(
        (user.failed_logins, user.retry_at),
        (1, 3001),
        "{}",
        db.kind()
    );
    // Waiting until 3001: no slot before then.
    assert_eq!(
        db.claim_password_attempt(id, 3000, 13, 3030).await.unwrap(),
        None
    );
    assert_eq!(
        db.claim_password_attempt(id, 3001, 13, 3031).await.unwrap(),
        Some(1)
    );
    // A late write computed from a lower count cannot shorten the stored wait.
    let shorter = |_: u32| 2500;
    let late = cacbridge_portal::db::PasswordFailure {
        retry_at: &shorter,
        ..failure
    };
    let user = db.password_failed(&user, 0, 99, &late).await.unwrap();
    assert_eq!(user.retry_at, 3001, "{}", db.kind());
    assert_eq!(
        db.claim_password_attempt(id, 3001, 14, 3031).await.unwrap(),
        None,
        "13 still holds it"
    );
    db.release_password_attempt(id, 13).await.unwrap();
    assert_eq!(
        db.claim_password_attempt(id, 3001, 14, 3031).await.unwrap(),
        Some(1)
    );
    // A slot left by a crashed instance frees itself at its end.
    assert_eq!(
        db.claim_password_attempt(id, 3031, 15, 3061).await.unwrap(),
        Some(1)
    );
}

#[test]
#[ignore = "needs PostgreSQL: run scripts/test"]
fn the_account_throttle_writes_the_same_on_postgresql_and_sqlite() {
    let pg = PostgresServer::start();
    let sqlite = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        for location in [
            pg.url.clone(),
            sqlite.path().join("portal.db").display().to_string(),
        ] {
            let db = cacbridge_portal::db::Db::open(&location).await.unwrap();
            account_failures_count_and_lock(&db).await;
            one_attempt_slot_per_account(&db).await;
        }
    });
}

/// 40 wrong passwords for one account sent at once, spread over `portals`: each guess the
/// portals checked is counted, and one at a time is checked (the review's M1: all 40 were
/// checked, the count read before Argon2 went up by one). `failures` reads the account's
/// failures since its last login.
fn a_burst_of_guesses_is_checked_one_at_a_time(portals: &[&Portal], failures: &dyn Fn() -> String) {
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(40));
    let guesses: Vec<_> = (0..40)
        .map(|i| {
            let browser = portals[i % portals.len()].browser();
            let barrier = std::sync::Arc::clone(&barrier);
            std::thread::spawn(move || {
                let page = browser.get("/login");
                let form = [
                    ("csrf", page.csrf()),
                    ("username", "demo".to_owned()),
                    ("password", format!("wrong-guess-{i}")),
                ];
                let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
                barrier.wait();
                browser.post("/login", &form).status
            })
        })
        .collect();
    let statuses: Vec<StatusCode> = guesses.into_iter().map(|g| g.join().unwrap()).collect();
    let checked = statuses
        .iter()
        .filter(|s| **s == StatusCode::UNAUTHORIZED)
        .count();
    let refused = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!(checked + refused, 40, "{statuses:?}");
    assert_eq!(
        failures(),
        checked.to_string(),
        "every checked guess counted"
    );
    // One in flight at a time, and waits after the account's 3 free failures: a burst gets
    // only a few guesses checked.
    assert!(
        (1..=3).contains(&checked),
        "{checked} checked: {statuses:?}"
    );
}

#[test]
#[ignore = "needs PostgreSQL: run scripts/test"]
fn a_burst_of_wrong_passwords_cannot_race_the_lockout_on_sqlite_or_two_postgresql_instances() {
    let _guard = lock();
    let sqlite = Portal::start();
    a_burst_of_guesses_is_checked_one_at_a_time(&[&sqlite], &|| {
        let conn = rusqlite::Connection::open(sqlite._data.path().join("portal.db")).unwrap();
        conn.query_row(
            "SELECT failures_since_login FROM users WHERE username = 'demo'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .unwrap()
        .to_string()
    });
    let db = PostgresServer::start();
    let (a, b) = two_instances(&db);
    a_burst_of_guesses_is_checked_one_at_a_time(&[&a, &b], &|| {
        db.query("SELECT failures_since_login FROM users WHERE username = 'demo'")
    });
}

//! The portal under abuse, without a card: password guessing (per address and per account,
//! 429 with Retry-After, the lock and what its owner sees), anonymous page views that cost no
//! state, and the cookies and headers.
#![allow(clippy::unwrap_used)]

mod common;

use common::{field, loopback, Portal};
use reqwest::blocking::{Client, Response};

fn login(portal: &Portal, client: &Client, username: &str, password: &str) -> Response {
    let page = client
        .get(format!("{}/login", portal.origin))
        .send()
        .unwrap()
        .text()
        .unwrap();
    client
        .post(format!("{}/login", portal.origin))
        .form(&[
            ("csrf", field(&page, "csrf").as_str()),
            ("username", username),
            ("password", password),
        ])
        .send()
        .unwrap()
}

fn retry_after(response: &Response) -> Option<i64> {
    response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

/// Time passes for the account's back-off, without the test waiting for it.
fn let_backoff_pass(portal: &Portal) {
    portal
        .db()
        .execute("UPDATE users SET retry_at = 0 WHERE locked_until = 0", [])
        .unwrap();
}

#[test]
fn one_address_guessing_many_accounts_is_slowed_down() {
    let portal = Portal::start();
    let client = portal.client_from(loopback(20));
    for n in 0..5 {
        let wrong = login(&portal, &client, &format!("nobody{n}"), "guess-guess");
        assert_eq!(wrong.status(), 401, "try {n}");
    }
    let slowed = login(&portal, &client, "nobody5", "guess-guess");
    assert_eq!(slowed.status(), 429);
    // 2 s from the fifth failure, in whole seconds: 1 or 2 left.
    assert!(matches!(retry_after(&slowed), Some(1..=2)), "{slowed:?}");
    assert!(slowed.text().unwrap().contains("Too many wrong passwords"));
    // Another address is not held up by this one.
    let other = portal.client_from(loopback(21));
    let ok = login(&portal, &other, "demo", "demo-password");
    assert!(ok.url().path().ends_with("/account"));
}

#[test]
fn one_account_guessed_from_many_addresses_backs_off_then_locks_and_its_owner_sees_it() {
    let portal = Portal::start();
    let mut address = 30;
    let mut from_new_address = |password: &str| {
        address += 1;
        let client = portal.client_from(loopback(address));
        login(&portal, &client, "demo", password)
    };
    for n in 0..3 {
        assert_eq!(from_new_address("wrong-password").status(), 401, "try {n}");
    }
    // The fourth try comes too soon, from wherever it comes: exponential back-off.
    let early = from_new_address("wrong-password");
    assert_eq!(early.status(), 429);
    assert!(matches!(retry_after(&early), Some(1..=2)), "{early:?}");
    let_backoff_pass(&portal);
    assert_eq!(from_new_address("wrong-password").status(), 401);
    let early = from_new_address("demo-password");
    assert_eq!(early.status(), 429, "even the right password waits");
    assert!(matches!(retry_after(&early), Some(3..=4)), "{early:?}");

    // The tenth wrong password in a row locks the account.
    for _ in 4..9 {
        let_backoff_pass(&portal);
        assert_eq!(from_new_address("wrong-password").status(), 401);
    }
    let_backoff_pass(&portal);
    let locked = from_new_address("wrong-password");
    assert_eq!(locked.status(), 429);
    let wait = retry_after(&locked).unwrap();
    assert!((15 * 60 - 5..=15 * 60).contains(&wait), "{wait}");
    assert!(locked.text().unwrap().contains("This account is locked"));
    let_backoff_pass(&portal);
    let still = from_new_address("demo-password");
    assert_eq!(still.status(), 429, "the lock outlasts the back-off");

    // The lock ends; the owner logs in and My Account says what happened.
    portal
        .db()
        .execute("UPDATE users SET retry_at = 0, locked_until = 0", [])
        .unwrap();
    let owner = from_new_address("demo-password");
    assert!(owner.url().path().ends_with("/account"), "{}", owner.url());
    let account = owner.text().unwrap();
    assert!(account.contains("id=\"account-locked\""), "{account}");
    assert!(account.contains("after 10 wrong passwords in a row"));
    assert!(account.contains(
        "10 wrong passwords were entered for this account before your last password login"
    ));
}

#[test]
fn anonymous_page_views_store_nothing() {
    let portal = Portal::start();
    for n in 0..50u8 {
        // Each a new visitor, as a crawler or a flood would be.
        let client = portal.client_from(loopback(100 + n % 50));
        let page = client
            .get(format!("{}/login", portal.origin))
            .send()
            .unwrap()
            .text()
            .unwrap();
        assert!(page.contains("name=\"cacbridge-challenge\""));
    }
    let sessions: i64 = portal
        .db()
        .query_row("SELECT COUNT(*) FROM sessions", [], |r| r.get(0))
        .unwrap();
    assert_eq!(sessions, 0, "no session row for anonymous views");
    // A login creates one.
    let client = portal.client_from(loopback(99));
    assert!(login(&portal, &client, "demo", "demo-password")
        .url()
        .path()
        .ends_with("/account"));
    let sessions: i64 = portal
        .db()
        .query_row("SELECT COUNT(*) FROM sessions", [], |r| r.get(0))
        .unwrap();
    assert_eq!(sessions, 1);
}

#[test]
fn cookies_are_host_prefixed_and_https_is_strict() {
    let portal = Portal::start();
    let client = portal.client_from(loopback(1));
    let page = client
        .get(format!("{}/login", portal.origin))
        .send()
        .unwrap();
    assert_eq!(
        page.headers().get("strict-transport-security").unwrap(),
        "max-age=31536000"
    );
    let visitor = page
        .headers()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(visitor.starts_with("__Host-cb_visitor="), "{visitor}");
    assert!(
        visitor.contains("Secure") && visitor.contains("Path=/") && !visitor.contains("Domain")
    );
    let body = page.text().unwrap();
    let in_ = client
        .post(format!("{}/login", portal.origin))
        .form(&[
            ("csrf", field(&body, "csrf").as_str()),
            ("username", "demo"),
            ("password", "demo-password"),
        ])
        .send()
        .unwrap();
    // The redirect was followed: the session cookie came with the 303.
    assert!(in_.url().path().ends_with("/account"));
    let db = portal.db();
    let sessions: i64 = db
        .query_row(
            "SELECT COUNT(*) FROM sessions WHERE user_id IS NOT NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(sessions, 1);
}

//! The reference portal over HTTPS, driven like a browser (cookies, forms) with tokens made by
//! the real host on virtual cards, walking the guide. Ignored by a plain `cargo test`;
//! scripts/test runs them.
#![allow(clippy::unwrap_used)]

mod guide;

use guide::*;

#[test]
#[ignore = "needs pcscd and virtual cards: run scripts/test"]
fn registration_walks_the_guide_and_prints_a_confirmation() {
    let _guard = lock();
    let card = VirtualCard::insert("doe", 0);
    let portal = Portal::start();
    let browser = portal.browser();
    let mut host = Host::start();

    let account = browser.login("demo", "demo-password");
    assert_eq!(account.status, StatusCode::OK, "{NEEDS}");
    assert!(account.url.ends_with("/account"));
    assert!(account.body.contains("My Account"));
    assert!(account.body.contains(">CAC/Certificate Registration</a>"));

    let before = browser.get("/account/cac");
    assert!(before.body.contains("id=\"no-registrations\""));
    assert!(before
        .body
        .contains("id=\"cacbridge-register-button\">Register</button>"));

    let confirmation = register(&browser, &mut host, &card, "demo-password");
    assert_eq!(confirmation.status, StatusCode::OK, "{}", confirmation.body);
    assert!(confirmation.url.contains("/account/cac/registrations/"));
    assert!(confirmation
        .body
        .contains("<dd id=\"confirmation-edipi\">1234567890</dd>"));
    assert!(confirmation.body.contains("DOE.JOHN.A.1234567890"));
    assert!(confirmation.body.contains("id=\"print\">Print</button>"));
    assert!(confirmation.body.contains("@media print"));

    let after = browser.get("/account/cac");
    assert!(after.body.contains("<td class=\"edipi\">1234567890</td>"));
}

#[test]
#[ignore = "needs pcscd and virtual cards: run scripts/test"]
fn a_revoked_cac_neither_registers_nor_logs_in() {
    let _guard = lock();
    let card = VirtualCard::insert("doe", 0);
    let browser_of = |portal: &Portal| {
        let browser = portal.browser();
        browser.login("demo", "demo-password");
        browser
    };
    let mut host = Host::start();
    // Registered while good...
    let portal = Portal::start();
    let browser = browser_of(&portal);
    let registered = register(&browser, &mut host, &card, "demo-password");
    assert_eq!(registered.status, StatusCode::OK, "{}", registered.body);
    // ...then revoked: the same database, the responder now says "revoked".
    let portal = portal.restart_revoking(&["doe"]);
    let browser = browser_of(&portal);
    let refused = register(&browser, &mut host, &card, "demo-password");
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    assert!(refused.body.contains("revoked"), "{}", refused.body);
    let anonymous = portal.browser();
    let login = cac_login(&anonymous, &mut host, &card);
    assert_eq!(login.status, StatusCode::FORBIDDEN, "{}", login.body);
    assert!(
        login.body.contains("the certificate is revoked"),
        "{}",
        login.body
    );
}

#[test]
#[ignore = "needs pcscd and virtual cards: run scripts/test"]
fn the_same_card_twice_the_wrong_password_and_a_reissued_card() {
    let _guard = lock();
    let card = VirtualCard::insert("doe", 0);
    let portal = Portal::start();
    let browser = portal.browser();
    let mut host = Host::start();
    browser.login("demo", "demo-password");

    let wrong = register(&browser, &mut host, &card, "not-the-password");
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.body.contains("The password is incorrect"));
    assert!(
        wrong.body.contains("id=\"no-registrations\""),
        "nothing was stored"
    );

    assert_eq!(
        register(&browser, &mut host, &card, "demo-password").status,
        StatusCode::OK
    );
    let again = register(&browser, &mut host, &card, "demo-password");
    assert_eq!(again.status, StatusCode::OK);
    assert!(again.body.contains("already registered to your account"));
    assert_eq!(again.body.matches("<td class=\"edipi\">").count(), 1);

    // A reissued card: same person, same EDIPI, new certificate; registered alongside.
    drop(card);
    let reissued = VirtualCard::insert("doe2", 0);
    assert_eq!(
        register(&browser, &mut host, &reissued, "demo-password").status,
        StatusCode::OK
    );
    let list = browser.get("/account/cac");
    assert_eq!(
        list.body
            .matches("<td class=\"edipi\">1234567890</td>")
            .count(),
        2
    );
}

#[test]
#[ignore = "needs pcscd and virtual cards: run scripts/test"]
fn replayed_tokens_and_tokens_for_another_origin_are_forbidden() {
    let _guard = lock();
    let card = VirtualCard::insert("doe", 0);
    let portal = Portal::start();
    let browser = portal.browser();
    let mut host = Host::start();
    browser.login("demo", "demo-password");

    let page = browser.get("/account/cac");
    let token = host.token(&card, &browser.origin, &page.challenge());
    let form = [
        ("csrf", page.csrf()),
        ("cacbridge_challenge", page.challenge()),
        ("cacbridge_token", token.clone()),
        ("password", "demo-password".into()),
    ];
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(
        browser.post("/account/cac/register", &form).status,
        StatusCode::OK
    );

    // The same token again: its challenge is spent.
    let replay = browser.post("/account/cac/register", &form);
    assert_eq!(replay.status, StatusCode::FORBIDDEN);
    assert!(replay.body.contains("403: Access Forbidden"));
    // Even with the page's new challenge, an old token does not match it.
    let fresh = browser.get("/account/cac");
    let form = [
        ("csrf", fresh.csrf()),
        ("cacbridge_challenge", fresh.challenge()),
        ("cacbridge_token", token.clone()),
        ("password", "demo-password".into()),
    ];
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let replay = browser.post("/account/cac/register", &form);
    assert_eq!(replay.status, StatusCode::FORBIDDEN);
    assert!(
        replay.body.contains("does not match this origin and nonce"),
        "{}",
        replay.body
    );

    // Bound to another origin: refused even with the right challenge.
    let page = browser.get("/account/cac");
    let foreign = host.token(&card, "https://evil.example", &page.challenge());
    let refused = browser.post(
        "/account/cac/register",
        &[
            ("csrf", &page.csrf()),
            ("cacbridge_challenge", &page.challenge()),
            ("cacbridge_token", &foreign),
            ("password", "demo-password"),
        ],
    );
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(refused
        .body
        .contains("does not match this origin and nonce"));
}

#[test]
#[ignore = "needs pcscd and virtual cards: run scripts/test"]
fn a_document_signature_replayed_as_a_login_token_is_refused() {
    let _guard = lock();
    let card = VirtualCard::insert("doe", 0);
    let portal = Portal::start();
    let browser = portal.browser();
    let mut host = Host::start();
    browser.login("demo", "demo-password");

    // Registration: the page's own challenge and origin, signed by the signing key.
    let page = browser.get("/account/cac");
    let forged = host.signature_shaped_as_token(&card, &browser.origin, &page.challenge());
    let refused = browser.post(
        "/account/cac/register",
        &[
            ("csrf", &page.csrf()),
            ("cacbridge_challenge", &page.challenge()),
            ("cacbridge_token", &forged),
            ("password", "demo-password"),
        ],
    );
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(
        refused.body.contains("document-signing certificate"),
        "{}",
        refused.body
    );
    assert!(browser
        .get("/account/cac")
        .body
        .contains("id=\"no-registrations\""));

    // With the card registered properly, the same trick still cannot log in.
    assert_eq!(
        register(&browser, &mut host, &card, "demo-password").status,
        StatusCode::OK
    );
    let other = portal.browser();
    let login = other.get("/login");
    let forged = host.signature_shaped_as_token(&card, &other.origin, &login.challenge());
    let refused = other.post(
        "/login/cac",
        &[
            ("csrf", &login.csrf()),
            ("cacbridge_challenge", &login.challenge()),
            ("cacbridge_token", &forged),
        ],
    );
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    assert!(!other.get("/account").url.ends_with("/account"));
}

#[test]
#[ignore = "needs pcscd and virtual cards: run scripts/test"]
fn cac_login_of_a_registered_card_and_linking_an_unregistered_one() {
    let _guard = lock();
    let doe = VirtualCard::insert("doe", 0);
    let smith = VirtualCard::insert("smith", 1);
    let portal = Portal::start();
    let mut host = Host::start();

    // Register doe's card, then log out.
    let browser = portal.browser();
    browser.login("demo", "demo-password");
    assert_eq!(
        register(&browser, &mut host, &doe, "demo-password").status,
        StatusCode::OK
    );
    let account = browser.get("/account");
    let out = browser.post("/logout", &[("csrf", &account.csrf())]);
    assert!(out.url.ends_with("/login"));

    // Log in with the registered card.
    let in_ = cac_login(&browser, &mut host, &doe);
    assert!(in_.url.ends_with("/account"), "{}", in_.url);
    assert!(in_.body.contains("Signed in as <strong>demo</strong>"));

    // An unregistered card asks for the password once, then registers and logs in.
    let other = portal.browser();
    let link = cac_login(&other, &mut host, &smith);
    assert_eq!(link.status, StatusCode::OK);
    assert!(link.body.contains("SMITH.JANE.1098765432"));
    let wrong = self::link(&other, &mut host, &link, &smith, "nope-nope");
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    // The password alone is not enough: the form needs a fresh proof from the card.
    let no_proof = other.post(
        "/login/cac/link",
        &[
            ("csrf", &wrong.csrf()),
            ("cacbridge_challenge", &wrong.challenge()),
            ("username", "demo"),
            ("password", "demo-password"),
        ],
    );
    assert_eq!(no_proof.status, StatusCode::FORBIDDEN);
    // Nor does another card's proof link the card that logged in.
    let relog = cac_login(&other, &mut host, &smith);
    let swapped = self::link(&other, &mut host, &relog, &doe, "demo-password");
    assert_eq!(swapped.status, StatusCode::FORBIDDEN);
    assert!(
        swapped.body.contains("not the card waiting"),
        "{}",
        swapped.body
    );
    let relog = cac_login(&other, &mut host, &smith);
    let linked = self::link(&other, &mut host, &relog, &smith, "demo-password");
    assert!(
        linked
            .body
            .contains("<dd id=\"confirmation-edipi\">1098765432</dd>"),
        "{}",
        linked.body
    );
    // The card's holder beside the account, so a mismatch shows.
    assert!(linked.body.contains(
        "The CAC of <strong id=\"confirmation-holder\">SMITH.JANE.1098765432</strong> is registered to the account <strong id=\"confirmation-account\">demo</strong>"
    ));
    // From now on that card logs in by itself.
    let third = portal.browser();
    let in_ = cac_login(&third, &mut host, &smith);
    assert!(in_.url.ends_with("/account"));
}

#[test]
#[ignore = "needs pcscd and virtual cards: run scripts/test"]
fn the_403_page_and_csrf() {
    let _guard = lock();
    let portal = Portal::start();
    let browser = portal.browser();
    let page = browser.get("/403");
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert!(page.body.contains("Clear this site"));
    assert!(page.body.contains("Close all open browser windows"));

    let forged = browser.post(
        "/login",
        &[
            ("csrf", "forged"),
            ("username", "demo"),
            ("password", "demo-password"),
        ],
    );
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    let wrong = browser.login("demo", "wrong-password");
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong
        .body
        .contains("The username or password is incorrect."));
    let no_token = browser.get("/login");
    let refused = browser.post(
        "/login/cac",
        &[
            ("csrf", &no_token.csrf()),
            ("cacbridge_challenge", &no_token.challenge()),
            ("cacbridge_token", ""),
        ],
    );
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(refused.body.contains("no CAC Bridge token arrived"));
    let no_challenge = browser.post(
        "/login/cac",
        &[("csrf", &no_token.csrf()), ("cacbridge_token", "{}")],
    );
    assert_eq!(no_challenge.status, StatusCode::FORBIDDEN);
    assert!(no_challenge
        .body
        .contains("no challenge came with the form"));
}

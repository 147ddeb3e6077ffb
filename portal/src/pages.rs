//! The portal's pages. The markup the CAC Bridge extension recognizes is documented in
//! docs/portal-integration.md: keep the two in step.

use crate::db::Registration;

/// Escape text for HTML element content and attribute values.
/// A message above a form: an error (`true`, read out at once) or a notice; nothing for none.
fn notice(message: Option<(&str, bool)>) -> String {
    match message {
        Some((text, true)) => format!(r#"<p class="error" role="alert">{}</p>"#, esc(text)),
        Some((text, false)) => format!(r#"<p class="notice" role="status">{}</p>"#, esc(text)),
        None => String::new(),
    }
}

pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = r#"
body { font-family: system-ui, sans-serif; margin: 0; color: #1b1b1b; background: #f4f5f7; }
header { background: #1f3a5f; color: #fff; padding: 0.8rem 1.5rem; display: flex; align-items: center; gap: 1.5rem; }
header h1 { font-size: 1.2rem; margin: 0; flex: 1; }
header a { color: #fff; }
header button { color: #fff; background: transparent; border: 1px solid #fff; border-radius: 3px; }
nav.menu { position: relative; }
nav.menu details summary { cursor: pointer; list-style: none; font-weight: 600; }
nav.menu details ul { position: absolute; right: 0; background: #fff; color: #1b1b1b; list-style: none; margin: 0.4rem 0 0; padding: 0.4rem 0; border: 1px solid #ccd; min-width: 16rem; }
nav.menu details li a { display: block; padding: 0.4rem 1rem; color: #1f3a5f; text-decoration: none; }
main { max-width: 56rem; margin: 2rem auto; background: #fff; padding: 1.5rem 2rem; border: 1px solid #dde; }
label { display: block; margin: 0.8rem 0 0.2rem; font-weight: 600; }
input[type=text], input[type=password] { padding: 0.4rem; width: 18rem; }
button { padding: 0.5rem 1.2rem; font-size: 1rem; cursor: pointer; }
table { border-collapse: collapse; width: 100%; margin: 1rem 0; }
th, td { text-align: left; border-bottom: 1px solid #dde; padding: 0.4rem; font-size: 0.9rem; vertical-align: top; }
.error { color: #a00; font-weight: 600; }
.notice { color: #155724; font-weight: 600; }
.confirmation dt { font-weight: 600; margin-top: 0.6rem; }
.confirmation dd { margin-left: 0; font-family: monospace; word-break: break-all; }
form.inline { display: inline; }
@media print {
  header, nav, .no-print, button { display: none !important; }
  body { background: #fff; }
  main { border: none; margin: 0; max-width: none; }
}
"#;

pub struct Layout<'a> {
    pub title: &'a str,
    pub username: Option<&'a str>,
    pub csrf: &'a str,
    /// Extra `<meta>` elements (the challenge for the extension).
    pub meta: String,
}

pub fn page(layout: &Layout<'_>, body: &str) -> String {
    let account = match layout.username {
        Some(name) => format!(
            r#"<nav class="menu"><details><summary>My Account &#9662;</summary><ul>
<li><a href="/account">Account overview</a></li>
<li><a href="/account/cac" id="menu-cac-registration">CAC/Certificate Registration</a></li>
</ul></details></nav>
<span>Signed in as <strong>{}</strong></span>
<form class="inline" method="post" action="/logout"><input type="hidden" name="csrf" value="{}"><button type="submit">Log out</button></form>"#,
            esc(name),
            esc(layout.csrf)
        ),
        None => String::new(),
    };
    format!(
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
{meta}<title>{title} - CAC Bridge Reference Portal</title>
<style>{STYLE}</style></head>
<body><header><h1>CAC Bridge Reference Portal</h1>{account}</header>
<main>{body}</main><script src="/static/portal.js"></script></body></html>"#,
        meta = layout.meta,
        title = esc(layout.title),
    )
}

pub fn challenge_meta(page_kind: &str, challenge: &str) -> String {
    format!(
        "<meta name=\"cacbridge-page\" content=\"{}\">\n<meta name=\"cacbridge-challenge\" content=\"{}\">\n",
        esc(page_kind),
        esc(challenge)
    )
}

/// The hidden field that carries a CAC form's challenge back: challenges are not stored, the
/// server checks the one the form returns (bound to the visitor).
fn challenge_field(challenge: &str) -> String {
    format!(
        r#"<input type="hidden" name="cacbridge_challenge" value="{}">"#,
        esc(challenge)
    )
}

pub fn login(csrf: &str, challenge: &str, message: Option<&str>) -> String {
    let message = notice(message.map(|m| (m, true)));
    format!(
        r#"<h2>Log in</h2>{message}
<form method="post" action="/login" id="password-login">
<input type="hidden" name="csrf" value="{csrf}">
<label for="username">Username</label><input type="text" id="username" name="username" autocomplete="username" required>
<label for="password">Password</label><input type="password" id="password" name="password" autocomplete="current-password" required>
<p><button type="submit">Log in</button></p>
</form>
<h2>Log in with CAC</h2>
<p>Insert your CAC into the reader and click the button. If your card is not registered yet,
you will be asked for your username and password once, and the card is registered to your
account.</p>
<form method="post" action="/login/cac" id="cacbridge-login">
<input type="hidden" name="csrf" value="{csrf}">
{challenge}
<input type="hidden" name="cacbridge_token" value="">
<p><button type="submit" id="cacbridge-login-button">Log in with CAC</button></p>
</form>"#,
        csrf = esc(csrf),
        challenge = challenge_field(challenge)
    )
}

pub fn account(user: &crate::db::User, registrations: usize, now: i64) -> String {
    let mut security = String::new();
    let failures = user.failures_before_login;
    if failures > 0 {
        let (noun, verb) = if failures == 1 {
            ("wrong password", "was")
        } else {
            ("wrong passwords", "were")
        };
        security.push_str(&format!(
            r#"<p class="error" id="failed-logins">{failures} {noun} {verb} entered for this account before your last password login. If that was not you, change your password.</p>"#
        ));
    }
    if let Some(locked_at) = user.last_locked_at {
        let state = if user.locked_until > now {
            format!(
                "It is locked for passwords until {}",
                format_time(user.locked_until)
            )
        } else {
            "The lock has ended".to_owned()
        };
        security.push_str(&format!(
            r#"<p class="error" id="account-locked">This account was locked on {} after {} wrong passwords in a row. {state}; your registered CAC still logs you in.</p>"#,
            esc(&format_time(locked_at)),
            crate::throttle::LOCK_AFTER_FAILURES,
        ));
    }
    format!(
        r#"<h2>Account overview</h2>
<p>Welcome, <strong>{}</strong>.</p>{security}
<p>Certificates registered to this account: {registrations}.</p>
<p>Open <strong>My Account &rarr; <a href="/account/cac">CAC/Certificate Registration</a></strong> to register your CAC.</p>"#,
        esc(&user.username)
    )
}

pub fn too_many_attempts(reason: &str) -> String {
    format!(
        r#"<h2>Too many attempts</h2>
<p class="error" role="alert" id="too-many">{}</p>
<p><a href="/login">Back to the login page</a></p>"#,
        esc(reason)
    )
}

fn registrations_table(rows: &[Registration]) -> String {
    if rows.is_empty() {
        return "<p id=\"no-registrations\">No certificate is registered to this account yet.</p>"
            .into();
    }
    let mut out = String::from(
        "<table id=\"registrations\"><thead><tr><th>Name</th><th>DoD ID (EDIPI)</th><th>Issuer</th><th>Serial</th><th>Expires</th><th>Registered</th></tr></thead><tbody>",
    );
    for r in rows {
        out.push_str(&format!(
            "<tr data-fingerprint=\"{}\"><td>{}</td><td class=\"edipi\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&r.fingerprint),
            esc(r.common_name.as_deref().unwrap_or(&r.subject)),
            esc(r.edipi.as_deref().unwrap_or("-")),
            esc(&r.issuer),
            esc(&r.serial),
            esc(r.not_after.get(..10).unwrap_or(&r.not_after)),
            esc(&format_time(r.registered_at)),
        ));
    }
    out.push_str("</tbody></table>");
    out
}

pub fn cac_registration(
    csrf: &str,
    challenge: &str,
    rows: &[Registration],
    cac_host: Option<&str>,
    message: Option<(&str, bool)>,
) -> String {
    let message = notice(message);
    // A portal with a mutual-TLS CAC host offers it too, as most CAC portals do.
    let cac_host = cac_host
        .map(|origin| {
            format!(
                r#"<h3>Or register on the CAC host</h3>
<p>Your browser presents your CAC's certificate itself: <a id="mtls-register-link" href="{}/account/cac">CAC/Certificate Registration on the CAC host</a>.</p>"#,
                esc(origin)
            )
        })
        .unwrap_or_default();
    format!(
        r#"<h2>CAC/Certificate Registration</h2>{message}
<h3>Registered certificates</h3>
{table}
<h3>Register your CAC</h3>
<p>Insert your CAC, click <strong>Register</strong>, choose your PIV Authentication
certificate and enter your PIN in the CAC Bridge window, then confirm with your account
password.</p>
<form method="post" action="/account/cac/register" id="cacbridge-register">
<input type="hidden" name="csrf" value="{csrf}">
{challenge}
<input type="hidden" name="cacbridge_token" value="">
<label for="password">Your account password</label>
<input type="password" id="password" name="password" autocomplete="current-password" required>
<p><button type="submit" id="cacbridge-register-button">Register</button></p>
</form>
{cac_host}"#,
        table = registrations_table(rows),
        csrf = esc(csrf),
        challenge = challenge_field(challenge)
    )
}

/// CAC/Certificate Registration on the mutual-TLS host: the browser already presented the
/// card's certificate in the handshake; the password confirms it.
pub fn cac_registration_mtls(
    csrf: &str,
    rows: &[Registration],
    presented: &str,
    protocol: &str,
    message: Option<(&str, bool)>,
) -> String {
    let message = notice(message);
    format!(
        r#"<h2>CAC/Certificate Registration</h2>{message}
<h3>Registered certificates</h3>
{table}
<h3>Register your CAC</h3>
<p>Your browser presented the certificate of <strong id="mtls-presented">{presented}</strong>
(in a <span id="mtls-protocol">{protocol}</span> handshake).
Confirm with your account password and click <strong>Register</strong>.</p>
<form method="post" action="/account/cac/register" id="mtls-register">
<input type="hidden" name="csrf" value="{csrf}">
<label for="password">Your account password</label>
<input type="password" id="password" name="password" autocomplete="current-password" required>
<p><button type="submit" id="mtls-register-button">Register</button></p>
</form>"#,
        table = registrations_table(rows),
        csrf = esc(csrf),
        presented = esc(presented),
        protocol = esc(protocol),
    )
}

/// The mutual-TLS host's CAC login: the card the browser presented, and the button that logs
/// in with it.
pub fn cac_login_mtls(csrf: &str, name: &str, edipi: &str) -> String {
    format!(
        r#"<h2>Log in with CAC</h2>
<p>Your browser presented the CAC of <strong>{name}</strong> (DoD ID {edipi}).</p>
<form method="post" action="/login/cac" id="mtls-login">
<input type="hidden" name="csrf" value="{csrf}">
<p><button type="submit" id="mtls-login-button">Log in with this CAC</button></p>
</form>"#,
        name = esc(name),
        edipi = esc(edipi),
        csrf = esc(csrf),
    )
}

/// The mutual-TLS host's page for a verified card that no account holds yet.
pub fn link_card_mtls(csrf: &str, name: &str, edipi: &str, message: Option<&str>) -> String {
    let message = notice(message.map(|m| (m, true)));
    format!(
        r#"<h2>Register this CAC</h2>{message}
<p>The CAC of <strong>{name}</strong> (DoD ID {edipi}) is not registered to an account yet.
Log in with your username and password once to register it. From then on the card logs you
in.</p>
<form method="post" action="/login/cac/link" id="mtls-link">
<input type="hidden" name="csrf" value="{csrf}">
<label for="username">Username</label><input type="text" id="username" name="username" autocomplete="username" required>
<label for="password">Password</label><input type="password" id="password" name="password" autocomplete="current-password" required>
<p><button type="submit" id="mtls-link-button">Register the card and log in</button></p>
</form>"#,
        name = esc(name),
        edipi = esc(edipi),
        csrf = esc(csrf),
    )
}

pub fn confirmation(r: &Registration, username: &str) -> String {
    format!(
        r#"<h2>CAC registration confirmation</h2>
<p class="notice" id="registration-complete">The CAC of <strong id="confirmation-holder">{name}</strong> is registered to the account <strong id="confirmation-account">{user}</strong>.</p>
<p class="no-print">If this is not your card, or not your account, tell your security officer at once.</p>
<dl class="confirmation">
<dt>Name</dt><dd id="confirmation-name">{name}</dd>
<dt>DoD ID number (EDIPI)</dt><dd id="confirmation-edipi">{edipi}</dd>
<dt>FASC-N person identifier</dt><dd id="confirmation-fascn">{fasc_n}</dd>
<dt>Card UUID</dt><dd id="confirmation-uuid">{uuid}</dd>
<dt>Subject</dt><dd>{subject}</dd>
<dt>Issuer</dt><dd>{issuer}</dd>
<dt>Serial number</dt><dd>{serial}</dd>
<dt>Certificate expires</dt><dd>{not_after}</dd>
<dt>SHA-256 fingerprint</dt><dd>{fingerprint}</dd>
<dt>Registered</dt><dd>{when}</dd>
<dt>Confirmation number</dt><dd id="confirmation-number">CB-{number:06}</dd>
</dl>
<p class="no-print"><button type="button" id="print">Print</button>
<a href="/account/cac">Back to CAC/Certificate Registration</a></p>"#,
        user = esc(username),
        name = esc(r.common_name.as_deref().unwrap_or("-")),
        edipi = esc(r.edipi.as_deref().unwrap_or("-")),
        fasc_n = esc(r.fasc_n_person.as_deref().unwrap_or("-")),
        uuid = esc(r.card_uuid.as_deref().unwrap_or("-")),
        subject = esc(&r.subject),
        issuer = esc(&r.issuer),
        serial = esc(&r.serial),
        not_after = esc(&r.not_after),
        fingerprint = esc(&r.fingerprint),
        when = esc(&format_time(r.registered_at)),
        number = r.id,
    )
}

pub fn link_card(
    csrf: &str,
    challenge: &str,
    name: &str,
    edipi: &str,
    message: Option<&str>,
) -> String {
    let message = notice(message.map(|m| (m, true)));
    format!(
        r#"<h2>Register this CAC</h2>{message}
<p>The CAC of <strong>{name}</strong> (DoD ID {edipi}) is not registered to an account yet.
Log in with your username and password once to register it; the CAC Bridge window then asks
for your PIN again, to prove the card is still yours. From then on the card logs you in.</p>
<form method="post" action="/login/cac/link" id="cacbridge-link">
<input type="hidden" name="csrf" value="{csrf}">
{challenge}
<input type="hidden" name="cacbridge_token" value="">
<label for="username">Username</label><input type="text" id="username" name="username" autocomplete="username" required>
<label for="password">Password</label><input type="password" id="password" name="password" autocomplete="current-password" required>
<p><button type="submit" id="cacbridge-link-button">Register the card and log in</button></p>
</form>"#,
        name = esc(name),
        edipi = esc(edipi),
        csrf = esc(csrf),
        challenge = challenge_field(challenge)
    )
}

pub fn forbidden(reason: &str) -> String {
    format!(
        r#"<h2 id="forbidden">403: Access Forbidden</h2>
<p>The portal could not accept this request: <span id="forbidden-reason">{}</span>.</p>
<p>If you got this error during CAC registration:</p>
<ol>
<li>Clear this site's cookies and temporary internet files (in the CAC Bridge toolbar
popup: <em>Clear this portal's site data</em>).</li>
<li>Close all open browser windows.</li>
<li>Open the portal again, log in, and retry <strong>My Account &rarr; CAC/Certificate Registration</strong>.</li>
</ol>
<p><a href="/login">Back to the portal</a></p>"#,
        esc(reason)
    )
}

pub fn not_found() -> String {
    "<h2>Not found</h2><p><a href=\"/\">Back to the portal</a></p>".into()
}

/// UTC `YYYY-MM-DD HH:MM:SS`.
pub fn format_time(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            esc(r#"<a href="x">&'"#),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }

    #[test]
    fn formats_times() {
        assert_eq!(format_time(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(format_time(1_906_502_400), "2030-06-01 00:00:00 UTC");
        assert_eq!(format_time(951_782_400), "2000-02-29 00:00:00 UTC");
    }
}

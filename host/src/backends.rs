//! The token the host serves from: the policy's backends in order (docs/policy.md), `pcsc`
//! for CAC Bridge's own applet code, or the path of a PKCS#11 module (vendor middleware,
//! CACKey, OpenSC). Several become one [`Chain`]: a card is served by the first backend that
//! reads it.

use std::path::Path;
use std::time::Duration;

use cacbridge_card::{Backend, Chain, PcscBackend, Pkcs11Backend, TimedBackend};

/// PKCS#11 modules commonly installed for smart cards, where Debian and Ubuntu put them: what
/// `doctor` looks for, so that a person can name one in the policy.
pub const KNOWN_MODULES: [(&str, &str); 5] = [
    ("OpenSC", "/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so"),
    ("CACKey", "/usr/lib/x86_64-linux-gnu/libcackey.so"),
    ("CACKey", "/usr/lib/libcackey.so"),
    (
        "p11-kit proxy",
        "/usr/lib/x86_64-linux-gnu/p11-kit-proxy.so",
    ),
    ("SoftHSM2", "/usr/lib/softhsm/libsofthsm2.so"),
];

/// The [`KNOWN_MODULES`] installed here.
pub fn installed_modules() -> Vec<(&'static str, &'static str)> {
    KNOWN_MODULES
        .into_iter()
        .filter(|(_, path)| Path::new(path).is_file())
        .collect()
}

/// One backend of the policy, loaded, or why it is not.
pub struct Loaded {
    pub name: String,
    pub token: Result<Box<dyn Backend>, String>,
}

/// Load each backend `names` lists. A name that is neither `pcsc` nor an absolute path to a
/// file is refused here (a policy is read by people: say why).
pub fn load(names: &[String]) -> Vec<Loaded> {
    load_generation(names, 0)
}

/// As [`load`]; after the first `generation`, modules are loaded from private copies (an
/// abandoned instance may still be stuck inside its own locks).
fn load_generation(names: &[String], generation: u32) -> Vec<Loaded> {
    names
        .iter()
        .map(|name| Loaded {
            name: name.clone(),
            token: load_one(name, generation),
        })
        .collect()
}

fn load_one(name: &str, generation: u32) -> Result<Box<dyn Backend>, String> {
    if name == "pcsc" {
        return Ok(Box::new(PcscBackend::with_disk_cache()));
    }
    let path = Path::new(name);
    if !path.is_absolute() {
        return Err("a backend is \"pcsc\" or the absolute path of a PKCS#11 module".into());
    }
    if !path.is_file() {
        return Err("no such file".into());
    }
    let loaded = if generation == 0 {
        Pkcs11Backend::load(path)
    } else {
        Pkcs11Backend::load_copy(path, generation)
    };
    loaded
        .map(|module| Box::new(module) as Box<dyn Backend>)
        .map_err(|err| err.to_string())
}

/// The token for the policy's backends: those that load, in order; the PC/SC backend when
/// none does (a broken module line must not leave the person without their card).
pub fn token(names: &[String]) -> Box<dyn Backend> {
    token_generation(names, 0)
}

fn token_generation(names: &[String], generation: u32) -> Box<dyn Backend> {
    let mut tokens: Vec<Box<dyn Backend>> = Vec::new();
    for loaded in load_generation(names, generation) {
        match loaded.token {
            Ok(token) => {
                tracing::info!(backend = %loaded.name, generation, "backend loaded");
                tokens.push(token);
            }
            Err(err) => tracing::error!(backend = %loaded.name, %err, "backend not loaded"),
        }
    }
    match tokens.len() {
        0 => {
            tracing::warn!("no backend of the policy loads: using pcsc");
            Box::new(PcscBackend::with_disk_cache())
        }
        1 => tokens.remove(0),
        _ => Box::new(Chain::new(tokens)),
    }
}

/// The policy's token with a deadline on every operation. With a PKCS#11 module among the
/// backends, a timeout abandons the token and loads the backends again (modules from private
/// copies): a module deadlocked in `C_Sign` (OpenSC, a card pulled mid-signature) must not
/// take the host with it.
pub fn timed_token(names: &[String], timeout: Duration) -> TimedBackend {
    let first = token(names);
    if names.iter().all(|name| name == "pcsc") {
        return TimedBackend::new(first, timeout);
    }
    let names = names.to_vec();
    TimedBackend::reloading(
        first,
        Box::new(move |generation| Ok(token_generation(&names, generation))),
        timeout,
    )
}

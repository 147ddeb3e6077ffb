//! The token the host serves from: the policy's backends in order (docs/policy.md), `pcsc`
//! for CAC Bridge's own applet code, or the path of a PKCS#11 module (vendor middleware,
//! CACKey, OpenSC). Several become one [`Chain`]: a card is served by the first backend that
//! reads it.

use std::path::Path;

use cacbridge_card::{Chain, PcscBackend, Pkcs11Backend, Token};

/// One backend of the policy, loaded, or why it is not.
pub struct Loaded {
    pub name: String,
    pub token: Result<Box<dyn Token>, String>,
}

/// Load each backend `names` lists. A name that is neither `pcsc` nor an absolute path to a
/// file is refused here (a policy is read by people: say why).
pub fn load(names: &[String]) -> Vec<Loaded> {
    names
        .iter()
        .map(|name| Loaded {
            name: name.clone(),
            token: load_one(name),
        })
        .collect()
}

fn load_one(name: &str) -> Result<Box<dyn Token>, String> {
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
    Pkcs11Backend::load(path)
        .map(|module| Box::new(module) as Box<dyn Token>)
        .map_err(|err| err.to_string())
}

/// The token for the policy's backends: those that load, in order; the PC/SC backend when
/// none does (a broken module line must not leave the person without their card).
pub fn token(names: &[String]) -> Box<dyn Token> {
    let mut tokens: Vec<Box<dyn Token>> = Vec::new();
    for loaded in load(names) {
        match loaded.token {
            Ok(token) => tokens.push(token),
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

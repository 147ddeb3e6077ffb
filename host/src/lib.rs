//! CAC Bridge native-messaging host.
//!
//! Layers, each knowing only the ones below it:
//! - [`messaging`]: frames, protocol v1 and the serve loop over a `Handler` (knows nothing of
//!   cards);
//! - [`commands`]: the host's handler, one file a command; [`views`] names card values on the
//!   wire;
//! - the card layer (crate `cacbridge-card`): PC/SC, PIV and CAC, PKCS#11 modules, knowing
//!   nothing of browsers; [`backends`] picks them as the policy says.

pub mod arguments;
pub mod backends;
pub mod caller;
pub mod cli;
pub mod commands;
pub mod contract;
pub mod doctor;
pub mod held_pin;
pub mod install;
#[cfg(unix)]
pub mod local;
pub mod logging;
pub mod messaging;
pub mod module_install;
pub mod policy;
pub mod support;
pub mod system_integration;
pub mod table;
pub mod usage;
pub mod views;

/// This host's version, as `version` and every token's `appVersion` report it.
pub const HOST_VERSION: &str = env!("CARGO_PKG_VERSION");

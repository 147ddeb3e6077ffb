//! CAC Bridge native-messaging host.
//!
//! Layers, each knowing only the one below it:
//! - [`messaging`]: frames, protocol v1 and the serve loop (knows nothing of cards);
//! - [`commands`]: what each command does;
//! - the card layer (crate `cacbridge-card`): PC/SC, PIV and CAC, knowing nothing of browsers.

pub mod arguments;
pub mod caller;
pub mod commands;
pub mod contract;
pub mod install;
pub mod logging;
pub mod messaging;
pub mod policy;
pub mod signing;
pub mod views;

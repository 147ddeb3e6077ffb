//! `version`: the host's version and protocol, answered at once.

use serde::Serialize;

use crate::messaging::protocol::PROTOCOL_VERSION;
use crate::HOST_VERSION;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Version {
    pub version: &'static str,
    pub protocol: u32,
}

pub fn version() -> Version {
    Version {
        version: HOST_VERSION,
        protocol: PROTOCOL_VERSION,
    }
}

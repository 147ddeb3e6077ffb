//! The host as the tests spawn it: tests/testbed's host module, with this crate's binary.
#![allow(dead_code, unused_imports)]

pub use cacbridge_testbed::host::{frame, read_dir_text, HostProcess, CAP, CHROME_ORIGIN};

pub const HOST: &str = env!("CARGO_BIN_EXE_cacbridge-host");

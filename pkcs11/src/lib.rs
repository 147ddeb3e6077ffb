//! `libcacbridge_pkcs11.so`: CAC Bridge's PKCS#11 module over the same card layer as the host
//! (PIV and legacy CAC, the same caching). One slot per reader; a token while a card is in it;
//! for each certificate, the certificate, public key and private key objects (docs/pkcs11.md).
//!
//! [`module`] holds the rules in safe Rust; [`objects`] builds the objects; `ffi` is the C ABI
//! and the only place with `unsafe`.

mod ffi;
pub mod mechanisms;

/// A PKCS#11 failure: the return value the caller gets. Here, below [`module`], so that the
/// mechanisms and the window, which the module uses, do not depend on it.
pub type Rv = cryptoki_sys::CK_RV;
pub mod module;
pub mod objects;
pub mod window;

#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzzing;

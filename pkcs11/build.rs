//! Link the module `-z nodelete`: a card operation past its deadline is left to finish on its
//! worker thread (card/src/timed.rs), so a caller's dlclose must never unmap the code that
//! thread is still running.
fn main() {
    println!("cargo:rustc-cdylib-link-arg=-Wl,-z,nodelete");
}

//! OS randomness for keys, salts and nonces.

use rand::TryRngCore;
use rand::rngs::OsRng;

/// Fills `buf` from the operating system's random generator.
///
/// # Panics
///
/// If the OS generator fails, which on supported platforms means the system
/// is unusable; continuing with weak randomness would be worse.
pub(crate) fn fill_random(buf: &mut [u8]) {
    if let Err(err) = OsRng.try_fill_bytes(buf) {
        panic!("the operating system's random number generator failed: {err}");
    }
}

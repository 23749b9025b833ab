//! Data keys: one per organization, wrapped by the master key and stored
//! beside the organization; they seal the organization's provider keys.

use std::fmt;

use secrecy::{ExposeSecret, SecretBox, SecretSlice, SecretString};
use zeroize::Zeroize;

use crate::error::{CredentialError, Result};
use crate::random::fill_random;
use crate::sealed::{self, KEY_LEN};

/// A 256-bit AES-GCM key that seals secrets such as provider API keys.
///
/// Stored only wrapped ([`crate::MasterKey::wrap`]). Held on the heap and
/// zeroized on drop; `Debug` prints `DataKey(*****)`.
pub struct DataKey {
    bytes: SecretBox<[u8; KEY_LEN]>,
}

impl DataKey {
    /// A new random data key from the operating system's generator.
    ///
    /// # Panics
    ///
    /// If the operating system's random generator fails.
    #[must_use]
    pub fn generate() -> Self {
        Self {
            bytes: SecretBox::init_with_mut(|bytes: &mut [u8; KEY_LEN]| fill_random(bytes)),
        }
    }

    /// Encrypts `plaintext` bound to `aad` (use [`crate::aad_for`] for a
    /// provider key). Every call uses a fresh random nonce, so sealing the
    /// same plaintext twice gives different bytes.
    ///
    /// Format: version byte `1`, 12-byte nonce, ciphertext, 16-byte tag
    /// ([`crate::SEALED_OVERHEAD`] bytes more than the plaintext).
    ///
    /// # Panics
    ///
    /// If the operating system's random generator fails, or `plaintext`
    /// exceeds the AES-GCM limit of 64 GiB.
    #[must_use]
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
        sealed::seal(self.bytes(), plaintext, aad)
    }

    /// Decrypts a value made by [`DataKey::seal`] with the same `aad`, as
    /// text (provider keys are text).
    ///
    /// # Errors
    ///
    /// [`CredentialError::DecryptionFailed`] for another key, another `aad`
    /// or altered bytes; [`CredentialError::Malformed`] or
    /// [`CredentialError::UnsupportedVersion`] for bytes that are no sealed
    /// value; [`CredentialError::NotUtf8`] if the plaintext is not text.
    pub fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<SecretString> {
        let plaintext = sealed::open(self.bytes(), sealed, aad)?;
        match String::from_utf8(plaintext) {
            // Capacity equals length, so boxing does not copy.
            Ok(text) => Ok(SecretString::from(text)),
            Err(err) => {
                err.into_bytes().zeroize();
                Err(CredentialError::NotUtf8)
            }
        }
    }

    /// Like [`DataKey::open`], for binary plaintexts.
    ///
    /// # Errors
    ///
    /// As [`DataKey::open`], except that any bytes are accepted.
    pub fn open_bytes(&self, sealed: &[u8], aad: &[u8]) -> Result<SecretSlice<u8>> {
        sealed::open(self.bytes(), sealed, aad).map(SecretSlice::from)
    }

    /// The key made of `bytes`, if there are exactly 32 of them.
    pub(crate) fn from_slice(bytes: &[u8]) -> Option<Self> {
        let bytes: &[u8; KEY_LEN] = bytes.try_into().ok()?;
        Some(Self {
            bytes: SecretBox::init_with_mut(|key: &mut [u8; KEY_LEN]| key.copy_from_slice(bytes)),
        })
    }

    pub(crate) fn bytes(&self) -> &[u8; KEY_LEN] {
        self.bytes.expose_secret()
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey(*****)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aad_for;

    #[test]
    fn open_returns_the_sealed_provider_key() {
        let key = DataKey::generate();
        let aad = aad_for("org_1", "openai");

        let sealed = key.seal(b"sk-proj-abcd1234", &aad);
        let opened = key.open(&sealed, &aad).unwrap();

        assert_eq!(opened.expose_secret(), "sk-proj-abcd1234");
    }

    #[test]
    fn open_bytes_returns_binary_plaintext() {
        let key = DataKey::generate();
        let plaintext = [0u8, 159, 146, 150, 255];

        let sealed = key.seal(&plaintext, b"aad");

        assert_eq!(
            key.open_bytes(&sealed, b"aad").unwrap().expose_secret(),
            &plaintext
        );
    }

    #[test]
    fn two_seals_of_the_same_key_differ() {
        let key = DataKey::generate();
        let aad = aad_for("org_1", "openai");

        let first = key.seal(b"sk-same", &aad);
        let second = key.seal(b"sk-same", &aad);

        assert_ne!(first, second);
        assert_eq!(key.open(&second, &aad).unwrap().expose_secret(), "sk-same");
    }

    #[test]
    fn sealed_key_moved_to_another_organization_does_not_open() {
        let key = DataKey::generate();
        let sealed = key.seal(b"sk-secret", &aad_for("org_1", "openai"));

        let err = key.open(&sealed, &aad_for("org_2", "openai")).unwrap_err();

        assert!(matches!(err, CredentialError::DecryptionFailed));
    }

    #[test]
    fn sealed_key_moved_to_another_provider_does_not_open() {
        let key = DataKey::generate();
        let sealed = key.seal(b"sk-secret", &aad_for("org_1", "openai"));

        let err = key
            .open(&sealed, &aad_for("org_1", "anthropic"))
            .unwrap_err();

        assert!(matches!(err, CredentialError::DecryptionFailed));
    }

    #[test]
    fn tampered_ciphertext_does_not_open() {
        let key = DataKey::generate();
        let aad = aad_for("org_1", "openai");
        let mut sealed = key.seal(b"sk-secret", &aad);
        let last = sealed.len() - 20;
        sealed[last] ^= 0x80;

        let err = key.open(&sealed, &aad).unwrap_err();

        assert!(matches!(err, CredentialError::DecryptionFailed));
    }

    #[test]
    fn another_data_key_does_not_open() {
        let aad = aad_for("org_1", "openai");
        let sealed = DataKey::generate().seal(b"sk-secret", &aad);

        let err = DataKey::generate().open(&sealed, &aad).unwrap_err();

        assert!(matches!(err, CredentialError::DecryptionFailed));
    }

    #[test]
    fn open_refuses_non_utf8_plaintext() {
        let key = DataKey::generate();
        let sealed = key.seal(&[0xff, 0xfe], b"aad");

        let err = key.open(&sealed, b"aad").unwrap_err();

        assert!(matches!(err, CredentialError::NotUtf8));
    }

    #[test]
    fn debug_shows_no_key_material() {
        let key = DataKey::from_slice(&[0xab; KEY_LEN]).unwrap();

        let debug = format!("{key:?} {key:#?}");

        assert_eq!(format!("{key:?}"), "DataKey(*****)");
        assert!(!debug.contains("171"), "{debug}"); // 0xab in decimal
        assert!(!debug.to_lowercase().contains("ab"), "{debug}");
        assert!(!debug.contains("q6ur"), "{debug}"); // base64 of 0xab bytes
    }

    #[test]
    fn from_slice_needs_exactly_32_bytes() {
        assert!(DataKey::from_slice(&[0; 31]).is_none());
        assert!(DataKey::from_slice(&[0; 33]).is_none());
        assert!(DataKey::from_slice(&[0; 32]).is_some());
    }
}

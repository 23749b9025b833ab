//! The one ciphertext format, shared by sealed secrets, wrapped data keys and
//! the master-key check.
//!
//! ```text
//! version (1 byte, = 1) | nonce (12 bytes, random per encryption) | ciphertext | tag (16 bytes)
//! ```
//!
//! AES-256-GCM; the associated data is not stored, the caller supplies it
//! again to open. Random 96-bit nonces are safe here: each key encrypts few
//! values (one data key per organization, a handful of provider keys), far
//! below the 2^32 messages per key that NIST allows for random nonces.

use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Aes256Gcm, Key, KeyInit, Nonce, Tag};
use zeroize::Zeroize;

use crate::error::{CredentialError, Result};
use crate::random::fill_random;

/// Length of every key in this crate: AES-256.
pub const KEY_LEN: usize = 32;

/// Version byte that starts every sealed value.
pub const FORMAT_VERSION: u8 = 1;

const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
const HEADER_LEN: usize = 1 + NONCE_LEN;

/// Bytes a sealed value has beyond its plaintext: version, nonce and tag.
pub const SEALED_OVERHEAD: usize = HEADER_LEN + TAG_LEN;

fn cipher(key: &[u8; KEY_LEN]) -> Aes256Gcm {
    Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key))
}

/// Encrypts `plaintext` under `key` with a fresh random nonce.
///
/// # Panics
///
/// If the OS random generator fails, or `plaintext` exceeds the AES-GCM
/// limit of 64 GiB.
pub(crate) fn seal(key: &[u8; KEY_LEN], plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
    let mut nonce = [0u8; NONCE_LEN];
    fill_random(&mut nonce);

    // Exact capacity: no reallocation can leave a plaintext copy behind.
    let mut out = Vec::with_capacity(SEALED_OVERHEAD + plaintext.len());
    out.push(FORMAT_VERSION);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(plaintext);
    match cipher(key).encrypt_in_place_detached(
        Nonce::from_slice(&nonce),
        aad,
        &mut out[HEADER_LEN..],
    ) {
        Ok(tag) => {
            out.extend_from_slice(&tag);
            out
        }
        Err(_) => {
            out.zeroize();
            panic!("AES-GCM cannot encrypt more than 64 GiB in one message");
        }
    }
}

/// Decrypts a value made by [`seal`]. The returned vector's capacity equals
/// its length, so it can become a boxed secret without a reallocation.
pub(crate) fn open(key: &[u8; KEY_LEN], sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
    let Some((&version, rest)) = sealed.split_first() else {
        return Err(CredentialError::Malformed("empty"));
    };
    if version != FORMAT_VERSION {
        return Err(CredentialError::UnsupportedVersion(version));
    }
    if sealed.len() < SEALED_OVERHEAD {
        return Err(CredentialError::Malformed("shorter than nonce and tag"));
    }
    let (nonce, rest) = rest.split_at(NONCE_LEN);
    let (ciphertext, tag) = rest.split_at(rest.len() - TAG_LEN);

    let mut buffer = ciphertext.to_vec();
    match cipher(key).decrypt_in_place_detached(
        Nonce::from_slice(nonce),
        aad,
        &mut buffer,
        Tag::from_slice(tag),
    ) {
        Ok(()) => Ok(buffer),
        Err(_) => {
            buffer.zeroize();
            Err(CredentialError::DecryptionFailed)
        }
    }
}

/// Appends `field` to `out` as an 8-byte big-endian length and the bytes, so
/// that a sequence of fields has exactly one reading.
pub(crate) fn push_field(out: &mut Vec<u8>, field: &[u8]) {
    out.extend_from_slice(&(field.len() as u64).to_be_bytes());
    out.extend_from_slice(field);
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; KEY_LEN] = [7; KEY_LEN];

    #[test]
    fn open_returns_what_seal_encrypted() {
        let sealed = seal(&KEY, b"sk-secret", b"aad");

        assert_eq!(open(&KEY, &sealed, b"aad").unwrap(), b"sk-secret");
    }

    #[test]
    fn sealed_value_is_version_nonce_ciphertext_tag() {
        let sealed = seal(&KEY, b"sk-secret", b"aad");

        assert_eq!(sealed.len(), 1 + 12 + b"sk-secret".len() + 16);
        assert_eq!(sealed[0], FORMAT_VERSION);
        assert_ne!(&sealed[HEADER_LEN..HEADER_LEN + 9], b"sk-secret");
    }

    #[test]
    fn each_seal_draws_a_new_nonce() {
        let first = seal(&KEY, b"same", b"aad");
        let second = seal(&KEY, b"same", b"aad");

        assert_ne!(first[1..HEADER_LEN], second[1..HEADER_LEN]);
        assert_ne!(first, second);
    }

    #[test]
    fn empty_plaintext_round_trips() {
        let sealed = seal(&KEY, b"", b"");

        assert_eq!(sealed.len(), SEALED_OVERHEAD);
        assert!(open(&KEY, &sealed, b"").unwrap().is_empty());
    }

    #[test]
    fn open_with_other_aad_fails() {
        let sealed = seal(&KEY, b"sk-secret", b"aad");

        let err = open(&KEY, &sealed, b"other").unwrap_err();

        assert!(matches!(err, CredentialError::DecryptionFailed));
    }

    #[test]
    fn open_with_other_key_fails() {
        let sealed = seal(&KEY, b"sk-secret", b"aad");

        let err = open(&[8; KEY_LEN], &sealed, b"aad").unwrap_err();

        assert!(matches!(err, CredentialError::DecryptionFailed));
    }

    #[test]
    fn any_flipped_bit_after_the_version_fails() {
        let sealed = seal(&KEY, b"sk-secret", b"aad");

        for index in 1..sealed.len() {
            let mut tampered = sealed.clone();
            tampered[index] ^= 0x01;
            let err = open(&KEY, &tampered, b"aad").unwrap_err();
            assert!(
                matches!(err, CredentialError::DecryptionFailed),
                "byte {index}: {err:?}"
            );
        }
    }

    #[test]
    fn unknown_version_is_refused() {
        let mut sealed = seal(&KEY, b"sk-secret", b"aad");
        sealed[0] = 2;

        let err = open(&KEY, &sealed, b"aad").unwrap_err();

        assert!(matches!(err, CredentialError::UnsupportedVersion(2)));
    }

    #[test]
    fn truncated_value_is_malformed() {
        let sealed = seal(&KEY, b"", b"aad");

        for len in [0, 1, HEADER_LEN, SEALED_OVERHEAD - 1] {
            let err = open(&KEY, &sealed[..len], b"aad").unwrap_err();
            assert!(matches!(err, CredentialError::Malformed(_)), "len {len}");
        }
    }

    #[test]
    fn truncated_tag_fails() {
        let sealed = seal(&KEY, b"sk-secret", b"aad");

        let err = open(&KEY, &sealed[..sealed.len() - 1], b"aad").unwrap_err();

        assert!(matches!(err, CredentialError::DecryptionFailed));
    }

    #[test]
    fn push_field_prefixes_the_length() {
        let mut out = Vec::new();

        push_field(&mut out, b"ab");

        assert_eq!(out, [0, 0, 0, 0, 0, 0, 0, 2, b'a', b'b']);
    }
}

//! BYOK provider keys: organizations' own provider API keys, stored
//! encrypted ([`CredentialStore`]), and the cryptography behind them.
//!
//! Envelope encryption with AES-256-GCM, in three layers:
//!
//! 1. A [`MasterKey`], from `TOLLGATE_MASTER_KEY` ([`MasterKey::from_setting`])
//!    or, in development, from a generated key file
//!    ([`load_or_create_dev_key_file`]). The database keeps a
//!    [`MasterKey::key_check`] so that start-up with a wrong key is refused
//!    ([`MasterKey::verify_key_check`]), and the passphrase salt
//!    ([`generate_salt`]) when the setting is a passphrase.
//! 2. One [`DataKey`] per organization, stored only wrapped by the master key
//!    ([`MasterKey::wrap`], bound to the organization id). Rotating the master
//!    key re-wraps these, without touching the provider keys.
//! 3. Each provider key sealed by its organization's data key
//!    ([`DataKey::seal`]), bound by [`aad_for`] to the organization and the
//!    provider, so a ciphertext moved to another row does not open. Only its
//!    [`key_hint`] is ever shown again.
//!
//! In the database (see [`CredentialStore`] and [`unlock`]): the key check,
//! the passphrase salt and the master key's generation in `system_settings`;
//! wrapped data keys in `organization_data_keys`, one per organization and
//! master-key generation ([`rotate`] adds the next generation); sealed
//! provider keys with their data key's version in `provider_credentials`;
//! every change in `provider_credential_audit`.
//!
//! Every ciphertext is `1 | 12-byte random nonce | ciphertext | 16-byte tag`.
//! Keys live on the heap in [`secrecy`] boxes, are zeroized on drop, and print
//! as `*****`; no error message holds key material.
//!
//! ```
//! use secrecy::ExposeSecret;
//! use tollgate_credentials::{aad_for, key_hint, DataKey, MasterKey};
//!
//! let master = MasterKey::generate();
//! let check = master.key_check(); // stored once
//! master.verify_key_check(&check)?; // at every start-up
//!
//! let data_key = DataKey::generate();
//! let wrapped = master.wrap(&data_key, b"org_123"); // stored with the organization
//!
//! let aad = aad_for("org_123", "openai");
//! let sealed = data_key.seal(b"sk-proj-abcd1234", &aad); // stored with the key
//! let hint = key_hint("sk-proj-abcd1234"); // "1234", stored for display
//!
//! let data_key = master.unwrap(&wrapped, b"org_123")?;
//! let provider_key = data_key.open(&sealed, &aad)?;
//! assert_eq!(provider_key.expose_secret(), "sk-proj-abcd1234");
//! assert_eq!(hint, "1234");
//! # Ok::<(), tollgate_credentials::CredentialError>(())
//! ```

mod data_key;
mod dev_key_file;
mod error;
mod master_key;
mod random;
mod root;
mod sealed;
mod store;

pub use data_key::DataKey;
pub use dev_key_file::load_or_create_dev_key_file;
pub use error::{CredentialError, Result};
pub use master_key::{MasterKey, PBKDF2_ITERATIONS, SALT_LEN, generate_salt};
pub use root::{RootKey, Rotation, passphrase_salt, rotate, unlock};
pub use sealed::{FORMAT_VERSION, KEY_LEN, SEALED_OVERHEAD};
pub use store::{
    Actor, AuditActor, AuditEntry, AuditFilter, Credential, CredentialChange, CredentialStore,
    ListFilter, NewCredential, normalized_api_key,
};

/// Label that starts every [`aad_for`] value.
const PROVIDER_KEY_LABEL: &[u8] = b"tollgate-provider-key";

/// The associated data that binds a sealed provider key to its organization
/// and provider.
///
/// Each field is length-prefixed (8-byte big-endian length, then the bytes),
/// so no two different `(org_id, provider)` pairs give the same bytes, even
/// when one field contains the other's separator: `("a:b", "c")` and
/// `("a", "b:c")` differ.
#[must_use]
pub fn aad_for(org_id: &str, provider: &str) -> Vec<u8> {
    let mut out =
        Vec::with_capacity(3 * 8 + PROVIDER_KEY_LABEL.len() + org_id.len() + provider.len());
    sealed::push_field(&mut out, PROVIDER_KEY_LABEL);
    sealed::push_field(&mut out, org_id.as_bytes());
    sealed::push_field(&mut out, provider.as_bytes());
    out
}

/// The part of a provider key that may be shown again: its last 4 characters
/// (all of them if it has fewer; characters, not bytes).
#[must_use]
pub fn key_hint(key: &str) -> String {
    let start = key
        .char_indices()
        .rev()
        .nth(3)
        .map_or(0, |(index, _)| index);
    key[start..].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aad_for_is_unambiguous() {
        assert_ne!(aad_for("a:b", "c"), aad_for("a", "b:c"));
        assert_ne!(aad_for("ab", ""), aad_for("a", "b"));
        assert_ne!(aad_for("org", "openai"), aad_for("openai", "org"));
        assert_eq!(aad_for("org", "openai"), aad_for("org", "openai"));
    }

    #[test]
    fn aad_for_is_label_org_provider_length_prefixed() {
        let mut expected = Vec::new();
        expected.extend_from_slice(&21u64.to_be_bytes());
        expected.extend_from_slice(b"tollgate-provider-key");
        expected.extend_from_slice(&3u64.to_be_bytes());
        expected.extend_from_slice(b"org");
        expected.extend_from_slice(&6u64.to_be_bytes());
        expected.extend_from_slice(b"openai");

        assert_eq!(aad_for("org", "openai"), expected);
    }

    #[test]
    fn key_hint_is_the_last_four_characters() {
        assert_eq!(key_hint("sk-proj-abcd1234"), "1234");
        assert_eq!(key_hint("wxyz"), "wxyz");
    }

    #[test]
    fn key_hint_of_a_short_key_is_shorter() {
        assert_eq!(key_hint("xyz"), "xyz");
        assert_eq!(key_hint(""), "");
    }

    #[test]
    fn key_hint_counts_characters_not_bytes() {
        assert_eq!(key_hint("clé-éèêë"), "éèêë");
        assert_eq!(key_hint("ключ"), "ключ");
    }
}

//! The master key: the root of BYOK encryption, taken from
//! `TOLLGATE_MASTER_KEY` (a base64 key or a passphrase), and what it does:
//! wrap data keys and prove at start-up that it is the right one.

use std::fmt;

use base64::Engine as _;
use base64::alphabet;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use secrecy::{ExposeSecret, SecretBox, SecretString};
use sha2::Sha256;
use zeroize::{Zeroize, Zeroizing};

use crate::data_key::DataKey;
use crate::error::{CredentialError, Result};
use crate::random::fill_random;
use crate::sealed::{self, KEY_LEN};

/// PBKDF2-HMAC-SHA256 iteration count for passphrase settings (OWASP 2023).
///
/// Changing it changes every passphrase-derived key: existing databases
/// would then fail their key check.
pub const PBKDF2_ITERATIONS: u32 = 600_000;

/// Length of the salt made by [`generate_salt`], and the minimum accepted
/// with a passphrase.
pub const SALT_LEN: usize = 16;

/// Associated data of the key check.
const KEY_CHECK_AAD: &[u8] = b"tollgate-key-check";
/// What the key check encrypts.
const KEY_CHECK_PLAINTEXT: &[u8] = b"tollgate master key check v1";
/// Label that starts the associated data of every wrapped data key, so that
/// a wrapped key can never be mistaken for another use of the master key.
const WRAP_LABEL: &[u8] = b"tollgate-data-key";

const PADDING_INDIFFERENT: GeneralPurposeConfig =
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
/// Standard alphabet, with or without `=` padding.
const STANDARD_ANY_PADDING: GeneralPurpose =
    GeneralPurpose::new(&alphabet::STANDARD, PADDING_INDIFFERENT);
/// URL-safe alphabet, with or without `=` padding.
const URL_SAFE_ANY_PADDING: GeneralPurpose =
    GeneralPurpose::new(&alphabet::URL_SAFE, PADDING_INDIFFERENT);

/// The 256-bit root key of BYOK encryption.
///
/// It encrypts only data keys ([`MasterKey::wrap`]) and the key check, never
/// provider keys directly, so that rotating it means re-wrapping one data key
/// per organization. Held on the heap and zeroized on drop; `Debug` prints
/// `MasterKey(*****)`.
pub struct MasterKey {
    bytes: SecretBox<[u8; KEY_LEN]>,
}

impl MasterKey {
    /// Builds the master key from the `TOLLGATE_MASTER_KEY` setting.
    ///
    /// The value is trimmed of surrounding whitespace, then:
    /// - if it is base64 (standard or URL-safe alphabet, padded or not) of
    ///   exactly 32 bytes, those bytes are the key and `passphrase_salt` is
    ///   ignored (see [`MasterKey::is_raw_key_setting`]);
    /// - otherwise it is a passphrase, stretched with PBKDF2-HMAC-SHA256,
    ///   [`PBKDF2_ITERATIONS`] rounds, with `passphrase_salt` (at least
    ///   [`SALT_LEN`] bytes; the caller stores it, see [`generate_salt`]).
    ///   This takes a noticeable fraction of a second by design.
    ///
    /// # Errors
    ///
    /// [`CredentialError::EmptySetting`] for an empty value,
    /// [`CredentialError::SaltTooShort`] for a passphrase with a short salt.
    pub fn from_setting(value: &str, passphrase_salt: &[u8]) -> Result<Self> {
        let value = value.trim();
        if value.is_empty() {
            return Err(CredentialError::EmptySetting);
        }
        if let Some(key) = decode_raw_key(value) {
            return Ok(key);
        }
        if passphrase_salt.len() < SALT_LEN {
            return Err(CredentialError::SaltTooShort {
                min: SALT_LEN,
                actual: passphrase_salt.len(),
            });
        }
        Ok(Self::from_passphrase(
            value,
            passphrase_salt,
            PBKDF2_ITERATIONS,
        ))
    }

    /// Whether [`MasterKey::from_setting`] would use `value` as a raw key
    /// (`true`) or as a passphrase that needs a stored salt (`false`).
    #[must_use]
    pub fn is_raw_key_setting(value: &str) -> bool {
        decode_raw_key(value.trim()).is_some()
    }

    /// A new random master key from the operating system's generator.
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

    /// The key as standard padded base64 (44 characters), the form that
    /// `TOLLGATE_MASTER_KEY` and the development key file accept.
    #[must_use]
    pub fn to_base64(&self) -> SecretString {
        SecretString::from(STANDARD.encode(self.bytes()))
    }

    /// A value to store once, when the database is set up, and to give to
    /// [`MasterKey::verify_key_check`] at every start-up, so that a wrong
    /// master key is refused before it is used. Each call gives a different
    /// value (fresh nonce); any of them verifies.
    #[must_use]
    pub fn key_check(&self) -> Vec<u8> {
        sealed::seal(self.bytes(), KEY_CHECK_PLAINTEXT, KEY_CHECK_AAD)
    }

    /// Checks that `check`, made by [`MasterKey::key_check`], was made with
    /// this master key.
    ///
    /// # Errors
    ///
    /// [`CredentialError::WrongMasterKey`] if it was made with another key
    /// (or altered); [`CredentialError::Malformed`] or
    /// [`CredentialError::UnsupportedVersion`] if it is not a key check at all.
    pub fn verify_key_check(&self, check: &[u8]) -> Result<()> {
        match sealed::open(self.bytes(), check, KEY_CHECK_AAD) {
            Ok(plaintext) if plaintext == KEY_CHECK_PLAINTEXT => Ok(()),
            Ok(_) | Err(CredentialError::DecryptionFailed) => Err(CredentialError::WrongMasterKey),
            Err(other) => Err(other),
        }
    }

    /// Encrypts a data key under this master key, bound to `aad` (typically
    /// the organization id's bytes): [`MasterKey::unwrap`] needs the same
    /// `aad`, so a wrapped key copied to another organization does not open.
    ///
    /// The result is [`crate::SEALED_OVERHEAD`] + 32 = 61 bytes.
    ///
    /// # Panics
    ///
    /// If the operating system's random generator fails.
    #[must_use]
    pub fn wrap(&self, data_key: &DataKey, aad: &[u8]) -> Vec<u8> {
        sealed::seal(self.bytes(), data_key.bytes(), &wrap_aad(aad))
    }

    /// Decrypts a data key made by [`MasterKey::wrap`] with the same `aad`.
    ///
    /// # Errors
    ///
    /// [`CredentialError::DecryptionFailed`] for another master key, another
    /// `aad` or altered bytes; [`CredentialError::Malformed`] or
    /// [`CredentialError::UnsupportedVersion`] for bytes that are no wrapped key.
    pub fn unwrap(&self, wrapped: &[u8], aad: &[u8]) -> Result<DataKey> {
        let mut plaintext = sealed::open(self.bytes(), wrapped, &wrap_aad(aad))?;
        let key = DataKey::from_slice(&plaintext);
        plaintext.zeroize();
        key.ok_or(CredentialError::Malformed(
            "wrapped data key has the wrong length",
        ))
    }

    pub(crate) fn from_passphrase(passphrase: &str, salt: &[u8], iterations: u32) -> Self {
        Self {
            bytes: SecretBox::init_with_mut(|bytes: &mut [u8; KEY_LEN]| {
                pbkdf2::pbkdf2_hmac::<Sha256>(passphrase.as_bytes(), salt, iterations, bytes);
            }),
        }
    }

    pub(crate) fn bytes(&self) -> &[u8; KEY_LEN] {
        self.bytes.expose_secret()
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(*****)")
    }
}

/// A new random salt for a passphrase master key, to be stored by the caller
/// (it is not secret) and given to every later [`MasterKey::from_setting`].
///
/// # Panics
///
/// If the operating system's random generator fails.
#[must_use]
pub fn generate_salt() -> [u8; SALT_LEN] {
    let mut salt = [0u8; SALT_LEN];
    fill_random(&mut salt);
    salt
}

/// The key that `value` (already trimmed) encodes, if it is base64 of
/// exactly 32 bytes in either alphabet.
pub(crate) fn decode_raw_key(value: &str) -> Option<MasterKey> {
    // The decoder wants room for its length estimate (33 bytes for 44 chars).
    let mut buffer = Zeroizing::new([0u8; 48]);
    for engine in [&STANDARD_ANY_PADDING, &URL_SAFE_ANY_PADDING] {
        if let Ok(KEY_LEN) = engine.decode_slice(value, &mut buffer[..]) {
            let key = SecretBox::init_with_mut(|bytes: &mut [u8; KEY_LEN]| {
                bytes.copy_from_slice(&buffer[..KEY_LEN]);
            });
            return Some(MasterKey { bytes: key });
        }
    }
    None
}

fn wrap_aad(aad: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + WRAP_LABEL.len() + aad.len());
    sealed::push_field(&mut out, WRAP_LABEL);
    sealed::push_field(&mut out, aad);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Computed independently: Python
    /// `hashlib.pbkdf2_hmac("sha256", PASSPHRASE, SALT, 600_000, 32)`.
    /// Pins the derivation: if this changes, existing databases break.
    const PASSPHRASE_KEY_HEX: &str =
        "6e1a892eb6d870ca95d3a7d329ea81379256cadcae19e1355628db0b57bcac67";
    const PASSPHRASE: &str = "correct horse battery staple";
    const SALT: &[u8] = b"tollgate-test-salt";

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|byte| format!("{byte:02x}")).collect()
    }

    fn key_of(bytes: [u8; KEY_LEN]) -> MasterKey {
        decode_raw_key(&STANDARD.encode(bytes)).unwrap()
    }

    #[test]
    fn base64_setting_of_32_bytes_is_the_key_itself() {
        let bytes: [u8; KEY_LEN] = std::array::from_fn(|i| i as u8);
        let setting = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

        let key = MasterKey::from_setting(setting, &[]).unwrap();

        assert!(MasterKey::is_raw_key_setting(setting));
        assert_eq!(key.bytes(), &bytes);
    }

    #[test]
    fn base64_setting_accepts_url_safe_unpadded_and_surrounding_whitespace() {
        let bytes: [u8; KEY_LEN] = std::array::from_fn(|i| 200 + i as u8);

        for setting in [
            "yMnKy8zNzs_Q0dLT1NXW19jZ2tvc3d7f4OHi4-Tl5uc=",
            "yMnKy8zNzs_Q0dLT1NXW19jZ2tvc3d7f4OHi4-Tl5uc",
            "yMnKy8zNzs/Q0dLT1NXW19jZ2tvc3d7f4OHi4+Tl5uc",
            "  yMnKy8zNzs/Q0dLT1NXW19jZ2tvc3d7f4OHi4+Tl5uc=\n",
        ] {
            assert!(MasterKey::is_raw_key_setting(setting), "{setting}");
            let key = MasterKey::from_setting(setting, &[]).unwrap();
            assert_eq!(key.bytes(), &bytes, "{setting}");
        }
    }

    #[test]
    fn base64_of_another_length_is_a_passphrase() {
        // 16 bytes of base64: not a key, so it needs a salt like any passphrase.
        let setting = "AAECAwQFBgcICQoLDA0ODw==";

        let err = MasterKey::from_setting(setting, &[]).unwrap_err();

        assert!(!MasterKey::is_raw_key_setting(setting));
        assert!(matches!(
            err,
            CredentialError::SaltTooShort { min: 16, actual: 0 }
        ));
    }

    #[test]
    fn empty_setting_is_refused() {
        assert!(!MasterKey::is_raw_key_setting(" \n"));
        assert!(matches!(
            MasterKey::from_setting(" \n", &generate_salt()),
            Err(CredentialError::EmptySetting)
        ));
    }

    #[test]
    fn passphrase_setting_is_pbkdf2_sha256_600k_and_repeatable() {
        let first = MasterKey::from_setting(PASSPHRASE, SALT).unwrap();
        // Surrounding whitespace is trimmed like for a base64 setting.
        let second = MasterKey::from_setting(&format!(" {PASSPHRASE}\n"), SALT).unwrap();

        assert!(!MasterKey::is_raw_key_setting(PASSPHRASE));
        assert_eq!(hex(first.bytes()), PASSPHRASE_KEY_HEX);
        assert_eq!(first.bytes(), second.bytes());
    }

    #[test]
    fn passphrase_with_another_salt_gives_another_key() {
        let key = MasterKey::from_setting(PASSPHRASE, b"another-test-salt").unwrap();

        assert_ne!(hex(key.bytes()), PASSPHRASE_KEY_HEX);
    }

    #[test]
    fn passphrase_derivation_matches_rfc7914_vector() {
        // RFC 7914 section 11: PBKDF2-HMAC-SHA256("passwd", "salt", 1), first 32 bytes.
        let key = MasterKey::from_passphrase("passwd", b"salt", 1);

        assert_eq!(
            hex(key.bytes()),
            "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc"
        );
    }

    #[test]
    fn generated_keys_differ_and_round_trip_through_base64() {
        let key = MasterKey::generate();
        let encoded = key.to_base64();

        let decoded = MasterKey::from_setting(encoded.expose_secret(), &[]).unwrap();

        assert_eq!(encoded.expose_secret().len(), 44);
        assert_eq!(decoded.bytes(), key.bytes());
        assert_ne!(MasterKey::generate().bytes(), key.bytes());
    }

    #[test]
    fn generated_salts_are_16_random_bytes() {
        assert_eq!(generate_salt().len(), SALT_LEN);
        assert_ne!(generate_salt(), generate_salt());
    }

    #[test]
    fn key_check_verifies_with_the_same_key() {
        let key = MasterKey::generate();

        let check = key.key_check();

        key.verify_key_check(&check).unwrap();
    }

    #[test]
    fn key_check_refuses_another_master_key() {
        let check = MasterKey::generate().key_check();

        let err = MasterKey::generate().verify_key_check(&check).unwrap_err();

        assert!(matches!(err, CredentialError::WrongMasterKey));
    }

    #[test]
    fn key_check_refuses_a_wrapped_data_key() {
        let key = MasterKey::generate();
        let wrapped = key.wrap(&DataKey::generate(), b"tollgate-key-check");

        let err = key.verify_key_check(&wrapped).unwrap_err();

        assert!(matches!(err, CredentialError::WrongMasterKey));
    }

    #[test]
    fn key_check_reports_garbage_as_malformed() {
        let err = MasterKey::generate()
            .verify_key_check(&[1, 2, 3])
            .unwrap_err();

        assert!(matches!(err, CredentialError::Malformed(_)));
    }

    #[test]
    fn unwrap_returns_the_wrapped_data_key() {
        let master = MasterKey::generate();
        let data_key = DataKey::generate();
        let sealed = data_key.seal(b"sk-secret", b"aad");

        let wrapped = master.wrap(&data_key, b"org_1");
        let unwrapped = master.unwrap(&wrapped, b"org_1").unwrap();

        assert_eq!(wrapped.len(), sealed::SEALED_OVERHEAD + KEY_LEN);
        assert_eq!(unwrapped.bytes(), data_key.bytes());
        assert_eq!(
            unwrapped.open(&sealed, b"aad").unwrap().expose_secret(),
            "sk-secret"
        );
    }

    #[test]
    fn unwrap_with_another_master_key_fails() {
        let wrapped = MasterKey::generate().wrap(&DataKey::generate(), b"org_1");

        let err = MasterKey::generate()
            .unwrap(&wrapped, b"org_1")
            .unwrap_err();

        assert!(matches!(err, CredentialError::DecryptionFailed));
    }

    #[test]
    fn unwrap_for_another_organization_fails() {
        let master = MasterKey::generate();
        let wrapped = master.wrap(&DataKey::generate(), b"org_1");

        let err = master.unwrap(&wrapped, b"org_2").unwrap_err();

        assert!(matches!(err, CredentialError::DecryptionFailed));
    }

    #[test]
    fn unwrap_refuses_a_key_check() {
        let master = MasterKey::generate();

        let err = master
            .unwrap(&master.key_check(), KEY_CHECK_AAD)
            .unwrap_err();

        assert!(matches!(err, CredentialError::DecryptionFailed));
    }

    #[test]
    fn debug_shows_no_key_material() {
        let key = key_of([0xab; KEY_LEN]);

        let debug = format!("{key:?} {key:#?}");

        assert_eq!(format!("{key:?}"), "MasterKey(*****)");
        assert!(!debug.contains(key.to_base64().expose_secret()), "{debug}");
        assert!(!debug.contains("q6ur"), "{debug}");
        assert!(!debug.contains("171"), "{debug}");
        assert!(!debug.to_lowercase().contains("ab"), "{debug}");
    }

    #[test]
    fn to_base64_debug_is_redacted() {
        let key = MasterKey::generate();
        let encoded = key.to_base64();

        assert!(!format!("{encoded:?}").contains(encoded.expose_secret()));
    }
}

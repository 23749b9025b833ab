//! The one error type of this crate.
//!
//! No variant carries key material, a passphrase or a plaintext: messages
//! name what went wrong and, for files, the path, never the content.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong in `tollgate-credentials`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CredentialError {
    /// The master key setting was empty or only whitespace.
    #[error("the master key setting is empty")]
    EmptySetting,

    /// A passphrase was given with a salt shorter than [`crate::SALT_LEN`].
    #[error("the passphrase salt must be at least {min} bytes long, got {actual}")]
    SaltTooShort {
        /// Minimum salt length in bytes.
        min: usize,
        /// Length of the salt that was given.
        actual: usize,
    },

    /// The master key is not the one the stored key check was made with.
    #[error(
        "the master key is not the one this database was set up with \
         (TOLLGATE_MASTER_KEY changed, or the passphrase salt was lost)"
    )]
    WrongMasterKey,

    /// Authenticated decryption failed: wrong key, different associated data
    /// (another organization or provider), or altered ciphertext. AES-GCM
    /// cannot tell these apart, and neither can we.
    #[error(
        "cannot decrypt: wrong key, associated data of another organization or provider, \
         or altered ciphertext"
    )]
    DecryptionFailed,

    /// An encrypted value is structurally invalid (e.g. too short).
    #[error("malformed encrypted value: {0}")]
    Malformed(&'static str),

    /// An encrypted value starts with a format version this build does not know.
    #[error("encrypted value has unsupported format version {0}")]
    UnsupportedVersion(u8),

    /// A decrypted secret was expected to be text but is not valid UTF-8.
    #[error("the decrypted secret is not valid UTF-8")]
    NotUtf8,

    /// The development key file exists but does not hold a base64 32-byte key.
    #[error(
        "the development master key file {path} does not hold a base64-encoded 32-byte key; \
         fix it or set TOLLGATE_MASTER_KEY (data encrypted under a lost key cannot be recovered)"
    )]
    MalformedKeyFile {
        /// Path of the key file.
        path: PathBuf,
    },

    /// The development key file is accessible by group or others.
    #[error(
        "the development master key file {path} is accessible by group or others \
         (mode {mode:03o}); restrict it with `chmod 600` and start again"
    )]
    InsecureKeyFile {
        /// Path of the key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },

    /// Reading or writing the development key file failed.
    #[error("cannot {action} the development master key file {path}")]
    KeyFileIo {
        /// What was being done: "create", "write", "open", "read".
        action: &'static str,
        /// Path of the key file.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: io::Error,
    },

    /// No such credential in this organization (or it was deleted).
    #[error("provider credential not found")]
    NotFound,

    /// The organization already has an active credential for this provider;
    /// at most one may be active.
    #[error(
        "the organization already has an active credential for provider `{provider}`; \
         deactivate it first, or create this one with \"active\": false"
    )]
    ActiveConflict {
        /// The provider both credentials are for.
        provider: String,
    },

    /// A field of a request is invalid. The message never holds the key.
    #[error("invalid {field}: {message}")]
    Invalid {
        /// The field, as the API names it.
        field: &'static str,
        /// What is wrong with it.
        message: String,
    },

    /// The master key was rotated (by `tollgate keys rotate`) after this
    /// process started: it can still read what exists, but a new data key
    /// wrapped under the old master key would be unreadable for the others.
    #[error(
        "the master key was rotated after this gateway started; \
         restart it with the new TOLLGATE_MASTER_KEY"
    )]
    MasterKeyRotated,

    /// A master-key record in `system_settings` is not what Tollgate wrote.
    #[error("the stored {0} is malformed")]
    CorruptSetting(&'static str),

    /// The database failed.
    #[error(transparent)]
    Db(#[from] sqlx::Error),

    /// The error of a read that several requests waited for together (an
    /// organization's key, read once for all of them): see [`Self::unshared`].
    #[error(transparent)]
    Shared(std::sync::Arc<CredentialError>),
}

impl CredentialError {
    /// The error itself, whether or not several requests share it.
    pub fn unshared(&self) -> &CredentialError {
        match self {
            CredentialError::Shared(e) => e.unshared(),
            e => e,
        }
    }
}

/// Result with [`CredentialError`].
pub type Result<T, E = CredentialError> = std::result::Result<T, E>;

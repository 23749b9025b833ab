//! Other secrets an organization owns (such as its outbound webhook signing
//! secrets), sealed by the same data key as its provider keys, so that a
//! master-key rotation covers them too.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use secrecy::SecretString;

use super::CredentialStore;
use super::data_keys::CURRENT_DATA_KEY_VERSION;
use crate::error::{CredentialError, Result};
use crate::sealed;

/// Label that starts the associated data of a sealed organization secret.
const SECRET_LABEL: &[u8] = b"tollgate-org-secret";

fn secret_aad(organization_id: &str, label: &str) -> Vec<u8> {
    let mut out =
        Vec::with_capacity(3 * 8 + SECRET_LABEL.len() + organization_id.len() + label.len());
    sealed::push_field(&mut out, SECRET_LABEL);
    sealed::push_field(&mut out, organization_id.as_bytes());
    sealed::push_field(&mut out, label.as_bytes());
    out
}

impl CredentialStore {
    /// Seals `secret` under the organization's data key, bound to `label`
    /// (e.g. the id of the row that stores it), inside `tx`. The answer is
    /// text to store: `<data key version>.<base64 ciphertext>`.
    ///
    /// # Errors
    ///
    /// [`CredentialError::MasterKeyRotated`], [`CredentialError::Db`].
    pub async fn seal_secret(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        organization_id: &str,
        label: &str,
        secret: &str,
    ) -> Result<String> {
        let data_key = self.data_key_for_write(tx, organization_id).await?;
        let sealed = data_key.seal(secret.as_bytes(), &secret_aad(organization_id, label));
        Ok(format!(
            "{CURRENT_DATA_KEY_VERSION}.{}",
            STANDARD.encode(sealed)
        ))
    }

    /// Opens what [`CredentialStore::seal_secret`] sealed with the same
    /// organization and label.
    ///
    /// # Errors
    ///
    /// [`CredentialError::Malformed`] for text that is not a sealed secret,
    /// the crypto errors of a seal that does not open, [`CredentialError::Db`].
    pub async fn open_secret(
        &self,
        organization_id: &str,
        label: &str,
        stored: &str,
    ) -> Result<SecretString> {
        let (version, encoded) = stored
            .split_once('.')
            .ok_or(CredentialError::Malformed("sealed secret"))?;
        let version: i64 = version
            .parse()
            .map_err(|_| CredentialError::Malformed("sealed secret version"))?;
        let sealed = STANDARD
            .decode(encoded)
            .map_err(|_| CredentialError::Malformed("sealed secret encoding"))?;
        let data_key = self.data_key_for_read(organization_id, version).await?;
        data_key.open(&sealed, &secret_aad(organization_id, label))
    }
}

//! An organization's members (its users) and invitations to join it.
//!
//! An invitation names an email and a role (`org_admin` or `org_member`).
//! Its token (`tginv_<40 alphanumeric>`) is returned once; only its SHA-256
//! is stored. It expires after [`INVITATION_TTL_SECS`] and can be accepted
//! once: accepting creates the user, with the password the invitee chooses,
//! in the same transaction that marks the invitation used. A pending
//! invitation (not accepted, not expired) can be listed, without its token,
//! and revoked: its row is deleted, so its token no longer finds it.

use crate::users::{
    hash_in_background, insert_user, normalized_email, user_from_row, valid_password,
};
use crate::{Role, TenantError, Tenants, User};
use rand::Rng;
use rand::distr::Alphanumeric;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::Row;
use tollgate_core::{ids, time};

/// How long an invitation can be accepted, in seconds (7 days).
pub const INVITATION_TTL_SECS: i64 = 7 * 24 * 3600;
const TOKEN_PREFIX: &str = "tginv_";
const TOKEN_SECRET_LEN: usize = 40;

/// An invitation as stored (never its token).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Invitation {
    pub id: String,
    pub organization_id: String,
    pub email: String,
    pub role: Role,
    /// Unix seconds.
    pub expires_at: i64,
    /// Unix seconds.
    pub created_at: i64,
}

/// A fresh invitation: the only time its token exists outside the invitee.
pub struct CreatedInvitation {
    pub invitation: Invitation,
    pub token: SecretString,
}

fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.trim().as_bytes()))
}

/// The columns [`invitation_from_row`] reads.
const INVITATION_COLUMNS: &str =
    "i.id, i.organization_id, i.email, i.role, i.expires_at, i.created_at";

/// Times are stored in milliseconds and shown in seconds.
fn invitation_from_row(row: &sqlx::any::AnyRow) -> Result<Invitation, TenantError> {
    let role: String = row.try_get("role")?;
    let expires_at: i64 = row.try_get("expires_at")?;
    let created_at: i64 = row.try_get("created_at")?;
    Ok(Invitation {
        id: row.try_get("id")?,
        organization_id: row.try_get("organization_id")?,
        email: row.try_get("email")?,
        role: role.parse()?,
        expires_at: expires_at / 1000,
        created_at: created_at / 1000,
    })
}

fn invalid_token() -> TenantError {
    TenantError::Invalid {
        field: "token",
        message: "is unknown, expired or already used".into(),
    }
}

impl Tenants {
    /// The organization's users, oldest first.
    pub async fn list_members(&self, organization_id: &str) -> Result<Vec<User>, TenantError> {
        self.organization(organization_id).await?;
        let rows = sqlx::query(
            "SELECT id, email, role, organization_id, created_at FROM users \
             WHERE organization_id = $1 ORDER BY created_at, id",
        )
        .bind(organization_id)
        .fetch_all(self.db.pool())
        .await?;
        Ok(rows
            .iter()
            .map(user_from_row)
            .collect::<Result<Vec<_>, _>>()?)
    }

    /// Removes a user from the organization: the user is deleted and can no
    /// longer sign in or refresh a token.
    pub async fn remove_member(
        &self,
        organization_id: &str,
        user_id: &str,
    ) -> Result<(), TenantError> {
        self.organization(organization_id).await?;
        let done = sqlx::query("DELETE FROM users WHERE id = $1 AND organization_id = $2")
            .bind(user_id)
            .bind(organization_id)
            .execute(self.db.pool())
            .await?;
        if done.rows_affected() == 0 {
            return Err(TenantError::UserNotFound);
        }
        Ok(())
    }

    /// Invites `email` to join the organization with `role` (`org_admin` or
    /// `org_member`). An email that already has a user is a conflict.
    pub async fn create_invitation(
        &self,
        organization_id: &str,
        email: &str,
        role: Role,
    ) -> Result<CreatedInvitation, TenantError> {
        let email = normalized_email(email)?;
        if role == Role::PlatformAdmin {
            return Err(TenantError::Invalid {
                field: "role",
                message: "must be org_admin or org_member".into(),
            });
        }
        self.organization(organization_id).await?;
        let taken = sqlx::query("SELECT id FROM users WHERE email = $1")
            .bind(&email)
            .fetch_optional(self.db.pool())
            .await?;
        if taken.is_some() {
            return Err(TenantError::Conflict(
                "a user with this email already exists",
            ));
        }
        let secret: String = rand::rng()
            .sample_iter(&Alphanumeric)
            .take(TOKEN_SECRET_LEN)
            .map(char::from)
            .collect();
        let token = format!("{TOKEN_PREFIX}{secret}");
        let now = time::now_millis();
        let expires_at = now + INVITATION_TTL_SECS * 1000;
        let invitation = Invitation {
            id: ids::new_id("inv"),
            organization_id: organization_id.to_owned(),
            email,
            role,
            expires_at: expires_at / 1000,
            created_at: now / 1000,
        };
        sqlx::query(
            "INSERT INTO invitations (id, organization_id, email, role, token_hash, expires_at, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&invitation.id)
        .bind(&invitation.organization_id)
        .bind(&invitation.email)
        .bind(role.as_str())
        .bind(token_hash(&token))
        .bind(expires_at)
        .bind(now)
        .execute(self.db.pool())
        .await?;
        Ok(CreatedInvitation {
            invitation,
            token: SecretString::from(token),
        })
    }

    /// The organization's pending invitations (neither accepted nor
    /// expired), newest first: up to `limit`, older than the invitation
    /// `before` when given.
    pub async fn list_invitations(
        &self,
        organization_id: &str,
        limit: i64,
        before: Option<&str>,
    ) -> Result<Vec<Invitation>, TenantError> {
        self.organization(organization_id).await?;
        // Invitation ids are UUIDv7, in creation order: `before` needs no
        // row of its own, so a cursor whose invitation was revoked (deleted)
        // or accepted since still pages on.
        let sql = format!(
            "SELECT {INVITATION_COLUMNS} FROM invitations i WHERE i.organization_id = $1 \
             AND i.accepted_at IS NULL AND i.expires_at > $2 AND ($3 IS NULL OR i.id < $3) \
             ORDER BY i.id DESC LIMIT $4"
        );
        let rows = sqlx::query(&sql)
            .bind(organization_id)
            .bind(time::now_millis())
            .bind(before)
            .bind(limit)
            .fetch_all(self.db.pool())
            .await?;
        rows.iter().map(invitation_from_row).collect()
    }

    /// Revokes a pending invitation of this organization: it is deleted, and
    /// its token can no longer be accepted. An unknown, accepted or expired
    /// invitation, or one of another organization, is not found.
    pub async fn revoke_invitation(
        &self,
        organization_id: &str,
        invitation_id: &str,
    ) -> Result<(), TenantError> {
        self.organization(organization_id).await?;
        // An acceptance in flight claims the row with `accepted_at IS NULL`
        // in its own transaction: either it claims it first (and this finds
        // nothing to revoke) or it finds the row gone and is refused.
        let done = sqlx::query(
            "DELETE FROM invitations WHERE id = $1 AND organization_id = $2 \
             AND accepted_at IS NULL AND expires_at > $3",
        )
        .bind(invitation_id)
        .bind(organization_id)
        .bind(time::now_millis())
        .execute(self.db.pool())
        .await?;
        if done.rows_affected() == 0 {
            return Err(TenantError::InvitationNotFound);
        }
        Ok(())
    }

    /// Accepts an invitation: creates its user with this password and marks
    /// the invitation used, in one transaction. An unknown, expired or used
    /// token, or one of a deleted organization, is refused.
    pub async fn accept_invitation(
        &self,
        token: &SecretString,
        password: &SecretString,
    ) -> Result<User, TenantError> {
        valid_password(password)?;
        let hash = token_hash(token.expose_secret());
        let now = time::now_millis();
        let row = sqlx::query(
            "SELECT i.id, i.organization_id, i.email, i.role FROM invitations i \
             JOIN organizations o ON o.id = i.organization_id \
             WHERE i.token_hash = $1 AND i.accepted_at IS NULL AND i.expires_at > $2 \
             AND o.deleted_at IS NULL",
        )
        .bind(&hash)
        .bind(now)
        .fetch_optional(self.db.pool())
        .await?
        .ok_or_else(invalid_token)?;
        let invitation_id: String = row.try_get("id")?;
        let role: String = row.try_get("role")?;
        let user = User {
            id: ids::new_id("usr"),
            email: row.try_get("email")?,
            role: role.parse()?,
            organization_id: Some(row.try_get("organization_id")?),
            created_at: now / 1000,
        };
        let password_hash = hash_in_background(password).await?;
        let mut tx = self.db.begin_write().await?;
        // Single use, even when two accept at once: only one update matches.
        let claimed = sqlx::query(
            "UPDATE invitations SET accepted_at = $1 WHERE id = $2 AND accepted_at IS NULL",
        )
        .bind(now)
        .bind(&invitation_id)
        .execute(&mut *tx)
        .await?;
        if claimed.rows_affected() == 0 {
            return Err(invalid_token());
        }
        insert_user(&mut *tx, &user, &password_hash, now).await?;
        tx.commit().await?;
        Ok(user)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_found_by_its_hash_whatever_the_surrounding_whitespace() {
        assert_eq!(token_hash(" tginv_abc \n"), token_hash("tginv_abc"));
        assert_ne!(token_hash("tginv_abc"), token_hash("tginv_abd"));
    }
}

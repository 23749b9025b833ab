//! Management users: people who sign in with an email and a password.
//!
//! Passwords are hashed with Argon2id at OWASP's parameters (19 MiB, two
//! passes, one lane), in the PHC string format, on a blocking thread. Failed
//! sign-ins are counted per email in the database (so across replicas):
//! from the fifth in a row, the next attempt must wait, twice as long after
//! each further failure, up to 15 minutes. An unknown email costs the same
//! hash as a known one and is counted alike, so neither timing nor the
//! answers tell which emails exist.

use crate::{TenantError, Tenants};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use sqlx::Row;
use std::str::FromStr;
use std::sync::LazyLock;
use tollgate_core::{ids, time};

/// Failures in a row before sign-ins for an email start to wait.
const FREE_FAILURES: i64 = 4;
/// The longest wait, in seconds.
const MAX_LOCK_SECS: i64 = 900;

/// What a user may do on the management API.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything, like `TOLLGATE_ADMIN_TOKEN`.
    PlatformAdmin,
    /// Its organization: keys, credentials, members, usage.
    OrgAdmin,
    /// Its organization, read only: usage and keys.
    OrgMember,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::PlatformAdmin => "platform_admin",
            Role::OrgAdmin => "org_admin",
            Role::OrgMember => "org_member",
        }
    }
}

impl FromStr for Role {
    type Err = TenantError;
    fn from_str(s: &str) -> Result<Role, TenantError> {
        match s {
            "platform_admin" => Ok(Role::PlatformAdmin),
            "org_admin" => Ok(Role::OrgAdmin),
            "org_member" => Ok(Role::OrgMember),
            _ => Err(TenantError::Invalid {
                field: "role",
                message: "must be platform_admin, org_admin or org_member".into(),
            }),
        }
    }
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct User {
    pub id: String,
    pub email: String,
    pub role: Role,
    pub organization_id: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
}

/// What an admin asks for when creating a user.
#[derive(Debug)]
pub struct NewUser<'a> {
    pub email: &'a str,
    pub password: &'a SecretString,
    pub role: Role,
    pub organization_id: Option<&'a str>,
}

#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error("invalid email or password")]
    Invalid,
    #[error("too many failed sign-ins; retry in {retry_after} s")]
    Locked { retry_after: u64 },
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    #[error("password hashing failed: {0}")]
    Hash(String),
}

fn argon2() -> Argon2<'static> {
    // OWASP: m = 19 MiB, t = 2, p = 1 (also argon2's defaults, pinned here).
    let params = Params::new(19 * 1024, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes a password (Argon2id, random salt) into a PHC string.
pub fn hash_password(password: &str) -> Result<String, String> {
    let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>()).map_err(|e| e.to_string())?;
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// Whether `password` matches the PHC string `hash`.
pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| {
        argon2()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

/// Compared against when the email is unknown, so that it costs the same.
static DUMMY_HASH: LazyLock<String> =
    LazyLock::new(|| hash_password("tollgate dummy password").unwrap_or_default());

pub(crate) fn normalized_email(email: &str) -> Result<String, TenantError> {
    let email = email.trim().to_lowercase();
    let valid = email.chars().count() <= 254
        && !email.contains(char::is_whitespace)
        && !email.contains('\0')
        && email
            .split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && !domain.is_empty());
    if valid {
        Ok(email)
    } else {
        Err(TenantError::Invalid {
            field: "email",
            message: "must be an email address (at most 254 characters)".into(),
        })
    }
}

/// 12 to 1024 characters, without NUL.
pub(crate) fn valid_password(password: &SecretString) -> Result<(), TenantError> {
    let password = password.expose_secret();
    let length = password.chars().count();
    if !(12..=1024).contains(&length) || password.contains('\0') {
        return Err(TenantError::Invalid {
            field: "password",
            message: "must be 12 to 1024 characters, without NUL".into(),
        });
    }
    Ok(())
}

/// [`hash_password`] on a blocking thread.
pub(crate) async fn hash_in_background(password: &SecretString) -> Result<String, TenantError> {
    let password = password.expose_secret().to_owned();
    tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(|e| TenantError::Internal(e.to_string()))?
        .map_err(TenantError::Internal)
}

/// Inserts a user; a taken email is [`TenantError::Conflict`].
pub(crate) async fn insert_user<'c>(
    conn: impl sqlx::Executor<'c, Database = sqlx::Any>,
    user: &User,
    password_hash: &str,
    now: i64,
) -> Result<(), TenantError> {
    let inserted = sqlx::query(
        "INSERT INTO users (id, email, password_hash, role, organization_id, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $6) ON CONFLICT (email) DO NOTHING",
    )
    .bind(&user.id)
    .bind(&user.email)
    .bind(password_hash)
    .bind(user.role.as_str())
    .bind(user.organization_id.as_deref())
    .bind(now)
    .execute(conn)
    .await?;
    if inserted.rows_affected() == 0 {
        return Err(TenantError::Conflict(
            "a user with this email already exists",
        ));
    }
    Ok(())
}

pub(crate) fn user_from_row(row: &sqlx::any::AnyRow) -> Result<User, sqlx::Error> {
    let role: String = row.try_get("role")?;
    Ok(User {
        id: row.try_get("id")?,
        email: row.try_get("email")?,
        role: role.parse().map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
        organization_id: row.try_get("organization_id")?,
        created_at: row.try_get::<i64, _>("created_at")? / 1000,
    })
}

impl Tenants {
    /// Creates a user. A platform admin has no organization; the other roles
    /// need an existing one. A taken email is [`TenantError::Conflict`].
    pub async fn create_user(&self, new: NewUser<'_>) -> Result<User, TenantError> {
        let email = normalized_email(new.email)?;
        valid_password(new.password)?;
        let organization_id = match (new.role, new.organization_id) {
            (Role::PlatformAdmin, None) => None,
            (Role::PlatformAdmin, Some(_)) => {
                return Err(TenantError::Invalid {
                    field: "organization_id",
                    message: "must be omitted for a platform_admin".into(),
                });
            }
            (_, None) => {
                return Err(TenantError::Invalid {
                    field: "organization_id",
                    message: "is required for org_admin and org_member".into(),
                });
            }
            (_, Some(org)) => Some(self.organization(org).await?.id),
        };
        let hash = hash_in_background(new.password).await?;
        let now = time::now_millis();
        let user = User {
            id: ids::new_id("usr"),
            email,
            role: new.role,
            organization_id,
            created_at: now / 1000,
        };
        insert_user(self.db.pool(), &user, &hash, now).await?;
        Ok(user)
    }

    /// Every user, newest first: up to `limit`, only those older than the
    /// user `before` when given. Users of deleted organizations are gone.
    pub async fn list_users(
        &self,
        limit: i64,
        before: Option<&str>,
    ) -> Result<Vec<User>, TenantError> {
        let rows = sqlx::query(
            "SELECT u.id, u.email, u.role, u.organization_id, u.created_at FROM users u \
             LEFT JOIN organizations o ON o.id = u.organization_id \
             WHERE o.deleted_at IS NULL AND ($1 IS NULL OR u.id < $1) \
             ORDER BY u.id DESC LIMIT $2",
        )
        .bind(before)
        .bind(limit)
        .fetch_all(self.db.pool())
        .await?;
        Ok(rows
            .iter()
            .map(user_from_row)
            .collect::<Result<Vec<_>, _>>()?)
    }

    /// The user, or [`TenantError::UserNotFound`] (also for a user of a
    /// deleted organization).
    pub async fn user(&self, id: &str) -> Result<User, TenantError> {
        let row = sqlx::query(
            "SELECT u.id, u.email, u.role, u.organization_id, u.created_at FROM users u \
             LEFT JOIN organizations o ON o.id = u.organization_id \
             WHERE u.id = $1 AND o.deleted_at IS NULL",
        )
        .bind(id)
        .fetch_optional(self.db.pool())
        .await?
        .ok_or(TenantError::UserNotFound)?;
        Ok(user_from_row(&row)?)
    }

    /// Checks an email and password, with brute-force protection.
    pub async fn sign_in(&self, email: &str, password: &SecretString) -> Result<User, LoginError> {
        let email = email.trim().to_lowercase();
        let now = time::now_millis();
        let failures = sqlx::query("SELECT locked_until FROM login_failures WHERE email = $1")
            .bind(&email)
            .fetch_optional(self.db.pool())
            .await?;
        if let Some(row) = failures {
            let locked_until: i64 = row.try_get("locked_until")?;
            if locked_until > now {
                let wait_ms = u64::try_from(locked_until - now).unwrap_or(0);
                return Err(LoginError::Locked {
                    retry_after: wait_ms.div_ceil(1000).max(1),
                });
            }
        }
        let row = sqlx::query(
            "SELECT u.id, u.email, u.role, u.organization_id, u.created_at, u.password_hash \
             FROM users u LEFT JOIN organizations o ON o.id = u.organization_id \
             WHERE u.email = $1 AND o.deleted_at IS NULL",
        )
        .bind(&email)
        .fetch_optional(self.db.pool())
        .await?;
        let hash = match &row {
            Some(row) => row.try_get::<String, _>("password_hash")?,
            None => DUMMY_HASH.clone(),
        };
        let presented = password.expose_secret().to_owned();
        let matches = tokio::task::spawn_blocking(move || verify_password(&presented, &hash))
            .await
            .map_err(|e| LoginError::Hash(e.to_string()))?;
        match row {
            Some(row) if matches => {
                sqlx::query("DELETE FROM login_failures WHERE email = $1")
                    .bind(&email)
                    .execute(self.db.pool())
                    .await?;
                Ok(user_from_row(&row)?)
            }
            _ => {
                self.record_failure(&email, now).await?;
                Err(LoginError::Invalid)
            }
        }
    }

    async fn record_failure(&self, email: &str, now: i64) -> Result<(), sqlx::Error> {
        let mut tx = self.db.begin_write().await?;
        sqlx::query(
            "INSERT INTO login_failures (email, failures, locked_until, updated_at) VALUES ($1, 0, 0, $2) \
             ON CONFLICT (email) DO NOTHING",
        )
        .bind(email)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let failures: i64 = sqlx::query(
            "UPDATE login_failures SET failures = failures + 1, updated_at = $2 WHERE email = $1 RETURNING failures",
        )
        .bind(email)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?
        .try_get("failures")?;
        if failures > FREE_FAILURES {
            let exponent = u32::try_from((failures - FREE_FAILURES - 1).min(10)).unwrap_or(10);
            let wait_secs = (1_i64 << exponent).min(MAX_LOCK_SECS);
            sqlx::query("UPDATE login_failures SET locked_until = $2 WHERE email = $1")
                .bind(email)
                .bind(now + wait_secs * 1000)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_hashed_with_argon2id_at_owasp_parameters() {
        let hash = hash_password("correct horse battery staple").unwrap();

        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert!(verify_password("correct horse battery staple", &hash));
        assert!(!verify_password("correct horse battery stapler", &hash));
        assert!(!verify_password("anything", "not a phc string"));
        // A fresh salt each time.
        assert_ne!(hash, hash_password("correct horse battery staple").unwrap());
    }

    #[test]
    fn emails_are_normalized_and_checked() {
        assert_eq!(
            normalized_email("  Ada@Example.COM ").unwrap(),
            "ada@example.com"
        );
        for bad in [
            "",
            "ada",
            "@example.com",
            "ada@",
            "a da@example.com",
            "ada@ex\0ample.com",
        ] {
            assert!(normalized_email(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn roles_round_trip_through_their_names() {
        for role in [Role::PlatformAdmin, Role::OrgAdmin, Role::OrgMember] {
            assert_eq!(role.as_str().parse::<Role>().unwrap(), role);
        }
        assert!("owner".parse::<Role>().is_err());
    }
}

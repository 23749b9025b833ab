//! Management JWTs: HS256 only, signed with `TOLLGATE_JWT_SECRET` (in
//! development, a random secret generated once and kept in the database's
//! `system_settings`, so that every replica and restart shares it).
//!
//! A token carries `sub` (user id), `org` (organization id, null for a
//! platform admin), `role`, `iat` and `exp`; all are required and checked,
//! and any other algorithm (`none` included) is refused.

use crate::error::ApiError;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use tollgate_core::{Db, time};
use tollgate_tenants::{Role, User};

/// How long a token is valid, in seconds.
pub const TOKEN_TTL_SECS: u64 = 3600;
/// The shortest secret accepted, in bytes.
pub const MIN_SECRET_BYTES: usize = 32;
/// Where the development secret is kept.
const DEV_SECRET_SETTING: &str = "jwt_dev_secret";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    pub sub: String,
    pub org: Option<String>,
    pub role: String,
    pub iat: u64,
    pub exp: u64,
}

/// A verified token's holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenUser {
    pub user_id: String,
    pub role: Role,
    pub organization_id: Option<String>,
}

pub struct Jwt {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl Jwt {
    pub fn new(secret: &[u8]) -> Jwt {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "iat", "sub"]);
        validation.leeway = 5;
        validation.validate_exp = true;
        Jwt {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
        }
    }

    /// A token for this user: `(token, seconds it is valid)`.
    pub fn issue(&self, user: &User) -> Result<(String, u64), ApiError> {
        let now = u64::try_from(time::now_millis() / 1000).unwrap_or(0);
        let claims = Claims {
            sub: user.id.clone(),
            org: user.organization_id.clone(),
            role: user.role.as_str().to_owned(),
            iat: now,
            exp: now + TOKEN_TTL_SECS,
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(ApiError::internal)?;
        Ok((token, TOKEN_TTL_SECS))
    }

    /// The token's holder, or a 401.
    pub fn verify(&self, token: &str) -> Result<TokenUser, ApiError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => {
                    ApiError::unauthorized("token has expired; sign in again")
                }
                _ => ApiError::unauthorized("invalid token"),
            })?;
        let claims = data.claims;
        let now = u64::try_from(time::now_millis() / 1000).unwrap_or(0);
        if claims.iat > now + 60 || claims.exp <= claims.iat {
            return Err(ApiError::unauthorized("invalid token"));
        }
        let role: Role = claims
            .role
            .parse()
            .map_err(|_| ApiError::unauthorized("invalid token"))?;
        let consistent = match role {
            Role::PlatformAdmin => claims.org.is_none(),
            Role::OrgAdmin | Role::OrgMember => {
                claims.org.as_deref().is_some_and(|o| !o.is_empty())
            }
        };
        if !consistent || claims.sub.is_empty() {
            return Err(ApiError::unauthorized("invalid token"));
        }
        Ok(TokenUser {
            user_id: claims.sub,
            role,
            organization_id: claims.org,
        })
    }
}

/// The development secret: read from `system_settings`, or generated and
/// stored there first.
pub async fn dev_secret(db: &Db) -> Result<Vec<u8>, sqlx::Error> {
    let fresh = hex_of(&rand_bytes());
    sqlx::query(
        "INSERT INTO system_settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
    )
    .bind(DEV_SECRET_SETTING)
    .bind(&fresh)
    .execute(db.pool())
    .await?;
    let row = sqlx::query("SELECT value FROM system_settings WHERE name = $1")
        .bind(DEV_SECRET_SETTING)
        .fetch_one(db.pool())
        .await?;
    let value: String = row.try_get("value")?;
    Ok(value.into_bytes())
}

fn rand_bytes() -> [u8; 32] {
    rand::random()
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(role: Role, org: Option<&str>) -> User {
        User {
            id: "usr_1".into(),
            email: "ada@example.com".into(),
            role,
            organization_id: org.map(str::to_owned),
            created_at: 0,
        }
    }

    #[test]
    fn an_issued_token_verifies_to_its_user() {
        let jwt = Jwt::new(b"0123456789abcdef0123456789abcdef");
        let (token, ttl) = jwt.issue(&user(Role::OrgMember, Some("org_1"))).unwrap();

        assert_eq!(ttl, TOKEN_TTL_SECS);
        assert_eq!(
            jwt.verify(&token).unwrap(),
            TokenUser {
                user_id: "usr_1".into(),
                role: Role::OrgMember,
                organization_id: Some("org_1".into()),
            }
        );
    }

    #[test]
    fn another_secrets_token_is_refused() {
        let ours = Jwt::new(b"0123456789abcdef0123456789abcdef");
        let theirs = Jwt::new(b"fedcba9876543210fedcba9876543210");
        let (token, _) = theirs.issue(&user(Role::PlatformAdmin, None)).unwrap();

        assert_eq!(ours.verify(&token).unwrap_err().status(), 401);
    }
}

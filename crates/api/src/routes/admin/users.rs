//! Management users and sign-in: list and create users, sign in for a JWT,
//! and trade a still-valid JWT for a fresh one.
//!
//! A platform admin creates any user; an organization admin creates
//! org_admin and org_member users of its own organization only.

use super::{Page, PageQuery};
use crate::auth::Jwt;
use crate::error::ApiError;
use crate::extract::{Caller, JsonBody, QueryParams};
use crate::openapi::errors::{AdminErrors, ListErrors, LoginErrors, ReadErrors};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use tollgate_tenants::{NewUser, Role, User};
use utoipa::ToSchema;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"email": "ada@example.com", "password": "correct horse battery staple", "role": "org_admin", "organization_id": "org_0192f0c1a2b3"}))]
pub struct CreateUser {
    /// Unique, compared case-insensitively.
    #[schema(format = Email, max_length = 254)]
    email: String,
    /// 12 to 1024 characters; stored as an Argon2id hash.
    #[schema(value_type = String, min_length = 12, max_length = 1024)]
    password: SecretString,
    #[schema(value_type = Role)]
    role: String,
    /// Required for org_admin and org_member; omitted for platform_admin.
    #[schema(nullable = false)]
    organization_id: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"email": "ada@example.com", "password": "correct horse battery staple"}))]
pub struct Login {
    email: String,
    #[schema(value_type = String)]
    password: SecretString,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"access_token": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ1c3JfMSJ9.c2ln", "token_type": "Bearer", "expires_in": 3600}))]
pub struct Token {
    /// A JWT (HS256) with `sub`, `org`, `role`, `iat` and `exp` claims.
    access_token: String,
    /// `Bearer`.
    token_type: &'static str,
    /// Seconds until it expires.
    expires_in: u64,
}

impl Token {
    /// A fresh JWT for `user`.
    pub(super) fn issue(jwt: &Jwt, user: &User) -> Result<Token, ApiError> {
        let (access_token, expires_in) = jwt.issue(user)?;
        Ok(Token {
            access_token,
            token_type: "Bearer",
            expires_in,
        })
    }
}

/// List every management user, newest first.
///
/// Roles: platform admin (an organization's own users are its members:
/// `GET …/organizations/{org_id}/members`).
#[utoipa::path(
    get, path = "/api/v1/users", tag = "users",
    operation_id = "listUsers",
    security(("admin_token" = []), ("user_jwt" = [])),
    params(PageQuery),
    responses(
        (status = 200, description = "A page of users", body = Page<User>),
        ListErrors,
    )
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(page): QueryParams<PageQuery>,
) -> Result<Json<Page<User>>, ApiError> {
    caller.require_platform()?;
    let limit = super::page_limit(page.limit)?;
    let users = state
        .tenants
        .list_users(limit + 1, page.before.as_deref())
        .await?;
    Ok(Json(Page::cut(users, limit, |u| u.id.clone())))
}

/// Create a management user.
///
/// Roles: platform admin (any user); org_admin of the organization
/// (org_admin and org_member users of its own organization).
#[utoipa::path(
    post, path = "/api/v1/users", tag = "users",
    operation_id = "createUser",
    security(("admin_token" = []), ("user_jwt" = [])),
    request_body = CreateUser,
    responses(
        (status = 201, description = "The new user", body = User),
        AdminErrors,
    )
)]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<CreateUser>,
) -> Result<(StatusCode, Json<User>), ApiError> {
    let role: Role = body.role.parse()?;
    match (role, body.organization_id.as_deref()) {
        (Role::PlatformAdmin, _) | (_, None) => caller.require_platform()?,
        (_, Some(org)) => caller.require_org_admin(org)?,
    }
    let user = state
        .tenants
        .create_user(NewUser {
            email: &body.email,
            password: &body.password,
            role,
            organization_id: body.organization_id.as_deref(),
        })
        .await?;
    tracing::info!(user_id = %user.id, role = role.as_str(), "user created");
    Ok((StatusCode::CREATED, Json(user)))
}

/// Sign in: a JWT for the management API, valid for `expires_in` seconds.
///
/// After 4 failed sign-ins in a row for an email, each further attempt for
/// it must wait (1 s, then twice as long after each failure, at most 15
/// min): 429 with `Retry-After`. 503 when sign-in is off (production
/// without `TOLLGATE_JWT_SECRET`).
#[utoipa::path(
    post, path = "/api/v1/auth/login", tag = "users",
    operation_id = "login",
    security(()),
    request_body = Login,
    responses(
        (status = 200, description = "A bearer token", body = Token),
        LoginErrors,
    )
)]
pub async fn login(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<Login>,
) -> Result<Json<Token>, ApiError> {
    let jwt = state.jwt.as_ref().ok_or_else(sign_in_off)?;
    let user = state.tenants.sign_in(&body.email, &body.password).await?;
    Ok(Json(Token::issue(jwt, &user)?))
}

/// Trade a valid JWT for a fresh one; 401 once the user is removed, its
/// organization deleted or its role changed (sign in again).
///
/// The extractor has checked that the user, its role and its organization
/// are still the token's.
#[utoipa::path(
    post, path = "/api/v1/auth/refresh", tag = "users",
    operation_id = "refreshToken",
    security(("user_jwt" = [])),
    responses(
        (status = 200, description = "A new bearer token", body = Token),
        ReadErrors,
    )
)]
pub async fn refresh(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Token>, ApiError> {
    let jwt = state.jwt.as_ref().ok_or_else(sign_in_off)?;
    let Caller::User(holder) = caller else {
        return Err(ApiError::bad_request(
            "only a user's JWT can be refreshed; the admin token never expires",
        ));
    };
    let user = state
        .tenants
        .user(&holder.user_id)
        .await
        .map_err(|_| ApiError::unauthorized("this token's user no longer exists"))?;
    Ok(Json(Token::issue(jwt, &user)?))
}

pub(super) fn sign_in_off() -> ApiError {
    ApiError::new(
        tollgate_core::ErrorCode::SignInDisabled,
        "user sign-in is off: set TOLLGATE_JWT_SECRET on the gateway",
    )
}

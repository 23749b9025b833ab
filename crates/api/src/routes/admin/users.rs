//! Management users and sign-in: create a user, sign in for a JWT, and
//! trade a still-valid JWT for a fresh one.
//!
//! A platform admin creates any user; an organization admin creates
//! org_admin and org_member users of its own organization only.

use crate::error::ApiError;
use crate::extract::{Caller, JsonBody};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use tollgate_tenants::{NewUser, Role, User};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    email: String,
    password: SecretString,
    role: String,
    organization_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Login {
    email: String,
    password: SecretString,
}

#[derive(Debug, Serialize)]
pub struct Token {
    access_token: String,
    token_type: &'static str,
    expires_in: u64,
}

/// `POST /api/v1/users`
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

/// `POST /api/v1/auth/login`
pub async fn login(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<Login>,
) -> Result<Json<Token>, ApiError> {
    let jwt = state.jwt.as_ref().ok_or_else(sign_in_off)?;
    let user = state.tenants.sign_in(&body.email, &body.password).await?;
    let (access_token, expires_in) = jwt.issue(&user)?;
    Ok(Json(Token {
        access_token,
        token_type: "Bearer",
        expires_in,
    }))
}

/// `POST /api/v1/auth/refresh`: a fresh token for the holder of a valid one
/// (the extractor has checked that the user, its role and its organization
/// are still the token's).
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
    let (access_token, expires_in) = jwt.issue(&user)?;
    Ok(Json(Token {
        access_token,
        token_type: "Bearer",
        expires_in,
    }))
}

pub(super) fn sign_in_off() -> ApiError {
    ApiError::new(
        tollgate_core::ErrorCode::SignInDisabled,
        "user sign-in is off: set TOLLGATE_JWT_SECRET on the gateway",
    )
}

//! An organization's members and invitations: list and remove members,
//! invite by email, and accept an invitation (which creates the user and
//! signs it in).
//!
//! A platform admin or an org_admin of the organization manages its
//! members; an org_member may not (403), nor may anyone of another
//! organization.

use crate::error::ApiError;
use crate::extract::{Caller, JsonBody, PathParams};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Value, json};
use tollgate_tenants::Role;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateInvitation {
    email: String,
    /// `org_admin` or `org_member`.
    role: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcceptInvitation {
    token: SecretString,
    password: SecretString,
}

/// `GET /api/v1/organizations/{org_id}/members`
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(org_id): PathParams<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require_org_admin(&org_id)?;
    let members = state.tenants.list_members(&org_id).await?;
    Ok(Json(json!({ "data": members })))
}

/// `DELETE /api/v1/organizations/{org_id}/members/{user_id}`
pub async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    PathParams((org_id, user_id)): PathParams<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    caller.require_org_admin(&org_id)?;
    state.tenants.remove_member(&org_id, &user_id).await?;
    tracing::info!(organization_id = %org_id, user_id = %user_id, "member removed");
    Ok(Json(json!({ "id": user_id, "removed": true })))
}

/// `POST /api/v1/organizations/{org_id}/invitations`
pub async fn invite(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(org_id): PathParams<String>,
    JsonBody(body): JsonBody<CreateInvitation>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    caller.require_org_admin(&org_id)?;
    let role: Role = body.role.parse()?;
    let created = state
        .tenants
        .create_invitation(&org_id, &body.email, role)
        .await?;
    let invitation = &created.invitation;
    tracing::info!(organization_id = %org_id, invitation_id = %invitation.id, "invitation created");
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "id": invitation.id,
            "organization_id": invitation.organization_id,
            "email": invitation.email,
            "role": invitation.role,
            "token": created.token.expose_secret(),
            "expires_at": invitation.expires_at,
            "created_at": invitation.created_at,
        })),
    ))
}

/// `POST /api/v1/auth/accept-invitation`: no auth, the token is the proof.
pub async fn accept(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<AcceptInvitation>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let jwt = state.jwt.as_ref().ok_or_else(super::users::sign_in_off)?;
    let user = state
        .tenants
        .accept_invitation(&body.token, &body.password)
        .await?;
    let (access_token, expires_in) = jwt.issue(&user)?;
    tracing::info!(user_id = %user.id, "invitation accepted");
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "user": user,
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": expires_in,
        })),
    ))
}

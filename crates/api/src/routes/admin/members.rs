//! An organization's members and invitations: list and remove members,
//! invite by email, list and revoke pending invitations, and accept an
//! invitation (which creates the user and signs it in).
//!
//! A platform admin or an org_admin of the organization manages its
//! members; an org_member may not (403), nor may anyone of another
//! organization.

use super::{Page, PageQuery};
use crate::error::ApiError;
use crate::extract::{Caller, JsonBody, PathParams, QueryParams};
use crate::openapi::errors::{AcceptErrors, AdminErrors, ListErrors, ReadErrors};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use tollgate_tenants::{Invitation, Role, User};
use utoipa::ToSchema;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"email": "bob@example.com", "role": "org_member"}))]
pub struct CreateInvitation {
    /// Lower-cased; must not already have a user (409).
    email: String,
    /// `org_admin` or `org_member`.
    #[schema(value_type = Role)]
    role: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"token": "tginv_Zx8kQ2mP4rT6vW9yB1cD3fG5hJ7kL0nP2qS4tU6w", "password": "correct horse battery staple"}))]
pub struct AcceptInvitation {
    #[schema(value_type = String)]
    token: SecretString,
    /// 12 to 1024 characters; stored as an Argon2id hash.
    #[schema(value_type = String)]
    password: SecretString,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"id": "usr_0192f0c1a2b3", "removed": true}))]
pub struct RemovedMember {
    id: String,
    /// Always true.
    removed: bool,
}

/// A new invitation: `token` is shown only in this answer (only its hash
/// is stored). It can be accepted once, until `expires_at` (7 days).
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"id": "inv_0192f0c1a2b3", "organization_id": "org_0192f0c1a2b3", "email": "bob@example.com", "role": "org_member", "expires_at": 1_764_504_800, "created_at": 1_763_900_000, "token": "tginv_Zx8kQ2mP4rT6vW9yB1cD3fG5hJ7kL0nP2qS4tU6w"}))]
pub struct CreatedInvitation {
    #[serde(flatten)]
    invitation: Invitation,
    /// Give it to the invitee; it is never shown again.
    token: String,
}

/// The new user, signed in.
#[derive(Debug, Serialize, ToSchema)]
pub struct AcceptedInvitation {
    user: User,
    #[serde(flatten)]
    token: super::users::Token,
}

/// List the organization's members (its users), oldest first.
///
/// Roles: platform admin; org_admin of this organization.
#[utoipa::path(
    get, path = "/api/v1/organizations/{org_id}/members", tag = "members",
    operation_id = "listMembers",
    security(("admin_token" = []), ("user_jwt" = [])),
    params(("org_id" = String, Path, description = "Organization id")),
    responses(
        (status = 200, description = "Every member", body = Page<User>),
        ReadErrors,
    )
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(org_id): PathParams<String>,
) -> Result<Json<Page<User>>, ApiError> {
    caller.require_org_admin(&org_id)?;
    let members = state.tenants.list_members(&org_id).await?;
    Ok(Json(Page::all(members)))
}

/// Remove a member: the user is deleted and can no longer sign in or
/// refresh a token (a token already issued lasts until it expires).
///
/// Roles: platform admin; org_admin of this organization.
#[utoipa::path(
    delete, path = "/api/v1/organizations/{org_id}/members/{user_id}", tag = "members",
    operation_id = "removeMember",
    security(("admin_token" = []), ("user_jwt" = [])),
    params(
        ("org_id" = String, Path, description = "Organization id"),
        ("user_id" = String, Path, description = "User id"),
    ),
    responses(
        (status = 200, description = "The member is removed", body = RemovedMember),
        ReadErrors,
    )
)]
pub async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    PathParams((org_id, user_id)): PathParams<(String, String)>,
) -> Result<Json<RemovedMember>, ApiError> {
    caller.require_org_admin(&org_id)?;
    state.tenants.remove_member(&org_id, &user_id).await?;
    tracing::info!(organization_id = %org_id, user_id = %user_id, "member removed");
    Ok(Json(RemovedMember {
        id: user_id,
        removed: true,
    }))
}

/// Invite someone to join the organization by email.
///
/// Roles: platform admin; org_admin of this organization.
#[utoipa::path(
    post, path = "/api/v1/organizations/{org_id}/invitations", tag = "members",
    operation_id = "createInvitation",
    security(("admin_token" = []), ("user_jwt" = [])),
    params(("org_id" = String, Path, description = "Organization id")),
    request_body = CreateInvitation,
    responses(
        (status = 201, description = "The invitation, with its token (shown once)", body = CreatedInvitation),
        AdminErrors,
    )
)]
pub async fn invite(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(org_id): PathParams<String>,
    JsonBody(body): JsonBody<CreateInvitation>,
) -> Result<(StatusCode, Json<CreatedInvitation>), ApiError> {
    caller.require_org_admin(&org_id)?;
    let role: Role = body.role.parse()?;
    let created = state
        .tenants
        .create_invitation(&org_id, &body.email, role)
        .await?;
    tracing::info!(organization_id = %org_id, invitation_id = %created.invitation.id, "invitation created");
    Ok((
        StatusCode::CREATED,
        Json(CreatedInvitation {
            token: created.token.expose_secret().to_owned(),
            invitation: created.invitation,
        }),
    ))
}

/// List the organization's pending invitations (neither accepted nor
/// expired), newest first, without their tokens.
///
/// Roles: platform admin; org_admin of this organization.
#[utoipa::path(
    get, path = "/api/v1/organizations/{org_id}/invitations", tag = "members",
    operation_id = "listInvitations",
    security(("admin_token" = []), ("user_jwt" = [])),
    params(("org_id" = String, Path, description = "Organization id"), PageQuery),
    responses(
        (status = 200, description = "A page of pending invitations", body = Page<Invitation>),
        ListErrors,
    )
)]
pub async fn list_invitations(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(org_id): PathParams<String>,
    QueryParams(page): QueryParams<PageQuery>,
) -> Result<Json<Page<Invitation>>, ApiError> {
    caller.require_org_admin(&org_id)?;
    let limit = super::page_limit(page.limit)?;
    let invitations = state
        .tenants
        .list_invitations(&org_id, limit + 1, page.before.as_deref())
        .await?;
    Ok(Json(Page::cut(invitations, limit, |i| i.id.clone())))
}

/// Revoke a pending invitation: its token can no longer be accepted. An
/// unknown, accepted or expired invitation is a 404.
///
/// Roles: platform admin; org_admin of this organization.
#[utoipa::path(
    delete, path = "/api/v1/organizations/{org_id}/invitations/{invitation_id}", tag = "members",
    operation_id = "revokeInvitation",
    security(("admin_token" = []), ("user_jwt" = [])),
    params(
        ("org_id" = String, Path, description = "Organization id"),
        ("invitation_id" = String, Path, description = "Invitation id"),
    ),
    responses(
        (status = 204, description = "Revoked"),
        ReadErrors,
    )
)]
pub async fn revoke_invitation(
    State(state): State<AppState>,
    caller: Caller,
    PathParams((org_id, invitation_id)): PathParams<(String, String)>,
) -> Result<StatusCode, ApiError> {
    caller.require_org_admin(&org_id)?;
    state
        .tenants
        .revoke_invitation(&org_id, &invitation_id)
        .await?;
    tracing::info!(organization_id = %org_id, invitation_id = %invitation_id, "invitation revoked");
    Ok(StatusCode::NO_CONTENT)
}

/// Accept an invitation: creates the user with this password and signs it
/// in. An unknown, expired or already used token is a 400 naming `token`.
///
/// Roles: anyone holding the token (no auth).
#[utoipa::path(
    post, path = "/api/v1/auth/accept-invitation", tag = "members",
    operation_id = "acceptInvitation",
    security(()),
    request_body = AcceptInvitation,
    responses(
        (status = 201, description = "The new user and a bearer token", body = AcceptedInvitation),
        AcceptErrors,
    )
)]
pub async fn accept(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<AcceptInvitation>,
) -> Result<(StatusCode, Json<AcceptedInvitation>), ApiError> {
    let jwt = state.jwt.as_ref().ok_or_else(super::users::sign_in_off)?;
    let user = state
        .tenants
        .accept_invitation(&body.token, &body.password)
        .await?;
    let token = super::users::Token::issue(jwt, &user)?;
    tracing::info!(user_id = %user.id, "invitation accepted");
    Ok((
        StatusCode::CREATED,
        Json(AcceptedInvitation { user, token }),
    ))
}

//! The document of organization deletion, members and invitations: their
//! `#[utoipa::path]` stand-ins and schemas (like [`super::paths`] and
//! [`super::schemas`], kept apart so each area's document reads alone).

#![allow(dead_code, clippy::unused_async)]

use super::errors::{AcceptErrors, AdminErrors, ReadErrors};
use super::schemas::{Role, Unit, User};
use serde::Serialize;
use utoipa::ToSchema;

// ----------------------------------------------------------------- schemas

/// A deleted organization. Its balance stays as it was (no ledger row is
/// written) and is reported here so that it can be settled outside Tollgate.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"id": "org_0192f0c1a2b3", "deleted": true, "balance": 4_998_500, "unit": "usd_micros"}))]
pub struct DeletedOrganization {
    pub id: String,
    /// Always true.
    pub deleted: bool,
    /// The balance left, in `unit`.
    pub balance: i64,
    pub unit: Unit,
}

/// The organization's users, oldest first.
#[derive(Serialize, ToSchema)]
pub struct MemberList {
    pub data: Vec<User>,
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"id": "usr_0192f0c1a2b3", "removed": true}))]
pub struct RemovedMember {
    pub id: String,
    /// Always true.
    pub removed: bool,
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"email": "bob@example.com", "role": "org_member"}))]
pub struct CreateInvitation {
    /// Lower-cased; must not already have a user (409).
    pub email: String,
    /// `org_admin` or `org_member`.
    pub role: Role,
}

/// A new invitation: `token` is shown only in this answer (only its hash
/// is stored). It can be accepted once, until `expires_at` (7 days).
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"id": "inv_0192f0c1a2b3", "organization_id": "org_0192f0c1a2b3", "email": "bob@example.com", "role": "org_member", "token": "tginv_Zx8kQ2mP4rT6vW9yB1cD3fG5hJ7kL0nP2qS4tU6w", "expires_at": 1_764_504_800, "created_at": 1_763_900_000}))]
pub struct Invitation {
    pub id: String,
    pub organization_id: String,
    pub email: String,
    pub role: Role,
    /// Give it to the invitee; it is never shown again.
    pub token: String,
    /// Unix seconds.
    pub expires_at: i64,
    /// Unix seconds.
    pub created_at: i64,
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"token": "tginv_Zx8kQ2mP4rT6vW9yB1cD3fG5hJ7kL0nP2qS4tU6w", "password": "correct horse battery staple"}))]
pub struct AcceptInvitation {
    pub token: String,
    /// 12 to 1024 characters; stored as an Argon2id hash.
    pub password: String,
}

/// The new user, signed in.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"user": {"id": "usr_0192f0c1a2b3", "email": "bob@example.com", "role": "org_member", "organization_id": "org_0192f0c1a2b3", "created_at": 1_763_900_000}, "access_token": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ1c3JfMSJ9.c2ln", "token_type": "Bearer", "expires_in": 3600}))]
pub struct AcceptedInvitation {
    pub user: User,
    /// A JWT, as from `POST /api/v1/auth/login`.
    pub access_token: String,
    /// `Bearer`.
    pub token_type: String,
    /// Seconds until it expires.
    pub expires_in: i64,
}

// ------------------------------------------------------------------- paths

/// Delete an organization (soft): it disappears from lists and reads
/// (404), its API keys answer 401 within a second on every replica, its
/// provider credentials are deactivated and its users can no longer sign
/// in. Its ledger and usage records are kept; its balance is frozen.
///
/// Roles: platform admin.
#[utoipa::path(
    delete, path = "/api/v1/organizations/{org_id}", tag = "organizations",
    operation_id = "deleteOrganization",
    security(("admin_token" = []), ("user_jwt" = [])),
    params(("org_id" = String, Path, description = "Organization id")),
    responses(
        (status = 200, description = "The organization is deleted", body = DeletedOrganization),
        ReadErrors,
    )
)]
pub async fn delete_organization() {}

/// List the organization's members (its users), oldest first.
///
/// Roles: platform admin; org_admin of this organization.
#[utoipa::path(
    get, path = "/api/v1/organizations/{org_id}/members", tag = "members",
    operation_id = "listMembers",
    security(("admin_token" = []), ("user_jwt" = [])),
    params(("org_id" = String, Path, description = "Organization id")),
    responses(
        (status = 200, description = "The members", body = MemberList),
        ReadErrors,
    )
)]
pub async fn list_members() {}

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
pub async fn remove_member() {}

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
        (status = 201, description = "The invitation, with its token (shown once)", body = Invitation),
        AdminErrors,
    )
)]
pub async fn create_invitation() {}

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
pub async fn accept_invitation() {}

//! Extractors: JSON bodies rejected in our error shape (naming the bad
//! field), organization API keys, the platform admin token, the managers of
//! provider credentials, the request id.

use crate::auth::{Jwt, TokenUser};
use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use bytes::Bytes;
use secrecy::ExposeSecret;
use serde::de::DeserializeOwned;
use std::sync::Arc;
use subtle::ConstantTimeEq;
use tollgate_credentials::Actor;
use tollgate_tenants::{KeyScope, Principal, Role, TenantError};

/// The id of the request being served (`x-tollgate-request-id`).
#[derive(Debug, Clone)]
pub struct RequestId(pub Arc<str>);

/// A JSON body. Malformed JSON, a wrong type or a missing field is a 400
/// whose message names the field; an oversized body is a 413.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let BodyBytes(bytes) = BodyBytes::from_request(req, state).await?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// A raw body within the size limit; an oversized one is a 413 in our shape.
pub struct BodyBytes(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for BodyBytes {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        Bytes::from_request(req, state)
            .await
            .map(BodyBytes)
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::payload_too_large("request body is too large")
                } else {
                    ApiError::bad_request(format!("cannot read request body: {rejection}"))
                }
            })
    }
}

/// Path parameters, rejected in our error shape.
pub struct PathParams<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for PathParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        // No id holds a NUL character (and PostgreSQL refuses to compare one).
        if parts.uri.path().contains("%00") {
            return Err(ApiError::not_found("no such resource"));
        }
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| PathParams(p.0))
            .map_err(|e| ApiError::bad_request(format!("invalid path: {}", e.body_text())))
    }
}

/// Parses JSON, naming the path of the first problem (`messages[0].role`).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.is_empty() {
        return Err(ApiError::bad_request(
            "request body is empty; expected a JSON object",
        ));
    }
    // serde reads a struct from an array too, field by field in order:
    // `["Renamed", null]` would rename an organization. Every body is an object.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
        return Err(ApiError::bad_request(
            "invalid request body: expected a JSON object, got an array",
        ));
    }
    // Tracking the path costs on every body; only a failure needs it.
    if let Ok(value) = serde_json::from_slice(bytes) {
        return Ok(value);
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    match serde_path_to_error::deserialize(&mut de) {
        Ok(value) => {
            de.end()
                .map_err(|e| ApiError::bad_request(format!("invalid request body: {e}")))?;
            Ok(value)
        }
        Err(e) => Err(explain_json_error::<T>(bytes, e)),
    }
}

/// A 400 naming the field. serde reports some type mismatches (an enum
/// given a number) as syntax errors without a path; when the body is valid
/// JSON, a second pass through `Value` recovers the field. Only failures pay
/// for it.
fn explain_json_error<T: DeserializeOwned>(
    bytes: &[u8],
    first: serde_path_to_error::Error<serde_json::Error>,
) -> ApiError {
    let path = first.path().to_string();
    let inner = first.into_inner();
    if !(inner.is_syntax() || inner.is_eof()) && path != "." {
        return ApiError::bad_request(format!("invalid field `{path}`: {inner}"));
    }
    match serde_json::from_slice::<serde_json::Value>(bytes) {
        Ok(value) => match serde_path_to_error::deserialize::<_, T>(value) {
            Err(e) if e.path().to_string() != "." => {
                let path = e.path().to_string();
                ApiError::bad_request(format!("invalid field `{path}`: {}", e.into_inner()))
            }
            Err(e) => ApiError::bad_request(format!("invalid request body: {}", e.into_inner())),
            Ok(_) => ApiError::bad_request(format!("invalid request body: {inner}")),
        },
        Err(_) => ApiError::bad_request(format!("invalid request body: {inner}")),
    }
}

/// The bearer token of a request, or its `x-api-key` header.
fn presented_key(headers: &HeaderMap) -> Option<&str> {
    if let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let (scheme, token) = value.trim().split_once(' ')?;
        return scheme.eq_ignore_ascii_case("bearer").then(|| token.trim());
    }
    headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

/// An organization's caller, authenticated by its API key.
pub struct OrgKey(pub Arc<Principal>);

impl FromRequestParts<AppState> for OrgKey {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let key = presented_key(&parts.headers).ok_or_else(|| {
            ApiError::unauthorized("missing api key: send `Authorization: Bearer tg-…`")
        })?;
        let principal = state.tenants.authenticate(key).await?;
        Ok(OrgKey(principal))
    }
}

/// A caller of the Gemini-compatible paths: the key as `x-goog-api-key`,
/// `?key=` or `Authorization: Bearer`.
pub struct GoogleKey(pub Arc<Principal>);

impl FromRequestParts<AppState> for GoogleKey {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let from_query = parts.uri.query().and_then(|q| {
            q.split('&')
                .filter_map(|pair| pair.split_once('='))
                .find(|(k, _)| *k == "key")
                .map(|(_, v)| v)
        });
        let key = parts
            .headers
            .get("x-goog-api-key")
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .or(from_query)
            .or_else(|| presented_key(&parts.headers))
            .ok_or_else(|| {
                ApiError::unauthorized(
                    "missing api key: send `x-goog-api-key: tg-…`, `?key=tg-…` or `Authorization: Bearer tg-…`",
                )
            })?;
        let principal = state.tenants.authenticate(key).await?;
        Ok(GoogleKey(principal))
    }
}

/// A caller of the management API: the platform admin token, or a user's
/// JWT (from `POST /api/v1/auth/login`) with its role. Handlers say what
/// they need with [`Caller::require_platform`], [`Caller::require_org_admin`]
/// or [`Caller::require_org_reader`]; a caller without it gets 403.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// `TOLLGATE_ADMIN_TOKEN`.
    Token,
    /// A signed-in user.
    User(TokenUser),
}

impl Caller {
    fn is_platform(&self) -> bool {
        match self {
            Caller::Token => true,
            Caller::User(user) => user.role == Role::PlatformAdmin,
        }
    }

    fn org_role(&self, organization_id: &str) -> Option<Role> {
        match self {
            Caller::User(user) if user.organization_id.as_deref() == Some(organization_id) => {
                Some(user.role)
            }
            _ => None,
        }
    }

    /// The one organization this caller is confined to (`None`: any).
    pub fn own_organization(&self) -> Option<&str> {
        match self {
            Caller::User(user) if user.role != Role::PlatformAdmin => {
                user.organization_id.as_deref()
            }
            _ => None,
        }
    }

    /// 403 unless this is a platform admin.
    pub fn require_platform(&self) -> Result<(), ApiError> {
        if self.is_platform() {
            Ok(())
        } else {
            Err(ApiError::forbidden("this needs a platform admin"))
        }
    }

    /// 403 unless this is a platform admin or an admin of this organization.
    pub fn require_org_admin(&self, organization_id: &str) -> Result<(), ApiError> {
        if self.is_platform() || self.org_role(organization_id) == Some(Role::OrgAdmin) {
            Ok(())
        } else {
            Err(ApiError::forbidden(
                "this needs a platform admin or an admin of this organization",
            ))
        }
    }

    /// 403 unless this is a platform admin or a user of this organization.
    pub fn require_org_reader(&self, organization_id: &str) -> Result<(), ApiError> {
        if self.is_platform() || self.org_role(organization_id).is_some() {
            Ok(())
        } else {
            Err(ApiError::forbidden(
                "this needs a platform admin or a user of this organization",
            ))
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if state.admin_token.is_none() && state.jwt.is_none() {
            return Err(ApiError::unauthorized(
                "the management API needs TOLLGATE_ADMIN_TOKEN to be set on the gateway",
            ));
        }
        let presented = presented_key(&parts.headers).ok_or_else(|| {
            ApiError::unauthorized("missing admin token or JWT: send `Authorization: Bearer …`")
        })?;
        if let Some(expected) = state.admin_token.as_ref()
            && is_admin_token(presented, expected)
        {
            return Ok(Caller::Token);
        }
        match (&state.jwt, looks_like_jwt(presented)) {
            (Some(jwt), true) => Ok(Caller::User(
                current_token_user(state, jwt, presented).await?,
            )),
            _ => Err(ApiError::unauthorized("invalid admin token or JWT")),
        }
    }
}

/// A platform admin: `TOLLGATE_ADMIN_TOKEN` or a platform_admin user's JWT.
/// Any other user is refused with 403.
pub struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Caller::from_request_parts(parts, state)
            .await?
            .require_platform()
            .map(|()| Admin)
    }
}

/// A verified JWT's holder, if the database still agrees with the token: the
/// user exists, its organization is not deleted, and its role and
/// organization are the token's. So a removed member, a deleted
/// organization's users and a user whose role changed lose a token at once
/// on every replica, not when it expires. One read per management call: the
/// management plane is not the hot path.
async fn current_token_user(
    state: &AppState,
    jwt: &Jwt,
    presented: &str,
) -> Result<TokenUser, ApiError> {
    let holder = jwt.verify(presented)?;
    let user = match state.tenants.user(&holder.user_id).await {
        Ok(user) => user,
        Err(TenantError::UserNotFound) => {
            return Err(ApiError::unauthorized(
                "this token's user no longer exists; sign in again",
            ));
        }
        Err(e) => return Err(e.into()),
    };
    if user.role != holder.role || user.organization_id != holder.organization_id {
        return Err(ApiError::unauthorized(
            "this token's role or organization has changed; sign in again",
        ));
    }
    Ok(holder)
}

/// Three base64url parts: worth checking as a JWT.
fn looks_like_jwt(token: &str) -> bool {
    token.split('.').count() == 3 && !token.starts_with("tg-")
}

fn is_admin_token(presented: &str, expected: &secrecy::SecretString) -> bool {
    presented
        .as_bytes()
        .ct_eq(expected.expose_secret().as_bytes())
        .into()
}

/// Who may manage provider credentials: the platform admin
/// (`TOLLGATE_ADMIN_TOKEN` or a platform_admin JWT) for any organization, or
/// an organization API key with the `admin` scope or an org_admin JWT for
/// its own organization only (audited as `api_key` with the key's id, or as
/// `user` with the user's id). Any other valid API key or user is refused
/// with 403.
#[derive(Debug, Clone)]
pub enum Manager {
    Platform,
    Organization {
        organization_id: String,
        actor: Actor,
    },
}

impl Manager {
    /// The one organization this caller is confined to (`None`: any).
    pub fn own_organization(&self) -> Option<&str> {
        match self {
            Manager::Platform => None,
            Manager::Organization {
                organization_id, ..
            } => Some(organization_id),
        }
    }

    /// Whether this caller may manage the organization's credentials.
    pub fn manages(&self, organization_id: &str) -> bool {
        self.own_organization()
            .is_none_or(|own| own == organization_id)
    }

    /// 403 unless this caller may manage the organization's credentials.
    pub fn check_organization(&self, organization_id: &str) -> Result<(), ApiError> {
        if self.manages(organization_id) {
            Ok(())
        } else {
            Err(ApiError::forbidden(
                "this API key may manage only its own organization's credentials",
            ))
        }
    }

    /// Who this is, for the audit log.
    pub fn actor(&self) -> Actor {
        match self {
            Manager::Platform => Actor::PlatformAdmin,
            Manager::Organization { actor, .. } => actor.clone(),
        }
    }
}

impl FromRequestParts<AppState> for Manager {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let presented = presented_key(&parts.headers).ok_or_else(|| {
            ApiError::unauthorized(
                "missing admin token or admin API key: send `Authorization: Bearer …`",
            )
        })?;
        if let Some(expected) = state.admin_token.as_ref()
            && is_admin_token(presented, expected)
        {
            return Ok(Manager::Platform);
        }
        if let Some(jwt) = &state.jwt
            && looks_like_jwt(presented)
        {
            let user = current_token_user(state, jwt, presented).await?;
            return match (user.role, user.organization_id) {
                (Role::PlatformAdmin, _) => Ok(Manager::Platform),
                (Role::OrgAdmin, Some(organization_id)) => Ok(Manager::Organization {
                    organization_id,
                    actor: Actor::User(user.user_id),
                }),
                _ => Err(ApiError::forbidden(
                    "provider credentials need a platform admin or an organization admin",
                )),
            };
        }
        if !presented.starts_with("tg-") {
            return Err(ApiError::unauthorized("invalid admin token or API key"));
        }
        let principal = state.tenants.authenticate(presented).await?;
        if !principal.has_scope(KeyScope::Admin) {
            return Err(ApiError::forbidden(
                "this API key has no `admin` scope (create one with \"scopes\": [\"admin\"])",
            ));
        }
        Ok(Manager::Organization {
            organization_id: principal.organization_id.clone(),
            actor: Actor::ApiKey(principal.key_id.clone()),
        })
    }
}

/// Query parameters, rejected in our error shape.
pub struct QueryParams<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        if let Some(pair) = query.split('&').find(|pair| pair.contains("%00")) {
            let name = pair.split('=').next().unwrap_or(pair);
            return Err(ApiError::bad_request(format!(
                "`{name}` must not contain NUL characters"
            )));
        }
        axum::extract::Query::<T>::try_from_uri(&parts.uri)
            .map(|q| QueryParams(q.0))
            .map_err(|e| ApiError::bad_request(format!("invalid query string: {}", e.body_text())))
    }
}

//! Extractors: JSON bodies rejected in our error shape (naming the bad
//! field), organization API keys, the platform admin token, the managers of
//! provider credentials, the request id.

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
use tollgate_tenants::Principal;

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

/// The platform admin, authenticated by `TOLLGATE_ADMIN_TOKEN`.
pub struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Some(expected) = state.admin_token.as_ref() else {
            return Err(ApiError::unauthorized(
                "the management API needs TOLLGATE_ADMIN_TOKEN to be set on the gateway",
            ));
        };
        let presented = presented_key(&parts.headers).ok_or_else(|| {
            ApiError::unauthorized("missing admin token: send `Authorization: Bearer …`")
        })?;
        if is_admin_token(presented, expected) {
            Ok(Admin)
        } else {
            Err(ApiError::unauthorized("invalid admin token"))
        }
    }
}

fn is_admin_token(presented: &str, expected: &secrecy::SecretString) -> bool {
    presented
        .as_bytes()
        .ct_eq(expected.expose_secret().as_bytes())
        .into()
}

/// Who may manage provider credentials: the platform admin
/// (`TOLLGATE_ADMIN_TOKEN`) for any organization, or an organization API key
/// created with `"admin": true` for its own organization only. Any other
/// valid API key is refused with 403.
#[derive(Debug, Clone)]
pub enum Manager {
    Platform,
    Organization {
        organization_id: String,
        key_id: String,
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
            Manager::Organization { key_id, .. } => Actor::ApiKey(key_id.clone()),
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
        if !presented.starts_with("tg-") {
            return Err(ApiError::unauthorized("invalid admin token or API key"));
        }
        let principal = state.tenants.authenticate(presented).await?;
        if !principal.admin {
            return Err(ApiError::forbidden(
                "this API key is not an organization admin key (create one with \"admin\": true)",
            ));
        }
        Ok(Manager::Organization {
            organization_id: principal.organization_id.clone(),
            key_id: principal.key_id.clone(),
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

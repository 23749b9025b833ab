//! Organizations' own provider keys (BYOK): create (optionally validated
//! with a one-token call), list, read, update, delete, activate and
//! deactivate, the active credential of an organization and provider, and
//! the audit log of changes.
//!
//! The platform admin manages every organization; an organization admin key
//! (an API key created with `"admin": true`) only its own: another
//! organization named in a body or a query is 403, another organization's
//! credential id is 404, as if it did not exist. The key itself is never
//! answered, logged or repeated in an error: only its last four characters.

use crate::error::ApiError;
use crate::extract::{BodyBytes, Manager, PathParams, QueryParams, parse_json};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use secrecy::SecretString;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tollgate_core::{ModelMode, ProviderEntry};
use tollgate_credentials::{
    AuditFilter, Credential, CredentialChange, ListFilter, NewCredential, normalized_api_key,
};
use tollgate_providers::{ChatRequest, ProviderError, Target};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateCredential {
    organization_id: String,
    /// A provider name of the catalog.
    provider: String,
    api_key: SecretString,
    /// Default: the provider's name.
    credential_name: Option<String>,
    /// Whether the organization's calls use it from now on (default true).
    active: Option<bool>,
    /// Try the key with a one-token call first (default false).
    #[serde(default)]
    validate: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateCredential {
    api_key: Option<SecretString>,
    credential_name: Option<String>,
    /// Try a new `api_key` with a one-token call first (default false).
    #[serde(default)]
    validate: bool,
}

/// `?organization_id=&provider=&active=&limit=&before=`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    organization_id: Option<String>,
    provider: Option<String>,
    active: Option<bool>,
    limit: Option<i64>,
    /// A credential id: only older credentials.
    before: Option<String>,
}

/// `?organization_id=&provider=`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActiveQuery {
    organization_id: Option<String>,
    provider: String,
}

/// `?organization_id=&credential_id=&limit=&before=`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    organization_id: Option<String>,
    credential_id: Option<String>,
    limit: Option<i64>,
    /// An audit entry id: only older entries.
    before: Option<i64>,
}

/// `POST /api/v1/provider-credentials`
pub async fn create(
    State(state): State<AppState>,
    manager: Manager,
    BodyBytes(body): BodyBytes,
) -> Result<(StatusCode, Json<Credential>), ApiError> {
    let body: CreateCredential = parse_secret_body(&body)?;
    manager.check_organization(&body.organization_id)?;
    super::organization(&state, &body.organization_id).await?;
    let provider = catalog_provider(&state, &body.provider)?;
    if body.validate {
        validate_key(&state, provider, &body.api_key).await?;
    }
    let credential = state
        .credentials
        .create(
            NewCredential {
                organization_id: &body.organization_id,
                provider: &provider.name,
                name: body.credential_name.as_deref().unwrap_or(&provider.name),
                api_key: &body.api_key,
                active: body.active.unwrap_or(true),
            },
            &manager.actor(),
        )
        .await?;
    tracing::info!(
        credential_id = %credential.id,
        organization_id = %credential.organization_id,
        provider = %credential.provider,
        "provider credential created"
    );
    Ok((StatusCode::CREATED, Json(credential)))
}

/// `GET /api/v1/provider-credentials`
pub async fn list(
    State(state): State<AppState>,
    manager: Manager,
    QueryParams(query): QueryParams<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let organization_id = scoped_organization(&state, &manager, query.organization_id).await?;
    let limit = page_limit(query.limit)?;
    let mut data = state
        .credentials
        .list(&ListFilter {
            organization_id: organization_id.as_deref(),
            provider: query.provider.as_deref(),
            active: query.active,
            before: query.before.as_deref(),
            limit: limit + 1,
        })
        .await?;
    let has_more = truncate(&mut data, limit);
    Ok(Json(json!({ "data": data, "has_more": has_more })))
}

/// `GET /api/v1/provider-credentials/active`
pub async fn active(
    State(state): State<AppState>,
    manager: Manager,
    QueryParams(query): QueryParams<ActiveQuery>,
) -> Result<Json<Credential>, ApiError> {
    let Some(organization_id) =
        scoped_organization(&state, &manager, query.organization_id).await?
    else {
        return Err(ApiError::bad_request(
            "`organization_id` is required with the admin token",
        ));
    };
    let credential = state
        .credentials
        .active_credential(&organization_id, &query.provider)
        .await?;
    credential.map(Json).ok_or_else(|| {
        ApiError::not_found(format!(
            "the organization has no active credential for provider `{}`",
            query.provider
        ))
    })
}

/// `GET /api/v1/provider-credentials/audit`
pub async fn audit(
    State(state): State<AppState>,
    manager: Manager,
    QueryParams(query): QueryParams<AuditQuery>,
) -> Result<Json<Value>, ApiError> {
    let organization_id = scoped_organization(&state, &manager, query.organization_id).await?;
    let limit = page_limit(query.limit)?;
    let mut data = state
        .credentials
        .audit(&AuditFilter {
            organization_id: organization_id.as_deref(),
            credential_id: query.credential_id.as_deref(),
            before: query.before,
            limit: limit + 1,
        })
        .await?;
    let has_more = truncate(&mut data, limit);
    Ok(Json(json!({ "data": data, "has_more": has_more })))
}

/// `GET /api/v1/provider-credentials/{id}`
pub async fn get(
    State(state): State<AppState>,
    manager: Manager,
    PathParams(id): PathParams<String>,
) -> Result<Json<Credential>, ApiError> {
    Ok(Json(visible_credential(&state, &manager, &id).await?))
}

/// `PUT /api/v1/provider-credentials/{id}`
pub async fn update(
    State(state): State<AppState>,
    manager: Manager,
    PathParams(id): PathParams<String>,
    BodyBytes(body): BodyBytes,
) -> Result<Json<Credential>, ApiError> {
    let current = visible_credential(&state, &manager, &id).await?;
    let body: UpdateCredential = parse_secret_body(&body)?;
    if body.validate
        && let Some(key) = &body.api_key
    {
        let provider = catalog_provider(&state, &current.provider)?;
        validate_key(&state, provider, key).await?;
    }
    let credential = state
        .credentials
        .update(
            &current.organization_id,
            &id,
            CredentialChange {
                name: body.credential_name.as_deref(),
                api_key: body.api_key.as_ref(),
            },
            &manager.actor(),
        )
        .await?;
    tracing::info!(credential_id = %id, "provider credential updated");
    Ok(Json(credential))
}

/// `DELETE /api/v1/provider-credentials/{id}`
pub async fn delete(
    State(state): State<AppState>,
    manager: Manager,
    PathParams(id): PathParams<String>,
) -> Result<Json<Value>, ApiError> {
    let current = visible_credential(&state, &manager, &id).await?;
    state
        .credentials
        .delete(&current.organization_id, &id, &manager.actor())
        .await?;
    tracing::info!(credential_id = %id, "provider credential deleted");
    Ok(Json(json!({ "id": id, "deleted": true })))
}

/// `PUT /api/v1/provider-credentials/{id}/activate`
pub async fn activate(
    State(state): State<AppState>,
    manager: Manager,
    PathParams(id): PathParams<String>,
) -> Result<Json<Credential>, ApiError> {
    set_active(&state, &manager, &id, true).await
}

/// `PUT /api/v1/provider-credentials/{id}/deactivate`
pub async fn deactivate(
    State(state): State<AppState>,
    manager: Manager,
    PathParams(id): PathParams<String>,
) -> Result<Json<Credential>, ApiError> {
    set_active(&state, &manager, &id, false).await
}

async fn set_active(
    state: &AppState,
    manager: &Manager,
    id: &str,
    active: bool,
) -> Result<Json<Credential>, ApiError> {
    let current = visible_credential(state, manager, id).await?;
    let credential = state
        .credentials
        .set_active(&current.organization_id, id, active, &manager.actor())
        .await?;
    tracing::info!(credential_id = %id, active, "provider credential switched");
    Ok(Json(credential))
}

/// The credential, if this caller may see it; another organization's is
/// "not found", exactly like one that does not exist.
async fn visible_credential(
    state: &AppState,
    manager: &Manager,
    id: &str,
) -> Result<Credential, ApiError> {
    let credential = state.credentials.get(id).await?;
    if manager.manages(&credential.organization_id) {
        Ok(credential)
    } else {
        Err(ApiError::not_found("provider credential not found"))
    }
}

/// The organization a query is about: the one asked for (403 if this
/// caller may not manage it, 404 if it does not exist), else the caller's
/// own (`None` for the platform admin: every organization).
async fn scoped_organization(
    state: &AppState,
    manager: &Manager,
    asked: Option<String>,
) -> Result<Option<String>, ApiError> {
    match (manager.own_organization(), asked) {
        (_, Some(asked)) => {
            manager.check_organization(&asked)?;
            super::organization(state, &asked).await?;
            Ok(Some(asked))
        }
        (Some(own), None) => Ok(Some(own.to_owned())),
        (None, None) => Ok(None),
    }
}

fn page_limit(limit: Option<i64>) -> Result<i64, ApiError> {
    super::Page {
        limit,
        before: None,
    }
    .limit()
}

/// Cuts `data` to `limit` items; whether there were more.
fn truncate<T>(data: &mut Vec<T>, limit: i64) -> bool {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let more = data.len() > limit;
    data.truncate(limit);
    more
}

fn catalog_provider<'a>(state: &'a AppState, name: &str) -> Result<&'a ProviderEntry, ApiError> {
    state
        .catalog
        .provider(name)
        .map(AsRef::as_ref)
        .ok_or_else(|| {
            let mut names: Vec<&str> = state.catalog.providers().map(|p| p.name.as_str()).collect();
            names.sort_unstable();
            ApiError::bad_request(format!(
                "`provider` must be a provider of the catalog: {}",
                names.join(", ")
            ))
        })
}

/// Tries the key with the cheapest call there is: one token from the
/// provider's cheapest chat model of the catalog (paid by the key's owner).
async fn validate_key(
    state: &AppState,
    provider: &ProviderEntry,
    key: &SecretString,
) -> Result<(), ApiError> {
    let catalog = state.catalog.current();
    let model = catalog
        .models()
        .iter()
        .filter(|m| m.provider == provider.name && m.mode == ModelMode::Chat)
        .min_by_key(|m| {
            m.price
                .input_per_mtok
                .0
                .saturating_add(m.price.output_per_mtok.0)
        })
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "`validate`: the catalog has no chat model of provider `{}` to try the key with",
                provider.name
            ))
        })?;
    let request: ChatRequest = serde_json::from_value(json!({
        "model": model.upstream,
        "messages": [{"role": "user", "content": "ping"}],
        "max_tokens": 1,
    }))
    .map_err(ApiError::internal)?;
    // As the store will keep it; a malformed key is refused before any call.
    let key = SecretString::from(normalized_api_key(key)?);
    let target = Target {
        provider: &provider.name,
        kind: provider.kind,
        base_url: &provider.base_url,
        api_key: Some(&key),
        upstream_model: &model.upstream,
        max_output_tokens: 1,
        traceparent: None,
    };
    // Only the status is reported: a provider's message may quote the key.
    match state.providers.chat(&target, &request).await {
        Ok(_) => Ok(()),
        Err(ProviderError::Status {
            status: status @ (401 | 403),
            ..
        }) => Err(ApiError::invalid_provider_key(format!(
            "provider `{}` refused this key (HTTP {status}); nothing was stored",
            provider.name
        ))),
        Err(ProviderError::Status { status, .. }) => Err(ApiError::bad_gateway(format!(
            "could not validate the key: provider `{}` answered HTTP {status}; nothing was stored",
            provider.name
        ))),
        Err(_) => Err(ApiError::bad_gateway(format!(
            "could not validate the key: provider `{}` could not be reached; nothing was stored",
            provider.name
        ))),
    }
}

/// Like [`parse_json`], for a body that holds a provider key: an error
/// message never repeats a string of the body (serde quotes the offending
/// value in some messages, and that value may be the key).
fn parse_secret_body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    parse_json(bytes).map_err(|mut err| {
        let mut strings = Vec::new();
        if let Ok(value) = serde_json::from_slice::<Value>(bytes) {
            collect_strings(&value, &mut strings);
        }
        // Longest first, so that a string inside another is not half-redacted.
        strings.sort_by_key(|s| std::cmp::Reverse(s.len()));
        for text in strings {
            let quoted = serde_json::to_string(&text).unwrap_or_default();
            err.message = err.message.replace(&quoted, "\"*****\"");
            if text.len() >= 4 {
                err.message = err.message.replace(&text, "*****");
            }
        }
        err
    })
}

fn collect_strings(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|v| collect_strings(v, out)),
        Value::Object(map) => map.values().for_each(|v| collect_strings(v, out)),
        _ => {}
    }
}

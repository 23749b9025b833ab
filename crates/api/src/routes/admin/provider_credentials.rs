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

use super::Page;
use crate::error::ApiError;
use crate::extract::{BodyBytes, Manager, PathParams, QueryParams, parse_json};
use crate::openapi::errors::{AdminErrors, ListErrors, ReadErrors};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use secrecy::SecretString;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tollgate_core::{ModelMode, ProviderEntry};
use tollgate_credentials::{
    AuditEntry, AuditFilter, Credential, CredentialChange, ListFilter, NewCredential,
    normalized_api_key,
};
use tollgate_providers::{ChatRequest, ProviderError, Target};
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"organization_id": "org_0192f0c1a2b3", "provider": "openai", "api_key": "sk-proj-…", "credential_name": "prod"}))]
pub struct CreateCredential {
    organization_id: String,
    /// A provider name of the catalog.
    provider: String,
    /// Never answered, logged or repeated in an error.
    #[schema(value_type = String)]
    api_key: SecretString,
    /// Default: the provider's name.
    #[schema(nullable = false)]
    credential_name: Option<String>,
    /// Whether the organization's calls use it from now on (default true).
    #[schema(nullable = false)]
    active: Option<bool>,
    /// Try the key with a one-token call first (default false).
    #[serde(default)]
    validate: bool,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"credential_name": "prod (rotated)"}))]
pub struct UpdateCredential {
    #[schema(value_type = Option<String>, nullable = false)]
    api_key: Option<SecretString>,
    #[schema(nullable = false)]
    credential_name: Option<String>,
    /// Try a new `api_key` with a one-token call first (default false).
    #[serde(default)]
    validate: bool,
}

/// `?organization_id=&provider=&active=&limit=&before=`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only this organization's (an organization admin key sees only its own).
    organization_id: Option<String>,
    /// Only this provider's.
    provider: Option<String>,
    /// Only active (or inactive) ones.
    active: Option<bool>,
    /// Page size, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
    /// The `next_cursor` of the previous page (a credential `id`): only
    /// older credentials.
    before: Option<String>,
}

/// `?organization_id=&provider=`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ActiveQuery {
    /// Required with the admin token.
    organization_id: Option<String>,
    /// Provider name.
    provider: String,
}

/// `?organization_id=&credential_id=&limit=&before=`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Only this organization's.
    organization_id: Option<String>,
    /// Only this credential's.
    credential_id: Option<String>,
    /// Page size, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
    /// The `next_cursor` of the previous page (an audit entry `id`): only
    /// older entries.
    before: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"id": "cred_0192f0c1a2b3", "deleted": true}))]
pub struct DeletedCredential {
    id: String,
    /// Always true.
    deleted: bool,
}

/// Store an organization's own provider key (BYOK).
#[utoipa::path(
    post, path = "/api/v1/provider-credentials", tag = "provider credentials",
    operation_id = "createProviderCredential",
    security(("admin_token" = []), ("user_jwt" = []), ("org_admin_key" = [])),
    request_body = CreateCredential,
    responses(
        (status = 201, description = "The credential, never the key", body = Credential),
        AdminErrors,
    )
)]
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

/// List provider credentials, newest first.
#[utoipa::path(
    get, path = "/api/v1/provider-credentials", tag = "provider credentials",
    operation_id = "listProviderCredentials",
    security(("admin_token" = []), ("user_jwt" = []), ("org_admin_key" = [])),
    params(ListQuery),
    responses(
        (status = 200, description = "A page of credentials", body = Page<Credential>),
        ListErrors,
    )
)]
pub async fn list(
    State(state): State<AppState>,
    manager: Manager,
    QueryParams(query): QueryParams<ListQuery>,
) -> Result<Json<Page<Credential>>, ApiError> {
    let organization_id = scoped_organization(&state, &manager, query.organization_id).await?;
    let limit = super::page_limit(query.limit)?;
    let data = state
        .credentials
        .list(&ListFilter {
            organization_id: organization_id.as_deref(),
            provider: query.provider.as_deref(),
            active: query.active,
            before: query.before.as_deref(),
            limit: limit + 1,
        })
        .await?;
    Ok(Json(Page::cut(data, limit, |c| c.id.clone())))
}

/// The active credential of an organization and provider.
#[utoipa::path(
    get, path = "/api/v1/provider-credentials/active", tag = "provider credentials",
    operation_id = "getActiveProviderCredential",
    security(("admin_token" = []), ("user_jwt" = []), ("org_admin_key" = [])),
    params(ActiveQuery),
    responses(
        (status = 200, description = "The active credential", body = Credential),
        ListErrors,
    )
)]
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

/// The audit log of credential changes, newest first.
#[utoipa::path(
    get, path = "/api/v1/provider-credentials/audit", tag = "provider credentials",
    operation_id = "listProviderCredentialAudit",
    security(("admin_token" = []), ("user_jwt" = []), ("org_admin_key" = [])),
    params(AuditQuery),
    responses(
        (status = 200, description = "A page of audit entries", body = Page<AuditEntry>),
        ListErrors,
    )
)]
pub async fn audit(
    State(state): State<AppState>,
    manager: Manager,
    QueryParams(query): QueryParams<AuditQuery>,
) -> Result<Json<Page<AuditEntry>>, ApiError> {
    let organization_id = scoped_organization(&state, &manager, query.organization_id).await?;
    let limit = super::page_limit(query.limit)?;
    let data = state
        .credentials
        .audit(&AuditFilter {
            organization_id: organization_id.as_deref(),
            credential_id: query.credential_id.as_deref(),
            before: query.before,
            limit: limit + 1,
        })
        .await?;
    Ok(Json(Page::cut(data, limit, |e| e.id.to_string())))
}

/// Read one provider credential.
#[utoipa::path(
    get, path = "/api/v1/provider-credentials/{id}", tag = "provider credentials",
    operation_id = "getProviderCredential",
    security(("admin_token" = []), ("user_jwt" = []), ("org_admin_key" = [])),
    params(("id" = String, Path, description = "Credential id")),
    responses(
        (status = 200, description = "The credential", body = Credential),
        ReadErrors,
    )
)]
pub async fn get(
    State(state): State<AppState>,
    manager: Manager,
    PathParams(id): PathParams<String>,
) -> Result<Json<Credential>, ApiError> {
    Ok(Json(visible_credential(&state, &manager, &id).await?))
}

/// Replace a credential's key or name.
#[utoipa::path(
    put, path = "/api/v1/provider-credentials/{id}", tag = "provider credentials",
    operation_id = "updateProviderCredential",
    security(("admin_token" = []), ("user_jwt" = []), ("org_admin_key" = [])),
    params(("id" = String, Path, description = "Credential id")),
    request_body = UpdateCredential,
    responses(
        (status = 200, description = "The updated credential", body = Credential),
        AdminErrors,
    )
)]
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

/// Delete a provider credential.
#[utoipa::path(
    delete, path = "/api/v1/provider-credentials/{id}", tag = "provider credentials",
    operation_id = "deleteProviderCredential",
    security(("admin_token" = []), ("user_jwt" = []), ("org_admin_key" = [])),
    params(("id" = String, Path, description = "Credential id")),
    responses(
        (status = 200, description = "Deleted", body = DeletedCredential),
        ReadErrors,
    )
)]
pub async fn delete(
    State(state): State<AppState>,
    manager: Manager,
    PathParams(id): PathParams<String>,
) -> Result<Json<DeletedCredential>, ApiError> {
    let current = visible_credential(&state, &manager, &id).await?;
    state
        .credentials
        .delete(&current.organization_id, &id, &manager.actor())
        .await?;
    tracing::info!(credential_id = %id, "provider credential deleted");
    Ok(Json(DeletedCredential { id, deleted: true }))
}

/// Make this the organization's active credential for its provider.
#[utoipa::path(
    put, path = "/api/v1/provider-credentials/{id}/activate", tag = "provider credentials",
    operation_id = "activateProviderCredential",
    security(("admin_token" = []), ("user_jwt" = []), ("org_admin_key" = [])),
    params(("id" = String, Path, description = "Credential id")),
    responses(
        (status = 200, description = "The credential, now active", body = Credential),
        AdminErrors,
    )
)]
pub async fn activate(
    State(state): State<AppState>,
    manager: Manager,
    PathParams(id): PathParams<String>,
) -> Result<Json<Credential>, ApiError> {
    set_active(&state, &manager, &id, true).await
}

/// Stop using this credential.
#[utoipa::path(
    put, path = "/api/v1/provider-credentials/{id}/deactivate", tag = "provider credentials",
    operation_id = "deactivateProviderCredential",
    security(("admin_token" = []), ("user_jwt" = []), ("org_admin_key" = [])),
    params(("id" = String, Path, description = "Credential id")),
    responses(
        (status = 200, description = "The credential, now inactive", body = Credential),
        ReadErrors,
    )
)]
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

//! One `#[utoipa::path]` per route of [`crate::app`]. They sit on
//! bodiless stand-ins rather than on the handlers, so the document lives in
//! one place and the handlers stay free of it; `tests/api/openapi.rs`
//! checks that every operation listed here is served.

#![allow(dead_code, clippy::unused_async)]

use super::errors::{
    AdminErrors, CreateErrors, DataPlaneErrors, GrantErrors, ListErrors, LoginErrors,
    MessagesErrors, ModelListErrors, ReadErrors, UnauthorizedOnly,
};
use super::schemas::*;

// ---------------------------------------------------------------- data plane

/// Create a chat completion (OpenAI).
///
/// `"model": "auto"` picks a model by power level (body `power_level` or
/// header `x-tollgate-power-level`). With `stream: true` the answer is
/// `text/event-stream` ending `data: [DONE]`. The gateway headers
/// (`x-tollgate-request-id`, `-model`, `-provider`, `-byok`, `-cost`) come
/// with every answer.
#[utoipa::path(
    post, path = "/v1/chat/completions", tag = "data plane",
    operation_id = "createChatCompletion",
    security(("api_key" = [])),
    params(
        ("x-tollgate-power-level" = Option<String>, Header, description = "`eco`, `balanced` or `precision`, for `\"model\": \"auto\"`"),
        ("x-tollgate-timeout-ms" = Option<u64>, Header, description = "The client's own timeout, 1 to 3600000 ms: fallbacks, retries and each provider call end by then (504 `provider_timeout`, nothing charged)"),
    ),
    request_body = ChatCompletionRequest,
    responses(
        (status = 200, description = "The completion, or an SSE stream of chunks", content(
            (ChatCompletion = "application/json"),
            (SseEvent = "text/event-stream"),
        ), headers(
            ("x-tollgate-request-id" = String, description = "Unique id, also in the logs and the usage record"),
            ("x-tollgate-model" = String, description = "Catalog id of the model that answered"),
            ("x-tollgate-provider" = String, description = "Provider that answered"),
            ("x-tollgate-byok" = String, description = "`true` when the organization's own key paid the provider"),
            ("x-tollgate-cost" = String, description = "What was deducted, in the organization's unit"),
        )),
        DataPlaneErrors,
    )
)]
pub async fn chat_completions() {}

/// Create embeddings (OpenAI).
#[utoipa::path(
    post, path = "/v1/embeddings", tag = "data plane",
    operation_id = "createEmbedding",
    security(("api_key" = [])),
    request_body = EmbeddingRequest,
    responses(
        (status = 200, description = "The embeddings", body = EmbeddingList, headers(
            ("x-tollgate-request-id" = String, description = "Unique id, also in the usage record"),
            ("x-tollgate-cost" = String, description = "What was deducted, in the organization's unit"),
        )),
        DataPlaneErrors,
    )
)]
pub async fn embeddings() {}

/// List the models this organization can use, plus `auto` (OpenAI).
#[utoipa::path(
    get, path = "/v1/models", tag = "data plane",
    operation_id = "listModels",
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The model list", body = ModelList),
        ModelListErrors,
    )
)]
pub async fn models() {}

/// Create a message (Anthropic Messages).
///
/// Errors use Anthropic's shape; `stream: true` answers Anthropic SSE
/// events.
#[utoipa::path(
    post, path = "/v1/messages", tag = "data plane",
    operation_id = "createMessage",
    security(("api_key" = []), ("x_api_key" = [])),
    params(
        ("anthropic-version" = Option<String>, Header, description = "Accepted and ignored"),
        ("x-tollgate-timeout-ms" = Option<u64>, Header, description = "The client's own timeout, 1 to 3600000 ms: fallbacks, retries and each provider call end by then (504, nothing charged)"),
    ),
    request_body = MessagesRequest,
    responses(
        (status = 200, description = "The message, or an SSE stream of events", content(
            (MessagesResponse = "application/json"),
            (SseEvent = "text/event-stream", example = json!({"event": "message_start", "data": "{\"type\":\"message_start\"}"})),
        )),
        MessagesErrors,
    )
)]
pub async fn messages() {}

// ------------------------------------------------------------ organizations

/// Create an organization.
///
/// Roles: platform admin.
#[utoipa::path(
    post, path = "/api/v1/organizations", tag = "organizations",
    operation_id = "createOrganization",
    security(("admin_token" = []), ("user_jwt" = [])),
    request_body = CreateOrganization,
    responses(
        (status = 201, description = "The new organization", body = Organization),
        CreateErrors,
    )
)]
pub async fn create_organization() {}

/// Read an organization.
///
/// Roles: platform admin; org_admin and org_member of this organization.
#[utoipa::path(
    get, path = "/api/v1/organizations/{org_id}", tag = "organizations",
    operation_id = "getOrganization",
    security(("admin_token" = []), ("user_jwt" = [])),
    params(("org_id" = String, Path, description = "Organization id")),
    responses(
        (status = 200, description = "The organization", body = Organization),
        ReadErrors,
    )
)]
pub async fn get_organization() {}

/// List organizations, newest first.
///
/// Roles: platform admin (every organization); a user sees only its own.
#[utoipa::path(
    get, path = "/api/v1/organizations", tag = "organizations",
    operation_id = "listOrganizations",
    security(("admin_token" = []), ("user_jwt" = [])),
    params(
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 1000, description = "Page size (default 100)"),
        ("before" = Option<String>, Query, description = "Cursor: an organization `id`; only older ones"),
        ("suspended" = Option<bool>, Query, description = "Only suspended (or only active) ones"),
    ),
    responses(
        (status = 200, description = "A page of organizations", body = OrganizationPage),
        ListErrors,
    )
)]
pub async fn list_organizations() {}

/// Update an organization: its name, default power level, markup,
/// overdraft limit, allowed models and rate limits. A change reaches every
/// replica's calls within a second.
///
/// Roles: platform admin; org_admin of this organization for `name` and
/// `default_power_level` only (403 if the body names any other field).
#[utoipa::path(
    patch, path = "/api/v1/organizations/{org_id}", tag = "organizations",
    operation_id = "updateOrganization",
    security(("admin_token" = []), ("user_jwt" = [])),
    params(("org_id" = String, Path, description = "Organization id")),
    request_body = UpdateOrganization,
    responses(
        (status = 200, description = "The updated organization", body = Organization),
        AdminErrors,
    )
)]
pub async fn update_organization() {}

/// Suspend an organization: its API keys answer 403
/// (`organization_suspended`) within a second on every replica.
///
/// Roles: platform admin.
#[utoipa::path(
    post, path = "/api/v1/organizations/{org_id}/suspend", tag = "organizations",
    operation_id = "suspendOrganization",
    security(("admin_token" = []), ("user_jwt" = [])),
    params(("org_id" = String, Path, description = "Organization id")),
    responses(
        (status = 200, description = "The suspended organization", body = Organization),
        ReadErrors,
    )
)]
pub async fn suspend_organization() {}

/// Resume a suspended organization.
///
/// Roles: platform admin.
#[utoipa::path(
    post, path = "/api/v1/organizations/{org_id}/resume", tag = "organizations",
    operation_id = "resumeOrganization",
    security(("admin_token" = []), ("user_jwt" = [])),
    params(("org_id" = String, Path, description = "Organization id")),
    responses(
        (status = 200, description = "The organization, active again", body = Organization),
        ReadErrors,
    )
)]
pub async fn resume_organization() {}

// ----------------------------------------------------------------- API keys

/// Create an API key; the key is shown only in this answer.
///
/// Roles: platform admin; org_admin of this organization.
#[utoipa::path(
    post, path = "/api/v1/organizations/{org_id}/api-keys", tag = "api keys",
    operation_id = "createApiKey",
    security(("admin_token" = []), ("user_jwt" = [])),
    params(("org_id" = String, Path, description = "Organization id")),
    request_body = CreateApiKey,
    responses(
        (status = 201, description = "The new key, with its secret", body = CreatedApiKey),
        AdminErrors,
    )
)]
pub async fn create_api_key() {}

/// List an organization's API keys, without secrets.
///
/// Roles: platform admin; org_admin and org_member of this organization.
#[utoipa::path(
    get, path = "/api/v1/organizations/{org_id}/api-keys", tag = "api keys",
    operation_id = "listApiKeys",
    security(("admin_token" = []), ("user_jwt" = [])),
    params(("org_id" = String, Path, description = "Organization id")),
    responses(
        (status = 200, description = "The keys", body = ApiKeyList),
        ReadErrors,
    )
)]
pub async fn list_api_keys() {}

/// Revoke an API key; it fails with 401 within a second on every replica.
///
/// Roles: platform admin; org_admin of this organization.
#[utoipa::path(
    delete, path = "/api/v1/organizations/{org_id}/api-keys/{key_id}", tag = "api keys",
    operation_id = "revokeApiKey",
    security(("admin_token" = []), ("user_jwt" = [])),
    params(
        ("org_id" = String, Path, description = "Organization id"),
        ("key_id" = String, Path, description = "API key id"),
    ),
    responses(
        (status = 200, description = "Revoked", body = RevokedApiKey),
        ReadErrors,
    )
)]
pub async fn revoke_api_key() {}

// ------------------------------------------------------------------ credits

/// Read an organization's balance.
///
/// Roles: platform admin; org_admin of this organization.
#[utoipa::path(
    get, path = "/api/v1/organizations/{org_id}/credits", tag = "credits",
    operation_id = "getCredits",
    security(("admin_token" = []), ("user_jwt" = [])),
    params(("org_id" = String, Path, description = "Organization id")),
    responses(
        (status = 200, description = "The balance", body = Credits),
        ReadErrors,
    )
)]
pub async fn credits() {}

/// Grant credits (idempotent with `idempotency_key`).
///
/// Roles: platform admin.
#[utoipa::path(
    post, path = "/api/v1/organizations/{org_id}/credits/grants", tag = "credits",
    operation_id = "grantCredits",
    security(("admin_token" = []), ("user_jwt" = [])),
    params(("org_id" = String, Path, description = "Organization id")),
    request_body = Grant,
    responses(
        (status = 201, description = "The balance after the grant", body = GrantResult),
        GrantErrors,
    )
)]
pub async fn grant_credits() {}

/// List the credit ledger, newest first.
///
/// Roles: platform admin; org_admin of this organization.
#[utoipa::path(
    get, path = "/api/v1/organizations/{org_id}/credits/transactions", tag = "credits",
    operation_id = "listCreditTransactions",
    security(("admin_token" = []), ("user_jwt" = [])),
    params(
        ("org_id" = String, Path, description = "Organization id"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 1000, description = "Page size (default 100)"),
        ("before" = Option<String>, Query, description = "Cursor: a ledger entry `id`; only older entries"),
    ),
    responses(
        (status = 200, description = "A page of ledger entries", body = LedgerPage),
        ListErrors,
    )
)]
pub async fn credit_transactions() {}

// -------------------------------------------------------------------- usage

/// List an organization's usage records, newest first, or export them as CSV.
///
/// Filters combine (AND); `from` and `to` are unix milliseconds. With
/// `format=csv` (or `Accept: text/csv`) the answer is every matching record,
/// oldest first, as RFC 4180 CSV with a header line (no `limit`/`before`).
///
/// Roles: platform admin; org_admin and org_member of this organization.
#[utoipa::path(
    get, path = "/api/v1/organizations/{org_id}/usage", tag = "usage",
    operation_id = "listUsage",
    security(("admin_token" = []), ("user_jwt" = [])),
    params(
        ("org_id" = String, Path, description = "Organization id"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 1000, description = "Page size (default 100)"),
        ("before" = Option<String>, Query, description = "Cursor: a usage record's `request_id`; only older records"),
        UsageFilterParams,
        ("format" = Option<String>, Query, description = "`json` (default) or `csv`"),
    ),
    responses(
        (status = 200, description = "A page of usage records, or the CSV export", content(
            (UsagePage = "application/json"),
            (String = "text/csv", example = json!("request_id,created_at,model,provider,api_key_id,prompt_tokens,completion_tokens,cached_tokens,cache_write_tokens,cost,list_cost_usd_micros,byok,stream,status,latency_ms\r\nreq_0192f0c1a2b3,1763900000,gpt-4o-mini,openai,key_0192f0c1a2b3,12,9,0,0,8,8,false,false,ok,412\r\n")),
        )),
        ListErrors,
    )
)]
pub async fn usage() {}

/// Sum an organization's usage per day, model, API key or provider.
///
/// Takes the same filters as the list. Days are UTC (`YYYY-MM-DD`).
///
/// Roles: platform admin; org_admin and org_member of this organization.
#[utoipa::path(
    get, path = "/api/v1/organizations/{org_id}/usage/summary", tag = "usage",
    operation_id = "summarizeUsage",
    security(("admin_token" = []), ("user_jwt" = [])),
    params(
        ("org_id" = String, Path, description = "Organization id"),
        ("group_by" = String, Query, description = "`day`, `model`, `api_key` or `provider`"),
        UsageFilterParams,
    ),
    responses(
        (status = 200, description = "The sums per group", body = UsageSummary),
        ListErrors,
    )
)]
pub async fn usage_summary() {}

/// The filters of the usage list and summary.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UsageFilterParams {
    /// Only records from this instant (unix milliseconds, inclusive).
    from: Option<i64>,
    /// Only records before this instant (unix milliseconds, exclusive).
    to: Option<i64>,
    /// Only this catalog model id.
    model: Option<String>,
    /// Only this provider.
    provider: Option<String>,
    /// Only calls made with this API key id.
    api_key_id: Option<String>,
    /// Only calls paid (`true`) or not paid (`false`) with the organization's own key.
    byok: Option<bool>,
    /// Only `ok` or only `partial` (streams that ended early) records.
    status: Option<String>,
}

// ------------------------------------------------------ provider credentials

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
pub async fn create_credential() {}

/// List provider credentials, newest first.
#[utoipa::path(
    get, path = "/api/v1/provider-credentials", tag = "provider credentials",
    operation_id = "listProviderCredentials",
    security(("admin_token" = []), ("user_jwt" = []), ("org_admin_key" = [])),
    params(
        ("organization_id" = Option<String>, Query, description = "Only this organization's (an organization admin key sees only its own)"),
        ("provider" = Option<String>, Query, description = "Only this provider's"),
        ("active" = Option<bool>, Query, description = "Only active (or inactive) ones"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 1000, description = "Page size (default 100)"),
        ("before" = Option<String>, Query, description = "Cursor: a credential `id`; only older ones"),
    ),
    responses(
        (status = 200, description = "A page of credentials", body = CredentialPage),
        ListErrors,
    )
)]
pub async fn list_credentials() {}

/// The active credential of an organization and provider.
#[utoipa::path(
    get, path = "/api/v1/provider-credentials/active", tag = "provider credentials",
    operation_id = "getActiveProviderCredential",
    security(("admin_token" = []), ("user_jwt" = []), ("org_admin_key" = [])),
    params(
        ("organization_id" = Option<String>, Query, description = "Required with the admin token"),
        ("provider" = String, Query, description = "Provider name"),
    ),
    responses(
        (status = 200, description = "The active credential", body = Credential),
        ListErrors,
    )
)]
pub async fn active_credential() {}

/// The audit log of credential changes, newest first.
#[utoipa::path(
    get, path = "/api/v1/provider-credentials/audit", tag = "provider credentials",
    operation_id = "listProviderCredentialAudit",
    security(("admin_token" = []), ("user_jwt" = []), ("org_admin_key" = [])),
    params(
        ("organization_id" = Option<String>, Query, description = "Only this organization's"),
        ("credential_id" = Option<String>, Query, description = "Only this credential's"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 1000, description = "Page size (default 100)"),
        ("before" = Option<i64>, Query, description = "Cursor: an audit entry `id`; only older entries"),
    ),
    responses(
        (status = 200, description = "A page of audit entries", body = AuditPage),
        ListErrors,
    )
)]
pub async fn credential_audit() {}

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
pub async fn get_credential() {}

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
pub async fn update_credential() {}

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
pub async fn delete_credential() {}

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
pub async fn activate_credential() {}

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
pub async fn deactivate_credential() {}

// ----------------------------------------------------------- users and auth

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
pub async fn create_user() {}

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
pub async fn login() {}

/// Trade a valid JWT for a fresh one; 401 once the user is removed, its
/// organization deleted or its role changed (sign in again).
#[utoipa::path(
    post, path = "/api/v1/auth/refresh", tag = "users",
    operation_id = "refreshToken",
    security(("user_jwt" = [])),
    responses(
        (status = 200, description = "A new bearer token", body = Token),
        ReadErrors,
    )
)]
pub async fn refresh() {}

// ------------------------------------------------------------------ catalog

/// The catalog with prices, tiers and quality.
///
/// Roles: any management caller.
#[utoipa::path(
    get, path = "/api/v1/models", tag = "catalog",
    operation_id = "listCatalogModels",
    security(("admin_token" = []), ("user_jwt" = [])),
    responses(
        (status = 200, description = "Every catalog model, those disabled at runtime last", body = CatalogModelList),
        UnauthorizedOnly,
    )
)]
pub async fn catalog() {}

/// Each deployment's circuit state, latency, error rate and cooldown, as
/// this replica sees them.
///
/// Roles: platform admin.
#[utoipa::path(
    get, path = "/api/v1/routing/health", tag = "catalog",
    operation_id = "getRoutingHealth",
    security(("admin_token" = []), ("user_jwt" = [])),
    responses(
        (status = 200, description = "Every deployment's health", body = RoutingHealth),
        ReadErrors,
    )
)]
pub async fn routing_health() {}

// --------------------------------------------------------------- operations

/// The process is up.
#[utoipa::path(
    get, path = "/health", tag = "operations", operation_id = "health", security(()),
    responses((status = 200, description = "Up", body = Status))
)]
pub async fn health() {}

/// The database is reachable.
#[utoipa::path(
    get, path = "/ready", tag = "operations", operation_id = "ready", security(()),
    responses(
        (status = 200, description = "Ready", body = Status),
        (status = 503, description = "The database is unreachable", body = NotReady),
    )
)]
pub async fn ready() {}

/// Prometheus metrics (OpenMetrics text).
#[utoipa::path(
    get, path = "/metrics", tag = "operations", operation_id = "metrics", security(()),
    responses((status = 200, description = "Metrics", body = String,
        content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8"))
)]
pub async fn metrics() {}

/// This document.
#[utoipa::path(
    get, path = "/openapi.json", tag = "operations", operation_id = "openapi", security(()),
    responses((status = 200, description = "The OpenAPI 3.1 document", body = Object))
)]
pub async fn openapi() {}

/// This document, rendered as HTML (no request leaves the page).
#[utoipa::path(
    get, path = "/docs", tag = "operations", operation_id = "docs", security(()),
    responses((status = 200, description = "An HTML page", body = String, content_type = "text/html; charset=utf-8"))
)]
pub async fn docs() {}

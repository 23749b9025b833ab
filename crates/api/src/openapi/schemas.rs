//! The wire shapes of every request and answer, as the OpenAPI document
//! describes them. They mirror the domain crates' types (which know nothing
//! of HTTP or OpenAPI) field for field; `tests/api/openapi.rs` checks real
//! answers against them.

#![allow(dead_code)]

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

// ------------------------------------------------------------------ errors

/// Every error, on both planes (`/v1/messages` answers `AnthropicError`).
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"error": {"message": "organization not found", "type": "invalid_request_error", "code": "not_found"}}))]
pub struct ErrorResponse {
    pub error: ErrorBody,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong, for a person; a 400 names the field.
    pub message: String,
    /// `invalid_request_error`, `authentication_error`, `permission_error`,
    /// `billing_error`, `rate_limit_error`, `provider_error`,
    /// `internal_error` or `server_error`.
    #[serde(rename = "type")]
    pub kind: String,
    /// A stable, machine-readable code, e.g. `not_found`,
    /// `insufficient_credits`, `invalid_api_key`.
    pub code: String,
    /// The part of the request the error is about, when there is one: `budget`
    /// on a 402 that the API key's budget refused (the organization's
    /// balance may still be enough); absent when the balance refused it.
    #[schema(nullable = false)]
    pub param: Option<String>,
}

/// Errors of `/v1/messages`, in Anthropic's shape.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"type": "error", "error": {"type": "authentication_error", "message": "invalid api key"}}))]
pub struct AnthropicError {
    /// Always `error`.
    #[serde(rename = "type")]
    pub kind: String,
    pub error: AnthropicErrorBody,
}

#[derive(Serialize, ToSchema)]
pub struct AnthropicErrorBody {
    #[serde(rename = "type")]
    pub kind: String,
    pub message: String,
}

// ------------------------------------------------------------ operations

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"status": "ok"}))]
pub struct Status {
    /// `ok`.
    pub status: String,
}

/// `GET /ready` when the database cannot be reached.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"status": "unavailable", "error": {"message": "database unreachable", "type": "unavailable", "code": "database_unreachable"}}))]
pub struct NotReady {
    /// `unavailable`.
    pub status: String,
    pub error: ErrorBody,
}

// ---------------------------------------------------------- organizations

/// How an organization pays for calls.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum BillingMode {
    /// The USD list cost of each call, in micro-dollars.
    Usd,
    /// Prompt plus completion tokens.
    Tokens,
    /// One credit per call.
    Requests,
}

/// The unit an organization's balance and costs are counted in.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    UsdMicros,
    Tokens,
    Requests,
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"name": "Acme", "billing_mode": "usd"}))]
pub struct CreateOrganization {
    /// 1 to 200 characters.
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    pub billing_mode: BillingMode,
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"id": "org_0192f0c1a2b3c4d5e6f7a8b9c0d1e2f3", "name": "Acme", "billing_mode": "usd", "default_power_level": null, "suspended": false, "markup_percent": 0, "overdraft_limit": 0, "allowed_models": null, "rpm_limit": null, "tpm_limit": null, "max_concurrency": null, "created_at": 1_763_900_000}))]
pub struct Organization {
    /// Also the `before` cursor of the next page.
    pub id: String,
    pub name: String,
    pub billing_mode: BillingMode,
    /// The power level of `"model": "auto"` calls that name none (null:
    /// `balanced`).
    pub default_power_level: Option<PowerLevel>,
    /// Whether its calls are refused with 403 (`organization_suspended`).
    pub suspended: bool,
    /// Percent added to the USD list cost of calls paid with the platform's
    /// keys (`usd` mode only; not to BYOK fees): cost = list × (100 +
    /// markup) / 100, rounded up once to a whole micro-dollar.
    #[schema(minimum = 0, maximum = 1000)]
    pub markup_percent: i64,
    /// How far below zero the balance may go, in the organization's unit.
    #[schema(minimum = 0)]
    pub overdraft_limit: i64,
    /// The catalog models its calls may use (null: all). Another model is
    /// refused with 403 `model_not_allowed`.
    pub allowed_models: Option<Vec<String>>,
    /// Requests per minute over all its keys (null: the platform default,
    /// `TOLLGATE_ORG_RPM_LIMIT`).
    pub rpm_limit: Option<i64>,
    /// Tokens per minute over all its keys (null: `TOLLGATE_ORG_TPM_LIMIT`).
    pub tpm_limit: Option<i64>,
    /// Calls in flight at once over all its keys (null:
    /// `TOLLGATE_ORG_MAX_CONCURRENCY`).
    pub max_concurrency: Option<i64>,
    /// Unix seconds.
    pub created_at: i64,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PowerLevel {
    Eco,
    Balanced,
    Precision,
}

/// Newest first.
#[derive(Serialize, ToSchema)]
pub struct OrganizationPage {
    pub data: Vec<Organization>,
    /// Whether older organizations follow: pass the last `id` as `before`.
    pub has_more: bool,
}

/// Fields left out are unchanged. An org_admin of the organization may
/// change `name` and `default_power_level`; the other fields need a
/// platform admin (403 otherwise).
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"name": "Acme Corp", "default_power_level": "eco", "markup_percent": 20, "overdraft_limit": 1_000_000, "allowed_models": ["gpt-4o-mini", "claude-3-5-haiku"], "rpm_limit": 600, "tpm_limit": null}))]
pub struct UpdateOrganization {
    /// 1 to 200 characters.
    #[schema(nullable = false)]
    pub name: Option<String>,
    /// `null` clears it (back to `balanced`).
    pub default_power_level: Option<PowerLevel>,
    /// 0 to 1000. Platform admin only.
    #[schema(nullable = false, minimum = 0, maximum = 1000)]
    pub markup_percent: Option<i64>,
    /// In the organization's unit, 0 to 10^15. Platform admin only.
    #[schema(nullable = false, minimum = 0, maximum = 1_000_000_000_000_000_i64)]
    pub overdraft_limit: Option<i64>,
    /// Catalog model ids (each must exist); `null`: every model. Platform
    /// admin only.
    pub allowed_models: Option<Vec<String>>,
    /// Positive; `null`: the platform default. Platform admin only.
    #[schema(minimum = 1)]
    pub rpm_limit: Option<i64>,
    /// Positive; `null`: the platform default. Platform admin only.
    #[schema(minimum = 1)]
    pub tpm_limit: Option<i64>,
    /// Positive; `null`: the platform default. Platform admin only.
    #[schema(minimum = 1)]
    pub max_concurrency: Option<i64>,
}

// ---------------------------------------------------------------- API keys

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum BudgetPeriod {
    Daily,
    Weekly,
    Monthly,
    Total,
}

/// A spending cap on one key, in the organization's unit.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"amount": 1_000_000, "period": "monthly"}))]
pub struct Budget {
    pub amount: i64,
    pub period: BudgetPeriod,
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"name": "prod", "rpm_limit": 600, "budget": {"amount": 5_000_000, "period": "monthly"}, "scopes": ["chat"]}))]
pub struct CreateApiKey {
    pub name: String,
    /// Requests per minute.
    #[schema(nullable = false)]
    pub rpm_limit: Option<i64>,
    /// Tokens per minute.
    #[schema(nullable = false)]
    pub tpm_limit: Option<i64>,
    /// Calls in flight at once.
    #[schema(nullable = false)]
    pub max_concurrency: Option<i64>,
    #[schema(nullable = false)]
    pub budget: Option<Budget>,
    /// Unix seconds.
    #[schema(nullable = false)]
    pub expires_at: Option<i64>,
    /// An organization admin key: it may also manage its own organization's
    /// provider credentials. Default false. The same as the `admin` scope.
    #[schema(nullable = false)]
    pub admin: Option<bool>,
    /// What the key may call; default `["chat", "embeddings"]` (plus
    /// `admin` when `admin` is true). At least one.
    #[schema(nullable = false)]
    pub scopes: Option<Vec<KeyScope>>,
}

/// `chat`: `/v1/chat/completions` and `/v1/messages`; `embeddings`:
/// `/v1/embeddings`; `admin`: the organization's provider credentials. A
/// call outside the key's scopes is a 403 (`missing_scope`).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum KeyScope {
    Chat,
    Embeddings,
    Admin,
}

/// A key's budget and what the key spent of it in the current period.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"amount": 5_000_000, "period": "monthly", "spent": 1_250_000, "resets_at": 1_764_547_200}))]
pub struct BudgetStatus {
    /// The cap per period, in the organization's unit.
    pub amount: i64,
    /// Periods start at 00:00 UTC: each day, each Monday (ISO week), each
    /// 1st of the month; `total` never resets.
    pub period: BudgetPeriod,
    /// Charged to settled calls of this key in the current period.
    pub spent: i64,
    /// When the current period ends and `spent` starts again from 0 (unix
    /// seconds); `null` for `total`.
    pub resets_at: Option<i64>,
}

/// A key as listed: everything but the secret.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"id": "key_0192f0c1a2b3", "organization_id": "org_0192f0c1a2b3", "name": "prod", "key_prefix": "tg-0192f0c1", "rpm_limit": 600, "tpm_limit": null, "max_concurrency": null, "budget": {"amount": 5_000_000, "period": "monthly", "spent": 1_250_000, "resets_at": 1_764_547_200}, "expires_at": null, "admin": false, "scopes": ["chat", "embeddings"], "revoked_at": null, "created_at": 1_763_900_000}))]
pub struct ApiKey {
    pub id: String,
    pub organization_id: String,
    pub name: String,
    /// The key's first characters, enough to recognise it.
    pub key_prefix: String,
    pub rpm_limit: Option<i64>,
    pub tpm_limit: Option<i64>,
    pub max_concurrency: Option<i64>,
    /// Enforced: a call the budget cannot cover gets 402 with `param: budget`.
    pub budget: Option<BudgetStatus>,
    /// Unix seconds.
    pub expires_at: Option<i64>,
    /// Whether it has the `admin` scope.
    pub admin: bool,
    pub scopes: Vec<KeyScope>,
    /// Unix seconds.
    pub revoked_at: Option<i64>,
    /// Unix seconds.
    pub created_at: i64,
}

/// A new key: the listed fields plus `key`, shown only in this answer.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"id": "key_0192f0c1a2b3", "organization_id": "org_0192f0c1a2b3", "name": "prod", "key_prefix": "tg-0192f0c1", "rpm_limit": null, "tpm_limit": null, "max_concurrency": null, "budget": null, "expires_at": null, "admin": false, "scopes": ["chat", "embeddings"], "revoked_at": null, "created_at": 1_763_900_000, "key": "tg-0192f0c1a2b3.s3cr3t"}))]
pub struct CreatedApiKey {
    #[serde(flatten)]
    pub info: ApiKey,
    /// The full key. Store it now: it is never shown again.
    pub key: String,
}

#[derive(Serialize, ToSchema)]
pub struct ApiKeyList {
    pub data: Vec<ApiKey>,
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"id": "key_0192f0c1a2b3", "revoked": true}))]
pub struct RevokedApiKey {
    pub id: String,
    /// Always true.
    pub revoked: bool,
}

// ----------------------------------------------------------------- credits

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"amount": 5_000_000, "idempotency_key": "topup-1", "reason": "monthly top-up"}))]
pub struct Grant {
    /// In the organization's unit; at least 1.
    #[schema(minimum = 1)]
    pub amount: i64,
    /// A second grant with the same key answers the first one's result;
    /// with another body it is a 409.
    #[schema(nullable = false, min_length = 1, max_length = 255)]
    pub idempotency_key: Option<String>,
    #[schema(nullable = false, max_length = 4096)]
    pub reason: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"balance": 5_000_000, "unit": "usd_micros"}))]
pub struct GrantResult {
    pub balance: i64,
    pub unit: Unit,
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"balance": 4_998_500, "reserved": 20_000, "overdraft_limit": 0, "unit": "usd_micros"}))]
pub struct Credits {
    pub balance: i64,
    /// Set aside by gateway instances for calls in flight.
    pub reserved: i64,
    pub overdraft_limit: i64,
    pub unit: Unit,
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"id": 42, "kind": "grant", "amount": 5_000_000, "balance_after": 5_000_000, "request_id": null, "reason": "monthly top-up", "created_at": 1_763_900_000}))]
pub struct LedgerEntry {
    /// Also the `before` cursor of the next page.
    pub id: i64,
    /// `grant`, `usage` or `adjustment`.
    pub kind: String,
    /// Signed: positive adds credits, negative spends them.
    pub amount: i64,
    pub balance_after: i64,
    pub request_id: Option<String>,
    pub reason: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
}

/// Newest first.
#[derive(Serialize, ToSchema)]
pub struct LedgerPage {
    pub data: Vec<LedgerEntry>,
    /// Whether older entries follow: pass the last `id` as `before`.
    pub has_more: bool,
    pub unit: Unit,
}

// ------------------------------------------------------------------- usage

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"request_id": "req_0192f0c1a2b3", "model": "gpt-4o-mini", "provider": "openai", "prompt_tokens": 12, "completion_tokens": 9, "cached_tokens": 0, "cache_write_tokens": 0, "cost": 8, "list_cost_usd_micros": 8, "byok": false, "stream": false, "status": "ok", "latency_ms": 412, "api_key_id": "key_0192f0c1a2b3", "created_at": 1_763_900_000}))]
pub struct UsageRecord {
    /// Also the `before` cursor of the next page.
    pub request_id: String,
    pub model: String,
    pub provider: String,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    /// The part of `prompt_tokens` read from the provider's prompt cache.
    pub cached_tokens: i64,
    /// The part of `prompt_tokens` written to the provider's prompt cache
    /// (priced at the model's `cache_write_per_mtok`).
    pub cache_write_tokens: i64,
    /// What was deducted, in the organization's unit.
    pub cost: i64,
    pub list_cost_usd_micros: i64,
    pub byok: bool,
    pub stream: bool,
    /// `ok` or `partial` (a stream that ended early).
    pub status: String,
    pub latency_ms: i64,
    pub api_key_id: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
}

/// Newest first.
#[derive(Serialize, ToSchema)]
pub struct UsagePage {
    pub data: Vec<UsageRecord>,
    /// Whether older records follow: pass the last `request_id` as `before`.
    pub has_more: bool,
    pub unit: Unit,
}

/// One group of a usage summary: sums over its records.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"key": "2026-12-01", "requests": 1_204, "prompt_tokens": 512_000, "completion_tokens": 98_000, "cost": 135_600}))]
pub struct UsageSummaryRow {
    /// The UTC day (`YYYY-MM-DD`), model id, API key id or provider name, per
    /// `group_by`; `null` for calls without an API key.
    pub key: Option<String>,
    pub requests: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    /// Prompt tokens read from and written to the provider's prompt cache.
    pub cached_tokens: i64,
    pub cache_write_tokens: i64,
    /// In the organization's unit.
    pub cost: i64,
}

/// Usage summed per group, in key order.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"data": [{"key": "gpt-4o-mini", "requests": 1_204, "prompt_tokens": 512_000, "completion_tokens": 98_000, "cost": 135_600}], "unit": "usd_micros"}))]
pub struct UsageSummary {
    pub data: Vec<UsageSummaryRow>,
    pub unit: Unit,
}

// ---------------------------------------------------- provider credentials

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"organization_id": "org_0192f0c1a2b3", "provider": "openai", "api_key": "sk-proj-…", "credential_name": "prod"}))]
pub struct CreateCredential {
    pub organization_id: String,
    /// A provider name of the catalog.
    pub provider: String,
    /// Never answered, logged or repeated in an error.
    pub api_key: String,
    /// Default: the provider's name.
    #[schema(nullable = false)]
    pub credential_name: Option<String>,
    /// Whether the organization's calls use it from now on (default true).
    #[schema(nullable = false)]
    pub active: Option<bool>,
    /// Try the key with a one-token call first (default false).
    #[schema(nullable = false)]
    pub validate: Option<bool>,
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"credential_name": "prod (rotated)"}))]
pub struct UpdateCredential {
    #[schema(nullable = false)]
    pub api_key: Option<String>,
    #[schema(nullable = false)]
    pub credential_name: Option<String>,
    /// Try a new `api_key` with a one-token call first (default false).
    #[schema(nullable = false)]
    pub validate: Option<bool>,
}

/// An organization's own provider key, without the key.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"id": "cred_0192f0c1a2b3", "organization_id": "org_0192f0c1a2b3", "provider": "openai", "credential_name": "prod", "key_hint": "x9Qz", "key_version": 1, "active": true, "created_at": 1_763_900_000, "updated_at": 1_763_900_000}))]
pub struct Credential {
    /// Also the `before` cursor of the next page.
    pub id: String,
    pub organization_id: String,
    pub provider: String,
    pub credential_name: String,
    /// The key's last four characters.
    pub key_hint: String,
    /// Generation of the organization's data key that sealed the key.
    pub key_version: i64,
    pub active: bool,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub updated_at: i64,
}

/// Newest first.
#[derive(Serialize, ToSchema)]
pub struct CredentialPage {
    pub data: Vec<Credential>,
    pub has_more: bool,
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"id": "cred_0192f0c1a2b3", "deleted": true}))]
pub struct DeletedCredential {
    pub id: String,
    /// Always true.
    pub deleted: bool,
}

/// Who made an audited change.
#[derive(Serialize, ToSchema)]
pub struct AuditActor {
    /// `platform_admin`, `api_key` or `user`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The API key's or user's id.
    pub id: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"id": 7, "organization_id": "org_0192f0c1a2b3", "credential_id": "cred_0192f0c1a2b3", "provider": "openai", "action": "create", "actor": {"type": "platform_admin", "id": null}, "credential_name": "prod", "key_hint": "x9Qz", "changes": [], "created_at": 1_763_900_000}))]
pub struct AuditEntry {
    /// Also the `before` cursor of the next page.
    pub id: i64,
    pub organization_id: String,
    pub credential_id: String,
    pub provider: String,
    /// `create`, `update`, `activate`, `deactivate` or `delete`.
    pub action: String,
    pub actor: AuditActor,
    pub credential_name: String,
    pub key_hint: String,
    /// For an update: `api_key` and/or `credential_name`.
    pub changes: Vec<String>,
    /// Unix seconds.
    pub created_at: i64,
}

/// Newest first.
#[derive(Serialize, ToSchema)]
pub struct AuditPage {
    pub data: Vec<AuditEntry>,
    pub has_more: bool,
}

// ---------------------------------------------------------- users and auth

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything, like the admin token.
    PlatformAdmin,
    /// Its organization: keys, credentials, users, usage.
    OrgAdmin,
    /// Its organization, read only: the organization, its keys and usage.
    OrgMember,
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"email": "ada@example.com", "password": "correct horse battery staple", "role": "org_admin", "organization_id": "org_0192f0c1a2b3"}))]
pub struct CreateUser {
    /// Unique, compared case-insensitively.
    #[schema(format = Email, max_length = 254)]
    pub email: String,
    /// 12 to 1024 characters; stored as an Argon2id hash.
    #[schema(min_length = 12, max_length = 1024)]
    pub password: String,
    pub role: Role,
    /// Required for org_admin and org_member; omitted for platform_admin.
    #[schema(nullable = false)]
    pub organization_id: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"id": "usr_0192f0c1a2b3", "email": "ada@example.com", "role": "org_admin", "organization_id": "org_0192f0c1a2b3", "created_at": 1_763_900_000}))]
pub struct User {
    pub id: String,
    pub email: String,
    pub role: Role,
    pub organization_id: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"email": "ada@example.com", "password": "correct horse battery staple"}))]
pub struct Login {
    pub email: String,
    pub password: String,
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"access_token": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ1c3JfMSJ9.c2ln", "token_type": "Bearer", "expires_in": 3600}))]
pub struct Token {
    /// A JWT (HS256) with `sub`, `org`, `role`, `iat` and `exp` claims.
    pub access_token: String,
    /// `Bearer`.
    pub token_type: String,
    /// Seconds until it expires.
    pub expires_in: i64,
}

// ----------------------------------------------------------------- catalog

/// List prices in micro-dollars.
#[derive(Serialize, ToSchema)]
pub struct CatalogPrice {
    pub input_per_mtok_usd_micros: i64,
    pub output_per_mtok_usd_micros: i64,
    pub cached_input_per_mtok_usd_micros: i64,
    /// Prompt tokens written to the provider's prompt cache.
    pub cache_write_per_mtok_usd_micros: i64,
    pub per_request_usd_micros: i64,
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"id": "gpt-4o-mini", "provider": "openai", "kind": "openai", "upstream": "gpt-4o-mini", "mode": "chat", "tier": 1, "quality": 70, "context_window": 128_000, "max_output_tokens": 16_384, "price": {"input_per_mtok_usd_micros": 150_000, "output_per_mtok_usd_micros": 600_000, "cached_input_per_mtok_usd_micros": 75_000, "cache_write_per_mtok_usd_micros": 150_000, "per_request_usd_micros": 0}, "platform_key": true, "supports_tools": true, "supports_vision": true, "supports_json": true, "deployments": [{"provider": "openai", "upstream": "gpt-4o-mini", "weight": 1, "rpm": null, "tpm": null}], "disabled": false}))]
pub struct CatalogModel {
    pub id: String,
    pub provider: String,
    /// `openai`, `anthropic` or `gemini`.
    pub kind: Option<String>,
    pub upstream: String,
    /// `chat` or `embedding`.
    pub mode: String,
    /// 0 (free) .. 5 (premium).
    pub tier: i64,
    /// 0..100, higher is better.
    pub quality: i64,
    pub context_window: i64,
    pub max_output_tokens: i64,
    pub price: CatalogPrice,
    /// Whether the platform holds a key for the provider.
    pub platform_key: bool,
    /// Serves requests with `tools` / `functions`.
    pub supports_tools: bool,
    /// Serves requests with image content parts.
    pub supports_vision: bool,
    /// Serves JSON mode (`response_format` `json_object` / `json_schema`).
    pub supports_json: bool,
    /// Where the model is served; `provider` and `upstream` above are the
    /// first of them. See docs/routing.md, section 6.
    pub deployments: Vec<CatalogDeployment>,
    /// Disabled at runtime (`DELETE /api/v1/models/{id}`): not routable,
    /// left out of `GET /v1/models`; listed after the enabled models.
    pub disabled: bool,
}

/// One deployment of a catalog model.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"provider": "openai-b", "upstream": "gpt-4o-mini", "weight": 3, "rpm": 5000, "tpm": null}))]
pub struct CatalogDeployment {
    pub provider: String,
    pub upstream: String,
    /// Relative share of the traffic.
    pub weight: i64,
    /// Requests per minute it takes at most (`null`: no cap).
    pub rpm: Option<i64>,
    /// Tokens per minute it takes at most (`null`: no cap).
    pub tpm: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct CatalogModelList {
    pub data: Vec<CatalogModel>,
}

// ------------------------------------------------------------ routing health

/// One deployment (provider and model) as this replica sees it.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"deployment": "openai/gpt-4o-mini", "provider": "openai", "model": "gpt-4o-mini", "state": "closed", "latency_ms": 412.5, "error_rate": 0.0, "requests": 120, "failures": 0, "consecutive_failures": 0, "cooldown_remaining_ms": null}))]
pub struct DeploymentHealth {
    pub deployment: String,
    pub provider: String,
    pub model: String,
    /// The circuit's state.
    pub state: String,
    pub latency_ms: Option<f64>,
    pub error_rate: f64,
    pub requests: i64,
    pub failures: i64,
    pub consecutive_failures: i64,
    pub cooldown_remaining_ms: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct HealthConfig {
    pub failure_threshold: i64,
    pub cooldown_ms: i64,
    pub max_cooldown_ms: i64,
}

#[derive(Serialize, ToSchema)]
pub struct RoutingHealth {
    pub data: Vec<DeploymentHealth>,
    pub config: HealthConfig,
}

// ------------------------------------------------------------- data plane

/// One message of a conversation.
#[derive(Serialize, ToSchema)]
pub struct ChatMessage {
    /// `system`, `developer`, `user`, `assistant` or `tool`.
    pub role: String,
    /// A string, or an array of content parts; null for an assistant message
    /// that only calls tools.
    pub content: Value,
}

/// OpenAI Chat Completions. Fields not listed here (`tools`,
/// `tool_choice`, `response_format`, `stop`, `seed`, …) are passed on.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"model": "auto", "power_level": "eco", "messages": [{"role": "user", "content": "Hello"}], "max_tokens": 64}))]
pub struct ChatCompletionRequest {
    /// A catalog model id, or `auto` to pick by power level.
    pub model: String,
    pub messages: Vec<ChatMessage>,
    /// Answer as server-sent events ending with `data: [DONE]`.
    #[schema(nullable = false)]
    pub stream: Option<bool>,
    #[schema(nullable = false)]
    pub max_tokens: Option<i64>,
    #[schema(nullable = false)]
    pub max_completion_tokens: Option<i64>,
    #[schema(nullable = false)]
    pub temperature: Option<f64>,
    #[schema(nullable = false)]
    pub top_p: Option<f64>,
    /// For `"model": "auto"`: `eco`, `balanced` (default) or `precision`.
    #[schema(nullable = false)]
    pub power_level: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ChatChoice {
    pub index: i64,
    pub message: ChatMessage,
    /// `stop`, `length`, `tool_calls` or `content_filter`.
    pub finish_reason: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct Usage {
    pub prompt_tokens: i64,
    #[schema(nullable = false)]
    pub completion_tokens: Option<i64>,
    pub total_tokens: i64,
}

/// OpenAI's chat completion. With `stream: true` the answer is
/// `text/event-stream` of `chat.completion.chunk` objects.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"id": "chatcmpl-123", "object": "chat.completion", "created": 1_763_900_000, "model": "gpt-4o-mini", "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello! How can I help?"}, "finish_reason": "stop"}], "usage": {"prompt_tokens": 9, "completion_tokens": 7, "total_tokens": 16}}))]
pub struct ChatCompletion {
    pub id: String,
    /// `chat.completion`.
    pub object: String,
    pub created: i64,
    pub model: String,
    pub choices: Vec<ChatChoice>,
    #[schema(nullable = false)]
    pub usage: Option<Usage>,
}

/// OpenAI Embeddings.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"model": "text-embedding-3-small", "input": "The food was delicious"}))]
pub struct EmbeddingRequest {
    pub model: String,
    /// A string, an array of strings, or token arrays.
    pub input: Value,
    #[schema(nullable = false)]
    pub dimensions: Option<i64>,
    /// `float` (default) or `base64`.
    #[schema(nullable = false)]
    pub encoding_format: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct Embedding {
    /// `embedding`.
    pub object: String,
    pub index: i64,
    /// Floats, or a base64 string with `encoding_format: base64`.
    pub embedding: Value,
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"object": "list", "data": [{"object": "embedding", "index": 0, "embedding": [0.0023, -0.0093]}], "model": "text-embedding-3-small", "usage": {"prompt_tokens": 5, "total_tokens": 5}}))]
pub struct EmbeddingList {
    /// `list`.
    pub object: String,
    pub data: Vec<Embedding>,
    pub model: String,
    pub usage: Usage,
}

#[derive(Serialize, ToSchema)]
pub struct Model {
    pub id: String,
    /// `model`.
    pub object: String,
    pub created: i64,
    pub owned_by: String,
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"object": "list", "data": [{"id": "auto", "object": "model", "created": 0, "owned_by": "tollgate"}, {"id": "gpt-4o-mini", "object": "model", "created": 0, "owned_by": "openai"}]}))]
pub struct ModelList {
    /// `list`.
    pub object: String,
    pub data: Vec<Model>,
}

/// Anthropic Messages. Other fields (`system`, `tools`, `stop_sequences`,
/// `temperature`, …) follow Anthropic's API.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"model": "claude-3-5-haiku-latest", "max_tokens": 256, "messages": [{"role": "user", "content": "Hello"}]}))]
pub struct MessagesRequest {
    pub model: String,
    pub max_tokens: i64,
    pub messages: Vec<ChatMessage>,
    /// A string or an array of text blocks.
    pub system: Option<Value>,
    /// Answer as Anthropic server-sent events.
    #[schema(nullable = false)]
    pub stream: Option<bool>,
}

#[derive(Serialize, ToSchema)]
pub struct MessagesUsage {
    pub input_tokens: i64,
    pub output_tokens: i64,
}

/// Anthropic's message answer.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"id": "msg_123", "type": "message", "role": "assistant", "model": "claude-3-5-haiku-latest", "content": [{"type": "text", "text": "Hello!"}], "stop_reason": "end_turn", "stop_sequence": null, "usage": {"input_tokens": 8, "output_tokens": 3}}))]
pub struct MessagesResponse {
    pub id: String,
    /// `message`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `assistant`.
    pub role: String,
    pub model: String,
    /// Content blocks (`text`, `tool_use`).
    #[schema(value_type = Vec<Object>)]
    pub content: Vec<Value>,
    pub stop_reason: Option<String>,
    pub stop_sequence: Option<String>,
    pub usage: MessagesUsage,
}

// ------------------------------------------------------------ event streams

/// One server-sent event of a streamed answer (`text/event-stream`): the
/// document describes the stream event by event, as OpenAPI 3.2's sequential
/// media types do. Chat Completions streams send only `data:` lines (a JSON
/// chunk, the last one `[DONE]`); Anthropic Messages streams name each event
/// (`message_start`, `content_block_delta`, …, `message_stop`).
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"data": "{\"id\":\"chatcmpl-123\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}"}))]
pub struct SseEvent {
    /// The `event:` field, when the stream names its events.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    /// The `data:` field: a JSON object, or `[DONE]` at the end of a Chat
    /// Completions stream.
    pub data: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry: Option<i64>,
}

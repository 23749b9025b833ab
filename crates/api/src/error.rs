//! The API's one error type. Its [`ErrorCode`] fixes its HTTP status and
//! `type`; it renders OpenAI's error shape, `{"error": {"message", "type",
//! "code"}}`. A 500 says only "internal error" and the request id; its
//! cause is logged once, here.

use axum::Json;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tollgate_billing::BillingError;
use tollgate_core::ErrorCode;
use tollgate_credentials::CredentialError;
use tollgate_gateway::{GatewayError, headers};
use tollgate_providers::ProviderError;
use tollgate_routing::RouteError;
use tollgate_tenants::{AuthError, TenantError};
use utoipa::ToSchema;

/// Every error's body, on both planes (`/v1/messages` answers Anthropic's
/// shape instead).
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"error": {"message": "organization not found", "type": "invalid_request_error", "code": "not_found"}}))]
pub struct ErrorResponse {
    pub error: ErrorBody,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong, for a person; a 400 names the field.
    pub message: String,
    /// `invalid_request_error`, `authentication_error`, `permission_error`,
    /// `billing_error`, `rate_limit_error`, `provider_error`,
    /// `internal_error` or `server_error`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// A stable, machine-readable code, e.g. `not_found`,
    /// `insufficient_credits`, `invalid_api_key`.
    pub code: &'static str,
    /// The part of the request the error is about, when there is one: `budget`
    /// on a 402 that the API key's budget refused (the organization's
    /// balance may still be enough); absent when the balance refused it.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub param: Option<&'static str>,
}

#[derive(Debug)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    /// The request part the error is about, as OpenAI's `param` (e.g.
    /// `budget` when an API key's budget, not the balance, refused a call).
    pub param: Option<&'static str>,
    pub retry_after: Option<u64>,
    /// Extra headers for the answer (the `x-ratelimit-*` of a 429).
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
            param: None,
            retry_after: None,
            headers: Vec::new(),
        }
    }

    /// The HTTP status, fixed by the code.
    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidRequest, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidApiKey, message)
    }

    pub fn insufficient_credits(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InsufficientCredits, message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Forbidden, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }

    pub fn model_not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::ModelNotFound, message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Conflict, message)
    }

    pub fn payload_too_large(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::PayloadTooLarge, message)
    }

    /// The provider refused a key it was asked to validate.
    pub fn invalid_provider_key(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidProviderKey, message)
    }

    pub fn bad_gateway(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::ProviderError, message)
    }

    /// A rate limit of the caller's key or organization (add `retry_after`).
    pub fn rate_limited(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::RateLimitExceeded, message)
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NoProviderAvailable, message)
    }

    /// A database error: the input's fault when PostgreSQL refuses a NUL
    /// character in text (SQLite stores it), else an internal error.
    pub fn from_db(e: sqlx::Error) -> Self {
        Self::from_db_ref(&e)
    }

    /// [`ApiError::from_db`] of an error shared by several requests.
    fn from_db_ref(e: &sqlx::Error) -> Self {
        let code = e
            .as_database_error()
            .and_then(|d| d.code().map(|c| c.into_owned()));
        if code.as_deref() == Some("22021") {
            return ApiError::bad_request("text fields must not contain NUL characters");
        }
        if tollgate_core::db::is_unavailable(e) {
            return ApiError::service_unavailable(e);
        }
        ApiError::internal(e)
    }

    /// The database is away: 503 with `Retry-After`, the cause logged once.
    pub fn service_unavailable(cause: impl std::fmt::Display) -> Self {
        GatewayError::service_unavailable(cause).into()
    }

    /// An unexpected failure: logged with its cause, answered without it.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(
            ErrorCode::InternalError,
            "internal error; see the gateway logs for this request id",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = ErrorResponse {
            error: ErrorBody {
                message: self.message,
                kind: self.code.kind(),
                code: self.code.as_str(),
                param: self.param,
            },
        };
        let mut response = (status, Json(body)).into_response();
        // For the metrics middleware: requests are counted by error code.
        response.extensions_mut().insert(self.code);
        add_headers(&mut response, self.headers, self.retry_after);
        response
    }
}

/// Sets an error's extra headers and its `Retry-After` on an answer, in
/// whichever error shape it is written.
pub fn add_headers(
    response: &mut Response,
    headers: Vec<(HeaderName, HeaderValue)>,
    retry_after: Option<u64>,
) {
    for (name, value) in headers {
        response.headers_mut().insert(name, value);
    }
    if let Some(secs) = retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
}

impl From<GatewayError> for ApiError {
    fn from(e: GatewayError) -> Self {
        let mut headers = Vec::new();
        if let Some((wait, quotas)) = e.refusal.map(|r| *r) {
            let mut map = axum::http::HeaderMap::new();
            crate::limits::quota_headers(&mut map, quotas);
            headers.extend(
                map.into_iter()
                    .filter_map(|(name, value)| Some((name?, value))),
            );
            if let Ok(v) = HeaderValue::from_str(&wait.as_millis().to_string()) {
                headers.push((HeaderName::from_static("retry-after-ms"), v));
            }
        }
        if let Some(attempts) = e.attempts {
            headers.push((
                HeaderName::from_static(headers::ATTEMPTS),
                HeaderValue::from(attempts),
            ));
        }
        ApiError {
            code: e.code,
            message: e.message,
            param: e.param,
            retry_after: e.retry_after,
            headers,
        }
    }
}

impl From<TenantError> for ApiError {
    fn from(e: TenantError) -> Self {
        match e {
            TenantError::OrganizationNotFound => ApiError::not_found("organization not found"),
            TenantError::ApiKeyNotFound => ApiError::not_found("api key not found"),
            // Gone, as a deleted organization or credential is: 404.
            TenantError::ApiKeyRevoked => {
                ApiError::not_found("api key revoked: a revoked key cannot be changed")
            }
            TenantError::UserNotFound => ApiError::not_found("user not found"),
            TenantError::InvitationNotFound => ApiError::not_found("invitation not found"),
            TenantError::Conflict(message) => ApiError::conflict(message),
            TenantError::Invalid { field, message } => {
                ApiError::bad_request(format!("`{field}` {message}"))
            }
            TenantError::Internal(cause) => ApiError::internal(cause),
            TenantError::Db(e) => ApiError::from_db(e),
        }
    }
}

impl From<tollgate_tenants::LoginError> for ApiError {
    fn from(e: tollgate_tenants::LoginError) -> Self {
        use tollgate_tenants::LoginError;
        match e {
            LoginError::Invalid => ApiError::unauthorized("invalid email or password"),
            LoginError::Locked { retry_after } => ApiError::new(
                ErrorCode::TooManySignIns,
                "too many failed sign-ins for this email; retry later",
            )
            .with_retry_after(retry_after),
            LoginError::Db(e) => ApiError::from_db(e),
            LoginError::Hash(cause) => ApiError::internal(cause),
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Invalid => ApiError::unauthorized("invalid api key"),
            AuthError::Revoked => ApiError::unauthorized("api key has been revoked"),
            AuthError::Expired => ApiError::unauthorized("api key has expired"),
            AuthError::Suspended => ApiError::new(
                ErrorCode::OrganizationSuspended,
                "this organization is suspended",
            ),
            AuthError::Db(e) => ApiError::from_db_ref(&e),
        }
    }
}

impl From<BillingError> for ApiError {
    fn from(e: BillingError) -> Self {
        match e {
            BillingError::Db(e) => ApiError::from_db(e),
            other => GatewayError::from(other).into(),
        }
    }
}

impl From<CredentialError> for ApiError {
    fn from(e: CredentialError) -> Self {
        match e.unshared() {
            CredentialError::NotFound => ApiError::not_found("provider credential not found"),
            e @ CredentialError::ActiveConflict { .. } => ApiError::conflict(e.to_string()),
            CredentialError::Invalid { field, message } => {
                ApiError::bad_request(format!("`{field}` {message}"))
            }
            e @ CredentialError::MasterKeyRotated => {
                ApiError::new(ErrorCode::MasterKeyRotated, e.to_string())
            }
            CredentialError::Db(e) => ApiError::from_db_ref(e),
            // Crypto failures: a stored value did not open. Never the key.
            other => ApiError::internal(other),
        }
    }
}

impl From<RouteError> for ApiError {
    fn from(e: RouteError) -> Self {
        GatewayError::from(e).into()
    }
}

impl From<ProviderError> for ApiError {
    fn from(e: ProviderError) -> Self {
        GatewayError::from(e).into()
    }
}

impl From<tollgate_webhooks::WebhookError> for ApiError {
    fn from(e: tollgate_webhooks::WebhookError) -> Self {
        use tollgate_webhooks::WebhookError;
        match e {
            WebhookError::NotConfigured(_) => {
                ApiError::new(ErrorCode::WebhookNotConfigured, e.to_string())
            }
            // The signature is these endpoints' authentication.
            WebhookError::Signature(_) => ApiError::new(ErrorCode::InvalidSignature, e.to_string()),
            WebhookError::Invalid { field, message } => {
                ApiError::bad_request(format!("`{field}` {message}"))
            }
            WebhookError::NotFound => ApiError::not_found("webhook subscription not found"),
            WebhookError::Billing(e) => e.into(),
            WebhookError::Credentials(e) => e.into(),
            WebhookError::Client(_) | WebhookError::Encode(_) => ApiError::internal(e),
            WebhookError::Db(e) => ApiError::from_db(e),
        }
    }
}

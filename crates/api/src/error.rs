//! The API's one error type. It knows its HTTP status and renders OpenAI's
//! error shape, `{"error": {"message", "type", "code"}}`. A 500 says only
//! "internal error" and the request id; its cause is logged once, here.

use axum::Json;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tollgate_billing::BillingError;
use tollgate_credentials::CredentialError;
use tollgate_providers::ProviderError;
use tollgate_routing::RouteError;
use tollgate_tenants::{AuthError, TenantError};

/// The `code` of an error answer, in the response's extensions (requests
/// are counted by it).
#[derive(Debug, Clone, Copy)]
pub struct ErrorCode(pub &'static str);

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub kind: &'static str,
    pub code: &'static str,
    pub message: String,
    /// The request part the error is about, as OpenAI's `param` (e.g.
    /// `budget` when an API key's budget, not the balance, refused a call).
    pub param: Option<&'static str>,
    pub retry_after: Option<u64>,
    /// Extra headers for the answer (the `x-ratelimit-*` of a 429).
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl ApiError {
    fn new(
        status: StatusCode,
        kind: &'static str,
        code: &'static str,
        message: impl Into<String>,
    ) -> Self {
        ApiError {
            status,
            kind,
            code,
            message: message.into(),
            param: None,
            retry_after: None,
            headers: Vec::new(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "invalid_request",
            message,
        )
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            "invalid_api_key",
            message,
        )
    }

    pub fn insufficient_credits(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::PAYMENT_REQUIRED,
            "billing_error",
            "insufficient_credits",
            message,
        )
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "permission_error",
            "forbidden",
            message,
        )
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            "not_found",
            message,
        )
    }

    pub fn model_not_found(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            "model_not_found",
            message,
        )
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::CONFLICT,
            "invalid_request_error",
            "conflict",
            message,
        )
    }

    pub fn payload_too_large(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request_error",
            "payload_too_large",
            message,
        )
    }

    /// The provider refused a key it was asked to validate.
    pub fn invalid_provider_key(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "invalid_provider_key",
            message,
        )
    }

    pub fn bad_gateway(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_GATEWAY,
            "provider_error",
            "provider_error",
            message,
        )
    }

    /// A rate limit of the caller's key or organization (set `retry_after`).
    pub fn rate_limited(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limit_error",
            "rate_limit_exceeded",
            message,
        )
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "provider_error",
            "no_provider_available",
            message,
        )
    }

    /// A database error: the input's fault when PostgreSQL refuses a NUL
    /// character in text (SQLite stores it), else an internal error.
    pub fn from_db(e: sqlx::Error) -> Self {
        let code = e
            .as_database_error()
            .and_then(|d| d.code().map(|c| c.into_owned()));
        if code.as_deref() == Some("22021") {
            return ApiError::bad_request("text fields must not contain NUL characters");
        }
        ApiError::internal(e)
    }

    /// An unexpected failure: logged with its cause, answered without it.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "internal_error",
            "internal error; see the gateway logs for this request id",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({
            "error": { "message": self.message, "type": self.kind, "code": self.code }
        });
        if let Some(param) = self.param {
            body["error"]["param"] = json!(param);
        }
        let mut response = (self.status, Json(body)).into_response();
        // For the metrics middleware: requests are counted by error code.
        response.extensions_mut().insert(ErrorCode(self.code));
        for (name, value) in self.headers {
            response.headers_mut().insert(name, value);
        }
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

impl From<TenantError> for ApiError {
    fn from(e: TenantError) -> Self {
        match e {
            TenantError::OrganizationNotFound => ApiError::not_found("organization not found"),
            TenantError::ApiKeyNotFound => ApiError::not_found("api key not found"),
            TenantError::UserNotFound => ApiError::not_found("user not found"),
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
            LoginError::Locked { retry_after } => {
                let mut err = ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limit_error",
                    "too_many_sign_ins",
                    "too many failed sign-ins for this email; retry later",
                );
                err.retry_after = Some(retry_after);
                err
            }
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
            AuthError::Suspended => {
                let mut err = ApiError::forbidden("this organization is suspended");
                err.code = "organization_suspended";
                err
            }
            AuthError::Db(e) => ApiError::from_db(e),
        }
    }
}

impl From<BillingError> for ApiError {
    fn from(e: BillingError) -> Self {
        match e {
            BillingError::InsufficientCredits { .. } => {
                ApiError::insufficient_credits(format!("organization balance too low: {e}"))
            }
            BillingError::BudgetExceeded { .. } => {
                let mut err =
                    ApiError::insufficient_credits(format!("API key budget exceeded: {e}"));
                err.param = Some("budget");
                err
            }
            BillingError::Invalid { field, message } => {
                ApiError::bad_request(format!("`{field}` {message}"))
            }
            BillingError::IdempotencyConflict => {
                ApiError::conflict("idempotency_key was already used with a different request body")
            }
            BillingError::SettlementFailed(_) | BillingError::ShutDown => ApiError::internal(e),
            BillingError::Db(e) => ApiError::from_db(e),
        }
    }
}

impl From<CredentialError> for ApiError {
    fn from(e: CredentialError) -> Self {
        match e {
            CredentialError::NotFound => ApiError::not_found("provider credential not found"),
            CredentialError::ActiveConflict { .. } => ApiError::conflict(e.to_string()),
            CredentialError::Invalid { field, message } => {
                ApiError::bad_request(format!("`{field}` {message}"))
            }
            CredentialError::MasterKeyRotated => {
                let mut err = ApiError::unavailable(e.to_string());
                err.code = "master_key_rotated";
                err.kind = "server_error";
                err
            }
            CredentialError::Db(e) => ApiError::from_db(e),
            // Crypto failures: a stored value did not open. Never the key.
            other => ApiError::internal(other),
        }
    }
}

impl From<RouteError> for ApiError {
    fn from(e: RouteError) -> Self {
        match e {
            RouteError::UnknownModel(_) | RouteError::Disabled(_) | RouteError::Unpriced { .. } => {
                ApiError::model_not_found(e.to_string())
            }
            RouteError::WrongMode { .. } => ApiError::bad_request(e.to_string()),
            RouteError::NoCandidates(_) => ApiError::unavailable(e.to_string()),
            RouteError::Unfit { .. } | RouteError::NoneFit { .. } => {
                let mut err = ApiError::bad_request(e.to_string());
                err.code = "model_cannot_serve_request";
                err
            }
        }
    }
}

impl From<ProviderError> for ApiError {
    fn from(e: ProviderError) -> Self {
        let message = e.to_string();
        match e {
            ProviderError::Status {
                status,
                retry_after,
                ..
            } => {
                let mut err = match status {
                    400 | 404 | 413 | 422 => ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "invalid_request_error",
                        "provider_rejected_request",
                        message,
                    ),
                    429 => ApiError::new(
                        StatusCode::TOO_MANY_REQUESTS,
                        "rate_limit_error",
                        "provider_rate_limited",
                        message,
                    ),
                    _ => ApiError::new(
                        StatusCode::BAD_GATEWAY,
                        "provider_error",
                        "provider_error",
                        message,
                    ),
                };
                err.retry_after = retry_after.or((status == 429).then_some(1));
                err
            }
            ProviderError::Timeout => ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "provider_error",
                "provider_timeout",
                message,
            ),
            ProviderError::Connect(_) | ProviderError::InvalidResponse(_) => ApiError::new(
                StatusCode::BAD_GATEWAY,
                "provider_error",
                "provider_error",
                message,
            ),
            ProviderError::NoKey(_) | ProviderError::Unsupported(_) => {
                ApiError::unavailable(message)
            }
            ProviderError::InvalidRequest(_) => ApiError::bad_request(message),
            ProviderError::Blocked(_) => ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "content_blocked",
                message,
            ),
        }
    }
}

impl From<tollgate_webhooks::WebhookError> for ApiError {
    fn from(e: tollgate_webhooks::WebhookError) -> Self {
        use tollgate_webhooks::WebhookError;
        match e {
            WebhookError::NotConfigured(_) => {
                let mut err = ApiError::unavailable(e.to_string());
                err.kind = "server_error";
                err.code = "webhook_not_configured";
                err
            }
            // The signature is these endpoints' authentication.
            WebhookError::Signature(_) => {
                let mut err = ApiError::unauthorized(e.to_string());
                err.code = "invalid_signature";
                err
            }
            WebhookError::Invalid { field, message } => {
                ApiError::bad_request(format!("`{field}` {message}"))
            }
            WebhookError::NotFound => ApiError::not_found("webhook subscription not found"),
            WebhookError::Billing(e) => e.into(),
            WebhookError::Credentials(e) => e.into(),
            WebhookError::Client(_) => ApiError::internal(e),
            WebhookError::Db(e) => ApiError::from_db(e),
        }
    }
}

//! The pipeline's one error type: an [`ErrorCode`] (which fixes the HTTP
//! status and `type`), a message for the client, and what a surface needs
//! to render it (retry hints, rate-limit quotas, attempts).

use std::time::Duration;
use tollgate_billing::BillingError;
use tollgate_core::ErrorCode;
use tollgate_providers::ProviderError;
use tollgate_routing::RouteError;
use tollgate_routing::limits::Quotas;

#[derive(Debug, thiserror::Error)]
#[error("{code}: {message}")]
pub struct GatewayError {
    pub code: ErrorCode,
    pub message: String,
    /// The request part the error is about, as OpenAI's `param`.
    pub param: Option<&'static str>,
    /// Seconds to wait before retrying (`Retry-After`).
    pub retry_after: Option<u64>,
    /// A rate-limit refusal's exact wait (`retry-after-ms`) and quotas
    /// (boxed: rare, and it would double the size of every error).
    pub refusal: Option<Box<(Duration, Quotas)>>,
    /// Provider calls made before the error (`x-tollgate-attempts`).
    pub attempts: Option<u32>,
}

impl GatewayError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        GatewayError {
            code,
            message: message.into(),
            param: None,
            retry_after: None,
            refusal: None,
            attempts: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidRequest, message)
    }

    /// An unexpected failure: logged once with its cause, answered without it.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(
            ErrorCode::InternalError,
            "internal error; see the gateway logs for this request id",
        )
    }

    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    pub(crate) fn with_attempts(mut self, attempts: u32) -> Self {
        self.attempts = Some(attempts);
        self
    }
}

/// Whole seconds, rounded up, at least 1: a `Retry-After` value.
pub(crate) fn seconds_up(d: Duration) -> u64 {
    d.as_millis()
        .div_ceil(1000)
        .max(1)
        .try_into()
        .unwrap_or(u64::MAX)
}

impl From<ProviderError> for GatewayError {
    fn from(e: ProviderError) -> Self {
        let message = e.to_string();
        match e {
            ProviderError::Status {
                status,
                retry_after,
                ..
            } => {
                let code = match status {
                    400 | 404 | 413 | 422 => ErrorCode::ProviderRejectedRequest,
                    429 => ErrorCode::ProviderRateLimited,
                    _ => ErrorCode::ProviderError,
                };
                let mut err = GatewayError::new(code, message);
                err.retry_after = retry_after.or((status == 429).then_some(1));
                err
            }
            ProviderError::Timeout => GatewayError::new(ErrorCode::ProviderTimeout, message),
            ProviderError::Connect(_) | ProviderError::InvalidResponse(_) => {
                GatewayError::new(ErrorCode::ProviderError, message)
            }
            ProviderError::NoKey(_) | ProviderError::Unsupported(_) => {
                GatewayError::new(ErrorCode::NoProviderAvailable, message)
            }
            ProviderError::InvalidRequest(_) => GatewayError::bad_request(message),
            ProviderError::Blocked(_) => GatewayError::new(ErrorCode::ContentBlocked, message),
        }
    }
}

impl From<RouteError> for GatewayError {
    fn from(e: RouteError) -> Self {
        let code = match e {
            RouteError::UnknownModel(_) | RouteError::Disabled(_) | RouteError::Unpriced { .. } => {
                ErrorCode::ModelNotFound
            }
            RouteError::WrongMode { .. } => ErrorCode::InvalidRequest,
            RouteError::NoCandidates(_) => ErrorCode::NoProviderAvailable,
            RouteError::Unfit { .. } | RouteError::NoneFit { .. } => {
                ErrorCode::ModelCannotServeRequest
            }
        };
        GatewayError::new(code, e.to_string())
    }
}

impl From<BillingError> for GatewayError {
    fn from(e: BillingError) -> Self {
        match e {
            BillingError::InsufficientCredits { .. } => GatewayError::new(
                ErrorCode::InsufficientCredits,
                format!("organization balance too low: {e}"),
            ),
            BillingError::BudgetExceeded { .. } => {
                let mut err = GatewayError::new(
                    ErrorCode::InsufficientCredits,
                    format!("API key budget exceeded: {e}"),
                );
                err.param = Some("budget");
                err
            }
            BillingError::Invalid { field, message } => {
                GatewayError::bad_request(format!("`{field}` {message}"))
            }
            BillingError::IdempotencyConflict => GatewayError::new(
                ErrorCode::Conflict,
                "idempotency_key was already used with a different request body",
            ),
            BillingError::SettlementFailed(_) | BillingError::ShutDown | BillingError::Db(_) => {
                GatewayError::internal(e)
            }
        }
    }
}

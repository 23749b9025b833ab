//! What can go wrong talking to a provider, and whether another provider
//! might do better (the router's fallback decision).

/// A failed provider call. Messages never contain the provider key.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// The provider answered with an error status.
    #[error("provider returned {status}: {message}")]
    Status {
        status: u16,
        message: String,
        /// Seconds, from the provider's `Retry-After`.
        retry_after: Option<u64>,
    },
    #[error("provider timed out")]
    Timeout,
    #[error("provider unreachable: {0}")]
    Connect(String),
    #[error("provider sent an invalid response: {0}")]
    InvalidResponse(String),
    #[error("no key for provider `{0}`: the platform has none and the organization brought none")]
    NoKey(String),
    #[error("provider kind `{0}` is not supported yet")]
    Unsupported(&'static str),
    /// The request cannot be expressed in the provider's wire format (the
    /// message names the field); another provider of the same kind would
    /// refuse it too.
    #[error("{0}")]
    InvalidRequest(String),
    /// The provider's safety system blocked the prompt or the whole answer.
    #[error("the provider blocked this request: {0}")]
    Blocked(String),
}

impl ProviderError {
    /// Whether the same request may succeed on another candidate: rate
    /// limits, server errors, redirects (a misconfigured base URL: they
    /// are not followed), timeouts and connection failures.
    pub fn is_retryable(&self) -> bool {
        match self {
            ProviderError::Status { status, .. } => {
                *status == 429 || *status >= 500 || (300..400).contains(status)
            }
            ProviderError::Timeout | ProviderError::Connect(_) | ProviderError::NoKey(_) => true,
            ProviderError::InvalidResponse(_) | ProviderError::Unsupported(_) => true,
            ProviderError::InvalidRequest(_) | ProviderError::Blocked(_) => false,
        }
    }

    pub(crate) fn from_reqwest(err: reqwest::Error) -> ProviderError {
        // reqwest's messages hold the URL but never headers, so never the key.
        if err.is_timeout() {
            ProviderError::Timeout
        } else if err.is_connect() || err.is_request() {
            ProviderError::Connect(err.without_url().to_string())
        } else {
            ProviderError::InvalidResponse(err.without_url().to_string())
        }
    }
}

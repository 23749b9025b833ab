//! The closed set of error codes Tollgate answers with. Each code carries
//! its OpenAI-shape `type` and its HTTP status, so no code can be paired
//! with the wrong status and nothing changes either after construction.

/// One error code, as in `{"error": {"code": ...}}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    InvalidRequest,
    /// A wrong method on a known path (405; its code is `invalid_request`).
    MethodNotAllowed,
    ContextLengthExceeded,
    ModelCannotServeRequest,
    ProviderRejectedRequest,
    ContentBlocked,
    InvalidProviderKey,
    InvalidApiKey,
    InvalidSignature,
    InsufficientCredits,
    Forbidden,
    MissingScope,
    ModelNotAllowed,
    OrganizationSuspended,
    NotFound,
    ModelNotFound,
    Conflict,
    PayloadTooLarge,
    RateLimitExceeded,
    ProviderRateLimited,
    TooManySignIns,
    InternalError,
    ProviderError,
    StreamInterrupted,
    NoProviderAvailable,
    MasterKeyRotated,
    WebhookNotConfigured,
    SignInDisabled,
    ProviderTimeout,
}

impl ErrorCode {
    /// The `code` field.
    pub fn as_str(self) -> &'static str {
        use ErrorCode::*;
        match self {
            InvalidRequest | MethodNotAllowed => "invalid_request",
            ContextLengthExceeded => "context_length_exceeded",
            ModelCannotServeRequest => "model_cannot_serve_request",
            ProviderRejectedRequest => "provider_rejected_request",
            ContentBlocked => "content_blocked",
            InvalidProviderKey => "invalid_provider_key",
            InvalidApiKey => "invalid_api_key",
            InvalidSignature => "invalid_signature",
            InsufficientCredits => "insufficient_credits",
            Forbidden => "forbidden",
            MissingScope => "missing_scope",
            ModelNotAllowed => "model_not_allowed",
            OrganizationSuspended => "organization_suspended",
            NotFound => "not_found",
            ModelNotFound => "model_not_found",
            Conflict => "conflict",
            PayloadTooLarge => "payload_too_large",
            RateLimitExceeded => "rate_limit_exceeded",
            ProviderRateLimited => "provider_rate_limited",
            TooManySignIns => "too_many_sign_ins",
            InternalError => "internal_error",
            ProviderError => "provider_error",
            StreamInterrupted => "stream_interrupted",
            NoProviderAvailable => "no_provider_available",
            MasterKeyRotated => "master_key_rotated",
            WebhookNotConfigured => "webhook_not_configured",
            SignInDisabled => "sign_in_disabled",
            ProviderTimeout => "provider_timeout",
        }
    }

    /// The `type` field.
    pub fn kind(self) -> &'static str {
        use ErrorCode::*;
        match self {
            InvalidRequest
            | MethodNotAllowed
            | ContextLengthExceeded
            | ModelCannotServeRequest
            | ProviderRejectedRequest
            | ContentBlocked
            | InvalidProviderKey
            | NotFound
            | ModelNotFound
            | Conflict
            | PayloadTooLarge => "invalid_request_error",
            InvalidApiKey | InvalidSignature => "authentication_error",
            InsufficientCredits => "billing_error",
            Forbidden | MissingScope | ModelNotAllowed | OrganizationSuspended => {
                "permission_error"
            }
            RateLimitExceeded | ProviderRateLimited | TooManySignIns => "rate_limit_error",
            InternalError => "internal_error",
            ProviderError | StreamInterrupted | NoProviderAvailable | ProviderTimeout => {
                "provider_error"
            }
            MasterKeyRotated | WebhookNotConfigured | SignInDisabled => "server_error",
        }
    }

    /// The HTTP status.
    pub fn status(self) -> u16 {
        use ErrorCode::*;
        match self {
            InvalidRequest
            | ContextLengthExceeded
            | ModelCannotServeRequest
            | ProviderRejectedRequest
            | ContentBlocked
            | InvalidProviderKey => 400,
            InvalidApiKey | InvalidSignature => 401,
            InsufficientCredits => 402,
            Forbidden | MissingScope | ModelNotAllowed | OrganizationSuspended => 403,
            NotFound | ModelNotFound => 404,
            MethodNotAllowed => 405,
            Conflict => 409,
            PayloadTooLarge => 413,
            RateLimitExceeded | ProviderRateLimited | TooManySignIns => 429,
            InternalError => 500,
            ProviderError | StreamInterrupted => 502,
            NoProviderAvailable | MasterKeyRotated | WebhookNotConfigured | SignInDisabled => 503,
            ProviderTimeout => 504,
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

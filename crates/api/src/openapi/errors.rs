//! The error answers each kind of operation can give, all in the shape of
//! [`ErrorResponse`] (or [`AnthropicError`] for `/v1/messages`).

use super::dataplane::AnthropicError;
use crate::error::ErrorResponse;
use serde_json::json;
use std::collections::BTreeMap;
use utoipa::openapi::{
    ContentBuilder, Ref, RefOr, Response, ResponseBuilder, example::ExampleBuilder,
    header::HeaderBuilder,
};
use utoipa::{IntoResponses, PartialSchema, ToSchema};

fn describe(status: u16) -> &'static str {
    match status {
        400 => "Malformed or invalid request; the message names the field",
        401 => "Missing, unknown, expired or revoked key or token",
        402 => {
            "Not enough credits for this call (`code: insufficient_credits`): the organization's balance, or with `param: budget` the API key's budget"
        }
        403 => {
            "Authenticated but not allowed (another organization's data, a suspended organization, a missing role)"
        }
        404 => "Unknown resource or model",
        409 => "Conflict (a duplicate, a reused idempotency key with another body)",
        413 => "Body too large",
        429 => "Rate limited; see `Retry-After`",
        502 => "Provider error, after fallbacks",
        503 => "No provider available",
        504 => "Provider timeout",
        _ => "Error",
    }
}

/// `(type, code, message)` of a typical error of this status.
fn typical(status: u16) -> (&'static str, &'static str, &'static str) {
    match status {
        400 => (
            "invalid_request_error",
            "invalid_request",
            "invalid field `name`: invalid type: integer `1`, expected a string",
        ),
        401 => ("authentication_error", "invalid_api_key", "invalid api key"),
        402 => (
            "billing_error",
            "insufficient_credits",
            "organization balance too low",
        ),
        403 => (
            "permission_error",
            "forbidden",
            "this caller may not manage this organization",
        ),
        404 => (
            "invalid_request_error",
            "not_found",
            "organization not found",
        ),
        409 => (
            "invalid_request_error",
            "conflict",
            "idempotency_key was already used with a different request body",
        ),
        413 => (
            "invalid_request_error",
            "payload_too_large",
            "request body is too large",
        ),
        429 => (
            "rate_limit_error",
            "rate_limited",
            "rate limit reached; retry later",
        ),
        502 => (
            "provider_error",
            "provider_error",
            "provider `openai` answered HTTP 500",
        ),
        503 => (
            "provider_error",
            "no_provider_available",
            "no provider available for this model",
        ),
        504 => (
            "provider_error",
            "provider_timeout",
            "provider `openai` timed out",
        ),
        _ => ("internal_error", "internal_error", "internal error"),
    }
}

fn responses<S: ToSchema>(statuses: &[u16]) -> BTreeMap<String, RefOr<Response>> {
    let anthropic = S::name() == AnthropicError::name();
    let google = S::name() == "GoogleError";
    statuses
        .iter()
        .map(|&status| {
            let (kind, code, message) = typical(status);
            let example = if anthropic {
                json!({"type": "error", "error": {"type": kind, "message": message}})
            } else if google {
                json!({"error": {"code": status, "message": message,
                    "status": tollgate_providers::gemini::inbound::status_name(status)}})
            } else {
                json!({"error": {"message": message, "type": kind, "code": code}})
            };
            let content = ContentBuilder::new()
                .schema(Some(Ref::from_schema_name(S::name())))
                .examples_from_iter([(code, ExampleBuilder::new().value(Some(example)).build())])
                .build();
            let mut response = ResponseBuilder::new()
                .description(describe(status))
                .content("application/json", content);
            if status == 429 {
                response = response.header(
                    "Retry-After",
                    HeaderBuilder::new()
                        .schema(<i64 as PartialSchema>::schema())
                        .description(Some("Seconds to wait before trying again"))
                        .build(),
                );
            }
            (status.to_string(), RefOr::T(response.build()))
        })
        .collect()
}

macro_rules! error_set {
    ($(#[$doc:meta])* $name:ident, $schema:ty, [$($status:literal),*]) => {
        $(#[$doc])*
        pub struct $name;
        impl IntoResponses for $name {
            fn responses() -> BTreeMap<String, RefOr<Response>> {
                responses::<$schema>(&[$($status),*])
            }
        }
    };
}

error_set!(
    /// Operations without input.
    UnauthorizedOnly, ErrorResponse, [401]
);
error_set!(
    /// Reading (or removing) one resource.
    ReadErrors, ErrorResponse, [400, 401, 403, 404]
);
error_set!(
    /// Lists with filters and a cursor.
    ListErrors, ErrorResponse, [400, 401, 403, 404]
);
error_set!(
    /// Creating a top-level resource.
    CreateErrors, ErrorResponse, [400, 401, 403, 409, 413]
);
error_set!(
    /// Creating or changing a resource of an organization.
    AdminErrors, ErrorResponse, [400, 401, 403, 404, 409, 413, 502]
);
error_set!(
    /// Changing one resource of an organization.
    ChangeErrors, ErrorResponse, [400, 401, 403, 404, 413]
);
error_set!(
    /// Signing in.
    LoginErrors, ErrorResponse, [400, 401, 413, 429, 503]
);
error_set!(
    /// Accepting an invitation (no auth: the token is the proof).
    AcceptErrors, ErrorResponse, [400, 409, 413, 503]
);
error_set!(
    /// Granting credits.
    GrantErrors, ErrorResponse, [400, 401, 403, 404, 409, 413]
);
error_set!(
    /// Calls of the OpenAI-compatible data plane.
    DataPlaneErrors, ErrorResponse, [400, 401, 402, 403, 404, 413, 429, 502, 503, 504]
);
error_set!(
    /// `GET /v1/models`: a revoked key, a suspended organization.
    ModelListErrors, ErrorResponse, [401, 403]
);
error_set!(
    /// Calls of `/v1/messages`, in Anthropic's error shape.
    MessagesErrors, AnthropicError, [400, 401, 402, 403, 404, 413, 429, 502, 503, 504]
);
error_set!(
    /// Calls of the Gemini paths, in Google's error shape.
    GeminiErrors, super::surfaces::GoogleError, [400, 401, 402, 403, 404, 413, 429, 502, 503, 504]
);
error_set!(
    /// `GET /v1beta/models`, in Google's error shape.
    GeminiListErrors, super::surfaces::GoogleError, [401, 403]
);
error_set!(
    /// Changing a catalog model.
    CatalogChangeErrors, ErrorResponse, [400, 401, 403, 404, 409, 413]
);
error_set!(
    /// Disabling a catalog model.
    CatalogDisableErrors, ErrorResponse, [401, 403, 404, 409]
);
error_set!(
    /// Creating a webhook subscription.
    WebhookAdminErrors, ErrorResponse, [400, 401, 403, 404, 413]
);

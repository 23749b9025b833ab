//! The OpenAPI 3.1 document of the whole HTTP surface (`GET /openapi.json`,
//! also committed as `openapi/openapi.json`) and the page that renders it
//! (`GET /docs`, self-contained: no request leaves it).
//!
//! The management plane's operations are the handlers' own
//! `#[utoipa::path]`s, their schemas the types the handlers take and answer
//! (domain types derive `ToSchema` under their crates' `openapi` feature);
//! so are the model lists' and the operations endpoints'; the provider-shaped
//! data-plane calls, which relay providers' bodies, are described in
//! [`dataplane`] and [`surfaces`].
//!
//! Regenerate the committed copy with
//! `cargo run -p tollgate-api --bin tollgate -- openapi > openapi/openapi.json`
//! (or `UPDATE_OPENAPI=1 cargo nextest run -p tollgate-tests openapi`).

mod dataplane;
pub(crate) mod errors;
mod required;
mod surfaces;

use crate::error::ErrorResponse;
use crate::routes::admin::{
    api_keys, catalog, credits, members, organizations, provider_credentials, usage, users,
    webhooks,
};
use crate::routes::{billing_webhooks, models, ops, routing_health};
use axum::http::header;
use axum::response::IntoResponse;
use utoipa::Modify;
use utoipa::OpenApi;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Tollgate",
        description = "A multi-tenant LLM gateway. The data plane (`/v1/…`, `/v1beta/…`) is OpenAI-, Anthropic- and Gemini-compatible and is called with an organization's `tg-…` API key; the management plane (`/api/v1/…`) is called with the platform admin token or a user's JWT.\n\nEvery error is `{\"error\": {\"message\", \"type\", \"code\"}}` (`/v1/messages…`: Anthropic's shape; `/v1beta/…`: Google's `{\"error\": {\"code\", \"message\", \"status\"}}`). Lists are newest first and cursor-paginated: `limit` (1–1000, default 100) and `before` (the last item's cursor field); `has_more` says whether older items follow.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(
        dataplane::chat_completions, dataplane::embeddings, models::list_models, dataplane::messages,
        surfaces::create_response, surfaces::get_response, surfaces::delete_response,
        surfaces::list_input_items,
        surfaces::count_message_tokens, models::get_model, surfaces::gemini_call,
        surfaces::gemini_models,
        organizations::create, organizations::list, organizations::get,
        organizations::update, organizations::suspend, organizations::resume,
        api_keys::create, api_keys::list, api_keys::update, api_keys::revoke,
        credits::balance, credits::grant, credits::transactions,
        usage::list, usage::summary, usage::export,
        crate::routes::admin::requests::list, crate::routes::admin::requests::get,
        provider_credentials::create, provider_credentials::list, provider_credentials::active,
        provider_credentials::audit, provider_credentials::get, provider_credentials::update,
        provider_credentials::delete, provider_credentials::activate, provider_credentials::deactivate,
        users::list, users::create, users::login, users::refresh,
        catalog::list, routing_health::routing_health,
        catalog::create, catalog::update, catalog::disable,
        ops::health, ops::ready, ops::metrics, serve_document, serve_docs,
        organizations::delete, members::list, members::remove,
        members::invite, members::list_invitations, members::revoke_invitation,
        members::accept,
        billing_webhooks::stripe, billing_webhooks::lago,
        webhooks::create, webhooks::list, webhooks::get,
        webhooks::delete, webhooks::deliveries,
    ),
    components(schemas(
        ErrorResponse, dataplane::AnthropicError, tollgate_webhooks::WebhookPayload,
        surfaces::GoogleError, surfaces::EmbedContentRequest,
        // Named only by query parameters or a hand-written schema, which
        // do not register what they refer to.
        tollgate_billing::UsageGroup, tollgate_billing::UsageStatus,
        tollgate_core::catalog_store::MicrosPrice,
    )),
    modifiers(&SecuritySchemes),
    tags(
        (name = "data plane", description = "OpenAI- and Anthropic-compatible calls, with an organization API key"),
        (name = "organizations", description = "Organizations"),
        (name = "api keys", description = "Organizations' API keys"),
        (name = "credits", description = "Balances, grants and the ledger"),
        (name = "usage", description = "Usage records"),
        (name = "provider credentials", description = "Organizations' own provider keys (BYOK)"),
        (name = "users", description = "Management users, sign-in and JWTs"),
        (name = "members", description = "Organizations' members and invitations"),
        (name = "catalog", description = "Models, prices and routing health"),
        (name = "billing webhooks", description = "Payment events from Stripe and Lago, authenticated by their signatures"),
        (name = "webhooks", description = "Organizations' outbound webhooks (Standard Webhooks)"),
        (name = "operations", description = "Health, readiness, metrics and this document"),
    ),
)]
pub struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An organization API key (`tg-…`)"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "x_api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "x-api-key",
                "An organization API key (`tg-…`), Anthropic style",
            ))),
        );
        components.add_security_scheme(
            "goog_api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "x-goog-api-key",
                "An organization API key (`tg-…`), Gemini style (also `?key=`)",
            ))),
        );
        components.add_security_scheme(
            "admin_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("The platform admin token (`TOLLGATE_ADMIN_TOKEN`)"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "user_jwt",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "A user's JWT from `POST /api/v1/auth/login` (HS256, one hour); its role decides what it may do. It answers 401 at once when the user is removed, its organization deleted or its role changed",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "stripe_signature",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "Stripe-Signature",
                "Stripe's signature of the raw body with `STRIPE_WEBHOOK_SECRET`",
            ))),
        );
        components.add_security_scheme(
            "lago_signature",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-Lago-Signature",
                "Lago's signature of the raw body: HMAC with `LAGO_WEBHOOK_SECRET` (`hmac` mode), or an RS256 JWT checked with `LAGO_WEBHOOK_PUBLIC_KEY` (`jwt` mode)",
            ))),
        );
        components.add_security_scheme(
            "org_admin_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An organization admin API key (created with `\"admin\": true`): its own organization only",
                    ))
                    .build(),
            ),
        );
    }
}

/// The document, as served and committed: pretty JSON, ending in a newline.
pub fn document() -> String {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
    required::finish(&mut doc);
    let mut json = serde_json::to_string_pretty(&doc).unwrap_or_else(|_| String::from("{}"));
    json.push('\n');
    json
}

/// This document.
#[utoipa::path(
    get, path = "/openapi.json", tag = "operations", operation_id = "openapi", security(()),
    responses((status = 200, description = "The OpenAPI 3.1 document", body = Object))
)]
pub async fn serve_document() -> impl IntoResponse {
    static DOCUMENT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    (
        [(header::CONTENT_TYPE, "application/json")],
        DOCUMENT.get_or_init(document).as_str(),
    )
}

/// This document, rendered as HTML (no request leaves the page).
#[utoipa::path(
    get, path = "/docs", tag = "operations", operation_id = "docs", security(()),
    responses((status = 200, description = "An HTML page", body = String, content_type = "text/html; charset=utf-8"))
)]
pub async fn serve_docs() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'",
            ),
        ],
        include_str!("docs.html"),
    )
}

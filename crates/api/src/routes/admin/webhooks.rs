//! Outbound webhook subscriptions of an organization: create (the signing
//! secret is shown only then), list, read, delete, and the deliveries.

use super::{Page, PageQuery};
use crate::error::ApiError;
use crate::extract::{Caller, JsonBody, PathParams, QueryParams};
use crate::openapi::errors::{ListErrors, ReadErrors, WebhookAdminErrors};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use tollgate_webhooks::{Delivery, NewSubscription, Subscription, WebhookEvent};
use utoipa::ToSchema;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"url": "https://example.com/tollgate-events", "events": ["credits.granted", "credits.low"], "credits_low_threshold": 1_000_000}))]
pub struct CreateWebhook {
    /// An `http` or `https` URL on a public address (unless the gateway
    /// runs with `TOLLGATE_WEBHOOK_ALLOW_PRIVATE`). Redirects are never followed.
    url: String,
    #[schema(value_type = Vec<WebhookEvent>)]
    events: Vec<String>,
    /// `credits.low` is sent when the balance falls below this (required
    /// with `credits.low`), once per crossing.
    #[schema(nullable = false)]
    credits_low_threshold: Option<i64>,
}

/// A new subscription: the listed fields plus `secret`, shown only here.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedWebhook {
    #[serde(flatten)]
    subscription: Subscription,
    /// The Standard Webhooks signing secret (`whsec_` + base64 of 32 bytes).
    /// Store it now: it is never shown again.
    secret: String,
}

/// Subscribe a URL to an organization's events.
///
/// Deliveries follow the Standard Webhooks spec (`webhook-id`,
/// `webhook-timestamp`, `webhook-signature: v1,<base64>`). Roles: platform
/// admin; org_admin of this organization.
#[utoipa::path(
    post, path = "/api/v1/organizations/{org_id}/webhooks", tag = "webhooks",
    operation_id = "createWebhook",
    security(("admin_token" = []), ("user_jwt" = [])),
    params(("org_id" = String, Path, description = "Organization id")),
    request_body = CreateWebhook,
    responses(
        (status = 201, description = "The subscription and its secret, shown only here", body = CreatedWebhook),
        WebhookAdminErrors,
    )
)]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(org_id): PathParams<String>,
    JsonBody(body): JsonBody<CreateWebhook>,
) -> Result<(StatusCode, Json<CreatedWebhook>), ApiError> {
    caller.require_org_admin(&org_id)?;
    let org = super::organization(&state, &org_id).await?;
    let (subscription, secret) = state
        .webhooks
        .create_subscription(
            &org.id,
            &NewSubscription {
                url: &body.url,
                events: &body.events,
                credits_low_threshold: body.credits_low_threshold,
            },
        )
        .await?;
    tracing::info!(organization_id = %org.id, webhook_id = %subscription.id, "webhook subscription created");
    Ok((
        StatusCode::CREATED,
        Json(CreatedWebhook {
            subscription,
            secret,
        }),
    ))
}

/// List an organization's webhook subscriptions, newest first (no secrets).
///
/// Roles: platform admin; org_admin of this organization.
#[utoipa::path(
    get, path = "/api/v1/organizations/{org_id}/webhooks", tag = "webhooks",
    operation_id = "listWebhooks",
    security(("admin_token" = []), ("user_jwt" = [])),
    params(("org_id" = String, Path, description = "Organization id")),
    responses(
        (status = 200, description = "Every subscription", body = Page<Subscription>),
        ReadErrors,
    )
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(org_id): PathParams<String>,
) -> Result<Json<Page<Subscription>>, ApiError> {
    caller.require_org_admin(&org_id)?;
    let org = super::organization(&state, &org_id).await?;
    let data = state.webhooks.subscriptions(&org.id).await?;
    Ok(Json(Page::all(data)))
}

/// Read one webhook subscription (no secret).
///
/// Roles: platform admin; org_admin of this organization.
#[utoipa::path(
    get, path = "/api/v1/organizations/{org_id}/webhooks/{id}", tag = "webhooks",
    operation_id = "getWebhook",
    security(("admin_token" = []), ("user_jwt" = [])),
    params(
        ("org_id" = String, Path, description = "Organization id"),
        ("id" = String, Path, description = "Subscription id"),
    ),
    responses(
        (status = 200, description = "The subscription", body = Subscription),
        ReadErrors,
    )
)]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    PathParams((org_id, id)): PathParams<(String, String)>,
) -> Result<Json<Subscription>, ApiError> {
    caller.require_org_admin(&org_id)?;
    let org = super::organization(&state, &org_id).await?;
    Ok(Json(state.webhooks.subscription(&org.id, &id).await?))
}

/// Remove a webhook subscription, with its pending deliveries.
///
/// Roles: platform admin; org_admin of this organization.
#[utoipa::path(
    delete, path = "/api/v1/organizations/{org_id}/webhooks/{id}", tag = "webhooks",
    operation_id = "deleteWebhook",
    security(("admin_token" = []), ("user_jwt" = [])),
    params(
        ("org_id" = String, Path, description = "Organization id"),
        ("id" = String, Path, description = "Subscription id"),
    ),
    responses(
        (status = 204, description = "Removed"),
        ReadErrors,
    )
)]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    PathParams((org_id, id)): PathParams<(String, String)>,
) -> Result<StatusCode, ApiError> {
    caller.require_org_admin(&org_id)?;
    let org = super::organization(&state, &org_id).await?;
    state.webhooks.delete_subscription(&org.id, &id).await?;
    tracing::info!(organization_id = %org.id, webhook_id = %id, "webhook subscription deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// List a subscription's deliveries, newest first, each with its attempts.
///
/// Roles: platform admin; org_admin of this organization.
#[utoipa::path(
    get, path = "/api/v1/organizations/{org_id}/webhooks/{id}/deliveries", tag = "webhooks",
    operation_id = "listWebhookDeliveries",
    security(("admin_token" = []), ("user_jwt" = [])),
    params(
        ("org_id" = String, Path, description = "Organization id"),
        ("id" = String, Path, description = "Subscription id"),
        PageQuery,
    ),
    responses(
        (status = 200, description = "A page of deliveries", body = Page<Delivery>),
        ListErrors,
    )
)]
pub async fn deliveries(
    State(state): State<AppState>,
    caller: Caller,
    PathParams((org_id, id)): PathParams<(String, String)>,
    QueryParams(page): QueryParams<PageQuery>,
) -> Result<Json<Page<Delivery>>, ApiError> {
    caller.require_org_admin(&org_id)?;
    let org = super::organization(&state, &org_id).await?;
    let limit = super::page_limit(page.limit)?;
    let data = state
        .webhooks
        .deliveries(&org.id, &id, limit + 1, page.before.as_deref())
        .await?;
    Ok(Json(Page::cut(data, limit, |d| d.id.clone())))
}

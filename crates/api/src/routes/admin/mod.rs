//! The management plane (`/api/v1/…`), for platform admins (and, for
//! provider credentials, organization admin keys).

pub(crate) mod api_keys;
pub(crate) mod catalog;
pub(crate) mod credits;
pub(crate) mod members;
pub(crate) mod organizations;
pub(crate) mod provider_credentials;
pub(crate) mod requests;
pub(crate) mod usage;
pub(crate) mod users;
pub(crate) mod webhooks;

use crate::error::ApiError;
use crate::state::AppState;
use axum::Router;
use axum::routing::{delete, get, post, put};
use serde::{Deserialize, Deserializer, Serialize};
use tollgate_core::Unit;
use tollgate_tenants::Organization;
use utoipa::{IntoParams, ToSchema};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/organizations",
            post(organizations::create).get(organizations::list),
        )
        .route(
            "/api/v1/organizations/{org_id}",
            get(organizations::get)
                .patch(organizations::update)
                .delete(organizations::delete),
        )
        .route("/api/v1/organizations/{org_id}/members", get(members::list))
        .route(
            "/api/v1/organizations/{org_id}/members/{user_id}",
            delete(members::remove),
        )
        .route(
            "/api/v1/organizations/{org_id}/invitations",
            post(members::invite).get(members::list_invitations),
        )
        .route(
            "/api/v1/organizations/{org_id}/invitations/{invitation_id}",
            delete(members::revoke_invitation),
        )
        .route("/api/v1/auth/accept-invitation", post(members::accept))
        .route(
            "/api/v1/organizations/{org_id}/suspend",
            post(organizations::suspend),
        )
        .route(
            "/api/v1/organizations/{org_id}/resume",
            post(organizations::resume),
        )
        .route(
            "/api/v1/organizations/{org_id}/api-keys",
            post(api_keys::create).get(api_keys::list),
        )
        .route(
            "/api/v1/organizations/{org_id}/api-keys/{key_id}",
            delete(api_keys::revoke).patch(api_keys::update),
        )
        .route(
            "/api/v1/organizations/{org_id}/credits",
            get(credits::balance),
        )
        .route(
            "/api/v1/organizations/{org_id}/credits/grants",
            post(credits::grant),
        )
        .route(
            "/api/v1/organizations/{org_id}/credits/transactions",
            get(credits::transactions),
        )
        .route("/api/v1/organizations/{org_id}/usage", get(usage::list))
        .route(
            "/api/v1/organizations/{org_id}/requests",
            get(requests::list),
        )
        .route(
            "/api/v1/organizations/{org_id}/requests/{request_id}",
            get(requests::get),
        )
        .route(
            "/api/v1/organizations/{org_id}/usage/summary",
            get(usage::summary),
        )
        .route(
            "/api/v1/organizations/{org_id}/usage/export",
            get(usage::export),
        )
        .route(
            "/api/v1/organizations/{org_id}/webhooks",
            post(webhooks::create).get(webhooks::list),
        )
        .route(
            "/api/v1/organizations/{org_id}/webhooks/{id}",
            get(webhooks::get).delete(webhooks::delete),
        )
        .route(
            "/api/v1/organizations/{org_id}/webhooks/{id}/deliveries",
            get(webhooks::deliveries),
        )
        .route(
            "/api/v1/provider-credentials",
            post(provider_credentials::create).get(provider_credentials::list),
        )
        .route(
            "/api/v1/provider-credentials/active",
            get(provider_credentials::active),
        )
        .route(
            "/api/v1/provider-credentials/audit",
            get(provider_credentials::audit),
        )
        .route(
            "/api/v1/provider-credentials/{id}",
            get(provider_credentials::get)
                .put(provider_credentials::update)
                .delete(provider_credentials::delete),
        )
        .route(
            "/api/v1/provider-credentials/{id}/activate",
            put(provider_credentials::activate),
        )
        .route(
            "/api/v1/provider-credentials/{id}/deactivate",
            put(provider_credentials::deactivate),
        )
        .route("/api/v1/models", get(catalog::list).post(catalog::create))
        .route(
            "/api/v1/models/{id}",
            axum::routing::patch(catalog::update).delete(catalog::disable),
        )
        .route("/api/v1/users", post(users::create).get(users::list))
        .route("/api/v1/auth/login", post(users::login))
        .route("/api/v1/auth/refresh", post(users::refresh))
}

/// The page size of a list: `limit` (default 100, 1 to 1000).
pub fn page_limit(limit: Option<i64>) -> Result<i64, ApiError> {
    match limit {
        None => Ok(100),
        Some(n) if (1..=1000).contains(&n) => Ok(n),
        Some(_) => Err(ApiError::bad_request("`limit` must be between 1 and 1000")),
    }
}

/// `?limit=&before=` of a list with no other filter.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Page size, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page: only older items.
    pub before: Option<String>,
}

/// One page of a list, newest first. Every list of the management API
/// answers this shape.
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T> {
    pub data: Vec<T>,
    /// Whether older items follow.
    pub has_more: bool,
    /// What to pass as `before` for the next page; null on the last one.
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// A list that is never cut: every item is in `data`.
    pub fn all(data: Vec<T>) -> Self {
        Page {
            data,
            has_more: false,
            next_cursor: None,
        }
    }

    /// From up to `limit + 1` items read newest first (one more than a page,
    /// to learn whether more follow): the first `limit`, and the cursor of
    /// the last of them when more follow.
    pub fn cut(mut data: Vec<T>, limit: i64, cursor: impl Fn(&T) -> String) -> Self {
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let has_more = data.len() > limit;
        data.truncate(limit);
        let next_cursor = if has_more {
            data.last().map(cursor)
        } else {
            None
        };
        Page {
            data,
            has_more,
            next_cursor,
        }
    }
}

/// A page of amounts, with the unit they are counted in.
#[derive(Debug, Serialize, ToSchema)]
pub struct UnitPage<T> {
    #[serde(flatten)]
    pub page: Page<T>,
    pub unit: Unit,
}

/// `from` and `to` query parameters: Unix milliseconds, `from` not after `to`.
pub fn check_time_range(from: Option<i64>, to: Option<i64>) -> Result<(), ApiError> {
    for (name, value) in [("from", from), ("to", to)] {
        if value.is_some_and(|v| v < 0) {
            return Err(ApiError::bad_request(format!(
                "`{name}` must be a non-negative unix time in milliseconds"
            )));
        }
    }
    if let (Some(from), Some(to)) = (from, to)
        && from > to
    {
        return Err(ApiError::bad_request("`from` must not be after `to`"));
    }
    Ok(())
}

/// For a PATCH body's field: tells one given as `null` (`Some(None)`) from
/// an absent one (`None`). Use with `#[serde(default, deserialize_with = "present")]`.
pub(crate) fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    de: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(de).map(Some)
}

/// The organization, or 404.
pub async fn organization(state: &AppState, org_id: &str) -> Result<Organization, ApiError> {
    Ok(state.tenants.organization(org_id).await?)
}

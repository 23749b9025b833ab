//! What every relayed call shares: choosing the key that pays, the gateway
//! headers, and settling a finished call reliably.

use crate::error::ApiError;
use crate::state::AppState;
use axum::http::{HeaderMap, HeaderValue};
use secrecy::SecretString;
use std::sync::Arc;
use std::time::Duration;
use tollgate_billing::{
    BillingError, Hold, KeyBudget, UsageEntry, UsageStatus, byok_charge, charge_for,
    marked_up_charge_for, max_charge_for, max_marked_up_charge_for,
};
use tollgate_core::money::TokenUsage;
use tollgate_core::{BillingMode, ModelEntry, Price, ProviderEntry};
use tollgate_credentials::CredentialError;
use tollgate_tenants::Principal;

/// The key that pays the provider for one call.
pub enum PayingKey<'a> {
    /// The organization's own active credential (BYOK).
    Own(Arc<SecretString>),
    /// The platform's key, from the catalog.
    Platform(&'a SecretString),
}

impl PayingKey<'_> {
    pub fn secret(&self) -> &SecretString {
        match self {
            PayingKey::Own(key) => key,
            PayingKey::Platform(key) => key,
        }
    }

    /// Whether the organization's own key pays (`x-tollgate-byok`).
    pub fn byok(&self) -> bool {
        matches!(self, PayingKey::Own(_))
    }
}

/// The key that pays `provider` for this organization: its own active
/// credential when it has one (BYOK), else the platform's key; `None` when
/// there is neither, and the provider must be skipped. Served from memory
/// once cached.
pub async fn paying_key<'a>(
    state: &AppState,
    organization_id: &str,
    provider: &'a ProviderEntry,
) -> Result<Option<PayingKey<'a>>, ApiError> {
    match state
        .credentials
        .active_key(organization_id, &provider.name)
        .await
    {
        Ok(Some(key)) => Ok(Some(PayingKey::Own(key))),
        Ok(None) => Ok(provider.api_key.as_ref().map(PayingKey::Platform)),
        Err(CredentialError::Db(e)) => Err(ApiError::from_db(e)),
        // Never fall back to the platform's key: the organization chose its own.
        Err(e) => {
            tracing::error!(provider = %provider.name, error = %e, "an organization's provider key cannot be used");
            Err(ApiError::unavailable(format!(
                "the organization's own key for provider `{}` cannot be used on this gateway \
                 (see the gateway logs)",
                provider.name
            )))
        }
    }
}

/// What a call with this usage is charged, in the organization's unit: for
/// a BYOK call only the platform fee (`TOLLGATE_BYOK_FEE_PERCENT`), a share
/// of its charge at list price (the organization's markup does not apply:
/// the provider is paid with its own key); otherwise its charge with the
/// organization's markup (`usd` mode only).
pub fn payable(
    state: &AppState,
    byok: bool,
    markup_percent: u32,
    mode: BillingMode,
    price: &Price,
    usage: &TokenUsage,
) -> i64 {
    if byok {
        byok_charge(charge_for(mode, price, usage), state.byok_fee_percent)
    } else {
        marked_up_charge_for(mode, price, usage, markup_percent)
    }
}

/// The most a call can be charged ([`payable`] of its worst case): its hold.
pub fn max_payable(
    state: &AppState,
    principal: &Principal,
    byok: bool,
    price: &Price,
    max_prompt_tokens: i64,
    max_completion_tokens: i64,
) -> i64 {
    let mode = principal.billing_mode;
    if byok {
        byok_charge(
            max_charge_for(mode, price, max_prompt_tokens, max_completion_tokens),
            state.byok_fee_percent,
        )
    } else {
        max_marked_up_charge_for(
            mode,
            price,
            max_prompt_tokens,
            max_completion_tokens,
            principal.markup_percent,
        )
    }
}

/// Holds `amount` for a call of this key: of its budget when it has one
/// (`BudgetExceeded` otherwise), and of its organization's balance.
pub async fn reserve(
    state: &AppState,
    principal: &Principal,
    amount: i64,
) -> Result<Hold, BillingError> {
    let budget = principal.budget.map(|b| KeyBudget {
        api_key_id: principal.key_id.clone(),
        amount: b.amount,
        period: b.period,
    });
    let held = state
        .billing
        .reserve_for_key(&principal.organization_id, amount, budget.as_ref())
        .await;
    if let Err(BillingError::BudgetExceeded {
        api_key_id,
        period,
        limit,
        spent,
        ..
    }) = &held
    {
        announce_budget_exceeded(
            state,
            &principal.organization_id,
            api_key_id,
            *period,
            *limit,
            *spent,
        );
    }
    held
}

/// Queues the organization's `budget.exceeded` webhook (once per key and
/// period) without making the refused call wait for it.
fn announce_budget_exceeded(
    state: &AppState,
    organization_id: &str,
    api_key_id: &str,
    period: tollgate_core::BudgetPeriod,
    limit: i64,
    spent: i64,
) {
    let webhooks = state.webhooks.clone();
    let (organization_id, api_key_id) = (organization_id.to_owned(), api_key_id.to_owned());
    tokio::spawn(async move {
        let event = tollgate_webhooks::BudgetExceeded {
            organization_id: &organization_id,
            api_key_id: &api_key_id,
            budget: limit,
            spent,
            period: period.as_str(),
            period_started_at: period.start(tollgate_core::time::now_millis()),
        };
        if let Err(e) = webhooks.budget_exceeded(&event).await {
            tracing::warn!(error = %e, "could not queue the budget.exceeded webhook");
        }
    });
}

/// Sets the `x-tollgate-*` headers of contract section 3 (the request id is
/// set by the middleware on every response).
pub fn gateway_headers(headers: &mut HeaderMap, model: &ModelEntry, byok: bool, cost: Option<i64>) {
    if let Ok(v) = HeaderValue::from_str(&model.id) {
        headers.insert("x-tollgate-model", v);
    }
    if let Ok(v) = HeaderValue::from_str(&model.provider) {
        headers.insert("x-tollgate-provider", v);
    }
    headers.insert(
        "x-tollgate-byok",
        HeaderValue::from_static(if byok { "true" } else { "false" }),
    );
    if let Some(cost) = cost {
        headers.insert("x-tollgate-cost", HeaderValue::from(cost));
    }
}

/// The record of one finished call, priced in the organization's unit.
pub struct CallRecord<'a> {
    pub request_id: &'a str,
    pub api_key_id: &'a str,
    pub mode: BillingMode,
    /// The organization's markup, in percent (see [`payable`]).
    pub markup_percent: u32,
    pub model: &'a Arc<ModelEntry>,
    pub usage: TokenUsage,
    pub byok: bool,
    pub stream: bool,
    pub status: UsageStatus,
    pub latency: Duration,
}

impl CallRecord<'_> {
    /// The usage record of this call, charged `cost` (see [`payable`]).
    fn entry(&self, cost: i64) -> UsageEntry {
        UsageEntry {
            request_id: self.request_id.to_owned(),
            api_key_id: Some(self.api_key_id.to_owned()),
            model: self.model.id.clone(),
            provider: self.model.provider.clone(),
            usage: self.usage,
            cost,
            list_cost_usd_micros: self.model.price.cost(&self.usage).0,
            byok: self.byok,
            stream: self.stream,
            status: self.status,
            latency_ms: i64::try_from(self.latency.as_millis()).unwrap_or(i64::MAX),
        }
    }
}

/// Settles a finished call (billing retries a failing database itself).
/// Returns the amount charged, or `None` if the settlement could not be
/// written (billing logs why).
pub async fn settle(state: &AppState, hold: Hold, call: &CallRecord<'_>) -> Option<i64> {
    let entry = call.entry(payable(
        state,
        call.byok,
        call.markup_percent,
        call.mode,
        &call.model.price,
        &call.usage,
    ));
    let started = std::time::Instant::now();
    let charged = state.billing.settle(hold, entry).await.ok();
    state
        .metrics
        .settlement
        .observe(started.elapsed().as_secs_f64());
    charged
}

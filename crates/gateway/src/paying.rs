//! Who pays and how much: the key that pays the provider (BYOK or the
//! platform's), the hold of a call, and its settlement.

use crate::Gateway;
use crate::error::GatewayError;
use secrecy::SecretString;
use std::sync::Arc;
use std::time::Duration;
use tollgate_billing::{BillingError, Hold, KeyBudget, PricingRule, UsageEntry, UsageStatus};
use tollgate_core::money::TokenUsage;
use tollgate_core::{ErrorCode, ModelEntry, ProviderEntry};
use tollgate_credentials::CredentialError;
use tollgate_tenants::Principal;

/// The key that pays the provider for one call.
pub(crate) enum PayingKey<'a> {
    /// The organization's own active credential (BYOK).
    Own(Arc<SecretString>),
    /// The platform's key, from the catalog.
    Platform(&'a SecretString),
}

impl PayingKey<'_> {
    pub(crate) fn secret(&self) -> &SecretString {
        match self {
            PayingKey::Own(key) => key,
            PayingKey::Platform(key) => key,
        }
    }

    pub(crate) fn byok(&self) -> bool {
        matches!(self, PayingKey::Own(_))
    }
}

impl Gateway {
    /// The key that pays `provider` for this organization: its own active
    /// credential when it has one (BYOK), else the platform's key; `None`
    /// when there is neither. Served from memory once cached.
    pub(crate) async fn paying_key<'a>(
        &self,
        organization_id: &str,
        provider: &'a ProviderEntry,
    ) -> Result<Option<PayingKey<'a>>, GatewayError> {
        let error = match self
            .credentials
            .active_key(organization_id, &provider.name)
            .await
        {
            Ok(Some(key)) => return Ok(Some(PayingKey::Own(key))),
            Ok(None) => return Ok(provider.api_key.as_ref().map(PayingKey::Platform)),
            Err(e) => e,
        };
        match error.unshared() {
            // The database is away and this organization's key for the
            // provider is not cached: 503, as any call that needs it.
            CredentialError::Db(e) if tollgate_core::db::is_unavailable(e) => {
                Err(GatewayError::service_unavailable(e))
            }
            CredentialError::Db(e) => Err(GatewayError::internal(e)),
            // Never fall back to the platform's key: the organization chose its own.
            e => {
                tracing::error!(provider = %provider.name, error = %e, "an organization's provider key cannot be used");
                Err(GatewayError::new(
                    ErrorCode::NoProviderAvailable,
                    format!(
                        "the organization's own key for provider `{}` cannot be used on this \
                         gateway (see the gateway logs)",
                        provider.name
                    ),
                ))
            }
        }
    }

    /// The pricing rule of a call of this organization.
    pub(crate) fn pricing(&self, principal: &Principal, byok: bool) -> PricingRule {
        PricingRule {
            mode: principal.billing_mode,
            markup_percent: principal.markup_percent,
            byok_fee_percent: byok.then_some(self.byok_fee_percent),
        }
    }

    /// Holds `amount` for a call of this key: of its budget when it has one
    /// (`BudgetExceeded` otherwise), and of its organization's balance.
    pub(crate) async fn reserve(
        &self,
        principal: &Principal,
        amount: i64,
    ) -> Result<Hold, BillingError> {
        let budget = principal.budget.map(|b| KeyBudget {
            api_key_id: principal.key_id.clone(),
            amount: b.amount,
            period: b.period,
        });
        let held = self
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
            self.announce_budget_exceeded(
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
        &self,
        organization_id: &str,
        api_key_id: &str,
        period: tollgate_core::BudgetPeriod,
        limit: i64,
        spent: i64,
    ) {
        let webhooks = self.webhooks.clone();
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

    /// Gives a hold back whole (the provider was not paid).
    pub(crate) async fn release(&self, hold: Hold) {
        if let Err(e) = self.billing.release(hold).await {
            tracing::error!(error = %e, "releasing a hold failed");
        }
    }

    /// Settles a finished call (billing retries a failing database itself).
    /// Returns the amount charged, or `None` if the settlement could not be
    /// written (billing logs why).
    pub(crate) async fn settle(&self, hold: Hold, call: &CallRecord<'_>) -> Option<i64> {
        let cost = self
            .pricing(call.principal, call.byok)
            .payable(&call.model.price, &call.usage);
        let entry = UsageEntry {
            request_id: call.request_id.to_owned(),
            api_key_id: Some(call.principal.key_id.clone()),
            model: call.model.id.clone(),
            provider: call.model.provider.clone(),
            usage: call.usage,
            cost,
            list_cost_usd_micros: call.model.price.cost(&call.usage).0,
            byok: call.byok,
            stream: call.stream,
            status: call.status,
            latency_ms: i64::try_from(call.latency.as_millis()).unwrap_or(i64::MAX),
        };
        self.billing.settle(hold, entry).await.ok()
    }
}

/// The record of one finished call.
pub(crate) struct CallRecord<'a> {
    pub request_id: &'a str,
    pub principal: &'a Principal,
    pub model: &'a ModelEntry,
    pub usage: TokenUsage,
    pub byok: bool,
    pub stream: bool,
    pub status: UsageStatus,
    pub latency: Duration,
}

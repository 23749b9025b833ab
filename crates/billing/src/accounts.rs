//! Credit accounts: balances, grants and the ledger.

use crate::{Billing, BillingError};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::{Any, Row, Transaction};
use tollgate_core::time;

/// The largest overdraft limit: far from `i64` overflow in the lease
/// arithmetic (`balance - reserved - lease + overdraft_limit`).
pub const MAX_OVERDRAFT_LIMIT: i64 = 1_000_000_000_000_000;

/// A balance as the management API shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CreditsView {
    pub balance: i64,
    /// Set aside by gateway instances for calls in flight (their leases).
    pub reserved: i64,
    pub overdraft_limit: i64,
}

/// The answer to a grant, stored with its idempotency key so a replay gets it again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantOutcome {
    pub balance: i64,
    /// Whether this answer is a replay of an earlier grant with the same key.
    #[serde(skip)]
    pub replayed: bool,
}

/// A ledger entry's `kind` in the OpenAPI document (the table's CHECK).
#[cfg(feature = "openapi")]
fn ledger_kind_schema() -> utoipa::openapi::schema::Object {
    tollgate_core::openapi::one_of(&["grant", "usage", "adjustment"])
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct LedgerEntry {
    pub id: i64,
    /// `grant`, `usage` or `adjustment`.
    #[cfg_attr(feature = "openapi", schema(schema_with = ledger_kind_schema))]
    pub kind: String,
    /// Signed: positive adds credits, negative spends them.
    pub amount: i64,
    pub balance_after: i64,
    pub request_id: Option<String>,
    pub reason: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
}

/// Creates the organization's credit account (balance 0) if it has none.
pub(crate) async fn ensure_account<'c>(
    conn: impl sqlx::Executor<'c, Database = sqlx::Any>,
    organization_id: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO credit_accounts (organization_id, updated_at) VALUES ($1, $2) \
         ON CONFLICT (organization_id) DO NOTHING",
    )
    .bind(organization_id)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

impl Billing {
    /// The organization's balance, once this instance's settlements so far
    /// are committed (at most the database timeout): a client reading it
    /// after a call through this instance sees that call.
    pub async fn credits(&self, organization_id: &str) -> Result<CreditsView, BillingError> {
        self.committed_within(self.inner.options.db_timeout).await?;
        self.credits_now(organization_id).await
    }

    /// The balance as the database has it now.
    pub(crate) async fn credits_now(
        &self,
        organization_id: &str,
    ) -> Result<CreditsView, BillingError> {
        let row = sqlx::query(
            "SELECT balance, reserved, overdraft_limit FROM credit_accounts WHERE organization_id = $1",
        )
        .bind(organization_id)
        .fetch_optional(self.db().pool())
        .await?;
        Ok(match row {
            Some(row) => CreditsView {
                balance: row.try_get("balance")?,
                reserved: row.try_get("reserved")?,
                overdraft_limit: row.try_get("overdraft_limit")?,
            },
            None => CreditsView {
                balance: 0,
                reserved: 0,
                overdraft_limit: 0,
            },
        })
    }

    /// Sets how far below zero the balance may go (in the organization's
    /// unit, 0..=[`MAX_OVERDRAFT_LIMIT`]). Not a balance change: no ledger
    /// row. Leases already drawn stay; the next draw sees the new limit.
    pub async fn set_overdraft_limit(
        &self,
        organization_id: &str,
        limit: i64,
    ) -> Result<(), BillingError> {
        if !(0..=MAX_OVERDRAFT_LIMIT).contains(&limit) {
            return Err(BillingError::Invalid {
                field: "overdraft_limit",
                message: format!("must be an integer from 0 to {MAX_OVERDRAFT_LIMIT}"),
            });
        }
        let now = time::now_millis();
        let mut tx = self.db().begin_write().await?;
        ensure_account(&mut *tx, organization_id, now).await?;
        sqlx::query(
            "UPDATE credit_accounts SET overdraft_limit = $1, updated_at = $2 WHERE organization_id = $3",
        )
        .bind(limit)
        .bind(now)
        .bind(organization_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Adds credits. With an idempotency key, the same key and body answer
    /// the first outcome again without granting twice; the same key with
    /// another body is an `IdempotencyConflict`.
    pub async fn grant(
        &self,
        organization_id: &str,
        amount: i64,
        idempotency_key: Option<&str>,
        reason: Option<&str>,
    ) -> Result<GrantOutcome, BillingError> {
        let mut tx = self.db().begin_write().await?;
        let outcome = self
            .grant_in(&mut tx, organization_id, amount, idempotency_key, reason)
            .await?;
        tx.commit().await?;
        Ok(outcome)
    }

    /// [`Billing::grant`] inside the caller's transaction, so that what the
    /// grant causes (a webhook in the outbox, the dedup row of a payment
    /// event) commits or rolls back with it. A replay changes nothing and
    /// answers `replayed: true`.
    pub async fn grant_in(
        &self,
        tx: &mut Transaction<'_, Any>,
        organization_id: &str,
        amount: i64,
        idempotency_key: Option<&str>,
        reason: Option<&str>,
    ) -> Result<GrantOutcome, BillingError> {
        if amount <= 0 {
            return Err(BillingError::Invalid {
                field: "amount",
                message: "must be a positive integer".into(),
            });
        }
        if let Some(key) = idempotency_key
            && (key.is_empty() || key.len() > 255 || key.contains('\0'))
        {
            return Err(BillingError::Invalid {
                field: "idempotency_key",
                message: "must be 1 to 255 characters, without NUL".into(),
            });
        }
        if reason.is_some_and(|r| r.len() > 4096 || r.contains('\0')) {
            return Err(BillingError::Invalid {
                field: "reason",
                message: "must be at most 4096 bytes, without NUL".into(),
            });
        }
        let now = time::now_millis();
        let request_hash = hex::encode(Sha256::digest(
            serde_json::json!({"amount": amount, "reason": reason}).to_string(),
        ));
        if let Some(key) = idempotency_key {
            let claimed = sqlx::query(
                "INSERT INTO idempotency_keys (organization_id, idempotency_key, request_hash, response, created_at) \
                 VALUES ($1, $2, $3, '', $4) ON CONFLICT (organization_id, idempotency_key) DO NOTHING",
            )
            .bind(organization_id)
            .bind(key)
            .bind(&request_hash)
            .bind(now)
            .execute(&mut **tx)
            .await?;
            if claimed.rows_affected() == 0 {
                return replay_grant(tx, organization_id, key, &request_hash).await;
            }
        }
        ensure_account(&mut **tx, organization_id, now).await?;
        let row = sqlx::query(
            "UPDATE credit_accounts SET balance = balance + $1, updated_at = $2 \
             WHERE organization_id = $3 AND balance <= $4 - $1 RETURNING balance",
        )
        .bind(amount)
        .bind(now)
        .bind(organization_id)
        .bind(i64::MAX)
        .fetch_optional(&mut **tx)
        .await?;
        let Some(row) = row else {
            return Err(BillingError::Invalid {
                field: "amount",
                message: "would take the balance past the largest amount Tollgate stores".into(),
            });
        };
        let balance: i64 = row.try_get("balance")?;
        sqlx::query(
            "INSERT INTO ledger_entries (organization_id, kind, amount, balance_after, reason, created_at) \
             VALUES ($1, 'grant', $2, $3, $4, $5)",
        )
        .bind(organization_id)
        .bind(amount)
        .bind(balance)
        .bind(reason)
        .bind(now)
        .execute(&mut **tx)
        .await?;
        let outcome = GrantOutcome {
            balance,
            replayed: false,
        };
        if let Some(key) = idempotency_key {
            sqlx::query(
                "UPDATE idempotency_keys SET response = $1 WHERE organization_id = $2 AND idempotency_key = $3",
            )
            .bind(serde_json::to_string(&outcome).unwrap_or_default())
            .bind(organization_id)
            .bind(key)
            .execute(&mut **tx)
            .await?;
        }
        Ok(outcome)
    }

    /// The ledger, newest first: `limit` rows older than `before` (an entry id).
    pub async fn transactions(
        &self,
        organization_id: &str,
        limit: i64,
        before: Option<i64>,
    ) -> Result<Vec<LedgerEntry>, BillingError> {
        self.committed_within(self.inner.options.db_timeout).await?;
        let rows = sqlx::query(
            "SELECT id, kind, amount, balance_after, request_id, reason, created_at FROM ledger_entries \
             WHERE organization_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3",
        )
        .bind(organization_id)
        .bind(before.unwrap_or(i64::MAX))
        .bind(limit.clamp(1, 1000))
        .fetch_all(self.db().pool())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(LedgerEntry {
                    id: row.try_get("id")?,
                    kind: row.try_get("kind")?,
                    amount: row.try_get("amount")?,
                    balance_after: row.try_get("balance_after")?,
                    request_id: row.try_get("request_id")?,
                    reason: row.try_get("reason")?,
                    created_at: row.try_get::<i64, _>("created_at")? / 1000,
                })
            })
            .collect()
    }

    /// The sum of an organization's ledger; equal to its balance, always.
    pub async fn ledger_sum(&self, organization_id: &str) -> Result<i64, BillingError> {
        self.committed_within(self.inner.options.db_timeout).await?;
        let row = sqlx::query(
            "SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) AS total FROM ledger_entries WHERE organization_id = $1",
        )
        .bind(organization_id)
        .fetch_one(self.db().pool())
        .await?;
        Ok(row.try_get("total")?)
    }
}

/// The first answer of a grant with this idempotency key, or a conflict
/// when the key came with another body.
async fn replay_grant(
    tx: &mut Transaction<'_, Any>,
    organization_id: &str,
    key: &str,
    request_hash: &str,
) -> Result<GrantOutcome, BillingError> {
    let row = sqlx::query(
        "SELECT request_hash, response FROM idempotency_keys WHERE organization_id = $1 AND idempotency_key = $2",
    )
    .bind(organization_id)
    .bind(key)
    .fetch_one(&mut **tx)
    .await?;
    let stored_hash: String = row.try_get("request_hash")?;
    if stored_hash != request_hash {
        return Err(BillingError::IdempotencyConflict);
    }
    let response: String = row.try_get("response")?;
    let mut outcome: GrantOutcome =
        serde_json::from_str(&response).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
    outcome.replayed = true;
    Ok(outcome)
}

//! Stored OpenAI Responses (`store: true`): the object for
//! `GET /v1/responses/{id}` and the conversation a follow-up with
//! `previous_response_id` continues. Every read and delete is scoped to the
//! organization, so one organization never sees another's responses;
//! expired ones are treated as gone and purged as new ones are written.

use crate::db::Db;
use crate::time::now_millis;
use sqlx::Row;

/// A stored response: the object as answered and the conversation (Chat
/// messages, JSON array) up to and including it.
#[derive(Debug, Clone)]
pub struct StoredResponse {
    pub response: String,
    pub messages: String,
}

#[derive(Clone)]
pub struct ResponseStore {
    db: Db,
    /// How long a response is kept, in milliseconds.
    retention_ms: i64,
}

impl ResponseStore {
    pub fn new(db: Db, retention: std::time::Duration) -> ResponseStore {
        ResponseStore {
            db,
            retention_ms: i64::try_from(retention.as_millis()).unwrap_or(i64::MAX),
        }
    }

    /// Keeps a response for the retention period; `input_items`: the JSON
    /// array of its input items, each with its id.
    pub async fn insert(
        &self,
        id: &str,
        organization_id: &str,
        response: &str,
        messages: &str,
        input_items: &str,
    ) -> Result<(), sqlx::Error> {
        let now = now_millis();
        sqlx::query("DELETE FROM stored_responses WHERE expires_at <= $1")
            .bind(now)
            .execute(self.db.pool())
            .await?;
        sqlx::query(
            "INSERT INTO stored_responses (id, organization_id, response, messages, input_items, \
             created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(id)
        .bind(organization_id)
        .bind(response)
        .bind(messages)
        .bind(input_items)
        .bind(now)
        .bind(now.saturating_add(self.retention_ms))
        .execute(self.db.pool())
        .await?;
        Ok(())
    }

    /// The organization's unexpired response with this id.
    pub async fn get(
        &self,
        organization_id: &str,
        id: &str,
    ) -> Result<Option<StoredResponse>, sqlx::Error> {
        let row = sqlx::query(
            "SELECT response, messages FROM stored_responses \
             WHERE id = $1 AND organization_id = $2 AND expires_at > $3",
        )
        .bind(id)
        .bind(organization_id)
        .bind(now_millis())
        .fetch_optional(self.db.pool())
        .await?;
        row.map(|row| {
            Ok(StoredResponse {
                response: row.try_get("response")?,
                messages: row.try_get("messages")?,
            })
        })
        .transpose()
    }

    /// The input items (JSON array) of the organization's unexpired
    /// response with this id.
    pub async fn input_items(
        &self,
        organization_id: &str,
        id: &str,
    ) -> Result<Option<String>, sqlx::Error> {
        sqlx::query_scalar(
            "SELECT input_items FROM stored_responses \
             WHERE id = $1 AND organization_id = $2 AND expires_at > $3",
        )
        .bind(id)
        .bind(organization_id)
        .bind(now_millis())
        .fetch_optional(self.db.pool())
        .await
    }

    /// Deletes the organization's response; whether there was one.
    pub async fn delete(&self, organization_id: &str, id: &str) -> Result<bool, sqlx::Error> {
        let done = sqlx::query(
            "DELETE FROM stored_responses WHERE id = $1 AND organization_id = $2 AND expires_at > $3",
        )
        .bind(id)
        .bind(organization_id)
        .bind(now_millis())
        .execute(self.db.pool())
        .await?;
        Ok(done.rows_affected() > 0)
    }
}

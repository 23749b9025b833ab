//! The request log: one row per data-plane call (`requests`, its provider
//! attempts in it as a JSON array), for an organization's admins to see
//! what their calls did. Written by a background task in batches, so
//! that no answer waits for it; prompt and completion bodies are kept only
//! for organizations that opted in, and are deleted after a retention period.

use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;
use sqlx::postgres::{PgPool, PgPoolCopyExt};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tollgate_core::Db;
use tollgate_core::batch::Gather;
use tollgate_core::outage::{Dependency, OutageLog};
use tollgate_core::sql::{InsertSql, SqlBuilder, SqlValue, bind, copy_line};
use tollgate_core::time::now_millis;

/// Bodies longer than this are cut (at a character boundary) before they are stored.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// Calls waiting for the writer at most; more are dropped (and counted).
const QUEUE: usize = 16_384;
/// Calls written per transaction at most.
const BATCH: usize = 1024;
/// The writer waits this long after the first call of a batch, and comes
/// back this often while calls come: what a list may lag. Each batch is a
/// transaction of several statements (each a round trip to SQLite's worker
/// thread, or to PostgreSQL), whatever its size: every 20 ms, that work
/// was a quarter of the gateway's CPU at 100 requests/s.
const WRITE_INTERVAL: Duration = Duration::from_millis(200);

/// The writer runs every 200 ms while calls come in: a database outage is
/// logged once, then as a periodic summary, not once per batch.
static WRITE_FAILED: OutageLog = OutageLog::new(
    Dependency::Database,
    "writing the request log failed; these entries are lost",
);
static RETENTION_FAILED: OutageLog = OutageLog::new(
    Dependency::Database,
    "deleting expired request-log entries failed",
);

#[derive(Debug, thiserror::Error)]
pub enum RequestLogError {
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
}

/// One provider attempt of a call.
// Stored as the API shows it, in its call's `attempts` column (JSON).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Attempt {
    /// 1 for the first provider called.
    pub attempt: i64,
    pub provider: String,
    /// The catalog model.
    pub model: String,
    /// `ok` or `error`.
    #[schema(schema_with = attempt_status_schema)]
    pub status: String,
    /// The provider's HTTP status, when it answered one.
    pub http_status: Option<i64>,
    /// What went wrong, when it did (never a key or a prompt).
    pub error: Option<String>,
    pub byok: bool,
    /// Until the answer (or, for a stream, its first event).
    pub duration_ms: i64,
    /// Unix milliseconds.
    pub started_at_ms: i64,
}

/// An attempt's `status` in the OpenAPI document: the closed set it is.
fn attempt_status_schema() -> utoipa::openapi::schema::Object {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(["ok", "error"]))
        .build()
}

/// One call, as written by the gateway.
#[derive(Debug, Clone, Default)]
pub struct LoggedCall {
    pub request_id: String,
    pub organization_id: String,
    pub api_key_id: Option<String>,
    /// `chat`, `embeddings`, `messages`, ….
    pub operation: String,
    /// The model the client asked for (`auto` included).
    pub requested_model: Option<String>,
    /// The catalog model that answered.
    pub model: Option<String>,
    pub provider: Option<String>,
    /// The HTTP status answered.
    pub status: u16,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub stream: bool,
    pub byok: bool,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    /// In the organization's unit.
    pub cost: i64,
    pub duration_ms: i64,
    pub time_to_first_token_ms: Option<i64>,
    /// The gateway's own share of the duration: all but the provider attempts.
    pub overhead_ms: Option<i64>,
    pub trace_id: Option<String>,
    /// Only for organizations that opted in.
    pub request_body: Option<String>,
    pub response_body: Option<String>,
    /// Unix milliseconds.
    pub created_at_ms: i64,
    pub attempts: Vec<Attempt>,
}

/// A call in a list: everything but its attempts and bodies.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct RequestSummary {
    pub request_id: String,
    pub operation: String,
    /// The catalog model that answered (else the model asked for).
    pub model: Option<String>,
    pub requested_model: Option<String>,
    pub provider: Option<String>,
    /// The HTTP status answered.
    pub status: i64,
    pub error_code: Option<String>,
    pub api_key_id: Option<String>,
    pub stream: bool,
    pub byok: bool,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    /// In the organization's unit.
    pub cost: i64,
    pub duration_ms: i64,
    pub time_to_first_token_ms: Option<i64>,
    pub overhead_ms: Option<i64>,
    /// Provider attempts made.
    pub attempt_count: i64,
    pub trace_id: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
}

/// One call with its attempts, error and (when kept) bodies.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct RequestDetail {
    #[serde(flatten)]
    pub summary: RequestSummary,
    pub error_message: Option<String>,
    pub attempts: Vec<Attempt>,
    /// The client's request body: only when the organization keeps bodies,
    /// until the retention period ends.
    pub request_body: Option<String>,
    /// The answer's body (not for streams): as `request_body`.
    pub response_body: Option<String>,
}

/// Which calls a list covers, beside the organization.
#[derive(Debug, Clone, Default)]
pub struct RequestFilter {
    /// Unix milliseconds, inclusive.
    pub from_ms: Option<i64>,
    /// Unix milliseconds, exclusive.
    pub to_ms: Option<i64>,
    /// The model that answered, or the one asked for.
    pub model: Option<String>,
    pub api_key_id: Option<String>,
    pub status: Option<StatusFilter>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusFilter {
    /// One HTTP status.
    Exactly(u16),
    /// Below 400.
    Ok,
    /// 400 and above.
    Error,
}

impl StatusFilter {
    /// `ok`, `error` or an HTTP status (100 to 599).
    pub fn parse(s: &str) -> Option<StatusFilter> {
        match s {
            "ok" => Some(StatusFilter::Ok),
            "error" => Some(StatusFilter::Error),
            n => n
                .parse::<u16>()
                .ok()
                .filter(|n| (100..600).contains(n))
                .map(StatusFilter::Exactly),
        }
    }
}

/// How long what is logged is kept.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    /// Bodies are deleted (set to null) this long after the call.
    pub bodies: Duration,
    /// Rows (with their attempts) are deleted this long after the call.
    pub rows: Duration,
}

enum Message {
    Call(Box<LoggedCall>),
    Flush(oneshot::Sender<()>),
}

/// The request log. Cheap to clone.
#[derive(Clone)]
pub struct RequestLog {
    db: Db,
    sender: Option<mpsc::Sender<Message>>,
    dropped: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

/// Cuts `body` to [`MAX_BODY_BYTES`] at a character boundary.
pub fn capped_body(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    if text.len() <= MAX_BODY_BYTES {
        return text.into_owned();
    }
    let mut end = MAX_BODY_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl RequestLog {
    /// A log whose writer runs in the returned task; `enabled: false`
    /// writes nothing (reads still work).
    pub fn start(db: Db, enabled: bool) -> (RequestLog, Option<tokio::task::JoinHandle<()>>) {
        let dropped = std::sync::Arc::default();
        if !enabled {
            return (
                RequestLog {
                    db,
                    sender: None,
                    dropped,
                },
                None,
            );
        }
        let (sender, receiver) = mpsc::channel(QUEUE);
        let task = tokio::spawn(write_loop(db.clone(), receiver));
        (
            RequestLog {
                db,
                sender: Some(sender),
                dropped,
            },
            Some(task),
        )
    }

    pub fn enabled(&self) -> bool {
        self.sender.is_some()
    }

    /// Calls dropped so far because the writer could not keep up.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Queues a call for the writer; never waits.
    pub fn record(&self, call: LoggedCall) {
        if let Some(sender) = &self.sender
            && sender.try_send(Message::Call(Box::new(call))).is_err()
        {
            self.dropped
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Writes every queued call now (at shutdown), waiting at most `within`.
    pub async fn flush(&self, within: Duration) {
        let Some(sender) = &self.sender else {
            return;
        };
        let (done, wait) = oneshot::channel();
        if sender.send(Message::Flush(done)).await.is_ok() {
            let _ = tokio::time::timeout(within, wait).await;
        }
    }

    /// An organization's calls matching `filter`, newest first, at most
    /// `limit`, older than the call `before` (a request id) when given.
    pub async fn list(
        &self,
        organization_id: &str,
        filter: &RequestFilter,
        limit: i64,
        before: Option<&str>,
    ) -> Result<Vec<RequestSummary>, RequestLogError> {
        let mut query = SqlBuilder::new(SUMMARY_COLUMNS);
        query
            .push(" FROM requests WHERE organization_id = ")
            .push_bind(organization_id);
        if let Some(from) = filter.from_ms {
            query.push(" AND created_at >= ").push_bind(from);
        }
        if let Some(to) = filter.to_ms {
            query.push(" AND created_at < ").push_bind(to);
        }
        if let Some(model) = &filter.model {
            query
                .push(" AND (model = ")
                .push_bind(model.as_str())
                .push(" OR requested_model = ")
                .push_bind(model.as_str())
                .push(")");
        }
        if let Some(key) = &filter.api_key_id {
            query.push(" AND api_key_id = ").push_bind(key.as_str());
        }
        match filter.status {
            Some(StatusFilter::Exactly(n)) => {
                query.push(" AND status = ").push_bind(i64::from(n));
            }
            Some(StatusFilter::Ok) => {
                query.push(" AND status < 400");
            }
            Some(StatusFilter::Error) => {
                query.push(" AND status >= 400");
            }
            None => {}
        }
        // Request ids are time-ordered (UUIDv7): the id is the cursor.
        if let Some(before) = before {
            query.push(" AND request_id < ").push_bind(before);
        }
        query
            .push(" ORDER BY request_id DESC LIMIT ")
            .push_bind(limit.clamp(1, 1001));
        let rows = query.build().fetch_all(self.db.pool()).await?;
        Ok(rows
            .iter()
            .map(summary_from_row)
            .collect::<Result<_, _>>()?)
    }

    /// One call of the organization, with its attempts; `None` when it has
    /// no such call (another organization's included).
    pub async fn get(
        &self,
        organization_id: &str,
        request_id: &str,
    ) -> Result<Option<RequestDetail>, RequestLogError> {
        let sql = format!(
            "{SUMMARY_COLUMNS}, error_message, attempts, request_body, response_body FROM requests \
             WHERE organization_id = $1 AND request_id = $2"
        );
        let Some(row) = sqlx::query(&sql)
            .bind(organization_id)
            .bind(request_id)
            .fetch_optional(self.db.pool())
            .await?
        else {
            return Ok(None);
        };
        let attempts: String = row.try_get("attempts")?;
        let attempts: Vec<Attempt> = serde_json::from_str(&attempts).map_err(|e| {
            sqlx::Error::Decode(format!("the attempts of {request_id}: {e}").into())
        })?;
        Ok(Some(RequestDetail {
            summary: summary_from_row(&row)?,
            error_message: row.try_get("error_message")?,
            attempts,
            request_body: row.try_get("request_body")?,
            response_body: row.try_get("response_body")?,
        }))
    }

    /// Deletes bodies and rows past their retention, every `interval`.
    pub async fn enforce_retention(self, retention: Retention, interval: Duration) {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            match self.delete_expired(retention).await {
                Ok(()) => RETENTION_FAILED.recovered(),
                Err(e) => RETENTION_FAILED.failed(&e),
            }
        }
    }

    /// One pass of [`RequestLog::enforce_retention`].
    pub async fn delete_expired(&self, retention: Retention) -> Result<(), RequestLogError> {
        let now = now_millis();
        let bodies_before = now.saturating_sub(millis(retention.bodies));
        sqlx::query(
            "UPDATE requests SET request_body = NULL, response_body = NULL, has_body = FALSE \
             WHERE has_body AND created_at < $1",
        )
        .bind(bodies_before)
        .execute(self.db.pool())
        .await?;
        let rows_before = now.saturating_sub(millis(retention.rows));
        sqlx::query("DELETE FROM requests WHERE created_at < $1")
            .bind(rows_before)
            .execute(self.db.pool())
            .await?;
        Ok(())
    }
}

const SUMMARY_COLUMNS: &str = "SELECT request_id, operation, model, requested_model, provider, \
     status, error_code, api_key_id, \
     CAST(CASE WHEN stream THEN 1 ELSE 0 END AS BIGINT) AS stream, \
     CAST(CASE WHEN byok THEN 1 ELSE 0 END AS BIGINT) AS byok, \
     prompt_tokens, completion_tokens, cost, duration_ms, ttft_ms, overhead_ms, attempt_count, \
     trace_id, created_at";

fn summary_from_row(row: &AnyRow) -> Result<RequestSummary, sqlx::Error> {
    Ok(RequestSummary {
        request_id: row.try_get("request_id")?,
        operation: row.try_get("operation")?,
        model: row.try_get("model")?,
        requested_model: row.try_get("requested_model")?,
        provider: row.try_get("provider")?,
        status: row.try_get("status")?,
        error_code: row.try_get("error_code")?,
        api_key_id: row.try_get("api_key_id")?,
        // Read as integers: sqlx's Any driver cannot decode SQLite booleans.
        stream: row.try_get::<i64, _>("stream")? != 0,
        byok: row.try_get::<i64, _>("byok")? != 0,
        prompt_tokens: row.try_get("prompt_tokens")?,
        completion_tokens: row.try_get("completion_tokens")?,
        cost: row.try_get("cost")?,
        duration_ms: row.try_get("duration_ms")?,
        time_to_first_token_ms: row.try_get("ttft_ms")?,
        overhead_ms: row.try_get("overhead_ms")?,
        attempt_count: row.try_get("attempt_count")?,
        trace_id: row.try_get("trace_id")?,
        created_at: row.try_get::<i64, _>("created_at")? / 1000,
    })
}

/// Writes queued calls a batch (one transaction) at a time.
async fn write_loop(db: Db, mut receiver: mpsc::Receiver<Message>) {
    let mut gather = Gather::new(WRITE_INTERVAL, BATCH);
    let mut messages = Vec::with_capacity(BATCH);
    let mut batch = Vec::with_capacity(BATCH);
    while gather.next(&mut receiver, &mut messages).await {
        let mut flushes = Vec::new();
        for message in messages.drain(..) {
            match message {
                Message::Call(call) => batch.push(call),
                Message::Flush(done) => flushes.push(done),
            }
        }
        if !batch.is_empty() {
            match write_batch_once(&db, &batch).await {
                Ok(()) => WRITE_FAILED.recovered(),
                Err(e) => WRITE_FAILED.failed(&e),
            }
            batch.clear();
        }
        for done in flushes {
            let _ = done.send(());
        }
    }
}

/// The columns a call is written to, in the order of [`row_values`].
macro_rules! request_columns {
    () => {
        "request_id, organization_id, api_key_id, operation, \
         requested_model, model, provider, status, error_code, error_message, stream, byok, \
         prompt_tokens, completion_tokens, cost, duration_ms, ttft_ms, overhead_ms, \
         attempt_count, attempts, trace_id, request_body, response_body, has_body, created_at"
    };
}

const REQUEST_HEAD: &str = concat!("INSERT INTO requests (", request_columns!(), ") VALUES ");

const COPY_REQUESTS: &str = concat!("COPY requests (", request_columns!(), ") FROM STDIN");

/// Plain inserts: PostgreSQL's `ON CONFLICT` checks the unique index before
/// each row and writes each row twice to its WAL (a speculative insert,
/// then its confirmation), which the request log's writes, one row per
/// call, would pay on every call.
static INSERTS: InsertSql = InsertSql::new(REQUEST_HEAD);

/// For a batch refused for a row already in the log (a call logged twice):
/// the batch again, without those rows.
static INSERTS_SKIPPING_LOGGED: InsertSql =
    InsertSql::with_tail(REQUEST_HEAD, " ON CONFLICT (request_id) DO NOTHING");

/// Writes a batch with plain inserts (a `COPY` on PostgreSQL); if a row is
/// already in the log, again skipping such rows.
async fn write_batch_once(db: &Db, calls: &[Box<LoggedCall>]) -> Result<(), sqlx::Error> {
    let written = match db.postgres() {
        Some(postgres) => copy_batch(postgres, calls).await,
        None => write_batch(db, calls, &INSERTS).await,
    };
    match written {
        Err(e) if tollgate_core::db::is_unique_violation(&e) => {
            write_batch(db, calls, &INSERTS_SKIPPING_LOGGED).await
        }
        result => result,
    }
}

/// PostgreSQL: writes a batch in one `COPY` (all of it or none), which
/// costs the server about half what the multi-row inserts do, and the
/// gateway no value bound one by one.
async fn copy_batch(postgres: &PgPool, calls: &[Box<LoggedCall>]) -> Result<(), sqlx::Error> {
    let text = copy_text(calls).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    let mut copy = postgres.copy_in_raw(COPY_REQUESTS).await?;
    copy.send(text).await?;
    copy.finish().await?;
    Ok(())
}

/// Writes a batch in one transaction, several rows per statement.
async fn write_batch(
    db: &Db,
    calls: &[Box<LoggedCall>],
    inserts: &InsertSql,
) -> Result<(), sqlx::Error> {
    let mut tx = db.begin_write().await?;
    for chunk in inserts.chunks(calls) {
        let sql = inserts.for_rows(db.backend(), chunk.len());
        let mut values = Vec::with_capacity(chunk.len() * inserts.columns());
        for call in chunk {
            values.extend(row_values(call).map_err(|e| sqlx::Error::Encode(Box::new(e)))?);
        }
        bind(sqlx::query(&sql), &values).execute(&mut *tx).await?;
    }
    tx.commit().await
}

/// A batch in `COPY`'s text format: a line per call.
fn copy_text(calls: &[Box<LoggedCall>]) -> Result<Vec<u8>, serde_json::Error> {
    let mut text = Vec::with_capacity(calls.len() * 640);
    for call in calls {
        copy_line(&mut text, &row_values(call)?);
    }
    Ok(text)
}

/// A call's values, in [`request_columns!`]'s order.
fn row_values(call: &LoggedCall) -> Result<[SqlValue<'_>; 25], serde_json::Error> {
    let attempts = serde_json::to_string(&call.attempts)?;
    let has_body = call.request_body.is_some() || call.response_body.is_some();
    Ok([
        call.request_id.as_str().into(),
        call.organization_id.as_str().into(),
        call.api_key_id.as_deref().into(),
        call.operation.as_str().into(),
        call.requested_model.as_deref().into(),
        call.model.as_deref().into(),
        call.provider.as_deref().into(),
        i64::from(call.status).into(),
        call.error_code.as_deref().into(),
        call.error_message.as_deref().into(),
        call.stream.into(),
        call.byok.into(),
        call.prompt_tokens.into(),
        call.completion_tokens.into(),
        call.cost.into(),
        call.duration_ms.into(),
        int_or_null(call.time_to_first_token_ms),
        int_or_null(call.overhead_ms),
        i64::try_from(call.attempts.len())
            .unwrap_or(i64::MAX)
            .into(),
        attempts.into(),
        call.trace_id.as_deref().into(),
        call.request_body.as_deref().into(),
        call.response_body.as_deref().into(),
        has_body.into(),
        call.created_at_ms.into(),
    ])
}

fn int_or_null(value: Option<i64>) -> SqlValue<'static> {
    value.map_or(SqlValue::NullInt, SqlValue::Int)
}

#[cfg(test)]
mod tests {
    #[test]
    fn inserts_have_a_placeholder_per_bound_column() {
        // write_batch binds 25 values a call: row_values's.
        assert_eq!(INSERTS.columns(), 25);
        assert_eq!(INSERTS_SKIPPING_LOGGED.columns(), 25);
        assert_eq!(row_values(&call("req_1")).unwrap().len(), 25);
    }

    use super::*;

    #[test]
    fn long_bodies_are_cut_at_a_character_boundary() {
        let body = "é".repeat(MAX_BODY_BYTES);
        let capped = capped_body(body.as_bytes());
        assert!(capped.len() <= MAX_BODY_BYTES);
        assert!(capped.chars().all(|c| c == 'é'));
    }

    fn call(request_id: &str) -> LoggedCall {
        LoggedCall {
            request_id: request_id.to_owned(),
            organization_id: "org_a".to_owned(),
            operation: "chat".to_owned(),
            status: 200,
            created_at_ms: 1,
            attempts: vec![Attempt {
                attempt: 1,
                provider: "openai".to_owned(),
                model: "gpt-4o-mini".to_owned(),
                status: "ok".to_owned(),
                http_status: Some(200),
                error: None,
                byok: false,
                duration_ms: 1,
                started_at_ms: 1,
            }],
            ..LoggedCall::default()
        }
    }

    /// A fresh database, not migrated yet, in a fresh directory (removed at
    /// the end of the test that holds it).
    async fn fresh_database() -> (std::path::PathBuf, tollgate_core::testing::TestDatabase, Db) {
        let dir = std::env::temp_dir().join(format!("tollgate-log-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        let database = tollgate_core::testing::TestDatabase::create(&dir).await;
        let db = Db::connect(&database.url, 1).await.unwrap();
        (dir, database, db)
    }

    #[tokio::test]
    async fn a_call_logged_twice_does_not_lose_the_rest_of_its_batch() {
        let (dir, _database, db) = fresh_database().await;
        db.migrate().await.unwrap();
        let (log, _writer) = RequestLog::start(db.clone(), true);
        log.record(call("req_1"));
        log.flush(Duration::from_secs(10)).await;

        // The plain insert of this batch is refused for req_1's rows.
        log.record(call("req_1"));
        log.record(call("req_2"));
        log.flush(Duration::from_secs(10)).await;

        let listed = log
            .list("org_a", &RequestFilter::default(), 10, None)
            .await
            .unwrap();
        let ids: Vec<&str> = listed.iter().map(|r| r.request_id.as_str()).collect();
        assert_eq!(ids, ["req_2", "req_1"]);
        let second = log.get("org_a", "req_2").await.unwrap().unwrap();
        assert_eq!(second.attempts.len(), 1);
        db.close().await;
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Every field, text with the characters `COPY`'s text format escapes
    /// included, reads back as it was logged (on PostgreSQL, through `COPY`).
    #[tokio::test]
    async fn every_field_of_a_call_reads_back_as_logged() {
        let (dir, _database, db) = fresh_database().await;
        db.migrate().await.unwrap();
        let (log, _writer) = RequestLog::start(db.clone(), true);
        let awkward = "tab\there, line\nbreak, cr\r, back\\slash \\N \\t, quote \" ' é 🙂, comma,";
        let mut full = call("req_full");
        full.api_key_id = Some("key_1".into());
        full.requested_model = Some("auto".into());
        full.model = Some("gpt-4o-mini".into());
        full.provider = Some("openai".into());
        full.status = 502;
        full.error_code = Some("upstream_error".into());
        full.error_message = Some(awkward.into());
        full.stream = true;
        full.byok = true;
        full.prompt_tokens = 12;
        full.completion_tokens = 34;
        full.cost = -5;
        full.duration_ms = 250;
        full.time_to_first_token_ms = Some(40);
        full.overhead_ms = Some(1);
        full.trace_id = Some("0af7651916cd43dd8448eb211c80319c".into());
        full.request_body = Some(format!("{{\"messages\": \"{awkward}\"}}"));
        full.response_body = Some(awkward.into());
        full.created_at_ms = 1_700_000_000_123;
        full.attempts[0].error = Some(awkward.into());
        full.attempts.push(Attempt {
            attempt: 2,
            http_status: None,
            ..full.attempts[0].clone()
        });
        // Every optional field empty.
        let bare = LoggedCall {
            request_id: "req_bare".into(),
            organization_id: "org_a".into(),
            operation: "embeddings".into(),
            status: 200,
            created_at_ms: 1_700_000_000_000,
            ..LoggedCall::default()
        };
        log.record(full.clone());
        log.record(bare.clone());
        log.flush(Duration::from_secs(10)).await;

        let got = log.get("org_a", "req_full").await.unwrap().unwrap();
        let s = &got.summary;
        assert_eq!(
            (
                s.operation.as_str(),
                s.requested_model.as_deref(),
                s.model.as_deref()
            ),
            ("chat", Some("auto"), Some("gpt-4o-mini"))
        );
        assert_eq!(
            (s.provider.as_deref(), s.status, s.error_code.as_deref()),
            (Some("openai"), 502, Some("upstream_error"))
        );
        assert_eq!(
            (s.api_key_id.as_deref(), s.stream, s.byok),
            (Some("key_1"), true, true)
        );
        assert_eq!(
            (s.prompt_tokens, s.completion_tokens, s.cost, s.duration_ms),
            (12, 34, -5, 250)
        );
        assert_eq!(
            (s.time_to_first_token_ms, s.overhead_ms, s.attempt_count),
            (Some(40), Some(1), 2)
        );
        assert_eq!(s.trace_id, full.trace_id);
        assert_eq!(s.created_at, 1_700_000_000);
        assert_eq!(got.error_message, full.error_message);
        assert_eq!(got.request_body, full.request_body);
        assert_eq!(got.response_body, full.response_body);
        assert_eq!(got.attempts, full.attempts);

        let got = log.get("org_a", "req_bare").await.unwrap().unwrap();
        let s = &got.summary;
        assert_eq!((s.operation.as_str(), s.status), ("embeddings", 200));
        assert!(s.api_key_id.is_none() && s.requested_model.is_none() && s.model.is_none());
        assert!(s.provider.is_none() && s.error_code.is_none() && s.trace_id.is_none());
        assert!(s.time_to_first_token_ms.is_none() && s.overhead_ms.is_none());
        assert!(!s.stream && !s.byok && s.attempt_count == 0);
        assert!(got.error_message.is_none() && got.attempts.is_empty());
        assert!(got.request_body.is_none() && got.response_body.is_none());
        db.close().await;
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Attempts logged in their own table, before migration 0013 moved
    /// them into their call's row, read back as they were, in order.
    #[tokio::test]
    async fn attempts_logged_before_they_moved_into_their_call_survive_the_migration() {
        let (dir, _database, db) = fresh_database().await;
        // The schema as it was before: the migrations up to 0012.
        let backend = match db.backend() {
            tollgate_core::Backend::Sqlite => "sqlite",
            tollgate_core::Backend::Postgres => "postgres",
        };
        let all = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../migrations")
            .join(backend);
        let before = dir.join("migrations-before-0013");
        std::fs::create_dir_all(&before).unwrap();
        for entry in std::fs::read_dir(&all).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_str().unwrap().to_owned();
            if name.as_str() < "0013" {
                std::fs::copy(&path, before.join(name)).unwrap();
            }
        }
        sqlx::migrate::Migrator::new(before.as_path())
            .await
            .unwrap()
            .run(db.pool())
            .await
            .unwrap();
        for (request_id, attempt_count) in [("req_1", 2), ("req_2", 0)] {
            sqlx::query(
                "INSERT INTO requests (request_id, organization_id, operation, status, stream, byok, \
                 prompt_tokens, completion_tokens, cost, duration_ms, attempt_count, has_body, created_at) \
                 VALUES ($1, 'org_a', 'chat', 200, FALSE, FALSE, 0, 0, 0, 9, $2, FALSE, 1)",
            )
            .bind(request_id)
            .bind(attempt_count)
            .execute(db.pool())
            .await
            .unwrap();
        }
        // The second attempt first: the order comes from `attempt`.
        for (attempt, outcome, http_status, error, byok) in [
            (2, "ok", Some(200), None, true),
            (1, "error", Some(503), Some("overloaded"), false),
        ] {
            sqlx::query(
                "INSERT INTO request_attempts (request_id, attempt, provider, model, outcome, \
                 http_status, error, byok, duration_ms, started_at) \
                 VALUES ('req_1', $1, 'openai', 'gpt-4o-mini', $2, $3, $4, $5, 4, 100)",
            )
            .bind(attempt)
            .bind(outcome)
            .bind(http_status)
            .bind(error)
            .bind(byok)
            .execute(db.pool())
            .await
            .unwrap();
        }

        db.migrate().await.unwrap();

        let (log, _writer) = RequestLog::start(db.clone(), true);
        let first = log.get("org_a", "req_1").await.unwrap().unwrap();
        let attempt = |attempt, status: &str, http_status, error: Option<&str>, byok| Attempt {
            attempt,
            provider: "openai".to_owned(),
            model: "gpt-4o-mini".to_owned(),
            status: status.to_owned(),
            http_status: Some(http_status),
            error: error.map(str::to_owned),
            byok,
            duration_ms: 4,
            started_at_ms: 100,
        };
        assert_eq!(
            first.attempts,
            [
                attempt(1, "error", 503, Some("overloaded"), false),
                attempt(2, "ok", 200, None, true),
            ]
        );
        let second = log.get("org_a", "req_2").await.unwrap().unwrap();
        assert!(second.attempts.is_empty());
        db.close().await;
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn status_filters_take_a_class_or_a_code() {
        assert_eq!(StatusFilter::parse("ok"), Some(StatusFilter::Ok));
        assert_eq!(StatusFilter::parse("502"), Some(StatusFilter::Exactly(502)));
        assert_eq!(StatusFilter::parse("99"), None);
        assert_eq!(StatusFilter::parse("bad"), None);
    }
}

//! The database handle. Tollgate runs on SQLite (embedded, one node) or
//! PostgreSQL (many replicas) through sqlx's `Any` driver, with one set of
//! queries: `$1`-style placeholders (both backends accept them), integer
//! milliseconds for instants, and integers for money. Only the migrations
//! differ per backend (`migrations/sqlite`, `migrations/postgres`).

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::{AnyConnection, AnyPool, Connection, Executor};
use std::time::Duration;

/// WAL pages after which a SQLite commit checkpoints inline, with the
/// fsyncs that takes, while every settlement behind it waits (SQLite's
/// `wal_autocheckpoint`, 1000 by default). The background checkpointer
/// ([`Db::checkpoint_wal`]) copies the WAL into the database long before;
/// this is the backstop that bounds the WAL (about 40 MB) under a load with
/// no pause in it.
const INLINE_CHECKPOINT_PAGES: u32 = 10_000;

/// A WAL under this many frames (pages) at a checkpoint marks a quiet
/// gateway: the next checkpoint waits [`QUIET_CHECKPOINT_INTERVAL`].
const QUIET_WAL_FRAMES: i64 = 2_000;
/// How often a quiet gateway's WAL is checkpointed.
const QUIET_CHECKPOINT_INTERVAL: Duration = Duration::from_secs(1);

/// Longest wait of [`Db::ping`]: under the second a readiness probe waits.
pub const PING_TIMEOUT: Duration = Duration::from_millis(800);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("unsupported DATABASE_URL scheme (use sqlite://PATH or postgres://…)")]
    UnsupportedUrl,
    #[error("database error: {0}")]
    Sqlx(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error(
        "PostgreSQL database \"{name}\" does not exist and could not be created ({reason}); \
         create it (`createdb {name}`, or `CREATE DATABASE \"{name}\";` in psql) and start again"
    )]
    MissingDatabase { name: String, reason: String },
}

/// A pool on one of the two backends. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Db {
    pool: AnyPool,
    backend: Backend,
    /// SQLite: the URL the pool connects with, for the checkpointer's own connection.
    sqlite_url: Option<std::sync::Arc<str>>,
    /// PostgreSQL: one connection of PostgreSQL's own driver, for what
    /// `Any` cannot do (`COPY`). Connects at its first use.
    postgres: Option<PgPool>,
}

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/postgres");

impl Db {
    /// Connects to `url`. A SQLite file is created when missing and put in
    /// WAL mode, so readers never wait for the writer.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Db, DbError> {
        Self::connect_with(url, max_connections, Duration::from_secs(10)).await
    }

    /// Like [`Db::connect`], waiting at most `acquire_timeout` for a
    /// connection: when the database is away, a caller fails after that
    /// instead of waiting for it.
    pub async fn connect_with(
        url: &str,
        max_connections: u32,
        acquire_timeout: Duration,
    ) -> Result<Db, DbError> {
        install_default_drivers();
        let backend = backend_of(url)?;
        let url = match backend {
            Backend::Sqlite if !url.contains("mode=") => {
                let sep = if url.contains('?') { '&' } else { '?' };
                format!("{url}{sep}mode=rwc")
            }
            _ => url.to_owned(),
        };
        let options = AnyPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(acquire_timeout);
        let options = match backend {
            // A SQLite file does not go stale as a server connection can:
            // no ping (a round trip to SQLite's worker thread) before each use.
            Backend::Sqlite => options
                .test_before_acquire(false)
                .after_connect(|conn, _meta| {
                    Box::pin(async move {
                        conn.execute("PRAGMA journal_mode = WAL").await?;
                        conn.execute("PRAGMA synchronous = NORMAL").await?;
                        conn.execute("PRAGMA busy_timeout = 10000").await?;
                        conn.execute("PRAGMA foreign_keys = ON").await?;
                        let pages =
                            format!("PRAGMA wal_autocheckpoint = {INLINE_CHECKPOINT_PAGES}");
                        conn.execute(pages.as_str()).await?;
                        Ok(())
                    })
                }),
            Backend::Postgres => options,
        };
        let pool = match options.clone().connect(&url).await {
            // As SQLite creates its file, PostgreSQL gets its database made
            // on first start, when the server lets this user do it.
            Err(e) if backend == Backend::Postgres && is_missing_database(&e) => {
                create_postgres_database(&url).await?;
                options.connect(&url).await?
            }
            other => other?,
        };
        let sqlite_url = (backend == Backend::Sqlite).then(|| url.as_str().into());
        let postgres = match backend {
            Backend::Postgres => Some(
                PgPoolOptions::new()
                    .max_connections(1)
                    .acquire_timeout(acquire_timeout)
                    .connect_lazy(&url)?,
            ),
            Backend::Sqlite => None,
        };
        Ok(Db {
            pool,
            backend,
            sqlite_url,
            postgres,
        })
    }

    /// SQLite: copies the WAL into the database file every `interval`, from
    /// a connection of its own, so that a commit (which settlements, and the
    /// answers waiting for them, are behind) almost never pays for a
    /// checkpoint and its fsyncs. A passive checkpoint never blocks the
    /// writer. While the WAL stays small (a quiet gateway), it waits
    /// [`QUIET_CHECKPOINT_INTERVAL`] instead: each checkpoint costs two
    /// fsyncs and a round of page copies whatever it copies. Returns at once
    /// on PostgreSQL; ends when the pool is closed.
    pub async fn checkpoint_wal(self, interval: Duration) {
        let Some(url) = self.sqlite_url.clone() else {
            return;
        };
        let mut conn: Option<AnyConnection> = None;
        let mut failing = false;
        let mut wait = interval;
        loop {
            tokio::time::sleep(wait).await;
            if self.pool.is_closed() {
                break;
            }
            wait = match checkpoint(&mut conn, &url).await {
                Ok(frames) => {
                    failing = false;
                    if frames < QUIET_WAL_FRAMES {
                        QUIET_CHECKPOINT_INTERVAL.max(interval)
                    } else {
                        interval
                    }
                }
                Err(e) => {
                    // Commits checkpoint inline meanwhile: slower, not wrong.
                    if !failing {
                        tracing::warn!(error = %e, "background WAL checkpoint failed");
                    }
                    failing = true;
                    conn = None;
                    interval
                }
            };
        }
        if let Some(c) = conn {
            let _ = c.close().await;
        }
    }

    /// Applies the pending migrations of this backend. On PostgreSQL, sqlx
    /// holds an advisory lock meanwhile, so replicas starting together are safe.
    pub async fn migrate(&self) -> Result<(), DbError> {
        match self.backend {
            Backend::Sqlite => SQLITE_MIGRATIONS.run(&self.pool).await?,
            Backend::Postgres => POSTGRES_MIGRATIONS.run(&self.pool).await?,
        }
        Ok(())
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// PostgreSQL's own driver on the same database (one connection), for
    /// `COPY`; `None` on SQLite.
    pub fn postgres(&self) -> Option<&PgPool> {
        self.postgres.as_ref()
    }

    /// Begins a transaction that may write. On SQLite it takes the write
    /// lock at once (`BEGIN IMMEDIATE`, waiting up to the busy timeout):
    /// a deferred transaction that reads first cannot upgrade to a writer
    /// once another connection has committed, and SQLite then fails it at
    /// once with "database is locked" instead of waiting.
    pub async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>, sqlx::Error> {
        match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => self.pool.begin().await,
        }
    }

    /// Whether the database answers, for `/ready`: within [`PING_TIMEOUT`],
    /// so that a probe gets its answer in time when the database is away.
    pub async fn ping(&self) -> bool {
        let ping = sqlx::query("SELECT 1").execute(&self.pool);
        matches!(tokio::time::timeout(PING_TIMEOUT, ping).await, Ok(Ok(_)))
    }

    pub async fn close(&self) {
        self.pool.close().await;
        if let Some(pool) = &self.postgres {
            pool.close().await;
        }
    }
}

/// Which backend a `DATABASE_URL` names.
pub fn backend_of(url: &str) -> Result<Backend, DbError> {
    if url.starts_with("sqlite:") {
        Ok(Backend::Sqlite)
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Backend::Postgres)
    } else {
        Err(DbError::UnsupportedUrl)
    }
}

fn is_missing_database(err: &sqlx::Error) -> bool {
    // 3D000: invalid_catalog_name.
    matches!(err, sqlx::Error::Database(db) if db.code().as_deref() == Some("3D000"))
}

/// The database a `postgres://…/NAME?…` URL names, and the same URL on
/// the server's `postgres` maintenance database.
fn split_postgres_url(url: &str) -> Option<(String, String)> {
    let (scheme, rest) = url.split_once("://")?;
    let (authority, path) = rest.split_once('/')?;
    let (name, query) = match path.split_once('?') {
        Some((name, query)) => (name, Some(query)),
        None => (path, None),
    };
    // The database's name, percent-decoded as the driver decodes it.
    let name = percent_decode(name)?;
    if name.is_empty() {
        return None;
    }
    let admin = match query {
        Some(query) => format!("{scheme}://{authority}/postgres?{query}"),
        None => format!("{scheme}://{authority}/postgres"),
    };
    Some((name, admin))
}

/// `%XX` escapes decoded; `None` when one is malformed or the result is not UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

async fn create_postgres_database(url: &str) -> Result<(), DbError> {
    let missing = |reason: String| DbError::MissingDatabase {
        name: split_postgres_url(url).map(|(n, _)| n).unwrap_or_default(),
        reason,
    };
    let (name, admin_url) = split_postgres_url(url)
        .ok_or_else(|| missing("no database name in DATABASE_URL".into()))?;
    let mut conn = AnyConnection::connect(&admin_url)
        .await
        .map_err(|e| missing(format!("cannot reach the `postgres` database: {e}")))?;
    // A name cannot be a bound parameter: it is quoted as an identifier
    // (a double quote doubled), so no text of the URL runs as SQL.
    let statement = format!("CREATE DATABASE \"{}\"", name.replace('"', "\"\""));
    match conn.execute(statement.as_str()).await {
        Ok(_) => {
            tracing::info!(database = %name, "created the PostgreSQL database");
            Ok(())
        }
        // 42P04: duplicate_database, another replica created it first.
        Err(sqlx::Error::Database(db)) if db.code().as_deref() == Some("42P04") => Ok(()),
        Err(e) => Err(missing(e.to_string())),
    }
}

/// The file a `sqlite://PATH` URL points at, if any (not for `:memory:`).
pub fn sqlite_path(url: &str) -> Option<std::path::PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    (!path.is_empty() && !path.contains(":memory:")).then(|| std::path::PathBuf::from(path))
}

/// Whether an error means the database is unreachable or not serving
/// (connection lost or refused, pool timed out, server shutting down or
/// out of connections, a lock not granted within its `lock_timeout`):
/// worth a 503 and a retry, not a 500.
pub fn is_unavailable(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|c| {
            c.starts_with("08")
                || c.starts_with("57P")
                || c == "53300"
                || c == "53400"
                || c == "55P03"
        }),
        _ => false,
    }
}

/// Whether an error is a unique-constraint violation (mapped to 409 by the API).
pub fn is_unique_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.is_unique_violation())
}

/// One passive checkpoint through `conn` (connecting first if it is
/// `None`); answers the WAL's size in frames.
async fn checkpoint(conn: &mut Option<AnyConnection>, url: &str) -> Result<i64, sqlx::Error> {
    let c = match conn.take() {
        Some(c) => c,
        None => AnyConnection::connect(url).await?,
    };
    let c = conn.insert(c);
    // (busy, frames in the WAL, frames copied)
    let (_, frames, _) = sqlx::query_as::<_, (i64, i64, i64)>("PRAGMA wal_checkpoint(PASSIVE)")
        .fetch_one(c)
        .await?;
    Ok(frames)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_postgres_url_names_its_database_and_the_maintenance_one() {
        assert_eq!(
            split_postgres_url("postgres://u:p@h:5432/tollgate?sslmode=disable"),
            Some((
                "tollgate".to_owned(),
                "postgres://u:p@h:5432/postgres?sslmode=disable".to_owned()
            ))
        );
        assert_eq!(split_postgres_url("postgres://h:5432"), None);
        // As the driver reads it: percent-decoded.
        assert_eq!(
            split_postgres_url("postgres://h/my%20db%2Dx").map(|(name, _)| name),
            Some("my db-x".to_owned())
        );
        assert_eq!(split_postgres_url("postgres://h/bad%4"), None);
    }

    /// Rows of `t` in the database file itself, ignoring the WAL; `None`
    /// while the table exists only in the WAL.
    async fn rows_in_database_file(path: &std::path::Path) -> Option<i64> {
        let url = format!("sqlite://{}?immutable=true", path.display());
        let mut conn = AnyConnection::connect(&url).await.unwrap();
        let count = sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM t")
            .fetch_one(&mut conn)
            .await
            .ok();
        conn.close().await.unwrap();
        count
    }

    #[tokio::test]
    async fn the_background_checkpointer_copies_commits_into_the_database_file() {
        let dir = std::env::temp_dir().join(format!("tollgate-db-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("checkpoint.db");
        let db = Db::connect(&format!("sqlite://{}", path.display()), 1)
            .await
            .unwrap();
        sqlx::query("CREATE TABLE t (v BIGINT)")
            .execute(db.pool())
            .await
            .unwrap();
        for v in 0..20_i64 {
            sqlx::query("INSERT INTO t (v) VALUES ($1)")
                .bind(v)
                .execute(db.pool())
                .await
                .unwrap();
        }
        // Committed, but only to the WAL: commits no longer checkpoint.
        assert_eq!(rows_in_database_file(&path).await, None);

        let checkpointer = tokio::spawn(db.clone().checkpoint_wal(Duration::from_millis(10)));
        let mut rows = None;
        for _ in 0..200 {
            tokio::time::sleep(Duration::from_millis(10)).await;
            rows = rows_in_database_file(&path).await;
            if rows == Some(20) {
                break;
            }
        }

        assert_eq!(rows, Some(20));
        checkpointer.abort();
        db.close().await;
        let _ = std::fs::remove_dir_all(&dir);
    }
}

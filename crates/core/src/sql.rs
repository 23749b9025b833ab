//! SQL text built at run time: a query with a dynamic `WHERE`
//! ([`SqlBuilder`], numbered placeholders `$1`, `$2`, … that both backends
//! take, where sqlx's `QueryBuilder` writes `?` for the `Any` driver, which
//! PostgreSQL refuses), multi-row `INSERT`s ([`InsertSql`], placeholders
//! per backend: see [`placeholders`]), and the statements of one write
//! transaction sent as one command ([`Script`]).

use crate::db::{Backend, Db};
use sqlx::Any;
use sqlx::any::AnyArguments;
use sqlx::query::Query;
use std::borrow::Cow;
use std::sync::{Arc, Mutex};

/// A value bound to a placeholder; text is borrowed where it can be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SqlValue<'a> {
    Text(Cow<'a, str>),
    Int(i64),
    Bool(bool),
    /// NULL, for a text column.
    Null,
    /// NULL, for an integer column.
    NullInt,
}

impl SqlValue<'_> {
    fn into_owned(self) -> SqlValue<'static> {
        match self {
            SqlValue::Text(v) => SqlValue::Text(Cow::Owned(v.into_owned())),
            SqlValue::Int(v) => SqlValue::Int(v),
            SqlValue::Bool(v) => SqlValue::Bool(v),
            SqlValue::Null => SqlValue::Null,
            SqlValue::NullInt => SqlValue::NullInt,
        }
    }
}

impl<'a> From<Option<&'a str>> for SqlValue<'a> {
    fn from(v: Option<&'a str>) -> Self {
        v.map_or(SqlValue::Null, SqlValue::from)
    }
}

impl From<String> for SqlValue<'static> {
    fn from(v: String) -> Self {
        SqlValue::Text(Cow::Owned(v))
    }
}

impl<'a> From<&'a str> for SqlValue<'a> {
    fn from(v: &'a str) -> Self {
        SqlValue::Text(Cow::Borrowed(v))
    }
}

impl From<i64> for SqlValue<'_> {
    fn from(v: i64) -> Self {
        SqlValue::Int(v)
    }
}

impl From<bool> for SqlValue<'_> {
    fn from(v: bool) -> Self {
        SqlValue::Bool(v)
    }
}

/// SQL text with numbered placeholders and their values.
#[derive(Debug, Clone, Default)]
pub struct SqlBuilder {
    sql: String,
    values: Vec<SqlValue<'static>>,
}

impl SqlBuilder {
    pub fn new(sql: &str) -> SqlBuilder {
        SqlBuilder {
            sql: sql.to_owned(),
            values: Vec::new(),
        }
    }

    /// Appends fixed SQL text (never a value: use [`SqlBuilder::push_bind`]).
    pub fn push(&mut self, sql: &str) -> &mut Self {
        self.sql.push_str(sql);
        self
    }

    /// Appends the next placeholder (`$n`) and binds `value` to it.
    pub fn push_bind<'v>(&mut self, value: impl Into<SqlValue<'v>>) -> &mut Self {
        self.values.push(value.into().into_owned());
        self.sql.push('$');
        self.sql.push_str(&self.values.len().to_string());
        self
    }

    pub fn sql(&self) -> &str {
        &self.sql
    }

    /// The query, every value bound.
    pub fn build(&self) -> Query<'_, Any, AnyArguments<'_>> {
        bind(sqlx::query(&self.sql), &self.values)
    }
}

/// Rows per multi-row `INSERT` (of 16 columns; see
/// [`InsertSql::rows_per_insert`]).
pub const ROWS_PER_INSERT: usize = 64;

/// `(…), (…)` for `rows` rows of `columns` placeholders; every value is
/// bound. PostgreSQL takes numbered ones (`$1`); SQLite gets anonymous ones
/// (`?`), bound in order: it looks a numbered parameter's name up by a
/// linear scan (`sqlite3_bind_parameter_name`, which sqlx calls for every
/// parameter), so binding a statement of `$n` costs the square of its
/// parameters (a quarter of the gateway's CPU under load at 4 096 of them).
pub fn placeholders(backend: Backend, rows: usize, columns: usize) -> String {
    let mut sql = String::with_capacity(rows * columns * 5);
    for r in 0..rows {
        sql.push_str(if r == 0 { "(" } else { ", (" });
        for c in 0..columns {
            if c > 0 {
                sql.push_str(", ");
            }
            match backend {
                Backend::Postgres => {
                    sql.push('$');
                    sql.push_str(&(r * columns + c + 1).to_string());
                }
                Backend::Sqlite => sql.push('?'),
            }
        }
        sql.push(')');
    }
    sql
}

/// A multi-row `INSERT`'s SQL, built once per backend and row count: every
/// batch of a size sends the same text (and so reuses its prepared
/// statement).
pub struct InsertSql {
    head: &'static str,
    tail: &'static str,
    columns: usize,
    by_rows: Mutex<Vec<[Option<Arc<str>>; 2]>>,
}

impl InsertSql {
    /// `head` is `INSERT INTO t (a, b, …) VALUES `: the placeholders per row
    /// are counted from its column list, so the two cannot disagree.
    pub const fn new(head: &'static str) -> InsertSql {
        InsertSql::with_tail(head, "")
    }

    /// With `tail` after the rows (`ON CONFLICT … DO NOTHING`).
    pub const fn with_tail(head: &'static str, tail: &'static str) -> InsertSql {
        InsertSql {
            head,
            tail,
            columns: column_count(head),
            by_rows: Mutex::new(Vec::new()),
        }
    }

    /// Placeholders per row: the columns named in the head.
    pub const fn columns(&self) -> usize {
        self.columns
    }

    /// Rows per statement at most: [`ROWS_PER_INSERT`] rows of 16 columns'
    /// worth of parameters (1 024: far below both backends' limits), as a
    /// power of two, at least one row.
    pub const fn rows_per_insert(&self) -> usize {
        let rows = ROWS_PER_INSERT * 16 / self.columns;
        if rows == 0 { 1 } else { 1 << rows.ilog2() }
    }

    /// `rows` cut into statements' worth: see [`chunks`].
    pub fn chunks<'a, T>(&self, rows: &'a [T]) -> impl Iterator<Item = &'a [T]> {
        chunks(rows, self.rows_per_insert())
    }

    /// The statement for `rows` rows with anonymous placeholders (`?`), for
    /// a [`Script`].
    pub fn anonymous(&self, rows: usize) -> Arc<str> {
        self.for_rows(Backend::Sqlite, rows)
    }

    /// The statement for `rows` rows on `backend` (built once per count).
    pub fn for_rows(&self, backend: Backend, rows: usize) -> Arc<str> {
        let build = || -> Arc<str> {
            format!(
                "{}{}{}",
                self.head,
                placeholders(backend, rows, self.columns),
                self.tail
            )
            .into()
        };
        let Ok(mut by_rows) = self.by_rows.lock() else {
            return build();
        };
        if by_rows.len() <= rows {
            by_rows.resize(rows + 1, [None, None]);
        }
        let slot = match backend {
            Backend::Sqlite => 0,
            Backend::Postgres => 1,
        };
        by_rows[rows][slot].get_or_insert_with(build).clone()
    }
}

/// Values a [`Script`] may bind and still go as one command on SQLite: a
/// batch of up to about 20 settlements. Each distinct text takes a slot in
/// the connection's statement cache (100), so the larger batches of a busy
/// gateway, each of a different size, go statement by statement, whose few
/// distinct texts stay prepared.
const ONE_COMMAND_VALUES: usize = 512;

/// The statements of one write transaction, with anonymous placeholders
/// (`?`) bound in order, none needing another's result: each may read what
/// the ones before it wrote.
///
/// [`Script::commit`] sends a small one to SQLite as one command: the whole
/// body is one hand-off to the connection's worker thread, where each
/// statement alone costs a wake-up of that thread and one of the waiting
/// task (a few context switches, across the cores, each time). PostgreSQL
/// gets the statements one by one, as before: merged into one statement
/// (`WITH` parts), they would all read the rows as they were before it,
/// not after the row lock that an earlier one waited for.
#[derive(Debug, Default)]
pub struct Script<'a> {
    statements: Vec<(Arc<str>, usize)>,
    values: Vec<SqlValue<'a>>,
}

impl<'a> Script<'a> {
    pub fn new() -> Script<'a> {
        Script::default()
    }

    /// Adds a statement and the values of its `?`, in order.
    pub fn push(
        &mut self,
        sql: impl Into<Arc<str>>,
        values: impl IntoIterator<Item = SqlValue<'a>>,
    ) {
        let sql = sql.into();
        let before = self.values.len();
        self.values.extend(values);
        debug_assert_eq!(
            sql.matches('?').count(),
            self.values.len() - before,
            "a value for each placeholder: {sql}"
        );
        self.statements.push((sql, self.values.len() - before));
    }

    /// Runs the script as one transaction. `at_commit` is set once the
    /// commit has been sent: a failure from then on may have committed.
    pub async fn commit(&self, db: &Db, at_commit: &mut bool) -> Result<(), sqlx::Error> {
        if self.statements.is_empty() {
            return Ok(());
        }
        let mut tx = db.begin_write().await?;
        if db.backend() == Backend::Sqlite && self.values.len() <= ONE_COMMAND_VALUES {
            let sql = self.joined();
            bind(sqlx::query(&sql), &self.values)
                .execute(&mut *tx)
                .await?;
        } else {
            let mut values = self.values.as_slice();
            for (sql, n) in &self.statements {
                let (own, rest) = values.split_at(*n);
                values = rest;
                let sql: Arc<str> = match db.backend() {
                    Backend::Sqlite => sql.clone(),
                    Backend::Postgres => numbered(sql).into(),
                };
                bind(sqlx::query(&sql), own).execute(&mut *tx).await?;
            }
        }
        *at_commit = true;
        tx.commit().await
    }

    /// The statements one after the other, as one text.
    fn joined(&self) -> String {
        let mut sql = String::new();
        for (statement, _) in &self.statements {
            sql.push_str(statement);
            sql.push_str(";\n");
        }
        sql
    }
}

/// `sql` with its `?` numbered `$1`, `$2`, … (PostgreSQL's placeholders).
fn numbered(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut n = 0;
    for (i, text) in sql.split('?').enumerate() {
        if i > 0 {
            n += 1;
            out.push('$');
            out.push_str(&n.to_string());
        }
        out.push_str(text);
    }
    out
}

/// `query` with `values` bound in order (text borrowed: `Any` copies a
/// bound `&String`, not a `&str`).
pub fn bind<'q>(
    mut query: Query<'q, Any, AnyArguments<'q>>,
    values: &'q [SqlValue<'_>],
) -> Query<'q, Any, AnyArguments<'q>> {
    for value in values {
        query = match value {
            SqlValue::Text(v) => query.bind(&**v),
            SqlValue::Int(v) => query.bind(*v),
            SqlValue::Bool(v) => query.bind(*v),
            SqlValue::Null => query.bind(None::<&str>),
            SqlValue::NullInt => query.bind(None::<i64>),
        };
    }
    query
}

/// `values` as one line of PostgreSQL's `COPY … FROM STDIN` text format,
/// appended to `text`: fields separated by tabs, `\N` for NULL; in text a
/// backslash is written `\\`, and a tab, newline or carriage return `\t`,
/// `\n`, `\r`.
pub fn copy_line(text: &mut Vec<u8>, values: &[SqlValue<'_>]) {
    for (i, value) in values.iter().enumerate() {
        if i > 0 {
            text.push(b'\t');
        }
        match value {
            SqlValue::Text(v) => {
                for &byte in v.as_bytes() {
                    match byte {
                        b'\\' => text.extend_from_slice(b"\\\\"),
                        b'\t' => text.extend_from_slice(b"\\t"),
                        b'\n' => text.extend_from_slice(b"\\n"),
                        b'\r' => text.extend_from_slice(b"\\r"),
                        _ => text.push(byte),
                    }
                }
            }
            SqlValue::Int(n) => text.extend_from_slice(itoa::Buffer::new().format(*n).as_bytes()),
            SqlValue::Bool(b) => text.push(if *b { b't' } else { b'f' }),
            SqlValue::Null | SqlValue::NullInt => text.extend_from_slice(b"\\N"),
        }
    }
    text.push(b'\n');
}

/// `rows` cut into statements of at most `max` rows (a power of two):
/// full ones, then the rest by powers of two (13 → 8, 4, 1), so that few
/// distinct statements exist and each stays prepared in the connection's
/// statement cache (which a statement per row count, up to 64, overflowed:
/// every batch was then parsed anew).
pub fn chunks<T>(rows: &[T], max: usize) -> impl Iterator<Item = &[T]> {
    debug_assert!(max.is_power_of_two());
    let mut rest = rows;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let n = 1 << rest.len().min(max).ilog2();
        let (chunk, tail) = rest.split_at(n);
        rest = tail;
        Some(chunk)
    })
}

/// The columns named between the first `(` and the next `)` of `sql`.
const fn column_count(sql: &str) -> usize {
    let bytes = sql.as_bytes();
    let mut i = 0;
    let mut inside = false;
    let mut columns = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'(' if !inside => {
                inside = true;
                columns = 1;
            }
            b',' if inside => columns += 1,
            b')' if inside => return columns,
            _ => {}
        }
        i += 1;
    }
    columns
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_copy_line_escapes_text_and_writes_nulls_numbers_and_booleans() {
        use super::SqlValue;
        let mut text = b"before\n".to_vec();
        super::copy_line(
            &mut text,
            &[
                "a\tb\nc\rd\\e \\N é".into(),
                SqlValue::Null,
                SqlValue::NullInt,
                (-42_i64).into(),
                7_i64.into(),
                true.into(),
                false.into(),
                "".into(),
            ],
        );
        assert_eq!(
            String::from_utf8(text).unwrap(),
            "before\na\\tb\\nc\\rd\\\\e \\\\N é\t\\N\t\\N\t-42\t7\tt\tf\t\n"
        );
    }

    #[test]
    fn placeholders_number_every_value() {
        use super::Backend::{Postgres, Sqlite};
        assert_eq!(
            super::placeholders(Postgres, 2, 3),
            "($1, $2, $3), ($4, $5, $6)"
        );
        assert_eq!(super::placeholders(Sqlite, 2, 2), "(?, ?), (?, ?)");
    }

    #[test]
    fn an_insert_has_a_placeholder_per_named_column() {
        static INSERT: super::InsertSql =
            super::InsertSql::with_tail("INSERT INTO t (a, b) VALUES ", " ON CONFLICT DO NOTHING");
        assert_eq!(INSERT.columns(), 2);
        assert_eq!(
            &*INSERT.for_rows(super::Backend::Postgres, 2),
            "INSERT INTO t (a, b) VALUES ($1, $2), ($3, $4) ON CONFLICT DO NOTHING"
        );
        assert_eq!(super::column_count("INSERT INTO t (a) VALUES "), 1);
    }

    #[test]
    fn rows_are_cut_into_power_of_two_statements() {
        static WIDE: super::InsertSql = super::InsertSql::new("INSERT INTO t (a, b, c) VALUES ");
        assert_eq!(WIDE.rows_per_insert(), 256);
        let rows: Vec<u32> = (0..600).collect();
        let sizes: Vec<usize> = WIDE.chunks(&rows).map(<[u32]>::len).collect();
        assert_eq!(sizes, [256, 256, 64, 16, 8]);
        assert_eq!(WIDE.chunks(&rows[..0]).count(), 0);
    }

    #[test]
    fn placeholders_are_numbered_in_order() {
        let mut q = super::SqlBuilder::new("SELECT 1 FROM t WHERE a = ");
        q.push_bind("x").push(" AND b = ").push_bind(2i64);
        assert_eq!(q.sql(), "SELECT 1 FROM t WHERE a = $1 AND b = $2");
    }

    #[test]
    fn a_script_is_one_text_for_sqlite_and_numbered_statements_for_postgres() {
        let mut script = super::Script::new();
        script.push(
            "UPDATE a SET x = x - ? WHERE id = ?",
            [5i64.into(), "k".into()],
        );
        script.push(
            "INSERT INTO b (id, y) VALUES (?, ?)",
            ["k".into(), None.into()],
        );
        assert_eq!(
            script.joined(),
            "UPDATE a SET x = x - ? WHERE id = ?;\nINSERT INTO b (id, y) VALUES (?, ?);\n"
        );
        assert_eq!(
            super::numbered("INSERT INTO b (id, y) VALUES (?, ?)"),
            "INSERT INTO b (id, y) VALUES ($1, $2)"
        );
        assert_eq!(
            script.values,
            [
                super::SqlValue::Int(5),
                "k".into(),
                "k".into(),
                super::SqlValue::Null
            ]
        );
    }

    #[test]
    #[should_panic(expected = "a value for each placeholder")]
    fn a_statement_takes_a_value_for_each_placeholder() {
        super::Script::new().push("UPDATE a SET x = ? WHERE id = ?", [1i64.into()]);
    }
}

//! SQL text built at run time: a query with a dynamic `WHERE`
//! ([`SqlBuilder`], numbered placeholders `$1`, `$2`, … that both backends
//! take, where sqlx's `QueryBuilder` writes `?` for the `Any` driver, which
//! PostgreSQL refuses), and multi-row `INSERT`s ([`InsertSql`], placeholders
//! per backend: see [`placeholders`]).

use crate::db::Backend;
use sqlx::Any;
use sqlx::any::AnyArguments;
use sqlx::query::Query;
use std::sync::{Arc, Mutex};

/// A value bound to a placeholder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SqlValue {
    Text(String),
    Int(i64),
    Bool(bool),
}

impl From<String> for SqlValue {
    fn from(v: String) -> Self {
        SqlValue::Text(v)
    }
}

impl From<&str> for SqlValue {
    fn from(v: &str) -> Self {
        SqlValue::Text(v.to_owned())
    }
}

impl From<i64> for SqlValue {
    fn from(v: i64) -> Self {
        SqlValue::Int(v)
    }
}

impl From<bool> for SqlValue {
    fn from(v: bool) -> Self {
        SqlValue::Bool(v)
    }
}

/// SQL text with numbered placeholders and their values.
#[derive(Debug, Clone, Default)]
pub struct SqlBuilder {
    sql: String,
    values: Vec<SqlValue>,
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
    pub fn push_bind(&mut self, value: impl Into<SqlValue>) -> &mut Self {
        self.values.push(value.into());
        self.sql.push('$');
        self.sql.push_str(&self.values.len().to_string());
        self
    }

    pub fn sql(&self) -> &str {
        &self.sql
    }

    /// The query, every value bound.
    pub fn build(&self) -> Query<'_, Any, AnyArguments<'_>> {
        let mut query = sqlx::query(&self.sql);
        for value in &self.values {
            query = match value {
                SqlValue::Text(v) => query.bind(v.as_str()),
                SqlValue::Int(v) => query.bind(*v),
                SqlValue::Bool(v) => query.bind(*v),
            };
        }
        query
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

    /// `rows` cut into statements' worth: full ones, then the rest by
    /// powers of two (13 → 8, 4, 1), so that few distinct statements exist
    /// and each stays prepared in the connection's statement cache (which a
    /// statement per row count, up to 64, overflowed: every batch was then
    /// parsed anew).
    pub fn chunks<'a, T>(&self, rows: &'a [T]) -> impl Iterator<Item = &'a [T]> {
        let max = self.rows_per_insert();
        let mut rest = rows;
        std::iter::from_fn(move || {
            if rest.is_empty() {
                return None;
            }
            // `max` is a power of two.
            let n = 1 << rest.len().min(max).ilog2();
            let (chunk, tail) = rest.split_at(n);
            rest = tail;
            Some(chunk)
        })
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
}

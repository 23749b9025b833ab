//! A query with a dynamic `WHERE`, built from fixed SQL text and bound
//! values. sqlx's `QueryBuilder` writes `?` placeholders for the `Any`
//! driver, which PostgreSQL refuses; this writes `$1`, `$2`, … for both.

use sqlx::Any;
use sqlx::any::AnyArguments;
use sqlx::query::Query;

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

#[cfg(test)]
mod tests {
    #[test]
    fn placeholders_are_numbered_in_order() {
        let mut q = super::SqlBuilder::new("SELECT 1 FROM t WHERE a = ");
        q.push_bind("x").push(" AND b = ").push_bind(2i64);
        assert_eq!(q.sql(), "SELECT 1 FROM t WHERE a = $1 AND b = $2");
    }
}

//! Test support shared by the crates' own tests and the black-box suite: a
//! fresh database per test, so that tests run in parallel on either
//! backend, as `TOLLGATE_TEST_DATABASE` says (`sqlite`, the default, or
//! `postgres`, on the server `TOLLGATE_TEST_POSTGRES_URL` names).
//!
//! Built only with the `testing` feature (dev-dependencies); a test that
//! cannot set up its database panics, as a test should.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::db::Backend;
use sqlx::Executor;
use sqlx::any::AnyPoolOptions;
use std::path::Path;

/// The backend the tests run on, from `TOLLGATE_TEST_DATABASE`.
pub fn test_backend() -> Backend {
    match std::env::var("TOLLGATE_TEST_DATABASE").as_deref() {
        Ok("postgres") | Ok("postgresql") => Backend::Postgres,
        _ => Backend::Sqlite,
    }
}

fn postgres_admin_url() -> String {
    std::env::var("TOLLGATE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A database that exists for one test; a PostgreSQL one is dropped after.
pub struct TestDatabase {
    pub url: String,
    postgres_name: Option<String>,
}

impl TestDatabase {
    /// A new empty database: a file in `dir`, or a new PostgreSQL database.
    pub async fn create(dir: &Path) -> TestDatabase {
        match test_backend() {
            Backend::Sqlite => TestDatabase {
                url: format!("sqlite://{}", dir.join("tollgate.db").display()),
                postgres_name: None,
            },
            Backend::Postgres => {
                sqlx::any::install_default_drivers();
                let admin = postgres_admin_url();
                let name = format!("tollgate_test_{}", uuid::Uuid::new_v4().simple());
                let pool = AnyPoolOptions::new()
                    .max_connections(1)
                    .connect(&admin)
                    .await
                    .expect("the PostgreSQL server of TOLLGATE_TEST_POSTGRES_URL answers");
                pool.execute(format!("CREATE DATABASE {name}").as_str())
                    .await
                    .unwrap();
                pool.close().await;
                let base = admin
                    .rsplit_once('/')
                    .map(|(b, _)| b.to_owned())
                    .unwrap_or(admin);
                TestDatabase {
                    url: format!("{base}/{name}"),
                    postgres_name: Some(name),
                }
            }
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Some(name) = self.postgres_name.take() else {
            return;
        };
        // Drop is synchronous: drop the database from a thread of its own.
        let admin = postgres_admin_url();
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                if let Ok(pool) = AnyPoolOptions::new()
                    .max_connections(1)
                    .connect(&admin)
                    .await
                {
                    let _ = pool
                        .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                        .await;
                    pool.close().await;
                }
            });
        })
        .join();
    }
}

//! Black-box tests of the gateway through HTTP, on the backend chosen by
//! `TOLLGATE_TEST_DATABASE`. One test binary, one module per capability.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod chat;
mod concurrency;

//! Black-box tests of the gateway through HTTP, on the backend chosen by
//! `TOLLGATE_TEST_DATABASE`. One test binary, one module per capability.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod adapters;
mod api_keys;
mod billing_processes;
mod binary;
mod budgets;
mod byok;
mod catalog_admin;
mod chat;
mod concurrency;
mod credits;
mod deployments;
mod embeddings;
mod log_hygiene;
mod management_input;
mod openapi;
mod operations;
mod organization_admin;
mod organization_settings;
mod organizations;
mod provider_credentials;
mod rate_limits;
mod rate_limits_processes;
mod roles;
mod routing;
mod surfaces;
mod usage;
mod usage_analytics;
mod users;
mod webhooks_in;
mod webhooks_out;

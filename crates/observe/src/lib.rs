//! Observability that outlives a process: OpenTelemetry traces exported
//! over OTLP/HTTP ([`trace`], [`otlp`]) and the per-organization request
//! log ([`request_log`]). Metrics live with the HTTP layer that serves them.

pub mod otlp;
pub mod request_log;
pub mod trace;

pub use request_log::{LoggedCall, RequestLog};
pub use trace::{TraceContext, Tracer};

//! The observability settings: the standard OpenTelemetry variables for
//! trace export, and Tollgate's own for logs, metrics and the request log.

use clap::{Args, ValueEnum};
use std::time::Duration;
use tollgate_observe::trace::{Sampler, TraceConfig, TraceConfigError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object a line, plus one line per data-plane call.
    Json,
}

#[derive(Debug, Clone, Args)]
pub struct ObservabilitySettings {
    /// OTLP/HTTP collector base URL (`http://collector:4318`); spans go to
    /// `…/v1/traces`. Unset (and no traces endpoint): no traces are exported.
    #[arg(long, global = true, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,

    /// Full OTLP/HTTP URL for spans; wins over OTEL_EXPORTER_OTLP_ENDPOINT.
    #[arg(long, global = true, env = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")]
    pub otlp_traces_endpoint: Option<String>,

    /// Headers sent with every export, `name=value,name=value` (values may be percent-encoded).
    #[arg(
        long,
        global = true,
        env = "OTEL_EXPORTER_OTLP_HEADERS",
        hide_env_values = true
    )]
    pub otlp_headers: Option<String>,

    /// Only `http/protobuf` is spoken.
    #[arg(
        long,
        global = true,
        env = "OTEL_EXPORTER_OTLP_PROTOCOL",
        default_value = "http/protobuf"
    )]
    pub otlp_protocol: String,

    /// Milliseconds an export may take.
    #[arg(
        long,
        global = true,
        env = "OTEL_EXPORTER_OTLP_TIMEOUT",
        default_value_t = 10_000
    )]
    pub otlp_timeout_ms: u64,

    /// `service.name` of the exported spans.
    #[arg(
        long,
        global = true,
        env = "OTEL_SERVICE_NAME",
        default_value = "tollgate"
    )]
    pub service_name: String,

    /// always_on, always_off, traceidratio, parentbased_always_on (default),
    /// parentbased_always_off or parentbased_traceidratio.
    #[arg(long, global = true, env = "OTEL_TRACES_SAMPLER")]
    pub traces_sampler: Option<String>,

    /// The ratio (0 to 1) of the `traceidratio` samplers.
    #[arg(long, global = true, env = "OTEL_TRACES_SAMPLER_ARG")]
    pub traces_sampler_arg: Option<String>,

    /// Longest wait, in milliseconds, before queued spans are exported.
    #[arg(
        long,
        global = true,
        env = "OTEL_BSP_SCHEDULE_DELAY",
        default_value_t = 5000
    )]
    pub bsp_schedule_delay_ms: u64,

    /// Spans queued for export at most; more are dropped.
    #[arg(
        long,
        global = true,
        env = "OTEL_BSP_MAX_QUEUE_SIZE",
        default_value_t = 2048
    )]
    pub bsp_max_queue_size: usize,

    /// Spans per export at most.
    #[arg(
        long,
        global = true,
        env = "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
        default_value_t = 512
    )]
    pub bsp_max_export_batch_size: usize,

    /// Put prompts and completions into spans (`gen_ai.input.messages`,
    /// `gen_ai.output.messages`). Off: spans carry no text of a call.
    #[arg(
        long,
        global = true,
        env = "TOLLGATE_TRACE_CONTENT",
        action = clap::ArgAction::Set,
        default_value_t = false,
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub trace_content: bool,

    /// `text` or `json`; `json` also writes one line per data-plane call
    /// (target `tollgate::call`).
    #[arg(
        long,
        global = true,
        env = "TOLLGATE_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    pub log_format: LogFormat,

    /// Add per-organization token and cost counters to /metrics (one
    /// series per organization, provider and model: mind the cardinality).
    #[arg(
        long,
        global = true,
        env = "TOLLGATE_METRICS_PER_ORGANIZATION",
        action = clap::ArgAction::Set,
        default_value_t = false,
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub metrics_per_organization: bool,

    /// Keep the request log (`GET …/organizations/{id}/requests`).
    #[arg(
        long,
        global = true,
        env = "TOLLGATE_REQUEST_LOG",
        action = clap::ArgAction::Set,
        default_value_t = true,
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub request_log: bool,

    /// Seconds request and response bodies (kept only for organizations
    /// with `log_bodies`) stay in the request log.
    #[arg(
        long,
        global = true,
        env = "TOLLGATE_REQUEST_LOG_BODY_RETENTION_SECS",
        default_value_t = 7 * 86_400
    )]
    pub request_log_body_retention_secs: u64,

    /// Seconds a call stays in the request log.
    #[arg(
        long,
        global = true,
        env = "TOLLGATE_REQUEST_LOG_RETENTION_SECS",
        default_value_t = 30 * 86_400
    )]
    pub request_log_retention_secs: u64,
}

impl Default for ObservabilitySettings {
    fn default() -> Self {
        ObservabilitySettings {
            otlp_endpoint: None,
            otlp_traces_endpoint: None,
            otlp_headers: None,
            otlp_protocol: "http/protobuf".to_owned(),
            otlp_timeout_ms: 10_000,
            service_name: "tollgate".to_owned(),
            traces_sampler: None,
            traces_sampler_arg: None,
            bsp_schedule_delay_ms: 5000,
            bsp_max_queue_size: 2048,
            bsp_max_export_batch_size: 512,
            trace_content: false,
            log_format: LogFormat::Text,
            metrics_per_organization: false,
            request_log: true,
            request_log_body_retention_secs: 7 * 86_400,
            request_log_retention_secs: 30 * 86_400,
        }
    }
}

impl ObservabilitySettings {
    /// The trace export, or `None` when no endpoint is set.
    pub fn trace_config(&self) -> Result<Option<TraceConfig>, TraceConfigError> {
        let Some(endpoint) = TraceConfig::endpoint(
            self.otlp_traces_endpoint.as_deref(),
            self.otlp_endpoint.as_deref(),
        ) else {
            return Ok(None);
        };
        if self.otlp_protocol.trim() != "http/protobuf" {
            return Err(TraceConfigError::Protocol);
        }
        Ok(Some(TraceConfig {
            endpoint,
            headers: TraceConfig::parse_headers(self.otlp_headers.as_deref())?,
            sampler: Sampler::from_settings(
                self.traces_sampler.as_deref(),
                self.traces_sampler_arg.as_deref(),
            )?,
            service_name: self.service_name.clone(),
            schedule_delay: Duration::from_millis(self.bsp_schedule_delay_ms.max(1)),
            max_queue: self.bsp_max_queue_size.max(1),
            max_batch: self.bsp_max_export_batch_size.max(1),
            timeout: Duration::from_millis(self.otlp_timeout_ms.max(1)),
            capture_content: self.trace_content,
        }))
    }

    pub fn retention(&self) -> tollgate_observe::request_log::Retention {
        tollgate_observe::request_log::Retention {
            bodies: Duration::from_secs(self.request_log_body_retention_secs),
            rows: Duration::from_secs(self.request_log_retention_secs),
        }
    }
}

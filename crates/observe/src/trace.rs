//! Traces: W3C trace context in and out, the OpenTelemetry sampler
//! settings, and a batching exporter that posts spans over OTLP/HTTP
//! (protobuf) from a background task, so that no answer ever waits for it.

use crate::otlp;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

pub type TraceId = [u8; 16];
pub type SpanId = [u8; 8];

/// A span attribute's value.
#[derive(Debug, Clone, PartialEq)]
pub enum AttrValue {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
}

impl From<&str> for AttrValue {
    fn from(v: &str) -> Self {
        AttrValue::Str(v.to_owned())
    }
}

impl From<String> for AttrValue {
    fn from(v: String) -> Self {
        AttrValue::Str(v)
    }
}

impl From<i64> for AttrValue {
    fn from(v: i64) -> Self {
        AttrValue::Int(v)
    }
}

impl From<bool> for AttrValue {
    fn from(v: bool) -> Self {
        AttrValue::Bool(v)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpanKind {
    /// The inbound call.
    Server,
    /// A call to a provider.
    Client,
}

/// A finished span, ready to export.
#[derive(Debug, Clone)]
pub struct SpanData {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub parent_span_id: Option<SpanId>,
    pub name: String,
    pub kind: SpanKind,
    pub start_unix_nanos: u64,
    pub end_unix_nanos: u64,
    pub attributes: Vec<(&'static str, AttrValue)>,
    /// `Some(description)`: the span's status is ERROR.
    pub error: Option<String>,
}

/// Nanoseconds since the Unix epoch of an instant of the wall clock.
pub fn unix_nanos(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn random_nonzero<const N: usize>() -> [u8; N] {
    loop {
        let id: [u8; N] = rand::random();
        if id.iter().any(|b| *b != 0) {
            return id;
        }
    }
}

/// A new span id.
pub fn new_span_id() -> SpanId {
    random_nonzero()
}

/// The trace context of one inbound call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceContext {
    pub trace_id: TraceId,
    /// The call's own span (or, when nothing is recorded, the client's
    /// span, so that the provider sees the client's context unchanged).
    pub span_id: SpanId,
    /// The client's span, from its `traceparent`.
    pub parent_span_id: Option<SpanId>,
    /// Whether this call's spans are exported.
    pub sampled: bool,
    /// Whether this process records spans at all (an OTLP endpoint is set).
    pub recording: bool,
}

impl TraceContext {
    /// The `traceparent` header for an outgoing request made by span `span_id`.
    pub fn traceparent(&self, span_id: &SpanId) -> String {
        format!(
            "00-{}-{}-{}",
            hex::encode(self.trace_id),
            hex::encode(span_id),
            if self.sampled { "01" } else { "00" }
        )
    }

    /// The span of a provider call about to be made, and the `traceparent`
    /// it carries: a new child span when spans are recorded, else the
    /// client's context unchanged.
    pub fn attempt(&self) -> (SpanId, String) {
        let span = if self.recording && self.sampled {
            new_span_id()
        } else {
            self.span_id
        };
        (span, self.traceparent(&span))
    }

    pub fn trace_id_hex(&self) -> String {
        hex::encode(self.trace_id)
    }
}

/// A client's `traceparent` (W3C Trace Context, version 00 or a later one
/// read as 00): trace id, parent span id and the sampled flag. `None` when
/// malformed, as the spec says: the call then starts a trace of its own.
pub fn parse_traceparent(value: &str) -> Option<(TraceId, SpanId, bool)> {
    let value = value.trim();
    let mut parts = value.split('-');
    let (version, trace, span, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if version.len() != 2
        || version == "ff"
        || trace.len() != 32
        || span.len() != 16
        || flags.len() != 2
    {
        return None;
    }
    if version == "00" && parts.next().is_some() {
        return None;
    }
    let lower_hex = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    if ![version, trace, span, flags].iter().all(|s| lower_hex(s)) {
        return None;
    }
    let mut trace_id = [0u8; 16];
    let mut span_id = [0u8; 8];
    hex::decode_to_slice(trace, &mut trace_id).ok()?;
    hex::decode_to_slice(span, &mut span_id).ok()?;
    if trace_id == [0; 16] || span_id == [0; 8] {
        return None;
    }
    let flags = u8::from_str_radix(flags, 16).ok()?;
    Some((trace_id, span_id, flags & 1 == 1))
}

/// `OTEL_TRACES_SAMPLER` (with `OTEL_TRACES_SAMPLER_ARG` for the ratios).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sampler {
    AlwaysOn,
    AlwaysOff,
    TraceIdRatio(f64),
    /// A client's sampled flag decides; without a `traceparent`, the inner sampler.
    ParentBased(Root),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Root {
    AlwaysOn,
    AlwaysOff,
    TraceIdRatio(f64),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TraceConfigError {
    #[error(
        "OTEL_TRACES_SAMPLER must be one of always_on, always_off, traceidratio, \
         parentbased_always_on, parentbased_always_off, parentbased_traceidratio"
    )]
    UnknownSampler,
    #[error("OTEL_TRACES_SAMPLER_ARG must be a number from 0 to 1")]
    BadRatio,
    #[error("OTEL_EXPORTER_OTLP_PROTOCOL must be http/protobuf (the only one Tollgate speaks)")]
    Protocol,
    #[error("OTEL_EXPORTER_OTLP_HEADERS must be a comma-separated list of name=value")]
    Headers,
    #[error("the OTLP HTTP client could not be built: {0}")]
    Client(String),
}

impl Sampler {
    /// The sampler the standard variables name (OpenTelemetry's default:
    /// `parentbased_always_on`).
    pub fn from_settings(
        name: Option<&str>,
        arg: Option<&str>,
    ) -> Result<Sampler, TraceConfigError> {
        let ratio = || -> Result<f64, TraceConfigError> {
            match arg.map(str::trim).filter(|a| !a.is_empty()) {
                None => Ok(1.0),
                Some(a) => a
                    .parse::<f64>()
                    .ok()
                    .filter(|r| (0.0..=1.0).contains(r))
                    .ok_or(TraceConfigError::BadRatio),
            }
        };
        Ok(
            match name.map(str::trim).unwrap_or("parentbased_always_on") {
                "" | "parentbased_always_on" => Sampler::ParentBased(Root::AlwaysOn),
                "always_on" => Sampler::AlwaysOn,
                "always_off" => Sampler::AlwaysOff,
                "traceidratio" => Sampler::TraceIdRatio(ratio()?),
                "parentbased_always_off" => Sampler::ParentBased(Root::AlwaysOff),
                "parentbased_traceidratio" => Sampler::ParentBased(Root::TraceIdRatio(ratio()?)),
                _ => return Err(TraceConfigError::UnknownSampler),
            },
        )
    }

    fn ratio_samples(ratio: f64, trace_id: &TraceId) -> bool {
        // The spec's TraceIdRatioBased: the trace id's lower 8 bytes
        // against the ratio of the whole range.
        let mut low = [0u8; 8];
        low.copy_from_slice(&trace_id[8..]);
        let bound = (ratio * u64::MAX as f64) as u64;
        ratio >= 1.0 || u64::from_be_bytes(low) < bound
    }

    /// Whether a trace is sampled, given its client's sampled flag if any.
    pub fn samples(&self, trace_id: &TraceId, parent_sampled: Option<bool>) -> bool {
        let root = |r: &Root| match r {
            Root::AlwaysOn => true,
            Root::AlwaysOff => false,
            Root::TraceIdRatio(ratio) => Self::ratio_samples(*ratio, trace_id),
        };
        match self {
            Sampler::AlwaysOn => true,
            Sampler::AlwaysOff => false,
            Sampler::TraceIdRatio(ratio) => Self::ratio_samples(*ratio, trace_id),
            Sampler::ParentBased(inner) => parent_sampled.unwrap_or_else(|| root(inner)),
        }
    }
}

/// Where and how spans are exported.
#[derive(Debug, Clone)]
pub struct TraceConfig {
    /// The full URL spans are posted to (`…/v1/traces`).
    pub endpoint: String,
    pub headers: Vec<(String, String)>,
    pub sampler: Sampler,
    pub service_name: String,
    /// Longest wait before a partial batch is sent (`OTEL_BSP_SCHEDULE_DELAY`).
    pub schedule_delay: Duration,
    /// Spans queued at most; more are dropped (`OTEL_BSP_MAX_QUEUE_SIZE`).
    pub max_queue: usize,
    /// Spans per export at most (`OTEL_BSP_MAX_EXPORT_BATCH_SIZE`).
    pub max_batch: usize,
    /// Longest an export may take (`OTEL_EXPORTER_OTLP_TIMEOUT`).
    pub timeout: Duration,
    /// Whether prompts and completions go into spans (off by default).
    pub capture_content: bool,
}

impl TraceConfig {
    /// The traces URL from the standard variables:
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` as is, or
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` with `/v1/traces` appended. `None`: off.
    pub fn endpoint(traces: Option<&str>, base: Option<&str>) -> Option<String> {
        if let Some(url) = traces.map(str::trim).filter(|s| !s.is_empty()) {
            return Some(url.to_owned());
        }
        base.map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|b| format!("{}/v1/traces", b.trim_end_matches('/')))
    }

    /// `OTEL_EXPORTER_OTLP_HEADERS`: `name=value,name=value`, values
    /// percent-decoded where they are (W3C baggage style).
    pub fn parse_headers(value: Option<&str>) -> Result<Vec<(String, String)>, TraceConfigError> {
        let Some(value) = value else {
            return Ok(Vec::new());
        };
        value
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|pair| {
                let (name, v) = pair.split_once('=').ok_or(TraceConfigError::Headers)?;
                let name = name.trim();
                if name.is_empty() {
                    return Err(TraceConfigError::Headers);
                }
                Ok((name.to_owned(), percent_decode(v.trim())))
            })
            .collect()
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Some(b) = std::str::from_utf8(&bytes[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

enum Message {
    Span(Box<SpanData>),
    Flush(oneshot::Sender<()>),
}

struct Exporting {
    sender: mpsc::Sender<Message>,
    sampler: Sampler,
    capture_content: bool,
    /// Spans lost so far: the queue was full, or their export failed.
    dropped: Arc<AtomicU64>,
}

/// Starts traces and hands finished spans to the exporter. Cheap to
/// clone. Off (the default) unless an OTLP endpoint is configured.
#[derive(Clone, Default)]
pub struct Tracer {
    exporting: Option<Arc<Exporting>>,
}

impl Tracer {
    /// A tracer that records nothing (no endpoint configured).
    pub fn off() -> Tracer {
        Tracer::default()
    }

    /// A tracer exporting to `config.endpoint`, and its exporter task.
    pub fn start(config: TraceConfig) -> Result<(Tracer, JoinHandle<()>), TraceConfigError> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .user_agent(concat!("tollgate/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| TraceConfigError::Client(e.to_string()))?;
        let (sender, receiver) = mpsc::channel(config.max_queue.max(1));
        let dropped = Arc::new(AtomicU64::new(0));
        let tracer = Tracer {
            exporting: Some(Arc::new(Exporting {
                sender,
                sampler: config.sampler,
                capture_content: config.capture_content,
                dropped: dropped.clone(),
            })),
        };
        let task = tokio::spawn(export_loop(config, http, receiver, dropped));
        Ok((tracer, task))
    }

    /// Whether spans are exported at all.
    pub fn enabled(&self) -> bool {
        self.exporting.is_some()
    }

    /// Spans lost since start: dropped because the queue was full, or
    /// not accepted by the collector.
    pub fn spans_dropped(&self) -> u64 {
        self.exporting
            .as_ref()
            .map_or(0, |e| e.dropped.load(Ordering::Relaxed))
    }

    /// Whether prompts and completions may go into spans.
    pub fn capture_content(&self) -> bool {
        self.exporting.as_ref().is_some_and(|e| e.capture_content)
    }

    /// The trace context of an inbound call with this `traceparent` header
    /// (if any). `None` when there is nothing to record or propagate.
    pub fn begin(&self, traceparent: Option<&str>) -> Option<TraceContext> {
        let parent = traceparent.and_then(parse_traceparent);
        match (&self.exporting, parent) {
            (None, None) => None,
            // Not recording: the provider gets the client's context as it came.
            (None, Some((trace_id, span_id, sampled))) => Some(TraceContext {
                trace_id,
                span_id,
                parent_span_id: Some(span_id),
                sampled,
                recording: false,
            }),
            (Some(exporting), parent) => {
                let trace_id = parent.map_or_else(random_nonzero, |p| p.0);
                Some(TraceContext {
                    trace_id,
                    span_id: new_span_id(),
                    parent_span_id: parent.map(|p| p.1),
                    sampled: exporting.sampler.samples(&trace_id, parent.map(|p| p.2)),
                    recording: true,
                })
            }
        }
    }

    /// Whether the spans of this call are exported.
    pub fn records(&self, context: Option<&TraceContext>) -> bool {
        self.enabled() && context.is_some_and(|c| c.sampled)
    }

    /// Queues a finished span; drops it (counted, with a debug line) when
    /// the queue is full rather than make a call wait.
    pub fn export(&self, span: SpanData) {
        if let Some(exporting) = &self.exporting
            && exporting
                .sender
                .try_send(Message::Span(Box::new(span)))
                .is_err()
        {
            exporting.dropped.fetch_add(1, Ordering::Relaxed);
            tracing::debug!("the span queue is full: a span was dropped");
        }
    }

    /// Sends every queued span now (at shutdown), waiting at most `within`.
    pub async fn flush(&self, within: Duration) {
        let Some(exporting) = &self.exporting else {
            return;
        };
        let (done, wait) = oneshot::channel();
        if exporting.sender.send(Message::Flush(done)).await.is_ok() {
            let _ = tokio::time::timeout(within, wait).await;
        }
    }
}

async fn export_loop(
    config: TraceConfig,
    http: reqwest::Client,
    mut receiver: mpsc::Receiver<Message>,
    dropped: Arc<AtomicU64>,
) {
    let resource = vec![
        (
            "service.name".to_owned(),
            AttrValue::Str(config.service_name.clone()),
        ),
        (
            "service.version".to_owned(),
            AttrValue::Str(env!("CARGO_PKG_VERSION").to_owned()),
        ),
        (
            "telemetry.sdk.name".to_owned(),
            AttrValue::Str("tollgate".to_owned()),
        ),
        (
            "telemetry.sdk.language".to_owned(),
            AttrValue::Str("rust".to_owned()),
        ),
    ];
    let mut batch: Vec<SpanData> = Vec::new();
    let mut failing = false;
    loop {
        let deadline = tokio::time::sleep(config.schedule_delay);
        tokio::pin!(deadline);
        let mut flushed = None;
        // Collect until the batch is full, the delay is over, or a flush is asked.
        loop {
            tokio::select! {
                message = receiver.recv() => match message {
                    Some(Message::Span(span)) => {
                        batch.push(*span);
                        if batch.len() >= config.max_batch {
                            break;
                        }
                    }
                    Some(Message::Flush(done)) => {
                        flushed = Some(done);
                        break;
                    }
                    None => {
                        if !send(&config, &http, &resource, &batch, &mut failing).await {
                            dropped.fetch_add(batch.len() as u64, Ordering::Relaxed);
                        }
                        return;
                    }
                },
                () = &mut deadline => break,
            }
        }
        if !batch.is_empty() {
            if !send(&config, &http, &resource, &batch, &mut failing).await {
                dropped.fetch_add(batch.len() as u64, Ordering::Relaxed);
            }
            batch.clear();
        }
        if let Some(done) = flushed {
            let _ = done.send(());
        }
    }
}

/// One export; a failure is logged once until exports work again (the
/// spans are dropped: traces are best effort). Whether the collector took
/// the spans.
async fn send(
    config: &TraceConfig,
    http: &reqwest::Client,
    resource: &[(String, AttrValue)],
    spans: &[SpanData],
    failing: &mut bool,
) -> bool {
    if spans.is_empty() {
        return true;
    }
    let body = otlp::export_request(resource, spans);
    let mut request = http
        .post(&config.endpoint)
        .header("content-type", "application/x-protobuf")
        .body(body);
    for (name, value) in &config.headers {
        request = request.header(name.as_str(), value.as_str());
    }
    let outcome = match request.send().await {
        Ok(response) if response.status().is_success() => Ok(()),
        Ok(response) => Err(format!("the collector answered {}", response.status())),
        Err(e) => Err(e.without_url().to_string()),
    };
    match outcome {
        Ok(()) if *failing => {
            *failing = false;
            tracing::info!("OTLP trace export works again");
            true
        }
        Ok(()) => true,
        Err(e) if !*failing => {
            *failing = true;
            tracing::warn!(error = %e, spans = spans.len(), "OTLP trace export failed; spans dropped");
            false
        }
        Err(_) => false,
    }
}

/// The current wall-clock time minus `elapsed`: when something that took
/// `elapsed` so far started.
pub fn started_ago(elapsed: Duration) -> SystemTime {
    SystemTime::now().checked_sub(elapsed).unwrap_or(UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_valid_traceparent_is_read() {
        let (trace, span, sampled) =
            parse_traceparent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01").unwrap();
        assert_eq!(hex::encode(trace), "0af7651916cd43dd8448eb211c80319c");
        assert_eq!(hex::encode(span), "b7ad6b7169203331");
        assert!(sampled);
    }

    #[test]
    fn malformed_traceparents_are_ignored() {
        for bad in [
            "",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331",
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
            "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra",
        ] {
            assert_eq!(parse_traceparent(bad), None, "{bad}");
        }
    }

    #[test]
    fn samplers_follow_the_standard_names() {
        assert_eq!(
            Sampler::from_settings(None, None),
            Ok(Sampler::ParentBased(Root::AlwaysOn))
        );
        assert_eq!(
            Sampler::from_settings(Some("traceidratio"), Some("0.25")),
            Ok(Sampler::TraceIdRatio(0.25))
        );
        assert_eq!(
            Sampler::from_settings(Some("nope"), None),
            Err(TraceConfigError::UnknownSampler)
        );
        assert_eq!(
            Sampler::from_settings(Some("traceidratio"), Some("2")),
            Err(TraceConfigError::BadRatio)
        );
        let parent_based = Sampler::ParentBased(Root::AlwaysOn);
        assert!(!parent_based.samples(&[1; 16], Some(false)));
        assert!(parent_based.samples(&[1; 16], None));
        assert!(!Sampler::TraceIdRatio(0.0).samples(&[1; 16], None));
    }

    /// A trace id whose lower 8 bytes (what the ratio sampler reads) are `low`.
    fn trace_id_with_low(low: u64) -> TraceId {
        let mut id = [0xab; 16];
        id[8..].copy_from_slice(&low.to_be_bytes());
        id
    }

    #[test]
    fn the_ratio_samplers_keep_that_share_of_traces() {
        for (name, arg, expected) in [
            ("traceidratio", "0.25", 2_500),
            ("traceidratio", "0.5", 5_000),
            ("parentbased_traceidratio", "0.1", 1_000),
            ("traceidratio", "0", 0),
            ("traceidratio", "1", 10_000),
        ] {
            let sampler = Sampler::from_settings(Some(name), Some(arg)).unwrap();
            // 10 000 trace ids spread evenly over the whole id space.
            let step = u64::MAX / 10_000;
            let sampled = (0..10_000u64)
                .filter(|i| sampler.samples(&trace_id_with_low(i * step + step / 2), None))
                .count();
            assert!(
                sampled.abs_diff(expected) <= 1,
                "{name} {arg}: {sampled} of 10 000 sampled, expected {expected}"
            );
        }
        // The decision is the trace id's: every service sampling at the
        // same ratio keeps the same traces.
        let ratio = Sampler::from_settings(Some("traceidratio"), Some("0.5")).unwrap();
        assert!(ratio.samples(&trace_id_with_low(1), None));
        assert!(!ratio.samples(&trace_id_with_low(u64::MAX - 1), None));
        // A parent-based ratio follows the client's flag when there is one.
        let parent_based =
            Sampler::from_settings(Some("parentbased_traceidratio"), Some("0")).unwrap();
        assert!(parent_based.samples(&trace_id_with_low(u64::MAX - 1), Some(true)));
        assert!(!parent_based.samples(&trace_id_with_low(1), Some(false)));
        assert!(!parent_based.samples(&trace_id_with_low(1), None));
    }

    fn a_span() -> SpanData {
        SpanData {
            trace_id: [1; 16],
            span_id: [2; 8],
            parent_span_id: None,
            name: "chat m".into(),
            kind: SpanKind::Server,
            start_unix_nanos: 1,
            end_unix_nanos: 2,
            attributes: vec![],
            error: None,
        }
    }

    #[tokio::test]
    async fn spans_lost_to_a_full_queue_or_a_failed_export_are_counted() {
        // A port nothing listens on: every export fails.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let (tracer, _task) = Tracer::start(TraceConfig {
            endpoint: format!("http://127.0.0.1:{port}/v1/traces"),
            headers: vec![],
            sampler: Sampler::AlwaysOn,
            service_name: "tollgate".into(),
            schedule_delay: Duration::from_secs(600),
            max_queue: 2,
            max_batch: 512,
            timeout: Duration::from_secs(5),
            capture_content: false,
        })
        .unwrap();
        assert_eq!(tracer.spans_dropped(), 0);
        // The exporter task has not run yet (nothing was awaited): the
        // queue holds two spans and the other three are dropped.
        for _ in 0..5 {
            tracer.export(a_span());
        }
        assert_eq!(tracer.spans_dropped(), 3);
        // The two queued ones then fail to reach the collector.
        tracer.flush(Duration::from_secs(10)).await;
        assert_eq!(tracer.spans_dropped(), 5);
        assert_eq!(Tracer::off().spans_dropped(), 0);
    }

    #[test]
    fn the_endpoint_comes_from_the_standard_variables() {
        assert_eq!(
            TraceConfig::endpoint(None, Some("http://c:4318/")),
            Some("http://c:4318/v1/traces".into())
        );
        assert_eq!(
            TraceConfig::endpoint(Some("http://c/x"), Some("http://d")),
            Some("http://c/x".into())
        );
        assert_eq!(TraceConfig::endpoint(None, Some(" ")), None);
        assert_eq!(
            TraceConfig::parse_headers(Some("a=b, Authorization=Bearer%20x")),
            Ok(vec![
                ("a".into(), "b".into()),
                ("Authorization".into(), "Bearer x".into())
            ])
        );
    }
}

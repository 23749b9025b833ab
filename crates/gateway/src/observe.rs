//! The observer interface: how metrics, traces and request logs learn about
//! calls without the pipeline knowing about any of them.
//!
//! The gateway calls [`CallObserver::attempt`] after every provider call
//! (success or failure) and [`CallObserver::finished`] exactly once at the
//! end of every call that passed admission (answered, refused after
//! routing, failed, or streamed to its end), on the request's task or the
//! stream's pump. Both run on the hot path: keep them cheap and
//! non-blocking (count, or hand off to a channel); never await or do I/O.

use std::sync::Arc;
use std::time::{Duration, Instant};
use tollgate_core::ErrorCode;
use tollgate_core::money::TokenUsage;
use tollgate_tenants::Principal;

/// What kind of call it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperationKind {
    Chat,
    Embed,
}

impl OperationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            OperationKind::Chat => "chat",
            OperationKind::Embed => "embeddings",
        }
    }
}

/// One call, as seen by observers.
#[derive(Debug)]
pub struct CallInfo {
    pub request_id: Arc<str>,
    pub principal: Arc<Principal>,
    pub operation: OperationKind,
    /// The model name the client asked for (`auto` included).
    pub requested_model: String,
    pub stream: bool,
    pub started: Instant,
}

/// How one provider call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptStatus {
    /// The provider answered (for a stream: its first event arrived).
    Ok,
    Failed,
}

impl AttemptStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptStatus::Ok => "ok",
            AttemptStatus::Failed => "error",
        }
    }
}

/// One provider call of a call.
#[derive(Debug)]
pub struct AttemptInfo<'a> {
    pub provider: &'a str,
    /// The catalog id of the model tried.
    pub model: &'a str,
    /// The deployment: the model name its provider knows.
    pub deployment: &'a str,
    pub status: AttemptStatus,
    /// On failure: what the client would have been told.
    pub error_code: Option<ErrorCode>,
    /// On failure with an HTTP answer: the provider's status.
    pub provider_status: Option<u16>,
    pub byok: bool,
    pub duration: Duration,
}

/// How a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallStatus {
    /// Answered in full.
    Ok,
    /// A stream that broke off or ended early: billed on what was used.
    Partial,
    /// No answer: the error went to the client.
    Failed,
}

impl CallStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CallStatus::Ok => "ok",
            CallStatus::Partial => "partial",
            CallStatus::Failed => "error",
        }
    }
}

/// The end of one call.
#[derive(Debug)]
pub struct CallSummary<'a> {
    pub status: CallStatus,
    pub error_code: Option<ErrorCode>,
    /// The catalog id and provider of the model that answered, if one did.
    pub model: Option<&'a str>,
    pub provider: Option<&'a str>,
    pub usage: Option<TokenUsage>,
    /// What was charged, in the organization's unit (`None`: nothing, or
    /// the settlement failed).
    pub cost: Option<i64>,
    pub byok: bool,
    pub duration: Duration,
    /// For streams: until the first event reached the pipeline.
    pub time_to_first_byte: Option<Duration>,
    pub attempts: u32,
}

/// Learns about every attempt and the end of every call. See the module
/// documentation for when each is called.
pub trait CallObserver: Send + Sync {
    fn attempt(&self, call: &CallInfo, attempt: &AttemptInfo<'_>);
    fn finished(&self, call: &CallInfo, summary: &CallSummary<'_>);
}

/// Observes nothing.
pub struct NoObserver;

impl CallObserver for NoObserver {
    fn attempt(&self, _: &CallInfo, _: &AttemptInfo<'_>) {}
    fn finished(&self, _: &CallInfo, _: &CallSummary<'_>) {}
}

/// Several observers, called in order.
pub struct Observers(pub Vec<Arc<dyn CallObserver>>);

impl CallObserver for Observers {
    fn attempt(&self, call: &CallInfo, attempt: &AttemptInfo<'_>) {
        for o in &self.0 {
            o.attempt(call, attempt);
        }
    }
    fn finished(&self, call: &CallInfo, summary: &CallSummary<'_>) {
        for o in &self.0 {
            o.finished(call, summary);
        }
    }
}

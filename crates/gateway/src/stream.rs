//! A streamed answer: a pump passes the provider's events to the surface
//! through a bounded channel (a slow client cannot grow memory without
//! limit) and settles at the end. The pump runs in the task that reads the
//! events ([`Events`]); if the client goes away, it is finished in the
//! background and still reads the provider to its end, so the spend is
//! known and billed; if the provider breaks off, the usage so far is
//! estimated and billed.

use crate::Gateway;
use crate::finish::Finish;
use crate::lease::DeploymentLease;
use crate::observe::{CallInfo, CallStatus, CallSummary};
use crate::paying::CallRecord;
use bytes::Bytes;
use futures::{Stream, StreamExt};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::task::TaskTracker;
use tollgate_billing::{Hold, UsageStatus};
use tollgate_core::ModelEntry;
use tollgate_core::money::TokenUsage;
use tollgate_providers::{ChatStream, ProviderError, StreamEvent};
use tollgate_routing::limits::Admission;

/// Events buffered between the provider and a slow client, at most.
pub(crate) const STREAM_BUFFER: usize = 64;

/// One item of a streamed answer, in the order the surface must write them.
#[derive(Debug)]
pub enum StreamItem {
    /// A provider chunk in OpenAI's `chat.completion.chunk` JSON (a
    /// Responses event's JSON when the route's wire is `Responses`).
    Chunk {
        data: Bytes,
        /// A chunk with no choices that only reports usage: OpenAI sends it
        /// only to clients that asked with `stream_options.include_usage`.
        usage_only: bool,
    },
    /// The last item, sent once the call is settled.
    End(StreamEnd),
}

/// How a stream ended, and what it was charged.
#[derive(Debug)]
pub struct StreamEnd {
    /// The provider's usage, or an estimate when it broke off first.
    pub usage: TokenUsage,
    /// Whether the provider ended the stream itself.
    pub finished: bool,
    /// Why the stream broke off, if it did.
    pub failure: Option<ProviderError>,
    /// What was charged (`None`: the settlement could not be written).
    pub cost: Option<i64>,
}

impl StreamEnd {
    /// The message for the client when the stream did not end normally.
    pub fn broken(&self) -> Option<String> {
        match &self.failure {
            Some(e) => Some(format!("the provider's stream broke off: {e}")),
            None if !self.finished => Some("the provider's stream ended early".to_owned()),
            None => None,
        }
    }
}

/// The items of a streamed answer, for the surface to write in order. The
/// pump runs as they are read, in the reader's task: no task of its own to
/// spawn, schedule and hand each item over from (docs/performance-history.md:
/// 5–10% more streams a second). Dropped before the end (the client went
/// away), the pump is finished in the background, so that the call is
/// still settled.
pub struct Events {
    pump: Option<Finish<dyn Future<Output = ()> + Send>>,
    items: mpsc::Receiver<StreamItem>,
}

impl Events {
    pub(crate) fn new(
        pump: Pump,
        upstream: ChatStream,
        hold: Hold,
        tracker: &TaskTracker,
    ) -> Events {
        let (tx, items) = mpsc::channel(STREAM_BUFFER);
        Events {
            pump: Some(Finish::boxed(
                Box::pin(pump.run(upstream, hold, tx)),
                tracker,
            )),
            items,
        }
    }
}

impl Stream for Events {
    type Item = StreamItem;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<StreamItem>> {
        // The pump first: it reads the provider and fills the channel (or
        // waits for room in it, woken when an item is taken below).
        if let Some(pump) = &mut self.pump
            && Pin::new(pump).poll(cx).is_ready()
        {
            self.pump = None;
        }
        self.items.poll_recv(cx)
    }
}

pub(crate) struct Pump {
    pub gateway: Gateway,
    pub call: Arc<CallInfo>,
    pub model: Arc<ModelEntry>,
    pub byok: bool,
    pub prompt_estimate: i64,
    pub admission: Admission,
    pub lease: DeploymentLease,
    pub attempts: u32,
    pub time_to_first_byte: Duration,
}

impl Pump {
    pub(crate) async fn run(
        self,
        mut upstream: ChatStream,
        hold: Hold,
        tx: mpsc::Sender<StreamItem>,
    ) {
        let mut usage = None;
        let mut finished = false;
        let mut failure = None;
        let mut content_chunks: i64 = 0;
        let mut client_gone = false;
        while let Some(event) = upstream.next().await {
            match event {
                Ok(StreamEvent::Chunk {
                    data,
                    usage: reported,
                    usage_only,
                }) => {
                    if reported.is_some() {
                        usage = reported;
                    }
                    if !usage_only {
                        content_chunks += 1;
                    }
                    if !client_gone
                        && tx
                            .send(StreamItem::Chunk { data, usage_only })
                            .await
                            .is_err()
                    {
                        // Keep reading: the provider is still producing, and billing.
                        client_gone = true;
                    }
                }
                Ok(StreamEvent::Done) => {
                    finished = true;
                    break;
                }
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        let complete = finished && usage.is_some();
        let usage = usage.unwrap_or(TokenUsage {
            // Estimated: the prompt at ~4 bytes a token, one token a chunk.
            prompt_tokens: self.prompt_estimate,
            completion_tokens: content_chunks,
            cached_prompt_tokens: 0,
            cache_write_tokens: 0,
        });
        let status = if complete {
            UsageStatus::Ok
        } else {
            UsageStatus::Partial
        };
        let record = CallRecord {
            request_id: &self.call.request_id,
            principal: &self.call.principal,
            model: &self.model,
            usage,
            byok: self.byok,
            stream: true,
            status,
            latency: self.call.started.elapsed(),
        };
        let settling = std::time::Instant::now();
        let cost = self.gateway.settle(hold, &record).await;
        let settlement = settling.elapsed();
        self.admission.used_tokens(usage.total());
        self.lease.used_tokens(usage.total());
        self.gateway.observer.finished(
            &self.call,
            &CallSummary {
                status: if complete {
                    CallStatus::Ok
                } else {
                    CallStatus::Partial
                },
                error_code: None,
                error_message: None,
                model: Some(&self.model.id),
                deployment: Some(&self.model.upstream),
                list_cost_usd_micros: Some(self.model.price.cost(&usage).0),
                answer: None,
                settlement: Some(settlement),
                provider: Some(&self.model.provider),
                usage: Some(usage),
                cost,
                byok: self.byok,
                duration: self.call.started.elapsed(),
                time_to_first_byte: Some(self.time_to_first_byte),
                attempts: self.attempts,
            },
        );
        if !client_gone {
            let end = StreamEnd {
                usage,
                finished,
                failure,
                cost,
            };
            // The client may be gone by now: nothing is left to tell it.
            let _ = tx.send(StreamItem::End(end)).await;
        }
    }
}

//! The API family a client speaks. Providers answer in OpenAI's format
//! (Tollgate's own); a client of `/v1/messages` gets Anthropic's message
//! JSON and SSE events instead, a client of `/v1/responses` a Responses
//! object and its events, a client of `/v1beta/models/…` Gemini's
//! `GenerateContentResponse`s, written as the chunks arrive. A Responses
//! call served natively (`Wire::Responses`) comes back as the provider's
//! Responses object and events, relayed with Tollgate's id.

use bytes::Bytes;
use serde_json::Value;
use std::sync::Mutex;
use tokio::sync::oneshot;
use tollgate_core::ErrorCode;
use tollgate_core::money::TokenUsage;
use tollgate_gateway::{StreamEnd, StreamItem, Wire};
use tollgate_providers::anthropic::inbound::{SseEncoder, message_from_completion};
use tollgate_providers::responses::native;
use tollgate_providers::{gemini, responses};

/// Where the final Responses object goes once the answer is complete (to be
/// stored for `GET /v1/responses/{id}` and `previous_response_id`).
pub type ResponseSink = Mutex<Option<oneshot::Sender<Value>>>;

pub enum Dialect {
    /// `include_usage`: whether a stream's usage-only chunk is sent on
    /// (`stream_options.include_usage`).
    OpenAi { include_usage: bool },
    /// `model` is the name the client asked for, echoed in the answer.
    Anthropic { model: String },
    Responses {
        context: responses::ResponseContext,
        /// `None` inside: not stored (`store: false`), or already sent.
        done: ResponseSink,
        /// Told once the object is stored: a stream's last event waits for
        /// it, so a follow-up naming it finds it.
        stored: Mutex<Option<oneshot::Receiver<()>>>,
    },
    /// `model` is the name the client asked for, echoed in the answer;
    /// `sse`: a stream asked with `alt=sse` (else one JSON array).
    Gemini { model: String, sse: bool },
}

fn send_done(done: Option<oneshot::Sender<Value>>, object: &Value) {
    if let Some(done) = done {
        // The receiver is gone only if storing was given up; nothing to do.
        let _ = done.send(object.clone());
    }
}

fn take<T>(slot: &Mutex<Option<T>>) -> Option<T> {
    slot.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take()
}

impl Dialect {
    /// A complete answer's body for the client; `wire`: the body's format.
    pub fn answer_body(&self, body: Bytes, usage: &TokenUsage, wire: Wire) -> Bytes {
        match self {
            Dialect::Responses { context, done, .. } if wire == Wire::Responses => {
                match serde_json::from_slice(&body) {
                    Ok(mut object) => {
                        native::rewrite(&mut object, context);
                        send_done(take(done), &object);
                        Bytes::from(object.to_string())
                    }
                    Err(_) => body,
                }
            }
            Dialect::OpenAi { .. } => body,
            Dialect::Anthropic { model } => match serde_json::from_slice(&body) {
                Ok(completion) => {
                    Bytes::from(message_from_completion(&completion, model, usage).to_string())
                }
                Err(_) => body,
            },
            Dialect::Responses { context, done, .. } => match serde_json::from_slice(&body) {
                Ok(completion) => {
                    let object = responses::response_from_completion(&completion, context, usage);
                    send_done(take(done), &object);
                    Bytes::from(object.to_string())
                }
                Err(_) => body,
            },
            Dialect::Gemini { model, .. } => match serde_json::from_slice(&body) {
                Ok(completion) => Bytes::from(
                    gemini::inbound::response_from_completion(&completion, model, usage)
                        .to_string(),
                ),
                Err(_) => body,
            },
        }
    }

    /// Writes a streamed answer for the client; `wire`: the chunks' format.
    pub fn encoder(&self, wire: Wire) -> Encoder {
        match self {
            Dialect::Responses {
                context,
                done,
                stored,
            } if wire == Wire::Responses => Encoder::NativeResponses {
                encoder: native::NativeSseEncoder::new(context.clone()),
                done: take(done),
                stored: take(stored),
            },
            Dialect::OpenAi { include_usage } => Encoder::OpenAi {
                include_usage: *include_usage,
            },
            Dialect::Anthropic { model } => Encoder::Anthropic(SseEncoder::new(model)),
            Dialect::Responses {
                context,
                done,
                stored,
            } => Encoder::Responses {
                encoder: responses::SseEncoder::new(context.clone()),
                done: take(done),
                stored: take(stored),
            },
            Dialect::Gemini { model, sse: true } => {
                Encoder::Gemini(gemini::inbound::SseEncoder::new(model))
            }
            Dialect::Gemini { model, sse: false } => {
                Encoder::Gemini(gemini::inbound::SseEncoder::json_array(model))
            }
        }
    }
}

impl Dialect {
    /// The content type of a streamed answer.
    pub fn stream_content_type(&self) -> &'static str {
        match self {
            Dialect::Gemini { sse: false, .. } => "application/json",
            _ => "text/event-stream",
        }
    }
}

pub enum Encoder {
    /// Chunks relayed as `data:` lines; the usage-only chunk only to clients
    /// that asked for it.
    OpenAi {
        include_usage: bool,
    },
    Anthropic(SseEncoder),
    Responses {
        encoder: responses::SseEncoder,
        done: Option<oneshot::Sender<Value>>,
        stored: Option<oneshot::Receiver<()>>,
    },
    Gemini(gemini::inbound::SseEncoder),
    /// The provider's own Responses events, relayed.
    NativeResponses {
        encoder: native::NativeSseEncoder,
        done: Option<oneshot::Sender<Value>>,
        stored: Option<oneshot::Receiver<()>>,
    },
}

/// How long an answer (or a stream's last event) waits for its response
/// to be stored.
pub(super) const STORE_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

impl Encoder {
    /// Waits, before the events of a stream's end go out, for what they
    /// announce to be true (a Responses object stored).
    pub async fn settled(&mut self) {
        if let Encoder::Responses { stored, .. } | Encoder::NativeResponses { stored, .. } = self
            && let Some(stored) = stored.take()
        {
            let _ = tokio::time::timeout(STORE_WAIT, stored).await;
        }
    }

    /// What to send the client for one item of the gateway's stream.
    pub fn item(&mut self, item: StreamItem) -> Vec<Bytes> {
        match item {
            StreamItem::Chunk { data, usage_only } => self.chunk(&data, usage_only),
            StreamItem::End(end) => self.end(&end),
        }
    }

    /// What to send the client for one OpenAI chunk.
    fn chunk(&mut self, data: &[u8], usage_only: bool) -> Vec<Bytes> {
        match self {
            Encoder::OpenAi { include_usage } => {
                if usage_only && !*include_usage {
                    Vec::new()
                } else {
                    vec![tollgate_providers::encode_data(data)]
                }
            }
            Encoder::Anthropic(encoder) => encoder.chunk(data),
            Encoder::Responses { encoder, .. } => encoder.chunk(data),
            Encoder::Gemini(encoder) => encoder.chunk(data),
            Encoder::NativeResponses { encoder, .. } => encoder.event(data),
        }
    }

    /// What ends the stream: the closing events of a complete answer, or an
    /// error event when it broke off.
    fn end(&mut self, end: &StreamEnd) -> Vec<Bytes> {
        let broken = end.broken();
        match self {
            Encoder::OpenAi { .. } => {
                let mut out = Vec::with_capacity(2);
                if let Some(message) = broken {
                    let code = ErrorCode::StreamInterrupted;
                    let error = serde_json::json!({
                        "error": {"message": message, "type": code.kind(), "code": code.as_str()}
                    });
                    out.push(tollgate_providers::encode_data(
                        error.to_string().as_bytes(),
                    ));
                }
                out.push(Bytes::from_static(b"data: [DONE]\n\n"));
                out
            }
            Encoder::Anthropic(encoder) => match broken {
                Some(message) => encoder.error(502, &message),
                None => encoder.finish(Some(end.usage)),
            },
            Encoder::Responses { encoder, done, .. } => match broken {
                Some(message) => encoder.error(&message),
                None => {
                    let (events, object) = encoder.finish(Some(end.usage));
                    send_done(done.take(), &object);
                    events
                }
            },
            Encoder::Gemini(encoder) => match broken {
                Some(message) => encoder.error(502, &message),
                None => encoder.finish(Some(end.usage)),
            },
            Encoder::NativeResponses { encoder, done, .. } => match broken {
                Some(message) => encoder.error(&message),
                None => {
                    let (events, object) = encoder.finish();
                    if let Some(object) = object {
                        send_done(done.take(), &object);
                    }
                    events
                }
            },
        }
    }
}

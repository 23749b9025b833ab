//! The API family a client speaks. Providers answer in OpenAI's format
//! (Tollgate's own); a client of `/v1/messages` gets Anthropic's message
//! JSON and SSE events instead, written as the chunks arrive.

use bytes::{BufMut, Bytes, BytesMut};
use tollgate_core::ErrorCode;
use tollgate_core::money::TokenUsage;
use tollgate_gateway::{StreamEnd, StreamItem};
use tollgate_providers::anthropic::inbound::{SseEncoder, message_from_completion};

pub enum Dialect {
    /// `include_usage`: whether a stream's usage-only chunk is sent on
    /// (`stream_options.include_usage`).
    OpenAi { include_usage: bool },
    /// `model` is the name the client asked for, echoed in the answer.
    Anthropic { model: String },
}

impl Dialect {
    /// A complete answer's body for the client.
    pub fn answer_body(&self, body: Bytes, usage: &TokenUsage) -> Bytes {
        match self {
            Dialect::OpenAi { .. } => body,
            Dialect::Anthropic { model } => match serde_json::from_slice(&body) {
                Ok(completion) => {
                    Bytes::from(message_from_completion(&completion, model, usage).to_string())
                }
                Err(_) => body,
            },
        }
    }

    /// Writes a streamed answer for the client.
    pub fn encoder(&self) -> Encoder {
        match self {
            Dialect::OpenAi { include_usage } => Encoder::OpenAi {
                include_usage: *include_usage,
            },
            Dialect::Anthropic { model } => Encoder::Anthropic(SseEncoder::new(model)),
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
}

fn sse_data(data: &[u8]) -> Bytes {
    let mut buf = BytesMut::with_capacity(data.len() + 8);
    buf.put_slice(b"data: ");
    buf.put_slice(data);
    buf.put_slice(b"\n\n");
    buf.freeze()
}

impl Encoder {
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
                    vec![sse_data(data)]
                }
            }
            Encoder::Anthropic(encoder) => encoder.chunk(data),
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
                    out.push(sse_data(error.to_string().as_bytes()));
                }
                out.push(Bytes::from_static(b"data: [DONE]\n\n"));
                out
            }
            Encoder::Anthropic(encoder) => match broken {
                Some(message) => encoder.error(502, &message),
                None => encoder.finish(Some(end.usage)),
            },
        }
    }
}

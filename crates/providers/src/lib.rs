//! Provider adapters. Tollgate's own request format is OpenAI's Chat
//! Completions format ([`ChatRequest`]); each adapter sends it in its
//! provider's wire format and turns the answer (plain or streamed) back into
//! OpenAI's format, with the usage that billing needs.

pub mod anthropic;
mod chunk;
mod client;
mod common;
mod error;
pub mod gemini;
pub mod openai;
pub mod responses;
mod sse;
pub mod transport;
mod types;

pub use client::{
    ChatAnswer, ChatStream, ClientOptions, EmbeddingAnswer, ProviderClient, StreamEvent, Target,
};
pub use error::ProviderError;
pub use sse::{encode_data, encode_event};
pub use types::{ChatMessage, ChatRequest, EmbeddingRequest, StreamOptions};

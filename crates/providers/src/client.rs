//! One client for every provider, pooled and shared; it dispatches each
//! call to the adapter of the provider's kind (how the call travels is
//! [`crate::transport`]'s).

use crate::error::ProviderError;
use crate::responses::native::NativeRequest;
use crate::transport::{Http, Timeouts};
use crate::types::{ChatRequest, EmbeddingRequest};
use crate::{anthropic, gemini, openai};
use bytes::Bytes;
use futures::stream::BoxStream;
use secrecy::SecretString;
use std::time::Duration;
use tollgate_core::ProviderKind;
use tollgate_core::money::TokenUsage;

/// Where one call goes: the provider's endpoint and the key that pays.
#[derive(Clone)]
pub struct Target<'a> {
    pub provider: &'a str,
    pub kind: ProviderKind,
    pub base_url: &'a str,
    /// `None` for providers that need no key (a local vLLM or Ollama).
    pub api_key: Option<&'a SecretString>,
    /// The model name the provider knows.
    pub upstream_model: &'a str,
    /// The model's output limit, sent where the provider requires a limit
    /// (Anthropic's `max_tokens`) and the client set none.
    pub max_output_tokens: i64,
    /// W3C `traceparent` sent to the provider, continuing the call's trace.
    pub traceparent: Option<&'a str>,
}

/// A complete (non-streamed) chat answer in OpenAI's format (a Responses
/// object for [`ProviderClient::respond`]).
#[derive(Debug)]
pub struct ChatAnswer {
    /// The JSON body to send to the client.
    pub body: Bytes,
    pub usage: TokenUsage,
}

/// A complete embeddings answer in OpenAI's format.
#[derive(Debug)]
pub struct EmbeddingAnswer {
    pub body: Bytes,
    pub usage: TokenUsage,
}

/// One event of a streamed answer, already in OpenAI's chunk format.
#[derive(Debug)]
pub enum StreamEvent {
    /// A `chat.completion.chunk` JSON object, to send as `data: …`.
    Chunk {
        data: Bytes,
        /// The call's usage, when this chunk reports it (normally the last).
        usage: Option<TokenUsage>,
        /// A chunk with no choices that only reports usage: sent on only to
        /// clients that asked for it with `stream_options.include_usage`.
        usage_only: bool,
    },
    /// The provider's end of stream (`data: [DONE]`).
    Done,
}

/// A stream of events; it ends after the provider's last event. An `Err`
/// item means the stream broke and no more events will come.
pub type ChatStream = BoxStream<'static, Result<StreamEvent, ProviderError>>;

#[derive(Debug, Clone)]
pub struct ClientOptions {
    pub connect_timeout: Duration,
    /// Longest wait for the next bytes of an answer.
    pub read_timeout: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(300),
        }
    }
}

#[derive(Clone)]
pub struct ProviderClient {
    http: Http,
}

impl ProviderClient {
    pub fn new(options: &ClientOptions) -> Result<ProviderClient, ProviderError> {
        let http = Http::new(Timeouts {
            connect: options.connect_timeout,
            read: options.read_timeout,
        })?;
        Ok(ProviderClient { http })
    }

    pub async fn chat(
        &self,
        target: &Target<'_>,
        request: &ChatRequest,
    ) -> Result<ChatAnswer, ProviderError> {
        match target.kind {
            ProviderKind::OpenAi => openai::chat(&self.http, target, request).await,
            ProviderKind::Anthropic => anthropic::chat(&self.http, target, request).await,
            ProviderKind::Gemini => gemini::chat(&self.http, target, request).await,
        }
    }

    /// Starts a streamed chat. Returns only once the provider's first event
    /// has arrived, so an early failure is an `Err` here (and can fall back),
    /// not a broken stream.
    pub async fn chat_stream(
        &self,
        target: &Target<'_>,
        request: &ChatRequest,
    ) -> Result<ChatStream, ProviderError> {
        match target.kind {
            ProviderKind::OpenAi => openai::chat_stream(&self.http, target, request).await,
            ProviderKind::Anthropic => anthropic::chat_stream(&self.http, target, request).await,
            ProviderKind::Gemini => gemini::chat_stream(&self.http, target, request).await,
        }
    }

    /// A Responses request sent natively (`/responses`), to a provider that
    /// speaks the Responses API; the body is the provider's object.
    pub async fn respond(
        &self,
        target: &Target<'_>,
        request: &NativeRequest,
    ) -> Result<ChatAnswer, ProviderError> {
        match target.kind {
            ProviderKind::OpenAi => openai::responses::respond(&self.http, target, request).await,
            _ => Err(ProviderError::Unsupported("the Responses API on this kind")),
        }
    }

    /// A streamed Responses request sent natively; the chunks are the
    /// provider's Responses events (their JSON). Returns once the first
    /// event has arrived, like [`ProviderClient::chat_stream`].
    pub async fn respond_stream(
        &self,
        target: &Target<'_>,
        request: &NativeRequest,
    ) -> Result<ChatStream, ProviderError> {
        match target.kind {
            ProviderKind::OpenAi => {
                openai::responses::respond_stream(&self.http, target, request).await
            }
            _ => Err(ProviderError::Unsupported("the Responses API on this kind")),
        }
    }

    /// The prompt tokens of a chat request by the provider's own counter
    /// (Anthropic's `count_tokens`, Gemini's `countTokens`); `None` for
    /// providers without one (OpenAI-compatible APIs), where the caller
    /// estimates.
    pub async fn count_tokens(
        &self,
        target: &Target<'_>,
        request: &ChatRequest,
    ) -> Result<Option<i64>, ProviderError> {
        match target.kind {
            ProviderKind::OpenAi => Ok(None),
            ProviderKind::Anthropic => anthropic::count_tokens(&self.http, target, request)
                .await
                .map(Some),
            ProviderKind::Gemini => gemini::count_tokens(&self.http, target, request)
                .await
                .map(Some),
        }
    }

    pub async fn embed(
        &self,
        target: &Target<'_>,
        request: &EmbeddingRequest,
    ) -> Result<EmbeddingAnswer, ProviderError> {
        match target.kind {
            ProviderKind::OpenAi => openai::embed(&self.http, target, request).await,
            // Anthropic has no embeddings API.
            ProviderKind::Anthropic => Err(ProviderError::Unsupported("anthropic embeddings")),
            ProviderKind::Gemini => gemini::embed(&self.http, target, request).await,
        }
    }
}

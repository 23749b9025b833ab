//! OpenAI wire types: the few request fields the mock reads (borrowed from the
//! body, counting prompt words while parsing so nothing is collected), and
//! the response objects it writes.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

// ---------------------------------------------------------------- requests

/// The fields of a chat completions request that shape the answer.
#[derive(Deserialize)]
pub(crate) struct ChatRequest<'a> {
    #[serde(borrow)]
    pub model: Option<Cow<'a, str>>,
    pub messages: Option<PromptWords>,
    pub stream: Option<bool>,
    pub stream_options: Option<StreamOptions>,
    pub max_tokens: Option<u64>,
    pub max_completion_tokens: Option<u64>,
    /// A `json_schema` format makes the reply a JSON value of that schema.
    pub response_format: Option<serde_json::Value>,
    /// How many choices to answer with (OpenAI's `n`; default 1).
    pub n: Option<u32>,
    /// Function tools: the answer may call one (see `tools.rs`).
    pub tools: Option<serde_json::Value>,
    pub tool_choice: Option<serde_json::Value>,
}

#[derive(Deserialize)]
pub(crate) struct StreamOptions {
    pub include_usage: Option<bool>,
}

/// `messages`, reduced while parsing to what usage needs.
#[derive(Default)]
pub(crate) struct PromptWords {
    pub messages: u64,
    pub words: u64,
    /// Whether the last message is a tool result (`role: tool`).
    pub last_is_tool: bool,
}

impl PromptWords {
    /// `prompt_tokens`: the words of every message's text, plus 3 a message.
    pub(crate) fn tokens(&self) -> u64 {
        self.words + 3 * self.messages
    }
}

impl<'de> Deserialize<'de> for PromptWords {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MessagesVisitor;
        impl<'de> Visitor<'de> for MessagesVisitor {
            type Value = PromptWords;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array of messages")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<PromptWords, A::Error> {
                let mut prompt = PromptWords::default();
                while let Some(message) = seq.next_element::<Message>()? {
                    prompt.messages += 1;
                    prompt.words += message.content.0;
                    prompt.last_is_tool = matches!(message.role, Some(Role::Tool));
                }
                Ok(prompt)
            }
        }
        deserializer.deserialize_seq(MessagesVisitor)
    }
}

#[derive(Deserialize)]
struct Message {
    #[serde(default)]
    content: Words,
    #[serde(default)]
    role: Option<Role>,
}

/// A message's role, as far as the mock cares (read without allocating).
#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum Role {
    Tool,
    #[serde(other)]
    Other,
}

/// The number of whitespace-separated words in a message's text: a string,
/// `null`, or an array of content parts whose `text` fields count.
#[derive(Default)]
struct Words(u64);

fn count_words(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

impl<'de> Deserialize<'de> for Words {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct WordsVisitor;
        impl<'de> Visitor<'de> for WordsVisitor {
            type Value = Words;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, null or an array of content parts")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Words, E> {
                Ok(Words(count_words(v)))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Words, E> {
                Ok(Words(0))
            }
            fn visit_none<E: de::Error>(self) -> Result<Words, E> {
                Ok(Words(0))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Words, A::Error> {
                let mut words = 0;
                while let Some(part) = seq.next_element::<Part>()? {
                    words += part.0;
                }
                Ok(Words(words))
            }
        }
        deserializer.deserialize_any(WordsVisitor)
    }
}

/// A content part: the words of its `text` field, if it has one.
struct Part(u64);

impl<'de> Deserialize<'de> for Part {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PartVisitor;
        impl<'de> Visitor<'de> for PartVisitor {
            type Value = Part;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a content part object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Part, A::Error> {
                let mut words = 0;
                while let Some(TextKey(is_text)) = map.next_key::<TextKey>()? {
                    if is_text {
                        words += map.next_value::<Words>()?.0;
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(Part(words))
            }
        }
        deserializer.deserialize_map(PartVisitor)
    }
}

/// Whether an object key is `text`, read without copying it.
struct TextKey(bool);

impl<'de> Deserialize<'de> for TextKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = TextKey;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<TextKey, E> {
                Ok(TextKey(v == "text"))
            }
        }
        deserializer.deserialize_identifier(KeyVisitor)
    }
}

/// The fields of an embeddings request that shape the answer.
#[derive(Deserialize)]
pub(crate) struct EmbeddingRequest<'a> {
    #[serde(borrow)]
    pub model: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub input: Option<EmbeddingInput<'a>>,
    pub dimensions: Option<u64>,
    #[serde(borrow)]
    pub encoding_format: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
pub(crate) enum EmbeddingInput<'a> {
    Text(#[serde(borrow)] Cow<'a, str>),
    Texts(#[serde(borrow)] Vec<Cow<'a, str>>),
    Tokens(Vec<u64>),
    TokenLists(Vec<Vec<u64>>),
}

/// One input of an embeddings request.
pub(crate) enum InputItem<'r> {
    Text(&'r str),
    Tokens(&'r [u64]),
}

impl InputItem<'_> {
    /// Usage: words of a text, ids of a token list.
    pub(crate) fn tokens(&self) -> u64 {
        match self {
            InputItem::Text(text) => count_words(text),
            InputItem::Tokens(ids) => ids.len() as u64,
        }
    }
}

impl EmbeddingInput<'_> {
    pub(crate) fn items(&self) -> Vec<InputItem<'_>> {
        match self {
            EmbeddingInput::Text(text) => vec![InputItem::Text(text)],
            EmbeddingInput::Texts(texts) => texts.iter().map(|t| InputItem::Text(t)).collect(),
            EmbeddingInput::Tokens(ids) => vec![InputItem::Tokens(ids)],
            EmbeddingInput::TokenLists(lists) => {
                lists.iter().map(|ids| InputItem::Tokens(ids)).collect()
            }
        }
    }
}

// --------------------------------------------------------------- responses

/// OpenAI's error body.
#[derive(Serialize)]
pub(crate) struct ErrorBody<'a> {
    pub error: ErrorDetail<'a>,
}

#[derive(Serialize)]
pub(crate) struct ErrorDetail<'a> {
    pub message: &'a str,
    #[serde(rename = "type")]
    pub kind: &'a str,
    pub param: Option<&'a str>,
    pub code: Option<&'a str>,
}

#[derive(Serialize, Clone, Copy)]
pub(crate) struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
    pub prompt_tokens_details: PromptTokensDetails,
    pub completion_tokens_details: CompletionTokensDetails,
}

impl Usage {
    pub(crate) fn new(prompt_tokens: u64, completion_tokens: u64) -> Self {
        Self {
            prompt_tokens,
            completion_tokens,
            total_tokens: prompt_tokens + completion_tokens,
            prompt_tokens_details: PromptTokensDetails::default(),
            completion_tokens_details: CompletionTokensDetails::default(),
        }
    }
}

#[derive(Serialize, Clone, Copy, Default)]
pub(crate) struct PromptTokensDetails {
    pub cached_tokens: u64,
    pub audio_tokens: u64,
}

#[derive(Serialize, Clone, Copy, Default)]
pub(crate) struct CompletionTokensDetails {
    pub reasoning_tokens: u64,
    pub audio_tokens: u64,
    pub accepted_prediction_tokens: u64,
    pub rejected_prediction_tokens: u64,
}

pub(crate) const SERVICE_TIER: &str = "default";
pub(crate) const SYSTEM_FINGERPRINT: &str = "fp_tollgate_mock";

/// A `chat.completion` object.
#[derive(Serialize)]
pub(crate) struct ChatCompletion<'a> {
    pub id: &'a str,
    pub object: &'static str,
    pub created: u64,
    pub model: &'a str,
    pub choices: Vec<Choice<'a>>,
    pub usage: Usage,
    pub service_tier: &'static str,
    pub system_fingerprint: &'static str,
}

#[derive(Serialize)]
pub(crate) struct Choice<'a> {
    pub index: u32,
    pub message: AssistantMessage<'a>,
    /// Always `null`.
    pub logprobs: (),
    pub finish_reason: &'a str,
}

#[derive(Serialize)]
pub(crate) struct AssistantMessage<'a> {
    pub role: &'static str,
    pub content: &'a str,
    /// Always `null`.
    pub refusal: (),
    /// Always `[]`.
    pub annotations: [(); 0],
}

/// A `chat.completion.chunk` object.
#[derive(Serialize)]
pub(crate) struct Chunk<'a> {
    pub id: &'a str,
    pub object: &'static str,
    pub created: u64,
    pub model: &'a str,
    pub service_tier: &'static str,
    pub system_fingerprint: &'static str,
    pub choices: &'a [ChunkChoice<'a>],
    /// Absent without `include_usage`; `null` on every chunk but the last
    /// with it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Option<Usage>>,
}

#[derive(Serialize)]
pub(crate) struct ChunkChoice<'a> {
    pub index: u32,
    pub delta: Delta<'a>,
    /// Always `null`.
    pub logprobs: (),
    pub finish_reason: Option<&'a str>,
}

#[derive(Serialize, Default)]
pub(crate) struct Delta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<&'a str>,
}

/// An embeddings `list` object.
#[derive(Serialize)]
pub(crate) struct EmbeddingList<'a> {
    pub object: &'static str,
    pub data: Vec<Embedding>,
    pub model: &'a str,
    pub usage: EmbeddingUsage,
}

#[derive(Serialize)]
pub(crate) struct Embedding {
    pub object: &'static str,
    pub index: usize,
    pub embedding: EmbeddingVector,
}

#[derive(Serialize)]
#[serde(untagged)]
pub(crate) enum EmbeddingVector {
    Float(Vec<f32>),
    Base64(String),
}

#[derive(Serialize)]
pub(crate) struct EmbeddingUsage {
    pub prompt_tokens: u64,
    pub total_tokens: u64,
}

/// The fixed `GET /v1/models` answer.
pub(crate) const MODELS_LIST: &str = concat!(
    r#"{"object":"list","data":["#,
    r#"{"id":"gpt-4o-mini","object":"model","created":1721172741,"owned_by":"system"},"#,
    r#"{"id":"gpt-4o","object":"model","created":1715367049,"owned_by":"system"},"#,
    r#"{"id":"gpt-4.1-mini","object":"model","created":1744318173,"owned_by":"system"},"#,
    r#"{"id":"o3-mini","object":"model","created":1737146383,"owned_by":"system"},"#,
    r#"{"id":"text-embedding-3-small","object":"model","created":1705948997,"owned_by":"system"},"#,
    r#"{"id":"text-embedding-3-large","object":"model","created":1705953180,"owned_by":"system"}"#,
    r#"]}"#
);

#[cfg(test)]
mod tests {
    use super::*;

    fn prompt_tokens(body: &str) -> u64 {
        let req: ChatRequest<'_> = serde_json::from_str(body).unwrap();
        req.messages.unwrap().tokens()
    }

    #[test]
    fn prompt_tokens_count_words_plus_three_per_message() {
        let body = r#"{"model":"m","messages":[
            {"role":"system","content":"Be  brief.\n"},
            {"role":"user","content":[{"type":"text","text":"Say hello"},{"type":"image_url","image_url":{"url":"x y"}}]},
            {"role":"assistant","content":null,"tool_calls":[]},
            {"role":"user","content":"ünïcode \"quoted\" words"}
        ]}"#;
        assert_eq!(prompt_tokens(body), (2 + 3) + (2 + 3) + 3 + (3 + 3));
    }

    #[test]
    fn a_message_without_content_counts_three() {
        assert_eq!(prompt_tokens(r#"{"messages":[{"role":"user"}]}"#), 3);
    }

    #[test]
    fn content_of_the_wrong_type_is_rejected() {
        let parsed = serde_json::from_str::<ChatRequest<'_>>(
            r#"{"model":"m","messages":[{"role":"user","content":42}]}"#,
        );
        assert!(parsed.is_err());
    }

    #[test]
    fn models_list_is_valid_json() {
        let v: serde_json::Value = serde_json::from_str(MODELS_LIST).unwrap();
        assert_eq!(v["object"], "list");
        assert_eq!(v["data"][0]["object"], "model");
    }
}

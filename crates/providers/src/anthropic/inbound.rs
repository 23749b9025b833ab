//! The other direction, for Tollgate's Anthropic-compatible `/v1/messages`:
//! an Anthropic Messages request becomes Tollgate's (OpenAI-format)
//! [`ChatRequest`], and the OpenAI-format answer, plain or chunk by chunk,
//! becomes Anthropic's message JSON or its SSE event sequence.

use super::wire::{Content, MessagesRequest, System, error_type_of_status};
use crate::chunk::ChatChunk;
use crate::types::{ChatMessage, ChatRequest};
use bytes::Bytes;
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use tollgate_core::money::TokenUsage;

/// How the request is turned into Tollgate's format.
#[derive(Debug, Clone, Copy, Default)]
pub struct InboundOptions {
    /// Every candidate model speaks Anthropic: keep the fields only
    /// Anthropic understands (`thinking`, `top_k`, signed thinking blocks)
    /// so that they reach it; otherwise they are dropped, since
    /// OpenAI-compatible APIs refuse unknown parameters.
    pub keep_anthropic_fields: bool,
}

/// Converts an Anthropic Messages request; the error names the field.
pub fn to_chat_request(
    req: MessagesRequest,
    options: InboundOptions,
) -> Result<ChatRequest, String> {
    if req.max_tokens <= 0 {
        return Err("`max_tokens` must be a positive integer".into());
    }
    let mut messages = Vec::with_capacity(req.messages.len() + 1);
    match req.system {
        Some(System::Text(s)) if !s.is_empty() => {
            messages.push(message("system", Value::String(s)))
        }
        Some(System::Blocks(blocks)) if !blocks.is_empty() => {
            let mut parts = Vec::with_capacity(blocks.len());
            for (i, b) in blocks.into_iter().enumerate() {
                if b.get("type").and_then(Value::as_str) != Some("text") {
                    return Err(format!("`system[{i}]` must be a text block"));
                }
                parts.push(b);
            }
            messages.push(message("system", Value::Array(parts)));
        }
        _ => {}
    }
    if req.messages.is_empty() {
        return Err("`messages` must contain at least one message".into());
    }
    for (i, m) in req.messages.into_iter().enumerate() {
        let at = format!("messages[{i}]");
        match m.role.as_str() {
            "user" => user_messages(m.content, &at, &mut messages)?,
            "assistant" => messages.push(assistant_message(m.content, &at, options)?),
            other => return Err(format!("`{at}.role` `{other}` must be user or assistant")),
        }
    }

    let mut extra = Map::new();
    if let Some(stop) = req.stop_sequences.filter(|s| !s.is_empty()) {
        extra.insert("stop".into(), Value::Array(stop));
    }
    if let Some(t) = req.temperature {
        extra.insert("temperature".into(), json!(t));
    }
    if let Some(p) = req.top_p {
        extra.insert("top_p".into(), json!(p));
    }
    if let Some(user) = req
        .metadata
        .as_ref()
        .and_then(|m| m.get("user_id"))
        .and_then(Value::as_str)
    {
        extra.insert("user".into(), Value::String(user.to_owned()));
    }
    if let Some(tools) = req.tools.filter(|t| !t.is_empty()) {
        extra.insert("tools".into(), Value::Array(openai_tools(tools)?));
    }
    if let Some(choice) = req.tool_choice {
        let (choice, parallel) = openai_tool_choice(&choice)?;
        if let Some(choice) = choice {
            extra.insert("tool_choice".into(), choice);
        }
        if let Some(parallel) = parallel {
            extra.insert("parallel_tool_calls".into(), Value::Bool(parallel));
        }
    }
    if options.keep_anthropic_fields {
        if let Some(k) = req.top_k {
            extra.insert("top_k".into(), json!(k));
        }
        for key in ["thinking", "service_tier"] {
            if let Some(v) = req.extra.get(key) {
                extra.insert(key.into(), v.clone());
            }
        }
    }
    let stream = req.stream;
    Ok(ChatRequest {
        model: req.model,
        messages,
        stream,
        stream_options: stream.then_some(crate::types::StreamOptions {
            include_usage: true,
        }),
        max_tokens: Some(req.max_tokens),
        max_completion_tokens: None,
        extra,
    })
}

fn message(role: &str, content: Value) -> ChatMessage {
    ChatMessage {
        role: role.to_owned(),
        content,
        extra: Map::new(),
    }
}

/// A user turn: its tool results become `tool` messages (they answer the
/// previous assistant turn's calls), the rest one user message.
fn user_messages(content: Content, at: &str, out: &mut Vec<ChatMessage>) -> Result<(), String> {
    let blocks = match content {
        Content::Text(s) => {
            out.push(message("user", Value::String(s)));
            return Ok(());
        }
        Content::Blocks(blocks) => blocks,
    };
    let mut parts = Vec::new();
    for (j, block) in blocks.into_iter().enumerate() {
        let at = format!("{at}.content[{j}]");
        match block.get("type").and_then(Value::as_str) {
            Some("tool_result") => {
                let id = block
                    .get("tool_use_id")
                    .and_then(Value::as_str)
                    .ok_or_else(|| format!("`{at}.tool_use_id` is missing"))?;
                let mut text = tool_result_text(block.get("content"), &at)?;
                if block.get("is_error").and_then(Value::as_bool) == Some(true) {
                    text = format!("Error: {text}");
                }
                let mut m = message("tool", Value::String(text));
                m.extra
                    .insert("tool_call_id".into(), Value::String(id.to_owned()));
                out.push(m);
            }
            _ => parts.push(openai_part(&block, &at)?),
        }
    }
    if !parts.is_empty() {
        out.push(message("user", Value::Array(parts)));
    }
    Ok(())
}

fn tool_result_text(content: Option<&Value>, at: &str) -> Result<String, String> {
    match content {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Array(blocks)) => {
            let mut text = Vec::new();
            for (k, b) in blocks.iter().enumerate() {
                match b.get("type").and_then(Value::as_str) {
                    Some("text") => {
                        text.push(b.get("text").and_then(Value::as_str).unwrap_or_default())
                    }
                    _ => {
                        return Err(format!(
                            "`{at}.content[{k}]`: only text is supported in tool results"
                        ));
                    }
                }
            }
            Ok(text.join("\n"))
        }
        Some(_) => Err(format!("`{at}.content` must be a string or content blocks")),
    }
}

/// An Anthropic content block as an OpenAI content part.
fn openai_part(block: &Value, at: &str) -> Result<Value, String> {
    let source = || {
        block
            .get("source")
            .ok_or_else(|| format!("`{at}.source` is missing"))
    };
    match block.get("type").and_then(Value::as_str) {
        Some("text") => {
            let mut part = json!({"type": "text", "text": block.get("text").and_then(Value::as_str).unwrap_or_default()});
            if let (Some(cc), Some(map)) = (block.get("cache_control"), part.as_object_mut()) {
                map.insert("cache_control".into(), cc.clone());
            }
            Ok(part)
        }
        Some("image") => {
            let source = source()?;
            let url = match source.get("type").and_then(Value::as_str) {
                Some("base64") => format!(
                    "data:{};base64,{}",
                    source
                        .get("media_type")
                        .and_then(Value::as_str)
                        .unwrap_or("image/png"),
                    source
                        .get("data")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                ),
                Some("url") => source
                    .get("url")
                    .and_then(Value::as_str)
                    .ok_or_else(|| format!("`{at}.source.url` is missing"))?
                    .to_owned(),
                _ => return Err(format!("`{at}.source.type` must be base64 or url")),
            };
            Ok(json!({"type": "image_url", "image_url": {"url": url}}))
        }
        Some("document") => {
            let source = source()?;
            match source.get("type").and_then(Value::as_str) {
                Some("base64") => Ok(json!({"type": "file", "file": {
                    "filename": "document.pdf",
                    "file_data": format!(
                        "data:{};base64,{}",
                        source.get("media_type").and_then(Value::as_str).unwrap_or("application/pdf"),
                        source.get("data").and_then(Value::as_str).unwrap_or_default()
                    ),
                }})),
                Some("text") => Ok(json!({"type": "text",
                    "text": source.get("data").and_then(Value::as_str).unwrap_or_default()})),
                _ => Err(format!("`{at}.source.type` must be base64 or text")),
            }
        }
        Some(kind) => Err(format!(
            "`{at}`: content blocks of type `{kind}` are not supported here"
        )),
        None => Err(format!("`{at}.type` is missing")),
    }
}

fn assistant_message(
    content: Content,
    at: &str,
    options: InboundOptions,
) -> Result<ChatMessage, String> {
    let blocks = match content {
        Content::Text(s) => return Ok(message("assistant", Value::String(s))),
        Content::Blocks(blocks) => blocks,
    };
    let mut text = String::new();
    let mut tool_calls = Vec::new();
    let mut thinking = Vec::new();
    for (j, block) in blocks.into_iter().enumerate() {
        let at = format!("{at}.content[{j}]");
        match block.get("type").and_then(Value::as_str) {
            Some("text") => text.push_str(
                block
                    .get("text")
                    .and_then(Value::as_str)
                    .unwrap_or_default(),
            ),
            Some("tool_use") => {
                let id = block
                    .get("id")
                    .and_then(Value::as_str)
                    .ok_or_else(|| format!("`{at}.id` is missing"))?;
                let name = block
                    .get("name")
                    .and_then(Value::as_str)
                    .ok_or_else(|| format!("`{at}.name` is missing"))?;
                let input = block.get("input").cloned().unwrap_or_else(|| json!({}));
                tool_calls.push(json!({"id": id, "type": "function",
                    "function": {"name": name, "arguments": input.to_string()}}));
            }
            // Only a signed thinking block can go back to Anthropic.
            Some("thinking" | "redacted_thinking") => {
                if options.keep_anthropic_fields
                    && ["signature", "data"].iter().any(|k| {
                        block
                            .get(*k)
                            .and_then(Value::as_str)
                            .is_some_and(|s| !s.is_empty())
                    })
                {
                    thinking.push(block);
                }
            }
            Some(kind) => {
                return Err(format!(
                    "`{at}`: content blocks of type `{kind}` are not supported here"
                ));
            }
            None => return Err(format!("`{at}.type` is missing")),
        }
    }
    let content = if text.is_empty() && !tool_calls.is_empty() {
        Value::Null
    } else {
        Value::String(text)
    };
    let mut m = message("assistant", content);
    if !tool_calls.is_empty() {
        m.extra
            .insert("tool_calls".into(), Value::Array(tool_calls));
    }
    if !thinking.is_empty() {
        m.extra
            .insert("thinking_blocks".into(), Value::Array(thinking));
    }
    Ok(m)
}

fn openai_tools(tools: Vec<Value>) -> Result<Vec<Value>, String> {
    tools
        .into_iter()
        .enumerate()
        .map(|(i, tool)| {
            if let Some(kind) = tool.get("type").and_then(Value::as_str)
                && kind != "custom" {
                    return Err(format!(
                        "`tools[{i}]`: server tools (`{kind}`) are not supported through this gateway"
                    ));
                }
            let name = tool.get("name").and_then(Value::as_str).ok_or_else(|| format!("`tools[{i}].name` is missing"))?;
            let mut function = json!({
                "name": name,
                "parameters": tool.get("input_schema").cloned().unwrap_or_else(|| json!({"type": "object", "properties": {}})),
            });
            if let (Some(d), Some(map)) = (tool.get("description"), function.as_object_mut()) {
                map.insert("description".into(), d.clone());
            }
            let mut out = json!({"type": "function", "function": function});
            // Kept beside the function, where the Anthropic adapter reads it.
            if let (Some(cc), Some(map)) = (tool.get("cache_control"), out.as_object_mut()) {
                map.insert("cache_control".into(), cc.clone());
            }
            Ok(out)
        })
        .collect()
}

/// Anthropic's `tool_choice` as OpenAI's, and `parallel_tool_calls`.
fn openai_tool_choice(choice: &Value) -> Result<(Option<Value>, Option<bool>), String> {
    let parallel = choice
        .get("disable_parallel_tool_use")
        .and_then(Value::as_bool)
        .map(|disabled| !disabled);
    let mapped = match choice.get("type").and_then(Value::as_str) {
        Some("auto") => json!("auto"),
        Some("any") => json!("required"),
        Some("none") => json!("none"),
        Some("tool") => {
            let name = choice
                .get("name")
                .and_then(Value::as_str)
                .ok_or("`tool_choice.name` is missing")?;
            json!({"type": "function", "function": {"name": name}})
        }
        _ => return Err("`tool_choice.type` must be auto, any, tool or none".into()),
    };
    Ok((Some(mapped), parallel))
}

/// OpenAI's `finish_reason` as Anthropic's `stop_reason`.
pub fn stop_reason(finish_reason: Option<&str>) -> &'static str {
    match finish_reason {
        Some("length") => "max_tokens",
        Some("tool_calls" | "function_call") => "tool_use",
        Some("content_filter") => "refusal",
        _ => "end_turn",
    }
}

/// Anthropic's `usage` for a call's token counts.
pub fn anthropic_usage(usage: &TokenUsage) -> Value {
    let prompt = usage.prompt_tokens.max(0);
    let cached = usage.cached_prompt_tokens.clamp(0, prompt);
    let written = usage.cache_write_tokens.clamp(0, prompt - cached);
    json!({
        "input_tokens": prompt - cached - written,
        "cache_creation_input_tokens": written,
        "cache_read_input_tokens": cached,
        "output_tokens": usage.completion_tokens,
    })
}

/// A message id in Anthropic's style for an OpenAI completion id.
fn message_id(openai_id: Option<&str>) -> String {
    match openai_id {
        Some(id) if id.starts_with("msg_") => id.to_owned(),
        Some(id) if !id.is_empty() => format!("msg_{id}"),
        _ => "msg_tollgate".to_owned(),
    }
}

/// A complete OpenAI `chat.completion` as an Anthropic message; `model` is
/// the name the client asked for.
pub fn message_from_completion(completion: &Value, model: &str, usage: &TokenUsage) -> Value {
    let choice = completion.get("choices").and_then(|c| c.get(0));
    let msg = choice.and_then(|c| c.get("message"));
    let mut content = Vec::new();
    if let Some(reasoning) = msg
        .and_then(|m| m.get("reasoning_content"))
        .and_then(Value::as_str)
        .filter(|r| !r.is_empty())
    {
        content.push(json!({"type": "thinking", "thinking": reasoning, "signature": ""}));
    }
    let text = crate::common::message_text(msg);
    if !text.is_empty() {
        content.push(json!({"type": "text", "text": text}));
    }
    if let Some(calls) = msg
        .and_then(|m| m.get("tool_calls"))
        .and_then(Value::as_array)
    {
        for call in calls {
            let function = call.get("function");
            let arguments = function
                .and_then(|f| f.get("arguments"))
                .and_then(Value::as_str)
                .unwrap_or("{}");
            let input = serde_json::from_str::<Value>(arguments)
                .ok()
                .filter(Value::is_object)
                .unwrap_or_else(|| json!({}));
            content.push(json!({
                "type": "tool_use",
                "id": call.get("id").and_then(Value::as_str).unwrap_or_default(),
                "name": function.and_then(|f| f.get("name")).and_then(Value::as_str).unwrap_or_default(),
                "input": input,
            }));
        }
    }
    let finish = choice
        .and_then(|c| c.get("finish_reason"))
        .and_then(Value::as_str);
    json!({
        "id": message_id(completion.get("id").and_then(Value::as_str)),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason(finish),
        "stop_sequence": null,
        "usage": anthropic_usage(usage),
    })
}

/// An Anthropic error body, `{"type":"error","error":{"type","message"}}`.
pub fn error_body(status: u16, message: &str) -> Value {
    json!({"type": "error", "error": {"type": error_type_of_status(status), "message": message}})
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Block {
    Text,
    Thinking,
    Tool,
}

/// Writes Anthropic's SSE event sequence for an OpenAI chunk stream, chunk
/// by chunk: `message_start`, then for each run of text, thinking or tool
/// arguments a `content_block_start`, its deltas and `content_block_stop`,
/// then `message_delta` (stop reason and usage) and `message_stop`.
#[derive(Debug)]
pub struct SseEncoder {
    model: String,
    started: bool,
    /// The open block: its index and kind.
    open: Option<(usize, Block)>,
    next_index: usize,
    /// OpenAI tool call index → block index.
    tools: HashMap<u64, usize>,
    finish_reason: Option<String>,
    usage: Option<TokenUsage>,
}

pub use crate::sse::encode_event as sse_event;

impl SseEncoder {
    /// `model`: the name the client asked for.
    pub fn new(model: &str) -> SseEncoder {
        SseEncoder {
            model: model.to_owned(),
            started: false,
            open: None,
            next_index: 0,
            tools: HashMap::new(),
            finish_reason: None,
            usage: None,
        }
    }

    fn start(&mut self, id: Option<&str>, out: &mut Vec<Bytes>) {
        if self.started {
            return;
        }
        self.started = true;
        out.push(sse_event(
            "message_start",
            &json!({"type": "message_start", "message": {
                "id": message_id(id),
                "type": "message",
                "role": "assistant",
                "model": self.model,
                "content": [],
                "stop_reason": null,
                "stop_sequence": null,
                "usage": {"input_tokens": 0, "output_tokens": 0},
            }}),
        ));
    }

    fn close(&mut self, out: &mut Vec<Bytes>) {
        if let Some((index, _)) = self.open.take() {
            out.push(sse_event(
                "content_block_stop",
                &json!({"type": "content_block_stop", "index": index}),
            ));
        }
    }

    /// The index of an open block of this kind, opening one if needed.
    fn block(&mut self, kind: Block, start: Value, out: &mut Vec<Bytes>) -> usize {
        if let Some((index, open)) = self.open
            && open == kind
            && kind != Block::Tool
        {
            return index;
        }
        self.close(out);
        let index = self.next_index;
        self.next_index += 1;
        self.open = Some((index, kind));
        out.push(sse_event(
            "content_block_start",
            &json!({"type": "content_block_start", "index": index, "content_block": start}),
        ));
        index
    }

    fn delta(index: usize, delta: Value) -> Bytes {
        sse_event(
            "content_block_delta",
            &json!({"type": "content_block_delta", "index": index, "delta": delta}),
        )
    }

    /// The events for one OpenAI chunk (its JSON text).
    pub fn chunk(&mut self, data: &[u8]) -> Vec<Bytes> {
        let mut out = Vec::new();
        let Some(chunk) = ChatChunk::parse(data) else {
            return out;
        };
        self.start(chunk.id.as_deref(), &mut out);
        if chunk.usage.is_some() {
            self.usage = chunk.usage;
        }
        if let Some(thinking) = chunk.delta.reasoning() {
            let index = self.block(
                Block::Thinking,
                json!({"type": "thinking", "thinking": ""}),
                &mut out,
            );
            out.push(Self::delta(
                index,
                json!({"type": "thinking_delta", "thinking": thinking}),
            ));
        }
        if let Some(text) = chunk.delta.text() {
            let index = self.block(Block::Text, json!({"type": "text", "text": ""}), &mut out);
            out.push(Self::delta(
                index,
                json!({"type": "text_delta", "text": text}),
            ));
        }
        for call in &chunk.delta.tool_calls {
            let index = match self.tools.get(&call.index) {
                Some(&index) => index,
                None => {
                    let start = json!({
                        "type": "tool_use",
                        "id": call.id(),
                        "name": call.name(),
                        "input": {},
                    });
                    let index = self.block(Block::Tool, start, &mut out);
                    self.tools.insert(call.index, index);
                    index
                }
            };
            if let Some(args) = call.arguments() {
                out.push(Self::delta(
                    index,
                    json!({"type": "input_json_delta", "partial_json": args}),
                ));
            }
        }
        if let Some(finish) = chunk.finish_reason {
            self.finish_reason = Some(finish);
        }
        out
    }

    /// The closing events of a complete answer; `usage` is the call's
    /// billed usage when known (else the one seen in the chunks).
    pub fn finish(&mut self, usage: Option<TokenUsage>) -> Vec<Bytes> {
        let mut out = Vec::new();
        self.start(None, &mut out);
        self.close(&mut out);
        let usage = usage.or(self.usage).unwrap_or_default();
        out.push(sse_event(
            "message_delta",
            &json!({"type": "message_delta",
                "delta": {"stop_reason": stop_reason(self.finish_reason.as_deref()), "stop_sequence": null},
                "usage": anthropic_usage(&usage)}),
        ));
        out.push(sse_event("message_stop", &json!({"type": "message_stop"})));
        out
    }

    /// An `error` event, for a stream that broke off.
    pub fn error(&mut self, status: u16, message: &str) -> Vec<Bytes> {
        let mut out = Vec::new();
        self.start(None, &mut out);
        out.push(sse_event("error", &error_body(status, message)));
        out
    }
}

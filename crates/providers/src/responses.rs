//! OpenAI's Responses API in front of any model, for Tollgate's
//! `/v1/responses`: a Responses request becomes Tollgate's (OpenAI Chat)
//! [`ChatRequest`], and the Chat answer, plain or chunk by chunk, becomes a
//! Responses object or the Responses SSE event sequence (`response.created`,
//! `response.in_progress`, `response.output_item.added`,
//! `response.content_part.added`, `response.output_text.delta` / `.done`,
//! `response.function_call_arguments.delta` / `.done`,
//! `response.output_item.done`, `response.completed` with usage).

use crate::chunk::{ChatChunk, ToolCallDelta};
use crate::common::unix_now;
use crate::types::{ChatMessage, ChatRequest, StreamOptions};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use tollgate_core::money::TokenUsage;

/// A Responses request, with the fields Tollgate reads typed.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ResponsesRequest {
    pub model: String,
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub input: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instructions: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallel_tool_calls: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
    /// OpenAI's default: stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_response_id: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stream: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ResponsesRequest {
    pub fn store(&self) -> bool {
        self.store.unwrap_or(true)
    }
}

/// What a Responses object echoes of its request, and its identity.
#[derive(Debug, Clone)]
pub struct ResponseContext {
    pub id: String,
    /// The model the client asked for.
    pub model: String,
    pub created_at: u64,
    skeleton: Value,
}

impl ResponseContext {
    /// `id`: the new response's id (`resp_…`).
    pub fn new(id: String, req: &ResponsesRequest) -> ResponseContext {
        let created_at = unix_now();
        let format = req
            .text
            .as_ref()
            .and_then(|t| t.get("format"))
            .cloned()
            .unwrap_or_else(|| json!({"type": "text"}));
        let skeleton = json!({
            "id": id,
            "object": "response",
            "created_at": created_at,
            "status": "in_progress",
            "error": null,
            "incomplete_details": null,
            "instructions": req.instructions,
            "max_output_tokens": req.max_output_tokens,
            "model": req.model,
            "output": [],
            "parallel_tool_calls": req.parallel_tool_calls.unwrap_or(true),
            "previous_response_id": req.previous_response_id,
            "reasoning": {
                "effort": req.reasoning.as_ref().and_then(|r| r.get("effort")).cloned().unwrap_or(Value::Null),
                "summary": null,
            },
            "store": req.store(),
            "temperature": req.temperature.unwrap_or(1.0),
            "text": {"format": format},
            "tool_choice": req.tool_choice.clone().unwrap_or_else(|| json!("auto")),
            "tools": req.tools.clone().unwrap_or_default(),
            "top_p": req.top_p.unwrap_or(1.0),
            "truncation": "disabled",
            "usage": null,
            "user": req.user,
            "metadata": req.metadata.clone().unwrap_or_else(|| json!({})),
        });
        ResponseContext {
            id,
            model: req.model.clone(),
            created_at,
            skeleton,
        }
    }

    /// The Responses object with this status, output and usage.
    fn object(&self, status: &str, output: Vec<Value>, usage: Option<&TokenUsage>) -> Value {
        let mut object = self.skeleton.clone();
        if let Some(map) = object.as_object_mut() {
            map.insert("status".into(), json!(status));
            map.insert("output".into(), Value::Array(output));
            if status == "incomplete" {
                map.insert(
                    "incomplete_details".into(),
                    json!({"reason": "max_output_tokens"}),
                );
            }
            if let Some(usage) = usage {
                map.insert("usage".into(), responses_usage(usage));
            }
        }
        object
    }
}

/// The Responses `usage` object.
pub fn responses_usage(usage: &TokenUsage) -> Value {
    json!({
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": {"cached_tokens": usage.cached_prompt_tokens},
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": usage.total(),
    })
}

fn message(role: &str, content: Value) -> ChatMessage {
    ChatMessage {
        role: role.to_owned(),
        content,
        extra: Map::new(),
    }
}

/// Converts a Responses request; `history` is the conversation of its
/// `previous_response_id` (empty without one). The error names the field.
pub fn to_chat_request(
    req: &ResponsesRequest,
    history: Vec<ChatMessage>,
) -> Result<ChatRequest, String> {
    let mut messages = Vec::new();
    // Instructions are not carried over from a previous response (OpenAI's
    // rule), so they go first, ahead of the history's own turns.
    if let Some(instructions) = req.instructions.as_deref().filter(|s| !s.is_empty()) {
        messages.push(message("system", Value::String(instructions.to_owned())));
    }
    messages.extend(history);
    match &req.input {
        Value::String(s) => messages.push(message("user", Value::String(s.clone()))),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                input_item(item, &format!("input[{i}]"), &mut messages)?;
            }
        }
        Value::Null => {}
        _ => return Err("`input` must be a string or an array of input items".into()),
    }
    if messages.iter().all(|m| m.role == "system") {
        return Err("`input` must contain at least one message".into());
    }

    let mut extra = Map::new();
    if let Some(tools) = req.tools.as_ref().filter(|t| !t.is_empty()) {
        extra.insert("tools".into(), Value::Array(chat_tools(tools)?));
    }
    if let Some(choice) = &req.tool_choice {
        extra.insert("tool_choice".into(), chat_tool_choice(choice)?);
    }
    if let Some(parallel) = req.parallel_tool_calls {
        extra.insert("parallel_tool_calls".into(), Value::Bool(parallel));
    }
    if let Some(format) = req.text.as_ref().and_then(|t| t.get("format"))
        && let Some(response_format) = response_format(format)?
    {
        extra.insert("response_format".into(), response_format);
    }
    if let Some(effort) = req.reasoning.as_ref().and_then(|r| r.get("effort")) {
        match effort {
            Value::String(_) => {
                extra.insert("reasoning_effort".into(), effort.clone());
            }
            Value::Null => {}
            _ => return Err("`reasoning.effort` must be a string".into()),
        }
    }
    if let Some(t) = req.temperature {
        extra.insert("temperature".into(), json!(t));
    }
    if let Some(p) = req.top_p {
        extra.insert("top_p".into(), json!(p));
    }
    if let Some(user) = &req.user {
        extra.insert("user".into(), Value::String(user.clone()));
    }
    if req.max_output_tokens.is_some_and(|n| n <= 0) {
        return Err("`max_output_tokens` must be a positive integer".into());
    }
    Ok(ChatRequest {
        model: req.model.clone(),
        messages,
        stream: req.stream,
        stream_options: req.stream.then_some(StreamOptions {
            include_usage: true,
        }),
        max_tokens: req.max_output_tokens,
        max_completion_tokens: None,
        extra,
    })
}

/// `text.format` as Chat's `response_format` (`None` for plain text).
fn response_format(format: &Value) -> Result<Option<Value>, String> {
    match format.get("type").and_then(Value::as_str) {
        Some("text") | None => Ok(None),
        Some("json_object") => Ok(Some(json!({"type": "json_object"}))),
        Some("json_schema") => {
            let schema = format
                .get("schema")
                .filter(|s| s.is_object())
                .ok_or("`text.format.schema` must be a JSON schema object")?;
            let mut json_schema = Map::new();
            json_schema.insert(
                "name".into(),
                format
                    .get("name")
                    .cloned()
                    .unwrap_or_else(|| json!("response")),
            );
            json_schema.insert("schema".into(), schema.clone());
            for key in ["strict", "description"] {
                if let Some(v) = format.get(key) {
                    json_schema.insert(key.into(), v.clone());
                }
            }
            Ok(Some(
                json!({"type": "json_schema", "json_schema": json_schema}),
            ))
        }
        Some(other) => Err(format!(
            "`text.format.type` `{other}` must be text, json_object or json_schema"
        )),
    }
}

fn chat_tools(tools: &[Value]) -> Result<Vec<Value>, String> {
    tools
        .iter()
        .enumerate()
        .map(|(i, tool)| {
            match tool.get("type").and_then(Value::as_str) {
                Some("function") => {}
                Some(kind) => {
                    return Err(format!(
                        "`tools[{i}]`: built-in tools (`{kind}`) are not supported through this gateway; use function tools"
                    ));
                }
                None => return Err(format!("`tools[{i}].type` is missing")),
            }
            let name = tool
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| format!("`tools[{i}].name` is missing"))?;
            let mut function = Map::new();
            function.insert("name".into(), json!(name));
            function.insert(
                "parameters".into(),
                tool.get("parameters")
                    .filter(|p| p.is_object())
                    .cloned()
                    .unwrap_or_else(|| json!({"type": "object", "properties": {}})),
            );
            for key in ["description", "strict"] {
                if let Some(v) = tool.get(key).filter(|v| !v.is_null()) {
                    function.insert(key.into(), v.clone());
                }
            }
            Ok(json!({"type": "function", "function": function}))
        })
        .collect()
}

fn chat_tool_choice(choice: &Value) -> Result<Value, String> {
    match choice {
        Value::String(s) if matches!(s.as_str(), "auto" | "none" | "required") => {
            Ok(choice.clone())
        }
        Value::Object(o) if o.get("type").and_then(Value::as_str) == Some("function") => {
            let name = o
                .get("name")
                .and_then(Value::as_str)
                .ok_or("`tool_choice.name` is missing")?;
            Ok(json!({"type": "function", "function": {"name": name}}))
        }
        _ => Err(
            "`tool_choice` must be auto, none, required or {\"type\": \"function\", \"name\"}"
                .into(),
        ),
    }
}

/// One input item, appended to `out` as Chat messages.
fn input_item(item: &Value, at: &str, out: &mut Vec<ChatMessage>) -> Result<(), String> {
    let kind = item.get("type").and_then(Value::as_str);
    match kind {
        Some("message") | None if item.get("role").is_some() => {
            let role = item.get("role").and_then(Value::as_str).unwrap_or_default();
            if !matches!(role, "user" | "system" | "developer" | "assistant") {
                return Err(format!(
                    "`{at}.role` must be user, system, developer or assistant"
                ));
            }
            let content = match item.get("content") {
                Some(Value::String(s)) => Value::String(s.clone()),
                Some(Value::Array(parts)) => {
                    if role == "assistant" {
                        Value::String(assistant_text(parts, at)?)
                    } else {
                        let mut out = Vec::with_capacity(parts.len());
                        for (j, part) in parts.iter().enumerate() {
                            out.push(chat_part(part, &format!("{at}.content[{j}]"))?);
                        }
                        Value::Array(out)
                    }
                }
                _ => {
                    return Err(format!(
                        "`{at}.content` must be a string or an array of content parts"
                    ));
                }
            };
            out.push(message(role, content));
            Ok(())
        }
        Some("function_call") => {
            let field = |k: &str| {
                item.get(k)
                    .and_then(Value::as_str)
                    .ok_or_else(|| format!("`{at}.{k}` is missing"))
            };
            let call = json!({
                "id": field("call_id")?,
                "type": "function",
                "function": {"name": field("name")?, "arguments": item.get("arguments").and_then(Value::as_str).unwrap_or("{}")},
            });
            // Calls of one turn go in one assistant message.
            match out.last_mut() {
                Some(last) if last.role == "assistant" => {
                    let calls = last
                        .extra
                        .entry("tool_calls")
                        .or_insert_with(|| Value::Array(Vec::new()));
                    if let Value::Array(calls) = calls {
                        calls.push(call);
                    }
                }
                _ => {
                    let mut m = message("assistant", Value::Null);
                    m.extra
                        .insert("tool_calls".into(), Value::Array(vec![call]));
                    out.push(m);
                }
            }
            Ok(())
        }
        Some("function_call_output") => {
            let id = item
                .get("call_id")
                .and_then(Value::as_str)
                .ok_or_else(|| format!("`{at}.call_id` is missing"))?;
            let output = match item.get("output") {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Array(parts)) => parts
                    .iter()
                    .filter_map(|p| p.get("text").and_then(Value::as_str))
                    .collect::<Vec<_>>()
                    .join("\n"),
                _ => return Err(format!("`{at}.output` must be a string")),
            };
            let mut m = message("tool", Value::String(output));
            m.extra
                .insert("tool_call_id".into(), Value::String(id.to_owned()));
            out.push(m);
            Ok(())
        }
        // Reasoning items only mean something to the model that wrote them.
        Some("reasoning") => Ok(()),
        Some("item_reference") => Err(format!(
            "`{at}`: item references are not supported; use previous_response_id or send the items"
        )),
        Some(other) => Err(format!(
            "`{at}.type` `{other}` is not supported here (message, function_call, function_call_output)"
        )),
        None => Err(format!("`{at}` must be a message or an item with a `type`")),
    }
}

fn assistant_text(parts: &[Value], at: &str) -> Result<String, String> {
    let mut text = String::new();
    for (j, part) in parts.iter().enumerate() {
        match part.get("type").and_then(Value::as_str) {
            Some("output_text" | "input_text" | "text") => {
                text.push_str(part.get("text").and_then(Value::as_str).unwrap_or_default())
            }
            Some("refusal") => text.push_str(
                part.get("refusal")
                    .and_then(Value::as_str)
                    .unwrap_or_default(),
            ),
            _ => return Err(format!("`{at}.content[{j}]` must be output_text")),
        }
    }
    Ok(text)
}

/// A Responses content part as a Chat content part.
fn chat_part(part: &Value, at: &str) -> Result<Value, String> {
    match part.get("type").and_then(Value::as_str) {
        Some("input_text" | "output_text" | "text") => {
            let mut out = json!({"type": "text", "text": part.get("text").and_then(Value::as_str).unwrap_or_default()});
            if let (Some(cc), Some(map)) = (part.get("cache_control"), out.as_object_mut()) {
                map.insert("cache_control".into(), cc.clone());
            }
            Ok(out)
        }
        Some("input_image") => {
            let url = part
                .get("image_url")
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    format!("`{at}.image_url` is missing (file ids are not supported)")
                })?;
            let mut image = json!({"url": url});
            if let (Some(detail), Some(map)) = (part.get("detail"), image.as_object_mut()) {
                map.insert("detail".into(), detail.clone());
            }
            Ok(json!({"type": "image_url", "image_url": image}))
        }
        Some("input_file") => {
            let data = part
                .get("file_data")
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    format!("`{at}.file_data` is missing (file ids are not supported)")
                })?;
            Ok(json!({"type": "file", "file": {
                "filename": part.get("filename").and_then(Value::as_str).unwrap_or("document.pdf"),
                "file_data": data,
            }}))
        }
        Some(kind) => Err(format!(
            "`{at}`: content parts of type `{kind}` are not supported"
        )),
        None => Err(format!("`{at}.type` is missing")),
    }
}

fn item_id(prefix: &str, response_id: &str, n: usize) -> String {
    let base = response_id.strip_prefix("resp_").unwrap_or(response_id);
    format!("{prefix}_{base}_{n}")
}

fn output_text_part(text: &str) -> Value {
    json!({"type": "output_text", "text": text, "annotations": [], "logprobs": []})
}

fn message_item(id: &str, status: &str, text: Option<&str>) -> Value {
    let content = match text {
        Some(t) => vec![output_text_part(t)],
        None => Vec::new(),
    };
    json!({"type": "message", "id": id, "status": status, "role": "assistant", "content": content})
}

fn function_call_item(id: &str, call_id: &str, name: &str, arguments: &str, status: &str) -> Value {
    json!({"type": "function_call", "id": id, "call_id": call_id, "name": name,
        "arguments": arguments, "status": status})
}

/// A complete Chat `chat.completion` as a Responses object.
pub fn response_from_completion(
    completion: &Value,
    context: &ResponseContext,
    usage: &TokenUsage,
) -> Value {
    let choice = completion.get("choices").and_then(|c| c.get(0));
    let msg = choice.and_then(|c| c.get("message"));
    let mut output = Vec::new();
    let text = crate::common::message_text(msg);
    if !text.is_empty() {
        output.push(message_item(
            &item_id("msg", &context.id, 0),
            "completed",
            Some(&text),
        ));
    }
    if let Some(calls) = msg
        .and_then(|m| m.get("tool_calls"))
        .and_then(Value::as_array)
    {
        for call in calls {
            let function = call.get("function");
            let n = output.len();
            output.push(function_call_item(
                &item_id("fc", &context.id, n),
                call.get("id").and_then(Value::as_str).unwrap_or_default(),
                function
                    .and_then(|f| f.get("name"))
                    .and_then(Value::as_str)
                    .unwrap_or_default(),
                function
                    .and_then(|f| f.get("arguments"))
                    .and_then(Value::as_str)
                    .unwrap_or("{}"),
                "completed",
            ));
        }
    }
    let finish = choice
        .and_then(|c| c.get("finish_reason"))
        .and_then(Value::as_str);
    let status = if finish == Some("length") {
        "incomplete"
    } else {
        "completed"
    };
    context.object(status, output, Some(usage))
}

/// The assistant turn of a Responses object as a Chat message, for a
/// follow-up that names it in `previous_response_id`.
pub fn assistant_message(response: &Value) -> ChatMessage {
    let mut text = String::new();
    let mut calls = Vec::new();
    for item in response
        .get("output")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        match item.get("type").and_then(Value::as_str) {
            Some("message") => {
                for part in item
                    .get("content")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    text.push_str(part.get("text").and_then(Value::as_str).unwrap_or_default());
                }
            }
            Some("function_call") => calls.push(json!({
                "id": item.get("call_id").cloned().unwrap_or(Value::Null),
                "type": "function",
                "function": {"name": item.get("name").cloned().unwrap_or(Value::Null),
                    "arguments": item.get("arguments").cloned().unwrap_or_else(|| json!("{}"))},
            })),
            _ => {}
        }
    }
    let content = if text.is_empty() && !calls.is_empty() {
        Value::Null
    } else {
        Value::String(text)
    };
    let mut m = message("assistant", content);
    if !calls.is_empty() {
        m.extra.insert("tool_calls".into(), Value::Array(calls));
    }
    m
}

/// An OpenAI-shaped error body, as the Responses API answers.
pub fn error_body(message: &str, kind: &str, code: &str) -> Value {
    json!({"error": {"message": message, "type": kind, "param": null, "code": code}})
}

/// One SSE event named for its `type`, with its JSON `data`.
fn sse_event(data: &Value) -> Bytes {
    let name = data
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("message");
    crate::sse::encode_event(name, data)
}

/// An output item being streamed.
#[derive(Debug)]
enum Open {
    Message {
        index: usize,
        id: String,
        text: String,
    },
    Call {
        index: usize,
        id: String,
        call_id: String,
        name: String,
        arguments: String,
        /// The Chat tool call index it continues.
        chat_index: u64,
    },
}

/// Writes the Responses SSE event sequence for a Chat chunk stream, chunk by
/// chunk, and keeps the output so that the final object can be stored.
#[derive(Debug)]
pub struct SseEncoder {
    context: ResponseContext,
    sequence: u64,
    started: bool,
    open: Option<Open>,
    output: Vec<Value>,
    finish_reason: Option<String>,
    usage: Option<TokenUsage>,
}

impl SseEncoder {
    pub fn new(context: ResponseContext) -> SseEncoder {
        SseEncoder {
            context,
            sequence: 0,
            started: false,
            open: None,
            output: Vec::new(),
            finish_reason: None,
            usage: None,
        }
    }

    fn emit(&mut self, mut data: Value, out: &mut Vec<Bytes>) {
        if let Some(map) = data.as_object_mut() {
            map.insert("sequence_number".into(), json!(self.sequence));
        }
        self.sequence += 1;
        out.push(sse_event(&data));
    }

    fn start(&mut self, out: &mut Vec<Bytes>) {
        if self.started {
            return;
        }
        self.started = true;
        let object = self.context.object("in_progress", Vec::new(), None);
        self.emit(json!({"type": "response.created", "response": object}), out);
        self.emit(
            json!({"type": "response.in_progress", "response": object}),
            out,
        );
    }

    /// Closes the open output item: its `.done` events.
    fn close(&mut self, out: &mut Vec<Bytes>) {
        match self.open.take() {
            Some(Open::Message { index, id, text }) => {
                self.emit(
                    json!({"type": "response.output_text.done", "item_id": id, "output_index": index,
                        "content_index": 0, "text": text, "logprobs": []}),
                    out,
                );
                self.emit(
                    json!({"type": "response.content_part.done", "item_id": id, "output_index": index,
                        "content_index": 0, "part": output_text_part(&text)}),
                    out,
                );
                let item = message_item(&id, "completed", Some(&text));
                self.emit(
                    json!({"type": "response.output_item.done", "output_index": index, "item": item}),
                    out,
                );
                self.output.push(item);
            }
            Some(Open::Call {
                index,
                id,
                call_id,
                name,
                arguments,
                ..
            }) => {
                self.emit(
                    json!({"type": "response.function_call_arguments.done", "item_id": id,
                        "output_index": index, "name": name, "arguments": arguments}),
                    out,
                );
                let item = function_call_item(&id, &call_id, &name, &arguments, "completed");
                self.emit(
                    json!({"type": "response.output_item.done", "output_index": index, "item": item}),
                    out,
                );
                self.output.push(item);
            }
            None => {}
        }
    }

    fn text(&mut self, delta: &str, out: &mut Vec<Bytes>) {
        if !matches!(self.open, Some(Open::Message { .. })) {
            self.close(out);
            let index = self.output.len();
            let id = item_id("msg", &self.context.id, index);
            self.emit(
                json!({"type": "response.output_item.added", "output_index": index,
                    "item": message_item(&id, "in_progress", None)}),
                out,
            );
            self.emit(
                json!({"type": "response.content_part.added", "item_id": id, "output_index": index,
                    "content_index": 0, "part": output_text_part("")}),
                out,
            );
            self.open = Some(Open::Message {
                index,
                id,
                text: String::new(),
            });
        }
        let Some(Open::Message { index, id, text }) = &mut self.open else {
            return;
        };
        text.push_str(delta);
        let event = json!({"type": "response.output_text.delta", "item_id": id, "output_index": index,
            "content_index": 0, "delta": delta, "logprobs": []});
        self.emit(event, out);
    }

    fn tool_call(&mut self, call: &ToolCallDelta, out: &mut Vec<Bytes>) {
        let chat_index = call.index;
        let continues =
            matches!(&self.open, Some(Open::Call { chat_index: c, .. }) if *c == chat_index);
        if !continues {
            self.close(out);
            let index = self.output.len();
            let id = item_id("fc", &self.context.id, index);
            let call_id = call.id().to_owned();
            let name = call.name().to_owned();
            self.emit(
                json!({"type": "response.output_item.added", "output_index": index,
                    "item": function_call_item(&id, &call_id, &name, "", "in_progress")}),
                out,
            );
            self.open = Some(Open::Call {
                index,
                id,
                call_id,
                name,
                arguments: String::new(),
                chat_index,
            });
        }
        let Some(delta) = call.arguments() else {
            return;
        };
        let Some(Open::Call {
            index,
            id,
            arguments,
            ..
        }) = &mut self.open
        else {
            return;
        };
        arguments.push_str(delta);
        let event = json!({"type": "response.function_call_arguments.delta", "item_id": id,
            "output_index": index, "delta": delta});
        self.emit(event, out);
    }

    /// The events for one Chat chunk (its JSON text).
    pub fn chunk(&mut self, data: &[u8]) -> Vec<Bytes> {
        let mut out = Vec::new();
        let Some(chunk) = ChatChunk::parse(data) else {
            return out;
        };
        self.start(&mut out);
        if chunk.usage.is_some() {
            self.usage = chunk.usage;
        }
        if let Some(text) = chunk.delta.text() {
            self.text(text, &mut out);
        }
        for call in &chunk.delta.tool_calls {
            self.tool_call(call, &mut out);
        }
        if let Some(finish) = chunk.finish_reason {
            self.finish_reason = Some(finish);
        }
        out
    }

    /// The closing events of a complete answer (`response.completed`, or
    /// `response.incomplete` when cut at the token limit), and the final
    /// Responses object; `usage`: the call's billed usage when known.
    pub fn finish(&mut self, usage: Option<TokenUsage>) -> (Vec<Bytes>, Value) {
        let mut out = Vec::new();
        self.start(&mut out);
        self.close(&mut out);
        let usage = usage.or(self.usage).unwrap_or_default();
        let (status, kind) = if self.finish_reason.as_deref() == Some("length") {
            ("incomplete", "response.incomplete")
        } else {
            ("completed", "response.completed")
        };
        let object = self
            .context
            .object(status, std::mem::take(&mut self.output), Some(&usage));
        self.emit(json!({"type": kind, "response": object}), &mut out);
        (out, object)
    }

    /// A `response.failed` event, for a stream that broke off.
    pub fn error(&mut self, message: &str) -> Vec<Bytes> {
        let mut out = Vec::new();
        self.start(&mut out);
        self.close(&mut out);
        let mut object = self
            .context
            .object("failed", std::mem::take(&mut self.output), None);
        if let Some(map) = object.as_object_mut() {
            map.insert(
                "error".into(),
                json!({"code": "server_error", "message": message}),
            );
        }
        self.emit(
            json!({"type": "response.failed", "response": object}),
            &mut out,
        );
        out
    }
}

pub mod items;
pub mod native;

#[cfg(test)]
mod tests;

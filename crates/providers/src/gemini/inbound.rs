//! The other direction, for Tollgate's Gemini-compatible `/v1beta/models/…`:
//! a `generateContent` request becomes Tollgate's (OpenAI Chat)
//! [`ChatRequest`], and the Chat answer, plain or chunk by chunk, becomes a
//! `GenerateContentResponse` or the `streamGenerateContent?alt=sse` chunks.
//! Also `embedContent` to an embeddings request, and Google's error shape.

use super::wire::{Content, GenerateContentRequest};
use crate::chunk::ChatChunk;
use crate::types::{ChatMessage, ChatRequest, EmbeddingRequest, StreamOptions};
use bytes::Bytes;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use tollgate_core::money::TokenUsage;

fn message(role: &str, content: Value) -> ChatMessage {
    ChatMessage {
        role: role.to_owned(),
        content,
        extra: Map::new(),
    }
}

/// The text of a content's parts, joined.
fn text_of(content: &Content) -> String {
    content
        .parts
        .iter()
        .filter_map(|p| p.get("text").and_then(Value::as_str))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Converts a `generateContent` request for `model`; the error names the field.
pub fn to_chat_request(
    model: &str,
    req: GenerateContentRequest,
    stream: bool,
) -> Result<ChatRequest, String> {
    let mut messages = Vec::with_capacity(req.contents.len() + 1);
    if let Some(system) = &req.system_instruction {
        let text = text_of(system);
        if !text.is_empty() {
            messages.push(message("system", Value::String(text)));
        }
    }
    if req.contents.is_empty() {
        return Err("`contents` must contain at least one content".into());
    }
    // Gemini pairs a function response with its call by name; Chat by id.
    let mut call_ids: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut calls_made = 0usize;
    for (i, content) in req.contents.iter().enumerate() {
        let at = format!("contents[{i}]");
        match content.role.as_deref().unwrap_or("user") {
            "user" | "function" | "tool" => {
                let mut parts = Vec::new();
                for (j, part) in content.parts.iter().enumerate() {
                    let at = format!("{at}.parts[{j}]");
                    if let Some(response) = part.get("functionResponse") {
                        let name = response
                            .get("name")
                            .and_then(Value::as_str)
                            .ok_or_else(|| format!("`{at}.functionResponse.name` is missing"))?;
                        let id = match response.get("id").and_then(Value::as_str) {
                            Some(id) => id.to_owned(),
                            None => call_ids
                                .get_mut(name)
                                .and_then(|ids| (!ids.is_empty()).then(|| ids.remove(0)))
                                .unwrap_or_else(|| format!("call_{name}")),
                        };
                        let output = response.get("response").cloned().unwrap_or(Value::Null);
                        let mut m = message("tool", Value::String(output.to_string()));
                        m.extra.insert("tool_call_id".into(), Value::String(id));
                        messages.push(m);
                    } else if let Some(p) = user_part(part, &at)? {
                        parts.push(p);
                    }
                }
                if !parts.is_empty() {
                    messages.push(message("user", Value::Array(parts)));
                }
            }
            "model" | "assistant" => {
                let mut text = String::new();
                let mut calls = Vec::new();
                for (j, part) in content.parts.iter().enumerate() {
                    if part.get("thought").and_then(Value::as_bool) == Some(true) {
                        continue;
                    }
                    if let Some(call) = part.get("functionCall") {
                        let name = call.get("name").and_then(Value::as_str).ok_or_else(|| {
                            format!("`{at}.parts[{j}].functionCall.name` is missing")
                        })?;
                        let id = match call.get("id").and_then(Value::as_str) {
                            Some(id) => id.to_owned(),
                            None => {
                                calls_made += 1;
                                format!("call_{name}_{calls_made}")
                            }
                        };
                        call_ids
                            .entry(name.to_owned())
                            .or_default()
                            .push(id.clone());
                        let args = call.get("args").cloned().unwrap_or_else(|| json!({}));
                        calls.push(json!({"id": id, "type": "function",
                            "function": {"name": name, "arguments": args.to_string()}}));
                    } else if let Some(t) = part.get("text").and_then(Value::as_str) {
                        text.push_str(t);
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
                messages.push(m);
            }
            other => return Err(format!("`{at}.role` `{other}` must be user or model")),
        }
    }

    let mut extra = Map::new();
    if let Some(tools) = req.tools.as_ref().filter(|t| !t.is_empty()) {
        let tools = chat_tools(tools)?;
        if !tools.is_empty() {
            extra.insert("tools".into(), Value::Array(tools));
        }
    }
    if let Some(config) = req
        .tool_config
        .as_ref()
        .and_then(|c| c.get("functionCallingConfig"))
        && let Some(choice) = tool_choice(config)?
    {
        extra.insert("tool_choice".into(), choice);
    }
    let config = &req.generation_config;
    let mut max_tokens = None;
    for (key, value) in config {
        match key.as_str() {
            "temperature" => {
                extra.insert("temperature".into(), value.clone());
            }
            "topP" => {
                extra.insert("top_p".into(), value.clone());
            }
            "seed" => {
                extra.insert("seed".into(), value.clone());
            }
            "presencePenalty" => {
                extra.insert("presence_penalty".into(), value.clone());
            }
            "frequencyPenalty" => {
                extra.insert("frequency_penalty".into(), value.clone());
            }
            "stopSequences" => {
                extra.insert("stop".into(), value.clone());
            }
            "maxOutputTokens" => {
                max_tokens = Some(
                    value
                        .as_i64()
                        .filter(|n| *n > 0)
                        .ok_or("`generationConfig.maxOutputTokens` must be a positive integer")?,
                );
            }
            "candidateCount" if value.as_i64().is_some_and(|n| n != 1) => {
                return Err(
                    "`generationConfig.candidateCount` must be 1 through this gateway".into(),
                );
            }
            "thinkingConfig" => {
                if let Some(effort) = thinking_effort(value) {
                    extra.insert("reasoning_effort".into(), json!(effort));
                }
            }
            // Read below with the schema; the rest (topK, …) has no Chat
            // equivalent and only changes sampling.
            _ => {}
        }
    }
    if let Some(format) = response_format(config)? {
        extra.insert("response_format".into(), format);
    }
    Ok(ChatRequest {
        model: model.to_owned(),
        messages,
        stream,
        stream_options: stream.then_some(StreamOptions {
            include_usage: true,
        }),
        max_tokens,
        max_completion_tokens: None,
        extra,
    })
}

fn thinking_effort(config: &Value) -> Option<&'static str> {
    if let Some(level) = config.get("thinkingLevel").and_then(Value::as_str) {
        return Some(match level.to_ascii_lowercase().as_str() {
            "low" | "minimal" => "low",
            "medium" => "medium",
            _ => "high",
        });
    }
    match config.get("thinkingBudget").and_then(Value::as_i64)? {
        0 => Some("minimal"),
        n if n <= 1_024 => Some("low"),
        n if n <= 8_192 => Some("medium"),
        _ => Some("high"),
    }
}

/// `responseMimeType` and `responseSchema` / `responseJsonSchema` as Chat's
/// `response_format`.
fn response_format(config: &Map<String, Value>) -> Result<Option<Value>, String> {
    let schema = config
        .get("responseJsonSchema")
        .or_else(|| config.get("response_json_schema"))
        .cloned()
        .or_else(|| config.get("responseSchema").map(lower_types));
    match (
        config.get("responseMimeType").and_then(Value::as_str),
        schema,
    ) {
        (_, Some(schema)) if schema.is_object() => Ok(Some(json!({"type": "json_schema",
            "json_schema": {"name": "response", "schema": schema}}))),
        (_, Some(_)) => Err("`generationConfig.responseSchema` must be a schema object".into()),
        (Some("application/json"), None) => Ok(Some(json!({"type": "json_object"}))),
        (Some("text/plain") | None, None) => Ok(None),
        (Some(other), None) => Err(format!(
            "`generationConfig.responseMimeType` `{other}` is not supported (text/plain or application/json)"
        )),
    }
}

/// Gemini's OpenAPI-style schema (`"type": "OBJECT"`) in JSON Schema's
/// lower-case types.
fn lower_types(schema: &Value) -> Value {
    match schema {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let v = match (k.as_str(), v) {
                        ("type", Value::String(t)) => Value::String(t.to_ascii_lowercase()),
                        _ => lower_types(v),
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(lower_types).collect()),
        other => other.clone(),
    }
}

fn user_part(part: &Value, at: &str) -> Result<Option<Value>, String> {
    if part.get("thought").and_then(Value::as_bool) == Some(true) {
        return Ok(None);
    }
    if let Some(text) = part.get("text").and_then(Value::as_str) {
        return Ok(Some(json!({"type": "text", "text": text})));
    }
    if let Some(inline) = part.get("inlineData").or_else(|| part.get("inline_data")) {
        let mime = inline
            .get("mimeType")
            .or_else(|| inline.get("mime_type"))
            .and_then(Value::as_str)
            .unwrap_or("application/octet-stream");
        let data = inline
            .get("data")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("`{at}.inlineData.data` is missing"))?;
        let url = format!("data:{mime};base64,{data}");
        return Ok(Some(if mime.starts_with("image/") {
            json!({"type": "image_url", "image_url": {"url": url}})
        } else {
            json!({"type": "file", "file": {"filename": "document", "file_data": url}})
        }));
    }
    if let Some(file) = part.get("fileData").or_else(|| part.get("file_data")) {
        let uri = file
            .get("fileUri")
            .or_else(|| file.get("file_uri"))
            .and_then(Value::as_str)
            .ok_or_else(|| format!("`{at}.fileData.fileUri` is missing"))?;
        return Ok(Some(
            json!({"type": "image_url", "image_url": {"url": uri}}),
        ));
    }
    Err(format!(
        "`{at}`: only text, inlineData, fileData and functionResponse parts are supported"
    ))
}

fn chat_tools(tools: &[Value]) -> Result<Vec<Value>, String> {
    let mut out = Vec::new();
    for (i, tool) in tools.iter().enumerate() {
        let Some(declarations) = tool
            .get("functionDeclarations")
            .or_else(|| tool.get("function_declarations"))
            .and_then(Value::as_array)
        else {
            let kind = tool
                .as_object()
                .and_then(|o| o.keys().next().cloned())
                .unwrap_or_default();
            return Err(format!(
                "`tools[{i}]`: `{kind}` tools are not supported through this gateway; use functionDeclarations"
            ));
        };
        for (j, decl) in declarations.iter().enumerate() {
            let name = decl
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| format!("`tools[{i}].functionDeclarations[{j}].name` is missing"))?;
            let parameters = decl
                .get("parametersJsonSchema")
                .cloned()
                .or_else(|| decl.get("parameters").map(lower_types))
                .unwrap_or_else(|| json!({"type": "object", "properties": {}}));
            let mut function = json!({"name": name, "parameters": parameters});
            if let (Some(d), Some(map)) = (decl.get("description"), function.as_object_mut()) {
                map.insert("description".into(), d.clone());
            }
            out.push(json!({"type": "function", "function": function}));
        }
    }
    Ok(out)
}

fn tool_choice(config: &Value) -> Result<Option<Value>, String> {
    let allowed = config
        .get("allowedFunctionNames")
        .and_then(Value::as_array)
        .filter(|a| a.len() == 1)
        .and_then(|a| a[0].as_str());
    match config.get("mode").and_then(Value::as_str) {
        None | Some("MODE_UNSPECIFIED") => Ok(None),
        Some("AUTO" | "VALIDATED") => Ok(Some(json!("auto"))),
        Some("NONE") => Ok(Some(json!("none"))),
        Some("ANY") => Ok(Some(match allowed {
            Some(name) => json!({"type": "function", "function": {"name": name}}),
            None => json!("required"),
        })),
        Some(other) => Err(format!(
            "`toolConfig.functionCallingConfig.mode` `{other}` must be AUTO, ANY or NONE"
        )),
    }
}

/// An `embedContent` body as an embeddings request for `model`.
pub fn embedding_request(model: &str, body: &Value) -> Result<EmbeddingRequest, String> {
    let content = body.get("content").ok_or("`content` is missing")?;
    let text = content
        .get("parts")
        .and_then(Value::as_array)
        .map(|parts| {
            parts
                .iter()
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .filter(|t| !t.is_empty())
        .ok_or("`content.parts` must hold text")?;
    let mut extra = Map::new();
    if let Some(n) = body
        .get("outputDimensionality")
        .or_else(|| body.get("output_dimensionality"))
    {
        extra.insert("dimensions".into(), n.clone());
    }
    Ok(EmbeddingRequest {
        model: model.to_owned(),
        input: Value::String(text),
        extra,
    })
}

/// A `batchEmbedContents` body (`{"requests": [{"content"}, …]}`) as one
/// embeddings request for `model`, its texts in order.
pub fn batch_embedding_request(model: &str, body: &Value) -> Result<EmbeddingRequest, String> {
    let requests = body
        .get("requests")
        .and_then(Value::as_array)
        .filter(|r| !r.is_empty())
        .ok_or("`requests` must be a non-empty array")?;
    let mut texts = Vec::with_capacity(requests.len());
    let mut extra = Map::new();
    for (i, r) in requests.iter().enumerate() {
        let one = embedding_request(model, r).map_err(|e| format!("`requests[{i}]`: {e}"))?;
        texts.push(one.input);
        extra.extend(one.extra);
    }
    Ok(EmbeddingRequest {
        model: model.to_owned(),
        input: Value::Array(texts),
        extra,
    })
}

/// An OpenAI embeddings answer as `{"embeddings": [{"values"}, …]}`.
pub fn batch_embed_response(answer: &Value) -> Value {
    let embeddings: Vec<Value> = answer
        .get("data")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|d| json!({"values": d.get("embedding").cloned().unwrap_or_else(|| json!([]))}))
        .collect();
    json!({"embeddings": embeddings})
}

/// An OpenAI embeddings answer as `{"embedding": {"values"}}`.
pub fn embed_content_response(answer: &Value) -> Value {
    let values = answer
        .get("data")
        .and_then(|d| d.get(0))
        .and_then(|d| d.get("embedding"))
        .cloned()
        .unwrap_or_else(|| json!([]));
    json!({"embedding": {"values": values}})
}

/// Gemini's `finishReason` for a Chat `finish_reason`.
fn gemini_finish_reason(finish: Option<&str>) -> &'static str {
    match finish {
        Some("length") => "MAX_TOKENS",
        Some("content_filter") => "SAFETY",
        _ => "STOP",
    }
}

/// Gemini's `usageMetadata` for a call's token counts.
pub fn usage_metadata(usage: &TokenUsage) -> Value {
    json!({
        "promptTokenCount": usage.prompt_tokens,
        "candidatesTokenCount": usage.completion_tokens,
        "totalTokenCount": usage.total(),
        "cachedContentTokenCount": usage.cached_prompt_tokens,
    })
}

fn function_call_part(name: &str, arguments: &str) -> Value {
    let args = serde_json::from_str::<Value>(arguments)
        .ok()
        .filter(Value::is_object)
        .unwrap_or_else(|| json!({}));
    json!({"functionCall": {"name": name, "args": args}})
}

fn response_json(
    parts: Vec<Value>,
    finish: Option<&str>,
    usage: Option<&TokenUsage>,
    model: &str,
    id: &str,
) -> Value {
    let mut candidate = json!({"content": {"parts": parts, "role": "model"}, "index": 0});
    if let (Some(map), Some(_)) = (candidate.as_object_mut(), finish) {
        map.insert("finishReason".into(), json!(gemini_finish_reason(finish)));
    }
    let mut response = json!({"candidates": [candidate], "modelVersion": model, "responseId": id});
    if let (Some(map), Some(usage)) = (response.as_object_mut(), usage) {
        map.insert("usageMetadata".into(), usage_metadata(usage));
    }
    response
}

fn response_id(completion_id: Option<&str>) -> String {
    completion_id.unwrap_or("tollgate").to_owned()
}

/// A complete Chat `chat.completion` as a `GenerateContentResponse`;
/// `model` is the name the client asked for.
pub fn response_from_completion(completion: &Value, model: &str, usage: &TokenUsage) -> Value {
    let choice = completion.get("choices").and_then(|c| c.get(0));
    let msg = choice.and_then(|c| c.get("message"));
    let mut parts = Vec::new();
    let text = crate::common::message_text(msg);
    if !text.is_empty() {
        parts.push(json!({"text": text}));
    }
    for call in msg
        .and_then(|m| m.get("tool_calls"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let function = call.get("function");
        parts.push(function_call_part(
            function
                .and_then(|f| f.get("name"))
                .and_then(Value::as_str)
                .unwrap_or_default(),
            function
                .and_then(|f| f.get("arguments"))
                .and_then(Value::as_str)
                .unwrap_or("{}"),
        ));
    }
    let finish = choice
        .and_then(|c| c.get("finish_reason"))
        .and_then(Value::as_str)
        .or(Some("stop"));
    response_json(
        parts,
        finish,
        Some(usage),
        model,
        &response_id(completion.get("id").and_then(Value::as_str)),
    )
}

/// Google's status name for an HTTP status.
pub fn status_name(status: u16) -> &'static str {
    match status {
        400 | 413 | 422 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        402 => "FAILED_PRECONDITION",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        405 => "UNIMPLEMENTED",
        409 => "ABORTED",
        429 => "RESOURCE_EXHAUSTED",
        503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        _ => "INTERNAL",
    }
}

/// A Google error body, `{"error":{"code","message","status"}}`.
pub fn error_body(status: u16, message: &str) -> Value {
    json!({"error": {"code": status, "message": message, "status": status_name(status)}})
}

fn sse_data(data: &Value) -> Bytes {
    crate::sse::encode_data(data.to_string().as_bytes())
}

/// Writes `streamGenerateContent` chunks for a Chat chunk stream: one chunk
/// per text delta; function calls, whose arguments arrive in pieces, as
/// whole `functionCall` parts once complete (as Gemini sends them); the
/// last chunk with `finishReason` and `usageMetadata`. With `alt=sse` each
/// chunk is an SSE `data:` event; without it, as Google answers, the chunks
/// are the elements of one JSON array written as they come
/// (`[{…}`, `,\r\n{…}`, …, `]`).
#[derive(Debug)]
pub struct SseEncoder {
    model: String,
    /// `None`: SSE; `Some(opened)`: a JSON array, whether `[` is written.
    array: Option<bool>,
    id: Option<String>,
    /// Chat tool call index → (name, arguments so far).
    calls: BTreeMap<u64, (String, String)>,
    finish_reason: Option<String>,
    usage: Option<TokenUsage>,
}

impl SseEncoder {
    /// `model`: the name the client asked for.
    pub fn new(model: &str) -> SseEncoder {
        SseEncoder {
            model: model.to_owned(),
            array: None,
            id: None,
            calls: BTreeMap::new(),
            finish_reason: None,
            usage: None,
        }
    }

    /// The encoder of a stream without `alt=sse`: one JSON array.
    pub fn json_array(model: &str) -> SseEncoder {
        SseEncoder {
            array: Some(false),
            ..SseEncoder::new(model)
        }
    }

    fn id(&self) -> String {
        response_id(self.id.as_deref())
    }

    /// One chunk, framed as an SSE event or the array's next element.
    fn frame(&mut self, data: &Value) -> Bytes {
        match &mut self.array {
            None => sse_data(data),
            Some(opened) => {
                let separator = if *opened { ",\r\n" } else { "[" };
                *opened = true;
                Bytes::from(format!("{separator}{data}"))
            }
        }
    }

    /// The last chunk, and the array's end.
    fn last(&mut self, data: &Value) -> Vec<Bytes> {
        let mut out = vec![self.frame(data)];
        if self.array.is_some() {
            out.push(Bytes::from_static(b"]"));
        }
        out
    }

    /// The chunks for one Chat chunk (its JSON text).
    pub fn chunk(&mut self, data: &[u8]) -> Vec<Bytes> {
        let mut out = Vec::new();
        let Some(chunk) = ChatChunk::parse(data) else {
            return out;
        };
        if self.id.is_none() {
            self.id = chunk.id;
        }
        if chunk.usage.is_some() {
            self.usage = chunk.usage;
        }
        if let Some(text) = chunk.delta.text() {
            let data = response_json(
                vec![json!({"text": text})],
                None,
                None,
                &self.model,
                &self.id(),
            );
            out.push(self.frame(&data));
        }
        for call in &chunk.delta.tool_calls {
            let entry = self.calls.entry(call.index).or_default();
            if !call.name().is_empty() {
                entry.0 = call.name().to_owned();
            }
            entry.1.push_str(call.arguments().unwrap_or_default());
        }
        if let Some(finish) = chunk.finish_reason {
            self.finish_reason = Some(finish);
        }
        out
    }

    /// The last chunk of a complete answer: the function calls, if any,
    /// `finishReason` and `usageMetadata`.
    pub fn finish(&mut self, usage: Option<TokenUsage>) -> Vec<Bytes> {
        let usage = usage.or(self.usage).unwrap_or_default();
        let parts: Vec<Value> = std::mem::take(&mut self.calls)
            .into_values()
            .map(|(name, args)| function_call_part(&name, &args))
            .collect();
        let finish = self.finish_reason.clone().unwrap_or_else(|| "stop".into());
        let data = response_json(parts, Some(&finish), Some(&usage), &self.model, &self.id());
        self.last(&data)
    }

    /// An error chunk, for a stream that broke off.
    pub fn error(&mut self, status: u16, message: &str) -> Vec<Bytes> {
        self.last(&error_body(status, message))
    }
}

#[cfg(test)]
mod tests;

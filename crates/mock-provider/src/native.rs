//! Anthropic and Gemini endpoints, in their official wire formats, with the
//! same reply, usage rule and faults as the OpenAI endpoints.
//!
//! Requests are read as JSON values: these endpoints serve tests, not load.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::Response;
use serde_json::{Value, json};

use crate::server::{aborted, cut_or, embedding_vector, json, prelude_with, sse, with_request_id};
use crate::wire::InputItem;
use crate::{Reply, Shared};

const DEFAULT_DIMENSIONS: usize = 8;

fn words(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

/// Words of a JSON value's `text` fields, at any depth.
fn text_words(value: &Value) -> u64 {
    match value {
        Value::String(s) => words(s),
        Value::Array(items) => items.iter().map(text_words).sum(),
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| match (k.as_str(), v) {
                ("text", Value::String(s)) => words(s),
                (_, Value::Object(_) | Value::Array(_)) => text_words(v),
                _ => 0,
            })
            .sum(),
        _ => 0,
    }
}

/// The reply words sent under a limit: `(sent, truncated)`.
fn plan(reply: &Reply, limit: Option<u64>) -> (usize, bool) {
    let total = reply.words();
    let sent = limit.map_or(total, |l| {
        usize::try_from(l).unwrap_or(usize::MAX).min(total)
    });
    (sent, sent < total)
}

/// Arguments for a mock tool call: `"mock"` for each required property.
fn mock_arguments(schema: Option<&Value>) -> Value {
    let mut args = serde_json::Map::new();
    if let Some(required) = schema
        .and_then(|s| s.get("required"))
        .and_then(Value::as_array)
    {
        for name in required.iter().filter_map(Value::as_str) {
            args.insert(name.to_owned(), json!("mock"));
        }
    }
    Value::Object(args)
}

/// A value of the type `schema` asks for: `"mock"` strings, `1`, `true`,
/// empty arrays, and objects with every required property.
pub(crate) fn mock_value(schema: &Value) -> Value {
    let kind = schema
        .get("type")
        .and_then(Value::as_str)
        .map(str::to_ascii_lowercase);
    match kind.as_deref() {
        Some("string") => match schema.get("enum").and_then(|e| e.get(0)) {
            Some(first) => first.clone(),
            None => json!("mock"),
        },
        Some("integer") => json!(1),
        Some("number") => json!(1.5),
        Some("boolean") => json!(true),
        Some("array") => json!([]),
        Some("null") => Value::Null,
        _ => {
            let mut object = serde_json::Map::new();
            let properties = schema.get("properties");
            for name in schema
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                let property = properties.and_then(|p| p.get(name)).unwrap_or(&Value::Null);
                object.insert(name.to_owned(), mock_value(property));
            }
            Value::Object(object)
        }
    }
}

/// The reply to a request for JSON following `schema`: that JSON, compact
/// (one word), else the configured reply.
pub(crate) fn reply_for(s: &Shared, schema: Option<&Value>) -> Arc<Reply> {
    match schema.filter(|s| s.is_object()) {
        Some(schema) => Arc::new(Reply::new(&mock_value(schema).to_string())),
        None => s.reply(),
    }
}

/// Completion tokens of a tool-call answer: fixed, so tests can predict it.
pub(crate) const TOOL_CALL_TOKENS: u64 = 7;
const TOOL_CALL_TEXT: &str = "Let me check.";

fn sse_events(events: &[(String, Value)], named: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, data) in events {
        if named {
            out.extend_from_slice(b"event: ");
            out.extend_from_slice(name.as_bytes());
            out.push(b'\n');
        }
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(data.to_string().as_bytes());
        out.extend_from_slice(b"\n\n");
    }
    out
}

// ------------------------------------------------------------- Anthropic

fn anthropic_error(status: StatusCode, kind: &str, message: &str) -> Response {
    json(
        status,
        &json!({"type": "error", "error": {"type": kind, "message": message}}),
    )
}

fn anthropic_auth(parts: &Parts) -> Option<Response> {
    let key = parts.headers.get("x-api-key").and_then(|v| v.to_str().ok());
    if key.is_none_or(|k| k.trim().is_empty()) {
        return Some(anthropic_error(
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            "x-api-key header is required",
        ));
    }
    if parts.headers.get("anthropic-version").is_none() {
        return Some(anthropic_error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "anthropic-version: header is required",
        ));
    }
    None
}

/// Input tokens of a Messages request: words + 3 per message, the system
/// counting as one.
fn anthropic_input_tokens(req: &Value, messages: &[Value]) -> u64 {
    let system = req.get("system").map_or(0, |sys| text_words(sys) + 3);
    system
        + messages
            .iter()
            .map(|m| text_words(m.get("content").unwrap_or(&Value::Null)) + 3)
            .sum::<u64>()
}

/// The prompt cache: the words of every block marked `cache_control` (in
/// `system`, messages and tools) are written to the cache the first time
/// that block's text is seen and read from it afterwards.
/// `(cache_creation_input_tokens, cache_read_input_tokens)`.
fn prompt_cache(s: &Shared, req: &Value, messages: &[Value]) -> (u64, u64) {
    let mut blocks: Vec<&Value> = Vec::new();
    for list in [req.get("system"), req.get("tools")] {
        blocks.extend(list.and_then(Value::as_array).into_iter().flatten());
    }
    for m in messages {
        blocks.extend(
            m.get("content")
                .and_then(Value::as_array)
                .into_iter()
                .flatten(),
        );
    }
    let (mut written, mut read) = (0, 0);
    for block in blocks
        .into_iter()
        .filter(|b| b.get("cache_control").is_some())
    {
        let tokens = text_words(block);
        if s.cached(&block.to_string()) {
            read += tokens;
        } else {
            written += tokens;
        }
    }
    (written, read)
}

/// `POST /v1/messages/count_tokens`: `{"input_tokens"}` by the usage rule.
pub(crate) async fn anthropic_count_tokens(State(s): State<Arc<Shared>>, req: Request) -> Response {
    let (_, body, _) = match prelude_with(&s, req, false, anthropic_auth).await {
        Ok(go_on) => go_on,
        Err(answer) => return answer,
    };
    let invalid = |m: &str| anthropic_error(StatusCode::BAD_REQUEST, "invalid_request_error", m);
    let Ok(req) = serde_json::from_slice::<Value>(&body) else {
        return invalid("There was an error parsing the body of your request.");
    };
    if req.get("model").and_then(Value::as_str).is_none() {
        return invalid("model: Field required");
    }
    let messages = match req.get("messages").and_then(Value::as_array) {
        Some(m) if !m.is_empty() => m,
        _ => return invalid("messages: at least one message is required"),
    };
    json(
        StatusCode::OK,
        &json!({"input_tokens": anthropic_input_tokens(&req, messages)}),
    )
}

/// `POST /v1/messages`.
pub(crate) async fn anthropic_messages(State(s): State<Arc<Shared>>, req: Request) -> Response {
    let (_, body, cut) = match prelude_with(&s, req, true, anthropic_auth).await {
        Ok(go_on) => go_on,
        Err(answer) => return answer,
    };
    let invalid = |m: &str| {
        cut_or(
            cut,
            anthropic_error(StatusCode::BAD_REQUEST, "invalid_request_error", m),
        )
    };
    let Ok(req) = serde_json::from_slice::<Value>(&body) else {
        return invalid("There was an error parsing the body of your request.");
    };
    let Some(model) = req.get("model").and_then(Value::as_str) else {
        return invalid("model: Field required");
    };
    let Some(max_tokens) = req.get("max_tokens").and_then(Value::as_u64) else {
        return invalid("max_tokens: Field required");
    };
    let messages = match req.get("messages").and_then(Value::as_array) {
        Some(m) if !m.is_empty() => m,
        _ => return invalid("messages: at least one message is required"),
    };
    let streaming = req.get("stream").and_then(Value::as_bool).unwrap_or(false);
    if cut.is_some() && !streaming {
        return aborted();
    }
    let input_tokens = anthropic_input_tokens(&req, messages);
    let (cache_written, cache_read) = prompt_cache(&s, &req, messages);
    let input_tokens = input_tokens.saturating_sub(cache_written + cache_read);

    // With tools, and no tool result in the last turn, the answer is a call
    // of the first tool.
    let last_has_result = messages
        .last()
        .and_then(|m| m.get("content"))
        .and_then(Value::as_array)
        .is_some_and(|blocks| {
            blocks
                .iter()
                .any(|b| b.get("type").and_then(Value::as_str) == Some("tool_result"))
        });
    let tool = req
        .get("tools")
        .and_then(Value::as_array)
        .and_then(|t| t.first())
        .filter(|_| !last_has_result);
    let id = format!("msg_mock{:012x}", s.next_id());
    let schema = req
        .get("output_config")
        .and_then(|c| c.get("format"))
        .filter(|f| f.get("type").and_then(Value::as_str) == Some("json_schema"))
        .and_then(|f| f.get("schema"));
    let reply = reply_for(&s, schema);
    let (text, stop_reason, output_tokens, tool_use) = match tool {
        Some(tool) => {
            let call = json!({
                "type": "tool_use",
                "id": format!("toolu_mock{:012x}", s.next_id()),
                "name": tool.get("name").and_then(Value::as_str).unwrap_or("tool"),
                "input": mock_arguments(tool.get("input_schema")),
            });
            (
                TOOL_CALL_TEXT.to_owned(),
                "tool_use",
                TOOL_CALL_TOKENS,
                Some(call),
            )
        }
        None => {
            let (sent, truncated) = plan(&reply, Some(max_tokens));
            let stop = if truncated { "max_tokens" } else { "end_turn" };
            (reply.prefix(sent).to_owned(), stop, sent as u64, None)
        }
    };
    let usage = json!({"input_tokens": input_tokens, "cache_creation_input_tokens": cache_written,
        "cache_read_input_tokens": cache_read, "output_tokens": output_tokens});

    if !streaming {
        let mut content = vec![json!({"type": "text", "text": text})];
        content.extend(tool_use.clone());
        let message = json!({"id": id, "type": "message", "role": "assistant", "model": model,
            "content": content, "stop_reason": stop_reason, "stop_sequence": null, "usage": usage});
        return with_request_id(json(StatusCode::OK, &message), &id);
    }

    let ev = |name: &str, data: Value| (name.to_owned(), data);
    let mut events = vec![
        ev(
            "message_start",
            json!({"type": "message_start", "message": {"id": id, "type": "message",
            "role": "assistant", "content": [], "model": model, "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": input_tokens, "cache_creation_input_tokens": cache_written,
                "cache_read_input_tokens": cache_read, "output_tokens": 1}}}),
        ),
        ev(
            "content_block_start",
            json!({"type": "content_block_start", "index": 0,
            "content_block": {"type": "text", "text": ""}}),
        ),
        ev("ping", json!({"type": "ping"})),
    ];
    let pieces: Vec<String> = match &tool_use {
        Some(_) => vec![text.clone()],
        None => (0..reply.words().min(text.split_whitespace().count()))
            .map(|i| reply.delta(i).to_owned())
            .collect(),
    };
    let content_events = cut.map_or(pieces.len(), |n| n.min(pieces.len()));
    for piece in pieces.iter().take(content_events) {
        events.push(ev(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0,
            "delta": {"type": "text_delta", "text": piece}}),
        ));
    }
    if cut.is_none() {
        events.push(ev(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 0}),
        ));
        if let Some(call) = &tool_use {
            let mut start = call.clone();
            start["input"] = json!({});
            events.push(ev(
                "content_block_start",
                json!({"type": "content_block_start", "index": 1, "content_block": start}),
            ));
            events.push(ev(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 1,
                "delta": {"type": "input_json_delta", "partial_json": ""}}),
            ));
            let args = call["input"].to_string();
            let (a, b) = args.split_at(args.len() / 2);
            for part in [a, b] {
                events.push(ev(
                    "content_block_delta",
                    json!({"type": "content_block_delta", "index": 1,
                    "delta": {"type": "input_json_delta", "partial_json": part}}),
                ));
            }
            events.push(ev(
                "content_block_stop",
                json!({"type": "content_block_stop", "index": 1}),
            ));
        }
        events.push(ev(
            "message_delta",
            json!({"type": "message_delta",
            "delta": {"stop_reason": stop_reason, "stop_sequence": null},
            "usage": {"output_tokens": output_tokens}}),
        ));
        events.push(ev("message_stop", json!({"type": "message_stop"})));
    }
    with_request_id(sse(sse_events(&events, true), cut.is_some()), &id)
}

// ---------------------------------------------------------------- Gemini

fn google_error(status: StatusCode, reason: &str, message: &str) -> Response {
    json(
        status,
        &json!({"error": {"code": status.as_u16(), "message": message, "status": reason}}),
    )
}

fn gemini_auth(parts: &Parts) -> Option<Response> {
    let header = parts
        .headers
        .get("x-goog-api-key")
        .and_then(|v| v.to_str().ok());
    let query = parts
        .uri
        .query()
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("key=")));
    if header.or(query).is_some_and(|k| !k.trim().is_empty()) {
        return None;
    }
    Some(google_error(
        StatusCode::FORBIDDEN,
        "PERMISSION_DENIED",
        "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.",
    ))
}

/// `POST /v1beta/models/{model}:{method}` (and the same under `/v1`).
pub(crate) async fn gemini(State(s): State<Arc<Shared>>, req: Request) -> Response {
    let path = req.uri().path().to_owned();
    let target = path.rsplit('/').next().unwrap_or_default().to_owned();
    let (model, method) = target.split_once(':').unwrap_or((target.as_str(), ""));
    let model = model.to_owned();
    let sse_query = req
        .uri()
        .query()
        .is_some_and(|q| q.split('&').any(|kv| kv == "alt=sse"));
    let method = method.to_owned();
    let (_, body, cut) = match prelude_with(&s, req, true, gemini_auth).await {
        Ok(go_on) => go_on,
        Err(answer) => return answer,
    };
    let invalid = |m: &str| {
        cut_or(
            cut,
            google_error(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT", m),
        )
    };
    let Ok(req) = serde_json::from_slice::<Value>(&body) else {
        return invalid("Invalid JSON payload received.");
    };
    match method.as_str() {
        "generateContent" => generate(&s, &model, &req, false, cut),
        "streamGenerateContent" if sse_query => generate(&s, &model, &req, true, cut),
        "streamGenerateContent" => {
            invalid("this mock serves streamGenerateContent with alt=sse only")
        }
        "embedContent" | "batchEmbedContents" | "countTokens" if cut.is_some() => aborted(),
        "embedContent" => embed(std::slice::from_ref(&req), false),
        "batchEmbedContents" => match req.get("requests").and_then(Value::as_array) {
            Some(requests) if !requests.is_empty() => embed(requests, true),
            _ => invalid("* BatchEmbedContentsRequest.requests: contents is not specified"),
        },
        "countTokens" => {
            // A whole request counts as generateContent's prompt would.
            let total = match req.get("generateContentRequest") {
                Some(inner) => gemini_prompt_tokens(inner),
                None => req.get("contents").map_or(0, text_words),
            };
            json(StatusCode::OK, &json!({"totalTokens": total}))
        }
        _ => google_error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            &format!("Method not found: {method}"),
        ),
    }
}

/// `promptTokenCount`: words + 3 per content, the system instruction counting as one.
fn gemini_prompt_tokens(req: &Value) -> u64 {
    let system = req
        .get("systemInstruction")
        .map_or(0, |sys| text_words(sys) + 3);
    let contents = req.get("contents").and_then(Value::as_array);
    system
        + contents
            .into_iter()
            .flatten()
            .map(|c| text_words(c) + 3)
            .sum::<u64>()
}

fn embed(requests: &[Value], batch: bool) -> Response {
    let mut embeddings = Vec::with_capacity(requests.len());
    for r in requests {
        let text: String = r
            .get("content")
            .and_then(|c| c.get("parts"))
            .and_then(Value::as_array)
            .map(|parts| {
                parts
                    .iter()
                    .filter_map(|p| p.get("text").and_then(Value::as_str))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default();
        let dimensions = r
            .get("outputDimensionality")
            .and_then(Value::as_u64)
            .map_or(DEFAULT_DIMENSIONS, |d| {
                usize::try_from(d)
                    .unwrap_or(DEFAULT_DIMENSIONS)
                    .clamp(1, 65_536)
            });
        embeddings.push(json!({"values": embedding_vector(&InputItem::Text(&text), dimensions)}));
    }
    if batch {
        json(StatusCode::OK, &json!({"embeddings": embeddings}))
    } else {
        json(
            StatusCode::OK,
            &json!({"embedding": embeddings.pop().unwrap_or(Value::Null)}),
        )
    }
}

fn generate(s: &Shared, model: &str, req: &Value, streaming: bool, cut: Option<usize>) -> Response {
    let Some(contents) = req
        .get("contents")
        .and_then(Value::as_array)
        .filter(|c| !c.is_empty())
    else {
        return cut_or(
            cut,
            google_error(
                StatusCode::BAD_REQUEST,
                "INVALID_ARGUMENT",
                "* GenerateContentRequest.contents: contents is not specified",
            ),
        );
    };
    if cut.is_some() && !streaming {
        return aborted();
    }
    let prompt = gemini_prompt_tokens(req);
    let id = format!("mock{:012x}", s.next_id());
    let usage_prompt = json!({"promptTokenCount": prompt, "totalTokenCount": prompt});
    // A prompt containing BLOCKME is blocked, as Gemini's safety filter would.
    if contents.iter().any(|c| c.to_string().contains("BLOCKME")) {
        let blocked = json!({"promptFeedback": {"blockReason": "SAFETY", "safetyRatings": [
            {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH"}]},
            "usageMetadata": usage_prompt, "modelVersion": model, "responseId": id});
        return if streaming {
            sse(sse_events(&[(String::new(), blocked)], false), false)
        } else {
            json(StatusCode::OK, &blocked)
        };
    }
    let last_has_response = contents
        .last()
        .and_then(|c| c.get("parts"))
        .and_then(Value::as_array)
        .is_some_and(|parts| parts.iter().any(|p| p.get("functionResponse").is_some()));
    let tool = req
        .get("tools")
        .and_then(Value::as_array)
        .and_then(|t| {
            t.iter()
                .find_map(|t| t.get("functionDeclarations")?.as_array()?.first())
        })
        .filter(|_| !last_has_response);
    let config = req.get("generationConfig");
    let schema = config.and_then(|g| {
        g.get("responseJsonSchema")
            .or_else(|| g.get("responseSchema"))
    });
    let reply = reply_for(s, schema);
    let limit = req
        .get("generationConfig")
        .and_then(|g| g.get("maxOutputTokens"))
        .and_then(Value::as_u64);
    let (sent, truncated) = plan(&reply, limit);
    let finish = if tool.is_none() && truncated {
        "MAX_TOKENS"
    } else {
        "STOP"
    };
    let candidates_tokens = if tool.is_some() {
        TOOL_CALL_TOKENS
    } else {
        sent as u64
    };
    let usage = json!({"promptTokenCount": prompt, "candidatesTokenCount": candidates_tokens,
        "totalTokenCount": prompt + candidates_tokens});
    let answer = |parts: Vec<Value>, finish: Option<&str>, usage: &Value| {
        let mut candidate = json!({"content": {"parts": parts, "role": "model"}, "index": 0});
        if let Some(f) = finish {
            candidate["finishReason"] = json!(f);
        }
        json!({"candidates": [candidate], "usageMetadata": usage, "modelVersion": model, "responseId": id})
    };
    let call_part = tool.map(|t| {
        json!({"functionCall": {
        "name": t.get("name").and_then(Value::as_str).unwrap_or("tool"),
        "args": mock_arguments(t.get("parameters"))}})
    });

    if !streaming {
        let parts = match &call_part {
            Some(call) => vec![call.clone()],
            None => vec![json!({"text": reply.prefix(sent)})],
        };
        return with_request_id(
            json(StatusCode::OK, &answer(parts, Some(finish), &usage)),
            &id,
        );
    }
    let mut events: Vec<(String, Value)> = Vec::new();
    match &call_part {
        Some(call) => {
            if cut.is_none() {
                events.push((
                    String::new(),
                    answer(vec![call.clone()], Some(finish), &usage),
                ));
            }
        }
        None => {
            let shown = cut.map_or(sent, |n| n.min(sent));
            for i in 0..shown {
                let last = i + 1 == sent && cut.is_none();
                let part = json!({"text": reply.delta(i)});
                if last {
                    events.push((String::new(), answer(vec![part], Some(finish), &usage)));
                } else {
                    events.push((String::new(), answer(vec![part], None, &usage_prompt)));
                }
            }
            if sent == 0 && cut.is_none() {
                events.push((
                    String::new(),
                    answer(vec![json!({"text": ""})], Some(finish), &usage),
                ));
            }
        }
    }
    with_request_id(sse(sse_events(&events, false), cut.is_some()), &id)
}

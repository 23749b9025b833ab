//! OpenAI's Responses API (`POST /v1/responses`), plain and streamed, with
//! the same reply, usage rule and faults as Chat Completions.
//!
//! Usage: `input_tokens` = words of every text in `input` and
//! `instructions` + 3 per input item (a string input is one item, the
//! instructions another); `output_tokens` = reply words sent (the limit is
//! `max_output_tokens`; status `incomplete` when it cuts). With function
//! tools and no `function_call_output` in the input's last item, the answer
//! is a `function_call` of the first tool ([`TOOL_CALL_TOKENS`] output
//! tokens). `text.format` `json_schema` makes the reply a JSON value of
//! that schema. The stream is `response.created`, `response.in_progress`,
//! `response.output_item.added`, `response.content_part.added`, one
//! `response.output_text.delta` per word, `response.output_text.done`,
//! `response.content_part.done`, `response.output_item.done` and
//! `response.completed` (function calls: `output_item.added`, two
//! `function_call_arguments.delta`, `.done`, `output_item.done`). The
//! usage's `input_tokens_details.cached_tokens` is 0, except with a
//! `prompt_cache_key`: then the instructions (words + 3) are cached from
//! the second request with the same key and instructions on. The
//! mock stores nothing: a `previous_response_id` is answered 400
//! `previous_response_not_found`, and `store` is echoed as sent.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use crate::Shared;
use crate::native::{TOOL_CALL_TOKENS, mock_value, reply_for};
use crate::server::{aborted, cut_or, json, prelude_with, sse, unix_now, with_request_id};

fn words(value: &Value) -> u64 {
    match value {
        Value::String(s) => s.split_whitespace().count() as u64,
        Value::Array(items) => items.iter().map(words).sum(),
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| match (k.as_str(), v) {
                ("text" | "output" | "content", _) => words(v),
                _ => 0,
            })
            .sum(),
        _ => 0,
    }
}

fn invalid(message: &str, param: &str) -> Response {
    json(
        StatusCode::BAD_REQUEST,
        &json!({"error": {"message": message, "type": "invalid_request_error", "param": param, "code": null}}),
    )
}

fn event(events: &mut Vec<u8>, sequence: &mut u64, mut data: Value) {
    data["sequence_number"] = json!(*sequence);
    *sequence += 1;
    let name = data["type"].as_str().unwrap_or_default().to_owned();
    events.extend_from_slice(format!("event: {name}\ndata: {data}\n\n").as_bytes());
}

/// `POST /v1/responses`.
pub(crate) async fn responses(State(s): State<Arc<Shared>>, req: Request) -> Response {
    let (_, body, cut) = match prelude_with(&s, req, true, crate::server::openai_auth).await {
        Ok(go_on) => go_on,
        Err(answer) => return answer,
    };
    let Ok(req) = serde_json::from_slice::<Value>(&body) else {
        return cut_or(
            cut,
            invalid("We could not parse the JSON body of your request.", "body"),
        );
    };
    let Some(model) = req.get("model").and_then(Value::as_str) else {
        return cut_or(
            cut,
            invalid("Missing required parameter: 'model'.", "model"),
        );
    };
    let items: Vec<Value> = match req.get("input") {
        Some(Value::String(s)) => vec![json!({"role": "user", "content": s})],
        Some(Value::Array(items)) if !items.is_empty() => items.clone(),
        _ => {
            return cut_or(
                cut,
                invalid("Missing required parameter: 'input'.", "input"),
            );
        }
    };
    // The mock keeps no responses, as a real provider keeps none sent
    // with `store: false`: a follow-up must bring its history itself.
    if let Some(previous) = req.get("previous_response_id").and_then(Value::as_str) {
        return cut_or(
            cut,
            json(
                StatusCode::BAD_REQUEST,
                &json!({"error": {"message": format!("Previous response with id '{previous}' not found."),
                    "type": "invalid_request_error", "param": "previous_response_id",
                    "code": "previous_response_not_found"}}),
            ),
        );
    }
    let store = req.get("store").and_then(Value::as_bool).unwrap_or(true);
    let streaming = req.get("stream").and_then(Value::as_bool).unwrap_or(false);
    if cut.is_some() && !streaming {
        return aborted();
    }
    let instructions = req.get("instructions").filter(|i| i.is_string());
    let input_tokens =
        items.iter().map(|i| words(i) + 3).sum::<u64>() + instructions.map_or(0, |i| words(i) + 3);
    let last_is_output = items
        .last()
        .and_then(|i| i.get("type"))
        .and_then(Value::as_str)
        == Some("function_call_output");
    let tool = req
        .get("tools")
        .and_then(Value::as_array)
        .and_then(|t| {
            t.iter()
                .find(|t| t.get("type").and_then(Value::as_str) == Some("function"))
        })
        .filter(|_| !last_is_output);
    let schema = req
        .get("text")
        .and_then(|t| t.get("format"))
        .filter(|f| f.get("type").and_then(Value::as_str) == Some("json_schema"))
        .and_then(|f| f.get("schema"));
    let reply = reply_for(&s, schema);
    let limit = req.get("max_output_tokens").and_then(Value::as_u64);
    let total = reply.words();
    let sent = limit.map_or(total, |l| {
        usize::try_from(l).unwrap_or(usize::MAX).min(total)
    });
    let n = s.next_id();
    let id = format!("resp_mock{n:012x}");
    let item_id = format!("msg_mock{n:012x}");
    let (status, output_tokens) = match tool {
        Some(_) => ("completed", TOOL_CALL_TOKENS),
        None if sent < total => ("incomplete", sent as u64),
        None => ("completed", sent as u64),
    };
    // OpenAI's automatic prompt cache, opted into with `prompt_cache_key`:
    // the instructions are written the first time and read afterwards.
    let cached_tokens = match (
        req.get("prompt_cache_key").and_then(Value::as_str),
        instructions,
    ) {
        (Some(key), Some(i)) if s.cached(&format!("responses:{key}:{i}")) => words(i) + 3,
        _ => 0,
    };
    let usage = json!({"input_tokens": input_tokens, "input_tokens_details": {"cached_tokens": cached_tokens},
        "output_tokens": output_tokens, "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": input_tokens + output_tokens});
    let call = tool.map(|t| {
        let arguments = mock_value(t.get("parameters").unwrap_or(&Value::Null)).to_string();
        json!({"type": "function_call", "id": format!("fc_mock{n:012x}"),
            "call_id": format!("call_mock{n:012x}"),
            "name": t.get("name").and_then(Value::as_str).unwrap_or("tool"),
            "arguments": arguments, "status": "completed"})
    });
    let text = reply.prefix(sent);
    let message = json!({"type": "message", "id": item_id, "status": "completed", "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]});
    let output = match &call {
        Some(call) => vec![call.clone()],
        None => vec![message.clone()],
    };
    let echo = |key: &str| req.get(key).cloned().unwrap_or(Value::Null);
    let object = |status: &str, output: Vec<Value>, usage: &Value| {
        json!({"id": id, "object": "response", "created_at": unix_now(), "status": status,
            "error": null,
            "incomplete_details": if status == "incomplete" { json!({"reason": "max_output_tokens"}) } else { Value::Null },
            "instructions": instructions, "max_output_tokens": limit, "model": model,
            "output": output, "parallel_tool_calls": true,
            "previous_response_id": req.get("previous_response_id"),
            "reasoning": {"effort": echo("reasoning").get("effort").cloned().unwrap_or(Value::Null), "summary": null},
            "store": store, "temperature": req.get("temperature").cloned().unwrap_or(json!(1.0)),
            "text": req.get("text").cloned().unwrap_or_else(|| json!({"format": {"type": "text"}})),
            "tool_choice": req.get("tool_choice").cloned().unwrap_or(json!("auto")),
            "tools": req.get("tools").cloned().unwrap_or_else(|| json!([])),
            "top_p": req.get("top_p").cloned().unwrap_or(json!(1.0)),
            "truncation": "disabled", "usage": usage, "user": echo("user"),
            "metadata": req.get("metadata").cloned().unwrap_or_else(|| json!({}))})
    };
    if !streaming {
        return with_request_id(json(StatusCode::OK, &object(status, output, &usage)), &id);
    }

    let mut events = Vec::new();
    let mut seq = 0;
    let started = object("in_progress", Vec::new(), &Value::Null);
    event(
        &mut events,
        &mut seq,
        json!({"type": "response.created", "response": started}),
    );
    event(
        &mut events,
        &mut seq,
        json!({"type": "response.in_progress", "response": started}),
    );
    match &call {
        Some(call) => {
            let mut added = call.clone();
            added["arguments"] = json!("");
            added["status"] = json!("in_progress");
            event(
                &mut events,
                &mut seq,
                json!({"type": "response.output_item.added", "output_index": 0, "item": added}),
            );
            let arguments = call["arguments"].as_str().unwrap_or("{}");
            let (a, b) = arguments.split_at(arguments.len() / 2);
            for part in [a, b] {
                event(
                    &mut events,
                    &mut seq,
                    json!({"type": "response.function_call_arguments.delta",
                    "item_id": call["id"], "output_index": 0, "delta": part}),
                );
            }
            event(
                &mut events,
                &mut seq,
                json!({"type": "response.function_call_arguments.done",
                "item_id": call["id"], "output_index": 0, "arguments": arguments}),
            );
            event(
                &mut events,
                &mut seq,
                json!({"type": "response.output_item.done", "output_index": 0, "item": call}),
            );
        }
        None => {
            let mut added = message.clone();
            added["status"] = json!("in_progress");
            added["content"] = json!([]);
            event(
                &mut events,
                &mut seq,
                json!({"type": "response.output_item.added", "output_index": 0, "item": added}),
            );
            let empty =
                json!({"type": "output_text", "text": "", "annotations": [], "logprobs": []});
            event(
                &mut events,
                &mut seq,
                json!({"type": "response.content_part.added", "item_id": item_id,
                "output_index": 0, "content_index": 0, "part": empty}),
            );
            let shown = cut.map_or(sent, |c| c.min(sent));
            for i in 0..shown {
                event(
                    &mut events,
                    &mut seq,
                    json!({"type": "response.output_text.delta", "item_id": item_id,
                    "output_index": 0, "content_index": 0, "delta": reply.delta(i), "logprobs": []}),
                );
            }
            if cut.is_some() {
                return with_request_id(sse(events, true), &id);
            }
            event(
                &mut events,
                &mut seq,
                json!({"type": "response.output_text.done", "item_id": item_id,
                "output_index": 0, "content_index": 0, "text": text, "logprobs": []}),
            );
            event(
                &mut events,
                &mut seq,
                json!({"type": "response.content_part.done", "item_id": item_id,
                "output_index": 0, "content_index": 0, "part": message["content"][0]}),
            );
            event(
                &mut events,
                &mut seq,
                json!({"type": "response.output_item.done", "output_index": 0, "item": message}),
            );
        }
    }
    let kind = if status == "incomplete" {
        "response.incomplete"
    } else {
        "response.completed"
    };
    event(
        &mut events,
        &mut seq,
        json!({"type": kind, "response": object(status, output, &usage)}),
    );
    with_request_id(sse(events, false), &id)
}

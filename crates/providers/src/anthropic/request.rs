//! OpenAI Chat Completions request → Anthropic Messages request.

use super::wire::{Content, Message, MessagesRequest, System};
use crate::common::{arguments_object, function_tool, parse_data_url, stop_sequences};
use crate::error::ProviderError;
use crate::types::{ChatMessage, ChatRequest};
use serde_json::{Map, Value, json};

/// What a Messages request is built from.
pub struct Outbound<'a> {
    pub request: &'a ChatRequest,
    /// The model name Anthropic knows.
    pub model: &'a str,
    /// `max_tokens` when the client set no limit (Anthropic requires one).
    pub default_max_tokens: i64,
    pub stream: bool,
}

/// Anthropic-native fields an OpenAI-format client may send; passed on as is.
const NATIVE_FIELDS: [&str; 3] = ["thinking", "top_k", "service_tier"];

impl TryFrom<Outbound<'_>> for MessagesRequest {
    type Error = ProviderError;

    fn try_from(out: Outbound<'_>) -> Result<Self, Self::Error> {
        let req = out.request;
        let mut system: Vec<Value> = Vec::new();
        let mut messages: Vec<Message> = Vec::new();
        for (i, m) in req.messages.iter().enumerate() {
            let at = format!("messages[{i}]");
            match m.role.as_str() {
                "system" | "developer" => system.extend(text_blocks(&m.content, &at)?),
                "user" => push(&mut messages, "user", user_blocks(&m.content, &at)?),
                "assistant" => push(&mut messages, "assistant", assistant_blocks(m, &at)?),
                "tool" | "function" => push(&mut messages, "user", vec![tool_result(m, &at)?]),
                other => {
                    return Err(ProviderError::InvalidRequest(format!(
                        "`{at}.role` `{other}` cannot be sent to an Anthropic model"
                    )));
                }
            }
        }
        if messages.is_empty() {
            return Err(ProviderError::InvalidRequest(
                "`messages` must contain a user or assistant message for an Anthropic model".into(),
            ));
        }

        let extra = &req.extra;
        let mut native = Map::new();
        for key in NATIVE_FIELDS {
            if let Some(v) = extra.get(key) {
                native.insert(key.to_owned(), v.clone());
            }
        }
        let max_tokens = req.max_output_tokens().unwrap_or(out.default_max_tokens);
        if !native.contains_key("thinking")
            && let Some(thinking) = thinking_for_effort(extra.get("reasoning_effort"), max_tokens)
        {
            native.insert("thinking".into(), thinking);
        }
        let thinking_on = native
            .get("thinking")
            .and_then(|t| t.get("type"))
            .and_then(Value::as_str)
            .is_some_and(|t| t != "disabled");
        if extra
            .get("n")
            .and_then(Value::as_i64)
            .is_some_and(|n| n > 1)
        {
            return Err(ProviderError::InvalidRequest(
                "`n` greater than 1 is not supported by Anthropic models".into(),
            ));
        }

        if let Some(format) = output_format(extra.get("response_format"))? {
            native.insert("output_config".into(), json!({"format": format}));
        }
        let top_k = native.remove("top_k").and_then(|v| v.as_i64());
        let metadata = extra
            .get("user")
            .and_then(Value::as_str)
            .map(|user| json!({"user_id": user}))
            .or_else(|| extra.get("metadata").filter(|m| m.is_object()).cloned());
        Ok(MessagesRequest {
            model: out.model.to_owned(),
            max_tokens,
            messages,
            system: (!system.is_empty()).then(|| system_field(system)),
            tools: tools(extra.get("tools"))?,
            tool_choice: tool_choice(extra.get("tool_choice"), extra.get("parallel_tool_calls"))?,
            stop_sequences: stop_sequences(extra.get("stop")),
            // Anthropic's range is 0..1 (OpenAI's 0..2); thinking wants the default.
            temperature: extra
                .get("temperature")
                .and_then(Value::as_f64)
                .filter(|_| !thinking_on)
                .map(|t| t.clamp(0.0, 1.0)),
            top_p: extra
                .get("top_p")
                .and_then(Value::as_f64)
                .filter(|_| !thinking_on),
            top_k,
            metadata,
            stream: out.stream,
            extra: native,
        })
    }
}

/// Chat's `response_format` as Anthropic's structured output
/// (`output_config.format`); JSON mode asks for any object.
fn output_format(format: Option<&Value>) -> Result<Option<Value>, ProviderError> {
    let Some(format) = format.filter(|f| !f.is_null()) else {
        return Ok(None);
    };
    match format.get("type").and_then(Value::as_str) {
        Some("text") => Ok(None),
        Some("json_object") => Ok(Some(json!({"type": "json_schema",
            "schema": {"type": "object", "additionalProperties": true}}))),
        Some("json_schema") => {
            let schema = format
                .get("json_schema")
                .and_then(|s| s.get("schema"))
                .filter(|s| s.is_object())
                .ok_or_else(|| {
                    ProviderError::InvalidRequest(
                        "`response_format.json_schema.schema` must be a JSON schema object".into(),
                    )
                })?;
            Ok(Some(json!({"type": "json_schema", "schema": schema})))
        }
        _ => Err(ProviderError::InvalidRequest(
            "`response_format.type` must be text, json_object or json_schema for an Anthropic model"
                .into(),
        )),
    }
}

/// Appends blocks to the last message when it has the same role (Anthropic
/// wants alternating turns, and all tool results in one user turn).
fn push(messages: &mut Vec<Message>, role: &str, blocks: Vec<Value>) {
    if blocks.is_empty() {
        return;
    }
    if let Some(last) = messages.last_mut()
        && last.role == role
        && let Content::Blocks(existing) = &mut last.content
    {
        existing.extend(blocks);
        return;
    }
    messages.push(Message {
        role: role.to_owned(),
        content: Content::Blocks(blocks),
    });
}

fn system_field(blocks: Vec<Value>) -> System {
    let cached = blocks.iter().any(|b| b.get("cache_control").is_some());
    if cached {
        return System::Blocks(blocks);
    }
    let text: Vec<&str> = blocks
        .iter()
        .filter_map(|b| b.get("text").and_then(Value::as_str))
        .collect();
    System::Text(text.join("\n\n"))
}

/// Text blocks of a system message (a string or text parts).
fn text_blocks(content: &Value, at: &str) -> Result<Vec<Value>, ProviderError> {
    match content {
        Value::Null => Ok(Vec::new()),
        Value::String(s) if s.is_empty() => Ok(Vec::new()),
        Value::String(s) => Ok(vec![json!({"type": "text", "text": s})]),
        Value::Array(parts) => parts
            .iter()
            .enumerate()
            .filter(|(_, p)| !is_empty_text(p))
            .map(|(j, p)| match p.get("type").and_then(Value::as_str) {
                Some("text") => Ok(text_block(p)),
                _ => Err(ProviderError::InvalidRequest(format!(
                    "`{at}.content[{j}]`: only text parts are allowed here"
                ))),
            })
            .collect(),
        _ => Err(ProviderError::InvalidRequest(format!(
            "`{at}.content` must be a string or an array of content parts"
        ))),
    }
}

fn is_empty_text(part: &Value) -> bool {
    part.get("type").and_then(Value::as_str) == Some("text")
        && part
            .get("text")
            .and_then(Value::as_str)
            .is_some_and(str::is_empty)
}

fn text_block(part: &Value) -> Value {
    let mut block = json!({"type": "text", "text": part.get("text").and_then(Value::as_str).unwrap_or_default()});
    if let (Some(cc), Some(map)) = (part.get("cache_control"), block.as_object_mut()) {
        map.insert("cache_control".into(), cc.clone());
    }
    block
}

fn user_blocks(content: &Value, at: &str) -> Result<Vec<Value>, ProviderError> {
    match content {
        Value::Array(parts) => {
            let mut blocks = Vec::with_capacity(parts.len());
            for (j, part) in parts.iter().enumerate() {
                if is_empty_text(part) {
                    continue;
                }
                blocks.push(user_part(part, &format!("{at}.content[{j}]"))?);
            }
            Ok(blocks)
        }
        other => text_blocks(other, at),
    }
}

/// One OpenAI content part as an Anthropic block.
fn user_part(part: &Value, at: &str) -> Result<Value, ProviderError> {
    match part.get("type").and_then(Value::as_str) {
        Some("text") => Ok(text_block(part)),
        Some("image_url") => {
            let url = part
                .get("image_url")
                .and_then(|i| i.get("url").or(Some(i)))
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    ProviderError::InvalidRequest(format!("`{at}.image_url.url` is missing"))
                })?;
            let source = if let Some((media_type, data)) = parse_data_url(url) {
                json!({"type": "base64", "media_type": media_type, "data": data})
            } else if url.starts_with("https://") || url.starts_with("http://") {
                json!({"type": "url", "url": url})
            } else {
                return Err(ProviderError::InvalidRequest(format!(
                    "`{at}.image_url.url` must be an http(s) URL or a base64 data URL"
                )));
            };
            Ok(json!({"type": "image", "source": source}))
        }
        Some("file") => {
            let data = part
                .get("file")
                .and_then(|f| f.get("file_data"))
                .and_then(Value::as_str)
                .and_then(parse_data_url);
            match data {
                Some((media_type, data)) => Ok(json!({
                    "type": "document",
                    "source": {"type": "base64", "media_type": media_type, "data": data}
                })),
                None => Err(ProviderError::InvalidRequest(format!(
                    "`{at}.file` must carry `file_data` as a base64 data URL for an Anthropic model"
                ))),
            }
        }
        Some(kind) => Err(ProviderError::InvalidRequest(format!(
            "`{at}`: content parts of type `{kind}` are not supported by Anthropic models"
        ))),
        None => Err(ProviderError::InvalidRequest(format!(
            "`{at}.type` is missing"
        ))),
    }
}

fn assistant_blocks(m: &ChatMessage, at: &str) -> Result<Vec<Value>, ProviderError> {
    // Signed thinking blocks (from Tollgate's /v1/messages) go first, as
    // Anthropic wants them back before the text and tool calls they led to.
    let mut blocks: Vec<Value> = m
        .extra
        .get("thinking_blocks")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    match &m.content {
        Value::Null => {}
        other => blocks.extend(text_blocks(other, at)?),
    }
    if let Some(calls) = m.extra.get("tool_calls").and_then(Value::as_array) {
        for (k, call) in calls.iter().enumerate() {
            let call_at = format!("{at}.tool_calls[{k}]");
            let function = call.get("function").ok_or_else(|| {
                ProviderError::InvalidRequest(format!("`{call_at}.function` is missing"))
            })?;
            let name = function
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    ProviderError::InvalidRequest(format!("`{call_at}.function.name` is missing"))
                })?;
            let id = call.get("id").and_then(Value::as_str).ok_or_else(|| {
                ProviderError::InvalidRequest(format!("`{call_at}.id` is missing"))
            })?;
            let input = arguments_object(
                function.get("arguments").unwrap_or(&Value::Null),
                &format!("{call_at}.function.arguments"),
            )?;
            blocks.push(json!({"type": "tool_use", "id": id, "name": name, "input": input}));
        }
    }
    Ok(blocks)
}

fn tool_result(m: &ChatMessage, at: &str) -> Result<Value, ProviderError> {
    let id = m
        .extra
        .get("tool_call_id")
        .or_else(|| m.extra.get("name"))
        .and_then(Value::as_str)
        .ok_or_else(|| ProviderError::InvalidRequest(format!("`{at}.tool_call_id` is missing")))?;
    let content = match &m.content {
        Value::String(s) => Value::String(s.clone()),
        Value::Null => Value::String(String::new()),
        Value::Array(_) => Value::Array(user_blocks(&m.content, at)?),
        _ => {
            return Err(ProviderError::InvalidRequest(format!(
                "`{at}.content` must be a string or an array of content parts"
            )));
        }
    };
    Ok(json!({"type": "tool_result", "tool_use_id": id, "content": content}))
}

fn tools(tools: Option<&Value>) -> Result<Option<Vec<Value>>, ProviderError> {
    let Some(tools) = tools else { return Ok(None) };
    let Some(list) = tools.as_array() else {
        return Err(ProviderError::InvalidRequest(
            "`tools` must be an array".into(),
        ));
    };
    if list.is_empty() {
        return Ok(None);
    }
    list.iter()
        .enumerate()
        .map(|(i, tool)| {
            let (function, name) = function_tool(i, tool, "an Anthropic model")?;
            let mut out = json!({
                "name": name,
                "input_schema": function
                    .get("parameters")
                    .cloned()
                    .unwrap_or_else(|| json!({"type": "object", "properties": {}})),
            });
            if let Some(map) = out.as_object_mut() {
                if let Some(d) = function.get("description") {
                    map.insert("description".into(), d.clone());
                }
                if let Some(cc) = tool.get("cache_control") {
                    map.insert("cache_control".into(), cc.clone());
                }
            }
            Ok(out)
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

fn tool_choice(
    choice: Option<&Value>,
    parallel: Option<&Value>,
) -> Result<Option<Value>, ProviderError> {
    let serial = parallel.and_then(Value::as_bool) == Some(false);
    let mut out = match choice {
        None | Some(Value::Null) => {
            if !serial {
                return Ok(None);
            }
            json!({"type": "auto"})
        }
        Some(Value::String(s)) => match s.as_str() {
            "auto" => json!({"type": "auto"}),
            "none" => json!({"type": "none"}),
            "required" => json!({"type": "any"}),
            other => {
                return Err(ProviderError::InvalidRequest(format!(
                    "`tool_choice` `{other}` must be auto, none, required or a function"
                )));
            }
        },
        Some(obj) => {
            let name = obj
                .get("function")
                .and_then(|f| f.get("name"))
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    ProviderError::InvalidRequest("`tool_choice.function.name` is missing".into())
                })?;
            json!({"type": "tool", "name": name})
        }
    };
    if serial
        && out.get("type").and_then(Value::as_str) != Some("none")
        && let Some(map) = out.as_object_mut()
    {
        map.insert("disable_parallel_tool_use".into(), Value::Bool(true));
    }
    Ok(Some(out))
}

/// OpenAI's `reasoning_effort` as an extended-thinking budget (the budget
/// must stay below `max_tokens` and be at least 1024).
fn thinking_for_effort(effort: Option<&Value>, max_tokens: i64) -> Option<Value> {
    let budget: i64 = match effort?.as_str()? {
        "low" => 1_024,
        "medium" => 4_096,
        "high" => 16_384,
        _ => return None,
    };
    let budget = budget.min(max_tokens - 1);
    (budget >= 1_024).then(|| json!({"type": "enabled", "budget_tokens": budget}))
}

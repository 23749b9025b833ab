//! OpenAI Chat Completions request → Gemini `generateContent` request.

use super::wire::{Content, GenerateContentRequest};
use crate::common::{arguments_object, function_tool, parse_data_url, stop_sequences};
use crate::error::ProviderError;
use crate::types::{ChatMessage, ChatRequest};
use serde_json::{Map, Value, json};
use std::collections::HashMap;

/// Joins a Gemini thought signature to a tool call id, so that it comes
/// back with the call (Gemini 3 refuses a function call sent back without it).
pub const SIGNATURE_SEPARATOR: &str = "__thought__";

/// The signature Gemini documents for function calls it did not produce
/// (history from another model).
const FOREIGN_SIGNATURE: &str = "skip_thought_signature_validator";

/// What a `generateContent` request is built from.
pub struct Outbound<'a> {
    pub request: &'a ChatRequest,
    /// The model name Gemini knows.
    pub model: &'a str,
}

impl TryFrom<Outbound<'_>> for GenerateContentRequest {
    type Error = ProviderError;

    fn try_from(out: Outbound<'_>) -> Result<Self, Self::Error> {
        let req = out.request;
        let needs_signature = out.model.contains("gemini-3");
        let mut system_parts = Vec::new();
        let mut contents: Vec<Content> = Vec::new();
        // Tool call id → function name, for the `tool` messages that answer them.
        let mut names: HashMap<String, String> = HashMap::new();
        for (i, m) in req.messages.iter().enumerate() {
            let at = format!("messages[{i}]");
            match m.role.as_str() {
                "system" | "developer" => system_parts.extend(parts(&m.content, &at, true)?),
                "user" => push(&mut contents, "user", parts(&m.content, &at, false)?),
                "assistant" => {
                    let parts = model_parts(m, &at, needs_signature, &mut names)?;
                    push(&mut contents, "model", parts);
                }
                "tool" | "function" => {
                    let part = function_response(m, &at, &names)?;
                    push(&mut contents, "user", vec![part]);
                }
                other => {
                    return Err(ProviderError::InvalidRequest(format!(
                        "`{at}.role` `{other}` cannot be sent to a Gemini model"
                    )));
                }
            }
        }
        if contents.is_empty() {
            return Err(ProviderError::InvalidRequest(
                "`messages` must contain a user or assistant message for a Gemini model".into(),
            ));
        }
        let extra = &req.extra;
        if extra
            .get("n")
            .and_then(Value::as_i64)
            .is_some_and(|n| n > 1)
        {
            return Err(ProviderError::InvalidRequest(
                "`n` greater than 1 is not supported through this gateway for Gemini models".into(),
            ));
        }
        Ok(GenerateContentRequest {
            contents,
            system_instruction: (!system_parts.is_empty()).then_some(Content {
                role: None,
                parts: system_parts,
            }),
            tools: tools(extra.get("tools"))?,
            tool_config: tool_config(extra.get("tool_choice"))?,
            generation_config: generation_config(req)?,
            safety_settings: extra
                .get("safety_settings")
                .or_else(|| extra.get("safetySettings"))
                .cloned(),
            cached_content: extra
                .get("cached_content")
                .or_else(|| extra.get("cachedContent"))
                .and_then(Value::as_str)
                .map(str::to_owned),
        })
    }
}

/// Appends parts to the last turn when it has the same role (all function
/// responses of a step must be in one turn).
fn push(contents: &mut Vec<Content>, role: &str, parts: Vec<Value>) {
    if parts.is_empty() {
        return;
    }
    if let Some(last) = contents.last_mut()
        && last.role.as_deref() == Some(role)
    {
        last.parts.extend(parts);
        return;
    }
    contents.push(Content {
        role: Some(role.to_owned()),
        parts,
    });
}

fn parts(content: &Value, at: &str, text_only: bool) -> Result<Vec<Value>, ProviderError> {
    match content {
        Value::Null => Ok(Vec::new()),
        Value::String(s) if s.is_empty() => Ok(Vec::new()),
        Value::String(s) => Ok(vec![json!({"text": s})]),
        Value::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (j, item) in items.iter().enumerate() {
                let at = format!("{at}.content[{j}]");
                let kind = item.get("type").and_then(Value::as_str);
                if text_only && kind != Some("text") {
                    return Err(ProviderError::InvalidRequest(format!(
                        "`{at}`: only text parts are allowed here"
                    )));
                }
                if let Some(part) = part(item, kind, &at)? {
                    out.push(part);
                }
            }
            Ok(out)
        }
        _ => Err(ProviderError::InvalidRequest(format!(
            "`{at}.content` must be a string or an array of content parts"
        ))),
    }
}

/// The media type of a file at a URL, from its extension.
fn media_type_of(url: &str) -> &'static str {
    let path = url
        .split(['?', '#'])
        .next()
        .unwrap_or(url)
        .to_ascii_lowercase();
    match path.rsplit('.').next() {
        Some("png") => "image/png",
        Some("webp") => "image/webp",
        Some("gif") => "image/gif",
        Some("heic") => "image/heic",
        Some("pdf") => "application/pdf",
        Some("mp3") => "audio/mp3",
        Some("wav") => "audio/wav",
        Some("mp4") => "video/mp4",
        _ => "image/jpeg",
    }
}

fn part(item: &Value, kind: Option<&str>, at: &str) -> Result<Option<Value>, ProviderError> {
    match kind {
        Some("text") => {
            let text = item.get("text").and_then(Value::as_str).unwrap_or_default();
            Ok((!text.is_empty()).then(|| json!({"text": text})))
        }
        Some("image_url") => {
            let url = item
                .get("image_url")
                .and_then(|i| i.get("url").or(Some(i)))
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    ProviderError::InvalidRequest(format!("`{at}.image_url.url` is missing"))
                })?;
            if let Some((mime, data)) = parse_data_url(url) {
                Ok(Some(
                    json!({"inlineData": {"mimeType": mime, "data": data}}),
                ))
            } else if url.starts_with("https://")
                || url.starts_with("http://")
                || url.starts_with("gs://")
            {
                Ok(Some(
                    json!({"fileData": {"mimeType": media_type_of(url), "fileUri": url}}),
                ))
            } else {
                Err(ProviderError::InvalidRequest(format!(
                    "`{at}.image_url.url` must be a URL or a base64 data URL"
                )))
            }
        }
        Some("input_audio") => {
            let audio = item.get("input_audio");
            let data = audio
                .and_then(|a| a.get("data"))
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    ProviderError::InvalidRequest(format!("`{at}.input_audio.data` is missing"))
                })?;
            let format = audio
                .and_then(|a| a.get("format"))
                .and_then(Value::as_str)
                .unwrap_or("wav");
            Ok(Some(
                json!({"inlineData": {"mimeType": format!("audio/{format}"), "data": data}}),
            ))
        }
        Some("file") => {
            let data = item
                .get("file")
                .and_then(|f| f.get("file_data"))
                .and_then(Value::as_str)
                .and_then(parse_data_url);
            match data {
                Some((mime, data)) => Ok(Some(
                    json!({"inlineData": {"mimeType": mime, "data": data}}),
                )),
                None => Err(ProviderError::InvalidRequest(format!(
                    "`{at}.file` must carry `file_data` as a base64 data URL for a Gemini model"
                ))),
            }
        }
        Some(other) => Err(ProviderError::InvalidRequest(format!(
            "`{at}`: content parts of type `{other}` are not supported by Gemini models"
        ))),
        None => Err(ProviderError::InvalidRequest(format!(
            "`{at}.type` is missing"
        ))),
    }
}

fn model_parts(
    m: &ChatMessage,
    at: &str,
    needs_signature: bool,
    names: &mut HashMap<String, String>,
) -> Result<Vec<Value>, ProviderError> {
    let mut out = parts(&m.content, at, true)?;
    let Some(calls) = m.extra.get("tool_calls").and_then(Value::as_array) else {
        return Ok(out);
    };
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
        let args = arguments_object(
            function.get("arguments").unwrap_or(&Value::Null),
            &format!("{call_at}.function.arguments"),
        )?;
        let id = call.get("id").and_then(Value::as_str).unwrap_or_default();
        names.insert(id.to_owned(), name.to_owned());
        let signature = id
            .split_once(SIGNATURE_SEPARATOR)
            .map(|(_, s)| s.to_owned());
        let mut part = json!({"functionCall": {"name": name, "args": args}});
        let signature =
            signature.or_else(|| (needs_signature && k == 0).then(|| FOREIGN_SIGNATURE.to_owned()));
        if let (Some(sig), Some(map)) = (signature, part.as_object_mut()) {
            map.insert("thoughtSignature".into(), Value::String(sig));
        }
        out.push(part);
    }
    Ok(out)
}

fn function_response(
    m: &ChatMessage,
    at: &str,
    names: &HashMap<String, String>,
) -> Result<Value, ProviderError> {
    let id = m.extra.get("tool_call_id").and_then(Value::as_str);
    let name = id
        .and_then(|id| names.get(id).cloned())
        .or_else(|| {
            m.extra
                .get("name")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .ok_or_else(|| {
            ProviderError::InvalidRequest(format!(
                "`{at}.tool_call_id` does not match a tool call of an earlier assistant message"
            ))
        })?;
    let text = match &m.content {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        Value::Array(items) => items
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => {
            return Err(ProviderError::InvalidRequest(format!(
                "`{at}.content` must be a string or an array of content parts"
            )));
        }
    };
    // Gemini wants an object; a JSON object result is passed as is.
    let response = match serde_json::from_str::<Value>(&text) {
        Ok(obj @ Value::Object(_)) => obj,
        _ => json!({"result": text}),
    };
    Ok(json!({"functionResponse": {"name": name, "response": response}}))
}

/// JSON Schema keywords Gemini's `parameters` schema does not accept.
const UNSUPPORTED_SCHEMA_KEYS: [&str; 5] = [
    "$schema",
    "additionalProperties",
    "strict",
    "$id",
    "examples",
];

/// A JSON Schema reduced to what Gemini's OpenAPI-style schema accepts.
pub(crate) fn clean_schema(schema: &Value) -> Value {
    match schema {
        Value::Object(map) => {
            let mut out = Map::new();
            for (k, v) in map {
                if UNSUPPORTED_SCHEMA_KEYS.contains(&k.as_str()) {
                    continue;
                }
                if k == "const" {
                    out.insert("enum".into(), json!([v]));
                    continue;
                }
                // `properties` maps names to schemas; its keys are not keywords.
                let cleaned = if k == "properties" {
                    match v {
                        Value::Object(props) => Value::Object(
                            props
                                .iter()
                                .map(|(name, s)| (name.clone(), clean_schema(s)))
                                .collect(),
                        ),
                        other => other.clone(),
                    }
                } else {
                    clean_schema(v)
                };
                out.insert(k.clone(), cleaned);
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(clean_schema).collect()),
        other => other.clone(),
    }
}

fn tools(tools: Option<&Value>) -> Result<Option<Vec<Value>>, ProviderError> {
    let Some(tools) = tools else { return Ok(None) };
    let list = tools
        .as_array()
        .ok_or_else(|| ProviderError::InvalidRequest("`tools` must be an array".into()))?;
    if list.is_empty() {
        return Ok(None);
    }
    let mut declarations = Vec::with_capacity(list.len());
    for (i, tool) in list.iter().enumerate() {
        let (function, name) = function_tool(i, tool, "a Gemini model")?;
        let mut decl = json!({"name": name});
        if let Some(map) = decl.as_object_mut() {
            if let Some(d) = function.get("description") {
                map.insert("description".into(), d.clone());
            }
            // A function without parameters must not declare an empty object.
            if let Some(p) = function.get("parameters").filter(|p| {
                p.get("properties")
                    .and_then(Value::as_object)
                    .is_none_or(|props| !props.is_empty())
            }) {
                map.insert("parameters".into(), clean_schema(p));
            }
        }
        declarations.push(decl);
    }
    Ok(Some(vec![json!({"functionDeclarations": declarations})]))
}

fn tool_config(choice: Option<&Value>) -> Result<Option<Value>, ProviderError> {
    let config = match choice {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) => match s.as_str() {
            "auto" => json!({"mode": "AUTO"}),
            "none" => json!({"mode": "NONE"}),
            "required" => json!({"mode": "ANY"}),
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
            json!({"mode": "ANY", "allowedFunctionNames": [name]})
        }
    };
    Ok(Some(json!({"functionCallingConfig": config})))
}

fn generation_config(req: &ChatRequest) -> Result<Map<String, Value>, ProviderError> {
    let extra = &req.extra;
    let mut config = Map::new();
    let mut copy = |from: &str, to: &str| {
        if let Some(v) = extra.get(from).filter(|v| !v.is_null()) {
            config.insert(to.to_owned(), v.clone());
        }
    };
    copy("temperature", "temperature");
    copy("top_p", "topP");
    copy("top_k", "topK");
    copy("seed", "seed");
    copy("presence_penalty", "presencePenalty");
    copy("frequency_penalty", "frequencyPenalty");
    if let Some(max) = req.max_output_tokens() {
        config.insert("maxOutputTokens".into(), json!(max));
    }
    if let Some(stop) = stop_sequences(extra.get("stop")) {
        config.insert("stopSequences".into(), Value::Array(stop));
    }
    if let Some(format) = extra.get("response_format") {
        match format.get("type").and_then(Value::as_str) {
            Some("json_object") => {
                config.insert("responseMimeType".into(), json!("application/json"));
            }
            Some("json_schema") => {
                config.insert("responseMimeType".into(), json!("application/json"));
                if let Some(schema) = format.get("json_schema").and_then(|s| s.get("schema")) {
                    config.insert("responseSchema".into(), clean_schema(schema));
                }
            }
            Some("text") | None => {}
            Some(other) => {
                return Err(ProviderError::InvalidRequest(format!(
                    "`response_format.type` `{other}` is not supported by Gemini models"
                )));
            }
        }
    }
    if let Some(budget) = match extra.get("reasoning_effort").and_then(Value::as_str) {
        Some("none" | "minimal") => Some(0),
        Some("low") => Some(1_024),
        Some("medium") => Some(8_192),
        Some("high") => Some(24_576),
        _ => None,
    } {
        config.insert("thinkingConfig".into(), json!({"thinkingBudget": budget}));
    }
    // Gemini-native settings a client may send as is.
    if let Some(Value::Object(native)) = extra
        .get("generation_config")
        .or_else(|| extra.get("generationConfig"))
    {
        for (k, v) in native {
            config.insert(k.clone(), v.clone());
        }
    }
    Ok(config)
}

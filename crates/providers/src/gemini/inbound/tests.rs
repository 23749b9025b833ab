//! The Gemini inbound translation: requests in, answers and chunks out.

use super::*;
use serde_json::json;

fn request(body: Value) -> GenerateContentRequest {
    serde_json::from_value(body).unwrap()
}

fn chunk(delta: Value, finish: Option<&str>) -> Vec<u8> {
    json!({"id": "c1", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
        .to_string()
        .into_bytes()
}

fn data(frame: &Bytes) -> Value {
    let text = std::str::from_utf8(frame).unwrap();
    let json = text.strip_prefix("data: ").unwrap().trim_end();
    serde_json::from_str(json).unwrap()
}

#[test]
fn contents_system_and_generation_config_become_a_chat_request() {
    let req = request(json!({
        "systemInstruction": {"parts": [{"text": "Be brief"}]},
        "contents": [{"role": "user", "parts": [{"text": "Hi"},
            {"inlineData": {"mimeType": "image/png", "data": "iVBO"}}]}],
        "generationConfig": {"temperature": 0.5, "maxOutputTokens": 20, "stopSequences": ["x"],
            "topK": 3, "thinkingConfig": {"thinkingBudget": 1024}}
    }));
    let chat = to_chat_request("gemini-2.5-flash", req, true).unwrap();
    assert_eq!(chat.model, "gemini-2.5-flash");
    assert_eq!(chat.messages[0].role, "system");
    assert_eq!(chat.messages[0].content, json!("Be brief"));
    assert_eq!(
        chat.messages[1].content,
        json!([{"type": "text", "text": "Hi"}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO"}}])
    );
    assert_eq!(chat.max_tokens, Some(20));
    assert_eq!(chat.extra["temperature"], json!(0.5));
    assert_eq!(chat.extra["stop"], json!(["x"]));
    assert_eq!(chat.extra["reasoning_effort"], json!("low"));
    assert!(chat.stream);
    assert!(chat.stream_options.unwrap().include_usage);
}

#[test]
fn function_calls_and_responses_pair_by_name() {
    let req = request(json!({
        "contents": [
            {"role": "user", "parts": [{"text": "Weather in Paris?"}]},
            {"role": "model", "parts": [{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}]},
            {"role": "user", "parts": [{"functionResponse": {"name": "get_weather", "response": {"temp": 21}}}]}
        ],
        "tools": [{"functionDeclarations": [{"name": "get_weather", "description": "d",
            "parameters": {"type": "OBJECT", "properties": {"city": {"type": "STRING"}}}}]}],
        "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}}
    }));
    let chat = to_chat_request("g", req, false).unwrap();
    let call = &chat.messages[1].extra["tool_calls"][0];
    assert_eq!(call["function"]["arguments"], "{\"city\":\"Paris\"}");
    assert_eq!(chat.messages[2].role, "tool");
    assert_eq!(chat.messages[2].extra["tool_call_id"], call["id"]);
    assert_eq!(chat.messages[2].content, json!("{\"temp\":21}"));
    assert_eq!(
        chat.extra["tools"][0]["function"]["parameters"],
        json!({"type": "object", "properties": {"city": {"type": "string"}}})
    );
    assert_eq!(
        chat.extra["tool_choice"],
        json!({"type": "function", "function": {"name": "get_weather"}})
    );
}

#[test]
fn response_schema_becomes_json_schema_and_mime_json_becomes_json_object() {
    let schema = request(json!({"contents": [{"parts": [{"text": "x"}]}],
        "generationConfig": {"responseMimeType": "application/json",
            "responseSchema": {"type": "OBJECT", "properties": {"n": {"type": "INTEGER"}}}}}));
    let chat = to_chat_request("g", schema, false).unwrap();
    assert_eq!(
        chat.extra["response_format"],
        json!({"type": "json_schema", "json_schema": {"name": "response",
            "schema": {"type": "object", "properties": {"n": {"type": "integer"}}}}})
    );
    let mime = request(json!({"contents": [{"parts": [{"text": "x"}]}],
        "generationConfig": {"responseMimeType": "application/json"}}));
    assert_eq!(
        to_chat_request("g", mime, false).unwrap().extra["response_format"],
        json!({"type": "json_object"})
    );
}

#[test]
fn unsupported_input_is_refused_naming_the_field() {
    let search =
        request(json!({"contents": [{"parts": [{"text": "x"}]}], "tools": [{"googleSearch": {}}]}));
    assert!(
        to_chat_request("g", search, false)
            .unwrap_err()
            .contains("tools[0]")
    );
    let empty = request(json!({"contents": []}));
    assert!(
        to_chat_request("g", empty, false)
            .unwrap_err()
            .contains("contents")
    );
    let role = request(json!({"contents": [{"role": "robot", "parts": [{"text": "x"}]}]}));
    assert!(
        to_chat_request("g", role, false)
            .unwrap_err()
            .contains("contents[0].role")
    );
    let many = request(
        json!({"contents": [{"parts": [{"text": "x"}]}], "generationConfig": {"candidateCount": 2}}),
    );
    assert!(
        to_chat_request("g", many, false)
            .unwrap_err()
            .contains("candidateCount")
    );
}

#[test]
fn a_completion_becomes_a_generate_content_response() {
    let completion = json!({"id": "c9", "choices": [{"finish_reason": "tool_calls", "message": {"content": "Let me check.",
        "tool_calls": [{"id": "x", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}}]}}]});
    let usage = TokenUsage {
        prompt_tokens: 5,
        completion_tokens: 7,
        ..TokenUsage::default()
    };
    let answer = response_from_completion(&completion, "gemini-x", &usage);
    assert_eq!(
        answer,
        json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "Let me check."},
            {"functionCall": {"name": "f", "args": {"a": 1}}}]}, "index": 0, "finishReason": "STOP"}],
            "modelVersion": "gemini-x", "responseId": "c9",
            "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 7, "totalTokenCount": 12, "cachedContentTokenCount": 0}})
    );
    let cut = json!({"choices": [{"finish_reason": "length", "message": {"content": "a"}}]});
    assert_eq!(
        response_from_completion(&cut, "g", &usage)["candidates"][0]["finishReason"],
        "MAX_TOKENS"
    );
}

#[test]
fn a_stream_is_text_chunks_then_calls_finish_and_usage() {
    let mut enc = SseEncoder::new("gemini-x");
    assert!(
        enc.chunk(&chunk(json!({"role": "assistant", "content": ""}), None))
            .is_empty()
    );
    let text = enc.chunk(&chunk(json!({"content": "Hello"}), None));
    assert_eq!(
        data(&text[0])["candidates"][0]["content"]["parts"],
        json!([{"text": "Hello"}])
    );
    assert!(
        data(&text[0])["candidates"][0]
            .get("finishReason")
            .is_none()
    );
    assert!(text[0].ends_with(b"\n\n"));
    enc.chunk(&chunk(json!({"tool_calls": [{"index": 0, "id": "c", "function": {"name": "f", "arguments": "{\"a\""}}]}), None));
    enc.chunk(&chunk(
        json!({"tool_calls": [{"index": 0, "function": {"arguments": ":1}"}}]}),
        Some("tool_calls"),
    ));
    let usage = TokenUsage {
        prompt_tokens: 3,
        completion_tokens: 2,
        ..TokenUsage::default()
    };
    let last = data(&enc.finish(Some(usage))[0]);
    assert_eq!(
        last["candidates"][0]["content"]["parts"],
        json!([{"functionCall": {"name": "f", "args": {"a": 1}}}])
    );
    assert_eq!(last["candidates"][0]["finishReason"], "STOP");
    assert_eq!(last["usageMetadata"]["totalTokenCount"], 5);
    assert_eq!(last["responseId"], "c1");
    let error = data(&enc.error(502, "cut")[0]);
    assert_eq!(
        error,
        json!({"error": {"code": 502, "message": "cut", "status": "INTERNAL"}})
    );
}

#[test]
fn without_alt_sse_the_stream_is_one_json_array() {
    let mut enc = SseEncoder::json_array("gemini-x");
    let mut body = Vec::new();
    for delta in ["Hello", " there"] {
        for bytes in enc.chunk(&chunk(json!({"content": delta}), None)) {
            body.extend_from_slice(&bytes);
        }
    }
    for bytes in enc.finish(Some(TokenUsage::default())) {
        body.extend_from_slice(&bytes);
    }
    let chunks: Vec<Value> = serde_json::from_slice(&body).unwrap();
    assert_eq!(chunks.len(), 3);
    assert_eq!(
        chunks[1]["candidates"][0]["content"]["parts"][0]["text"],
        " there"
    );
    assert_eq!(chunks[2]["candidates"][0]["finishReason"], "STOP");
    // A stream that breaks before any chunk is still one array.
    let broken: Vec<u8> = SseEncoder::json_array("g").error(502, "cut").concat();
    let broken: Value = serde_json::from_slice(&broken).unwrap();
    assert_eq!(broken[0]["error"]["code"], 502);
}

#[test]
fn embed_content_maps_both_ways() {
    let req = embedding_request(
        "e",
        &json!({"content": {"parts": [{"text": "a"}, {"text": "b"}]}, "outputDimensionality": 4}),
    )
    .unwrap();
    assert_eq!(req.input, json!("a b"));
    assert_eq!(req.extra["dimensions"], json!(4));
    assert!(
        embedding_request("e", &json!({}))
            .unwrap_err()
            .contains("content")
    );
    let answer = json!({"data": [{"embedding": [0.1, 0.2]}]});
    assert_eq!(
        embed_content_response(&answer),
        json!({"embedding": {"values": [0.1, 0.2]}})
    );
}

#[test]
fn errors_use_google_status_names() {
    assert_eq!(error_body(404, "no")["error"]["status"], "NOT_FOUND");
    assert_eq!(status_name(429), "RESOURCE_EXHAUSTED");
    assert_eq!(status_name(401), "UNAUTHENTICATED");
}

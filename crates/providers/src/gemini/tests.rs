//! The Gemini adapter on answers recorded from the Gemini API
//! (`fixtures/gemini/`).

use super::wire::GenerateContentResponse;
use super::*;
use crate::types::ChatRequest;

const STREAM_SHORT: &str =
    include_str!("../../fixtures/gemini/streaming-success-basic-reply-short.txt");
const STREAM_BLOCKED: &str =
    include_str!("../../fixtures/gemini/streaming-failure-prompt-blocked-safety.txt");
const STREAM_THINKING_CALL: &str = include_str!(
    "../../fixtures/gemini/streaming-success-thinking-function-call-thought-summary-signature.txt"
);
const UNARY_SHORT: &str = include_str!("../../fixtures/gemini/unary-success-basic-reply-short.txt");
const UNARY_SAFETY: &str =
    include_str!("../../fixtures/gemini/unary-failure-finish-reason-safety.txt");
const UNARY_ONLY_FEEDBACK: &str =
    include_str!("../../fixtures/gemini/unary-failure-only-prompt-feedback.json");
const UNARY_API_KEY: &str = include_str!("../../fixtures/gemini/unary-failure-api-key.txt");

fn sse_datas(text: &str) -> Vec<&str> {
    text.split("\n\n")
        .filter_map(|e| e.lines().find_map(|l| l.strip_prefix("data: ")))
        .collect()
}

fn translate(fixture: &str) -> (Vec<Value>, Option<TokenUsage>, bool, Option<ProviderError>) {
    let mut t = StreamTranslator::new("gemini-test", Some("AIza-secret".into()));
    let mut out = Vec::new();
    for data in sse_datas(fixture) {
        t.translate(data, &mut out);
    }
    t.end(&mut out);
    let (mut chunks, mut usage, mut done, mut error) = (Vec::new(), None, false, None);
    for item in out {
        match item {
            Ok(StreamEvent::Chunk { data, usage: u, .. }) => {
                if u.is_some() {
                    usage = u;
                }
                chunks.push(serde_json::from_slice(&data).unwrap());
            }
            Ok(StreamEvent::Done) => done = true,
            Err(e) => {
                error.get_or_insert(e);
            }
        }
    }
    (chunks, usage, done, error)
}

fn joined(chunks: &[Value], field: &str) -> String {
    chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"][field].as_str())
        .collect()
}

fn build(body: Value, model: &str) -> Result<Value, ProviderError> {
    let req: ChatRequest = serde_json::from_value(body).unwrap();
    let out = GenerateContentRequest::try_from(Outbound {
        request: &req,
        model,
    })?;
    Ok(serde_json::to_value(out).unwrap())
}

// ------------------------------------------------------ request building

#[test]
fn request_has_system_instruction_contents_and_generation_config() {
    let body = build(
        json!({"model": "g", "max_tokens": 800, "temperature": 1.0, "top_p": 0.8, "stop": ["Title"],
        "response_format": {"type": "json_object"},
        "messages": [
            {"role": "system", "content": "You are a cat. Your name is Neko."},
            {"role": "user", "content": "Hello there"},
            {"role": "assistant", "content": "Meow."},
            {"role": "user", "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQ"}},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.png?x=1"}}
            ]}
        ]}),
        "gemini-2.5-flash",
    )
    .unwrap();
    assert_eq!(
        body["systemInstruction"],
        json!({"parts": [{"text": "You are a cat. Your name is Neko."}]})
    );
    assert_eq!(
        body["contents"][0],
        json!({"role": "user", "parts": [{"text": "Hello there"}]})
    );
    assert_eq!(
        body["contents"][1],
        json!({"role": "model", "parts": [{"text": "Meow."}]})
    );
    assert_eq!(
        body["contents"][2]["parts"][1],
        json!({"inlineData": {"mimeType": "image/jpeg", "data": "/9j/4AAQ"}})
    );
    assert_eq!(
        body["contents"][2]["parts"][2],
        json!({"fileData": {"mimeType": "image/png", "fileUri": "https://example.com/cat.png?x=1"}})
    );
    assert_eq!(
        body["generationConfig"],
        json!({"maxOutputTokens": 800, "temperature": 1.0, "topP": 0.8, "stopSequences": ["Title"],
            "responseMimeType": "application/json"})
    );
}

#[test]
fn request_converts_tools_calls_and_results() {
    let body = build(
        json!({"model": "g",
            "tools": [{"type": "function", "function": {"name": "find_theaters", "description": "Find theaters",
                "parameters": {"type": "object", "additionalProperties": false, "$schema": "x",
                    "properties": {"location": {"type": "string"}, "kind": {"const": "movie"}}, "required": ["location"]}}},
                {"type": "function", "function": {"name": "now", "parameters": {"type": "object", "properties": {}}}}],
            "tool_choice": {"type": "function", "function": {"name": "find_theaters"}},
            "messages": [
                {"role": "user", "content": "Which theaters in Mountain View show Barbie?"},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_0__thought__c2lnbmF0dXJl", "type": "function",
                     "function": {"name": "find_theaters", "arguments": "{\"location\":\"Mountain View, CA\"}"}},
                    {"id": "call_1", "type": "function", "function": {"name": "now", "arguments": "{}"}}]},
                {"role": "tool", "tool_call_id": "call_0__thought__c2lnbmF0dXJl", "content": "{\"theaters\":[\"AMC\"]}"},
                {"role": "tool", "tool_call_id": "call_1", "content": "2026-11-23"}
            ]}),
        "gemini-2.5-flash",
    )
    .unwrap();
    let decls = &body["tools"][0]["functionDeclarations"];
    assert_eq!(
        decls[0]["parameters"],
        json!({"type": "object", "properties": {"location": {"type": "string"}, "kind": {"enum": ["movie"]}},
            "required": ["location"]})
    );
    assert!(
        decls[1].get("parameters").is_none(),
        "no empty parameter object"
    );
    assert_eq!(
        body["toolConfig"],
        json!({"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["find_theaters"]}})
    );
    assert_eq!(
        body["contents"][1]["parts"][0],
        json!({"functionCall": {"name": "find_theaters", "args": {"location": "Mountain View, CA"}},
            "thoughtSignature": "c2lnbmF0dXJl"})
    );
    assert!(
        body["contents"][1]["parts"][1]
            .get("thoughtSignature")
            .is_none()
    );
    assert_eq!(
        body["contents"][2],
        json!({"role": "user", "parts": [
            {"functionResponse": {"name": "find_theaters", "response": {"theaters": ["AMC"]}}},
            {"functionResponse": {"name": "now", "response": {"result": "2026-11-23"}}}
        ]})
    );
}

#[test]
fn gemini_3_gets_the_documented_signature_for_foreign_calls() {
    let body = build(
        json!({"model": "g", "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "toolu_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "toolu_1", "content": "ok"}]}),
        "gemini-3-flash-preview",
    )
    .unwrap();
    assert_eq!(
        body["contents"][1]["parts"][0]["thoughtSignature"],
        "skip_thought_signature_validator"
    );
}

#[test]
fn a_tool_result_without_its_call_is_refused() {
    let err = build(
        json!({"model": "g", "messages": [{"role": "user", "content": "hi"},
            {"role": "tool", "tool_call_id": "nope", "content": "x"}]}),
        "gemini-2.5-flash",
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("messages[1].tool_call_id"),
        "{err}"
    );
}

#[test]
fn endpoints_take_a_base_with_or_without_a_version() {
    assert_eq!(
        endpoint(
            "https://generativelanguage.googleapis.com",
            "gemini-2.5-flash",
            "generateContent"
        )
        .unwrap(),
        "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent"
    );
    assert_eq!(
        endpoint(
            "http://127.0.0.1:9/v1beta",
            "gemini-embedding-001",
            "embedContent"
        )
        .unwrap(),
        "http://127.0.0.1:9/v1beta/models/gemini-embedding-001:embedContent"
    );
    assert_eq!(
        endpoint("http://127.0.0.1:9", "tunedModels/mine", "generateContent").unwrap(),
        "http://127.0.0.1:9/v1beta/tunedModels/mine:generateContent"
    );
}

#[test]
fn a_model_name_stays_one_path_segment_of_the_api() {
    let base = "https://generativelanguage.googleapis.com";
    let cases = [
        (
            "../../../../escape",
            "/v1beta/models/..%2F..%2F..%2F..%2Fescape:generateContent",
        ),
        (
            "x?key=abc&",
            "/v1beta/models/x%3Fkey%3Dabc%26:generateContent",
        ),
        ("models/../x", "/v1beta/models/..%2Fx:generateContent"),
        ("a#frag", "/v1beta/models/a%23frag:generateContent"),
        ("%2e%2e", "/v1beta/models/%252e%252e:generateContent"),
    ];
    for (model, path) in cases {
        let url = endpoint(base, model, "generateContent").unwrap();
        // As the HTTP client will send it: no dot segment resolved, no query.
        let parsed = reqwest::Url::parse(&url).unwrap();
        assert_eq!(parsed.path(), path, "{model}");
        assert_eq!(parsed.query(), None, "{model}");
        assert_eq!(parsed.fragment(), None, "{model}");
    }
    for refused in ["", "..", "models/..", "models/"] {
        assert!(
            matches!(
                endpoint(base, refused, "generateContent"),
                Err(ProviderError::InvalidRequest(_))
            ),
            "{refused:?}"
        );
    }
}

// ------------------------------------------------------ plain answers

#[test]
fn plain_answer_becomes_a_chat_completion() {
    let answer: GenerateContentResponse = serde_json::from_str(UNARY_SHORT).unwrap();
    let (completion, usage) = completion_from_response(&answer, "gemini-2.0-flash", 1).unwrap();
    assert_eq!(
        completion["choices"][0]["message"]["content"],
        "Google's headquarters, also known as the Googleplex, is located in **Mountain View, California**.\n"
    );
    assert_eq!(completion["choices"][0]["finish_reason"], "stop");
    assert_eq!(completion["model"], "gemini-2.0-flash");
    assert_eq!(completion["usage"]["prompt_tokens"], 7);
    assert_eq!(completion["usage"]["completion_tokens"], 22);
    assert_eq!(
        usage,
        TokenUsage {
            cache_write_tokens: 0,
            prompt_tokens: 7,
            completion_tokens: 22,
            cached_prompt_tokens: 0
        }
    );
}

#[test]
fn function_call_answer_carries_the_thought_signature_in_the_id() {
    let last = sse_datas(STREAM_THINKING_CALL).pop().unwrap();
    let answer: GenerateContentResponse = serde_json::from_str(last).unwrap();
    let (completion, usage) = completion_from_response(&answer, "m", 1).unwrap();
    let choice = &completion["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert_eq!(choice["message"]["content"], Value::Null);
    let call = &choice["message"]["tool_calls"][0];
    assert_eq!(call["function"]["name"], "now");
    assert_eq!(call["function"]["arguments"], "{}");
    let id = call["id"].as_str().unwrap();
    assert!(id.starts_with("call_0__thought__CiIBVKhc7vB"), "{id}");
    // Thinking tokens are billed as output.
    assert_eq!(
        usage,
        TokenUsage {
            cache_write_tokens: 0,
            prompt_tokens: 38,
            completion_tokens: 174,
            cached_prompt_tokens: 0
        }
    );
    assert_eq!(
        completion["usage"]["completion_tokens_details"]["reasoning_tokens"],
        168
    );
}

#[test]
fn safety_blocks_are_clear_errors() {
    // A candidate stopped by SAFETY with text keeps what it has.
    let answer: GenerateContentResponse = serde_json::from_str(UNARY_SAFETY).unwrap();
    let (completion, _) = completion_from_response(&answer, "m", 1).unwrap();
    assert_eq!(completion["choices"][0]["finish_reason"], "content_filter");
    // With nothing to show, it is an error.
    let empty: GenerateContentResponse = serde_json::from_value(json!({
        "candidates": [{"finishReason": "SAFETY"}]}))
    .unwrap();
    let err = completion_from_response(&empty, "m", 1).unwrap_err();
    assert!(
        matches!(err, ProviderError::Blocked(_)) && err.to_string().contains("SAFETY"),
        "{err}"
    );
    assert!(!err.is_retryable());
    // A blocked prompt, with or without a reason.
    let feedback: GenerateContentResponse = serde_json::from_str(UNARY_ONLY_FEEDBACK).unwrap();
    let err = completion_from_response(&feedback, "m", 1).unwrap_err();
    assert!(err.to_string().contains("Message"), "{err}");
}

#[test]
fn usage_counts_cached_thinking_and_tool_prompt_tokens() {
    let metadata: UsageMetadata = serde_json::from_value(json!({
        "promptTokenCount": 1000, "cachedContentTokenCount": 600, "candidatesTokenCount": 50,
        "thoughtsTokenCount": 200, "toolUsePromptTokenCount": 10, "totalTokenCount": 1260}))
    .unwrap();
    assert_eq!(
        token_usage(&metadata),
        TokenUsage {
            cache_write_tokens: 0,
            prompt_tokens: 1010,
            completion_tokens: 250,
            cached_prompt_tokens: 600
        }
    );
}

#[test]
fn error_body_message_is_kept_without_the_debug_detail() {
    assert_eq!(
        crate::openai::error_message(UNARY_API_KEY),
        "API key not valid. Please pass a valid API key."
    );
}

// ------------------------------------------------------ stream chunks

#[test]
fn text_stream_is_translated_chunk_by_chunk() {
    let (chunks, usage, done, error) = translate(STREAM_SHORT);
    assert!(error.is_none() && done);
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    assert_eq!(
        joined(&chunks, "content"),
        "The capital of Wyoming is **Cheyenne**.\n"
    );
    assert_eq!(chunks[3]["choices"][0]["finish_reason"], "stop");
    assert_eq!(chunks[4]["choices"], json!([]));
    assert_eq!(chunks[4]["model"], "gemini-3.1-flash-lite");
    assert_eq!(
        usage,
        Some(TokenUsage {
            cache_write_tokens: 0,
            prompt_tokens: 7,
            completion_tokens: 10,
            cached_prompt_tokens: 0
        })
    );
}

#[test]
fn thinking_and_function_call_stream() {
    let (chunks, usage, done, _) = translate(STREAM_THINKING_CALL);
    assert!(done);
    assert!(joined(&chunks, "reasoning_content").starts_with("**Calculating the Days**"));
    let call = chunks
        .iter()
        .find_map(|c| c["choices"][0]["delta"]["tool_calls"].get(0))
        .unwrap();
    assert_eq!(call["index"], 0);
    assert_eq!(call["function"]["name"], "now");
    assert!(
        call["id"]
            .as_str()
            .unwrap()
            .starts_with("call_0__thought__")
    );
    assert_eq!(
        chunks.last().unwrap()["id"],
        "chatcmpl-48SHaPHpHKbG-8YPtZCawAk"
    );
    let finish = chunks
        .iter()
        .find_map(|c| c["choices"][0]["finish_reason"].as_str())
        .unwrap();
    assert_eq!(finish, "tool_calls");
    assert_eq!(usage.unwrap().completion_tokens, 174);
}

#[test]
fn blocked_prompt_mid_stream_breaks_it_off() {
    let (chunks, usage, done, error) = translate(STREAM_BLOCKED);
    assert_eq!(joined(&chunks, "content"), "text1text2text3");
    assert!(!done && usage.is_none());
    let error = error.unwrap();
    assert!(matches!(error, ProviderError::Blocked(_)));
    assert!(error.to_string().contains("blockReason SAFETY"), "{error}");
}

#[test]
fn a_stream_without_finish_reason_has_no_done() {
    let first = sse_datas(STREAM_SHORT)[0].to_owned();
    let (chunks, usage, done, _) = translate(&format!("data: {first}\n\n"));
    assert_eq!(joined(&chunks, "content"), "The");
    assert!(!done && usage.is_none());
}

#[test]
fn errors_in_a_stream_keep_the_status_and_lose_the_key() {
    let (_, _, _, error) = translate(
        r#"data: {"error": {"code": 429, "message": "Resource exhausted for AIza-secret", "status": "RESOURCE_EXHAUSTED"}}"#,
    );
    let error = error.unwrap();
    assert!(error.is_retryable());
    let text = error.to_string();
    assert!(
        text.contains("429") && !text.contains("AIza-secret"),
        "{text}"
    );
}

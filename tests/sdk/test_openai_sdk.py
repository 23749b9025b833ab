"""The real OpenAI Python SDK against a running Tollgate.

Run by tests/sdk/run, which starts the mock provider and `tollgate serve`
and passes:
  TOLLGATE_URL          e.g. http://127.0.0.1:8080
  TOLLGATE_ADMIN_TOKEN  the platform-admin bearer token

The model `gpt-4o-mini` is served by the mock provider, priced 0.15 USD input
and 0.60 USD output per million tokens. The mock's usage is deterministic:
prompt_tokens = sum over messages of (words + 3), completion_tokens = words
of the reply ("Hello! I am a mock model and this is my answer." = 11 words).

The checks run in order and share state; the last line printed is
"N passed, N failed", and the exit status is 1 when anything failed.
"""

import json
import math
import os
import sys
import time
import traceback
import urllib.error
import urllib.request
import uuid

import openai

URL = os.environ["TOLLGATE_URL"].rstrip("/")
ADMIN_TOKEN = os.environ["TOLLGATE_ADMIN_TOKEN"]
MODEL = "gpt-4o-mini"
MOCK_REPLY = "Hello! I am a mock model and this is my answer."
PRICE_IN, PRICE_OUT = 0.15, 0.60  # USD per million tokens
GRANT = 1_000_000  # micro-dollars


def api(method, path, body=None, token=ADMIN_TOKEN):
    """Calls the management API; returns (status, parsed JSON or text)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(URL + path, data=data, method=method)
    req.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, raw.decode(errors="replace")


def expect(status, answer, want, what):
    assert status == want, f"{what}: HTTP {status}, wanted {want}: {answer!r}"
    return answer


def expected_cost_bounds(prompt_tokens, completion_tokens):
    """The exact cost in micro-dollars, floored and ceiled: costs are integers."""
    exact = prompt_tokens * PRICE_IN + completion_tokens * PRICE_OUT  # micro-USD
    return math.floor(exact + 1e-9), math.ceil(exact - 1e-9)


class State:
    org_id = None
    key = None
    client = None
    balance_before = None
    plain_text = None
    # request id -> cost from the x-tollgate-cost header (non-streamed calls)
    header_costs = {}
    # request id -> (prompt_tokens, completion_tokens) the SDK reported
    tokens = {}
    stream_request_id = None
    stream_cost = None


S = State()


def check_headers(headers, what):
    request_id = headers.get("x-tollgate-request-id")
    assert request_id, f"{what}: no x-tollgate-request-id header"
    assert headers.get("x-tollgate-model") == MODEL, (
        f"{what}: x-tollgate-model = {headers.get('x-tollgate-model')!r}, wanted {MODEL!r}"
    )
    assert headers.get("x-tollgate-provider") == "mock", (
        f"{what}: x-tollgate-provider = {headers.get('x-tollgate-provider')!r}, wanted 'mock'"
    )
    assert headers.get("x-tollgate-byok") == "false", (
        f"{what}: x-tollgate-byok = {headers.get('x-tollgate-byok')!r}, wanted 'false'"
    )
    return request_id


# ------------------------------------------------------------------ the checks


def test_setup_org_key_and_credits():
    org = expect(
        *api("POST", "/api/v1/organizations", {"name": f"sdk-{uuid.uuid4().hex[:8]}", "billing_mode": "usd"}),
        201,
        "create organization",
    )
    assert org.get("billing_mode") == "usd", f"organization: {org!r}"
    S.org_id = org["id"]

    key = expect(
        *api("POST", f"/api/v1/organizations/{S.org_id}/api-keys", {"name": "sdk-test"}),
        201,
        "create API key",
    )
    assert isinstance(key.get("key"), str) and key["key"].startswith("tg-"), f"API key answer: {key!r}"
    S.key = key["key"]

    grant = expect(
        *api(
            "POST",
            f"/api/v1/organizations/{S.org_id}/credits/grants",
            {"amount": GRANT, "idempotency_key": str(uuid.uuid4()), "reason": "sdk test"},
        ),
        201,
        "grant credits",
    )
    assert grant.get("unit") == "usd_micros", f"grant answer: {grant!r}"
    assert grant.get("balance") == GRANT, f"grant answer: {grant!r}, wanted balance {GRANT}"

    credits = expect(*api("GET", f"/api/v1/organizations/{S.org_id}/credits"), 200, "get credits")
    assert credits.get("balance") == GRANT, f"credits: {credits!r}"
    S.balance_before = credits["balance"]
    S.client = openai.OpenAI(base_url=URL + "/v1", api_key=S.key, max_retries=0, timeout=30)


def test_plain_chat_completion():
    raw = S.client.chat.completions.with_raw_response.create(
        model=MODEL, messages=[{"role": "user", "content": "Say hello"}]
    )
    request_id = check_headers(raw.headers, "plain completion")
    completion = raw.parse()
    text = completion.choices[0].message.content
    assert text, f"empty answer: {completion!r}"
    assert text == MOCK_REPLY, f"answer {text!r}, wanted the mock's {MOCK_REPLY!r}"
    assert completion.choices[0].finish_reason == "stop", completion.choices[0].finish_reason
    usage = completion.usage
    assert usage is not None, "no usage in the completion"
    assert (usage.prompt_tokens, usage.completion_tokens) == (5, 11), f"usage {usage!r}, wanted 5 + 11"
    assert usage.total_tokens == 16, f"usage {usage!r}"
    cost = int(raw.headers.get("x-tollgate-cost", "missing"))
    low, high = expected_cost_bounds(5, 11)
    assert low <= cost <= high, f"x-tollgate-cost {cost}, wanted {low}..{high} micro-USD"
    S.plain_text = text
    S.header_costs[request_id] = cost
    S.tokens[request_id] = (5, 11)


def test_auto_model_and_max_tokens():
    # "auto" routes by power level; every level lists only gpt-4o-mini.
    raw = S.client.chat.completions.with_raw_response.create(
        model="auto",
        messages=[
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Say hello to the SDK test"},
        ],
        max_tokens=3,
        extra_headers={"x-tollgate-power-level": "eco"},
    )
    request_id = check_headers(raw.headers, "auto completion")
    completion = raw.parse()
    assert completion.choices[0].message.content == "Hello! I am", completion.choices[0].message.content
    assert completion.choices[0].finish_reason == "length", completion.choices[0].finish_reason
    usage = completion.usage
    # (3 + 3) + (6 + 3) = 15 prompt tokens, 3 completion tokens.
    assert (usage.prompt_tokens, usage.completion_tokens) == (15, 3), f"usage {usage!r}, wanted 15 + 3"
    cost = int(raw.headers.get("x-tollgate-cost", "missing"))
    low, high = expected_cost_bounds(15, 3)
    assert low <= cost <= high, f"x-tollgate-cost {cost}, wanted {low}..{high} micro-USD"
    S.header_costs[request_id] = cost
    S.tokens[request_id] = (15, 3)


def test_streamed_chat_completion():
    raw = S.client.chat.completions.with_raw_response.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Say hello"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    request_id = check_headers(raw.headers, "streamed completion")
    S.stream_request_id = request_id
    pieces, usage, chunks = [], None, 0
    for chunk in raw.parse():
        chunks += 1
        if chunk.choices and chunk.choices[0].delta.content:
            pieces.append(chunk.choices[0].delta.content)
        if chunk.usage is not None:
            usage = chunk.usage
    text = "".join(pieces)
    assert chunks > 1, f"only {chunks} chunk(s)"
    assert text == (S.plain_text or MOCK_REPLY), f"streamed text {text!r} != plain text {S.plain_text!r}"
    assert usage is not None, "no usage chunk although stream_options.include_usage was true"
    assert (usage.prompt_tokens, usage.completion_tokens) == (5, 11), f"stream usage {usage!r}, wanted 5 + 11"
    S.tokens[request_id] = (5, 11)


def test_models_list():
    ids = {m.id for m in S.client.models.list()}
    assert MODEL in ids, f"{MODEL} not in {sorted(ids)}"
    assert "auto" in ids, f"auto not in {sorted(ids)}"


def test_invalid_key_is_authentication_error():
    bad = openai.OpenAI(base_url=URL + "/v1", api_key="tg-not-a-real-key", max_retries=0, timeout=30)
    try:
        bad.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    except openai.AuthenticationError as e:
        assert e.status_code == 401
        assert isinstance(e.body, dict) and e.body.get("message"), f"error body {e.body!r}"
    else:
        raise AssertionError("an invalid key was accepted")


def test_unknown_model_is_not_found_error():
    try:
        S.client.chat.completions.create(model="no-such-model-xyz", messages=[{"role": "user", "content": "hi"}])
    except openai.NotFoundError as e:
        assert e.status_code == 404
        assert isinstance(e.body, dict) and e.body.get("message"), f"error body {e.body!r}"
    else:
        raise AssertionError("an unknown model was accepted")


def _usage_records():
    answer = expect(*api("GET", f"/api/v1/organizations/{S.org_id}/usage"), 200, "get usage")
    return {r.get("request_id"): r for r in answer.get("data", [])}


def test_usage_records():
    assert S.org_id and S.header_costs and S.stream_request_id, "earlier checks failed: nothing to compare"
    wanted = set(S.header_costs) | {S.stream_request_id}
    # Usage may be written a moment after the answer (buffered, or settled
    # when the stream ends): wait up to 10 s for every record.
    deadline = time.monotonic() + 10
    while True:
        records = _usage_records()
        if wanted <= set(records) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    missing = wanted - set(records)
    assert not missing, f"no usage record for request ids {sorted(missing)}; records: {sorted(records)}"

    for request_id, (prompt, completion) in S.tokens.items():
        r = records[request_id]
        assert r.get("model") == MODEL, f"usage {request_id}: model {r.get('model')!r}"
        assert r.get("provider") == "mock", f"usage {request_id}: provider {r.get('provider')!r}"
        assert r.get("byok") is False, f"usage {request_id}: byok {r.get('byok')!r}"
        assert (r.get("prompt_tokens"), r.get("completion_tokens")) == (prompt, completion), (
            f"usage {request_id}: tokens {r.get('prompt_tokens')} + {r.get('completion_tokens')}, "
            f"wanted {prompt} + {completion}"
        )
    for request_id, cost in S.header_costs.items():
        assert records[request_id].get("cost") == cost, (
            f"usage {request_id}: cost {records[request_id].get('cost')!r} != x-tollgate-cost {cost}"
        )
    stream_cost = records[S.stream_request_id].get("cost")
    low, high = expected_cost_bounds(5, 11)
    assert isinstance(stream_cost, int) and low <= stream_cost <= high, (
        f"streamed call's cost {stream_cost!r}, wanted {low}..{high} micro-USD"
    )
    S.stream_cost = stream_cost
    # Only these calls may be billed: the invalid key and the unknown model not.
    extra = set(records) - wanted
    assert not extra, f"unexpected usage records (failed calls billed?): {[records[i] for i in extra]}"


def test_balance_dropped_by_exactly_the_costs():
    assert S.header_costs, "earlier checks failed: nothing to compare"
    assert S.stream_cost is not None, (
        "the streamed call's cost is unknown (its usage record could not be read), "
        "so the balance cannot be checked exactly"
    )
    spent = sum(S.header_costs.values()) + S.stream_cost
    deadline = time.monotonic() + 10
    while True:
        credits = expect(*api("GET", f"/api/v1/organizations/{S.org_id}/credits"), 200, "get credits")
        if S.balance_before - credits.get("balance", 0) == spent or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    drop = S.balance_before - credits["balance"]
    assert drop == spent, (
        f"balance dropped by {drop} micro-USD, wanted exactly {spent} "
        f"(headers {S.header_costs}, stream {S.stream_cost}); credits now {credits!r}"
    )
    # `reserved` may stay above 0 while the instance holds a credit lease for
    # the organization (crates/billing/src/leases.rs): only its type is fixed.
    assert isinstance(credits.get("reserved"), int) and credits["reserved"] >= 0, f"credits: {credits!r}"
    assert credits.get("unit") == "usd_micros", f"credits: {credits!r}"



WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather of a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


def _native_model_plain_and_streamed_tool_call(model):
    """The OpenAI SDK calls a model of another wire format, with a tool."""
    messages = [{"role": "user", "content": "What is the weather in Paris?"}]
    raw = S.client.chat.completions.with_raw_response.create(
        model=model, messages=messages, tools=[WEATHER_TOOL]
    )
    answer = raw.parse()
    assert raw.headers["x-tollgate-model"] == model, raw.headers
    calls = answer.choices[0].message.tool_calls
    assert calls and calls[0].function.name == "get_weather", answer
    json.loads(calls[0].function.arguments)
    assert answer.choices[0].finish_reason == "tool_calls", answer
    assert answer.usage.prompt_tokens > 0 and answer.usage.completion_tokens > 0
    assert int(raw.headers["x-tollgate-cost"]) > 0

    stream = S.client.chat.completions.create(
        model=model,
        messages=messages,
        tools=[WEATHER_TOOL],
        stream=True,
        stream_options={"include_usage": True},
    )
    name, arguments, finish, usage = "", "", None, None
    for chunk in stream:
        if chunk.usage:
            usage = chunk.usage
        for choice in chunk.choices:
            for call in choice.delta.tool_calls or []:
                name += call.function.name or ""
                arguments += call.function.arguments or ""
            finish = choice.finish_reason or finish
    assert name == "get_weather", name
    json.loads(arguments)
    assert finish == "tool_calls", finish
    assert usage and usage.completion_tokens > 0, usage


def test_anthropic_model_through_the_openai_sdk():
    _native_model_plain_and_streamed_tool_call("claude-test")


def test_gemini_model_through_the_openai_sdk():
    _native_model_plain_and_streamed_tool_call("gemini-test")


def test_openai_model_tool_call_through_the_openai_sdk():
    _native_model_plain_and_streamed_tool_call(MODEL)


def _messages(body):
    req = urllib.request.Request(
        URL + "/v1/messages", data=json.dumps(body).encode(), method="POST"
    )
    req.add_header("x-api-key", S.key)
    req.add_header("anthropic-version", "2023-06-01")
    req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=30) as resp:
        return resp.status, dict(resp.headers), resp.read().decode()


def test_anthropic_messages_api_to_an_openai_model():
    """Raw HTTP in Anthropic's format, served by an OpenAI-kind model."""
    body = {"model": MODEL, "max_tokens": 100, "messages": [{"role": "user", "content": "Say hello"}]}
    status, headers, text = _messages(body)
    assert status == 200, text
    message = json.loads(text)
    assert message["type"] == "message" and message["role"] == "assistant", message
    assert message["content"][0]["text"] == MOCK_REPLY, message
    assert message["usage"]["output_tokens"] == 11, message

    status, headers, text = _messages({**body, "stream": True})
    assert status == 200, text
    events = [line[len("event: "):] for line in text.splitlines() if line.startswith("event: ")]
    assert events[0] == "message_start" and events[-1] == "message_stop", events
    assert "content_block_delta" in events and "message_delta" in events, events
    deltas = [
        json.loads(line[len("data: "):])
        for line in text.splitlines()
        if line.startswith("data: ") and '"text_delta"' in line
    ]
    assert "".join(d["delta"]["text"] for d in deltas) == MOCK_REPLY, deltas


CHECKS = [
    test_setup_org_key_and_credits,
    test_plain_chat_completion,
    test_auto_model_and_max_tokens,
    test_streamed_chat_completion,
    test_models_list,
    test_invalid_key_is_authentication_error,
    test_unknown_model_is_not_found_error,
    test_usage_records,
    test_balance_dropped_by_exactly_the_costs,
    test_anthropic_model_through_the_openai_sdk,
    test_gemini_model_through_the_openai_sdk,
    test_openai_model_tool_call_through_the_openai_sdk,
    test_anthropic_messages_api_to_an_openai_model,
]


def main():
    print(f"openai {openai.VERSION} against {URL}")
    passed = failed = 0
    for check in CHECKS:
        name = check.__name__
        if S.client is None and check is not test_setup_org_key_and_credits:
            print(f"FAIL {name}: skipped, the setup failed")
            failed += 1
            continue
        try:
            check()
        except Exception as e:  # noqa: BLE001 - every failure is reported
            failed += 1
            print(f"FAIL {name}: {type(e).__name__}: {e}")
            if not isinstance(e, AssertionError):
                traceback.print_exc(limit=3, file=sys.stdout)
        else:
            passed += 1
            print(f"ok   {name}")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

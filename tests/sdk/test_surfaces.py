"""Real SDKs on Tollgate's other surfaces, against a running Tollgate.

Run by tests/sdk/run after test_openai_sdk.py, with the same gateway and
environment (TOLLGATE_URL, TOLLGATE_ADMIN_TOKEN). Every check runs on
models of the three provider kinds, all served by the mock provider:
gpt-native (provider `openai`, which speaks Responses: /v1/responses goes
through natively), gpt-4o-mini (an OpenAI-compatible provider: Responses
translated to Chat), claude-test (Anthropic), gemini-test (Gemini); and
gemini-embed (Gemini embeddings). The mock's usage rule: prompt = words + 3
per message, completion = words of the reply (11), 7 for a tool call.

- OpenAI Python: responses.create (plain, stream, function tools),
  responses.parse, previous_response_id across two calls, retrieve/delete;
- Anthropic Python: messages.count_tokens;
- google-genai: generate_content, generate_content_stream, function
  calling, count_tokens, embed_content;
- LangChain: ChatOpenAI(use_responses_api=True), invoke and stream.

The last line printed is "N passed, N failed"; exit status 1 on a failure.
"""

import json
import os
import sys
import traceback
import urllib.error
import urllib.request
import uuid

import anthropic
import openai
from google import genai
from google.genai import types
from langchain_openai import ChatOpenAI
from pydantic import BaseModel

URL = os.environ["TOLLGATE_URL"].rstrip("/")
ADMIN_TOKEN = os.environ["TOLLGATE_ADMIN_TOKEN"]
MODELS = ["gpt-native", "gpt-4o-mini", "claude-test", "gemini-test"]
MOCK_REPLY = "Hello! I am a mock model and this is my answer."
PROMPT = 10  # "Be brief" and "Say hello": (2 + 3) each


def api(method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(URL + path, data=data, method=method)
    req.add_header("Authorization", f"Bearer {ADMIN_TOKEN}")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def funded_key():
    status, org = api("POST", "/api/v1/organizations",
                      {"name": f"sdk-{uuid.uuid4().hex[:8]}", "billing_mode": "tokens"})
    assert status == 201, org
    status, _ = api("POST", f"/api/v1/organizations/{org['id']}/credits/grants", {"amount": 1_000_000})
    assert status == 201
    status, key = api("POST", f"/api/v1/organizations/{org['id']}/api-keys", {"name": "sdk"})
    assert status == 201, key
    return key["key"]


KEY = funded_key()
OTHER_KEY = funded_key()
oai = openai.OpenAI(base_url=URL + "/v1", api_key=KEY, max_retries=0)
WEATHER = {"type": "function", "name": "get_weather", "description": "Weather in a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                          "required": ["city"], "additionalProperties": False}}


class Person(BaseModel):
    name: str
    age: int


def responses_create_plain():
    for model in MODELS:
        r = oai.responses.create(model=model, input="Say hello", instructions="Be brief")
        assert r.status == "completed", (model, r)
        assert r.output_text == MOCK_REPLY, (model, r.output_text)
        assert r.usage.input_tokens == PROMPT, (model, r.usage)
        assert r.usage.output_tokens == 11, (model, r.usage)


def responses_create_stream():
    for model in MODELS:
        stream = oai.responses.create(model=model, input="Say hello", instructions="Be brief", stream=True)
        kinds, text, final = [], "", None
        for event in stream:
            kinds.append(event.type)
            if event.type == "response.output_text.delta":
                text += event.delta
            if event.type == "response.completed":
                final = event.response
        assert kinds[0] == "response.created" and kinds[-1] == "response.completed", (model, kinds)
        assert text == MOCK_REPLY, (model, text)
        assert final.output_text == MOCK_REPLY and final.usage.total_tokens == PROMPT + 11, (model, final)


def responses_tools_and_outputs():
    for model in MODELS:
        first = oai.responses.create(model=model, input="Weather in Paris?", tools=[WEATHER])
        calls = [item for item in first.output if item.type == "function_call"]
        assert calls and calls[0].name == "get_weather", (model, first.output)
        assert json.loads(calls[0].arguments) == {"city": "mock"}, calls[0].arguments
        second = oai.responses.create(
            model=model, tools=[WEATHER], previous_response_id=first.id,
            input=[{"type": "function_call_output", "call_id": calls[0].call_id, "output": "sunny"}])
        assert second.output_text == MOCK_REPLY, (model, second.output)
        # The streamed call's arguments arrive as deltas.
        stream = oai.responses.create(model=model, input="Weather in Paris?", tools=[WEATHER], stream=True)
        kinds = [event.type for event in stream]
        assert "response.function_call_arguments.delta" in kinds, (model, kinds)
        assert "response.function_call_arguments.done" in kinds, (model, kinds)


def responses_parse():
    for model in MODELS:
        r = oai.responses.parse(model=model, input="Extract: Ann is 30", text_format=Person)
        assert r.output_parsed == Person(name="mock", age=1), (model, r.output_text)


def previous_response_id_across_two_calls():
    for model in MODELS:
        first = oai.responses.create(model=model, input="My name is Ann")
        second = oai.responses.create(model=model, input="What is my name?", previous_response_id=first.id)
        # Alone, "What is my name?" would be 4 + 3 tokens: the history was sent.
        alone = 4 + 3
        assert second.usage.input_tokens > alone, (model, second.usage)
        assert second.previous_response_id == first.id
        got = oai.responses.retrieve(first.id)
        assert got.id == first.id and got.output_text == MOCK_REPLY
    other = openai.OpenAI(base_url=URL + "/v1", api_key=OTHER_KEY, max_retries=0)
    try:
        other.responses.retrieve(first.id)
        raise AssertionError("another organization read a stored response")
    except openai.NotFoundError:
        pass
    oai.responses.delete(first.id)
    try:
        oai.responses.retrieve(first.id)
        raise AssertionError("a deleted response is still there")
    except openai.NotFoundError:
        pass


def anthropic_count_tokens():
    client = anthropic.Anthropic(base_url=URL, api_key=KEY, max_retries=0)
    messages = [{"role": "user", "content": "Say hello"}]
    for model in ["claude-test", "gemini-test"]:  # their providers count
        counted = client.messages.count_tokens(model=model, system="Be brief", messages=messages)
        assert counted.input_tokens == PROMPT, (model, counted)
    estimated = client.messages.count_tokens(model="gpt-4o-mini", messages=messages)
    assert estimated.input_tokens > 0, estimated


def gclient():
    return genai.Client(api_key=KEY, http_options=types.HttpOptions(base_url=URL, api_version="v1beta"))


def genai_generate_content():
    client = gclient()
    config = types.GenerateContentConfig(system_instruction="Be brief")
    for model in MODELS:
        r = client.models.generate_content(model=model, contents="Say hello", config=config)
        assert r.text == MOCK_REPLY, (model, r)
        assert r.usage_metadata.prompt_token_count == PROMPT, (model, r.usage_metadata)
        assert r.usage_metadata.candidates_token_count == 11


def genai_stream():
    client = gclient()
    for model in MODELS:
        chunks = list(client.models.generate_content_stream(model=model, contents="Say hello"))
        text = "".join(c.text or "" for c in chunks)
        assert text == MOCK_REPLY, (model, text)
        assert chunks[-1].usage_metadata.total_token_count == 5 + 11, (model, chunks[-1])


def genai_function_calling():
    client = gclient()
    tool = types.Tool(function_declarations=[types.FunctionDeclaration(
        name="get_weather", description="Weather in a city",
        parameters=types.Schema(type="OBJECT", properties={"city": types.Schema(type="STRING")},
                                required=["city"]))])
    config = types.GenerateContentConfig(
        tools=[tool], automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True))
    for model in MODELS:
        r = client.models.generate_content(model=model, contents="Weather in Paris?", config=config)
        calls = r.function_calls or []
        assert calls and calls[0].name == "get_weather" and calls[0].args == {"city": "mock"}, (model, r)


def genai_count_tokens():
    client = gclient()
    for model in ["claude-test", "gemini-test"]:
        counted = client.models.count_tokens(model=model, contents="Say hello")
        assert counted.total_tokens == 5, (model, counted)
    assert client.models.count_tokens(model="gpt-4o-mini", contents="Say hello").total_tokens > 0


def genai_embed_content():
    client = gclient()  # kept: a collected client closes its connection pool
    # Two contents, two embeddings (a list of strings would be one content).
    contents = [types.Content(parts=[types.Part(text=t)]) for t in ["hello world", "bye"]]
    r = client.models.embed_content(model="gemini-embed", contents=contents)
    assert len(r.embeddings) == 2, r
    assert len(r.embeddings[0].values) == len(r.embeddings[1].values) > 0, r


def langchain_responses_api():
    for model in MODELS:
        llm = ChatOpenAI(model=model, base_url=URL + "/v1", api_key=KEY,
                         use_responses_api=True, max_retries=0)
        answer = llm.invoke("Say hello")
        assert answer.text == MOCK_REPLY, (model, answer)
        assert answer.usage_metadata["output_tokens"] == 11, (model, answer.usage_metadata)
        streamed = "".join(chunk.text for chunk in llm.stream("Say hello"))
        assert streamed == MOCK_REPLY, (model, streamed)


CHECKS = [
    responses_create_plain,
    responses_create_stream,
    responses_tools_and_outputs,
    responses_parse,
    previous_response_id_across_two_calls,
    anthropic_count_tokens,
    genai_generate_content,
    genai_stream,
    genai_function_calling,
    genai_count_tokens,
    genai_embed_content,
    langchain_responses_api,
]


def main():
    passed = failed = 0
    for check in CHECKS:
        try:
            check()
            passed += 1
            print(f"ok    {check.__name__}")
        except Exception:  # noqa: BLE001 - report every failure and go on
            failed += 1
            print(f"FAIL  {check.__name__}")
            traceback.print_exc()
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()

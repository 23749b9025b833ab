"""Traces and metrics of a running Tollgate, as an operator's tools see them.

Run by tests/observability/run, which starts `tollgate serve` with
OTEL_EXPORTER_OTLP_ENDPOINT pointing at FAKE_PORT and a catalog whose one
provider is also FAKE_PORT, and passes:
  TOLLGATE_URL          e.g. http://127.0.0.1:8080
  TOLLGATE_ADMIN_TOKEN  the platform-admin bearer token
  FAKE_PORT             where this script listens
  OBSERVABILITY_DOC     docs/observability.md, whose table of metrics is
                        checked against /metrics
and sets OTEL_SERVICE_NAME=tollgate-under-test, OTEL_EXPORTER_OTLP_HEADERS
(authorization: Bearer collector-token) and TOLLGATE_METRICS_PER_ORGANIZATION.

This script listens on FAKE_PORT as both:
  - an OTLP/HTTP collector (`POST /v1/traces`, protobuf, decoded with the
    `opentelemetry-proto` package), and
  - an OpenAI-compatible provider (`POST /v1/chat/completions`) that
    records the `traceparent` of every call and fails the model
    `flaky-upstream` with a 503, so that `"model": "auto"` at the
    `balanced` level falls back to gpt-4o-mini; it streams (SSE) when asked.

The checks run in order; the last line printed is "N passed, N failed", and
the exit status is 1 when anything failed.
"""

import json
import os
import re
import secrets
import sys
import threading
import time
import traceback
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.trace.v1 import trace_pb2
from prometheus_client import parser as classic_parser
from prometheus_client.openmetrics import parser as openmetrics_parser

URL = os.environ["TOLLGATE_URL"].rstrip("/")
ADMIN_TOKEN = os.environ["TOLLGATE_ADMIN_TOKEN"]
PORT = int(os.environ["FAKE_PORT"])
PROMPT = "a prompt that must never reach a span"

spans = []  # every span received, in order
export_headers = []  # the headers of every OTLP export
provider_calls = []  # (upstream model, traceparent header) per provider call
lock = threading.Lock()


class Fake(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def _answer(self, status, body, content_type="application/json"):
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def do_POST(self):
        raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.path == "/v1/traces":
            assert self.headers.get("Content-Type") == "application/x-protobuf"
            request = trace_service_pb2.ExportTraceServiceRequest()
            request.ParseFromString(raw)
            with lock:
                export_headers.append({k.lower(): v for k, v in self.headers.items()})
                for resource_spans in request.resource_spans:
                    for scope_spans in resource_spans.scope_spans:
                        for span in scope_spans.spans:
                            spans.append((resource_spans.resource, span))
            self._answer(200, trace_service_pb2.ExportTraceServiceResponse().SerializeToString(),
                         "application/x-protobuf")
            return
        if self.path == "/v1/chat/completions":
            body = json.loads(raw)
            with lock:
                provider_calls.append((body["model"], self.headers.get("traceparent")))
            if body["model"] == "flaky-upstream":
                self._answer(503, {"error": {"message": "overloaded", "type": "server_error"}})
                return
            if body.get("stream"):
                chunk = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": int(time.time()),
                         "model": body["model"]}
                events = [
                    dict(chunk, choices=[{"index": 0, "delta": {"role": "assistant", "content": "a streamed"}}]),
                    dict(chunk, choices=[{"index": 0, "delta": {"content": " answer"}, "finish_reason": "stop"}]),
                    dict(chunk, choices=[], usage={"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}),
                ]
                raw = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"
                self._answer(200, raw.encode(), "text/event-stream")
                return
            self._answer(200, {
                "id": "chatcmpl-fake", "object": "chat.completion", "created": int(time.time()),
                "model": body["model"],
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": "a completion that must never reach a span"}}],
                "usage": {"prompt_tokens": 12, "completion_tokens": 7, "total_tokens": 19},
            })
            return
        self._answer(404, {"error": {"message": "no such path"}})


def http(method, path, body=None, token=ADMIN_TOKEN, headers=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(URL + path, data=data, method=method)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    for name, value in (headers or {}).items():
        req.add_header(name, value)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def attrs(span):
    out = {}
    for kv in span.attributes:
        v = kv.value
        out[kv.key] = getattr(v, v.WhichOneof("value"))
    return out


def wait_for(predicate, what, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        with lock:
            found = predicate()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def scrape(openmetrics):
    headers = {"Accept": "application/openmetrics-text;version=1.0.0"} if openmetrics else {}
    status, hdrs, body = http("GET", "/metrics", token=None, headers=headers)
    assert status == 200
    content_type = hdrs.get("Content-Type") or hdrs.get("content-type")
    text = body.decode()
    if openmetrics:
        assert content_type.startswith("application/openmetrics-text"), content_type
        return {f.name: f for f in openmetrics_parser.text_string_to_metric_families(text)}
    assert content_type.startswith("text/plain"), content_type
    return {f.name: f for f in classic_parser.text_string_to_metric_families(text)}


def histogram_count(families, name, **labels):
    family = families.get(name)
    if family is None:
        return 0
    assert family.type == "histogram", (name, family.type)
    total = 0
    for sample in family.samples:
        if sample.name == name + "_count" and all(sample.labels.get(k) == v for k, v in labels.items()):
            total += sample.value
    return total


def counter_value(families, name, **labels):
    family = families.get(name)
    if family is None:
        return 0
    assert family.type == "counter", (name, family.type)
    return sum(s.value for s in family.samples
               if s.name == name + "_total" and all(s.labels.get(k) == v for k, v in labels.items()))


state = {}


def setup():
    status, _, body = http("POST", "/api/v1/organizations", {"name": "observed", "billing_mode": "usd"})
    assert status == 201, body
    org = json.loads(body)["id"]
    status, _, body = http("POST", f"/api/v1/organizations/{org}/credits/grants", {"amount": 10_000_000})
    assert status == 201, body
    status, _, body = http("POST", f"/api/v1/organizations/{org}/api-keys", {"name": "observed"})
    assert status == 201, body
    key = json.loads(body)
    state.update(org=org, key=key["key"], key_id=key["id"])


def chat(traceparent=None, model="auto", stream=False):
    headers = {"traceparent": traceparent} if traceparent else {}
    status, hdrs, body = http("POST", "/v1/chat/completions", {
        "model": model, "power_level": "balanced", "stream": stream,
        "messages": [{"role": "user", "content": PROMPT}],
    }, token=state["key"], headers=headers)
    assert status == 200, body
    if stream:
        assert b"data: [DONE]" in body, body
    return {k.lower(): v for k, v in hdrs.items()}


def test_a_call_is_one_server_span_with_a_client_span_per_attempt():
    trace_id, parent_id = secrets.token_hex(16), secrets.token_hex(8)
    before_calls = len(provider_calls)
    headers = chat(f"00-{trace_id}-{parent_id}-01")
    assert headers["x-tollgate-attempts"] == "2", headers

    def ours():
        mine = [(r, s) for r, s in spans if s.trace_id.hex() == trace_id]
        return mine if len(mine) >= 3 else None

    mine = wait_for(ours, "the call's three spans")
    assert len(mine) == 3, [s.name for _, s in mine]
    servers = [s for _, s in mine if s.kind == trace_pb2.Span.SPAN_KIND_SERVER]
    clients = sorted((s for _, s in mine if s.kind == trace_pb2.Span.SPAN_KIND_CLIENT),
                     key=lambda s: attrs(s)["tollgate.attempt"])
    assert len(servers) == 1 and len(clients) == 2
    server = servers[0]
    resource = {kv.key: kv.value.string_value for kv in mine[0][0].attributes}
    assert resource["service.name"] == "tollgate-under-test", resource  # OTEL_SERVICE_NAME
    with lock:
        assert export_headers and all(h.get("authorization") == "Bearer collector-token"
                                      for h in export_headers), export_headers  # OTEL_EXPORTER_OTLP_HEADERS

    # The client's span is the parent; each attempt is a child of the call.
    assert server.parent_span_id.hex() == parent_id
    for client in clients:
        assert client.parent_span_id == server.span_id
        assert server.start_time_unix_nano <= client.start_time_unix_nano <= client.end_time_unix_nano
        assert client.end_time_unix_nano <= server.end_time_unix_nano + 1_000_000

    a = attrs(server)
    assert server.name == "chat gpt-4o-mini", server.name
    assert a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.request.model"] == "auto"
    assert a["gen_ai.response.model"] == "gpt-4o-mini-2024-07-18"
    assert a["gen_ai.provider.name"] == "fake"
    assert a["gen_ai.usage.input_tokens"] == 12
    assert a["gen_ai.usage.output_tokens"] == 7
    assert a["tollgate.organization.id"] == state["org"]
    assert a["tollgate.api_key.id"] == state["key_id"]
    assert a["tollgate.power_level"] == "balanced"
    assert a["tollgate.cost"] == int(headers["x-tollgate-cost"])
    assert a["tollgate.byok"] is False
    assert a["tollgate.attempts"] == 2
    assert a["tollgate.request_id"] == headers["x-tollgate-request-id"]
    assert a["http.response.status_code"] == 200
    assert server.status.code != trace_pb2.Status.STATUS_CODE_ERROR

    first, second = (attrs(c) for c in clients)
    assert first["tollgate.attempt"] == 1 and second["tollgate.attempt"] == 2
    assert first["gen_ai.request.model"] == "flaky-upstream"
    assert first["error.type"] == "503"
    assert clients[0].status.code == trace_pb2.Status.STATUS_CODE_ERROR
    assert second["gen_ai.request.model"] == "gpt-4o-mini-2024-07-18"
    assert second["gen_ai.provider.name"] == "fake"
    assert "error.type" not in second

    # Each provider call carried the trace, with its attempt span as parent.
    calls = provider_calls[before_calls:]
    assert [m for m, _ in calls] == ["flaky-upstream", "gpt-4o-mini-2024-07-18"], calls
    for (_, traceparent), client in zip(calls, clients):
        version, t, p, flags = traceparent.split("-")
        assert (version, t, p, flags) == ("00", trace_id, client.span_id.hex(), "01"), traceparent

    # No prompt and no completion in any span unless TOLLGATE_TRACE_CONTENT.
    for _, span in mine:
        for value in attrs(span).values():
            assert "never reach a span" not in str(value), span.name


def test_a_call_without_traceparent_starts_a_trace():
    before = len(spans)
    headers = chat(model="gpt-4o-mini")
    request_id = headers["x-tollgate-request-id"]

    def server():
        for _, s in spans[before:]:
            if s.kind == trace_pb2.Span.SPAN_KIND_SERVER and attrs(s).get("tollgate.request_id") == request_id:
                return s
        return None

    span = wait_for(server, "the call's server span")
    assert span.parent_span_id == b""
    assert len(span.trace_id) == 16 and span.trace_id != bytes(16)
    _, traceparent = provider_calls[-1]
    assert traceparent.split("-")[1] == span.trace_id.hex()


def test_a_streamed_call_is_traced_until_its_end():
    headers = chat(model="gpt-4o-mini", stream=True)
    request_id = headers["x-tollgate-request-id"]

    def server():
        for _, s in spans:
            if s.kind == trace_pb2.Span.SPAN_KIND_SERVER and attrs(s).get("tollgate.request_id") == request_id:
                return s
        return None

    span = wait_for(server, "the stream's server span")
    a = attrs(span)
    assert a["tollgate.stream"] is True
    assert a["gen_ai.usage.output_tokens"] == 3
    assert a["tollgate.time_to_first_token_ms"] >= 0
    attempt = wait_for(lambda: [s for _, s in spans if s.parent_span_id == span.span_id], "its attempt")
    assert len(attempt) == 1 and attempt[0].kind == trace_pb2.Span.SPAN_KIND_CLIENT
    assert span.end_time_unix_nano >= attempt[0].end_time_unix_nano
    for value in a.values():
        assert "never reach a span" not in str(value) and "streamed" not in str(value)


def documented_families():
    """(name, type) of every metric in docs/observability.md's table, named
    as the parsers name families (a counter without its `_total`)."""
    with open(os.environ["OBSERVABILITY_DOC"], encoding="utf-8") as f:
        rows = re.findall(r"^\| `(tollgate_[a-z_]+)` \| (counter|gauge|histogram) \|", f.read(), re.M)
    assert len(rows) >= 15, rows
    return [(name[:-len("_total")] if kind == "counter" else name, kind) for name, kind in rows]


def test_every_documented_family_parses_with_its_type_in_both_formats():
    chat(model="gpt-4o-mini")
    for openmetrics in (False, True):
        families = scrape(openmetrics)
        for name, kind in documented_families():
            assert name in families, (openmetrics, name, sorted(families))
            assert families[name].type == kind, (openmetrics, name, families[name].type)
        served = {n for n in families if n.startswith("tollgate_")}
        assert served == {n for n, _ in documented_families()}, (openmetrics, served)


def test_histograms_move_in_both_formats():
    for openmetrics in (False, True):
        before = scrape(openmetrics)
        chat(model="gpt-4o-mini")
        chat(model="gpt-4o-mini", stream=True)
        time.sleep(0.5)  # settlements are committed a moment after the answers
        after = scrape(openmetrics)
        route = {"route": "/v1/chat/completions"}
        mini = {"provider": "fake", "model": "gpt-4o-mini"}

        def moved(metric_type, name, labels):
            value = histogram_count if metric_type == "histogram" else counter_value
            return value(after, name, **labels) - value(before, name, **labels)

        for metric_type, name, labels, expected in [
            ("histogram", "tollgate_http_request_duration_seconds", route, 2),
            ("histogram", "tollgate_gateway_overhead_seconds", {"operation": "chat"}, 2),
            ("histogram", "tollgate_provider_attempt_duration_seconds", mini, 2),
            ("histogram", "tollgate_time_to_first_token_seconds", mini, 1),
            ("histogram", "tollgate_settlement_duration_seconds", {}, 2),
            # Counters parse as counters (not `unknown`) in both formats.
            ("counter", "tollgate_http_requests", dict(route, status="200", code=""), 2),
            ("counter", "tollgate_provider_attempts", dict(mini, outcome="ok"), 2),
            ("counter", "tollgate_tokens", dict(mini, kind="completion"), 7 + 3),
            ("counter", "tollgate_organization_tokens", dict(mini, kind="prompt", organization=state["org"]), 24),
        ]:
            got = moved(metric_type, name, labels)
            assert got == expected, (openmetrics, name, labels, got)
        cost = moved("counter", "tollgate_cost_usd_micros", mini)
        assert cost > 0, openmetrics
        assert moved("counter", "tollgate_organization_cost_usd_micros", dict(mini, organization=state["org"])) \
            == cost, openmetrics
        for gauge in ("tollgate_calls_in_flight", "tollgate_cooldowns_open", "tollgate_settlement_queue_depth"):
            assert after[gauge].type == "gauge"
        assert sum(s.value for s in after["tollgate_calls_in_flight"].samples) == 0


def main():
    server = ThreadingHTTPServer(("127.0.0.1", PORT), Fake)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    checks = [setup, test_a_call_is_one_server_span_with_a_client_span_per_attempt,
              test_a_call_without_traceparent_starts_a_trace,
              test_a_streamed_call_is_traced_until_its_end,
              test_every_documented_family_parses_with_its_type_in_both_formats,
              test_histograms_move_in_both_formats]
    passed = failed = 0
    for check in checks:
        try:
            check()
            print(f"PASS {check.__name__}")
            passed += 1
        except Exception:
            print(f"FAIL {check.__name__}")
            traceback.print_exc()
            failed += 1
    server.shutdown()
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()

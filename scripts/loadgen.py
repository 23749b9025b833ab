#!/usr/bin/env python3
"""A fixed-rate (open-loop) HTTP/1.1 load generator for scripts/load.

wrk only measures closed-loop throughput, and wrk2 is not packaged here, so
this sends POST requests at a fixed rate over N keep-alive connections with
nothing but the standard library (asyncio streams).

Request i is due at start + i/rate. A dispatcher hands due requests to
whichever connection is free; latency is counted from the moment a request
was DUE, not when it was sent, so a stalled server is not hidden by the
client waiting for it (coordinated omission, as wrk2 corrects it).
With --stream, the time to the first byte of the response body (the first
SSE bytes) is measured too, from the moment the request was written.

The last line printed is the result as key=value pairs (milliseconds):
  sent ok non2xx errors rate p50 p90 p99 p999 max late ttfb_p50 ttfb_p99 ...
"""

import argparse
import asyncio
import json
import math
import sys
import time
from urllib.parse import urlsplit


def percentile(sorted_values, p):
    if not sorted_values:
        return float("nan")
    # Nearest rank: the smallest value with at least p% of values <= it.
    k = min(len(sorted_values) - 1, max(0, math.ceil(p / 100.0 * len(sorted_values)) - 1))
    return sorted_values[k]


class Stats:
    def __init__(self):
        self.latency = []  # seconds, from due time to last body byte
        self.ttfb = []  # seconds, from write to first body byte
        self.late = 0  # requests written more than 10 ms after they were due
        self.ok = 0
        self.non2xx = 0
        self.errors = 0
        self.statuses = {}
        self.first_error = None


async def read_response(reader):
    """Reads one HTTP/1.1 response; returns (status, keep_alive, t_first_body_byte)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    keep_alive = headers.get("connection", "").lower() != "close"
    t_first = None
    if headers.get("transfer-encoding", "").lower() == "chunked":
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.split(b";", 1)[0].strip(), 16)
            if size == 0:
                # Trailers, if any, end with an empty line.
                while (await reader.readuntil(b"\r\n")) != b"\r\n":
                    pass
                break
            await reader.readexactly(1)
            if t_first is None:
                t_first = time.perf_counter()
            await reader.readexactly(size - 1 + 2)  # the rest and its CRLF
    elif "content-length" in headers:
        length = int(headers["content-length"])
        if length > 0:
            await reader.readexactly(1)
            t_first = time.perf_counter()
            if length > 1:
                await reader.readexactly(length - 1)
    else:
        # Body until the connection closes.
        first = await reader.read(1)
        if first:
            t_first = time.perf_counter()
        await reader.read()
        keep_alive = False
    return status, keep_alive, t_first


async def worker(host, port, request, queue, stats, stream, deadline):
    reader = writer = None
    while True:
        item = await queue.get()
        if item is None:
            break
        due = item
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection(host, port)
            t_sent = time.perf_counter()
            if t_sent - due > 0.010:
                stats.late += 1
            writer.write(request)
            await writer.drain()
            remaining = max(1.0, deadline - time.perf_counter())
            async with asyncio.timeout(remaining):
                status, keep_alive, t_first = await read_response(reader)
            t_done = time.perf_counter()
            stats.statuses[status] = stats.statuses.get(status, 0) + 1
            if 200 <= status < 300:
                stats.ok += 1
                stats.latency.append(t_done - due)
                if stream and t_first is not None:
                    stats.ttfb.append(t_first - t_sent)
            else:
                stats.non2xx += 1
            if not keep_alive:
                writer.close()
                reader = writer = None
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, asyncio.TimeoutError, ValueError) as e:
            stats.errors += 1
            if stats.first_error is None:
                stats.first_error = f"{type(e).__name__}: {e}"
            if writer is not None:
                writer.close()
            reader = writer = None
    if writer is not None:
        writer.close()


async def run(args):
    url = urlsplit(args.url)
    host, port = url.hostname, url.port or 80
    path = url.path + (f"?{url.query}" if url.query else "")
    body = {"model": args.model, "messages": [{"role": "user", "content": "Say hello"}]}
    if args.stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    payload = json.dumps(body).encode()
    request = (
        f"POST {path} HTTP/1.1\r\n"
        f"Host: {host}:{port}\r\n"
        f"Authorization: Bearer {args.key}\r\n"
        "Content-Type: application/json\r\n"
        "Accept: */*\r\n"
        f"Content-Length: {len(payload)}\r\n"
        "\r\n"
    ).encode() + payload

    stats = Stats()
    queue = asyncio.Queue()
    total = int(args.rate * args.seconds)
    start = time.perf_counter() + 0.2
    # Every request must end by then; later ones count as errors.
    deadline = start + args.seconds + args.timeout
    workers = [
        asyncio.create_task(worker(host, port, request, queue, stats, args.stream, deadline))
        for _ in range(args.connections)
    ]
    interval = 1.0 / args.rate
    for i in range(total):
        due = start + i * interval
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        queue.put_nowait(due)
    for _ in workers:
        queue.put_nowait(None)
    await asyncio.gather(*workers)
    elapsed = time.perf_counter() - start
    return stats, total, elapsed


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True, help="e.g. http://127.0.0.1:8080/v1/chat/completions")
    parser.add_argument("--key", required=True, help="bearer key")
    parser.add_argument("--model", default="gpt-4o-mini")
    parser.add_argument("--rate", type=float, default=1000.0, help="requests per second")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--timeout", type=float, default=10.0, help="grace after the last request is due")
    parser.add_argument("--stream", action="store_true", help="stream: true, and measure time to first body byte")
    args = parser.parse_args()

    stats, total, elapsed = asyncio.run(run(args))
    lat = sorted(stats.latency)
    ttfb = sorted(stats.ttfb)
    ms = lambda s: f"{s * 1000:.3f}"  # noqa: E731
    result = {
        "sent": total,
        "ok": stats.ok,
        "non2xx": stats.non2xx,
        "errors": stats.errors,
        "rate": f"{stats.ok / elapsed:.1f}" if elapsed > 0 else "0",
        "p50": ms(percentile(lat, 50)),
        "p90": ms(percentile(lat, 90)),
        "p99": ms(percentile(lat, 99)),
        "p999": ms(percentile(lat, 99.9)),
        "max": ms(lat[-1]) if lat else "nan",
        "late": stats.late,
    }
    if args.stream:
        result.update(
            ttfb_p50=ms(percentile(ttfb, 50)),
            ttfb_p90=ms(percentile(ttfb, 90)),
            ttfb_p99=ms(percentile(ttfb, 99)),
            ttfb_p999=ms(percentile(ttfb, 99.9)),
        )
    if stats.statuses:
        print("statuses: " + ", ".join(f"{k}: {v}" for k, v in sorted(stats.statuses.items())), file=sys.stderr)
    if stats.first_error:
        print(f"first error: {stats.first_error}", file=sys.stderr)
    print(" ".join(f"{k}={v}" for k, v in result.items()))


if __name__ == "__main__":
    main()

"""Soak: a bounded mixed load against ``bascule --workers 2 --max-requests N`` (not run in CI).

For ``--duration`` seconds (default 120), at the same time:

- ``wrk`` on HTTP/1.1 keep-alive connections (``GET /``);
- ``wrk`` with ``Connection: close`` (a new connection per request);
- HTTP/2 clients (``h2``): cleartext, 8 streams in flight per connection; after a GOAWAY
  they let the open streams finish and reconnect, and resend the streams the GOAWAY
  refused (above its last-stream-id: not processed, RFC 9113 §6.8), counted apart.
  ``h2load`` cannot be used here: its clients stop for good at the first GOAWAY (every
  worker replacement sends one) and count the refused streams as errors;
- WebSocket echo clients (``websockets``), every echo checked;
- upload clients (``httpx``): ``POST /upload`` of 64 KiB..1 MiB, the length checked,
  alternately on keep-alive and fresh connections;

while the supervisor gets a SIGHUP (every worker replaced) at 40 % of the run and
``--max-requests`` recycles workers over and over.  The RSS of the whole process tree
(supervisor + workers) is sampled every second; "RSS at minute 1" and "at minute 2" are
the medians of the samples taken in the 10 s before the middle and before the end of the
run, counting only samples where exactly the supervisor and its ``--workers`` workers
were alive (a worker being replaced briefly has a twin).

A WebSocket closed by the server with 1001 (going away: its worker is being replaced) is
not a failure: the client reconnects, and counts it.  Everything else is: a wrong or
missing echo, a failed or non-2xx request, a socket error, a worker crash.

The app is this module's ``app`` (``bascule soak:app --app-dir bench``).

Usage::

    python bench/soak.py [--duration S] [--workers N] [--max-requests N] [--output FILE]

Needs ``wrk`` on PATH, plus h2, httpx and websockets.  Prints a Markdown report
on stdout (progress on stderr); exit status 0 when the soak passed, 1 when it did not.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import random
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from run import (
    HOST,
    REPO_ROOT,
    Pinning,
    RunFailed,
    ServerSpec,
    WrkResult,
    _positive_int,
    _read_log,
    _tail,
    cpu_model,
    free_port,
    package_version,
    parse_wrk,
    start_server,
    stop_server,
    wait_ready,
)

BENCH_DIR = Path(__file__).resolve().parent

# --------------------------------------------------------------------------
# The app the soak serves
# --------------------------------------------------------------------------

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

HELLO = b"Hello, world!"  # run.EXPECTED_BODY: run.wait_ready probes GET / for it


def _head(status: int, length: int) -> Message:
    return {
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"text/plain"), (b"content-length", b"%d" % length)],
    }


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """``GET /``: hello; ``POST /upload``: the body's length; WebSocket: echo."""
    kind = scope["type"]
    if kind == "http":
        if scope["path"] == "/upload":
            size = 0
            while True:
                message = await receive()
                if message["type"] != "http.request":
                    return
                size += len(message.get("body", b""))
                if not message.get("more_body", False):
                    break
            body = b"%d" % size
        else:
            body = HELLO
        await send(_head(200, len(body)))
        await send({"type": "http.response.body", "body": body})
    elif kind == "websocket":
        if (await receive())["type"] != "websocket.connect":
            return
        await send({"type": "websocket.accept"})
        while True:
            message = await receive()
            if message["type"] != "websocket.receive":
                return
            if message.get("text") is not None:
                await send({"type": "websocket.send", "text": message["text"]})
            else:
                await send({"type": "websocket.send", "bytes": message.get("bytes") or b""})
    elif kind == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return


# --------------------------------------------------------------------------
# Bookkeeping
# --------------------------------------------------------------------------

MAX_DETAILS = 10
#: Seconds over which the RSS "at minute N" median is taken.
RSS_WINDOW_S = 10.0
#: Slack on top of wrk's own duration before we give up on it.
TOOL_SLACK_S = 30.0
#: Tolerated RSS change from the middle to the end of the run.
RSS_FLAT = 0.10
#: Seconds the supervisor gets to stop gracefully after the load.
STOP_TIMEOUT_S = 30.0


@dataclass
class Counts:
    """One scripted client kind: successes, failures and a few failure messages."""

    ok: int = 0
    failed: int = 0
    details: list[str] = field(default_factory=list)

    def fail(self, message: str) -> None:
        self.failed += 1
        if len(self.details) < MAX_DETAILS:
            self.details.append(message)


@dataclass
class Scripted:
    """What the Python clients saw."""

    h2: Counts = field(default_factory=Counts)
    h2_connections: int = 0
    h2_goaways: int = 0
    h2_refused: int = 0  # streams above a GOAWAY's last-stream-id: not processed, resent
    h2_non_2xx: int = 0
    h2_reset_when_done: int = 0  # connection reset once every promised stream was answered
    ws: Counts = field(default_factory=Counts)
    ws_going_away: int = 0  # closes with 1001 (worker replaced): reconnected
    ws_connections: int = 0
    uploads: Counts = field(default_factory=Counts)
    upload_bytes: int = 0


@dataclass
class RssSample:
    at: float  # seconds since the load started
    rss: int  # bytes, whole process group
    processes: int


def group_members(pgid: int) -> list[int]:
    """PIDs of the live processes of process group ``pgid`` (Linux /proc)."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as fh:
                raw = fh.read()
        except OSError:
            continue
        rest = raw[raw.rfind(b")") + 2 :].split()
        if len(rest) > 2 and rest[0] != b"Z" and int(rest[2]) == pgid:
            found.append(int(name))
    return found


def rss_of(pids: Sequence[int]) -> int:
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as fh:
                for line in fh:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
                        break
        except OSError:
            continue
    return total


# --------------------------------------------------------------------------
# Scripted clients
# --------------------------------------------------------------------------


async def ws_client(cid: int, port: int, stop_at: float, stats: Scripted) -> None:
    """Echo messages one at a time; reconnect after a 1001 close; check every echo."""
    from websockets.asyncio.client import connect  # noqa: PLC0415 - load side only
    from websockets.exceptions import ConnectionClosed  # noqa: PLC0415

    rng = random.Random(cid)
    sent = 0
    while time.monotonic() < stop_at:
        try:
            async with connect(
                f"ws://{HOST}:{port}/ws", compression=None, open_timeout=10, close_timeout=10
            ) as ws:
                stats.ws_connections += 1
                while time.monotonic() < stop_at:
                    sent += 1
                    message = f"{cid}:{sent}:" + "x" * rng.randrange(1, 4096)
                    await ws.send(message)
                    echo = await asyncio.wait_for(ws.recv(), 10)
                    if echo != message:
                        stats.ws.fail(f"ws {cid}: wrong echo of message {sent}")
                        return
                    stats.ws.ok += 1
        except ConnectionClosed as exc:
            if exc.rcvd is not None and exc.rcvd.code == 1001:
                stats.ws_going_away += 1  # its worker is being replaced: go again
                continue
            stats.ws.fail(f"ws {cid}: closed: {exc}")
            await asyncio.sleep(0.1)
        except (OSError, TimeoutError) as exc:
            stats.ws.fail(f"ws {cid}: {type(exc).__name__}: {exc}")
            await asyncio.sleep(0.1)
        except Exception as exc:
            stats.ws.fail(f"ws {cid}: {type(exc).__name__}: {exc}")
            await asyncio.sleep(0.1)


async def upload_client(cid: int, port: int, stop_at: float, stats: Scripted) -> None:
    """POST bodies of 64 KiB..1 MiB; every other one on a fresh connection."""
    import httpx  # noqa: PLC0415 - load side only

    rng = random.Random(1000 + cid)
    blob = rng.randbytes(1 << 20)
    n = 0
    async with httpx.AsyncClient(base_url=f"http://{HOST}:{port}", timeout=30) as client:
        while time.monotonic() < stop_at:
            n += 1
            size = rng.randrange(64 << 10, 1 << 20)
            headers = {"connection": "close"} if n % 2 else {}
            try:
                response = await client.post("/upload", content=blob[:size], headers=headers)
            except httpx.HTTPError as exc:
                stats.uploads.fail(f"upload {cid}.{n}: {type(exc).__name__}: {exc}")
                await asyncio.sleep(0.1)
                continue
            if response.status_code != 200 or response.text != str(size):
                stats.uploads.fail(
                    f"upload {cid}.{n}: {response.status_code} {response.text[:60]!r}"
                )
                continue
            stats.uploads.ok += 1
            stats.upload_bytes += size


def split_goaways(data: bytes) -> tuple[bytes, list[int], bytes]:
    """``data`` cut into (frames other than GOAWAY, GOAWAY last-stream-ids, incomplete tail).

    GOAWAY frames are kept away from h2: its client state machine closes on GOAWAY and
    would then refuse the frames of the streams the server still finishes.
    """
    from hyperframe.frame import Frame, GoAwayFrame  # noqa: PLC0415 - load side only

    keep = bytearray()
    found: list[int] = []
    view = memoryview(data)
    while len(view) >= 9:
        frame, length = Frame.parse_frame_header(view[:9])
        if len(view) < 9 + length:
            break
        if isinstance(frame, GoAwayFrame):
            frame.parse_body(view[9 : 9 + length])
            found.append(frame.last_stream_id)
        else:
            keep += view[: 9 + length]
        view = view[9 + length :]
    return bytes(keep), found, bytes(view)


async def h2_client(cid: int, port: int, stop_at: float, streams: int, stats: Scripted) -> None:
    """HTTP/2 (h2c, prior knowledge), ``streams`` requests in flight per connection.

    After a GOAWAY it opens no new stream there, lets the open ones finish, and
    reconnects; streams above the GOAWAY's last-stream-id were not processed (RFC 9113
    §6.8): they are counted as refused and sent again on the next connection.
    """
    import h2.config  # noqa: PLC0415 - load side only
    import h2.connection  # noqa: PLC0415
    import h2.errors  # noqa: PLC0415
    import h2.events  # noqa: PLC0415
    import h2.exceptions  # noqa: PLC0415

    headers = [(b":method", b"GET"), (b":path", b"/"), (b":scheme", b"http"),
               (b":authority", f"{HOST}:{port}".encode())]  # fmt: skip
    config = h2.config.H2Configuration(client_side=True, header_encoding=None)
    while time.monotonic() < stop_at:
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(HOST, port), 10)
        except (OSError, TimeoutError) as exc:
            stats.h2.fail(f"h2 {cid}: connect: {exc}")
            await asyncio.sleep(0.1)
            continue
        stats.h2_connections += 1
        conn = h2.connection.H2Connection(config=config)
        conn.initiate_connection()
        pending: dict[int, tuple[int | None, bytearray]] = {}
        last_stream: int | None = None
        buffer = b""
        try:
            while True:
                while last_stream is None and len(pending) < streams and time.monotonic() < stop_at:
                    stream_id = conn.get_next_available_stream_id()
                    conn.send_headers(stream_id, headers, end_stream=True)
                    pending[stream_id] = (None, bytearray())
                writer.write(conn.data_to_send())
                await writer.drain()
                if not pending:
                    break
                data = await asyncio.wait_for(reader.read(65536), 10)
                if not data:
                    for stream_id in pending:
                        if last_stream is not None and stream_id > last_stream:
                            stats.h2_refused += 1
                        else:
                            stats.h2.fail(f"h2 {cid}: stream {stream_id} cut by the close")
                    break
                data, goaways, buffer = split_goaways(buffer + data)
                for event in conn.receive_data(data) if data else []:
                    if isinstance(event, h2.events.ResponseReceived):
                        status = dict(event.headers or []).get(b":status")
                        pending[event.stream_id] = (
                            int(status or 0),
                            pending[event.stream_id][1],
                        )  # fmt: skip
                    elif isinstance(event, h2.events.DataReceived):
                        pending[event.stream_id][1].extend(event.data or b"")
                        conn.acknowledge_received_data(
                            event.flow_controlled_length, event.stream_id
                        )
                    elif isinstance(event, h2.events.StreamEnded):
                        status_code, body = pending.pop(event.stream_id)
                        if status_code != 200:
                            stats.h2.fail(f"h2 {cid}: status {status_code}")
                            stats.h2_non_2xx += 1
                        elif bytes(body) != HELLO:
                            stats.h2.fail(f"h2 {cid}: wrong body {bytes(body)[:40]!r}")
                        else:
                            stats.h2.ok += 1
                    elif isinstance(event, h2.events.StreamReset):
                        pending.pop(event.stream_id, None)
                        if event.error_code == h2.errors.ErrorCodes.REFUSED_STREAM:
                            stats.h2_refused += 1
                        else:
                            stats.h2.fail(f"h2 {cid}: stream reset ({event.error_code!r})")
                for last in goaways:
                    last_stream = last if last_stream is None else min(last, last_stream)
                    for stream_id in [sid for sid in pending if sid > last_stream]:
                        del pending[stream_id]
                        stats.h2_refused += 1
                    stats.h2_goaways += 1
        except (OSError, TimeoutError, h2.exceptions.H2Error) as exc:
            # Only streams the server promised to finish (none above a GOAWAY's
            # last-stream-id) are lost requests; a reset once they are all done is not.
            lost = [sid for sid in pending if last_stream is None or sid <= last_stream]
            stats.h2_refused += len(pending) - len(lost)
            if lost:
                stats.h2.fail(
                    f"h2 {cid}: {type(exc).__name__} ({exc}) with {len(lost)} stream(s) "
                    f"unanswered, GOAWAY last-stream-id {last_stream}"
                )
            else:
                stats.h2_reset_when_done += 1
            await asyncio.sleep(0.1)
        finally:
            writer.close()


async def drive(
    args: argparse.Namespace, port: int, pgid: int, started: float
) -> tuple[Scripted, list[RssSample], float | None]:
    """The scripted clients, the RSS sampler and the SIGHUP, for the whole run."""
    stats = Scripted()
    stop_at = started + args.duration
    clients = [
        *(h2_client(i, port, stop_at, args.h2_streams, stats) for i in range(args.h2_connections)),
        *(ws_client(i, port, stop_at, stats) for i in range(args.ws_clients)),
        *(upload_client(i, port, stop_at, stats) for i in range(args.upload_clients)),
    ]
    tasks = [asyncio.create_task(c) for c in clients]
    samples: list[RssSample] = []
    hup_at = started + args.duration * 0.4
    hup_sent: float | None = None
    while (now := time.monotonic()) < stop_at:
        members = group_members(pgid)
        samples.append(RssSample(now - started, rss_of(members), len(members)))
        if hup_sent is None and now >= hup_at:
            os.kill(pgid, signal.SIGHUP)  # the supervisor: it leads the group
            hup_sent = now - started
            _log(f"t={hup_sent:.0f}s: SIGHUP sent")
        await asyncio.sleep(min(1.0, max(0.0, stop_at - time.monotonic())))
    _, pending = await asyncio.wait(tasks, timeout=60)
    for task in pending:
        task.cancel()
        stats.ws.fail("a client did not stop within 60 s of the end")
    return stats, samples, hup_sent


# --------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------


def soak_argv(args: argparse.Namespace) -> Callable[[int], list[str]]:
    def argv(port: int) -> list[str]:
        return [
            sys.executable, "-m", "bascule", "soak:app",
            "--app-dir", str(BENCH_DIR),
            "--host", HOST, "--port", str(port),
            "--workers", str(args.workers),
            "--max-requests", str(args.max_requests),
            "--max-requests-jitter", str(args.max_requests // 10),
            "--no-access-log", "--log-level", "info",
        ]  # fmt: skip

    return argv


def start_tool(argv: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def finish_tool(proc: subprocess.Popen[str], timeout: float, name: str) -> str:
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate(timeout=10)
        raise RunFailed(f"{name} did not finish within {timeout:.0f} s") from None
    if proc.returncode != 0:
        raise RunFailed(f"{name} exited with code {proc.returncode}: {_tail(out)}")
    return out


@dataclass
class Outcome:
    """Everything the report shows."""

    wrk_keepalive: WrkResult
    wrk_close: WrkResult
    scripted: Scripted
    samples: list[RssSample]
    hup_at: float | None
    log: str
    exit_status: int | None
    seconds: float

    def count(self, pattern: str) -> int:
        return len(re.findall(pattern, self.log))


def run_soak(args: argparse.Namespace) -> Outcome:
    port = free_port()
    spec = ServerSpec("bascule", soak_argv(args), cwd=REPO_ROOT)
    unpinned = Pinning(None, None, "unpinned")
    with tempfile.TemporaryFile() as log:
        proc = start_server(spec, port, unpinned, log)
        try:
            wait_ready(proc, port, log)
            url = f"http://{HOST}:{port}/"
            d = str(args.duration)
            tools = {
                "wrk keep-alive": start_tool(
                    ["wrk", "-t1", f"-c{args.wrk_connections}", f"-d{d}s", "--latency", url]
                ),
                "wrk new connections": start_tool(
                    ["wrk", "-t1", "-c4", f"-d{d}s", "--latency", "-H", "Connection: close", url]
                ),
            }
            started = time.monotonic()
            _log(f"load started on port {port} for {args.duration} s (supervisor pid {proc.pid})")
            scripted, samples, hup_at = asyncio.run(drive(args, port, proc.pid, started))
            outputs = {
                name: finish_tool(tool, args.duration + TOOL_SLACK_S, name)
                for name, tool in tools.items()
            }
            seconds = time.monotonic() - started
            if proc.poll() is not None:
                raise RunFailed(f"bascule exited during the soak: {_tail(_read_log(log))}")
            during = _read_log(log)
            # A graceful stop through the supervisor (by its PID), as in production.
            proc.send_signal(signal.SIGTERM)
            try:
                exit_status = proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                exit_status = None
        finally:
            stop_server(proc)  # SIGKILLs whatever is left of its process group
        return Outcome(
            wrk_keepalive=parse_wrk(outputs["wrk keep-alive"]),
            wrk_close=parse_wrk(outputs["wrk new connections"]),
            scripted=scripted,
            samples=samples,
            hup_at=hup_at,
            log=during,
            exit_status=exit_status,
            seconds=seconds,
        )


def steady_rss(samples: Sequence[RssSample], end: float, processes: int) -> int | None:
    """Median RSS of the samples in the RSS_WINDOW_S before ``end`` with ``processes`` alive."""
    window = [
        s.rss for s in samples if end - RSS_WINDOW_S <= s.at <= end and s.processes == processes
    ]
    return int(statistics.median(window)) if window else None


def mib(value: int | None) -> str:
    return "n/a" if value is None else f"{value / (1 << 20):.1f} MiB"


def render(args: argparse.Namespace, outcome: Outcome, command: str) -> tuple[str, bool]:
    """The Markdown report and whether the soak passed."""
    o = outcome
    s = o.scripted
    processes = args.workers + 1
    mid = steady_rss(o.samples, args.duration / 2, processes)
    end = steady_rss(o.samples, args.duration, processes)
    change = None if mid is None or end is None else (end - mid) / mid
    wrk_errors = o.wrk_keepalive.socket_error_total + o.wrk_close.socket_error_total
    non_2xx = o.wrk_keepalive.non_2xx_3xx + o.wrk_close.non_2xx_3xx + s.h2_non_2xx
    crashes = o.count(r"worker \d+ exited \(") + o.count(r"after SIGTERM: SIGKILL")
    checks = {
        "zero failed requests": wrk_errors == 0
        and s.h2.failed == 0
        and s.ws.failed == 0
        and s.uploads.failed == 0,
        "zero non-2xx": non_2xx == 0,
        "a SIGHUP replaced every worker": o.count(r"SIGHUP: every worker replaced") == 1,
        "max-requests recycled workers": o.count(r"reached --max-requests") > 0,
        "no worker crashed or was killed": crashes == 0,
        f"RSS flat within {RSS_FLAT:.0%}": change is not None and abs(change) <= RSS_FLAT,
        "clean exit": o.exit_status == 0,
    }
    passed = all(checks.values())
    lines = [
        f"Soak of {args.duration} s, {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, "
        f"{os.cpu_count()} CPU ({cpu_model()}), bascule {package_version('bascule')}, "
        f"Python {sys.version.split()[0]}.",
        "",
        f"    {command}",
        "",
        "| load | completed | failed | non-2xx |",
        "| --- | ---: | ---: | ---: |",
        f"| wrk, HTTP/1.1 keep-alive, {args.wrk_connections} connections | "
        f"{o.wrk_keepalive.requests} | {o.wrk_keepalive.socket_error_total} | "
        f"{o.wrk_keepalive.non_2xx_3xx} |",
        f"| wrk, HTTP/1.1 `Connection: close`, 4 connections | {o.wrk_close.requests} | "
        f"{o.wrk_close.socket_error_total} | {o.wrk_close.non_2xx_3xx} |",
        f"| HTTP/2 (h2c), {args.h2_connections} clients x {args.h2_streams} streams "
        f"({s.h2_connections} connections, {s.h2_goaways} GOAWAY, {s.h2_refused} streams "
        f"refused by one and resent, {s.h2_reset_when_done} connections reset after their "
        f"last answer) | {s.h2.ok} | {s.h2.failed} | {s.h2_non_2xx} |",
        f"| WebSocket echo, {args.ws_clients} clients ({s.ws_connections} connections, "
        f"{s.ws_going_away} closed 1001 and reopened) | {s.ws.ok} | {s.ws.failed} | - |",
        f"| uploads 64 KiB-1 MiB, {args.upload_clients} clients "
        f"({s.upload_bytes / (1 << 20):.0f} MiB) | {s.uploads.ok} | {s.uploads.failed} | 0 |",
        "",
        f"Workers: {args.workers}, `--max-requests {args.max_requests}` (+ jitter "
        f"{args.max_requests // 10}): {o.count(r'reached --max-requests')} max-requests "
        f"replacements; SIGHUP at {o.hup_at or 0:.0f} s: "
        f"{o.count(r'SIGHUP: every worker replaced')} full replacement; {crashes} crashes.",
        "",
        f"RSS of the process tree (supervisor + {args.workers} workers): "
        f"{mib(mid)} at {args.duration / 2:.0f} s, {mib(end)} at {args.duration} s "
        f"({'n/a' if change is None else f'{change:+.1%}'}); "
        f"min {mib(min((x.rss for x in o.samples), default=None))}, "
        f"max {mib(max((x.rss for x in o.samples), default=None))} over "
        f"{len(o.samples)} samples.",
        "",
        *(f"- {'PASS' if ok else 'FAIL'}: {name}" for name, ok in checks.items()),
    ]
    details = s.h2.details + s.ws.details + s.uploads.details
    if details:
        lines += ["", "First failures:", *(f"- {d}" for d in details)]
    return "\n".join(lines) + "\n", passed


# --------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Bounded mixed-load soak of bascule.")
    parser.add_argument(
        "--duration", type=_positive_int, default=120, help="seconds of load (default 120)"
    )
    parser.add_argument(
        "--workers", type=_positive_int, default=2, help="bascule --workers (default 2)"
    )
    parser.add_argument(
        "--max-requests",
        type=_positive_int,
        default=50000,
        help="bascule --max-requests (default 50000; jitter is a tenth of it)",
    )
    parser.add_argument("--wrk-connections", type=_positive_int, default=8)
    parser.add_argument("--h2-connections", type=_positive_int, default=2)
    parser.add_argument("--h2-streams", type=_positive_int, default=8)
    parser.add_argument("--ws-clients", type=_positive_int, default=4)
    parser.add_argument("--upload-clients", type=_positive_int, default=2)
    parser.add_argument("--output", type=Path, default=None, help="also write the report here")
    args = parser.parse_args(argv)
    if args.duration < 10:
        parser.error("--duration must be at least 10 s")
    return args


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    for tool in ("wrk",):
        if shutil.which(tool) is None:
            _log(f"error: {tool} not found on PATH")
            return 2
    command = shlex.join(["python", "bench/soak.py", *(argv if argv is not None else sys.argv[1:])])
    try:
        outcome = run_soak(args)
    except RunFailed as exc:
        _log(f"soak FAILED to run: {exc}")
        return 1
    report, passed = render(args, outcome, command)
    print(report, end="", flush=True)
    if args.output is not None:
        args.output.write_text(report, encoding="utf-8")
    if not passed:
        _log("server log tail:\n" + "\n".join(outcome.log.splitlines()[-20:]))
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())

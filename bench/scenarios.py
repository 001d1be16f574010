"""The scenarios of issue 7 and how to run one of them against one server.

Each scenario names its app, its load (wrk, h2load, ``bench/ws_load.py`` or the idle
connections of ``bench/memory.py``), its headline metric and its targets. ``run_once``
starts a fresh server on a fresh port (pinned to its CPU), checks it answers the right
bytes, warms it up, measures, and always stops it by its process group. Driving rounds
and printing tables is ``bench/suite.py``'s job.

Helpers come from the sibling scripts (``run.py``, ``h2_run.py``, ``ws_run.py``), so the
bench directory must be on ``sys.path`` (``python -m bench`` arranges that).
"""

from __future__ import annotations

import argparse
import functools
import http.client
import importlib.util
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import h2_run
import memory
import run
import ws_run
from run import HOST, REPO_ROOT, Pinning, RunFailed, ServerSpec

Kind = Literal["wrk", "h2", "ws", "memory"]

HELLO_APP = "bench.app:app"
BODY_APP = "bench.scenario_app:app"
WS_APP = "bench.ws_app:app"
HELLO = b"Hello, world!"
JSON_BODY = b'{"message":"Hello, world!","id":1,"tags":["asgi","json"]}'
BIG_BODY = bytes(range(256)) * 256
POST_SIZE = 4096
POST_BODY = bytes(range(256)) * (POST_SIZE // 256)

ALL_SERVERS = ("bascule", "uvicorn", "granian", "hypercorn", "daphne", "limit", "sketch")
SLACK_S = 30.0
# Requests per connection for uvicorn's HTTP/2 (zttp sends GOAWAY after ~4096 streams).
UVICORN_H2_REQUESTS_PER_CONN = 4000
UVICORN_H2_WARMUP_PER_CONN = 200


@dataclass(frozen=True)
class Target:
    """``value / baseline`` must be at least (or, for lower-is-better, at most) ``ratio``."""

    baseline: str
    ratio: float

    def text(self, higher_is_better: bool) -> str:
        return f"{'≥' if higher_is_better else '≤'} {self.ratio:g}x {self.baseline}"


@dataclass(frozen=True)
class Scenario:
    """One row of the issue's target table."""

    name: str
    title: str
    kind: Kind
    app: str
    metric: str  # headline column title
    servers: tuple[str, ...]  # servers that can run it
    targets: tuple[Target, ...] = ()
    higher_is_better: bool = True
    path: str = "/"
    expected: bytes = HELLO
    connections: int = 64
    post: bool = False
    requires: tuple[str, ...] = ()  # modules the app imports
    no_errors: bool = False  # the target also asks for zero errors


_H1_PEERS = ("bascule", "uvicorn", "granian", "hypercorn", "daphne")
_WITH_LIMIT = (*_H1_PEERS, "limit", "sketch")
#: The framework scenarios: the sketch runs any ASGI app, so it shows how far a server
#: without features can take the framework's row.
_WITH_SKETCH = (*_H1_PEERS, "sketch")

SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            "h1-hello", "HTTP/1.1 hello, wrk -c64", "wrk", HELLO_APP, "requests/s", _WITH_LIMIT,
            (Target("uvicorn", 1.7), Target("granian", 1.5), Target("limit", 0.6)),
        ),
        Scenario(
            "h1-json", "HTTP/1.1 small JSON (57 B, json.dumps per request), wrk -c64", "wrk",
            BODY_APP, "requests/s", _H1_PEERS, (Target("uvicorn", 1.3),),
            path="/json", expected=JSON_BODY,
        ),
        Scenario(
            "h1-64k", "HTTP/1.1 64 KiB body, wrk -c64", "wrk", BODY_APP, "requests/s",
            _H1_PEERS, (Target("uvicorn", 1.3),), path="/64k", expected=BIG_BODY,
        ),
        Scenario(
            "h1-post-4k", "HTTP/1.1 4 KiB POST echo, wrk -c64", "wrk", BODY_APP, "requests/s",
            _H1_PEERS, (Target("uvicorn", 1.3),), path="/echo", expected=POST_BODY, post=True,
        ),
        Scenario(
            "h1-c1", "HTTP/1.1 hello, wrk -c1 (latency bound)", "wrk", HELLO_APP,
            "p50 latency us", _WITH_LIMIT, (Target("uvicorn", 1.0),),
            higher_is_better=False, connections=1,
        ),
        Scenario(
            "h1-c256", "HTTP/1.1 hello, wrk -c256", "wrk", HELLO_APP, "requests/s", _WITH_LIMIT,
            (Target("uvicorn", 1.5), Target("granian", 1.0)), connections=256, no_errors=True,
        ),
        Scenario(
            "h2", "HTTP/2 h2c, h2load -c16 -m10", "h2", HELLO_APP, "requests/s",
            ("bascule", "uvicorn", "granian", "hypercorn"),
            (Target("hypercorn", 3.0), Target("uvicorn", 1.2)), connections=16,
        ),
        Scenario(
            "ws", "WebSocket echo, 16 connections x 16 in flight, 32 B text", "ws", WS_APP,
            "msgs/s", _H1_PEERS, (Target("uvicorn", 1.3),), expected=b"ok", connections=16,
        ),
        Scenario(
            "memory", "RSS with idle keep-alive connections", "memory", HELLO_APP,
            "RSS MiB with N idle", _WITH_LIMIT, (Target("uvicorn", 1.0),),
            higher_is_better=False,
        ),
        Scenario(
            "starlette", "Starlette hello (PlainTextResponse), wrk -c64", "wrk",
            "bench.framework_hello:starlette_app", "requests/s", _WITH_SKETCH,
            (Target("uvicorn", 1.2),), requires=("starlette",),
        ),
        Scenario(
            "fastapi", "FastAPI hello (PlainTextResponse), wrk -c64", "wrk",
            "bench.framework_hello:fastapi_app", "requests/s", _WITH_SKETCH,
            (Target("uvicorn", 1.2),), requires=("fastapi",),
        ),
    )
}  # fmt: skip


# --------------------------------------------------------------------------
# Servers
# --------------------------------------------------------------------------


def _uvicorn_argv(app: str, kind: Kind, port: int) -> list[str]:
    protocol = ["--http", "zttp", "--http2"] if kind == "h2" else ["--http", "httptools"]
    ws = ["--ws", "websockets-sansio"] if kind == "ws" else []
    return [
        sys.executable, "-m", "uvicorn", app,
        "--host", HOST, "--port", str(port),
        *protocol, *ws, "--loop", "uvloop",
        "--no-access-log", "--log-level", "warning",
        "--app-dir", str(REPO_ROOT),
    ]  # fmt: skip


def _granian_argv(app: str, kind: Kind, port: int) -> list[str]:
    return [
        sys.executable, "-m", "granian", app,
        "--interface", "asgi", "--workers", "1",
        "--http", "2" if kind == "h2" else "1",
        "--host", HOST, "--port", str(port),
        "--no-access-log", "--log-level", "warning",
        "--working-dir", str(REPO_ROOT),
    ]  # fmt: skip


def _hypercorn_argv(app: str, config: Path | None, port: int) -> list[str]:
    extra = ["--config", str(config)] if config is not None else []
    return [*run.hypercorn_argv(app, port), *extra]


def _daphne_argv(app: str, port: int) -> list[str]:
    # Access log is off unless --access-log is given; -v 0 keeps its own log quiet.
    return [sys.executable, "-m", "daphne", "-b", HOST, "-p", str(port), "-v", "0", app]


def _limit_argv(port: int) -> list[str]:
    script = str(Path(__file__).resolve().parent / "limit.py")
    return [sys.executable, script, "--host", HOST, "--port", str(port)]


def _sketch_argv(app: str, port: int) -> list[str]:
    script = str(Path(__file__).resolve().parent / "sketch.py")
    return [sys.executable, script, app, "--host", HOST, "--port", str(port)]


def server_spec(server: str, scenario: Scenario, hypercorn_h2_config: Path | None) -> ServerSpec:
    """How to launch ``server`` for ``scenario`` (one worker, access log off)."""
    app, kind = scenario.app, scenario.kind
    if server == "bascule":
        # src/ on PYTHONPATH: the working tree's bascule is benchmarked.
        argv = functools.partial(run.bascule_argv, app)
        return ServerSpec(server, argv, extra_pythonpath=(str(REPO_ROOT / "src"),))
    if server == "uvicorn":
        return ServerSpec(server, functools.partial(_uvicorn_argv, app, kind))
    if server == "granian":
        return ServerSpec(server, functools.partial(_granian_argv, app, kind))
    if server == "hypercorn":
        config = hypercorn_h2_config if kind == "h2" else None
        return ServerSpec(server, functools.partial(_hypercorn_argv, app, config))
    if server == "daphne":
        return ServerSpec(server, functools.partial(_daphne_argv, app),
                          extra_pythonpath=(str(REPO_ROOT),))  # fmt: skip
    if server == "limit":
        return ServerSpec(server, _limit_argv)
    if server == "sketch":
        return ServerSpec(server, functools.partial(_sketch_argv, app),
                          extra_pythonpath=(str(REPO_ROOT),))  # fmt: skip
    raise ValueError(f"unknown server {server!r}")


@functools.cache
def _module_missing(module: str) -> bool:
    return importlib.util.find_spec(module) is None


@functools.cache
def _uvicorn_h2_reason() -> str | None:
    return h2_run.unavailable_reason("uvicorn")


@functools.cache
def _uvicorn_sansio() -> bool:
    return ws_run.uvicorn_supports("websockets-sansio")


def unavailable_reason(server: str, scenario: Scenario) -> str | None:
    """Why ``server`` cannot run ``scenario`` here, or None if it can."""
    if server not in scenario.servers:
        return None  # not listed at all; the caller skips it
    for module in scenario.requires:
        if _module_missing(module):
            return f"{module} is not installed"
    module = {"bascule": "bascule", "limit": "uvloop", "sketch": "httptools"}.get(server, server)
    if server != "bascule" and _module_missing(module):
        return f"{module} is not installed (python -m bench --setup installs the peers)"
    if server == "uvicorn" and scenario.kind == "h2":
        return _uvicorn_h2_reason()
    if server == "uvicorn" and scenario.kind == "ws" and not _uvicorn_sansio():
        return "this uvicorn has no --ws websockets-sansio"
    if server == "uvicorn" and _module_missing("httptools"):
        return "httptools is not installed"
    return None


# --------------------------------------------------------------------------
# Measurements
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    """One run's figures: ``value`` is the scenario's headline metric."""

    value: float
    details: dict[str, float] = field(default_factory=dict)
    errors: int = 0
    note: str | None = None


_P50_RE = re.compile(r"^\s*50(?:\.0+)?%\s+([0-9.]+)(us|ms|s|m|h)\s*$", re.MULTILINE)


def _check_response(port: int, scenario: Scenario, timeout: float = 5.0) -> None:
    """One real request of the scenario's shape; its body must be the expected one."""
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        if scenario.post:
            conn.request("POST", scenario.path, body=POST_BODY,
                         headers={"content-type": "application/octet-stream"})  # fmt: skip
        else:
            conn.request("GET", scenario.path)
        response = conn.getresponse()
        body = response.read()
    except (OSError, http.client.HTTPException) as exc:
        raise RunFailed(f"check request {scenario.path}: {exc!r}") from exc
    finally:
        conn.close()
    if response.status != 200 or body != scenario.expected:
        raise RunFailed(
            f"{scenario.path} answered {response.status} with {len(body)} bytes "
            f"{body[:40]!r}, not the expected {len(scenario.expected)} bytes"
        )


def _wrk_script(tmpdir: Path) -> Path:
    script = tmpdir / "post.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        'wrk.headers["Content-Type"] = "application/octet-stream"\n'
        "local bytes = {}\n"
        "for i = 0, 255 do bytes[#bytes + 1] = string.char(i) end\n"
        f"wrk.body = string.rep(table.concat(bytes), {POST_SIZE // 256})\n",
        encoding="ascii",
    )
    return script


def _run_wrk(
    pinning: Pinning, scenario: Scenario, duration: int, port: int, script: Path | None
) -> str:
    argv = [
        *pinning.wrk_prefix(), "wrk", "-t", "1",
        "-c", str(scenario.connections), "-d", f"{duration}s", "--latency",
        *(["-s", str(script)] if script is not None else []),
        f"http://{HOST}:{port}{scenario.path}",
    ]  # fmt: skip
    try:
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=duration + SLACK_S, check=False)  # fmt: skip
    except subprocess.TimeoutExpired as exc:
        raise RunFailed(f"wrk did not finish within {exc.timeout:.0f} s") from exc
    except OSError as exc:
        raise RunFailed(f"could not run wrk: {exc}") from exc
    if done.returncode != 0:
        raise RunFailed(
            f"wrk exited with {done.returncode}: " + run._tail(done.stderr + done.stdout)
        )
    return done.stdout


def _measure_wrk(
    scenario: Scenario, args: argparse.Namespace, pinning: Pinning, port: int, tmpdir: Path
) -> Sample:
    _check_response(port, scenario)
    script = _wrk_script(tmpdir) if scenario.post else None
    if args.warmup > 0:
        _run_wrk(pinning, scenario, args.warmup, port, script)
    output = _run_wrk(pinning, scenario, args.duration, port, script)
    result = run.parse_wrk(output)
    if result.requests - result.non_2xx_3xx <= 0:
        raise RunFailed(f"no successful responses ({result.requests} requests)")
    p50 = _P50_RE.search(output)
    p50_us = run.to_ms(float(p50.group(1)), p50.group(2)) * 1000.0 if p50 else float("nan")
    details = {"rps": result.requests_per_s, "p50_us": p50_us, "p99_ms": result.p99_ms}
    errors = result.non_2xx_3xx + result.socket_error_total
    value = p50_us if scenario.metric.startswith("p50") else result.requests_per_s
    return Sample(value, details, errors)


def _run_h2load(
    pinning: Pinning, port: int, scenario: Scenario, mode: list[str], timeout: float
) -> str:
    argv = [*pinning.wrk_prefix(), "h2load", "-c", str(scenario.connections), "-m", "10",
            *mode, f"http://{HOST}:{port}/"]  # fmt: skip
    try:
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=timeout, check=False)  # fmt: skip
    except subprocess.TimeoutExpired as exc:
        raise RunFailed(f"h2load did not finish within {exc.timeout:.0f} s") from exc
    except OSError as exc:
        raise RunFailed(f"could not run h2load: {exc}") from exc
    if done.returncode != 0:
        raise RunFailed(f"h2load exited with {done.returncode}: " + run._tail(done.stdout))
    return done.stdout


def _measure_h2(
    server: str, scenario: Scenario, args: argparse.Namespace, pinning: Pinning, port: int
) -> Sample:
    if server == "uvicorn":
        # Count-based: fewer than 4096 streams per connection, on fresh connections.
        per_conn = UVICORN_H2_REQUESTS_PER_CONN
        warm = ["-n", str(scenario.connections * UVICORN_H2_WARMUP_PER_CONN)]
        mode = ["-n", str(scenario.connections * per_conn)]
        note = f"count-based: h2load -n {scenario.connections * per_conn}"
        if args.warmup > 0:
            _run_h2load(pinning, port, scenario, warm, SLACK_S)
        output = _run_h2load(pinning, port, scenario, mode, 4 * SLACK_S)
    else:
        mode = ["-D", str(args.duration)]
        if args.warmup > 0:
            mode += ["--warm-up-time", str(args.warmup)]
        note = None
        output = _run_h2load(pinning, port, scenario, mode, args.duration + args.warmup + SLACK_S)
    result = h2_run.parse_h2load(output)
    if result.succeeded <= 0:
        raise RunFailed("no successful HTTP/2 requests: " + run._tail(output))
    details = {"mean_ms": result.mean_request_ms}
    return Sample(result.requests_per_s, details, result.error_total, note)


def _measure_ws(
    spec: ServerSpec, args: argparse.Namespace, pinning: Pinning, scenario: Scenario
) -> Sample:
    load_args = argparse.Namespace(
        connections=scenario.connections, window=16, duration=args.duration,
        warmup=min(args.warmup, 1),
    )  # fmt: skip
    result = ws_run.run_once(spec, ws_run.CASES["text"], load_args, pinning)
    details = {"server_cpu_pct": result.server_cpu_pct or float("nan")}
    return Sample(result.msgs_per_s, details, result.errors)


def _measure_memory(args: argparse.Namespace, port: int, pgid: int) -> Sample:
    try:
        result = memory.measure(port, pgid, args.idle_connections)
    except memory.MemoryRunFailed as exc:
        raise RunFailed(str(exc)) from exc
    details = {
        "base_mib": result.base_kib / 1024,
        "per_conn_kib": result.per_connection_kib,
        "open": float(result.open_at_read),
        "open_s": result.seconds_to_open,
    }
    lost = result.opened - result.open_at_read
    note = f"{lost} of {result.opened} connections closed early" if lost else None
    return Sample(result.loaded_kib / 1024, details, lost, note)


def run_once(
    server: str,
    scenario: Scenario,
    args: argparse.Namespace,
    pinning: Pinning,
    hypercorn_h2_config: Path | None,
) -> Sample:
    """Start ``server`` for ``scenario``, measure once, and always stop it."""
    spec = server_spec(server, scenario, hypercorn_h2_config)
    if scenario.kind == "ws":
        return _measure_ws(spec, args, pinning, scenario)
    port = run.free_port()
    probe: Callable[[int, float], str | None]
    if scenario.kind == "h2":
        probe = h2_run._probe
    else:
        probe = functools.partial(run.http_probe, expected=HELLO)
    with tempfile.TemporaryDirectory() as tmp, tempfile.TemporaryFile() as log:
        proc = run.start_server(spec, port, pinning, log)
        try:
            run.wait_ready(proc, port, log, probe=probe)
            if scenario.kind == "wrk":
                sample = _measure_wrk(scenario, args, pinning, port, Path(tmp))
            elif scenario.kind == "h2":
                sample = _measure_h2(server, scenario, args, pinning, port)
            else:
                # start_new_session=True: the server leads its own process group.
                sample = _measure_memory(args, port, proc.pid)
            code = proc.poll()
            if code is not None:
                raise RunFailed(
                    f"server exited with code {code} during the run: "
                    + run._tail(run._read_log(log))
                )
            if sample.errors and sample.note is None:
                tail = run._tail(run._read_log(log), lines=1)
                sample = Sample(sample.value, sample.details, sample.errors, f"log: {tail}")
            return sample
        finally:
            run.stop_server(proc)

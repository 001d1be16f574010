"""Benchmark HTTP/2 cleartext (h2c, prior knowledge): bascule against others.

Servers: bascule, hypercorn (uvloop worker), uvicorn (``--http zttp --http2``,
when the installed uvicorn has it) and granian (``--interface asgi --http 2``),
each with one worker and access logging off, serving ``bench.app:app``.  The
load is ``h2load -c 16 -m 10 -D DURATION --warm-up-time WARMUP`` (cleartext
``http://`` URL, so h2load speaks h2c with prior knowledge).

Runs are interleaved (round 1: every server, round 2: every server, ...), each
one on a fresh server process and a fresh free port.  Readiness is a real
HTTP/2 request (``curl --http2-prior-knowledge``, or ``h2load -n 1`` when curl
is missing).  The median over rounds is reported as a Markdown table, with the
ratios to hypercorn and to uvicorn.

Usage::

    python bench/h2_run.py [--duration S] [--rounds N] [--connections C]
                           [--streams M] [--warmup S]
                           [--servers bascule,hypercorn,uvicorn,granian]
                           [--output FILE]

Run it as a script: it imports the helpers of ``bench/run.py`` as a sibling
module.  Needs ``h2load`` (nghttp2-client) on PATH; uses ``taskset`` to pin
the server to one CPU and h2load to another when possible.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import importlib.util
import os
import platform
import re
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from run import (
    APP,
    EXPECTED_BODY,
    HOST,
    REPO_ROOT,
    Pinning,
    RunFailed,
    ServerSpec,
    _bascule_argv,
    _cell,
    _hypercorn_argv,
    _log,
    _non_negative_int,
    _positive_int,
    _read_log,
    _tail,
    choice_list,
    cpu_model,
    decide_pinning,
    free_port,
    package_version,
    start_server,
    stop_server,
)
from run import wait_ready as run_wait_ready
from ws_load import group_cpu_seconds

# Slack added on top of h2load's warm-up + duration before we give up on it.
H2LOAD_TIMEOUT_SLACK_S = 30.0
PROBE_TIMEOUT_S = 2.0
PROBE_INTERVAL_S = 0.05
HELP_TIMEOUT_S = 30.0

ALL_SERVERS = ("bascule", "hypercorn", "uvicorn", "granian")
TARGET_SERVER = "bascule"
TARGET_HYPERCORN_RATIO = 3.0
VERSIONED_PACKAGES = (
    "bascule", "hypercorn", "h2", "uvicorn", "zttp", "granian", "uvloop",
)  # fmt: skip

SERVER_LABELS = {
    "bascule": "bascule",
    "hypercorn": "hypercorn (uvloop worker, h2)",
    "uvicorn": "uvicorn (`--http zttp --http2`)",
    "granian": "granian (`--interface asgi --http 2`)",
}


# --------------------------------------------------------------------------
# Servers
# --------------------------------------------------------------------------


def _uvicorn_argv(port: int) -> list[str]:
    return [
        sys.executable, "-m", "uvicorn", APP,
        "--host", HOST, "--port", str(port),
        "--http", "zttp", "--http2", "--loop", "uvloop",
        "--no-access-log", "--log-level", "warning",
        "--app-dir", str(REPO_ROOT),
    ]  # fmt: skip


def _granian_argv(port: int) -> list[str]:
    return [
        sys.executable, "-m", "granian", APP,
        "--interface", "asgi", "--http", "2", "--workers", "1",
        "--host", HOST, "--port", str(port),
        "--no-access-log", "--log-level", "warning",
        "--working-dir", str(REPO_ROOT),
    ]  # fmt: skip


SERVERS: dict[str, ServerSpec] = {
    # src/ on PYTHONPATH: the working tree's bascule is benchmarked.
    # bascule and hypercorn serve h2c prior knowledge on their normal port.
    "bascule": ServerSpec("bascule", _bascule_argv, extra_pythonpath=(str(REPO_ROOT / "src"),)),
    # Replaced in main() by a spec that lifts keep_alive_max_requests (see below).
    "hypercorn": ServerSpec("hypercorn", _hypercorn_argv),
    "uvicorn": ServerSpec("uvicorn", _uvicorn_argv),
    "granian": ServerSpec("granian", _granian_argv),
}


# Hypercorn closes every HTTP/2 connection after keep_alive_max_requests (1000
# by default) requests, and h2load never reopens a connection in a timed run, so
# with stock settings all 16 connections are gone after 16,000 requests and the
# rest of the window measures idle time. The limit is lifted unless
# --hypercorn-stock is given.
HYPERCORN_TOML = "keep_alive_max_requests = 1000000000\n"


def hypercorn_spec(config_file: Path) -> ServerSpec:
    """Hypercorn as in bench/run.py, plus ``--config config_file``."""

    def argv(port: int) -> list[str]:
        return [*_hypercorn_argv(port), "--config", str(config_file)]

    return ServerSpec("hypercorn", argv)


def _help_text(module: str) -> str | None:
    """``python -m MODULE --help`` output, or None if it cannot be run."""
    try:
        done = subprocess.run(
            [sys.executable, "-m", module, "--help"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=HELP_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def unavailable_reason(name: str) -> str | None:
    """Why server ``name`` cannot be benchmarked here, or None if it can."""
    module = {"bascule": None, "hypercorn": "hypercorn", "uvicorn": "uvicorn",
              "granian": "granian"}[name]  # fmt: skip
    if module is None:
        return None
    if importlib.util.find_spec(module) is None:
        return f"{module} is not installed"
    if name == "uvicorn":
        text = _help_text("uvicorn")
        if text is None:
            return "`python -m uvicorn --help` failed"
        if "--http2" not in text or "zttp" not in text:
            return f"uvicorn {package_version('uvicorn')} has no `--http zttp --http2`"
        if importlib.util.find_spec("zttp") is None:
            return "uvicorn has `--http zttp` but the zttp package is not installed"
    if name == "granian":
        text = _help_text("granian")
        if text is None:
            return "`python -m granian --help` failed"
        if "--interface" not in text or "--http " not in text:
            return "this granian has no `--interface`/`--http` options"
    return None


# --------------------------------------------------------------------------
# Results and h2load output parsing
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class H2Result:
    """What we keep from one h2load run (measured window only, except codes)."""

    requests_per_s: float
    mean_request_ms: float
    succeeded: int
    failed: int
    errored: int
    timeout: int
    non_2xx: int  # 3xx + 4xx + 5xx; h2load counts these over warm-up too
    h2load_cpu_pct: float  # CPU % over warm-up + duration (100 = one CPU)
    server_cpu_pct: float | None  # same window, server's process group

    @property
    def requests_per_server_cpu_s(self) -> float | None:
        if not self.server_cpu_pct:
            return None
        return self.requests_per_s / (self.server_cpu_pct / 100.0)

    @property
    def error_total(self) -> int:
        # h2load's "failed" already includes its "errored" and "timeout".
        return self.failed + self.non_2xx


@dataclass
class ServerSummary:
    """All rounds of one server."""

    name: str
    unavailable: str | None = None
    results: list[H2Result] = field(default_factory=list)
    failures: list[tuple[int, str]] = field(default_factory=list)
    # (round, last server log line) for runs where h2load saw errors.
    error_logs: list[tuple[int, str]] = field(default_factory=list)

    def median(self, attr: str) -> float | None:
        values = [float(v) for r in self.results if (v := getattr(r, attr)) is not None]
        return statistics.median(values) if values else None


_TIME_UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3}
_FINISHED_RE = re.compile(r"^finished in [0-9.]+\w*, ([0-9.]+) req/s", re.MULTILINE)
_REQUESTS_RE = re.compile(
    r"^requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
    r"(\d+) failed, (\d+) errored, (\d+) timeout",
    re.MULTILINE,
)
_CODES_RE = re.compile(r"^status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", re.MULTILINE)
_REQ_TIME_RE = re.compile(r"^time for request:\s+\S+\s+\S+\s+([0-9.]+)(us|ms|s)\s", re.MULTILINE)
_PROTO_RE = re.compile(r"^Application protocol: (\S+)", re.MULTILINE)


def parse_h2load(
    output: str, h2load_cpu_pct: float = 0.0, server_cpu_pct: float | None = None
) -> H2Result:
    """Parse h2load output; raise RunFailed if it is unusable or not h2c."""
    finished = _FINISHED_RE.search(output)
    requests = _REQUESTS_RE.search(output)
    codes = _CODES_RE.search(output)
    if finished is None or requests is None or codes is None:
        raise RunFailed("could not parse h2load output: " + _tail(output))
    proto = _PROTO_RE.search(output)
    if proto is None or proto.group(1) != "h2c":
        got = proto.group(1) if proto else "none negotiated"
        raise RunFailed(f"h2load did not speak h2c (application protocol: {got}): " + _tail(output))
    req_time = _REQ_TIME_RE.search(output)
    mean_ms = (
        float(req_time.group(1)) * _TIME_UNITS_MS[req_time.group(2)] if req_time else float("nan")
    )
    return H2Result(
        requests_per_s=float(finished.group(1)),
        mean_request_ms=mean_ms,
        succeeded=int(requests.group(4)),
        failed=int(requests.group(5)),
        errored=int(requests.group(6)),
        timeout=int(requests.group(7)),
        non_2xx=sum(int(codes.group(i)) for i in (2, 3, 4)),
        h2load_cpu_pct=h2load_cpu_pct,
        server_cpu_pct=server_cpu_pct,
    )


# --------------------------------------------------------------------------
# Readiness and load
# --------------------------------------------------------------------------


def _run_bounded(argv: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _probe(port: int, timeout: float) -> str | None:
    """One HTTP/2 prior-knowledge GET /. None means ready."""
    url = f"http://{HOST}:{port}/"
    try:
        if shutil.which("curl") is not None:
            done = _run_bounded(
                ["curl", "--silent", "--show-error", "--http2-prior-knowledge",
                 "--max-time", f"{timeout:.1f}", "--output", "-",
                 "--write-out", "\n%{http_version} %{http_code}", url],
                timeout + 5.0,
            )  # fmt: skip
            body, _, trailer = done.stdout.rpartition("\n")
            if done.returncode != 0:
                return f"curl exit {done.returncode}: {_tail(done.stderr)}"
            if trailer.strip() != "2 200" or body.encode() != EXPECTED_BODY:
                return f"curl got HTTP/{trailer.strip()!r} {body[:60]!r}"
            return None
        done = _run_bounded(["h2load", "-n", "1", "-c", "1", url], timeout + 5.0)
    except subprocess.TimeoutExpired:
        return "probe timed out"
    except OSError as exc:
        return f"probe could not run: {exc}"
    requests = _REQUESTS_RE.search(done.stdout)
    codes = _CODES_RE.search(done.stdout)
    if requests is None or codes is None or requests.group(4) != "1" or codes.group(1) != "1":
        return "h2load -n 1: " + _tail(done.stdout + done.stderr, lines=3)
    return None


def wait_ready(proc: subprocess.Popen[bytes], port: int, log: IO[bytes]) -> float:
    """Poll with a real HTTP/2 request until it succeeds; return seconds waited."""
    return run_wait_ready(proc, port, log, probe=_probe, probe_timeout=PROBE_TIMEOUT_S)


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_h2load(
    pinning: Pinning, args: argparse.Namespace, port: int, server_pgid: int
) -> tuple[str, float, float | None]:
    """Run h2load once; return its stdout, its CPU % and the server's CPU %.

    Both CPU shares are over h2load's whole run (warm-up + duration).
    """
    argv = [
        *pinning.wrk_prefix(),
        "h2load",
        "-c", str(args.connections),
        "-m", str(args.streams),
        "-D", str(args.duration),
        f"http://{HOST}:{port}/",
    ]  # fmt: skip
    if args.warmup > 0:
        argv[-1:-1] = ["--warm-up-time", str(args.warmup)]
    server_before = group_cpu_seconds(server_pgid)
    cpu_before = _children_cpu_s()
    wall_before = time.monotonic()
    try:
        done = _run_bounded(argv, args.duration + args.warmup + H2LOAD_TIMEOUT_SLACK_S)
    except subprocess.TimeoutExpired as exc:
        raise RunFailed(f"h2load did not finish within {exc.timeout:.0f} s") from exc
    except OSError as exc:
        raise RunFailed(f"could not run h2load: {exc}") from exc
    wall = max(1e-9, time.monotonic() - wall_before)
    cpu_pct = 100.0 * (_children_cpu_s() - cpu_before) / wall
    server_after = group_cpu_seconds(server_pgid)
    server_pct = (
        None
        if server_before is None or server_after is None
        else 100.0 * (server_after - server_before) / wall
    )
    if done.returncode != 0:
        raise RunFailed(
            f"h2load exited with code {done.returncode}: " + _tail(done.stderr + done.stdout)
        )
    return done.stdout, cpu_pct, server_pct


def run_once(
    spec: ServerSpec, args: argparse.Namespace, pinning: Pinning
) -> tuple[H2Result, str | None]:
    """Start one server, wait for h2c, measure it, and always stop it.

    Returns the result and, when h2load saw errors, the server log's last line.
    """
    port = free_port()
    with tempfile.TemporaryFile() as log:
        proc = start_server(spec, port, pinning, log)
        try:
            wait_ready(proc, port, log)
            # start_new_session=True: the server leads its own process group.
            output, cpu_pct, server_pct = run_h2load(pinning, args, port, proc.pid)
            code = proc.poll()
            if code is not None:
                raise RunFailed(
                    f"server exited with code {code} during the run: " + _tail(_read_log(log))
                )
            result = parse_h2load(output, cpu_pct, server_pct)
            if result.succeeded <= 0:
                raise RunFailed(
                    f"no successful requests: failed {result.failed}, errored "
                    f"{result.errored}, timeout {result.timeout}: " + _tail(output)
                )
            log_line = _tail(_read_log(log), lines=1) if result.error_total else None
            return result, log_line
        finally:
            stop_server(proc)


# --------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------


def h2load_version() -> str:
    try:
        done = _run_bounded(["h2load", "--version"], 10.0)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    match = re.search(r"nghttp2/(\S+)", done.stdout + done.stderr)
    return match.group(1) if match else "unknown"


def _errors_cell(summary: ServerSummary, rounds: int) -> str:
    parts: list[str] = []
    if summary.failures:
        parts.append(f"FAILED {len(summary.failures)}/{rounds} rounds (see notes)")
    failed = sum(r.failed for r in summary.results)
    if failed:
        errored = sum(r.errored for r in summary.results)
        timeout = sum(r.timeout for r in summary.results)
        parts.append(f"failed {failed:,} (errored {errored:,}, timeout {timeout:,})")
    non_2xx = sum(r.non_2xx for r in summary.results)
    if non_2xx:
        parts.append(f"non-2xx {non_2xx:,}")
    return "; ".join(parts) if parts else "0"


def _ratio(value: float | None, base: float | None) -> str:
    if value is None:
        return "-"
    return f"{value / base:.2f}" if base else "n/a"


def target_line(by_name: dict[str, ServerSummary]) -> str:
    target = by_name.get(TARGET_SERVER)
    hyper = by_name.get("hypercorn")
    uvi = by_name.get("uvicorn")
    rps = target.median("requests_per_s") if target else None
    hyper_rps = hyper.median("requests_per_s") if hyper else None
    uvi_rps = uvi.median("requests_per_s") if uvi else None
    if rps is None or hyper_rps is None:
        return "- target (bascule >= 3x hypercorn, ahead of uvicorn): not evaluated (missing data)"
    checks = [f"{rps / hyper_rps:.2f}x hypercorn (needs >= {TARGET_HYPERCORN_RATIO:.0f}x)"]
    met = rps >= TARGET_HYPERCORN_RATIO * hyper_rps
    if uvi_rps is None:
        checks.append("uvicorn not measured")
    else:
        checks.append(f"{rps / uvi_rps:.2f}x uvicorn (needs > 1)")
        met = met and rps > uvi_rps
    if not met:
        verdict = "NOT MET"
    elif uvi_rps is None:
        verdict = "hypercorn part met, uvicorn part not evaluated"
    else:
        verdict = "MET"
    return f"- target (bascule >= 3x hypercorn, ahead of uvicorn): **{verdict}**: " + ", ".join(
        checks
    )


def render_report(
    summaries: Sequence[ServerSummary],
    args: argparse.Namespace,
    pinning: Pinning,
    started: dt.datetime,
    load_at_start: tuple[float, float, float],
) -> str:
    command = shlex.join(getattr(sys, "orig_argv", [sys.executable, *sys.argv]))
    load = " ".join(f"{x:.2f}" for x in load_at_start)
    versions = ", ".join(f"{p} {package_version(p)}" for p in VERSIONED_PACKAGES)
    warm = f"--warm-up-time {args.warmup} " if args.warmup else ""
    by_name = {s.name: s for s in summaries}
    lines = [
        f"## HTTP/2 (h2c) benchmark {started:%Y-%m-%d %H:%M:%S %Z}".rstrip(),
        "",
        f"- command: `{command}`",
        (
            f"- CPU: {cpu_model()} ({os.cpu_count()} logical CPUs); "
            f"Python {platform.python_version()} ({platform.python_implementation()})"
        ),
        f"- versions: {versions}",
        (
            f"- h2load {h2load_version()}: `-c {args.connections} -m {args.streams} "
            f"-D {args.duration} {warm}http://127.0.0.1:PORT/` (h2c prior knowledge), "
            f"{args.rounds} interleaved round(s), median over rounds"
        ),
        f"- pinning: {pinning.reason}; load average (1/5/15 min) at start: {load}",
        f"- app: `{APP}` (200, 13-byte text/plain body), 1 worker, access log off",
        (
            "- hypercorn: stock `keep_alive_max_requests` (1000 requests per connection)"
            if args.hypercorn_stock
            else "- hypercorn: `keep_alive_max_requests = 1000000000` (stock 1000 closes "
            "each connection after 1000 requests; h2load does not reconnect)"
        ),
        "",
        (
            "| server | requests/s (median) | ratio to hypercorn | ratio to uvicorn "
            "| mean request ms (median) | server CPU % | requests per server CPU-s "
            "| h2load CPU % | errors |"
        ),
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    hyper = by_name.get("hypercorn")
    uvi = by_name.get("uvicorn")
    hyper_rps = hyper.median("requests_per_s") if hyper else None
    uvi_rps = uvi.median("requests_per_s") if uvi else None
    for summary in summaries:
        label = SERVER_LABELS.get(summary.name, summary.name)
        if summary.unavailable is not None:
            lines.append(
                f"| {label} | unavailable | - | - | - | - | - | - | {_cell(summary.unavailable)} |"
            )
            continue
        rps = summary.median("requests_per_s")
        mean_ms = summary.median("mean_request_ms")
        server_cpu = summary.median("server_cpu_pct")
        per_cpu = summary.median("requests_per_server_cpu_s")
        cpu = summary.median("h2load_cpu_pct")
        rps_cell = "failed" if rps is None else f"{rps:,.0f}"
        ms_cell = "-" if mean_ms is None else f"{mean_ms:.2f}"
        server_cell = "-" if server_cpu is None else f"{server_cpu:.0f}"
        per_cpu_cell = "-" if per_cpu is None else f"{per_cpu:,.0f}"
        cpu_cell = "-" if cpu is None else f"{cpu:.0f}"
        lines.append(
            f"| {label} | {rps_cell} | {_ratio(rps, hyper_rps)} | {_ratio(rps, uvi_rps)} "
            f"| {ms_cell} | {server_cell} | {per_cpu_cell} | {cpu_cell} "
            f"| {_cell(_errors_cell(summary, args.rounds))} |"
        )
    lines += ["", target_line(by_name)]
    notes = [f"- {s.name}, round {rnd}: {reason}" for s in summaries for rnd, reason in s.failures]
    notes += [
        f"- {s.name}, round {rnd}: h2load saw failed/errored requests; server log ends: "
        f"`{_cell(line)}`"
        for s in summaries
        for rnd, line in s.error_logs
    ]
    if any(s.error_logs for s in summaries):
        notes.append(
            "- h2load does not reopen a connection the server closed during a timed run, "
            "so such a server's requests/s understates what it can serve."
        )
    if notes:
        lines += ["", "Notes:", *notes]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark HTTP/2 cleartext (h2c) servers with h2load."
    )
    parser.add_argument(
        "--duration",
        type=_positive_int,
        default=10,
        help="seconds of measured h2load load per run (default 10)",
    )
    parser.add_argument(
        "--rounds",
        type=_positive_int,
        default=3,
        help="interleaved rounds; the median is reported (default 3)",
    )
    parser.add_argument(
        "--connections",
        type=_positive_int,
        default=16,
        help="h2load -c: connections (default 16)",
    )
    parser.add_argument(
        "--streams",
        type=_positive_int,
        default=10,
        help="h2load -m: streams in flight per connection (default 10)",
    )
    parser.add_argument(
        "--warmup",
        type=_non_negative_int,
        default=2,
        help="h2load --warm-up-time, seconds (default 2, 0 disables)",
    )
    parser.add_argument(
        "--servers",
        type=choice_list(ALL_SERVERS, "server"),
        default=list(ALL_SERVERS),
        help=f"comma-separated subset of {','.join(ALL_SERVERS)} (default: all)",
    )
    parser.add_argument(
        "--hypercorn-stock",
        action="store_true",
        help="keep hypercorn's default keep_alive_max_requests (1000 per connection)",
    )
    parser.add_argument("--output", type=Path, default=None,
                        help="also write the Markdown report to this file")  # fmt: skip
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("h2load") is None:
        _log("error: h2load not found on PATH (apt-get install nghttp2-client)")
        return 2
    started = dt.datetime.now(dt.UTC)
    load_at_start = os.getloadavg()
    pinning = decide_pinning()
    pinning = dataclasses.replace(pinning, reason=pinning.reason.replace("wrk", "h2load"))
    _log(f"pinning: {pinning.reason}")
    summaries = {name: ServerSummary(name, unavailable_reason(name)) for name in args.servers}
    for summary in summaries.values():
        if summary.unavailable is not None:
            _log(f"{summary.name}: unavailable: {summary.unavailable}")
    with tempfile.TemporaryDirectory(prefix="h2_run-") as tmp:
        specs = dict(SERVERS)
        if not args.hypercorn_stock:
            config_file = Path(tmp) / "hypercorn-h2.toml"
            config_file.write_text(HYPERCORN_TOML, encoding="utf-8")
            specs["hypercorn"] = hypercorn_spec(config_file)
        run_rounds(specs, summaries, args, pinning)
    report = render_report(list(summaries.values()), args, pinning, started, load_at_start)
    print(report, end="")
    if args.output is not None:
        args.output.write_text(report, encoding="utf-8")
        _log(f"report written to {args.output}")
    return 0 if any(s.results for s in summaries.values()) else 1


def run_rounds(
    specs: dict[str, ServerSpec],
    summaries: dict[str, ServerSummary],
    args: argparse.Namespace,
    pinning: Pinning,
) -> None:
    """Interleaved rounds: every available server once per round."""
    for rnd in range(1, args.rounds + 1):
        for name, summary in summaries.items():
            if summary.unavailable is not None:
                continue
            prefix = f"[round {rnd}/{args.rounds}] {name}:"
            try:
                result, log_line = run_once(specs[name], args, pinning)
            except RunFailed as exc:
                summary.failures.append((rnd, str(exc)))
                _log(f"{prefix} FAILED: {exc}")
                continue
            summary.results.append(result)
            if log_line is not None:
                summary.error_logs.append((rnd, log_line))
            _log(
                f"{prefix} {result.requests_per_s:,.0f} req/s, mean "
                f"{result.mean_request_ms:.2f} ms, errors {result.error_total}, "
                f"server CPU {result.server_cpu_pct or 0:.0f}%, "
                f"h2load CPU {result.h2load_cpu_pct:.0f}%"
            )


if __name__ == "__main__":
    sys.exit(main())

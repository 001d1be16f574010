"""Benchmark WebSocket echo: bascule against uvicorn and hypercorn.

Each server runs with one worker and access logging off, serving
``bench.ws_app:app`` (echo every message back).  The load generator
``bench/ws_load.py`` runs as a separate process: C connections (default 16),
each keeping W messages (default 16) in flight, for a bounded time, checking
every echo.  Two cases: 32-byte text messages and 64 KiB binary messages.

Runs are interleaved (round 1: every case x every server, round 2: ...), each
one on a fresh server process and a fresh free port; the load warms up on its
connections before the measured window.  The median over rounds is reported
as a Markdown table per case, with the ratio to uvicorn (``--ws websockets``).

Usage::

    python bench/ws_run.py [--duration S] [--rounds N] [--connections C]
                           [--window W] [--warmup S] [--cases text,binary]
                           [--servers bascule,uvicorn,uvicorn-sansio,hypercorn]
                           [--output FILE]

Reuses the process helpers of ``bench/run.py``.  Uses ``taskset`` to pin the
server to one CPU and the load to another when possible.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from run import (
    HOST,
    REPO_ROOT,
    Pinning,
    RunFailed,
    ServerSpec,
    _cell,
    _log,
    _non_negative_int,
    _positive_int,
    _read_log,
    _tail,
    bascule_argv,
    choice_list,
    cpu_model,
    decide_pinning,
    free_port,
    http_probe,
    hypercorn_argv,
    package_version,
    start_server,
    stop_server,
)
from run import wait_ready as run_wait_ready

APP = "bench.ws_app:app"
LOAD_SCRIPT = Path(__file__).resolve().parent / "ws_load.py"
READY_BODY = b"ok"

READY_TIMEOUT_S = 15.0
# ws_load's own bounds (connect + close handshakes), plus slack, on top of
# warm-up + duration before we give up on the load process.
LOAD_CONNECT_TIMEOUT_S = 10.0
LOAD_CLOSE_TIMEOUT_S = 5.0
LOAD_TIMEOUT_SLACK_S = 30.0
HELP_TIMEOUT_S = 30.0

ALL_SERVERS = ("bascule", "uvicorn", "uvicorn-sansio", "hypercorn")
BASELINE = "uvicorn"
TARGET_SERVER = "bascule"
TARGET_CASE = "text"
TARGET_RATIO = 1.2
VERSIONED_PACKAGES = (
    "bascule", "uvicorn", "hypercorn", "websockets", "wsproto", "uvloop", "httptools",
)  # fmt: skip


# --------------------------------------------------------------------------
# Servers and cases
# --------------------------------------------------------------------------


def _uvicorn_argv(ws: str) -> Any:
    def argv(port: int) -> list[str]:
        return [
            sys.executable, "-m", "uvicorn", APP,
            "--host", HOST, "--port", str(port),
            "--ws", ws, "--http", "httptools", "--loop", "uvloop",
            "--no-access-log", "--log-level", "warning",
            "--app-dir", str(REPO_ROOT),
        ]  # fmt: skip

    return argv


_bascule_argv = functools.partial(bascule_argv, APP)
_hypercorn_argv = functools.partial(hypercorn_argv, APP)


SERVERS: dict[str, ServerSpec] = {
    # src/ on PYTHONPATH: the working tree's bascule is benchmarked.
    "bascule": ServerSpec("bascule", _bascule_argv, extra_pythonpath=(str(REPO_ROOT / "src"),)),
    "uvicorn": ServerSpec("uvicorn", _uvicorn_argv("websockets")),
    "uvicorn-sansio": ServerSpec("uvicorn-sansio", _uvicorn_argv("websockets-sansio")),
    "hypercorn": ServerSpec("hypercorn", _hypercorn_argv),
}

SERVER_LABELS = {
    "bascule": "bascule",
    "uvicorn": "uvicorn (`--ws websockets`)",
    "uvicorn-sansio": "uvicorn (`--ws websockets-sansio`)",
    "hypercorn": "hypercorn (wsproto)",
}


@dataclass(frozen=True)
class Case:
    """One message shape."""

    name: str
    kind: str  # "text" or "binary"
    size: int
    title: str


CASES: dict[str, Case] = {
    "text": Case("text", "text", 32, "32-byte text messages"),
    "binary": Case("binary", "binary", 65536, "64 KiB binary messages"),
}


def uvicorn_supports(ws: str) -> bool:
    """True if this uvicorn lists ``ws`` among its --ws choices."""
    try:
        done = subprocess.run(
            [sys.executable, "-m", "uvicorn", "--help"],
            stdin=subprocess.DEVNULL, capture_output=True, text=True,
            timeout=HELP_TIMEOUT_S, check=False,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return False
    return ws in done.stdout


# --------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadResult:
    """What we keep from one ws_load run."""

    messages: int
    seconds: float
    msgs_per_s: float
    errors: int
    error_details: tuple[str, ...]
    connected: int
    server_cpu_pct: float | None
    client_cpu_pct: float | None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LoadResult:
        def pct(key: str) -> float | None:
            value = data.get(key)
            return float(value) if isinstance(value, int | float) else None

        return cls(
            messages=int(data["messages"]),
            seconds=float(data["seconds"]),
            msgs_per_s=float(data["msgs_per_s"]),
            errors=int(data["errors"]),
            error_details=tuple(str(d) for d in data.get("error_details", ())),
            connected=int(data.get("connected", 0)),
            server_cpu_pct=pct("server_cpu_pct"),
            client_cpu_pct=pct("client_cpu_pct"),
        )


def _median(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


@dataclass
class Summary:
    """All rounds of one server on one case."""

    server: str
    case: Case
    results: list[LoadResult] = field(default_factory=list)
    failures: list[tuple[int, str]] = field(default_factory=list)

    @property
    def median_rate(self) -> float | None:
        return _median([r.msgs_per_s for r in self.results])

    @property
    def median_server_cpu(self) -> float | None:
        return _median([r.server_cpu_pct for r in self.results])

    @property
    def median_client_cpu(self) -> float | None:
        return _median([r.client_cpu_pct for r in self.results])


# --------------------------------------------------------------------------
# One run
# --------------------------------------------------------------------------


def wait_ready(proc: subprocess.Popen[bytes], port: int, log: IO[bytes]) -> float:
    """Poll until the echo app answers ``GET /`` with ``ok``; return seconds waited."""
    return run_wait_ready(
        proc, port, log, probe=lambda p, timeout: http_probe(p, timeout, READY_BODY)
    )


def run_load(
    case: Case, args: argparse.Namespace, pinning: Pinning, port: int, server_pgid: int
) -> LoadResult:
    """Run ws_load once (pinned like wrk in run.py) and parse its JSON line."""
    argv = [
        *pinning.wrk_prefix(),
        sys.executable, str(LOAD_SCRIPT),
        "--host", HOST, "--port", str(port),
        "--kind", case.kind, "--size", str(case.size),
        "--connections", str(args.connections), "--window", str(args.window),
        "--duration", str(args.duration), "--warmup", str(args.warmup),
        "--connect-timeout", str(LOAD_CONNECT_TIMEOUT_S),
        "--close-timeout", str(LOAD_CLOSE_TIMEOUT_S),
        "--cpu-pgid", str(server_pgid),
    ]  # fmt: skip
    timeout = (
        args.warmup
        + args.duration
        + LOAD_CONNECT_TIMEOUT_S
        + LOAD_CLOSE_TIMEOUT_S
        + LOAD_TIMEOUT_SLACK_S
    )
    try:
        done = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise RunFailed(f"ws_load did not finish within {exc.timeout:.0f} s") from exc
    except OSError as exc:
        raise RunFailed(f"could not run ws_load: {exc}") from exc
    lines = done.stdout.strip().splitlines()
    try:
        data = json.loads(lines[-1])
        result = LoadResult.from_json(data)
    except (IndexError, ValueError, KeyError, TypeError) as exc:
        raise RunFailed(
            f"ws_load exited with code {done.returncode} without a result ({exc!r}): "
            + _tail(done.stderr + done.stdout)
        ) from None
    return result


def run_once(
    spec: ServerSpec, case: Case, args: argparse.Namespace, pinning: Pinning
) -> LoadResult:
    """Start one server, load it, and always stop it."""
    port = free_port()
    with tempfile.TemporaryFile() as log:
        proc = start_server(spec, port, pinning, log)
        try:
            wait_ready(proc, port, log)
            # start_new_session=True: the server leads its own process group.
            result = run_load(case, args, pinning, port, server_pgid=proc.pid)
            code = proc.poll()
            if code is not None:
                raise RunFailed(
                    f"server exited with code {code} during the run: " + _tail(_read_log(log))
                )
            if result.messages <= 0:
                details = "; ".join(result.error_details[:3]) or "no details"
                raise RunFailed(
                    f"no echoes ({result.connected}/{args.connections} connections open, "
                    f"{result.errors} errors: {details})"
                )
            return result
        finally:
            stop_server(proc)


# --------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------


def _errors_cell(summary: Summary, rounds: int) -> str:
    parts: list[str] = []
    if summary.failures:
        parts.append(f"FAILED {len(summary.failures)}/{rounds} rounds (see notes)")
    errors = sum(r.errors for r in summary.results)
    if errors:
        parts.append(f"{errors} load error(s) (see notes)")
    return "; ".join(parts) if parts else "0"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def _per_cpu(summary: Summary) -> str:
    """Median over rounds of msgs/s divided by the server's CPU share."""
    values = [
        r.msgs_per_s / (r.server_cpu_pct / 100.0)
        for r in summary.results
        if r.server_cpu_pct is not None and r.server_cpu_pct > 0
    ]
    return f"{statistics.median(values):,.0f}" if values else "-"


def render_report(
    summaries: Sequence[Summary],
    args: argparse.Namespace,
    pinning: Pinning,
    started: dt.datetime,
    load_at_start: tuple[float, float, float],
    skipped: Sequence[str],
) -> str:
    command = shlex.join(getattr(sys, "orig_argv", [sys.executable, *sys.argv]))
    load = " ".join(f"{x:.2f}" for x in load_at_start)
    load_end = " ".join(f"{x:.2f}" for x in os.getloadavg())
    versions = ", ".join(f"{p} {package_version(p)}" for p in VERSIONED_PACKAGES)
    lines = [
        f"## WebSocket echo benchmark {started:%Y-%m-%d %H:%M:%S %Z}".rstrip(),
        "",
        f"- command: `{command}`",
        (
            f"- CPU: {cpu_model()} ({os.cpu_count()} logical CPUs); "
            f"Python {platform.python_version()} ({platform.python_implementation()})"
        ),
        f"- versions: {versions}",
        (
            f"- load: `bench/ws_load.py`, {args.connections} connections x {args.window} "
            f"messages in flight, {args.warmup} s warm-up + {args.duration} s measured per run, "
            f"{args.rounds} interleaved round(s), median over rounds; no compression offered"
        ),
        (
            f"- pinning: {pinning.reason}; load average (1/5/15 min) "
            f"at start: {load}, at end: {load_end}"
        ),
        f"- app: `{APP}` (echo), 1 worker, access log off",
    ]
    lines += [f"- skipped: {reason}" for reason in skipped]
    for case in (CASES[name] for name in args.cases):
        rows = [s for s in summaries if s.case is case]
        baseline = next((s for s in rows if s.server == BASELINE), None)
        base_rate = baseline.median_rate if baseline else None
        lines += [
            "",
            f"### {case.title}",
            "",
            (
                "| server | msgs/s (median) | MiB/s echoed | ratio to uvicorn "
                "| server CPU % | msgs per server CPU-s | load CPU % | errors |"
            ),
            "|---|---:|---:|---:|---:|---:|---:|---|",
        ]
        for summary in rows:
            rate = summary.median_rate
            if rate is None:
                rate_cell = mib_cell = ratio_cell = "failed"
            else:
                rate_cell = f"{rate:,.0f}"
                mib_cell = f"{rate * case.size / 2**20:,.1f}"
                ratio_cell = f"{rate / base_rate:.2f}" if base_rate else "n/a"
            lines.append(
                f"| {SERVER_LABELS[summary.server]} | {rate_cell} | {mib_cell} | {ratio_cell} "
                f"| {_pct(summary.median_server_cpu)} | {_per_cpu(summary)} "
                f"| {_pct(summary.median_client_cpu)} "
                f"| {_cell(_errors_cell(summary, args.rounds))} |"
            )
    target = _target_line(summaries)
    if target:
        lines += ["", target]
    notes = [
        f"- {SERVER_LABELS[s.server]}, {s.case.name}, round {rnd}: {reason}"
        for s in summaries
        for rnd, reason in s.failures
    ]
    notes += [
        f"- {SERVER_LABELS[s.server]}, {s.case.name}: {detail}"
        for s in summaries
        for r in s.results
        for detail in r.error_details
    ]
    if notes:
        lines += ["", "Notes:", *(_cell(n) for n in notes)]
    return "\n".join(lines) + "\n"


def _target_line(summaries: Sequence[Summary]) -> str | None:
    def rate(server: str) -> float | None:
        for s in summaries:
            if s.server == server and s.case.name == TARGET_CASE:
                return s.median_rate
        return None

    ours, base = rate(TARGET_SERVER), rate(BASELINE)
    if ours is None or not base:
        return None
    ratio = ours / base
    verdict = "met" if ratio >= TARGET_RATIO else "NOT met"
    return (
        f"Target ({TARGET_SERVER} >= {TARGET_RATIO}x uvicorn on "
        f"{CASES[TARGET_CASE].title}): {verdict} ({ratio:.3f}x)."
    )


# --------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="WebSocket echo benchmark: bascule, uvicorn and hypercorn."
    )
    parser.add_argument(
        "--duration",
        type=_positive_int,
        default=10,
        help="measured seconds of load per run (default 10)",
    )
    parser.add_argument(
        "--rounds",
        type=_positive_int,
        default=3,
        help="interleaved rounds; the median is reported (default 3)",
    )
    parser.add_argument(
        "--connections", type=_positive_int, default=16, help="connections (default 16)"
    )
    parser.add_argument(
        "--window",
        type=_positive_int,
        default=16,
        help="messages in flight per connection (default 16)",
    )
    parser.add_argument(
        "--warmup",
        type=_non_negative_int,
        default=1,
        help="seconds of unmeasured load on the same connections first (default 1)",
    )
    parser.add_argument(
        "--cases",
        type=choice_list(tuple(CASES), "case"),
        default=list(CASES),
        help=f"comma-separated subset of {','.join(CASES)} (default: all)",
    )
    parser.add_argument(
        "--servers",
        type=choice_list(ALL_SERVERS, "server"),
        default=list(ALL_SERVERS),
        help=f"comma-separated subset of {','.join(ALL_SERVERS)} (default: all)",
    )
    parser.add_argument("--output", type=Path, default=None,
                        help="also write the Markdown report to this file")  # fmt: skip
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = dt.datetime.now(dt.UTC)
    load_at_start = os.getloadavg()
    base = decide_pinning()
    pinning = Pinning(base.server_cpu, base.wrk_cpu, base.reason.replace("wrk", "load"))
    _log(f"pinning: {pinning.reason}")
    skipped: list[str] = []
    servers: list[str] = list(args.servers)
    if "uvicorn-sansio" in servers and not uvicorn_supports("websockets-sansio"):
        servers.remove("uvicorn-sansio")
        skipped.append("uvicorn `--ws websockets-sansio` (not supported by this uvicorn)")
        _log("skipping uvicorn-sansio: this uvicorn has no --ws websockets-sansio")
    if not servers:
        _log("error: no servers left to run")
        return 2
    cases = [CASES[name] for name in args.cases]
    summaries = {(c.name, s): Summary(s, c) for c in cases for s in servers}
    for rnd in range(1, args.rounds + 1):
        for case in cases:
            for name in servers:
                prefix = f"[round {rnd}/{args.rounds}] {case.name} {name}:"
                summary = summaries[(case.name, name)]
                try:
                    result = run_once(SERVERS[name], case, args, pinning)
                except RunFailed as exc:
                    summary.failures.append((rnd, str(exc)))
                    _log(f"{prefix} FAILED: {exc}")
                    continue
                summary.results.append(result)
                _log(
                    f"{prefix} {result.msgs_per_s:,.0f} msgs/s, "
                    f"server CPU {_pct(result.server_cpu_pct)}%, "
                    f"load CPU {_pct(result.client_cpu_pct)}%, errors {result.errors}"
                )
    report = render_report(list(summaries.values()), args, pinning, started, load_at_start, skipped)
    print(report, end="")
    if args.output is not None:
        args.output.write_text(report, encoding="utf-8")
        _log(f"report written to {args.output}")
    return 0 if any(s.results for s in summaries.values()) else 1


if __name__ == "__main__":
    sys.exit(main())

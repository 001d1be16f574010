"""Benchmark bascule against uvicorn and hypercorn on a hello-world ASGI app.

Each server runs with one worker and access logging off, serving
``bench.app:app``.  Runs are interleaved (round 1: every server, round 2:
every server, ...), each one on a fresh process and a fresh free port, with a
short wrk warm-up before the measured wrk run.  The median over rounds is
reported as a Markdown table.

Usage::

    python bench/run.py [--duration S] [--rounds N] [--connections C]
                        [--threads T] [--servers bascule,uvicorn,hypercorn]
                        [--output FILE]

Stdlib only.  Needs ``wrk`` on PATH; uses ``taskset`` to pin the server and
wrk to different CPUs when possible.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import http.client
import importlib.metadata
import os
import platform
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

REPO_ROOT = Path(__file__).resolve().parent.parent
APP = "bench.app:app"
HOST = "127.0.0.1"
EXPECTED_BODY = b"Hello, world!"

READY_TIMEOUT_S = 15.0
STOP_GRACE_S = 10.0
# Slack added on top of wrk's own duration before we give up on it.
WRK_TIMEOUT_SLACK_S = 30.0

ALL_SERVERS = ("bascule", "uvicorn", "hypercorn")
BASELINE = "uvicorn"
VERSIONED_PACKAGES = ("bascule", "uvicorn", "hypercorn", "httptools", "uvloop")


class RunFailed(Exception):
    """A single server run could not produce a measurement."""


# --------------------------------------------------------------------------
# Server definitions
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class ServerSpec:
    """How to launch one server under test."""

    name: str
    argv: Callable[[int], list[str]]
    cwd: Path = REPO_ROOT
    extra_pythonpath: tuple[str, ...] = ()


def bascule_argv(app: str, port: int) -> list[str]:
    """bascule serving ``app`` on ``port``, one worker, access log off."""
    return [
        sys.executable, "-m", "bascule", app,
        "--host", HOST, "--port", str(port),
        "--no-access-log", "--log-level", "warning",
        "--app-dir", str(REPO_ROOT),
    ]  # fmt: skip


def _uvicorn_argv(port: int) -> list[str]:
    return [
        sys.executable, "-m", "uvicorn", APP,
        "--host", HOST, "--port", str(port),
        "--http", "httptools", "--loop", "uvloop",
        "--no-access-log", "--log-level", "warning",
        "--app-dir", str(REPO_ROOT),
    ]  # fmt: skip


def hypercorn_argv(app: str, port: int) -> list[str]:
    """hypercorn (uvloop worker) serving ``app``; its access log is off unless asked for."""
    return [
        sys.executable, "-m", "hypercorn", app,
        "--bind", f"{HOST}:{port}",
        "--worker-class", "uvloop",
        "--log-level", "warning",
    ]  # fmt: skip


_bascule_argv = functools.partial(bascule_argv, APP)
_hypercorn_argv = functools.partial(hypercorn_argv, APP)

SERVERS: dict[str, ServerSpec] = {
    # src/ is put on PYTHONPATH so the working tree's bascule is benchmarked
    # even when it is not pip-installed.
    "bascule": ServerSpec("bascule", _bascule_argv, extra_pythonpath=(str(REPO_ROOT / "src"),)),
    "uvicorn": ServerSpec("uvicorn", _uvicorn_argv),
    "hypercorn": ServerSpec("hypercorn", _hypercorn_argv),
}


# --------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class WrkResult:
    """What we keep from one wrk run."""

    requests_per_s: float
    p99_ms: float
    requests: int
    non_2xx_3xx: int
    socket_errors: dict[str, int]

    @property
    def socket_error_total(self) -> int:
        return sum(self.socket_errors.values())


@dataclass
class ServerSummary:
    """All rounds of one server."""

    name: str
    results: list[WrkResult] = field(default_factory=list)
    failures: list[tuple[int, str]] = field(default_factory=list)

    @property
    def median_rps(self) -> float | None:
        if not self.results:
            return None
        return statistics.median(r.requests_per_s for r in self.results)

    @property
    def median_p99_ms(self) -> float | None:
        if not self.results:
            return None
        return statistics.median(r.p99_ms for r in self.results)


@dataclass(frozen=True)
class Pinning:
    """CPU placement of the server and wrk (None = unpinned)."""

    server_cpu: int | None
    wrk_cpu: int | None
    reason: str

    def server_prefix(self) -> list[str]:
        return _taskset(self.server_cpu)

    def wrk_prefix(self) -> list[str]:
        return _taskset(self.wrk_cpu)


def _taskset(cpu: int | None) -> list[str]:
    return [] if cpu is None else ["taskset", "-c", str(cpu)]


def decide_pinning() -> Pinning:
    """Pin server and wrk to two distinct CPUs if taskset and 2+ CPUs exist."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        count = os.cpu_count() or 1
        cpus = list(range(count))
    if shutil.which("taskset") is None:
        return Pinning(None, None, "unpinned (taskset not found)")
    if len(cpus) < 2:
        return Pinning(None, None, f"unpinned (only {len(cpus)} CPU available)")
    server_cpu, wrk_cpu = cpus[0], cpus[1]
    return Pinning(
        server_cpu,
        wrk_cpu,
        f"server on CPU {server_cpu}, wrk on CPU {wrk_cpu} (taskset)",
    )


# --------------------------------------------------------------------------
# wrk output parsing
# --------------------------------------------------------------------------

_TIME_UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}
_RPS_RE = re.compile(r"^Requests/sec:\s+([0-9.]+)\s*$", re.MULTILINE)
_P99_RE = re.compile(r"^\s*99(?:\.0+)?%\s+([0-9.]+)(us|ms|s|m|h)\s*$", re.MULTILINE)
_REQUESTS_RE = re.compile(r"^\s*(\d+) requests in ", re.MULTILINE)
_SOCKET_RE = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
_NON2XX_RE = re.compile(r"Non-2xx or 3xx responses: (\d+)")


def to_ms(value: float, unit: str) -> float:
    """Convert a wrk time value (us/ms/s/m/h) to milliseconds."""
    try:
        return value * _TIME_UNITS_MS[unit]
    except KeyError:
        raise ValueError(f"unknown wrk time unit {unit!r}") from None


def parse_wrk(output: str) -> WrkResult:
    """Parse ``wrk --latency`` output; raise RunFailed if it is unusable."""
    rps = _RPS_RE.search(output)
    p99 = _P99_RE.search(output)
    if rps is None or p99 is None:
        raise RunFailed("could not parse wrk output: " + _tail(output))
    requests = _REQUESTS_RE.search(output)
    sock = _SOCKET_RE.search(output)
    non2xx = _NON2XX_RE.search(output)
    socket_errors = {
        kind: int(sock.group(i)) if sock else 0
        for i, kind in enumerate(("connect", "read", "write", "timeout"), start=1)
    }
    return WrkResult(
        requests_per_s=float(rps.group(1)),
        p99_ms=to_ms(float(p99.group(1)), p99.group(2)),
        requests=int(requests.group(1)) if requests else 0,
        non_2xx_3xx=int(non2xx.group(1)) if non2xx else 0,
        socket_errors=socket_errors,
    )


# --------------------------------------------------------------------------
# Process handling
# --------------------------------------------------------------------------


def free_port() -> int:
    """Ask the kernel for a free TCP port on HOST."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _tail(text: str, lines: int = 5, chars: int = 400) -> str:
    kept = " / ".join(line.strip() for line in text.strip().splitlines()[-lines:])
    if len(kept) > chars:
        kept = "..." + kept[-chars:]
    return kept or "(no output)"


def _read_log(log: IO[bytes]) -> str:
    log.flush()
    log.seek(0)
    return log.read().decode("utf-8", "replace")


def start_server(
    spec: ServerSpec, port: int, pinning: Pinning, log: IO[bytes]
) -> subprocess.Popen[bytes]:
    """Launch a server in its own session (so its whole group can be killed)."""
    env = dict(os.environ)
    if spec.extra_pythonpath:
        parts = [*spec.extra_pythonpath]
        if env.get("PYTHONPATH"):
            parts.append(env["PYTHONPATH"])
        env["PYTHONPATH"] = os.pathsep.join(parts)
    argv = pinning.server_prefix() + spec.argv(port)
    try:
        return subprocess.Popen(
            argv,
            cwd=spec.cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    except OSError as exc:
        raise RunFailed(f"could not launch {shlex.join(argv)}: {exc}") from exc


def http_probe(port: int, timeout: float, expected: bytes = EXPECTED_BODY) -> str | None:
    """One readiness probe: TCP connect, then a real GET answered ``expected``. None: ready."""
    try:
        with socket.create_connection((HOST, port), timeout=timeout):
            pass
    except OSError as exc:
        return f"connect: {exc}"
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request("GET", "/")
        response = conn.getresponse()
        body = response.read()
    except (OSError, http.client.HTTPException) as exc:
        return f"GET /: {exc!r}"
    finally:
        conn.close()
    if response.status != 200 or body != expected:
        return f"GET / returned {response.status} {body[:60]!r}"
    return None


def wait_ready(
    proc: subprocess.Popen[bytes],
    port: int,
    log: IO[bytes],
    probe: Callable[[int, float], str | None] = http_probe,
    probe_timeout: float = 2.0,
) -> float:
    """Poll ``probe`` until the server answers correctly; return seconds waited."""
    start = time.monotonic()
    deadline = start + READY_TIMEOUT_S
    last_error = "never probed"
    while time.monotonic() < deadline:
        code = proc.poll()
        if code is not None:
            raise RunFailed(
                f"server exited with code {code} before becoming ready: " + _tail(_read_log(log))
            )
        remaining = deadline - time.monotonic()
        problem = probe(port, max(0.1, min(probe_timeout, remaining)))
        if problem is None:
            return time.monotonic() - start
        last_error = problem
        time.sleep(0.05)
    raise RunFailed(
        f"not ready after {READY_TIMEOUT_S:.0f} s (last probe: {last_error}); "
        "log: " + _tail(_read_log(log))
    )


def _signal_group(pgid: int, sig: signal.Signals) -> bool:
    """Signal the process group we created; False if it no longer exists."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    return True


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server's process group, SIGKILL it after STOP_GRACE_S."""
    pgid = proc.pid  # start_new_session=True: the server leads its own group
    if proc.poll() is None:
        _signal_group(pgid, signal.SIGTERM)
        try:
            proc.wait(timeout=STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            _signal_group(pgid, signal.SIGKILL)
            try:
                proc.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                _log(f"warning: server pid {proc.pid} survived SIGKILL for {STOP_GRACE_S:.0f} s")
    # Leftover children (e.g. hypercorn's worker process) of our group.
    _signal_group(pgid, signal.SIGKILL)


def run_wrk(pinning: Pinning, threads: int, connections: int, duration_s: int, port: int) -> str:
    """Run wrk once and return its stdout; raise RunFailed on failure."""
    argv = [
        *pinning.wrk_prefix(),
        "wrk",
        "-t", str(threads),
        "-c", str(connections),
        "-d", f"{duration_s}s",
        "--latency",
        f"http://{HOST}:{port}/",
    ]  # fmt: skip
    try:
        done = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=duration_s + WRK_TIMEOUT_SLACK_S,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise RunFailed(f"wrk did not finish within {exc.timeout:.0f} s") from exc
    except OSError as exc:
        raise RunFailed(f"could not run wrk: {exc}") from exc
    if done.returncode != 0:
        raise RunFailed(
            f"wrk exited with code {done.returncode}: " + _tail(done.stderr + done.stdout)
        )
    return done.stdout


def run_once(
    spec: ServerSpec,
    args: argparse.Namespace,
    pinning: Pinning,
    expected: bytes = EXPECTED_BODY,
) -> WrkResult:
    """Start one server, check it answers ``expected``, warm it up, measure it, always stop it."""
    port = free_port()
    probe = functools.partial(http_probe, expected=expected)
    with tempfile.TemporaryFile() as log:
        proc = start_server(spec, port, pinning, log)
        try:
            wait_ready(proc, port, log, probe=probe)
            if args.warmup > 0:
                run_wrk(pinning, args.threads, args.connections, args.warmup, port)
            output = run_wrk(pinning, args.threads, args.connections, args.duration, port)
            code = proc.poll()
            if code is not None:
                raise RunFailed(
                    f"server exited with code {code} during the run: " + _tail(_read_log(log))
                )
            result = parse_wrk(output)
            if result.requests - result.non_2xx_3xx <= 0:
                raise RunFailed(
                    f"no successful responses: {result.requests} requests, "
                    f"{result.non_2xx_3xx} non-2xx/3xx, socket errors "
                    + ", ".join(f"{k} {v}" for k, v in result.socket_errors.items())
                )
            return result
        finally:
            stop_server(proc)


# --------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and value.strip():
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def package_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        pass
    if name == "bascule":  # benchmarked from src/ even when not pip-installed
        version_file = REPO_ROOT / "src" / "bascule" / "_version.py"
        try:
            text = version_file.read_text(encoding="utf-8")
        except OSError:
            text = ""
        match = re.search(r"""__version__\s*=\s*["']([^"']+)["']""", text)
        if match:
            return f"{match.group(1)} (src/, not installed)"
    return "not installed"


def wrk_version() -> str:
    try:
        done = subprocess.run(
            ["wrk", "--version"], capture_output=True, text=True, timeout=10,
            check=False,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    match = re.search(r"wrk\s+(\S+)", done.stdout + done.stderr)
    return match.group(1) if match else "unknown"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _errors_cell(summary: ServerSummary, rounds: int) -> str:
    parts: list[str] = []
    if summary.failures:
        parts.append(f"FAILED {len(summary.failures)}/{rounds} rounds (see notes)")
    non2xx = sum(r.non_2xx_3xx for r in summary.results)
    total = sum(r.requests for r in summary.results)
    if non2xx:
        share = f" ({non2xx / total:.1%} of {total:,})" if total else ""
        parts.append(f"non-2xx/3xx: {non2xx:,}{share}")
    totals: dict[str, int] = {}
    for result in summary.results:
        for kind, count in result.socket_errors.items():
            totals[kind] = totals.get(kind, 0) + count
    sock = ", ".join(f"{kind} {n}" for kind, n in totals.items() if n)
    if sock:
        parts.append(f"socket: {sock}")
    return "; ".join(parts) if parts else "0"


def wrk_header(
    title: str,
    args: argparse.Namespace,
    pinning: Pinning,
    started: dt.datetime,
    load_at_start: tuple[float, float, float],
    packages: Sequence[str],
) -> list[str]:
    """The lines every wrk report starts with: command, CPU, versions, wrk flags, pinning."""
    command = shlex.join(getattr(sys, "orig_argv", [sys.executable, *sys.argv]))
    load = " ".join(f"{x:.2f}" for x in load_at_start)
    versions = ", ".join(f"{p} {package_version(p)}" for p in packages)
    return [
        f"## {title} {started:%Y-%m-%d %H:%M:%S %Z}".rstrip(),
        "",
        f"- command: `{command}`",
        (
            f"- CPU: {cpu_model()} ({os.cpu_count()} logical CPUs); "
            f"Python {platform.python_version()} ({platform.python_implementation()})"
        ),
        f"- versions: {versions}",
        (
            f"- wrk {wrk_version()}: -t {args.threads} -c {args.connections} "
            f"-d {args.duration}s --latency, {args.warmup} s warm-up per run, "
            f"{args.rounds} interleaved round(s), median over rounds"
        ),
        f"- pinning: {pinning.reason}; load average (1/5/15 min) at start: {load}",
    ]


def run_round(
    summary: ServerSummary, rnd: int, prefix: str, measure: Callable[[], WrkResult]
) -> None:
    """One measured run of one server in round ``rnd``: recorded and logged, failures too."""
    try:
        result = measure()
    except RunFailed as exc:
        summary.failures.append((rnd, str(exc)))
        _log(f"{prefix} FAILED: {exc}")
        return
    summary.results.append(result)
    _log(
        f"{prefix} {result.requests_per_s:,.0f} req/s, p99 {result.p99_ms:.2f} ms, "
        f"non-2xx/3xx {result.non_2xx_3xx}, socket errors {result.socket_error_total}"
    )


def write_report(report: str, output: Path | None) -> None:
    """Print the report, and write it to ``output`` when given."""
    print(report, end="")
    if output is not None:
        output.write_text(report, encoding="utf-8")
        _log(f"report written to {output}")


def render_report(
    summaries: Sequence[ServerSummary],
    args: argparse.Namespace,
    pinning: Pinning,
    started: dt.datetime,
    load_at_start: tuple[float, float, float],
) -> str:
    header = wrk_header("Benchmark", args, pinning, started, load_at_start, VERSIONED_PACKAGES)
    lines = [
        *header,
        f"- app: `{APP}` (200, 13-byte text/plain body), 1 worker, access log off",
        "",
        (
            "| server | requests/s (median) | p99 latency ms (median) "
            "| ratio to uvicorn (req/s) | errors |"
        ),
        "|---|---:|---:|---:|---|",
    ]
    baseline = next((s for s in summaries if s.name == BASELINE), None)
    baseline_rps = baseline.median_rps if baseline else None
    for summary in summaries:
        rps = summary.median_rps
        p99 = summary.median_p99_ms
        if rps is None or p99 is None:
            rps_cell, p99_cell, ratio_cell = "failed", "-", "-"
        else:
            rps_cell, p99_cell = f"{rps:,.0f}", f"{p99:.2f}"
            ratio_cell = f"{rps / baseline_rps:.2f}" if baseline_rps else "n/a"
        lines.append(
            f"| {summary.name} | {rps_cell} | {p99_cell} | {ratio_cell} "
            f"| {_cell(_errors_cell(summary, args.rounds))} |"
        )
    notes = [f"- {s.name}, round {rnd}: {reason}" for s in summaries for rnd, reason in s.failures]
    if notes:
        lines += ["", "Notes:", *notes]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def choice_list(choices: Sequence[str], what: str) -> Callable[[str], list[str]]:
    """An argparse type: a comma-separated subset of ``choices``, in order, without repeats."""

    def parse(text: str) -> list[str]:
        names: list[str] = []
        for raw in text.split(","):
            name = raw.strip().lower()
            if not name:
                continue
            if name not in choices:
                raise argparse.ArgumentTypeError(
                    f"unknown {what} {name!r} (choose from {', '.join(choices)})"
                )
            if name not in names:
                names.append(name)
        if not names:
            raise argparse.ArgumentTypeError(f"no {what}s given")
        return names

    return parse


def wrk_parser(description: str, servers: Sequence[str]) -> argparse.ArgumentParser:
    """The options every wrk benchmark script takes (add your own, then ``parse_wrk_args``)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--duration",
        type=_positive_int,
        default=10,
        help="seconds of measured wrk load per run (default 10)",
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
        default=64,
        help="wrk connections (default 64)",
    )
    parser.add_argument("--threads", type=_positive_int, default=1, help="wrk threads (default 1)")
    parser.add_argument(
        "--warmup",
        type=_non_negative_int,
        default=2,
        help="seconds of unmeasured wrk load before each run (default 2, 0 disables)",
    )
    parser.add_argument(
        "--servers",
        type=choice_list(servers, "server"),
        default=list(servers),
        help=f"comma-separated subset of {','.join(servers)} (default: all)",
    )
    parser.add_argument("--output", type=Path, default=None,
                        help="also write the Markdown report to this file")  # fmt: skip
    return parser


def parse_wrk_args(
    parser: argparse.ArgumentParser, argv: Sequence[str] | None
) -> argparse.Namespace:
    args = parser.parse_args(argv)
    if args.connections < args.threads:
        parser.error("--connections must be >= --threads (wrk requirement)")
    return args


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = wrk_parser("Benchmark bascule, uvicorn and hypercorn with wrk.", ALL_SERVERS)
    return parse_wrk_args(parser, argv)


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("wrk") is None:
        _log("error: wrk not found on PATH")
        return 2
    started = dt.datetime.now(dt.UTC)
    load_at_start = os.getloadavg()
    pinning = decide_pinning()
    _log(f"pinning: {pinning.reason}")
    summaries = run_servers(args, pinning, SERVERS)
    write_report(render_report(summaries, args, pinning, started, load_at_start), args.output)
    return 0 if any(s.results for s in summaries) else 1


def run_servers(
    args: argparse.Namespace, pinning: Pinning, servers: dict[str, ServerSpec]
) -> list[ServerSummary]:
    """``args.rounds`` interleaved rounds of ``run_once`` over ``args.servers``."""
    summaries = {name: ServerSummary(name) for name in args.servers}
    for rnd in range(1, args.rounds + 1):
        for name in args.servers:
            measure = functools.partial(run_once, servers[name], args, pinning)
            run_round(summaries[name], rnd, f"[round {rnd}/{args.rounds}] {name}:", measure)
    return list(summaries.values())


if __name__ == "__main__":
    sys.exit(main())

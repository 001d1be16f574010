"""Benchmark a FastAPI JSON endpoint on bascule against uvicorn.

Both servers serve ``bench.fastapi_app:app`` (``GET /``: a pydantic model
serialised to a 57-byte JSON body) with one worker and access logging off.
Everything else is ``bench/run.py``'s method, reusing its helpers: a fresh
process on a fresh free port per run, readiness by a real ``GET /`` whose body
must match, a short wrk warm-up, the measured wrk run, interleaved rounds,
the median over rounds, server and wrk pinned to different CPUs when
possible.  The report puts the servers side by side with their ratio to
uvicorn; the same run's figures for ``bench.app:app`` (a bare ASGI hello
world) show how much of the time is the framework.

Usage::

    python bench/frameworks_run.py [--duration S] [--rounds N] [--connections C]
                                   [--threads T] [--warmup S] [--output FILE]
                                   [--servers bascule,uvicorn] [--no-bare]

Run it as a script: it imports bench/run.py as a sibling module.  Needs wrk
(``apt-get install wrk``), fastapi, uvicorn, httptools and uvloop.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import os
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass

import run
from run import EXPECTED_BODY as BARE_BODY
from run import (
    HOST,
    REPO_ROOT,
    Pinning,
    ServerSpec,
    ServerSummary,
    WrkResult,
    _cell,
    _errors_cell,
    _log,
    bascule_argv,
    decide_pinning,
    parse_wrk_args,
    run_round,
    write_report,
    wrk_header,
    wrk_parser,
)

FASTAPI_APP = "bench.fastapi_app:app"
# The body bench/fastapi_app.py answers; kept here so this script does not
# import FastAPI (the servers do).
FASTAPI_BODY = b'{"message":"Hello, world!","id":1,"tags":["asgi","json"]}'
BARE_APP = "bench.app:app"

ALL_SERVERS = ("bascule", "uvicorn")
BASELINE = "uvicorn"
VERSIONED_PACKAGES = (
    "bascule", "uvicorn", "fastapi", "starlette", "pydantic", "httptools", "uvloop",
)  # fmt: skip


@dataclass(frozen=True)
class Workload:
    """An app every server serves, and the body its ``GET /`` must answer."""

    name: str
    app: str
    body: bytes
    description: str


FASTAPI = Workload(
    "fastapi",
    FASTAPI_APP,
    FASTAPI_BODY,
    f"`{FASTAPI_APP}`: FastAPI `GET /`, pydantic response model, {len(FASTAPI_BODY)}-byte JSON",
)
BARE = Workload(
    "bare ASGI",
    BARE_APP,
    BARE_BODY,
    f"`{BARE_APP}`: raw ASGI hello world, {len(BARE_BODY)}-byte text (the servers' floor)",
)


def _uvicorn_argv(app: str, port: int) -> list[str]:
    return [
        sys.executable, "-m", "uvicorn", app,
        "--host", HOST, "--port", str(port),
        "--http", "httptools", "--loop", "uvloop",
        "--no-access-log", "--log-level", "warning",
        "--app-dir", str(REPO_ROOT),
    ]  # fmt: skip


def server_spec(name: str, workload: Workload) -> ServerSpec:
    """How to launch server ``name`` on ``workload``'s app."""
    if name == "bascule":
        # src/ on PYTHONPATH: the working tree's bascule is benchmarked.
        argv = functools.partial(bascule_argv, workload.app)
        return ServerSpec("bascule", argv, extra_pythonpath=(str(REPO_ROOT / "src"),))
    return ServerSpec(name, functools.partial(_uvicorn_argv, workload.app))


def run_once(
    spec: ServerSpec, workload: Workload, args: argparse.Namespace, pinning: Pinning
) -> WrkResult:
    """Start one server, check it answers the workload's body, warm it up, measure, stop it."""
    return run.run_once(spec, args, pinning, expected=workload.body)


def _table(summaries: Sequence[ServerSummary], rounds: int) -> list[str]:
    lines = [
        "| server | requests/s (median) | p99 latency ms (median) "
        "| ratio to uvicorn (req/s) | errors |",
        "|---|---:|---:|---:|---|",
    ]
    baseline = next((s for s in summaries if s.name == BASELINE), None)
    baseline_rps = baseline.median_rps if baseline else None
    for summary in summaries:
        rps, p99 = summary.median_rps, summary.median_p99_ms
        if rps is None or p99 is None:
            cells = ["failed", "-", "-"]
        else:
            ratio = f"{rps / baseline_rps:.2f}" if baseline_rps else "n/a"
            cells = [f"{rps:,.0f}", f"{p99:.2f}", ratio]
        errors = _cell(_errors_cell(summary, rounds))
        lines.append(f"| {summary.name} | {' | '.join(cells)} | {errors} |")
    return lines


def render_report(
    results: dict[str, list[ServerSummary]],
    workloads: Sequence[Workload],
    args: argparse.Namespace,
    pinning: Pinning,
    started: dt.datetime,
    load_at_start: tuple[float, float, float],
) -> str:
    header = wrk_header(
        "Framework benchmark", args, pinning, started, load_at_start, VERSIONED_PACKAGES
    )
    lines = [
        *header,
        "- 1 worker per server, access log off; uvicorn with `--http httptools --loop uvloop`",
    ]
    for workload in workloads:
        summaries = results[workload.name]
        lines += ["", f"### {workload.description}", "", *_table(summaries, args.rounds)]
    fastapi = {s.name: s.median_rps for s in results.get(FASTAPI.name, [])}
    bare = {s.name: s.median_rps for s in results.get(BARE.name, [])}
    shares = [
        f"{name} {fastapi_rps / bare_rps:.0%}"
        for name, fastapi_rps in fastapi.items()
        if fastapi_rps and (bare_rps := bare.get(name))
    ]
    if shares:
        lines += ["", "FastAPI throughput as a share of the bare app's: " + ", ".join(shares)]
    notes = [
        f"- {workload.name}, {summary.name}, round {rnd}: {reason}"
        for workload in workloads
        for summary in results[workload.name]
        for rnd, reason in summary.failures
    ]
    if notes:
        lines += ["", "Notes:", *notes]
    return "\n".join(lines) + "\n"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = wrk_parser(
        "Benchmark a FastAPI JSON endpoint on bascule and uvicorn with wrk.", ALL_SERVERS
    )
    parser.add_argument(
        "--no-bare", dest="bare", action="store_false", help="skip the bare ASGI app (FastAPI only)"
    )
    return parse_wrk_args(parser, argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("wrk") is None:
        _log("error: wrk not found on PATH (Debian: apt-get install wrk)")
        return 2
    started = dt.datetime.now(dt.UTC)
    load_at_start = os.getloadavg()
    pinning = decide_pinning()
    _log(f"pinning: {pinning.reason}")
    workloads = [FASTAPI, BARE] if args.bare else [FASTAPI]
    results = {w.name: [ServerSummary(name) for name in args.servers] for w in workloads}
    for rnd in range(1, args.rounds + 1):
        for workload in workloads:
            for summary in results[workload.name]:
                spec = server_spec(summary.name, workload)
                measure = functools.partial(run_once, spec, workload, args, pinning)
                prefix = f"[round {rnd}/{args.rounds}] {workload.name}, {summary.name}:"
                run_round(summary, rnd, prefix, measure)
    report = render_report(results, workloads, args, pinning, started, load_at_start)
    write_report(report, args.output)
    ok = any(s.results for summaries in results.values() for s in summaries)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

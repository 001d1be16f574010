"""Benchmark a Flask hello app on WSGI: bascule against gunicorn and hypercorn.

Servers, each with one worker process and access logging off, serving
``bench.wsgi_app:app`` (Flask, 13-byte text/plain body):

- bascule ``--interface wsgi`` (thread pool, ``--wsgi-max-workers`` default);
- gunicorn, sync worker (``-w 1 -k sync``): one request at a time, and it
  closes the connection after each response, so wrk reconnects per request;
- hypercorn in WSGI mode (``wsgi:`` app prefix, uvloop worker).

The load is ``wrk -t T -c C -d DURATION --latency``.  Runs are interleaved
(round 1: every server, round 2: ...), each on a fresh process and a fresh free
port, with a short warm-up; the median over rounds is reported as a Markdown
table with the ratios of bascule to each other server.

Usage::

    python bench/wsgi_run.py [--duration S] [--rounds N] [--connections C]
                             [--threads T] [--warmup S]
                             [--servers bascule,gunicorn,hypercorn] [--output FILE]

Run it as a script: it imports the helpers of ``bench/run.py`` as a sibling
module.  Needs ``wrk`` on PATH, and flask, gunicorn, hypercorn installed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import sys
from collections.abc import Sequence

from run import (
    HOST,
    REPO_ROOT,
    Pinning,
    ServerSpec,
    ServerSummary,
    _cell,
    _errors_cell,
    _log,
    bascule_argv,
    decide_pinning,
    hypercorn_argv,
    parse_wrk_args,
    run_servers,
    write_report,
    wrk_header,
    wrk_parser,
)

APP = "bench.wsgi_app:app"
ALL_SERVERS = ("bascule", "gunicorn", "hypercorn")
TARGET = "bascule"
VERSIONED_PACKAGES = ("bascule", "gunicorn", "hypercorn", "flask", "werkzeug", "uvloop")
SERVER_LABELS = {
    "bascule": "bascule `--interface wsgi`",
    "gunicorn": "gunicorn `-w 1 -k sync`",
    "hypercorn": "hypercorn WSGI mode (uvloop worker)",
}


def _bascule_argv(port: int) -> list[str]:
    return [*bascule_argv(APP, port), "--interface", "wsgi"]


def _gunicorn_argv(port: int) -> list[str]:
    return [
        sys.executable, "-m", "gunicorn", APP,
        "--bind", f"{HOST}:{port}",
        "--workers", "1", "--worker-class", "sync",
        "--log-level", "warning",
        "--chdir", str(REPO_ROOT),
    ]  # fmt: skip


def _hypercorn_argv(port: int) -> list[str]:
    return hypercorn_argv(f"wsgi:{APP}", port)


SERVERS: dict[str, ServerSpec] = {
    # src/ on PYTHONPATH: the working tree's bascule is benchmarked.
    "bascule": ServerSpec("bascule", _bascule_argv, extra_pythonpath=(str(REPO_ROOT / "src"),)),
    "gunicorn": ServerSpec("gunicorn", _gunicorn_argv),
    "hypercorn": ServerSpec("hypercorn", _hypercorn_argv),
}


def render_report(
    summaries: Sequence[ServerSummary],
    args: argparse.Namespace,
    pinning: Pinning,
    started: dt.datetime,
    load_at_start: tuple[float, float, float],
) -> str:
    target = next((s for s in summaries if s.name == TARGET), None)
    target_rps = target.median_rps if target else None
    header = wrk_header("WSGI benchmark", args, pinning, started, load_at_start, VERSIONED_PACKAGES)
    lines = [
        *header,
        f"- app: `{APP}` (Flask, 200, 13-byte text/plain body), 1 worker process",
        "",
        "| server | requests/s (median) | p99 latency ms (median) | bascule ÷ server | errors |",
        "|---|---:|---:|---:|---|",
    ]
    for summary in summaries:
        rps, p99 = summary.median_rps, summary.median_p99_ms
        if rps is None or p99 is None:
            cells = ["failed", "-", "-"]
        else:
            ratio = f"{target_rps / rps:.2f}" if target_rps else "n/a"
            cells = [f"{rps:,.0f}", f"{p99:.2f}", ratio]
        label = SERVER_LABELS[summary.name]
        errors = _cell(_errors_cell(summary, args.rounds))
        lines.append(f"| {label} | {' | '.join(cells)} | {errors} |")
    notes = [f"- {s.name}, round {rnd}: {reason}" for s in summaries for rnd, reason in s.failures]
    if notes:
        lines += ["", "Notes:", *notes]
    return "\n".join(lines) + "\n"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = wrk_parser(
        "Benchmark a Flask app on WSGI: bascule, gunicorn, hypercorn (wrk).", ALL_SERVERS
    )
    return parse_wrk_args(parser, argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("wrk") is None:
        _log("error: wrk not found on PATH (apt-get install -y wrk)")
        return 2
    started = dt.datetime.now(dt.UTC)
    load_at_start = os.getloadavg()
    pinning = decide_pinning()
    _log(f"pinning: {pinning.reason}")
    summaries = run_servers(args, pinning, SERVERS)
    write_report(render_report(summaries, args, pinning, started, load_at_start), args.output)
    return 0 if any(s.results for s in summaries) else 1


if __name__ == "__main__":
    sys.exit(main())

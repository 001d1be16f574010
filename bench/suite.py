"""``python -m bench``: issue 7's scenarios against bascule and its peers, in one run.

For each scenario, rounds are interleaved (round 1: every server, round 2: every server,
...), each run on a fresh server process and a fresh port, the server pinned to one CPU
and the load generator to another with ``taskset``. The report is Markdown: a header
with the date, ``nproc``, the CPU model and the versions, then one table per scenario
with the median and min-max of its headline metric over rounds, secondary figures, the
ratio to each baseline the issue names (uvicorn always; granian, limit, hypercorn where
the target mentions them), and whether each target was met in this run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shlex
import shutil
import signal
import statistics
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import h2_run
import peers
import run
import scenarios
from run import RunFailed
from scenarios import ALL_SERVERS, SCENARIOS, Sample, Scenario

VERSIONED_PACKAGES = (
    "bascule", "uvicorn", "granian", "hypercorn", "daphne", "httptools", "uvloop", "h2",
    "websockets", "zttp", "starlette", "fastapi",
)  # fmt: skip
HYPERCORN_H2_TOML = "keep_alive_max_requests = 1000000000\n"


@dataclass
class Summary:
    """All rounds of one server on one scenario."""

    server: str
    unavailable: str | None = None
    samples: list[Sample] = field(default_factory=list)
    failures: list[tuple[int, str]] = field(default_factory=list)

    def median(self) -> float | None:
        return statistics.median(s.value for s in self.samples) if self.samples else None

    def detail(self, key: str) -> float | None:
        values = [s.details[key] for s in self.samples if key in s.details]
        return statistics.median(values) if values else None


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------

# Secondary columns per scenario kind: (title, detail key, format).
_DETAILS: dict[str, tuple[tuple[str, str, str], ...]] = {
    "wrk": (("p99 ms", "p99_ms", "{:.2f}"),),
    "wrk-latency": (("requests/s", "rps", "{:,.0f}"), ("p99 ms", "p99_ms", "{:.2f}")),
    "h2": (("mean request ms", "mean_ms", "{:.2f}"),),
    "ws": (("server CPU %", "server_cpu_pct", "{:.0f}"),),
    "memory": (
        ("RSS MiB before", "base_mib", "{:.1f}"),
        ("KiB per connection", "per_conn_kib", "{:.1f}"),
        ("connections open at reading", "open", "{:.0f}"),
    ),
}


def _fmt_value(scenario: Scenario, value: float) -> str:
    if scenario.kind == "memory":
        return f"{value:.1f}"
    return f"{value:,.0f}"


def _details_key(scenario: Scenario) -> str:
    if scenario.kind == "wrk" and not scenario.higher_is_better:
        return "wrk-latency"
    return scenario.kind


def _baselines(scenario: Scenario) -> list[str]:
    names = ["uvicorn"]
    names += [t.baseline for t in scenario.targets if t.baseline not in names]
    return names


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _target_lines(scenario: Scenario, by_name: dict[str, Summary]) -> list[str]:
    bascule = by_name.get("bascule")
    mine = bascule.median() if bascule else None
    parts: list[str] = []
    for target in scenario.targets:
        base = by_name.get(target.baseline)
        theirs = base.median() if base else None
        wanted = target.text(scenario.higher_is_better)
        if mine is None or not theirs:
            parts.append(f"{wanted}: n/a")
            continue
        ratio = mine / theirs
        met = ratio >= target.ratio if scenario.higher_is_better else ratio <= target.ratio
        parts.append(f"{wanted}: {'met' if met else 'NOT met'} ({ratio:.2f}x)")
    if scenario.no_errors and bascule is not None:
        errors = sum(s.errors for s in bascule.samples) + len(bascule.failures)
        parts.append(f"no errors: {'met' if errors == 0 else f'NOT met ({errors})'}")
    return [f"bascule's targets: {'; '.join(parts)}"] if parts else []


def render_scenario(
    scenario: Scenario, summaries: Sequence[Summary], args: argparse.Namespace
) -> list[str]:
    rounds = args.rounds
    by_name = {s.server: s for s in summaries}
    details = _DETAILS[_details_key(scenario)]
    baselines = _baselines(scenario)
    better = "higher" if scenario.higher_is_better else "lower"
    head = [f"{scenario.metric} (median)", "min-max", *(d[0] for d in details)]
    head += [f"ratio to {b}" for b in baselines]
    lines = [
        f"### {scenario.name}: {scenario.title}",
        "",
        f"Headline: {scenario.metric}, {better} is better; ratios are of the medians."
        + (f" N = {args.idle_connections}." if scenario.kind == "memory" else ""),
        "",
        "| server | " + " | ".join(head) + " | errors |",
        "|---|" + "---:|" * len(head) + "---|",
    ]
    for summary in summaries:
        if summary.unavailable is not None:
            cells = [f"unavailable: {summary.unavailable}"] + ["-"] * (len(head) - 1)
            lines.append(f"| {summary.server} | " + " | ".join(map(_cell, cells)) + " | - |")
            continue
        median = summary.median()
        if median is None:
            cells = ["failed"] + ["-"] * (len(head) - 1)
        else:
            values = [s.value for s in summary.samples]
            cells = [
                _fmt_value(scenario, median),
                f"{_fmt_value(scenario, min(values))}-{_fmt_value(scenario, max(values))}",
            ]
            for _title, key, fmt in details:
                value = summary.detail(key)
                cells.append("-" if value is None else fmt.format(value))
            for name in baselines:
                base = by_name.get(name)
                base_median = base.median() if base else None
                cells.append(f"{median / base_median:.2f}" if base_median else "n/a")
        errors = sum(s.errors for s in summary.samples)
        err_parts = [f"{errors:,}"] if errors else []
        if summary.failures:
            err_parts.append(f"FAILED {len(summary.failures)}/{rounds} rounds")
        lines.append(
            f"| {summary.server} | " + " | ".join(cells) + f" | {'; '.join(err_parts) or '0'} |"
        )
    lines += ["", *_target_lines(scenario, by_name)]
    notes = [
        f"- {s.server}, round {r}: {_cell(reason)}" for s in summaries for r, reason in s.failures
    ]
    seen: set[tuple[str, str]] = set()
    for summary in summaries:
        for sample in summary.samples:
            if sample.note and (summary.server, sample.note) not in seen:
                seen.add((summary.server, sample.note))
                notes.append(f"- {summary.server}: {_cell(sample.note)}")
    if notes:
        lines += ["", "Notes:", *notes]
    return [*lines, ""]


def render_header(
    args: argparse.Namespace, pinning: run.Pinning, started: dt.datetime
) -> list[str]:
    command = shlex.join(getattr(sys, "orig_argv", [sys.executable, *sys.argv]))
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    versions = ", ".join(f"{p} {run.package_version(p)}" for p in VERSIONED_PACKAGES)
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count() or 1
    return [
        f"## Benchmark suite {started:%Y-%m-%d %H:%M:%S %Z}".rstrip(),
        "",
        f"- command: `{command}`",
        f"- machine: nproc {usable}, CPU {run.cpu_model()}; "
        f"Python {platform.python_version()} ({sys.prefix})",
        f"- versions: {versions}; wrk {run.wrk_version()}; h2load {h2_run.h2load_version()}",
        f"- method: {args.rounds} interleaved round(s) per scenario, {args.duration} s measured "
        f"after {args.warmup} s warm-up per run, median over rounds; 1 worker, access log off; "
        f"fresh process and port per run",
        f"- pinning: {pinning.reason}; load average (1/5/15 min) at start: {load}",
        "",
    ]


# --------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------


def _describe(sample: Sample, scenario: Scenario) -> str:
    text = f"{_fmt_value(scenario, sample.value)} {scenario.metric}"
    for title, key, fmt in _DETAILS[_details_key(scenario)]:
        if key in sample.details:
            text += f", {title} {fmt.format(sample.details[key])}"
    return text + (f", errors {sample.errors}" if sample.errors else "")


def run_scenario(
    scenario: Scenario,
    servers: Sequence[str],
    args: argparse.Namespace,
    pinning: run.Pinning,
    hypercorn_h2_config: Path,
) -> list[Summary]:
    """Interleaved rounds of ``scenario`` over the servers that can run it."""
    summaries = [
        Summary(name, scenarios.unavailable_reason(name, scenario))
        for name in servers
        if name in scenario.servers
    ]
    for summary in summaries:
        if summary.unavailable:
            _log(f"[{scenario.name}] {summary.server}: unavailable ({summary.unavailable})")
    for rnd in range(1, args.rounds + 1):
        for summary in summaries:
            if summary.unavailable is not None:
                continue
            prefix = f"[{scenario.name} round {rnd}/{args.rounds}] {summary.server}:"
            try:
                sample = scenarios.run_once(
                    summary.server, scenario, args, pinning, hypercorn_h2_config
                )
            except RunFailed as exc:
                summary.failures.append((rnd, str(exc)))
                _log(f"{prefix} FAILED: {exc}")
                continue
            summary.samples.append(sample)
            _log(f"{prefix} {_describe(sample, scenario)}")
    return summaries


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Issue 7's benchmark scenarios: bascule against uvicorn, granian, "
        "hypercorn, daphne and the bare-protocol limit.",
    )
    parser.add_argument(
        "--scenarios",
        type=run.choice_list(tuple(SCENARIOS), "scenario"),
        default=list(SCENARIOS),
        help=f"comma-separated subset of {','.join(SCENARIOS)} (default: all)",
    )
    parser.add_argument(
        "--servers",
        type=run.choice_list(ALL_SERVERS, "server"),
        default=list(ALL_SERVERS),
        help=f"comma-separated subset of {','.join(ALL_SERVERS)} (default: all; "
        "each scenario runs those that apply)",
    )
    parser.add_argument(
        "--rounds",
        type=_positive_int,
        default=3,
        help="interleaved rounds per scenario; medians are reported (default 3)",
    )
    parser.add_argument(
        "--duration", type=_positive_int, default=10, help="measured seconds per run (default 10)"
    )
    parser.add_argument(
        "--warmup",
        type=_non_negative_int,
        default=2,
        help="unmeasured seconds of load before each run (default 2)",
    )
    parser.add_argument(
        "--idle-connections",
        type=_positive_int,
        default=1000,
        help="idle keep-alive connections of the memory scenario (default 1000)",
    )
    parser.add_argument(
        "--output", type=Path, default=None, help="also write the Markdown report to this file"
    )
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")
    parser.add_argument(
        "--setup",
        action="store_true",
        help="create bench/.venv with bascule and the peers, then exit",
    )
    parser.add_argument(
        "--no-venv", action="store_true", help="use this interpreter even if bench/.venv exists"
    )
    return parser.parse_args(argv)  # fmt: skip


def _terminate(signum: int, frame: object) -> None:
    del frame
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.setup:
        return peers.setup()
    if args.list:
        for s in SCENARIOS.values():
            targets = ", ".join(t.text(s.higher_is_better) for t in s.targets)
            print(f"{s.name:11} {s.title} [servers: {','.join(s.servers)}] target: {targets}")
        return 0
    needed = {"wrk": "wrk", "h2": "h2load"}
    for name in args.scenarios:
        tool = needed.get(SCENARIOS[name].kind)
        if tool is not None and shutil.which(tool) is None:
            _log(f"error: scenario {name} needs {tool} on PATH")
            return 2
    # SIGTERM unwinds like an exception, so every started server is stopped by its PID.
    signal.signal(signal.SIGTERM, _terminate)
    started = dt.datetime.now(dt.UTC)
    pinning = run.decide_pinning()
    _log(f"pinning: {pinning.reason}; python: {sys.executable}")
    header = render_header(args, pinning, started)
    body: list[str] = []
    any_result = False
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "hypercorn-h2.toml"
        config.write_text(HYPERCORN_H2_TOML, encoding="ascii")
        for name in args.scenarios:
            scenario = SCENARIOS[name]
            summaries = run_scenario(scenario, args.servers, args, pinning, config)
            any_result = any_result or any(s.samples for s in summaries)
            body += render_scenario(scenario, summaries, args)
    report = "\n".join([*header, *body]).rstrip("\n") + "\n"
    print(report, end="")
    if args.output is not None:
        args.output.write_text(report, encoding="utf-8")
        _log(f"report written to {args.output}")
    return 0 if any_result else 1

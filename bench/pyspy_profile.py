"""Profile bascule under load with py-spy and summarise where the samples go.

Starts bascule on ``bench.app:app`` (one worker, access log off, pinned to the first CPU),
puts it under load from the second CPU (``wrk -c64`` for HTTP/1.1, ``h2load -c16 -m10``
for h2c), and while the load runs samples it with::

    py-spy record -p PID -r RATE -f raw -d SECONDS --nonblocking -o FILE

then stops everything by PID and prints Markdown tables: the top functions by inclusive
share (a function counted once per sample whatever its depth) and by self share (the
innermost Python frame), and the top source lines by self share. ``--raw FILE`` keeps
py-spy's collapsed stacks; ``--summarise FILE`` only summarises an existing one.

Usage::

    python bench/pyspy_profile.py --protocol h1 [--duration 10] [--rate 250] [--top 20]
    python bench/pyspy_profile.py --summarise /tmp/h1.raw

Needs py-spy (root, or ptrace permission), wrk / h2load, and the bench helpers beside it.
"""

from __future__ import annotations

import argparse
import collections
import functools
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import h2_run
import run
from run import HOST, REPO_ROOT, RunFailed, ServerSpec

SLACK_S = 30.0
# wrk's "Requests/sec: N" or h2load's "finished in Ts, N req/s".
_RATE_RE = re.compile(r"(?:Requests/sec:\s+|finished in \S+, )([0-9.]+)")
_FRAME_RE = re.compile(r"^(?P<func>.*) \((?P<file>[^():]*)(?::(?P<line>\d+))?\)$")


def _short(path: str) -> str:
    for marker in ("site-packages/", "/src/", "/lib/python3"):
        index = path.find(marker)
        if index >= 0:
            return path[index + len(marker) :].removeprefix(".11/")
    return path


def _frame_keys(frame: str) -> tuple[str, str]:
    """(function key, line key) of one py-spy frame ``func (file:line)``."""
    match = _FRAME_RE.match(frame)
    if match is None:
        return frame, frame
    func, file, line = match.group("func"), _short(match.group("file")), match.group("line")
    return f"{func} ({file})", f"{func} ({file}:{line or '?'})"


def _package(frame: str) -> str:
    """Where a frame's code lives: bascule's subpackage, a library, or the stdlib module."""
    match = _FRAME_RE.match(frame)
    if match is None:
        return "(native)"
    file = _short(match.group("file"))
    if not (file.isascii() and file.isprintable()):
        return "(unreadable frame)"
    if file.startswith("<frozen"):
        return "stdlib"
    parts = file.split("/")
    if parts[0] == "bascule" and len(parts) > 2:
        return "/".join(parts[:2])
    return parts[0].removesuffix(".py")


def summarise(raw: str, top: int, cost: tuple[float, float] | None = None) -> str:
    """Markdown tables of the inclusive / self shares in py-spy ``-f raw`` output.

    ``cost`` = (requests/s under the profile, share of a CPU the server used).
    """
    inclusive: collections.Counter[str] = collections.Counter()
    self_func: collections.Counter[str] = collections.Counter()
    self_line: collections.Counter[str] = collections.Counter()
    packages: collections.Counter[str] = collections.Counter()
    total = 0
    for entry in raw.splitlines():
        stack, _, count_text = entry.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = [f for f in stack.split(";") if f]
        # py-spy's raw stacks start with the process/thread names; keep Python frames.
        frames = [f for f in frames if _FRAME_RE.match(f)] or frames
        seen: set[str] = set()
        for frame in frames:
            func, _line = _frame_keys(frame)
            if func not in seen:
                seen.add(func)
                inclusive[func] += count
        for package in {_package(f) for f in frames}:
            packages[package] += count
        if frames:
            func, line = _frame_keys(frames[-1])
            self_func[func] += count
            self_line[line] += count
    if total == 0:
        return "no samples\n"

    def table(title: str, counter: collections.Counter[str]) -> list[str]:
        rows = [f"| {title} | share | samples |", "|---|---:|---:|"]
        for key, count in counter.most_common(top):
            rows.append(f"| `{key.replace('|', '/')}` | {100 * count / total:.1f}% | {count} |")
        return [*rows, ""]

    lines = [f"{total} samples", ""]
    if cost is not None:
        requests_per_s, busy = cost
        per_request_us = 1e6 * busy / requests_per_s
        lines += [
            f"load: {requests_per_s:,.0f} requests/s; the server used {busy:.0%} of a CPU "
            f"(/proc), so one request costs about {per_request_us:.1f} µs of CPU and 1% of "
            f"the samples is about {per_request_us / 100:.2f} µs per request",
            "",
        ]
    lines += table("package or module (inclusive)", packages)
    lines += table("function (inclusive)", inclusive)
    lines += table("function (self)", self_func)
    lines += table("line (self)", self_line)
    return "\n".join(lines)


def _load_argv(protocol: str, pinning: run.Pinning, port: int, seconds: int) -> list[str]:
    url = f"http://{HOST}:{port}/"
    if protocol == "h1":
        tool = ["wrk", "-t", "1", "-c", "64", "-d", f"{seconds}s", url]
    else:
        tool = ["h2load", "-c", "16", "-m", "10", "-D", str(seconds), url]
    return [*pinning.wrk_prefix(), *tool]


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` so far (``/proc/PID/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def profile(args: argparse.Namespace) -> tuple[str, float | None, float]:
    """Run bascule under load, record it with py-spy.

    Returns the raw stacks, the requests/s of the load, and the share of one CPU the
    server used while sampled (from ``/proc``: py-spy ``--nonblocking`` loses samples
    when the machine is busy, so its sample count understates how busy the server was).
    """
    pinning = run.decide_pinning()
    spec = ServerSpec(
        "bascule",
        functools.partial(run.bascule_argv, "bench.app:app"),
        extra_pythonpath=(str(REPO_ROOT / "src"),),
    )
    port = run.free_port()
    probe = h2_run._probe if args.protocol == "h2" else run.http_probe
    with (
        tempfile.TemporaryDirectory() as tmp,
        tempfile.TemporaryFile() as log,
        tempfile.TemporaryFile() as load_out,
    ):
        raw_path = Path(tmp) / "profile.raw"
        proc = run.start_server(spec, port, pinning, log)
        load: subprocess.Popen[bytes] | None = None
        try:
            run.wait_ready(proc, port, log, probe=probe)
            seconds = args.duration + 4
            load = subprocess.Popen(
                _load_argv(args.protocol, pinning, port, seconds),
                stdin=subprocess.DEVNULL,
                stdout=load_out,
                stderr=subprocess.STDOUT,
            )
            time.sleep(2.0)  # let the load settle before sampling
            spy = [
                *pinning.wrk_prefix(), "py-spy", "record", "-p", str(proc.pid),
                "-r", str(args.rate), "-f", "raw", "-d", str(args.duration),
                "--nonblocking", "-o", str(raw_path),
            ]  # fmt: skip
            print("+ " + " ".join(spy), file=sys.stderr, flush=True)
            cpu_before, wall_before = _cpu_seconds(proc.pid), time.monotonic()
            done = subprocess.run(
                spy, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                timeout=args.duration + SLACK_S, check=False,
            )  # fmt: skip
            busy = (_cpu_seconds(proc.pid) - cpu_before) / (time.monotonic() - wall_before)
            if done.returncode != 0 or not raw_path.exists():
                raise RunFailed("py-spy failed: " + run._tail(done.stderr + done.stdout))
            load.wait(timeout=seconds + SLACK_S)
            load_out.seek(0)
            rate = _RATE_RE.search(load_out.read().decode("utf-8", "replace"))
            requests_per_s = float(rate.group(1)) if rate else None
            return raw_path.read_text(encoding="utf-8", errors="replace"), requests_per_s, busy
        finally:
            if load is not None:
                try:
                    load.wait(timeout=seconds + SLACK_S)
                except subprocess.TimeoutExpired:
                    load.kill()
                    load.wait(timeout=SLACK_S)
            run.stop_server(proc)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="py-spy profile of bascule under load.")
    parser.add_argument("--protocol", choices=("h1", "h2"), default="h1")
    parser.add_argument("--duration", type=int, default=10, help="seconds sampled (10)")
    parser.add_argument("--rate", type=int, default=250, help="samples per second (250)")
    parser.add_argument("--top", type=int, default=20, help="rows per table (20)")
    parser.add_argument("--raw", type=Path, default=None, help="also save the raw stacks here")
    parser.add_argument("--summarise", type=Path, default=None,
                        help="summarise this raw file instead of profiling")  # fmt: skip
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.summarise is not None:
        print(summarise(args.summarise.read_text(encoding="utf-8"), args.top), end="")
        return 0
    tool = "wrk" if args.protocol == "h1" else "h2load"
    for needed in ("py-spy", tool):
        if shutil.which(needed) is None:
            print(f"error: {needed} not found on PATH", file=sys.stderr)
            return 2
    try:
        raw, requests_per_s, busy = profile(args)
    except RunFailed as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.raw is not None:
        args.raw.write_text(raw, encoding="utf-8")
    cost = None if not requests_per_s else (requests_per_s, busy)
    print(summarise(raw, args.top, cost), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())

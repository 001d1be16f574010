"""Server CPU time per request under wrk, for builds of bascule and uvicorn side by side.

    python bench/cpu_per_request.py --rounds 3 compiled pure uvicorn

Each target is served on CPU 0 (``--app``, default ``bench.app:app``; one worker, access
log off) and loaded from CPU 1 by ``wrk -t1 -c64`` (``--connections``) for ``--duration``
seconds after a 1 s warm-up.
The server's user+system CPU time (``/proc/PID/stat``) divided by the requests wrk
completed is its cost per request, also given as user and system time apart: unlike
requests/s, it barely moves when another process shares the machine. Targets:
``compiled`` (this checkout, with its mypyc build), ``pure`` (a copy of ``src/`` without
the compiled modules), ``uvicorn`` (httptools + uvloop), ``sketch`` (``bench/sketch.py``,
the issue's hot-path-only sketch), or a path to another ``src/`` directory.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> tuple[float, float]:
    """User and system CPU time of process ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / CLOCK_TICKS, int(fields[12]) / CLOCK_TICKS


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def pure_copy(directory: Path) -> Path:
    """``src/`` without extension modules, for the pure-Python build."""
    target = directory / "src"
    shutil.copytree(ROOT / "src", target, ignore=shutil.ignore_patterns("*.so", "__pycache__"))
    return target


def command(
    target: str, src: Path | None, port: int, python: str, app: str
) -> tuple[list[str], str]:
    if target == "uvicorn":
        args = ["-m", "uvicorn", app, "--port", str(port), "--http", "httptools"]
        args += ["--loop", "uvloop", "--no-access-log", "--log-level", "warning"]
        return [python, *args], str(ROOT)
    if target == "sketch":
        return [python, str(ROOT / "bench" / "sketch.py"), app, "--port", str(port)], str(ROOT)
    args = ["-m", "bascule", app, "--port", str(port), "--no-access-log"]
    return [python, *args, "--log-level", "warning"], f"{src}:{ROOT}"


def measure(
    target: str,
    src: Path | None,
    python: str,
    duration: int,
    app: str,
    path: str,
    connections: int = 64,
) -> tuple[float, float, float]:
    """(µs of server user CPU per request, of system CPU per request, requests/s) of one run."""
    port = free_port()
    argv, pythonpath = command(target, src, port, python, app)
    env = {**os.environ, "PYTHONPATH": pythonpath}
    server = subprocess.Popen(["taskset", "-c", "0", *argv], env=env, cwd=ROOT)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        url = f"http://127.0.0.1:{port}{path}"
        wrk = ["taskset", "-c", "1", "wrk", "-t1", f"-c{connections}"]
        subprocess.run([*wrk, "-d1s", url], capture_output=True, check=True, timeout=30)
        before = cpu_seconds(server.pid)
        out = subprocess.run(
            [*wrk, f"-d{duration}s", url], capture_output=True, text=True, check=True, timeout=60
        ).stdout
        after = cpu_seconds(server.pid)
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    count = re.search(r"(\d+) requests in", out)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if count is None or rate is None:
        raise RuntimeError(f"unexpected wrk output: {out!r}")
    per_request = 1e6 / int(count.group(1))
    user, system = ((a - b) * per_request for a, b in zip(after, before, strict=True))
    return user, system, float(rate.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "targets", nargs="+", help="compiled, pure, uvicorn, sketch, or a src/ path"
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=5, help="measured seconds per run")
    parser.add_argument("--python", default=sys.executable, help="interpreter of the servers")
    parser.add_argument("--app", default="bench.app:app", help="the ASGI app every target serves")
    parser.add_argument("--path", default="/", help="the path wrk requests")
    parser.add_argument("--connections", type=int, default=64, help="wrk -c")
    args = parser.parse_args()
    results: dict[str, list[tuple[float, float, float]]] = {t: [] for t in args.targets}
    with tempfile.TemporaryDirectory() as tmp:
        sources: dict[str, Path | None] = {}
        for target in args.targets:
            if target == "compiled":
                sources[target] = ROOT / "src"
            elif target == "pure":
                sources[target] = pure_copy(Path(tmp))
            elif target in ("uvicorn", "sketch"):
                sources[target] = None
            else:
                sources[target] = Path(target)
        for round_ in range(args.rounds):  # interleaved: A B C, A B C, ...
            for target in args.targets:
                user, system, rate = measure(
                    target,
                    sources[target],
                    args.python,
                    args.duration,
                    args.app,
                    args.path,
                    args.connections,
                )
                results[target].append((user, system, rate))
                print(
                    f"round {round_ + 1} {target}: {user + system:.2f} µs/request"
                    f" ({user:.2f} user, {system:.2f} system), {rate:,.0f} req/s"
                )
    print("\n| target | CPU µs per request (median) | user | system | requests/s (median) |")
    print("|---|---:|---:|---:|---:|")
    for target, runs in results.items():
        cells = [
            median([user + system for user, system, _ in runs]),
            median([user for user, _, _ in runs]),
            median([system for _, system, _ in runs]),
        ]
        rate = median([rate for _, _, rate in runs])
        print(f"| {target} | " + " | ".join(f"{c:.2f}" for c in cells) + f" | {rate:,.0f} |")


def median(values: list[float]) -> float:
    """The middle value (the upper one of an even count), as the table always reported."""
    return sorted(values)[len(values) // 2]


if __name__ == "__main__":
    main()

"""Instructions, simulated cache misses and branch mispredictions per request, over sockets.

    python bench/cachesim.py [--requests N] [--app bench.app:app] [--h2] TARGET [TARGET ...]

Each TARGET (``compiled``, ``pure``, ``sketch``, ``uvicorn`` or a ``src/`` directory, as in
``bench/cpu_per_request.py``) serves on 127.0.0.1 under ``valgrind --tool=callgrind
--cache-sim=yes --branch-sim=yes`` and is loaded by ``h2load --h1 -c64 -m1`` twice, with
``N / 5`` and ``N`` requests (with ``--h2``: ``h2load -c16 -m10`` over cleartext HTTP/2, as
``python -m bench --scenarios h2`` loads it, for the targets that serve HTTP/2); the
difference of the two counts, divided by the difference of the requests, is the cost of
one request with the start-up cancelled out. Both runs of a target go side by side (the
machine needs two free cores).

``bench/instructions.py`` counts instructions in process, without sockets. This counts the
real server over real sockets, and the events that decide how long those instructions take:
L1 instruction and data cache misses, last-level misses and mispredicted branches, as
valgrind's model of the machine's caches gives them. ``CEst`` weighs them as KCachegrind's
cycle estimate does (``Ir + 10 x (L1 misses + mispredictions) + 100 x last-level misses``).
The counts repeat to within about 1% (``PYTHONHASHSEED=0``); a change of code moves the
simulated instruction cache misses by about as much, since functions land at new addresses.
Only user space is counted: the kernel's share (about 45% of a hello request under ``wrk``)
is not in it. Needs valgrind and h2load (``apt-get install valgrind nghttp2-client``); each
target takes about 2 minutes with the default ``--requests``.

A TARGET may carry bascule options after commas, to compare settings in one run:
``compiled compiled,--no-eager-tasks``. The server runs on this script's interpreter,
resolved past pyenv's shims, with this interpreter's ``site-packages`` on its path: run
the script with a virtual environment's ``python`` to measure that environment (another
Python version needs a ``src/`` built by it: ``python3.12 setup.py build_ext --inplace`` in
a copy of the checkout).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import re
import signal
import site
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from cpu_per_request import ROOT, command, free_port, pure_copy

#: The events callgrind reports with --cache-sim=yes --branch-sim=yes, in its order.
EVENTS: tuple[str, ...] = ("Ir", "Dr", "Dw", "I1mr", "D1mr", "D1mw", "ILmr", "DLmr", "DLmw")
EVENTS += ("Bc", "Bcm", "Bi", "Bim")
SHOWN = ("Ir", "I1mr", "D1mr", "D1mw", "Bcm", "Bim")
#: Bound on one run under valgrind (20,000 requests take about 90 s on the project's machine).
RUN_TIMEOUT_S = 900.0


def per_request(small: Sequence[int], large: Sequence[int], requests: int) -> dict[str, float]:
    """Each event's count per request: the two runs' difference over ``requests``."""
    if len(small) != len(EVENTS) or len(large) != len(EVENTS):
        raise ValueError(f"expected {len(EVENTS)} counts, got {len(small)} and {len(large)}")
    return {name: (b - a) / requests for name, a, b in zip(EVENTS, small, large, strict=True)}


def cycle_estimate(counts: dict[str, float]) -> float:
    """KCachegrind's cycle estimate: 10 cycles per L1 miss and misprediction, 100 per LL miss."""
    l1 = counts["I1mr"] + counts["D1mr"] + counts["D1mw"]
    last_level = counts["ILmr"] + counts["DLmr"] + counts["DLmw"]
    return counts["Ir"] + 10 * (l1 + counts["Bcm"] + counts["Bim"]) + 100 * last_level


def split_target(target: str) -> tuple[str, list[str]]:
    """``compiled,--no-eager-tasks`` -> ("compiled", ["--no-eager-tasks"]): bascule's options."""
    name, *options = target.split(",")
    if options and name in ("sketch", "uvicorn"):
        raise ValueError(f"{target}: options after a comma are bascule's, not {name}'s")
    return name, options


def collected(stderr: str) -> list[int]:
    """The totals callgrind prints at exit (``==PID== Collected : Ir Dr ...``)."""
    match = re.search(r"Collected : ([\d ]+)", stderr)
    if match is None:
        raise RuntimeError(f"no totals in callgrind's output:\n{stderr[-2000:]}")
    return [int(n) for n in match.group(1).split()]


def load_command(requests: int, url: str, h2: bool = False) -> list[str]:
    """The h2load command line of one run: HTTP/1.1 over 64 connections, or h2c 16 x 10."""
    if h2:
        return ["h2load", "-n", str(requests), "-c", "16", "-m", "10", url]
    return ["h2load", "--h1", "-n", str(requests), "-c", "64", "-m", "1", url]


def run(
    target: str, src: Path | None, requests: int, app: str, python: str, h2: bool = False
) -> list[int]:
    """Callgrind's totals for one server process that answered ``requests`` requests."""
    port = free_port()
    name, options = split_target(target)
    argv, pythonpath = command(name, src, port, python, app)
    argv += options
    # The interpreter is resolved past a virtual environment too: keep its packages.
    pythonpath = os.pathsep.join([pythonpath, *site.getsitepackages()])
    env = {**os.environ, "PYTHONPATH": pythonpath, "PYTHONHASHSEED": "0"}
    valgrind = ["valgrind", "--tool=callgrind", "--cache-sim=yes", "--branch-sim=yes"]
    valgrind.append("--callgrind-out-file=/dev/null")
    # stderr to a file: a pipe read only at the end could fill up and stall the server.
    with tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace") as log:
        server = subprocess.Popen(
            [*valgrind, *argv], env=env, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=log, stderr=log
        )
        try:
            wait_listening(server, port, log, target)
            out = subprocess.run(
                load_command(requests, f"http://127.0.0.1:{port}/", h2),
                capture_output=True,
                text=True,
                check=True,
                timeout=RUN_TIMEOUT_S,
            ).stdout
            if f"{requests} succeeded" not in out:
                raise RuntimeError(f"h2load did not complete every request:\n{out}")
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=RUN_TIMEOUT_S)
            log.seek(0)
            return collected(log.read())
        finally:
            if server.poll() is None:
                server.kill()
                server.wait()


def wait_listening(server: subprocess.Popen[bytes], port: int, log: IO[str], target: str) -> None:
    """Return once ``port`` accepts connections; raise with the server's output if it won't."""
    deadline = time.monotonic() + 120  # start-up is some 50 times slower under valgrind
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return
        except OSError:
            if time.monotonic() > deadline or server.poll() is not None:
                log.seek(0)
                raise RuntimeError(f"{target} did not start:\n{log.read()[-2000:]}") from None
            time.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("targets", nargs="+", help="compiled, pure, sketch, uvicorn or a src/")
    parser.add_argument("--requests", type=int, default=20_000, help="of the larger run")
    parser.add_argument("--app", default="bench.app:app", help="module:attribute")
    parser.add_argument("--h2", action="store_true", help="h2load -c16 -m10 over h2c")
    args = parser.parse_args()
    try:
        names = {split_target(target)[0] for target in args.targets}
    except ValueError as exc:
        parser.error(str(exc))
    if args.h2 and {"sketch", "uvicorn"} & names:
        parser.error("--h2: the sketch and uvicorn (httptools) do not serve HTTP/2")
    if args.requests < 5 * 64:
        # h2load wants at least as many requests as connections (64), in the smaller run too.
        parser.error("--requests must be at least 320 (the smaller run has a fifth of them)")
    python = os.path.realpath(sys.executable)  # valgrind does not follow pyenv's shell shims
    small_n = args.requests // 5
    rows: list[tuple[str, dict[str, float]]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for target in args.targets:
            name = split_target(target)[0]
            src: Path | None = {"compiled": ROOT / "src", "sketch": None, "uvicorn": None}.get(
                name, Path(name)
            )
            if name == "pure":
                src = pure_copy(Path(tempfile.mkdtemp(dir=tmp)))
            with concurrent.futures.ThreadPoolExecutor(2) as pool:
                small = pool.submit(run, target, src, small_n, args.app, python, args.h2)
                large = pool.submit(run, target, src, args.requests, args.app, python, args.h2)
                counts = per_request(small.result(), large.result(), args.requests - small_n)
            rows.append((target, counts))
            print(f"{target}: {cycle_estimate(counts):,.0f} CEst per request", file=sys.stderr)
    first = cycle_estimate(rows[0][1])
    protocol = "h2c, -c16 -m10" if args.h2 else "HTTP/1.1, -c64"
    print(
        f"| target ({args.app}, {protocol}, per request) | "
        + " | ".join(SHOWN)
        + " | CEst | ratio |"
    )
    print("|---|" + "---:|" * (len(SHOWN) + 2))
    for target, counts in rows:
        cells = " | ".join(f"{counts[name]:,.0f}" for name in SHOWN)
        estimate = cycle_estimate(counts)
        print(f"| {target} | {cells} | {estimate:,.0f} | {estimate / first:.3f} |")


if __name__ == "__main__":
    main()

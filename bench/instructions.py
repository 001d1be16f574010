"""Instructions per request under callgrind: a deterministic A/B of builds of bascule.

    python bench/instructions.py [--h2] [--app bench.app:app] SRC [SRC ...]

Each SRC is a ``src/`` directory (this checkout's, or a ``git worktree`` of another commit
built with ``python setup.py build_ext --inplace``). For each, ``bench/inprocess.py`` (or
``bench/inprocess_h2.py`` with ``--h2``) runs twice under ``valgrind --tool=callgrind``,
with ``SMALL`` and ``LARGE`` requests; the difference of the two instruction counts,
divided by the difference of the request counts, is the cost of one request with the
start-up cancelled out. On a shared machine, time per request moves by 10% from run to
run; this count moves by about 0.5% (``PYTHONHASHSEED=0``), so changes of 1-2% can be
told apart. It counts instructions, not cycles: cache misses and branch mispredictions
are not in it, so a change is confirmed with ``bench/cpu_per_request.py`` and ``wrk``.

With ``--h2``, the count includes the test client's encoding of the requests (the ``h2``
package), the same for every SRC: compare SRCs with each other, not with HTTP/1.1.
Needs valgrind (``apt-get install valgrind``). Each SRC takes about 40 s.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SMALL = 6_400
LARGE = 32_000
#: Bound on one callgrind run (a run takes about 20 s on the project's machine).
RUN_TIMEOUT_S = 600.0


def instructions(src: Path, requests: int, script: str, app: str) -> int:
    """Instructions callgrind counts for one run of ``script`` on ``src``."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        sys.exit("valgrind is not installed (apt-get install valgrind)")
    env = {**os.environ, "PYTHONPATH": str(src), "PYTHONHASHSEED": "0"}
    argv = [
        valgrind,
        "--tool=callgrind",
        "--callgrind-out-file=/dev/null",
        # The interpreter itself, not a wrapper script (pyenv's shims are shell scripts,
        # and valgrind does not follow into the program they exec).
        os.path.realpath(sys.executable),
        str(ROOT / "bench" / script),
        "--repeat",
        "1",
        "--requests",
        str(requests),
        "--app",
        app,
    ]
    done = subprocess.run(
        argv, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_S, check=False
    )
    match = re.search(r"Collected : (\d+)", done.stderr)
    if done.returncode != 0 or match is None:
        sys.exit(f"callgrind run failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return int(match.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("sources", nargs="+", type=Path, help="src/ directories to compare")
    parser.add_argument("--h2", action="store_true", help="HTTP/2 (bench/inprocess_h2.py)")
    parser.add_argument("--app", default="bench.app:app", help="module:attribute")
    args = parser.parse_args()
    script = "inprocess_h2.py" if args.h2 else "inprocess.py"
    rows = []
    for given in args.sources:
        src = given.resolve()
        small = instructions(src, SMALL, script, args.app)
        large = instructions(src, LARGE, script, args.app)
        rows.append((str(src), (large - small) / (LARGE - SMALL)))
    first = rows[0][1]
    print(f"| src ({script}, {args.app}) | instructions per request | ratio to the first |")
    print("|---|---:|---:|")
    for src, per in rows:
        print(f"| {src} | {per:,.0f} | {per / first:.3f} |")


if __name__ == "__main__":
    main()

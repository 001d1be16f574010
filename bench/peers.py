"""The benchmark's own virtual environment, ``bench/.venv``, holding the peer servers.

``python -m bench --setup`` creates it (from the interpreter running the command) and
installs bascule (editable, from this checkout) and every peer server and framework the
scenarios use. Afterwards ``python -m bench`` re-executes itself with that environment's
Python, so every server, the load helpers written in Python and the version lines of the
report come from one place; ``--no-venv`` keeps the current interpreter. Without the
environment, the suite runs with whatever is installed and marks the missing servers
``unavailable``.

Stdlib only: this module runs before anything else is imported.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
VENV_DIR = BENCH_DIR / ".venv"
VENV_PYTHON = VENV_DIR / "bin" / "python"
# Set in the re-executed process so it never re-executes again.
REEXEC_MARK = "BASCULE_BENCH_IN_VENV"

# Everything the scenarios can start, besides bascule itself. zttp is the engine of
# uvicorn's `--http zttp --http2` (the version bench/h2_engines.py is typed against).
PEER_PACKAGES = (
    "uvicorn",
    "httptools",
    "uvloop",
    "websockets",
    "zttp==0.0.35",
    "hypercorn",
    "granian",
    "daphne",
    "starlette",
    "fastapi",
)
SETUP_TIMEOUT_S = 900.0


def in_venv() -> bool:
    """True if this interpreter is the one of ``bench/.venv``."""
    return Path(sys.prefix).resolve() == VENV_DIR.resolve()


def setup() -> int:
    """Create ``bench/.venv`` (if needed) and install bascule and the peers into it."""
    base = getattr(sys, "_base_executable", sys.executable) if in_venv() else sys.executable
    steps: list[list[str]] = []
    if not VENV_PYTHON.exists():
        steps.append([base, "-m", "venv", str(VENV_DIR)])
    steps.append([str(VENV_PYTHON), "-m", "pip", "install", "--upgrade", "pip"])
    steps.append([str(VENV_PYTHON), "-m", "pip", "install", "-e", str(REPO_ROOT), *PEER_PACKAGES])
    for argv in steps:
        print("+ " + " ".join(argv), file=sys.stderr, flush=True)
        try:
            done = subprocess.run(
                argv, stdin=subprocess.DEVNULL, timeout=SETUP_TIMEOUT_S, check=False
            )
        except subprocess.TimeoutExpired:
            print(f"error: step timed out after {SETUP_TIMEOUT_S:.0f} s", file=sys.stderr)
            return 1
        except OSError as exc:
            print(f"error: could not run {argv[0]}: {exc}", file=sys.stderr)
            return 1
        if done.returncode != 0:
            print(f"error: step exited with code {done.returncode}", file=sys.stderr)
            return done.returncode
    print(f"benchmark environment ready: {VENV_DIR}", file=sys.stderr)
    return 0


def maybe_reexec(argv: Sequence[str]) -> None:
    """Replace this process by ``bench/.venv/bin/python -m bench ARGV`` when that applies.

    It applies when the environment exists, this is not already its interpreter, this
    process was not itself re-executed, and neither ``--no-venv`` nor ``--setup`` is given.
    Returns only when it does not apply.
    """
    if "--no-venv" in argv or "--setup" in argv or os.environ.get(REEXEC_MARK):
        return
    if in_venv() or not VENV_PYTHON.exists():
        return
    env = dict(os.environ, **{REEXEC_MARK: "1"})
    print(f"using {VENV_PYTHON} (--no-venv to skip)", file=sys.stderr, flush=True)
    script = str(BENCH_DIR / "__main__.py")
    os.execve(str(VENV_PYTHON), [str(VENV_PYTHON), script, *argv], env)

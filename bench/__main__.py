"""``python -m bench`` (from the repository root): the benchmark suite of issue 7.

Re-executes itself with ``bench/.venv``'s Python when that environment exists (made by
``python -m bench --setup``; ``--no-venv`` skips it), then runs ``suite.main``. The
sibling modules are imported as top-level modules, as the other bench scripts do, so
this directory is put first on ``sys.path``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import peers  # (needs the path above)

peers.maybe_reexec(sys.argv[1:])

import suite  # noqa: E402  (imported once the interpreter is settled)

sys.exit(suite.main(sys.argv[1:]))

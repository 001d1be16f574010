"""Build bascule, compiling its hot path with mypyc when it can.

The modules below are plain, strictly typed Python. When mypyc (part of mypy)
and a C compiler are available, they are compiled to C extensions, which the
interpreter then imports instead of the ``.py`` files: same code, same
behaviour, about a third less CPU per request. When they are not (no compiler,
an interpreter other than CPython, or ``BASCULE_PURE_PYTHON=1``), nothing is
compiled and bascule runs as pure Python. ``bascule --version`` tells which.
"""

from __future__ import annotations

import os
import platform
import sys
import tempfile
from typing import Any

from setuptools import setup

#: The modules on the path of every request (docs/performance.md).
COMPILED = [
    "src/bascule/proto/events.py",
    "src/bascule/proto/headers.py",
    "src/bascule/proto/limits.py",
    "src/bascule/proto/http1/state.py",
    "src/bascule/proto/http1/writer.py",
    "src/bascule/proto/http1/reader.py",
    "src/bascule/proto/http1/connection.py",
    "src/bascule/asgi/http.py",
    "src/bascule/asgi/scope.py",
    "src/bascule/aio/app.py",
    "src/bascule/aio/transport.py",
    "src/bascule/logs.py",
    "src/bascule/proto/ws/connection.py",
    "src/bascule/proto/ws/deflate.py",
    "src/bascule/proto/ws/handshake.py",
    "src/bascule/asgi/websocket.py",
    "src/bascule/aio/websocket.py",
    "src/bascule/proto/http2/fields.py",
    "src/bascule/proto/http2/huffman.py",
    "src/bascule/proto/http2/hpack_codec.py",
    "src/bascule/proto/http2/flow.py",
    "src/bascule/proto/http2/connection.py",
    "src/bascule/aio/h2.py",
    "src/bascule/aio/state.py",
]

#: The type checking mypyc does to compile. Third-party packages are opaque
#: (Any): their stubs do not bind the compiled code (httptools' stubs, for
#: one, say ``int`` where the parser returns None), and the build environment
#: need not have them installed.
MYPY_CONFIG = """\
[mypy]
ignore_missing_imports = True
follow_imports = silent

[mypy-httptools.*,uvloop.*,h2.*,hpack.*,hyperframe.*,websockets.*,watchfiles.*,gunicorn.*]
follow_imports = skip
"""


def ext_modules() -> list[Any]:
    if os.environ.get("BASCULE_PURE_PYTHON", "") not in ("", "0"):
        return []
    if platform.python_implementation() != "CPython":
        return []
    try:
        from mypyc.build import mypycify  # noqa: PLC0415 (optional at build time)
    except ImportError:
        print("bascule: mypyc not available, installing pure Python", file=sys.stderr)
        return []
    # The build environment may lack the runtime dependencies' type
    # information: their types are Any here, which compiles to the same
    # generic object operations. The strict checks run in the test suite.
    with tempfile.TemporaryDirectory(prefix="bascule-mypyc-") as directory:
        config = os.path.join(directory, "mypy.ini")
        with open(config, "w", encoding="ascii") as f:
            f.write(MYPY_CONFIG)
        # mypyc type-checks and writes the C sources here; the compiler runs later.
        extensions: list[Any] = mypycify(["--config-file", config, *COMPILED], opt_level="3")
    for extension in extensions:
        extension.optional = True  # a failed compile leaves the pure-Python module in use
    return extensions


setup(ext_modules=ext_modules())

"""Start a framework app under the real ``bascule`` command; shared checks.

``serve()`` runs ``python -m bascule tests.frameworks.apps.<module>:<attr>``
from the repository root on a free port and stops it by PID.  When the
server has stopped, its stderr must hold no traceback: a framework failing
behind a response the client could not see still fails the tests.
"""

from __future__ import annotations

import contextlib
import hashlib
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import websockets.sync.client

from tests.e2e.process import BasculeProcess, start_bascule

REPO_ROOT = Path(__file__).resolve().parents[2]
APPS_PACKAGE = "tests.frameworks.apps"

#: Every HTTP test runs over both: HTTP/1.1, and HTTP/2 over cleartext with prior knowledge.
PROTOCOLS = ["http1", "http2"]
HTTP_TIMEOUT = 10.0
WS_TIMEOUT = 5.0
#: Files uploaded in multipart tests: larger than HTTP/2's 64 KiB default window.
UPLOAD_SIZE = 300 * 1024


@contextlib.contextmanager
def serve(
    app: str, *options: str, env: Mapping[str, str] | None = None
) -> Iterator[BasculeProcess]:
    """bascule serving ``tests.frameworks.apps.<app>`` on a free port; its log is checked after."""
    args = [f"{APPS_PACKAGE}.{app}", "--app-dir", str(REPO_ROOT), "--port", "0", *options]
    with start_bascule(args, REPO_ROOT, env=env) as server:
        yield server
    assert "Traceback" not in server.stderr, server.stderr


def http_client(server: BasculeProcess, protocol: str, **kwargs: Any) -> httpx.Client:
    """An httpx client for ``server`` speaking ``protocol`` ("http1" or "http2", h2c prior knowledge).

    Every response is checked to have come over that protocol.
    """
    http2 = protocol == "http2"
    expected = "HTTP/2" if http2 else "HTTP/1.1"

    def check_version(response: httpx.Response) -> None:
        assert response.http_version == expected, (response.http_version, response.url)

    return httpx.Client(
        base_url=server.url,
        http1=not http2,
        http2=http2,
        timeout=HTTP_TIMEOUT,
        event_hooks={"response": [check_version]},
        **kwargs,
    )


def ws_url(server: BasculeProcess, path: str) -> str:
    """The ``ws://`` URL of ``path`` on ``server``."""
    return f"ws://127.0.0.1:{server.port}{path}"


def ws_connect(
    server: BasculeProcess, path: str, **kwargs: Any
) -> websockets.sync.client.ClientConnection:
    """A WebSocket client (HTTP/1.1 upgrade) connected to ``path`` on ``server``."""
    connection: websockets.sync.client.ClientConnection = websockets.sync.client.connect(
        ws_url(server, path), open_timeout=WS_TIMEOUT, close_timeout=WS_TIMEOUT, **kwargs
    )
    return connection


def token() -> str:
    """A fresh name for a gate or a background-task key."""
    return uuid.uuid4().hex


def upload_file(size: int = UPLOAD_SIZE) -> bytes:
    """``size`` bytes of a non-repeating-looking pattern (a misplaced chunk would show)."""
    block = bytes(range(251))  # prime length: never aligned with chunk or frame boundaries
    return (block * (size // len(block) + 1))[:size]


def sha256(data: bytes) -> str:
    """Hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def assert_streams(
    client: httpx.Client, stream_path: str, release_path: str, tail: bytes = b""
) -> None:
    """GET ``stream_path`` and read its first chunk *before* releasing the rest.

    The endpoint at ``stream_path`` sends ``first\\n``, waits for its gate and
    then sends ``released\\n`` (or ``timed out\\n`` after a few seconds), then
    ``tail``.  The release goes through the same client: a second HTTP/1.1
    connection, or a second stream on the same HTTP/2 connection.
    """
    with client.stream("GET", stream_path) as response:
        assert response.status_code == 200
        chunks = response.iter_raw()
        first = b""
        while b"\n" not in first:  # bounded: the read timeout ends a stalled stream
            first += next(chunks)
        assert first == b"first\n", f"held back until the gate opened: {first!r}"
        released = client.post(release_path)
        assert released.status_code == 200, released.text
        rest = b"".join(chunks)
    assert first + rest == b"first\nreleased\n" + tail

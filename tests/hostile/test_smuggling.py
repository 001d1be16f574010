"""The request-smuggling corpus (tests/hostile/corpus.py) against a live bascule, raw sockets.

Each case is sent on its own connection; the recording app says which requests reached
it.  The invariant: never two requests where one was sent, i.e. the smuggled request is
never seen unless the framing unambiguously made it a second request.  Every rejection
is an error status, the connection closed, and a log line naming the problem.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.conftest import LiveServer
from tests.hostile.corpus import CASES, SMUGGLED_PATH, Case
from tests.hostile.support import Recorder, exchange, statuses

#: Keep-alive connections of accepted cases end quickly; nothing waits long.
OPTIONS = {
    "http2": False,
    "timeout_keep_alive": 0.1,
    "timeout_request_header": 1.0,
    "timeout_request_body": 2.0,
}


@dataclass
class Target:
    server: LiveServer
    app: Recorder


@pytest.fixture(scope="module")
def target() -> Iterator[Target]:
    app = Recorder()
    server = LiveServer(app, **OPTIONS).start()
    try:
        yield Target(server, app)
    finally:
        server.stop()


def test_corpus_ids_are_unique() -> None:
    assert len({case.id for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", [case.param() for case in CASES])
def test_smuggling_case(target: Target, case: Case, caplog: pytest.LogCaptureFixture) -> None:
    target.app.clear()
    with (
        caplog.at_level(logging.WARNING, logger="bascule.error"),
        socket.create_connection(("127.0.0.1", target.server.port), timeout=5) as sock,
    ):
        data = exchange(sock, case.raw)
    codes = statuses(data)
    seen = target.app.seen
    paths = [s.path for s in seen]
    assert codes, f"no response, only {data[:200]!r}"
    assert codes[0] == case.status, f"{case.why}: got {data[:300]!r}"
    if not case.pipelined:
        assert SMUGGLED_PATH not in paths, f"smuggled request reached the app: {paths}"
    if case.status < 400:
        assert len(seen) == case.seen, paths
        assert len(codes) == case.seen, codes
        assert seen[0].path == case.path
        assert all(s.complete for s in seen)
        if case.body is not None:
            assert seen[0].body == case.body
        if case.pipelined:
            assert paths == ["/", SMUGGLED_PATH]
    else:
        # Rejected: one error response, nothing after it, at most the head that
        # parsed reached the app, and a log line says what was wrong.
        assert codes == [case.status], data[:300]
        assert len(seen) <= case.seen, paths
        assert all(path == "/" for path in paths), paths
        messages = [r.getMessage() for r in caplog.records if r.name == "bascule.error"]
        assert any(f"({case.status})" in m and "127.0.0.1" in m for m in messages), messages


def test_http09_request_is_answered_promptly(target: Target) -> None:
    """``GET /`` + CRLF is a whole HTTP/0.9 request; no HTTP/1.x head can follow it."""
    target.app.clear()
    with socket.create_connection(("127.0.0.1", target.server.port), timeout=5) as sock:
        start = time.monotonic()
        data = exchange(sock, b"GET /\r\n")
        elapsed = time.monotonic() - start
    # Never a hang: at worst --timeout-request-header (1 s here) answers it.
    assert statuses(data)[:1] in ([400], [408], [505]), data
    assert elapsed < OPTIONS["timeout_request_header"] + 2
    assert target.app.paths() == []


def test_http09_request_is_rejected_at_once(target: Target) -> None:
    with socket.create_connection(("127.0.0.1", target.server.port), timeout=5) as sock:
        start = time.monotonic()
        data = exchange(sock, b"GET /\r\n")
        elapsed = time.monotonic() - start
    assert statuses(data)[:1] in ([400], [505]), data
    assert elapsed < 1.0

"""WSGI app errors: 500 + a log line naming the problem; the thread pool's bound."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from bascule.wsgi import WSGIAdapter
from tests.conftest import LiveServer, recv_until_closed

Live = Callable[..., LiveServer]
StartResponse = Callable[..., Any]


def _get(server: LiveServer, path: str, caplog: pytest.LogCaptureFixture) -> httpx.Response:
    with caplog.at_level(logging.INFO, logger="bascule.error"):
        return httpx.get(server.url + path, timeout=5)


def _errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_exception_before_start_response_is_500_with_traceback(
    live: Live, caplog: pytest.LogCaptureFixture
) -> None:
    def app(environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        raise RuntimeError("database is down")

    server = live(WSGIAdapter(app))
    response = _get(server, "/fail?x=1", caplog)
    assert response.status_code == 500
    assert response.text == "Internal Server Error\n"
    (record,) = _errors(caplog)
    assert record.getMessage() == 'exception in WSGI app for "GET /fail?x=1"'
    assert record.exc_info is not None
    assert str(record.exc_info[1]) == "database is down"
    # The server keeps serving.
    assert _get(server, "/again", caplog).status_code == 500


def test_exception_after_body_started_cuts_the_connection(
    live: Live, caplog: pytest.LogCaptureFixture
) -> None:
    closed = threading.Event()

    class Body:
        def __iter__(self) -> Iterator[bytes]:
            yield b"part one;"
            raise OSError("disk failed mid-response")

        def close(self) -> None:
            closed.set()

    def app(environ: dict[str, Any], start_response: StartResponse) -> Body:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Body()

    server = live(WSGIAdapter(app))
    with caplog.at_level(logging.INFO, logger="bascule.error"), server.connect() as sock:
        sock.sendall(b"GET /mid HTTP/1.1\r\nHost: x\r\n\r\n")
        data = recv_until_closed(sock)
    assert data.startswith(b"HTTP/1.1 200 ")
    assert b"part one;" in data
    assert not data.endswith(b"0\r\n\r\n")
    assert closed.is_set()
    messages = [r.getMessage() for r in _errors(caplog)]
    assert messages[0] == (
        'exception in WSGI app for "GET /mid" after the response started (connection closed)'
    )


BAD_RESPONSES: dict[str, tuple[Any, Any, str]] = {
    "/status-no-code": ("OK", [], "invalid status 'OK'"),
    "/status-not-str": (200, [], "status must be a str like '200 OK', got 200"),
    "/status-1xx": ("101 Switching Protocols", [], "invalid status '101 Switching Protocols'"),
    "/header-not-str": ("200 OK", [("X-Count", 3)], "value of header 'X-Count' must be a str"),
    "/header-bytes": ("200 OK", [(b"X-A", "1")], "header name must be a str, got b'X-A'"),
    "/header-crlf": (
        "200 OK",
        [("X-A", "1\r\nSet-Cookie: evil=1")],
        "value of header 'X-A' has a character not allowed",
    ),
    "/header-name": ("200 OK", [("Bad Name", "1")], "invalid header name 'Bad Name'"),
    "/hop-by-hop": (
        "200 OK",
        [("Connection", "close")],
        "hop-by-hop header 'Connection' is not allowed from a WSGI app",
    ),
    "/transfer-encoding": (
        "200 OK",
        [("Transfer-Encoding", "chunked")],
        "hop-by-hop header 'Transfer-Encoding'",
    ),
    "/headers-dict": ("200 OK", {"X-A": "1"}, "response_headers must be a list"),
}


@pytest.mark.parametrize("path", sorted(BAD_RESPONSES))
def test_invalid_status_or_headers_are_500_with_a_clear_line(
    live: Live, caplog: pytest.LogCaptureFixture, path: str
) -> None:
    def app(environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        status, headers, _ = BAD_RESPONSES[environ["PATH_INFO"]]
        start_response(status, headers)
        return [b"should not be sent"]

    server = live(WSGIAdapter(app))
    response = _get(server, path, caplog)
    assert response.status_code == 500
    assert b"should not be sent" not in response.content
    (record,) = _errors(caplog)
    message = record.getMessage()
    assert message.startswith(f'invalid response from WSGI app for "GET {path}": ')
    assert BAD_RESPONSES[path][2] in message


def misuse_app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[Any]:
    path = environ["PATH_INFO"]
    if path == "/twice":
        start_response("200 OK", [])
        start_response("201 Created", [])
    elif path == "/no-start":
        return [b"body"]
    elif path == "/str-body":
        start_response("200 OK", [])
        return ["text is not bytes"]
    elif path == "/write-first":
        environ["wsgi.errors"].write("about to misuse write\n")
        start_response.__self__.write(b"x")  # type: ignore[attr-defined]
    return [b"ok"]


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/twice", "start_response() called a second time without exc_info"),
        ("/no-start", "the app returned without calling start_response()"),
        ("/str-body", "the app's body must yield bytes, got str"),
        ("/write-first", "write() called before start_response()"),
    ],
)
def test_protocol_misuse_is_500_with_a_clear_line(
    live: Live, caplog: pytest.LogCaptureFixture, path: str, expected: str
) -> None:
    server = live(WSGIAdapter(misuse_app))
    response = _get(server, path, caplog)
    assert response.status_code == 500
    messages = [r.getMessage() for r in _errors(caplog)]
    assert messages[-1] == f'invalid response from WSGI app for "GET {path}": {expected}'
    if path == "/write-first":  # wsgi.errors writes reach the error log
        assert messages[0] == "about to misuse write"


def test_close_raising_is_logged_and_response_kept(
    live: Live, caplog: pytest.LogCaptureFixture
) -> None:
    class Body(list[bytes]):
        def close(self) -> None:
            raise ValueError("close failed")

    def app(environ: dict[str, Any], start_response: StartResponse) -> Body:
        start_response("200 OK", [])
        return Body([b"fine"])

    server = live(WSGIAdapter(app))
    response = _get(server, "/c", caplog)
    assert response.text == "fine"
    (record,) = _errors(caplog)
    assert record.getMessage() == 'exception in close() of the WSGI app\'s response for "GET /c"'


def test_pool_bound_requests_wait_not_dropped(live: Live) -> None:
    """N+2 blocking requests on N threads: all answered, never more than N at once."""
    workers = 2
    lock = threading.Lock()
    running = 0
    peak = 0

    def app(environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.25)
        with lock:
            running -= 1
        start_response("200 OK", [])
        return [threading.current_thread().name.encode()]

    server = live(WSGIAdapter(app, max_workers=workers))
    count = workers + 2
    started = time.monotonic()
    with ThreadPoolExecutor(count) as pool:
        responses = list(
            pool.map(lambda i: httpx.get(f"{server.url}/{i}", timeout=10), range(count))
        )
    elapsed = time.monotonic() - started
    assert [r.status_code for r in responses] == [200] * count
    assert peak == workers
    assert len({r.text for r in responses}) == workers
    assert all(r.text.startswith("bascule-wsgi") for r in responses)
    assert elapsed >= 0.5  # two waves of 0.25 s

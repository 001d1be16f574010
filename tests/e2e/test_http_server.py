"""HTTP/1.1 over real sockets: httpx and raw sockets against a live bascule server."""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import socket
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from bascule.errors import ClientDisconnected
from tests.conftest import LiveServer, recv_response, recv_until_closed
from tests.support.lifespan import install_task_factory

Live = Callable[..., LiveServer]
Scope = dict[str, Any]


async def hello(scope: Scope, receive: Any, send: Any) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain"), (b"content-length", b"13")],
        }
    )
    await send({"type": "http.response.body", "body": b"Hello, world!"})


async def echo_scope(scope: Scope, receive: Any, send: Any) -> None:
    """Responds with the scope as JSON (bytes as latin-1 strings)."""
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break

    def plain(value: Any) -> Any:
        if isinstance(value, bytes):
            return value.decode("latin-1")
        if isinstance(value, list | tuple):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    data = json.dumps({**plain(dict(scope)), "body": body.decode("latin-1")}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": data})


def test_hello_keep_alive(live: Live) -> None:
    server = live(hello)
    with httpx.Client(base_url=server.url) as client:
        for _ in range(5):
            r = client.get("/")
            assert r.status_code == 200
            assert r.text == "Hello, world!"
            assert r.headers["server"] == "bascule"
            assert "date" in r.headers
            assert r.headers.get_list("content-length") == ["13"]
    # a single TCP connection served all five (keep-alive)
    with server.connect() as sock:
        for _ in range(3):
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert recv_response(sock).endswith(b"Hello, world!")


def test_scope_keys_and_values(live: Live) -> None:
    server = live(echo_scope, root_path="/api")
    r = httpx.get(server.url + "/caf%C3%A9/x%2Fy?a=1&b=%20", headers={"X-Thing": "v"})
    scope = r.json()
    assert set(scope) - {"body"} == {
        "type", "asgi", "http_version", "method", "scheme", "path", "raw_path",
        "query_string", "root_path", "headers", "client", "server", "state", "extensions",
    }  # fmt: skip
    assert scope["type"] == "http"
    assert scope["asgi"] == {"version": "3.0", "spec_version": "2.4"}
    assert scope["http_version"] == "1.1"
    assert scope["method"] == "GET"
    assert scope["scheme"] == "http"
    assert scope["path"] == "/api/café/x/y"
    assert scope["raw_path"] == "/api/caf%C3%A9/x%2Fy"
    assert scope["query_string"] == "a=1&b=%20"
    assert scope["root_path"] == "/api"
    assert ["x-thing", "v"] in scope["headers"]
    assert all(name == name.lower() for name, _ in scope["headers"])
    assert scope["client"][0] == "127.0.0.1"
    assert isinstance(scope["client"][1], int)
    assert scope["server"] == ["127.0.0.1", server.port]


def test_http10_close_delimited(live: Live) -> None:
    async def streaming(scope: Scope, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"part1-", "more_body": True})
        await send({"type": "http.response.body", "body": b"part2"})

    server = live(streaming)
    with server.connect() as sock:
        sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
        data = recv_until_closed(sock)
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK")
    assert b"connection: close" in head
    assert b"transfer-encoding" not in head
    assert body == b"part1-part2"
    # HTTP/1.1: chunked
    r = httpx.get(server.url)
    assert r.headers["transfer-encoding"] == "chunked"
    assert r.content == b"part1-part2"


def test_http10_keep_alive_header(live: Live) -> None:
    server = live(hello)
    with server.connect() as sock:
        sock.sendall(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        first = recv_response(sock)
        assert b"connection: keep-alive" in first.lower()
        sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
        second = recv_until_closed(sock)
    assert first.endswith(b"Hello, world!")
    assert second.endswith(b"Hello, world!")


WHO: contextvars.ContextVar[str] = contextvars.ContextVar("who")


def plain_factory(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
    return asyncio.Task(coro, loop=loop, **kwargs)


@pytest.mark.parametrize("factory", [False, True])
@pytest.mark.parametrize("http2", [False, True])
def test_context_variables_do_not_pass_to_the_next_request(
    live: Live, http2: bool, factory: bool
) -> None:
    """Each app task starts from the server's context. The next pipelined request's task
    is created inside the previous app's last send(): it must not inherit what that app
    set (a user, a tenant), nor on HTTP/2 what another stream's app set. A task factory
    the app installed is handed that context."""

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await install_task_factory(plain_factory, receive, send)
            return
        if scope["path"] == "/set":
            WHO.set("the first request's user")
            await asyncio.sleep(0.05)  # the response ends in a later step, inside the task
        body = WHO.get("unset").encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-length", b"%d" % len(body))],
            }
        )
        await send({"type": "http.response.body", "body": body})
        if scope["path"] == "/set":
            await asyncio.sleep(0.05)

    server = live(app, http2=http2, lifespan="on" if factory else "off")
    if http2:
        with httpx.Client(http1=False, http2=True, timeout=5) as client:
            assert client.get(server.url + "/set").text == "the first request's user"
            assert client.get(server.url + "/get").text == "unset"
        return
    with server.connect() as sock:
        sock.sendall(b"GET /set HTTP/1.1\r\nHost: x\r\n\r\nGET /get HTTP/1.1\r\nHost: x\r\n\r\n")
        received = b""
        while received.count(b"HTTP/1.1 200 OK") < 2 or not received.endswith((b"unset", b"user")):
            data = sock.recv(65536)
            assert data, received
            received += data
    bodies = [part.rsplit(b"\r\n\r\n", 1)[1] for part in received.split(b"HTTP/1.1 200 OK")[1:]]
    assert bodies == [b"the first request's user", b"unset"]


def test_pipelining_in_order(live: Live) -> None:
    async def delayed(scope: Scope, receive: Any, send: Any) -> None:
        # the first request is the slowest: answers must still come in order
        delay = {"/1": 0.2, "/2": 0.05, "/3": 0.0}[scope["path"]]
        await asyncio.sleep(delay)
        body = scope["path"].encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-length", b"%d" % len(body))],
            }
        )
        await send({"type": "http.response.body", "body": body})

    server = live(delayed)
    with server.connect() as sock:
        sock.sendall(
            b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /3 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        data = recv_until_closed(sock)
    bodies = [part.split(b"\r\n\r\n", 1)[1][:2] for part in data.split(b"HTTP/1.1 200 OK")[1:]]
    assert bodies == [b"/1", b"/2", b"/3"]


def test_connection_close_then_garbage_ignored(live: Live) -> None:
    server = live(hello)
    with server.connect() as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\nGARBAGE\r\n\r\n")
        data = recv_until_closed(sock)
    assert data.count(b"HTTP/1.1") == 1
    assert data.startswith(b"HTTP/1.1 200 OK")
    assert b"connection: close" in data
    assert data.endswith(b"Hello, world!")


MALFORMED = [
    (
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
        "Transfer-Encoding",
    ),
    (
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabc",
        "Content-Length",
    ),
    (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3x\r\n\r\nabc", "Content-Length"),
    (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "chunk size"),
    (b"GET / HTTP/1.1\r\nHost: x\r\nX: a\x01b\r\n\r\n", "header value"),
    (b"GET / HTTP/1.1\r\nHost: x\rX: b\r\n\r\n", "LF"),
    (b"GET / HTTP/1.1\r\n\r\n", "without a Host"),
    (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", "more than one Host"),
    (b"GET nothing HTTP/1.1\r\nHost: x\r\n\r\n", "url"),
    (b"GET * HTTP/1.1\r\nHost: x\r\n\r\n", "request target"),
]


@pytest.mark.parametrize(("request_bytes", "reason"), MALFORMED)
def test_malformed_request_400(
    live: Live, caplog: pytest.LogCaptureFixture, request_bytes: bytes, reason: str
) -> None:
    server = live(hello)
    with caplog.at_level(logging.WARNING, logger="bascule.error"), server.connect() as sock:
        sock.sendall(request_bytes)
        data = recv_until_closed(sock)
    assert data.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert b"connection: close" in data
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("bad request" in m and reason in m for m in warnings), warnings
    # other connections are unaffected
    assert httpx.get(server.url).status_code == 200


def test_absolute_form_target(live: Live) -> None:
    server = live(echo_scope)
    with server.connect() as sock:
        sock.sendall(
            b"GET http://example.com:81/x?y HTTP/1.1\r\nHost: other\r\nConnection: close\r\n\r\n"
        )
        data = recv_until_closed(sock)
    scope = json.loads(data.partition(b"\r\n\r\n")[2].split(b"\r\n")[1])
    assert scope["path"] == "/x"
    assert scope["query_string"] == "y"
    assert ["host", "example.com:81"] in scope["headers"]
    assert ["host", "other"] not in scope["headers"]


def test_header_too_large_431_and_uri_too_long_414(live: Live) -> None:
    server = live(hello, max_request_header_size=4096)
    with server.connect() as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 5000 + b"\r\n\r\n")
        assert recv_until_closed(sock).startswith(b"HTTP/1.1 431 ")
    with server.connect() as sock:
        sock.sendall(b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        assert recv_until_closed(sock).startswith(b"HTTP/1.1 414 ")
    r = httpx.get(server.url, headers={"X-Ok": "b" * 3000})
    assert r.status_code == 200


def test_limit_request_body_413(live: Live) -> None:
    server = live(echo_scope, limit_request_body=1000)
    assert httpx.post(server.url, content=b"x" * 1000).status_code == 200
    # declared up front
    assert httpx.post(server.url, content=b"x" * 1001).status_code == 413

    # streamed (chunked, no Content-Length)
    def gen() -> Any:
        for _ in range(5):
            yield b"y" * 400

    r = httpx.post(server.url, content=gen())
    assert r.status_code == 413
    assert r.headers["connection"] == "close"


def test_request_body_streamed_with_backpressure(live: Live) -> None:
    received: list[int] = []

    async def slow_reader(scope: Scope, receive: Any, send: Any) -> None:
        total = 0
        while True:
            message = await receive()
            total += len(message["body"])
            received.append(len(message["body"]))
            await asyncio.sleep(0.001)
            if not message["more_body"]:
                break
        body = str(total).encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    server = live(slow_reader)
    size = 8 * 1024 * 1024
    r = httpx.post(server.url, content=b"z" * size, timeout=30)
    assert r.text == str(size)
    assert len(received) > 1  # streamed in several http.request messages
    assert max(received) < size


def test_response_backpressure_send_blocks(live: Live) -> None:
    """A slow reader makes send() wait instead of buffering the whole response."""
    progress: list[float] = []
    chunk = b"x" * 65536

    async def big(scope: Scope, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for _ in range(256):  # 16 MiB
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
            progress.append(time.monotonic())
        await send({"type": "http.response.body", "body": b""})

    server = live(big)
    with server.connect() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        time.sleep(0.5)
        sent_while_stalled = len(progress)
        data = recv_until_closed(sock, limit=64 << 20)
    assert sent_while_stalled < 200  # the app was held back while nobody read
    assert len(progress) == 256
    assert data.endswith(b"0\r\n\r\n")


def test_expect_100_continue_only_on_receive(live: Live) -> None:
    async def reads(scope: Scope, receive: Any, send: Any) -> None:
        if scope["path"] == "/read":
            message = await receive()
            body = message["body"]
        else:
            body = b"not read"
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    server = live(reads)
    with server.connect() as sock:
        sock.sendall(
            b"POST /read HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
        )
        interim = sock.recv(100)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(b"hello")
        assert recv_response(sock).endswith(b"5\r\nhello\r\n0\r\n\r\n")
    with server.connect() as sock:
        sock.sendall(
            b"POST /skip HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
        )
        data = recv_until_closed(sock)
    assert b"100 Continue" not in data
    assert data.startswith(b"HTTP/1.1 200 OK")


def test_head_and_no_body_statuses(live: Live) -> None:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        status = int(scope["path"][1:])
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-length", b"4")],
            }
        )
        await send({"type": "http.response.body", "body": b"body"})

    server = live(app)
    with server.connect() as sock:
        sock.sendall(b"HEAD /200 HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.1)
        sock.sendall(
            b"GET /304 HTTP/1.1\r\nHost: x\r\n\r\nGET /204 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        data = recv_until_closed(sock)
    responses = data.split(b"HTTP/1.1 ")[1:]
    assert [r[:3] for r in responses] == [b"200", b"304", b"204"]
    assert all(r.endswith(b"\r\n\r\n") for r in responses)  # no body bytes anywhere
    assert b"content-length: 4" in responses[0]
    assert b"content-length" not in responses[2]


def test_disconnect_receive_and_send_raises(live: Live) -> None:
    outcome: dict[str, Any] = {}
    done = asyncio.Event()

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await receive()  # the (empty) body
        outcome["next"] = await receive()  # waits for the disconnect
        try:
            await send({"type": "http.response.start", "status": 200, "headers": []})
        except OSError as exc:
            outcome["error"] = exc
        done.set()

    server = live(app)
    with server.connect() as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.1)
    deadline = time.monotonic() + 5
    while "error" not in outcome and time.monotonic() < deadline:
        time.sleep(0.01)
    assert outcome["next"] == {"type": "http.disconnect"}
    assert isinstance(outcome["error"], ClientDisconnected)


def test_app_errors(live: Live, caplog: pytest.LogCaptureFixture) -> None:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        path = scope["path"]
        if path == "/raise":
            raise RuntimeError("boom")
        if path == "/str-header":
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"Content-Type", "text/plain")],
                }
            )
        if path == "/nothing":
            return
        if path == "/raise-after-start":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"partial", "more_body": True})
            raise RuntimeError("late boom")
        if path == "/short":
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-length", b"10")],
                }
            )
            await send({"type": "http.response.body", "body": b"abc"})
        if path == "/long":
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-length", b"2")],
                }
            )
            await send({"type": "http.response.body", "body": b"abc"})

    server = live(app)
    with caplog.at_level(logging.ERROR, logger="bascule.error"):
        with httpx.Client(base_url=server.url) as client:
            r = client.get("/raise")
            assert r.status_code == 500
            assert b"boom" not in r.content  # no traceback to the client
            assert client.get("/str-header").status_code == 500
            assert client.get("/nothing").status_code == 500
            for path in ("/raise-after-start", "/short", "/long"):
                with pytest.raises(httpx.RemoteProtocolError):
                    client.get(path)
        deadline = time.monotonic() + 5
        while len(caplog.records) < 6 and time.monotonic() < deadline:
            time.sleep(0.01)
    messages = [r.getMessage() for r in caplog.records]
    text = "\n".join(messages)
    assert "headers[0] value must be bytes, got str 'text/plain'" in text
    assert 'exception in ASGI app for "GET /raise"' in text
    assert "without sending a response" in text
    assert "shorter than its Content-Length" in text
    assert "longer than its Content-Length" in text
    tracebacks = [r for r in caplog.records if r.exc_info]
    assert any("boom" in str(r.exc_info[1]) for r in tracebacks if r.exc_info)


def test_limit_concurrency_503(live: Live) -> None:
    release = asyncio.Event()
    started = 0

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        nonlocal started
        started += 1
        if scope["path"] == "/block":
            for _ in range(200):
                if release.is_set():
                    break
                await asyncio.sleep(0.01)
        await hello(scope, receive, send)

    server = live(app, limit_concurrency=1)
    with server.connect() as sock:
        sock.sendall(b"GET /block HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.1)
        r = httpx.get(server.url)
        assert r.status_code == 503
        assert recv_response(sock).endswith(b"Hello, world!")


def test_keep_alive_timeout_closes_idle(live: Live) -> None:
    server = live(hello, timeout_keep_alive=0.3)
    with server.connect() as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        recv_response(sock)
        start = time.monotonic()
        assert sock.recv(10) == b""  # closed by the server
        assert 0.2 < time.monotonic() - start < 3


def test_request_header_timeout_slowloris(live: Live, caplog: pytest.LogCaptureFixture) -> None:
    server = live(hello, timeout_request_header=0.5, timeout_keep_alive=30)
    with caplog.at_level(logging.WARNING, logger="bascule.error"), server.connect() as sock:
        start = time.monotonic()
        sock.sendall(b"GET / HTTP/1.1\r\n")
        data = b""
        for _ in range(30):  # dribble a header byte every 0.1 s
            try:
                sock.sendall(b"X")
            except OSError:
                break
            time.sleep(0.1)
            if time.monotonic() - start > 3:
                break
        data = recv_until_closed(sock)
        elapsed = time.monotonic() - start
    assert data.startswith(b"HTTP/1.1 408 ")
    assert elapsed < 3
    assert any("not received within" in r.getMessage() for r in caplog.records)


def test_header_pairs_given_as_lists(live: Live) -> None:
    """The spec's headers are an iterable of two-item iterables: lists of lists are served
    as lists of tuples are (the compiled build reads pairs as tuples)."""

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        headers = [[b"content-type", b"text/plain"], [b"x-a", bytearray(b"1")], (b"x-b", b"2")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"listed"})

    server = live(app)
    r = httpx.get(server.url)
    assert (r.status_code, r.text) == (200, "listed")
    assert (r.headers["content-type"], r.headers["x-a"], r.headers["x-b"]) == (
        "text/plain",
        "1",
        "2",
    )


def test_default_and_extra_headers(live: Live) -> None:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        headers = [(b"server", b"mine")] if scope["path"] == "/own" else []
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b""})

    server = live(app, header=["X-Frame-Options:DENY"])
    r = httpx.get(server.url)
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["server"] == "bascule"
    r = httpx.get(server.url + "/own")
    assert r.headers.get_list("server") == ["mine"]
    bare = live(app, server_header=False, date_header=False)
    r = httpx.get(bare.url)
    assert "server" not in r.headers
    assert "date" not in r.headers


def test_asgi2_app(live: Live) -> None:
    from bascule.importer import asgi2_to_asgi3, is_asgi2

    class App:
        def __init__(self, scope: Scope) -> None:
            self.scope = scope

        async def __call__(self, receive: Any, send: Any) -> None:
            await hello(self.scope, receive, send)

    assert is_asgi2(App)
    server = live(asgi2_to_asgi3(App))
    assert httpx.get(server.url).text == "Hello, world!"


def test_access_log_line(live: Live, caplog: pytest.LogCaptureFixture) -> None:
    server = live(hello)
    with caplog.at_level(logging.INFO, logger="bascule.access"):
        httpx.get(server.url + "/p?q=1")
        deadline = time.monotonic() + 2
        while not caplog.records and time.monotonic() < deadline:
            time.sleep(0.01)
    line = caplog.records[0].getMessage()
    assert "127.0.0.1:" in line
    assert '"GET /p?q=1 HTTP/1.1" 200 13 ' in line
    assert line.endswith("ms")


@pytest.mark.parametrize("disabled", [0, 1])
def test_access_logger_disabled_flag_of_any_type(
    live: Live, caplog: pytest.LogCaptureFixture, disabled: int
) -> None:
    """logging keeps whatever a config sets as ``disabled`` (dictConfig with
    ``disable_existing_loggers: 0`` sets an int): it is read for its truth, never assumed a
    bool (a compiled bool read raised TypeError into every response)."""
    server = live(hello)
    access = logging.getLogger("bascule.access")
    saved = access.disabled
    access.disabled = disabled  # type: ignore[assignment]
    try:
        with caplog.at_level(logging.INFO, logger="bascule.access"):
            response = httpx.get(server.url + "/flag", timeout=5)
            deadline = time.monotonic() + (2 if not disabled else 0.3)
            while not caplog.records and time.monotonic() < deadline:
                time.sleep(0.01)
    finally:
        access.disabled = saved
    assert response.status_code == 200
    assert response.text == "Hello, world!"
    lines = [r.getMessage() for r in caplog.records if r.name == "bascule.access"]
    assert len(lines) == (0 if disabled else 1)


@pytest.mark.parametrize("slow", [False, True])
def test_bad_request_after_good_one_answers_both(live: Live, slow: bool) -> None:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if slow:
            await asyncio.sleep(0.2)  # the bad bytes arrive while this response is pending
        await hello(scope, receive, send)

    server = live(app)
    with server.connect() as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        if slow:
            time.sleep(0.05)
        sock.sendall(b"G@T / HTTP/1.1\r\nHost: x\r\n\r\n")
        data = recv_until_closed(sock)
    first, _, second = data.partition(b"Hello, world!")
    assert first.startswith(b"HTTP/1.1 200 OK")
    assert second.startswith(b"HTTP/1.1 400 Bad Request")


def test_message_after_complete_response_is_logged_not_fatal(
    live: Live, caplog: pytest.LogCaptureFixture
) -> None:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await hello(scope, receive, send)
        await send({"type": "http.response.body", "body": b"extra"})

    server = live(app)
    with caplog.at_level(logging.ERROR, logger="bascule.error"), server.connect() as sock:
        for _ in range(2):  # the connection survives the app's mistake
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert recv_response(sock).endswith(b"Hello, world!")
        deadline = time.monotonic() + 2
        while len(caplog.records) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
    assert any("after the response was complete" in r.getMessage() for r in caplog.records)


def test_trace_logging_shows_events(live: Live, caplog: pytest.LogCaptureFixture) -> None:
    from bascule.logs import TRACE

    with caplog.at_level(TRACE, logger="bascule.error"):
        server = live(hello)
        httpx.get(server.url + "/traced")
        deadline = time.monotonic() + 2
        while not any("connection lost" in r.getMessage() for r in caplog.records):
            if time.monotonic() > deadline:
                break
            time.sleep(0.01)
    messages = [r.getMessage() for r in caplog.records if r.levelno == TRACE]
    assert any("connection made" in m for m in messages)
    assert any("RequestReceived(GET b'/traced' HTTP/1.1)" in m for m in messages)
    assert any("connection lost" in m for m in messages)


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
@pytest.mark.parametrize("size", [16 * 1024, 16 * 1024 + 1, 256 * 1024])
def test_large_first_body_follows_its_head_pipelined(live: Live, framing: str, size: int) -> None:
    """A body over the copy limit leaves with its held head (no join), in order, keep-alive."""
    body = bytes(range(256)) * (size // 256) + b"!" * (size % 256)

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        headers = [(b"content-length", b"%d" % size)] if framing == "content-length" else []
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        if framing == "content-length":
            await send({"type": "http.response.body", "body": body})
        else:
            await send({"type": "http.response.body", "body": body, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})

    server = live(app)
    with server.connect() as sock:
        request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
        sock.sendall(request * 2 + b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = recv_until_closed(sock, limit=4 << 20)
    responses = data.split(b"HTTP/1.1 200 OK\r\n")[1:]
    assert len(responses) == 3
    for response in responses:
        head, _, rest = response.partition(b"\r\n\r\n")
        if framing == "content-length":
            assert b"content-length: %d" % size in head
            assert rest == body
        else:
            assert b"transfer-encoding: chunked" in head
            assert rest == b"%x\r\n" % size + body + b"\r\n0\r\n\r\n"


def test_declined_upgrade_with_proxy_connection_is_served(live: Live) -> None:
    """An Upgrade nobody serves with "Proxy-Connection: upgrade" is answered as plain HTTP;
    it used to recurse until the compiled server's stack overflowed (a segfault)."""
    server = live(hello)
    head = b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: foo\r\nProxy-Connection: upgrade\r\n\r\n"
    with server.connect() as sock:
        sock.sendall(head)
        assert recv_response(sock).startswith(b"HTTP/1.1 200 ")
        sock.sendall(head)  # the same connection keeps serving
        assert recv_response(sock).endswith(b"Hello, world!")
    assert httpx.get(server.url + "/", timeout=5).status_code == 200

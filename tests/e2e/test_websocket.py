"""WebSocket over real sockets: the websockets client and hand-made frames against a live bascule."""

from __future__ import annotations

import asyncio
import logging
import queue
import select
import socket
import struct
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.frames import Close
from websockets.http11 import Response
from websockets.sync.client import ClientConnection, connect

from bascule.aio.websocket import WebSocketSession
from tests.conftest import LiveServer, recv_response, recv_until_closed
from tests.support.ws_client import (
    BINARY,
    CLOSE,
    CONT,
    PING,
    PONG,
    TEXT,
    RawWs,
    close_payload,
    deflate,
    frame,
    header_values,
    inflate,
    read_head,
    upgrade_request,
)

Live = Callable[..., LiveServer]
Scope = dict[str, Any]
Message = dict[str, Any]


# apps -------------------------------------------------------------------------------------


async def plain_http(send: Any) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain"), (b"content-length", b"5")],
        }
    )
    await send({"type": "http.response.body", "body": b"plain"})


class Recorder:
    """Thread-safe record of what an app saw, for the test thread to wait on."""

    def __init__(self) -> None:
        self.scopes: queue.Queue[Scope] = queue.Queue()
        self.disconnects: queue.Queue[Message] = queue.Queue()

    def scope(self, timeout: float = 5) -> Scope:
        return self.scopes.get(timeout=timeout)

    def disconnect(self, timeout: float = 5) -> Message:
        return self.disconnects.get(timeout=timeout)


def echo_app(recorder: Recorder | None = None) -> Any:
    """Accepts, echoes every message, records the scope and the disconnect."""

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await plain_http(send)
            return
        assert scope["type"] == "websocket"
        if recorder is not None:
            recorder.scopes.put(scope)
        assert (await receive()) == {"type": "websocket.connect"}
        await send({"type": "websocket.accept"})
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                if recorder is not None:
                    recorder.disconnects.put(message)
                return
            if "text" in message:
                await send({"type": "websocket.send", "text": message["text"]})
            else:
                await send({"type": "websocket.send", "bytes": message["bytes"]})

    return app


# helpers ------------------------------------------------------------------------------------


def ws_url(server: LiveServer, path: str = "/") -> str:
    return f"ws://127.0.0.1:{server.port}{path}"


def ws_connect(server: LiveServer, path: str = "/", **options: Any) -> ClientConnection:
    """The websockets sync client, with every wait bounded and no proxy or pings."""
    options.setdefault("open_timeout", 5)
    options.setdefault("close_timeout", 1)
    options.setdefault("ping_interval", None)
    options.setdefault("max_size", 4 * 1024 * 1024)
    conn: ClientConnection = connect(ws_url(server, path), proxy=None, **options)
    return conn


def handshake_response(ws: ClientConnection) -> Response:
    response = ws.response
    assert response is not None
    return response


@pytest.fixture
def raw(live: Live) -> Iterator[Callable[[LiveServer], socket.socket]]:
    """Factory for raw sockets to a live server, closed after the test."""
    socks: list[socket.socket] = []

    def open_socket(server: LiveServer) -> socket.socket:
        sock = server.connect()
        socks.append(sock)
        return sock

    yield open_socket
    for sock in socks:
        sock.close()


def status_of(response: bytes) -> int:
    assert response.startswith(b"HTTP/1.1 "), response[:100]
    return int(response.split(b" ", 2)[1])


def wait_for(predicate: Callable[[], bool], timeout: float = 5) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


class PeakDeque(deque[Message]):
    """A session inbox that remembers its largest length (every message goes through append)."""

    peak = 0

    def append(self, item: Message) -> None:
        super().append(item)
        self.peak = max(self.peak, len(self))


def sessions(server: LiveServer) -> list[WebSocketSession]:
    state = server.server.state
    assert state is not None
    return [c for c in list(state.connections) if isinstance(c, WebSocketSession)]


def closed_by_server(ws: ClientConnection) -> Close:
    """The close frame the server sends (within 5 s), before any data still queued is read.

    Only the frame: whether the server then ends TCP promptly is checked on its own
    (test_server_initiated_close_ends_tcp), so a slow end does not hide the code.
    """
    assert wait_for(lambda: ws.protocol.close_rcvd is not None), "no close frame within 5 s"
    close = ws.protocol.close_rcvd
    assert close is not None
    return close


# echo with the websockets client --------------------------------------------------------------


def test_echo_text_and_bytes(live: Live) -> None:
    server = live(echo_app())
    with ws_connect(server) as ws:
        ws.send("hello")
        assert ws.recv(timeout=5) == "hello"
        ws.send(b"\x00\x01binary\xff")
        assert ws.recv(timeout=5) == b"\x00\x01binary\xff"
        ws.send("héllo wörld ✓")
        assert ws.recv(timeout=5) == "héllo wörld ✓"
        ws.send(b"")
        assert ws.recv(timeout=5) == b""


@pytest.mark.parametrize("compression", ["deflate", None])
def test_echo_large_message(live: Live, compression: str | None) -> None:
    server = live(echo_app())
    blob = bytes(range(256)) * 4096  # 1 MiB
    text = ("0123456789abcdef" * 65536)[: 1024 * 1024]
    with ws_connect(server, compression=compression) as ws:
        ws.send(blob)
        assert ws.recv(timeout=10) == blob
        ws.send(text)
        assert ws.recv(timeout=10) == text


def test_echo_fragmented_message_from_client(live: Live) -> None:
    server = live(echo_app())
    with ws_connect(server) as ws:
        ws.send(["frag", "ment", "ed"])
        assert ws.recv(timeout=5) == "fragmented"
        ws.send([b"a", b"b", b"c"])
        assert ws.recv(timeout=5) == b"abc"


def test_burst_arrives_in_order(live: Live) -> None:
    server = live(echo_app())
    count = 1000
    with ws_connect(server) as ws:
        for i in range(count):
            ws.send(f"message {i}")
        received = [ws.recv(timeout=5) for _ in range(count)]
    assert received == [f"message {i}" for i in range(count)]


# the scope, subprotocols, accept headers -------------------------------------------------------


def test_scope_keys_and_values(live: Live) -> None:
    recorder = Recorder()
    server = live(echo_app(recorder), root_path="/api")
    with ws_connect(
        server,
        "/caf%C3%A9/x%2Fy?a=1&b=%20",
        subprotocols=["chat", "superchat"],
        additional_headers={"X-Thing": "v"},
    ) as ws:
        scope = recorder.scope()
        local_port = ws.local_address[1]
    assert set(scope) == {
        "type", "asgi", "http_version", "scheme", "path", "raw_path", "query_string",
        "root_path", "headers", "client", "server", "subprotocols", "state", "extensions",
    }  # fmt: skip
    assert scope["type"] == "websocket"
    assert scope["asgi"] == {"version": "3.0", "spec_version": "2.4"}
    assert scope["http_version"] == "1.1"
    assert scope["scheme"] == "ws"
    assert scope["path"] == "/api/café/x/y"
    assert scope["raw_path"] == b"/api/caf%C3%A9/x%2Fy"
    assert scope["query_string"] == b"a=1&b=%20"
    assert scope["root_path"] == "/api"
    headers = scope["headers"]
    assert all(isinstance(n, bytes) and isinstance(v, bytes) for n, v in headers)
    assert all(name == name.lower() for name, _ in headers)
    assert (b"x-thing", b"v") in [tuple(h) for h in headers]
    assert (b"upgrade", b"websocket") in [tuple(h) for h in headers]
    assert any(n == b"sec-websocket-key" for n, _ in headers)
    assert list(scope["client"]) == ["127.0.0.1", local_port]
    assert list(scope["server"]) == ["127.0.0.1", server.port]
    assert scope["subprotocols"] == ["chat", "superchat"]
    assert scope["state"] == {}
    assert scope["extensions"] == {"websocket.http.response": {}}


def test_scope_without_subprotocols_and_state_from_lifespan(live: Live) -> None:
    recorder = Recorder()
    echo = echo_app(recorder)

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    scope["state"]["db"] = "connected"
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        await echo(scope, receive, send)

    server = live(app, lifespan="on")
    with ws_connect(server, "/") as ws:
        scope = recorder.scope()
        assert ws.subprotocol is None
        assert "sec-websocket-protocol" not in handshake_response(ws).headers
    assert scope["subprotocols"] == []
    assert scope["state"] == {"db": "connected"}
    assert scope["path"] == "/"
    assert scope["query_string"] == b""
    assert scope["root_path"] == ""


@pytest.mark.parametrize(
    ("offered", "chosen"),
    [(["chat", "superchat"], "superchat"), (["chat"], None), ([], None)],
)
def test_subprotocol_choice_and_accept_headers(
    live: Live, offered: list[str], chosen: str | None
) -> None:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await receive()
        subprotocol = "superchat" if "superchat" in scope["subprotocols"] else None
        await send(
            {
                "type": "websocket.accept",
                "subprotocol": subprotocol,
                # pairs as lists: the spec allows any two-item iterable
                "headers": [[b"x-extra", b"yes"], (b"set-cookie", b"a=1")],
            }
        )
        await send({"type": "websocket.send", "text": repr(scope["subprotocols"])})
        await receive()

    server = live(app)
    with ws_connect(server, subprotocols=offered or None) as ws:
        assert ws.subprotocol == chosen
        assert handshake_response(ws).status_code == 101
        assert handshake_response(ws).headers.get("sec-websocket-protocol") == chosen
        assert handshake_response(ws).headers["x-extra"] == "yes"
        assert handshake_response(ws).headers["set-cookie"] == "a=1"
        assert handshake_response(ws).headers["server"] == "bascule"
        assert ws.recv(timeout=5) == repr(offered)


# close codes both ways --------------------------------------------------------------------------


def test_client_close_code_reaches_app(live: Live) -> None:
    recorder = Recorder()
    server = live(echo_app(recorder))
    with ws_connect(server) as ws:
        ws.send("hi")
        assert ws.recv(timeout=5) == "hi"
        ws.close(4000, "bye")
        assert ws.close_code == 4000  # the server echoed our close frame
    assert recorder.disconnect() == {"type": "websocket.disconnect", "code": 4000, "reason": "bye"}


def test_client_drops_tcp_app_sees_1006(
    live: Live, raw: Callable[[LiveServer], socket.socket]
) -> None:
    recorder = Recorder()
    server = live(echo_app(recorder))
    sock = raw(server)
    RawWs.open(sock)
    sock.close()
    message = recorder.disconnect()
    assert message["code"] == 1006


def test_app_close_code_reaches_client(live: Live) -> None:
    recorder = Recorder()

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close", "code": 4001, "reason": "done"})
        recorder.disconnects.put(await receive())

    server = live(app)
    with ws_connect(server) as ws:
        closed = closed_by_server(ws)
        assert (closed.code, closed.reason) == (4001, "done")
    # the app's receive() after its own close reports the close handshake's outcome
    assert recorder.disconnect()["type"] == "websocket.disconnect"


def test_server_initiated_close_ends_tcp(
    live: Live, raw: Callable[[LiveServer], socket.socket]
) -> None:
    """App closes, the client answers with its close frame: the server then closes TCP
    at once (RFC 6455 §7.1.1), not after ws_close_timeout."""
    recorder = Recorder()

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close", "code": 4001, "reason": "done"})
        recorder.disconnects.put(await receive())

    server = live(app, ws_close_timeout=10)
    ws = RawWs.open(raw(server))
    assert ws.expect_close() == (4001, "done")
    ws.send_frame(CLOSE, close_payload(4001, b"done"))
    started = time.monotonic()
    assert ws.wait_eof(timeout=3), "the server kept TCP open after the close handshake"
    assert time.monotonic() - started < 1
    assert recorder.disconnect()["code"] == 4001


def test_app_returning_closes_1000(live: Live) -> None:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": "bye"})

    server = live(app)
    with ws_connect(server) as ws:
        assert ws.recv(timeout=5) == "bye"
        closed = closed_by_server(ws)
        assert closed.code == 1000


def test_messages_before_client_close_are_delivered_first(
    live: Live, raw: Callable[[LiveServer], socket.socket]
) -> None:
    recorder = Recorder()
    server = live(echo_app(recorder))
    ws = RawWs.open(raw(server))
    ws.send(
        frame(TEXT, b"one")
        + frame(TEXT, b"two")
        + frame(BINARY, b"three")
        + frame(CLOSE, close_payload(4002, b"later"))
    )
    assert [ws.recv_message().payload for _ in range(3)] == [b"one", b"two", b"three"]
    assert ws.expect_close() == (4002, "later")
    assert ws.wait_eof()
    assert recorder.disconnect() == {
        "type": "websocket.disconnect",
        "code": 4002,
        "reason": "later",
    }


def test_empty_close_frame(live: Live, raw: Callable[[LiveServer], socket.socket]) -> None:
    recorder = Recorder()
    server = live(echo_app(recorder))
    ws = RawWs.open(raw(server))
    ws.send_frame(CLOSE)
    reply = ws.recv_frame()
    assert (reply.opcode, reply.payload) == (CLOSE, b"")
    assert ws.wait_eof()
    assert recorder.disconnect()["code"] == 1005  # "no status received"


def test_close_inside_fragmented_message(
    live: Live, raw: Callable[[LiveServer], socket.socket]
) -> None:
    recorder = Recorder()
    server = live(echo_app(recorder))
    ws = RawWs.open(raw(server))
    ws.send(frame(TEXT, b"never fini", fin=False) + frame(CLOSE, close_payload(1000)))
    assert ws.expect_close()[0] == 1000
    assert ws.wait_eof()
    assert recorder.disconnect()["code"] == 1000


def test_close_timeout_when_client_never_answers(
    live: Live, raw: Callable[[LiveServer], socket.socket]
) -> None:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close", "code": 1000})
        await receive()

    server = live(app, ws_close_timeout=0.3)
    ws = RawWs.open(raw(server))
    assert ws.expect_close()[0] == 1000
    started = time.monotonic()
    assert ws.wait_eof(timeout=5)  # no answer from us: dropped after ws_close_timeout
    assert time.monotonic() - started < 3


# before accept: 403, 500, denial response ----------------------------------------------------------


def rejected(server: LiveServer, path: str) -> InvalidStatus:
    with pytest.raises(InvalidStatus) as info, ws_connect(server, path):
        pass
    return info.value


def test_close_before_accept_is_403(live: Live, caplog: pytest.LogCaptureFixture) -> None:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await receive()
        if scope["path"] == "/close":
            await send({"type": "websocket.close"})
        # "/return": no accept at all

    server = live(app)
    with caplog.at_level(logging.ERROR, logger="bascule.error"):
        for path in ("/close", "/return"):
            assert rejected(server, path).response.status_code == 403
    assert not caplog.records  # refusing is not an error


def test_app_raising_before_accept_is_500(live: Live, caplog: pytest.LogCaptureFixture) -> None:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await receive()
        raise RuntimeError("boom before accept")

    server = live(app)
    with caplog.at_level(logging.ERROR, logger="bascule.error"):
        response = rejected(server, "/raise").response
        assert wait_for(lambda: bool(caplog.records))
    assert response.status_code == 500
    assert b"boom" not in response.body
    messages = [r.getMessage() for r in caplog.records]
    assert any('exception in ASGI app for "WebSocket /raise"' in m for m in messages), messages
    assert any(r.exc_info and "boom before accept" in str(r.exc_info[1]) for r in caplog.records)


def test_app_raising_without_receive_is_500(live: Live) -> None:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        raise RuntimeError("no websocket route")

    server = live(app)
    assert rejected(server, "/").response.status_code == 500


def test_denial_response(live: Live, raw: Callable[[LiveServer], socket.socket]) -> None:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        assert "websocket.http.response" in scope["extensions"]
        await receive()
        await send(
            {
                "type": "websocket.http.response.start",
                "status": 401,
                "headers": [(b"content-type", b"text/plain"), (b"x-why", b"no token")],
            }
        )
        await send({"type": "websocket.http.response.body", "body": b"go ", "more_body": True})
        await send({"type": "websocket.http.response.body", "body": b"away\n"})

    server = live(app)
    response = rejected(server, "/private").response
    assert response.status_code == 401
    assert response.headers["x-why"] == "no token"
    assert response.headers["content-type"] == "text/plain"
    assert response.body == b"go away\n"
    # the same over a raw socket: a well-framed response, then the server closes
    sock = raw(server)
    sock.sendall(upgrade_request("/private"))
    data = recv_until_closed(sock)
    assert data.startswith(b"HTTP/1.1 401 ")
    head, _, body = data.partition(b"\r\n\r\n")
    if header_values(head, b"transfer-encoding") == [b"chunked"]:
        assert body == b"3\r\ngo \r\n5\r\naway\n\r\n0\r\n\r\n"
    else:
        assert header_values(head, b"content-length") == [b"8"]
        assert body == b"go away\n"


# after accept: app errors ---------------------------------------------------------------------------


BAD_AFTER_ACCEPT = {
    "/both": (
        {"type": "websocket.send", "bytes": b"x", "text": "x"},
        "has both 'bytes' and 'text'",
    ),
    "/neither": ({"type": "websocket.send"}, "has neither 'bytes' nor 'text'"),
    "/str-bytes": (
        {"type": "websocket.send", "bytes": "not bytes"},
        "bytes must be bytes, got str",
    ),
    "/bytes-text": ({"type": "websocket.send", "text": b"not str"}, "text must be str"),
    "/accept-twice": ({"type": "websocket.accept"}, "websocket.accept is not allowed"),
    "/unknown": ({"type": "http.response.start", "status": 200}, "http.response.start"),
}


@pytest.mark.parametrize("path", sorted(BAD_AFTER_ACCEPT))
def test_invalid_message_after_accept_is_1011(
    live: Live, caplog: pytest.LogCaptureFixture, path: str
) -> None:
    bad, expected = BAD_AFTER_ACCEPT[path]

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await send(bad)

    server = live(app)
    with caplog.at_level(logging.ERROR, logger="bascule.error"), ws_connect(server, path) as ws:
        closed = closed_by_server(ws)
        assert wait_for(lambda: bool(caplog.records))
    assert closed.code == 1011
    messages = [r.getMessage() for r in caplog.records]
    assert any(
        f'invalid ASGI message from the app for "WebSocket {path}"' in m and expected in m
        for m in messages
    ), messages


def test_app_raising_after_accept_is_1011(live: Live, caplog: pytest.LogCaptureFixture) -> None:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        message = await receive()
        raise RuntimeError(f"boom after {message.get('text')}")

    server = live(app)
    with caplog.at_level(logging.ERROR, logger="bascule.error"), ws_connect(server, "/x") as ws:
        ws.send("hello")
        closed = closed_by_server(ws)
        assert wait_for(lambda: bool(caplog.records))
    assert closed.code == 1011
    assert any('exception in ASGI app for "WebSocket /x"' in r.getMessage() for r in caplog.records)
    assert any(r.exc_info and "boom after hello" in str(r.exc_info[1]) for r in caplog.records)


BAD_BEFORE_ACCEPT = {
    "/send-early": (
        {"type": "websocket.send", "text": "too early"},
        "websocket.send before websocket.accept",
    ),
    "/subprotocol-bytes": (
        {"type": "websocket.accept", "subprotocol": b"chat"},
        "subprotocol must be str or None",
    ),
    "/protocol-header": (
        {"type": "websocket.accept", "headers": [(b"Sec-WebSocket-Protocol", b"chat")]},
        "use the 'subprotocol' key",
    ),
    "/str-header": (
        {"type": "websocket.accept", "headers": [(b"x-a", "str")]},
        "headers[0] value must be bytes",
    ),
    "/body-first": (
        {"type": "websocket.http.response.body", "body": b"x"},
        "websocket.http.response.body is not allowed",
    ),
    "/bad-status": (
        {"type": "websocket.http.response.start", "status": "401"},
        "status must be an int",
    ),
    "/not-a-dict": ("websocket.accept", "must be a dict with a 'type' key"),
}


@pytest.mark.parametrize("path", sorted(BAD_BEFORE_ACCEPT))
def test_invalid_message_before_accept_is_500(
    live: Live, caplog: pytest.LogCaptureFixture, path: str
) -> None:
    bad, expected = BAD_BEFORE_ACCEPT[path]

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await receive()
        await send(bad)

    server = live(app)
    with caplog.at_level(logging.ERROR, logger="bascule.error"):
        response = rejected(server, path).response
        assert wait_for(lambda: bool(caplog.records))
    assert response.status_code == 500
    messages = [r.getMessage() for r in caplog.records]
    assert any(
        f'invalid ASGI message from the app for "WebSocket {path}"' in m and expected in m
        for m in messages
    ), messages


def test_app_raising_during_denial_response_cuts_connection(
    live: Live, raw: Callable[[LiveServer], socket.socket], caplog: pytest.LogCaptureFixture
) -> None:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.http.response.start", "status": 401, "headers": []})
        await send({"type": "websocket.http.response.body", "body": b"part", "more_body": True})
        raise RuntimeError("boom mid-denial")

    server = live(app)
    sock = raw(server)
    with caplog.at_level(logging.ERROR, logger="bascule.error"):
        sock.sendall(upgrade_request("/deny"))
        data = recv_until_closed(sock)  # bounded: the server must close, not hang
        assert wait_for(lambda: bool(caplog.records))
    assert data.startswith(b"HTTP/1.1 401 ")
    assert not data.endswith(b"0\r\n\r\n")  # cut: no clean end of the chunked body
    assert any("boom mid-denial" in str(r.exc_info[1]) for r in caplog.records if r.exc_info)


def test_send_after_client_closed_raises_in_app(live: Live) -> None:
    outcome: queue.Queue[str] = queue.Queue()

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        assert (await receive())["type"] == "websocket.disconnect"
        try:
            await send({"type": "websocket.send", "text": "late"})
        except Exception as exc:  # the spec: send after disconnect raises (an OSError subclass)
            outcome.put(type(exc).__name__)
        else:
            outcome.put("no error")

    server = live(app)
    with ws_connect(server) as ws:
        ws.close(1000)
    assert outcome.get(timeout=5) == "ClientDisconnected"


# protocol errors with hand-made frames ---------------------------------------------------------------


PROTOCOL_ERRORS: dict[str, tuple[bytes, int]] = {
    "unmasked": (frame(TEXT, b"hi", mask=None), 1002),
    "rsv1": (frame(TEXT, b"hi", rsv=0x40), 1002),
    "rsv2": (frame(TEXT, b"hi", rsv=0x20), 1002),
    "rsv3": (frame(BINARY, b"hi", rsv=0x10), 1002),
    "opcode-3": (frame(0x3, b"hi"), 1002),
    "opcode-11": (frame(0xB, b"hi"), 1002),
    "control-126-bytes": (frame(PING, b"p" * 126), 1002),
    "fragmented-ping": (frame(PING, b"p", fin=False), 1002),
    "continuation-without-start": (frame(CONT, b"x"), 1002),
    "new-message-inside-fragments": (frame(TEXT, b"a", fin=False) + frame(TEXT, b"b"), 1002),
    "close-1-byte": (frame(CLOSE, b"\x03"), 1002),
    "close-code-1005": (frame(CLOSE, close_payload(1005)), 1002),
    "close-code-999": (frame(CLOSE, close_payload(999)), 1002),
    "invalid-utf8": (frame(TEXT, b"ok \xff"), 1007),
    "invalid-utf8-in-fragment": (
        frame(TEXT, b"\xce", fin=False) + frame(CONT, b"\xff", fin=False),
        1007,
    ),
    "truncated-utf8-at-end": (frame(TEXT, b"a\xce", fin=False) + frame(CONT, b""), 1007),
    "invalid-utf8-close-reason": (frame(CLOSE, close_payload(1000, b"\xff")), 1007),
}


@pytest.mark.parametrize("name", list(PROTOCOL_ERRORS))
def test_protocol_error_close_code(
    live: Live, raw: Callable[[LiveServer], socket.socket], name: str
) -> None:
    data, code = PROTOCOL_ERRORS[name]
    recorder = Recorder()
    server = live(echo_app(recorder))
    ws = RawWs.open(raw(server))
    ws.send(data)
    assert ws.expect_close()[0] == code
    assert ws.wait_eof(), "the server must close TCP after failing the connection"
    assert recorder.disconnect()["code"] == code


def test_messages_before_a_protocol_error_are_answered_first(
    live: Live, raw: Callable[[LiveServer], socket.socket]
) -> None:
    server = live(echo_app())
    ws = RawWs.open(raw(server))
    ws.send(frame(TEXT, b"one") + frame(TEXT, b"two") + frame(TEXT, b"x", mask=None))
    assert ws.recv_message().payload == b"one"
    assert ws.recv_message().payload == b"two"
    assert ws.expect_close()[0] == 1002
    assert ws.wait_eof()


TOO_BIG: dict[str, tuple[bytes, bytes]] = {
    "one-frame": (b"", frame(BINARY, b"x" * 2048)),
    "one-text-frame": (b"", frame(TEXT, b"x" * 1025)),
    "fragments": (b"", frame(BINARY, b"x" * 700, fin=False) + frame(CONT, b"y" * 700)),
    "deflate-bomb": (
        b"Sec-WebSocket-Extensions: permessage-deflate\r\n",
        frame(BINARY, deflate(b"\x00" * 100_000), rsv=0x40),
    ),
}


@pytest.mark.parametrize("name", list(TOO_BIG))
def test_message_over_max_size_is_1009(
    live: Live, raw: Callable[[LiveServer], socket.socket], name: str
) -> None:
    extra, data = TOO_BIG[name]
    server = live(echo_app(), ws_max_size=1024)
    ws = RawWs.open(raw(server), extra=extra)
    if extra:
        assert header_values(ws.head, b"sec-websocket-extensions")[0].startswith(
            b"permessage-deflate"
        )
    ws.send_frame(BINARY, b"x" * 1024)  # exactly the limit: fine
    assert ws.recv_message().payload in (b"x" * 1024, deflate(b"x" * 1024))
    ws.send(data)
    assert ws.expect_close()[0] == 1009
    assert ws.wait_eof()


def test_control_frames_between_fragments(
    live: Live, raw: Callable[[LiveServer], socket.socket]
) -> None:
    server = live(echo_app())
    ws = RawWs.open(raw(server))
    ws.send(
        frame(TEXT, b"Hel", fin=False)
        + frame(PING, b"mid")
        + frame(CONT, b"lo ", fin=False)
        + frame(PONG, b"unsolicited")
        + frame(CONT, "wörld".encode())
    )
    pong = ws.recv_frame()
    assert (pong.opcode, pong.payload, pong.masked) == (PONG, b"mid", False)
    message = ws.recv_frame()
    assert (message.fin, message.opcode, message.payload) == (True, TEXT, "Hello wörld".encode())
    ws.send_frame(CLOSE, close_payload(1000))
    assert ws.expect_close()[0] == 1000
    assert ws.wait_eof()


def test_text_split_across_tcp_writes(
    live: Live, raw: Callable[[LiveServer], socket.socket]
) -> None:
    server = live(echo_app())
    ws = RawWs.open(raw(server))
    ws.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    data = frame(TEXT, "é✓".encode() * 2000)
    for i in range(0, len(data), 997):
        ws.send(data[i : i + 997])
    assert ws.recv_message().payload == "é✓".encode() * 2000


def test_utf8_split_across_fragments(
    live: Live, raw: Callable[[LiveServer], socket.socket]
) -> None:
    server = live(echo_app())
    ws = RawWs.open(raw(server))
    euro = "€".encode()  # 3 bytes, one per fragment
    ws.send(
        frame(TEXT, euro[:1], fin=False)
        + frame(CONT, euro[1:2], fin=False)
        + frame(CONT, b"", fin=False)
        + frame(CONT, euro[2:])
    )
    assert ws.recv_message().payload == euro


def test_upgrade_after_http_request_on_same_connection(
    live: Live, raw: Callable[[LiveServer], socket.socket]
) -> None:
    server = live(echo_app())
    sock = raw(server)
    sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert recv_response(sock).endswith(b"plain")
    ws = RawWs.open(sock)
    ws.send_frame(TEXT, b"upgraded")
    assert ws.recv_message().payload == b"upgraded"


def test_ping_flood_is_bounded(live: Live, raw: Callable[[LiveServer], socket.socket]) -> None:
    """A client that sends pings and never reads the pongs: the server stops reading."""
    server = live(echo_app())
    sock = raw(server)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
    RawWs.open(sock)
    assert wait_for(lambda: len(sessions(server)) == 1)
    session = sessions(server)[0]
    data = frame(PING, b"p" * 125) * 200_000  # 26 MB of pings, as many pongs owed
    view = memoryview(data)
    sent = 0
    max_buffered = 0
    sock.setblocking(False)
    deadline = time.monotonic() + 20
    stalled = False
    while sent < len(data) and time.monotonic() < deadline:
        max_buffered = max(max_buffered, session.transport.get_write_buffer_size())
        _, writable, _ = select.select([], [sock], [], 0.5)
        if not writable:
            stalled = True
            break
        try:
            sent += sock.send(view[sent : sent + 256 * 1024])
        except BlockingIOError:
            continue
    max_buffered = max(max_buffered, session.transport.get_write_buffer_size())
    assert stalled, f"the server read all {sent} bytes of pings without us reading a pong"
    assert max_buffered < 2 * 1024 * 1024, f"{max_buffered} bytes of pongs buffered"


# ping / pong ---------------------------------------------------------------------------------------


def test_server_answers_ping_with_same_payload(
    live: Live, raw: Callable[[LiveServer], socket.socket]
) -> None:
    server = live(echo_app())
    ws = RawWs.open(raw(server))
    ws.send_frame(PING, b"payload-123")
    pong = ws.recv_frame()
    assert (pong.fin, pong.opcode, pong.payload) == (True, PONG, b"payload-123")
    ws.send_frame(PING)
    assert ws.recv_frame()[2:4] == (PONG, b"")


def test_ping_timeout_closes_1011(
    live: Live, raw: Callable[[LiveServer], socket.socket], caplog: pytest.LogCaptureFixture
) -> None:
    recorder = Recorder()
    server = live(echo_app(recorder), ws_ping_interval=0.2, ws_ping_timeout=0.3)
    with caplog.at_level(logging.INFO, logger="bascule.error"):
        ws = RawWs.open(raw(server))
        ping = ws.recv_frame()  # ~0.2 s after the 101
        assert ping.opcode == PING
        assert ping.fin
        assert not ping.masked
        # never answer: ~0.3 s later the server gives up
        started = time.monotonic()
        code, reason = ws.expect_close()
        assert time.monotonic() - started < 3
        assert code == 1011
        assert "ping" in reason
        assert ws.wait_eof()
        assert recorder.disconnect()["code"] == 1011
    assert any("no pong" in r.getMessage() for r in caplog.records)


def test_pongs_keep_the_connection_open(
    live: Live, raw: Callable[[LiveServer], socket.socket]
) -> None:
    server = live(echo_app(), ws_ping_interval=0.2, ws_ping_timeout=0.3)
    ws = RawWs.open(raw(server))
    pings = 0
    deadline = time.monotonic() + 1.2
    while time.monotonic() < deadline:
        readable, _, _ = select.select([ws.sock], [], [], max(0.0, deadline - time.monotonic()))
        if not readable:
            continue
        got = ws.recv_frame()
        assert got.opcode == PING, got
        pings += 1
        ws.send_frame(PONG, got.payload)
    assert pings >= 3
    ws.send_frame(TEXT, b"still here")
    assert ws.recv_message().payload == b"still here"


def test_websockets_client_keepalive_with_server_pings(live: Live) -> None:
    server = live(echo_app(), ws_ping_interval=0.1, ws_ping_timeout=0.5)
    with ws_connect(server, ping_interval=0.1, ping_timeout=1) as ws:
        end = time.monotonic() + 0.6
        while time.monotonic() < end:
            ws.send("tick")
            assert ws.recv(timeout=5) == "tick"
            time.sleep(0.05)  # let pings cross while the connection idles


# permessage-deflate ---------------------------------------------------------------------------------


def test_permessage_deflate_negotiated_by_default(live: Live) -> None:
    server = live(echo_app())
    text = "compress me " * 10000
    with ws_connect(server) as ws:
        extensions = handshake_response(ws).headers.get("sec-websocket-extensions", "")
        assert extensions.startswith("permessage-deflate"), extensions
        for _ in range(3):  # context takeover across messages
            ws.send(text)
            assert ws.recv(timeout=5) == text
            ws.send(text.encode())
            assert ws.recv(timeout=5) == text.encode()


def test_permessage_deflate_disabled(live: Live) -> None:
    server = live(echo_app(), ws_per_message_deflate=False)
    with ws_connect(server) as ws:
        assert "sec-websocket-extensions" not in handshake_response(ws).headers
        ws.send("not compressed " * 1000)
        assert ws.recv(timeout=5) == "not compressed " * 1000


def test_client_without_compression(live: Live) -> None:
    server = live(echo_app())
    with ws_connect(server, compression=None) as ws:
        assert "sec-websocket-extensions" not in handshake_response(ws).headers
        ws.send("plain")
        assert ws.recv(timeout=5) == "plain"


def test_permessage_deflate_raw_frames(
    live: Live, raw: Callable[[LiveServer], socket.socket]
) -> None:
    server = live(echo_app())
    ws = RawWs.open(
        raw(server),
        extra=b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n",
    )
    offered = header_values(ws.head, b"sec-websocket-extensions")
    assert len(offered) == 1
    assert offered[0].startswith(b"permessage-deflate")
    text = "zip zap " * 500
    payload = deflate(text.encode())
    assert len(payload) < len(text) // 10
    ws.send_frame(TEXT, payload, rsv=0x40)
    echoed = ws.recv_message()
    assert echoed.opcode == TEXT
    assert echoed.rsv == 0x40  # the server compressed its answer too
    assert inflate(echoed.payload) == text.encode()


def test_permessage_deflate_server_no_context_takeover(
    live: Live, raw: Callable[[LiveServer], socket.socket]
) -> None:
    server = live(echo_app())
    ws = RawWs.open(
        raw(server),
        extra=b"Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover\r\n",
    )
    [agreed] = header_values(ws.head, b"sec-websocket-extensions")
    assert b"server_no_context_takeover" in agreed
    text = b"the same words again and again " * 40
    payloads = []
    for _ in range(2):
        ws.send_frame(TEXT, text)  # uncompressed frames are allowed too
        echoed = ws.recv_message()
        assert echoed.rsv == 0x40
        payloads.append(echoed.payload)
    # no context kept: each message inflates on its own, and both compress the same
    assert payloads[0] == payloads[1]
    assert inflate(payloads[1]) == text


def test_permessage_deflate_context_takeover_by_default(
    live: Live, raw: Callable[[LiveServer], socket.socket]
) -> None:
    server = live(echo_app())
    ws = RawWs.open(raw(server), extra=b"Sec-WebSocket-Extensions: permessage-deflate\r\n")
    text = b"the same words again and again " * 40
    decompressor = zlib.decompressobj(wbits=-15)
    sizes = []
    for _ in range(2):
        ws.send_frame(TEXT, text)
        echoed = ws.recv_message()
        assert decompressor.decompress(echoed.payload + b"\x00\x00\xff\xff") == text
        sizes.append(len(echoed.payload))
    assert sizes[1] < sizes[0]  # the second message refers back to the first


def test_permessage_deflate_server_max_window_bits(
    live: Live, raw: Callable[[LiveServer], socket.socket]
) -> None:
    server = live(echo_app())
    ws = RawWs.open(
        raw(server),
        extra=b"Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=9\r\n",
    )
    [agreed] = header_values(ws.head, b"sec-websocket-extensions")
    assert b"server_max_window_bits=9" in agreed
    # repeats 1000 bytes apart: a 512-byte window cannot reach back that far
    block = bytes(range(256)) * 4
    text = (block[:1000] * 20).hex().encode()
    ws.send_frame(BINARY, text)
    echoed = ws.recv_message()
    # a 9-bit inflater fed 64 bytes of output at a time keeps only a 512-byte window: it
    # rejects any back-reference past it ("invalid distance too far back")
    inflater = zlib.decompressobj(wbits=-9)
    data, out = echoed.payload + b"\x00\x00\xff\xff", b""
    while data:
        out += inflater.decompress(data, 64)
        data = inflater.unconsumed_tail
    assert echoed.rsv == 0x40
    assert out == text


def test_permessage_deflate_unusable_offer_is_ignored(
    live: Live, raw: Callable[[LiveServer], socket.socket]
) -> None:
    server = live(echo_app())
    ws = RawWs.open(
        raw(server),
        extra=b"Sec-WebSocket-Extensions: permessage-deflate; unknown_param, x-other\r\n",
    )
    assert header_values(ws.head, b"sec-websocket-extensions") == []
    ws.send_frame(TEXT, b"uncompressed")
    echoed = ws.recv_message()
    assert (echoed.rsv, echoed.payload) == (0, b"uncompressed")


# backpressure ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message_size", "total_messages"),
    [(64 * 1024, 512), (16, 100_000)],
    ids=["64KiB-messages", "16B-messages"],
)
def test_backpressure_app_not_reading(
    live: Live,
    raw: Callable[[LiveServer], socket.socket],
    message_size: int,
    total_messages: int,
) -> None:
    """An app that does not call receive(): the server stops reading at ws_max_queue."""
    max_queue = 4
    release = threading.Event()

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await asyncio.to_thread(release.wait, 30)
        for i in range(total_messages):
            message = await receive()
            if message["type"] != "websocket.receive" or message["bytes"][:4] != struct.pack(
                "!I", i
            ):
                await send({"type": "websocket.send", "text": f"wrong at {i}"})
                return
        await send({"type": "websocket.send", "text": f"got {total_messages}"})

    server = live(app, ws_max_queue=max_queue)
    sock = raw(server)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
    try:
        ws = RawWs.open(sock)
        assert wait_for(lambda: len(sessions(server)) == 1)
        session = sessions(server)[0]
        inbox = session.inbox = PeakDeque()  # empty: nothing was sent yet
        filler = b"\xa5" * (message_size - 4)  # each message starts with its number
        data = b"".join(frame(BINARY, struct.pack("!I", i) + filler) for i in range(total_messages))
        view = memoryview(data)
        sent = 0
        sock.setblocking(False)
        deadline = time.monotonic() + 20
        stalled = False
        while sent < len(data) and time.monotonic() < deadline:
            _, writable, _ = select.select([], [sock], [], 0.5)
            if not writable:
                stalled = True  # 0.5 s without room in the socket: the server stopped reading
                break
            try:
                sent += sock.send(view[sent : sent + 256 * 1024])
            except BlockingIOError:
                continue
        assert stalled, f"the client sent all {sent} bytes: the server never stopped reading"
        assert sent < len(data)
        assert session.reading_paused
        assert inbox.peak <= max_queue, (
            f"inbox held {inbox.peak} messages (ws_max_queue={max_queue})"
        )
        assert session.conn is not None
        # bounded: the queued messages plus what is held back undecoded
        assert session.conn.buffered <= 512 * 1024
        # the app reads again: everything arrives, in order
        release.set()
        sock.setblocking(True)
        sock.settimeout(20)
        sock.sendall(view[sent:])
        assert ws.recv_message().payload == f"got {total_messages}".encode()
    finally:
        release.set()


def test_backpressure_client_not_reading(
    live: Live, raw: Callable[[LiveServer], socket.socket]
) -> None:
    """await send() blocks while the client does not read."""
    total_messages = 1024
    sent: list[int] = []

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        chunk = b"\x5a" * (64 * 1024)
        for i in range(total_messages):
            await send({"type": "websocket.send", "bytes": chunk})
            sent.append(i)
        await receive()

    server = live(app)
    sock = raw(server)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    ws = RawWs.open(sock)

    # the app's send() blocks: its count stops growing well short of the total
    def settled() -> bool:
        before = len(sent)
        time.sleep(0.3)
        return len(sent) == before

    assert wait_for(settled, timeout=10)
    assert len(sent) < total_messages // 2, f"{len(sent)} messages sent to a client not reading"
    for _ in range(total_messages):
        assert len(ws.recv_message().payload) == 64 * 1024
    assert len(sent) == total_messages


# graceful shutdown ----------------------------------------------------------------------------------


def test_graceful_shutdown_sends_1001(live: Live) -> None:
    recorder = Recorder()
    server = live(echo_app(recorder), timeout_graceful_shutdown=3, ws_close_timeout=3)
    with ws_connect(server) as ws:
        ws.send("before")
        assert ws.recv(timeout=5) == "before"
        started = time.monotonic()
        server.stop()  # the client answers the close frame from its own thread
        elapsed = time.monotonic() - started
        closed = closed_by_server(ws)
        assert closed.code == 1001
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=5)
    assert server.exit_status == 0
    assert recorder.disconnect()["code"] == 1001
    # the client answered at once: shutdown needs neither timeout
    assert elapsed < 2, f"shutdown took {elapsed:.2f}s"


def test_graceful_shutdown_peer_never_answers_close(
    live: Live, raw: Callable[[LiveServer], socket.socket]
) -> None:
    server = live(echo_app(), timeout_graceful_shutdown=1, ws_close_timeout=0.5)
    ws = RawWs.open(raw(server))
    stopper = threading.Thread(target=server.stop)
    started = time.monotonic()
    stopper.start()
    assert ws.expect_close()[0] == 1001
    assert ws.wait_eof()  # we never answer: the server drops the connection
    stopper.join(10)
    assert not stopper.is_alive()
    assert time.monotonic() - started < 4


# handshake errors --------------------------------------------------------------------------------------


def test_unsupported_version_426(live: Live, raw: Callable[[LiveServer], socket.socket]) -> None:
    server = live(echo_app())
    sock = raw(server)
    sock.sendall(upgrade_request(ws_version=b"8"))
    response = recv_until_closed(sock)
    assert status_of(response) == 426
    head = response.partition(b"\r\n\r\n")[0]
    assert header_values(head, b"sec-websocket-version") == [b"13"]


@pytest.mark.parametrize(
    "key",
    [b"not-base64!", b"c2hvcnQ=", b"MDEyMzQ1Njc4OWFiY2RlZmc=", b""],
    ids=["not-base64", "too-short", "too-long", "empty"],
)
def test_bad_key_400(live: Live, raw: Callable[[LiveServer], socket.socket], key: bytes) -> None:
    server = live(echo_app())
    sock = raw(server)
    sock.sendall(upgrade_request(key=key))
    assert status_of(recv_until_closed(sock)) == 400


def test_missing_key_400(live: Live, raw: Callable[[LiveServer], socket.socket]) -> None:
    server = live(echo_app())
    sock = raw(server)
    sock.sendall(
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Version: 13\r\n\r\n"
    )
    assert status_of(recv_until_closed(sock)) == 400


def test_http10_upgrade_400(live: Live, raw: Callable[[LiveServer], socket.socket]) -> None:
    server = live(echo_app())
    sock = raw(server)
    sock.sendall(upgrade_request(http_version=b"1.0"))
    response = recv_until_closed(sock)
    assert response.startswith(b"HTTP/1.1 400 "), response[:100]


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: foo\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nSec-WebSocket-Key: MDEyMzQ1Njc4OWFiY2RlZg==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    ],
    ids=["h2c", "foo", "websocket-without-connection-upgrade"],
)
def test_other_upgrades_served_as_http(
    live: Live, raw: Callable[[LiveServer], socket.socket], request_bytes: bytes
) -> None:
    # h2c is an upgrade bascule serves when HTTP/2 is on (tests/e2e/test_extensions.py).
    server = live(echo_app(), http2=False)
    sock = raw(server)
    sock.sendall(request_bytes)
    response = recv_response(sock)
    assert status_of(response) == 200
    assert response.endswith(b"\r\n\r\nplain")


def test_ws_disabled_upgrade_served_as_http(
    live: Live, raw: Callable[[LiveServer], socket.socket]
) -> None:
    server = live(echo_app(), ws=False)
    sock = raw(server)
    sock.sendall(upgrade_request("/"))
    response = recv_response(sock)
    assert status_of(response) == 200
    assert response.endswith(b"\r\n\r\nplain")
    with pytest.raises(InvalidStatus) as info, ws_connect(server):
        pass
    assert info.value.response.status_code == 200


def test_handshake_then_frames_in_same_packet(
    live: Live, raw: Callable[[LiveServer], socket.socket]
) -> None:
    """Frames sent right behind the handshake (before the 101) are not lost."""
    server = live(echo_app())
    sock = raw(server)
    sock.sendall(upgrade_request() + frame(TEXT, b"early") + frame(BINARY, b"bird"))
    head, rest = read_head(sock)
    assert head.startswith(b"HTTP/1.1 101 ")
    ws = RawWs(sock, head, rest)
    assert ws.recv_message().payload == b"early"
    assert ws.recv_message().payload == b"bird"


# access log ----------------------------------------------------------------------------------------


def test_access_log_lines(live: Live, caplog: pytest.LogCaptureFixture) -> None:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await receive()
        if scope["path"] == "/no":
            await send({"type": "websocket.close"})
            return
        await send({"type": "websocket.accept"})
        await receive()

    server = live(app)
    with caplog.at_level(logging.INFO, logger="bascule.access"):
        with ws_connect(server, "/chat?room=1") as ws:
            ws.close()
        with pytest.raises(InvalidStatus), ws_connect(server, "/no"):
            pass
        assert wait_for(lambda: len(caplog.records) >= 2)
    lines = [r.getMessage() for r in caplog.records if r.name == "bascule.access"]
    assert any('"GET /chat?room=1 HTTP/1.1" 101 0 ' in line for line in lines), lines
    assert any('"GET /no HTTP/1.1" 403 0 ' in line for line in lines), lines
    assert all(line.startswith("127.0.0.1:") and line.endswith("ms") for line in lines)

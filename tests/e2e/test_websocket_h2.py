"""WebSocket over HTTP/2 (RFC 8441): extended CONNECT, the same session and frame layer."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import h2.config
import h2.connection
import h2.events
import pytest
from websockets.frames import Close, Frame, Opcode

from tests.conftest import LiveServer

Live = Callable[..., LiveServer]
Scope = dict[str, Any]


async def ws_app(scope: Scope, receive: Any, send: Any) -> None:
    if scope["type"] != "websocket":
        return
    await receive()  # websocket.connect
    if scope["path"] == "/deny":
        await send({"type": "websocket.close"})
        return
    await send(
        {"type": "websocket.accept", "subprotocol": "chat" if scope["subprotocols"] else None}
    )
    if scope["path"] == "/scope":
        plain = {k: v for k, v in scope.items() if k in ("http_version", "scheme", "path")}
        await send({"type": "websocket.send", "text": json.dumps(plain)})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        if message.get("text") is not None:
            await send({"type": "websocket.send", "text": message["text"]})
        else:
            await send({"type": "websocket.send", "bytes": message["bytes"]})


class Client:
    """An HTTP/2 client opening RFC 8441 WebSockets."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding=None)
        )
        self.conn.initiate_connection()
        self.sock.sendall(self.conn.data_to_send())
        self.events: list[Any] = []
        self.read_until(
            lambda: any(isinstance(e, h2.events.RemoteSettingsChanged) for e in self.events)
        )

    def read_until(self, done: Callable[[], bool], timeout: float = 5) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() > deadline:
                raise TimeoutError("condition not met")
            data = self.sock.recv(65536)
            if not data:
                return
            for event in self.conn.receive_data(data):
                self.events.append(event)
                if isinstance(event, h2.events.DataReceived):
                    self.conn.acknowledge_received_data(
                        event.flow_controlled_length, event.stream_id
                    )
            self.sock.sendall(self.conn.data_to_send())

    def open(self, path: bytes, extra: list[tuple[bytes, bytes]] | None = None) -> int:
        stream_id = self.conn.get_next_available_stream_id()
        headers = [
            (b":method", b"CONNECT"),
            (b":protocol", b"websocket"),
            (b":scheme", b"http"),
            (b":path", path),
            (b":authority", b"127.0.0.1"),
            *(extra if extra is not None else [(b"sec-websocket-version", b"13")]),
        ]
        self.conn.send_headers(stream_id, headers)
        self.sock.sendall(self.conn.data_to_send())
        self.read_until(lambda: self.status(stream_id) is not None)
        return stream_id

    def status(self, stream_id: int) -> int | None:
        for event in self.events:
            if isinstance(event, h2.events.ResponseReceived) and event.stream_id == stream_id:
                return int(dict(event.headers or [])[b":status"])
        return None

    def send_frame(self, stream_id: int, opcode: Opcode, payload: bytes) -> None:
        self.conn.send_data(stream_id, Frame(opcode, payload).serialize(mask=True, extensions=[]))
        self.sock.sendall(self.conn.data_to_send())

    def received(self, stream_id: int) -> bytes:
        return b"".join(
            e.data
            for e in self.events
            if isinstance(e, h2.events.DataReceived) and e.stream_id == stream_id
        )

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def clients() -> Iterator[list[Client]]:
    made: list[Client] = []
    yield made
    for client in made:
        client.close()


def text_frame(payload: str) -> bytes:
    return Frame(Opcode.TEXT, payload.encode()).serialize(mask=False, extensions=[])


def test_echo_and_close_over_http2(live: Live, clients: list[Client]) -> None:
    server = live(ws_app)
    client = Client(server.port)
    clients.append(client)
    sid = client.open(b"/scope")
    assert client.status(sid) == 200
    client.read_until(lambda: len(client.received(sid)) > 2)
    scope_frame = client.received(sid)
    assert b'"http_version": "2"' in scope_frame
    assert b'"scheme": "ws"' in scope_frame
    client.send_frame(sid, Opcode.TEXT, b"hello over h2")
    expected = scope_frame + text_frame("hello over h2")
    client.read_until(lambda: client.received(sid) == expected)
    client.send_frame(sid, Opcode.CLOSE, Close(1000, "bye").serialize())
    client.read_until(
        lambda: any(
            isinstance(e, h2.events.StreamEnded) and e.stream_id == sid for e in client.events
        )
    )
    assert client.received(sid).endswith(b"\x88\x05\x03\xe8bye")  # our close frame, then END_STREAM


def test_two_websockets_multiplexed_on_one_connection(live: Live, clients: list[Client]) -> None:
    server = live(ws_app)
    client = Client(server.port)
    clients.append(client)
    a = client.open(b"/a")
    b = client.open(b"/b")
    client.send_frame(a, Opcode.TEXT, b"to a")
    client.send_frame(b, Opcode.TEXT, b"to b")
    client.read_until(
        lambda: (
            client.received(a) == text_frame("to a") and client.received(b) == text_frame("to b")
        )
    )


def test_denied_websocket_is_403_on_its_stream(live: Live, clients: list[Client]) -> None:
    server = live(ws_app)
    client = Client(server.port)
    clients.append(client)
    assert client.status(client.open(b"/deny")) == 403
    assert client.status(client.open(b"/ok")) == 200  # the connection goes on


def test_wrong_version_is_426(live: Live, clients: list[Client]) -> None:
    server = live(ws_app)
    client = Client(server.port)
    clients.append(client)
    assert client.status(client.open(b"/", [(b"sec-websocket-version", b"8")])) == 426

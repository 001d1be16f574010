"""ASGI extensions over real sockets: trailers, early hints, pathsend, zerocopysend, push."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.settings
import httpx
import pytest

from tests.conftest import LiveServer, recv_until_closed

Live = Callable[..., LiveServer]
Scope = dict[str, Any]
seen_extensions: list[dict[str, Any]] = []


async def ext_app(scope: Scope, receive: Any, send: Any) -> None:
    seen_extensions.append(dict(scope["extensions"]))
    path = scope["path"]
    while (await receive()).get("more_body"):
        pass
    if path == "/hints":
        await send({"type": "http.response.early_hint", "links": [b"</a.css>; rel=preload"]})
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"after hints"})
    elif path == "/trailers":
        await send({"type": "http.response.start", "status": 200, "headers": [], "trailers": True})
        await send({"type": "http.response.body", "body": b"body", "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        await send(
            {
                "type": "http.response.trailers",
                "headers": [(b"x-sum", b"42")],
                "more_trailers": True,
            }
        )
        await send({"type": "http.response.trailers", "headers": [(b"x-more", b"1")]})
    elif path.startswith("/file/"):
        target = scope["query_string"].decode()
        size = Path(target).stat().st_size
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-length", b"%d" % size)],
            }
        )
        await send({"type": "http.response.pathsend", "path": target})
    elif path == "/zerocopy":
        target = scope["query_string"].decode()
        with open(target, "rb") as f:
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-length", b"10")],
                }
            )
            await send({"type": "http.response.zerocopysend", "file": f, "offset": 5, "count": 10})
    elif path == "/push":
        await send({"type": "http.response.push", "path": "/pushed.css", "headers": []})
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"page"})
    else:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": path.encode()})


def raw(server: LiveServer, request: bytes) -> bytes:
    with server.connect() as sock:
        sock.sendall(request)
        return recv_until_closed(sock)


def test_early_hints_http1(live: Live) -> None:
    server = live(ext_app)
    data = raw(server, b"GET /hints HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 103 Early Hints\r\nlink: </a.css>; rel=preload\r\n\r\n")
    assert b"HTTP/1.1 200 OK" in data
    assert data.endswith(b"after hints\r\n0\r\n\r\n")
    assert "http.response.early_hint" in seen_extensions[-1]
    # HTTP/1.0 clients never get a 1xx
    data = raw(server, b"GET /hints HTTP/1.0\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 200 OK")


def test_trailers_http1_only_with_te_trailers(live: Live) -> None:
    server = live(ext_app)
    data = raw(
        server, b"GET /trailers HTTP/1.1\r\nHost: x\r\nTE: trailers\r\nConnection: close\r\n\r\n"
    )
    assert "http.response.trailers" in seen_extensions[-1]
    assert data.endswith(b"4\r\nbody\r\n0\r\nx-sum: 42\r\nx-more: 1\r\n\r\n")
    data = raw(server, b"GET /trailers HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert "http.response.trailers" not in seen_extensions[-1]
    assert data.endswith(b"4\r\nbody\r\n0\r\n\r\n")  # dropped, not a broken response


def test_pathsend_and_zerocopysend_http1(live: Live, tmp_path: Path) -> None:
    target = tmp_path / "data.bin"
    payload = bytes(range(256)) * 4096  # 1 MiB
    target.write_bytes(payload)
    server = live(ext_app)
    r = httpx.get(f"{server.url}/file/x?{target}")
    assert r.status_code == 200
    assert r.content == payload
    r = httpx.get(f"{server.url}/zerocopy?{target}")
    assert r.content == payload[5:15]
    # a path that does not exist, or is not a regular file: 500, the head was never written
    r = httpx.get(f"{server.url}/file/x?{tmp_path / 'missing'}")
    assert r.status_code == 500
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    r = httpx.get(f"{server.url}/file/x?{fifo}", timeout=5)
    assert r.status_code == 500


class H2Client:
    """A minimal HTTP/2 client over a raw socket (prior knowledge)."""

    def __init__(self, port: int, enable_push: bool = False) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding=None)
        )
        self.conn.local_settings = h2.settings.Settings(
            client=True, initial_values={h2.settings.SettingCodes.ENABLE_PUSH: int(enable_push)}
        )
        self.conn.initiate_connection()
        self.sock.sendall(self.conn.data_to_send())

    def request(self, path: bytes, extra: list[tuple[bytes, bytes]] | None = None) -> int:
        stream_id = self.conn.get_next_available_stream_id()
        headers = [(b":method", b"GET"), (b":path", path), (b":scheme", b"http")]
        headers += [(b":authority", b"127.0.0.1"), *(extra or [])]
        self.conn.send_headers(stream_id, headers, end_stream=True)
        self.sock.sendall(self.conn.data_to_send())
        return stream_id

    def events_until(self, done: Callable[[list[Any]], bool], timeout: float = 5) -> list[Any]:
        events: list[Any] = []
        deadline = time.monotonic() + timeout
        while not done(events) and time.monotonic() < deadline:
            data = self.sock.recv(65536)
            if not data:
                break
            for event in self.conn.receive_data(data):
                events.append(event)
                if isinstance(event, h2.events.DataReceived):
                    self.conn.acknowledge_received_data(
                        event.flow_controlled_length, event.stream_id
                    )
            self.sock.sendall(self.conn.data_to_send())
        return events

    def close(self) -> None:
        self.sock.close()


def ended(stream_id: int) -> Callable[[list[Any]], bool]:
    return lambda events: any(
        isinstance(e, h2.events.StreamEnded) and e.stream_id == stream_id for e in events
    )


def test_trailers_and_early_hints_http2(live: Live) -> None:
    server = live(ext_app)
    client = H2Client(server.port)
    try:
        sid = client.request(b"/trailers")
        events = client.events_until(ended(sid))
        trailers = [e for e in events if isinstance(e, h2.events.TrailersReceived)]
        assert trailers
        assert (b"x-sum", b"42") in trailers[0].headers
        assert (b"x-more", b"1") in trailers[0].headers
        body = b"".join(e.data for e in events if isinstance(e, h2.events.DataReceived))
        assert body == b"body"
        sid = client.request(b"/hints")
        events = client.events_until(ended(sid))
        heads = [e for e in events if isinstance(e, h2.events.InformationalResponseReceived)]
        assert heads
        hint_headers = heads[0].headers or []
        assert (b":status", b"103") in hint_headers
        assert (b"link", b"</a.css>; rel=preload") in hint_headers
    finally:
        client.close()
    assert "http.response.trailers" in seen_extensions[-1]
    assert "http.response.push" not in seen_extensions[-1]  # this client disabled push


def test_server_push_http2(live: Live) -> None:
    server = live(ext_app)
    client = H2Client(server.port, enable_push=True)
    try:
        sid = client.request(b"/push")
        events = client.events_until(
            lambda ev: (
                ended(sid)(ev)
                and any(isinstance(e, h2.events.StreamEnded) and e.stream_id % 2 == 0 for e in ev)
            )
        )
    finally:
        client.close()
    pushes = [e for e in events if isinstance(e, h2.events.PushedStreamReceived)]
    assert len(pushes) == 1
    assert (b":path", b"/pushed.css") in (pushes[0].headers or [])
    pushed = pushes[0].pushed_stream_id
    body = b"".join(
        e.data for e in events if isinstance(e, h2.events.DataReceived) and e.stream_id == pushed
    )
    assert body == b"/pushed.css"
    assert any("http.response.push" in ext for ext in seen_extensions)


def test_push_follows_the_clients_later_settings(live: Live) -> None:
    """SETTINGS_ENABLE_PUSH changed mid-connection decides the next streams' push."""
    server = live(ext_app)
    client = H2Client(server.port, enable_push=True)
    try:
        sid = client.request(b"/other")
        client.events_until(ended(sid))
        assert "http.response.push" in seen_extensions[-1]
        client.conn.update_settings({h2.settings.SettingCodes.ENABLE_PUSH: 0})
        client.sock.sendall(client.conn.data_to_send())
        client.events_until(
            lambda ev: any(isinstance(e, h2.events.SettingsAcknowledged) for e in ev)
        )
        sid = client.request(b"/push")
        events = client.events_until(ended(sid))
        assert "http.response.push" not in seen_extensions[-1]
        assert not [e for e in events if isinstance(e, h2.events.PushedStreamReceived)]
        client.conn.update_settings({h2.settings.SettingCodes.ENABLE_PUSH: 1})
        client.sock.sendall(client.conn.data_to_send())
        client.events_until(
            lambda ev: any(isinstance(e, h2.events.SettingsAcknowledged) for e in ev)
        )
        sid = client.request(b"/other")
        client.events_until(ended(sid))
        assert "http.response.push" in seen_extensions[-1]
    finally:
        client.close()


def test_pathsend_http2(live: Live, tmp_path: Path) -> None:
    target = tmp_path / "data.bin"
    payload = b"0123456789" * 50000
    target.write_bytes(payload)
    server = live(ext_app)
    client = H2Client(server.port)
    try:
        sid = client.request(b"/file/x?" + str(target).encode())
        events = client.events_until(ended(sid), timeout=10)
    finally:
        client.close()
    body = b"".join(e.data for e in events if isinstance(e, h2.events.DataReceived))
    assert body == payload


@pytest.mark.parametrize("path", [b"/hints", b"/other"])
def test_plain_http2_request_still_works(live: Live, path: bytes) -> None:
    server = live(ext_app)
    client = H2Client(server.port)
    try:
        sid = client.request(path)
        events = client.events_until(ended(sid))
    finally:
        client.close()
    responses = [e for e in events if isinstance(e, h2.events.ResponseReceived)]
    assert (b":status", b"200") in responses[0].headers


def test_h2c_upgrade_answers_on_stream_1(live: Live) -> None:
    """``Upgrade: h2c`` (RFC 7540 §3.2): 101, then the request is answered over HTTP/2."""
    import base64

    server = live(ext_app)
    conn = h2.connection.H2Connection(
        h2.config.H2Configuration(client_side=True, header_encoding=None)
    )
    settings = conn.initiate_upgrade_connection()
    assert settings is not None
    with server.connect() as sock:
        sock.sendall(
            b"GET /upgraded HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\n"
            b"Upgrade: h2c\r\nHTTP2-Settings: " + settings + b"\r\n\r\n"
        )
        buf = b""
        while b"\r\n\r\n" not in buf:
            buf += sock.recv(65536)
        head, _, rest = buf.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101 Switching Protocols")
        assert b"upgrade: h2c" in head.lower()
        sock.sendall(conn.data_to_send())
        events = list(conn.receive_data(rest)) if rest else []
        deadline = time.monotonic() + 5
        while not ended(1)(events) and time.monotonic() < deadline:
            data = sock.recv(65536)
            if not data:
                break
            events.extend(conn.receive_data(data))
            sock.sendall(conn.data_to_send())
    body = b"".join(e.data for e in events if isinstance(e, h2.events.DataReceived))
    assert body == b"/upgraded"
    assert base64.urlsafe_b64decode(
        settings + b"=" * (-len(settings) % 4)
    )  # a real settings payload


def test_h2c_upgrade_with_body_stays_http1(live: Live) -> None:
    server = live(ext_app)
    data = raw(
        server,
        b"POST /posted HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings, close\r\n"
        b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\nContent-Length: 5\r\n\r\nhello",
    )
    assert data.startswith(b"HTTP/1.1 200 OK")
    assert data.endswith(b"/posted\r\n0\r\n\r\n")

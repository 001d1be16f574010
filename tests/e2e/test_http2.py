"""HTTP/2 over real sockets: curl, httpx (TLS + ALPN), h2load, and a raw ``h2`` client."""

from __future__ import annotations

import asyncio
import gc
import hashlib
import json
import logging
import re
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import h2.events
import h2.settings
import httpx
import pytest
import trustme

from tests.conftest import LiveServer, recv_until_closed
from tests.support.h2client import H2Client

Live = Callable[..., LiveServer]
Scope = dict[str, Any]

CURL = shutil.which("curl") or "/usr/bin/curl"
H2LOAD = shutil.which("h2load")
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
ENHANCE_YOUR_CALM = 0xB
MiB = 1024 * 1024


def pattern(size: int) -> bytes:
    """``size`` bytes that are not all the same (a misplaced chunk would show)."""
    block = bytes(range(251))  # a prime length: chunk boundaries never line up with it
    return (block * (size // len(block) + 1))[:size]


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("latin-1")
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if k != "state"}
    return value


async def _respond(send: Any, body: bytes, status: int = 200, ctype: bytes = b"text/plain") -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", ctype), (b"content-length", b"%d" % len(body))],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _read_body(receive: Any, delay: float = 0.0) -> tuple[bytes, list[int]]:
    body = bytearray()
    sizes: list[int] = []
    while True:
        message = await receive()
        assert message["type"] == "http.request"
        chunk = message.get("body", b"")
        body += chunk
        sizes.append(len(chunk))
        if not message.get("more_body"):
            return bytes(body), sizes
        if delay:
            await asyncio.sleep(delay)


async def basic_app(scope: Scope, receive: Any, send: Any) -> None:
    """/scope: the scope as JSON; /echo: digest of the body; /big?n=N: N bytes;
    /no-read: answered without reading the body; else "ok"."""
    assert scope["type"] == "http"
    path = scope["path"]
    if path == "/scope":
        body, _ = await _read_body(receive)
        await _respond(send, json.dumps(_plain(dict(scope))).encode(), ctype=b"application/json")
    elif path == "/echo":
        slow = scope["query_string"] == b"slow=1"
        body, sizes = await _read_body(receive, delay=0.005 if slow else 0.0)
        result = {
            "length": len(body),
            "sha256": hashlib.sha256(body).hexdigest(),
            "max_chunk": max(sizes),
            "receives": len(sizes),
        }
        await _respond(send, json.dumps(result).encode(), ctype=b"application/json")
    elif path == "/no-read":
        await _respond(send, b"not reading that")  # answers without reading the body
    elif path == "/big":
        await _read_body(receive)
        size = int(scope["query_string"].split(b"=")[1])
        await _respond(send, pattern(size), ctype=b"application/octet-stream")
    else:
        await _read_body(receive)
        await _respond(send, b"ok")


class Certs:
    def __init__(self, root: Path) -> None:
        self.ca = trustme.CA()
        server = self.ca.issue_cert("localhost", "127.0.0.1")
        self.certfile = root / "server.pem"
        self.keyfile = root / "server.key"
        server.cert_chain_pems[0].write_to_path(self.certfile)
        server.private_key_pem.write_to_path(self.keyfile)
        self.ca_file = root / "ca.pem"
        self.ca.cert_pem.write_to_path(self.ca_file)

    def client_context(self, alpn: list[str] | None = None) -> ssl.SSLContext:
        context = ssl.create_default_context()
        self.ca.configure_trust(context)
        if alpn is not None:
            context.set_alpn_protocols(alpn)
        return context

    def options(self) -> dict[str, Any]:
        return {"certfile": str(self.certfile), "keyfile": str(self.keyfile)}


@pytest.fixture
def certs(tmp_path: Path) -> Certs:
    return Certs(tmp_path)


def h2_client(server: LiveServer, clients: list[H2Client], **kwargs: Any) -> H2Client:
    client = H2Client(server.connect(), **kwargs)
    clients.append(client)
    return client


def wait_until(predicate: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        time.sleep(0.01)


def tasks_of(server: LiveServer) -> int:
    state = server.server.state
    assert state is not None
    return len(state.tasks)


def curl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CURL, "-sS", "--max-time", "20", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


# --- getting onto HTTP/2 -----------------------------------------------------------------------------


def test_curl_prior_knowledge(live: Live, tmp_path: Path) -> None:
    server = live(basic_app)
    out = tmp_path / "body.json"
    result = curl(
        "--http2-prior-knowledge",
        "-o",
        str(out),
        "-w",
        "%{http_version} %{response_code}",
        "-H",
        "X-Test: yes",
        f"{server.url}/scope?a=1&b=2",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "2 200"
    scope = json.loads(out.read_text())
    assert scope["http_version"] == "2"
    assert scope["scheme"] == "http"
    assert scope["method"] == "GET"
    assert scope["path"] == "/scope"
    assert scope["query_string"] == "a=1&b=2"
    headers = scope["headers"]
    assert headers[0] == ["host", f"127.0.0.1:{server.port}"]
    assert ["x-test", "yes"] in headers
    assert not any(name.startswith(":") for name, _ in headers)


def test_curl_http2_over_tls(live: Live, certs: Certs, tmp_path: Path) -> None:
    server = live(basic_app, **certs.options())
    out = tmp_path / "body.json"
    result = curl(
        "--http2",
        "--cacert",
        str(certs.ca_file),
        "-o",
        str(out),
        "-w",
        "%{http_version}",
        f"https://127.0.0.1:{server.port}/scope",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "2"
    scope = json.loads(out.read_text())
    assert scope["http_version"] == "2"
    assert scope["scheme"] == "https"
    assert "tls" in scope["extensions"]


def test_curl_h2c_upgrade(live: Live, tmp_path: Path) -> None:
    """Cleartext ``Upgrade: h2c`` (issue 4): the upgrading request is answered on stream 1."""
    server = live(basic_app)
    out = tmp_path / "body.json"
    result = curl("--http2", "-o", str(out), "-w", "%{http_version}", f"{server.url}/scope")
    assert result.returncode == 0, result.stderr
    assert json.loads(out.read_text())["path"] == "/scope"
    assert result.stdout == "2", "the h2c upgrade was not taken"


def test_httpx_http2_over_tls(live: Live, certs: Certs) -> None:
    server = live(basic_app, **certs.options())
    with httpx.Client(http2=True, verify=certs.client_context(), timeout=10) as client:
        r = client.get(f"https://127.0.0.1:{server.port}/scope?x=1")
        assert r.status_code == 200
        assert r.http_version == "HTTP/2"
        scope = r.json()
        assert scope["http_version"] == "2"
        assert scope["scheme"] == "https"
        assert scope["query_string"] == "x=1"
        assert scope["headers"][0] == ["host", f"127.0.0.1:{server.port}"]
        assert scope["extensions"]["tls"]["tls_version"] in (0x0303, 0x0304)
        # a second request reuses the connection
        r2 = client.post(f"https://127.0.0.1:{server.port}/echo", content=b"abc" * 1000)
        assert r2.http_version == "HTTP/2"
        assert r2.json()["length"] == 3000


def test_alpn_offers_h2_then_http11(live: Live, certs: Certs) -> None:
    server = live(basic_app, **certs.options())
    for offered, chosen in ((["h2", "http/1.1"], "h2"), (["http/1.1"], "http/1.1")):
        context = certs.client_context(offered)
        with (
            socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw,
            context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
        ):
            assert tls.selected_alpn_protocol() == chosen


def test_raw_h2_client_over_tls(live: Live, certs: Certs) -> None:
    server = live(basic_app, **certs.options())
    context = certs.client_context(["h2"])
    raw = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    tls = context.wrap_socket(raw, server_hostname="127.0.0.1")
    client = H2Client(tls, scheme=b"https")
    try:
        response = client.response(client.request("GET", "/scope"))
        assert response.status == 200
        scope = json.loads(bytes(response.body))
        assert (scope["http_version"], scope["scheme"]) == ("2", "https")
    finally:
        client.close()


# --- --no-http2 ------------------------------------------------------------------------------------------


def test_no_http2_refuses_the_prior_knowledge_preface(live: Live) -> None:
    server = live(basic_app, http2=False)
    with server.connect() as sock:
        sock.sendall(PREFACE + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")  # preface + empty SETTINGS
        reply = recv_until_closed(sock)
    assert reply.startswith(b"HTTP/1.1 400 ")
    assert b"connection: close" in reply.lower()
    # plain HTTP/1.1 is still served
    r = httpx.get(f"{server.url}/scope", timeout=10)
    assert r.json()["http_version"] == "1.1"


def test_no_http2_alpn_offers_only_http11(live: Live, certs: Certs) -> None:
    server = live(basic_app, http2=False, **certs.options())
    context = certs.client_context(["h2", "http/1.1"])
    with (
        socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        assert tls.selected_alpn_protocol() == "http/1.1"
    with httpx.Client(http2=True, verify=certs.client_context(), timeout=10) as client:
        r = client.get(f"https://127.0.0.1:{server.port}/scope")
        assert r.http_version == "HTTP/1.1"
        assert r.json()["http_version"] == "1.1"


def test_http1_still_served_when_http2_is_on(live: Live) -> None:
    server = live(basic_app)
    r = httpx.get(f"{server.url}/scope", timeout=10)
    assert r.json()["http_version"] == "1.1"


# --- SETTINGS and PING ------------------------------------------------------------------------------------


def test_settings_acknowledged_and_advertised(live: Live, clients: list[H2Client]) -> None:
    server = live(
        basic_app,
        h2_max_concurrent_streams=7,
        h2_initial_window_size=100_000,
        h2_max_inbound_frame_size=32768,
        h2_max_header_list_size=20_000,
    )
    client = h2_client(server, clients)
    client.wait_for(lambda: bool(client.of_type(h2.events.SettingsAcknowledged)), 5)
    changed = client.of_type(h2.events.RemoteSettingsChanged)
    assert changed
    codes = h2.settings.SettingCodes
    values = {int(k): v.new_value for k, v in changed[0].changed_settings.items()}
    assert values[codes.MAX_CONCURRENT_STREAMS] == 7
    assert values[codes.INITIAL_WINDOW_SIZE] == 100_000
    assert values[codes.MAX_FRAME_SIZE] == 32768
    assert values[codes.MAX_HEADER_LIST_SIZE] == 20_000
    # a later SETTINGS frame is acknowledged too
    client.conn.update_settings({codes.ENABLE_PUSH: 0})
    client.flush()
    client.wait_for(lambda: len(client.of_type(h2.events.SettingsAcknowledged)) == 2, 5)
    response = client.response(client.request("GET", "/"))
    assert (response.status, bytes(response.body)) == (200, b"ok")


def test_ping_is_answered(live: Live, clients: list[H2Client]) -> None:
    server = live(basic_app)
    client = h2_client(server, clients)
    client.ping(b"pingpong")
    client.ping(b"\x00\x01\x02\x03\x04\x05\x06\x07")
    client.wait_for(lambda: len(client.of_type(h2.events.PingAckReceived)) == 2, 5)
    assert [e.ping_data for e in client.of_type(h2.events.PingAckReceived)] == [
        b"pingpong",
        b"\x00\x01\x02\x03\x04\x05\x06\x07",
    ]


# --- many streams ----------------------------------------------------------------------------------------


def test_fifty_concurrent_streams_on_one_connection(live: Live, clients: list[H2Client]) -> None:
    lock = threading.Lock()
    in_flight = 0
    peak = 0

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        nonlocal in_flight, peak
        with lock:
            in_flight += 1
            peak = max(peak, in_flight)
        try:
            await asyncio.sleep(0.1)
        finally:
            with lock:
                in_flight -= 1
        await _respond(send, scope["path"].encode())

    server = live(app)
    client = h2_client(server, clients)
    ids = [client.request("GET", f"/n/{i}", flush=False) for i in range(50)]
    client.flush()  # all 50 HEADERS frames in one write
    client.wait_for(lambda: all(client.responses[i].done for i in ids), 15)
    for i, stream_id in enumerate(ids):
        response = client.responses[stream_id]
        assert response.status == 200
        assert bytes(response.body) == f"/n/{i}".encode()
    assert peak >= 25, f"streams were not served concurrently (peak {peak})"


def test_httpx_fifty_parallel_requests_share_one_connection(live: Live, certs: Certs) -> None:
    """httpx multiplexes 50 concurrent requests over one TLS connection.

    (asyncio rather than threads: httpcore's sync HTTP/2 shared across threads
    races on its own stream bookkeeping, encode/httpx#3072.)
    """
    server = live(basic_app, **certs.options())
    base = f"https://127.0.0.1:{server.port}"

    async def main() -> tuple[Any, list[httpx.Response]]:
        async with httpx.AsyncClient(
            http2=True, verify=certs.client_context(), timeout=20
        ) as client:
            first = (await client.get(f"{base}/scope")).json()["client"]
            responses = await asyncio.gather(
                *(client.get(f"{base}/scope?i={i}") for i in range(50))
            )
            return first, list(responses)

    first, responses = asyncio.run(asyncio.wait_for(main(), 30))
    assert all(r.status_code == 200 and r.http_version == "HTTP/2" for r in responses)
    scopes = [r.json() for r in responses]
    assert sorted(scope["query_string"] for scope in scopes) == sorted(f"i={i}" for i in range(50))
    assert {tuple(scope["client"]) for scope in scopes} == {tuple(first)}


@pytest.mark.skipif(H2LOAD is None, reason="h2load (nghttp2-client) is not installed")
def test_h2load_without_errors(live: Live) -> None:
    server = live(basic_app)
    assert H2LOAD is not None
    result = subprocess.run(
        [H2LOAD, "-n", "2000", "-c", "4", "-m", "10", "-T", "20", "-N", "20", f"{server.url}/"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    match = re.search(
        r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
        r"(\d+) failed, (\d+) errored, (\d+) timeout",
        result.stdout,
    )
    assert match is not None, result.stdout
    total, started, done, succeeded, failed, errored, timeout = map(int, match.groups())
    assert (total, started, done, succeeded) == (2000, 2000, 2000, 2000), result.stdout
    assert (failed, errored, timeout) == (0, 0, 0), result.stdout
    assert re.search(r"status codes: 2000 2xx", result.stdout), result.stdout
    assert "h2" in result.stdout  # "Application protocol: h2c"


# --- flow control -------------------------------------------------------------------------------------------


def test_upload_larger_than_the_window_arrives_intact(live: Live, clients: list[H2Client]) -> None:
    server = live(basic_app)
    client = h2_client(server, clients)
    body = pattern(MiB)
    stream_id = client.request("POST", "/echo?slow=1", body=body)
    response = client.response(stream_id, timeout=30)
    assert response.status == 200
    result = json.loads(bytes(response.body))
    assert result["length"] == MiB
    assert result["sha256"] == hashlib.sha256(body).hexdigest()
    # the app never holds more unread body than the stream window allows
    assert result["max_chunk"] <= 65535
    assert result["receives"] >= MiB // 65535


def test_uploads_on_two_streams_at_once(live: Live, clients: list[H2Client]) -> None:
    server = live(basic_app)
    client = h2_client(server, clients)
    a, b = pattern(300_000), pattern(300_001)[::-1]
    sa = client.request("POST", "/echo", end=False)
    sb = client.request("POST", "/echo", end=False)
    for offset in range(0, len(b), 30_000):  # interleaved, 30000 bytes at a time
        for stream_id, body in ((sa, a), (sb, b)):
            if offset < len(body):
                end = offset + 30_000 >= len(body)
                client.send_body(stream_id, body[offset : offset + 30_000], end=end)
    ra, rb = client.response(sa, 30), client.response(sb, 30)
    assert json.loads(bytes(ra.body))["sha256"] == hashlib.sha256(a).hexdigest()
    assert json.loads(bytes(rb.body))["sha256"] == hashlib.sha256(b).hexdigest()


def test_upload_the_app_does_not_read_is_stopped_after_the_response(
    live: Live, clients: list[H2Client]
) -> None:
    """RFC 9113 §8.1: the response is complete, the rest of the body is refused with
    RST_STREAM(NO_ERROR): the client stops sending and the stream's slot is free."""
    server = live(basic_app)
    client = h2_client(server, clients)
    stream_id = client.request("POST", "/no-read", end=False)
    client.send_body(stream_id, b"x" * 1000, end=False)
    response = client.response(stream_id)
    client.wait_for(lambda: response.reset is not None)
    assert response.status == 200
    assert bytes(response.body) == b"not reading that"
    assert response.ended  # the whole response came first
    assert response.reset == 0  # NO_ERROR
    follow = client.response(client.request("GET", "/"))  # the connection goes on
    assert bytes(follow.body) == b"ok"


def test_response_larger_than_the_window_is_delivered(live: Live, clients: list[H2Client]) -> None:
    server = live(basic_app)
    client = h2_client(server, clients)
    response = client.response(client.request("GET", f"/big?n={MiB}"), timeout=30)
    assert response.status == 200
    assert response.header(b"content-length") == b"%d" % MiB
    assert len(response.body) == MiB
    assert bytes(response.body) == pattern(MiB)
    frames = [e for e in client.of_type(h2.events.DataReceived) if e.stream_id == 1]
    assert all(len(e.data or b"") <= 16384 for e in frames)


def test_httpx_large_response_over_tls(live: Live, certs: Certs) -> None:
    server = live(basic_app, **certs.options())
    with httpx.Client(http2=True, verify=certs.client_context(), timeout=30) as client:
        r = client.get(f"https://127.0.0.1:{server.port}/big?n={2 * MiB}")
    assert r.http_version == "HTTP/2"
    assert r.content == pattern(2 * MiB)


def test_send_waits_for_the_client_window(live: Live, clients: list[H2Client]) -> None:
    sent = threading.Event()

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": pattern(200_000), "more_body": True})
        sent.set()
        await send({"type": "http.response.body", "body": b""})

    server = live(app)
    client = h2_client(server, clients, auto_ack=False)
    stream_id = client.request("GET", "/")
    response = client.responses[stream_id]
    client.wait_for(lambda: len(response.body) >= 65535, 10)
    time.sleep(0.3)
    client.read(0.1)
    assert len(response.body) == 65535  # the window, and not a byte more
    assert not response.ended
    assert not sent.is_set(), "send() returned while the body was still queued"
    client.conn.increment_flow_control_window(MiB)
    client.conn.increment_flow_control_window(MiB, stream_id=stream_id)
    client.flush()
    client.response(stream_id, 10)
    assert bytes(response.body) == pattern(200_000)
    assert sent.wait(5)


def test_queued_final_body_survives_the_idle_timeout(live: Live, clients: list[H2Client]) -> None:
    """The app is done, but its last body message still waits for the client's window."""

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": pattern(200_000)})

    server = live(app, timeout_keep_alive=1)
    client = h2_client(server, clients, auto_ack=False)
    stream_id = client.request("GET", "/")
    response = client.responses[stream_id]
    client.wait_for(lambda: len(response.body) >= 65535, 10)
    # The app's last send() waits for the window (it returns once the body
    # left); meanwhile the connection must not count as idle.
    time.sleep(1.6)  # longer than the keep-alive timeout, with the stream still unfinished
    client.conn.increment_flow_control_window(MiB)
    client.conn.increment_flow_control_window(MiB, stream_id=stream_id)
    client.flush()
    client.wait_for(lambda: response.done or client.closed, 10)
    received = len(response.body)
    assert received == 200_000, f"the queued rest of the response was dropped ({received} bytes)"
    assert response.ended


# --- resets ----------------------------------------------------------------------------------------------------


def test_client_reset_disconnects_and_cancels_that_stream_only(
    live: Live, clients: list[H2Client]
) -> None:
    started = threading.Event()
    seen: list[str] = []

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["path"] == "/wait":
            await receive()  # the (empty) request body
            watcher = asyncio.ensure_future(receive())  # the next event: a disconnect
            started.set()
            try:
                await asyncio.sleep(20)
            except asyncio.CancelledError:
                message = await asyncio.wait_for(watcher, 5)
                seen.append(f"cancelled, receive() -> {message['type']}")
                raise
            seen.append("not cancelled")
            return
        if scope["path"] == "/slow":
            await asyncio.sleep(0.3)
        await basic_app(scope, receive, send)

    server = live(app)
    client = h2_client(server, clients)
    slow = client.request("GET", "/slow")
    waiting = client.request("GET", "/wait")
    assert started.wait(5)
    client.reset(waiting)
    wait_until(lambda: bool(seen), 5)
    assert seen == ["cancelled, receive() -> http.disconnect"]
    after = client.request("GET", "/after")
    assert client.response(slow).status == 200
    assert bytes(client.responses[slow].body) == b"ok"
    assert bytes(client.response(after).body) == b"ok"
    # nothing was ever sent on the reset stream, and no task is left behind
    assert client.responses[waiting].status is None
    wait_until(lambda: tasks_of(server) == 0, 5)


def test_default_and_extra_headers_over_http2(live: Live, clients: list[H2Client]) -> None:
    """Server, Date and --header fields are added to every HTTP/2 response, each once, as
    given (a name given twice gives two fields); a field the app sets replaces ours."""

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        headers = [(b"Server", b"mine"), (b"x-extra", b"app")] if scope["path"] == "/own" else []
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b""})

    server = live(app, header=["X-Frame-Options:DENY", "X-Extra:1", "X-Extra:2"])
    client = h2_client(server, clients)
    ours = client.response(client.request("GET", "/"))
    names = [name for name, _ in ours.headers]
    assert names.count(b"server") == names.count(b"date") == 1
    assert ours.header(b"server") == b"bascule"
    assert [v for n, v in ours.headers if n == b"x-extra"] == [b"1", b"2"]
    assert ours.header(b"x-frame-options") == b"DENY"
    own = client.response(client.request("GET", "/own"))
    assert [v for n, v in own.headers if n == b"server"] == [b"mine"]
    assert [v for n, v in own.headers if n == b"x-extra"] == [b"app"]
    assert own.header(b"x-frame-options") == b"DENY"


def test_header_pairs_given_as_lists_over_http2(live: Live, clients: list[H2Client]) -> None:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        headers = [[b"content-type", b"text/plain"], [b"x-a", b"1"]]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"listed"})

    server = live(app)
    client = h2_client(server, clients)
    response = client.response(client.request("GET", "/"))
    assert (response.status, bytes(response.body)) == (200, b"listed")
    assert response.header(b"x-a") == b"1"


def test_finished_streams_leave_no_reference_cycles(live: Live, clients: list[H2Client]) -> None:
    """A finished stream is freed when its last reference goes, not by the garbage collector:
    a reference cycle per request would leave each one's objects to a collection."""
    server = live(basic_app)
    client = h2_client(server, clients)
    assert client.response(client.request("GET", "/warm-up")).status == 200
    wait_until(lambda: tasks_of(server) == 0, 5)
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)  # what the collector finds is kept in gc.garbage
    try:
        streams = [client.request("GET", f"/{i}") for i in range(20)]
        assert [client.response(s).status for s in streams] == [200] * 20
        wait_until(lambda: tasks_of(server) == 0, 5)
        gc.collect()
        left = sorted({type(o).__name__ for o in gc.garbage} & {"RequestCycle", "H2Stream", "Task"})
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    assert left == []


def test_rapid_reset_gets_goaway_and_tasks_are_cancelled(
    live: Live, clients: list[H2Client]
) -> None:
    started = cancelled = 0
    lock = threading.Lock()

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        nonlocal started, cancelled
        if scope["path"] == "/other":
            await basic_app(scope, receive, send)
            return
        with lock:
            started += 1
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            with lock:
                cancelled += 1
            raise

    server = live(app)
    client = h2_client(server, clients)
    for _ in range(400):  # the default budget is 200 resets per 1000 streams
        stream_id = client.request("GET", "/", flush=False)
        client.conn.reset_stream(stream_id, 0x8)
    client.flush()
    client.wait_closed(10)
    assert [g.error_code for g in client.goaways] == [ENHANCE_YOUR_CALM]
    wait_until(lambda: tasks_of(server) == 0, 5)
    # every app task of a reset stream was cancelled, none leaked
    assert cancelled == started
    # other connections are served as usual
    other = h2_client(server, clients)
    assert bytes(other.response(other.request("GET", "/other"), 5).body) == b"ok"


# --- app errors ----------------------------------------------------------------------------------------------


async def faulty_app(scope: Scope, receive: Any, send: Any) -> None:
    if scope["path"] == "/boom":
        raise RuntimeError("boom before the response")
    if scope["path"] == "/invalid":
        await send({"type": "http.response.start", "status": "200", "headers": []})
        return
    if scope["path"] in ("/huge-length", "/bad-length"):
        # int() refuses 5,000 digits with a ValueError that names nothing
        length = b"1" * 5000 if scope["path"] == "/huge-length" else b"12abc"
        headers = [(b"content-length", length)]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        return
    await basic_app(scope, receive, send)


def test_app_exception_is_a_500_on_that_stream_only(
    live: Live, clients: list[H2Client], caplog: pytest.LogCaptureFixture
) -> None:
    server = live(faulty_app)
    client = h2_client(server, clients)
    with caplog.at_level(logging.ERROR, logger="bascule.error"):
        ok1 = client.request("GET", "/before")
        boom = client.request("GET", "/boom")
        ok2 = client.request("GET", "/after")
        failed = client.response(boom)
        assert failed.status == 500
        assert bytes(failed.body) == b"Internal Server Error\n"
        assert client.response(ok1).status == 200
        assert client.response(ok2).status == 200
        # the connection goes on
        later = client.response(client.request("GET", "/later"))
        assert (later.status, bytes(later.body)) == (200, b"ok")
        assert not client.goaways
    errors = [r for r in caplog.records if r.name == "bascule.error"]
    assert any(
        "exception in ASGI app" in r.getMessage()
        and r.exc_info is not None
        and isinstance(r.exc_info[1], RuntimeError)
        for r in errors
    )


def test_invalid_app_message_is_a_500_with_a_clear_log(
    live: Live, clients: list[H2Client], caplog: pytest.LogCaptureFixture
) -> None:
    server = live(faulty_app)
    client = h2_client(server, clients)
    with caplog.at_level(logging.ERROR, logger="bascule.error"):
        bad = client.response(client.request("GET", "/invalid"))
        good = client.response(client.request("GET", "/fine"))
    assert bad.status == 500
    assert bytes(bad.body) == b"Internal Server Error\n"
    assert good.status == 200
    messages = [r.getMessage() for r in caplog.records if r.name == "bascule.error"]
    assert any(
        "invalid ASGI message" in m and '"GET /invalid"' in m and "status" in m for m in messages
    ), messages


def test_bad_content_length_is_a_500_on_that_stream_that_names_it(
    live: Live, clients: list[H2Client], caplog: pytest.LogCaptureFixture
) -> None:
    """The head with the bad Content-Length is never held: the 500 goes out in its place,
    and the connection goes on."""
    server = live(faulty_app)
    client = h2_client(server, clients)
    with caplog.at_level(logging.ERROR, logger="bascule.error"):
        huge = client.response(client.request("GET", "/huge-length"))
        bad = client.response(client.request("GET", "/bad-length"))
        good = client.response(client.request("GET", "/fine"))
    assert (huge.status, bad.status, good.status) == (500, 500, 200)
    assert bytes(bad.body) == b"Internal Server Error\n"
    assert not client.goaways
    messages = [r.getMessage() for r in caplog.records if r.name == "bascule.error"]
    assert any("Content-Length b'1111" in m and "too large" in m for m in messages), messages
    assert any("invalid Content-Length b'12abc'" in m for m in messages), messages


# --- graceful shutdown ----------------------------------------------------------------------------------------


def test_graceful_shutdown_sends_goaway_and_finishes_open_streams(
    live: Live, clients: list[H2Client]
) -> None:
    started = threading.Event()

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await receive()
        started.set()
        await asyncio.sleep(0.5)
        body = pattern(100_000)  # more than one window: needs WINDOW_UPDATEs after GOAWAY
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-length", b"%d" % len(body))],
            }
        )
        await send({"type": "http.response.body", "body": body})

    server = live(app, timeout_graceful_shutdown=5)
    client = h2_client(server, clients)
    stream_id = client.request("GET", "/slow")
    assert started.wait(5)
    stopper = threading.Thread(target=server.stop)
    stopper.start()
    response = client.responses[stream_id]
    try:
        client.wait_for(lambda: bool(client.goaways), 5)
        assert [(g.error_code, g.last_stream_id) for g in client.goaways] == [(0, stream_id)]
        assert not response.done  # GOAWAY came first, while the app was still working
        client.wait_closed(10)
    finally:
        stopper.join(20)
    assert not stopper.is_alive()
    assert response.status == 200
    received = len(response.body)
    assert received == 100_000, f"the response was cut when the connection closed ({received})"
    assert bytes(response.body) == pattern(100_000)
    assert response.ended


def test_limit_concurrency_counts_the_streams_of_one_read(live: Live) -> None:
    """--limit-concurrency 2 and eight requests in one write: two are served, six get 503.

    The streams of one read start their apps one after the other, each counting those
    started before it (the check once ran before any of them was counted)."""

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        await asyncio.sleep(0.3)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"%d" % len(body)})

    server = live(app, http2=True, limit_concurrency=2)
    client = H2Client(server.connect())
    try:
        for _ in range(3):
            # 8 x 8,000 body bytes fit the connection's 65,535-byte window once: unless the
            # refused streams give theirs back, the second round cannot be sent.
            ids = []
            for _ in range(8):
                sid = client.request("POST", "/", end=False, flush=False)
                client.conn.send_data(sid, b"x" * 8000, end_stream=True)
                ids.append(sid)
            client.flush()  # one write: the server reads the eight streams at once
            responses = [client.response(sid) for sid in ids]
            assert sorted(r.status or 0 for r in responses) == [200] * 2 + [503] * 6
            assert {bytes(r.body) for r in responses if r.status == 200} == {b"8000"}
        # Every body byte received is owed back to the client or was given back already:
        # the refused streams' bytes too (no app will read them).
        state = server.server.state
        assert state is not None
        (driver,) = list(state.connections)
        h2 = cast(Any, driver).h2
        deadline = time.monotonic() + 5
        while h2._recv_window + h2._recv_unacked < h2._connection_window:
            assert time.monotonic() < deadline, "refused streams kept connection window"
            time.sleep(0.01)
    finally:
        client.sock.close()

"""Behind a proxy: PROXY protocol v1/v2 on real sockets, X-Forwarded-* / Forwarded,
and a real HAProxy and nginx in front of bascule (started here, stopped by PID)."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme
from websockets.sync.client import connect as ws_connect

from tests.conftest import LiveServer, recv_response, recv_until_closed
from tests.support.h2client import H2Client

Live = Callable[..., LiveServer]
Scope = dict[str, Any]

V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """caplog that sees bascule's loggers even after an earlier test set them not to propagate."""
    loggers = [logging.getLogger("bascule.access"), logging.getLogger("bascule.error")]
    saved = [(lg.level, lg.disabled) for lg in loggers]
    for lg in loggers:
        lg.addHandler(caplog.handler)
        lg.setLevel(logging.INFO)
        lg.disabled = False
    caplog.handler.setLevel(logging.INFO)
    try:
        yield caplog
    finally:
        for lg, (level, disabled) in zip(loggers, saved, strict=True):
            lg.removeHandler(caplog.handler)
            lg.setLevel(level)
            lg.disabled = disabled


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("latin-1")
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _facts(scope: Scope) -> dict[str, Any]:
    headers = dict(scope["headers"])
    facts: dict[str, Any] = _plain(
        {
            "type": scope["type"],
            "client": scope["client"],
            "server": scope["server"],
            "scheme": scope["scheme"],
            "host": headers.get(b"host"),
            "http_version": scope["http_version"],
            "proxy_protocol": scope["extensions"].get("proxy_protocol"),
        }
    )
    return facts


async def facts_app(scope: Scope, receive: Any, send: Any) -> None:
    """Answers every request (and WebSocket) with the scope facts as JSON."""
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": json.dumps(_facts(scope))})
        message = await receive()
        if message["type"] == "websocket.receive":
            await send({"type": "websocket.send", "text": "echo:" + (message.get("text") or "")})
        await send({"type": "websocket.close"})
        return
    while (await receive()).get("more_body"):
        pass
    body = json.dumps(_facts(scope)).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _body(response: bytes) -> Any:
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), response[:200]
    return json.loads(body)


GET = b"GET /x HTTP/1.1\r\nHost: app.example\r\n\r\n"


def v2_header(
    command: int = 1,
    family: int = 0x11,
    addresses: bytes | None = None,
    tlvs: bytes = b"",
) -> bytes:
    if addresses is None:
        addresses = socket.inet_aton("203.0.113.7") + socket.inet_aton("198.51.100.1")
        addresses += struct.pack("!HH", 40000, 443)
    body = addresses + tlvs
    return V2_SIGNATURE + bytes([0x20 | command, family]) + struct.pack("!H", len(body)) + body


def tlv(kind: int, value: bytes) -> bytes:
    return struct.pack("!BH", kind, len(value)) + value


def exchange(server: LiveServer, data: bytes, pause: float = 0.0) -> bytes:
    with server.connect() as sock:
        if pause:
            for i in range(len(data)):
                sock.sendall(data[i : i + 1])
                if i < 60:
                    time.sleep(pause)
        else:
            sock.sendall(data)
        return recv_response(sock)


# PROXY protocol, raw sockets ----------------------------------------------------------


def test_v1_tcp4_sets_client_and_server(live: Live, logs: pytest.LogCaptureFixture) -> None:
    server = live(facts_app, proxy_protocol=True)
    facts = _body(exchange(server, b"PROXY TCP4 203.0.113.7 198.51.100.1 40000 443\r\n" + GET))
    assert facts["client"] == ["203.0.113.7", 40000]
    assert facts["server"] == ["198.51.100.1", 443]
    assert facts["proxy_protocol"]["version"] == 1
    assert facts["proxy_protocol"]["family"] == "TCP4"
    assert any("203.0.113.7:40000" in r.getMessage() for r in logs.records), logs.text


def test_v1_tcp6(live: Live) -> None:
    server = live(facts_app, proxy_protocol=True)
    facts = _body(exchange(server, b"PROXY TCP6 2001:db8::7 2001:db8::1 5555 80\r\n" + GET))
    assert facts["client"] == ["2001:db8::7", 5555]
    assert facts["server"] == ["2001:db8::1", 80]


def test_v1_unknown_uses_the_socket_addresses(live: Live) -> None:
    server = live(facts_app, proxy_protocol=True)
    with server.connect() as sock:
        sock.sendall(b"PROXY UNKNOWN whatever\r\n" + GET)
        facts = _body(recv_response(sock))
        assert facts["client"] == list(sock.getsockname())
    assert facts["proxy_protocol"]["family"] == "UNKNOWN"


def test_v2_with_tlvs_exposed_in_the_scope(live: Live) -> None:
    server = live(facts_app, proxy_protocol=True)
    ssl_tlv = struct.pack("!BI", 0x01 | 0x02, 0) + tlv(0x21, b"TLSv1.3") + tlv(0x22, b"alice")
    tlvs = (
        tlv(0x01, b"h2")
        + tlv(0x02, b"shop.example")
        + tlv(0x05, b"conn-42")
        + tlv(0x20, ssl_tlv)
        + tlv(0xEA, b"\x01vpce-123")
    )
    facts = _body(exchange(server, v2_header(tlvs=tlvs) + GET))
    assert facts["client"] == ["203.0.113.7", 40000]
    assert facts["server"] == ["198.51.100.1", 443]
    pp = facts["proxy_protocol"]
    assert pp["version"] == 2
    assert pp["command"] == "PROXY"
    assert pp["family"] == "TCP4"
    assert pp["alpn"] == "h2"
    assert pp["authority"] == "shop.example"
    assert pp["unique_id"] == "conn-42"
    assert pp["ssl"]["client_ssl"]
    assert pp["ssl"]["verified"]
    assert pp["ssl"]["version"] == "TLSv1.3"
    assert pp["ssl"]["cn"] == "alice"
    assert [0xEA, "\x01vpce-123"] in pp["tlvs"]


def test_v2_tcp6_and_unix(live: Live) -> None:
    server = live(facts_app, proxy_protocol=True)
    six = socket.inet_pton(socket.AF_INET6, "2001:db8::7") + socket.inet_pton(
        socket.AF_INET6, "2001:db8::1"
    )
    facts = _body(
        exchange(server, v2_header(family=0x21, addresses=six + b"\x00\x50\x01\xbb") + GET)
    )
    assert facts["client"] == ["2001:db8::7", 80]
    assert facts["server"] == ["2001:db8::1", 443]
    paths = b"/run/client.sock".ljust(108, b"\x00") + b"/run/lb.sock".ljust(108, b"\x00")
    facts = _body(exchange(server, v2_header(family=0x31, addresses=paths) + GET))
    assert facts["client"] is None  # unix peers have no address (as without a proxy)
    assert facts["server"] == ["/run/lb.sock", None]


def test_v2_local_uses_the_socket_addresses(live: Live) -> None:
    server = live(facts_app, proxy_protocol=True)
    with server.connect() as sock:
        sock.sendall(v2_header(command=0, family=0x00, addresses=b"") + GET)
        facts = _body(recv_response(sock))
        assert facts["client"] == list(sock.getsockname())
        assert facts["server"] == ["127.0.0.1", server.port]
    assert facts["proxy_protocol"]["command"] == "LOCAL"


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_header_split_over_many_reads(live: Live, loop: str) -> None:
    server = live(facts_app, proxy_protocol=True, loop=loop)
    header = b"PROXY TCP4 203.0.113.7 198.51.100.1 40000 443\r\n"
    facts = _body(exchange(server, header + GET, pause=0.002))
    assert facts["client"] == ["203.0.113.7", 40000]
    facts = _body(exchange(server, v2_header(tlvs=tlv(0x02, b"a.example")) + GET, pause=0.002))
    assert facts["client"] == ["203.0.113.7", 40000]
    assert facts["proxy_protocol"]["authority"] == "a.example"


def test_keep_alive_requests_share_the_header(live: Live) -> None:
    server = live(facts_app, proxy_protocol=True)
    with server.connect() as sock:
        sock.sendall(b"PROXY TCP4 203.0.113.7 198.51.100.1 40000 443\r\n" + GET)
        first = _body(recv_response(sock))
        sock.sendall(GET)
        second = _body(recv_response(sock))
    assert first["client"] == second["client"] == ["203.0.113.7", 40000]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (GET, "no PROXY protocol header"),
        (b"PROXY TCP4 1.2.3.400 1.2.3.4 1 2\r\n" + GET, "bad IPv4 address"),
        (b"PROXY TCP4 1.2.3.4 1.2.3.4 99999 2\r\n" + GET, "port 99999 out of range"),
        (b"PROXY TCP5 1.2.3.4 1.2.3.4 1 2\r\n" + GET, "unknown protocol"),
        (b"PROXY TCP4 " + b"1" * 120, "longer than 107 bytes"),
        (v2_header(family=0x11, addresses=b"\x01\x02") + GET, "TCP4 needs 12 address bytes"),
        (V2_SIGNATURE + b"\x31\x11\x00\x0c" + b"\x00" * 12 + GET, "unsupported version 3"),
        (v2_header(tlvs=b"\x02\x00\x09abc") + GET, "overruns the header"),
    ],
    ids=["http", "address", "port", "protocol", "long", "short-v2", "version", "tlv"],
)
def test_bad_or_missing_header_closes_with_a_log_line(
    live: Live, logs: pytest.LogCaptureFixture, data: bytes, reason: str
) -> None:
    server = live(facts_app, proxy_protocol=True)
    with server.connect() as sock:
        sock.sendall(data)
        assert recv_until_closed(sock) == b""  # closed, nothing served
    deadline = time.monotonic() + 5
    while reason not in logs.text and time.monotonic() < deadline:
        time.sleep(0.01)
    assert "PROXY protocol: " in logs.text
    assert reason in logs.text, logs.text


def test_incomplete_header_times_out(live: Live, logs: pytest.LogCaptureFixture) -> None:
    server = live(facts_app, proxy_protocol=True, timeout_request_header=0.3)
    with server.connect() as sock:
        sock.sendall(b"PROXY TCP4 203.0.113.7")
        started = time.monotonic()
        assert recv_until_closed(sock) == b""
        assert time.monotonic() - started < 3
    assert "no complete header" in logs.text


def test_http2_prior_knowledge_after_the_header(live: Live, clients: list[Any]) -> None:
    server = live(facts_app, proxy_protocol=True)
    sock = server.connect()
    sock.sendall(b"PROXY TCP4 203.0.113.7 198.51.100.1 40000 443\r\n")
    client = H2Client(sock)
    clients.append(client)
    response = client.response(client.request("GET", "/h2"))
    facts = json.loads(response.body)
    assert facts["http_version"] == "2"
    assert facts["client"] == ["203.0.113.7", 40000]
    assert facts["proxy_protocol"]["family"] == "TCP4"


def test_websocket_after_the_header(live: Live) -> None:
    server = live(facts_app, proxy_protocol=True)
    sock = server.connect()
    sock.sendall(b"PROXY TCP4 203.0.113.7 198.51.100.1 40000 443\r\n")
    with ws_connect(f"ws://127.0.0.1:{server.port}/ws", sock=sock, open_timeout=5) as ws:
        facts = json.loads(ws.recv(timeout=5))
        ws.send("hi")
        assert ws.recv(timeout=5) == "echo:hi"
    assert facts["type"] == "websocket"
    assert facts["client"] == ["203.0.113.7", 40000]
    assert facts["proxy_protocol"]["version"] == 1


# PROXY protocol before TLS ----------------------------------------------------------------


@pytest.fixture
def tls_files(tmp_path: Path) -> tuple[trustme.CA, Path, Path]:
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    certfile, keyfile = tmp_path / "server.pem", tmp_path / "server.key"
    cert.cert_chain_pems[0].write_to_path(certfile)
    cert.private_key_pem.write_to_path(keyfile)
    return ca, certfile, keyfile


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
@pytest.mark.parametrize("alpn", ["http/1.1", "h2"])
def test_header_before_tls_handshake(
    live: Live,
    tls_files: tuple[trustme.CA, Path, Path],
    clients: list[Any],
    alpn: str,
    loop: str,
) -> None:
    ca, certfile, keyfile = tls_files
    server = live(
        facts_app, proxy_protocol=True, certfile=str(certfile), keyfile=str(keyfile), loop=loop
    )
    context = ssl.create_default_context()
    ca.configure_trust(context)
    context.set_alpn_protocols([alpn])
    raw = server.connect()
    # Header and ClientHello in one segment: the server must not read past the header.
    raw.sendall(v2_header(tlvs=tlv(0x02, b"localhost")))
    sock = context.wrap_socket(raw, server_hostname="localhost")
    if alpn == "h2":
        client = H2Client(sock, scheme=b"https")
        clients.append(client)
        facts = json.loads(client.response(client.request("GET", "/tls")).body)
        assert facts["http_version"] == "2"
    else:
        with sock:
            sock.sendall(GET)
            facts = _body(recv_response(sock))
    assert facts["scheme"] == "https"
    assert facts["client"] == ["203.0.113.7", 40000]
    assert facts["proxy_protocol"]["authority"] == "localhost"


def test_tls_without_a_header_is_closed(
    live: Live, tls_files: tuple[trustme.CA, Path, Path], logs: pytest.LogCaptureFixture
) -> None:
    ca, certfile, keyfile = tls_files
    server = live(facts_app, proxy_protocol=True, certfile=str(certfile), keyfile=str(keyfile))
    context = ssl.create_default_context()
    ca.configure_trust(context)
    with (
        server.connect() as raw,
        pytest.raises((ssl.SSLError, ConnectionError, OSError)),
    ):
        context.wrap_socket(raw, server_hostname="localhost").sendall(GET)
    assert "no PROXY protocol header" in logs.text


# X-Forwarded-* and Forwarded ----------------------------------------------------------------


def get_facts(server: LiveServer, headers: dict[str, str], path: str = "/") -> Any:
    response = httpx.get(server.url + path, headers=headers, timeout=5)
    assert response.status_code == 200
    return response.json()


def test_forwarded_headers_from_a_trusted_peer(live: Live, logs: pytest.LogCaptureFixture) -> None:
    server = live(facts_app, proxy_headers=True)  # default trust: 127.0.0.1, ::1
    facts = get_facts(
        server,
        {
            "X-Forwarded-For": "198.51.100.20, 203.0.113.9, 127.0.0.1",
            "X-Forwarded-Proto": "https",
            "X-Forwarded-Host": "shop.example",
        },
    )
    assert facts["client"] == ["203.0.113.9", 0]  # right-most untrusted hop
    assert facts["scheme"] == "https"
    assert facts["host"] == "shop.example"
    assert facts["server"] == ["shop.example", 443]
    assert any(r.getMessage().startswith("203.0.113.9:0 ") for r in logs.records), logs.text


def test_rfc7239_forwarded(live: Live) -> None:
    server = live(facts_app, proxy_headers=True)
    facts = get_facts(
        server,
        {"Forwarded": 'for="[2001:db8::9]:4711";proto=https;host="api.example:8443"'},
    )
    assert facts["client"] == ["2001:db8::9", 4711]
    assert facts["scheme"] == "https"
    assert facts["server"] == ["api.example", 8443]


def test_forwarded_headers_ignored_from_an_untrusted_peer(live: Live) -> None:
    server = live(facts_app, proxy_headers=True, forwarded_allow_ips="10.0.0.0/8")
    facts = get_facts(
        server,
        {
            "X-Forwarded-For": "203.0.113.9",
            "X-Forwarded-Proto": "https",
            "Forwarded": "for=1.2.3.4",
        },
    )
    assert facts["client"][0] == "127.0.0.1"
    assert facts["scheme"] == "http"


def test_forwarded_headers_ignored_when_the_option_is_off(live: Live) -> None:
    server = live(facts_app)
    facts = get_facts(server, {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"})
    assert facts["client"][0] == "127.0.0.1"
    assert facts["scheme"] == "http"


def test_forwarded_proto_makes_websocket_wss(live: Live) -> None:
    server = live(facts_app, proxy_headers=True)
    with ws_connect(
        f"ws://127.0.0.1:{server.port}/ws",
        additional_headers={"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"},
        open_timeout=5,
    ) as ws:
        facts = json.loads(ws.recv(timeout=5))
    assert facts["scheme"] == "wss"
    assert facts["client"] == ["203.0.113.9", 0]


def test_proxy_protocol_source_is_the_peer_trusted_for_headers(live: Live) -> None:
    server = live(
        facts_app, proxy_protocol=True, proxy_headers=True, forwarded_allow_ips="10.1.1.1"
    )
    spoof = b"X-Forwarded-For: 192.0.2.66\r\n"
    request = b"GET / HTTP/1.1\r\nHost: a\r\n" + spoof + b"\r\n"
    untrusted = _body(exchange(server, b"PROXY TCP4 203.0.113.7 10.0.0.2 1000 80\r\n" + request))
    assert untrusted["client"] == ["203.0.113.7", 1000]  # the client's own header is ignored
    trusted = _body(exchange(server, b"PROXY TCP4 10.1.1.1 10.0.0.2 1000 80\r\n" + request))
    assert trusted["client"] == ["192.0.2.66", 0]


# a real HAProxy ------------------------------------------------------------------------------


def find_binary(name: str) -> str | None:
    found = shutil.which(name)
    if found is None and os.access(f"/usr/sbin/{name}", os.X_OK):
        found = f"/usr/sbin/{name}"
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_listening(port: int, proc: subprocess.Popen[bytes], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"proxy exited with status {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.02)
    raise AssertionError(f"nothing listens on {port} after {timeout}s")


@contextlib.contextmanager
def run_process(argv: list[str], port: int, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out)
    try:
        wait_listening(port, proc)
        yield proc
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(5)


HAPROXY = find_binary("haproxy")
NGINX = find_binary("nginx")


@pytest.mark.skipif(HAPROXY is None, reason="haproxy is not installed (apt-get install haproxy)")
@pytest.mark.parametrize("send_proxy", ["send-proxy", "send-proxy-v2"])
def test_behind_haproxy(live: Live, tmp_path: Path, send_proxy: str) -> None:
    assert HAPROXY is not None
    server = live(facts_app, proxy_protocol=True)
    front = free_port()
    options = " proxy-v2-options unique-id,authority" if send_proxy == "send-proxy-v2" else ""
    config = tmp_path / "haproxy.cfg"
    config.write_text(
        f"""
global
    maxconn 64
defaults
    mode http
    timeout connect 5s
    timeout client 10s
    timeout server 10s
    unique-id-format req-%rt
frontend front
    bind 127.0.0.1:{front}
    default_backend app
backend app
    server bascule 127.0.0.1:{server.port} {send_proxy}{options}
"""
    )
    argv = [HAPROXY, "-db", "-f", str(config)]
    with run_process(argv, front, tmp_path / "haproxy.log"):
        # From 127.0.0.9: the PROXY header says so, the socket bascule sees is HAProxy's.
        transport = httpx.HTTPTransport(local_address="127.0.0.9")
        with httpx.Client(transport=transport, timeout=5) as client:
            for _ in range(2):
                response = client.get(f"http://127.0.0.1:{front}/via-haproxy")
                assert response.status_code == 200
                facts = response.json()
                assert facts["client"][0] == "127.0.0.9"
                assert facts["server"] == ["127.0.0.1", front]
    version = 2 if send_proxy == "send-proxy-v2" else 1
    assert facts["proxy_protocol"]["version"] == version
    if version == 2:
        assert facts["proxy_protocol"]["unique_id"].startswith("req-")
        assert facts["proxy_protocol"]["family"] == "TCP4"


# a real nginx ----------------------------------------------------------------------------------


@pytest.mark.skipif(NGINX is None, reason="nginx is not installed (apt-get install nginx)")
def test_behind_nginx(live: Live, tmp_path: Path) -> None:
    assert NGINX is not None
    # Trust only nginx's address: the client connects from 127.0.0.5, nginx from 127.0.0.1.
    server = live(facts_app, proxy_headers=True, forwarded_allow_ips="127.0.0.1")
    front = free_port()
    for name in ("logs", "tmp"):
        (tmp_path / name).mkdir()
    temp = tmp_path / "tmp"
    config = tmp_path / "nginx.conf"
    config.write_text(
        f"""
pid {tmp_path}/nginx.pid;
error_log {tmp_path}/logs/error.log info;
worker_processes 1;
events {{ worker_connections 64; }}
http {{
    access_log {tmp_path}/logs/access.log;
    client_body_temp_path {temp}/body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
    map $http_upgrade $connection_upgrade {{ default upgrade; '' close; }}
    server {{
        listen 127.0.0.1:{front};
        location / {{
            proxy_pass http://127.0.0.1:{server.port};
            proxy_http_version 1.1;
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto https;
            proxy_set_header X-Forwarded-Host public.example;
            proxy_set_header X-Forwarded-Port 8443;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
        }}
    }}
}}
"""
    )
    argv = [NGINX, "-g", "daemon off;", "-p", str(tmp_path), "-c", str(config)]
    with run_process(argv, front, tmp_path / "nginx.out"):
        transport = httpx.HTTPTransport(local_address="127.0.0.5")
        with httpx.Client(transport=transport, timeout=5) as client:
            # A forged hop sent by the client stays left of the real one: not used.
            response = client.get(
                f"http://127.0.0.1:{front}/via-nginx", headers={"X-Forwarded-For": "192.0.2.66"}
            )
        assert response.status_code == 200
        facts = response.json()
        assert facts["client"] == ["127.0.0.5", 0]
        assert facts["scheme"] == "https"
        assert facts["host"] == "public.example"
        assert facts["server"] == ["public.example", 8443]
        with ws_connect(
            f"ws://127.0.0.1:{front}/ws", source_address=("127.0.0.5", 0), open_timeout=5
        ) as ws:
            ws_facts = json.loads(ws.recv(timeout=5))
            ws.send("through nginx")
            assert ws.recv(timeout=5) == "echo:through nginx"
    assert ws_facts["type"] == "websocket"
    assert ws_facts["client"] == ["127.0.0.5", 0]
    assert ws_facts["scheme"] == "wss"

"""Garbage on every kind of listener: closed promptly, logged, and the server keeps serving.

Listeners: cleartext with HTTP/2 (prior-knowledge h2c sniffing), cleartext with
``--no-http2``, and TLS.  Inputs: random bytes, the HTTP/2 connection preface where HTTP/2
is off, the preface followed by junk where it is on, a TLS ClientHello on a cleartext
port, plaintext HTTP and junk on a TLS port, and a client that says nothing on a TLS port.
"""

from __future__ import annotations

import logging
import random
import socket
import ssl
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme

from tests.conftest import LiveServer
from tests.hostile.support import Recorder, exchange, statuses

Live = Callable[..., LiveServer]

RANDOM = random.Random(8).randbytes(4096)
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#: The first bytes of a real TLS 1.2/1.3 ClientHello record (handshake, version, length).
CLIENT_HELLO_START = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(32)
#: Closed "promptly": well under any timeout the servers here use.
PROMPT = 2.0
TIMEOUTS = {"timeout_keep_alive": 5.0, "timeout_request_header": 1.0}


class Certs:
    def __init__(self, root: Path) -> None:
        self.ca = trustme.CA()
        cert = self.ca.issue_cert("127.0.0.1", "localhost")
        self.certfile = root / "server.pem"
        self.keyfile = root / "server.key"
        cert.cert_chain_pems[0].write_to_path(self.certfile)
        cert.private_key_pem.write_to_path(self.keyfile)

    def client_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        self.ca.configure_trust(context)
        return context


@pytest.fixture
def certs(tmp_path: Path) -> Certs:
    return Certs(tmp_path)


def send_garbage(port: int, payload: bytes) -> tuple[bytes, float]:
    """Send ``payload`` on a fresh connection; (everything received, seconds until closed)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        start = time.monotonic()
        data = exchange(sock, payload, timeout=PROMPT + 3)
        return data, time.monotonic() - start


def still_serves(url: str, verify: Any = True) -> None:
    with httpx.Client(verify=verify, timeout=5) as client:
        response = client.get(url + "/alive")
    assert response.status_code == 200
    assert response.text == "/alive"


def messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name.startswith("bascule")]


@pytest.mark.parametrize(
    ("http2", "payload", "expect"),
    [
        pytest.param(True, RANDOM, [400], id="h2c-port-random-bytes"),
        pytest.param(False, RANDOM, [400], id="h1-port-random-bytes"),
        pytest.param(False, H2_PREFACE, [400], id="h1-port-h2-preface"),
        pytest.param(False, H2_PREFACE + RANDOM, [400], id="h1-port-h2-preface-then-junk"),
        pytest.param(True, CLIENT_HELLO_START + RANDOM, [400], id="h2c-port-tls-client-hello"),
        pytest.param(False, CLIENT_HELLO_START + RANDOM, [400], id="h1-port-tls-client-hello"),
        pytest.param(True, b"\x00" * 4096, [400], id="h2c-port-nul-bytes"),
    ],
)
def test_garbage_on_cleartext_port(
    live: Live, caplog: pytest.LogCaptureFixture, http2: bool, payload: bytes, expect: list[int]
) -> None:
    server = live(Recorder(), http2=http2, **TIMEOUTS)
    with caplog.at_level(logging.DEBUG, logger="bascule.error"):
        data, seconds = send_garbage(server.port, payload)
    assert statuses(data) == expect, data[:200]
    assert seconds < PROMPT
    assert any("bad request from 127.0.0.1" in m for m in messages(caplog)), messages(caplog)
    still_serves(server.url)


GOAWAY_HEADER = b"\x00\x00\x08\x07\x00\x00\x00\x00\x00"
#: A SETTINGS frame header on stream 1: invalid as soon as its 9 bytes are read.
BAD_SETTINGS = b"\x00\x00\x00\x04\x00\x00\x00\x00\x01"
#: A DATA frame header on stream 1 announcing 16 MiB - 16 (SETTINGS_MAX_FRAME_SIZE is 16 KiB).
HUGE_FRAME = b"\xff\xff\xf0\x00\x00\x00\x00\x00\x01"


def test_h2_preface_then_junk_on_h2c_port(live: Live, caplog: pytest.LogCaptureFixture) -> None:
    server = live(Recorder(), http2=True, **TIMEOUTS)
    with caplog.at_level(logging.DEBUG, logger="bascule"):
        data, seconds = send_garbage(server.port, H2_PREFACE + BAD_SETTINGS + RANDOM)
    assert seconds < PROMPT
    # The server's SETTINGS, then a GOAWAY before the close.
    assert data[3:4] == b"\x04", data[:40]
    assert GOAWAY_HEADER in data, data[:200]
    assert any("127.0.0.1" in m for m in messages(caplog)), messages(caplog)
    still_serves(server.url)


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(H2_PREFACE + HUGE_FRAME, id="oversized-data-frame"),
        pytest.param(H2_PREFACE + RANDOM, id="random-frame-header"),
    ],
)
def test_h2_oversized_frame_is_refused_before_its_payload(live: Live, payload: bytes) -> None:
    server = live(Recorder(), http2=True, **TIMEOUTS)
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        data = exchange(sock, payload, timeout=1.5)
    assert GOAWAY_HEADER in data  # FRAME_SIZE_ERROR (RFC 9113 §4.2), then the close


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(RANDOM, id="random-bytes"),
        pytest.param(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", id="plaintext-http"),
        pytest.param(H2_PREFACE, id="h2-preface"),
        pytest.param(CLIENT_HELLO_START + RANDOM, id="client-hello-then-junk"),
    ],
)
def test_garbage_on_tls_port(live: Live, certs: Certs, payload: bytes) -> None:
    server = live(Recorder(), certfile=str(certs.certfile), keyfile=str(certs.keyfile), **TIMEOUTS)
    data, seconds = send_garbage(server.port, payload)
    assert seconds < PROMPT
    assert not statuses(data)  # no HTTP answer to a non-TLS client: just the close
    still_serves(f"https://127.0.0.1:{server.port}", verify=certs.client_context())


def test_garbage_on_tls_port_is_logged(
    live: Live, certs: Certs, caplog: pytest.LogCaptureFixture
) -> None:
    server = live(Recorder(), certfile=str(certs.certfile), keyfile=str(certs.keyfile), **TIMEOUTS)
    with caplog.at_level(logging.DEBUG):
        send_garbage(server.port, RANDOM)
        time.sleep(0.1)
    assert any("127.0.0.1" in r.getMessage() for r in caplog.records), caplog.records


@pytest.mark.parametrize(
    "payload",
    [pytest.param(b"", id="silent"), pytest.param(CLIENT_HELLO_START, id="partial-client-hello")],
)
def test_stalled_tls_handshake_is_cut_by_header_timeout(
    live: Live, certs: Certs, payload: bytes
) -> None:
    header_timeout = 0.5
    server = live(
        Recorder(),
        certfile=str(certs.certfile),
        keyfile=str(certs.keyfile),
        timeout_request_header=header_timeout,
    )
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        data = exchange(sock, payload, timeout=header_timeout + 1.0)
    assert data == b""

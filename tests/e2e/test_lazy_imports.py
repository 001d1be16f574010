"""A server pays for the WebSocket layer, the metrics endpoint and log-config parsing
only when it uses them: their modules are imported on first use (docs/performance.md,
"Memory"). A real ``bascule`` process reports its own ``sys.modules``."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
from websockets.sync.client import connect

from .process import APPS_DIR, start_bascule

APP = ["e2e_modules_app:app", "--app-dir", str(APPS_DIR), "--port", "0", "--no-access-log"]


def loaded(url: str, *, http2: bool = False) -> dict[str, bool]:
    with httpx.Client(http1=not http2, http2=http2, timeout=5) as client:
        response = client.get(url + "/")
    assert response.status_code == 200
    assert response.http_version == ("HTTP/2" if http2 else "HTTP/1.1")
    result: dict[str, bool] = response.json()
    return result


def test_plain_http_imports_none_of_the_lazy_modules(tmp_path: Path) -> None:
    with start_bascule(APP, tmp_path) as server:
        before = loaded(server.url)
        assert before == dict.fromkeys(before, False)
        assert len(before) == 5
        assert loaded(server.url, http2=True) == before  # h2c prior knowledge, same answer
        # A handshake that fails validation is answered without the WebSocket layer.
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
            sock.sendall(
                b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                b"Sec-WebSocket-Version: 13\r\n\r\n"  # no Sec-WebSocket-Key
            )
            assert sock.recv(65536).startswith(b"HTTP/1.1 400 ")
        assert loaded(server.url) == before
        # The first upgrade imports the WebSocket layer, and it then works as always.
        with connect(f"ws://127.0.0.1:{server.port}/", open_timeout=5) as ws:
            assert ws.recv(timeout=5) == "upgraded"
        after = loaded(server.url)
    assert after["websockets"] is True
    assert after["bascule.aio.websocket"] is True
    assert after["bascule.metrics"] is False


def test_metrics_bind_imports_the_metrics_module(tmp_path: Path) -> None:
    with start_bascule(
        [*APP, "--metrics-bind", "127.0.0.1:0"],
        tmp_path,
    ) as server:
        assert loaded(server.url)["bascule.metrics"] is True

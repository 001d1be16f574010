"""Quart under the real ``bascule`` command, over HTTP/1.1 and HTTP/2 (h2c)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import websockets.exceptions

from tests.e2e.process import BasculeProcess

from .apps.quart_app import SHUTDOWN_LINE, STARTUP_LINE
from .support import WS_TIMEOUT, assert_streams, serve, sha256, token, upload_file, ws_connect


@pytest.fixture(scope="module")
def server() -> Iterator[BasculeProcess]:
    with serve("quart_app:app") as running:
        assert STARTUP_LINE in running.stderr
        yield running
    assert SHUTDOWN_LINE in running.stderr


def test_plain_route(client: httpx.Client) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert response.text == "hello, quart"
    assert response.headers["content-type"] == "text/html; charset=utf-8"


def test_converters_query_and_lifespan(client: httpx.Client) -> None:
    response = client.get("/users/9", params={"sort": "name"})
    assert response.json() == {
        "id": 9,
        "sort": "name",
        "started": True,
        "http_version": response.http_version.removeprefix("HTTP/"),  # "1.1" or "2"
    }
    assert client.get("/users/nine").status_code == 404


def test_json_round_trip(client: httpx.Client) -> None:
    response = client.post("/json", json=[1, "two", {"three": 3}])
    assert response.status_code == 201
    assert response.json() == {"received": [1, "two", {"three": 3}]}


def test_file_upload(client: httpx.Client) -> None:
    content = upload_file()
    response = client.post("/upload", data={"label": "blob"}, files={"file": ("blob.bin", content)})
    assert response.json() == {
        "label": "blob",
        "filename": "blob.bin",
        "size": len(content),
        "sha256": sha256(content),
    }


def test_streaming_response_is_not_buffered(client: httpx.Client) -> None:
    name = token()
    assert_streams(client, f"/stream/{name}", f"/release/{name}")


def test_websocket(server: BasculeProcess) -> None:
    with ws_connect(server, "/ws?q=1") as ws:
        assert ws.recv(timeout=WS_TIMEOUT) == "path=/ws q=1"
        ws.send("hi")
        assert ws.recv(timeout=WS_TIMEOUT) == "quart: hi"
        ws.send(b"ab")
        assert ws.recv(timeout=WS_TIMEOUT) == b"abab"
        ws.send("bye")
        with pytest.raises(websockets.exceptions.ConnectionClosedOK):
            ws.recv(timeout=WS_TIMEOUT)
    assert ws.close_code == 1000
    assert ws.close_reason == "bye"

"""Starlette under the real ``bascule`` command, over HTTP/1.1 and HTTP/2 (h2c)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import h2.events
import httpx
import pytest
import websockets.exceptions

from tests.e2e.process import BasculeProcess
from tests.support.h2client import H2Client

from .apps.starlette_app import SHUTDOWN_LINE, STARTUP_LINE
from .support import (
    HTTP_TIMEOUT,
    PROTOCOLS,
    WS_TIMEOUT,
    assert_streams,
    http_client,
    serve,
    sha256,
    token,
    upload_file,
    ws_connect,
)

APP = "starlette_app:app"


@pytest.fixture(scope="module")
def server() -> Iterator[BasculeProcess]:
    with serve(APP) as running:
        yield running
    # SIGTERM ran the lifespan's shutdown half.
    assert SHUTDOWN_LINE in running.stderr


def test_lifespan_startup_ran_before_serving(server: BasculeProcess) -> None:
    lines = server.lines
    started = next(i for i, line in enumerate(lines) if STARTUP_LINE in line)
    listening = next(i for i, line in enumerate(lines) if "listening on" in line)
    assert started < listening


def test_plain_route(client: httpx.Client) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert response.text == "hello, starlette"
    assert response.headers["content-type"] == "text/plain; charset=utf-8"


def test_path_and_query_parameters(client: httpx.Client) -> None:
    response = client.get("/items/42", params={"q": "a b&c"})
    assert response.json() == {"id": 42, "q": "a b&c"}
    assert client.get("/items/not-a-number").status_code == 404
    assert client.get("/nowhere").status_code == 404


def test_method_not_allowed(client: httpx.Client) -> None:
    response = client.get("/json")
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"


def test_json_round_trip(client: httpx.Client) -> None:
    payload = {"name": "bascule", "tags": ["asgi", "h2"], "nested": {"n": 1.5, "ok": True}}
    response = client.post("/json", json=payload)
    assert response.status_code == 201
    assert response.json() == {"received": payload, "type": "dict"}


def test_urlencoded_form(client: httpx.Client) -> None:
    response = client.post("/form", data={"name": "Zoë", "colour": "blue"})
    assert response.json() == {"fields": {"name": "Zoë", "colour": "blue"}, "files": {}}


def test_multipart_upload(client: httpx.Client) -> None:
    content = upload_file()
    response = client.post(
        "/form",
        data={"title": "two files"},
        files={
            "big": ("big.bin", content, "application/octet-stream"),
            "small": ("notes.txt", b"line one\nline two\n", "text/plain"),
        },
    )
    assert response.status_code == 200
    assert response.json() == {
        "fields": {"title": "two files"},
        "files": {
            "big": {
                "filename": "big.bin",
                "content_type": "application/octet-stream",
                "size": len(content),
                "sha256": sha256(content),
            },
            "small": {
                "filename": "notes.txt",
                "content_type": "text/plain",
                "size": 18,
                "sha256": sha256(b"line one\nline two\n"),
            },
        },
    }


def test_streaming_response_is_not_buffered(client: httpx.Client) -> None:
    name = token()
    assert_streams(client, f"/stream/{name}", f"/release/{name}")


def _outcome_after(client: httpx.Client, name: str) -> str:
    """Open ``name``'s gate, then wait (bounded) until its body stopped streaming; how it ended."""
    assert client.post(f"/release/{name}").status_code == 200
    deadline = time.monotonic() + 3
    outcome = client.get(f"/stream-outcome/{name}").text
    while outcome == "streaming" and time.monotonic() < deadline:
        time.sleep(0.02)
        outcome = client.get(f"/stream-outcome/{name}").text
    return outcome


# bascule's scopes say ASGI spec_version 2.4, so Starlette does not listen for
# http.disconnect while streaming: it relies on send() raising OSError once the
# client is gone.  After an HTTP/1.1 disconnect the body stops at its next chunk
# (the gate's "released\n") and the generator is closed (GeneratorExit); an
# HTTP/2 RST_STREAM makes bascule cancel the stream's app task (CancelledError).
# Either way the body does not run to its end.
STOPPED_EARLY = {"GeneratorExit", "CancelledError"}


def test_client_closing_the_connection_stops_a_stream(server: BasculeProcess) -> None:
    name = token()
    with http_client(server, "http1") as client:
        with client.stream("GET", f"/stream/{name}") as response:
            assert next(response.iter_raw()) == b"first\n"
        # Leaving the block unread made httpx close that connection.  Nothing the
        # client can observe says when the server saw the EOF: give it a moment.
        time.sleep(0.2)
        assert _outcome_after(client, name) in STOPPED_EARLY


def test_client_resetting_an_http2_stream_stops_it(server: BasculeProcess) -> None:
    # httpx does not reset an HTTP/2 stream it stops reading: use a raw h2 client.
    name = token()
    with socket.create_connection(("127.0.0.1", server.port), timeout=HTTP_TIMEOUT) as sock:
        conn = H2Client(sock)
        stream_id = conn.request("GET", f"/stream/{name}")
        streaming = conn.responses[stream_id]
        conn.wait_for(lambda: bytes(streaming.body) == b"first\n", timeout=HTTP_TIMEOUT)
        conn.reset(stream_id)  # CANCEL
        # The server handles frames in order: once our PING is acknowledged, so is the reset.
        conn.ping(b"resetted")
        conn.wait_for(lambda: bool(conn.of_type(h2.events.PingAckReceived)), timeout=HTTP_TIMEOUT)
        with http_client(server, "http2") as client:
            assert _outcome_after(client, name) in STOPPED_EARLY
        conn.close()


def test_background_task_runs_after_the_response(client: httpx.Client) -> None:
    key = token()
    response = client.post(f"/tasks/{key}")
    assert response.status_code == 202
    assert response.json() == {"key": key}
    deadline = time.monotonic() + 5
    status = client.get(f"/tasks/{key}").json()["status"]
    while status != "done" and time.monotonic() < deadline:
        time.sleep(0.02)
        status = client.get(f"/tasks/{key}").json()["status"]
    assert status == "done"


def test_lifespan_state_reaches_requests(client: httpx.Client) -> None:
    assert client.get("/state").json() == {"greeting": "hello from lifespan"}


def test_websocket_echo(server: BasculeProcess) -> None:
    with ws_connect(server, "/ws") as ws:
        assert ws.recv(timeout=WS_TIMEOUT) == '{"greeting":"hello from lifespan"}'
        ws.send("shout")
        assert ws.recv(timeout=WS_TIMEOUT) == "SHOUT"
        ws.send(b"\x01\x02\x03")
        assert ws.recv(timeout=WS_TIMEOUT) == b"\x03\x02\x01"
        big = "x" * 200_000
        ws.send(big)
        assert ws.recv(timeout=WS_TIMEOUT) == big.upper()
        ws.send("close")
        with pytest.raises(websockets.exceptions.ConnectionClosed):
            ws.recv(timeout=WS_TIMEOUT)
    assert ws.close_code == 4000
    assert ws.close_reason == "asked to"


def test_websocket_to_unknown_path_is_refused(server: BasculeProcess) -> None:
    with pytest.raises(websockets.exceptions.InvalidStatus) as caught:
        ws_connect(server, "/no-such-socket")
    assert caught.value.response.status_code == 403


# --root-path ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mounted() -> Iterator[BasculeProcess]:
    with serve(APP, "--root-path", "/api") as running:
        yield running


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_root_path_is_reflected_and_routes_still_match(
    mounted: BasculeProcess, protocol: str
) -> None:
    base = mounted.url
    with http_client(mounted, protocol) as client:
        response = client.get("/where")
        assert response.status_code == 200
        assert response.json() == {
            "url": f"{base}/api/where",
            "path": "/api/where",
            "root_path": "/api",
            "url_for": f"{base}/api/where",
            "url_for_leaf": f"{base}/api/sub/leaf",
        }
        assert client.get("/sub/leaf").text == "leaf"

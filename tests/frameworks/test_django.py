"""A Django project under the real ``bascule`` command: ASGI, and Channels if installed.

The same project on WSGI (``--interface wsgi``) is in test_django_wsgi.py.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator

import httpx
import pytest
import websockets.exceptions

from tests.e2e.process import BasculeProcess

from .support import (
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

HAS_CHANNELS = importlib.util.find_spec("channels") is not None


@pytest.fixture(scope="module")
def server() -> Iterator[BasculeProcess]:
    with serve("djproj.asgi:application") as running:
        yield running


def test_async_view(client: httpx.Client) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert response.text == "hello, django"
    assert response.headers["content-type"] == "text/plain"


def test_async_view_with_url_parameters(client: httpx.Client) -> None:
    response = client.get("/items/12/", params={"q": "ünïcode"})
    assert response.json() == {
        "id": 12,
        "q": "ünïcode",
        "path": "/items/12/",
        "path_info": "/items/12/",
        "script_name": "",
        "reverse": "/items/12/",
        "absolute": f"{client.base_url}/items/12/?q=%C3%BCn%C3%AFcode",
    }


def test_common_middleware_redirects_to_the_slash(client: httpx.Client) -> None:
    response = client.get("/items/12")
    assert response.status_code == 301
    assert response.headers["location"] == "/items/12/"
    assert client.get("/missing/").status_code == 404


def test_sync_view_runs_off_the_event_loop_thread(client: httpx.Client) -> None:
    response = client.get("/whoami/", headers={"user-agent": "framework-tests"})
    assert response.json() == {
        "method": "GET",
        "main_thread": False,
        "host": f"127.0.0.1:{client.base_url.port}",
        "secure": False,
        "user_agent": "framework-tests",
    }


def test_json_body(client: httpx.Client) -> None:
    response = client.post("/json/", json={"a": [1, 2, 3]})
    assert response.status_code == 201
    assert response.json() == {"received": {"a": [1, 2, 3]}}


def test_csrf_exempt_form_post(client: httpx.Client) -> None:
    response = client.post("/form/", data={"colour": ["red", "green"], "size": "L"})
    assert response.status_code == 200
    assert response.json() == {"fields": {"colour": ["red", "green"], "size": ["L"]}, "files": {}}


def test_multipart_upload(client: httpx.Client) -> None:
    content = upload_file()
    response = client.post(
        "/form/", data={"kind": "report"}, files={"doc": ("report.pdf", content, "application/pdf")}
    )
    assert response.json() == {
        "fields": {"kind": ["report"]},
        "files": {
            "doc": {"filename": "report.pdf", "size": len(content), "sha256": sha256(content)}
        },
    }


def test_csrf_protection_is_active(client: httpx.Client) -> None:
    assert client.post("/protected/", data={"x": "1"}).status_code == 403


def test_streaming_response_from_an_async_iterator(client: httpx.Client) -> None:
    name = token()
    assert_streams(client, f"/stream-async/{name}/", f"/release/{name}/")


# Django Channels --------------------------------------------------------------------


@pytest.fixture(scope="module")
def channels_server() -> Iterator[BasculeProcess]:
    if not HAS_CHANNELS:
        pytest.skip("channels is not installed")
    with serve("djproj.channels_asgi:application") as running:
        yield running


def test_channels_consumer(channels_server: BasculeProcess) -> None:
    with ws_connect(channels_server, "/ws/kitchen/") as ws:
        assert json.loads(ws.recv(timeout=WS_TIMEOUT)) == {
            "room": "kitchen",
            "path": "/ws/kitchen/",
        }
        ws.send("hello")
        assert json.loads(ws.recv(timeout=WS_TIMEOUT)) == {"room": "kitchen", "echo": "hello"}
        ws.send(b"\x00\x01\x02")
        assert ws.recv(timeout=WS_TIMEOUT) == b"\x02\x01\x00"
        ws.send("close")
        with pytest.raises(websockets.exceptions.ConnectionClosed):
            ws.recv(timeout=WS_TIMEOUT)
    assert ws.close_code == 4001


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_channels_passes_http_to_django(channels_server: BasculeProcess, protocol: str) -> None:
    with http_client(channels_server, protocol) as client:
        assert client.get("/").text == "hello, django"

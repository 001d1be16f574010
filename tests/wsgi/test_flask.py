"""Flask on WSGI through the real ``bascule`` command, over HTTP/1.1 and HTTP/2."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.process import BasculeProcess, start_bascule

APPS = Path(__file__).resolve().parent / "apps"


@pytest.fixture(scope="module")
def flask_server() -> Iterator[BasculeProcess]:
    args = [
        "wsgi_flask_app:app",
        "--app-dir", str(APPS),
        "--port", "0",
        "--interface", "wsgi",
        "--wsgi-max-workers", "4",
    ]  # fmt: skip
    with start_bascule(args, APPS) as server:
        yield server


@pytest.fixture(params=["HTTP/1.1", "HTTP/2"])
def client(request: pytest.FixtureRequest, flask_server: BasculeProcess) -> Iterator[httpx.Client]:
    """An HTTP/1.1 client, or an HTTP/2 one (h2c with prior knowledge)."""
    h2 = request.param == "HTTP/2"
    with httpx.Client(base_url=flask_server.url, http1=not h2, http2=h2, timeout=10) as c:
        c.headers["x-expect-version"] = request.param
        yield c


def test_routes(client: httpx.Client) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert response.text == "Hello, world!"
    assert response.headers["content-length"] == "13"
    item = client.get("/items/42", params={"q": "caf\u00e9"})
    version = client.headers["x-expect-version"]
    assert item.http_version == version
    assert item.json() == {"id": 42, "q": "caf\u00e9", "protocol": version}
    assert client.post("/echo", json={"a": [1, 2]}).json() == {"json": {"a": [1, 2]}}
    assert client.get("/nope").status_code == 404
    head = client.head("/")
    assert head.status_code == 200
    assert head.content == b""


def test_file_upload(client: httpx.Client) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    response = client.post(
        "/upload",
        files={"file": ("blob.bin", data, "application/octet-stream")},
        data={"note": "three megabytes"},
    )
    assert response.status_code == 200
    assert response.json() == {
        "filename": "blob.bin",
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "note": "three megabytes",
    }


def test_streaming_response(client: httpx.Client) -> None:
    with client.stream("GET", "/stream", params={"n": "200"}) as response:
        assert response.status_code == 200
        assert "content-length" not in response.headers
        lines = list(response.iter_lines())
    assert lines == [f"chunk {i} of /stream" for i in range(200)]


def test_view_error_is_500_and_logged_through_wsgi_errors(flask_server: BasculeProcess) -> None:
    response = httpx.get(flask_server.url + "/missing-view-raises", timeout=10)
    assert response.status_code == 500  # Flask's own error handler answers
    # Flask's default log handler writes to wsgi.errors, which is bascule.error.
    flask_server.wait_for_line(r"Exception on /missing-view-raises \[GET\]", timeout=5)
    flask_server.wait_for_line("RuntimeError: flask view failed", timeout=5)
    assert httpx.get(flask_server.url + "/", timeout=10).text == "Hello, world!"


def test_detected_without_interface_option() -> None:
    args = ["wsgi_flask_app:app", "--app-dir", str(APPS), "--port", "0"]
    with start_bascule(args, APPS) as server:
        line = server.wait_for_line("serving it as WSGI")
        assert "environ, start_response" in line
        assert httpx.get(server.url + "/", timeout=10).text == "Hello, world!"
        server.wait_for_line("application startup complete")

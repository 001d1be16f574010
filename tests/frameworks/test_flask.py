"""Flask on bascule's WSGI interface (``--interface wsgi``), over HTTP/1.1 and HTTP/2 (h2c)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.process import BasculeProcess

from .support import assert_streams, serve, sha256, token, upload_file

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def server() -> Iterator[BasculeProcess]:
    with serve("flask_app:app", "--interface", "wsgi") as running:
        yield running


def test_plain_route(client: httpx.Client) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert response.text == "hello, flask"
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.headers["content-length"] == "12"


def test_route_with_converter_and_query(client: httpx.Client) -> None:
    response = client.get("/items/3", params={"q": "a&b"})
    assert response.json() == {
        "id": 3,
        "q": "a&b",
        "url": f"{client.base_url}/items/3?q=a%26b",
        "url_for": "/items/3",
        "script_root": "",
        "protocol": response.http_version,
        "multithread": True,
        "main_thread": False,
    }
    assert client.get("/items/three").status_code == 404
    assert client.post("/items/3").status_code == 405


def test_json_round_trip(client: httpx.Client) -> None:
    response = client.post("/json", json={"list": [1, 2], "none": None})
    assert response.status_code == 201
    assert response.json() == {"received": {"list": [1, 2], "none": None}}


@pytest.mark.parametrize("size", [300 * 1024, 4 * MiB], ids=["300KiB", "4MiB"])
def test_file_upload(client: httpx.Client, size: int) -> None:
    content = upload_file(size)
    response = client.post(
        "/upload",
        data={"owner": "me", "tag": ["x", "y"]},
        files={"attachment": ("data.bin", content, "application/octet-stream")},
    )
    assert response.status_code == 200, response.text
    assert response.json() == {
        "fields": {"owner": ["me"], "tag": ["x", "y"]},
        "files": {
            "attachment": {
                "filename": "data.bin",
                "content_type": "application/octet-stream",
                "size": size,
                "sha256": sha256(content),
            }
        },
    }


def test_streaming_response_is_not_buffered(client: httpx.Client) -> None:
    name = token()
    assert_streams(
        client, f"/stream/{name}", f"/release/{name}", tail=f"/stream/{name} done\n".encode()
    )

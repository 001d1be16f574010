"""The Django test project on bascule's WSGI interface, mounted with ``--root-path /site``.

Same views as test_django.py (ASGI), served by Django's WSGI handler in
bascule's thread pool, over HTTP/1.1 and HTTP/2 (h2c).  The root path becomes
``SCRIPT_NAME``, which Django prefixes to every URL it builds.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.process import BasculeProcess

from .support import assert_streams, serve, sha256, token, upload_file

ROOT = "/site"


@pytest.fixture(scope="module")
def server() -> Iterator[BasculeProcess]:
    with serve("djproj.wsgi:application", "--interface", "wsgi", "--root-path", ROOT) as running:
        yield running


def test_async_view_through_the_wsgi_handler(client: httpx.Client) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert response.text == "hello, django"


def test_script_name_from_root_path(client: httpx.Client) -> None:
    response = client.get("/items/12/", params={"q": "ünïcode"})
    assert response.json() == {
        "id": 12,
        "q": "ünïcode",
        "path": f"{ROOT}/items/12/",
        "path_info": "/items/12/",
        "script_name": ROOT,
        "reverse": f"{ROOT}/items/12/",
        "absolute": f"{client.base_url}{ROOT}/items/12/?q=%C3%BCn%C3%AFcode",
    }


def test_redirect_keeps_the_script_name(client: httpx.Client) -> None:
    response = client.get("/items/12")
    assert response.status_code == 301
    assert response.headers["location"] == f"{ROOT}/items/12/"


def test_sync_view(client: httpx.Client) -> None:
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


def test_csrf_exempt_form_post_with_upload(client: httpx.Client) -> None:
    content = upload_file()
    response = client.post(
        "/form/",
        data={"colour": ["red", "green"]},
        files={"doc": ("report.pdf", content, "application/pdf")},
    )
    assert response.json() == {
        "fields": {"colour": ["red", "green"]},
        "files": {
            "doc": {"filename": "report.pdf", "size": len(content), "sha256": sha256(content)}
        },
    }


def test_csrf_protection_is_active(client: httpx.Client) -> None:
    assert client.post("/protected/", data={"x": "1"}).status_code == 403


def test_streaming_response_from_a_sync_iterator(client: httpx.Client) -> None:
    name = token()
    assert_streams(client, f"/stream-sync/{name}/", f"/release/{name}/")

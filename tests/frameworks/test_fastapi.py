"""FastAPI under the real ``bascule`` command, over HTTP/1.1 and HTTP/2 (h2c)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.process import BasculeProcess

from .apps.fastapi_app import SHUTDOWN_LINE, STARTUP_LINE
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

APP = "fastapi_app:app"


@pytest.fixture(scope="module")
def server() -> Iterator[BasculeProcess]:
    with serve(APP) as running:
        assert STARTUP_LINE in running.stderr
        yield running
    assert SHUTDOWN_LINE in running.stderr


def test_json_route(client: httpx.Client) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"hello": "fastapi"}


def test_path_and_query_validation(client: httpx.Client) -> None:
    assert client.get("/items/5", params={"q": "x"}).json() == {"id": 5, "q": "x"}
    assert client.get("/items/5").json() == {"id": 5, "q": None}
    invalid = client.get("/items/five")
    assert invalid.status_code == 422
    assert invalid.json()["detail"][0]["loc"] == ["path", "item_id"]


def test_json_body_through_a_model(client: httpx.Client) -> None:
    response = client.post("/orders", json={"item": "tea", "quantity": 3})
    assert response.status_code == 201
    assert response.json() == {"item": "tea", "quantity": 3, "notes": [], "total_cents": 750}
    rejected = client.post("/orders", json={"item": "", "quantity": 0})
    assert rejected.status_code == 422
    assert {tuple(e["loc"]) for e in rejected.json()["detail"]} == {
        ("body", "item"),
        ("body", "quantity"),
    }
    malformed = client.post(
        "/orders", content=b'{"item": ', headers={"content-type": "application/json"}
    )
    assert malformed.status_code == 422


def test_form_and_file_uploads(client: httpx.Client) -> None:
    big = upload_file()
    response = client.post(
        "/upload",
        data={"title": "reports"},
        files=[
            ("files", ("a.bin", big, "application/octet-stream")),
            ("files", ("b.csv", b"x,y\n1,2\n", "text/csv")),
        ],
    )
    assert response.status_code == 200, response.text
    assert response.json() == {
        "title": "reports",
        "files": [
            {
                "filename": "a.bin",
                "content_type": "application/octet-stream",
                "size": len(big),
                "sha256": sha256(big),
            },
            {
                "filename": "b.csv",
                "content_type": "text/csv",
                "size": 8,
                "sha256": sha256(b"x,y\n1,2\n"),
            },
        ],
    }
    missing = client.post("/upload", data={"title": "no files"})
    assert missing.status_code == 422


def test_streaming_response_is_not_buffered(client: httpx.Client) -> None:
    name = token()
    assert_streams(client, f"/stream/{name}", f"/release/{name}")


def test_background_task_effect_is_seen_by_a_later_request(client: httpx.Client) -> None:
    key = token()
    response = client.post(f"/tasks/{key}", params={"value": "written later"})
    assert response.status_code == 202
    deadline = time.monotonic() + 5
    value = client.get(f"/tasks/{key}").json()["value"]
    while value is None and time.monotonic() < deadline:
        time.sleep(0.02)
        value = client.get(f"/tasks/{key}").json()["value"]
    assert value == "written later"


def test_lifespan_state_reaches_requests(client: httpx.Client) -> None:
    assert client.get("/state").json() == {"greeting": "hello from fastapi lifespan"}


def test_websocket_json_exchange(server: BasculeProcess) -> None:
    with ws_connect(server, "/ws/lobby") as ws:
        hello = json.loads(ws.recv(timeout=WS_TIMEOUT))
        assert hello == {"room": "lobby", "greeting": "hello from fastapi lifespan"}
        for n in range(3):
            ws.send(json.dumps({"n": n}))
            assert json.loads(ws.recv(timeout=WS_TIMEOUT)) == {"room": "lobby", "echo": {"n": n}}


def test_openapi_schema(client: httpx.Client) -> None:
    schema = client.get("/openapi.json").json()
    assert {"/", "/items/{item_id}", "/orders", "/upload"} <= set(schema["paths"])
    assert "servers" not in schema


# --root-path ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mounted() -> Iterator[BasculeProcess]:
    with serve(APP, "--root-path", "/api") as running:
        yield running


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_root_path_mounting(mounted: BasculeProcess, protocol: str) -> None:
    base = mounted.url
    with http_client(mounted, protocol) as client:
        assert client.get("/where").json() == {
            "url": f"{base}/api/where",
            "root_path": "/api",
            "url_for": f"{base}/api/items/7",
        }
        assert client.get("/items/7").json() == {"id": 7, "q": None}
        schema = client.get("/openapi.json").json()
        assert schema["servers"] == [{"url": "/api"}]
        docs = client.get("/docs")
        assert docs.status_code == 200
        assert "/api/openapi.json" in docs.text

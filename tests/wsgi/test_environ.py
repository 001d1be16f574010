"""The PEP 3333 environ over HTTP/1.1 and HTTP/2, detection of WSGI apps, lifespan."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Iterable
from typing import Any

import httpx
import pytest
from flask import Flask

from bascule.config import Config, Interface
from bascule.importer import is_wsgi
from bascule.main import prepare_app
from bascule.wsgi import WSGIAdapter, default_max_workers
from tests.conftest import LiveServer, recv_response

Live = Callable[..., LiveServer]
StartResponse = Callable[..., Any]


def environ_app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    """Answer with the environ's str / bool / tuple / int values as JSON, and the body read."""
    body = environ["wsgi.input"].read()
    seen = {k: v for k, v in environ.items() if isinstance(v, str | bool | int | tuple)}
    seen["body"] = body.decode("latin-1")
    seen["errors_has_write"] = callable(getattr(environ["wsgi.errors"], "write", None))
    data = json.dumps(seen).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [data]


def test_environ_http1(live: Live) -> None:
    server = live(WSGIAdapter(environ_app))
    with server.connect() as sock:
        sock.sendall(
            b"POST /caf%C3%A9/%FF?x=1&y=%20 HTTP/1.1\r\n"
            b"Host: example.org:8080\r\n"
            b"Content-Type: text/plain\r\n"
            b"Content-Length: 5\r\n"
            b"X-Multi: a\r\n"
            b"X-Multi: b\r\n"
            b"Cookie: a=1\r\n"
            b"Cookie: b=2\r\n"
            b"X_Smuggled: nope\r\n"
            b"\r\nhello"
        )
        response = recv_response(sock)
        client_port = sock.getsockname()[1]
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    assert b"\r\ncontent-length: " in head.lower()  # a whole body gets a length
    env = json.loads(body)
    assert env["REQUEST_METHOD"] == "POST"
    assert env["SCRIPT_NAME"] == ""
    # Percent-decoded bytes, decoded as latin-1 (PEP 3333): UTF-8 é is two chars.
    assert env["PATH_INFO"] == "/caf\u00c3\u00a9/\u00ff"
    assert env["QUERY_STRING"] == "x=1&y=%20"
    assert env["CONTENT_TYPE"] == "text/plain"
    assert env["CONTENT_LENGTH"] == "5"
    assert "HTTP_CONTENT_TYPE" not in env
    assert "HTTP_CONTENT_LENGTH" not in env
    assert env["SERVER_NAME"] == "127.0.0.1"
    assert env["SERVER_PORT"] == str(server.port)
    assert env["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert env["HTTP_HOST"] == "example.org:8080"
    assert env["HTTP_X_MULTI"] == "a, b"
    assert env["HTTP_COOKIE"] == "a=1; b=2"
    # A name with "_" would collide with "X-Smuggled" in the environ: dropped.
    assert "HTTP_X_SMUGGLED" not in env
    assert env["REMOTE_ADDR"] == "127.0.0.1"
    assert env["REMOTE_PORT"] == str(client_port)
    assert env["wsgi.url_scheme"] == "http"
    assert env["wsgi.version"] == [1, 0]
    assert env["wsgi.multithread"] is True
    assert env["wsgi.multiprocess"] is False
    assert env["wsgi.run_once"] is False
    assert env["errors_has_write"] is True
    assert env["body"] == "hello"


def test_root_path_is_script_name(live: Live) -> None:
    server = live(WSGIAdapter(environ_app), root_path="/mount")
    env = httpx.get(server.url + "/a/b%2Fc", timeout=5).json()
    assert env["SCRIPT_NAME"] == "/mount"
    assert env["PATH_INFO"] == "/a/b/c"
    assert "CONTENT_TYPE" not in env


def test_environ_http2(live: Live) -> None:
    server = live(WSGIAdapter(environ_app))
    with httpx.Client(http1=False, http2=True, timeout=5) as client:
        response = client.post(server.url + "/h2?q=1", content=b"over h2")
    assert response.http_version == "HTTP/2"
    env = response.json()
    assert env["SERVER_PROTOCOL"] == "HTTP/2"
    assert env["HTTP_HOST"] == f"127.0.0.1:{server.port}"  # from :authority
    assert env["PATH_INFO"] == "/h2"
    assert env["QUERY_STRING"] == "q=1"
    assert env["body"] == "over h2"
    assert not any(key.startswith("HTTP_:") for key in env)


def test_multiprocess_flag_follows_workers(live: Live) -> None:
    adapter = prepare_app(Config(app=environ_app, interface=Interface.WSGI, workers=2))
    assert isinstance(adapter, WSGIAdapter)
    server = live(adapter)
    assert httpx.get(server.url, timeout=5).json()["wsgi.multiprocess"] is True


def test_pool_size_option() -> None:
    adapter = prepare_app(Config(app=environ_app, interface=Interface.WSGI, wsgi_max_workers=3))
    assert isinstance(adapter, WSGIAdapter)
    assert adapter.max_workers == 3
    default = prepare_app(Config(app=environ_app, interface=Interface.WSGI))
    assert default.max_workers == default_max_workers() <= 32


async def asgi_app(scope: Any, receive: Any, send: Any) -> None:
    """An ASGI 3 app (never called here)."""


def asgi2_app(scope: Any) -> Any:
    """An ASGI 2 app (never called here)."""
    return asgi_app


class WsgiObject:
    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        return []


class Ambiguous:
    def __call__(self, *args: Any) -> Any:
        return None


def test_detection() -> None:
    flask_app = Flask("detect")
    assert is_wsgi(flask_app)
    assert is_wsgi(environ_app)
    assert is_wsgi(WsgiObject())
    assert not is_wsgi(asgi_app)
    assert not is_wsgi(asgi2_app)
    assert not is_wsgi(Ambiguous())
    assert not is_wsgi(WsgiObject)  # a class: could be anything
    assert isinstance(prepare_app(Config(app=flask_app)), WSGIAdapter)
    assert prepare_app(Config(app=asgi_app)) is asgi_app
    assert prepare_app(Config(app=Ambiguous())).__class__ is Ambiguous
    # --interface asgi3 overrides the detection.
    assert prepare_app(Config(app=environ_app, interface=Interface.ASGI3)) is environ_app


def test_detection_of_django_handlers() -> None:
    from django.core.handlers.asgi import ASGIHandler  # type: ignore[import-untyped]
    from django.core.handlers.wsgi import WSGIHandler  # type: ignore[import-untyped]

    assert is_wsgi(WSGIHandler.__new__(WSGIHandler))
    assert not is_wsgi(ASGIHandler.__new__(ASGIHandler))


def test_lifespan_on_and_pool_shut_down(live: Live) -> None:
    adapter = WSGIAdapter(environ_app)
    server = live(adapter, lifespan="on")
    assert httpx.get(server.url, timeout=5).status_code == 200
    server.stop()
    assert server.exit_status == 0
    with pytest.raises(RuntimeError, match="shutdown"):
        adapter.executor.submit(print)


def test_websocket_is_refused(live: Live) -> None:
    server = live(WSGIAdapter(environ_app))
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(
            b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        assert recv_response(sock).startswith(b"HTTP/1.1 403 ")

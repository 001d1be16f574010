"""http_scope: the ASGI http scope built from a RequestReceived and connection facts."""

from __future__ import annotations

from typing import Any

import pytest

from bascule.asgi.scope import ConnInfo, decode_path, http_scope
from bascule.proto import H1Connection, RequestReceived
from tests.support.h1 import drain, request

SPEC_KEYS = {
    "type",
    "asgi",
    "http_version",
    "method",
    "scheme",
    "path",
    "raw_path",
    "query_string",
    "root_path",
    "headers",
    "client",
    "server",
    "state",
    "extensions",
}

INFO = ConnInfo(("203.0.113.7", 51000), ("192.0.2.1", 8000), "http", "")


def received(target: str = "/", method: str = "GET", version: str = "1.1") -> RequestReceived:
    """A RequestReceived as the HTTP/1.1 parser produces it."""
    conn = H1Connection()
    conn.receive_data(request(method, target, version=version))
    event = drain(conn)[0]
    assert isinstance(event, RequestReceived)
    return event


def scope_of(
    req: RequestReceived,
    info: ConnInfo = INFO,
    state: dict[str, Any] | None = None,
    extensions: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return http_scope(req, info, state, {} if extensions is None else extensions)


def test_scope_has_exactly_the_spec_keys() -> None:
    assert set(scope_of(received())) == SPEC_KEYS


def test_scope_values_come_from_request_and_connection() -> None:
    req = received("/items?id=3&x=%20", "POST")
    extensions: dict[str, Any] = {"http.response.trailers": {}}
    scope = scope_of(req, extensions=extensions)
    assert scope["type"] == "http"
    assert scope["asgi"]["version"] == "3.0"
    assert isinstance(scope["asgi"]["spec_version"], str)
    assert scope["http_version"] == "1.1"
    assert scope["method"] == "POST"
    assert scope["scheme"] == "http"
    assert scope["path"] == "/items"
    assert scope["raw_path"] == b"/items"
    assert scope["query_string"] == b"id=3&x=%20"
    assert scope["root_path"] == ""
    assert scope["headers"] == [(b"host", b"example.com")]
    assert scope["client"] == ("203.0.113.7", 51000)
    assert scope["server"] == ("192.0.2.1", 8000)
    assert scope["state"] == {}
    assert scope["extensions"] == extensions
    assert scope["extensions"] is not extensions  # each request gets its own copy


def test_http10_version_and_https_scheme() -> None:
    info = ConnInfo(None, ("192.0.2.1", 443), "https", "")
    scope = scope_of(received(version="1.0"), info)
    assert scope["http_version"] == "1.0"
    assert scope["scheme"] == "https"
    assert scope["client"] is None


def test_path_is_percent_decoded_and_utf8_decoded() -> None:
    scope = scope_of(received("/caf%C3%A9"))
    assert scope["path"] == "/café"
    assert scope["raw_path"] == b"/caf%C3%A9"


@pytest.mark.parametrize(
    ("raw", "path"),
    [
        (b"/", "/"),
        (b"/a%20b", "/a b"),
        (b"/a%2Fb", "/a/b"),
        (b"/%E2%9C%93/ok", "/\u2713/ok"),
        (b"/%ff", "/\ufffd"),  # invalid UTF-8 is replaced, never an exception
        (b"/100%", "/100%"),
        (b"/%zz", "/%zz"),
    ],
)
def test_decode_path(raw: bytes, path: str) -> None:
    assert decode_path(raw) == path


def test_root_path_prefixes_path_and_raw_path() -> None:
    info = ConnInfo(("203.0.113.7", 51000), ("192.0.2.1", 8000), "http", "/api/v1")
    scope = scope_of(received("/caf%C3%A9?q=1"), info)
    assert scope["root_path"] == "/api/v1"
    assert scope["path"] == "/api/v1/café"
    assert scope["raw_path"] == b"/api/v1/caf%C3%A9"
    assert scope["query_string"] == b"q=1"


def test_non_ascii_root_path() -> None:
    info = ConnInfo(None, None, "http", "/é")
    scope = scope_of(received("/x"), info)
    assert scope["path"] == "/é/x"
    assert scope["raw_path"] == "/é/x".encode()


def test_state_is_a_shallow_copy_of_the_lifespan_state() -> None:
    shared: list[str] = []
    lifespan_state: dict[str, Any] = {"pool": shared, "name": "db"}
    scope = scope_of(received(), state=lifespan_state)
    assert scope["state"] == lifespan_state
    assert scope["state"] is not lifespan_state

    scope["state"]["request_only"] = 1
    del scope["state"]["name"]
    assert lifespan_state == {"pool": shared, "name": "db"}

    assert scope["state"]["pool"] is shared
    scope["state"]["pool"].append("connection")
    assert lifespan_state["pool"] == ["connection"]


def test_each_request_gets_its_own_state() -> None:
    lifespan_state: dict[str, Any] = {"n": 0}
    first = scope_of(received(), state=lifespan_state)
    second = scope_of(received(), state=lifespan_state)
    first["state"]["n"] = 1
    assert second["state"]["n"] == 0


def test_no_lifespan_state_gives_an_empty_dict() -> None:
    first = scope_of(received())
    second = scope_of(received())
    assert first["state"] == {}
    first["state"]["x"] = 1
    assert second["state"] == {}


def test_scopes_of_one_connection_share_nothing_an_app_can_change() -> None:
    """Each scope starts as a copy of the connection's template: what an app writes
    into one (its keys, the ``asgi`` and ``extensions`` dicts) is not in the next."""
    info = ConnInfo(("203.0.113.7", 51000), ("192.0.2.1", 8000), "https", "")
    first = scope_of(received("/a?x=1", "POST"), info, extensions={"tls": {}})
    first["scheme"] = "changed"
    first["app.key"] = 1
    first["asgi"]["version"] = "changed"
    first["extensions"]["added"] = {}
    second = scope_of(received("/b"), info, extensions={"tls": {}})
    assert list(second) == list(info.http_template) == [
        "type", "asgi", "http_version", "method", "scheme", "path", "raw_path",
        "query_string", "root_path", "headers", "client", "server", "state", "extensions",
    ]  # fmt: skip
    assert second["scheme"] == "https"
    assert second["asgi"] == {"version": "3.0", "spec_version": "2.4"}
    assert second["extensions"] == {"tls": {}}
    assert (second["method"], second["path"], second["query_string"]) == ("GET", "/b", b"")
    assert info.http_template["asgi"] is None  # the template itself is never handed out

"""Build ASGI ``http`` scopes from protocol events and connection facts."""

from typing import Any, Final
from urllib.parse import unquote_to_bytes

from bascule.asgi.forwarded import TrustedProxies
from bascule.asgi.forwarded import apply as apply_forwarded
from bascule.proto.events import RequestReceived

#: ASGI version bascule speaks, and the HTTP sub-spec version it implements in
#: full (2.4: ``send()`` raises an ``OSError`` subclass after a disconnect).
ASGI_VERSION: Final = {"version": "3.0", "spec_version": "2.4"}

Address = tuple[str, int] | tuple[str, None]


class ConnInfo:
    """Facts about one connection that every scope on it shares.

    ``proxies`` is set only on connections from a trusted proxy with
    ``--proxy-headers`` on: each request's forwarding headers then rewrite its
    scope (asgi/forwarded.py).  ``proxy_protocol`` is the connection's PROXY
    protocol header as an ASGI extension value, or None.

    ``client``, ``server``, ``scheme`` and ``root_path`` are fixed at construction:
    ``http_template`` holds them, and each ``http`` scope starts as a copy of it.
    """

    __slots__ = (
        "client",
        "http_template",
        "proxies",
        "proxy_protocol",
        "root_path",
        "root_path_bytes",
        "scheme",
        "server",
    )

    def __init__(
        self,
        client: tuple[str, int] | None,
        server: Address | None,
        scheme: str,
        root_path: str,
        proxies: TrustedProxies | None = None,
        proxy_protocol: dict[str, Any] | None = None,
    ) -> None:
        self.client = client
        self.server = server
        self.scheme = scheme
        self.root_path = root_path
        self.root_path_bytes = root_path.encode("utf-8")
        self.proxies = proxies
        self.proxy_protocol = proxy_protocol
        #: The keys of every http scope, in their order, with this connection's values:
        #: copying it and setting the request's values is cheaper than building the dict.
        self.http_template: dict[str, Any] = {
            "type": "http",
            "asgi": None,
            "http_version": "1.1",
            "method": "GET",
            "scheme": scheme,
            "path": "",
            "raw_path": b"",
            "query_string": b"",
            "root_path": root_path,
            "headers": None,
            "client": client,
            "server": server,
            "state": None,
            "extensions": None,
        }


def decode_path(raw: bytes) -> str:
    """Percent-decode a raw path and decode UTF-8 (invalid sequences replaced)."""
    if raw.partition(b"%")[1]:  # not "in" or find (see RequestReader.on_headers_complete)
        raw = unquote_to_bytes(raw)
    return raw.decode("utf-8", "replace")


def http_scope(
    request: RequestReceived,
    info: ConnInfo,
    state: dict[str, Any] | None,
    extensions: dict[str, Any],
) -> dict[str, Any]:
    """The ``http`` scope for one request.

    ``path`` and ``raw_path`` include ``root_path`` (as uvicorn and Starlette
    expect): the app mounted at ``/api`` sees ``path="/api/items"``.
    """
    raw_path = request.path
    if info.root_path:
        raw_path = info.root_path_bytes + raw_path
    scope = info.http_template.copy()
    scope["asgi"] = {"version": "3.0", "spec_version": "2.4"}  # a fresh dict: apps may write to it
    scope["http_version"] = request.http_version
    scope["method"] = request.method
    scope["path"] = decode_path(raw_path)
    scope["raw_path"] = raw_path
    scope["query_string"] = request.query
    scope["headers"] = request.headers
    scope["state"] = {} if state is None else state.copy()
    # A fresh outer dict per request (apps add keys); the values are read-only
    # descriptions shared by the connection's requests.
    scope["extensions"] = extensions.copy()
    if info.proxies is not None:
        apply_forwarded(scope, info.proxies)
    return scope


#: The websocket sub-spec version implemented in full (2.4: reason in
#: ``websocket.close`` and ``websocket.disconnect``; 2.3 denial responses).
WS_ASGI_VERSION: Final = {"version": "3.0", "spec_version": "2.4"}

#: ASGI extensions every websocket scope advertises.
WS_EXTENSIONS: Final[dict[str, Any]] = {"websocket.http.response": {}}


def websocket_scope(
    request: RequestReceived,
    info: ConnInfo,
    state: dict[str, Any] | None,
    subprotocols: list[str],
    extensions: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``websocket`` scope for an upgrade request.

    ``extensions`` are the connection's (``tls``), added to what every
    websocket scope advertises, with ``proxy_protocol`` when the connection
    began with a PROXY header.
    """
    raw_path = request.path
    if info.root_path:
        raw_path = info.root_path_bytes + raw_path
    scope: dict[str, Any] = {
        "type": "websocket",
        "asgi": dict(WS_ASGI_VERSION),
        "http_version": request.http_version,
        "scheme": "wss" if info.scheme == "https" else "ws",
        "path": decode_path(raw_path),
        "raw_path": raw_path,
        "query_string": request.query,
        "root_path": info.root_path,
        "headers": request.headers,
        "client": info.client,
        "server": info.server,
        "subprotocols": subprotocols,
        "state": {} if state is None else state.copy(),
        "extensions": {
            name: dict(value) for name, value in {**WS_EXTENSIONS, **(extensions or {})}.items()
        },
    }
    if info.proxy_protocol is not None:
        scope["extensions"]["proxy_protocol"] = info.proxy_protocol
    if info.proxies is not None:
        apply_forwarded(scope, info.proxies)
    return scope

"""Protocol-neutral events between wire protocols and the ASGI layer.

Plain slotted classes rather than frozen dataclasses: they are built once or
more per request on the hot path, and a frozen dataclass pays for
``object.__setattr__`` on every field.  Treat them as immutable.
"""

from typing import Final

Headers = list[tuple[bytes, bytes]]


#: Decoded methods, so that the common ones are not decoded per request.
METHOD_NAMES: Final[dict[bytes, str]] = {
    m.encode(): m for m in ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS")
}


class RequestReceived:
    """A request head.  ``headers`` have lowercased names."""

    __slots__ = (
        "expect_continue",
        "headers",
        "http_version",
        "keep_alive",
        "method",
        "path",
        "protocol",
        "query",
        "stream_id",
        "te_trailers",
        "upgrade",
    )

    def __init__(
        self,
        stream_id: int,
        method: str,
        path: bytes,
        query: bytes,
        headers: Headers,
        http_version: str,
        keep_alive: bool,
        expect_continue: bool,
        upgrade: bool = False,
        protocol: bytes = b"",
    ) -> None:
        self.stream_id = stream_id
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.http_version = http_version
        self.keep_alive = keep_alive
        self.expect_continue = expect_continue
        #: The request asked to switch protocols (Upgrade + Connection: upgrade, or CONNECT).
        self.upgrade = upgrade
        #: HTTP/2 extended CONNECT ``:protocol`` (RFC 8441), e.g. b"websocket".
        self.protocol = protocol
        #: The client accepts trailer fields (``TE: trailers``).
        self.te_trailers = False

    def __repr__(self) -> str:
        return f"RequestReceived({self.method} {self.path!r} HTTP/{self.http_version})"


class BodyChunk:
    """Part of a request or response body."""

    __slots__ = ("data", "stream_id")

    def __init__(self, stream_id: int, data: bytes) -> None:
        self.stream_id = stream_id
        self.data = data

    def __repr__(self) -> str:
        return f"BodyChunk({len(self.data)} bytes)"


class BodyEnd:
    """End of a request or response body, with the trailer fields, if any.

    On responses, ``data`` is the last body bytes: a final body message is one
    event (one HTTP/2 DATA frame with END_STREAM, one HTTP/1.1 write).
    """

    __slots__ = ("data", "stream_id", "trailers")

    def __init__(
        self, stream_id: int, trailers: "Headers | None" = None, data: bytes = b""
    ) -> None:
        self.stream_id = stream_id
        self.trailers = trailers
        self.data = data

    def __repr__(self) -> str:
        return "BodyEnd()" if self.trailers is None else f"BodyEnd(trailers={len(self.trailers)})"


class ResponseHead:
    """Status and headers of a final response (status >= 200)."""

    __slots__ = ("headers", "status", "stream_id")

    def __init__(self, stream_id: int, status: int, headers: Headers) -> None:
        self.stream_id = stream_id
        self.status = status
        self.headers = headers

    def __repr__(self) -> str:
        return f"ResponseHead({self.status})"


class InformationalResponse:
    """A 1xx interim response (100 Continue, 103 Early Hints)."""

    __slots__ = ("headers", "status", "stream_id")

    def __init__(self, stream_id: int, status: int, headers: Headers) -> None:
        self.stream_id = stream_id
        self.status = status
        self.headers = headers


Event = RequestReceived | BodyChunk | BodyEnd
"""What a server-side connection hands out."""

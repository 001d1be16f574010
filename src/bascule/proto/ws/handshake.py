"""Validate a WebSocket opening handshake (RFC 6455 §4.2.1) and build the 101 answer.

Works on the neutral ``RequestReceived`` so an HTTP/2 extended CONNECT
(RFC 8441) can reuse the subprotocol and extension parts later.
"""

import base64
import binascii
import hashlib
from typing import Final

from bascule.proto.errors import LocalProtocolError, RemoteProtocolError
from bascule.proto.events import Headers, RequestReceived
from bascule.proto.headers import is_token
from bascule.proto.http1.writer import check_field

_GUID: Final = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class HandshakeError(RemoteProtocolError):
    """An invalid opening handshake; ``headers`` go on the error response (426 needs one)."""

    def __init__(
        self, message: str, status_hint: int = 400, headers: Headers | None = None
    ) -> None:
        super().__init__(message, status_hint)
        self.headers = headers or []


def _tokens(headers: Headers, name: bytes) -> list[bytes]:
    """Comma-separated tokens of every ``name`` field, lowercased and stripped."""
    out: list[bytes] = []
    for n, v in headers:
        if n == name:
            out.extend(t.strip().lower() for t in v.split(b","))
    return out


def is_websocket_upgrade(request: RequestReceived) -> bool:
    """True when the request asks to upgrade to WebSocket (RFC 6455 §4.1, points 5-6)."""
    return b"websocket" in _tokens(request.headers, b"upgrade") and b"upgrade" in _tokens(
        request.headers, b"connection"
    )


class Handshake:
    """What a valid opening handshake carries."""

    __slots__ = ("accept", "extension_offers", "subprotocols")

    def __init__(self, accept: bytes, subprotocols: list[str], extension_offers: list[str]) -> None:
        self.accept = accept
        self.subprotocols = subprotocols
        self.extension_offers = extension_offers


def accept_key(key: bytes) -> bytes:
    """``Sec-WebSocket-Accept`` for ``key`` (RFC 6455 §4.2.2, point 5.4)."""
    return base64.b64encode(hashlib.sha1(key + _GUID).digest())


def validate(request: RequestReceived) -> Handshake:
    """Check an HTTP/1.1 upgrade request; raise HandshakeError (400 or 426) if it is invalid."""
    if request.http_version != "1.1":
        raise HandshakeError(f"WebSocket upgrade over HTTP/{request.http_version} (needs 1.1)")
    if request.method != "GET":
        raise HandshakeError(f"WebSocket upgrade with method {request.method} (needs GET)")
    keys = [v for n, v in request.headers if n == b"sec-websocket-key"]
    versions = [v.strip() for n, v in request.headers if n == b"sec-websocket-version"]
    if versions != [b"13"]:
        raise HandshakeError(
            f"unsupported Sec-WebSocket-Version {b', '.join(versions).decode('latin-1')!r}"
            " (only 13)",
            426,
            [(b"sec-websocket-version", b"13")],
        )
    if len(keys) != 1:
        raise HandshakeError(f"expected one Sec-WebSocket-Key header, got {len(keys)}")
    key = keys[0].strip()
    try:
        raw = base64.b64decode(key, validate=True)
    except binascii.Error:
        raw = b""
    if len(raw) != 16:
        raise HandshakeError(f"Sec-WebSocket-Key {key[:40]!r} is not base64 of 16 bytes")
    subprotocols = [
        t.strip().decode("latin-1")
        for n, v in request.headers
        if n == b"sec-websocket-protocol"
        for t in v.split(b",")
        if t.strip()
    ]
    offers = [v.decode("latin-1") for n, v in request.headers if n == b"sec-websocket-extensions"]
    return Handshake(accept_key(key), subprotocols, offers)


def validate_h2(request: RequestReceived) -> Handshake:
    """Check an HTTP/2 extended CONNECT (RFC 8441 §5); raise HandshakeError if it is invalid.

    There is no key to answer over HTTP/2: the stream itself is the upgrade.
    """
    if request.method != "CONNECT" or request.protocol.lower() != b"websocket":
        raise HandshakeError("extended CONNECT for a protocol other than websocket", 501)
    versions = [v.strip() for n, v in request.headers if n == b"sec-websocket-version"]
    if versions != [b"13"]:
        raise HandshakeError(
            f"unsupported Sec-WebSocket-Version {b', '.join(versions).decode('latin-1')!r}"
            " (only 13)",
            426,
            [(b"sec-websocket-version", b"13")],
        )
    subprotocols = [
        t.strip().decode("latin-1")
        for n, v in request.headers
        if n == b"sec-websocket-protocol"
        for t in v.split(b",")
        if t.strip()
    ]
    offers = [v.decode("latin-1") for n, v in request.headers if n == b"sec-websocket-extensions"]
    return Handshake(b"", subprotocols, offers)


def accept_fields(subprotocol: str | None, extensions: str | None, extra: Headers) -> Headers:
    """The fields of a ``200`` accepting an RFC 8441 WebSocket (checked like the 101's)."""
    if subprotocol is not None and not (subprotocol.isascii() and is_token(subprotocol.encode())):
        raise LocalProtocolError(f"subprotocol {subprotocol!r} is not a valid token")
    fields: Headers = []
    if subprotocol is not None:
        fields.append((b"sec-websocket-protocol", subprotocol.encode("latin-1")))
    if extensions:
        fields.append((b"sec-websocket-extensions", extensions.encode("latin-1")))
    fields.extend(extra)
    return fields


def response_101(
    handshake: Handshake,
    subprotocol: str | None,
    extensions: str | None,
    extra: Headers,
    defaults: bytes,
) -> bytes:
    """The ``101 Switching Protocols`` response accepting the upgrade.

    Raises LocalProtocolError when the app's subprotocol or headers are not
    valid on the wire (no header injection through ``websocket.accept``).
    """
    if subprotocol is not None and not (subprotocol.isascii() and is_token(subprotocol.encode())):
        raise LocalProtocolError(f"subprotocol {subprotocol!r} is not a valid token")
    for index, (name, value) in enumerate(extra):
        check_field(index, name, value)
    lines = [
        b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\n"
        b"sec-websocket-accept: %b\r\n" % handshake.accept
    ]
    if subprotocol is not None:
        lines.append(b"sec-websocket-protocol: %b\r\n" % subprotocol.encode("latin-1"))
    if extensions:
        lines.append(b"sec-websocket-extensions: %b\r\n" % extensions.encode("latin-1"))
    lines.extend(b"%b: %b\r\n" % (n, v) for n, v in extra)
    lines.append(defaults)
    lines.append(b"\r\n")
    return b"".join(lines)

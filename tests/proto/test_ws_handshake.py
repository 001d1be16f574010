"""The WebSocket opening handshake (RFC 6455 §4.2): detection, validation, the 101 answer."""

from __future__ import annotations

import base64
from collections.abc import Sequence

import pytest

from bascule.asgi.websocket import Accept, WsCycle
from bascule.errors import AppMessageError
from bascule.proto import H1Connection, RequestReceived
from bascule.proto.errors import LocalProtocolError, RemoteProtocolError
from bascule.proto.ws.handshake import (
    Handshake,
    HandshakeError,
    accept_key,
    is_websocket_upgrade,
    response_101,
    validate,
)
from tests.support.h1 import drain, request

Header = tuple[bytes, bytes]

#: The example of RFC 6455 §1.3.
RFC_KEY = b"dGhlIHNhbXBsZSBub25jZQ=="
RFC_ACCEPT = b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

UPGRADE: tuple[Header, ...] = (
    (b"host", b"example.com"),
    (b"upgrade", b"websocket"),
    (b"connection", b"Upgrade"),
    (b"sec-websocket-version", b"13"),
    (b"sec-websocket-key", RFC_KEY),
)


def upgrade_request(
    headers: Sequence[Header] = UPGRADE,
    method: str = "GET",
    http_version: str = "1.1",
) -> RequestReceived:
    """A RequestReceived as a parser hands it out (header names already lowercase)."""
    return RequestReceived(
        1, method, b"/chat", b"", list(headers), http_version, True, False, upgrade=True
    )


def without(name: bytes, headers: Sequence[Header] = UPGRADE) -> list[Header]:
    return [(n, v) for n, v in headers if n != name]


def with_header(name: bytes, value: bytes, headers: Sequence[Header] = UPGRADE) -> list[Header]:
    return [*without(name, headers), (name, value)]


def refusal(req: RequestReceived) -> HandshakeError:
    with pytest.raises(HandshakeError) as info:
        validate(req)
    return info.value


# accept key ------------------------------------------------------------------


def test_accept_key_of_the_rfc_example() -> None:
    assert accept_key(RFC_KEY) == RFC_ACCEPT


def test_validate_computes_the_accept_key() -> None:
    assert validate(upgrade_request()).accept == RFC_ACCEPT


def test_key_surrounding_whitespace_is_ignored() -> None:
    req = upgrade_request(with_header(b"sec-websocket-key", b"  " + RFC_KEY + b" "))
    assert validate(req).accept == RFC_ACCEPT


# is_websocket_upgrade --------------------------------------------------------


@pytest.mark.parametrize(
    ("upgrade", "connection"),
    [
        (b"websocket", b"Upgrade"),
        (b"WebSocket", b"upgrade"),
        (b"WEBSOCKET", b"UPGRADE"),
        (b"websocket", b"keep-alive, Upgrade"),
        (b"websocket", b"Upgrade,keep-alive"),
        (b"h2c, websocket", b"keep-alive ,  upgrade  "),
    ],
)
def test_is_websocket_upgrade_tokens(upgrade: bytes, connection: bytes) -> None:
    headers = with_header(b"connection", connection, with_header(b"upgrade", upgrade))
    assert is_websocket_upgrade(upgrade_request(headers))


def test_is_websocket_upgrade_across_repeated_fields() -> None:
    headers = [
        *without(b"connection"),
        (b"connection", b"keep-alive"),
        (b"connection", b"Upgrade"),
    ]
    assert is_websocket_upgrade(upgrade_request(headers))


@pytest.mark.parametrize(
    "headers",
    [
        with_header(b"upgrade", b"h2c"),
        with_header(b"upgrade", b"websocketx"),
        with_header(b"connection", b"keep-alive"),
        with_header(b"connection", b"upgrade-insecure"),
        without(b"upgrade"),
        without(b"connection"),
    ],
    ids=[
        "upgrade-h2c",
        "upgrade-websocketx",
        "no-upgrade-token",
        "token-prefix",
        "no-upgrade",
        "no-connection",
    ],
)
def test_is_not_websocket_upgrade(headers: list[Header]) -> None:
    assert not is_websocket_upgrade(upgrade_request(headers))


def test_parsed_request_is_an_upgrade() -> None:
    """The same check on a request read by the HTTP/1.1 parser (names lowercased there)."""
    raw = request(
        "GET",
        "/chat",
        headers=[
            (b"Host", b"example.com"),
            (b"Upgrade", b"WebSocket"),
            (b"Connection", b"keep-alive, Upgrade"),
            (b"Sec-WebSocket-Version", b"13"),
            (b"Sec-WebSocket-Key", RFC_KEY),
            (b"Sec-WebSocket-Protocol", b"chat, superchat"),
        ],
    )
    conn = H1Connection(accept_upgrades=frozenset({b"websocket"}))
    conn.receive_data(raw)
    event = drain(conn)[0]
    assert isinstance(event, RequestReceived)
    assert event.upgrade
    assert is_websocket_upgrade(event)
    handshake = validate(event)
    assert handshake.accept == RFC_ACCEPT
    assert handshake.subprotocols == ["chat", "superchat"]


# validate(): refusals ----------------------------------------------------------


def test_http_10_upgrade_is_400() -> None:
    error = refusal(upgrade_request(http_version="1.0"))
    assert error.status_hint == 400
    assert "HTTP/1.0" in str(error)


@pytest.mark.parametrize("method", ["POST", "PUT", "HEAD", "CONNECT"])
def test_method_other_than_get_is_400(method: str) -> None:
    error = refusal(upgrade_request(method=method))
    assert error.status_hint == 400
    assert method in str(error)


@pytest.mark.parametrize(
    "headers",
    [
        with_header(b"sec-websocket-version", b"8"),
        with_header(b"sec-websocket-version", b"12"),
        with_header(b"sec-websocket-version", b"14"),
        with_header(b"sec-websocket-version", b""),
        without(b"sec-websocket-version"),
        [*UPGRADE, (b"sec-websocket-version", b"8")],
    ],
    ids=["8", "12", "14", "empty", "missing", "13-and-8"],
)
def test_other_version_is_426_naming_13(headers: list[Header]) -> None:
    error = refusal(upgrade_request(headers))
    assert error.status_hint == 426
    assert error.headers == [(b"sec-websocket-version", b"13")]
    assert "13" in str(error)


def test_version_is_checked_before_the_key() -> None:
    """A client speaking another version may use another key format: it needs the 426."""
    headers = with_header(b"sec-websocket-version", b"8", without(b"sec-websocket-key"))
    assert refusal(upgrade_request(headers)).status_hint == 426


@pytest.mark.parametrize(
    "key",
    [
        b"not base64!!",
        b"dGhlIHNhbXBsZSBub25jZQ",  # padding missing
        b"dGhlIHNhbXBsZSBub25jZQ==x",
        b"",
        base64.b64encode(b"x" * 15),
        base64.b64encode(b"x" * 17),
        base64.b64encode(b"x" * 32),
    ],
    ids=["garbage", "no-padding", "trailing", "empty", "15-bytes", "17-bytes", "32-bytes"],
)
def test_bad_key_is_400(key: bytes) -> None:
    error = refusal(upgrade_request(with_header(b"sec-websocket-key", key)))
    assert error.status_hint == 400
    assert error.headers == []
    assert "Sec-WebSocket-Key" in str(error)


def test_key_of_exactly_16_bytes_is_accepted() -> None:
    key = base64.b64encode(bytes(range(16)))
    assert validate(upgrade_request(with_header(b"sec-websocket-key", key))).accept == accept_key(
        key
    )


@pytest.mark.parametrize(
    "headers",
    [without(b"sec-websocket-key"), [*UPGRADE, (b"sec-websocket-key", RFC_KEY)]],
    ids=["missing", "two"],
)
def test_missing_or_repeated_key_is_400(headers: list[Header]) -> None:
    error = refusal(upgrade_request(headers))
    assert error.status_hint == 400
    assert "Sec-WebSocket-Key" in str(error)


def test_handshake_error_is_the_peers_fault() -> None:
    assert isinstance(refusal(upgrade_request(method="POST")), RemoteProtocolError)


# validate(): what a valid handshake carries --------------------------------------


def test_no_subprotocols_no_extensions() -> None:
    handshake = validate(upgrade_request())
    assert handshake.subprotocols == []
    assert handshake.extension_offers == []


def test_subprotocols_from_several_fields_and_comma_lists() -> None:
    headers = [
        *UPGRADE,
        (b"sec-websocket-protocol", b"chat, superchat"),
        (b"sec-websocket-protocol", b"graphql-ws"),
        (b"sec-websocket-protocol", b" v2.bascule ,,  wamp "),
    ]
    assert validate(upgrade_request(headers)).subprotocols == [
        "chat",
        "superchat",
        "graphql-ws",
        "v2.bascule",
        "wamp",
    ]


def test_extension_offers_kept_per_field_in_order() -> None:
    headers = [
        *UPGRADE,
        (b"sec-websocket-extensions", b"permessage-deflate; client_max_window_bits"),
        (b"sec-websocket-extensions", b"x-webkit-deflate-frame"),
    ]
    assert validate(upgrade_request(headers)).extension_offers == [
        "permessage-deflate; client_max_window_bits",
        "x-webkit-deflate-frame",
    ]


# response_101 --------------------------------------------------------------------


def head_fields(response: bytes) -> tuple[bytes, list[Header]]:
    """Status line and fields of a response head, asserting it ends the head once."""
    assert response.endswith(b"\r\n\r\n")
    assert response.count(b"\r\n\r\n") == 1
    status, *lines = response[:-4].split(b"\r\n")
    fields = []
    for line in lines:
        name, sep, value = line.partition(b": ")
        assert sep, line
        fields.append((name.lower(), value))
    return status, fields


def test_response_101_minimal() -> None:
    response = response_101(validate(upgrade_request()), None, None, [], b"")
    status, fields = head_fields(response)
    assert status == b"HTTP/1.1 101 Switching Protocols"
    assert (b"sec-websocket-accept", RFC_ACCEPT) in fields
    assert (b"upgrade", b"websocket") in fields
    assert (b"connection", b"Upgrade") in fields
    names = [n for n, _ in fields]
    assert b"sec-websocket-protocol" not in names
    assert b"sec-websocket-extensions" not in names


def test_response_101_with_everything() -> None:
    headers = [*UPGRADE, (b"sec-websocket-protocol", b"chat, superchat")]
    response = response_101(
        validate(upgrade_request(headers)),
        "superchat",
        "permessage-deflate; server_no_context_takeover",
        [(b"x-session", b"42"), (b"set-cookie", b"a=b")],
        b"server: bascule\r\ndate: Thu, 01 Jan 2026 00:00:00 GMT\r\n",
    )
    status, fields = head_fields(response)
    assert status == b"HTTP/1.1 101 Switching Protocols"
    assert fields == [
        (b"upgrade", b"websocket"),
        (b"connection", b"Upgrade"),
        (b"sec-websocket-accept", RFC_ACCEPT),
        (b"sec-websocket-protocol", b"superchat"),
        (b"sec-websocket-extensions", b"permessage-deflate; server_no_context_takeover"),
        (b"x-session", b"42"),
        (b"set-cookie", b"a=b"),
        (b"server", b"bascule"),
        (b"date", b"Thu, 01 Jan 2026 00:00:00 GMT"),
    ]


def test_response_101_empty_extension_header_is_left_out() -> None:
    response = response_101(validate(upgrade_request()), None, "", [], b"")
    assert b"sec-websocket-extensions" not in response


def test_handshake_holds_what_it_was_given() -> None:
    handshake = Handshake(b"acc", ["a"], ["permessage-deflate"])
    assert (handshake.accept, handshake.subprotocols, handshake.extension_offers) == (
        b"acc",
        ["a"],
        ["permessage-deflate"],
    )


@pytest.mark.parametrize(
    "accept",
    [
        {"type": "websocket.accept", "headers": [(b"x-a", b"1\r\nset-cookie: stolen=1")]},
        {"type": "websocket.accept", "headers": [(b"x-a\r\nset-cookie", b"stolen=1")]},
        {"type": "websocket.accept", "subprotocol": "chat\r\nset-cookie: stolen=1"},
    ],
    ids=["header-value", "header-name", "subprotocol"],
)
def test_app_cannot_inject_fields_into_the_101(accept: dict[str, object]) -> None:
    """What the app puts in websocket.accept must not split the 101 head.

    The plain HTTP path refuses such fields (proto/headers.py: "so a bad app
    cannot inject a header or split a response"); the 101 must too, either
    when the cycle checks the message or when the head is built.
    """
    handshake = validate(upgrade_request([*UPGRADE, (b"sec-websocket-protocol", b"chat")]))

    def accept_and_answer() -> bytes:
        action = WsCycle().on_message(accept)
        assert isinstance(action, Accept)
        return response_101(handshake, action.subprotocol, None, action.headers, b"")

    with pytest.raises((AppMessageError, LocalProtocolError)):
        accept_and_answer()

"""WsCycle (the app's websocket.* messages, validated in order) and websocket_scope."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bascule.asgi.scope import ConnInfo, websocket_scope
from bascule.asgi.websocket import (
    Accept,
    Close,
    ResponseBody,
    ResponseStart,
    SendData,
    WsCycle,
    WsState,
)
from bascule.errors import AppMessageError
from bascule.proto import RequestReceived

ACCEPT = "websocket.accept"
SEND = "websocket.send"
CLOSE = "websocket.close"
START = "websocket.http.response.start"
BODY = "websocket.http.response.body"

#: A valid message of each type the app may send.
VALID: dict[str, dict[str, Any]] = {
    ACCEPT: {"type": ACCEPT},
    SEND: {"type": SEND, "text": "hi"},
    CLOSE: {"type": CLOSE, "code": 1000},
    START: {"type": START, "status": 403, "headers": []},
    BODY: {"type": BODY, "body": b"denied"},
}

#: The spec's table: what the app may send in each state, and where it leads.
LEGAL: dict[tuple[WsState, str], WsState] = {
    (WsState.CONNECTING, ACCEPT): WsState.ACCEPTED,
    (WsState.CONNECTING, CLOSE): WsState.CLOSED,
    (WsState.CONNECTING, START): WsState.RESPONSE,
    (WsState.ACCEPTED, SEND): WsState.ACCEPTED,
    (WsState.ACCEPTED, CLOSE): WsState.CLOSED,
    (WsState.RESPONSE, BODY): WsState.RESPONSE_DONE,
}

#: Messages leading from CONNECTING to each state.
PATHS: dict[WsState, list[dict[str, Any]]] = {
    WsState.CONNECTING: [],
    WsState.ACCEPTED: [VALID[ACCEPT]],
    WsState.CLOSED: [VALID[ACCEPT], VALID[CLOSE]],
    WsState.RESPONSE: [VALID[START]],
    WsState.RESPONSE_DONE: [VALID[START], VALID[BODY]],
}


def cycle_in(state: WsState) -> WsCycle:
    cycle = WsCycle()
    for message in PATHS[state]:
        cycle.on_message(message)
    assert cycle.state is state
    return cycle


def state_of(cycle: WsCycle) -> WsState:
    """The state, read through a call so mypy does not narrow it between messages."""
    return cycle.state


def error_of(cycle: WsCycle, message: Any) -> str:
    before = cycle.state
    with pytest.raises(AppMessageError) as info:
        cycle.on_message(message)
    assert cycle.state is before, "a refused message must not move the state"
    return str(info.value)


def accepted() -> WsCycle:
    return cycle_in(WsState.ACCEPTED)


# each state's allowed messages ---------------------------------------------------------


def test_accept_bare() -> None:
    cycle = WsCycle()
    action = cycle.on_message({"type": ACCEPT})
    assert isinstance(action, Accept)
    assert (action.subprotocol, action.headers) == (None, [])
    assert cycle.state is WsState.ACCEPTED


def test_accept_with_subprotocol_and_headers() -> None:
    action = WsCycle().on_message(
        {"type": ACCEPT, "subprotocol": "chat", "headers": [(b"x-session", b"1")]}
    )
    assert isinstance(action, Accept)
    assert action.subprotocol == "chat"
    assert action.headers == [(b"x-session", b"1")]


def test_accept_headers_as_lists_and_bytearrays() -> None:
    action = WsCycle().on_message({"type": ACCEPT, "headers": [[bytearray(b"x-a"), b"1"]]})
    assert isinstance(action, Accept)
    assert action.headers == [(b"x-a", b"1")]


@pytest.mark.parametrize(
    ("message", "data"),
    [
        ({"type": SEND, "text": "h\u00e9"}, "h\u00e9"),
        ({"type": SEND, "text": ""}, ""),
        ({"type": SEND, "bytes": b"\x00"}, b"\x00"),
        ({"type": SEND, "bytes": b""}, b""),
        ({"type": SEND, "bytes": bytearray(b"ba")}, b"ba"),
        ({"type": SEND, "bytes": memoryview(b"mv")}, b"mv"),
        ({"type": SEND, "bytes": None, "text": "t"}, "t"),
        ({"type": SEND, "bytes": b"b", "text": None}, b"b"),
    ],
    ids=[
        "text",
        "text-empty",
        "bytes",
        "bytes-empty",
        "bytearray",
        "memoryview",
        "bytes-none",
        "text-none",
    ],
)
def test_send(message: dict[str, Any], data: str | bytes) -> None:
    cycle = accepted()
    action = cycle.on_message(message)
    assert isinstance(action, SendData)
    assert action.data == data
    assert type(action.data) is type(data)
    assert cycle.state is WsState.ACCEPTED


@pytest.mark.parametrize("state", [WsState.CONNECTING, WsState.ACCEPTED])
@pytest.mark.parametrize(
    ("message", "code", "reason"),
    [
        ({"type": CLOSE}, 1000, ""),
        ({"type": CLOSE, "code": None, "reason": None}, 1000, ""),
        ({"type": CLOSE, "code": 4000, "reason": "bye"}, 4000, "bye"),
        ({"type": CLOSE, "code": 1001, "reason": "\u00e9" * 61}, 1001, "\u00e9" * 61),
        ({"type": CLOSE, "reason": "r" * 123}, 1000, "r" * 123),
    ],
    ids=["default", "nones", "code-reason", "reason-122-bytes", "reason-123-bytes"],
)
def test_close(state: WsState, message: dict[str, Any], code: int, reason: str) -> None:
    cycle = cycle_in(state)
    action = cycle.on_message(message)
    assert isinstance(action, Close)
    assert (action.code, action.reason) == (code, reason)
    assert cycle.state is WsState.CLOSED


def test_denial_response() -> None:
    cycle = WsCycle()
    start = cycle.on_message(
        {"type": START, "status": 401, "headers": [(b"www-authenticate", b"Basic")]}
    )
    assert isinstance(start, ResponseStart)
    assert (start.status, start.headers) == (401, [(b"www-authenticate", b"Basic")])
    assert state_of(cycle) is WsState.RESPONSE
    first = cycle.on_message({"type": BODY, "body": b"no ", "more_body": True})
    assert isinstance(first, ResponseBody)
    assert (first.body, first.more) == (b"no ", True)
    assert state_of(cycle) is WsState.RESPONSE
    last = cycle.on_message({"type": BODY, "body": bytearray(b"entry")})
    assert isinstance(last, ResponseBody)
    assert (last.body, last.more) == (b"entry", False)
    assert type(last.body) is bytes
    assert state_of(cycle) is WsState.RESPONSE_DONE


def test_denial_response_body_defaults() -> None:
    cycle = cycle_in(WsState.RESPONSE)
    action = cycle.on_message({"type": BODY})
    assert isinstance(action, ResponseBody)
    assert (action.body, action.more) == (b"", False)


# clear errors ----------------------------------------------------------------------------


def test_send_before_accept() -> None:
    assert error_of(WsCycle(), {"type": SEND, "text": "x"}) == (
        "websocket.send before websocket.accept"
    )


def test_send_after_close() -> None:
    assert error_of(cycle_in(WsState.CLOSED), {"type": SEND, "text": "x"}) == (
        "websocket.send after websocket.close"
    )


def test_close_after_close() -> None:
    assert error_of(cycle_in(WsState.CLOSED), {"type": CLOSE}) == (
        "websocket.close after websocket.close"
    )


def test_send_both_bytes_and_text() -> None:
    message = error_of(accepted(), {"type": SEND, "bytes": b"b", "text": "t"})
    assert "both 'bytes' and 'text'" in message
    assert message.startswith("websocket.send")


@pytest.mark.parametrize(
    "message",
    [{"type": SEND}, {"type": SEND, "bytes": None, "text": None}],
    ids=["absent", "none"],
)
def test_send_neither(message: dict[str, Any]) -> None:
    assert "neither 'bytes' nor 'text'" in error_of(accepted(), message)


@pytest.mark.parametrize("value", ["text", 5, ["b"]], ids=["str", "int", "list"])
def test_send_bytes_of_wrong_type(value: object) -> None:
    message = error_of(accepted(), {"type": SEND, "bytes": value})
    assert "bytes must be bytes" in message
    assert type(value).__name__ in message


@pytest.mark.parametrize("value", [b"bytes", 5, bytearray(b"x")], ids=["bytes", "int", "bytearray"])
def test_send_text_of_wrong_type(value: object) -> None:
    message = error_of(accepted(), {"type": SEND, "text": value})
    assert "text must be str" in message
    assert type(value).__name__ in message


@pytest.mark.parametrize("name", [b"sec-websocket-protocol", b"Sec-WebSocket-Protocol"])
def test_accept_with_subprotocol_header(name: bytes) -> None:
    message = error_of(WsCycle(), {"type": ACCEPT, "headers": [(b"x-a", b"1"), (name, b"chat")]})
    assert "headers[1]" in message
    assert "use the 'subprotocol' key" in message


@pytest.mark.parametrize("value", [b"chat", 1, ["chat"]], ids=["bytes", "int", "list"])
def test_accept_bad_subprotocol_type(value: object) -> None:
    message = error_of(WsCycle(), {"type": ACCEPT, "subprotocol": value})
    assert "subprotocol must be str or None" in message


@pytest.mark.parametrize(
    ("headers", "fragment"),
    [
        ("x-a: 1", "headers must be an iterable"),
        ([(b"x-a",)], "headers[0] must be a [name, value] pair"),
        ([("x-a", b"1")], "headers[0] name must be bytes"),
        ([(b"x-a", 1)], "headers[0] value must be bytes"),
    ],
    ids=["str", "short-pair", "str-name", "int-value"],
)
def test_accept_bad_headers(headers: object, fragment: str) -> None:
    assert fragment in error_of(WsCycle(), {"type": ACCEPT, "headers": headers})


def test_close_reason_too_long() -> None:
    for reason in ("r" * 124, "\u00e9" * 62):  # 124 bytes, in characters or in UTF-8
        message = error_of(accepted(), {"type": CLOSE, "reason": reason})
        assert "longer than 123 bytes" in message


@pytest.mark.parametrize("code", ["1000", 1000.0, b"1000"], ids=["str", "float", "bytes"])
def test_close_code_not_int(code: object) -> None:
    assert "code must be an int" in error_of(accepted(), {"type": CLOSE, "code": code})


def test_close_reason_not_str() -> None:
    assert "reason must be str" in error_of(accepted(), {"type": CLOSE, "reason": b"bye"})


@pytest.mark.parametrize("code", [0, 999, 1005, 1006, 1015, 2999, 5000])
def test_close_code_that_cannot_be_sent(code: int) -> None:
    """RFC 6455 §7.4: 1005, 1006, 1015 must not be sent; below 1000 and above 4999
    are not codes. The frame layer would raise on them; the app should get a
    clear AppMessageError instead."""
    assert "code" in error_of(accepted(), {"type": CLOSE, "code": code})


@pytest.mark.parametrize(
    "status",
    [None, "403", 403.0, 99, 1000, -1],
    ids=["missing", "str", "float", "99", "1000", "negative"],
)
def test_response_start_bad_status(status: object) -> None:
    message: dict[str, Any] = {"type": START}
    if status is not None:
        message["status"] = status
    assert "status must be an int in 200..999" in error_of(WsCycle(), message)


@pytest.mark.parametrize("status", [100, 101, 199])
def test_response_start_informational_status(status: int) -> None:
    """A denial response is a final response: 1xx would leave the client waiting
    (and 101 would claim the upgrade succeeded)."""
    assert "status" in error_of(WsCycle(), {"type": START, "status": status})


def test_http_response_start_is_not_a_websocket_message() -> None:
    message = error_of(WsCycle(), {"type": "http.response.start", "status": 200})
    assert message == "http.response.start is not allowed while the WebSocket is connecting"


def test_body_after_response_done() -> None:
    message = error_of(cycle_in(WsState.RESPONSE_DONE), {"type": BODY, "body": b"more"})
    assert message == (
        "websocket.http.response.body is not allowed while the WebSocket is denial response sent"
    )


def test_body_before_start() -> None:
    message = error_of(WsCycle(), {"type": BODY, "body": b""})
    assert "websocket.http.response.body is not allowed" in message


@pytest.mark.parametrize(
    ("message", "fragment"),
    [
        ({"type": BODY, "body": "text"}, "body must be bytes"),
        ({"type": BODY, "more_body": 1}, "more_body must be a bool"),
    ],
    ids=["str-body", "int-more-body"],
)
def test_response_body_bad_fields(message: dict[str, Any], fragment: str) -> None:
    assert fragment in error_of(cycle_in(WsState.RESPONSE), message)


def test_response_start_after_accept() -> None:
    assert "is not allowed while the WebSocket is accepted" in error_of(accepted(), VALID[START])


def test_accept_twice() -> None:
    message = error_of(accepted(), VALID[ACCEPT])
    assert message == "websocket.accept is not allowed while the WebSocket is accepted"


@pytest.mark.parametrize(
    "message",
    [None, "websocket.accept", 42, {}, {"typ": ACCEPT}],
    ids=["none", "str", "int", "empty", "no-type"],
)
def test_not_a_message(message: object) -> None:
    assert "must be a dict with a 'type' key" in error_of(WsCycle(), message)


def test_unknown_type_is_named() -> None:
    assert error_of(WsCycle(), {"type": "lifespan.startup.complete"}) == (
        "unexpected message type 'lifespan.startup.complete' for a websocket scope"
    )


# the whole table, by hypothesis ---------------------------------------------------------

MESSAGE_TYPES = [
    ACCEPT,
    SEND,
    CLOSE,
    START,
    BODY,
    "websocket.receive",
    "websocket.connect",
    "websocket.disconnect",
    "http.response.start",
    "http.response.body",
    "lifespan.startup.complete",
]


@settings(max_examples=300, deadline=None)
@given(
    state=st.sampled_from(list(WsState)),
    mtype=st.sampled_from(MESSAGE_TYPES) | st.text(max_size=30),
)
def test_every_state_and_message_type(state: WsState, mtype: str) -> None:
    cycle = cycle_in(state)
    message = dict(VALID.get(mtype, {}), type=mtype)
    if (state, mtype) in LEGAL:
        cycle.on_message(message)
        assert cycle.state is LEGAL[(state, mtype)]
    else:
        text = error_of(cycle, message)
        assert text
        assert repr(mtype) in text or mtype in text


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(list(VALID)), max_size=8))
def test_any_sequence_follows_the_table(types: list[str]) -> None:
    cycle = WsCycle()
    for mtype in types:
        state = cycle.state
        if (state, mtype) in LEGAL:
            cycle.on_message(VALID[mtype])
            assert cycle.state is LEGAL[(state, mtype)]
        else:
            error_of(cycle, VALID[mtype])


def test_body_with_more_stays_in_response() -> None:
    cycle = cycle_in(WsState.RESPONSE)
    for _ in range(3):
        cycle.on_message({"type": BODY, "body": b"x", "more_body": True})
        assert cycle.state is WsState.RESPONSE


# websocket_scope ---------------------------------------------------------------------------

SCOPE_KEYS = {
    "type",
    "asgi",
    "http_version",
    "scheme",
    "path",
    "raw_path",
    "query_string",
    "root_path",
    "headers",
    "client",
    "server",
    "subprotocols",
    "state",
    "extensions",
}

HEADERS = [
    (b"host", b"example.com"),
    (b"upgrade", b"websocket"),
    (b"connection", b"Upgrade"),
    (b"sec-websocket-key", b"dGhlIHNhbXBsZSBub25jZQ=="),
    (b"sec-websocket-version", b"13"),
]


def upgrade(path: bytes = b"/chat", query: bytes = b"") -> RequestReceived:
    return RequestReceived(1, "GET", path, query, list(HEADERS), "1.1", True, False, upgrade=True)


def info(scheme: str = "http", root_path: str = "") -> ConnInfo:
    return ConnInfo(("203.0.113.7", 51000), ("192.0.2.1", 8000), scheme, root_path)


def test_scope_has_exactly_the_spec_keys() -> None:
    assert set(websocket_scope(upgrade(), info(), None, [])) == SCOPE_KEYS


def test_scope_values() -> None:
    req = upgrade(b"/r%C3%A9/chat", b"room=1")
    scope = websocket_scope(req, info(), {"db": "pool"}, ["chat", "superchat"])
    assert scope["type"] == "websocket"
    assert scope["asgi"]["version"] == "3.0"
    assert scope["asgi"]["spec_version"] in ("2.3", "2.4", "2.5")
    assert scope["http_version"] == "1.1"
    assert scope["scheme"] == "ws"
    assert scope["path"] == "/r\u00e9/chat"
    assert scope["raw_path"] == b"/r%C3%A9/chat"
    assert scope["query_string"] == b"room=1"
    assert scope["root_path"] == ""
    assert scope["headers"] == HEADERS
    assert scope["client"] == ("203.0.113.7", 51000)
    assert scope["server"] == ("192.0.2.1", 8000)
    assert scope["subprotocols"] == ["chat", "superchat"]
    assert scope["state"] == {"db": "pool"}
    assert "websocket.http.response" in scope["extensions"]


@pytest.mark.parametrize(("scheme", "ws"), [("http", "ws"), ("https", "wss")])
def test_scope_scheme(scheme: str, ws: str) -> None:
    assert websocket_scope(upgrade(), info(scheme), None, [])["scheme"] == ws


def test_scope_state_is_a_copy() -> None:
    state: dict[str, Any] = {"n": 1}
    scope = websocket_scope(upgrade(), info(), state, [])
    scope["state"]["n"] = 2
    assert state == {"n": 1}
    assert websocket_scope(upgrade(), info(), None, [])["state"] == {}


def test_scope_extensions_are_not_shared() -> None:
    first = websocket_scope(upgrade(), info(), None, [])
    first["extensions"]["websocket.http.response"]["mutated"] = True
    first["extensions"]["other"] = {}
    second = websocket_scope(upgrade(), info(), None, [])
    assert second["extensions"] == {"websocket.http.response": {}}


def test_scope_root_path() -> None:
    scope = websocket_scope(upgrade(b"/chat"), info(root_path="/api"), None, [])
    assert scope["root_path"] == "/api"
    assert scope["path"] == "/api/chat"
    assert scope["raw_path"] == b"/api/chat"

"""The ASGI WebSocket cycle as a pure state machine.

``WsCycle.on_message(message)`` validates one message the app sent, in the
current state, and returns an action for the driver:

==========================  ===================================================
state                       allowed messages
==========================  ===================================================
CONNECTING                  websocket.accept, websocket.close (→ 403),
                            websocket.http.response.start (denial response)
ACCEPTED                    websocket.send, websocket.close
RESPONSE                    websocket.http.response.body
CLOSED / RESPONSE_DONE      nothing
==========================  ===================================================

Any other (state, message) pair raises :class:`AppMessageError` naming the
problem.  Nothing here awaits, logs or touches I/O.
"""

from enum import Enum
from typing import Any, Final

from bascule.asgi.http import _describe, check_headers
from bascule.errors import AppMessageError
from bascule.proto.events import Headers


class WsState(Enum):
    """Where the app is in its WebSocket session."""

    CONNECTING = "connecting"
    ACCEPTED = "accepted"
    CLOSED = "closed"
    RESPONSE = "sending a denial response"
    RESPONSE_DONE = "denial response sent"


class Accept:
    __slots__ = ("headers", "subprotocol")

    def __init__(self, subprotocol: str | None, headers: Headers) -> None:
        self.subprotocol = subprotocol
        self.headers = headers


class SendData:
    __slots__ = ("data",)

    def __init__(self, data: str | bytes) -> None:
        self.data = data


class Close:
    """``websocket.close``: a close frame once accepted, a 403 before."""

    __slots__ = ("code", "reason")

    def __init__(self, code: int, reason: str) -> None:
        self.code = code
        self.reason = reason


class ResponseStart:
    __slots__ = ("headers", "status")

    def __init__(self, status: int, headers: Headers) -> None:
        self.status = status
        self.headers = headers


class ResponseBody:
    __slots__ = ("body", "more")

    def __init__(self, body: bytes, more: bool) -> None:
        self.body = body
        self.more = more


Action = Accept | SendData | Close | ResponseStart | ResponseBody

_ALLOWED: Final = {
    WsState.CONNECTING: (
        "websocket.accept",
        "websocket.close",
        "websocket.http.response.start",
    ),
    WsState.ACCEPTED: ("websocket.send", "websocket.close"),
    WsState.RESPONSE: ("websocket.http.response.body",),
    WsState.CLOSED: (),
    WsState.RESPONSE_DONE: (),
}

_NEXT: Final = {
    (WsState.CONNECTING, "websocket.accept"): WsState.ACCEPTED,
    (WsState.CONNECTING, "websocket.close"): WsState.CLOSED,
    (WsState.CONNECTING, "websocket.http.response.start"): WsState.RESPONSE,
    (WsState.ACCEPTED, "websocket.send"): WsState.ACCEPTED,
    (WsState.ACCEPTED, "websocket.close"): WsState.CLOSED,
}


class WsCycle:
    """Validates a WebSocket app's messages and turns them into actions."""

    __slots__ = ("state",)

    def __init__(self) -> None:
        self.state = WsState.CONNECTING

    def on_message(self, message: Any) -> Action:
        """The action for ``message``; raises AppMessageError if it breaks the spec."""
        try:
            mtype = message["type"]
        except (TypeError, KeyError):
            raise AppMessageError(
                f"message must be a dict with a 'type' key, got {_describe(message)}"
            ) from None
        state = self.state
        if mtype == "websocket.send" and state is WsState.ACCEPTED:
            return SendData(_send_data(message))
        if mtype not in _ALLOWED[state]:
            raise AppMessageError(_order_error(mtype, state))
        if mtype == "websocket.http.response.body":
            body, more = _body(message)
            if not more:
                self.state = WsState.RESPONSE_DONE
            return ResponseBody(body, more)
        action = _parse(mtype, message)
        self.state = _NEXT[(state, mtype)]
        return action


def _order_error(mtype: object, state: WsState) -> str:
    if mtype == "websocket.send" and state is WsState.CONNECTING:
        return "websocket.send before websocket.accept"
    if mtype in ("websocket.send", "websocket.close") and state is WsState.CLOSED:
        return f"{mtype} after websocket.close"
    if isinstance(mtype, str) and mtype.startswith(("websocket.", "http.")):
        return f"{mtype} is not allowed while the WebSocket is {state.value}"
    return f"unexpected message type {mtype!r} for a websocket scope"


def _send_data(message: Any) -> str | bytes:
    data_bytes = message.get("bytes")
    text = message.get("text")
    if data_bytes is not None and text is not None:
        raise AppMessageError("websocket.send: has both 'bytes' and 'text'; exactly one is allowed")
    if text is not None:
        if type(text) is not str:
            raise AppMessageError(f"websocket.send: text must be str, got {_describe(text)}")
        return text
    if data_bytes is None:
        raise AppMessageError("websocket.send: has neither 'bytes' nor 'text'")
    if type(data_bytes) is not bytes:
        if not isinstance(data_bytes, bytes | bytearray | memoryview):
            raise AppMessageError(
                f"websocket.send: bytes must be bytes, got {_describe(data_bytes)}"
            )
        data_bytes = bytes(data_bytes)
    return data_bytes


def _body(message: Any) -> tuple[bytes, bool]:
    kind = "websocket.http.response.body"
    body = message.get("body", b"")
    if not isinstance(body, bytes | bytearray | memoryview):
        raise AppMessageError(f"{kind}: body must be bytes, got {_describe(body)}")
    more = message.get("more_body", False)
    if type(more) is not bool:
        raise AppMessageError(f"{kind}: more_body must be a bool, got {_describe(more)}")
    return bytes(body), more


def _parse(mtype: str, message: Any) -> Action:
    if mtype == "websocket.accept":
        subprotocol = message.get("subprotocol")
        if subprotocol is not None and type(subprotocol) is not str:
            raise AppMessageError(
                f"websocket.accept: subprotocol must be str or None, got {_describe(subprotocol)}"
            )
        headers = check_headers(mtype, message.get("headers", ()))
        for i, (name, _) in enumerate(headers):
            if name.lower() == b"sec-websocket-protocol":
                raise AppMessageError(
                    f"websocket.accept: headers[{i}] is sec-websocket-protocol; "
                    "use the 'subprotocol' key"
                )
        return Accept(subprotocol, headers)
    if mtype == "websocket.close":
        code = message.get("code", 1000)
        if code is None:
            code = 1000
        if type(code) is not int:
            raise AppMessageError(f"websocket.close: code must be an int, got {_describe(code)}")
        if not (1000 <= code <= 1003 or 1007 <= code <= 1014 or 3000 <= code <= 4999):
            raise AppMessageError(
                f"websocket.close: code {code} cannot be sent (RFC 6455 §7.4: 1000-1003, "
                "1007-1014, 3000-4999)"
            )
        reason = message.get("reason") or ""
        if type(reason) is not str:
            raise AppMessageError(f"websocket.close: reason must be str, got {_describe(reason)}")
        if len(reason.encode()) > 123:
            raise AppMessageError("websocket.close: reason longer than 123 bytes (RFC 6455 §5.5)")
        return Close(code, reason)
    # websocket.http.response.start
    status = message.get("status")
    if type(status) is not int or not 200 <= status <= 999:
        raise AppMessageError(
            "websocket.http.response.start: status must be an int in 200..999, "
            f"got {_describe(status)}"
        )
    return ResponseStart(status, check_headers(mtype, message.get("headers", ())))

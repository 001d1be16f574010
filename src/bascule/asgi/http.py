"""The ASGI HTTP response cycle as a pure state machine.

``HttpCycle.on_message(message)`` validates one message the app sent, in
order (``http.response.start`` → ``http.response.body``\\* → done), and returns
the neutral protocol events to send.  A message that breaks the spec raises
:class:`AppMessageError` whose text names the message and the field, e.g.
``http.response.start: headers[0] value must be bytes, got str 'text/plain'``.
Nothing here awaits, logs or touches I/O.
"""

from collections.abc import Iterable
from enum import IntEnum
from typing import Any

from bascule.errors import AppMessageError
from bascule.proto.events import BodyChunk, BodyEnd, Headers, ResponseHead


class CycleState(IntEnum):
    """Where the app is in its response."""

    START = 0  # nothing sent yet
    BODY = 1  # start sent, body open
    DONE = 2  # last body sent


def _describe(value: object) -> str:
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{type(value).__name__} {text}"


def check_headers(kind: str, raw: object) -> Headers:
    """Validate an ASGI header list: an iterable of 2-item (bytes, bytes).

    The common case (a list of pairs of ``bytes``) is checked in one tight
    loop and returned as given; anything else takes the slow path, which
    converts what it can and names the first bad item.
    """
    if type(raw) is list:
        try:
            for name, value in raw:
                if type(name) is not bytes or type(value) is not bytes:
                    break
            else:
                return raw
        except (TypeError, ValueError):
            pass
    return _check_headers_slow(kind, raw)


def _check_headers_slow(kind: str, raw: object) -> Headers:
    if raw is None:
        return []
    if isinstance(raw, str | bytes) or not isinstance(raw, Iterable):
        raise AppMessageError(
            f"{kind}: headers must be an iterable of [name, value], got {_describe(raw)}"
        )
    headers: Headers = []
    for i, pair in enumerate(raw):
        try:
            name, value = pair
        except (TypeError, ValueError):
            raise AppMessageError(
                f"{kind}: headers[{i}] must be a [name, value] pair, got {_describe(pair)}"
            ) from None
        if type(name) is not bytes:
            if not isinstance(name, bytes | bytearray):
                raise AppMessageError(
                    f"{kind}: headers[{i}] name must be bytes, got {_describe(name)}"
                )
            name = bytes(name)
        if type(value) is not bytes:
            if not isinstance(value, bytes | bytearray):
                raise AppMessageError(
                    f"{kind}: headers[{i}] value must be bytes, got {_describe(value)}"
                )
            value = bytes(value)
        headers.append((name, value))
    return headers


def _body_of(kind: str, message: Any) -> tuple[bytes, bool]:
    body = message.get("body", b"")
    if type(body) is not bytes:
        if not isinstance(body, bytes | bytearray | memoryview):
            raise AppMessageError(f"{kind}: body must be bytes, got {_describe(body)}")
        body = bytes(body)
    more = message.get("more_body", False)
    if type(more) is not bool:
        raise AppMessageError(f"{kind}: more_body must be a bool, got {_describe(more)}")
    return body, more


class HttpCycle:
    """Validates one response's ASGI messages and turns them into protocol events."""

    __slots__ = ("state", "status", "stream_id")

    def __init__(self, stream_id: int = 1) -> None:
        self.stream_id = stream_id
        self.state = CycleState.START
        self.status = 0

    def on_message(self, message: Any) -> list[ResponseHead | BodyChunk | BodyEnd]:
        """Events for ``message``; raises AppMessageError if it breaks the spec."""
        try:
            mtype = message["type"]
        except (TypeError, KeyError):
            raise AppMessageError(
                f"message must be a dict with a 'type' key, got {_describe(message)}"
            ) from None
        state = self.state
        if mtype == "http.response.body":
            if state is not CycleState.BODY:
                raise AppMessageError(
                    "http.response.body sent before http.response.start"
                    if state is CycleState.START
                    else "http.response.body sent after the response was complete"
                )
            body, more = _body_of(mtype, message)
            if more:
                return [BodyChunk(self.stream_id, body)] if body else []
            self.state = CycleState.DONE
            if body:
                return [BodyChunk(self.stream_id, body), BodyEnd(self.stream_id)]
            return [BodyEnd(self.stream_id)]
        if mtype == "http.response.start":
            if state is not CycleState.START:
                raise AppMessageError("http.response.start sent twice")
            status = message.get("status")
            if type(status) is not int:
                raise AppMessageError(f"{mtype}: status must be an int, got {_describe(status)}")
            if not 200 <= status <= 999:
                raise AppMessageError(f"{mtype}: status must be in 200..999, got {status}")
            headers = check_headers(mtype, message.get("headers", ()))
            self.state = CycleState.BODY
            self.status = status
            return [ResponseHead(self.stream_id, status, headers)]
        raise AppMessageError(f"unexpected message type {mtype!r} for an http scope")

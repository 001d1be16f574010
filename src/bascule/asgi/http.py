"""The ASGI HTTP response cycle as a pure state machine.

``HttpCycle.on_message(message)`` validates one message the app sent, in
order (``http.response.start`` → ``http.response.body``\\* → done), and returns
the neutral protocol events to send.  A message that breaks the spec raises
:class:`AppMessageError` whose text names the message and the field, e.g.
``http.response.start: headers[0] value must be bytes, got str 'text/plain'``.
Nothing here awaits, logs or touches I/O.
"""

from collections.abc import Iterable, Mapping
from enum import IntEnum
from typing import Any, cast

from bascule.errors import AppMessageError
from bascule.proto.events import (
    BodyChunk,
    BodyEnd,
    Headers,
    InformationalResponse,
    ResponseHead,
)


class CycleState(IntEnum):
    """Where the app is in its response."""

    START = 0  # nothing sent yet
    BODY = 1  # start sent, body open
    DONE = 2  # last body (and trailers) sent
    TRAILERS = 3  # last body sent, trailers announced and still to come


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
        for pair in cast("list[object]", raw):  # indexed, without an iterator object
            # Pairs given as lists (the spec allows any 2-item iterable) become tuples on the
            # slow path: the compiled layers below read each pair as a tuple.
            if type(pair) is not tuple or len(pair) != 2:
                break
            name, value = pair
            if type(name) is not bytes or type(value) is not bytes:
                break
        else:
            return raw
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


def _not_a_message(message: object) -> AppMessageError:
    return AppMessageError(f"message must be a dict with a 'type' key, got {_describe(message)}")


def _as_dict(message: object) -> dict[str, Any]:
    """A message given as a Mapping other than a dict, copied to one (AppMessageError if
    it is no mapping at all)."""
    if isinstance(message, Mapping):
        return dict(message)
    raise _not_a_message(message)


def _body_of(kind: str, message: dict[str, Any]) -> tuple[bytes, bool]:
    body = message.get("body", b"")
    if type(body) is not bytes:
        if not isinstance(body, bytes | bytearray | memoryview):
            raise AppMessageError(f"{kind}: body must be bytes, got {_describe(body)}")
        body = bytes(body)
    more = message.get("more_body", False)
    if type(more) is not bool:
        raise AppMessageError(f"{kind}: more_body must be a bool, got {_describe(more)}")
    return body, more


class FileBody:
    """``http.response.pathsend`` / ``http.response.zerocopysend``: body bytes from a file.

    The I/O layer reads the file (``path``, or the open ``file`` from ``offset``
    for ``count`` bytes, all when None) and sends it as body; ``more`` as in
    ``http.response.body``.
    """

    __slots__ = ("count", "file", "more", "offset", "path")

    def __init__(
        self,
        path: str | None,
        file: Any,
        offset: int | None,
        count: int | None,
        more: bool,
    ) -> None:
        self.path = path
        self.file = file
        self.offset = offset
        self.count = count
        self.more = more


class Push:
    """``http.response.push``: a server push promise (HTTP/2 only)."""

    __slots__ = ("headers", "path")

    def __init__(self, path: str, headers: Headers) -> None:
        self.path = path
        self.headers = headers


CycleEvent = ResponseHead | BodyChunk | BodyEnd | InformationalResponse | FileBody | Push


class HttpCycle:
    """Validates one response's ASGI messages and turns them into protocol events.

    States: START → (``http.response.start``) BODY → (last body) DONE, or
    → TRAILERS when the start message announced ``trailers`` → DONE after
    the last ``http.response.trailers``.  ``http.response.early_hint`` and
    ``http.response.push`` are allowed where the spec allows them.
    """

    __slots__ = ("state", "status", "stream_id", "trailers", "wants_trailers")

    def __init__(self, stream_id: int = 1) -> None:
        self.stream_id = stream_id
        self.state = CycleState.START
        self.status = 0
        self.wants_trailers = False
        self.trailers: Headers = []

    def on_message(self, message: Any) -> list[CycleEvent]:
        """Events for ``message``; raises AppMessageError if it breaks the spec."""
        # Typed as a dict from here on: each read is then a dictionary lookup, not a
        # method found and called by name (a Mapping that is not a dict is copied).
        msg: dict[str, Any] = message if type(message) is dict else _as_dict(message)
        mtype = msg.get("type")
        if mtype is None and "type" not in msg:
            raise _not_a_message(message)
        state = self.state
        if mtype == "http.response.body":
            self._expect_body(mtype, state)
            body, more = _body_of(mtype, msg)
            if more:
                return [BodyChunk(self.stream_id, body)] if body else []
            if not self.wants_trailers:
                self.state = CycleState.DONE
                return [BodyEnd(self.stream_id, None, body)]
            return self._last_body([BodyChunk(self.stream_id, body)] if body else [])
        if mtype == "http.response.start":
            if state is not CycleState.START:
                raise AppMessageError("http.response.start sent twice")
            status = msg.get("status")
            if type(status) is not int:
                raise AppMessageError(f"{mtype}: status must be an int, got {_describe(status)}")
            if not 200 <= status <= 999:
                raise AppMessageError(f"{mtype}: status must be in 200..999, got {status}")
            headers = check_headers(mtype, msg.get("headers", ()))
            trailers = msg.get("trailers", False)
            if type(trailers) is not bool:
                raise AppMessageError(
                    f"{mtype}: trailers must be a bool, got {_describe(trailers)}"
                )
            self.wants_trailers = trailers
            self.state = CycleState.BODY
            self.status = status
            return [ResponseHead(self.stream_id, status, headers)]
        return self._extension(mtype, state, msg)

    def _expect_body(self, mtype: str, state: CycleState) -> None:
        if state is not CycleState.BODY:
            raise AppMessageError(
                f"{mtype} sent before http.response.start"
                if state is CycleState.START
                else f"{mtype} sent after the response body was complete"
                if state is CycleState.TRAILERS
                else f"{mtype} sent after the response was complete"
            )

    def _last_body(self, events: list[CycleEvent]) -> list[CycleEvent]:
        if self.wants_trailers:
            self.state = CycleState.TRAILERS
            return events
        self.state = CycleState.DONE
        events.append(BodyEnd(self.stream_id))
        return events

    def _extension(
        self, mtype: object, state: CycleState, message: dict[str, Any]
    ) -> list[CycleEvent]:
        if mtype == "http.response.trailers":
            if state is not CycleState.TRAILERS:
                raise AppMessageError(
                    "http.response.trailers sent without trailers=True in http.response.start"
                    if not self.wants_trailers
                    else "http.response.trailers sent before the last http.response.body"
                    if state is not CycleState.DONE
                    else "http.response.trailers sent after the response was complete"
                )
            self.trailers.extend(check_headers(mtype, message.get("headers", ())))
            more = message.get("more_trailers", False)
            if type(more) is not bool:
                raise AppMessageError(
                    f"{mtype}: more_trailers must be a bool, got {_describe(more)}"
                )
            if more:
                return []
            self.state = CycleState.DONE
            return [BodyEnd(self.stream_id, self.trailers)]
        if mtype == "http.response.early_hint":
            if state is not CycleState.START:
                raise AppMessageError(f"{mtype} sent after http.response.start")
            links = message.get("links")
            if not isinstance(links, list | tuple) or not all(type(x) is bytes for x in links):
                raise AppMessageError(
                    f"{mtype}: links must be a list of bytes, got {_describe(links)}"
                )
            return [InformationalResponse(self.stream_id, 103, [(b"link", x) for x in links])]
        if mtype == "http.response.pathsend":
            self._expect_body(mtype, state)
            path = message.get("path")
            if type(path) is not str or not path.startswith("/"):
                raise AppMessageError(
                    f"{mtype}: path must be an absolute path str, got {_describe(path)}"
                )
            return [FileBody(path, None, None, None, False), *self._last_body([])]
        if mtype == "http.response.zerocopysend":
            self._expect_body(mtype, state)
            file = message.get("file")
            if not hasattr(file, "fileno"):
                raise AppMessageError(
                    f"{mtype}: file must be a file object with fileno(), got {_describe(file)}"
                )
            offset, count = message.get("offset"), message.get("count")
            for name, value in (("offset", offset), ("count", count)):
                if value is not None and (type(value) is not int or value < 0):
                    raise AppMessageError(
                        f"{mtype}: {name} must be an int >= 0, got {_describe(value)}"
                    )
            more = message.get("more_body", False)
            if type(more) is not bool:
                raise AppMessageError(f"{mtype}: more_body must be a bool, got {_describe(more)}")
            events: list[CycleEvent] = [FileBody(None, file, offset, count, more)]
            return events if more else self._last_body(events)
        if mtype == "http.response.push":
            if state is CycleState.DONE:
                raise AppMessageError(f"{mtype} sent after the response was complete")
            path = message.get("path")
            if type(path) is not str or not path.startswith("/"):
                raise AppMessageError(
                    f"{mtype}: path must be a str starting with '/', got {_describe(path)}"
                )
            return [Push(path, check_headers(mtype, message.get("headers", ())))]
        raise AppMessageError(f"unexpected message type {mtype!r} for an http scope")

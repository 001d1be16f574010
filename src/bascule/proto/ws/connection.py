"""WsConnection: the frame layer of one WebSocket, after any handshake, sans I/O.

Framing, masking, control frames, the close handshake and size limits come
from the ``websockets`` library's sans-I/O ``Protocol`` (C speed-ups for
masking); this class adds what an ASGI server needs on top: messages
reassembled from fragments, UTF-8 checked as fragments arrive (fail fast,
1007), and neutral events::

    conn = WsConnection(WsLimits(), extensions)
    for event in conn.receive_data(data):   # WsMessage, WsPong, WsClosed
        ...
    conn.send_message("text" or b"bytes"); conn.send_close(1000, "")
    for chunk in conn.data_to_send(): ...   # b"" means: close the TCP connection

Measured against wsproto in docs/websocket.md.
"""

import codecs
import contextlib
import importlib
from collections.abc import Callable, Sequence
from typing import Final, cast

from websockets.exceptions import InvalidState
from websockets.extensions.base import Extension
from websockets.frames import Close, CloseCode, Opcode
from websockets.protocol import SEND_EOF, Protocol, Side, State

from bascule.proto.limits import WsLimits


def _mask_function() -> Callable[[bytes | memoryview, bytes], bytes]:
    """websockets' C ``apply_mask``, or its pure-Python one where the C one is missing."""
    try:
        module = importlib.import_module("websockets.speedups")
    except ImportError:  # pragma: no cover - the C extension is missing on this platform
        module = importlib.import_module("websockets.utils")
    return cast("Callable[[bytes | memoryview, bytes], bytes]", module.apply_mask)


apply_mask: Final = _mask_function()


_TEXT: Final = Opcode.TEXT
_BINARY: Final = Opcode.BINARY
_CONT: Final = Opcode.CONT
_PONG: Final = Opcode.PONG
_CLOSE: Final = Opcode.CLOSE
_UTF8: Final = codecs.getincrementaldecoder("utf-8")


class WsMessage:
    """A complete message: ``str`` for text, ``bytes`` for binary."""

    __slots__ = ("data",)

    def __init__(self, data: str | bytes) -> None:
        self.data = data

    def __repr__(self) -> str:
        kind = "text" if isinstance(self.data, str) else "bytes"
        return f"WsMessage({kind}, {len(self.data)})"


class WsPong:
    """A pong arrived (answers our keep-alive ping)."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data


class WsClosed:
    """The WebSocket is closing: ``code``/``reason`` as the peer sent them, or
    the code we failed with (1002 protocol error, 1007 bad UTF-8, 1009 too big)
    when ``by_peer`` is False."""

    __slots__ = ("by_peer", "code", "reason")

    def __init__(self, code: int, reason: str, by_peer: bool) -> None:
        self.code = code
        self.reason = reason
        self.by_peer = by_peer

    def __repr__(self) -> str:
        return f"WsClosed({self.code}, {self.reason!r}, by_peer={self.by_peer})"


WsEvent = WsMessage | WsPong | WsClosed

_RESERVED_OPCODES: Final = frozenset({3, 4, 5, 6, 7, 11, 12, 13, 14, 15})
#: First header byte of a final, uncompressed text (0x81) or binary (0x82) frame.
_PLAIN_DATA: Final = frozenset({0x81, 0x82})


class _Peek:
    """UTF-8 check state for a text frame whose payload is still arriving."""

    __slots__ = ("decoder", "mask", "offset")

    def __init__(self, decoder: codecs.IncrementalDecoder, mask: bytes) -> None:
        self.decoder = decoder
        self.mask = mask
        self.offset = 0


def _scan(buf: bytes | bytearray, pos: int) -> tuple[int, int, int] | None:
    """(first header byte, payload length, header length) of the frame at
    ``buf[pos:]``, or None if its header is not complete yet."""
    n = len(buf) - pos
    if n < 2:
        return None
    second = buf[pos + 1]
    length = second & 0x7F
    header_len = 2
    if length == 126:
        if n < 4:
            return None
        length = (buf[pos + 2] << 8) | buf[pos + 3]
        header_len = 4
    elif length == 127:
        if n < 10:
            return None
        length = int.from_bytes(buf[pos + 2 : pos + 10], "big")
        header_len = 10
    if second & 0x80:
        header_len += 4
        if n < header_len:
            return None
    return buf[pos], length, header_len


class WsConnection:
    """Server side of an open WebSocket."""

    __slots__ = (
        "_closed_reported",
        "_compressed",
        "_decoder",
        "_emitted",
        "_failing",
        "_fragments",
        "_max_size",
        "_out",
        "_owed",
        "_peek",
        "_pending",
        "_proto",
        "_room",
        "_text",
    )

    def __init__(self, limits: WsLimits, extensions: Sequence[Extension] = ()) -> None:
        proto = Protocol(Side.SERVER, state=State.OPEN, max_size=limits.max_size)
        proto.extensions = list(extensions)
        self._proto = proto
        self._fragments: list[bytes] = []
        self._text = False
        self._decoder: codecs.IncrementalDecoder | None = None
        self._closed_reported = False
        self._pending = bytearray()
        self._owed = 0
        self._peek: _Peek | None = None
        self._emitted = False
        self._compressed = False
        #: True once we failed the connection (protocol error, bad UTF-8, ...):
        #: our close frame then ends it, without waiting for the peer's.
        self._failing = False
        self._max_size = limits.max_size
        self._room = -1
        self._out: list[bytes] = []

    # receiving ---------------------------------------------------------------
    #
    # Bytes are not handed to the websockets Protocol in bulk: a small scanner
    # reads each frame's header first.  That lets us (1) stop before a frame
    # that will fail the connection, or a close frame, while the app still has
    # messages to read, so its answers to them go out before our close frame;
    # (2) check UTF-8 inside a text frame whose payload arrives in pieces
    # (fail fast); (3) treat a close frame inside a fragmented message as a
    # clean close.

    def receive_data(self, data: bytes, unread: int = 0, room: int = -1) -> list[WsEvent]:
        """Feed bytes; return the events they complete.

        ``unread`` is how many messages the app has not read yet, ``room`` how
        many more it may be given (-1: no limit).  Processing stops once
        ``room`` messages were produced, and before a close frame or a frame
        that breaks the protocol while the app has messages still to read
        (``unread``, or a message completed earlier in this call).  The rest
        stays buffered (``buffered``); call :meth:`resume` when the app has
        read more.
        """
        if self._pending:
            self._pending += data
            return self._process(unread > 0, room)
        return self._process(unread > 0, room, data)  # no copy into the buffer first

    def resume(self, unread: int = 0, room: int = -1) -> list[WsEvent]:
        """Process bytes held back by ``receive_data``, as far as the app's queue allows."""
        return self._process(unread > 0, room) if self._pending else []

    @property
    def buffered(self) -> int:
        """Bytes received but not yet processed (held back for the app)."""
        return len(self._pending)

    def receive_eof(self) -> list[WsEvent]:
        """The peer closed the TCP connection."""
        proto = self._proto
        events = self._process(False, -1) if self._pending else []
        proto.receive_eof()
        events.extend(self._events(proto.events_received()))
        if not self._closed_reported:
            self._closed_reported = True
            events.append(WsClosed(CloseCode.ABNORMAL_CLOSURE, "", True))
        return events

    def _process(self, hold: bool, room: int, data: bytes | None = None) -> list[WsEvent]:
        out: list[WsEvent] = []
        buf: bytes | bytearray = self._pending if data is None else data
        view = memoryview(buf)
        proto = self._proto
        self._room = room
        pos = 0
        end = len(buf)
        while pos < end and proto.state is not State.CLOSED and not self._failing and self._room:
            owed = self._owed
            if owed:
                # The rest of a frame the Protocol has started on.
                chunk = bytes(buf[pos : pos + owed])
                pos += len(chunk)
                self._owed = owed - len(chunk)
                if self._peek is not None and not self._peek_text(chunk):
                    break
                if not self._owed:
                    self._peek = None
                out.extend(self._feed(chunk))
                continue
            header = _scan(buf, pos)
            if header is None:
                break  # fewer bytes than a header: wait
            first, length, header_len = header
            opcode = first & 0x0F
            if opcode in (1, 2):
                self._compressed = bool(first & 0x40)  # RSV1 on the first frame only
            total = header_len + length
            if (
                # Fast path: a whole, final, uncompressed, masked text/binary frame.
                first in _PLAIN_DATA
                and end - pos >= total
                and buf[pos + 1] & 0x80
                and proto.current_size is None
                and proto.state is State.OPEN
                and length <= self._max_size
            ):
                mask = bytes(view[pos + header_len - 4 : pos + header_len])
                payload = apply_mask(view[pos + header_len : pos + total], mask)
                pos += total
                if first == 0x81:
                    try:
                        out.append(WsMessage(payload.decode()))
                    except UnicodeDecodeError as exc:
                        self._fail_utf8(exc)
                        break
                else:
                    out.append(WsMessage(payload))
                self._emitted = True
                self._room -= 1
                continue
            if (hold or self._emitted) and (
                opcode == 8 or self._breaks_protocol(first, buf[pos + 1], length)
            ):
                break  # let the app read (and answer) what came before
            if opcode == 8 and proto.current_size is not None:
                # A close frame ends a fragmented message cleanly (Autobahn 7.1.5).
                proto.current_size = None
                self._fragments = []
            if end - pos >= total:
                frame = bytes(buf[pos : pos + total])
                pos += total
                out.extend(self._feed(frame))
                continue
            # The frame's payload is still arriving: hand over what we have and
            # check text as it comes.
            chunk = bytes(buf[pos:])
            pos = end
            self._owed = total - len(chunk)
            self._start_peek(first, chunk, header_len, length)
            if self._peek is not None and not self._peek_text(chunk[header_len:]):
                break
            out.extend(self._feed(chunk))
        view.release()
        if data is None:
            if pos:
                del self._pending[:pos]
        elif pos < len(data):
            self._pending += data[pos:]  # keep what could not be processed yet
        if proto.state is State.CLOSED or self._failing:
            self._pending.clear()
            if not self._closed_reported:
                out.extend(self._events(()))
        self._emitted = False
        return out

    def _feed(self, data: bytes) -> list[WsEvent]:
        proto = self._proto
        proto.receive_data(data)
        events = self._events(proto.events_received())
        for event in events:
            if type(event) is WsMessage:
                self._emitted = True
                self._room -= 1  # from -1 (no limit) it never reaches 0
        return events

    def _breaks_protocol(self, first: int, second: int, length: int) -> bool:
        """True when a frame with this header will fail the connection."""
        opcode = first & 0x0F
        if opcode < 3 and length + (self._proto.current_size or 0) > self._max_size:
            return True  # too big (1009)
        if first & 0x70 and not (first & 0x40 and self._proto.extensions and first & 0x30 == 0):
            return True  # reserved bits without an extension that defines them
        if opcode in _RESERVED_OPCODES:
            return True
        if not second & 0x80:
            return True  # client frames must be masked
        if opcode >= 8 and (not first & 0x80 or second & 0x7F > 125):
            return True  # control frames: never fragmented, at most 125 bytes
        return opcode == 0 and self._proto.current_size is None

    def _start_peek(self, first: int, chunk: bytes, header_len: int, length: int) -> None:
        """Start checking UTF-8 of a partly received text frame.

        Only uncompressed, masked frames within the size limit: anything else
        fails (or is inflated) in the frame layer, which must decide first.
        """
        opcode = first & 0x0F
        self._peek = None
        if header_len > len(chunk) or not chunk[1] & 0x80 or self._compressed:
            return
        if length + (self._proto.current_size or 0) > self._max_size:
            return
        if opcode == 1 and not first & 0x70:
            decoder = _UTF8()
        elif opcode == 0 and self._text and self._decoder is not None:
            decoder = _UTF8()
            decoder.setstate(self._decoder.getstate())
        else:
            return
        self._peek = _Peek(decoder, chunk[header_len - 4 : header_len])

    def _peek_text(self, payload: bytes) -> bool:
        peek = self._peek
        assert peek is not None
        if not payload:
            return True
        shift = peek.offset % 4
        mask = peek.mask[shift:] + peek.mask[:shift]
        peek.offset += len(payload)
        try:
            peek.decoder.decode(apply_mask(payload, mask), False)
        except UnicodeDecodeError as exc:
            self._peek = None
            self._owed = 0
            self._fail_utf8(exc)  # _process clears what is pending
            return False
        return True

    def _events(self, frames: Sequence[object]) -> list[WsEvent]:
        out: list[WsEvent] = []
        for frame in frames:
            opcode = frame.opcode  # type: ignore[attr-defined]
            data: bytes = frame.data  # type: ignore[attr-defined]
            if opcode is _TEXT:
                if frame.fin:  # type: ignore[attr-defined]
                    try:
                        out.append(WsMessage(data.decode()))
                    except UnicodeDecodeError as exc:
                        self._fail_utf8(exc)
                        break
                else:
                    self._text = True
                    self._decoder = _UTF8()
                    self._fragments = [data]
                    if not self._check_fragment(data, False):
                        break
            elif opcode is _BINARY:
                if frame.fin:  # type: ignore[attr-defined]
                    out.append(WsMessage(data))
                else:
                    self._text = False
                    self._fragments = [data]
            elif opcode is _CONT:
                fin = frame.fin  # type: ignore[attr-defined]
                self._fragments.append(data)
                if self._text and not self._check_fragment(data, fin):
                    break
                if fin:
                    whole = b"".join(self._fragments)
                    self._fragments = []
                    out.append(WsMessage(whole.decode() if self._text else whole))
            elif opcode is _PONG:
                out.append(WsPong(data))
            elif opcode is _CLOSE:
                received = self._proto.close_rcvd
                if received is not None and not self._closed_reported:
                    self._closed_reported = True
                    out.append(WsClosed(received.code, received.reason, True))
            # PING: the Protocol already queued the pong.
        proto = self._proto
        if proto.parser_exc is not None:
            self._failing = True
        if not self._closed_reported and self._failing and proto.close_sent is not None:
            # We failed the connection (protocol error, too big, bad UTF-8).
            sent = proto.close_sent
            self._closed_reported = True
            out.append(WsClosed(sent.code, sent.reason, False))
        return out

    def _check_fragment(self, data: bytes, final: bool) -> bool:
        assert self._decoder is not None
        try:
            self._decoder.decode(data, final)
        except UnicodeDecodeError as exc:
            self._fail_utf8(exc)
            return False
        return True

    def _fail_utf8(self, exc: UnicodeDecodeError) -> None:
        self._fragments = []
        self._failing = True
        self._proto.fail(CloseCode.INVALID_DATA, f"invalid UTF-8 in a text message: {exc.reason}")

    # sending -----------------------------------------------------------------

    def send_message(self, data: str | bytes) -> None:
        """Queue a text (``str``) or binary (``bytes``) message."""
        proto = self._proto
        if isinstance(data, str):
            payload = data.encode()
            opcode = 0x81
        else:
            payload = data
            opcode = 0x82
        if proto.extensions or proto.state is not State.OPEN:
            # Compression, or a state the library must judge (it raises).
            if opcode == 0x81:
                proto.send_text(payload)
            else:
                proto.send_binary(payload)
            return
        # Fast path: an unmasked server frame built here, after what the
        # library has queued (pongs) so the order on the wire is kept.
        out = self._out
        out.extend(proto.data_to_send())
        n = len(payload)
        if n < 126:
            out.append(bytes((opcode, n)) + payload)
        elif n < 65536:
            out.append(bytes((opcode, 126)) + n.to_bytes(2, "big") + payload)
        else:
            out.append(bytes((opcode, 127)) + n.to_bytes(8, "big"))
            out.append(payload)

    def send_ping(self, data: bytes) -> None:
        self._proto.send_ping(data)

    def send_close(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake (no-op if it already started)."""
        if self._proto.state is State.OPEN:
            self._proto.send_close(code, reason)

    def fail(self, code: int, reason: str = "") -> None:
        """Close now with ``code`` (sends the close frame, then EOF)."""
        self._failing = True
        with contextlib.suppress(InvalidState):  # already closed
            self._proto.fail(code, reason)

    def data_to_send(self) -> list[bytes]:
        """Bytes to write, in order; ``b""`` means close the TCP connection after them."""
        out = self._out
        if out:
            self._out = []
        else:
            out = []
        for chunk in self._proto.data_to_send():
            out.append(b"" if chunk is SEND_EOF else chunk)
        return out

    # state ---------------------------------------------------------------------

    @property
    def open(self) -> bool:
        """True until either side started the closing handshake."""
        return self._proto.state is State.OPEN

    @property
    def closed(self) -> bool:
        """True once the closing handshake is complete (or the connection failed)."""
        return self._proto.state is State.CLOSED

    @property
    def close_sent(self) -> Close | None:
        return self._proto.close_sent

    def close_code(self) -> int:
        """The code the connection closed with, as the app should see it."""
        received = self._proto.close_rcvd
        if received is not None:
            return int(received.code)
        sent = self._proto.close_sent
        return int(sent.code) if sent is not None else int(CloseCode.ABNORMAL_CLOSURE)

"""H2Connection: one HTTP/2 server connection (RFC 9113), sans I/O.

bascule's own engine: frames are parsed and built here, header blocks go
through the HPACK codec of ``hpack_codec.py``, and the stream states, both
directions of flow control and the budgets against abusive clients (rapid
reset, control-frame floods, CONTINUATION floods, HPACK bombs, oversized
frames) live in this one class.  It produces ``bascule.proto.events`` keyed by
stream id, keeps request-body flow control in the app's hands (the receive
window is only re-opened by :meth:`consumed`), and schedules response bodies
within the peer's windows (``flow.py``).  Why not the ``h2`` package any more:
docs/http2.md ("Engine").

    conn = H2Connection(Http2Limits())
    conn.initiate()                         # our SETTINGS
    for event in conn.receive_data(data):   # RequestReceived, BodyChunk, BodyEnd, StreamReset
        ...
    conn.send_head(stream_id, 200, headers)
    conn.send_body(stream_id, b"...", end=True)   # queued if the window is closed
    transport.write(conn.data_to_send())
"""

import base64
import binascii
from collections import deque
from typing import Final

from bascule.proto.events import METHOD_NAMES, BodyChunk, BodyEnd, Headers, RequestReceived
from bascule.proto.headers import BAD_VALUE
from bascule.proto.http1.writer import KNOWN_NAMES, check_value, lower_name, raise_first_bad
from bascule.proto.http2.fields import CONNECTION_FIELDS, Checked, check
from bascule.proto.http2.flow import OutboundQueue
from bascule.proto.http2.hpack_codec import Decoder, Encoder, HeaderListTooLarge, HpackError
from bascule.proto.limits import Http2Limits

# Error codes (RFC 9113 §7).
NO_ERROR: Final = 0x0
PROTOCOL_ERROR: Final = 0x1
INTERNAL_ERROR: Final = 0x2
FLOW_CONTROL_ERROR: Final = 0x3
STREAM_CLOSED: Final = 0x5
FRAME_SIZE_ERROR: Final = 0x6
REFUSED_STREAM: Final = 0x7
CANCEL: Final = 0x8
COMPRESSION_ERROR: Final = 0x9
ENHANCE_YOUR_CALM: Final = 0xB

# Frame types (RFC 9113 §6).
_DATA: Final = 0x0
_HEADERS: Final = 0x1
_PRIORITY: Final = 0x2
_RST_STREAM: Final = 0x3
_SETTINGS: Final = 0x4
_PUSH_PROMISE: Final = 0x5
_PING: Final = 0x6
_GOAWAY: Final = 0x7
_WINDOW_UPDATE: Final = 0x8
_CONTINUATION: Final = 0x9

# Flags.
_END_STREAM: Final = 0x1
_ACK: Final = 0x1
_END_HEADERS: Final = 0x4
_PADDED: Final = 0x8
_PRIORITY_FLAG: Final = 0x20

# SETTINGS identifiers (RFC 9113 §6.5.2, RFC 8441 §3).
_HEADER_TABLE_SIZE: Final = 0x1
_ENABLE_PUSH: Final = 0x2
_MAX_CONCURRENT_STREAMS: Final = 0x3
_INITIAL_WINDOW_SIZE: Final = 0x4
_MAX_FRAME_SIZE: Final = 0x5
_MAX_HEADER_LIST_SIZE: Final = 0x6
_ENABLE_CONNECT_PROTOCOL: Final = 0x8

PREFACE: Final = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_MAX_WINDOW: Final = 2**31 - 1
_DEFAULT_WINDOW: Final = 65535
_DEFAULT_FRAME_SIZE: Final = 16384
#: The encoder's dynamic table never grows past the RFC default, whatever the client allows.
_ENCODER_TABLE_CAP: Final = 4096
#: CONTINUATION frames one header block may take beyond what its size needs.
_CONTINUATION_SLACK: Final = 16
#: Closed streams remembered with how they closed, so late frames get the answer §5.1 asks.
_CLOSED_MEMORY: Final = 256
_ENDED: Final = 0  # END_STREAM both ways
_RESET_BY_US: Final = 1  # late frames on it are ignored
_RESET_BY_CLIENT: Final = 2  # late frames on it are a stream error STREAM_CLOSED

#: WINDOW_UPDATE frames the DATA we sent may still earn (two per frame, capped).
_MAX_WINDOW_CREDIT: Final = 4096

#: Bodies of the answers we give ourselves (StreamRejected).
_REJECTED_BODIES: Final = {
    400: b"Bad Request\n",
    431: b"Request Header Fields Too Large\n",
}


def response_fields(headers: Headers) -> Headers:
    """Lowercased fields without connection-specific ones; raises on invalid names/values.

    Field values with CR, LF or NUL are refused (RFC 9113 §8.2.1): a
    response-splitting risk behind an HTTP/2 to HTTP/1.1 proxy.
    """
    out: Headers = []
    for name, value in headers:
        lname = KNOWN_NAMES.get(name)
        if lname is None:
            lname = lower_name(headers, name)
        check_value(headers, value)  # remembers the values it passed
        if lname not in CONNECTION_FIELDS:
            out.append((lname, value))
    return out


class StreamReset:
    """The client reset a stream, or we did for a stream error of the client's."""

    __slots__ = ("error_code", "stream_id")

    def __init__(self, stream_id: int, error_code: int) -> None:
        self.stream_id = stream_id
        self.error_code = error_code

    def __repr__(self) -> str:
        return f"StreamReset({self.stream_id}, {self.error_code})"


class ConnectionEnded:
    """The peer sent GOAWAY, or the connection failed (we sent GOAWAY)."""

    __slots__ = ("error_code", "reason")

    def __init__(self, error_code: int, reason: str) -> None:
        self.error_code = error_code
        self.reason = reason

    def __repr__(self) -> str:
        return f"ConnectionEnded({self.error_code}, {self.reason!r})"


class StreamRejected:
    """We answered a stream ourselves (431: header list too large; 400: malformed)."""

    __slots__ = ("reason", "status", "stream_id")

    def __init__(self, stream_id: int, status: int, reason: str) -> None:
        self.stream_id = stream_id
        self.status = status
        self.reason = reason

    def __repr__(self) -> str:
        return f"StreamRejected({self.stream_id}, {self.status}, {self.reason!r})"


H2Event = RequestReceived | BodyChunk | BodyEnd | StreamReset | ConnectionEnded | StreamRejected


class _ConnectionError(Exception):
    """Raised inside frame handling: the connection ends with ``code`` (GOAWAY)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class _Stream:
    """What the connection keeps of one stream."""

    __slots__ = (
        "abandoned",
        "expected",
        "local_closed",
        "received",
        "recv_unacked",
        "recv_window",
        "remote_closed",
        "send_window",
        "stream_id",
    )

    def __init__(self, stream_id: int, send_window: int, recv_window: int) -> None:
        self.stream_id = stream_id
        #: What the peer lets us send on this stream (may go negative, §6.9.2).
        self.send_window = send_window
        #: What we let the peer send on this stream.
        self.recv_window = recv_window
        #: Body bytes the app consumed that no WINDOW_UPDATE returned yet.
        self.recv_unacked = 0
        self.remote_closed = False
        self.local_closed = False
        #: The request's Content-Length (-1: none) and the body bytes received so far.
        self.expected = -1
        self.received = 0
        #: The app is done: once the response is out, the rest of the request body is refused.
        self.abandoned = False


def _content_length(fields: Headers) -> int | str:
    """The Content-Length of a request (-1 if none), or why it is malformed."""
    found = -1
    for name, value in fields:
        if name == b"content-length":
            if not value.isdigit() or len(value) > 18:
                return f"invalid content-length {value[:40]!r}"
            length = int(value)
            if found not in (-1, length):
                return "conflicting content-length fields"
            found = length
    return found


def _frame_head(length: int, ftype: int, flags: int, stream_id: int) -> bytes:
    return ((length << 48) | (ftype << 40) | (flags << 32) | stream_id).to_bytes(9, "big")


def _u32(data: bytes, pos: int) -> int:
    return (data[pos] << 24) | (data[pos + 1] << 16) | (data[pos + 2] << 8) | data[pos + 3]


class H2Connection:
    """Server side of an HTTP/2 connection."""

    def __init__(self, limits: Http2Limits | None = None) -> None:
        self.limits = limits = limits or Http2Limits()
        self.queue = OutboundQueue()
        self.streams: dict[int, _Stream] = {}
        self._decoder = Decoder(limits.header_list_hard_cap)
        self._encoder = Encoder()
        self._out: list[bytes] = []
        #: An incomplete frame: its pieces, their size, and the size the frame needs.
        self._rest: list[bytes] = []
        self._rest_size = 0
        self._rest_need = 0
        self._preface_left = len(PREFACE)
        self._settings_seen = False
        # peer's settings
        self._push_allowed = True
        self._peer_initial_window = _DEFAULT_WINDOW
        self._peer_max_streams = _MAX_WINDOW
        self.max_outbound_frame_size = _DEFAULT_FRAME_SIZE
        # our settings: the receive window of new streams until the client
        # acknowledges our SETTINGS, then the configured one (§6.9.2)
        self._local_initial_window = _DEFAULT_WINDOW
        self._settings_unacked = 0
        # connection windows
        self._send_window = _DEFAULT_WINDOW
        self._recv_window = _DEFAULT_WINDOW
        self._recv_unacked = 0
        # The connection window starts at 65,535 whatever the SETTINGS say;
        # it is opened so streams are limited by their own windows, not each other.
        self._connection_window = min(
            limits.initial_window_size * limits.max_concurrent_streams, 16 * 1024 * 1024
        )
        self._highest_inbound = 0
        self._next_push_id = 2
        self._open_inbound = 0
        self._open_pushed = 0
        self._closed: dict[int, int] = {}
        self._closed_ring: list[int] = []
        self._closed_oldest = 0
        # a header block in progress (HEADERS or PUSH_PROMISE without END_HEADERS)
        self._block_stream = 0
        self._block_flags = 0
        self._block_parts: list[bytes] = []
        self._block_size = 0
        self._block_frames = 0
        self._resets: deque[int] = deque()
        self._streams_opened = 0
        self._control_frames = 0
        self._window_credit = 0
        self.last_stream_id = 0
        self.closed = False
        #: A graceful GOAWAY was sent (or received): open streams finish, new ones are refused.
        self.draining = False

    # set-up ----------------------------------------------------------------------

    def initiate(self) -> None:
        """Queue our connection preface (SETTINGS, and a connection WINDOW_UPDATE)."""
        limits = self.limits
        settings = [
            (_MAX_CONCURRENT_STREAMS, limits.max_concurrent_streams),
            (_INITIAL_WINDOW_SIZE, limits.initial_window_size),
            (_MAX_FRAME_SIZE, limits.max_inbound_frame_size),
            (_MAX_HEADER_LIST_SIZE, limits.max_header_list_size),
            # RFC 8441: WebSockets over this connection (extended CONNECT).
            (_ENABLE_CONNECT_PROTOCOL, 1),
        ]
        payload = b"".join(
            key.to_bytes(2, "big") + value.to_bytes(4, "big") for key, value in settings
        )
        self._out.append(_frame_head(len(payload), _SETTINGS, 0, 0) + payload)
        self._settings_unacked += 1
        extra = self._connection_window - _DEFAULT_WINDOW
        if extra > 0:
            self._recv_window += extra
            self._window_update(0, extra)

    def initiate_upgrade(self, settings_header: bytes) -> None:
        """Start after an HTTP/1.1 ``Upgrade: h2c`` (the request becomes stream 1).

        ``settings_header`` is the HTTP2-Settings field: a SETTINGS payload in
        base64url (RFC 7540 §3.2.1); a bad one raises ValueError.
        """
        try:
            padded = settings_header + b"=" * (-len(settings_header) % 4)
            payload = base64.b64decode(padded, altchars=b"-_", validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ValueError(f"HTTP2-Settings is not base64url: {exc}") from None
        if len(payload) % 6:
            raise ValueError("HTTP2-Settings is not a whole number of settings")
        try:
            self._apply_settings(payload)
        except _ConnectionError as exc:
            raise ValueError(exc.reason) from None
        self.initiate()
        stream = self._open_stream(1)
        stream.remote_closed = True  # the upgrading request was complete
        self._highest_inbound = 1
        self.last_stream_id = 1

    # receiving ---------------------------------------------------------------------

    def receive_data(self, data: bytes) -> list[H2Event]:
        """Feed bytes; return the events they complete (errors end the connection)."""
        if self.closed:
            return []
        out: list[H2Event] = []
        if self._rest:
            # An incomplete frame waits in pieces until the bytes it needs are there:
            # a large frame arriving in small reads is joined once, not once per read.
            self._rest.append(data)
            self._rest_size += len(data)
            if self._rest_size < self._rest_need:
                return out
            data = b"".join(self._rest)
            self._rest = []
        pos = 0
        end = len(data)
        try:
            if self._preface_left:
                pos = self._preface(data)
                if self._preface_left:
                    return out
            max_size = self.limits.max_inbound_frame_size
            while end - pos >= 9:
                length = (data[pos] << 16) | (data[pos + 1] << 8) | data[pos + 2]
                if length > max_size:
                    # Refused on its header: nothing of the payload is buffered.
                    raise _ConnectionError(
                        FRAME_SIZE_ERROR,
                        f"frame of {length} bytes over the {max_size}-byte SETTINGS_MAX_FRAME_SIZE",
                    )
                stop = pos + 9 + length
                if stop > end:
                    self._rest_need = stop - pos
                    break
                ftype = data[pos + 3]
                flags = data[pos + 4]
                stream_id = _u32(data, pos + 5) & 0x7FFFFFFF
                payload = data[pos + 9 : stop]
                pos = stop
                if not self._settings_seen:
                    if ftype != _SETTINGS or flags & _ACK:
                        raise _ConnectionError(
                            PROTOCOL_ERROR, "the connection preface is not followed by SETTINGS"
                        )
                    self._settings_seen = True
                if self._block_stream and (
                    ftype != _CONTINUATION or stream_id != self._block_stream
                ):
                    raise _ConnectionError(
                        PROTOCOL_ERROR, "header block interrupted (CONTINUATION expected)"
                    )
                if ftype == _DATA:
                    self._on_data(flags, stream_id, payload, out)
                elif ftype == _HEADERS:
                    self._on_headers(flags, stream_id, payload, out)
                elif ftype == _CONTINUATION:
                    self._on_continuation(flags, stream_id, payload, out)
                elif ftype == _WINDOW_UPDATE:
                    self._on_window_update(stream_id, payload, out)
                elif ftype == _RST_STREAM:
                    if self._on_rst_stream(stream_id, payload, out):
                        out.append(self._calm("too many stream resets (rapid reset)"))
                        return out
                elif ftype == _SETTINGS:
                    self._on_settings(flags, stream_id, payload)
                elif ftype == _PING:
                    self._on_ping(flags, stream_id, payload)
                elif ftype == _GOAWAY:
                    self._on_goaway(stream_id, payload, out)
                    if self.closed:
                        return out
                elif ftype == _PRIORITY:
                    self._on_priority(stream_id, payload)
                elif ftype == _PUSH_PROMISE:
                    raise _ConnectionError(PROTOCOL_ERROR, "PUSH_PROMISE from a client")
                else:
                    self._control_frames += 1  # unknown types are ignored (§5.5), counted
                if self.closed:  # a budget ran out (ENHANCE_YOUR_CALM)
                    return out
                if self._control_frames > self.limits.control_frame_budget:
                    out.append(
                        self._calm(
                            "too many SETTINGS/PING/PRIORITY/WINDOW_UPDATE/empty DATA frames"
                        )
                    )
                    return out
        except _ConnectionError as exc:
            return [self._fail(exc.code, exc.reason)]
        if pos < end:
            if end - pos < 9:
                self._rest_need = 9  # the frame header itself is incomplete
            self._rest = [data[pos:]]
            self._rest_size = end - pos
        return out

    def _preface(self, data: bytes) -> int:
        """Check the client connection preface; returns how much of ``data`` it took."""
        offset = len(PREFACE) - self._preface_left
        take = min(self._preface_left, len(data))
        if data[:take] != PREFACE[offset : offset + take]:
            raise _ConnectionError(PROTOCOL_ERROR, "invalid HTTP/2 connection preface")
        self._preface_left -= take
        return take

    def _fail(self, code: int, reason: str) -> ConnectionEnded:
        """A connection error: GOAWAY with ``code``, and nothing more is read."""
        self.closed = True
        self._rest = []
        self._block_parts = []
        self._goaway_frame(max(self.last_stream_id, self._highest_inbound), code)
        if code in (FRAME_SIZE_ERROR, ENHANCE_YOUR_CALM):
            return ConnectionEnded(code, reason)
        return ConnectionEnded(code, f"HTTP/2 protocol error: {reason}")

    def _calm(self, reason: str) -> ConnectionEnded:
        self.closed = True
        self._goaway_frame(self.last_stream_id, ENHANCE_YOUR_CALM)
        return ConnectionEnded(ENHANCE_YOUR_CALM, reason)

    def _stream_error(self, stream: _Stream, code: int, out: list[H2Event]) -> None:
        """Reset an open stream for the client's error; the app sees a disconnect.

        A reset the client provokes costs us what its own RST_STREAM would (the
        app's task is cancelled): it counts against the same budget (the
        "MadeYouReset" pattern, CVE-2025-8671).
        """
        stream_id = stream.stream_id
        self.reset(stream_id, code)
        out.append(StreamReset(stream_id, code))
        if stream_id % 2 and self._count_reset():
            out.append(self._calm("too many stream errors provoked by the client"))

    def _is_idle(self, stream_id: int) -> bool:
        """No stream ``stream_id`` was ever opened (or promised)."""
        if stream_id % 2:
            return stream_id > self._highest_inbound
        return stream_id >= self._next_push_id

    # frame handlers ------------------------------------------------------------------

    def _on_data(self, flags: int, stream_id: int, payload: bytes, out: list[H2Event]) -> None:
        if stream_id == 0:
            raise _ConnectionError(PROTOCOL_ERROR, "DATA frame on stream 0")
        length = len(payload)
        self._recv_window -= length
        if self._recv_window < 0:
            raise _ConnectionError(FLOW_CONTROL_ERROR, "DATA beyond the connection window")
        # Credit owed by streams whose apps read goes back once the window is below
        # half, before it runs dry on streams whose apps do not (no consumed() call
        # may come to send it).
        self._credit_connection(0)
        body = payload
        if flags & _PADDED:
            if not length:
                raise _ConnectionError(FRAME_SIZE_ERROR, "padded DATA frame without pad length")
            pad = payload[0]
            if pad >= length:
                raise _ConnectionError(PROTOCOL_ERROR, "DATA padding longer than the frame")
            body = payload[1 : length - pad]
        stream = self.streams.get(stream_id)
        if stream is None:
            if self._is_idle(stream_id):
                raise _ConnectionError(PROTOCOL_ERROR, f"DATA on idle stream {stream_id}")
            # closed: its window is nobody's, give the connection's back at once
            self._credit_connection(length)
            self._control_frames += 1  # no progress: a flood of these is a control flood
            if self._closed.get(stream_id) != _RESET_BY_US:  # §5.1: STREAM_CLOSED
                self._send_rst(stream_id, STREAM_CLOSED)
            return
        if stream.remote_closed:
            self._credit_connection(length)
            self._stream_error(stream, STREAM_CLOSED, out)
            return
        stream.recv_window -= length
        if stream.recv_window < 0:
            raise _ConnectionError(
                FLOW_CONTROL_ERROR, f"DATA beyond the window of stream {stream_id}"
            )
        if stream.expected >= 0:
            stream.received += len(body)
            if stream.received > stream.expected or (
                flags & _END_STREAM and stream.received != stream.expected
            ):
                # §8.1.1: a body that does not match its Content-Length is malformed.
                self._credit_connection(length)
                self._stream_error(stream, PROTOCOL_ERROR, out)
                return
        if body:
            self._control_frames = 0
            out.append(BodyChunk(stream_id, body))
            if length > len(body):  # padding: credited at once, the app never sees it
                self.consumed(stream_id, length - len(body))
        else:
            self._control_frames += 1
            if length:
                self.consumed(stream_id, length)
        if flags & _END_STREAM:
            stream.remote_closed = True
            out.append(BodyEnd(stream_id))
            if stream.local_closed:
                self._forget(stream)

    def _on_headers(self, flags: int, stream_id: int, payload: bytes, out: list[H2Event]) -> None:
        if stream_id == 0:
            raise _ConnectionError(PROTOCOL_ERROR, "HEADERS frame on stream 0")
        start = 0
        stop = len(payload)
        pad = 0
        if flags & _PADDED:
            if not stop:
                raise _ConnectionError(FRAME_SIZE_ERROR, "padded HEADERS frame without pad length")
            start = 1
            pad = payload[0]
        if flags & _PRIORITY_FLAG:
            if stop - start < 5:
                raise _ConnectionError(FRAME_SIZE_ERROR, "HEADERS priority fields cut short")
            if _u32(payload, start) & 0x7FFFFFFF == stream_id:
                raise _ConnectionError(PROTOCOL_ERROR, f"stream {stream_id} depends on itself")
            start += 5
        stop -= pad
        if stop < start:
            raise _ConnectionError(PROTOCOL_ERROR, "HEADERS padding longer than the frame")
        fragment = payload[start:stop]
        if flags & _END_HEADERS:
            self._header_block(stream_id, flags, fragment, out)
            return
        self._block_stream = stream_id
        self._block_flags = flags
        self._block_parts = [fragment]
        self._block_size = len(fragment)
        self._block_frames = 1

    def _on_continuation(
        self, flags: int, stream_id: int, payload: bytes, out: list[H2Event]
    ) -> None:
        if not self._block_stream:
            raise _ConnectionError(PROTOCOL_ERROR, "CONTINUATION without a header block")
        self._block_parts.append(payload)
        self._block_size += len(payload)
        self._block_frames += 1
        cap = self.limits.header_list_hard_cap
        if self._block_size > cap:
            raise _ConnectionError(
                ENHANCE_YOUR_CALM, f"header block over the {cap}-byte hard cap (CONTINUATION)"
            )
        most = cap // self.limits.max_inbound_frame_size + _CONTINUATION_SLACK
        if self._block_frames > most:
            raise _ConnectionError(
                ENHANCE_YOUR_CALM, f"CONTINUATION flood: over {most} frames in one header block"
            )
        if flags & _END_HEADERS:
            block = b"".join(self._block_parts)
            self._block_parts = []
            self._block_stream = 0
            self._header_block(stream_id, self._block_flags, block, out)

    def _header_block(self, stream_id: int, flags: int, block: bytes, out: list[H2Event]) -> None:
        """A complete header block: a request, trailers, or a protocol error."""
        try:
            fields = self._decoder.decode(block)
        except HeaderListTooLarge:
            cap = self.limits.header_list_hard_cap
            raise _ConnectionError(
                ENHANCE_YOUR_CALM, f"header list over the {cap}-byte hard cap (HPACK bomb)"
            ) from None
        except HpackError as exc:
            raise _ConnectionError(COMPRESSION_ERROR, f"HPACK: {exc}") from None
        end_stream = bool(flags & _END_STREAM)
        stream = self.streams.get(stream_id)
        if stream is not None:
            self._trailers(stream, end_stream, fields, out)
            return
        if not self._is_idle(stream_id):
            how = self._closed.get(stream_id, -1)
            self._control_frames += 1  # a late block is no progress
            if how == _RESET_BY_US:
                return  # a late block on a stream we reset: its HPACK state is kept, that is all
            if how == _RESET_BY_CLIENT:  # §5.1: after the client's RST_STREAM
                self._send_rst(stream_id, STREAM_CLOSED)
                return
            if how == -1 and stream_id % 2:
                raise _ConnectionError(
                    PROTOCOL_ERROR,
                    f"stream id {stream_id} is lower than stream {self._highest_inbound}"
                    " already opened (RFC 9113 §5.1.1)",
                )
            raise _ConnectionError(STREAM_CLOSED, f"HEADERS on closed stream {stream_id}")
        if stream_id % 2 == 0:
            raise _ConnectionError(PROTOCOL_ERROR, f"HEADERS opening even stream {stream_id}")
        self._highest_inbound = stream_id
        self._open_request(stream_id, end_stream, fields, out)

    def _trailers(
        self, stream: _Stream, end_stream: bool, fields: Headers, out: list[H2Event]
    ) -> None:
        stream_id = stream.stream_id
        if stream.remote_closed:
            self._stream_error(stream, STREAM_CLOSED, out)
            return
        if not end_stream:  # §8.1: a second HEADERS must end the stream
            self._stream_error(stream, PROTOCOL_ERROR, out)
            return
        problem = check(fields, trailer=True).violation
        if problem is not None:
            raise _ConnectionError(PROTOCOL_ERROR, problem)
        if stream.expected >= 0 and stream.received != stream.expected:
            # §8.1.1: the body ended (by trailers) short of its Content-Length.
            self._stream_error(stream, PROTOCOL_ERROR, out)
            return
        stream.remote_closed = True
        out.append(BodyEnd(stream_id))
        if stream.local_closed:
            self._forget(stream)

    def _open_request(
        self, stream_id: int, end_stream: bool, fields: Headers, out: list[H2Event]
    ) -> None:
        checked = check(fields)
        if checked.violation is not None:
            raise _ConnectionError(PROTOCOL_ERROR, checked.violation)
        limits = self.limits
        if self.draining and stream_id > self.last_stream_id:
            # Opened after our GOAWAY: refused, the client may retry elsewhere.
            self._refuse(stream_id)
            return
        if self._open_inbound >= limits.max_concurrent_streams:
            # Over the advertised maximum: refuse this stream only (§5.1.2).
            # Refusals count as resets: a client opening streams past the
            # limit in a loop is as costly as one resetting them.
            self._refuse(stream_id)
            if self._count_reset():
                out.append(self._calm("too many streams over the concurrency limit"))
            return
        size = sum(len(n) + len(v) for n, v in checked.fields) + 32 * len(checked.fields)
        if size > limits.max_header_list_size:
            limit = limits.max_header_list_size
            reason = f"header list of {size} bytes over the {limit}-byte limit"
            out.append(self._answer(stream_id, end_stream, 431, reason))
            return
        if checked.malformed is not None:
            out.append(self._answer(stream_id, end_stream, 400, checked.malformed))
            return
        expected = _content_length(checked.fields)
        if isinstance(expected, str):
            out.append(self._answer(stream_id, end_stream, 400, expected))
            return
        if end_stream and expected > 0:
            # §8.1.1: a body shorter than its Content-Length makes the request malformed.
            self.last_stream_id = max(self.last_stream_id, stream_id)
            self._remember(stream_id, _RESET_BY_US)
            self._send_rst(stream_id, PROTOCOL_ERROR)
            if self._count_reset():
                out.append(self._calm("too many stream errors provoked by the client"))
            return
        self._control_frames = 0  # a request is progress
        stream = self._open_stream(stream_id)
        stream.expected = expected
        out.append(self._request(stream_id, checked))
        if end_stream:
            stream.remote_closed = True
            out.append(BodyEnd(stream_id))

    def _refuse(self, stream_id: int) -> None:
        self._remember(stream_id, _RESET_BY_US)
        self._send_rst(stream_id, REFUSED_STREAM)

    def _send_rst(self, stream_id: int, code: int) -> None:
        self._out.append(_frame_head(4, _RST_STREAM, 0, stream_id) + code.to_bytes(4, "big"))

    def _remember(self, stream_id: int, how: int) -> None:
        """Keep how ``stream_id`` closed, for the last ``_CLOSED_MEMORY`` streams closed.

        ``_closed_ring`` holds the keys of ``_closed`` in the order they came, the
        oldest at ``_closed_oldest`` once it is full: the oldest goes without a scan
        of the dictionary, whose deleted slots pile up at its front.
        """
        closed = self._closed
        if stream_id not in closed:
            ring = self._closed_ring
            if len(ring) < _CLOSED_MEMORY:
                ring.append(stream_id)
            else:
                oldest = self._closed_oldest
                del closed[ring[oldest]]
                ring[oldest] = stream_id
                self._closed_oldest = oldest + 1 if oldest + 1 < _CLOSED_MEMORY else 0
        closed[stream_id] = how

    def _open_stream(self, stream_id: int) -> _Stream:
        stream = _Stream(stream_id, self._peer_initial_window, self._local_initial_window)
        self.streams[stream_id] = stream
        if stream_id % 2:
            self._open_inbound += 1
        else:
            self._open_pushed += 1
        return stream

    def _forget(self, stream: _Stream, how: int = _ENDED) -> None:
        """The stream is closed both ways (or reset): it is no longer tracked."""
        if self.streams.pop(stream.stream_id, None) is None:
            return
        self._remember(stream.stream_id, how)
        if stream.stream_id % 2:
            self._open_inbound -= 1
        else:
            self._open_pushed -= 1

    def _request(self, stream_id: int, checked: Checked) -> RequestReceived:
        self.last_stream_id = max(self.last_stream_id, stream_id)
        self._streams_opened += 1
        pseudo = checked.pseudo
        fields = checked.fields
        headers = fields[len(pseudo) :] if pseudo else list(fields)  # pseudo fields come first
        authority = pseudo.get(b":authority")
        if authority and not checked.has_host:
            headers.insert(0, (b"host", authority))
        target, _, query = pseudo.get(b":path", b"").partition(b"?")
        # partition, not "in": "in" first tries its operand as an int and formats the
        # TypeError it then discards.
        query = query.partition(b"#")[0]
        protocol = pseudo.get(b":protocol", b"")
        raw_method = pseudo[b":method"]
        method = METHOD_NAMES.get(raw_method)
        if method is None:
            method = raw_method.decode("ascii", "replace")
        return RequestReceived(
            stream_id,
            method,
            target or b"/",
            query,
            headers,
            "2",
            True,
            False,
            bool(protocol),
            protocol,
        )

    def _answer(self, stream_id: int, end_stream: bool, status: int, reason: str) -> StreamRejected:
        """Answer a stream ourselves: 431 (header list too large) or 400 (malformed)."""
        self.last_stream_id = max(self.last_stream_id, stream_id)
        self._streams_opened += 1
        stream = self._open_stream(stream_id)
        stream.remote_closed = end_stream
        body = _REJECTED_BODIES[status]
        if min(stream.send_window, self._send_window) < len(body):
            body = b""  # the client's window has no room: the status alone says it
        fields = [
            (b":status", b"%d" % status),
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", b"%d" % len(body)),
        ]
        self._send_headers(stream, fields, not body)
        if body:
            self._send_data(stream, body, True)
        if not end_stream:
            # The request body is not wanted: ask the client to stop (RFC 9113 §8.1).
            self.reset(stream_id, NO_ERROR)
        return StreamRejected(stream_id, status, reason)

    def _on_rst_stream(self, stream_id: int, payload: bytes, out: list[H2Event]) -> bool:
        """A client reset; True when the client is over the rapid-reset budget."""
        if len(payload) != 4:
            raise _ConnectionError(FRAME_SIZE_ERROR, "RST_STREAM frame not 4 bytes")
        if stream_id == 0:
            raise _ConnectionError(PROTOCOL_ERROR, "RST_STREAM on stream 0")
        stream = self.streams.get(stream_id)
        if stream is None:
            if self._is_idle(stream_id):
                raise _ConnectionError(PROTOCOL_ERROR, f"RST_STREAM on idle stream {stream_id}")
            return False  # already closed: nothing to do
        self.queue.drop(stream_id)
        self._forget(stream, _RESET_BY_CLIENT)
        out.append(StreamReset(stream_id, _u32(payload, 0)))
        # Pushes the client cancels (even ids) are not a rapid reset.
        return bool(stream_id % 2) and self._count_reset()

    def _on_settings(self, flags: int, stream_id: int, payload: bytes) -> None:
        if stream_id:
            raise _ConnectionError(PROTOCOL_ERROR, "SETTINGS frame on a stream")
        self._control_frames += 1
        if flags & _ACK:
            if payload:
                raise _ConnectionError(FRAME_SIZE_ERROR, "SETTINGS acknowledgement with a payload")
            if self._settings_unacked:
                self._settings_unacked -= 1
                self._our_settings_acknowledged()
            return
        if len(payload) % 6:
            raise _ConnectionError(FRAME_SIZE_ERROR, "SETTINGS frame not a multiple of 6 bytes")
        self._apply_settings(payload)
        self._out.append(_frame_head(0, _SETTINGS, _ACK, 0))
        self._flush_window()  # INITIAL_WINDOW_SIZE may have grown

    def _our_settings_acknowledged(self) -> None:
        """Our INITIAL_WINDOW_SIZE now applies to the streams' receive windows (§6.9.2)."""
        delta = self.limits.initial_window_size - self._local_initial_window
        if delta:
            self._local_initial_window = self.limits.initial_window_size
            for stream in self.streams.values():
                stream.recv_window += delta

    def _apply_settings(self, payload: bytes) -> None:
        for pos in range(0, len(payload), 6):
            key = (payload[pos] << 8) | payload[pos + 1]
            value = _u32(payload, pos + 2)
            if key == _HEADER_TABLE_SIZE:
                self._encoder.set_max_table_size(min(value, _ENCODER_TABLE_CAP))
            elif key == _ENABLE_PUSH:
                if value > 1:
                    raise _ConnectionError(PROTOCOL_ERROR, f"SETTINGS_ENABLE_PUSH of {value}")
                self._push_allowed = bool(value)
            elif key == _MAX_CONCURRENT_STREAMS:
                self._peer_max_streams = value
            elif key == _INITIAL_WINDOW_SIZE:
                if value > _MAX_WINDOW:
                    raise _ConnectionError(
                        FLOW_CONTROL_ERROR, f"SETTINGS_INITIAL_WINDOW_SIZE of {value}"
                    )
                delta = value - self._peer_initial_window
                self._peer_initial_window = value
                for stream in self.streams.values():
                    stream.send_window += delta
                    if stream.send_window > _MAX_WINDOW:
                        raise _ConnectionError(
                            FLOW_CONTROL_ERROR, "SETTINGS_INITIAL_WINDOW_SIZE overflows a window"
                        )
            elif key == _MAX_FRAME_SIZE:
                if not _DEFAULT_FRAME_SIZE <= value <= 0xFFFFFF:
                    raise _ConnectionError(PROTOCOL_ERROR, f"SETTINGS_MAX_FRAME_SIZE of {value}")
                self.max_outbound_frame_size = value
            elif key == _ENABLE_CONNECT_PROTOCOL and value > 1:
                raise _ConnectionError(
                    PROTOCOL_ERROR, f"SETTINGS_ENABLE_CONNECT_PROTOCOL of {value}"
                )
            # SETTINGS_MAX_HEADER_LIST_SIZE is advisory; unknown settings are ignored (§6.5.2)

    def _on_ping(self, flags: int, stream_id: int, payload: bytes) -> None:
        if len(payload) != 8:
            raise _ConnectionError(FRAME_SIZE_ERROR, "PING frame not 8 bytes")
        if stream_id:
            raise _ConnectionError(PROTOCOL_ERROR, "PING frame on a stream")
        self._control_frames += 1
        if not flags & _ACK:
            self._out.append(_frame_head(8, _PING, _ACK, 0) + payload)

    def _on_goaway(self, stream_id: int, payload: bytes, out: list[H2Event]) -> None:
        if stream_id:
            raise _ConnectionError(PROTOCOL_ERROR, "GOAWAY frame on a stream")
        if len(payload) < 8:
            raise _ConnectionError(FRAME_SIZE_ERROR, "GOAWAY frame under 8 bytes")
        code = _u32(payload, 4)
        if code:
            self.closed = True
        else:
            # RFC 9113 §6.8: streams the client already opened may still be
            # answered; no new ones come.
            self.draining = True
        out.append(ConnectionEnded(code, "client sent GOAWAY"))

    def _on_window_update(self, stream_id: int, payload: bytes, out: list[H2Event]) -> None:
        if len(payload) != 4:
            raise _ConnectionError(FRAME_SIZE_ERROR, "WINDOW_UPDATE frame not 4 bytes")
        increment = _u32(payload, 0) & 0x7FFFFFFF
        # Each DATA frame we sent may earn a stream and a connection
        # WINDOW_UPDATE; the ones beyond that are control frames.
        if self._window_credit:
            self._window_credit -= 1
        else:
            self._control_frames += 1
        if stream_id == 0:
            if not increment:
                raise _ConnectionError(PROTOCOL_ERROR, "WINDOW_UPDATE of 0 on the connection")
            self._send_window += increment
            if self._send_window > _MAX_WINDOW:
                raise _ConnectionError(FLOW_CONTROL_ERROR, "connection window over 2^31-1")
            self._flush_window()
            return
        stream = self.streams.get(stream_id)
        if stream is None:
            if self._is_idle(stream_id):
                raise _ConnectionError(PROTOCOL_ERROR, f"WINDOW_UPDATE on idle stream {stream_id}")
            return  # closed: ignored (§6.9)
        if not increment:
            self._stream_error(stream, PROTOCOL_ERROR, out)
            return
        stream.send_window += increment
        if stream.send_window > _MAX_WINDOW:
            self._stream_error(stream, FLOW_CONTROL_ERROR, out)
            return
        self._flush_stream(stream_id)

    def _on_priority(self, stream_id: int, payload: bytes) -> None:
        if stream_id == 0:
            raise _ConnectionError(PROTOCOL_ERROR, "PRIORITY frame on stream 0")
        if len(payload) != 5:
            raise _ConnectionError(FRAME_SIZE_ERROR, "PRIORITY frame not 5 bytes")
        if _u32(payload, 0) & 0x7FFFFFFF == stream_id:
            raise _ConnectionError(PROTOCOL_ERROR, f"stream {stream_id} depends on itself")
        self._control_frames += 1  # priorities are not acted on (RFC 9113 §5.3.2)

    def _count_reset(self) -> bool:
        """Record a client reset; True when the client exceeded the budget."""
        resets = self._resets
        resets.append(self._streams_opened)
        window_start = self._streams_opened - self.limits.reset_window
        while resets and resets[0] <= window_start:
            resets.popleft()
        return len(resets) > self.limits.max_resets

    # app-facing flow control -----------------------------------------------------------

    def consumed(self, stream_id: int, size: int) -> None:
        """The app read ``size`` body bytes of ``stream_id``: re-open that much window.

        WINDOW_UPDATE goes out once half a window is owed (stream and
        connection apart), not for every small read.
        """
        if size <= 0 or self.closed:
            return
        self._credit_connection(size)
        stream = self.streams.get(stream_id)
        if stream is None or stream.remote_closed:
            return  # no more body comes on it: only the connection's window matters
        stream.recv_unacked += size
        if stream.recv_unacked * 2 >= self._local_initial_window or stream.recv_window <= 0:
            credit = stream.recv_unacked
            stream.recv_unacked = 0
            stream.recv_window += credit
            self._window_update(stream_id, credit)

    def _credit_connection(self, size: int) -> None:
        self._recv_unacked += size
        if self._recv_unacked and (
            self._recv_unacked * 2 >= self._connection_window
            or self._recv_window * 2 < self._connection_window
        ):
            credit = self._recv_unacked
            self._recv_unacked = 0
            self._recv_window += credit
            self._window_update(0, credit)

    def _window_update(self, stream_id: int, increment: int) -> None:
        self._out.append(
            _frame_head(4, _WINDOW_UPDATE, 0, stream_id) + increment.to_bytes(4, "big")
        )

    # sending -------------------------------------------------------------------------------

    def send_head(
        self,
        stream_id: int,
        status: int,
        headers: Headers,
        end: bool = False,
        checked: bool = False,
    ) -> None:
        """Response head (final or 1xx).  Connection-specific fields are dropped."""
        fields = [(b":status", b"%d" % status), *(headers if checked else response_fields(headers))]
        stream = self.streams.get(stream_id)
        if stream is None or stream.local_closed:
            return  # reset meanwhile: nobody to answer
        self._send_headers(stream, fields, end)

    def _send_headers(self, stream: _Stream, fields: Headers, end: bool) -> None:
        block = self._encoder.encode(fields)
        flags = _END_STREAM if end else 0
        self._header_frames(_HEADERS, flags, stream.stream_id, block)
        if end:
            self._end_local(stream)

    def _header_frames(self, ftype: int, flags: int, stream_id: int, block: bytes) -> None:
        """HEADERS or PUSH_PROMISE, with CONTINUATION frames past the peer's frame size."""
        size = self.max_outbound_frame_size
        out = self._out
        if len(block) <= size:
            out.append(_frame_head(len(block), ftype, flags | _END_HEADERS, stream_id) + block)
            return
        out.append(_frame_head(size, ftype, flags, stream_id) + block[:size])
        for start in range(size, len(block), size):
            piece = block[start : start + size]
            last = start + size >= len(block)
            head = _frame_head(len(piece), _CONTINUATION, _END_HEADERS if last else 0, stream_id)
            out.append(head + piece)

    def _send_data(self, stream: _Stream, data: bytes, end: bool) -> None:
        size = len(data)
        self._out.append(_frame_head(size, _DATA, _END_STREAM if end else 0, stream.stream_id))
        if size:
            self._out.append(data)
            stream.send_window -= size
            self._send_window -= size
            self._control_frames = 0  # progress
            self._window_credit = min(self._window_credit + 2, _MAX_WINDOW_CREDIT)
        if end:
            self._end_local(stream)

    def _end_local(self, stream: _Stream) -> None:
        stream.local_closed = True
        if stream.remote_closed:
            self._forget(stream)
        elif stream.abandoned:
            self.reset(stream.stream_id, NO_ERROR)

    def finish(self, stream_id: int) -> None:
        """The app is done with ``stream_id``.

        If the client is still sending the request body, it is asked to stop
        (RST_STREAM NO_ERROR, RFC 9113 §8.1) once the response is complete, so
        an unread upload neither keeps its stream slot nor earns window.
        """
        stream = self.streams.get(stream_id)
        if stream is None or stream.remote_closed:
            return
        if stream.local_closed:
            self.reset(stream_id, NO_ERROR)
        else:
            stream.abandoned = True

    def send_body(self, stream_id: int, data: bytes, end: bool = False) -> None:
        """Body bytes; what the windows do not allow now is queued (see ``pending``)."""
        if not self.queue.has(stream_id):
            # Nothing queued before it: if it fits the windows and one frame,
            # it goes out now, as _flush_stream would send it, without queueing.
            stream = self.streams.get(stream_id)
            if stream is None or stream.local_closed:
                return  # the stream is gone: nothing to send it on
            size = len(data)
            if (
                size <= self.max_outbound_frame_size
                and size <= stream.send_window
                and size <= self._send_window
            ):
                self._send_data(stream, data, end)
                return
        self.queue.push(stream_id, data, end)
        self._flush_stream(stream_id)

    def send_trailers(self, stream_id: int, headers: Headers) -> None:
        """Trailer fields; they end the stream (after any queued body)."""
        trailers = response_fields(headers)
        if not trailers:  # nothing left after dropping connection-specific fields
            self.send_body(stream_id, b"", end=True)
            return
        self.queue.push_trailers(stream_id, trailers)
        self._flush_stream(stream_id)

    def reset(self, stream_id: int, error_code: int = INTERNAL_ERROR) -> None:
        """Abort one stream (RST_STREAM)."""
        self.queue.drop(stream_id)
        if self.closed:
            return
        stream = self.streams.get(stream_id)
        if stream is None:
            return  # closed already: nothing may be sent on it
        self._forget(stream, _RESET_BY_US)
        self._send_rst(stream_id, error_code)

    def push(
        self, stream_id: int, path: bytes, authority: bytes, scheme: bytes, headers: Headers
    ) -> int | None:
        """Server push of a GET ``path``; returns the promised stream id, or None if refused."""
        if not self._push_allowed or self.closed or self.draining:
            return None
        parent = self.streams.get(stream_id)
        if parent is None or parent.local_closed or stream_id % 2 == 0:
            return None
        if self._open_pushed >= self._peer_max_streams or self._next_push_id > _MAX_WINDOW:
            return None
        if BAD_VALUE.search(path + b"\t" + authority):
            raise_first_bad([(b":path", path), (b":authority", authority)])
        promised = self._next_push_id
        self._next_push_id += 2
        request = [
            (b":method", b"GET"),
            (b":path", path),
            (b":authority", authority),
            (b":scheme", scheme),
            *response_fields(headers),
        ]
        block = promised.to_bytes(4, "big") + self._encoder.encode(request)
        self._header_frames(_PUSH_PROMISE, 0, stream_id, block)
        stream = self._open_stream(promised)
        stream.remote_closed = True  # reserved (local): the client sends nothing on it
        return promised

    @property
    def push_allowed(self) -> bool:
        """The client's SETTINGS_ENABLE_PUSH."""
        return self._push_allowed

    def goaway(self, error_code: int = 0) -> None:
        """GOAWAY with the last stream id we processed.

        A graceful GOAWAY (NO_ERROR) lets the open streams finish; streams the
        client opens after it are refused.
        """
        if self.closed or self.draining:
            return
        if error_code:
            self.closed = True
        else:
            self.draining = True
        self._goaway_frame(self.last_stream_id, error_code)

    def _goaway_frame(self, last_stream_id: int, error_code: int) -> None:
        self._out.append(
            _frame_head(8, _GOAWAY, 0, 0)
            + last_stream_id.to_bytes(4, "big")
            + error_code.to_bytes(4, "big")
        )

    def pending(self, stream_id: int) -> int:
        """Body bytes of ``stream_id`` waiting for flow-control window."""
        return self.queue.pending(stream_id)

    def data_to_send(self) -> bytes:
        out = self._out
        if not out:
            return b""
        data = out[0] if len(out) == 1 else b"".join(out)
        out.clear()
        return data

    # the scheduler ---------------------------------------------------------------------------

    def _flush_window(self) -> None:
        for stream_id in self.queue.streams():
            self._flush_stream(stream_id)

    def _flush_stream(self, stream_id: int) -> None:
        queue = self.queue
        while True:
            item = queue.peek(stream_id)
            if item is None:
                return
            stream = self.streams.get(stream_id)
            if stream is None or stream.local_closed:
                queue.drop(stream_id)
                return
            data, end, trailers = item
            if trailers is not None:
                queue.pop(stream_id, 0)
                self._send_headers(stream, trailers, True)
                continue
            window = min(stream.send_window, self._send_window)
            # A window may be negative (a SETTINGS that shrank it, §6.9.2): nothing goes
            # until it is positive again, but an empty END_STREAM needs no window.
            size = max(0, min(len(data), window, self.max_outbound_frame_size))
            if size == 0 and data:
                return  # wait for WINDOW_UPDATE
            last = end and size == len(data)
            queue.pop(stream_id, size)  # before sending: an END_STREAM may reset the stream
            self._send_data(stream, data[:size] if size < len(data) else data, last)

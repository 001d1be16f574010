"""H2Connection: one HTTP/2 server connection, as neutral events, sans I/O.

The ``h2`` package does framing, HPACK and the stream state machines; this
adapter turns its events into ``bascule.proto.events`` keyed by stream id,
keeps request-body flow control in the app's hands (the receive window is only
re-opened by :meth:`consumed`), schedules response bodies within the peer's
windows (``flow.py``), and adds the budgets h2 lacks (rapid reset, control
frame floods).  Choice of engine: docs/http2.md.

    conn = H2Connection(Http2Limits())
    conn.initiate()                         # our SETTINGS
    for event in conn.receive_data(data):   # RequestReceived, BodyChunk, BodyEnd, StreamReset
        ...
    conn.send_head(stream_id, 200, headers)
    conn.send_body(stream_id, b"...", end=True)   # queued if the window is closed
    transport.write(conn.data_to_send())
"""

import contextlib
from collections import deque

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
import hpack
from hyperframe.frame import GoAwayFrame

from bascule.proto.events import BodyChunk, BodyEnd, Headers, RequestReceived
from bascule.proto.headers import BAD_VALUE
from bascule.proto.http1.writer import KNOWN_NAMES, lower_name, raise_first_bad
from bascule.proto.http2.fields import CONNECTION_FIELDS, Checked, check
from bascule.proto.http2.flow import OutboundQueue
from bascule.proto.http2.hpack_cap import CappedDecoder
from bascule.proto.limits import Http2Limits

_SETTINGS = h2.settings.SettingCodes


def response_fields(headers: Headers) -> Headers:
    """Lowercased fields without connection-specific ones; raises on invalid names/values.

    h2 does not check field values for CR, LF or NUL (RFC 9113 §8.2.1): a
    response-splitting risk behind an HTTP/2 to HTTP/1.1 proxy, so we do.
    """
    out: Headers = []
    for name, value in headers:
        lname = KNOWN_NAMES.get(name)
        if lname is None:
            lname = lower_name(headers, name)
        if lname not in CONNECTION_FIELDS:
            out.append((lname, value))
    if BAD_VALUE.search(b"\t".join(value for _, value in headers)):
        raise_first_bad(headers)
    return out


class StreamReset:
    """The client reset a stream (or h2 did, for a stream it refused)."""

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
    """We answered a stream ourselves (431: header list over the advertised limit)."""

    __slots__ = ("reason", "status", "stream_id")

    def __init__(self, stream_id: int, status: int, reason: str) -> None:
        self.stream_id = stream_id
        self.status = status
        self.reason = reason

    def __repr__(self) -> str:
        return f"StreamRejected({self.stream_id}, {self.status}, {self.reason!r})"


H2Event = RequestReceived | BodyChunk | BodyEnd | StreamReset | ConnectionEnded | StreamRejected

#: WINDOW_UPDATE frames the DATA we sent may still earn (two per frame, capped).
_MAX_WINDOW_CREDIT = 4096

#: Bodies of the answers we give ourselves (StreamRejected).
_REJECTED_BODIES = {
    400: b"Bad Request\n",
    431: b"Request Header Fields Too Large\n",
}


class H2Connection:
    """Server side of an HTTP/2 connection."""

    def __init__(self, limits: Http2Limits | None = None) -> None:
        self.limits = limits = limits or Http2Limits()
        config = h2.config.H2Configuration(
            client_side=False,
            header_encoding=None,
            # fields.check() makes every check h2's inbound pipeline made (and
            # joins cookies as it did), in one pass with bascule's own checks.
            validate_inbound_headers=False,
            normalize_inbound_headers=False,
            # response_fields() lowercases, drops connection-specific fields and
            # checks names and values (h2 does not check values), so h2's own
            # outbound pass would only repeat the work.
            validate_outbound_headers=False,
            normalize_outbound_headers=False,
        )
        self._h2 = conn = h2.connection.H2Connection(config=config)
        conn.local_settings = h2.settings.Settings(
            client=False,
            initial_values={
                _SETTINGS.MAX_CONCURRENT_STREAMS: limits.max_concurrent_streams,
                _SETTINGS.INITIAL_WINDOW_SIZE: limits.initial_window_size,
                _SETTINGS.MAX_FRAME_SIZE: limits.max_inbound_frame_size,
                _SETTINGS.MAX_HEADER_LIST_SIZE: limits.max_header_list_size,
                # RFC 8441: WebSockets over this connection (extended CONNECT).
                _SETTINGS.ENABLE_CONNECT_PROTOCOL: 1,
            },
        )
        conn.max_inbound_frame_size = limits.max_inbound_frame_size
        conn.decoder = CappedDecoder(limits.header_list_hard_cap)
        #: The client's SETTINGS_ENABLE_PUSH, read from h2 only when its SETTINGS
        #: change (h2's settings lookup costs about 5% of a request).
        self._push_allowed = bool(conn.remote_settings.enable_push)
        self.queue = OutboundQueue()
        # The connection window starts at 65,535 whatever the SETTINGS say;
        # open it so streams are limited by their own windows, not each other.
        self._connection_window = min(
            limits.initial_window_size * limits.max_concurrent_streams, 16 * 1024 * 1024
        )
        self._resets: deque[int] = deque()
        #: Streams answered 431 whose StreamEnded is still to come (same read).
        self._answered: set[int] = set()
        self._streams_opened = 0
        self._control_frames = 0
        self._window_credit = 0
        self.last_stream_id = 0
        self.closed = False
        #: A graceful GOAWAY was sent: open streams finish, new ones are refused.
        self.draining = False
        self._early: list[bytes] = []
        # Frame-boundary tracking for _split_after_goaway: the client preface
        # (24 bytes) comes first, then 9-byte frame headers and payloads.
        self._skip = 24
        self._frame_head = b""
        self._in_goaway = False
        #: Length of a frame over our SETTINGS_MAX_FRAME_SIZE, once one is announced.
        self._oversized = 0
        #: The highest client stream h2 had opened when the current event was made.
        self._highest_before = 0

    # set-up ----------------------------------------------------------------------

    def initiate(self) -> None:
        """Queue our connection preface (SETTINGS, and a connection WINDOW_UPDATE)."""
        self._h2.initiate_connection()
        self._open_connection_window()
        self._stream_headroom()

    def _stream_headroom(self) -> None:
        """Let h2 accept streams past the advertised maximum, so that we refuse them.

        RFC 9113 §5.1.2: a stream over SETTINGS_MAX_CONCURRENT_STREAMS is a
        stream error (REFUSED_STREAM); h2 would end the whole connection.  The
        advertised value went out in the SETTINGS above; h2's own check gets
        twice that, and beyond it a client is abusive enough for a connection
        error.
        """
        settings = self._h2.local_settings._settings
        settings[_SETTINGS.MAX_CONCURRENT_STREAMS] = deque([2 * self.limits.max_concurrent_streams])

    def _open_connection_window(self) -> None:
        extra = self._connection_window - 65535
        if extra > 0:
            self._h2.increment_flow_control_window(extra)
            manager = self._h2._inbound_flow_control_window_manager
            manager.max_window_size = self._connection_window

    def initiate_upgrade(self, settings_header: bytes) -> None:
        """Start after an HTTP/1.1 ``Upgrade: h2c`` (the request becomes stream 1)."""
        self._h2.initiate_upgrade_connection(settings_header)
        self._push_allowed = bool(self._h2.remote_settings.enable_push)
        self._open_connection_window()
        self._stream_headroom()
        self.last_stream_id = 1

    # receiving ---------------------------------------------------------------------

    def receive_data(self, data: bytes) -> list[H2Event]:
        """Feed bytes; return the events they complete (errors end the connection)."""
        pieces = self._split_after_goaway(data)
        if len(pieces) == 1 and not self._oversized:
            return self._receive(data)
        out: list[H2Event] = []
        for piece in pieces:  # each GOAWAY is handled before the frames after it
            out.extend(self._receive(piece))
        if self._oversized and not self.closed:
            # Refused on its header: h2 would buffer the whole payload first.
            self.closed = True
            code = h2.errors.ErrorCodes.FRAME_SIZE_ERROR
            self._h2.close_connection(code, last_stream_id=self.last_stream_id)
            limit = self.limits.max_inbound_frame_size
            reason = (
                f"frame of {self._oversized} bytes over the {limit}-byte SETTINGS_MAX_FRAME_SIZE"
            )
            out.append(ConnectionEnded(int(code), reason))
        return out

    def _split_after_goaway(self, data: bytes) -> list[bytes]:
        """Cut ``data`` right after each GOAWAY frame (tracking frame boundaries).

        h2 closes its state machine on any GOAWAY and then rejects the frames
        that follow in the same read (a SETTINGS ack, WINDOW_UPDATEs), which
        would kill the streams a graceful GOAWAY lets finish.
        """
        pieces: list[bytes] = []
        start = pos = 0
        n = len(data)
        while pos < n:
            if self._skip:
                step = min(self._skip, n - pos)
                pos += step
                self._skip -= step
                if not self._skip and self._in_goaway:
                    self._in_goaway = False
                    pieces.append(data[start:pos])
                    start = pos
                continue
            take = data[pos : pos + 9 - len(self._frame_head)]
            self._frame_head += take
            pos += len(take)
            if len(self._frame_head) < 9:
                break
            head = self._frame_head
            self._frame_head = b""
            self._skip = length = int.from_bytes(head[:3], "big")
            if length > self.limits.max_inbound_frame_size:
                self._oversized = length
                # The frames before it are processed; nothing from here on is.
                pieces.append(data[start : pos - len(take)])
                return pieces
            self._in_goaway = head[3] == 0x7
        if start < n or not pieces:
            pieces.append(data[start:])
        return pieces

    def _receive(self, data: bytes) -> list[H2Event]:
        if self.closed:
            return []
        self._highest_before = self._h2.highest_inbound_stream_id
        try:
            events = self._h2.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            # h2 already queued GOAWAY with the error code it chose.
            self.closed = True
            code = getattr(exc, "error_code", h2.errors.ErrorCodes.PROTOCOL_ERROR)
            hpack_failed = isinstance(exc.__cause__ or exc.__context__, hpack.HPACKError)
            if code == h2.errors.ErrorCodes.PROTOCOL_ERROR and hpack_failed:
                # RFC 9113 §4.3: a header block that cannot be decoded is a
                # COMPRESSION_ERROR; h2 says PROTOCOL_ERROR, so the GOAWAY is ours.
                code = h2.errors.ErrorCodes.COMPRESSION_ERROR
                self._h2.clear_outbound_data_buffer()
                frame = GoAwayFrame(0)
                frame.last_stream_id = self.last_stream_id
                frame.error_code = code
                self._early.append(frame.serialize())
            return [ConnectionEnded(int(code), f"HTTP/2 protocol error: {exc}")]
        out: list[H2Event] = []
        for event in events:
            etype = type(event)
            if etype is h2.events.DataReceived:
                if event.data:  # type: ignore[attr-defined]
                    self._control_frames = 0
                    out.append(BodyChunk(event.stream_id, event.data))  # type: ignore[attr-defined]
                    length = event.flow_controlled_length - len(event.data)  # type: ignore[attr-defined]
                    if length:  # padding: credit it at once, the app never sees it
                        self._h2.acknowledge_received_data(length, event.stream_id)  # type: ignore[attr-defined]
                else:
                    self._count_control()
                    if event.flow_controlled_length:  # type: ignore[attr-defined]
                        self._h2.acknowledge_received_data(
                            event.flow_controlled_length,  # type: ignore[attr-defined]
                            event.stream_id,  # type: ignore[attr-defined]
                        )
            elif etype is h2.events.RequestReceived:
                checked = check(event.headers)  # type: ignore[attr-defined]
                self._highest_before = event.stream_id  # type: ignore[attr-defined]
                if checked.violation is not None:
                    return [self._violation(event.stream_id, checked.violation)]  # type: ignore[attr-defined]
                if self.draining and event.stream_id > self.last_stream_id:  # type: ignore[attr-defined]
                    # Opened after our GOAWAY: refused, the client may retry elsewhere.
                    self.reset(event.stream_id, h2.errors.ErrorCodes.REFUSED_STREAM)  # type: ignore[attr-defined]
                    continue
                if (
                    len(self._h2.streams) > self.limits.max_concurrent_streams
                    and self._h2.open_inbound_streams > self.limits.max_concurrent_streams
                    and self._open_before(event.stream_id) > self.limits.max_concurrent_streams  # type: ignore[attr-defined]
                ):
                    # Over the advertised maximum: refuse this stream only.
                    self.reset(event.stream_id, h2.errors.ErrorCodes.REFUSED_STREAM)  # type: ignore[attr-defined]
                    continue
                size = sum(len(n) + len(v) for n, v in checked.fields) + 32 * len(checked.fields)
                if size > self.limits.max_header_list_size:
                    limit = self.limits.max_header_list_size
                    reason = f"header list of {size} bytes over the {limit}-byte limit"
                    out.append(self._answer(event, 431, reason))  # type: ignore[arg-type]
                    continue
                if checked.malformed is not None:
                    out.append(self._answer(event, 400, checked.malformed))  # type: ignore[arg-type]
                    continue
                self._control_frames = 0  # a request is progress
                out.append(self._request(event.stream_id, checked))  # type: ignore[attr-defined]
            elif etype is h2.events.TrailersReceived:
                problem = check(event.headers, trailer=True).violation  # type: ignore[attr-defined]
                if problem is not None:
                    return [self._violation(event.stream_id, problem)]  # type: ignore[attr-defined]
            elif etype is h2.events.StreamEnded:
                # h2 reports the end of a stream once, as its own event (the
                # stream_ended attribute of the other events points at it).
                if self._answered and event.stream_id in self._answered:  # type: ignore[attr-defined]
                    self._answered.discard(event.stream_id)  # type: ignore[attr-defined]
                    continue
                out.append(BodyEnd(event.stream_id))  # type: ignore[attr-defined]
            elif etype is h2.events.StreamReset:
                stream_id = event.stream_id  # type: ignore[attr-defined]
                self.queue.drop(stream_id)
                out.append(StreamReset(stream_id, int(event.error_code)))  # type: ignore[attr-defined]
                # Pushes the client cancels (even ids) are not a rapid reset.
                if event.remote_reset and stream_id % 2 and self._count_reset():  # type: ignore[attr-defined]
                    out.append(self._calm("too many stream resets (rapid reset)"))
                    break
            elif etype is h2.events.WindowUpdated:
                # Each DATA frame we sent may earn a stream and a connection
                # WINDOW_UPDATE; the ones beyond that are control frames.
                if self._window_credit:
                    self._window_credit -= 1
                else:
                    self._count_control()
                self._flush_window()
            elif etype is h2.events.RemoteSettingsChanged:
                self._push_allowed = bool(self._h2.remote_settings.enable_push)
                self._count_control()
                self._flush_window()  # INITIAL_WINDOW_SIZE may have grown
            elif etype is h2.events.PingReceived or etype is h2.events.PriorityUpdated:
                self._count_control()
            elif etype is h2.events.ConnectionTerminated:
                code = int(event.error_code or 0)  # type: ignore[attr-defined]
                if code:
                    self.closed = True
                else:
                    # RFC 9113 §6.8: streams the client already opened may still
                    # be answered.  h2 moves to CLOSED on any GOAWAY and would
                    # refuse to send on them; put it back and stop new streams.
                    self._h2.state_machine.state = h2.connection.ConnectionState.SERVER_OPEN
                    self.draining = True
                out.append(ConnectionEnded(code, "client sent GOAWAY"))
            if self._control_frames > self.limits.control_frame_budget:
                out.append(
                    self._calm("too many SETTINGS/PING/PRIORITY/WINDOW_UPDATE/empty DATA frames")
                )
                break
        return out

    def _violation(self, stream_id: int, reason: str) -> ConnectionEnded:
        """End the connection for a header block h2's rules refuse, as h2 itself did.

        h2 raised inside ``receive_data``: nothing of that read was reported,
        and its GOAWAY (PROTOCOL_ERROR) named the highest stream opened so far.
        """
        self.closed = True
        code = h2.errors.ErrorCodes.PROTOCOL_ERROR
        last = max(stream_id, self._highest_before)
        self._h2.close_connection(code, last_stream_id=last)
        return ConnectionEnded(int(code), f"HTTP/2 protocol error: {reason}")

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
        if b"#" in query:
            query = query.partition(b"#")[0]
        protocol = pseudo.get(b":protocol", b"")
        return RequestReceived(
            stream_id,
            pseudo[b":method"].decode("ascii", "replace"),
            target or b"/",
            query,
            headers,
            "2",
            True,
            False,
            bool(protocol),
            protocol,
        )

    def _answer(self, event: h2.events.RequestReceived, status: int, reason: str) -> StreamRejected:
        """Answer a stream ourselves: 431 (header list too large) or 400 (malformed)."""
        stream_id = event.stream_id
        self.last_stream_id = max(self.last_stream_id, stream_id)
        self._streams_opened += 1
        body = _REJECTED_BODIES[status]
        try:
            if self._h2.local_flow_control_window(stream_id) < len(body):
                body = b""  # the client's window has no room: the status alone says it
            self._h2.send_headers(
                stream_id,
                [
                    (b":status", b"%d" % status),
                    (b"content-type", b"text/plain; charset=utf-8"),
                    (b"content-length", b"%d" % len(body)),
                ],
                end_stream=not body,
            )
            if body:
                self._h2.send_data(stream_id, body, end_stream=True)
        except h2.exceptions.ProtocolError:
            # A later frame of the same read closed the stream (h2 reset it, for DATA
            # after END_STREAM say) or the connection (the client's GOAWAY): there
            # is no one left to answer. (StreamClosedError is a ProtocolError.)
            return StreamRejected(stream_id, status, reason)
        if event.stream_ended is not None:
            self._answered.add(stream_id)  # its StreamEnded is not news to anyone
        else:
            # The request body is not wanted: ask the client to stop (RFC 9113 §8.1).
            self.reset(stream_id, h2.errors.ErrorCodes.NO_ERROR)
        return StreamRejected(stream_id, status, reason)

    def _open_before(self, stream_id: int) -> int:
        """Open client streams up to and including ``stream_id`` (the later ones are refused)."""
        return sum(
            1
            for sid, stream in self._h2.streams.items()
            if sid % 2 and sid <= stream_id and stream.open
        )

    def _count_reset(self) -> bool:
        """Record a client reset; True when the client exceeded the budget."""
        resets = self._resets
        resets.append(self._streams_opened)
        window_start = self._streams_opened - self.limits.reset_window
        while resets and resets[0] <= window_start:
            resets.popleft()
        return len(resets) > self.limits.max_resets

    def _count_control(self) -> None:
        self._control_frames += 1

    def _calm(self, reason: str) -> ConnectionEnded:
        self.closed = True
        code = h2.errors.ErrorCodes.ENHANCE_YOUR_CALM
        self._h2.close_connection(code, last_stream_id=self.last_stream_id)
        return ConnectionEnded(int(code), reason)

    # app-facing flow control -----------------------------------------------------------

    def consumed(self, stream_id: int, size: int) -> None:
        """The app read ``size`` body bytes of ``stream_id``: re-open that much window."""
        if size and not self.closed:
            # A stream that ended meanwhile raises; the connection window is credited anyway.
            with contextlib.suppress(h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
                self._h2.acknowledge_received_data(size, stream_id)

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
        self._h2.send_headers(stream_id, fields, end_stream=end)

    def send_body(self, stream_id: int, data: bytes, end: bool = False) -> None:
        """Body bytes; what the windows do not allow now is queued (see ``pending``)."""
        if not self.queue.has(stream_id):
            # Nothing queued before it: if it fits the windows and one frame,
            # it goes out now, as _flush_stream would send it, without queueing.
            conn = self._h2
            size = len(data)
            if size <= conn.max_outbound_frame_size:
                try:
                    window = conn.local_flow_control_window(stream_id)
                except h2.exceptions.StreamClosedError:
                    return  # the stream is gone: nothing to send it on
                if size <= window:
                    conn.send_data(stream_id, data, end_stream=end)
                    if size:
                        self._control_frames = 0  # progress
                        self._window_credit = min(self._window_credit + 2, _MAX_WINDOW_CREDIT)
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

    def reset(self, stream_id: int, error_code: int = h2.errors.ErrorCodes.INTERNAL_ERROR) -> None:
        """Abort one stream (RST_STREAM)."""
        self.queue.drop(stream_id)
        with contextlib.suppress(h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
            self._h2.reset_stream(stream_id, error_code)

    def push(
        self, stream_id: int, path: bytes, authority: bytes, scheme: bytes, headers: Headers
    ) -> int | None:
        """Server push of a GET ``path``; returns the promised stream id, or None if refused."""
        if not self._push_allowed:
            return None
        promised = self._h2.get_next_available_stream_id()
        request = [
            (b":method", b"GET"),
            (b":path", path),
            (b":authority", authority),
            (b":scheme", scheme),
            *response_fields(headers),
        ]
        try:
            self._h2.push_stream(stream_id, promised, request)
        except h2.exceptions.ProtocolError:
            return None
        return promised

    @property
    def push_allowed(self) -> bool:
        """The client's SETTINGS_ENABLE_PUSH."""
        return self._push_allowed

    def goaway(self, error_code: int = 0) -> None:
        """GOAWAY with the last stream id we processed.

        A graceful GOAWAY (NO_ERROR) is written by us, not through h2, whose
        ``close_connection`` closes the state machine and would stop the open
        streams from finishing; streams the client opens after it are refused.
        """
        if self.closed or self.draining:
            return
        if error_code:
            self.closed = True
            self._h2.close_connection(error_code, last_stream_id=self.last_stream_id)
            return
        self.draining = True
        frame = GoAwayFrame(0)
        frame.last_stream_id = self.last_stream_id
        frame.error_code = 0
        self._early.append(frame.serialize())

    def pending(self, stream_id: int) -> int:
        """Body bytes of ``stream_id`` waiting for flow-control window."""
        return self.queue.pending(stream_id)

    def data_to_send(self) -> bytes:
        data = self._h2.data_to_send()
        if self._early:
            data = b"".join(self._early) + data
            self._early.clear()
        return data

    # the scheduler ---------------------------------------------------------------------------

    def _flush_window(self) -> None:
        for stream_id in self.queue.streams():
            self._flush_stream(stream_id)

    def _flush_stream(self, stream_id: int) -> None:
        conn = self._h2
        queue = self.queue
        while True:
            item = queue.peek(stream_id)
            if item is None:
                return
            data, end, trailers = item
            if trailers is not None:
                queue.pop(stream_id, 0)
                conn.send_headers(stream_id, trailers, end_stream=True)
                continue
            try:
                window = conn.local_flow_control_window(stream_id)
            except h2.exceptions.StreamClosedError:
                queue.drop(stream_id)
                return
            size = min(len(data), window, conn.max_outbound_frame_size)
            if size <= 0 and data:
                return  # wait for WINDOW_UPDATE
            chunk = data[:size]
            last = end and size == len(data)
            conn.send_data(stream_id, chunk, end_stream=last)
            queue.pop(stream_id, size)
            if size:
                self._control_frames = 0  # progress
                self._window_credit = min(self._window_credit + 2, _MAX_WINDOW_CREDIT)

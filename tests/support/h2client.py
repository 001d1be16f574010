"""A small raw HTTP/2 client over a blocking socket, built on ``h2`` (client side).

It exists so that e2e tests can speak HTTP/2 frame by frame: open many streams
at once, reset one, send PING or SETTINGS, watch GOAWAY arrive, and control
flow-control credit.  Every wait is bounded by a deadline.

    client = H2Client(server.connect())
    stream_id = client.request("GET", "/path")
    response = client.response(stream_id)      # status, headers, body
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TypeVar

import h2.config
import h2.connection
import h2.events
import h2.settings
from hyperframe.frame import Frame, GoAwayFrame

Header = tuple[bytes, bytes]
E = TypeVar("E", bound=h2.events.Event)


@dataclass(frozen=True)
class GoAway:
    """A GOAWAY the server sent (kept away from h2, whose client state machine
    closes on GOAWAY and would then refuse the rest of the open streams)."""

    last_stream_id: int
    error_code: int
    position: int  # how many h2 events had been recorded when it arrived


def split_goaways(data: bytes) -> tuple[bytes, list[GoAwayFrame], bytes]:
    """``data`` cut into (frames other than GOAWAY, the GOAWAY frames, an incomplete tail)."""
    keep = bytearray()
    found: list[GoAwayFrame] = []
    view = memoryview(data)
    while len(view) >= 9:
        frame, length = Frame.parse_frame_header(view[:9])
        if len(view) < 9 + length:
            break
        if isinstance(frame, GoAwayFrame):
            frame.parse_body(view[9 : 9 + length])
            found.append(frame)
        else:
            keep += view[: 9 + length]
        view = view[9 + length :]
    return bytes(keep), found, bytes(view)


@dataclass
class Response:
    """What one stream received."""

    stream_id: int
    status: int | None = None
    headers: list[Header] = field(default_factory=list)
    body: bytearray = field(default_factory=bytearray)
    trailers: list[Header] = field(default_factory=list)
    ended: bool = False
    reset: int | None = None

    @property
    def done(self) -> bool:
        return self.ended or self.reset is not None

    def header(self, name: bytes) -> bytes | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None


class H2Client:
    """One HTTP/2 connection (prior knowledge, or ALPN ``h2`` on a TLS socket)."""

    def __init__(
        self,
        sock: socket.socket,
        *,
        authority: bytes = b"127.0.0.1",
        scheme: bytes = b"http",
        auto_ack: bool = True,
        settings: dict[h2.settings.SettingCodes, int] | None = None,
    ) -> None:
        self.sock = sock
        self.authority = authority
        self.scheme = scheme
        #: Give flow-control credit back as soon as DATA arrives.
        self.auto_ack = auto_ack
        config = h2.config.H2Configuration(client_side=True, header_encoding=None)
        self.conn = h2.connection.H2Connection(config=config)
        if settings:
            self.conn.local_settings = h2.settings.Settings(client=True, initial_values=settings)
        self.conn.initiate_connection()
        self.events: list[h2.events.Event] = []
        self.goaways: list[GoAway] = []
        self._buffer = b""
        self.responses: dict[int, Response] = {}
        self.closed = False
        self.write_failed = False
        self.flush()

    # sending ------------------------------------------------------------------------

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data and not self.closed and not self.write_failed:
            try:
                self.sock.sendall(data)
            except (BrokenPipeError, ConnectionResetError):
                self.write_failed = True  # the server closed; what it sent can still be read

    def send_raw(self, data: bytes) -> None:
        """Bytes straight onto the socket (after whatever h2 has queued)."""
        self.flush()
        self.sock.sendall(data)

    def headers(self, method: str, path: str, extra: Iterable[Header] = ()) -> list[Header]:
        return [
            (b":method", method.encode()),
            (b":path", path.encode()),
            (b":scheme", self.scheme),
            (b":authority", self.authority),
            *extra,
        ]

    def request(
        self,
        method: str,
        path: str,
        extra: Iterable[Header] = (),
        body: bytes | None = None,
        *,
        end: bool = True,
        flush: bool = True,
    ) -> int:
        """Open a stream; with ``body``, send it within the flow-control windows."""
        stream_id = self.conn.get_next_available_stream_id()
        self.responses[stream_id] = Response(stream_id)
        self.conn.send_headers(
            stream_id, self.headers(method, path, extra), end_stream=end and not body
        )
        if body:
            self.send_body(stream_id, body, end=end)
        elif flush:
            self.flush()
        return stream_id

    def send_body(
        self, stream_id: int, body: bytes, *, end: bool = True, timeout: float = 10
    ) -> None:
        """Send ``body`` as the windows allow, reading (and waiting) for WINDOW_UPDATE."""
        deadline = time.monotonic() + timeout
        view = memoryview(body)
        while view:
            window = min(
                self.conn.local_flow_control_window(stream_id), self.conn.max_outbound_frame_size
            )
            if window <= 0:
                self.flush()
                if time.monotonic() > deadline:
                    raise TimeoutError(f"no flow-control window for stream {stream_id}")
                self.read(deadline - time.monotonic())
                if self.closed:
                    raise ConnectionError("server closed the connection during the upload")
                continue
            chunk = bytes(view[:window])
            view = view[window:]
            self.conn.send_data(stream_id, chunk, end_stream=end and not view)
            self.flush()
        if end and not body:
            self.conn.end_stream(stream_id)
            self.flush()

    def reset(self, stream_id: int, error_code: int = 0x8) -> None:
        self.conn.reset_stream(stream_id, error_code)
        self.flush()

    def ping(self, data: bytes) -> None:
        self.conn.ping(data)
        self.flush()

    # receiving ------------------------------------------------------------------------

    def read(self, timeout: float) -> list[h2.events.Event]:
        """One recv (at most ``timeout`` seconds); returns the events it completed."""
        if self.closed:
            return []
        self.sock.settimeout(max(timeout, 0.001))
        try:
            data = self.sock.recv(65536)
        except TimeoutError:
            return []
        except (ConnectionResetError, BrokenPipeError):
            data = b""
        if not data:
            self.closed = True
            return []
        data, goaways, self._buffer = split_goaways(self._buffer + data)
        events = self.conn.receive_data(data) if data else []
        for event in events:
            self._record(event)
        self.events.extend(events)
        self.goaways.extend(
            GoAway(g.last_stream_id, g.error_code, len(self.events)) for g in goaways
        )
        self.flush()
        return events

    def _record(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.ResponseReceived):
            response = self._response(event.stream_id)
            for name, value in event.headers or ():
                if name == b":status":
                    response.status = int(value)
                else:
                    response.headers.append((bytes(name), bytes(value)))
        elif isinstance(event, h2.events.DataReceived):
            response = self._response(event.stream_id)
            response.body += event.data or b""
            if self.auto_ack and event.flow_controlled_length:
                self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        elif isinstance(event, h2.events.TrailersReceived):
            self._response(event.stream_id).trailers.extend(
                (bytes(n), bytes(v)) for n, v in event.headers or ()
            )
        elif isinstance(event, h2.events.StreamEnded):
            self._response(event.stream_id).ended = True
        elif isinstance(event, h2.events.StreamReset):
            self._response(event.stream_id).reset = int(event.error_code or 0)

    def _response(self, stream_id: int | None) -> Response:
        assert stream_id is not None
        return self.responses.setdefault(stream_id, Response(stream_id))

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 10) -> None:
        """Read until ``predicate()`` holds; TimeoutError after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while not predicate():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("condition not met in time")
            if self.closed:
                raise ConnectionError("connection closed before the condition was met")
            self.read(min(remaining, 0.5))

    def response(self, stream_id: int, timeout: float = 10) -> Response:
        """Wait until ``stream_id`` ended or was reset."""
        response = self._response(stream_id)
        self.wait_for(lambda: response.done, timeout)
        return response

    def wait_closed(self, timeout: float = 10) -> None:
        """Read (and record) until the server closes the connection."""
        deadline = time.monotonic() + timeout
        while not self.closed:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("connection not closed in time")
            self.read(min(remaining, 0.5))

    def of_type(self, kind: type[E]) -> list[E]:
        return [e for e in self.events if isinstance(e, kind)]

    def close(self) -> None:
        self.sock.close()

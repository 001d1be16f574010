"""WebSocket echo load generator for ``bench/ws_run.py`` (a separate process).

Opens C connections (default 16) to a WebSocket echo endpoint and, on each,
keeps a window of W messages (default 16) in flight: it sends W messages, then
one new message for every echo that comes back, for a bounded time.  Every
echo is checked against what was sent (same type, same bytes, same order).
Prints one JSON object on stdout::

    {"messages": ..., "seconds": ..., "msgs_per_s": ..., "errors": ..., ...}

``messages`` counts verified echoes during the measured ``--duration`` (after
``--warmup``).  Extra keys: ``error_details`` (the first few errors),
``client_cpu_s``/``client_cpu_pct`` (this process) and, with ``--cpu-pgid``,
``server_cpu_s``/``server_cpu_pct`` (every process of that process group, read
from /proc) over the same window.

Built so the client is not the bottleneck: raw asyncio protocols (uvloop when
installed), no per-message framing work.  The messages are fixed up front: a
few dozen payloads per run, each serialised once as a masked client frame
(``websockets.frames.Frame``, random mask per frame) and once as the unmasked
frame an echo is expected to be.  Sending is a ``write`` of ready-made bytes;
checking an echo is one ``bytearray.startswith`` (a memcmp).  Anything else a
server may legally send (a fragmented echo, a ping, non-minimal lengths) goes
through a small general frame parser.  Compression is not offered, so every
server echoes uncompressed frames.

Usage::

    python bench/ws_load.py --port P [--kind text|binary] [--size BYTES]
        [--connections C] [--window W] [--duration S] [--warmup S]
        [--cpu-pgid PGID]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import random
import string
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final, cast

from websockets.frames import Close, Frame, Opcode
from websockets.utils import accept_key

HOST = "127.0.0.1"
MAX_ERROR_DETAILS = 10
MAX_HANDSHAKE_BYTES = 65536
# Distinct messages per run (each connection sends them round-robin).
SMALL_VARIANTS = 64
LARGE_VARIANTS = 8
LARGE = 4096  # payloads from this size on are written frame by frame, not joined

_OP_CONT: Final = 0x0
_OP_TEXT: Final = 0x1
_OP_BINARY: Final = 0x2
_OP_CLOSE: Final = 0x8
_OP_PING: Final = 0x9
_OP_PONG: Final = 0xA


# --------------------------------------------------------------------------
# The messages
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """What every connection sends and expects back, precomputed."""

    opcode: int
    payloads: tuple[bytes, ...]
    send_frames: tuple[bytes, ...]  # masked client frames
    echo_frames: tuple[bytes, ...]  # the unfragmented, uncompressed echo of each
    header_size: int  # bytes of frame header in each echo frame
    large: bool


def make_plan(kind: str, size: int, seed: int | None = None) -> Plan:
    rng = random.Random(seed)
    variants = LARGE_VARIANTS if size >= LARGE else SMALL_VARIANTS
    alphabet = (string.ascii_letters + string.digits).encode("ascii")
    payloads: list[bytes] = []
    for i in range(variants):
        if kind == "text":
            # ASCII, so the text is exactly `size` bytes of UTF-8; the prefix
            # makes every variant distinct even at tiny sizes.
            body = bytes(rng.choice(alphabet) for _ in range(size))
            tag = f"{i:02x}".encode("ascii")
            payloads.append((tag + body)[:size] if size >= len(tag) else body)
        else:
            payloads.append(rng.randbytes(size))
    opcode = Opcode.TEXT if kind == "text" else Opcode.BINARY
    return Plan(
        opcode=int(opcode.value),
        payloads=tuple(payloads),
        send_frames=tuple(Frame(opcode, p).serialize(mask=True) for p in payloads),
        echo_frames=tuple(Frame(opcode, p).serialize(mask=False) for p in payloads),
        header_size=2 if size < 126 else 4 if size < 65536 else 10,
        large=size >= LARGE,
    )


def _control_frame(opcode: Opcode, data: bytes) -> bytes:
    return Frame(opcode, data).serialize(mask=True)


# --------------------------------------------------------------------------
# Statistics
# --------------------------------------------------------------------------


@dataclass
class Stats:
    """Shared by all connections."""

    received: int = 0  # verified echoes, all connections, whole run
    errors: int = 0
    details: list[str] = field(default_factory=list)

    def error(self, message: str) -> None:
        self.errors += 1
        if len(self.details) < MAX_ERROR_DETAILS:
            self.details.append(message)


# --------------------------------------------------------------------------
# One connection
# --------------------------------------------------------------------------


class EchoClient(asyncio.Protocol):
    """One WebSocket connection: handshake, then a windowed echo pump."""

    def __init__(
        self,
        cid: int,
        plan: Plan,
        stats: Stats,
        window: int,
        host: str,
        port: int,
        path: str,
    ) -> None:
        loop = asyncio.get_running_loop()
        self.cid = cid
        self.plan = plan
        self.stats = stats
        self.window = window
        self.host = host
        self.port = port
        self.path = path
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.handshaking = True
        self.key = base64.b64encode(os.urandom(16)).decode("ascii")
        # Stagger the message sequence between connections.
        self.next_send = cid % len(plan.payloads)
        self.next_recv = self.next_send
        self.offset = 0  # bytes of the expected echo frame already matched
        self.in_flight = 0
        self.sending = False
        self.closing = False  # we sent our close frame
        self.close_received = False
        self.dead = False  # failed: ignore anything further
        self.fragments: list[bytes] | None = None
        self.fragment_opcode = 0
        self.opened: asyncio.Future[None] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()

    # asyncio.Protocol -------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport: cast, don't check.
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(
            (
                f"GET {self.path} HTTP/1.1\r\n"
                f"Host: {self.host}:{self.port}\r\n"
                "Upgrade: websocket\r\n"
                "Connection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {self.key}\r\n"
                "Sec-WebSocket-Version: 13\r\n"
                "\r\n"
            ).encode("ascii")
        )

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closing and not self.dead:
            self._fail(f"connection lost ({exc or 'closed by server'})", close=False)
        if not self.opened.done():
            self.opened.set_exception(ConnectionError(f"conn {self.cid}: closed during handshake"))
        if not self.closed.done():
            self.closed.set_result(None)

    def eof_received(self) -> bool | None:
        return None  # close our side too

    def data_received(self, data: bytes) -> None:
        if self.dead:
            return
        if self.handshaking:
            buf = self.buf
            buf += data
            if not self._handshake():
                return
            data = bytes(buf)
            buf.clear()
        got = self._buffered(data) if self.buf else self._stream(data)
        if got and not self.dead:
            self.stats.received += got
            self.in_flight -= got
            if self.sending:
                self._send(got)

    def _stream(self, data: bytes) -> int:
        """Match ``data`` against the expected echo frames, without copying it.

        The usual case: every byte is the next byte of the expected echo (a
        frame may span calls; ``self.offset`` is how much of it has arrived).
        At the first byte that differs inside a frame header, switch to the
        buffered general parser; a difference inside a payload whose header
        matched is an echo mismatch.  Returns the echoes completed.
        """
        echo_frames = self.plan.echo_frames
        variants = len(echo_frames)
        header_size = self.plan.header_size
        n = len(data)
        i = 0
        off = self.offset
        r = self.next_recv
        got = 0
        view: memoryview | None = None
        while i < n:
            expected = echo_frames[r]
            if not off and data.startswith(expected, i):
                # A whole echo in this chunk (the small-message case).
                i += len(expected)
                got += 1
                r = r + 1 if r + 1 < variants else 0
                continue
            size = len(expected)
            take = min(size - off, n - i)
            if view is None:
                view = memoryview(data)
            if expected.startswith(view[i : i + take], off):  # memcmp, no copy
                i += take
                off += take
                if off == size:
                    off = 0
                    got += 1
                    r = r + 1 if r + 1 < variants else 0
                continue
            if off >= header_size:
                self._fail(f"echo mismatch inside a {size - header_size}-byte payload")
                return got
            # Something else (a ping, a fragmented echo, another encoding...):
            # hand the rest, with the header bytes that matched, to the parser.
            self.buf += expected[:off]
            self.buf += view[i:]
            self.offset = 0
            self.next_recv = r
            return got + self._buffered(b"")
        self.offset = off
        self.next_recv = r
        return got

    def _buffered(self, data: bytes) -> int:
        """General path: parse whole frames from ``self.buf``; returns echoes completed."""
        buf = self.buf
        buf += data
        echo_frames = self.plan.echo_frames
        variants = len(echo_frames)
        pos = 0
        end = len(buf)
        got = 0
        r = self.next_recv
        while pos < end:
            expected = echo_frames[r]
            if buf.startswith(expected, pos):
                pos += len(expected)
                got += 1
                r = r + 1 if r + 1 < variants else 0
                continue
            self.next_recv = r
            new_pos, completed = self._parse_one(buf, pos, end)
            if self.dead:
                return got
            if new_pos < 0:
                break  # incomplete frame: wait for more bytes
            pos = new_pos
            got += completed
            r = self.next_recv
        self.next_recv = r
        if pos:
            del buf[:pos]
        if buf and echo_frames[r].startswith(buf):
            # What is left is the start of the expected echo: back to streaming.
            self.offset = len(buf)
            buf.clear()
        return got

    # sending ----------------------------------------------------------------

    def start(self) -> None:
        self.sending = True
        self._send(self.window - self.in_flight)

    def _send(self, count: int) -> None:
        transport = self.transport
        if count <= 0 or transport is None or transport.is_closing():
            return
        frames = self.plan.send_frames
        variants = len(frames)
        i = self.next_send
        if self.plan.large:
            for _ in range(count):
                transport.write(frames[i])
                i = i + 1 if i + 1 < variants else 0
        else:
            batch: list[bytes] = []
            for _ in range(count):
                batch.append(frames[i])
                i = i + 1 if i + 1 < variants else 0
            transport.write(b"".join(batch))
        self.next_send = i
        self.in_flight += count

    def close(self) -> None:
        """Stop sending and start the closing handshake (close code 1000)."""
        self.sending = False
        transport = self.transport
        if self.closing or self.dead or transport is None or transport.is_closing():
            return
        self.closing = True
        transport.write(_control_frame(Opcode.CLOSE, Close(1000, "").serialize()))

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    # receiving ---------------------------------------------------------------

    def _handshake(self) -> bool:
        """Consume the 101 response; True once the WebSocket is open."""
        buf = self.buf
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            if len(buf) > MAX_HANDSHAKE_BYTES:
                self._fail("handshake response head too large")
            return False
        head = bytes(buf[:end]).decode("latin-1")
        del buf[: end + 4]
        status_line, *header_lines = head.split("\r\n")
        headers: dict[str, str] = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or parts[1] != "101":
            self._fail(f"handshake refused: {status_line!r}")
            return False
        if headers.get("sec-websocket-accept") != accept_key(self.key):
            self._fail("handshake: wrong or missing Sec-WebSocket-Accept")
            return False
        if headers.get("sec-websocket-extensions"):
            self._fail(f"handshake: unrequested extensions {headers['sec-websocket-extensions']!r}")
            return False
        self.handshaking = False
        if not self.opened.done():
            self.opened.set_result(None)
        return True

    def _parse_one(self, buf: bytearray, pos: int, end: int) -> tuple[int, int]:
        """Parse one frame at ``pos``: (position after it, echoes completed),
        or (-1, 0) when the frame is not complete yet."""
        if end - pos < 2:
            return -1, 0
        first = buf[pos]
        second = buf[pos + 1]
        length = second & 0x7F
        at = pos + 2
        if length == 126:
            if end - at < 2:
                return -1, 0
            length = int.from_bytes(buf[at : at + 2], "big")
            at += 2
        elif length == 127:
            if end - at < 8:
                return -1, 0
            length = int.from_bytes(buf[at : at + 8], "big")
            at += 8
        if second & 0x80:
            self._fail("server frame is masked")
            return -1, 0
        if end - at < length:
            return -1, 0
        payload = bytes(buf[at : at + length])
        after = at + length
        fin = bool(first & 0x80)
        opcode = first & 0x0F
        if first & 0x70:
            self._fail(f"reserved bits set in a server frame (0x{first:02x}); nothing negotiated")
            return -1, 0
        if opcode == _OP_PING:
            if self.transport is not None and not self.transport.is_closing():
                self.transport.write(_control_frame(Opcode.PONG, payload))
            return after, 0
        if opcode == _OP_PONG:
            return after, 0
        if opcode == _OP_CLOSE:
            self._server_closed(payload)
            return after, 0
        if opcode in (_OP_TEXT, _OP_BINARY):
            if self.fragments is not None:
                self._fail("new data frame inside a fragmented message")
                return -1, 0
            if not fin:
                self.fragments = [payload]
                self.fragment_opcode = opcode
                return after, 0
            return after, self._check_message(opcode, payload)
        if opcode == _OP_CONT:
            if self.fragments is None:
                self._fail("continuation frame without a message to continue")
                return -1, 0
            self.fragments.append(payload)
            if not fin:
                return after, 0
            message = b"".join(self.fragments)
            self.fragments = None
            return after, self._check_message(self.fragment_opcode, message)
        self._fail(f"unknown opcode {opcode}")
        return -1, 0

    def _check_message(self, opcode: int, payload: bytes) -> int:
        r = self.next_recv
        plan = self.plan
        expected = plan.payloads[r]
        if opcode != plan.opcode or payload != expected:
            kind = {_OP_TEXT: "text", _OP_BINARY: "binary"}.get(opcode, str(opcode))
            at = next(
                (i for i, (a, b) in enumerate(zip(payload, expected, strict=False)) if a != b),
                min(len(payload), len(expected)),
            )
            self._fail(
                f"echo mismatch: got {kind} of {len(payload)} bytes, expected "
                f"{'text' if plan.opcode == _OP_TEXT else 'binary'} of {len(expected)} bytes; "
                f"first difference at byte {at}"
            )
            return 0
        self.next_recv = r + 1 if r + 1 < len(plan.payloads) else 0
        return 1

    def _server_closed(self, payload: bytes) -> None:
        self.close_received = True
        code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
        if not self.closing:
            reason = payload[2:].decode("utf-8", "replace")
            self._fail(f"server closed the WebSocket: {code} {reason!r}")
        elif code != 1000:
            self.stats.error(f"conn {self.cid}: close handshake answered with code {code}")
        # Either way the server's close frame ends it: drop TCP if it does not.
        if self.transport is not None:
            self.transport.close()

    def _fail(self, message: str, close: bool = True) -> None:
        if self.dead:
            return
        self.dead = True
        self.sending = False
        self.stats.error(f"conn {self.cid}: {message}")
        if not self.opened.done():
            self.opened.set_exception(ConnectionError(f"conn {self.cid}: {message}"))
        if close and self.transport is not None:
            self.transport.abort()


# --------------------------------------------------------------------------
# CPU accounting
# --------------------------------------------------------------------------


def group_cpu_seconds(pgid: int) -> float | None:
    """utime + stime of every live process in process group ``pgid`` (Linux /proc)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    found = False
    try:
        names = os.listdir("/proc")
    except OSError:
        return None
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as fh:
                raw = fh.read()
        except OSError:
            continue
        # Fields after "(comm)": state ppid pgrp ... utime(14) stime(15).
        rest = raw[raw.rfind(b")") + 2 :].split()
        if len(rest) < 13 or int(rest[2]) != pgid:
            continue
        total += int(rest[11]) + int(rest[12])
        found = True
    return total / ticks if found else None


# --------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------


async def _connect(
    cid: int, args: argparse.Namespace, plan: Plan, stats: Stats
) -> EchoClient | None:
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(args.connect_timeout):
            _, client = await loop.create_connection(
                lambda: EchoClient(cid, plan, stats, args.window, args.host, args.port, args.path),
                args.host,
                args.port,
            )
            await client.opened
    except TimeoutError:
        stats.error(f"conn {cid}: not open within {args.connect_timeout} s")
        return None
    except (OSError, ConnectionError) as exc:
        if not str(exc).startswith(f"conn {cid}:"):  # already recorded by _fail
            stats.error(f"conn {cid}: connect failed: {exc}")
        return None
    return client


async def run(args: argparse.Namespace) -> dict[str, Any]:
    plan = make_plan(args.kind, args.size, seed=args.seed)
    stats = Stats()
    clients = [
        c
        for c in await asyncio.gather(
            *(_connect(i, args, plan, stats) for i in range(args.connections))
        )
        if c is not None
    ]
    result: dict[str, Any] = {
        "messages": 0,
        "seconds": 0.0,
        "msgs_per_s": 0.0,
        "errors": 0,
        "error_details": [],
        "connections": args.connections,
        "connected": len(clients),
        "kind": args.kind,
        "size": args.size,
        "window": args.window,
        "client_cpu_s": None,
        "client_cpu_pct": None,
        "server_cpu_s": None,
        "server_cpu_pct": None,
    }
    if clients:
        for client in clients:
            client.start()
        if args.warmup > 0:
            await asyncio.sleep(args.warmup)
        received0 = stats.received
        server0 = group_cpu_seconds(args.cpu_pgid) if args.cpu_pgid else None
        cpu0 = time.process_time()
        t0 = time.perf_counter()
        await asyncio.sleep(args.duration)
        t1 = time.perf_counter()
        cpu1 = time.process_time()
        server1 = group_cpu_seconds(args.cpu_pgid) if args.cpu_pgid else None
        received1 = stats.received
        seconds = t1 - t0
        result["messages"] = received1 - received0
        result["seconds"] = round(seconds, 4)
        result["msgs_per_s"] = round((received1 - received0) / seconds, 1)
        result["client_cpu_s"] = round(cpu1 - cpu0, 3)
        result["client_cpu_pct"] = round(100.0 * (cpu1 - cpu0) / seconds, 1)
        if server0 is not None and server1 is not None:
            result["server_cpu_s"] = round(server1 - server0, 3)
            result["server_cpu_pct"] = round(100.0 * (server1 - server0) / seconds, 1)
        await _close_all(clients, stats, args.close_timeout)
    result["errors"] = stats.errors
    result["error_details"] = stats.details
    return result


async def _close_all(clients: Sequence[EchoClient], stats: Stats, timeout: float) -> None:
    """Closing handshake on every connection, bounded by ``timeout``; abort stragglers."""
    for client in clients:
        client.close()
    pending = [c.closed for c in clients if not c.closed.done()]
    if pending:
        _, still = await asyncio.wait(pending, timeout=timeout)
        if still:
            stats.error(f"{len(still)} connection(s) not closed within {timeout} s of close")
            for client in clients:
                if not client.closed.done():
                    client.abort()
            # connection_lost follows abort() on the next loop iterations.
            await asyncio.wait([c.closed for c in clients], timeout=1.0)


# --------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="WebSocket echo load generator.")
    parser.add_argument("--host", default=HOST, help=f"server address (default {HOST})")
    parser.add_argument("--port", type=int, required=True, help="server port")
    parser.add_argument("--path", default="/", help="request path (default /)")
    parser.add_argument(
        "--kind", choices=("text", "binary"), default="text", help="message type (default text)"
    )
    parser.add_argument(
        "--size", type=_positive_int, default=32, help="message size in bytes (default 32)"
    )
    parser.add_argument(
        "--connections", type=_positive_int, default=16, help="connections (default 16)"
    )
    parser.add_argument(
        "--window",
        type=_positive_int,
        default=16,
        help="messages in flight per connection (default 16)",
    )
    parser.add_argument(
        "--duration", type=_positive_float, default=10.0, help="measured seconds (default 10)"
    )
    parser.add_argument(
        "--warmup",
        type=_non_negative_float,
        default=1.0,
        help="seconds of load before measuring (default 1)",
    )
    parser.add_argument(
        "--connect-timeout",
        type=_positive_float,
        default=10.0,
        help="seconds for all connections to open (default 10)",
    )
    parser.add_argument(
        "--close-timeout",
        type=_positive_float,
        default=5.0,
        help="seconds for the closing handshakes (default 5)",
    )
    parser.add_argument(
        "--cpu-pgid",
        type=int,
        default=None,
        help="also report the CPU time of this process group (the server) over the window",
    )
    parser.add_argument(
        "--loop",
        choices=("auto", "uvloop", "asyncio"),
        default="auto",
        help="event loop (default: uvloop when installed)",
    )
    parser.add_argument("--seed", type=int, default=None, help="payload RNG seed")
    return parser.parse_args(argv)


def _loop_factory(choice: str) -> tuple[str, Any]:
    if choice in ("auto", "uvloop"):
        try:
            import uvloop  # noqa: PLC0415 - optional
        except ImportError:
            if choice == "uvloop":
                raise
        else:
            return "uvloop", uvloop.new_event_loop
    return "asyncio", None


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    loop_name, factory = _loop_factory(args.loop)
    with asyncio.Runner(loop_factory=factory) as runner:
        result = runner.run(run(args))
    result["loop"] = loop_name
    print(json.dumps(result), flush=True)
    return 0 if result["messages"] > 0 else 1


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())

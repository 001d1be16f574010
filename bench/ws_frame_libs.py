"""Frame-layer throughput of the two candidate WebSocket libraries, in-process.

Parses masked client frames and serialises the echo with each library's
sans-I/O API; no sockets, so it measures only the frame code bascule would
run per message.  Used to choose the library (docs/websocket.md):

    python bench/ws_frame_libs.py
"""

from __future__ import annotations

import os
import struct
import time

from websockets.frames import Frame
from websockets.protocol import Protocol, Side, State
from wsproto.connection import Connection, ConnectionType
from wsproto.events import BytesMessage, TextMessage


def masked_frame(payload: bytes, opcode: int) -> bytes:
    """A client (masked) frame carrying ``payload``."""
    key = os.urandom(4)
    n = len(payload)
    if n < 126:
        head = bytes([0x80 | opcode, 0x80 | n])
    elif n < 65536:
        head = bytes([0x80 | opcode, 0x80 | 126]) + struct.pack("!H", n)
    else:
        head = bytes([0x80 | opcode, 0x80 | 127]) + struct.pack("!Q", n)
    masked = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return head + key + masked


def bench_websockets(batch: bytes, rounds: int, text: bool) -> float:
    proto = Protocol(Side.SERVER, state=State.OPEN, max_size=None)
    start = time.perf_counter()
    for _ in range(rounds):
        proto.receive_data(batch)
        for frame in proto.events_received():
            if not isinstance(frame, Frame):
                continue
            if text:
                proto.send_text(frame.data)
            else:
                proto.send_binary(frame.data)
        proto.data_to_send()
    return time.perf_counter() - start


def bench_wsproto(batch: bytes, rounds: int, text: bool) -> float:  # noqa: ARG001
    conn = Connection(ConnectionType.SERVER)
    start = time.perf_counter()
    for _ in range(rounds):
        conn.receive_data(batch)
        for event in conn.events():
            if isinstance(event, TextMessage):
                conn.send(TextMessage(data=event.data))
            elif isinstance(event, BytesMessage):
                conn.send(BytesMessage(data=event.data))
    return time.perf_counter() - start


def main() -> None:
    per_batch = 10
    for size, messages in ((32, 100_000), (65536, 2_000)):
        text = size == 32
        batch = masked_frame(b"x" * size, 1 if text else 2) * per_batch
        rounds = messages // per_batch
        for name, run in (("websockets", bench_websockets), ("wsproto", bench_wsproto)):
            best = min(run(batch, rounds, text) for _ in range(3))
            print(f"{name:10} {size:6} B: {messages / best:12,.0f} messages/s (parse + echo)")


if __name__ == "__main__":
    main()

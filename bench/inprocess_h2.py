"""User-space cost of one HTTP/2 request: H2Driver fed pre-encoded frames, no socket.

    python bench/inprocess_h2.py [--requests 100000] [--repeat 5]

Like ``bench/inprocess.py`` for HTTP/2, in the shape of ``h2load -c16 -m10``: 16
connections (prior knowledge), each fed 10 ``GET /`` HEADERS frames per read, and a
connection WINDOW_UPDATE for the bodies it got back. The client bytes are encoded
before the clock starts (by the ``h2`` package, as a client would, so requests after
the first are HPACK dynamic-table indices); the loop then runs the request tasks
(``bench.app:app``), whose frames go to a transport that only counts writes. What
is measured is bascule's HTTP/2 engine, its driver, the ASGI cycle and the loop's
task scheduling, per request, without the kernel. Best of ``--repeat`` runs, in µs.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import h2.config
import h2.connection
from inprocess import CountingTransport, best_of

from bascule.aio.state import ServerState
from bascule.aio.transport import HttpDriver
from bascule.config import Config

ROOT = Path(__file__).resolve().parent.parent

CONNECTIONS = 16
STREAMS = 10  # requests per read (h2load -m10)
BODY = 13  # bench.app's body: each response takes this much connection window


class SwitchingTransport(CountingTransport):
    """A counting transport that lets the HTTP/1.1 driver hand over to HTTP/2."""

    def __init__(self) -> None:
        super().__init__()
        self.protocol: Any = None
        self.sent = 0

    def write(self, data: Any) -> None:
        self.writes += 1
        self.sent += len(data)

    def writelines(self, list_of_data: Any) -> None:
        self.writes += 1
        self.sent += sum(len(data) for data in list_of_data)

    def set_protocol(self, protocol: Any) -> None:
        self.protocol = protocol

    def get_protocol(self) -> Any:
        return self.protocol


_READS: dict[int, list[bytes]] = {}


def client_reads(rounds: int) -> list[bytes]:
    """What one h2load-like client sends: the preface, then ``rounds`` reads of 10 requests.

    Every connection sends the same bytes (its own HPACK state starts empty): they
    are encoded once per run length and shared.
    """
    if rounds not in _READS:
        _READS[rounds] = _encode_reads(rounds)
    return _READS[rounds]


def _encode_reads(rounds: int) -> list[bytes]:
    client = h2.connection.H2Connection(
        h2.config.H2Configuration(client_side=True, header_encoding=None)
    )
    client.initiate_connection()
    first = client.data_to_send()
    reads = []
    credit = (STREAMS * BODY).to_bytes(4, "big")
    window_update = b"\x00\x00\x04\x08\x00\x00\x00\x00\x00" + credit
    headers = [
        (b":method", b"GET"),
        (b":path", b"/"),
        (b":scheme", b"http"),
        (b":authority", b"127.0.0.1:8000"),
        (b"user-agent", b"h2load nghttp2/1.52.0"),
    ]
    for _ in range(rounds):
        for _ in range(STREAMS):
            client.send_headers(client.get_next_available_stream_id(), headers, end_stream=True)
        reads.append(client.data_to_send() + window_update)
    reads[0] = first + reads[0]
    return reads


async def measure(requests: int, app: Any, config: Config) -> float:
    """µs per request over ``requests`` requests (after a warm-up)."""
    loop = asyncio.get_running_loop()
    state = ServerState(config, app, loop)
    rounds = max(1, requests // (CONNECTIONS * STREAMS)) + 2
    conns = []
    for _ in range(CONNECTIONS):
        driver, transport = HttpDriver(state), SwitchingTransport()
        transport.protocol = driver
        driver.connection_made(transport)
        conns.append((transport, client_reads(rounds)))
    for turn in range(rounds):
        if turn == 2:
            start = time.perf_counter()
        for transport, reads in conns:
            transport.protocol.data_received(reads[turn])
        for _ in range(3):  # the request tasks run, respond, and the batch is written
            await asyncio.sleep(0)
    elapsed = time.perf_counter() - start
    if any(transport.closing for transport, _ in conns):
        raise RuntimeError("a connection was closed: the benchmark's input is wrong")
    # each response is at least a DATA frame (9 + 13 bytes) and a HEADERS frame
    least = rounds * CONNECTIONS * STREAMS * (9 + BODY + 9)
    if sum(transport.sent for transport, _ in conns) < least:
        raise RuntimeError("fewer response bytes than responses: requests went unanswered")
    return elapsed / ((rounds - 2) * CONNECTIONS * STREAMS) * 1e6


def main() -> None:
    best_of(measure, __doc__ or "", 100_000, True, "HTTP/2 request")


if __name__ == "__main__":
    main()

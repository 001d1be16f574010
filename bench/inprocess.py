"""User-space cost of one HTTP/1.1 request: HttpDriver fed through a transport with no socket.

    python bench/inprocess.py [--requests 200000] [--repeat 5] [--app bench.app:app]
                              [--server bascule|sketch]

64 drivers (as wrk -c64) each get ``GET /`` in one ``data_received``; the loop then
runs the request tasks (``--app``, by default ``bench.app:app``), whose responses go to a
transport that only counts writes. ``--server sketch`` drives ``bench/sketch.py``'s
protocol the same way instead, for the distance to the issue's sketch on any app. No
system call is made, so what is measured is the server's own work per request plus the
event loop's task scheduling: the part a code change can move, without the kernel's share
and the noise of a shared machine. Best of ``--repeat`` runs, in µs per request. Run it on
the compiled build (the default in a checkout) or on the pure-Python one (a copy of
``src/`` without the ``.so`` files on PYTHONPATH).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, Protocol

from bascule.aio.state import ServerState
from bascule.aio.transport import HttpDriver
from bascule.config import Config
from bascule.main import loop_factory

ROOT = Path(__file__).resolve().parent.parent
REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8000\r\n\r\n"
CONNECTIONS = 64


class CountingTransport(asyncio.Transport):
    """A transport that writes nowhere and counts the writes."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0
        self.closing = False

    def write(self, data: Any) -> None:
        self.writes += 1

    def writelines(self, list_of_data: Any) -> None:
        self.writes += 1

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        peers = {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8000)}
        return peers.get(name, default)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0


#: Loop iterations a round may take for its responses (a framework's app awaits more
#: than once per request); a round that needs more is an error, not a hang.
MAX_STEPS = 64


class Sink(Protocol):
    """What ``measure`` drives: bascule's ``HttpDriver`` or the sketch's protocol."""

    def connection_made(self, transport: Any) -> None: ...

    def data_received(self, data: bytes) -> None: ...


async def measure_with(make: Callable[[], Sink], requests: int) -> float:
    """µs per request over ``requests`` requests (after a warm-up) through ``make()``'s."""
    pairs = []
    for _ in range(CONNECTIONS):
        driver, transport = make(), CountingTransport()
        driver.connection_made(transport)
        pairs.append((driver, transport))
    rounds = max(1, requests // CONNECTIONS)
    for turn in range(rounds + 2):
        if turn == 2:
            start = time.perf_counter()
        for driver, _ in pairs:
            driver.data_received(REQUEST)
        expected = (turn + 1) * CONNECTIONS
        await asyncio.sleep(0)  # the request tasks run and respond
        await asyncio.sleep(0)
        for _ in range(MAX_STEPS):
            if sum(transport.writes for _, transport in pairs) >= expected:
                break
            await asyncio.sleep(0)
    elapsed = time.perf_counter() - start
    answered = sum(transport.writes for _, transport in pairs)
    if answered != (rounds + 2) * CONNECTIONS:
        raise RuntimeError(f"{answered} responses for {(rounds + 2) * CONNECTIONS} requests")
    return elapsed / (rounds * CONNECTIONS) * 1e6


async def measure(requests: int, app: Any, config: Config) -> float:
    """bascule: one ``HttpDriver`` per connection, one server state."""
    state = ServerState(config, app, asyncio.get_running_loop())
    return await measure_with(lambda: HttpDriver(state), requests)


async def measure_sketch(requests: int, app: Any, config: Config) -> float:
    """The issue's sketch (bench/sketch.py): its protocol, fed the same way."""
    del config  # the sketch has no settings
    from sketch import Clock, SketchProtocol  # noqa: PLC0415 (only for --server sketch)

    clock, loop = Clock(), asyncio.get_running_loop()
    return await measure_with(lambda: SketchProtocol(app, clock, loop), requests)


Measure = Callable[[int, Any, Config], Coroutine[Any, Any, float]]


def best_of(measure: Measure, doc: str, requests: int, http2: bool, what: str) -> None:
    """Parse the options, run ``measure`` on fresh loops, print the best."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--requests", type=int, default=requests)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--app", default="bench.app:app", help="module:attribute")
    if not http2:
        parser.add_argument("--server", choices=("bascule", "sketch"), default="bascule")
    args = parser.parse_args()
    if getattr(args, "server", "bascule") == "sketch":
        measure = measure_sketch
        what += " (sketch)"
    logging.getLogger("bascule.access").disabled = True  # as --no-access-log does
    sys.path.insert(0, str(ROOT))
    module, _, attribute = args.app.partition(":")
    app = getattr(importlib.import_module(module), attribute)
    config = Config(app=args.app, http2=http2, access_log=False).validate()
    new_loop = loop_factory(config.loop)
    results = []
    for _ in range(args.repeat):
        loop = new_loop()
        try:
            results.append(loop.run_until_complete(measure(args.requests, app, config)))
        finally:
            loop.close()
    from bascule._build import build_name  # noqa: PLC0415 (after bascule is imported)

    print(f"{min(results):.2f} µs per {what}, best of {args.repeat} ({build_name()})")


def main() -> None:
    best_of(measure, __doc__ or "", 200_000, False, "request")


if __name__ == "__main__":
    main()

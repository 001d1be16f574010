"""Coalesce writes: everything queued during one event-loop turn goes out in one call.

Protocols that produce many small frames per read (HTTP/2 responses, WebSocket
echoes) would otherwise pay one ``send`` system call per frame.  Past
``WRITE_AT_ONCE`` queued bytes the batch is written at once, so the delay and
the memory stay bounded.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

#: Queued output written at once rather than at the end of the loop turn.
WRITE_AT_ONCE = 64 * 1024


class Writable(Protocol):
    """What a WriteBatch writes to: a transport, or an HTTP/2 stream carrying a WebSocket."""

    def write(self, data: bytes) -> None: ...
    def writelines(self, chunks: list[bytes]) -> None: ...
    def is_closing(self) -> bool: ...


class WriteBatch:
    """A per-connection output queue flushed once per loop turn."""

    __slots__ = ("_chunks", "_loop", "_scheduled", "_size", "_transport")

    def __init__(self, loop: asyncio.AbstractEventLoop, transport: Writable) -> None:
        self._loop = loop
        self._transport = transport
        self._chunks: list[bytes] = []
        self._size = 0
        self._scheduled = False

    def write(self, data: bytes) -> None:
        """Queue ``data`` (empty data is ignored)."""
        if not data:
            return
        self._chunks.append(data)
        self._size += len(data)
        if self._size >= WRITE_AT_ONCE:
            self.flush()
        elif not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self.flush)

    def flush(self) -> None:
        """Write what is queued now (before a close, for instance)."""
        self._scheduled = False
        chunks = self._chunks
        if not chunks:
            return
        transport = self._transport
        if not transport.is_closing():
            if len(chunks) == 1:
                transport.write(chunks[0])
            else:
                transport.writelines(chunks)
        chunks.clear()
        self._size = 0

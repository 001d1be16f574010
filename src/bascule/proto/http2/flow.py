"""Outbound body scheduling: per-stream queues of bytes waiting for flow-control window.

Bounded by the app: ``send()`` waits while its stream has anything queued, so
each stream holds at most the one message the app is sending.
"""

from bascule.proto.events import Headers


class _Entry:
    __slots__ = ("data", "end", "trailers")

    def __init__(self, data: bytes, end: bool, trailers: Headers | None) -> None:
        self.data = data
        self.end = end
        self.trailers = trailers


class OutboundQueue:
    """Body bytes (and trailers) per stream, in order."""

    def __init__(self) -> None:
        self._queues: dict[int, list[_Entry]] = {}

    def push(self, stream_id: int, data: bytes, end: bool) -> None:
        self._queues.setdefault(stream_id, []).append(_Entry(data, end, None))

    def push_trailers(self, stream_id: int, trailers: Headers) -> None:
        self._queues.setdefault(stream_id, []).append(_Entry(b"", True, trailers))

    def peek(self, stream_id: int) -> tuple[bytes, bool, Headers | None] | None:
        entries = self._queues.get(stream_id)
        if not entries:
            self._queues.pop(stream_id, None)
            return None
        entry = entries[0]
        return entry.data, entry.end, entry.trailers

    def pop(self, stream_id: int, size: int) -> None:
        """Remove ``size`` bytes from the front entry (the whole entry once it is empty)."""
        entries = self._queues[stream_id]
        entry = entries[0]
        if size < len(entry.data):
            entry.data = entry.data[size:]
        else:
            entries.pop(0)
            if not entries:
                del self._queues[stream_id]

    def has(self, stream_id: int) -> bool:
        """Something (bytes, an end, trailers) is queued for ``stream_id``."""
        return stream_id in self._queues

    def drop(self, stream_id: int) -> None:
        self._queues.pop(stream_id, None)

    def pending(self, stream_id: int) -> int:
        queue = self._queues.get(stream_id)
        if queue is None:  # the common answer: nothing queued, and no iterator built
            return 0
        return sum(len(e.data) + (1 if e.end or e.trailers else 0) for e in queue)

    def streams(self) -> list[int]:
        return list(self._queues)

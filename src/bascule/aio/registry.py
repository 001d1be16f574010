"""The set of a server's open connections, which reports connections leaving it.

Not compiled with mypyc: it subclasses ``set``, which a native class cannot.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeAlias

if TYPE_CHECKING:
    from bascule.aio.h2 import H2Driver
    from bascule.aio.transport import HttpDriver
    from bascule.aio.websocket import WebSocketSession

#: One open client connection, whichever protocol now drives it.
Connection: TypeAlias = "HttpDriver | WebSocketSession | H2Driver"


class ConnectionRegistry(set[Connection]):
    """``ServerState.connections``: a set that reports connections leaving it.

    Every driver discards itself in ``connection_lost``; ``on_discard`` (the
    acceptor's, while accepting is paused) then learns that a descriptor may
    have come free, without the drivers knowing about it.
    """

    __slots__ = ("on_discard",)

    def __init__(self) -> None:
        super().__init__()
        self.on_discard: Callable[[], None] | None = None

    def discard(self, element: object) -> None:
        super().discard(element)
        callback = self.on_discard
        if callback is not None:
            callback()

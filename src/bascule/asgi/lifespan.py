"""The ASGI lifespan protocol as a table of (phase, message type) → outcome.

The driver (``bascule.aio.lifespan``) sends ``lifespan.startup`` then, at
shutdown, ``lifespan.shutdown``, and feeds whatever the app sends back to
``LifespanCycle.on_message``; any pair missing from the table is an
:class:`AppMessageError`.  Nothing here awaits or logs.
"""

from enum import Enum
from typing import Any

from bascule.errors import AppMessageError


class Phase(Enum):
    """Where the lifespan protocol is."""

    STARTING = "starting"  # lifespan.startup sent, waiting for the app's answer
    STARTED = "started"
    START_FAILED = "startup failed"
    STOPPING = "stopping"  # lifespan.shutdown sent
    STOPPED = "stopped"
    STOP_FAILED = "shutdown failed"


TRANSITIONS: dict[tuple[Phase, str], Phase] = {
    (Phase.STARTING, "lifespan.startup.complete"): Phase.STARTED,
    (Phase.STARTING, "lifespan.startup.failed"): Phase.START_FAILED,
    (Phase.STOPPING, "lifespan.shutdown.complete"): Phase.STOPPED,
    (Phase.STOPPING, "lifespan.shutdown.failed"): Phase.STOP_FAILED,
}


class LifespanCycle:
    """Tracks the lifespan exchange; ``message`` keeps the app's failure text."""

    __slots__ = ("message", "phase")

    def __init__(self) -> None:
        self.phase = Phase.STARTING
        self.message = ""

    def begin_shutdown(self) -> None:
        """Move to STOPPING; the driver then sends ``lifespan.shutdown``."""
        if self.phase is not Phase.STARTED:
            raise AppMessageError(f"lifespan shutdown requested while {self.phase.value}")
        self.phase = Phase.STOPPING

    def on_message(self, message: Any) -> Phase:
        """Apply one message from the app; returns the new phase."""
        mtype = message.get("type") if isinstance(message, dict) else None
        new = TRANSITIONS.get((self.phase, mtype)) if isinstance(mtype, str) else None
        if new is None:
            raise AppMessageError(
                f"lifespan: unexpected message {mtype!r} while {self.phase.value}"
            )
        if new in (Phase.START_FAILED, Phase.STOP_FAILED):
            text = message.get("message", "")
            self.message = text if isinstance(text, str) else repr(text)
        self.phase = new
        return new

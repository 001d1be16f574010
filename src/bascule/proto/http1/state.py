"""The HTTP/1.1 connection's state machines, as data.

A server connection runs two machines side by side, one per direction:

* **their** side (the client's request): head parsed → body → complete.  llhttp
  owns that machine (it parses ahead when requests are pipelined); the reader
  turns its callbacks into a queue of events, and the connection hands out one
  request's events at a time (``PAUSED`` until our response is ``DONE``).
* **our** side (the response): ``IDLE`` → ``ResponseHead`` → ``SEND_BODY`` →
  ``BodyEnd`` → ``DONE``.  Interim responses (1xx) keep it ``IDLE``.

When both are ``DONE`` the cycle is over: the connection either starts the
next cycle (keep-alive) or must close.  ``ERROR`` is absorbing: after a
protocol error nothing more may be sent or received.  Each event we send is
allowed in exactly one state (``OUR_TRANSITIONS``: event type → the state it may
be sent in, the state it leads to); any other (state, event) pair is a
:class:`LocalProtocolError`.
"""

from enum import IntEnum
from typing import Final

from bascule.proto.events import BodyChunk, BodyEnd, InformationalResponse, ResponseHead


class State(IntEnum):
    """State of one direction of an HTTP/1.1 exchange."""

    IDLE = 0
    SEND_BODY = 1
    DONE = 2
    ERROR = 3


IDLE: Final = State.IDLE
SEND_BODY: Final = State.SEND_BODY
DONE: Final = State.DONE
ERROR: Final = State.ERROR

#: Our (server) side: event type → (the one state it may be sent in, where it leads).
#: Keyed by the type alone: one lookup of a type per event sent, no tuple to hash.
OUR_TRANSITIONS: Final[dict[type, tuple[State, State]]] = {
    InformationalResponse: (IDLE, IDLE),
    ResponseHead: (IDLE, SEND_BODY),
    BodyChunk: (SEND_BODY, SEND_BODY),
    BodyEnd: (SEND_BODY, DONE),
}

"""Sans-I/O protocol code: bytes in, events out; events in, bytes out.

Nothing in this package touches a socket, the clock, logging or asyncio
(``tests/test_layering.py`` enforces it).
"""

from bascule.proto.errors import LocalProtocolError, ProtocolError, RemoteProtocolError
from bascule.proto.events import (
    BodyChunk,
    BodyEnd,
    InformationalResponse,
    RequestReceived,
    ResponseHead,
)
from bascule.proto.http1.connection import NEED_DATA, PAUSED, H1Connection
from bascule.proto.limits import Http1Limits

__all__ = [
    "NEED_DATA",
    "PAUSED",
    "BodyChunk",
    "BodyEnd",
    "H1Connection",
    "Http1Limits",
    "InformationalResponse",
    "LocalProtocolError",
    "ProtocolError",
    "RemoteProtocolError",
    "RequestReceived",
    "ResponseHead",
]

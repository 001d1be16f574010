"""atheris target: WebSocket frame layer (WsConnection), with and without
permessage-deflate, small and default size limits, an app that reads slowly
(``unread``/``room``), sends of its own, and EOF.

Crash = any exception (the frame layer reports every error as a WsClosed
event with a close code), more than one WsClosed, a message after the close,
or a failure close code other than 1002/1007/1009 (or ours, once we
started closing).
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bascule.proto.limits import WsLimits
from bascule.proto.ws.connection import WsClosed, WsConnection, WsEvent, WsMessage, WsPong
from bascule.proto.ws.deflate import negotiate
from fuzz._bytes import Choices, run

FAILURE_CODES = {1002, 1007, 1009}


def test_one_input(data: bytes) -> None:
    choices = Choices(data)
    mode = choices.byte()
    app = choices.byte()
    limits = WsLimits(max_size=300) if mode & 1 else WsLimits()
    extensions = negotiate(["permessage-deflate"], True)[1] if mode & 2 else []
    conn = WsConnection(limits, extensions)
    cutter = Choices(data[::-1])
    events: list[WsEvent] = []
    unread = 0
    allowed = set(FAILURE_CODES)
    for i, piece in enumerate(cutter.pieces(choices.rest(), (mode >> 2) & 7)):
        room = -1 if not app & 1 else (app >> 1) % 4
        events += conn.receive_data(piece, unread=unread, room=room)
        if app & 0x10:
            unread = (unread + 1) % 3
        for _ in range(3):  # the app reads: resume what was held back
            if not conn.buffered:
                break
            events += conn.resume(unread=0, room=-1)
        if app & 0x20 and conn.open:
            conn.send_message(f"r\u00e9ponse {i}" if i % 2 else b"\x00" * i)
        if app & 0x40 and i == 1:
            conn.send_close(1000, "bye")
            allowed.add(1000)  # then a failure is reported with our own close code
        conn.data_to_send()
    if mode & 0x80:
        events += conn.receive_eof()
    conn.data_to_send()
    closes = [e for e in events if isinstance(e, WsClosed)]
    assert len(closes) <= 1, closes
    if closes:
        after = events[events.index(closes[0]) + 1 :]
        assert not after, ("events after the close", after)
        if not closes[0].by_peer:
            assert closes[0].code in allowed, closes[0]
    for event in events:
        assert isinstance(event, WsMessage | WsPong | WsClosed), event


if __name__ == "__main__":
    run(test_one_input)

"""atheris target: HTTP/1.1 request parsing (H1Connection).

Crash = any exception other than RemoteProtocolError out of receive_data /
next_event / receive_eof, or bytes that give different complete requests
fed whole and cut in two (a desync: what request smuggling needs).
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bascule.proto import NEED_DATA, PAUSED, H1Connection, Http1Limits
from bascule.proto.errors import RemoteProtocolError
from bascule.proto.events import BodyChunk, BodyEnd, RequestReceived, ResponseHead
from fuzz._bytes import Choices, run

SMALL = Http1Limits(
    max_header_size=300, max_target_size=64, max_header_count=6, max_body_size=64, max_pipelined=3
)
Outcome = tuple[list[tuple[object, ...]], str]


def serve(pieces: list[bytes], limits: Http1Limits | None) -> Outcome:
    """Serve ``pieces`` as the driver does; the events and how it ended."""
    conn = H1Connection(limits, accept_upgrades=frozenset({b"websocket", b"h2c"}))
    seen: list[tuple[object, ...]] = []
    try:
        for piece in pieces:
            conn.receive_data(piece)
            while True:
                event = conn.next_event()
                if event is NEED_DATA:
                    break
                if event is PAUSED:
                    conn.send(ResponseHead(1, 200, [(b"content-length", b"0")]))
                    conn.send(BodyEnd(1))
                    if not conn.keep_alive:
                        return seen, "close"
                    conn.start_next_cycle()
                    continue
                if isinstance(event, RequestReceived):
                    seen.append(("request", event.method, event.path, event.query, event.headers))
                    if event.upgrade:
                        return seen, "upgrade"
                elif isinstance(event, BodyChunk):
                    if seen and seen[-1][0] == "body":
                        seen[-1] = ("body", seen[-1][1] + event.data)  # type: ignore[operator]
                    else:
                        seen.append(("body", event.data))
                else:
                    assert isinstance(event, BodyEnd), event
                    seen.append(("end",))
        conn.receive_eof()
    except RemoteProtocolError as exc:
        status = exc.status_hint
    else:
        return seen, "eof"
    assert 400 <= status <= 599, status
    return seen, "error"


def test_one_input(data: bytes) -> None:
    choices = Choices(data)
    flags = choices.byte()
    limits = SMALL if flags & 1 else None
    cut_count = (flags >> 1) & 7
    cuts = [choices.number(2) for _ in range(cut_count)]
    payload = choices.rest()
    whole, whole_end = serve([payload], limits)
    if not cut_count:
        return
    pieces = Choices(b"".join(c.to_bytes(2, "big") for c in cuts)).pieces(payload, cut_count)
    cut, cut_end = serve(pieces, limits)
    if limits is SMALL and "error" in (whole_end, cut_end):
        return  # the header-size limit counts per read: where it trips depends on the cuts
    assert cut_end == whole_end, (whole_end, cut_end)
    if whole_end == "error":
        # Cut, the start of a request may be handed out before the bytes that break it.
        assert cut[: len(whole)] == whole, (whole, cut)
        assert ("end",) not in cut[len(whole) :], (whole, cut)
    else:
        assert cut == whole, (whole, cut)


if __name__ == "__main__":
    run(test_one_input)

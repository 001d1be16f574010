"""WebSocket frames (WsConnection), property-based.

Messages of every length class (0, 125, 126, 65535, 65536 and more), text
and binary, fragmented, with pings and pongs between the fragments, masked
with random keys and cut at random points, come out as the messages sent;
every invalid frame fails the connection with its close code, after the
messages before it.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bascule.proto.limits import WsLimits
from bascule.proto.ws.connection import WsConnection
from tests.fuzz.strategies import FUZZ, FUZZ_EACH
from tests.support.ws import (
    BINARY,
    CLOSE,
    CONT,
    PING,
    PONG,
    RSV1,
    RSV2,
    RSV3,
    TEXT,
    client_frame,
    close_payload,
    describe,
    feed,
)

LENGTHS = [0, 1, 125, 126, 127, 65535, 65536, 70001]
masks = st.binary(min_size=4, max_size=4)


@dataclass(frozen=True)
class Message:
    text: bool
    payload: bytes
    cuts: tuple[int, ...]  # fragment boundaries (byte offsets, may split a UTF-8 character)
    controls: tuple[tuple[int, bytes], ...]  # (PING or PONG, payload) after each fragment

    @property
    def value(self) -> str | bytes:
        return self.payload.decode() if self.text else self.payload


@st.composite
def payloads(draw: st.DrawFn, text: bool) -> bytes:
    size = draw(st.sampled_from(LENGTHS) | st.integers(0, 300))
    if text:
        base = draw(st.text(min_size=1, max_size=20)).encode()
        data = base * (size // len(base) + 1)
        return data[:size].decode("utf-8", "ignore").encode()  # whole characters only
    seed = draw(st.binary(min_size=1, max_size=16))
    return (seed * (size // len(seed) + 1))[:size]


@st.composite
def messages(draw: st.DrawFn) -> Message:
    text = draw(st.booleans())
    payload = draw(payloads(text))
    cuts = tuple(sorted(set(draw(st.lists(st.integers(0, len(payload)), max_size=3)))))
    controls = tuple(
        draw(
            st.lists(
                st.tuples(st.sampled_from([PING, PONG]), st.binary(max_size=125)),
                max_size=len(cuts),
            )
        )
    )
    return Message(text, payload, cuts, controls)


def encode(message: Message, mask: bytes) -> bytes:
    bounds = [0, *message.cuts, len(message.payload)]
    pieces = [message.payload[a:b] for a, b in itertools.pairwise(bounds)]
    out = []
    for i, piece in enumerate(pieces):
        opcode = (TEXT if message.text else BINARY) if i == 0 else CONT
        out.append(client_frame(opcode, piece, fin=i == len(pieces) - 1, mask=mask))
        if i < len(message.controls):
            kind, data = message.controls[i]
            out.append(client_frame(kind, data, mask=mask))
    return b"".join(out)


def expected(message: Message) -> list[tuple[object, ...]]:
    pongs = [("pong", data) for kind, data in message.controls if kind == PONG]
    return [*pongs, ("message", message.value)]


def random_cuts(data: bytes, cuts: Sequence[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    bounds = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


@FUZZ
@given(
    st.lists(messages(), min_size=1, max_size=4),
    masks,
    st.lists(st.integers(0, 1 << 20), max_size=6),
)
def test_messages_any_length_fragmented_cut_anywhere(
    msgs: list[Message], mask: bytes, cuts: list[int]
) -> None:
    data = b"".join(encode(m, mask) for m in msgs)
    fed = feed(random_cuts(data, cuts))
    assert describe(fed.events) == [item for m in msgs for item in expected(m)]
    # Every ping answered with a pong carrying its payload, in order; nothing else written.
    pings = [data for m in msgs for kind, data in m.controls if kind == PING]
    assert [(f.opcode, f.payload) for f in fed.written.frames] == [(PONG, d) for d in pings]
    assert not fed.written.eof
    assert fed.conn.open


@FUZZ
@given(st.binary(max_size=125), masks, st.lists(st.integers(0, 200), max_size=3))
def test_peer_close_is_answered(reason_seed: bytes, mask: bytes, cuts: list[int]) -> None:
    reason = reason_seed.decode("utf-8", "replace").encode()[:123]
    frame = client_frame(CLOSE, close_payload(1000, reason), mask=mask)
    fed = feed(random_cuts(frame, cuts))
    assert describe(fed.events) == [("closed", 1000, True)]
    assert fed.written.frames[-1].opcode == CLOSE
    assert fed.written.frames[-1].close_code == 1000


# invalid frames ------------------------------------------------------------------------

SMALL = 200  # max_size for the "too big" cases (above 125: a long ping is 1002, not 1009)

#: (description, frames that break the protocol, close code the server must send)
BAD: list[tuple[str, bytes, int]] = [
    ("unmasked text", client_frame(TEXT, b"hi", masked=False), 1002),
    ("unmasked ping", client_frame(PING, b"", masked=False), 1002),
    *[(f"reserved opcode {op:#x}", client_frame(op, b"x"), 1002) for op in (3, 7, 0xB, 0xF)],
    ("rsv1 without extension", client_frame(TEXT, b"hi", rsv=RSV1), 1002),
    ("rsv2", client_frame(BINARY, b"hi", rsv=RSV2), 1002),
    ("rsv3", client_frame(BINARY, b"hi", rsv=RSV3), 1002),
    ("ping of 126 bytes", client_frame(PING, b"p" * 126), 1002),
    ("fragmented ping", client_frame(PING, b"p", fin=False), 1002),
    ("fragmented close", client_frame(CLOSE, close_payload(1000), fin=False), 1002),
    ("continuation first", client_frame(CONT, b"x"), 1002),
    (
        "new message inside a fragmented one",
        client_frame(TEXT, b"a", fin=False) + client_frame(TEXT, b"b"),
        1002,
    ),
    ("invalid utf-8", client_frame(TEXT, b"ok \xff"), 1007),
    ("overlong utf-8", client_frame(TEXT, b"\xc0\xaf"), 1007),
    ("surrogate utf-8", client_frame(TEXT, b"\xed\xa0\x80"), 1007),
    (
        "invalid utf-8 across fragments",
        client_frame(TEXT, b"\xe2\x82", fin=False) + client_frame(CONT, b"\x28"),
        1007,
    ),
    (
        "truncated utf-8 at the end",
        client_frame(TEXT, b"a", fin=False) + client_frame(CONT, b"\xe2\x82"),
        1007,
    ),
    ("close with 1 byte", client_frame(CLOSE, b"\x03"), 1002),
    *[
        (f"close code {c}", client_frame(CLOSE, close_payload(c)), 1002)
        for c in (0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000)
    ],
    ("close reason not utf-8", client_frame(CLOSE, close_payload(1000, b"\xff")), 1007),
    ("too big", client_frame(BINARY, b"x" * (SMALL + 1)), 1009),
    ("too big as 64-bit length", client_frame(BINARY, b"x" * 70000), 1009),
    (
        "too big in fragments",
        client_frame(TEXT, b"x" * 120, fin=False) + client_frame(CONT, b"y" * 120),
        1009,
    ),
]


@pytest.mark.parametrize(
    ("frames", "code"), [(f, c) for _, f, c in BAD], ids=[d for d, _, _ in BAD]
)
@FUZZ_EACH
@given(
    st.lists(st.binary(max_size=SMALL), max_size=3),
    st.binary(max_size=50),
    st.lists(st.integers(0, 1 << 17), max_size=4),
)
def test_invalid_frame_closes_with_its_code(
    frames: bytes, code: int, before: list[bytes], after: bytes, cuts: list[int]
) -> None:
    """Messages before the bad frame are delivered, then the close code, then EOF;
    whatever follows the bad frame is ignored."""
    data = b"".join(client_frame(BINARY, b) for b in before) + frames + after
    fed = feed(random_cuts(data, cuts), WsLimits(max_size=SMALL))
    assert describe(fed.events) == [
        *[("message", b) for b in before],
        ("closed", code, False),
    ]
    assert fed.written.ends_with_close(code)
    assert fed.conn.closed or not fed.conn.open


@FUZZ
@given(st.binary(max_size=600), st.lists(st.integers(0, 600), max_size=5), st.booleans())
def test_random_bytes_never_raise(data: bytes, cuts: list[int], eof: bool) -> None:
    """Garbage yields events or a close, never an exception; at most one close is reported."""
    conn = WsConnection(WsLimits(max_size=SMALL))
    fed = feed(random_cuts(data, cuts), conn=conn)
    events = fed.events + (conn.receive_eof() if eof else [])
    closes = [e for e in describe(events) if e[0] == "closed"]
    assert len(closes) <= 1
    if closes and not closes[0][2]:
        assert closes[0][1] in {1002, 1007, 1009}

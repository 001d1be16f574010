"""WsConnection: the WebSocket frame layer (RFC 6455 §5-§7), fed hand-made client frames.

Every frame-level test runs the same bytes whole, split at every offset and one
byte at a time (STYLE habit 7), and checks what the server wrote by parsing it
as a client would: unmasked frames, the close code, and EOF after the close.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bascule.proto.limits import WsLimits
from bascule.proto.ws.connection import WsClosed, WsConnection, WsMessage, WsPong
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
    Fed,
    client_close,
    client_frame,
    close_payload,
    describe,
    feed,
    parse_server_frames,
    ways_to_feed,
)

SMALL = WsLimits(max_size=10)


def all_ways(data: bytes, limits: WsLimits | None = None) -> list[tuple[str, Fed]]:
    """``data`` fed whole, split at every offset and byte by byte, each to a fresh connection."""
    return [(label, feed(pieces, limits)) for label, pieces in ways_to_feed(data)]


def assert_same_every_way(data: bytes, limits: WsLimits | None = None) -> Fed:
    """Feed ``data`` every way; all must give the same events and output. Returns 'whole'."""
    ways = all_ways(data, limits)
    _, whole = ways[0]
    for label, fed in ways[1:]:
        assert describe(fed.events) == describe(whole.events), label
        assert fed.written == whole.written, label
    return whole


# messages ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        (client_frame(TEXT, b"hello"), "hello"),
        (
            client_frame(TEXT, "h\u00e9llo \u2603 \U0001f600".encode()),
            "h\u00e9llo \u2603 \U0001f600",
        ),
        (client_frame(TEXT, b""), ""),
        (client_frame(BINARY, b"\x00\x01\xfe\xff"), b"\x00\x01\xfe\xff"),
        (client_frame(BINARY, b""), b""),
        (client_frame(BINARY, b"x" * 126), b"x" * 126),
        (client_frame(TEXT, b"y" * 300), "y" * 300),
    ],
    ids=["text", "text-multibyte", "text-empty", "binary", "binary-empty", "len-126", "len-300"],
)
def test_single_frame_message(frame: bytes, expected: str | bytes) -> None:
    fed = assert_same_every_way(frame)
    assert describe(fed.events) == [("message", expected)]
    assert type(fed.events[0]) is WsMessage
    assert type(fed.events[0].data) is type(expected)
    assert fed.written.frames == []
    assert not fed.written.eof
    assert fed.conn.open


def test_64_bit_length_message() -> None:
    payload = bytes(range(256)) * 300  # 76800 bytes: a 64-bit length field
    frame = client_frame(BINARY, payload)
    assert frame[1] & 0x7F == 127
    for pieces in ([frame], [frame[:5], frame[5:14], frame[14:]], [frame[:-1], frame[-1:]]):
        fed = feed(pieces)
        assert describe(fed.events) == [("message", payload)]
    chunks = [frame[i : i + 997] for i in range(0, len(frame), 997)]
    assert describe(feed(chunks).events) == [("message", payload)]


def test_several_messages_in_one_read() -> None:
    data = client_frame(TEXT, b"one") + client_frame(BINARY, b"two") + client_frame(TEXT, b"3")
    fed = assert_same_every_way(data)
    assert describe(fed.events) == [("message", "one"), ("message", b"two"), ("message", "3")]


@pytest.mark.parametrize(
    ("frames", "expected"),
    [
        (
            [client_frame(TEXT, b"he", fin=False), client_frame(CONT, b"llo")],
            "hello",
        ),
        (
            [
                client_frame(BINARY, b"\x00", fin=False),
                client_frame(CONT, b"", fin=False),
                client_frame(CONT, b"\x01\x02", fin=False),
                client_frame(CONT, b"\x03"),
            ],
            b"\x00\x01\x02\x03",
        ),
        (
            # a multi-byte character cut across fragments is valid UTF-8
            [
                client_frame(TEXT, b"caf\xc3", fin=False),
                client_frame(CONT, b"\xa9 \xe2\x98", fin=False),
                client_frame(CONT, b"\x83"),
            ],
            "caf\u00e9 \u2603",
        ),
        (
            [client_frame(TEXT, b"", fin=False), client_frame(CONT, b"")],
            "",
        ),
    ],
    ids=["text", "binary-with-empty", "utf8-across-fragments", "all-empty"],
)
def test_fragmented_message_reassembled(frames: list[bytes], expected: str | bytes) -> None:
    fed = assert_same_every_way(b"".join(frames))
    assert describe(fed.events) == [("message", expected)]
    assert fed.written.frames == []


def test_ping_inside_fragments_answered_and_message_assembled() -> None:
    data = (
        client_frame(TEXT, b"frag", fin=False)
        + client_frame(PING, b"are you there")
        + client_frame(CONT, b"men", fin=False)
        + client_frame(PONG, b"unsolicited")
        + client_frame(PING, b"")
        + client_frame(CONT, b"ted")
    )
    fed = assert_same_every_way(data)
    assert describe(fed.events) == [("pong", b"unsolicited"), ("message", "fragmented")]
    frames = fed.written.frames
    assert [(f.opcode, f.payload, f.fin) for f in frames] == [
        (PONG, b"are you there", True),
        (PONG, b"", True),
    ]
    assert not fed.written.eof


def test_ping_answered_with_same_payload() -> None:
    payload = bytes(range(125))  # the largest control payload
    fed = assert_same_every_way(client_frame(PING, payload))
    assert fed.events == []
    assert [(f.opcode, f.payload) for f in fed.written.frames] == [(PONG, payload)]


def test_pong_is_an_event() -> None:
    fed = assert_same_every_way(client_frame(PONG, b"beat"))
    assert describe(fed.events) == [("pong", b"beat")]
    assert type(fed.events[0]) is WsPong
    assert fed.written.frames == []


def test_mask_is_applied_with_any_key() -> None:
    for mask in (b"\x00\x00\x00\x00", b"\xff\xff\xff\xff", b"\x01\x02\x03\x04"):
        frame = client_frame(TEXT, b"masked payload", mask=mask)
        assert describe(feed([frame]).events) == [("message", "masked payload")]


# protocol errors: the close frame, then EOF -------------------------------------------


@dataclass
class Bad:
    """Bytes that must fail the connection with ``code``, after ``before`` events."""

    id: str
    data: bytes
    code: int
    limits: WsLimits | None = None
    before: tuple[tuple[object, ...], ...] = ()


START_TEXT = client_frame(TEXT, b"ab", fin=False)
START_BINARY = client_frame(BINARY, b"ab", fin=False)

BAD = [
    Bad("unmasked-text", client_frame(TEXT, b"hello world", masked=False), 1002),
    Bad("unmasked-binary", client_frame(BINARY, b"\x00" * 20, masked=False), 1002),
    Bad("unmasked-text-len-126", client_frame(TEXT, b"h" * 200, masked=False), 1002),
    Bad("unmasked-ping", client_frame(PING, b"p", masked=False), 1002),
    Bad("unmasked-close", client_frame(CLOSE, close_payload(1000), masked=False), 1002),
    Bad("rsv1", client_frame(TEXT, b"x", rsv=RSV1), 1002),
    Bad("rsv2", client_frame(TEXT, b"x", rsv=RSV2), 1002),
    Bad("rsv3", client_frame(BINARY, b"x", rsv=RSV3), 1002),
    Bad("rsv-all", client_frame(BINARY, b"x", rsv=RSV1 | RSV2 | RSV3), 1002),
    Bad("rsv1-ping", client_frame(PING, b"x", rsv=RSV1), 1002),
    *[Bad(f"opcode-{op:x}", client_frame(op, b"x"), 1002) for op in (3, 4, 5, 6, 7)],
    *[Bad(f"opcode-{op:x}", client_frame(op, b"x"), 1002) for op in (0xB, 0xC, 0xD, 0xE, 0xF)],
    Bad("ping-126", client_frame(PING, b"p" * 126), 1002),
    Bad("pong-126", client_frame(PONG, b"p" * 126), 1002),
    Bad("close-126", client_frame(CLOSE, close_payload(1000, b"r" * 124)), 1002),
    Bad("fragmented-ping", client_frame(PING, b"p", fin=False), 1002),
    Bad("fragmented-close", client_frame(CLOSE, close_payload(1000), fin=False), 1002),
    Bad("continuation-first", client_frame(CONT, b"x"), 1002),
    Bad("continuation-first-unfinished", client_frame(CONT, b"x", fin=False), 1002),
    Bad(
        "continuation-after-message",
        client_frame(TEXT, b"hi") + client_frame(CONT, b"x"),
        1002,
        before=(("message", "hi"),),
    ),
    Bad("text-while-fragmented", START_TEXT + client_frame(TEXT, b"x"), 1002),
    Bad("binary-while-fragmented", START_TEXT + client_frame(BINARY, b"x"), 1002),
    Bad("text-start-while-fragmented", START_BINARY + client_frame(TEXT, b"x", fin=False), 1002),
    Bad("bad-utf8", client_frame(TEXT, b"abc\xffdef"), 1007),
    Bad("bad-utf8-surrogate", client_frame(TEXT, b"\xed\xa0\x80"), 1007),
    Bad("bad-utf8-overlong", client_frame(TEXT, b"\xc0\xaf"), 1007),
    Bad("truncated-utf8-at-end", client_frame(TEXT, b"caf\xc3"), 1007),
    Bad("bad-utf8-final-fragment", START_TEXT + client_frame(CONT, b"\xff"), 1007),
    Bad("bad-utf8-middle-fragment", START_TEXT + client_frame(CONT, b"\xff", fin=False), 1007),
    Bad(
        "truncated-utf8-final-fragment",
        START_TEXT + client_frame(CONT, b"\xc3", fin=False) + client_frame(CONT, b""),
        1007,
    ),
    Bad("too-big", client_frame(BINARY, b"x" * 11), 1009, SMALL),
    Bad("too-big-text", client_frame(TEXT, b"x" * 11), 1009, SMALL),
    Bad(
        "too-big-fragmented",
        client_frame(BINARY, b"x" * 6, fin=False) + client_frame(CONT, b"x" * 5),
        1009,
        SMALL,
    ),
    Bad(
        "too-big-many-fragments",
        b"".join(client_frame(BINARY if i == 0 else CONT, b"xy", fin=False) for i in range(6)),
        1009,
        SMALL,
    ),
    *[
        Bad(f"close-code-{code}", client_close(code), 1002)
        for code in (0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535)
    ],
    Bad("close-payload-1-byte", client_frame(CLOSE, b"\x03"), 1002),
    Bad("close-reason-bad-utf8", client_close(1000, b"bye \xff"), 1007),
    Bad(
        "message-then-unmasked",
        client_frame(TEXT, b"hi") + client_frame(TEXT, b"x", masked=False),
        1002,
        before=(("message", "hi"),),
    ),
]


@pytest.mark.parametrize("bad", BAD, ids=[b.id for b in BAD])
def test_error_closes_with_code_then_eof(bad: Bad) -> None:
    for label, fed in all_ways(bad.data, bad.limits):
        assert describe(fed.events) == [*bad.before, ("closed", bad.code, False)], label
        closed = fed.events[-1]
        assert isinstance(closed, WsClosed)
        # the server's only frame is its close frame, and EOF comes right after it
        assert len(fed.written.frames) == 1, label
        assert fed.written.ends_with_close(bad.code), label
        close = fed.written.frames[0]
        assert close.fin
        assert close.rsv == 0
        assert len(close.payload) <= 125
        assert close.close_reason == closed.reason
        assert not fed.conn.open
        assert fed.conn.close_code() == bad.code


def test_oversized_text_frame_is_1009_however_it_arrives() -> None:
    """The header already says the frame is too big: 1009, even when the payload
    (here starting with invalid UTF-8) arrives in pieces."""
    frame = client_frame(TEXT, b"\xff" + b"x" * 19)
    for label, fed in all_ways(frame, SMALL):
        assert describe(fed.events) == [("closed", 1009, False)], label
        assert fed.written.ends_with_close(1009), label


def test_nothing_after_failure_is_processed() -> None:
    """Once failed, more bytes (even valid frames) give no events and no output."""
    fed = feed(
        [
            client_frame(TEXT, b"x", masked=False),
            client_frame(TEXT, b"late"),
            client_frame(PING, b"late"),
        ]
    )
    assert describe(fed.events) == [("closed", 1002, False)]
    assert len(fed.written.frames) == 1
    assert fed.written.ends_with_close(1002)


def test_valid_close_codes_are_accepted() -> None:
    for code in (
        1000,
        1001,
        1002,
        1003,
        1007,
        1008,
        1009,
        1010,
        1011,
        1012,
        1013,
        1014,
        3000,
        4999,
    ):
        fed = feed([client_close(code)])
        assert describe(fed.events) == [("closed", code, True)], code
        assert fed.written.ends_with_close(code), code


# fail fast on invalid UTF-8 -----------------------------------------------------------


def first_close_at(fed: Fed) -> int | None:
    """Index of the piece after which the server had written its close frame."""
    for i, (_, written) in enumerate(fed.progress):
        if written.close is not None:
            return i
    return None


def test_bad_utf8_fragment_fails_before_the_final_fragment() -> None:
    good = START_TEXT
    bad = client_frame(CONT, b"\xff\xfe", fin=False)
    final = client_frame(CONT, b"never read")
    fed = feed([good, bad, final])
    assert first_close_at(fed) == 1
    assert describe(fed.events) == [("closed", 1007, False)]
    assert fed.written.ends_with_close(1007)


@pytest.mark.parametrize("size", [120, 300, 70000], ids=["len-7", "len-16", "len-64"])
def test_bad_utf8_inside_one_frame_fails_as_soon_as_it_arrives(size: int) -> None:
    """The frame arrives in pieces; the close is sent at the piece with the bad byte."""
    at = 50
    payload = b"a" * at + b"\xff" + b"b" * (size - at - 1)
    frame = client_frame(TEXT, payload)
    header_len = len(frame) - len(payload)
    bad_index = header_len + at
    pieces = [frame[i : i + 1] for i in range(bad_index + 1)] + [frame[bad_index + 1 :]]
    fed = feed(pieces)
    assert first_close_at(fed) == bad_index
    assert describe(fed.events) == [("closed", 1007, False)]
    assert fed.written.ends_with_close(1007)
    # in chops of 16 bytes: at the chop that holds the bad byte
    chops = [frame[i : i + 16] for i in range(0, len(frame), 16)]
    fed = feed(chops)
    assert first_close_at(fed) == bad_index // 16
    assert fed.written.ends_with_close(1007)


def test_bad_utf8_inside_a_continuation_frame_fails_as_soon_as_it_arrives() -> None:
    start = client_frame(TEXT, b"caf\xc3", fin=False)  # the character ends in the next frame
    cont = client_frame(CONT, b"\xa9" + b"x" * 40 + b"\xff" + b"y" * 40)
    data = start + cont
    bad_index = len(start) + 6 + 41
    fed = feed([data[i : i + 1] for i in range(len(data))])
    assert first_close_at(fed) == bad_index
    assert describe(fed.events) == [("closed", 1007, False)]


def test_bad_utf8_across_pieces_with_a_cut_character() -> None:
    """A character cut between two pieces of a frame is fine; a bad one is caught."""
    good = client_frame(TEXT, "\u00e9\u2603\U0001f600".encode() * 20)
    fed = feed([good[i : i + 1] for i in range(len(good))])
    assert describe(fed.events) == [("message", "\u00e9\u2603\U0001f600" * 20)]
    bad = client_frame(TEXT, "\u00e9".encode() * 20 + b"\xc3\x28" + b"z" * 30)
    fed = feed([bad[i : i + 1] for i in range(len(bad))])
    assert first_close_at(fed) == 6 + 40 + 1  # the byte after \xc3
    assert describe(fed.events) == [("closed", 1007, False)]


def test_chopped_valid_text_after_fragments_and_pings() -> None:
    """The incremental UTF-8 check carries its state across frames and control frames."""
    data = (
        client_frame(TEXT, b"\xe2", fin=False)
        + client_frame(PING, b"x")
        + client_frame(CONT, b"\x98", fin=False)
        + client_frame(CONT, b"\x83" + "\u00e9".encode() * 50)
    )
    fed = assert_same_every_way(data)
    assert describe(fed.events) == [("message", "\u2603" + "\u00e9" * 50)]


# the close handshake ----------------------------------------------------------------


def test_peer_close_with_code_and_reason() -> None:
    fed = assert_same_every_way(client_close(4001, "going away now"))
    assert describe(fed.events) == [("closed", 4001, True)]
    closed = fed.events[0]
    assert isinstance(closed, WsClosed)
    assert (closed.code, closed.reason, closed.by_peer) == (4001, "going away now", True)
    # we echo the code, then close the TCP connection (the server closes first, §7.1.1)
    assert len(fed.written.frames) == 1
    assert fed.written.ends_with_close(4001)
    assert not fed.conn.open
    assert fed.conn.close_code() == 4001


def test_peer_close_without_code() -> None:
    fed = assert_same_every_way(client_frame(CLOSE, b""))
    assert describe(fed.events) == [("closed", 1005, True)]
    assert [(f.opcode, f.payload) for f in fed.written.frames] == [(CLOSE, b"")]
    assert fed.written.eof


def test_peer_close_during_fragmented_message_is_clean() -> None:
    data = START_TEXT + client_frame(CONT, b"cd", fin=False) + client_close(1001, "bye")
    fed = assert_same_every_way(data)
    assert describe(fed.events) == [("closed", 1001, True)]
    assert len(fed.written.frames) == 1
    assert fed.written.ends_with_close(1001)


def test_bytes_after_peer_close_are_ignored() -> None:
    data = client_close(1000) + client_frame(TEXT, b"late") + client_frame(TEXT, b"x", masked=False)
    fed = assert_same_every_way(data)
    assert describe(fed.events) == [("closed", 1000, True)]
    assert fed.written.ends_with_close(1000)


def test_receive_eof_is_1006() -> None:
    conn = WsConnection(WsLimits())
    events = conn.receive_eof()
    assert describe(events) == [("closed", 1006, True)]
    assert parse_server_frames(conn.data_to_send()).eof
    assert conn.closed
    assert conn.close_code() == 1006
    assert conn.receive_eof() == []  # reported once


def test_receive_eof_mid_frame_is_1006() -> None:
    conn = WsConnection(WsLimits())
    frame = client_frame(TEXT, b"hello")
    assert conn.receive_data(frame[:4]) == []
    assert describe(conn.receive_eof()) == [("closed", 1006, True)]
    assert conn.closed


def test_receive_eof_after_peer_close_reports_nothing_more() -> None:
    conn = WsConnection(WsLimits())
    assert describe(conn.receive_data(client_close(1000))) == [("closed", 1000, True)]
    conn.data_to_send()
    assert conn.receive_eof() == []
    assert conn.closed


def test_send_close_then_peer_close_completes() -> None:
    conn = WsConnection(WsLimits())
    conn.send_close(1000, "bye")
    sent = parse_server_frames(conn.data_to_send())
    assert [(f.close_code, f.close_reason) for f in sent.frames] == [(1000, "bye")]
    assert not sent.eof
    assert not conn.open
    assert not conn.closed
    # the client answers the close: the handshake is complete, the server drops TCP
    events = conn.receive_data(client_close(1000, "ok"))
    after = parse_server_frames(conn.data_to_send())
    assert after.frames == []
    assert after.eof, "the server must close the TCP connection once the peer answered"
    assert describe(events) == [("closed", 1000, True)]
    assert conn.receive_eof() == []
    assert conn.closed
    assert conn.close_code() == 1000


def test_send_close_then_peer_close_in_pieces() -> None:
    reply = client_close(1000, "ok")
    for label, pieces in ways_to_feed(reply):
        conn = WsConnection(WsLimits())
        conn.send_close(1000)
        conn.data_to_send()
        fed = feed(pieces, conn=conn)
        assert fed.written.eof, label
        assert fed.written.frames == [], label


def test_send_close_is_a_noop_once_closing() -> None:
    conn = WsConnection(WsLimits())
    conn.send_close(1001, "shutdown")
    conn.send_close(1000, "again")
    frames = parse_server_frames(conn.data_to_send()).frames
    assert [(f.close_code, f.close_reason) for f in frames] == [(1001, "shutdown")]
    assert conn.close_sent is not None
    assert conn.close_sent.code == 1001


def test_fail_sends_close_then_eof_once() -> None:
    conn = WsConnection(WsLimits())
    conn.fail(1011, "keepalive ping timeout")
    out = parse_server_frames(conn.data_to_send())
    assert out.ends_with_close(1011)
    assert out.frames[0].close_reason == "keepalive ping timeout"
    conn.fail(1011)
    assert conn.data_to_send() == []


# holding back for the app -------------------------------------------------------------


def test_hold_bad_frame_until_the_app_has_read() -> None:
    conn = WsConnection(WsLimits())
    data = client_frame(TEXT, b"first") + client_frame(TEXT, b"x", masked=False)
    events = conn.receive_data(data, unread=1)
    assert describe(events) == [("message", "first")]
    assert conn.data_to_send() == []
    assert conn.buffered > 0
    assert conn.open
    events = conn.resume()
    assert describe(events) == [("closed", 1002, False)]
    assert parse_server_frames(conn.data_to_send()).ends_with_close(1002)
    assert conn.buffered == 0


HELD = [
    Bad("unmasked", client_frame(TEXT, b"x", masked=False), 1002),
    Bad("rsv2", client_frame(TEXT, b"x", rsv=RSV2), 1002),
    Bad("opcode-3", client_frame(3, b"x"), 1002),
    Bad("ping-126", client_frame(PING, b"p" * 126), 1002),
    Bad("fragmented-ping", client_frame(PING, b"p", fin=False), 1002),
    Bad("continuation-first", client_frame(CONT, b"x"), 1002),
    Bad("close-code-999", client_close(999), 1002),
    Bad("too-big", client_frame(BINARY, b"x" * 11), 1009, SMALL),
]


@pytest.mark.parametrize("bad", HELD, ids=[b.id for b in HELD])
def test_hold_any_failing_frame_until_the_app_has_read(bad: Bad) -> None:
    """The app's answers to earlier messages must go out before our close frame."""
    conn = WsConnection(bad.limits or WsLimits())
    events = conn.receive_data(client_frame(TEXT, b"hi") + bad.data, unread=1)
    assert describe(events) == [("message", "hi")]
    assert conn.data_to_send() == [], "close frame sent while the app had unread messages"
    assert conn.buffered == len(bad.data)
    assert describe(conn.resume()) == [("closed", bad.code, False)]
    assert parse_server_frames(conn.data_to_send()).ends_with_close(bad.code)


def test_hold_across_reads() -> None:
    conn = WsConnection(WsLimits())
    assert describe(conn.receive_data(client_frame(TEXT, b"a"), unread=0)) == [("message", "a")]
    bad = client_frame(BINARY, b"x", rsv=RSV2)
    for piece in (bad[:1], bad[1:]):
        assert conn.receive_data(piece, unread=1) == []
    assert conn.data_to_send() == []
    assert conn.buffered == len(bad)
    assert describe(conn.resume()) == [("closed", 1002, False)]
    assert parse_server_frames(conn.data_to_send()).ends_with_close(1002)


def test_hold_peer_close_until_the_app_has_read() -> None:
    conn = WsConnection(WsLimits())
    data = client_frame(BINARY, b"last words") + client_close(1000, "done")
    assert describe(conn.receive_data(data, unread=1)) == [("message", b"last words")]
    assert conn.data_to_send() == []
    assert conn.buffered == len(client_close(1000, "done"))
    assert describe(conn.resume()) == [("closed", 1000, True)]
    assert parse_server_frames(conn.data_to_send()).ends_with_close(1000)


def test_hold_does_not_delay_pings_or_good_frames() -> None:
    conn = WsConnection(WsLimits())
    data = client_frame(TEXT, b"a") + client_frame(PING, b"p") + client_frame(TEXT, b"b")
    assert describe(conn.receive_data(data, unread=1)) == [
        ("message", "a"),
        ("message", "b"),
    ]
    assert [(f.opcode, f.payload) for f in parse_server_frames(conn.data_to_send()).frames] == [
        (PONG, b"p")
    ]
    assert conn.buffered == 0


def test_resume_with_nothing_held() -> None:
    conn = WsConnection(WsLimits())
    assert conn.resume() == []
    assert conn.buffered == 0


def test_receive_eof_processes_held_bytes_first() -> None:
    conn = WsConnection(WsLimits())
    data = client_frame(TEXT, b"a") + client_close(1000)
    conn.receive_data(data, unread=1)
    assert conn.buffered > 0
    assert describe(conn.receive_eof()) == [("closed", 1000, True)]


# sending -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "opcode", "payload"),
    [
        ("h\u00e9llo", TEXT, "h\u00e9llo".encode()),
        ("", TEXT, b""),
        (b"\x00\x01\xff", BINARY, b"\x00\x01\xff"),
        (b"x" * 126, BINARY, b"x" * 126),
        (b"y" * 70000, BINARY, b"y" * 70000),
        ("z" * 65535, TEXT, b"z" * 65535),
    ],
    ids=["text", "text-empty", "binary", "len-126", "len-64bit", "len-65535"],
)
def test_send_message_frames(data: str | bytes, opcode: int, payload: bytes) -> None:
    conn = WsConnection(WsLimits())
    conn.send_message(data)
    out = parse_server_frames(conn.data_to_send())
    assert [(f.fin, f.rsv, f.opcode, f.payload) for f in out.frames] == [(True, 0, opcode, payload)]
    assert not out.eof


def test_send_ping_and_receive_pong() -> None:
    conn = WsConnection(WsLimits())
    conn.send_ping(b"\x00\x00\x00\x07")
    out = parse_server_frames(conn.data_to_send())
    assert [(f.opcode, f.payload) for f in out.frames] == [(PING, b"\x00\x00\x00\x07")]
    events = conn.receive_data(client_frame(PONG, b"\x00\x00\x00\x07"))
    assert describe(events) == [("pong", b"\x00\x00\x00\x07")]


def test_messages_both_ways_interleave() -> None:
    conn = WsConnection(WsLimits())
    for i in range(3):
        events = conn.receive_data(client_frame(TEXT, f"ping {i}".encode()))
        assert describe(events) == [("message", f"ping {i}")]
        conn.send_message(f"pong {i}")
        frames = parse_server_frames(conn.data_to_send()).frames
        assert [(f.opcode, f.payload) for f in frames] == [(TEXT, f"pong {i}".encode())]


# property: any valid conversation, cut anywhere -------------------------------------


@st.composite
def conversations(draw: st.DrawFn) -> tuple[bytes, list[str | bytes], list[bytes]]:
    """Client bytes for some messages (fragmented, with pings between fragments)."""
    data = b""
    messages: list[str | bytes] = []
    pings: list[bytes] = []
    for _ in range(draw(st.integers(1, 4))):
        text = draw(st.booleans())
        message: str | bytes = draw(st.text(max_size=40)) if text else draw(st.binary(max_size=40))
        raw = message.encode() if isinstance(message, str) else message
        cuts = sorted(draw(st.lists(st.integers(0, len(raw)), max_size=3)))
        parts = [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=True)]
        for i, part in enumerate(parts):
            opcode = (TEXT if text else BINARY) if i == 0 else CONT
            mask = draw(st.binary(min_size=4, max_size=4))
            data += client_frame(opcode, part, fin=i == len(parts) - 1, mask=mask)
            if draw(st.booleans()):
                ping = draw(st.binary(max_size=10))
                pings.append(ping)
                data += client_frame(PING, ping)
        messages.append(message)
    return data, messages, pings


@settings(max_examples=150, deadline=None)
@given(conversation=conversations(), data=st.data())
def test_any_conversation_cut_anywhere(
    conversation: tuple[bytes, list[str | bytes], list[bytes]], data: st.DataObject
) -> None:
    raw, messages, pings = conversation
    cuts = sorted(data.draw(st.lists(st.integers(0, len(raw)), max_size=8)))
    pieces = [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=True)]
    fed = feed(pieces)
    assert describe(fed.events) == [("message", m) for m in messages]
    assert [(f.opcode, f.payload) for f in fed.written.frames] == [(PONG, p) for p in pings]
    assert not fed.written.eof
    assert fed.conn.open


def test_room_limits_the_messages_produced() -> None:
    """With room for 2, a read carrying 5 messages yields 2 and keeps 3 buffered."""
    conn = WsConnection(WsLimits())
    data = b"".join(client_frame(TEXT, b"m%d" % i) for i in range(5))
    first = describe(conn.receive_data(data, unread=0, room=2))
    assert first == [("message", "m0"), ("message", "m1")]
    assert conn.buffered > 0
    rest = describe(conn.resume(unread=0, room=10))
    assert rest == [("message", "m2"), ("message", "m3"), ("message", "m4")]
    assert conn.buffered == 0

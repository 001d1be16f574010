"""permessage-deflate (RFC 7692): negotiation, compressed messages both ways, zip bombs."""

from __future__ import annotations

import tracemalloc
import zlib

import pytest
from websockets.extensions.base import Extension
from websockets.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    PerMessageDeflate,
)
from websockets.frames import Frame, Opcode
from websockets.headers import parse_extension

from bascule.proto.limits import WsLimits
from bascule.proto.ws.connection import WsConnection
from bascule.proto.ws.deflate import negotiate
from tests.support.ws import (
    BINARY,
    CONT,
    PING,
    PONG,
    RSV1,
    RSV2,
    TEXT,
    Fed,
    client_frame,
    deflate,
    describe,
    feed,
    parse_server_frames,
    ways_to_feed,
)


def negotiated(offer: str = "permessage-deflate") -> list[Extension]:
    header, extensions = negotiate([offer], True)
    assert header is not None
    return extensions


def deflate_conn(offer: str = "permessage-deflate", max_size: int = 1 << 20) -> WsConnection:
    return WsConnection(WsLimits(max_size=max_size), negotiated(offer))


def feed_deflate(
    pieces: list[bytes], offer: str = "permessage-deflate", max_size: int = 1 << 20
) -> Fed:
    return feed(pieces, conn=deflate_conn(offer, max_size))


def every_way(data: bytes, offer: str = "permessage-deflate", max_size: int = 1 << 20) -> Fed:
    """Feed ``data`` whole, split at every offset and byte by byte: all must agree."""
    ways = [(label, feed_deflate(pieces, offer, max_size)) for label, pieces in ways_to_feed(data)]
    _, whole = ways[0]
    for label, fed in ways[1:]:
        assert describe(fed.events) == describe(whole.events), label
        assert fed.written == whole.written, label
    return whole


# negotiate() -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("offers", "header"),
    [
        (["permessage-deflate"], "permessage-deflate"),
        # the client lets us pick its window; we keep the default (15), no need to say so
        (["permessage-deflate; client_max_window_bits"], "permessage-deflate"),
        (
            ["permessage-deflate; server_no_context_takeover; client_no_context_takeover"],
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
        ),
        (
            ["permessage-deflate; server_max_window_bits=10"],
            "permessage-deflate; server_max_window_bits=10",
        ),
        (
            ["permessage-deflate; client_max_window_bits=9"],
            "permessage-deflate; client_max_window_bits=9",
        ),
        (["x-webkit-deflate-frame"], None),
        (["permessage-foo, x-custom; a=1"], None),
        (["permessage-deflate; =;;"], None),
        ([",,;"], None),
        (["permessage-deflate; unknown_param"], None),
        (["permessage-deflate; server_max_window_bits=16"], None),
        (["permessage-deflate; server_max_window_bits=abc"], None),
        (["permessage-deflate; server_no_context_takeover; server_no_context_takeover"], None),
        ([], None),
    ],
    ids=[
        "plain",
        "client-max-window-bits-no-value",
        "no-context-takeover-both",
        "server-max-window-bits-10",
        "client-max-window-bits-9",
        "unknown-extension",
        "unknown-extensions",
        "malformed",
        "only-separators",
        "unknown-param",
        "window-16",
        "window-not-a-number",
        "duplicate-param",
        "no-offer",
    ],
)
def test_negotiate(offers: list[str], header: str | None) -> None:
    response, extensions = negotiate(offers, True)
    assert response == header
    if header is None:
        assert extensions == []
    else:
        assert len(extensions) == 1
        assert isinstance(extensions[0], PerMessageDeflate)


def test_negotiate_disabled() -> None:
    assert negotiate(["permessage-deflate"], False) == (None, [])


@pytest.mark.parametrize(
    ("offers", "header"),
    [
        # a list in one field: the first acceptable offer wins
        (
            [
                "permessage-deflate; server_max_window_bits=16, permessage-deflate; client_no_context_takeover"
            ],
            "permessage-deflate; client_no_context_takeover",
        ),
        # an unknown extension first, then ours
        (["x-webkit-deflate-frame, permessage-deflate"], "permessage-deflate"),
        # a malformed field is skipped, the next field is used
        (["permessage-deflate; ;=", "permessage-deflate"], "permessage-deflate"),
        # first of two acceptable offers
        (
            ["permessage-deflate; server_max_window_bits=12", "permessage-deflate"],
            "permessage-deflate; server_max_window_bits=12",
        ),
    ],
    ids=["fallback-in-list", "after-unknown", "after-malformed", "first-wins"],
)
def test_negotiate_picks_first_acceptable_offer(offers: list[str], header: str) -> None:
    assert negotiate(offers, True)[0] == header


def test_negotiated_parameters_reach_the_extension() -> None:
    (ext,) = negotiated(
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover;"
        " server_max_window_bits=11; client_max_window_bits=12"
    )
    assert isinstance(ext, PerMessageDeflate)
    # "local" is the server's own compressor, "remote" the client's
    assert ext.local_no_context_takeover
    assert ext.remote_no_context_takeover
    assert ext.local_max_window_bits == 11
    assert ext.remote_max_window_bits == 12


def test_response_is_understood_by_a_client() -> None:
    """The websockets client accepts our response to its default offer."""
    factory = ClientPerMessageDeflateFactory()
    offer = "permessage-deflate; client_max_window_bits"
    header, _ = negotiate([offer], True)
    assert header is not None
    ((name, params),) = parse_extension(header)
    assert name == "permessage-deflate"
    ext = factory.process_response_params(params, [])
    assert isinstance(ext, PerMessageDeflate)


# compressed messages -------------------------------------------------------------------


def client_extension(response_header: str) -> PerMessageDeflate:
    ((_, params),) = parse_extension(response_header)
    return ClientPerMessageDeflateFactory(client_max_window_bits=None).process_response_params(
        params, []
    )


def client_compressed(
    ext: PerMessageDeflate, opcode: Opcode, data: bytes, fin: bool = True
) -> bytes:
    """A masked frame compressed by the websockets client extension."""
    frame = ext.encode(Frame(opcode, data, fin=fin))
    rsv = (RSV1 if frame.rsv1 else 0) | (RSV2 if frame.rsv2 else 0)
    return client_frame(int(frame.opcode), bytes(frame.data), fin=frame.fin, rsv=rsv)


@pytest.mark.parametrize(
    "message",
    ["", "hello", "h\u00e9llo w\u00f6rld \u2603 " * 50, b"\x00\x01\x02" * 300, b""],
    ids=["text-empty", "text-short", "text-long", "binary", "binary-empty"],
)
def test_compressed_message_every_way(message: str | bytes) -> None:
    raw = message.encode() if isinstance(message, str) else message
    opcode = TEXT if isinstance(message, str) else BINARY
    frame = client_frame(opcode, deflate(raw), rsv=RSV1)
    fed = every_way(frame)
    assert describe(fed.events) == [("message", message)]
    assert fed.written.frames == []


def test_websockets_client_extension_round_trip() -> None:
    """Frames compressed by websockets' own client, with context takeover across messages."""
    ext = client_extension("permessage-deflate")
    conn = deflate_conn()
    messages = ["first message " * 20, "first message " * 20, "second \u00e9" * 30]
    data = b"".join(client_compressed(ext, Opcode.TEXT, m.encode()) for m in messages)
    data += client_compressed(ext, Opcode.BINARY, bytes(range(256)) * 4)
    fed = feed([data], conn=conn)
    assert describe(fed.events) == [
        *(("message", m) for m in messages),
        ("message", bytes(range(256)) * 4),
    ]


def test_context_takeover_across_messages_every_way() -> None:
    compressor = zlib.compressobj(wbits=-15)
    first = client_frame(TEXT, deflate(b"repeat me " * 30, compressor), rsv=RSV1)
    second = client_frame(TEXT, deflate(b"repeat me " * 30, compressor), rsv=RSV1)
    fed = every_way(first + second)
    assert describe(fed.events) == [("message", "repeat me " * 30)] * 2


def test_client_no_context_takeover() -> None:
    offer = "permessage-deflate; client_no_context_takeover"
    frames = b"".join(client_frame(TEXT, deflate(b"same text " * 20), rsv=RSV1) for _ in range(3))
    fed = every_way(frames, offer)
    assert describe(fed.events) == [("message", "same text " * 20)] * 3


def test_uncompressed_message_on_a_deflate_connection() -> None:
    fed = every_way(client_frame(TEXT, b"plain") + client_frame(BINARY, b"\x00"))
    assert describe(fed.events) == [("message", "plain"), ("message", b"\x00")]


@pytest.mark.parametrize("opcode", [TEXT, BINARY], ids=["text", "binary"])
def test_fragmented_compressed_message_every_way(opcode: int) -> None:
    message = "fragments of a compressed m\u00e9ssage " * 10
    raw = message.encode()
    z = deflate(raw)
    third = len(z) // 3
    data = (
        client_frame(opcode, z[:third], fin=False, rsv=RSV1)
        + client_frame(PING, b"mid")
        + client_frame(CONT, z[third : 2 * third], fin=False)
        + client_frame(CONT, z[2 * third :])
    )
    fed = every_way(data)
    expected: str | bytes = message if opcode == TEXT else raw
    assert describe(fed.events) == [("message", expected)]
    assert [(f.opcode, f.payload) for f in fed.written.frames] == [(PONG, b"mid")]


def test_server_compresses_what_it_sends() -> None:
    for offer in ("permessage-deflate", "permessage-deflate; server_no_context_takeover"):
        conn = deflate_conn(offer)
        client = client_extension(negotiate([offer], True)[0] or "")
        for message in ("compress me " * 50, "compress me " * 50, b"\x00" * 1000):
            conn.send_message(message)
            (frame,) = parse_server_frames(conn.data_to_send()).frames
            assert frame.rsv == RSV1
            decoded = client.decode(
                Frame(Opcode(frame.opcode), frame.payload, fin=frame.fin, rsv1=True)
            )
            raw = message.encode() if isinstance(message, str) else message
            assert decoded.data == raw
            assert len(frame.payload) < len(raw)


@pytest.mark.parametrize(
    "data",
    [
        client_frame(TEXT, deflate(b"ab"), fin=False, rsv=RSV1)
        + client_frame(CONT, deflate(b"c"), rsv=RSV1),
        client_frame(TEXT, b"x", rsv=RSV2),
        client_frame(TEXT, deflate(b"x"), rsv=RSV1 | RSV2),
        client_frame(PING, b"x", rsv=RSV1),
        client_frame(TEXT, b"\xff\xff\xff not deflate", rsv=RSV1),
    ],
    ids=["rsv1-on-continuation", "rsv2", "rsv1-and-rsv2", "rsv1-on-ping", "corrupt-stream"],
)
def test_compression_protocol_errors_close_1002(data: bytes) -> None:
    fed = every_way(data)
    assert describe(fed.events) == [("closed", 1002, False)]
    assert len(fed.written.frames) == 1
    assert fed.written.ends_with_close(1002)


def test_compressed_bad_utf8_is_1007() -> None:
    fed = every_way(client_frame(TEXT, deflate(b"ok \xff bad"), rsv=RSV1))
    assert describe(fed.events) == [("closed", 1007, False)]
    assert fed.written.ends_with_close(1007)


# zip bombs ---------------------------------------------------------------------------------

MAX = 64 * 1024
BOMB_SIZE = 32 * 1024 * 1024  # 512 times the limit


def test_bomb_in_one_frame_is_1009_without_inflating_it() -> None:
    bomb = deflate(bytes(BOMB_SIZE))
    assert len(bomb) < MAX // 2  # the frame itself is well under the limit
    frame = client_frame(BINARY, bomb, rsv=RSV1)
    tracemalloc.start()
    try:
        fed = feed_deflate([frame], max_size=MAX)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert describe(fed.events) == [("closed", 1009, False)]
    assert fed.written.ends_with_close(1009)
    assert peak < 16 * MAX, f"inflating used {peak} bytes for a {MAX}-byte limit"


def test_bomb_in_chops_is_1009() -> None:
    frame = client_frame(TEXT, deflate(b"a" * (4 * MAX)), rsv=RSV1)
    pieces = [frame[i : i + 100] for i in range(0, len(frame), 100)]
    fed = feed_deflate(pieces, max_size=MAX)
    assert describe(fed.events) == [("closed", 1009, False)]
    assert fed.written.ends_with_close(1009)


def test_bomb_across_fragments_is_1009() -> None:
    """Each fragment inflates under the limit, the message does not."""
    compressor = zlib.compressobj(wbits=-15)
    chunk = bytes(MAX // 4)
    frames = [client_frame(BINARY, deflate(chunk, compressor, final=False), fin=False, rsv=RSV1)]
    frames += [
        client_frame(CONT, deflate(chunk, compressor, final=False), fin=False) for _ in range(6)
    ]
    tracemalloc.start()
    try:
        fed = feed_deflate(frames, max_size=MAX)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert describe(fed.events) == [("closed", 1009, False)]
    assert fed.written.ends_with_close(1009)
    assert peak < 16 * MAX


def test_exactly_max_size_after_inflating_is_fine() -> None:
    frame = client_frame(BINARY, deflate(bytes(MAX)), rsv=RSV1)
    fed = feed_deflate([frame], max_size=MAX)
    assert describe(fed.events) == [("message", bytes(MAX))]
    one_more = client_frame(BINARY, deflate(bytes(MAX + 1)), rsv=RSV1)
    fed = feed_deflate([one_more], max_size=MAX)
    assert describe(fed.events) == [("closed", 1009, False)]

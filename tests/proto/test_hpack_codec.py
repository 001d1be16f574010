"""bascule's HPACK codec (proto/http2/hpack_codec.py, proto/http2/huffman.py).

The RFC 7541 Appendix C examples, then differential tests against the
``hpack`` package (its encoder into our decoder, our encoder into its
decoder, and ours into ours, over many blocks of one connection so that
eviction is exercised), then every way a hostile block can fail.
"""

from __future__ import annotations

import random
import tracemalloc

import hpack
import hpack.huffman_constants
import pytest
from hpack.table import HeaderTable
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bascule.proto.http2 import huffman
from bascule.proto.http2.hpack_codec import (
    ENCODER_TABLE_LIMIT,
    STATIC_TABLE,
    Decoder,
    Encoder,
    HeaderListTooLarge,
    HpackError,
)

Field = tuple[bytes, bytes]

CAP = 1 << 20  # a header list cap that the differential tests never reach


def unhex(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", "").replace("\n", ""))


# ---------------------------------------------------------------------------
# Tables


def test_huffman_code_is_the_rfc_table() -> None:
    codes = [code for code, _ in huffman.CODE]
    lengths = [length for _, length in huffman.CODE]
    assert codes == list(hpack.huffman_constants.REQUEST_CODES)
    assert lengths == list(hpack.huffman_constants.REQUEST_CODES_LENGTH)
    assert sum(2.0**-length for length in lengths) == 1.0  # a complete prefix code


def test_static_table_is_the_rfc_table() -> None:
    assert list(HeaderTable.STATIC_TABLE) == STATIC_TABLE


def test_huffman_fsm_shape() -> None:
    assert len(huffman.DECODE_FSM) == 256 * 16
    # EOS is 30 ones: from the state 29, 28, 27, 26 ones deep, the nibbles that
    # start with 1, 11, 111, 1111 reach it (8 + 4 + 2 + 1 entries).
    failing = [i for i, entry in enumerate(huffman.DECODE_FSM) if entry & huffman.FAIL]
    assert [huffman.ONES_DEPTH[i >> 4] for i in failing] == [26] + [27] * 2 + [28] * 4 + [29] * 8
    # A string may end only in the states 0 to 7 ones deep (RFC 7541 §5.2).
    accepting = {e & 0xFF for e in huffman.DECODE_FSM if e & huffman.ACCEPT}
    assert sorted(huffman.ONES_DEPTH[state] for state in accepting) == list(range(8))


# ---------------------------------------------------------------------------
# RFC 7541 Appendix C


def test_c2_1_literal_with_indexing() -> None:
    decoder = Decoder(CAP)
    block = unhex("400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572")
    assert decoder.decode(block) == [(b"custom-key", b"custom-header")]
    assert decoder.table == [(b"custom-key", b"custom-header")]
    assert decoder.table_size == 55


def test_c2_2_literal_without_indexing() -> None:
    decoder = Decoder(CAP)
    block = unhex("040c 2f73 616d 706c 652f 7061 7468")
    assert decoder.decode(block) == [(b":path", b"/sample/path")]
    assert decoder.table == []
    assert decoder.table_size == 0


def test_c2_3_literal_never_indexed() -> None:
    decoder = Decoder(CAP)
    block = unhex("1008 7061 7373 776f 7264 0673 6563 7265 74")
    assert decoder.decode(block) == [(b"password", b"secret")]
    assert decoder.table == []


def test_c2_4_indexed() -> None:
    decoder = Decoder(CAP)
    assert decoder.decode(b"\x82") == [(b":method", b"GET")]
    assert decoder.table == []


REQUESTS: list[list[Field]] = [
    [
        (b":method", b"GET"),
        (b":scheme", b"http"),
        (b":path", b"/"),
        (b":authority", b"www.example.com"),
    ],
    [
        (b":method", b"GET"),
        (b":scheme", b"http"),
        (b":path", b"/"),
        (b":authority", b"www.example.com"),
        (b"cache-control", b"no-cache"),
    ],
    [
        (b":method", b"GET"),
        (b":scheme", b"https"),
        (b":path", b"/index.html"),
        (b":authority", b"www.example.com"),
        (b"custom-key", b"custom-value"),
    ],
]
REQUEST_TABLES: list[tuple[list[Field], int]] = [
    ([(b":authority", b"www.example.com")], 57),
    ([(b"cache-control", b"no-cache"), (b":authority", b"www.example.com")], 110),
    (
        [
            (b"custom-key", b"custom-value"),
            (b"cache-control", b"no-cache"),
            (b":authority", b"www.example.com"),
        ],
        164,
    ),
]
C3 = [
    "8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
    "8286 84be 5808 6e6f 2d63 6163 6865",
    "8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65",
]
C4 = [
    "8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff",
    "8286 84be 5886 a8eb 1064 9cbf",
    "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf",
]


@pytest.mark.parametrize("blocks", [C3, C4], ids=["C.3", "C.4"])
def test_c3_c4_requests(blocks: list[str]) -> None:
    decoder = Decoder(CAP)
    for block, fields, (table, size) in zip(blocks, REQUESTS, REQUEST_TABLES, strict=True):
        assert decoder.decode(unhex(block)) == fields
        assert decoder.table == table
        assert decoder.table_size == size


def test_encoder_writes_c4() -> None:
    """Huffman where shorter, the name as an index: byte for byte RFC 7541 C.4."""
    encoder = Encoder()
    for block, fields, (table, size) in zip(C4, REQUESTS, REQUEST_TABLES, strict=True):
        assert encoder.encode(fields) == unhex(block)
        assert encoder.table == table
        assert encoder.table_size == size


DATE_21 = b"Mon, 21 Oct 2013 20:13:21 GMT"
DATE_22 = b"Mon, 21 Oct 2013 20:13:22 GMT"
LOCATION = b"https://www.example.com"
COOKIE = b"foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1"
RESPONSES: list[list[Field]] = [
    [
        (b":status", b"302"),
        (b"cache-control", b"private"),
        (b"date", DATE_21),
        (b"location", LOCATION),
    ],
    [
        (b":status", b"307"),
        (b"cache-control", b"private"),
        (b"date", DATE_21),
        (b"location", LOCATION),
    ],
    [
        (b":status", b"200"),
        (b"cache-control", b"private"),
        (b"date", DATE_22),
        (b"location", LOCATION),
        (b"content-encoding", b"gzip"),
        (b"set-cookie", COOKIE),
    ],
]
RESPONSE_TABLES: list[tuple[list[Field], int]] = [
    (
        [
            (b"location", LOCATION),
            (b"date", DATE_21),
            (b"cache-control", b"private"),
            (b":status", b"302"),
        ],
        222,
    ),
    (
        [
            (b":status", b"307"),
            (b"location", LOCATION),
            (b"date", DATE_21),
            (b"cache-control", b"private"),
        ],
        222,
    ),
    ([(b"set-cookie", COOKIE), (b"content-encoding", b"gzip"), (b"date", DATE_22)], 215),
]
C5 = [
    """4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133
    2032 303a 3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70
    6c65 2e63 6f6d""",
    "4803 3330 37c1 c0bf",
    """88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d
    54c0 5a04 677a 6970 7738 666f 6f3d 4153 444a 4b48 514b 425a 584f 5157 454f 5049
    5541 5851 5745 4f49 553b 206d 6178 2d61 6765 3d33 3630 303b 2076 6572 7369 6f6e
    3d31""",
]
C6 = [
    """4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6
    2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3""",
    "4883 640e ffc1 c0bf",
    """88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab
    77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f
    9587 3160 65c0 03ed 4ee5 b106 3d50 07""",
]


@pytest.mark.parametrize("blocks", [C5, C6], ids=["C.5", "C.6"])
def test_c5_c6_responses_with_evictions(blocks: list[str]) -> None:
    decoder = Decoder(CAP, max_table_size=256)
    for block, fields, (table, size) in zip(blocks, RESPONSES, RESPONSE_TABLES, strict=True):
        assert decoder.decode(unhex(block)) == fields
        assert decoder.table == table
        assert decoder.table_size == size


def test_c5_c6_responses_round_trip() -> None:
    encoder = Encoder()
    encoder.set_max_table_size(256)
    decoder = hpack.Decoder()
    decoder.max_allowed_table_size = 256
    ours = Decoder(CAP, max_table_size=256)
    for fields in RESPONSES:
        block = encoder.encode(fields)
        assert decoder.decode(block, raw=True) == fields
        assert ours.decode(block) == fields
        assert ours.table == encoder.table
        assert ours.table_size == encoder.table_size <= 256


# ---------------------------------------------------------------------------
# Differential tests

NAMES = [name for name, _ in STATIC_TABLE if not name.startswith(b":")]
name_strategy = st.one_of(
    st.sampled_from(NAMES),
    st.from_regex(rb"\A[a-z0-9!#$%&'*+.^_`|~-]{1,24}\Z"),
)
value_strategy = st.one_of(
    st.binary(max_size=300),
    st.sampled_from([b"", b"gzip, deflate", b"200", b"text/plain", b"a" * 40]),
)
field_strategy = st.one_of(
    st.sampled_from(STATIC_TABLE),
    st.tuples(name_strategy, value_strategy),
)
# A block, and maybe a new table size to apply before it (peer SETTINGS).
block_strategy = st.tuples(
    st.lists(field_strategy, max_size=12),
    st.one_of(st.none(), st.integers(0, 4096), st.sampled_from([0, 64, 256, 4096])),
)
connection_strategy = st.lists(block_strategy, min_size=1, max_size=25)
DIFFERENTIAL = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def hpack_table(table: HeaderTable) -> list[Field]:
    return list(table.dynamic_entries)


@DIFFERENTIAL
@given(connection_strategy, st.booleans())
def test_hpack_encoder_into_our_decoder(
    connection: list[tuple[list[Field], int | None]], use_huffman: bool
) -> None:
    encoder = hpack.Encoder()
    decoder = Decoder(CAP)
    for fields, size in connection:
        if size is not None:
            encoder.header_table_size = size
        assert decoder.decode(encoder.encode(fields, huffman=use_huffman)) == fields
        assert decoder.table == hpack_table(encoder.header_table)
        assert decoder.table_size == encoder.header_table._current_size


@DIFFERENTIAL
@given(connection_strategy, st.integers(1, 3))
def test_our_encoder_into_hpack_decoder(
    connection: list[tuple[list[Field], int | None]], scale: int
) -> None:
    encoder = Encoder()
    decoder = hpack.Decoder(max_header_list_size=CAP)
    for fields, size in connection:
        if size is not None:
            encoder.set_max_table_size(size * scale)  # past ENCODER_TABLE_LIMIT too
            decoder.max_allowed_table_size = size * scale
        assert decoder.decode(encoder.encode(fields), raw=True) == fields
        assert encoder.table == hpack_table(decoder.header_table)
        assert encoder.table_size == decoder.header_table._current_size
        assert encoder.table_size <= ENCODER_TABLE_LIMIT


@DIFFERENTIAL
@given(connection_strategy)
def test_our_encoder_into_our_decoder(connection: list[tuple[list[Field], int | None]]) -> None:
    encoder = Encoder()
    decoder = Decoder(CAP)
    for fields, size in connection:
        if size is not None:
            encoder.set_max_table_size(size)
        assert decoder.decode(encoder.encode(fields)) == fields
        assert decoder.table == encoder.table
        assert decoder.table_size == encoder.table_size


def random_fields(rng: random.Random) -> list[Field]:
    """Request-like fields: some repeat (table hits), some are new (evictions)."""
    fields: list[Field] = [(b":method", rng.choice([b"GET", b"POST", b"PUT"])), (b":path", b"/")]
    for _ in range(rng.randrange(12)):
        name = rng.choice([b"x-id", b"accept", b"cookie", b"x-long", b"user-agent", b"x-%d"])
        if name == b"x-%d":
            name = b"x-%d" % rng.randrange(200)
        value = rng.choice(
            [b"", b"v", b"%d" % rng.randrange(1000), rng.randbytes(rng.randrange(600))]
        )
        fields.append((name, value))
    return fields


def test_thousands_of_blocks_stay_in_step() -> None:
    """Eviction accounting over 5000 blocks: ours→ours and ours→hpack, tables checked."""
    rng = random.Random(7541)
    encoder = Encoder()
    ours = Decoder(CAP)
    theirs = hpack.Decoder(max_header_list_size=CAP)
    for number in range(5000):
        if number % 500 == 499:
            size = rng.choice([0, 100, 1000, 4096, 10000])
            encoder.set_max_table_size(size)
            theirs.max_allowed_table_size = size
        fields = random_fields(rng)
        block = encoder.encode(fields)
        assert ours.decode(block) == fields
        assert theirs.decode(block, raw=True) == fields
        if number % 50 == 0:
            assert ours.table == encoder.table == hpack_table(theirs.header_table)
            assert ours.table_size == encoder.table_size


# ---------------------------------------------------------------------------
# Encoder choices


def representation(block: bytes) -> int:
    """The pattern of the first byte (§6): 0x80, 0x40, 0x20, 0x10 or 0x00."""
    for pattern in (0x80, 0x40, 0x20, 0x10):
        if block[0] & pattern:
            return pattern
    return 0


@pytest.mark.parametrize(
    ("field", "pattern"),
    [
        ((b"authorization", b"Bearer abcdefghijklmnopqrstuvwxyz"), 0x10),
        ((b"proxy-authorization", b"Basic Zm9vOmJhcg=="), 0x10),
        ((b"set-cookie", b"id=a3fWa; Max-Age=2592000"), 0x10),
        ((b"cookie", b"id=12345"), 0x10),
        ((b"cookie", b"session=0123456789abcdef0123456789"), 0x40),
        ((b"x-big", b"a" * 2100), 0x00),  # more than half the table
        ((b"x-half", b"a" * (2048 - 32 - 6)), 0x40),  # exactly half
        ((b"content-type", b"text/plain"), 0x40),
        ((b":status", b"200"), 0x80),
    ],
)
def test_encoder_representation(field: Field, pattern: int) -> None:
    encoder = Encoder()
    block = encoder.encode([field])
    assert representation(block) == pattern
    assert (field in encoder.table) is (pattern == 0x40)
    assert hpack.Decoder(max_header_list_size=CAP).decode(block, raw=True) == [field]


def test_encoder_indexes_repeats() -> None:
    encoder = Encoder()
    fields = [(b"content-type", b"text/plain"), (b"server", b"bascule"), (b"x-custom", b"1")]
    encoder.encode(fields)
    assert encoder.encode(fields) == bytes([0x80 | 64, 0x80 | 63, 0x80 | 62])
    # A known name with a new value: the dynamic name is used, then it is entry 62.
    block = encoder.encode([(b"x-custom", b"2")])
    assert block[0] == 0x40 | 62
    assert encoder.table[0] == (b"x-custom", b"2")


def test_encoder_raw_when_huffman_is_not_shorter() -> None:
    encoder = Encoder()
    block = encoder.encode([(b"x-bin", b"\xff\xfe\xfd")])
    # 0x40, name "x-bin" (Huffman: 4 bytes < 5), value raw: 0x03 and the bytes.
    assert block.endswith(b"\x03\xff\xfe\xfd")
    assert block[1] & 0x80  # the name was Huffman-coded


def test_size_updates_down_then_up() -> None:
    encoder = Encoder()
    encoder.encode([(b"x-a", b"1"), (b"x-b", b"2")])
    encoder.set_max_table_size(0)
    assert encoder.table == []
    encoder.set_max_table_size(4096)
    block = encoder.encode([(b":method", b"GET")])
    assert block == b"\x20\x3f\xe1\x1f\x82"  # update to 0, update to 4096, index 2
    assert encoder.encode([(b":method", b"GET")]) == b"\x82"  # owed once only


def test_size_update_to_the_same_size_is_not_sent() -> None:
    encoder = Encoder()
    encoder.set_max_table_size(4096)
    encoder.set_max_table_size(65536)  # capped to ENCODER_TABLE_LIMIT: no change
    assert encoder.encode([(b":method", b"GET")]) == b"\x82"


def test_size_update_lowest_then_final() -> None:
    encoder = Encoder()
    encoder.set_max_table_size(100)
    encoder.set_max_table_size(50)
    encoder.set_max_table_size(300)
    block = encoder.encode([])
    decoder = Decoder(CAP)
    assert decoder.decode(block) == []
    assert block == b"\x3f\x13\x3f\x8d\x02"  # 50, then 300


def test_negative_table_size_is_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        Encoder().set_max_table_size(-1)


# ---------------------------------------------------------------------------
# Decoder errors and limits


@pytest.mark.parametrize(
    ("block", "message"),
    [
        (b"\x80", "index 0"),
        (b"\xbe", "index 62 past the end"),
        (b"\x40\x01a\x01b\xbf", "index 63 past the end"),
        (b"\xff\xff\xff\xff\xff\x0f", "index .* past the end"),
        (b"\x4f", "ends before a string"),  # name index 15, no value
        (b"\xff", "ends inside an integer"),
        (b"\xff\x80", "ends inside an integer"),
        (b"\xff\x80\x80\x80\x80\x80\x80", "integer longer than 5 bytes"),
        (b"\xff" + b"\xff" * 10, "integer longer than 5 bytes"),
        (b"\x00", "ends before a string"),
        (b"\x00\x01a", "ends before a string"),
        (b"\x40\x05abc", "string literal of 5 bytes past the end"),
        (b"\x00\x7f\xff\xff\xff\xff\x0f", "string literal of .* past the end"),
        (b"\x00\x81\xff\x00", "padding of 8 bits"),
        (b"\x00\x82\x1f\xff\x00", "padding of 11 bits"),
        (b"\x00\x81\x18\x00", "not all 1s"),
        (b"\x00\x81\x00\x00", "not all 1s"),  # inside the code of '0'
        (b"\x00\x84\xff\xff\xff\xff\x00", "EOS symbol"),
        (b"\x00\x85\x1f\xff\xff\xff\xff\x00", "EOS symbol"),  # 'a', then EOS
        (b"\x3f\xe2\x1f", "size update to 4097, over the 4096"),
        (b"\x82\x20", "size update after a header field"),
        (b"\x20\x82\x20", "size update after a header field"),
    ],
)
def test_decoder_errors(block: bytes, message: str) -> None:
    with pytest.raises(HpackError, match=message) as caught:
        Decoder(CAP).decode(block)
    assert type(caught.value) is HpackError


def test_size_updates_at_the_start() -> None:
    decoder = Decoder(CAP)
    decoder.decode(b"\x40\x01a\x01b")
    assert decoder.decode(b"\x20\x3f\xe1\x1f\x82") == [(b":method", b"GET")]
    assert decoder.table == []  # emptied by the update to 0
    decoder = Decoder(CAP, max_table_size=100)
    decoder.decode(b"\x3f\x45")  # 100: allowed
    with pytest.raises(HpackError, match="over the 100 bytes"):
        decoder.decode(b"\x3f\x46")


def test_entry_bigger_than_the_table_empties_it() -> None:
    decoder = Decoder(CAP, max_table_size=100)
    decoder.decode(b"\x40\x01a\x01b")
    assert decoder.table_size == 34
    value = b"v" * 70  # 1 + 70 + 32 > 100
    assert decoder.decode(b"\x40\x01a\x46" + value) == [(b"a", value)]
    assert decoder.table == []
    assert decoder.table_size == 0


def test_literal_may_name_the_entry_it_evicts() -> None:
    """§4.4: the name is read before the insertion evicts its entry."""
    decoder = Decoder(CAP, max_table_size=70)
    decoder.decode(b"\x40\x04name\x05value")  # 41 bytes
    assert decoder.decode(b"\x7e\x06value2") == [(b"name", b"value2")]
    assert decoder.table == [(b"name", b"value2")]


def test_compaction_keeps_indices() -> None:
    """Many evictions (the list is cut now and then): indices stay right."""
    decoder = Decoder(CAP, max_table_size=200)
    for number in range(500):
        value = b"%d" % number
        assert decoder.decode(b"\x40\x01x" + bytes([len(value)]) + value) == [(b"x", value)]
        expected = [(b"x", b"%d" % n) for n in range(number, max(-1, number - 5), -1)]
        assert decoder.table == expected
        assert decoder.decode(b"\xbe") == [expected[0]]


def test_header_list_cap() -> None:
    fields = [(b"x-a", b"1" * 20), (b"x-b", b"2" * 20)]  # 55 bytes each
    block = hpack.Encoder().encode(fields)
    assert Decoder(110).decode(block) == fields
    with pytest.raises(HeaderListTooLarge, match="larger than 109 bytes"):
        Decoder(109).decode(block)


def test_hpack_bomb() -> None:
    """One 4000-byte entry then 10,000 references to it: stopped at the cap, little memory."""
    name = b"x"
    value = b"v" * (4000 - 32 - len(name))
    block = b"\x40\x01x\x7f" + _integer_tail(len(value) - 127) + value + b"\xbe" * 10_000
    decoder = Decoder(65536)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        with pytest.raises(HeaderListTooLarge):
            decoder.decode(block)
        retained, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert decoder.table_size == 4000
    assert retained - before < 100 * 1024
    assert peak - before < 100 * 1024


def _integer_tail(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _decode_or_hpack_error(decoder: Decoder, block: bytes) -> None:
    try:
        fields = decoder.decode(block)
    except HpackError:
        return
    assert all(type(name) is bytes and type(value) is bytes for name, value in fields)


@settings(max_examples=2000, deadline=None)
@given(st.lists(st.binary(max_size=64), min_size=1, max_size=4), st.integers(0, 400))
def test_random_bytes_only_raise_hpack_error(blocks: list[bytes], cap: int) -> None:
    decoder = Decoder(cap, max_table_size=256)
    for block in blocks:
        _decode_or_hpack_error(decoder, block)


@settings(max_examples=1000, deadline=None)
@given(
    st.lists(field_strategy, min_size=1, max_size=8),
    st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=4),
    st.booleans(),
)
def test_mutated_blocks_only_raise_hpack_error(
    fields: list[Field], mutations: list[tuple[int, int]], truncate: bool
) -> None:
    """Valid blocks (ours and hpack's, so Huffman and indices) with bytes changed."""
    for block in (Encoder().encode(fields), hpack.Encoder().encode(fields)):
        data = bytearray(block)
        for position, byte in mutations:
            data[position % len(data)] = byte
        if truncate:
            del data[mutations[0][0] % len(data) :]
        _decode_or_hpack_error(Decoder(CAP), bytes(data))


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=200))
def test_huffman_round_trip(data: bytes) -> None:
    """Every byte value through our Huffman coder, checked against hpack's."""
    field = (b"x", data)
    block = Encoder().encode([field])
    assert hpack.Decoder().decode(block, raw=True) == [field]
    theirs = hpack.Encoder().encode([field], huffman=True)
    assert Decoder(CAP).decode(theirs) == [field]

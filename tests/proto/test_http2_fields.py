"""Request header checks moved from h2 into bascule (proto/http2/fields.py).

h2's inbound validation is off; every check it made must still be made once,
with the outcome it had: a connection error (GOAWAY PROTOCOL_ERROR) for what
h2 refused, a 400 on the stream for what only bascule refuses.  The
differential tests feed the same bytes to a stock ``h2`` server (validation
on) and to bascule, and require the same verdict.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

import h2.config
import h2.connection
import h2.exceptions
import hpack
import pytest
from hyperframe.frame import GoAwayFrame
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bascule.proto.events import BodyEnd, RequestReceived
from bascule.proto.http2 import fields as checks
from bascule.proto.http2.connection import ConnectionEnded, H2Connection, H2Event, StreamRejected
from bascule.proto.http2.fields import check, join_cookies
from tests.proto.test_http2_connection import frames

Header = tuple[bytes, bytes]

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
PROTOCOL_ERROR = 0x1
END_STREAM = 0x1
END_HEADERS = 0x4

GOOD: list[Header] = [
    (b":method", b"GET"),
    (b":scheme", b"http"),
    (b":path", b"/"),
    (b":authority", b"example.com"),
]


def _frame(ftype: int, flags: int, stream_id: int, payload: bytes) -> bytes:
    return (
        struct.pack(">I", len(payload))[1:]
        + bytes([ftype, flags])
        + struct.pack(">I", stream_id)
        + payload
    )


def _connection_bytes(*blocks: tuple[int, list[Header], bool]) -> bytes:
    """Preface, empty SETTINGS, then one HEADERS frame per (stream, fields, end_stream)."""
    encoder = hpack.Encoder()
    data = PREFACE + _frame(0x4, 0, 0, b"")
    for stream_id, fields, end in blocks:
        flags = END_HEADERS | (END_STREAM if end else 0)
        data += _frame(0x1, flags, stream_id, encoder.encode(fields))
    return data


def _h2_refuses(data: bytes) -> bool:
    """Does a stock h2 server (inbound validation on) end the connection?"""
    config = h2.config.H2Configuration(client_side=False, header_encoding=None)
    conn = h2.connection.H2Connection(config=config)
    conn.initiate_connection()
    try:
        conn.receive_data(data)
    except h2.exceptions.ProtocolError:
        return True
    return False


def _bascule(data: bytes) -> tuple[list[H2Event], H2Connection]:
    conn = H2Connection()
    conn.initiate()
    conn.data_to_send()
    return conn.receive_data(data), conn


def _refused(events: list[H2Event]) -> bool:
    return any(isinstance(e, ConnectionEnded) and e.error_code == PROTOCOL_ERROR for e in events)


CASES = [
    pytest.param([*GOOD, (b"X-Upper", b"1")], id="uppercase-name"),
    pytest.param([*GOOD, (b"x y", b"1")], id="space-in-name"),
    pytest.param([*GOOD, (b"x:y", b"1")], id="colon-in-name"),
    pytest.param([*GOOD, (b"x\xff", b"1")], id="high-byte-in-name"),
    pytest.param([*GOOD, (b"", b"1")], id="empty-name"),
    pytest.param([*GOOD, (b"x", b"a\rb")], id="cr-in-value"),
    pytest.param([*GOOD, (b"x", b"a\nb")], id="lf-in-value"),
    pytest.param([*GOOD, (b"x", b"a\x00b")], id="nul-in-value"),
    pytest.param([*GOOD, (b"x", b" a")], id="leading-space"),
    pytest.param([*GOOD, (b"x", b"a\t")], id="trailing-tab"),
    pytest.param([*GOOD, (b"te", b"gzip")], id="te-not-trailers"),
    pytest.param([*GOOD, (b"connection", b"close")], id="connection"),
    pytest.param([*GOOD, (b"transfer-encoding", b"chunked")], id="transfer-encoding"),
    pytest.param([*GOOD, (b"upgrade", b"h2c")], id="upgrade"),
    pytest.param([*GOOD, (b":method", b"GET")], id="duplicate-pseudo"),
    pytest.param([GOOD[0], (b"x", b"1"), *GOOD[1:]], id="pseudo-after-regular"),
    pytest.param([*GOOD, (b":foo", b"1")], id="unknown-pseudo"),
    pytest.param(GOOD[1:], id="no-method"),
    pytest.param([g for g in GOOD if g[0] != b":scheme"], id="no-scheme"),
    pytest.param([g for g in GOOD if g[0] != b":path"], id="no-path"),
    pytest.param([*GOOD, (b":status", b"200")], id="status-in-request"),
    pytest.param([*GOOD, (b":protocol", b"websocket")], id="protocol-without-connect"),
    pytest.param(
        [(b":method", b"CONNECT"), (b":authority", b"a"), (b":path", b"/")],
        id="plain-connect-with-path",
    ),
    pytest.param(
        [(b":method", b"CONNECT"), (b":protocol", b"websocket"), (b":authority", b"a")],
        id="extended-connect-without-path",
    ),
    pytest.param(GOOD[:3], id="no-authority-nor-host"),
    pytest.param([*GOOD, (b"host", b"other.example")], id="host-mismatch"),
    pytest.param([*GOOD[:3], (b"host", b"a"), (b"host", b"a")], id="two-hosts"),
    pytest.param([GOOD[0], GOOD[1], (b":path", b""), GOOD[3]], id="empty-path"),
]


@pytest.mark.parametrize("fields", CASES)
def test_what_h2_refused_still_ends_the_connection(fields: list[Header]) -> None:
    """Each of h2's inbound checks: a stock h2 refuses it, and so does bascule, the same way."""
    data = _connection_bytes((1, fields, True))
    assert _h2_refuses(data)
    events, conn = _bascule(data)
    assert len(events) == 1
    assert isinstance(events[0], ConnectionEnded)
    assert events[0].error_code == PROTOCOL_ERROR
    assert [(g.error_code, g.last_stream_id) for g in _goaways(conn)] == [(PROTOCOL_ERROR, 1)]
    assert conn.receive_data(_connection_bytes()[len(PREFACE) :]) == []  # closed for good


def _goaways(conn: H2Connection) -> list[GoAwayFrame]:
    return [f for f in frames(conn.data_to_send()) if isinstance(f, GoAwayFrame)]


def test_earlier_good_request_in_the_same_read_is_dropped_like_h2_did() -> None:
    """h2 raised inside receive_data: nothing of that read reached the app."""
    bad = [*GOOD, (b"X-Upper", b"1")]
    events, conn = _bascule(_connection_bytes((1, GOOD, True), (3, bad, True)))
    assert [type(e) for e in events] == [ConnectionEnded]
    assert [g.last_stream_id for g in _goaways(conn)] == [3]


def test_bad_trailers_end_the_connection() -> None:
    data = _connection_bytes((1, GOOD, False), (1, [(b":path", b"/x")], True))
    assert _h2_refuses(data)
    events, conn = _bascule(data)
    assert _refused(events)
    assert [g.last_stream_id for g in _goaways(conn)] == [1]


def test_good_trailers_end_the_request_body() -> None:
    data = _connection_bytes((1, GOOD, False), (1, [(b"x-checksum", b"abc")], True))
    assert not _h2_refuses(data)
    events, _ = _bascule(data)
    assert [type(e).__name__ for e in events] == ["RequestReceived", "BodyEnd"]


def test_what_h2_allowed_and_bascule_refuses_is_a_400_on_the_stream() -> None:
    data = _connection_bytes((1, [*GOOD, (b"x", b"a\x01b")], True), (3, GOOD, True))
    assert not _h2_refuses(data)
    events, _ = _bascule(data)
    assert [type(e) for e in events] == [StreamRejected, RequestReceived, BodyEnd]
    assert isinstance(events[0], StreamRejected)
    assert events[0].status == 400


def test_split_cookies_are_joined_last_before_the_checks() -> None:
    """As h2 normalised: crumbs joined with "; ", moved after the other fields."""
    fields = [GOOD[0], (b"cookie", b"a=1 "), *GOOD[1:], (b"cookie", b"b=2"), (b"x", b"y")]
    data = _connection_bytes((1, fields, True))
    # A crumb with a trailing space and a cookie before the pseudo-header
    # fields are fine once joined, as they were for h2.
    assert not _h2_refuses(data)
    events, _ = _bascule(data)
    request = events[0]
    assert isinstance(request, RequestReceived)
    assert request.headers == [(b"host", b"example.com"), (b"x", b"y"), (b"cookie", b"a=1 ; b=2")]
    assert join_cookies([(b"cookie", b"a"), (b"x", b"1")]) == [(b"x", b"1"), (b"cookie", b"a")]


def test_check_reports_the_pseudo_header_fields() -> None:
    checked = check([*GOOD, (b"host", b"example.com")])
    assert checked.violation is None
    assert checked.malformed is None
    assert checked.has_host
    assert checked.pseudo[b":path"] == b"/"


_NAMES = st.sampled_from(
    [b":method", b":path", b":scheme", b":authority", b":status", b":protocol", b":x",
     b"host", b"te", b"cookie", b"connection", b"x", b"X", b"a:b", b"", b"a b"]
)  # fmt: skip
_VALUES = st.sampled_from(
    [b"GET", b"CONNECT", b"/", b"", b"http", b"example.com", b"trailers", b"gzip",
     b" x", b"x\t", b"a\rb", b"a\x00", b"a\x01", b"websocket", b"a b"]
)  # fmt: skip


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(_NAMES, _VALUES), max_size=8), st.booleans())
def test_same_verdict_as_h2_for_any_header_block(fields: list[Header], as_trailers: bool) -> None:
    """Differential: bascule ends the connection exactly when a stock h2 server did."""
    if as_trailers:
        data = _connection_bytes((1, GOOD, False), (1, fields, True))
    else:
        data = _connection_bytes((1, fields, True))
    events, _ = _bascule(data)
    assert _refused(events) == _h2_refuses(data)


@pytest.fixture
def cold_memos() -> Iterator[None]:
    """Start with empty memos of known-good fields; leave them empty."""
    memos = (checks.GOOD_NAMES, checks.GOOD_VALUES, checks.GOOD_TARGETS, checks.GOOD_METHODS)
    for memo in memos:
        memo.clear()
    yield
    for memo in memos:
        memo.clear()


@pytest.mark.usefixtures("cold_memos")
def test_fields_that_passed_are_remembered_and_skip_the_searches() -> None:
    block = [*GOOD, (b"user-agent", b"h2load"), (b"accept", b"*/*")]
    assert check(block).malformed is None
    assert {b"user-agent", b"accept"} <= checks.GOOD_NAMES
    assert {b"GET", b"http", b"/", b"example.com", b"h2load", b"*/*"} <= checks.GOOD_VALUES
    assert {b"GET"} == checks.GOOD_METHODS
    assert {b"/", b"example.com"} == checks.GOOD_TARGETS
    # A known-good field next to a bad one: the bad one is still found.
    assert check([*block, (b"x", b"a\x01")]).malformed is not None
    assert check([*block, (b"X", b"1")]).violation == "uppercase header field name b'X'"
    assert b"a\x01" not in checks.GOOD_VALUES
    assert b"X" not in checks.GOOD_NAMES


@pytest.mark.usefixtures("cold_memos")
def test_trailers_never_vouch_for_a_value_requests_refuse() -> None:
    """Trailers are not searched for the control characters a request head gets a 400 for:
    a value they let through is not remembered as good."""
    trailers = check([(b"x-checksum", b"a\x01")], trailer=True)
    assert trailers.violation is None
    assert b"a\x01" not in checks.GOOD_VALUES
    assert check([*GOOD, (b"x", b"a\x01")]).malformed == "invalid character in the value of 'x'"


@pytest.mark.usefixtures("cold_memos")
def test_the_memos_are_bounded_in_count_and_size() -> None:
    """A full memo starts over, so that values seen once cannot keep out those that repeat."""
    checks.GOOD_VALUES.update(b"seen-once-%d" % i for i in range(checks.MAX_GOOD - 1))
    assert check([*GOOD, (b"x", b"new")]).malformed is None
    assert len(checks.GOOD_VALUES) <= checks.MAX_GOOD
    assert b"seen-once-0" not in checks.GOOD_VALUES  # started over...
    assert {b"new", b"example.com"} <= checks.GOOD_VALUES  # ...with this block's values
    assert check([*GOOD, (b"x", b"a\x01")]).malformed is not None
    long_value = b"v" * (checks.MAX_GOOD_SIZE + 1)
    assert check([*GOOD, (b"x", long_value)]).malformed is None
    assert long_value not in checks.GOOD_VALUES


@pytest.mark.parametrize("fields_", CASES)
def test_a_warm_memo_changes_no_verdict(fields_: list[Header]) -> None:
    """Every refused block is refused the same way whether its good fields were seen before."""
    for memo in (checks.GOOD_NAMES, checks.GOOD_VALUES, checks.GOOD_TARGETS, checks.GOOD_METHODS):
        memo.clear()
    cold = check(fields_)
    check([*GOOD, (b"x", b"1"), (b"host", b"example.com"), (b"te", b"trailers")])
    for name, value in fields_:
        check([*GOOD, (b"x-" + name.strip(b":").lower() or b"x-", value)])
    warm = check(fields_)
    assert (warm.violation, warm.malformed) == (cold.violation, cold.malformed)


@pytest.mark.parametrize(
    ("path", "malformed"),
    [
        (b"/a/b?c=d&e=%20", None),
        (b"/" + b"x" * 500, None),
        (b"/a b", "invalid character in :path b'/a b'"),
        (b"/caf\xc3\xa9", "invalid character in :path b'/caf\\xc3\\xa9'"),
        (b"/a\x7f", "invalid character in :path b'/a\\x7f'"),
    ],
)
def test_the_path_is_visible_ascii(path: bytes, malformed: str | None) -> None:
    block = [(b":method", b"GET"), (b":scheme", b"http"), (b":path", path), GOOD[3]]
    checked = check(block)
    assert checked.violation is None
    assert checked.malformed == malformed

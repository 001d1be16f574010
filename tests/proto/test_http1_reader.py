"""Parsing requests: events, split-point invariance, malformed input and limits."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bascule.proto import (
    NEED_DATA,
    PAUSED,
    BodyChunk,
    BodyEnd,
    H1Connection,
    Http1Limits,
    RemoteProtocolError,
    RequestReceived,
    ResponseHead,
)
from bascule.proto.events import Event
from tests.support.h1 import (
    HOST,
    Framing,
    Header,
    chunked,
    converse,
    describe,
    drain,
    feed,
    feed_split,
    request,
    ways_to_feed,
)

GET = (
    b"GET /search/items?q=caf%C3%A9&page=2 HTTP/1.1\r\n"
    b"Host: example.com\r\n"
    b"User-Agent: test/1.0\r\n"
    b"X-Mixed-CASE: Some Value\r\n"
    b"Accept: */*\r\n"
    b"\r\n"
)


def single(events: list[Event]) -> RequestReceived:
    first = events[0]
    assert isinstance(first, RequestReceived)
    return first


def body_of(events: list[Event]) -> bytes:
    return b"".join(e.data for e in events if isinstance(e, BodyChunk))


def feed_error(data: bytes, limits: Http1Limits | None = None) -> RemoteProtocolError:
    conn = H1Connection(limits)
    with pytest.raises(RemoteProtocolError) as info:
        feed(conn, [data])
    return info.value


# well-formed requests ----------------------------------------------------


def test_get_is_parsed_into_request_and_body_end() -> None:
    conn = H1Connection()
    conn.receive_data(GET)
    events = drain(conn)

    assert len(events) == 2
    req = single(events)
    assert isinstance(events[1], BodyEnd)
    assert req.stream_id == 1
    assert req.method == "GET"
    assert req.path == b"/search/items"
    assert req.query == b"q=caf%C3%A9&page=2"
    assert req.headers == [
        (b"host", b"example.com"),
        (b"user-agent", b"test/1.0"),
        (b"x-mixed-case", b"Some Value"),
        (b"accept", b"*/*"),
    ]
    assert req.http_version == "1.1"
    assert req.keep_alive is True
    assert req.expect_continue is False


def test_no_bytes_means_need_data() -> None:
    conn = H1Connection()
    assert conn.next_event() is NEED_DATA
    conn.receive_data(GET[:20])
    assert conn.next_event() is NEED_DATA
    assert conn.waiting_for_head


def test_get_gives_identical_events_however_it_is_split() -> None:
    expected = describe(feed(H1Connection(), [GET]), merge_body=False)
    for label, events in feed_split(GET):
        assert describe(events, merge_body=False) == expected, label


def test_request_without_query_has_empty_query() -> None:
    req = single(feed(H1Connection(), [request(target="/a/b")]))
    assert (req.path, req.query) == (b"/a/b", b"")


def test_path_is_kept_raw_not_decoded() -> None:
    req = single(feed(H1Connection(), [request(target="/a%20b%2Fc?x=%20")]))
    assert req.path == b"/a%20b%2Fc"
    assert req.query == b"x=%20"


def test_header_values_may_hold_tab_and_utf8_bytes() -> None:
    data = request(headers=[*HOST, (b"X-A", b"a\tb"), (b"X-B", b"caf\xc3\xa9")])
    req = single(feed(H1Connection(), [data]))
    assert req.headers[1:] == [(b"x-a", b"a\tb"), (b"x-b", b"caf\xc3\xa9")]


def test_header_value_surrounding_whitespace_is_stripped() -> None:
    # RFC 9112 §5: field-line = field-name ":" OWS field-value OWS, and RFC 9110
    # §5.5: a parser MUST exclude that whitespace from the field value.
    data = b"GET / HTTP/1.1\r\nHost: example.com\r\nX-Pad:   padded value  \t\r\n\r\n"
    for label, events in feed_split(data):
        assert single(events).headers[1] == (b"x-pad", b"padded value"), label


def test_content_length_body_at_every_split() -> None:
    body = b"hello, world\r\n0\r\n\r\n"  # looks like chunked framing, must not matter
    data = request("POST", "/upload", body=body)
    for label, events in feed_split(data):
        assert describe(events) == [
            (
                "request",
                "POST",
                b"/upload",
                b"",
                [(b"host", b"example.com"), (b"content-length", b"%d" % len(body))],
                "1.1",
                True,
                False,
            ),
            ("body", body),
            ("end",),
        ], label
        assert all(len(e.data) > 0 for e in events if isinstance(e, BodyChunk)), label


def test_chunked_body_arrives_as_body_chunks_at_every_split() -> None:
    body = b"The quick brown fox jumps over the lazy dog"
    data = request("PUT", "/c", body=body, framing="chunked", chunk_sizes=[1, 7, 16])
    for label, events in feed_split(data):
        req = single(events)
        assert req.headers[-1] == (b"transfer-encoding", b"chunked"), label
        assert all(isinstance(e, BodyChunk) for e in events[1:-1]), label
        assert isinstance(events[-1], BodyEnd), label
        assert body_of(events) == body, label


def test_chunk_extensions_are_ignored() -> None:
    head = request("POST", framing="chunked").removesuffix(b"0\r\n\r\n")
    data = head + b"3;name=value\r\nabc\r\n0;last\r\n\r\n"
    for label, events in feed_split(data):
        assert body_of(events) == b"abc", label


def test_empty_content_length_body_gives_no_body_chunk() -> None:
    data = b"POST / HTTP/1.1\r\nHost: example.com\r\nContent-Length: 0\r\n\r\n"
    events = feed(H1Connection(), [data])
    assert [type(e) for e in events] == [RequestReceived, BodyEnd]


def test_trailer_fields_do_not_change_the_delivered_request_headers() -> None:
    # Trailers come after the head was handed out (and became the ASGI scope's
    # headers); RFC 9110 §6.5.1: they must not be merged into the header section.
    conn = H1Connection()
    conn.receive_data(request("POST", body=b"abc", framing="chunked").removesuffix(b"0\r\n\r\n"))
    req = single(drain(conn))
    before = list(req.headers)
    conn.receive_data(b"0\r\nX-Trailer: 1\r\nHost: evil.example\r\n\r\n")
    assert isinstance(drain(conn)[-1], BodyEnd)
    assert req.headers == before


def test_absolute_form_target_replaces_host_header() -> None:
    data = b"GET http://example.com:81/x?y HTTP/1.1\r\nHost: other.example\r\nAccept: */*\r\n\r\n"
    for label, events in feed_split(data):
        req = single(events)
        assert (req.path, req.query) == (b"/x", b"y"), label
        hosts = [v for n, v in req.headers if n == b"host"]
        assert hosts == [b"example.com:81"], label
        assert (b"accept", b"*/*") in req.headers, label


def test_absolute_form_without_path_means_root() -> None:
    data = b"GET https://example.com?q=1 HTTP/1.1\r\nHost: example.com\r\n\r\n"
    req = single(feed(H1Connection(), [data]))
    assert (req.path, req.query) == (b"/", b"q=1")
    assert [v for n, v in req.headers if n == b"host"] == [b"example.com"]


def test_asterisk_form_is_kept_as_path() -> None:
    req = single(feed(H1Connection(), [request("OPTIONS", "*")]))
    assert (req.method, req.path, req.query) == ("OPTIONS", b"*", b"")


def test_authority_form_is_kept_as_path_for_connect() -> None:
    data = request("CONNECT", "example.com:443", headers=[(b"Host", b"example.com:443")])
    req = single(feed(H1Connection(), [data]))
    assert (req.method, req.path, req.query) == ("CONNECT", b"example.com:443", b"")


def test_http10_request_needs_no_host_and_defaults_to_close() -> None:
    req = single(feed(H1Connection(), [b"GET /old HTTP/1.0\r\n\r\n"]))
    assert req.http_version == "1.0"
    assert req.keep_alive is False


def test_http10_keep_alive_is_honoured() -> None:
    data = b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
    for label, events in feed_split(data):
        req = single(events)
        assert (req.http_version, req.keep_alive) == ("1.0", True), label


def test_http11_connection_close_is_not_keep_alive() -> None:
    req = single(feed(H1Connection(), [request(headers=[*HOST, (b"Connection", b"close")])]))
    assert req.keep_alive is False


def test_expect_continue_is_flagged_on_http11_only() -> None:
    expect = (b"Expect", b"100-continue")
    req11 = single(feed(H1Connection(), [request(headers=[*HOST, expect])]))
    req10 = single(feed(H1Connection(), [request(headers=[expect], version="1.0")]))
    assert req11.expect_continue is True
    assert req10.expect_continue is False


def test_leading_empty_line_before_request_is_tolerated() -> None:
    # RFC 9112 §2.2: a server SHOULD ignore at least one empty line before the request-line.
    req = single(feed(H1Connection(), [b"\r\n" + request()]))
    assert req.path == b"/"


# malformed input ---------------------------------------------------------

H = b"Host: example.com\r\n"

MALFORMED = {
    "content-length and transfer-encoding": (
        b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"0\r\n\r\n"
    ),
    "duplicate content-length": (
        b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 3\r\nContent-Length: 3\r\n\r\nabc"
    ),
    "content-length list": b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 3, 3\r\n\r\nabc",
    "invalid content-length": b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 3x\r\n\r\nabc",
    "negative content-length": b"POST / HTTP/1.1\r\n" + H + b"Content-Length: -1\r\n\r\n",
    "invalid chunk size": (
        b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n"
    ),
    "chunk longer than its size": (
        b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n3\r\nabcd\r\n0\r\n\r\n"
    ),
    "transfer-encoding not ending in chunked": (
        b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: gzip\r\n\r\nabc"
    ),
    "control character in header value": b"GET / HTTP/1.1\r\n" + H + b"X: a\x01b\r\n\r\n",
    "NUL in header value": b"GET / HTTP/1.1\r\n" + H + b"X: a\x00b\r\n\r\n",
    "bare CR in header value": b"GET / HTTP/1.1\r\n" + H + b"X: a\rb\r\n\r\n",
    "bare CR after request line": b"GET / HTTP/1.1\r" + H + b"\r\n",
    "bare LF line endings": b"GET / HTTP/1.1\r\nHost: example.com\nX: b\n\n",
    "obs-fold": b"GET / HTTP/1.1\r\n" + H + b"X: a\r\n b\r\n\r\n",
    "space before colon": b"GET / HTTP/1.1\r\nHost : example.com\r\n\r\n",
    "invalid header name": b"GET / HTTP/1.1\r\n" + H + b"X\x01Y: a\r\n\r\n",
    "http/1.1 without host": b"GET / HTTP/1.1\r\nAccept: */*\r\n\r\n",
    "http/1.1 with two hosts": b"GET / HTTP/1.1\r\n" + H + b"Host: other.example\r\n\r\n",
    "relative target": b"GET foo HTTP/1.1\r\n" + H + b"\r\n",
    "non-http absolute target": b"GET ftp://example.com/ HTTP/1.1\r\n" + H + b"\r\n",
    "asterisk target with GET": b"GET * HTTP/1.1\r\n" + H + b"\r\n",
    "authority target with GET": b"GET example.com:443 HTTP/1.1\r\n" + H + b"\r\n",
    "raw utf-8 in target": b"GET /caf\xc3\xa9 HTTP/1.1\r\n" + H + b"\r\n",
    "bad method character": b"G@T / HTTP/1.1\r\n" + H + b"\r\n",
    "lowercase method": b"get / HTTP/1.1\r\n" + H + b"\r\n",
    "garbage instead of a request": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
    "unknown minor version": b"GET / HTTP/1.2\r\n" + H + b"\r\n",
}


@pytest.mark.parametrize("data", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_request_is_400_at_every_split(data: bytes) -> None:
    for label, pieces in ways_to_feed(data):
        conn = H1Connection()
        with pytest.raises(RemoteProtocolError) as info:
            feed(conn, pieces)
        assert info.value.status_hint == 400, label
        assert str(info.value), label


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (MALFORMED["http/1.1 without host"], "without a Host"),
        (MALFORMED["http/1.1 with two hosts"], "more than one Host"),
        (MALFORMED["duplicate content-length"], "Content-Length"),
        (MALFORMED["content-length and transfer-encoding"], "Transfer-Encoding"),
        (MALFORMED["invalid chunk size"], "chunk size"),
        (MALFORMED["non-http absolute target"], "ftp://example.com/"),
        (MALFORMED["bad method character"], "method"),
    ],
)
def test_malformed_request_error_names_the_problem(data: bytes, words: str) -> None:
    assert words.lower() in str(feed_error(data)).lower()


@pytest.mark.parametrize(
    "data",
    [
        b"GET / HTTP/2.0\r\nHost: example.com\r\n\r\n",
        b"GET / HTTP/0.9\r\nHost: example.com\r\n\r\n",
        b"GET /\r\n\r\n",
    ],
    ids=["HTTP/2.0", "HTTP/0.9", "no version"],
)
def test_unsupported_version_is_505(data: bytes) -> None:
    error = feed_error(data)
    assert error.status_hint == 505
    assert "version" in str(error)


@pytest.mark.parametrize("field", [b"Proxy-Connection", b"Connection"])
@pytest.mark.parametrize(
    ("version", "expected"),
    [(b"1.0", "1.0"), (b"1.1", "1.1"), (b"2.0", None), (b"0.9", None)],
)
def test_version_is_read_whatever_keeps_the_connection_alive(
    field: bytes, version: bytes, expected: str | None
) -> None:
    """llhttp reads Proxy-Connection like Connection for keep-alive: the reader's
    shortcut to 1.1 (kept alive, no such field) must not take it for 1.1."""
    data = b"GET / HTTP/%s\r\nHost: example.com\r\n%s: keep-alive\r\n\r\n" % (version, field)
    if expected is None:
        assert feed_error(data).status_hint == 505
        return
    conn = H1Connection()
    conn.receive_data(data)
    assert single(drain(conn)).http_version == expected


def test_error_in_second_pipelined_request_is_raised_after_the_first() -> None:
    conn = H1Connection()
    conn.receive_data(request(target="/first") + b"G@T / HTTP/1.1\r\n\r\n")  # no raise yet
    events = drain(conn)
    assert single(events).path == b"/first"
    assert isinstance(events[-1], BodyEnd)
    assert conn.next_event() is PAUSED
    conn.send(ResponseHead(1, 200, [(b"content-length", b"0")]))
    conn.send(BodyEnd(1))
    conn.start_next_cycle()
    with pytest.raises(RemoteProtocolError, match="malformed request"):
        conn.next_event()


def test_error_without_complete_request_before_it_raises_at_once() -> None:
    conn = H1Connection()
    with pytest.raises(RemoteProtocolError):
        conn.receive_data(b"G@T / HTTP/1.1\r\n\r\n")


# limits ------------------------------------------------------------------

SMALL = Http1Limits(max_header_size=1024, max_target_size=100, max_header_count=8, max_body_size=64)


def test_header_section_within_limit_is_accepted_at_every_split() -> None:
    data = request(headers=[*HOST, (b"X-Big", b"v" * 900)])
    for label, events in feed_split(data, SMALL):
        assert single(events).headers[1] == (b"x-big", b"v" * 900), label


@pytest.mark.parametrize(
    "data",
    [
        request(headers=[*HOST, (b"X-Big", b"v" * 2000)]),
        request(headers=[*HOST, (b"X" * 2000, b"v")]),
        request(headers=[*HOST] + [(b"X-%d" % i, b"v" * 200) for i in range(6)]),
    ],
    ids=["huge value", "huge name", "many medium fields"],
)
def test_header_section_over_limit_is_431_at_every_split(data: bytes) -> None:
    for label, pieces in ways_to_feed(data):
        with pytest.raises(RemoteProtocolError) as info:
            feed(H1Connection(SMALL), pieces)
        assert info.value.status_hint == 431, label


def feed_until_error(
    conn: H1Connection, piece: bytes, times: int
) -> tuple[RemoteProtocolError | None, int]:
    """Feed ``piece`` up to ``times`` times; the error raised (if any) and the bytes fed."""
    fed = 0
    try:
        for _ in range(times):
            conn.receive_data(piece)
            fed += len(piece)
    except RemoteProtocolError as exc:
        return exc, fed
    return None, fed


@pytest.mark.parametrize("step", [1, 7, 100, 1000])
@pytest.mark.parametrize("start", [b"X-Dribble: ", b"X-Dribble"], ids=["value", "name"])
def test_header_that_never_ends_is_431_before_buffering_far_beyond_limit(
    step: int, start: bytes
) -> None:
    conn = H1Connection(SMALL)
    conn.receive_data(b"GET / HTTP/1.1\r\nHost: example.com\r\n" + start)
    error, fed = feed_until_error(conn, b"a" * step, 100 * SMALL.max_header_size // step)
    assert error is not None
    assert error.status_hint == 431
    # At most one read of slack on top of the limit's own (small) multiple.
    assert fed <= 2 * SMALL.max_header_size + step


def test_too_many_header_fields_is_431() -> None:
    fields = [(b"X-%d" % i, b"v") for i in range(SMALL.max_header_count)]
    ok = request(headers=[*HOST, *fields[:-1]])
    too_many = request(headers=[*HOST, *fields])
    assert len(single(feed(H1Connection(SMALL), [ok])).headers) == SMALL.max_header_count
    for label, pieces in ways_to_feed(too_many):
        with pytest.raises(RemoteProtocolError) as info:
            feed(H1Connection(SMALL), pieces)
        assert info.value.status_hint == 431, label
        assert "header fields" in str(info.value), label


def test_many_header_fields_one_per_feed_is_431() -> None:
    conn = H1Connection(SMALL)
    conn.receive_data(b"GET / HTTP/1.1\r\nHost: example.com\r\n")
    pieces = [b"X-%d: v\r\n" % i for i in range(SMALL.max_header_count)] + [b"\r\n"]
    with pytest.raises(RemoteProtocolError) as info:
        feed(conn, pieces)
    assert info.value.status_hint == 431


def test_target_at_limit_is_accepted_and_one_longer_is_414() -> None:
    at_limit = "/" + "a" * (SMALL.max_target_size - 1)
    assert single(feed(H1Connection(SMALL), [request(target=at_limit)])).path == at_limit.encode()
    for label, pieces in ways_to_feed(request(target=at_limit + "a")):
        with pytest.raises(RemoteProtocolError) as info:
            feed(H1Connection(SMALL), pieces)
        assert info.value.status_hint == 414, label


def test_target_dribbled_without_end_is_414() -> None:
    conn = H1Connection(SMALL)
    conn.receive_data(b"GET /")
    error, fed = feed_until_error(conn, b"a", 10 * SMALL.max_target_size)
    assert error is not None
    assert error.status_hint == 414
    assert fed < SMALL.max_target_size


def test_content_length_over_body_limit_is_413_before_any_body() -> None:
    limit = SMALL.max_body_size
    assert limit is not None
    head = b"POST / HTTP/1.1\r\nHost: example.com\r\nContent-Length: %d\r\n\r\n" % (limit + 1)
    error = feed_error(head, SMALL)
    assert error.status_hint == 413
    assert str(limit) in str(error)


def test_body_at_limit_is_accepted() -> None:
    body = b"b" * 64
    framings: list[Framing] = ["content-length", "chunked"]
    for framing in framings:
        data = request("POST", body=body, framing=framing, chunk_sizes=[10])
        events = feed(H1Connection(SMALL), [data])
        assert body_of(events) == body, framing


def test_chunked_body_over_limit_is_413_while_streaming() -> None:
    conn = H1Connection(SMALL)
    conn.receive_data(request("POST", framing="chunked").removesuffix(b"0\r\n\r\n"))
    assert isinstance(drain(conn)[0], RequestReceived)
    conn.receive_data(b"40\r\n" + b"b" * 64 + b"\r\n")
    assert body_of(drain(conn)) == b"b" * 64
    with pytest.raises(RemoteProtocolError) as info:
        conn.receive_data(b"1\r\nb\r\n")
    assert info.value.status_hint == 413


def test_chunked_body_over_limit_is_413_at_every_split() -> None:
    data = request("POST", body=b"b" * 65, framing="chunked", chunk_sizes=[20])
    for label, pieces in ways_to_feed(data):
        with pytest.raises(RemoteProtocolError) as info:
            feed(H1Connection(SMALL), pieces)
        assert info.value.status_hint == 413, label


def test_big_body_then_start_of_next_request_is_not_a_header_error() -> None:
    # The body is no part of a header section: bytes of a body that arrive in
    # the same read as the start of the next request must not count as header bytes.
    limits = Http1Limits(max_header_size=1024)
    body = b"x" * 3000
    conn = H1Connection(limits)
    conn.receive_data(request("POST", body=body) + b"GET / HT")
    assert body_of(drain(conn)) == body


def test_pipelined_small_requests_in_reads_ending_mid_head_are_not_a_header_error() -> None:
    # Each request head is tiny; reads that happen to end inside a head must not
    # add up across requests into a 431.
    limits = Http1Limits(max_header_size=1024, max_pipelined=1000)
    stream = request(target="/p") * 200
    pieces = [stream[i : i + 700] for i in range(0, len(stream), 700)]
    conn = H1Connection(limits)
    events = feed(conn, pieces[:1])
    for piece in pieces[1:]:
        conn.receive_data(piece)
    assert single(events).path == b"/p"
    assert conn.pending_requests > 0


# hypothesis: random valid requests at random split points ------------------

METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]
RESERVED = {b"host", b"content-length", b"transfer-encoding", b"connection", b"expect"}
RESERVED |= {b"upgrade", b"keep-alive", b"proxy-connection", b"te", b"trailer"}

paths = st.from_regex(r"/[A-Za-z0-9\-._~!$&'()*+,;=:@/%]{0,30}", fullmatch=True).filter(
    lambda p: "%" not in p
)
queries = st.one_of(st.just(""), st.from_regex(r"[A-Za-z0-9\-._~=&/?]{1,30}", fullmatch=True))
names = st.from_regex(r"[A-Za-z][A-Za-z0-9\-_]{0,15}", fullmatch=True).filter(
    lambda n: n.lower().encode() not in RESERVED
)
values = st.from_regex(r"([!-~]([ -~]{0,20}[!-~])?)?", fullmatch=True)
header_lists = st.lists(st.tuples(names, values), max_size=8)


@st.composite
def valid_requests(draw: st.DrawFn) -> tuple[bytes, list[tuple[object, ...]]]:
    method = draw(st.sampled_from(METHODS))
    path = draw(paths)
    query = draw(queries)
    headers: list[Header] = [(b"Host", b"example.com")]
    headers += [(n.encode(), v.encode()) for n, v in draw(header_lists)]
    body = draw(st.binary(max_size=300))
    framings: list[Framing] = ["content-length", "chunked"] if body else ["none"]
    framing = draw(st.sampled_from(framings))
    sizes = draw(st.lists(st.integers(1, 50), min_size=1, max_size=5))
    target = path + ("?" + query if query else "")
    data = request(method, target, headers, body, framing=framing, chunk_sizes=sizes)
    expected_headers = [(n.lower(), v) for n, v in headers]
    if framing == "content-length":
        expected_headers.append((b"content-length", b"%d" % len(body)))
    elif framing == "chunked":
        expected_headers.append((b"transfer-encoding", b"chunked"))
    expected: list[tuple[object, ...]] = [
        ("request", method, path.encode(), query.encode(), expected_headers, "1.1", True, False)
    ]
    if body:
        expected.append(("body", body))
    expected.append(("end",))
    return data, expected


@settings(max_examples=300, deadline=None, database=None)
@given(
    st.lists(valid_requests(), min_size=1, max_size=3),
    st.data(),
)
def test_random_valid_requests_at_random_splits_parse_as_generated(
    generated: list[tuple[bytes, list[tuple[object, ...]]]], data: st.DataObject
) -> None:
    stream = b"".join(raw for raw, _ in generated)
    cuts = sorted(data.draw(st.sets(st.integers(1, max(1, len(stream) - 1)), max_size=12)))
    pieces = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    events, _ = converse(pieces)
    assert describe(events) == [item for _, expected in generated for item in expected]


def test_chunked_helper_round_trips() -> None:
    # The builder itself, against the parser, so the tests above test what they claim.
    assert chunked(b"abcdef", [4]) == b"4\r\nabcd\r\n2\r\nef\r\n0\r\n\r\n"
    assert chunked(b"") == b"0\r\n\r\n"


# --- found by the hostile-client corpus and the fuzzers ---------------------------------------


def test_http09_request_line_is_refused_at_once() -> None:
    """``GET /`` with no version: an HTTP/0.9 client sends no headers to wait for."""
    error = feed_error(b"GET /\r\n")
    assert error.status_hint == 400
    assert "HTTP/0.9" in str(error)


@pytest.mark.parametrize(
    "host",
    [b"a b", b"exa mple.com", b"x/y", b"x@y", b"[::1", b"host:port", b'"quoted"', b"a\\b"],
)
def test_invalid_host_is_refused(host: bytes) -> None:
    error = feed_error(b"GET / HTTP/1.1\r\nHost: " + host + b"\r\n\r\n")
    assert error.status_hint == 400
    assert "invalid Host header" in str(error)


@pytest.mark.parametrize(
    "host",
    [
        b"",
        b"example.com",
        b"example.com:8080",
        b"127.0.0.1:80",
        b"[::1]:8000",
        b"xn--caf-dma.fr",
        b"a_b.local:",
    ],
)
def test_valid_hosts_are_accepted(host: bytes) -> None:
    conn = H1Connection()
    request = single(feed(conn, [b"GET / HTTP/1.1\r\nHost: " + host + b"\r\n\r\n"]))
    assert (b"host", host) in request.headers


@pytest.mark.parametrize("te", [b",chunked", b", ,chunked"])
def test_empty_transfer_coding_elements_are_ignored(te: bytes) -> None:
    """RFC 9110 §5.6.1.2: empty list elements do not count."""
    data = (
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: " + te + b"\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    )
    events = feed(H1Connection(), [data])
    assert body_of(events) == b"abc"


def test_bad_request_after_a_declined_upgrade_is_a_protocol_error() -> None:
    """The re-parse of a declined upgrade raises our error type, not httptools' (fuzzer find)."""
    data = (
        b"GET /a HTTP/1.1\r\nHost: x\r\nUpgrade: foo\r\nConnection: Upgrade\r\n\r\n"
        b"GET / HTTP/1.1\r\n\r\n"
    )
    conn = H1Connection()
    conn.receive_data(data)  # raised httptools.HttpParserCallbackError before the fix
    first = conn.next_event()
    assert isinstance(first, RequestReceived)
    assert first.path == b"/a"


@pytest.mark.parametrize(
    "value", [b"upgrade", b"Upgrade", b"UpGrAdE", b"upgrade,", b",upgrade", b"x,\tupgrade"]
)
@pytest.mark.parametrize("field", [b"Connection", b"Proxy-Connection"])
def test_declined_upgrade_is_read_as_plain_http(field: bytes, value: bytes) -> None:
    """An upgrade nobody serves is read again without its upgrade token, from Connection
    and from Proxy-Connection alike (llhttp reads both; the replay recursed without end,
    a segfault in the compiled build, when only Connection lost it)."""
    data = b"GET /a HTTP/1.1\r\nHost: x\r\nUpgrade: foo\r\n" + field + b": " + value + b"\r\n\r\n"
    req = single(feed(H1Connection(accept_upgrades=frozenset({b"websocket"})), [data]))
    assert (req.path, req.upgrade) == (b"/a", False)
    assert [v for n, v in req.headers if n == b"upgrade"] == [b"foo"]


def test_replay_that_still_upgrades_is_refused() -> None:
    """The guard under the replay: a request that would upgrade again on its second
    reading is a protocol error, not another replay."""
    conn = H1Connection()
    conn._replaying = True  # as if this were the replay already
    with pytest.raises(RemoteProtocolError, match="cannot be read as plain HTTP"):
        conn.receive_data(
            b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: foo\r\nConnection: upgrade\r\n\r\n"
        )
    assert conn._replaying is True  # left as the caller set it


@pytest.mark.parametrize(
    ("method", "fields", "upgrade"),
    [
        ("GET", [(b"Upgrade", b"websocket"), (b"Connection", b"Upgrade")], True),
        ("GET", [(b"UPGRADE", b"websocket"), (b"connection", b"keep-alive, upgrade")], True),
        ("GET", [(b"Upgrade", b"websocket")], False),  # llhttp: no "Connection: upgrade"
        ("GET", [(b"Connection", b"Upgrade")], False),
        ("GET", [], False),
        ("POST", [(b"Content-Length", b"0")], False),
        ("CONNECT", [], True),  # the authority-form target, then the tunnel's bytes
    ],
)
def test_upgrade_flag_matches_llhttp(
    method: str, fields: list[tuple[bytes, bytes]], upgrade: bool
) -> None:
    """The reader asks llhttp whether a request upgrades only when it has an Upgrade field
    or is a CONNECT; the answer must be llhttp's in every case."""
    target = "example.com:443" if method == "CONNECT" else "/"
    conn = H1Connection(accept_upgrades=frozenset({b"websocket"}))
    req = single(feed(conn, [request(method, target, headers=[*HOST, *fields])]))
    assert req.upgrade is upgrade
    assert req.method == method

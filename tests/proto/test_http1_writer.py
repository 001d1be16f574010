"""Serialising responses: status line, header section, body framing, misuse."""

from __future__ import annotations

import pytest

from bascule.proto import (
    BodyChunk,
    BodyEnd,
    H1Connection,
    InformationalResponse,
    LocalProtocolError,
    ResponseHead,
)
from bascule.proto.headers import DefaultHeaders
from tests.support.h1 import HOST, Header, ResponseParser, drain, request

DATE = b"Thu, 01 Jan 2026 00:00:00 GMT"
DEFAULTS = DefaultHeaders([(b"date", DATE), (b"server", b"bascule")])
DEFAULT_BLOCK = b"date: " + DATE + b"\r\nserver: bascule\r\n"


def answering(data: bytes = b"") -> H1Connection:
    """A connection that has read one request (a GET by default) and may respond."""
    conn = H1Connection()
    conn.receive_data(data or request())
    drain(conn)
    return conn


def head(conn: H1Connection, status: int, headers: list[Header]) -> bytes:
    return conn.send(ResponseHead(1, status, headers), DEFAULTS)


def header_lines(head_bytes: bytes) -> list[bytes]:
    return head_bytes.split(b"\r\n")[1:-2]


# framing ----------------------------------------------------------------


def test_content_length_response_head_is_exact() -> None:
    conn = answering()
    out = head(conn, 200, [(b"Content-Type", b"text/plain"), (b"Content-Length", b"5")])
    assert out == (
        b"HTTP/1.1 200 OK\r\n"
        b"Content-Type: text/plain\r\n"
        b"content-length: 5\r\n" + DEFAULT_BLOCK + b"\r\n"
    )
    assert conn.send(BodyChunk(1, b"hel")) == b"hel"
    assert conn.send(BodyChunk(1, b"lo")) == b"lo"
    assert conn.send(BodyEnd(1)) == b""
    assert conn.keep_alive is True


def test_content_length_is_written_once() -> None:
    out = head(answering(), 200, [(b"content-length", b"3"), (b"X-A", b"1")])
    assert out.lower().count(b"content-length") == 1


@pytest.mark.parametrize(
    ("given", "written"),
    [(b"0", b"0"), (b"13", b"13"), (b"013", b"13"), (b"000", b"0"), (b"10", b"10")],
)
def test_content_length_is_written_without_leading_zeros(given: bytes, written: bytes) -> None:
    conn = answering()
    out = head(conn, 200, [(b"content-length", given)])
    assert header_lines(out)[0] == b"content-length: " + written
    assert conn.send(BodyEnd(1, None, b"x" * int(written))) == b"x" * int(written)


def test_no_content_length_on_http11_is_chunked() -> None:
    conn = answering()
    out = head(conn, 200, [(b"content-type", b"text/plain")])
    assert out == (
        b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n"
        b"transfer-encoding: chunked\r\n" + DEFAULT_BLOCK + b"\r\n"
    )
    body = conn.send(BodyChunk(1, b"hello"))
    assert body == b"5\r\nhello\r\n"
    assert conn.send(BodyChunk(1, b"")) == b""
    assert conn.send(BodyChunk(1, b"x" * 26)) == b"1a\r\n" + b"x" * 26 + b"\r\n"
    assert conn.send(BodyEnd(1)) == b"0\r\n\r\n"


def test_chunked_response_parses_back_to_the_body() -> None:
    conn = answering()
    wire = head(conn, 200, [])
    for piece in (b"a", b"", b"bc" * 100, b"\r\n0\r\n\r\n"):
        wire += conn.send(BodyChunk(1, piece))
    wire += conn.send(BodyEnd(1))
    (response,) = ResponseParser().feed(wire)
    assert response.complete
    assert response.body == b"a" + b"bc" * 100 + b"\r\n0\r\n\r\n"
    assert (b"transfer-encoding", b"chunked") in response.headers


def test_http10_response_without_length_is_close_delimited() -> None:
    conn = answering(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    out = head(conn, 200, [(b"content-type", b"text/plain")])
    assert out == (
        b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n"
        b"connection: close\r\n" + DEFAULT_BLOCK + b"\r\n"
    )
    assert b"transfer-encoding" not in out
    assert conn.send(BodyChunk(1, b"raw bytes")) == b"raw bytes"
    assert conn.send(BodyEnd(1)) == b""
    assert conn.keep_alive is False


def test_http10_keep_alive_response_with_length_says_keep_alive() -> None:
    conn = answering(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    out = head(conn, 200, [(b"content-length", b"0")])
    assert b"connection: keep-alive\r\n" in out
    assert conn.keep_alive is True


def test_head_response_keeps_content_length_but_sends_no_body() -> None:
    conn = answering(request("HEAD"))
    out = head(conn, 200, [(b"content-length", b"5")])
    assert out == b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n" + DEFAULT_BLOCK + b"\r\n"
    assert conn.send(BodyChunk(1, b"hello")) == b""
    assert conn.send(BodyEnd(1)) == b""
    assert conn.keep_alive is True


def test_head_response_without_length_is_not_chunked() -> None:
    conn = answering(request("HEAD"))
    out = head(conn, 200, [])
    assert b"transfer-encoding" not in out
    assert conn.send(BodyChunk(1, b"ignored")) == b""
    assert conn.send(BodyEnd(1)) == b""


@pytest.mark.parametrize("status", [204, 304])
def test_204_and_304_never_carry_a_body(status: int) -> None:
    conn = answering()
    out = head(conn, status, [(b"etag", b'"v1"')])
    assert b"transfer-encoding" not in out
    assert out.endswith(b"\r\n\r\n")
    assert conn.send(BodyChunk(1, b"should not be sent")) == b""
    assert conn.send(BodyEnd(1)) == b""
    assert conn.keep_alive is True


def test_204_drops_content_length() -> None:
    out = head(answering(), 204, [(b"Content-Length", b"5"), (b"x-a", b"1")])
    assert out == b"HTTP/1.1 204 No Content\r\nx-a: 1\r\n" + DEFAULT_BLOCK + b"\r\n"


def test_304_keeps_content_length_but_no_body() -> None:
    # RFC 9110 §8.6: a 304 may carry the Content-Length of the selected representation.
    conn = answering()
    out = head(conn, 304, [(b"content-length", b"5")])
    assert b"content-length: 5\r\n" in out
    assert conn.send(BodyChunk(1, b"hello")) == b""
    assert conn.send(BodyEnd(1)) == b""


def test_app_connection_close_header_ends_keep_alive() -> None:
    conn = answering()
    out = head(conn, 200, [(b"Connection", b"close"), (b"content-length", b"0")])
    assert out.lower().count(b"connection") == 1
    assert b"connection: close\r\n" in out
    assert conn.keep_alive is False


def test_app_transfer_encoding_header_is_dropped() -> None:
    conn = answering()
    out = head(conn, 200, [(b"Transfer-Encoding", b"gzip"), (b"content-length", b"2")])
    assert b"gzip" not in out
    assert b"transfer-encoding" not in out.lower()
    assert conn.send(BodyChunk(1, b"ok")) == b"ok"


def test_request_connection_close_is_echoed() -> None:
    conn = answering(request(headers=[*HOST, (b"Connection", b"close")]))
    out = head(conn, 200, [(b"content-length", b"0")])
    assert b"connection: close\r\n" in out
    assert conn.keep_alive is False


# body length against Content-Length -------------------------------------------


def test_more_bytes_than_content_length_is_an_error() -> None:
    conn = answering()
    head(conn, 200, [(b"content-length", b"3")])
    assert conn.send(BodyChunk(1, b"ab")) == b"ab"
    with pytest.raises(LocalProtocolError, match="longer than its Content-Length"):
        conn.send(BodyChunk(1, b"cd"))


def test_fewer_bytes_than_content_length_is_an_error() -> None:
    conn = answering()
    head(conn, 200, [(b"content-length", b"3")])
    conn.send(BodyChunk(1, b"ab"))
    with pytest.raises(LocalProtocolError, match="shorter than its Content-Length"):
        conn.send(BodyEnd(1))


def test_zero_content_length_with_a_byte_is_an_error() -> None:
    conn = answering()
    head(conn, 200, [(b"content-length", b"0")])
    assert conn.send(BodyChunk(1, b"")) == b""
    with pytest.raises(LocalProtocolError):
        conn.send(BodyChunk(1, b"x"))


def test_content_length_with_leading_zeros_counts_its_value() -> None:
    """Twenty-five zeros and a 5: five bytes, however many digits (written normalised)."""
    out = head(answering(), 200, [(b"content-length", b"0" * 25 + b"5")])
    assert b"content-length: 5\r\n" in out


@pytest.mark.parametrize(
    "value", [b"-1", b"abc", b"1.5", b" 5", b"+5", b"", b"9" * 20, b"1" * 5000]
)
def test_invalid_content_length_is_an_error(value: bytes) -> None:
    with pytest.raises(LocalProtocolError, match="Content-Length"):
        head(answering(), 200, [(b"content-length", value)])


# invalid headers and statuses ---------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "index"),
    [
        ([(b"x-ok", b"1"), (b"x-split", b"a\r\nSet-Cookie: evil=1")], 1),
        ([(b"x-lf", b"a\nb")], 0),
        ([(b"x-cr", b"a\rb")], 0),
        ([(b"x-nul", b"a\x00b")], 0),
        ([(b"x-ok", b"1"), (b"x-ok2", b"2"), (b"bad name", b"v")], 2),
        ([(b"bad:name", b"v")], 0),
        ([(b"", b"v")], 0),
        ([(b"x-ok", b"1"), (b"x-\r\ninjected", b"v")], 1),
    ],
    ids=[
        "crlf value",
        "lf value",
        "cr value",
        "nul value",
        "space name",
        "colon name",
        "empty name",
        "crlf name",
    ],
)
def test_invalid_header_is_an_error_naming_it(headers: list[Header], index: int) -> None:
    with pytest.raises(LocalProtocolError, match=rf"headers\[{index}\]"):
        head(answering(), 200, headers)


def test_lines_seen_good_do_not_let_a_bad_one_through() -> None:
    """Checked lines are remembered; a bad line beside them is still refused, every time."""
    good = [(b"x-seen", b"1"), (b"content-type", b"text/plain")]
    head(answering(), 200, good)
    head(answering(), 200, good)  # now all remembered
    for _ in range(2):
        with pytest.raises(LocalProtocolError, match=r"headers\[1\]"):
            head(answering(), 200, [good[0], (b"x-bad", b"1\r\nx-injected: 1"), good[1]])
    with pytest.raises(LocalProtocolError, match=r"headers\[0\]"):
        head(answering(), 200, [(b"x-nul", b"a\x00b"), *good])


def test_invalid_header_in_a_framing_field_is_an_error() -> None:
    with pytest.raises(LocalProtocolError):
        head(answering(), 200, [(b"connection", b"close\r\nx-injected: 1")])


def test_tab_in_header_value_is_allowed() -> None:
    out = head(answering(), 200, [(b"x-tab", b"a\tb"), (b"content-length", b"0")])
    assert b"x-tab: a\tb\r\n" in out


@pytest.mark.parametrize("status", [0, 99, 100, 101, 199, 1000, -200])
def test_final_status_outside_200_999_is_an_error(status: int) -> None:
    conn = answering()
    with pytest.raises(LocalProtocolError, match=str(status)):
        head(conn, status, [])
    assert conn.send(ResponseHead(1, 200, [(b"content-length", b"0")]))  # still IDLE


@pytest.mark.parametrize(
    ("status", "line"),
    [
        (200, b"HTTP/1.1 200 OK\r\n"),
        (404, b"HTTP/1.1 404 Not Found\r\n"),
        (418, b"HTTP/1.1 418 I'm a Teapot\r\n"),
        (299, b"HTTP/1.1 299 \r\n"),
        (599, b"HTTP/1.1 599 \r\n"),
        (999, b"HTTP/1.1 999 \r\n"),
    ],
)
def test_status_line(status: int, line: bytes) -> None:
    out = head(answering(), status, [(b"content-length", b"0")])
    assert out.startswith(line)
    (response,) = ResponseParser().feed(out)
    assert response.status == status


def test_body_chunk_before_response_head_is_an_error() -> None:
    conn = answering()
    with pytest.raises(LocalProtocolError, match="BodyChunk"):
        conn.send(BodyChunk(1, b"x"))
    with pytest.raises(LocalProtocolError, match="BodyEnd"):
        conn.send(BodyEnd(1))


def test_second_response_head_is_an_error() -> None:
    conn = answering()
    head(conn, 200, [(b"content-length", b"0")])
    with pytest.raises(LocalProtocolError, match="ResponseHead"):
        head(conn, 200, [])


def test_body_after_body_end_is_an_error() -> None:
    conn = answering()
    head(conn, 200, [])
    conn.send(BodyEnd(1))
    with pytest.raises(LocalProtocolError):
        conn.send(BodyChunk(1, b"late"))


# default headers ----------------------------------------------------------------


def test_app_server_header_replaces_the_default_one() -> None:
    out = head(answering(), 200, [(b"Server", b"my-app"), (b"content-length", b"0")])
    assert out == (
        b"HTTP/1.1 200 OK\r\nServer: my-app\r\ncontent-length: 0\r\ndate: " + DATE + b"\r\n\r\n"
    )
    assert out.lower().count(b"server:") == 1


def test_default_override_is_case_insensitive_both_ways() -> None:
    defaults = DefaultHeaders([(b"Date", DATE), (b"X-Powered-By", b"bascule")])
    conn = answering()
    out = conn.send(ResponseHead(1, 200, [(b"x-powered-by", b"app")]), defaults)
    assert [line for line in header_lines(out) if line.lower().startswith(b"x-powered-by")] == [
        b"x-powered-by: app"
    ]
    assert b"Date: " + DATE + b"\r\n" in out


def test_defaults_are_kept_for_the_next_response() -> None:
    conn = answering(request() + request())
    head(conn, 200, [(b"server", b"app"), (b"content-length", b"0")])
    conn.send(BodyEnd(1))
    conn.start_next_cycle()
    drain(conn)
    out = head(conn, 200, [(b"content-length", b"0")])
    assert out.endswith(DEFAULT_BLOCK + b"\r\n")


# interim responses ----------------------------------------------------------------


def test_early_hints_are_written_with_their_headers() -> None:
    conn = answering()
    hints = InformationalResponse(1, 103, [(b"link", b"</style.css>; rel=preload")])
    assert conn.send(hints) == (
        b"HTTP/1.1 103 Early Hints\r\nlink: </style.css>; rel=preload\r\n\r\n"
    )
    out = head(conn, 200, [(b"content-length", b"0")])
    assert out.startswith(b"HTTP/1.1 200 OK\r\n")


def test_no_interim_response_for_http10() -> None:
    conn = answering(b"GET / HTTP/1.0\r\n\r\n")
    assert conn.send(InformationalResponse(1, 103, [(b"link", b"</a>")])) == b""
    assert head(conn, 200, [(b"content-length", b"0")]).startswith(b"HTTP/1.1 200 OK\r\n")


@pytest.mark.parametrize("status", [101, 200, 99, 204])
def test_interim_status_must_be_1xx_other_than_101(status: int) -> None:
    with pytest.raises(LocalProtocolError):
        answering().send(InformationalResponse(1, status, []))


def test_interim_response_with_bad_header_is_an_error() -> None:
    with pytest.raises(LocalProtocolError, match=r"headers\[0\]"):
        answering().send(InformationalResponse(1, 103, [(b"link", b"a\r\nb")]))


def test_interim_response_after_final_head_is_an_error() -> None:
    conn = answering()
    head(conn, 200, [])
    with pytest.raises(LocalProtocolError):
        conn.send(InformationalResponse(1, 103, []))


def test_file_framing_for_bytes_sent_past_the_connection() -> None:
    """sendfile bodies: framing around them, counted against Content-Length."""
    conn = answering()
    head(conn, 200, [(b"content-length", b"10")])
    assert conn.file_framing(11) is None  # more than declared: send() says what is wrong
    assert conn.file_framing(6) == (b"", b"")
    assert conn.send(BodyChunk(1, b"abcd")) == b"abcd"  # 10 - 6 left: exactly 4
    assert conn.send(BodyEnd(1)) == b""
    chunked = answering()
    head(chunked, 200, [])
    assert chunked.file_framing(300) == (b"12c\r\n", b"\r\n")
    assert chunked.file_framing(0) == (b"", b"")
    head_request = answering(request(method="HEAD"))
    head(head_request, 200, [(b"content-length", b"10")])
    assert head_request.file_framing(10) is None  # no body to send
    with pytest.raises(LocalProtocolError, match="cannot send body bytes in state IDLE"):
        answering().file_framing(1)

"""Validation of the headers an app sends (HTTP/1.1 writer and HTTP/2
``response_fields``), compared with an independent reading of RFC 9110:
a field name is a token (§5.6.2), a field value holds visible characters,
obs-text, spaces and tabs only (§5.5).  Any CR, LF or NUL is refused
(response splitting); every valid field is written and reads back intact.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bascule.proto import H1Connection
from bascule.proto.errors import LocalProtocolError
from bascule.proto.events import BodyEnd, ResponseHead
from bascule.proto.http2.connection import response_fields
from tests.fuzz.strategies import FIELD_VALUE_RE, FUZZ, TOKEN_RE, tokens
from tests.support.h1 import ResponseParser, drain

# Names the HTTP/1.1 writer replaces with its own framing (checked elsewhere).
FRAMING = {b"content-length", b"connection", b"transfer-encoding"}
NASTY = [
    b"\r",
    b"\n",
    b"\r\n",
    b"\x00",
    b"\t",
    b" ",
    b"\x7f",
    b"\x0b",
    b"\x1f",
    b"\x80",
    b"\xff",
    b":",
    b'"',
    b"(",
    b"@",
]

names = tokens.map(str.encode) | st.lists(
    st.sampled_from(NASTY) | st.binary(min_size=1, max_size=3) | tokens.map(str.encode), max_size=4
).map(b"".join)
values = st.lists(
    st.sampled_from(NASTY) | st.binary(max_size=4) | st.text(max_size=6).map(str.encode), max_size=5
).map(b"".join)
header_lists = st.lists(st.tuples(names, values), min_size=1, max_size=4)


def valid(headers: list[tuple[bytes, bytes]]) -> bool:
    return all(TOKEN_RE.match(n) and FIELD_VALUE_RE.match(v) for n, v in headers)


def h1_send(headers: list[tuple[bytes, bytes]]) -> bytes:
    conn = H1Connection()
    conn.receive_data(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    drain(conn)
    return conn.send(ResponseHead(1, 200, headers)) + conn.send(BodyEnd(1))


@FUZZ
@given(header_lists)
def test_http1_writer_accepts_exactly_the_valid_fields(headers: list[tuple[bytes, bytes]]) -> None:
    headers = [(n, v) for n, v in headers if n.lower() not in FRAMING]
    if not valid(headers):
        with pytest.raises(LocalProtocolError):
            h1_send(headers)
        return
    out = h1_send(headers)
    head = out.partition(b"\r\n\r\n")[0]
    assert head.count(b"\r") == head.count(b"\n") == len(head.split(b"\r\n")) - 1
    (response,) = ResponseParser().feed(out)
    assert response.complete
    sent = [(n.lower(), v.strip(b" \t")) for n, v in headers]
    got = [(n, v) for n, v in response.headers if n not in {b"transfer-encoding"}]
    assert got == sent


@FUZZ
@given(header_lists)
def test_http2_fields_accept_exactly_the_valid_fields(headers: list[tuple[bytes, bytes]]) -> None:
    if not valid(headers):
        with pytest.raises(LocalProtocolError):
            response_fields(headers)
        return
    out = response_fields(headers)
    hop = {b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade"}
    assert out == [(n.lower(), v) for n, v in headers if n.lower() not in hop]


@FUZZ
@given(tokens.map(str.encode), values, st.sampled_from([b"\r", b"\n", b"\x00"]), st.integers(0, 10))
def test_cr_lf_nul_anywhere_is_refused(name: bytes, value: bytes, bad: bytes, at: int) -> None:
    at %= len(value) + 1
    poisoned = value[:at] + bad + value[at:]
    for headers in ([(name, poisoned)], [(b"x-ok", b"1"), (name, poisoned)]):
        with pytest.raises(LocalProtocolError):
            h1_send(headers)
        with pytest.raises(LocalProtocolError):
            response_fields(headers)
    # and in the name
    with pytest.raises(LocalProtocolError):
        response_fields([(name[: at % (len(name) + 1)] + bad + name[at % (len(name) + 1) :], b"v")])

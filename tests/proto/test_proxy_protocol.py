"""PROXY protocol v1/v2 parser: valid headers, every rejection, split input."""

from __future__ import annotations

import itertools
import socket
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bascule.proto.proxy_protocol import (
    DEFAULT_MAX_V2_LENGTH,
    V1_MAX_LENGTH,
    V2_SIGNATURE,
    HeaderReader,
    NeedData,
    ProxyHeader,
    ProxyProtocolError,
    crc32c,
    parse,
)

REST = b"GET / HTTP/1.1\r\n\r\n"


def tlv(kind: int, value: bytes) -> bytes:
    return struct.pack("!BH", kind, len(value)) + value


def v2(
    command: int = 1, family: int = 0x11, addresses: bytes | None = None, tlvs: bytes = b""
) -> bytes:
    if addresses is None:
        addresses = socket.inet_aton("192.0.2.1") + socket.inet_aton("192.0.2.2")
        addresses += struct.pack("!HH", 1234, 80)
    body = addresses + tlvs
    return V2_SIGNATURE + bytes([0x20 | command, family]) + struct.pack("!H", len(body)) + body


def with_crc(header: bytes, good: bool = True) -> bytes:
    """``header`` (a v2 header ending with a zeroed CRC32C TLV) with its checksum filled in."""
    value = crc32c(header) ^ (0 if good else 1)
    return header[:-4] + struct.pack("!I", value)


def whole(data: bytes) -> tuple[int, ProxyHeader]:
    result = parse(data)
    assert not isinstance(result, NeedData), result
    return result


# valid headers --------------------------------------------------------------------------


def test_v1_tcp4() -> None:
    line = b"PROXY TCP4 192.0.2.1 192.0.2.2 1234 80\r\n"
    consumed, header = whole(line + REST)
    assert consumed == len(line)
    assert header == ProxyHeader(1, False, "TCP4", ("192.0.2.1", 1234), ("192.0.2.2", 80))
    assert not header.uses_real_endpoints


def test_v1_tcp6_canonicalised() -> None:
    _, header = whole(b"PROXY TCP6 2001:DB8::1 ::1 65535 0\r\n")
    assert header.source == ("2001:db8::1", 65535)
    assert header.destination == ("::1", 0)


def test_v1_unknown_ignores_the_rest_of_the_line() -> None:
    consumed, header = whole(b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\nGET")
    assert consumed == 35
    assert header.family == "UNKNOWN"
    assert header.uses_real_endpoints
    assert whole(b"PROXY UNKNOWN\r\n")[0] == 15


def test_v1_longest_line_is_accepted() -> None:
    line = b"PROXY UNKNOWN " + b"x" * (V1_MAX_LENGTH - 16) + b"\r\n"
    assert len(line) == V1_MAX_LENGTH
    assert whole(line)[0] == V1_MAX_LENGTH


def test_v2_tcp4_tcp6_unix() -> None:
    consumed, header = whole(v2() + REST)
    assert consumed == 28
    assert header.source == ("192.0.2.1", 1234)
    assert header.destination == ("192.0.2.2", 80)
    six = socket.inet_pton(socket.AF_INET6, "2001:db8::1") * 2 + struct.pack("!HH", 1, 2)
    _, header = whole(v2(family=0x21, addresses=six))
    assert header.family == "TCP6"
    assert header.source == ("2001:db8::1", 1)
    paths = b"/a.sock".ljust(108, b"\x00") + b"\x00abstract".ljust(108, b"\x00")
    _, header = whole(v2(family=0x31, addresses=paths))
    assert header.source == ("/a.sock", None)
    assert header.destination == ("@abstract", None)


def test_v2_local_and_unspec_use_real_endpoints() -> None:
    consumed, header = whole(v2(command=0, family=0x00, addresses=b"") + REST)
    assert consumed == 16
    assert header.local
    assert header.uses_real_endpoints
    # LOCAL discards whatever address block follows, even an odd family
    _, header = whole(v2(command=0, family=0x77, addresses=b"\x01\x02\x03"))
    assert header.local
    assert header.source is None
    _, header = whole(v2(command=1, family=0x00, addresses=b""))
    assert not header.local
    assert header.uses_real_endpoints


def test_v2_tlvs_decoded() -> None:
    ssl = struct.pack("!BI", 0x07, 0)
    ssl += tlv(0x21, b"TLSv1.3") + tlv(0x22, b"CN=\xc3\xa9") + tlv(0x23, b"TLS_AES_128_GCM_SHA256")
    ssl += tlv(0x24, b"SHA256") + tlv(0x25, b"RSA2048") + tlv(0x99, b"future")
    tlvs = (
        tlv(0x01, b"h2")
        + tlv(0x02, b"example.com")
        + tlv(0x04, b"")
        + tlv(0x04, b"pad")
        + tlv(0x05, b"u" * 128)
        + tlv(0x20, ssl)
        + tlv(0x30, b"blue")
        + tlv(0xE0, b"\x00\x00\x00\x00\x00\x00\x00\x07")
    )
    _, header = whole(v2(tlvs=tlvs))
    assert header.alpn == b"h2"
    assert header.authority == "example.com"
    assert header.unique_id == b"u" * 128
    assert header.netns == "blue"
    assert header.ssl is not None
    assert header.ssl.client_ssl
    assert header.ssl.cert_conn
    assert header.ssl.cert_sess
    assert header.ssl.verified
    assert header.ssl.version == "TLSv1.3"
    assert header.ssl.cn == "CN=é"
    assert header.ssl.cipher == "TLS_AES_128_GCM_SHA256"
    assert (header.ssl.sig_alg, header.ssl.key_alg) == ("SHA256", "RSA2048")
    assert [kind for kind, _ in header.tlvs] == [1, 2, 4, 4, 5, 0x20, 0x30, 0xE0]
    extension = header.as_extension()
    assert extension["command"] == "PROXY"
    assert extension["ssl"]["version"] == "TLSv1.3"
    assert [0xE0, b"\x00" * 7 + b"\x07"] in extension["tlvs"]


def test_v2_ssl_not_verified() -> None:
    _, header = whole(v2(tlvs=tlv(0x20, struct.pack("!BI", 0x03, 1))))
    assert header.ssl is not None
    assert header.ssl.cert_conn
    assert not header.ssl.verified
    _, header = whole(v2(tlvs=tlv(0x20, struct.pack("!BI", 0x01, 0))))
    assert header.ssl is not None
    assert not header.ssl.verified


def test_v2_crc32c_checked() -> None:
    header = v2(tlvs=tlv(0x02, b"a.example") + tlv(0x03, b"\x00\x00\x00\x00"))
    assert whole(with_crc(header))[1].authority == "a.example"
    with pytest.raises(ProxyProtocolError, match="CRC32C checksum mismatch"):
        parse(with_crc(header, good=False))


def test_crc32c_known_value() -> None:
    assert crc32c(b"123456789") == 0xE3069283  # RFC 3720 / iSCSI check value


# rejections -------------------------------------------------------------------------------

BAD_V1 = {
    "http request": (b"GET / HTTP/1.1\r\n", "no PROXY protocol header"),
    "lowercase": (b"proxy TCP4 1.1.1.1 1.1.1.1 1 1\r\n", "no PROXY protocol header"),
    "no space": (b"PROXYTCP4\r\n", "no PROXY protocol header"),
    "protocol": (b"PROXY TCP5 1.1.1.1 1.1.1.1 1 1\r\n", "unknown protocol"),
    "empty": (b"PROXY \r\n", "unknown protocol"),
    "fields": (b"PROXY TCP4 1.1.1.1 1.1.1.1 1\r\n", "got 5 fields"),
    "double space": (b"PROXY TCP4  1.1.1.1 1.1.1.1 1 1\r\n", "got 7 fields"),
    "v6 in tcp4": (b"PROXY TCP4 ::1 ::1 1 1\r\n", "bad IPv4 address"),
    "v4 in tcp6": (b"PROXY TCP6 1.1.1.1 1.1.1.1 1 1\r\n", "bad IPv6 address"),
    "leading zero ip": (b"PROXY TCP4 01.1.1.1 1.1.1.1 1 1\r\n", "bad IPv4 address"),
    "zone id": (b"PROXY TCP6 fe80::1%eth0 ::1 1 1\r\n", "bad IPv6 address"),
    "port range": (b"PROXY TCP4 1.1.1.1 1.1.1.1 65536 1\r\n", "out of range"),
    "port zero pad": (b"PROXY TCP4 1.1.1.1 1.1.1.1 080 1\r\n", "bad port"),
    "port sign": (b"PROXY TCP4 1.1.1.1 1.1.1.1 +80 1\r\n", "bad port"),
    "port unicode": ("PROXY TCP4 1.1.1.1 1.1.1.1 ٣ 1\r\n".encode(), "holds byte"),
    "control byte": (b"PROXY TCP4 1.1.1.1\t1.1.1.1 1 1\r\n", "holds byte"),
    "bare lf": (b"PROXY TCP4 1.1.1.1 1.1.1.1 1 1\n", "holds byte"),
    "cr inside": (b"PROXY TCP4\r1.1.1.1", "holds byte"),
    "too long": (b"PROXY UNKNOWN " + b"x" * 100, "longer than 107"),
    "too long crlf": (b"PROXY UNKNOWN " + b"x" * 93 + b"\r\n", "longer than 107"),
}


@pytest.mark.parametrize(("data", "message"), BAD_V1.values(), ids=BAD_V1.keys())
def test_v1_rejections(data: bytes, message: str) -> None:
    with pytest.raises(ProxyProtocolError, match=message):
        parse(data)


BAD_V2 = {
    "signature": (V2_SIGNATURE[:-1] + b"X" + b"\x21\x11\x00\x00", "no PROXY protocol header"),
    "version 1": (V2_SIGNATURE + b"\x11\x11\x00\x00", "unsupported version 1"),
    "command": (V2_SIGNATURE + b"\x22\x11\x00\x00", "unknown command 0x2"),
    "udp4": (v2(family=0x12), "unsupported address family 0x12"),
    "af 4": (v2(family=0x41), "unsupported address family 0x41"),
    "short tcp4": (v2(addresses=b"\x00" * 11), "TCP4 needs 12 address bytes"),
    "short tcp6": (v2(family=0x21, addresses=b"\x00" * 35), "TCP6 needs 36"),
    "short unix": (v2(family=0x31, addresses=b"\x00" * 215), "UNIX needs 216"),
    "tlv truncated": (v2(tlvs=b"\x01\x00"), "truncated TLV"),
    "tlv overrun": (v2(tlvs=b"\x01\x00\x05ab"), "overruns the header"),
    "duplicate tlv": (v2(tlvs=tlv(1, b"h2") + tlv(1, b"h2")), "appears twice"),
    "empty alpn": (v2(tlvs=tlv(1, b"")), "empty ALPN"),
    "authority utf8": (v2(tlvs=tlv(2, b"\xff")), "authority TLV is not utf-8"),
    "authority ctl": (v2(tlvs=tlv(2, b"a\r\nb")), "control characters"),
    "unique id": (v2(tlvs=tlv(5, b"u" * 129)), "unique id of 129 bytes"),
    "crc length": (v2(tlvs=tlv(3, b"\x00")), "CRC32C TLV is not 4 bytes"),
    "ssl short": (v2(tlvs=tlv(0x20, b"\x01\x00")), "SSL TLV shorter than 5"),
    "ssl sub overrun": (v2(tlvs=tlv(0x20, b"\x01\x00\x00\x00\x00\x21\x00\x09v")), "overruns"),
    "ssl ascii": (v2(tlvs=tlv(0x20, b"\x01\x00\x00\x00\x00" + tlv(0x21, b"\xff"))), "ascii"),
    "netns": (v2(tlvs=tlv(0x30, "é".encode())), "netns TLV is not ascii"),
    "too long": (V2_SIGNATURE + b"\x21\x11\xff\xff", "65535 bytes of addresses and TLVs"),
}


@pytest.mark.parametrize(("data", "message"), BAD_V2.values(), ids=BAD_V2.keys())
def test_v2_rejections(data: bytes, message: str) -> None:
    with pytest.raises(ProxyProtocolError, match=message):
        parse(data)


def test_v2_length_bound_is_configurable() -> None:
    header = v2(tlvs=tlv(0x04, b"x" * 100))
    assert not isinstance(parse(header), NeedData)
    with pytest.raises(ProxyProtocolError, match="more than 64"):
        parse(header, max_v2_length=64)
    assert DEFAULT_MAX_V2_LENGTH >= 1024


@pytest.mark.parametrize("first", [b"G", b"\x16", b"\x00", b"\r\n\r\n\x00\r\nQUIX"])
def test_wrong_start_fails_at_once(first: bytes) -> None:
    with pytest.raises(ProxyProtocolError, match="no PROXY protocol header"):
        parse(first)


# incomplete input -------------------------------------------------------------------------


def test_need_data_never_overshoots() -> None:
    for header in (
        b"PROXY TCP4 192.0.2.1 192.0.2.2 1234 80\r\n",
        b"PROXY TCP6 ::1 ::1 1 2\r\n",
        b"PROXY UNKNOWN\r\n",
        v2(),
        v2(command=0, family=0, addresses=b""),
        v2(tlvs=tlv(2, b"a.example")),
    ):
        received = 0
        reads = 0
        while True:
            result = parse(header[:received])
            if not isinstance(result, NeedData):
                break
            assert result.at_least >= 1
            received += result.at_least
            assert received <= len(header), (header, received)
            reads += 1
            assert reads <= len(header)
        assert result == (len(header), whole(header)[1])


def test_reader_returns_leftover() -> None:
    reader = HeaderReader()
    assert isinstance(reader.feed(b"PROXY TCP4 192.0.2.1 "), NeedData)
    assert reader.buffered == 21
    result = reader.feed(b"192.0.2.2 1 2\r\nGET /")
    assert not isinstance(result, NeedData)
    header, leftover = result
    assert header.source == ("192.0.2.1", 1)
    assert leftover == b"GET /"
    assert reader.buffered == 0


VALID = [
    b"PROXY TCP4 192.0.2.1 192.0.2.2 1234 80\r\n",
    b"PROXY TCP6 2001:db8::1 2001:db8::2 65535 443\r\n",
    b"PROXY UNKNOWN\r\n",
    v2(),
    v2(command=0, family=0, addresses=b""),
    v2(tlvs=tlv(1, b"h2") + tlv(2, b"example.com") + tlv(5, b"id")),
    with_crc(v2(tlvs=tlv(0x03, b"\x00\x00\x00\x00"))),
]


@given(
    header=st.sampled_from(VALID),
    trailer=st.binary(max_size=40),
    cuts=st.lists(st.integers(min_value=0, max_value=200), max_size=8),
)
def test_any_split_gives_the_same_result(header: bytes, trailer: bytes, cuts: list[int]) -> None:
    data = header + trailer
    expected = whole(data)
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    reader = HeaderReader()
    got: tuple[ProxyHeader, bytes] | None = None
    leftover = b""
    for start, end in itertools.pairwise(points):
        chunk = data[start:end]
        if got is not None:
            leftover += chunk
            continue
        result = reader.feed(chunk)
        if not isinstance(result, NeedData):
            got = result
            leftover = result[1]
    assert got is not None
    assert got[0] == expected[1]
    assert leftover == trailer
    # every strict prefix of the header is "need more", never an error
    for size in range(len(header)):
        assert isinstance(parse(header[:size]), NeedData)

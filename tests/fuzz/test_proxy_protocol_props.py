"""PROXY protocol v1/v2 headers (bascule.proto.proxy_protocol), property-based.

Generated headers (v1 TCP4/TCP6/UNKNOWN, v2 PROXY/LOCAL over TCP4/TCP6/UNIX
with TLVs), followed by the client's first bytes, parse to the addresses sent
and leave those bytes over, however they are cut; ``NeedData.at_least`` never
asks past the end of the header; garbage only ever raises ProxyProtocolError.
"""

from __future__ import annotations

import ipaddress
import struct

from hypothesis import given
from hypothesis import strategies as st

from bascule.proto.proxy_protocol import (
    V2_SIGNATURE,
    HeaderReader,
    NeedData,
    ProxyHeader,
    ProxyProtocolError,
    parse,
)
from tests.fuzz.strategies import FUZZ

ports = st.integers(0, 65535)
ipv4 = st.integers(0, 2**32 - 1).map(lambda n: str(ipaddress.IPv4Address(n)))
ipv6 = st.integers(0, 2**128 - 1).map(lambda n: str(ipaddress.IPv6Address(n)))
after = st.sampled_from([b"", b"GET / HTTP/1.1\r\n", b"\x16\x03\x01\x02\x00", b"PRI * HTTP/2.0"])

Expected = tuple[int, str, tuple[str, int] | None, tuple[str, int] | None]


@st.composite
def v1_headers(draw: st.DrawFn) -> tuple[bytes, Expected]:
    family = draw(st.sampled_from(["TCP4", "TCP6", "UNKNOWN"]))
    if family == "UNKNOWN":
        return b"PROXY UNKNOWN\r\n", (1, "UNKNOWN", None, None)
    addrs = ipv4 if family == "TCP4" else ipv6
    src, dst, sport, dport = draw(addrs), draw(addrs), draw(ports), draw(ports)
    line = f"PROXY {family} {src} {dst} {sport} {dport}\r\n".encode()
    return line, (1, family, (src, sport), (dst, dport))


@st.composite
def v2_headers(draw: st.DrawFn) -> tuple[bytes, Expected]:
    local = draw(st.booleans())
    family = draw(st.sampled_from(["TCP4", "TCP6"]))
    if family == "TCP4":
        src, dst = draw(ipv4), draw(ipv4)
        fam = 0x11
        block = ipaddress.IPv4Address(src).packed + ipaddress.IPv4Address(dst).packed
    else:
        src, dst = draw(ipv6), draw(ipv6)
        fam = 0x21
        block = ipaddress.IPv6Address(src).packed + ipaddress.IPv6Address(dst).packed
    sport, dport = draw(ports), draw(ports)
    block += struct.pack("!HH", sport, dport)
    tlvs = draw(
        st.lists(
            st.sampled_from(
                [
                    (0x04, b""),
                    (0x04, b"pad"),
                    (0x01, b"h2"),
                    (0x02, b"example.com"),
                    (0x05, b"id-1"),
                ]
            ),
            max_size=3,
            unique_by=lambda tlv: tlv[0] if tlv[0] != 0x04 else object(),  # only NOOP repeats
        )
    )
    block += b"".join(struct.pack("!BH", t, len(v)) + v for t, v in tlvs)
    command = 0x20 if local else 0x21
    header = V2_SIGNATURE + bytes([command, fam]) + struct.pack("!H", len(block)) + block
    if local:
        return header, (2, family, None, None)
    return header, (2, family, (src, sport), (dst, dport))


def check(header: ProxyHeader, expected: Expected) -> None:
    version, family, source, destination = expected
    assert header.version == version
    if source is None:
        assert header.uses_real_endpoints
    else:
        assert header.family == family
        assert header.source == source
        assert header.destination == destination


@FUZZ
@given(v1_headers() | v2_headers(), after)
def test_header_cut_at_every_byte(case: tuple[bytes, Expected], rest: bytes) -> None:
    raw, expected = case
    data = raw + rest
    for cut in [*range(len(raw) + 1), len(data)]:
        reader = HeaderReader()
        result = reader.feed(data[:cut])
        if cut < len(raw):
            assert isinstance(result, NeedData), cut
            assert 1 <= result.at_least <= len(raw) - cut, (cut, result)
            result = reader.feed(data[cut:])
        assert not isinstance(result, NeedData)
        header, leftover = result
        check(header, expected)
        assert leftover == (data[len(raw) :] if cut < len(raw) else data[len(raw) : cut])


@FUZZ
@given(v1_headers() | v2_headers())
def test_reading_exactly_at_least_never_passes_the_header(case: tuple[bytes, Expected]) -> None:
    """A driver that must not consume bytes after the header (TLS follows) reads at_least at a time."""
    raw, expected = case
    got = b""
    result: object = NeedData(0)
    for _ in range(len(raw) + 1):
        result = parse(got)
        if not isinstance(result, NeedData):
            break
        got += raw[len(got) : len(got) + result.at_least]
        assert len(got) <= len(raw)
    assert isinstance(result, tuple)
    consumed, header = result
    assert consumed == len(raw)
    check(header, expected)


@FUZZ
@given(
    st.binary(max_size=300)
    | st.builds(lambda b: b"PROXY " + b, st.binary(max_size=120))
    | st.builds(lambda b: V2_SIGNATURE + b, st.binary(max_size=300)),
    st.integers(0, 400),
)
def test_garbage_only_raises_proxy_protocol_error(data: bytes, cut: int) -> None:
    reader = HeaderReader(max_v2_length=256)
    try:
        result = reader.feed(data[:cut])
        if isinstance(result, NeedData):
            result = reader.feed(data[cut:])
    except ProxyProtocolError as exc:
        status = exc.status_hint
        assert status == 400
        return
    if not isinstance(result, NeedData):
        header, leftover = result
        assert header.version in (1, 2)
        assert data.endswith(leftover)

"""PROXY protocol v1 and v2 headers (HAProxy's proxy-protocol.txt), sans I/O.

A load balancer that speaks the PROXY protocol writes one header before the
client's bytes, naming the client and the address it connected to.  ``parse``
reads that header from the start of a buffer and returns ``(consumed, header)``
once it is whole, a :class:`NeedData` while it is not, and raises
:class:`ProxyProtocolError` as soon as the bytes cannot be a valid header, so a
client that sends ``GET / HTTP/1.1`` where a header belongs fails on its first
byte rather than after a timeout.

Validation is strict, as the specification asks of a receiver: exact
signatures, single spaces and canonical addresses in v1, known version /
command / family values in v2, address blocks and TLVs that fit their lengths,
the CRC32c TLV checked when present.  Every read is bounded: a v1 line is at
most 107 bytes, a v2 header at most ``max_v2_length`` bytes after its 16-byte
preamble.

:class:`NeedData` carries ``at_least``, a number of bytes that can be read
without going past the end of the header; a driver that must not consume the
bytes behind it (TLS follows the header) reads exactly that many.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass
from typing import Any

from bascule.proto.errors import RemoteProtocolError

V1_PREFIX = b"PROXY "
#: Longest v1 line, CRLF included (proxy-protocol.txt §2.1).
V1_MAX_LENGTH = 107
#: Shortest v1 line: ``PROXY UNKNOWN\r\n``.
V1_MIN_LENGTH = 15
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
V2_PREAMBLE = 16
#: Largest v2 address block + TLVs accepted.  The wire format allows 65535;
#: what HAProxy and cloud load balancers send (addresses, ALPN, SNI, a unique
#: id of at most 128 bytes, TLS facts, vendor ids) stays well under 1 KiB.
DEFAULT_MAX_V2_LENGTH = 4096

# v2 TLV types (proxy-protocol.txt §2.2).
PP2_TYPE_ALPN = 0x01
PP2_TYPE_AUTHORITY = 0x02
PP2_TYPE_CRC32C = 0x03
PP2_TYPE_NOOP = 0x04
PP2_TYPE_UNIQUE_ID = 0x05
PP2_TYPE_SSL = 0x20
PP2_SUBTYPE_SSL_VERSION = 0x21
PP2_SUBTYPE_SSL_CN = 0x22
PP2_SUBTYPE_SSL_CIPHER = 0x23
PP2_SUBTYPE_SSL_SIG_ALG = 0x24
PP2_SUBTYPE_SSL_KEY_ALG = 0x25
PP2_TYPE_NETNS = 0x30
PP2_CLIENT_SSL = 0x01
PP2_CLIENT_CERT_CONN = 0x02
PP2_CLIENT_CERT_SESS = 0x04
#: Longest PP2_TYPE_UNIQUE_ID value the specification allows.
MAX_UNIQUE_ID = 128

_SSL_SUBTYPES = {
    PP2_SUBTYPE_SSL_VERSION: "version",
    PP2_SUBTYPE_SSL_CN: "cn",
    PP2_SUBTYPE_SSL_CIPHER: "cipher",
    PP2_SUBTYPE_SSL_SIG_ALG: "sig_alg",
    PP2_SUBTYPE_SSL_KEY_ALG: "key_alg",
}

#: v2 family byte → (name, address block size, struct format).  Datagram
#: families are not listed: bascule serves stream connections only.
_V2_FAMILIES: dict[int, tuple[str, int]] = {
    0x00: ("UNKNOWN", 0),
    0x11: ("TCP4", 12),
    0x21: ("TCP6", 36),
    0x31: ("UNIX", 216),
}

#: Shortest whole v1 line once its protocol word is known (lets a driver read
#: more than one byte at a time without passing the end of the line).
_V1_MIN_BY_FAMILY = {
    b"PROXY TCP4 ": len(b"PROXY TCP4 0.0.0.0 0.0.0.0 0 0\r\n"),
    b"PROXY TCP6 ": len(b"PROXY TCP6 :: :: 0 0\r\n"),
}

#: A v1 or v2 address: (host, port) for TCP, (path, None) for a unix socket.
Address = tuple[str, int] | tuple[str, None]


class ProxyProtocolError(RemoteProtocolError):
    """The bytes at the start of the connection are not a valid PROXY header."""


@dataclass(frozen=True, slots=True)
class NeedData:
    """The header is not complete; ``at_least`` more bytes are part of it."""

    at_least: int


@dataclass(frozen=True, slots=True)
class SslInfo:
    """PP2_TYPE_SSL: what the proxy knows about the client's TLS connection."""

    client_ssl: bool
    cert_conn: bool
    cert_sess: bool
    #: True when the client sent a certificate and the proxy verified it.
    verified: bool
    version: str | None = None
    cn: str | None = None
    cipher: str | None = None
    sig_alg: str | None = None
    key_alg: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The ASGI-extension form."""
        return {
            "client_ssl": self.client_ssl,
            "cert_conn": self.cert_conn,
            "cert_sess": self.cert_sess,
            "verified": self.verified,
            "version": self.version,
            "cn": self.cn,
            "cipher": self.cipher,
            "sig_alg": self.sig_alg,
            "key_alg": self.key_alg,
        }


@dataclass(frozen=True, slots=True)
class ProxyHeader:
    """One parsed header.

    ``local`` is v2's LOCAL command (the proxy's own health check): the
    connection's real endpoints apply, as they do for family ``UNKNOWN``.
    ``source`` / ``destination`` are None then.
    """

    version: int
    local: bool
    family: str
    source: Address | None = None
    destination: Address | None = None
    #: Every TLV as received, in order, as (type, value); NOOP and CRC32C included.
    tlvs: tuple[tuple[int, bytes], ...] = ()
    alpn: bytes | None = None
    authority: str | None = None
    unique_id: bytes | None = None
    ssl: SslInfo | None = None
    netns: str | None = None

    @property
    def uses_real_endpoints(self) -> bool:
        """True when the socket's own addresses apply (LOCAL, UNKNOWN)."""
        return self.local or self.source is None

    def as_extension(self) -> dict[str, Any]:
        """The ``scope["extensions"]["proxy_protocol"]`` value (see docs/proxies.md)."""
        return {
            "version": self.version,
            "command": "LOCAL" if self.local else "PROXY",
            "family": self.family,
            "source": self.source,
            "destination": self.destination,
            "alpn": self.alpn,
            "authority": self.authority,
            "unique_id": self.unique_id,
            "ssl": self.ssl.as_dict() if self.ssl is not None else None,
            "netns": self.netns,
            "tlvs": [list(pair) for pair in self.tlvs],
        }


def parse(
    data: bytes | bytearray, max_v2_length: int = DEFAULT_MAX_V2_LENGTH
) -> tuple[int, ProxyHeader] | NeedData:
    """Parse the header at the start of ``data`` (see the module docstring)."""
    if not data:
        return NeedData(V1_MIN_LENGTH)
    first = data[0]
    if first == 0x50:  # "P"
        return _parse_v1(bytes(data[:V1_MAX_LENGTH]))
    if first == 0x0D:  # "\r"
        return _parse_v2(bytes(data), max_v2_length)
    raise ProxyProtocolError(f"no PROXY protocol header (connection starts with {_show(data)})")


class HeaderReader:
    """Accumulates bytes until a whole header is there.

    ``feed(data)`` returns ``(header, leftover)`` once the header is complete,
    ``leftover`` being the bytes that followed it; ``NeedData`` before.
    """

    __slots__ = ("_buffer", "max_v2_length")

    def __init__(self, max_v2_length: int = DEFAULT_MAX_V2_LENGTH) -> None:
        self._buffer = bytearray()
        self.max_v2_length = max_v2_length

    @property
    def buffered(self) -> int:
        """Bytes received so far."""
        return len(self._buffer)

    def feed(self, data: bytes | bytearray) -> tuple[ProxyHeader, bytes] | NeedData:
        buffer = self._buffer
        buffer += data
        result = parse(buffer, self.max_v2_length)
        if isinstance(result, NeedData):
            return result
        consumed, header = result
        leftover = bytes(buffer[consumed:])
        buffer.clear()
        return header, leftover


# v1 -----------------------------------------------------------------------------


def _parse_v1(data: bytes) -> tuple[int, ProxyHeader] | NeedData:
    end = data.find(b"\r\n")
    if end < 0:
        prefix = data[: len(V1_PREFIX)]
        if not V1_PREFIX.startswith(prefix):
            raise ProxyProtocolError(
                f"no PROXY protocol header (connection starts with {_show(data)})"
            )
        if len(data) >= V1_MAX_LENGTH:
            raise ProxyProtocolError(f"PROXY v1 header longer than {V1_MAX_LENGTH} bytes")
        bad = _v1_bad_byte(data.removesuffix(b"\r"))  # a CR may be the CRLF's start
        if bad is not None:
            raise ProxyProtocolError(f"PROXY v1 header holds byte {bad:#04x}")
        minimum = V1_MIN_LENGTH
        for start, size in _V1_MIN_BY_FAMILY.items():
            if data.startswith(start):
                minimum = size
        return NeedData(max(1, minimum - len(data)))
    line = data[:end]
    if not line.startswith(V1_PREFIX):
        raise ProxyProtocolError(f"no PROXY protocol header (connection starts with {_show(data)})")
    bad = _v1_bad_byte(line)
    if bad is not None:
        raise ProxyProtocolError(f"PROXY v1 header holds byte {bad:#04x}")
    text = line.decode("ascii")
    parts = text.split(" ")
    family = parts[1] if len(parts) > 1 else ""
    consumed = end + 2
    if family == "UNKNOWN":
        # "the receiver must ignore anything presented before the CRLF"
        return consumed, ProxyHeader(1, False, "UNKNOWN")
    if family not in ("TCP4", "TCP6"):
        raise ProxyProtocolError(f"PROXY v1 header: unknown protocol {family[:16]!r}")
    if len(parts) != 6:
        raise ProxyProtocolError(
            "PROXY v1 header: expected 'PROXY TCP4|TCP6 SRC DST SPORT DPORT', "
            f"got {len(parts)} fields"
        )
    version = 4 if family == "TCP4" else 6
    source = _v1_address(parts[2], version), _v1_port(parts[4])
    destination = _v1_address(parts[3], version), _v1_port(parts[5])
    return consumed, ProxyHeader(1, False, family, source, destination)


def _v1_bad_byte(data: bytes) -> int | None:
    for byte in data:
        if byte < 0x20 or byte > 0x7E:
            return byte
    return None


def _v1_address(text: str, version: int) -> str:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise ProxyProtocolError(f"PROXY v1 header: bad IPv{version} address {text!r}") from None
    if address.version != version or "%" in text:
        raise ProxyProtocolError(f"PROXY v1 header: bad IPv{version} address {text!r}")
    return str(address)


def _v1_port(text: str) -> int:
    if not text.isdigit() or not text.isascii() or (len(text) > 1 and text[0] == "0"):
        raise ProxyProtocolError(f"PROXY v1 header: bad port {text[:16]!r}")
    port = int(text)
    if port > 65535:
        raise ProxyProtocolError(f"PROXY v1 header: port {port} out of range")
    return port


# v2 -----------------------------------------------------------------------------


def _parse_v2(data: bytes, max_length: int) -> tuple[int, ProxyHeader] | NeedData:
    head = data[: len(V2_SIGNATURE)]
    if not V2_SIGNATURE.startswith(head):
        raise ProxyProtocolError(f"no PROXY protocol header (connection starts with {_show(data)})")
    if len(data) < V2_PREAMBLE:
        return NeedData(V2_PREAMBLE - len(data))
    ver_cmd, fam, length = struct.unpack_from("!BBH", data, 12)
    if ver_cmd >> 4 != 2:
        raise ProxyProtocolError(f"PROXY v2 header: unsupported version {ver_cmd >> 4}")
    command = ver_cmd & 0x0F
    if command not in (0, 1):
        raise ProxyProtocolError(f"PROXY v2 header: unknown command {command:#x}")
    if length > max_length:
        raise ProxyProtocolError(
            f"PROXY v2 header: {length} bytes of addresses and TLVs, more than {max_length}"
        )
    total = V2_PREAMBLE + length
    if len(data) < total:
        return NeedData(total - len(data))
    body = data[V2_PREAMBLE:total]
    if command == 0:
        # LOCAL: "the receiver must ... use the real connection endpoints and
        # discard the protocol block including the family".
        return total, ProxyHeader(2, True, "UNKNOWN")
    if fam not in _V2_FAMILIES:
        raise ProxyProtocolError(f"PROXY v2 header: unsupported address family {fam:#04x}")
    family, size = _V2_FAMILIES[fam]
    if length < size:
        raise ProxyProtocolError(
            f"PROXY v2 header: {family} needs {size} address bytes, the header has {length}"
        )
    source, destination = _v2_addresses(fam, body[:size])
    tlvs = _split_tlvs(body, size, "PROXY v2 header")
    header = ProxyHeader(2, False, family, source, destination, tlvs)
    return total, _with_tlvs(header, data[:total], size)


def _v2_addresses(fam: int, block: bytes) -> tuple[Address | None, Address | None]:
    if fam == 0x11:
        src, dst, sport, dport = struct.unpack("!4s4sHH", block)
        return (
            (str(ipaddress.IPv4Address(src)), sport),
            (str(ipaddress.IPv4Address(dst)), dport),
        )
    if fam == 0x21:
        src, dst, sport, dport = struct.unpack("!16s16sHH", block)
        return (
            (str(ipaddress.IPv6Address(src)), sport),
            (str(ipaddress.IPv6Address(dst)), dport),
        )
    if fam == 0x31:
        return (_unix_path(block[:108]), None), (_unix_path(block[108:]), None)
    return None, None  # UNSPEC: the real endpoints apply


def _unix_path(raw: bytes) -> str:
    if raw[:1] == b"\x00":  # abstract namespace (Linux)
        return "@" + raw[1:].rstrip(b"\x00").decode("utf-8", "replace")
    return raw.split(b"\x00", 1)[0].decode("utf-8", "replace")


def _split_tlvs(data: bytes, offset: int, where: str) -> tuple[tuple[int, bytes], ...]:
    tlvs = []
    end = len(data)
    while offset < end:
        if end - offset < 3:
            raise ProxyProtocolError(f"{where}: truncated TLV at byte {offset}")
        kind, size = struct.unpack_from("!BH", data, offset)
        offset += 3
        if offset + size > end:
            raise ProxyProtocolError(
                f"{where}: TLV {kind:#04x} of {size} bytes overruns the header"
            )
        tlvs.append((kind, data[offset : offset + size]))
        offset += size
    return tuple(tlvs)


def _with_tlvs(header: ProxyHeader, whole: bytes, size: int) -> ProxyHeader:
    """Check and decode the TLVs HAProxy's specification defines."""
    values: dict[str, Any] = {}
    seen: set[int] = set()
    offset = V2_PREAMBLE + size
    for kind, value in header.tlvs:
        if kind in seen and kind != PP2_TYPE_NOOP:
            raise ProxyProtocolError(f"PROXY v2 header: TLV {kind:#04x} appears twice")
        seen.add(kind)
        if kind == PP2_TYPE_ALPN:
            if not value:
                raise ProxyProtocolError("PROXY v2 header: empty ALPN TLV")
            values["alpn"] = value
        elif kind == PP2_TYPE_AUTHORITY:
            values["authority"] = _text(value, "authority", "utf-8")
        elif kind == PP2_TYPE_CRC32C:
            if len(value) != 4:
                raise ProxyProtocolError("PROXY v2 header: CRC32C TLV is not 4 bytes")
            zeroed = whole[: offset + 3] + b"\x00\x00\x00\x00" + whole[offset + 7 :]
            if crc32c(zeroed) != struct.unpack("!I", value)[0]:
                raise ProxyProtocolError("PROXY v2 header: CRC32C checksum mismatch")
        elif kind == PP2_TYPE_UNIQUE_ID:
            if len(value) > MAX_UNIQUE_ID:
                raise ProxyProtocolError(
                    f"PROXY v2 header: unique id of {len(value)} bytes (at most {MAX_UNIQUE_ID})"
                )
            values["unique_id"] = value
        elif kind == PP2_TYPE_SSL:
            values["ssl"] = _ssl_info(value)
        elif kind == PP2_TYPE_NETNS:
            values["netns"] = _text(value, "netns", "ascii")
        offset += 3 + len(value)
    if not values:
        return header
    return ProxyHeader(
        header.version,
        header.local,
        header.family,
        header.source,
        header.destination,
        header.tlvs,
        **values,
    )


def _ssl_info(value: bytes) -> SslInfo:
    if len(value) < 5:
        raise ProxyProtocolError("PROXY v2 header: SSL TLV shorter than 5 bytes")
    client, verify = struct.unpack_from("!BI", value)
    texts: dict[str, str] = {}
    for kind, sub in _split_tlvs(value, 5, "PROXY v2 SSL TLV"):
        name = _SSL_SUBTYPES.get(kind)
        if name is not None:
            texts[name] = _text(sub, f"SSL {name}", "utf-8" if name == "cn" else "ascii")
    return SslInfo(
        client_ssl=bool(client & PP2_CLIENT_SSL),
        cert_conn=bool(client & PP2_CLIENT_CERT_CONN),
        cert_sess=bool(client & PP2_CLIENT_CERT_SESS),
        verified=verify == 0 and bool(client & (PP2_CLIENT_CERT_CONN | PP2_CLIENT_CERT_SESS)),
        **texts,
    )


def _text(value: bytes, what: str, encoding: str) -> str:
    try:
        text = value.decode(encoding)
    except UnicodeDecodeError:
        raise ProxyProtocolError(f"PROXY v2 header: {what} TLV is not {encoding}") from None
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in text):
        raise ProxyProtocolError(f"PROXY v2 header: {what} TLV holds control characters")
    return text


def _show(data: bytes | bytearray) -> str:
    return repr(bytes(data[:16]))


# CRC32c (Castagnoli, RFC 4960 appendix B), table-driven; used only when a
# header carries the optional PP2_TYPE_CRC32C TLV.


def _crc32c_table() -> tuple[int, ...]:
    table = []
    for n in range(256):
        crc = n
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_CRC32C_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC32c of ``data``."""
    crc = 0xFFFFFFFF
    table = _CRC32C_TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF

"""Trusted proxies and what they say in ``X-Forwarded-*`` and ``Forwarded`` headers.

With ``--proxy-headers``, a request that came from a peer listed in
``--forwarded-allow-ips`` gets its scope's ``client``, ``scheme``, ``server``
and ``host`` header from the proxy's headers; requests from any other peer
are left alone (their ``X-Forwarded-*`` headers stay in ``headers``, unused).
Which peers are trusted is decided once per connection; this module holds the
per-request part, pure and synchronous.

Source of truth, per request:

* When any ``X-Forwarded-For/-Proto/-Host/-Port`` header is present, those
  are used and ``Forwarded`` is ignored; otherwise RFC 7239 ``Forwarded``.
  Mixing both would let a client forge the one its proxy does not write.
* Client: walk the ``X-Forwarded-For`` addresses (or ``Forwarded`` elements'
  ``for=``) from the right, skipping trusted proxies; the first untrusted one
  is the client (everything left of it may be forged by that client).  When
  every hop is trusted, the left-most is the client.  A hop that is not an IP
  address (``unknown``, an obfuscated ``_id``) ends the walk with client None.
* ``X-Forwarded-Proto`` / ``-Host`` / ``-Port``: the right-most value, the one
  the trusted peer wrote.  ``Forwarded``: ``proto=`` and ``host=`` of the
  element the client was taken from.
* Values that do not parse (a scheme other than http/https/ws/wss, a host
  with characters a host cannot have, a port outside 1..65535) are ignored.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from typing import Any

Headers = list[tuple[bytes, bytes]]
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_SCHEMES = {b"http": "http", b"https": "https", b"ws": "http", b"wss": "https"}
_DEFAULT_PORTS = {"http": 80, "https": 443}
_LEGACY = frozenset(
    (b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host", b"x-forwarded-port")
)
#: RFC 3986 host (reg-name, IPv4, [IPv6]) with an optional port.
_HOST = re.compile(rb"^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~!$&'()*+,;=%]+)(?::[0-9]{1,5})?$")
#: One ``Forwarded`` pair: token "=" (token / quoted-string), RFC 7239 §4.
_PAIR = re.compile(
    r'^\s*([!#$%&\'*+\-.^_`|~0-9A-Za-z]+)=("(?:[^"\\]|\\.)*"|[!#$%&\'*+\-.^_`|~0-9A-Za-z:\[\]]*)\s*$'
)


class TrustedProxies:
    """``--forwarded-allow-ips``: addresses, CIDR networks, ``unix`` and ``*``."""

    __slots__ = ("_addresses", "_networks", "everyone", "unix")

    def __init__(self, entries: Iterable[str]) -> None:
        self.everyone = False
        self.unix = False
        addresses: set[str] = set()
        networks: list[IPNetwork] = []
        for raw in entries:
            entry = raw.strip()
            if entry == "*":
                self.everyone = True
            elif entry == "unix":
                self.unix = True
            elif "/" in entry:
                try:
                    networks.append(ipaddress.ip_network(entry, strict=False))
                except ValueError:
                    raise ValueError(f"not a CIDR network: {entry!r}") from None
            else:
                try:
                    addresses.add(str(ipaddress.ip_address(entry.strip("[]"))))
                except ValueError:
                    raise ValueError(
                        f"expected an IP address, a CIDR network, 'unix' or '*', got {entry!r}"
                    ) from None
        self._addresses = frozenset(addresses)
        self._networks = tuple(networks)

    def trusts(self, host: str) -> bool:
        """True if the IP address ``host`` is a trusted proxy."""
        if self.everyone or host in self._addresses:
            return True
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            mapped = address.ipv4_mapped  # a dual-stack socket's view of an IPv4 peer
            if str(mapped) in self._addresses:
                return True
            return any(mapped in net for net in self._networks)
        if str(address) in self._addresses:
            return True
        return any(address in net for net in self._networks)

    def trusts_peer(self, host: str | None, unix: bool) -> bool:
        """True if a connection's peer may set the forwarding headers."""
        if unix:
            return self.unix or self.everyone
        return host is not None and self.trusts(host)


class Forwarded:
    """What the trusted proxy said about one request (None: it did not say)."""

    __slots__ = ("client", "client_set", "host", "port", "scheme")

    def __init__(self) -> None:
        self.client: tuple[str, int] | None = None
        self.client_set = False
        self.scheme: str | None = None
        self.host: bytes | None = None
        self.port: int | None = None


def resolve(headers: Headers, proxies: TrustedProxies) -> Forwarded | None:
    """Read the forwarding headers of a request from a trusted peer; None if there are none."""
    xff: list[bytes] = []
    proto = host = port = None
    forwarded: list[bytes] = []
    legacy = False
    for name, value in headers:
        if name in _LEGACY:
            legacy = True
            if name == b"x-forwarded-for":
                xff.append(value)
            elif name == b"x-forwarded-proto":
                proto = value
            elif name == b"x-forwarded-host":
                host = value
            else:
                port = value
        elif name == b"forwarded":
            forwarded.append(value)
    if legacy:
        result = Forwarded()
        if xff:
            hops = [h.strip() for h in b",".join(xff).decode("latin-1").split(",")]
            result.client = _pick(hops, proxies)[0]
            result.client_set = True
        _set_proto(result, _last(proto))
        _set_host(result, _last(host))
        _set_port(result, _last(port))
        return result
    if forwarded:
        elements = _parse_forwarded(b",".join(forwarded).decode("latin-1"))
        if not elements:
            return None
        result = Forwarded()
        fors = [element.get("for") for element in elements]
        if any(f is not None for f in fors):
            client, index = _pick([f if f is not None else "" for f in fors], proxies)
            result.client = client
            result.client_set = True
            chosen = elements[index]
        else:
            chosen = elements[-1]
        if "proto" in chosen:
            _set_proto(result, chosen["proto"].encode("latin-1"))
        if "host" in chosen:
            _set_host(result, chosen["host"].encode("latin-1"))
        return result
    return None


def apply(scope: dict[str, Any], proxies: TrustedProxies) -> None:
    """Rewrite an ``http`` / ``websocket`` scope from its trusted forwarding headers."""
    result = resolve(scope["headers"], proxies)
    if result is None:
        return
    if result.client_set:
        scope["client"] = result.client
    scheme = result.scheme
    if scheme is not None:
        if scope["type"] == "websocket":
            scope["scheme"] = "wss" if scheme == "https" else "ws"
        else:
            scope["scheme"] = scheme
    else:
        scheme = "https" if scope["scheme"] in ("https", "wss") else "http"
    host, port = result.host, result.port
    if host is not None:
        scope["headers"] = [(n, v) for n, v in scope["headers"] if n != b"host"]
        scope["headers"].insert(0, (b"host", host))
        name, host_port = _split_host(host)
        if port is None:
            port = host_port if host_port is not None else _DEFAULT_PORTS[scheme]
        scope["server"] = (name, port)
    elif port is not None:
        server = scope["server"]
        name = server[0] if server is not None else _host_name(scope["headers"])
        scope["server"] = (name, port)


# parsing helpers ----------------------------------------------------------------


def _last(value: bytes | None) -> bytes | None:
    if value is None:
        return None
    return value.rpartition(b",")[2].strip()


def _set_proto(result: Forwarded, value: bytes | None) -> None:
    if value is not None:
        result.scheme = _SCHEMES.get(value.lower())


def _set_host(result: Forwarded, value: bytes | None) -> None:
    if value and _HOST.match(value):
        port = _split_host(value)[1]
        if port is None or 1 <= port <= 65535:
            result.host = value


def _set_port(result: Forwarded, value: bytes | None) -> None:
    if value and value.isdigit() and len(value) <= 5 and 1 <= int(value) <= 65535:
        result.port = int(value)


def _pick(hops: list[str], proxies: TrustedProxies) -> tuple[tuple[str, int] | None, int]:
    """The right-most untrusted hop as a client address, and its index."""
    for index in range(len(hops) - 1, -1, -1):
        node = _node(hops[index])
        if node is None or not proxies.trusts(node[0]):
            return node, index
    return _node(hops[0]), 0


def _node(text: str) -> tuple[str, int] | None:
    """``1.2.3.4``, ``1.2.3.4:80``, ``::1``, ``[::1]``, ``[::1]:80`` → (ip, port or 0)."""
    text = text.strip()
    port = 0
    if text.startswith("["):
        address, sep, rest = text[1:].partition("]")
        if not sep:
            return None
        if rest:
            if not rest.startswith(":") or not rest[1:].isdigit() or not rest[1:].isascii():
                return None
            port = int(rest[1:])
        text = address
    elif text.count(":") == 1:
        text, _, port_text = text.partition(":")
        if not port_text.isdigit() or not port_text.isascii():
            return None
        port = int(port_text)
    if port > 65535:
        return None
    if "%" in text:
        return None
    try:
        return str(ipaddress.ip_address(text)), port
    except ValueError:
        return None


def _parse_forwarded(value: str) -> list[dict[str, str]]:
    """RFC 7239 elements as dicts of lowercased parameter → unquoted value; [] if malformed."""
    elements: list[dict[str, str]] = []
    for raw in _split_quoted(value, ","):
        if not raw.strip():
            continue
        element: dict[str, str] = {}
        for pair in _split_quoted(raw, ";"):
            m = _PAIR.match(pair)
            if m is None:
                return []
            key, val = m.group(1).lower(), m.group(2)
            if val.startswith('"'):
                val = re.sub(r"\\(.)", r"\1", val[1:-1])
            if key in element:
                return []  # RFC 7239 §4: each parameter at most once per element
            element[key] = val
        elements.append(element)
    return elements


def _split_quoted(text: str, sep: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for char in text:
        if escaped:
            escaped = False
        elif char == "\\" and quoted:
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == sep and not quoted:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    return parts


def _split_host(host: bytes) -> tuple[str, int | None]:
    text = host.decode("latin-1")
    if text.startswith("["):
        name, _, rest = text[1:].partition("]")
        return name, int(rest[1:]) if rest.startswith(":") else None
    name, sep, port = text.partition(":")
    return name, int(port) if sep else None


def _host_name(headers: Headers) -> str:
    for name, value in headers:
        if name == b"host":
            return _split_host(value)[0] if _HOST.match(value) else ""
    return ""

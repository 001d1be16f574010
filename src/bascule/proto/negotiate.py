"""Pick the protocol of a new connection: a pure function of what arrived first."""

from typing import Literal

#: The HTTP/2 client connection preface (RFC 9113 §3.4).
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def sniff(data: bytes) -> Literal["h1", "h2", "more"]:
    """``h2`` for HTTP/2 with prior knowledge, ``h1`` otherwise, ``more`` if undecided yet."""
    if data.startswith(H2_PREFACE):
        return "h2"
    if H2_PREFACE.startswith(data):
        return "more"
    return "h1"


def from_alpn(protocol: str | None) -> Literal["h1", "h2"]:
    """The protocol TLS negotiated (``None``: the client did not use ALPN)."""
    return "h2" if protocol == "h2" else "h1"

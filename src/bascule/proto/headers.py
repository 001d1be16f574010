"""Field grammar checks for what we write (RFC 9110 §5.1, §5.5).

Incoming fields are checked by llhttp (strict mode); these checks guard the
fields an application hands us, so a bad app cannot inject a header or split a
response.
"""

import re
from typing import Final

from bascule.proto.errors import LocalProtocolError

# RFC 9110 §5.1: field-name = token; token = 1*tchar.
_TOKEN: Final = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
# RFC 9110 §5.5: field-value has no CR, LF or NUL; we also refuse other C0
# controls except HTAB, which no legitimate value needs.
BAD_VALUE: Final = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")


def is_token(name: bytes) -> bool:
    """True when ``name`` is a valid field name."""
    return _TOKEN.match(name) is not None


def bad_value_char(value: bytes) -> int | None:
    """Offset of the first character not allowed in a field value, or ``None``."""
    m = BAD_VALUE.search(value)
    return None if m is None else m.start()


#: Content-Length values already turned into numbers: ``int()`` of bytes costs as much as
#: the rest of a response head's checks. Bounded in count.
_LENGTHS: Final[dict[bytes, int]] = {}
_MAX_LENGTHS: Final = 1024
#: Significant digits of the largest Content-Length taken (10**19 - 1 bytes).
_MAX_LENGTH_DIGITS: Final = 19


def length_value(value: bytes) -> int:
    """``int(value)`` of a Content-Length value the caller found to be all digits.

    Raises LocalProtocolError past 19 digits, leading zeros aside (``int()`` itself
    refuses 4,300 digits and more, with a ValueError that would name no field).
    """
    known = _LENGTHS.get(value)
    if known is not None:
        return known
    if len(value) > _MAX_LENGTH_DIGITS and len(value.lstrip(b"0")) > _MAX_LENGTH_DIGITS:
        raise LocalProtocolError(f"Content-Length {value[:40]!r} is too large")
    length = int(value)
    if len(_LENGTHS) < _MAX_LENGTHS:
        _LENGTHS[value] = length
    return length


#: Codes of response fields the writer handles itself.
CONTENT_LENGTH: Final = 1
CONNECTION: Final = 2
TRANSFER_ENCODING: Final = 3
DEFAULT: Final = 4
FRAMING_FIELDS: Final = {
    b"content-length": CONTENT_LENGTH,
    b"connection": CONNECTION,
    b"transfer-encoding": TRANSFER_ENCODING,
}


class DefaultHeaders:
    """Headers the server adds to every response (Date, Server, ``--header``).

    ``encoded`` is the ready-to-write block; an app that sets one of these
    names itself wins, and ``encode_without`` drops ours.
    """

    __slots__ = ("encoded", "names", "pairs", "special")

    def __init__(self, pairs: list[tuple[bytes, bytes]]) -> None:
        self.pairs = pairs
        self.names = frozenset(name.lower() for name, _ in pairs)
        self.encoded = b"".join(b"%b: %b\r\n" % (n, v) for n, v in pairs)
        #: Lowercase names the response writer treats specially → what they are.
        self.special = {**dict.fromkeys(self.names, DEFAULT), **FRAMING_FIELDS}

    def encode_without(self, names: set[bytes]) -> bytes:
        """The block without the fields named in ``names`` (lowercase)."""
        return b"".join(b"%b: %b\r\n" % (n, v) for n, v in self.pairs if n.lower() not in names)


NO_DEFAULT_HEADERS: Final = DefaultHeaders([])

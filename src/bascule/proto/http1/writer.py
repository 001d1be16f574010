"""Response serialisation: status line, header section, and body framing.

The framing is chosen once per response and looked up in ``WRITERS``: a
Content-Length body, a chunked body, a close-delimited body (HTTP/1.0 without
Content-Length), or no body at all (HEAD, 1xx, 204, 304).
"""

import re
from collections.abc import Callable
from enum import Enum
from http import HTTPStatus
from typing import Final

from bascule.proto.errors import LocalProtocolError
from bascule.proto.events import Headers
from bascule.proto.headers import bad_value_char, is_token


class Framing(Enum):
    """How a response body is delimited on the wire."""

    CONTENT_LENGTH = "content-length"
    CHUNKED = "chunked"
    CLOSE = "close-delimited"
    NONE = "no body"


def _status_line(status: int) -> bytes:
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = ""
    return b"HTTP/1.1 %d %s\r\n" % (status, phrase.encode("ascii"))


#: Status lines, built once.  Unknown codes are built on demand and cached too.
STATUS_LINES: Final[dict[int, bytes]] = {int(s): _status_line(int(s)) for s in HTTPStatus}


def status_line(status: int) -> bytes:
    """``HTTP/1.1 <status> <phrase>\\r\\n`` for a status in 100..999."""
    line = STATUS_LINES.get(status)
    if line is None:
        if not 100 <= status <= 999:
            raise LocalProtocolError(f"status {status} is outside 100..999")
        line = STATUS_LINES[status] = _status_line(status)
    return line


def check_field(index: int, name: bytes, value: bytes) -> None:
    """Raise LocalProtocolError for a header the app gave that is not valid on the wire."""
    if not is_token(name):
        raise LocalProtocolError(f"headers[{index}] name {name!r} is not a valid field name")
    bad = bad_value_char(value)
    if bad is not None:
        raise LocalProtocolError(
            f"headers[{index}] value {value!r} has a forbidden character at offset {bad}"
        )


#: Field names already checked to be tokens, mapped to their lowercase form.
#: Apps send the same few names over and over; one dict lookup replaces the
#: grammar check and ``bytes.lower()``.
KNOWN_NAMES: Final[dict[bytes, bytes]] = {}
_MAX_KNOWN_NAMES: Final = 1024
# Controls other than HTAB, CR and LF (those two are counted separately).
_CONTROLS: Final = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def lower_name(headers: Headers, name: bytes) -> bytes:
    """``name`` lowercased, after checking it is a token (else raise, naming the header)."""
    if not is_token(name):
        raise_first_bad(headers)
    lname = name.lower()
    if len(KNOWN_NAMES) < _MAX_KNOWN_NAMES:
        KNOWN_NAMES[name] = lname
    return lname


def check_values(headers: Headers, lines: list[bytes]) -> None:
    """Check the encoded ``name: value\\r\\n`` lines at once.

    Each line we built holds exactly one CR and one LF, so any other CR or LF
    (response splitting) shows in the counts; other controls in one search.
    """
    block = b"".join(lines)
    count = len(lines)
    if block.count(b"\r") != count or block.count(b"\n") != count or _CONTROLS.search(block):
        raise_first_bad(headers)


#: Field values an app gave that passed ``bad_value_char``. Apps send the same few
#: values over and over: a set lookup replaces the search. Bounded in count and in
#: the size of a value kept (long values, such as tokens in cookies, are searched
#: every time and never kept).
CHECKED_VALUES: Final[set[bytes]] = set()
_MAX_CHECKED_VALUES: Final = 4096
_MAX_CHECKED_VALUE_SIZE: Final = 128


def check_value(headers: Headers, value: bytes) -> None:
    """Raise LocalProtocolError (naming the header) if ``value`` may not be written."""
    if value in CHECKED_VALUES:
        return
    if bad_value_char(value) is not None:
        raise_first_bad(headers)
    if len(value) <= _MAX_CHECKED_VALUE_SIZE and len(CHECKED_VALUES) < _MAX_CHECKED_VALUES:
        CHECKED_VALUES.add(value)


def raise_first_bad(headers: Headers) -> None:
    for index, (name, value) in enumerate(headers):
        check_field(index, name, value)
    raise LocalProtocolError("invalid response header")  # pragma: no cover - found above


class BodyWriter:
    """Frames body bytes; counts them against a declared Content-Length."""

    __slots__ = ("remaining",)

    def __init__(self, declared: int) -> None:
        self.remaining = declared

    def content_length(self, data: bytes) -> bytes:
        self.remaining -= len(data)
        if self.remaining < 0:
            raise LocalProtocolError(
                f"response body longer than its Content-Length (by {-self.remaining} bytes)"
            )
        return data

    def content_length_end(self) -> bytes:
        if self.remaining:
            raise LocalProtocolError(
                f"response body shorter than its Content-Length ({self.remaining} bytes missing)"
            )
        return b""

    def chunked(self, data: bytes) -> bytes:
        if not data:
            return b""
        return b"%x\r\n%b\r\n" % (len(data), data)

    def chunked_end(self) -> bytes:
        return b"0\r\n\r\n"

    def plain(self, data: bytes) -> bytes:
        return data

    def nothing(self, data: bytes) -> bytes:
        return b""

    def end_nothing(self) -> bytes:
        return b""


#: Framing → (chunk writer, end writer), as unbound methods of BodyWriter.
WRITERS: Final[
    dict[Framing, tuple[Callable[[BodyWriter, bytes], bytes], Callable[[BodyWriter], bytes]]]
] = {
    Framing.CONTENT_LENGTH: (BodyWriter.content_length, BodyWriter.content_length_end),
    Framing.CHUNKED: (BodyWriter.chunked, BodyWriter.chunked_end),
    Framing.CLOSE: (BodyWriter.plain, BodyWriter.end_nothing),
    Framing.NONE: (BodyWriter.nothing, BodyWriter.end_nothing),
}

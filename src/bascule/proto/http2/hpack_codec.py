"""HPACK (RFC 7541): the header compression of bascule's HTTP/2 connections.

One :class:`Decoder` per connection reads the peer's header blocks; one
:class:`Encoder` per connection writes ours.  Both keep the connection's
dynamic table (§2.3.2, §4): the decoder's must stay in step with the peer's
encoder, the encoder's with the peer's decoder, for the life of the connection.

The decoder parses hostile input, so:

- every failure is an :class:`HpackError` (the connection ends with
  COMPRESSION_ERROR, RFC 9113 §4.3); nothing else escapes, whatever the bytes.
  After one, the decoder's table is out of step with the peer's: drop it;
- the decoded list is capped: as soon as its size (§4.1: name + value + 32 per
  field, as RFC 9113 §6.5.2 counts it) passes ``max_header_list_size``,
  :class:`HeaderListTooLarge` is raised and nothing more is decoded.  One byte
  can name a 4 KiB table entry, so without the cap a 16 KiB block could expand
  to 64 MiB of fields (the "HPACK bomb");
- integers are capped (:data:`MAX_INTEGER_SHIFT`), and every read is checked
  against the block's end.

Huffman strings (§5.2) are decoded four bits at a time through the state
machine that ``huffman.py`` builds at import: two table look-ups per byte, no
loop over bits.

Tables: a dynamic table is a list, oldest entry first, that grows at the end.
Evicted entries at the front are overwritten with an empty placeholder (so
their memory goes at once) and cut off in one slice every :data:`_COMPACT_AT`
evictions, so an insert or an eviction is O(1) amortised, and index ``i``
(§2.3.3) is ``entries[len(entries) - (i - 61)]``.  The encoder also maps each
``(name, value)`` and each name to the insertion number of its newest copy.
"""

from typing import Final

from bascule.proto.http2.huffman import (
    ACCEPT,
    DECODE_FSM,
    EMIT,
    ENCODE_CODES,
    ENCODE_LENGTHS,
    FAIL,
    MAX_PADDING,
    ONES_DEPTH,
    SYMBOL_SHIFT,
)

__all__ = [
    "ENCODER_TABLE_LIMIT",
    "STATIC_TABLE",
    "Decoder",
    "Encoder",
    "HeaderListTooLarge",
    "HpackError",
]

Field = tuple[bytes, bytes]

#: RFC 7541 Appendix A: index 1 is ``STATIC_TABLE[0]``.
STATIC_TABLE: Final[list[Field]] = [
    (b":authority", b""),
    (b":method", b"GET"),
    (b":method", b"POST"),
    (b":path", b"/"),
    (b":path", b"/index.html"),
    (b":scheme", b"http"),
    (b":scheme", b"https"),
    (b":status", b"200"),
    (b":status", b"204"),
    (b":status", b"206"),
    (b":status", b"304"),
    (b":status", b"400"),
    (b":status", b"404"),
    (b":status", b"500"),
    (b"accept-charset", b""),
    (b"accept-encoding", b"gzip, deflate"),
    (b"accept-language", b""),
    (b"accept-ranges", b""),
    (b"accept", b""),
    (b"access-control-allow-origin", b""),
    (b"age", b""),
    (b"allow", b""),
    (b"authorization", b""),
    (b"cache-control", b""),
    (b"content-disposition", b""),
    (b"content-encoding", b""),
    (b"content-language", b""),
    (b"content-length", b""),
    (b"content-location", b""),
    (b"content-range", b""),
    (b"content-type", b""),
    (b"cookie", b""),
    (b"date", b""),
    (b"etag", b""),
    (b"expect", b""),
    (b"expires", b""),
    (b"from", b""),
    (b"host", b""),
    (b"if-match", b""),
    (b"if-modified-since", b""),
    (b"if-none-match", b""),
    (b"if-range", b""),
    (b"if-unmodified-since", b""),
    (b"last-modified", b""),
    (b"link", b""),
    (b"location", b""),
    (b"max-forwards", b""),
    (b"proxy-authenticate", b""),
    (b"proxy-authorization", b""),
    (b"range", b""),
    (b"referer", b""),
    (b"refresh", b""),
    (b"retry-after", b""),
    (b"server", b""),
    (b"set-cookie", b""),
    (b"strict-transport-security", b""),
    (b"transfer-encoding", b""),
    (b"user-agent", b""),
    (b"vary", b""),
    (b"via", b""),
    (b"www-authenticate", b""),
]
_STATIC_COUNT: Final = 61

#: RFC 7541 §4.1: the size of an entry (and of a field, for the list cap) is
#: its name and value lengths plus 32.
ENTRY_OVERHEAD: Final = 32
#: RFC 7541 §4.2 / RFC 9113 §6.5.2: SETTINGS_HEADER_TABLE_SIZE's initial value.
DEFAULT_TABLE_SIZE: Final = 4096
#: The largest dynamic table our encoder keeps, whatever the peer's
#: SETTINGS_HEADER_TABLE_SIZE allows: that setting bounds the peer's memory,
#: not ours (RFC 7541 §4.2 lets an encoder use less).  nghttp2 caps its
#: deflater at 4096 too; Go's x/net/http2 likewise.
ENCODER_TABLE_LIMIT: Final = 4096
#: An integer (§5.1) may take at most five bytes after its prefix (shifts 0,
#: 7, ..., 28): up to 2**35, more than any index, length or table size we can
#: accept, and a bound on overlong encodings (0x80 0x80 ... padding).
MAX_INTEGER_SHIFT: Final = 28
#: Evicted placeholders kept at the front of a table list before the cut.
_COMPACT_AT: Final = 32
#: The placeholder an evicted entry is replaced with (frees its bytes at once).
_EVICTED: Final[Field] = (b"", b"")

#: Encoder choices (§6.2): names whose values are never put in any table, and
#: cookies short enough to be guessed (RFC 7541 §7.1.3; as nghttp2 does).
_NEVER_INDEXED_NAMES: Final = frozenset({b"authorization", b"proxy-authorization", b"set-cookie"})
_SHORT_COOKIE: Final = 20

# First-byte patterns and prefix masks of the representations (§6).
_INDEXED: Final = 0x80
_INDEXED_MASK: Final = 0x7F
_INCREMENTAL: Final = 0x40
_INCREMENTAL_MASK: Final = 0x3F
_SIZE_UPDATE: Final = 0x20
_SIZE_UPDATE_MASK: Final = 0x1F
_NEVER_INDEXED: Final = 0x10
_WITHOUT_INDEXING: Final = 0x00
_LITERAL_MASK: Final = 0x0F
_HUFFMAN: Final = 0x80
_STRING_MASK: Final = 0x7F


def _static_indices() -> tuple[dict[bytes, dict[bytes, int]], dict[bytes, int]]:
    fields: dict[bytes, dict[bytes, int]] = {}
    names: dict[bytes, int] = {}
    for number, (name, value) in enumerate(STATIC_TABLE, 1):
        fields.setdefault(name, {}).setdefault(value, number)
        names.setdefault(name, number)
    return fields, names


_STATIC_INDICES: Final = _static_indices()
#: name -> value -> the first static index of that field. By name, then value: bytes keep
#: their hash, where a tuple key is hashed (and compared) anew at every lookup.
_STATIC_FIELDS: Final[dict[bytes, dict[bytes, int]]] = _STATIC_INDICES[0]
_STATIC_NAMES: Final[dict[bytes, int]] = _STATIC_INDICES[1]
#: The one-byte representation of each index below 127 (§6.1).
_INDEXED_BYTES: Final[list[bytes]] = [bytes([_INDEXED | i]) for i in range(_INDEXED_MASK)]


class HpackError(Exception):
    """A header block that cannot be decoded: the connection ends with COMPRESSION_ERROR."""


class HeaderListTooLarge(HpackError):
    """The decoded header list passed the decoder's cap (HPACK bomb guard)."""


def _decode_integer(data: bytes, pos: int, end: int, mask: int) -> tuple[int, int]:
    """The integer (§5.1) whose prefix is the low bits (``mask``) of ``data[pos]``.

    Returns it and the position after it.  The caller has checked ``pos < end``.
    """
    value = data[pos] & mask
    pos += 1
    if value < mask:
        return value, pos
    shift = 0
    while pos < end:
        byte = data[pos]
        pos += 1
        value += (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift > MAX_INTEGER_SHIFT:
            raise HpackError(
                f"integer longer than {MAX_INTEGER_SHIFT // 7 + 1} bytes past its prefix"
            )
    raise HpackError("header block ends inside an integer")


def _padding_problem(state: int) -> str:
    """Why a Huffman string may not end in ``state`` (RFC 7541 §5.2)."""
    ones = ONES_DEPTH[state]
    if ones > MAX_PADDING:
        return f"Huffman padding of {ones} bits (at most {MAX_PADDING})"
    return "Huffman string ends inside a code: padding that is not all 1s"


def _huffman_decode(data: bytes, start: int, stop: int) -> bytes:
    fsm = DECODE_FSM
    # No code is shorter than 5 bits.  Stores into a buffer sized up front are
    # twice as fast as bytearray.append() once compiled (a generic call).
    out = bytearray((stop - start) * 8 // 5)
    count = 0
    state = 0
    entry = ACCEPT  # the empty string is valid
    for i in range(start, stop):
        byte = data[i]
        entry = fsm[(state << 4) | (byte >> 4)]
        if entry & (EMIT | FAIL):
            if entry & FAIL:
                raise HpackError("EOS symbol inside a Huffman-coded string")
            out[count] = entry >> SYMBOL_SHIFT
            count += 1
        entry = fsm[((entry & 0xFF) << 4) | (byte & 0x0F)]
        if entry & (EMIT | FAIL):
            if entry & FAIL:
                raise HpackError("EOS symbol inside a Huffman-coded string")
            out[count] = entry >> SYMBOL_SHIFT
            count += 1
        state = entry & 0xFF
    if not entry & ACCEPT:
        raise HpackError(_padding_problem(state))
    del out[count:]
    return bytes(out)


def _decode_string(data: bytes, pos: int, end: int) -> tuple[bytes, int]:
    """The string literal (§5.2) at ``pos``, and the position after it."""
    if pos >= end:
        raise HpackError("header block ends before a string literal")
    huffman = data[pos] & _HUFFMAN
    length, pos = _decode_integer(data, pos, end, _STRING_MASK)
    stop = pos + length
    if stop > end:
        raise HpackError(f"string literal of {length} bytes past the end of the header block")
    if huffman:
        return _huffman_decode(data, pos, stop), stop
    return data[pos:stop], stop


def _encode_integer(out: bytearray, flags: int, mask: int, value: int) -> None:
    """Append ``value`` (§5.1) with a ``mask``-bit prefix, ``flags`` in the other bits."""
    if value < mask:
        out.append(flags | value)
        return
    out.append(flags | mask)
    value -= mask
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


def _encode_string(out: bytearray, data: bytes) -> None:
    """Append ``data`` as a string literal (§5.2), Huffman-coded when that is shorter."""
    lengths = ENCODE_LENGTHS
    bits = 0
    for byte in data:
        bits += lengths[byte]
    size = (bits + 7) >> 3
    if size >= len(data):
        _encode_integer(out, 0, _STRING_MASK, len(data))
        out += data
        return
    _encode_integer(out, _HUFFMAN, _STRING_MASK, size)
    codes = ENCODE_CODES
    coded = bytearray(size)  # stores, not append() calls (see _huffman_decode)
    written = 0
    pending = 0  # the bits not written yet (fewer than 8 between bytes)
    count = 0
    for byte in data:
        length = lengths[byte]
        pending = (pending << length) | codes[byte]
        count += length
        while count >= 8:
            count -= 8
            coded[written] = (pending >> count) & 0xFF
            written += 1
        pending &= (1 << count) - 1
    if count:  # pad with the most significant bits of EOS: all 1s
        coded[written] = ((pending << (8 - count)) | (0xFF >> count)) & 0xFF
    out += coded


class _Table:
    """The dynamic table both sides keep (§2.3.2): entries oldest first, live from ``_first``."""

    def __init__(self, max_size: int) -> None:
        self._max_size = max_size  # the table's current maximum (§4.2)
        self._size = 0
        self._entries: list[Field] = []
        self._first = 0

    @property
    def table(self) -> list[Field]:
        """The dynamic table, newest entry (index 62) first."""
        return self._entries[self._first :][::-1]

    @property
    def table_size(self) -> int:
        """The dynamic table's size (§4.1)."""
        return self._size


class Decoder(_Table):
    """Decodes the header blocks of one connection (RFC 7541 §3).

    ``max_header_list_size`` caps each decoded list (see the module's notes);
    ``max_table_size`` is the SETTINGS_HEADER_TABLE_SIZE we advertise, the
    largest table the peer may ask for with a size update (§6.3).
    """

    def __init__(self, max_header_list_size: int, max_table_size: int = DEFAULT_TABLE_SIZE) -> None:
        super().__init__(max_table_size)
        self._max_header_list_size = max_header_list_size
        self._max_allowed_size = max_table_size

    def decode(self, block: bytes) -> list[Field]:
        """The header list of one complete header block (HEADERS + CONTINUATION)."""
        fields: list[Field] = []
        cap = self._max_header_list_size
        total = 0
        pos = 0
        end = len(block)
        while pos < end:
            byte = block[pos]
            if byte & _INDEXED:
                if byte != 0xFF:  # most indices fit in the prefix
                    pos += 1
                    field = self._field(byte & _INDEXED_MASK)
                else:
                    index, pos = _decode_integer(block, pos, end, _INDEXED_MASK)
                    field = self._field(index)
            elif byte & _INCREMENTAL:
                field, pos = self._literal(block, pos, end, _INCREMENTAL_MASK)
                self._insert(field)
            elif byte & _SIZE_UPDATE:
                if fields:
                    raise HpackError("dynamic table size update after a header field")
                size, pos = _decode_integer(block, pos, end, _SIZE_UPDATE_MASK)
                if size > self._max_allowed_size:
                    raise HpackError(
                        f"dynamic table size update to {size}, over the "
                        f"{self._max_allowed_size} bytes allowed"
                    )
                self._max_size = size
                self._evict(size)
                continue
            else:  # without indexing (0000) or never indexed (0001): not inserted
                field, pos = self._literal(block, pos, end, _LITERAL_MASK)
            total += len(field[0]) + len(field[1]) + ENTRY_OVERHEAD
            if total > cap:
                raise HeaderListTooLarge(f"header list larger than {cap} bytes")
            fields.append(field)
        return fields

    def _field(self, index: int) -> Field:
        if index <= _STATIC_COUNT:
            if index == 0:
                raise HpackError("index 0 in a header block")
            return STATIC_TABLE[index - 1]
        position = len(self._entries) - (index - _STATIC_COUNT)
        if position < self._first:
            count = _STATIC_COUNT + len(self._entries) - self._first
            raise HpackError(f"index {index} past the end of the tables ({count} entries)")
        return self._entries[position]

    def _literal(self, block: bytes, pos: int, end: int, mask: int) -> tuple[Field, int]:
        index, pos = _decode_integer(block, pos, end, mask)
        if index:
            name = self._field(index)[0]
        else:
            name, pos = _decode_string(block, pos, end)
        value, pos = _decode_string(block, pos, end)
        return (name, value), pos

    def _insert(self, field: Field) -> None:
        size = len(field[0]) + len(field[1]) + ENTRY_OVERHEAD
        if size > self._max_size:  # §4.4: the table ends up empty
            self._entries.clear()
            self._first = 0
            self._size = 0
            return
        self._evict(self._max_size - size)
        self._entries.append(field)
        self._size += size

    def _evict(self, limit: int) -> None:
        """Drop the oldest entries until the table's size is at most ``limit`` (§4.4)."""
        entries = self._entries
        first = self._first
        while self._size > limit:
            name, value = entries[first]
            self._size -= len(name) + len(value) + ENTRY_OVERHEAD
            entries[first] = _EVICTED
            first += 1
        if first >= _COMPACT_AT:
            del entries[:first]
            first = 0
        self._first = first


class Encoder(_Table):
    """Encodes the header blocks of one connection (RFC 7541 §3).

    What each field becomes (§6): an index when the table holds the whole
    field; otherwise a literal, its name as an index when a table holds the
    name.  Literals are added to the dynamic table, except credentials (never
    indexed, §7.1.3) and fields bigger than half the table (which would push
    out everything else for one field).
    """

    def __init__(self) -> None:
        super().__init__(DEFAULT_TABLE_SIZE)
        self._base = 0  # the insertion number of _entries[0]
        self._inserted = 0  # the insertion number of the next entry
        # name -> value -> insertion number of the field's newest copy
        self._fields: dict[bytes, dict[bytes, int]] = {}
        self._names: dict[bytes, int] = {}  # name -> insertion number of its newest entry
        self._update_pending = False  # a size update is owed at the start of the next block
        self._smallest_size = 0  # the smallest maximum since the last block (if owed)

    def set_max_table_size(self, size: int) -> None:
        """Follow the peer's SETTINGS_HEADER_TABLE_SIZE (up to :data:`ENCODER_TABLE_LIMIT`).

        The table is cut down now; the next block starts with the size update
        (§4.2), preceded by the smallest size set in between if that is lower.
        """
        if size < 0:
            raise ValueError(f"negative table size {size}")
        size = min(size, ENCODER_TABLE_LIMIT)
        if size == self._max_size:
            return
        if not self._update_pending or size < self._smallest_size:
            self._smallest_size = size
        self._update_pending = True
        self._max_size = size
        self._evict(size)

    def encode(self, fields: list[Field]) -> bytes:
        """The header block of ``fields`` (names as given: lowercase them first)."""
        parts: list[bytes] = []
        if self._update_pending:
            self._update_pending = False
            update = bytearray()
            if self._smallest_size < self._max_size:
                _encode_integer(update, _SIZE_UPDATE, _SIZE_UPDATE_MASK, self._smallest_size)
            _encode_integer(update, _SIZE_UPDATE, _SIZE_UPDATE_MASK, self._max_size)
            parts.append(bytes(update))
        static_fields = _STATIC_FIELDS
        dynamic_fields = self._fields
        indexed = _INDEXED_BYTES
        for name, value in fields:
            values = static_fields.get(name)
            if values is not None:
                index = values.get(value, 0)
                if index:
                    parts.append(indexed[index])  # every static index fits in the prefix
                    continue
            values = dynamic_fields.get(name)
            if values is not None:
                number = values.get(value, -1)
                if number >= 0:
                    index = _STATIC_COUNT + self._inserted - number
                    if index < _INDEXED_MASK:
                        parts.append(indexed[index])
                    else:
                        out = bytearray()
                        _encode_integer(out, _INDEXED, _INDEXED_MASK, index)
                        parts.append(bytes(out))
                    continue
            parts.append(self._literal(name, value))
        return b"".join(parts)

    def _literal(self, name: bytes, value: bytes) -> bytes:
        """A field neither table holds whole: a literal, added to the dynamic table if it may."""
        index = _STATIC_NAMES.get(name, 0)
        if not index:
            number = self._names.get(name, -1)
            if number >= 0:
                index = _STATIC_COUNT + self._inserted - number
        size = len(name) + len(value) + ENTRY_OVERHEAD
        if name in _NEVER_INDEXED_NAMES or (name == b"cookie" and len(value) < _SHORT_COOKIE):
            flags = _NEVER_INDEXED
            mask = _LITERAL_MASK
        elif 2 * size > self._max_size:
            flags = _WITHOUT_INDEXING
            mask = _LITERAL_MASK
        else:
            flags = _INCREMENTAL
            mask = _INCREMENTAL_MASK
        out = bytearray()
        if index:
            _encode_integer(out, flags, mask, index)
        else:
            out.append(flags)
            _encode_string(out, name)
        _encode_string(out, value)
        if flags == _INCREMENTAL:
            self._insert((name, value), size)
        return bytes(out)

    def _insert(self, field: Field, size: int) -> None:
        """Add ``field`` (of ``size``, at most the table's maximum) as entry 62."""
        self._evict(self._max_size - size)
        self._entries.append(field)
        self._size += size
        number = self._inserted
        self._inserted = number + 1
        name = field[0]
        values = self._fields.get(name)
        if values is None:
            values = self._fields[name] = {}
        values[field[1]] = number
        self._names[name] = number

    def _evict(self, limit: int) -> None:
        """Drop the oldest entries until the table's size is at most ``limit`` (§4.4)."""
        entries = self._entries
        first = self._first
        while self._size > limit:
            field = entries[first]
            number = self._base + first
            name, value = field
            self._size -= len(name) + len(value) + ENTRY_OVERHEAD
            values = self._fields.get(name)
            if values is not None and values.get(value, -1) == number:
                del values[value]
                if not values:
                    del self._fields[name]
            if self._names.get(name, -1) == number:
                del self._names[name]
            entries[first] = _EVICTED
            first += 1
        if first >= _COMPACT_AT:
            del entries[:first]
            self._base += first
            first = 0
        self._first = first

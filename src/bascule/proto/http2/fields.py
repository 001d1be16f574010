"""Request header blocks received over HTTP/2: checked once, in one pass, then read.

bascule's engine (``connection.py``) calls :func:`check` for every request head
and trailer block.  The checks are those the ``h2`` package's inbound pipeline
(``validate_inbound_headers`` / ``normalize_inbound_headers``) made when bascule
ran on it, moved here in one pass with the same outcomes (tests compare them
with a stock ``h2``); bascule's own checks follow in the same pass.

Two outcomes (:func:`check` returns both reasons):

- what h2 refused (RFC 9113 §8.2, §8.3) is a connection error,
  ``PROTOCOL_ERROR`` (``Checked.violation``);
- what h2 let through but HTTP/1.1's parser refuses is a ``400`` on the
  stream only (``Checked.malformed``).

Like h2, split ``cookie`` fields are joined (``"; "``, RFC 9113 §8.2.3) and moved
to the end of the list *before* the checks run.

Check by check (h2 4.x ``h2/utilities.py`` → here):

============================================  =========================================
h2                                            here
============================================  =========================================
``_combine_cookie_fields``                    :func:`join_cookies`
``_reject_illegal_characters`` (names)        ``_BAD_NAME`` on regular names; pseudo
                                              names must be one of ``_PSEUDO``
``_reject_illegal_characters`` (values)       ``_CONNECTION_BAD_VALUE``, ``_SP_HTAB``
``_reject_empty_header_names``                ``header field name of zero length``
``_reject_te``                                ``te`` other than ``trailers``
``_reject_connection_header``                 ``CONNECTION_FIELDS``
``_reject_pseudo_header_fields``              duplicate / out of sequence / unknown;
                                              any in trailers
``_check_pseudo_header_field_acceptability``  :func:`_pseudo_problem`
``_check_host_authority_header``              :func:`_host_problem`
``_check_path_header``                        empty ``:path``
============================================  =========================================
"""

import re
from typing import Final

from bascule.proto.headers import BAD_VALUE

Headers = list[tuple[bytes, bytes]]

# Fields that are only meaningful hop-by-hop on HTTP/1.1 (RFC 9113 §8.2.2).
CONNECTION_FIELDS: Final = frozenset(
    {b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade"}
)

_PSEUDO: Final = frozenset(
    {b":method", b":scheme", b":authority", b":path", b":status", b":protocol"}
)

# RFC 9113 §8.2.1: a field name has no 0x00-0x20, no uppercase 0x41-0x5a, no
# 0x7f-0xff, and (pseudo-header fields aside) no colon.
_BAD_NAME: Final = re.compile(rb"[^\x21-\x39\x3b-\x40\x5b-\x7e]")
# RFC 9113 §8.2.1: no NUL, LF or CR anywhere in a value (a connection error);
# the rest of BAD_VALUE is bascule's stricter rule (a 400).
_CONNECTION_BAD_VALUE: Final = re.compile(rb"[\x00\n\r]")
# RFC 9113 §8.2.1: a value does not start or end with SP or HTAB.
_SP_HTAB: Final = frozenset(b" \t")
# RFC 9113 §8.3.1 / RFC 9110 §5.6.2 / RFC 3986: the method is a token; the
# path (and authority) are visible ASCII without spaces.
_METHOD: Final = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
#: ``bytes.translate`` deletes these in one pass: a target is good when nothing is left
#: (a fraction of a regular expression search's cost on a long path).
_VISIBLE: Final = bytes(range(0x21, 0x7F))


def join_cookies(fields: Headers) -> Headers:
    """``fields`` with every ``cookie`` joined into one, last (what h2 normalised)."""
    cookies = [value for name, value in fields if name == b"cookie"]
    out = [field for field in fields if field[0] != b"cookie"]
    out.append((b"cookie", b"; ".join(cookies)))
    return out


class Checked:
    """A received header block after :func:`check`."""

    __slots__ = ("fields", "has_host", "malformed", "pseudo", "violation")

    def __init__(
        self,
        fields: Headers,
        pseudo: dict[bytes, bytes],
        has_host: bool,
        violation: str | None,
        malformed: str | None,
    ) -> None:
        #: The fields, cookies joined; pseudo-header fields first.
        self.fields = fields
        #: The pseudo-header fields by name.
        self.pseudo = pseudo
        self.has_host = has_host
        #: Why the block is a connection error (PROTOCOL_ERROR), or None.
        self.violation = violation
        #: Why the request is answered 400 (checked only without a violation), or None.
        self.malformed = malformed


#: Received names and values that passed every check below that applies to them: a
#: pure function of their bytes, so a match skips the checks. Clients send the same
#: fields over and over, and HPACK hands back the same objects (whose hash is kept).
#: Bounded in count and in the size of a string kept (a longer one is checked every
#: time). A full memo starts over empty: values seen once (paths, request ids) would
#: otherwise fill it for good and keep out the ones that repeat.
GOOD_NAMES: Final[set[bytes]] = set()  # regular field names: ``_BAD_NAME`` finds nothing
GOOD_VALUES: Final[set[bytes]] = set()  # field values: no ``BAD_VALUE``, no SP/HTAB at an end
GOOD_TARGETS: Final[set[bytes]] = set()  # :path / :authority: visible ASCII only
GOOD_METHODS: Final[set[bytes]] = set()  # :method: a token
MAX_GOOD: Final = 4096
MAX_GOOD_SIZE: Final = 128


def _keep(good: set[bytes], value: bytes) -> None:
    if len(value) <= MAX_GOOD_SIZE:
        if len(good) >= MAX_GOOD:
            good.clear()
        good.add(value)


def check(fields: Headers, trailer: bool = False, joined: bool = False) -> Checked:
    """Check a received header block (request head, or trailers) in one pass."""
    pseudo: dict[bytes, bytes] = {}
    regular = False
    hosts = 0
    host = b""
    # The names and values not already known good: only they are searched.
    names: list[bytes] = []
    values: list[bytes] = []
    problem: str | None = None
    for name, value in fields:
        if value not in GOOD_VALUES:
            values.append(value)
        if name[:1] == b":":
            if name in pseudo:
                problem = problem or f"duplicate pseudo-header field {name!r}"
            elif regular:
                problem = problem or f"pseudo-header field out of sequence: {name!r}"
            elif name not in _PSEUDO:
                problem = problem or f"unknown pseudo-header field {name!r}"
            pseudo[name] = value
            continue
        regular = True
        if name == b"cookie" and not joined:
            # h2 joined split cookies before its checks; so do we.
            return check(join_cookies(fields), trailer, True)
        if not name:
            problem = problem or "header field name of zero length"
        if name not in GOOD_NAMES:
            names.append(name)
        if name in CONNECTION_FIELDS:
            problem = problem or f"connection-specific header field {name!r}"
        elif name == b"te" and value.lower() != b"trailers":
            problem = problem or f"invalid value for TE: {value!r}"
        elif name == b"host":
            hosts += 1
            host = value
    # One search tells whether any value has a control character at all (the
    # common answer is no); only then do the two rules below look for which.
    clean = not values or BAD_VALUE.search(b"\t".join(values)) is None
    if problem is None and (names or values):
        problem = _character_problem(names, values, clean)
    if problem is None:
        if trailer:
            if pseudo:
                problem = f"pseudo-header fields in trailers: {sorted(pseudo)}"
        else:
            problem = (
                _pseudo_problem(pseudo)
                or _host_problem(pseudo.get(b":authority"), hosts, host)
                or (b":path" in pseudo and not pseudo[b":path"] and "empty :path")
                or None
            )
    bad_request = None
    if problem is None and not trailer:
        bad_request = _bascule_problem(fields, pseudo, clean)
    if problem is None and bad_request is None:
        for name in names:
            _keep(GOOD_NAMES, name)
        if clean:  # trailers are not searched for BAD_VALUE's other characters
            for value in values:
                _keep(GOOD_VALUES, value)
    return Checked(fields, pseudo, hosts > 0, problem, bad_request)


def _character_problem(names: list[bytes], values: list[bytes], clean: bool) -> str | None:
    """RFC 9113 §8.2.1: characters a field name or value must not have."""
    bad = _BAD_NAME.search(b"".join(names))
    if bad is not None:
        char = bad.group()
        name = next(n for n in names if char in n)
        kind = "uppercase" if char.isupper() else f"illegal character {char!r} in"
        return f"{kind} header field name {name!r}"
    if not clean and _CONNECTION_BAD_VALUE.search(b"\t".join(values)):
        value = next(v for v in values if _CONNECTION_BAD_VALUE.search(v))
        return f"NUL, CR or LF in field value {value[:40]!r}"
    for value in values:  # a loop: the regex equivalent was a third of check()
        if value and (value[0] in _SP_HTAB or value[-1] in _SP_HTAB):
            return f"field value {value[:40]!r} begins or ends with whitespace"
    return None


def _pseudo_problem(pseudo: dict[bytes, bytes]) -> str | None:
    """RFC 9113 §8.3.1 and RFC 8441 §4: the pseudo-header set a request must have."""
    method = pseudo.get(b":method")
    if method is None:
        return "request without :method"
    connect = method == b"CONNECT"
    if connect and b":protocol" not in pseudo:
        if b":scheme" in pseudo or b":path" in pseudo:
            return "CONNECT with :scheme or :path"
    elif b":scheme" not in pseudo:
        return "request without :scheme"
    elif b":path" not in pseudo:
        return "request without :path"
    if b":status" in pseudo:
        return "request with :status"
    if not connect and b":protocol" in pseudo:
        return ":protocol in a request that is not CONNECT"
    return None


def _host_problem(authority: bytes | None, hosts: int, host: bytes) -> str | None:
    """RFC 9113 §8.3.1: :authority or Host (at most one Host), equal when both."""
    if hosts > 1:
        return "more than one Host field"
    if authority is None and not hosts:
        return "request without :authority or Host"
    if authority is not None and hosts and authority != host:
        return f"mismatched :authority and Host: {authority!r} / {host!r}"
    return None


def _target_problem(name: str, value: bytes | None) -> str | None:
    """Why ``value`` (of :path or :authority) is refused: not visible ASCII only."""
    if value is not None and value not in GOOD_TARGETS:
        if value.translate(None, _VISIBLE):  # what is left is not visible ASCII
            return f"invalid character in {name} {value!r}"
        _keep(GOOD_TARGETS, value)
    return None


def _bascule_problem(fields: Headers, pseudo: dict[bytes, bytes], clean: bool) -> str | None:
    """Why a request h2's rules accept is still refused (400), or None.

    This adds what HTTP/1.1's parser enforces: a token method, a target and
    authority of visible ASCII, and no other control characters in field
    values, so nothing reaches the app (or a log line) over HTTP/2 that
    HTTP/1.1 refuses.
    """
    method = pseudo[b":method"]
    if method not in GOOD_METHODS:
        if _METHOD.match(method) is None:
            return f"invalid method {method!r}"
        _keep(GOOD_METHODS, method)
    problem = _target_problem(":path", pseudo.get(b":path"))
    if problem is None:
        problem = _target_problem(":authority", pseudo.get(b":authority"))
    if problem is not None:
        return problem
    if not clean:
        for name, value in fields:
            if BAD_VALUE.search(value):
                return f"invalid character in the value of {name.decode('latin-1')!r}"
    return None

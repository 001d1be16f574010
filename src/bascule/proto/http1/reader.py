"""Turn httptools (llhttp) callbacks into bascule events, enforcing Http1Limits.

llhttp runs in strict mode: it rejects both Content-Length and
Transfer-Encoding, duplicate or invalid Content-Length, a bad chunk size,
control characters in fields, bare CR/LF, obs-fold and invalid tokens.  The
checks llhttp does not do (Host, size limits, request-target form) are here.
"""

import re
from collections import deque
from typing import Final

import httptools

from bascule.proto.errors import RemoteProtocolError
from bascule.proto.events import (
    METHOD_NAMES,
    BodyChunk,
    BodyEnd,
    Event,
    Headers,
    RequestReceived,
)
from bascule.proto.limits import Http1Limits

_VERSIONS: Final = {"1.1": "1.1", "1.0": "1.0"}
#: The end of every HTTP/1.1 request body (one shared, never changed, instance).
_REQUEST_END: Final = BodyEnd(1)
_OWS: Final = (0x20, 0x09)
#: The fields llhttp reads to decide keep-alive (see on_headers_complete).
_KEEP_ALIVE_FIELDS: Final = frozenset({b"connection", b"proxy-connection"})


# RFC 9112 §3.2 / RFC 3986 §3.2.2: Host = uri-host [ ":" port ], where
# uri-host is an IP-literal in brackets or a reg-name (IPv4 addresses included).
_HOST: Final = re.compile(rb"(?:\[[0-9A-Fa-f:.vV]+\]|[A-Za-z0-9\-._~%!$&'()*+,;=]*)(?::[0-9]*)?\Z")


class RequestReader:
    """The httptools callback target; appends events to ``events``.

    ``heads`` counts complete request heads still in ``events`` (pipelining).
    """

    __slots__ = (
        "_body_size",
        "_connection_field",
        "_good_host",
        "_head_size",
        "_headers",
        "_limits",
        "_max_body",
        "_upgrade_field",
        "_url",
        "accept_upgrades",
        "declined_upgrade",
        "events",
        "in_head",
        "keep_alive",
        "last_complete",
        "parser",
        "progress",
    )

    def __init__(
        self, limits: Http1Limits, accept_upgrades: frozenset[bytes] = frozenset()
    ) -> None:
        self._limits = limits
        #: Upgrade tokens the server serves (b"websocket"); others are plain HTTP.
        self.accept_upgrades = accept_upgrades
        self.declined_upgrade = False
        self._max_body = limits.max_body_size
        self.events: deque[Event] = deque()
        self.parser = httptools.HttpRequestParser(self)
        self._url = b""
        #: The last Host value that passed the check (clients repeat it).
        self._good_host = b""
        self._headers: Headers = []
        self._head_size = 0
        self._body_size = 0
        #: True once the current head has a Connection or Proxy-Connection field (see
        #: on_headers_complete).
        self._connection_field = False
        #: True once the current head has an Upgrade field (see on_headers_complete).
        self._upgrade_field = False
        #: True between the first byte of a request and the end of its head.
        self.in_head = False
        #: keep-alive as the last parsed request asked for it.
        self.keep_alive = True
        #: True once the last request fed in full has completed.
        self.last_complete = True
        #: Set by any callback that completed a piece of the head (see receive_data).
        self.progress = False

    # llhttp callbacks -----------------------------------------------------

    def on_message_begin(self) -> None:
        self.progress = True
        self.in_head = True
        self.last_complete = False
        self._url = b""
        self._headers = []
        self._head_size = 0
        self._body_size = 0
        self._connection_field = False
        self._upgrade_field = False

    def on_url(self, url: bytes) -> None:
        self.progress = True
        self._url += url
        self._head_size += len(url)
        if len(self._url) > self._limits.max_target_size:
            raise RemoteProtocolError(
                f"request target longer than {self._limits.max_target_size} bytes", 414
            )

    def on_header(self, name: bytes, value: bytes) -> None:
        # Hot path: account the size, keep the field; the rest is checked once
        # the head is complete.
        self.progress = True
        size = self._head_size + len(name) + len(value) + 4
        self._head_size = size
        if size > self._limits.max_header_size:
            raise RemoteProtocolError(
                f"request header section larger than {self._limits.max_header_size} bytes", 431
            )
        if not self.in_head:
            return  # a trailer field of a chunked body: never merged into the headers
        if value and value[-1] in _OWS:
            value = value.rstrip(b" \t")  # RFC 9110 §5.5: trailing whitespace is not part of it
        name = name.lower()
        if name in _KEEP_ALIVE_FIELDS:
            self._connection_field = True
        elif name == b"upgrade":
            self._upgrade_field = True
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        parser = self.parser
        self.in_head = False
        keep_alive = parser.should_keep_alive()
        if keep_alive and not self._connection_field:
            # llhttp keeps an HTTP/x.y connection alive without a Connection (or
            # Proxy-Connection, which it reads the same way) field only when x and
            # y are both above 0, and its strict mode accepts no version of that
            # kind but 1.1: this skips get_http_version(), which formats a new
            # string per call.
            version: str | None = "1.1"
        else:
            version = _VERSIONS.get(parser.get_http_version())
        if version is None:
            raise RemoteProtocolError(f"unsupported HTTP version {parser.get_http_version()}", 505)
        headers = self._headers
        if len(headers) > self._limits.max_header_count:
            raise RemoteProtocolError(
                f"more than {self._limits.max_header_count} request header fields", 431
            )
        host_count = 0
        expect_continue = False
        te_trailers = False
        chunked = False
        for name, value in headers:
            if name == b"host":
                host_count += 1
                if value != self._good_host and _HOST.match(value) is None:
                    raise RemoteProtocolError(f"invalid Host header {value[:100]!r}")
                self._good_host = value
            elif name == b"transfer-encoding":
                # RFC 9110 §5.6.1.2: empty list elements do not count.
                codings = [c for c in (c.strip().lower() for c in value.split(b",")) if c]
                if not codings or codings[-1] != b"chunked":
                    # RFC 9112 §6.3: the body length cannot be known.
                    raise RemoteProtocolError(
                        f"Transfer-Encoding {value[:40]!r} does not end with chunked"
                    )
                if len(codings) > 1:
                    raise RemoteProtocolError(
                        f"Transfer-Encoding {value[:40]!r} is not implemented (only chunked)", 501
                    )
                chunked = True
            elif name == b"content-length":
                if self._max_body is not None and int(value) > self._max_body:
                    raise RemoteProtocolError(
                        f"Content-Length {int(value)} exceeds the limit of {self._max_body} bytes",
                        413,
                    )
            elif name == b"expect" and value.lower() == b"100-continue" and version == "1.1":
                expect_continue = True
            elif name == b"te" and b"trailers" in value.lower():
                te_trailers = True
        if host_count != 1 and version == "1.1":
            raise RemoteProtocolError(
                "HTTP/1.1 request without a Host header"
                if host_count == 0
                else "HTTP/1.1 request with more than one Host header"
            )
        raw_method = parser.get_method()
        url = self._url
        # partition, not "in" or find: "in" first tries its operand as an int and
        # formats the TypeError it then discards, and find parses its arguments as a
        # tuple; partition takes one argument and returns the whole when it is absent.
        before, hashmark, _ = url.partition(b"#")
        if hashmark:
            url = before  # a fragment is never part of the target (RFC 9110 §4.2.4)
        if url[:1] == b"/":
            path, _, query = url.partition(b"?")
        else:
            path, query = _other_form(url, headers, raw_method)
        if chunked and version == "1.0":
            keep_alive = False  # RFC 9112 §6.1: close after a chunked HTTP/1.0 request
        # llhttp upgrades a request with an Upgrade field (and "Connection: upgrade") or
        # a CONNECT; without either, should_upgrade() is False and is not called.
        upgrade = (self._upgrade_field or raw_method == b"CONNECT") and parser.should_upgrade()
        if upgrade:
            if raw_method != b"CONNECT" and upgrade_token(headers, self.accept_upgrades) is None:
                # An upgrade we will not serve: llhttp skips the body of an
                # upgrade request, so the connection re-parses this request
                # as plain HTTP (see H1Connection.receive_data).
                self.declined_upgrade = True
                return
            # After an upgrade request the bytes are no longer HTTP/1.1: the
            # connection switches protocols or closes after its response.
            keep_alive = False
        self.keep_alive = keep_alive
        method_name = METHOD_NAMES.get(raw_method)
        if method_name is None:
            method_name = raw_method.decode("ascii")
        request = RequestReceived(
            1,
            method_name,
            path,
            query,
            headers,
            version,
            keep_alive,
            expect_continue,
            upgrade,
        )
        request.te_trailers = te_trailers
        self.events.append(request)

    def on_body(self, body: bytes) -> None:
        self.progress = True
        if self._max_body is not None:
            self._body_size += len(body)
            if self._body_size > self._max_body:
                raise RemoteProtocolError(
                    f"request body exceeds the limit of {self._max_body} bytes", 413
                )
        self.events.append(BodyChunk(1, body))

    def on_message_complete(self) -> None:
        self.progress = True
        self.last_complete = True
        if not self.declined_upgrade:
            self.events.append(_REQUEST_END)

    def head_without_upgrade(self) -> bytes:
        """The request head just parsed, minus the ``upgrade`` token of Connection and of
        Proxy-Connection (which llhttp reads the same way).

        Fed to a fresh parser, it makes llhttp read the request (and its body)
        as plain HTTP.
        """
        parser = self.parser
        lines = [
            b"%b %b HTTP/%b\r\n"
            % (parser.get_method(), self._url, parser.get_http_version().encode())
        ]
        for name, value in self._headers:
            kept = value
            if name in _KEEP_ALIVE_FIELDS:
                tokens = [t for t in value.split(b",") if t.strip().lower() != b"upgrade"]
                if not tokens:
                    continue
                kept = b",".join(tokens)
            lines.append(b"%b: %b\r\n" % (name, kept))
        lines.append(b"\r\n")
        return b"".join(lines)

    def new_parser(self) -> None:
        """Start over with a fresh llhttp parser (after a declined upgrade)."""
        self.parser = httptools.HttpRequestParser(self)
        self.declined_upgrade = False
        self.in_head = False
        self.last_complete = True


def upgrade_token(headers: Headers, accepted: frozenset[bytes]) -> bytes | None:
    """The first protocol in ``Upgrade`` that the server serves, or None.

    ``h2c`` counts only for a request without a body that carries
    ``HTTP2-Settings`` (RFC 7540 §3.2): a body would have to be read as
    HTTP/1.1 first, so such a request is simply served as HTTP/1.1.
    """
    names = {name for name, _ in headers}
    for name, value in headers:
        if name == b"upgrade":
            for item in value.split(b","):
                token = item.strip().lower().partition(b"/")[0]
                if token not in accepted:
                    continue
                if token == b"h2c" and (
                    b"http2-settings" not in names
                    or b"transfer-encoding" in names
                    or any(n == b"content-length" and v.strip() != b"0" for n, v in headers)
                ):
                    continue
                return token
    return None


def _other_form(url: bytes, headers: Headers, method: bytes) -> tuple[bytes, bytes]:
    """Path and query of a target that is not origin-form (RFC 9112 §3.2).

    Absolute-form replaces the Host header with the target's authority
    (§3.2.2); ``*`` (asterisk-form) and authority-form (CONNECT) are kept as
    the path.
    """
    if url == b"*":
        if method != b"OPTIONS":
            raise RemoteProtocolError("request target '*' is only allowed with OPTIONS")
        return url, b""
    lowered = url[:8].lower()
    if lowered.startswith((b"http://", b"https://")):
        try:
            parsed = httptools.parse_url(url)
        except httptools.HttpParserInvalidURLError:
            raise RemoteProtocolError(
                f"invalid absolute-form request target {url[:80]!r}"
            ) from None
        authority = parsed.host or b""
        if parsed.port is not None:
            authority += b":%d" % parsed.port
        if b"@" in authority or b"@" in url.partition(b"//")[2].partition(b"/")[0]:
            raise RemoteProtocolError("absolute-form request target with userinfo")
        headers[:] = [(n, v) for n, v in headers if n != b"host"]
        headers.append((b"host", authority))
        return parsed.path or b"/", parsed.query or b""
    if method == b"CONNECT" and b"/" not in url and b":" in url:
        return url, b""  # authority-form
    raise RemoteProtocolError(f"invalid request target {url[:80]!r}")

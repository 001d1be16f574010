"""A request-smuggling corpus: ambiguous or malformed HTTP/1.1 requests and their RFC 9112 outcome.

Each case is the raw bytes a hostile client sends on one connection.  Most carry a
second, complete request (``SMUGGLED``) where a parser that got the framing wrong would
find it: inside a body, after a body of the "wrong" length, or behind a header another
parser reads differently.  The expected outcome is the status of the first response and
how many requests the application may see; ``seen == 2`` only where the framing
unambiguously says a second request follows (the control cases).

Where RFC 9112 lets a recipient either reject or repair (bare LF, duplicate identical
Content-Length, BWS in chunk extensions, unknown minor versions), the expectation is
bascule's choice, which is always the strict one; the ``why`` text says so.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

#: The request a desynchronised parser would see as a second request.
SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
SMUGGLED_PATH = "/smuggled"


def chunked(data: bytes) -> bytes:
    """``data`` as one chunk plus the last chunk."""
    return b"%x\r\n%b\r\n0\r\n\r\n" % (len(data), data)


def post(headers: bytes, body: bytes = b"", version: bytes = b"1.1") -> bytes:
    """``POST /`` with a Host header, the given header lines (each ending CRLF) and body."""
    return b"POST / HTTP/" + version + b"\r\nHost: x\r\n" + headers + b"\r\n" + body


def get(head: bytes) -> bytes:
    """A request line plus header lines, as given, ended by the empty line."""
    return head + b"\r\n"


CL_S = b"Content-Length: %d\r\n" % len(SMUGGLED)
#: The chunk-size of ``SMUGGLED`` in hex.
SIZE = b"%x" % len(SMUGGLED)
TE = b"Transfer-Encoding: chunked\r\n"


@dataclass(frozen=True)
class Case:
    """One hostile request and what RFC 9112 (and bascule's choices within it) expect."""

    id: str
    raw: bytes
    #: Status of the (first) response.
    status: int
    #: Requests the app sees: exactly this many when ``status`` < 400, at most this many
    #: otherwise (the head may be fine and the body framing bad).
    seen: int
    why: str
    #: The body the app receives, when ``status`` < 400 (None: not checked).
    body: bytes | None = None
    #: The path the app sees, when ``status`` < 400.
    path: str = "/"
    #: Set when bascule gets it wrong: the case runs as a strict xfail with this reason.
    bug: str | None = None

    @property
    def pipelined(self) -> bool:
        """The framing unambiguously says ``SMUGGLED`` is a second request."""
        return self.status < 400 and self.seen == 2

    def param(self) -> object:
        marks = [pytest.mark.xfail(strict=True, reason=self.bug)] if self.bug else []
        return pytest.param(self, id=self.id, marks=marks)


CASES: list[Case] = [
    # --- CL.TE / TE.CL: both framings present --------------------------------------------
    Case(
        "cl-te",
        post(CL_S + TE, b"0\r\n\r\n" + SMUGGLED),
        400,
        0,
        "§6.3 ¶3: CL and TE together is smuggling; a server MAY process by TE but "
        "must close after; rejecting outright is the safe reading",
    ),
    Case(
        "te-cl",
        post(TE + b"Content-Length: 3\r\n", chunked(SMUGGLED)),
        400,
        0,
        "§6.3 ¶3: same as CL.TE with the headers the other way round",
    ),
    Case(
        "te-te-second-obfuscated-with-cl",
        post(CL_S + TE + b"Transfer-Encoding: x\r\n", b"0\r\n\r\n" + SMUGGLED),
        400,
        0,
        "TE.TE: any Transfer-Encoding beside Content-Length is rejected",
    ),
    # --- TE.TE: obfuscated Transfer-Encoding -------------------------------------------
    Case(
        "te-uppercase",
        post(b"Transfer-Encoding: CHUNKED\r\n", chunked(SMUGGLED)),
        200,
        1,
        "RFC 9110 §10.1.4: transfer codings are case-insensitive: parsed as chunked",
        body=SMUGGLED,
    ),
    Case(
        "te-name-mixed-case",
        post(b"tRaNsFeR-eNcOdInG: chunked\r\n", chunked(SMUGGLED)),
        200,
        1,
        "field names are case-insensitive (RFC 9110 §5.1): parsed as chunked",
        body=SMUGGLED,
    ),
    Case(
        "te-space-before-colon",
        post(b"Transfer-Encoding : chunked\r\n" + CL_S, SMUGGLED),
        400,
        0,
        "§5.1: whitespace between field name and colon MUST be rejected with 400",
    ),
    Case(
        "te-space-before-colon-alone",
        post(b"Transfer-Encoding : chunked\r\n", b"0\r\n\r\n" + SMUGGLED),
        400,
        0,
        "§5.1: whitespace before the colon, even without Content-Length",
    ),
    Case(
        "te-chunked-identity",
        post(b"Transfer-Encoding: chunked, identity\r\n", b"0\r\n\r\n" + SMUGGLED),
        400,
        0,
        "§6.3 ¶4: chunked not last in a request: length unknown, 400",
    ),
    Case(
        "te-identity-chunked",
        post(b"Transfer-Encoding: identity, chunked\r\n", chunked(SMUGGLED)),
        501,
        0,
        "§6.1: a transfer coding the server does not understand: 501",
    ),
    Case(
        "te-obs-fold-with-cl",
        post(CL_S + b"Transfer-Encoding:\r\n chunked\r\n", SMUGGLED),
        400,
        0,
        "§5.2: obs-fold outside message/http: reject (400) or unfold; bascule rejects",
    ),
    Case(
        "te-obs-fold-tab",
        post(b"Transfer-Encoding: x\r\n\tchunked\r\n", b"0\r\n\r\n" + SMUGGLED),
        400,
        0,
        "§5.2: obs-fold with a tab continuation line, rejected",
    ),
    Case(
        "te-tab-ows",
        post(b"Transfer-Encoding:\tchunked\r\n", chunked(SMUGGLED)),
        200,
        1,
        "HTAB is OWS (RFC 9110 §5.6.3): a valid chunked request",
        body=SMUGGLED,
    ),
    Case(
        "te-tab-ows-with-cl",
        post(CL_S + b"Transfer-Encoding:\tchunked\r\n", SMUGGLED),
        400,
        0,
        "HTAB is OWS, so this is CL.TE: 400",
    ),
    Case(
        "te-vertical-tab",
        post(b"Transfer-Encoding:\x0bchunked\r\n" + CL_S, SMUGGLED),
        400,
        0,
        "VT is a CTL, not allowed in a field value (RFC 9110 §5.5): 400",
    ),
    Case(
        "te-vertical-tab-alone",
        post(b"Transfer-Encoding:\x0bchunked\r\n", b"0\r\n\r\n" + SMUGGLED),
        400,
        0,
        "VT before chunked without Content-Length: still an invalid field value",
    ),
    Case(
        "te-quoted",
        post(b'Transfer-Encoding: "chunked"\r\n', b"0\r\n\r\n" + SMUGGLED),
        400,
        0,
        "a quoted-string is not the token chunked: final coding unknown, 400 (§6.3 ¶4)",
    ),
    Case(
        "te-xchunked",
        post(b"Transfer-Encoding: xchunked\r\n", b"0\r\n\r\n" + SMUGGLED),
        400,
        0,
        "not chunked: request length unknown, 400 (§6.3 ¶4)",
    ),
    Case(
        "te-duplicate-chunked",
        post(TE + TE, chunked(chunked(SMUGGLED))),
        400,
        0,
        "two field lines combine to 'chunked, chunked'; §7 forbids chunking twice",
    ),
    Case(
        "te-duplicate-chunked-identity",
        post(TE + b"Transfer-Encoding: identity\r\n", b"0\r\n\r\n" + SMUGGLED),
        400,
        0,
        "combined 'chunked, identity': chunked is not last, 400",
    ),
    Case(
        "te-duplicate-identity-chunked",
        post(b"Transfer-Encoding: identity\r\n" + TE, chunked(SMUGGLED)),
        400,
        0,
        "combined 'identity, chunked': an unknown coding; rejected (400 here; 501 fits too)",
    ),
    Case(
        "te-empty",
        post(b"Transfer-Encoding: \r\n", SMUGGLED),
        400,
        0,
        "an empty Transfer-Encoding names no coding: 400",
    ),
    Case(
        "te-empty-list-element",
        post(b"Transfer-Encoding: ,chunked\r\n", chunked(SMUGGLED)),
        200,
        1,
        "RFC 9110 §5.6.1.2: a recipient MUST ignore empty list elements: plain chunked",
        body=SMUGGLED,
    ),
    Case(
        "te-underscore-name-with-cl",
        post(b"Content-Length: 5\r\nTransfer_Encoding: chunked\r\n", b"0\r\n\r\n" + SMUGGLED),
        200,
        2,
        "control: Transfer_Encoding is another field, so Content-Length frames 5 bytes "
        "and the smuggled bytes are an honest pipelined request",
        body=b"0\r\n\r\n",
    ),
    Case(
        "te-http10",
        post(TE, chunked(b"abc") + SMUGGLED, version=b"1.0"),
        200,
        1,
        "§6.1: TE in HTTP/1.0: framing is faulty, close after processing; nothing after it is read",
        body=b"abc",
    ),
    Case(
        "te-lf-inside-value",
        post(b"Transfer-Encoding: chunked\nX: y\r\n", b"0\r\n\r\n" + SMUGGLED),
        400,
        0,
        "a bare LF inside the field line: 400",
    ),
    Case(
        "trailer-content-length",
        post(TE, b"0\r\nContent-Length: 40\r\n\r\n" + SMUGGLED),
        400,
        1,
        "Content-Length in the trailer section: framing fields are not allowed there "
        "(RFC 9110 §6.5.1); bascule's parser rejects it",
    ),
    # --- Content-Length -----------------------------------------------------------------
    Case(
        "cl-duplicate-same",
        post(CL_S + CL_S, SMUGGLED),
        400,
        0,
        "RFC 9110 §8.6: identical duplicates MAY be merged or rejected; bascule rejects",
    ),
    Case(
        "cl-list-same",
        post(b"Content-Length: %d, %d\r\n" % (len(SMUGGLED), len(SMUGGLED)), SMUGGLED),
        400,
        0,
        "RFC 9110 §8.6: '36, 36' MAY be merged or rejected; bascule rejects",
    ),
    Case(
        "cl-duplicate-different",
        post(b"Content-Length: 0\r\n" + CL_S, SMUGGLED),
        400,
        0,
        "§6.3 ¶5: differing Content-Length values: unrecoverable, 400",
    ),
    Case(
        "cl-plus",
        post(b"Content-Length: +0\r\n", SMUGGLED),
        400,
        0,
        "Content-Length = 1*DIGIT (RFC 9110 §8.6): '+' is invalid, 400",
    ),
    Case(
        "cl-leading-zeros",
        post(b"Content-Length: 000%d\r\n" % len(SMUGGLED), SMUGGLED),
        200,
        1,
        "1*DIGIT allows leading zeros: the body is the smuggled bytes, one request",
        body=SMUGGLED,
    ),
    Case(
        "cl-negative",
        post(b"Content-Length: -1\r\n", SMUGGLED),
        400,
        0,
        "not 1*DIGIT: 400",
    ),
    Case(
        "cl-hex",
        post(b"Content-Length: 0x%x\r\n" % len(SMUGGLED), SMUGGLED),
        400,
        0,
        "not 1*DIGIT: 400",
    ),
    Case(
        "cl-inner-space",
        post(b"Content-Length: 3 6\r\n", SMUGGLED),
        400,
        0,
        "not 1*DIGIT: 400",
    ),
    Case(
        "cl-empty",
        post(b"Content-Length: \r\n", SMUGGLED),
        400,
        0,
        "not 1*DIGIT: 400",
    ),
    Case(
        "cl-overflow",
        post(b"Content-Length: 99999999999999999999999\r\n", SMUGGLED),
        400,
        0,
        "larger than any integer the parser holds: 400, never a wrapped-around length",
    ),
    Case(
        "cl-trailing-ows",
        post(b"Content-Length: 0 \r\n", SMUGGLED),
        200,
        2,
        "control: trailing OWS is not part of the value, so Content-Length is 0 and "
        "the smuggled bytes are an honest pipelined request",
    ),
    Case(
        "cl-on-get",
        get(b"GET / HTTP/1.1\r\nHost: x\r\n" + CL_S) + SMUGGLED,
        200,
        1,
        "a GET may carry a body framed by Content-Length (RFC 9110 §9.3.1): it is body",
        body=SMUGGLED,
    ),
    # --- chunked framing ----------------------------------------------------------------
    Case(
        "chunk-size-overflow",
        post(TE, b"FFFFFFFFFFFFFFFFF1\r\n" + SMUGGLED),
        400,
        1,
        "a chunk size larger than 64 bits: 400, never wrapped around",
    ),
    Case(
        "chunk-size-hex-prefix",
        post(TE, b"0x" + SIZE + b"\r\n" + SMUGGLED + b"\r\n0\r\n\r\n"),
        400,
        1,
        "chunk-size = 1*HEXDIG: '0x' is invalid",
    ),
    Case(
        "chunk-size-plus",
        post(TE, b"+" + SIZE + b"\r\n" + SMUGGLED + b"\r\n0\r\n\r\n"),
        400,
        1,
        "chunk-size = 1*HEXDIG: '+' is invalid",
    ),
    Case(
        "chunk-size-negative",
        post(TE, b"-1\r\n" + SMUGGLED),
        400,
        1,
        "chunk-size = 1*HEXDIG: '-' is invalid",
    ),
    Case(
        "chunk-size-trailing-space",
        post(TE, SIZE + b" \r\n" + SMUGGLED + b"\r\n0\r\n\r\n"),
        400,
        1,
        "§7.1: no whitespace after chunk-size unless a chunk extension follows",
    ),
    Case(
        "chunk-size-leading-space",
        post(TE, b" " + SIZE + b"\r\n" + SMUGGLED + b"\r\n0\r\n\r\n"),
        400,
        1,
        "§7.1: no whitespace before chunk-size",
    ),
    Case(
        "chunk-data-longer-than-size",
        post(TE, b"3\r\nabc" + SMUGGLED + b"\r\n0\r\n\r\n"),
        400,
        1,
        "chunk data must be followed by CRLF right after size bytes: 400",
    ),
    Case(
        "chunk-extensions-valid",
        post(TE, SIZE + b';name=value;flag;q="a;b"\r\n' + SMUGGLED + b"\r\n0\r\n\r\n"),
        200,
        1,
        "§7.1.1: extensions (token and quoted-string values) are ignored",
        body=SMUGGLED,
    ),
    Case(
        "chunk-extension-bws",
        post(TE, SIZE + b" ; a = b\r\n" + SMUGGLED + b"\r\n0\r\n\r\n"),
        400,
        1,
        "§7.1.1 grammar allows BWS around ';' and '='; bascule's parser refuses it (safe)",
    ),
    Case(
        "chunk-extension-huge",
        post(TE, b"1;" + b"a" * (1 << 20) + b"\r\nx\r\n0\r\n\r\n" + SMUGGLED),
        431,
        1,
        "1 MiB of one chunk extension: bounded by --max-request-header-size (CVE-2024-22019)",
    ),
    Case(
        "chunk-extensions-many",
        post(TE, b"1" + b";a=b" * (1 << 18) + b"\r\nx\r\n0\r\n\r\n" + SMUGGLED),
        431,
        1,
        "1 MiB of short chunk extensions: bounded the same way",
    ),
    Case(
        "chunk-extension-last-chunk-huge",
        post(TE, b"0;" + b"a" * (1 << 20) + b"\r\n\r\n" + SMUGGLED),
        431,
        1,
        "1 MiB of extension on the last chunk: bounded the same way",
    ),
    Case(
        "chunk-extension-nul",
        post(TE, SIZE + b";a=\x00\r\n" + SMUGGLED + b"\r\n0\r\n\r\n"),
        400,
        1,
        "NUL in a chunk extension: 400",
    ),
    # --- line endings and control characters --------------------------------------------
    Case(
        "bare-lf-request-line",
        b"GET / HTTP/1.1\nHost: x\r\n\r\n" + SMUGGLED,
        400,
        0,
        "§2.2: a bare LF MAY be accepted as a line end; bascule rejects (no two parsers "
        "disagree about a 400)",
    ),
    Case(
        "bare-lf-header",
        post(b"X: y\n" + CL_S, SMUGGLED),
        400,
        0,
        "§2.2: a bare LF ending a field line: rejected",
    ),
    Case(
        "bare-lf-everywhere",
        b"POST / HTTP/1.1\nHost: x\nContent-Length: 0\n\n" + SMUGGLED,
        400,
        0,
        "§2.2: bare LF as every line ending: rejected",
    ),
    Case(
        "bare-lf-chunk-size-line",
        post(TE, SIZE + b"\n" + SMUGGLED + b"\r\n0\r\n\r\n"),
        400,
        1,
        "§2.2: bare LF after a chunk size: rejected",
    ),
    Case(
        "bare-lf-after-chunk-data",
        post(TE, b"3\r\nabc\n0\r\n\r\n" + SMUGGLED),
        400,
        1,
        "§2.2: bare LF after chunk data: rejected",
    ),
    Case(
        "bare-lf-last-chunk",
        post(TE, b"0\r\n\n" + SMUGGLED),
        400,
        1,
        "§2.2: bare LF ending the chunked body: rejected",
    ),
    Case(
        "bare-cr-request-line",
        b"GET / HTTP/1.1\rHost: x\r\n\r\n" + SMUGGLED,
        400,
        0,
        "§2.2: a bare CR MUST be treated as invalid (or replaced by SP): 400",
    ),
    Case(
        "bare-cr-header",
        post(b"X: y\rContent-Length: 0\r\n", SMUGGLED),
        400,
        0,
        "§2.2: a bare CR inside the header section: 400",
    ),
    Case(
        "bare-cr-chunk-extension",
        post(TE, b"3;a\rabc\r\n0\r\n\r\n" + SMUGGLED),
        400,
        1,
        "§2.2: a bare CR in a chunk line: 400",
    ),
    Case(
        "nul-in-target",
        get(b"GET /a\x00b HTTP/1.1\r\nHost: x\r\n") + SMUGGLED,
        400,
        0,
        "NUL is not allowed in a request-target: 400",
    ),
    Case(
        "nul-in-header-value",
        post(b"X: a\x00b\r\n" + CL_S, SMUGGLED),
        400,
        0,
        "RFC 9110 §5.5: NUL in a field value MUST be rejected or replaced: 400",
    ),
    Case(
        "nul-in-header-name",
        post(b"X\x00Y: a\r\n" + CL_S, SMUGGLED),
        400,
        0,
        "NUL is not a token character: 400",
    ),
    # --- request-target forms -------------------------------------------------------------
    Case(
        "absolute-form",
        get(b"GET http://example.com/abs?q=1 HTTP/1.1\r\nHost: other\r\n"),
        200,
        1,
        "§3.2.2: absolute-form is accepted; its authority replaces Host",
        path="/abs",
    ),
    Case(
        "absolute-form-userinfo",
        get(b"GET http://user@example.com/ HTTP/1.1\r\nHost: x\r\n"),
        400,
        0,
        "RFC 9110 §4.2.4: userinfo in an http(s) URI is to be treated as an error",
    ),
    Case(
        "asterisk-form-options",
        get(b"OPTIONS * HTTP/1.1\r\nHost: x\r\n"),
        200,
        1,
        "§3.2.4: OPTIONS * is the one use of asterisk-form",
        path="*",
    ),
    Case(
        "asterisk-form-get",
        get(b"GET * HTTP/1.1\r\nHost: x\r\n"),
        400,
        0,
        "§3.2.4: asterisk-form only with OPTIONS",
    ),
    # --- request line: methods, versions, spacing ---------------------------------------
    Case(
        "http-0.9",
        b"GET /\r\n\r\n",
        505,
        0,
        "no HTTP/1.x version: HTTP/0.9 is not served (505)",
    ),
    Case(
        "version-0.9",
        get(b"GET / HTTP/0.9\r\nHost: x\r\n"),
        505,
        0,
        "HTTP/0.9 spelled out: 505",
    ),
    Case(
        "version-1.2",
        get(b"GET / HTTP/1.2\r\nHost: x\r\n"),
        400,
        0,
        "RFC 9110 §6.2: a higher minor version SHOULD be read as 1.1; llhttp refuses it (400)",
    ),
    Case(
        "version-2.0-over-h1",
        get(b"GET / HTTP/2.0\r\nHost: x\r\n"),
        505,
        0,
        "HTTP/2.0 in an HTTP/1.1 request line: 505",
    ),
    Case(
        "version-3.0",
        get(b"GET / HTTP/3.0\r\nHost: x\r\n"),
        400,
        0,
        "an unknown major version: refused (400)",
    ),
    Case(
        "version-1.1x",
        get(b"GET / HTTP/1.1x\r\nHost: x\r\n"),
        400,
        0,
        "HTTP-version = 'HTTP/' DIGIT '.' DIGIT: trailing garbage, 400",
    ),
    Case(
        "version-lowercase",
        get(b"GET / http/1.1\r\nHost: x\r\n"),
        400,
        0,
        "HTTP-name is case-sensitive (§2.3): 400",
    ),
    Case(
        "method-invalid-chars",
        get(b"G@T / HTTP/1.1\r\nHost: x\r\n"),
        400,
        0,
        "'@' is not a token character: 400",
    ),
    Case(
        "method-unknown",
        get(b"FOO / HTTP/1.1\r\nHost: x\r\n"),
        400,
        0,
        "a method llhttp does not know: refused (400; 501 would also fit RFC 9110 §9.1)",
    ),
    Case(
        "method-lowercase",
        get(b"get / HTTP/1.1\r\nHost: x\r\n"),
        400,
        0,
        "methods are case-sensitive: 'get' is not GET; refused",
    ),
    Case(
        "request-line-double-space",
        get(b"GET  / HTTP/1.1\r\nHost: x\r\n"),
        200,
        1,
        "§3: recipients MAY split the request line on whitespace runs; llhttp does",
    ),
    Case(
        "request-line-tabs",
        get(b"GET\t/\tHTTP/1.1\r\nHost: x\r\n"),
        400,
        0,
        "§3 allows HTAB as a separator only leniently; llhttp refuses it",
    ),
    Case(
        "request-target-with-space",
        get(b"GET /a b HTTP/1.1\r\nHost: x\r\n"),
        400,
        0,
        "§3.2: whitespace in the target MUST be answered 400 (or 301)",
    ),
    Case(
        "h2-preface-over-h1",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        400,
        0,
        "the HTTP/2 connection preface on an HTTP/1.1 connection (cleartext h2 is off here)",
    ),
    # --- header fields ------------------------------------------------------------------
    Case(
        "header-without-colon",
        post(b"Content-Length\r\n", SMUGGLED),
        400,
        0,
        "a field line without ':' is malformed: 400",
    ),
    Case(
        "space-in-header-name",
        post(b"Content Length: 36\r\n", SMUGGLED),
        400,
        0,
        "a space is not a token character: 400",
    ),
    Case(
        "host-missing",
        get(b"GET / HTTP/1.1\r\n"),
        400,
        0,
        "§3.2: an HTTP/1.1 request without Host MUST get 400",
    ),
    Case(
        "host-duplicated",
        get(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n"),
        400,
        0,
        "§3.2: more than one Host field line MUST get 400",
    ),
    Case(
        "host-missing-http10",
        get(b"GET / HTTP/1.0\r\n"),
        200,
        1,
        "Host is only required in HTTP/1.1",
    ),
    Case(
        "host-empty",
        get(b"GET / HTTP/1.1\r\nHost:\r\n"),
        200,
        1,
        "§3.2: an empty Host is what a client sends when the URI has no authority",
    ),
    Case(
        "host-invalid",
        get(b"GET / HTTP/1.1\r\nHost: a b\r\n"),
        400,
        0,
        "§3.2: a Host field with an invalid value MUST get 400",
    ),
    # --- honest framing, for contrast: the following request is real --------------------
    Case(
        "pipelined-http10-keep-alive",
        b"POST / HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 3\r\n\r\nabc" + SMUGGLED,
        200,
        2,
        "control: keep-alive HTTP/1.0 with Content-Length, then a real second request",
        body=b"abc",
    ),
    Case(
        "connection-close-then-more",
        post(b"Connection: close\r\nContent-Length: 3\r\n", b"abc" + SMUGGLED),
        200,
        1,
        "§9.6: after 'Connection: close' the server reads no further request",
        body=b"abc",
    ),
]

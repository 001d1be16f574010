"""Byte and count limits enforced inside the protocol code, each with its reason."""

from dataclasses import dataclass

#: Request line plus header section.  64 KiB, as the issue asks; nginx's default
#: ``large_client_header_buffers`` is 4 x 8 KiB, Node.js allows 16 KiB, h11 16 KiB.
DEFAULT_MAX_HEADER_SIZE = 64 * 1024

#: Request target (URL).  Past it: 414.  nginx's 8 KiB buffer sets the practical
#: ceiling most clients and proxies honour; we allow twice that.
DEFAULT_MAX_TARGET_SIZE = 16 * 1024

#: Number of header fields.  Guards the per-field Python objects we allocate;
#: Apache's LimitRequestFields defaults to 100, we allow a little more.
DEFAULT_MAX_HEADER_COUNT = 128

#: Requests parsed ahead of the one being answered (pipelining).  Past it the
#: driver stops reading until the queue drains, so a pipelining client cannot
#: make us buffer without bound.
DEFAULT_MAX_PIPELINED = 16


@dataclass(frozen=True, slots=True)
class Http1Limits:
    """Limits for one HTTP/1.1 connection.

    ``max_body_size`` is ``None`` for no limit; otherwise a request whose
    Content-Length or streamed body exceeds it gets 413.
    """

    max_header_size: int = DEFAULT_MAX_HEADER_SIZE
    max_target_size: int = DEFAULT_MAX_TARGET_SIZE
    max_header_count: int = DEFAULT_MAX_HEADER_COUNT
    max_body_size: int | None = None
    max_pipelined: int = DEFAULT_MAX_PIPELINED

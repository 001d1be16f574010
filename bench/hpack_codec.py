"""HPACK codec speed: bascule's (proto/http2/hpack_codec.py) against the ``hpack`` package.

Microseconds per header block, in-process, for the blocks a server decodes
(requests) and encodes (responses):

- h2load: its first request (literals, Huffman, inserted into the table),
  then the same request again (all dynamic-table indices);
- a browser-like request of 13 fields, first and repeated;
- a small response, first and repeated.

A "first" block is coded by a fresh decoder or encoder, whose construction is
counted; a "repeat" by one that has already seen it.  Request blocks are
written by ``hpack.Encoder`` (Huffman on, as browsers and h2load send them).

    python bench/hpack_codec.py          # whichever build is installed
"""

from __future__ import annotations

import time
from collections.abc import Callable

import hpack

from bascule.proto.http2 import hpack_codec
from bascule.proto.http2.hpack_codec import Decoder, Encoder

Field = tuple[bytes, bytes]

H2LOAD: list[Field] = [
    (b":method", b"GET"),
    (b":path", b"/"),
    (b":scheme", b"http"),
    (b":authority", b"127.0.0.1:8000"),
    (b"user-agent", b"h2load nghttp2/1.59.0"),
]
BROWSER: list[Field] = [
    (b":method", b"GET"),
    (b":authority", b"www.example.com"),
    (b":scheme", b"https"),
    (b":path", b"/articles/2024/hpack?ref=home"),
    (b"sec-ch-ua", b'"Chromium";v="124", "Google Chrome";v="124", "Not-A.Brand";v="99"'),
    (b"sec-ch-ua-mobile", b"?0"),
    (b"sec-ch-ua-platform", b'"Linux"'),
    (
        b"user-agent",
        b"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
        b"Chrome/124.0.0.0 Safari/537.36",
    ),
    (
        b"accept",
        b"text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8",
    ),
    (b"sec-fetch-site", b"same-origin"),
    (b"sec-fetch-mode", b"navigate"),
    (b"accept-encoding", b"gzip, deflate, br, zstd"),
    (b"accept-language", b"en-US,en;q=0.9"),
]
RESPONSE: list[Field] = [
    (b":status", b"200"),
    (b"content-type", b"text/plain"),
    (b"content-length", b"13"),
    (b"date", b"Tue, 04 Jun 2024 12:00:00 GMT"),
    (b"server", b"bascule"),
]


def per_call(function: Callable[[], object], budget: float = 0.2) -> float:
    """Microseconds per call: the best of five runs of about ``budget`` seconds."""
    number = 1
    while True:  # calibrate
        start = time.perf_counter()
        for _ in range(number):
            function()
        elapsed = time.perf_counter() - start
        if elapsed > budget / 10:
            break
        number *= 4
    number = max(1, int(number * budget / 10 / elapsed * 10))
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(number):
            function()
        best = min(best, time.perf_counter() - start)
    return best / number * 1e6


def request_cases(fields: list[Field]) -> tuple[Callable[[], object], ...]:
    """(ours first, hpack first, ours repeat, hpack repeat) decoding ``fields``."""
    writer = hpack.Encoder()
    first = writer.encode(fields)
    repeat = writer.encode(fields)
    ours = Decoder(65536)
    theirs = hpack.Decoder()
    if ours.decode(first) != fields or theirs.decode(first, raw=True) != fields:
        raise SystemExit("decoders disagree")
    if ours.decode(repeat) != fields or theirs.decode(repeat, raw=True) != fields:
        raise SystemExit("decoders disagree")
    return (
        lambda: Decoder(65536).decode(first),
        lambda: hpack.Decoder().decode(first, raw=True),
        lambda: ours.decode(repeat),
        lambda: theirs.decode(repeat, raw=True),
    )


def response_cases(fields: list[Field]) -> tuple[Callable[[], object], ...]:
    """(ours first, hpack first, ours repeat, hpack repeat) encoding ``fields``."""
    ours = Encoder()
    theirs = hpack.Encoder()
    ours.encode(fields)
    theirs.encode(fields)
    return (
        lambda: Encoder().encode(fields),
        lambda: hpack.Encoder().encode(fields),
        lambda: ours.encode(fields),
        lambda: theirs.encode(fields),
    )


def main() -> None:
    compiled = not hpack_codec.__file__.endswith(".py")
    print(f"bascule hpack_codec: {'compiled (mypyc)' if compiled else 'pure Python'}")
    print(f"{'block':<34}{'ours µs':>10}{'hpack µs':>10}{'speed-up':>10}")
    rows = [
        ("decode h2load request", request_cases(H2LOAD)),
        ("decode browser request (13)", request_cases(BROWSER)),
        ("encode response", response_cases(RESPONSE)),
        ("encode browser request (13)", response_cases(BROWSER)),
    ]
    for label, (ours_first, theirs_first, ours_repeat, theirs_repeat) in rows:
        for kind, ours, theirs in (
            ("first", ours_first, theirs_first),
            ("repeat", ours_repeat, theirs_repeat),
        ):
            mine = per_call(ours)
            other = per_call(theirs)
            print(f"{label + ', ' + kind:<34}{mine:>10.2f}{other:>10.2f}{other / mine:>9.1f}x")


if __name__ == "__main__":
    main()

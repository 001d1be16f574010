"""A small reader that turns fuzzer bytes into choices (no atheris needed,
so the targets also run under pytest on their seeds)."""

from __future__ import annotations

import gc
import itertools
import sys
import types
from collections.abc import Callable


class Choices:
    """Consume ``data`` from the front; past the end every choice is 0 / empty."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    @property
    def left(self) -> int:
        return len(self.data) - self.pos

    def byte(self) -> int:
        if self.pos >= len(self.data):
            return 0
        self.pos += 1
        return self.data[self.pos - 1]

    def number(self, size: int) -> int:
        return int.from_bytes(self.take(size), "big")

    def take(self, size: int) -> bytes:
        out = self.data[self.pos : self.pos + size]
        self.pos += len(out)
        return out

    def rest(self) -> bytes:
        return self.take(self.left)

    def pieces(self, data: bytes, count: int) -> list[bytes]:
        """``data`` cut at up to ``count`` points chosen from the input."""
        points = sorted({self.number(2) % (len(data) + 1) for _ in range(count)})
        bounds = [0, *points, len(data)]
        return [data[a:b] for a, b in itertools.pairwise(bounds)]


#: Top-level packages whose Python code the fuzzer instruments for coverage.
INSTRUMENTED = ("bascule", "h2", "hpack", "hyperframe", "websockets", "fuzz", "__main__")


def run(test_one_input: Callable[[bytes], None]) -> None:
    """Fuzz ``test_one_input`` with atheris (libFuzzer arguments from sys.argv).

    Only the code under test is instrumented (``atheris.instrument_all`` would
    also patch the standard library: a minute of start-up for no signal).
    """
    # atheris is optional: the targets also run without it (tests/fuzz).
    import atheris  # type: ignore[import-untyped,import-not-found,unused-ignore]  # noqa: PLC0415

    for obj in gc.get_objects():
        if (
            isinstance(obj, types.FunctionType)
            and str(getattr(obj, "__module__", "")).partition(".")[0] in INSTRUMENTED
            and "__ATHERIS_INSTRUMENTED__" not in obj.__code__.co_consts
        ):
            atheris.instrument_func(obj)
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()

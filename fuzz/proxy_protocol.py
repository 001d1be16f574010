"""atheris target: PROXY protocol v1/v2 header parsing (HeaderReader, parse).

Crash = any exception other than ProxyProtocolError, a header that parses
cut but not whole (or ends elsewhere), or a NeedData.at_least that reads past the end
of the header the same bytes give when whole.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bascule.proto.proxy_protocol import HeaderReader, NeedData, ProxyProtocolError, parse
from fuzz._bytes import Choices, run


def test_one_input(data: bytes) -> None:
    choices = Choices(data)
    mode = choices.byte()
    payload = choices.rest()
    max_v2 = 64 if mode & 1 else 4096
    try:
        whole = parse(payload, max_v2)
    except ProxyProtocolError:
        whole = None
    if whole is not None and not isinstance(whole, NeedData):
        consumed, header = whole
        assert 0 < consumed <= len(payload)
        assert header.version in (1, 2)
        header.as_extension()
        # at_least never passes the header's end.
        got = 0
        while got < consumed:
            step = parse(payload[:got], max_v2)
            assert isinstance(step, NeedData), (got, step)
            assert got + step.at_least <= consumed, (got, step.at_least, consumed)
            got += step.at_least
    reader = HeaderReader(max_v2)
    fed = 0
    try:
        for piece in Choices(data[::-1]).pieces(payload, (mode >> 1) & 7):
            fed += len(piece)
            result = reader.feed(piece)
            if not isinstance(result, NeedData):
                header, leftover = result
                # Cut or whole, the same header ends at the same byte.
                assert whole is not None, "parsed cut, failed whole"
                assert not isinstance(whole, NeedData), whole
                assert leftover == payload[whole[0] : fed], (leftover, whole[0], fed)
                break
    except ProxyProtocolError as exc:
        status = exc.status_hint
        assert status == 400, status


if __name__ == "__main__":
    run(test_one_input)

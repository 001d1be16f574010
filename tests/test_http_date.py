"""The Date value the server writes (bascule.aio.state.http_date)."""

from __future__ import annotations

import calendar
import email.utils

import pytest

from bascule.aio.state import http_date


@pytest.mark.parametrize(
    "seconds",
    [
        0,  # Thursday, January
        784111777,  # RFC 9110's example: Sun, 06 Nov 1994 08:49:37 GMT
        951782400,  # 29 February 2000
        1798761599.9,  # the last second of 2026, fraction dropped
        *range(1_700_000_000, 1_700_000_000 + 400 * 86400, 86400 * 7 + 3671),  # every weekday
    ],
)
def test_http_date_is_the_imf_fixdate(seconds: float) -> None:
    assert http_date(seconds) == email.utils.formatdate(seconds, usegmt=True).encode("ascii")


def test_http_date_example() -> None:
    assert http_date(784111777) == b"Sun, 06 Nov 1994 08:49:37 GMT"
    assert http_date(calendar.timegm((2026, 12, 31, 23, 59, 59))) == (
        b"Thu, 31 Dec 2026 23:59:59 GMT"
    )

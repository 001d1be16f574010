"""Shared hypothesis settings and strategies for the property tests in tests/fuzz/.

``FUZZ`` keeps each test to a few seconds in CI; set ``BASCULE_FUZZ_EXAMPLES``
to run more examples by hand (``BASCULE_FUZZ_EXAMPLES=5000 pytest tests/fuzz``).
"""

from __future__ import annotations

import os
import re

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

#: Examples per property test; the whole directory stays well under 20 s.
EXAMPLES = int(os.environ.get("BASCULE_FUZZ_EXAMPLES", "60"))

FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=os.environ.get("BASCULE_FUZZ_RANDOM", "") == "",
)
"""Settings for every property test here.  Derandomized by default, so CI runs
the same examples each time (a failure is reproducible); ``BASCULE_FUZZ_RANDOM=1``
explores new ones."""

#: For tests parametrized over many cases: fewer examples per case.
FUZZ_EACH = settings(FUZZ, max_examples=max(5, EXAMPLES // 6))

# RFC 9110 §5.6.2: tchar, written out independently of bascule.proto.headers.
TCHAR = "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
TOKEN_RE = re.compile(rb"\A[!#$%&'*+.^_`|~0-9A-Za-z-]+\Z")
# RFC 9110 §5.5: field-value = *field-content; field-vchar = VCHAR / obs-text;
# SP and HTAB only between visible characters.  (bascule also strips nothing
# from what an app sends, so leading/trailing whitespace is allowed here.)
FIELD_VALUE_RE = re.compile(rb"\A[\t\x20-\x7e\x80-\xff]*\Z")

tokens = st.text(alphabet=TCHAR, min_size=1, max_size=16)

#: A field value as a client may send it: visible characters with inner spaces,
#: no leading or trailing whitespace (a parser strips those).
field_values = st.builds(
    b" ".join,
    st.lists(
        st.binary(min_size=1, max_size=8).map(lambda b: bytes(0x21 + (c % 0x5E) for c in b)),
        max_size=4,
    ),
)

"""The HPACK decoder of bascule's HTTP/2 connections (kept apart from connection.py).

It subclasses ``hpack.Decoder``, a class of another package: this module stays
plain Python in the compiled build (setup.py), as mypyc's native classes cannot
inherit from classes it does not compile.
"""

import hpack


class CappedDecoder(hpack.Decoder):
    """An HPACK decoder whose memory cap h2 cannot lower.

    RFC 9113 §10.5.1 lets a server answer a header list over its advertised
    SETTINGS_MAX_HEADER_LIST_SIZE with 431 on that stream, but the block must
    still be decoded (HPACK state is per connection).  h2 sets the decoder's
    limit to the advertised value when our SETTINGS are acknowledged, which
    would make every oversized list a connection error; the decoder keeps its
    own hard cap instead (``Http2Limits.header_list_hard_cap``), past which the
    connection ends (HPACK bomb guard).
    """

    def __init__(self, cap: int) -> None:
        self._cap = cap
        super().__init__(cap)

    @property
    def max_header_list_size(self) -> int:
        return self._cap

    @max_header_list_size.setter
    def max_header_list_size(self, value: int) -> None:
        """h2's writes (the advertised value) are ignored; the cap stays."""

"""bascule: an ASGI server.

Public surface: :func:`run` (blocking), :func:`serve` (async), :class:`Config`.
"""

from bascule._build import warn_if_stale
from bascule._version import __version__

warn_if_stale()

from bascule.config import Config  # noqa: E402 (after the staleness check)
from bascule.main import run, serve  # noqa: E402

__all__ = ["Config", "__version__", "run", "serve"]

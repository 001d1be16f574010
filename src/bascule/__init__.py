"""bascule: an ASGI server.

Public surface: :func:`run` (blocking), :func:`serve` (async), :class:`Config`.
"""

from bascule._version import __version__
from bascule.config import Config
from bascule.main import run, serve

__all__ = ["Config", "__version__", "run", "serve"]

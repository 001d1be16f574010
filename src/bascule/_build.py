"""Which build of bascule is running: compiled by mypyc (setup.py) or pure Python.

setup.py compiles the modules on every request's path to C extensions when it
can; the interpreter then imports ``name.cpython-311-*.so`` instead of
``name.py``. In a source checkout (an editable install), the extensions sit
beside the sources they were built from: editing a source without rebuilding
would silently run the old code, so :func:`warn_if_stale` says so.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import os
import warnings
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent
_SUFFIXES = tuple(importlib.machinery.EXTENSION_SUFFIXES)

#: A module that every compiled build compiles (setup.py ``COMPILED``).
_PROBE = "bascule.aio.transport"


def is_compiled() -> bool:
    """True when the HTTP hot path runs as mypyc-compiled extension modules."""
    module = importlib.import_module(_PROBE)
    return (getattr(module, "__file__", None) or "").endswith(_SUFFIXES)


def build_name() -> str:
    """``compiled with mypyc`` or ``pure Python``, for ``bascule --version``."""
    return "compiled with mypyc" if is_compiled() else "pure Python"


def stale_extensions(package: Path = _PACKAGE) -> list[tuple[Path, Path]]:
    """(extension, source) pairs under ``package`` whose source is newer than the build.

    mypyc puts the code of every compiled module in one shared library beside the
    package (``<hash>__mypyc.*.so``) and leaves a small per-module shim, which a
    rebuild does not rewrite when only the code changed: a build's time is that of
    the newest of them.
    """
    extensions = [
        Path(directory, name)
        for directory, _, files in os.walk(package)
        for name in files
        if name.endswith(_SUFFIXES)
    ]
    extensions += [
        path for path in package.parent.glob("*__mypyc*") if path.name.endswith(_SUFFIXES)
    ]
    if not extensions:
        return []
    built = max(path.stat().st_mtime for path in extensions)
    stale = []
    for extension in extensions:
        source = extension.with_name(extension.name.partition(".")[0] + ".py")
        if source.exists() and source.stat().st_mtime > built:
            stale.append((extension, source))
    return stale


def warn_if_stale(package: Path = _PACKAGE) -> None:
    """Warn when a source checkout's compiled modules are older than their sources.

    Only in a checkout (``src/`` layout with setup.py beside it): an installed
    wheel's files carry the archive's times, not a build's.
    """
    if not (package.parent.name == "src" and (package.parent.parent / "setup.py").exists()):
        return
    stale = stale_extensions(package)
    if stale:
        names = ", ".join(source.name for _, source in stale)
        warnings.warn(
            f"bascule: compiled modules are older than their sources ({names}): the old code "
            "runs. Rebuild with `pip install -e .`, or delete the .so files to run the sources.",
            RuntimeWarning,
            stacklevel=2,
        )

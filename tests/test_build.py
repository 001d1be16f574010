"""The compiled (mypyc) and pure-Python builds: which one runs, and stale builds."""

from __future__ import annotations

import importlib.machinery
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest

from bascule._build import build_name, is_compiled, stale_extensions, warn_if_stale

ROOT = Path(__file__).resolve().parent.parent
SUFFIX = importlib.machinery.EXTENSION_SUFFIXES[0]  # ".cpython-311-x86_64-linux-gnu.so"


def test_expected_build_runs() -> None:
    """CI says which build it installed (BASCULE_EXPECT_BUILD): a silent fallback fails here."""
    expected = os.environ.get("BASCULE_EXPECT_BUILD")
    if expected is None:
        pytest.skip("BASCULE_EXPECT_BUILD not set (CI sets it)")
    assert expected in ("compiled", "pure")
    assert is_compiled() is (expected == "compiled")


def test_version_names_the_build() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bascule", "--version"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert result.stdout.startswith("bascule ")
    assert f"({build_name()})" in result.stdout
    assert build_name() in ("compiled with mypyc", "pure Python")


def _checkout(tmp_path: Path) -> Path:
    """A source tree as an in-place mypyc build leaves it: shims, sources, shared library."""
    package = tmp_path / "src" / "bascule"
    (package / "aio").mkdir(parents=True)
    (tmp_path / "setup.py").write_text("")
    for name in ("aio/transport", "aio/app"):
        (package / f"{name}.py").write_text("")
        (package / f"{name}{SUFFIX}").write_bytes(b"")
    (tmp_path / "src" / f"0123abcd__mypyc{SUFFIX}").write_bytes(b"")
    for path in tmp_path.rglob("*"):
        if path.is_file():
            _age(path, 3600)
    return package


def _touch(path: Path, age: float) -> None:
    now = time.time()
    os.utime(path, (now - age, now - age))


def _age(path: Path, seconds: float) -> None:
    stat = path.stat()
    os.utime(path, (stat.st_atime - seconds, stat.st_mtime - seconds))


def test_fresh_build_is_quiet(tmp_path: Path) -> None:
    package = _checkout(tmp_path)
    _touch(tmp_path / "src" / f"0123abcd__mypyc{SUFFIX}", 0)  # rebuilt after every edit
    assert stale_extensions(package) == []
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_if_stale(package)


def test_rebuild_that_left_the_shims_alone_is_fresh(tmp_path: Path) -> None:
    """Only the shared library changes when code changes: the shims keep their old time."""
    package = _checkout(tmp_path)
    _touch(package / "aio" / "transport.py", 60)
    _touch(tmp_path / "src" / f"0123abcd__mypyc{SUFFIX}", 0)
    assert stale_extensions(package) == []


def test_edited_source_after_build_warns(tmp_path: Path) -> None:
    package = _checkout(tmp_path)
    _touch(package / "aio" / "transport.py", 0)  # edited after the last build
    stale = stale_extensions(package)
    assert [source.name for _, source in stale] == ["transport.py"]
    with pytest.warns(RuntimeWarning, match=r"older than their sources \(transport\.py\)"):
        warn_if_stale(package)


def test_installed_package_is_not_checked(tmp_path: Path) -> None:
    package = _checkout(tmp_path)
    (tmp_path / "setup.py").unlink()  # site-packages: no checkout around the package
    _touch(package / "aio" / "transport.py", 0)
    assert stale_extensions(package) != []
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_if_stale(package)


def test_setup_compiles_what_the_probe_names() -> None:
    """The module is_compiled() inspects is one setup.py compiles."""
    setup = (ROOT / "setup.py").read_text()
    assert '"src/bascule/aio/transport.py"' in setup

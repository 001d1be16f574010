"""The sans-I/O rule: nothing in proto/ or asgi/ imports I/O, clocks or logging (DESIGN.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src" / "bascule"
FORBIDDEN = {"asyncio", "socket", "ssl", "time", "logging", "threading", "selectors", "bascule.aio"}
SANS_IO = sorted([*SRC.joinpath("proto").rglob("*.py"), *SRC.joinpath("asgi").rglob("*.py")])


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_there_are_sans_io_modules() -> None:
    assert len(SANS_IO) >= 10


@pytest.mark.parametrize("path", SANS_IO, ids=lambda p: str(p.relative_to(SRC)))
def test_sans_io_imports(path: Path) -> None:
    bad = {
        name
        for name in imported_modules(path)
        if any(name == f or name.startswith(f + ".") for f in FORBIDDEN)
    }
    assert not bad, f"{path.relative_to(SRC)} imports {sorted(bad)}"


def test_public_surface() -> None:
    import bascule

    assert sorted(bascule.__all__) == ["Config", "__version__", "run", "serve"]
    for name in bascule.__all__:
        assert getattr(bascule, name) is not None

"""Options from a TOML file and from ``BASCULE_<OPTION>`` environment variables.

The command line layers them: command line > environment > file > defaults
(``bascule.cli.config_from_args``).  This module only reads and converts:
each value is turned into the type of its ``Config`` field with the command
line's rules (sizes take k/m/g, enums their names, booleans true/false), and
every error names the option and where the value came from (the file's path
or the variable's name).

- A config file (``--config PATH``, or ``$BASCULE_CONFIG``) holds options as
  top-level keys, spelt like the field (``log_level``) or the flag
  (``log-level``).  A ``pyproject.toml`` is read from its ``[tool.bascule]``
  table, and the one in the working directory is used when no file is named.
- ``BASCULE_PORT=9000``, ``BASCULE_HTTP2=false``, ``BASCULE_BIND=a,b``: lists
  are comma-separated, or a JSON array of strings when an item holds a comma.
"""

from __future__ import annotations

import difflib
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from bascule.config import field_type, option_fields, parse_size
from bascule.errors import ConfigError

#: Prefix of the environment variables that set options.
ENV_PREFIX = "BASCULE_"

#: Options a config file cannot set (the file is chosen by them).
_NOT_IN_FILE = frozenset({"config"})

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def _fields() -> dict[str, Any]:
    return {f.name: f for f in option_fields()}


def env_name(option: str) -> str:
    """The environment variable of an option: ``log_level`` → ``BASCULE_LOG_LEVEL``."""
    return ENV_PREFIX + option.upper()


# converting values ---------------------------------------------------------------------------


def _describe(kind: Any, size: bool) -> str:
    if size:
        return "a size in bytes (e.g. 65536, 64k, 1m)"
    if kind is bool:
        return "true or false"
    if kind is int:
        return "an integer"
    if kind is float:
        return "a number"
    if isinstance(kind, type) and issubclass(kind, Enum):
        return "one of " + ", ".join(m.value for m in kind)
    if typing.get_origin(kind) is tuple:
        return "a list of strings"
    return "a string"


def convert_value(name: str, value: Any, source: str) -> Any:
    """A TOML value (or an already-typed one) → the type of option ``name``.

    ``source`` (a file path) starts the message of the ConfigError raised on a
    wrong type.
    """
    f = _fields()[name]
    kind, _optional = field_type(name)
    size = bool(f.metadata.get("size"))
    try:
        return _convert(kind, size, value, text=False)
    except (TypeError, ValueError):
        raise ConfigError(
            f"{source}: {name}: expected {_describe(kind, size)}, got {value!r}"
        ) from None


def convert_text(name: str, text: str, source: str) -> Any:
    """A string (an environment variable's value) → the type of option ``name``.

    An empty string sets an option whose default is none back to none.
    """
    f = _fields()[name]
    kind, optional = field_type(name)
    size = bool(f.metadata.get("size"))
    if optional and text.strip() == "":
        return None
    try:
        return _convert(kind, size, text, text=True)
    except (TypeError, ValueError):
        raise ConfigError(
            f"{source}: {name}: expected {_describe(kind, size)}, got {text!r}"
        ) from None


def _convert(kind: Any, size: bool, value: Any, *, text: bool) -> Any:
    """Raise TypeError/ValueError when ``value`` does not fit ``kind``."""
    if kind is Any:  # the app: a 'module:attribute' string
        if not isinstance(value, str):
            raise TypeError
        return value
    if kind is bool:
        if isinstance(value, bool):
            return value
        if text and isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise TypeError
    if isinstance(value, bool):  # TOML true is not a number, a string or a list
        raise TypeError
    if size:
        if isinstance(value, int):
            return value
        if isinstance(value, str):
            return parse_size(value)
        raise TypeError
    if kind is int:
        if isinstance(value, int):
            return value
        if text and isinstance(value, str):
            return int(value.strip())
        raise TypeError
    if kind is float:
        if isinstance(value, int | float):
            return float(value)
        if text and isinstance(value, str):
            return float(value.strip())
        raise TypeError
    if isinstance(kind, type) and issubclass(kind, Enum):
        if isinstance(value, kind):
            return value
        if isinstance(value, str):
            return kind(value.strip().lower())
        raise TypeError
    if typing.get_origin(kind) is tuple:
        return _convert_list(value, text=text)
    if isinstance(value, str):
        return value
    raise TypeError


def _convert_list(value: Any, *, text: bool) -> tuple[str, ...]:
    if text and isinstance(value, str):
        stripped = value.strip()
        if stripped.startswith("["):
            import json  # noqa: PLC0415 (rare; a server need not carry it, docs/performance.md)

            value = json.loads(stripped)
        else:
            return tuple(item.strip() for item in stripped.split(",") if item.strip())
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list | tuple) and all(isinstance(item, str) for item in value):
        return tuple(value)
    raise TypeError


# files ---------------------------------------------------------------------------------------


def _read_toml(path: Path) -> dict[str, Any]:
    import tomllib  # noqa: PLC0415 (only with a config file, docs/performance.md)

    try:
        with path.open("rb") as stream:
            return tomllib.load(stream)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


def _is_pyproject(path: Path) -> bool:
    return path.name == "pyproject.toml"


def _table(path: Path, data: dict[str, Any], name: str) -> tuple[dict[str, Any], str]:
    """The options table of a parsed file, and how errors should name the file."""
    if not _is_pyproject(path):
        return data, name
    label = f"{name} [tool.bascule]"
    tool = data.get("tool", {})
    table = tool.get("bascule", {}) if isinstance(tool, dict) else {}
    if not isinstance(table, dict):
        raise ConfigError(f"{label}: expected a table")
    return table, label


def options_from_mapping(table: Mapping[str, Any], label: str) -> dict[str, Any]:
    """Keys (``log_level`` or ``log-level``) of a parsed file → typed options.

    Unknown keys, and the same option spelt twice, are errors naming the key and ``label``.
    """
    known = _fields()
    options: dict[str, Any] = {}
    for key, value in table.items():
        name = key.replace("-", "_")
        if name not in known or name in _NOT_IN_FILE:
            if name in _NOT_IN_FILE:
                raise ConfigError(f"{label}: {key!r} cannot be set in a config file")
            hint = difflib.get_close_matches(name, list(known), n=1)
            suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise ConfigError(f"{label}: unknown option {key!r}{suggestion}")
        if name in options:
            raise ConfigError(f"{label}: option {name!r} is given twice")
        options[name] = convert_value(name, value, label)
    return options


def read_file(path: str | Path, name: str | None = None) -> tuple[dict[str, Any], str]:
    """The options of a config file and its label for messages (``[tool.bascule]`` of a
    ``pyproject.toml``, top-level keys of any other file).

    ``name`` is how messages call the file (default: ``path``).
    """
    file = Path(path)
    name = str(path) if name is None else name
    try:
        data = _read_toml(file)
    except ConfigError as exc:
        raise ConfigError(str(exc).replace(str(file), name, 1)) from None
    table, label = _table(file, data, name)
    return options_from_mapping(table, label), label


def load_options(path: str | Path) -> dict[str, Any]:
    """Options of a TOML config file, typed, for ``bascule.run(**load_options(path))``.

    Raises ConfigError naming the file (and the key) when it cannot be used.
    """
    return read_file(path)[0]


def default_file(cwd: str | Path = ".") -> Path | None:
    """``pyproject.toml`` of ``cwd`` when it has a ``[tool.bascule]`` table, else None."""
    candidate = Path(cwd) / "pyproject.toml"
    if not candidate.is_file():
        return None
    data = _read_toml(candidate)
    tool = data.get("tool")
    if isinstance(tool, dict) and "bascule" in tool:
        return candidate
    return None


# environment ---------------------------------------------------------------------------------


def env_options(environ: Mapping[str, str]) -> tuple[dict[str, Any], list[str]]:
    """Options from ``BASCULE_<OPTION>`` variables, and warnings for likely misspellings.

    Other ``BASCULE_`` names are left alone (the prefix is shared with scripts and tests),
    except those close to an option's name, which get a warning.
    """
    by_env = {env_name(name): name for name in _fields()}
    options: dict[str, Any] = {}
    warnings: list[str] = []
    for var, text in environ.items():
        if not var.startswith(ENV_PREFIX):
            continue
        name = by_env.get(var)
        if name is None:
            hint = difflib.get_close_matches(var, list(by_env), n=1, cutoff=0.85)
            if hint:
                warnings.append(f"{var} is not an option (did you mean {hint[0]}?); ignored")
            continue
        options[name] = convert_text(name, text, var)
    return options, warnings


# layering ------------------------------------------------------------------------------------


@dataclass
class Layered:
    """Options from every source, merged, with where each came from."""

    options: dict[str, Any] = field(default_factory=dict)
    #: option name → "command line", a variable name, or a file label
    sources: dict[str, str] = field(default_factory=dict)
    #: the config file that was read, if any
    file: str | None = None
    warnings: list[str] = field(default_factory=list)


def layer(cli: Mapping[str, Any], environ: Mapping[str, str], cwd: str | Path = ".") -> Layered:
    """command line > environment > file > defaults (defaults are left to Config)."""
    env, warnings = env_options(environ)
    result = Layered(warnings=warnings)
    given: str | None = cli.get("config", env.get("config"))
    path = default_file(cwd) if given is None else Path(cwd) / given
    if path is not None:
        from_file, label = read_file(path, given)
        result.file = label
        for name, value in from_file.items():
            result.options[name] = value
            result.sources[name] = label
    for name, value in env.items():
        result.options[name] = value
        result.sources[name] = env_name(name)
    for name, value in cli.items():
        result.options[name] = value
        result.sources[name] = "command line"
    _address_precedence(result)
    return result


def _rank(source: str) -> int:
    """Precedence of a source label: command line > environment > file."""
    if source == "command line":
        return 2
    return 1 if source.startswith(ENV_PREFIX) else 0


def _address_precedence(result: Layered) -> None:
    """``--host``/``--port`` and ``bind`` are two ways to say where to listen: the
    higher layer's wins (``--port 9000`` beats ``bind`` from a file)."""
    sources = result.sources
    if "bind" not in sources:
        return
    ranks = {name: _rank(sources[name]) for name in ("host", "port") if name in sources}
    if not ranks:
        return
    winner = max(ranks, key=ranks.__getitem__)
    if ranks[winner] > _rank(sources["bind"]):
        result.warnings.append(
            f"bind from {sources['bind']} ignored: {winner} is set by {sources[winner]}"
        )
        del result.options["bind"]
        del sources["bind"]


__all__ = [
    "ENV_PREFIX",
    "Layered",
    "convert_text",
    "convert_value",
    "default_file",
    "env_name",
    "env_options",
    "layer",
    "load_options",
    "options_from_mapping",
    "read_file",
]

"""The ``bascule`` command, generated from Config's field metadata.

Every option is declared once, in ``bascule.config``; this module only turns
fields into argparse arguments (bools become ``--x/--no-x``, tuples become
repeatable, enums become choices, sizes accept k/m/g).  Bad values exit with
status 2 and one line; an app that cannot be loaded exits 1 with one line.

Options also come from a TOML file and ``BASCULE_<OPTION>`` variables
(``bascule.config_file``); the parser leaves out what the command line did not
say, so that command line > environment > file > defaults.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import typing
from collections.abc import Mapping
from enum import Enum
from pathlib import Path
from typing import Any, NoReturn

from bascule._build import build_name
from bascule._version import __version__
from bascule.config import Config, field_default, field_type, flag, option_fields, parse_size
from bascule.config_file import layer
from bascule.errors import AppLoadError, ConfigError

#: Marks an option the command line did not give (argparse leaves it out of the namespace).
_UNSET = argparse.SUPPRESS


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        """One line on stderr and status 2 (argparse prints the usage too)."""
        self.exit(2, f"bascule: error: {message}\n")


def _converter(kind: Any, size: bool, name: str) -> Any:
    def convert(text: str) -> Any:
        try:
            if size:
                return parse_size(text)
            if kind is bool:
                return text
            return kind(text)
        except ValueError:
            kind_name = "size" if size else getattr(kind, "__name__", str(kind))
            raise argparse.ArgumentTypeError(f"invalid {kind_name} value: {text!r}") from None

    convert.__name__ = name
    return convert


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, one argument per Config field."""
    parser = _Parser(
        prog="bascule",
        description="bascule: serve an ASGI (or WSGI) app over HTTP/1.1, HTTP/2 and WebSocket.",
        allow_abbrev=False,
    )
    for f in option_fields():
        meta = f.metadata
        default = field_default(f)
        kind, _optional = field_type(f.name)
        help_text = meta["help"]
        if f.name == "app":
            parser.add_argument("app", nargs="?", default=_UNSET, metavar="APP", help=help_text)
            continue
        name = "--" + flag(f.name)
        if kind is bool:
            parser.add_argument(
                name,
                dest=f.name,
                action=argparse.BooleanOptionalAction,
                default=_UNSET,
                help=f"{help_text} (default: {'on' if default else 'off'})",
            )
        elif isinstance(kind, type) and issubclass(kind, Enum):
            parser.add_argument(
                name,
                dest=f.name,
                choices=[m.value for m in kind],
                default=_UNSET,
                help=f"{help_text} (default: {default.value})",
            )
        elif typing.get_origin(kind) is tuple:
            parser.add_argument(
                name,
                dest=f.name,
                action="append",
                default=_UNSET,
                metavar=meta["metavar"],
                help=help_text,
            )
        else:
            shown = "none" if default is None else default
            parser.add_argument(
                name,
                dest=f.name,
                type=_converter(kind, meta["size"], kind.__name__),
                default=_UNSET,
                metavar=meta["metavar"] or kind.__name__.upper(),
                help=f"{help_text} (default: {shown})",
            )
    parser.add_argument(
        "--version", action="version", version=f"bascule {__version__} ({build_name()})"
    )
    return parser


def given_options(args: argparse.Namespace) -> dict[str, Any]:
    """The options the command line gave, typed like Config's fields."""
    values: dict[str, Any] = {}
    for f in option_fields():
        if not hasattr(args, f.name):
            continue
        value = getattr(args, f.name)
        kind, _ = field_type(f.name)
        if isinstance(kind, type) and issubclass(kind, Enum):
            value = kind(value)
        elif typing.get_origin(kind) is tuple:
            value = tuple(value or ())
        values[f.name] = value
    return values


_FLAG_IN_MESSAGE = re.compile(r"^--([a-z0-9-]+)")


def config_from_args(
    args: argparse.Namespace,
    environ: Mapping[str, str] | None = None,
    cwd: str | Path = ".",
) -> Config:
    """Namespace + environment + config file → validated Config.

    Raises ConfigError; a value that fails validation is named with its source
    when it did not come from the command line.
    """
    return _layered_config(args, environ, cwd)[0]


def _layered_config(
    args: argparse.Namespace, environ: Mapping[str, str] | None, cwd: str | Path
) -> tuple[Config, dict[str, str]]:
    layered = layer(given_options(args), os.environ if environ is None else environ, cwd)
    for warning in layered.warnings:
        sys.stderr.write(f"bascule: warning: {warning}\n")
    options = layered.options
    if options.get("log_config") is not None:
        for name in ("log_level", "log_format"):
            if name in options:
                sys.stderr.write(
                    f"bascule: warning: --{flag(name)} has no effect with --log-config "
                    "(the file sets levels and formats)\n"
                )
    try:
        return Config(**options).validate(), layered.sources
    except ConfigError as exc:
        raise _with_source(exc, layered.sources) from None


def _with_source(exc: ConfigError, sources: Mapping[str, str]) -> ConfigError:
    """``exc`` with ``(from FILE)`` / ``(from BASCULE_X)`` when the option came from there."""
    message = str(exc)
    m = _FLAG_IN_MESSAGE.match(message)
    source = sources.get(m.group(1).replace("-", "_")) if m else None
    if source is None or source == "command line":
        return exc
    return ConfigError(f"{message} (from {source})")


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``bascule`` command."""
    from bascule.main import run  # noqa: PLC0415 - keep --help fast

    parser = build_parser()
    args = parser.parse_args(argv)
    sources: dict[str, str] = {}
    try:
        config, sources = _layered_config(args, None, ".")
        options = {f.name: getattr(config, f.name) for f in option_fields() if f.name != "app"}
        run(config.app, **options)
    except ConfigError as exc:
        parser.error(str(_with_source(exc, sources)))
    except AppLoadError as exc:
        sys.stderr.write(f"bascule: error: {exc}\n")
        sys.exit(1)
    except KeyboardInterrupt:  # pragma: no cover - signal handlers normally catch it
        sys.exit(130)


def options_markdown() -> str:
    """The options reference (docs/options.md), generated from Config's fields."""
    rows = [
        "# Options reference",
        "",
        "Generated from `bascule.config.Config` by `python scripts/gen_options.py`;",
        "`tests/test_docs.py` fails when this page and the command line disagree.",
        "Every option is a command-line flag, a keyword argument of `bascule.run(app, ...)`",
        "and a field of `bascule.Config` (used with `await bascule.serve(app, config)`).",
        "Each can also be set in a TOML config file (key `log_level` or `log-level`) or in",
        "an environment variable (`BASCULE_LOG_LEVEL`): see [configuration.md](configuration.md).",
        "",
        "| flag | `run()` keyword | default | description |",
        "| --- | --- | --- | --- |",
    ]
    for f in option_fields():
        default = field_default(f)
        kind, _ = field_type(f.name)
        if f.name == "app":
            flag_text = "`APP` (positional)"
        elif kind is bool:
            flag_text = f"`--{flag(f.name)}` / `--no-{flag(f.name)}`"
        else:
            flag_text = f"`--{flag(f.name)} {f.metadata['metavar'] or kind.__name__.upper()}`"
        if isinstance(default, Enum):
            shown = f"`{default.value}` (one of {', '.join(m.value for m in type(default))})"
        elif isinstance(default, tuple):
            shown = "none (repeatable)"
        elif default is None:
            shown = "none"
        elif isinstance(default, bool):
            shown = "on" if default else "off"
        else:
            shown = f"`{default}`"
        rows.append(f"| {flag_text} | `{f.name}` | {shown} | {f.metadata['help']} |")
    rows.append("")
    return "\n".join(rows)

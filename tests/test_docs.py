"""The docs stay true: the options reference matches the command line."""

from __future__ import annotations

from pathlib import Path

from bascule.cli import build_parser, options_markdown
from bascule.config import flag, option_fields

ROOT = Path(__file__).resolve().parent.parent


def test_options_reference_is_current() -> None:
    written = (ROOT / "docs" / "options.md").read_text(encoding="utf-8")
    assert written == options_markdown(), "run: python scripts/gen_options.py"


def test_every_option_is_a_flag_and_documented() -> None:
    help_text = build_parser().format_help()
    doc = (ROOT / "docs" / "options.md").read_text(encoding="utf-8")
    for f in option_fields():
        if f.name == "app":
            continue
        assert f"--{flag(f.name)}" in help_text
        assert f"`--{flag(f.name)}" in doc


def test_readme_opens_with_the_two_commands() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert readme.index("```") < readme.index("\n## ")  # the commands come first
    blocks = readme.split("```")
    first_code = blocks[1].strip().splitlines()[1:]  # after the language tag
    commands = [line for line in first_code if line and not line.startswith("#")]
    assert len(commands) == 2
    assert "bascule" in commands[0]
    assert "scripts/test" in commands[1]

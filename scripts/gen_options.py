"""Write docs/options.md from bascule's Config (the single declaration of every option)."""

from pathlib import Path

from bascule.cli import options_markdown

if __name__ == "__main__":
    target = Path(__file__).resolve().parent.parent / "docs" / "options.md"
    target.write_text(options_markdown(), encoding="utf-8")
    print(f"wrote {target}")

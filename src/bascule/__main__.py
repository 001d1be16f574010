"""``python -m bascule``."""

from bascule.cli import main

if __name__ == "__main__":
    main()

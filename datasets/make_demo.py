"""Regenerate the shipped demo book ``datasets/demo/{accounts,reps,history,truth}.csv``.

Calls :func:`territory_opt.synthetic.generate_book` with its defaults (20,000 accounts, 60 reps,
seed 2027, the shipped Georgia counties, years 2023-2025). Run from anywhere::

    /tmp/venv/bin/python datasets/make_demo.py

The output is byte-identical on every run with the same code and library versions.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from territory_opt.synthetic import generate_book

OUT_DIR = Path(__file__).resolve().parent / "demo"


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("pyogrio").setLevel(logging.WARNING)
    book = generate_book()
    book.write(OUT_DIR)
    return 0


if __name__ == "__main__":
    sys.exit(main())

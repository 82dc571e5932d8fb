"""The generated documentation in docs/ matches what the code derives today.

The page holds symbolic results only: numbers from a gradient check could differ in their last
bits between CPUs, and a doc test must not.
"""
import subprocess
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_seed_derivation_page_is_up_to_date():
    fresh = subprocess.run([sys.executable, "-m", "rnnsym", "derive", "--format", "markdown"],
                           capture_output=True, text=True, check=True).stdout
    assert (DOCS / "seed-T4.md").read_text(encoding="utf-8") == fresh, (
        "docs/seed-T4.md is stale: regenerate it with "
        "`rnnsym derive --format markdown --out docs/seed-T4.md`")

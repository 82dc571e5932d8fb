"""The generated documentation in docs/ matches what the code derives today."""
import subprocess
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_seed_derivation_page_is_up_to_date():
    fresh = subprocess.run([sys.executable, "-m", "rnnsym", "derive", "--format", "markdown", "--check"],
                           capture_output=True, text=True, check=True).stdout
    assert (DOCS / "seed-T4.md").read_text(encoding="utf-8") == fresh, (
        "docs/seed-T4.md is stale: regenerate it with "
        "`rnnsym derive --format markdown --check --out docs/seed-T4.md`")

"""docs/example.ipynb runs top to bottom in a real Jupyter kernel and shows math and pictures."""
from __future__ import annotations

from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat", reason="nbformat is in the test extra: pip install -e '.[test]'")
nbclient = pytest.importorskip("nbclient", reason="nbclient is in the test extra: pip install -e '.[test]'")
pytest.importorskip("ipykernel", reason="ipykernel is in the test extra: pip install -e '.[test]'")

NOTEBOOK = Path(__file__).resolve().parents[1] / "docs" / "example.ipynb"


def test_example_notebook_runs_and_displays_math_and_pictures():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    assert not any(cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code"), \
        "commit docs/example.ipynb without outputs"
    nbclient.NotebookClient(notebook, timeout=120, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    bundles = [o.data for o in outputs if o.output_type == "execute_result"]
    network, derivation, picture = bundles[:3]
    assert network["image/svg+xml"].startswith("<svg") and "<math" in network["text/html"]
    assert "<math" in derivation["text/html"] and "text/latex" in derivation
    assert 'data-path="4"' in picture["image/svg+xml"]
    printed = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "path 4:" in printed and "finite difference" in printed and "OK" in printed
    # The derivation lambdified to JAX gives the compiled gradient (issue 16: a notebook cell).
    through_jax, compiled = (float(v.rstrip(",")) for v in printed.split("dL/dw through JAX ")[1].split()[:3:2])
    assert abs(through_jax - compiled) <= 1.5e-12  # both printed to 12 decimals

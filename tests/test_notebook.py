"""The example notebook runs headlessly in a fresh kernel, and its figure is a picture."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOK = Path(__file__).resolve().parents[1] / "examples" / "notebooks" / "tour.ipynb"


@pytest.mark.timeout(180)
def test_example_notebook_executes_and_shows_a_png(tmp_path):
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    start = time.perf_counter()
    client = nbclient.NotebookClient(
        notebook,
        timeout=120,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()  # raises CellExecutionError naming the cell on any error
    seconds = time.perf_counter() - start
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    pngs = [o for o in outputs if "image/png" in o.get("data", {})]
    assert pngs, "plot_batch showed no PNG"
    texts = " ".join(o.get("data", {}).get("text/plain", "") for o in outputs)
    assert "<Figure size" not in texts  # the figure rendered as a picture, not as text
    assert "contrast: property holds" in texts
    stderr = " ".join(o.get("text", "") for o in outputs if o.get("name") == "stderr")
    assert "IProgress not found" not in stderr
    assert seconds < 60, f"the notebook took {seconds:.0f} s"

"""The Colab notebook runs top to bottom (on the tiny config), so it never rots."""

import os

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
def test_quickstart_notebook_executes(tmp_path, monkeypatch):
    monkeypatch.setenv("AMR_NOTEBOOK_CONFIG", "tiny")
    monkeypatch.setenv("AMR_NOTEBOOK_WORKDIR", str(tmp_path))
    monkeypatch.setenv("XLA_FLAGS", "")
    monkeypatch.setenv("AMR_NOTEBOOK_NO_INSTALL", "1")  # a missing dependency fails here; never pip install in a test
    monkeypatch.delenv("AMR_REPO", raising=False)
    monkeypatch.delenv("PYTHONPATH", raising=False)  # the install cell finds the clone by itself
    nb = nbformat.read(os.path.join(ROOT, "notebooks", "amr_quickstart.ipynb"), as_version=4)
    # Jupyter starts the kernel in the notebook's folder; the install cell walks up from there to the clone
    notebooks = os.path.join(ROOT, "notebooks")
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": notebooks}}).execute()
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any(f"amr from {ROOT}/amr/__init__.py" in o.get("text", "") for o in outputs)  # this clone's amr
    assert any("image/png" in o.get("data", {}) for o in outputs)
    assert (tmp_path / "results.json").exists()

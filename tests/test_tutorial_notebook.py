"""docs/tutorial.ipynb as a reader runs it: top to bottom in a real Jupyter kernel (this venv's
Python), with tiny settings put in after its parameter cell; and committed without outputs."""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[1] / "docs" / "tutorial.ipynb"
CELL_SECONDS = 300  # one cell at most: the training cell on a loaded machine


def test_the_committed_notebook_holds_no_outputs():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    code_cells = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code_cells
    assert [cell.source[:40] for cell in code_cells
            if cell.outputs or cell.execution_count is not None] == []


def with_settings(notebook, settings: dict):
    """The notebook with a cell setting `settings` right after its "parameters" cell (the cell
    a reader edits), as papermill injects parameters."""
    tagged = [index for index, cell in enumerate(notebook.cells)
              if "parameters" in cell.metadata.get("tags", ())]
    assert len(tagged) == 1, "the notebook has one cell tagged 'parameters'"
    parameters = notebook.cells[tagged[0]].source
    assert all(f"{name} = " in parameters for name in settings), parameters
    injected = nbformat.v4.new_code_cell("\n".join(f"{name} = {value!r}"
                                                   for name, value in settings.items()))
    notebook.cells.insert(tagged[0] + 1, injected)
    return notebook


def this_pythons_kernel(folder: Path) -> KernelManager:
    """A kernel manager that starts ipykernel on this venv's Python, whatever kernels the user
    has installed elsewhere."""
    from ipykernel.kernelspec import write_kernel_spec

    write_kernel_spec(folder / "kernels" / "python3")
    specs = KernelSpecManager(kernel_dirs=[str(folder / "kernels")], ensure_native_kernel=False)
    manager = KernelManager(kernel_name="python3", kernel_spec_manager=specs)
    assert manager.kernel_spec.argv[0] == sys.executable
    return manager


@pytest.mark.slow
def test_the_tutorial_runs_top_to_bottom_in_a_jupyter_kernel(tmp_path, monkeypatch,
                                                             tiny_config_values):
    # IPython's and Jupyter's own files (profile, history, connection files) stay in this
    # test's folder: running the suite leaves nothing new in the user's home.
    for variable in ("IPYTHONDIR", "JUPYTER_RUNTIME_DIR", "JUPYTER_DATA_DIR",
                     "JUPYTER_CONFIG_DIR"):
        monkeypatch.setenv(variable, str(tmp_path / variable.lower()))
    runs_dir = tmp_path / "runs"
    notebook = with_settings(nbformat.read(NOTEBOOK, as_version=4), {
        "EPOCHS": 1, "TRAIN_SAMPLES": tiny_config_values["train_samples"],
        "TEST_SAMPLES": tiny_config_values["test_samples"], "RUNS_DIR": str(runs_dir)})
    client = NotebookClient(notebook, km=this_pythons_kernel(tmp_path), timeout=CELL_SECONDS,
                            resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # CellExecutionError on the first cell that raises

    outputs = [output for cell in notebook.cells if cell.cell_type == "code"
               for output in cell.outputs]
    assert not [output for output in outputs if output.output_type == "error"]
    html = [output.data["text/html"] for output in outputs if "text/html" in output.get("data", {})]
    assert any('class="kexp-run"' in text for text in html)  # the run's card
    assert any('class="kexp-runs"' in text for text in html)  # the list of runs
    pictures = [output for output in outputs if "image/png" in output.get("data", {})]
    assert len(pictures) >= 5  # histograms, filter grids, patches, optimal inputs, forces
    trained = [path for path in runs_dir.iterdir() if path.is_dir()]
    assert len(trained) == 1 and (trained[0] / "model.keras").is_file()

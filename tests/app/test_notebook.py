"""examples/explore.ipynb runs top to bottom in a real Jupyter kernel (nbclient)."""
from pathlib import Path

import nbformat

NOTEBOOK = Path(__file__).resolve().parents[2] / "examples" / "explore.ipynb"


def test_the_explore_notebook_executes(tmp_path, monkeypatch):
    from nbclient import NotebookClient

    monkeypatch.setenv("TWINVIZ_EXAMPLE_DATA", "sample")  # fast: skip the demo's first-run build
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    # The explorer and the lone twin table displayed as Panel/Bokeh views, not as reprs.
    mimes = [m for o in outputs for m in o.get("data", {})]
    assert sum("application/vnd.holoviews_exec.v0+json" in m for m in mimes) >= 2
    text = "".join(o.get("text", "") for o in outputs)
    assert "server-side update took" in text

"""examples/quickstart.ipynb runs headless on the committed demo_model/, as a user opens it, so it cannot rot."""

from pathlib import Path

import pytest


EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_quickstart_notebook_runs(synth_corpus, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")

    clip = str(sorted((synth_corpus / "roi88").rglob("*.mp4"))[0])
    monkeypatch.delenv("MMSLLAMA_MODEL", raising=False)  # the notebook's default: ../demo_model
    monkeypatch.setenv("MMSLLAMA_CLIP", clip)
    monkeypatch.setenv("MMSLLAMA_NUM_BEAMS", "1")
    monkeypatch.delenv("MPLBACKEND", raising=False)
    notebook = nbformat.read(EXAMPLES / "quickstart.ipynb", as_version=4)
    client = nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(EXAMPLES)}})  # fmt: skip
    client.execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert len([o for o in outputs if "image/png" in o.get("data", {})]) >= 3  # mouth crops, WER table, eval.png
    text = "".join(o.get("text", "") for o in outputs)
    assert "model: ../demo_model" in text and "MMSLlamaForConditionalGeneration" in text
    assert "speech tokens for" in text

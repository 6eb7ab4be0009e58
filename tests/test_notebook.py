"""examples/quickstart.ipynb runs headless on a tiny exported model, so it cannot rot."""

from pathlib import Path

import pytest


EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_quickstart_notebook_runs(tiny_model_folder, synth_corpus, tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    from hub_cards import export_model
    from training.data import load_split
    from training.evaluation import evaluate, evaluation_noise, write_report
    from modeling_mmsllama import MMSLlamaForConditionalGeneration, MMSLlamaProcessor

    model = MMSLlamaForConditionalGeneration.from_pretrained(tiny_model_folder).eval()
    processor = MMSLlamaProcessor.from_pretrained(tiny_model_folder, trust_remote_code=True)
    utterances = load_split(synth_corpus, "test", limit=2, max_frames=model.config.max_video_frames)
    report = evaluate(model, processor, utterances, evaluation_noise(load_split(synth_corpus, "valid", limit=4)),
                      [None, 0.0], ["av"], batch_size=2, num_beams=1, progress=False)  # fmt: skip
    write_report(report, tmp_path / "eval")
    exported = export_model(tiny_model_folder, tmp_path / "exported", card_results=tmp_path / "eval" / "eval.json")
    clip = str(sorted((synth_corpus / "roi88").rglob("*.mp4"))[0])
    monkeypatch.setenv("MMSLLAMA_MODEL", str(exported))
    monkeypatch.setenv("MMSLLAMA_CLIP", clip)
    monkeypatch.setenv("MMSLLAMA_NUM_BEAMS", "1")
    monkeypatch.delenv("MPLBACKEND", raising=False)
    notebook = nbformat.read(EXAMPLES / "quickstart.ipynb", as_version=4)
    client = nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(EXAMPLES)}})  # fmt: skip
    client.execute()
    images = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])
              if "image/png" in o.get("data", {})]  # fmt: skip
    assert len(images) >= 2  # mouth crops and the WER table (and eval.png)
    text = "".join(o.get("text", "") for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", []))
    assert "speech tokens for" in text

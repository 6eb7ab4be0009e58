"""The Hub-ready export: files, card with real numbers, and loading with only Transformers in a fresh process."""

import json

import pytest

from hub_cards import export_model
from isolated import run_isolated
from modeling_mmsllama import MMSLlamaForConditionalGeneration, MMSLlamaInputError, MMSLlamaProcessor
from modeling_mmsllama.pipeline_mmsllama import MMSLlamaASRPipeline


def test_export_folder_contents(tiny_export):
    files = {p.name for p in tiny_export.iterdir()}
    assert {"config.json", "model.safetensors", "generation_config.json", "processor_config.json", "tokenizer.json",
            "README.md", "modeling_mmsllama.py", "configuration_mmsllama.py", "processing_mmsllama.py",
            "pipeline_mmsllama.py", "media_mmsllama.py", "mouth_roi_mmsllama.py"} <= files  # fmt: skip
    assert not [f for f in files if f.endswith((".bin", ".pt", ".pth"))]
    config = json.loads((tiny_export / "config.json").read_text())
    assert config["custom_pipelines"]["automatic-speech-recognition"]["impl"] == "pipeline_mmsllama.MMSLlamaASRPipeline"
    assert config["auto_map"]["AutoModel"] == "modeling_mmsllama.MMSLlamaForConditionalGeneration"
    generation = json.loads((tiny_export / "generation_config.json").read_text())
    assert generation["num_beams"] == 1 and generation["eos_token_id"] == 2


def test_loads_with_only_transformers_and_matches(tiny_export, synth_corpus, tmp_path):
    clip = str(sorted((synth_corpus / "roi88").rglob("*.mp4"))[0])
    model = MMSLlamaForConditionalGeneration.from_pretrained(tiny_export).eval()
    processor = MMSLlamaProcessor.from_pretrained(tiny_export, trust_remote_code=True)
    ids = model.generate(**processor(videos=clip), num_beams=1, max_new_tokens=6, do_sample=False)
    expected = processor.batch_decode(ids)[0]
    local = MMSLlamaASRPipeline(model=model, processor=processor)(clip, max_new_tokens=6)
    assert local["text"] == expected
    code = f"""
        import json
        from transformers import AutoModel, AutoProcessor, pipeline
        path, clip = {str(tiny_export)!r}, {clip!r}
        model = AutoModel.from_pretrained(path, trust_remote_code=True).eval()
        processor = AutoProcessor.from_pretrained(path, trust_remote_code=True)
        assert "transformers_modules" in type(model).__module__ and "transformers_modules" in type(processor).__module__
        ids = model.generate(**processor(videos=clip), num_beams=1, max_new_tokens=6, do_sample=False)
        asr = pipeline("automatic-speech-recognition", model=path, trust_remote_code=True)
        assert type(asr).__name__ == "MMSLlamaASRPipeline", type(asr)
        result = asr(clip, max_new_tokens=6)
        print(json.dumps({{"decoded": processor.batch_decode(ids)[0], "pipeline": result["text"],
                          "tokens": result["speech_tokens"]}}))
    """
    out = json.loads(run_isolated(code, cwd=tmp_path).strip().splitlines()[-1])
    assert out["decoded"] == expected and out["pipeline"] == expected
    assert out["tokens"] == local["speech_tokens"]


def test_card_renders_real_numbers(tiny_model_folder, synth_corpus, tmp_path):
    from training.data import load_split
    from training.evaluation import evaluate, evaluation_noise, write_report

    model = MMSLlamaForConditionalGeneration.from_pretrained(tiny_model_folder).eval()
    processor = MMSLlamaProcessor.from_pretrained(tiny_model_folder, trust_remote_code=True)
    utterances = load_split(synth_corpus, "test", limit=2, max_frames=model.config.max_video_frames)
    noise = evaluation_noise(load_split(synth_corpus, "valid", limit=4))
    report = evaluate(model, processor, utterances, noise, [None, 0.0], ["av", "a"], batch_size=2, num_beams=1,
                      progress=False)  # fmt: skip
    write_report(report, tmp_path / "eval")
    out = export_model(tiny_model_folder, tmp_path / "exported", card_results=tmp_path / "eval" / "eval.json")
    card = (out / "README.md").read_text()
    assert card.startswith("---\nlicense: apache-2.0\n") and "pipeline_tag: automatic-speech-recognition" in card
    assert "$" not in card.replace("$$", "")  # every placeholder filled
    for row in report["results"]:
        assert f"{row['wer']:.1f}" in card and f"value: {row['wer']}" in card
    av_clean = next(r for r in report["results"] if r["modality"] == "av" and r["snr_db"] is None)
    assert f"{av_clean['tokens_per_second']:.2f}" in card
    assert "| audio + video |" in card and "| audio only |" in card and "0 dB" in card
    assert json.loads((out / "generation_config.json").read_text())["num_beams"] == 1  # the evaluation's beam
    assert (out / "eval.json").exists()


def test_export_refuses_bad_input(tiny_model_folder, tmp_path):
    with pytest.raises(MMSLlamaInputError, match="not a model folder"):
        export_model(tmp_path / "missing", tmp_path / "out")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x").write_text("x")
    with pytest.raises(MMSLlamaInputError, match="not empty"):
        export_model(tiny_model_folder, tmp_path / "busy")
    with pytest.raises(MMSLlamaInputError, match="no such evaluation"):
        export_model(tiny_model_folder, tmp_path / "out", card_results=tmp_path / "nope.json")


def test_export_in_place_refreshes_code_and_keeps_other_files(tiny_model_folder, tmp_path):
    import shutil

    folder = tmp_path / "model"
    shutil.copytree(tiny_model_folder, folder)
    (folder / "RECIPE.md").write_text("how it was made\n")
    (folder / "convert_old.py").write_text("stale code\n")
    weights = (folder / "model.safetensors").read_bytes()
    out = export_model(folder, folder, trained_on="synthetic-grid")
    assert out == folder and not (tmp_path / "model.partial").exists() and not (tmp_path / "model.old").exists()
    assert (folder / "RECIPE.md").read_text() == "how it was made\n" and not (folder / "convert_old.py").exists()
    assert (folder / "pipeline_mmsllama.py").exists() and (folder / "README.md").exists()
    assert json.loads((folder / "config.json").read_text())["trained_on"] == "synthetic-grid"
    assert "RECIPE.md" in (folder / "README.md").read_text()
    assert (folder / "model.safetensors").read_bytes() == weights

"""The committed `demo_model/` is a Hub folder: its code is this package's, its card is its evaluation's, and the Auto
classes and `pipeline` load it as committed, with only Transformers (remote code) or with the package installed."""

import json
from pathlib import Path

import pytest
from transformers.dynamic_module_utils import get_relative_import_files

from demo_transcripts import DEMO_MODEL, make_clips
from isolated import run_isolated
from modeling_mmsllama.configuration_mmsllama import SYNTHETIC_GRID


PACKAGE = Path(__file__).resolve().parents[1] / "modeling_mmsllama"
REFRESH = "mmsllama export --model demo_model --out demo_model"
CLIPS = 2  # test-speaker clips transcribed through each loading path


@pytest.fixture(scope="module")
def test_speaker_clips(tmp_path_factory):
    """(mp4 path, reference text) of the demo corpus's held-out test speakers: 88x88 mouth crops with their audio."""
    folder = tmp_path_factory.mktemp("demo-clips")
    utterances = make_clips(folder)[:CLIPS]
    clips = [(u.source.replace("/roi96/", "/roi88/"), u.text) for u in utterances]  # roi96 files carry no audio
    assert all(Path(path).is_file() and path.endswith(".mp4") for path, _ in clips)
    return clips


def test_code_files_are_the_package_code():
    """One source of truth: the folder's code is written by the export and must equal the package's byte for byte."""
    entry_points = [PACKAGE / name for name in ("modeling_mmsllama.py", "processing_mmsllama.py", "pipeline_mmsllama.py")]
    expected = {Path(p).name for f in entry_points for p in [f, *get_relative_import_files(str(f))]}
    present = {p.name for p in DEMO_MODEL.glob("*.py")}
    assert present == expected, f"demo_model/ code files differ from the export's set; run `{REFRESH}`"
    stale = [name for name in sorted(present) if (DEMO_MODEL / name).read_bytes() != (PACKAGE / name).read_bytes()]
    assert not stale, f"demo_model/{stale} differ from modeling_mmsllama/: run `{REFRESH}`"


def test_config_and_card_state_what_the_model_is():
    config = json.loads((DEMO_MODEL / "config.json").read_text())
    assert config["trained_on"] == SYNTHETIC_GRID
    assert config["auto_map"]["AutoModelForSpeechSeq2Seq"] == "modeling_mmsllama.MMSLlamaForConditionalGeneration"
    assert config["custom_pipelines"]["automatic-speech-recognition"]["impl"] == "pipeline_mmsllama.MMSLlamaASRPipeline"
    assert json.loads((DEMO_MODEL / "processor_config.json").read_text())["processor_class"] == "MMSLlamaProcessor"
    card = (DEMO_MODEL / "README.md").read_text()
    assert card.startswith("---\nlicense: apache-2.0\n") and "pipeline_tag: automatic-speech-recognition" in card
    report = json.loads((DEMO_MODEL / "eval.json").read_text())
    for row in report["results"]:
        assert f"value: {row['wer']}" in card
    assert "Knows only the 51 words of the synthetic grammar" in card and "whatever was said" in card
    assert "Trained only on the **synthetic GRID-style corpus**" in card and "RECIPE.md" in card


def test_loads_with_only_transformers_and_transcribes(test_speaker_clips, tmp_path):
    code = f"""
        import json
        from transformers import AutoConfig, AutoModel, AutoModelForSpeechSeq2Seq, AutoProcessor, pipeline
        path, clips = {str(DEMO_MODEL)!r}, {[c for c, _ in test_speaker_clips]!r}
        config = AutoConfig.from_pretrained(path, trust_remote_code=True)
        processor = AutoProcessor.from_pretrained(path, trust_remote_code=True)
        out = {{"config": type(config).__module__}}
        for auto in (AutoModel, AutoModelForSpeechSeq2Seq):
            model = auto.from_pretrained(path, trust_remote_code=True).eval()
            ids = model.generate(**processor(videos=clips), num_beams=5, max_new_tokens=32)
            out[auto.__name__] = [type(model).__module__, processor.batch_decode(ids, skip_special_tokens=True)]
        asr = pipeline("automatic-speech-recognition", model=path, trust_remote_code=True)
        out["pipeline"] = [type(asr).__name__, [r["text"] for r in asr(clips, batch_size=2)]]
        print(json.dumps(out))
    """
    out = json.loads(run_isolated(code, cwd=tmp_path).strip().splitlines()[-1])
    references = [text for _, text in test_speaker_clips]
    assert "transformers_modules" in out["config"]
    for auto in ("AutoModel", "AutoModelForSpeechSeq2Seq"):
        module, texts = out[auto]
        assert "transformers_modules" in module and texts == references
    assert out["pipeline"] == ["MMSLlamaASRPipeline", references]


def test_auto_classes_need_no_remote_code_with_the_package_installed(test_speaker_clips):
    from transformers import AutoConfig, AutoModelForSpeechSeq2Seq, AutoProcessor, pipeline

    from modeling_mmsllama import MMSLlamaConfig, MMSLlamaForConditionalGeneration, MMSLlamaProcessor
    from modeling_mmsllama.pipeline_mmsllama import MMSLlamaASRPipeline

    assert type(AutoConfig.from_pretrained(DEMO_MODEL)) is MMSLlamaConfig
    model = AutoModelForSpeechSeq2Seq.from_pretrained(DEMO_MODEL).eval()
    processor = AutoProcessor.from_pretrained(DEMO_MODEL)
    assert type(model) is MMSLlamaForConditionalGeneration and type(processor) is MMSLlamaProcessor
    # Transformers' pipeline() refuses a folder that declares a custom pipeline unless given trust_remote_code=True or
    # the class; with the package installed, the class is at hand.
    asr = pipeline("automatic-speech-recognition", model=model, processor=processor, pipeline_class=MMSLlamaASRPipeline)
    clip, reference = test_speaker_clips[0]
    assert asr(clip)["text"] == reference

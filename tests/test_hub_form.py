"""Save, then load with trust_remote_code in a fresh process where our package cannot be imported."""

import json
import subprocess
import sys
import textwrap

import torch
from safetensors.torch import load_file

from modeling_inputs import media, prompts, tiny_model


def run_isolated(code: str, cwd) -> str:
    """Runs code in a new interpreter in which `import modeling_mmsllama` fails."""
    blocker = "import sys; sys.modules['modeling_mmsllama'] = None\n"
    result = subprocess.run(
        [sys.executable, "-c", blocker + textwrap.dedent(code)], cwd=cwd, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_save_and_load_through_auto_classes_bit_for_bit(tmp_path):
    model = tiny_model(seed=1)
    model.save_pretrained(tmp_path / "model")
    files = {p.name for p in (tmp_path / "model").iterdir()}
    assert {"config.json", "model.safetensors", "modeling_mmsllama.py", "modeling_avhubert.py",
            "configuration_mmsllama.py"} <= files  # fmt: skip
    assert not any(name.endswith((".bin", ".pt")) for name in files)
    auto_map = json.loads((tmp_path / "model" / "config.json").read_text())["auto_map"]
    assert set(auto_map) >= {"AutoConfig", "AutoModel", "AutoModelForSpeechSeq2Seq", "AutoModelForMultimodalLM"}

    batch = {**media(model.config, [40, 25]), **prompts(batch=2)}
    torch.save(batch, tmp_path / "batch.pt")
    with torch.no_grad():
        expected = model(**batch).logits
    generated = model.generate(**batch, max_new_tokens=5)
    torch.save({"logits": expected, "generated": generated}, tmp_path / "expected.pt")
    code = f"""
        import torch
        from transformers import AutoConfig, AutoModel, AutoModelForSpeechSeq2Seq
        path = {str(tmp_path / "model")!r}
        assert type(AutoConfig.from_pretrained(path, trust_remote_code=True)).__name__ == "MMSLlamaConfig"
        batch = torch.load({str(tmp_path / "batch.pt")!r})
        expected = torch.load({str(tmp_path / "expected.pt")!r})
        for auto_class in (AutoModel, AutoModelForSpeechSeq2Seq):
            model = auto_class.from_pretrained(path, trust_remote_code=True).eval()
            assert "transformers_modules" in type(model).__module__
            with torch.no_grad():
                logits = model(**batch).logits
            assert torch.equal(logits, expected["logits"]), (logits - expected["logits"]).abs().max()
            assert torch.equal(model.generate(**batch, max_new_tokens=5), expected["generated"])
        print("ok")
    """
    assert run_isolated(code, cwd=tmp_path).strip().endswith("ok")


def test_weights_are_safetensors_with_buffers(tmp_path):
    model = tiny_model()
    model.save_pretrained(tmp_path)
    state = load_file(tmp_path / "model.safetensors")
    assert "vision_encoder.feature_extractor_video.resnet.frontend3D.1.running_mean" in state
    assert "qformer.query_tokens" in state
    assert "language_model.model.layers.0.self_attn.q_proj.weight" in state
    assert "vision_encoder.encoder.pos_conv.0.parametrizations.weight.original0" in state


def test_frozen_modules_stay_frozen_after_loading(tmp_path):
    tiny_model().save_pretrained(tmp_path)
    loaded = type(tiny_model()).from_pretrained(tmp_path)
    assert not any(p.requires_grad for p in loaded.audio_encoder.parameters())
    assert not any(p.requires_grad for p in loaded.vision_encoder.parameters())
    assert all(p.requires_grad for p in loaded.qformer.parameters())


def test_processor_for_a_folder_with_or_without_a_saved_processor(tmp_path):
    from modeling_mmsllama import MMSLlamaProcessor

    model = tiny_model()
    model.save_pretrained(tmp_path / "weights_only")
    built = MMSLlamaProcessor.for_model(tmp_path / "weights_only", model.config)
    assert built.speech_token_id == model.config.speech_token_id
    MMSLlamaProcessor.from_config(model.config).save_pretrained(tmp_path / "weights_only")
    loaded = MMSLlamaProcessor.for_model(tmp_path / "weights_only", model.config)
    assert loaded.tokenizer("bin blue")["input_ids"] == built.tokenizer("bin blue")["input_ids"]

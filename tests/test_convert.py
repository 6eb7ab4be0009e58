"""Weight conversion on tiny fake releases: safe reading, exact mapping, refusals, reports, atomic output, components."""

import json

import pytest
import torch
from peft import PeftModel
from safetensors.torch import load_file
from transformers import AutoModel, LlamaForCausalLM, WhisperModel

from convert_fixtures import (
    avhubert_cfg,
    avhubert_to_fairseq,
    component_folders,
    fairseq_checkpoint,
    mmsllama_to_reference,
    tiny_avhubert,
    tiny_config,
)
from modeling_inputs import media, prompts
from modeling_mmsllama import MMSLlamaAVHubertModel, MMSLlamaForConditionalGeneration
from modeling_mmsllama.convert_avhubert import convert_avhubert
from modeling_mmsllama.convert_cli import main
from modeling_mmsllama.convert_fairseq import load_fairseq_checkpoint
from modeling_mmsllama.convert_mmsllama import build_from_components, convert_mms_llama
from modeling_mmsllama.convert_report import MMSLlamaConversionError, sha256_file


TINY_QFORMER = tiny_config().qformer_config.to_dict()
TINY_OVERRIDES = {"max_video_frames": 125, "rate_predictor_heads": 2, "qformer_config": {"num_attention_heads": 4}}


def assert_same_tensors(actual: dict, expected: dict):
    assert set(actual) == set(expected)
    for key in expected:
        assert torch.equal(actual[key], expected[key]), key


# -- reading fairseq checkpoints -----------------------------------------------------------------------------------------


def test_reads_fairseq_checkpoint_without_its_classes_and_runs_no_code(tmp_path):
    marker = tmp_path / "code-ran"
    state = {"w": torch.randn(3, 4), "b": torch.arange(5)}
    fairseq_checkpoint(tmp_path / "c.pt", state, {"encoder_attention_heads": 4, "layer_norm_first": True}, trap=marker)
    loaded, cfg = load_fairseq_checkpoint(tmp_path / "c.pt")
    assert not marker.exists()
    assert_same_tensors(loaded, state)
    assert cfg["model"] == {"encoder_attention_heads": 4, "layer_norm_first": True}
    assert cfg["task"] == {"labels": ["km"]}


def test_refuses_files_that_are_not_fairseq_checkpoints(tmp_path):
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(MMSLlamaConversionError, match="not a readable PyTorch checkpoint"):
        load_fairseq_checkpoint(tmp_path / "junk.pt")
    torch.save({"weights": {}}, tmp_path / "other.pt")
    with pytest.raises(MMSLlamaConversionError, match="not a fairseq checkpoint"):
        load_fairseq_checkpoint(tmp_path / "other.pt")


# -- AV-HuBERT -----------------------------------------------------------------------------------------------------------


def test_avhubert_conversion_is_complete_and_exact(tmp_path):
    source = tiny_avhubert()
    fairseq_checkpoint(tmp_path / "avhubert.pt", avhubert_to_fairseq(source), avhubert_cfg(source))
    report = convert_avhubert(tmp_path / "avhubert.pt", tmp_path / "out")

    converted = MMSLlamaAVHubertModel.from_pretrained(tmp_path / "out").eval()
    assert_same_tensors(converted.state_dict(), source.state_dict())
    for field in ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "resnet_width",
                  "resnet_layers", "conv_pos", "conv_pos_groups", "layer_norm_first"):  # fmt: skip
        assert getattr(converted.config, field) == getattr(source.config, field), field
    video = torch.randn(2, 6, 1, 88, 88)
    with torch.no_grad():
        assert torch.equal(converted(video).last_hidden_state, source(video).last_hidden_state)

    mapping = report.mappings[0]
    assert mapping.mapped["encoder.pos_conv.0.weight_g"] == "encoder.pos_conv.0.parametrizations.weight.original0"
    assert set(mapping.dropped) == {"mask_emb", "final_proj.weight", "final_proj.bias", "label_embs_concat",
                                    "feature_extractor_audio.proj.weight", "feature_extractor_audio.proj.bias"}  # fmt: skip
    assert "video-only" in mapping.dropped["feature_extractor_audio.proj.weight"]
    written = json.loads((tmp_path / "out" / "conversion_report.json").read_text())
    assert written["outputs"]["model.safetensors"] == sha256_file(tmp_path / "out" / "model.safetensors")
    assert written["parameter_counts"]["total"] == sum(p.numel() for p in source.parameters())
    assert "mask_emb" in (tmp_path / "out" / "conversion_report.md").read_text()


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda s: {"encoder.weight": torch.zeros(2)}, "not an AV-HuBERT checkpoint"),
        (lambda s: {k: v for k, v in s.items() if k != "encoder.layers.1.fc2.bias"}, "nothing fills.*encoder.layers.1.fc2.bias"),
        (lambda s: {**s, "encoder.extra_head.weight": torch.zeros(2)}, "unexpected keys.*encoder.extra_head.weight"),
        (lambda s: {**s, "encoder.layer_norm.weight": torch.zeros(7)}, "shape mismatches.*encoder.layer_norm.weight"),
    ],
)
def test_avhubert_refuses_wrong_or_partial_checkpoints(tmp_path, change, message):
    source = tiny_avhubert()
    fairseq_checkpoint(tmp_path / "bad.pt", change(avhubert_to_fairseq(source)), avhubert_cfg(source))
    with pytest.raises(MMSLlamaConversionError, match=message):
        convert_avhubert(tmp_path / "bad.pt", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_interrupted_conversion_leaves_no_folder(tmp_path, monkeypatch):
    source = tiny_avhubert()
    fairseq_checkpoint(tmp_path / "avhubert.pt", avhubert_to_fairseq(source), avhubert_cfg(source))

    def save_half_then_interrupt(self, folder, **kwargs):
        (folder / "config.json").write_text("{}")
        raise KeyboardInterrupt

    monkeypatch.setattr(MMSLlamaAVHubertModel, "save_pretrained", save_half_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        convert_avhubert(tmp_path / "avhubert.pt", tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["avhubert.pt"]


def test_refuses_to_replace_an_existing_folder(tmp_path):
    source = tiny_avhubert()
    fairseq_checkpoint(tmp_path / "avhubert.pt", avhubert_to_fairseq(source), avhubert_cfg(source))
    (tmp_path / "out").mkdir()
    with pytest.raises(MMSLlamaConversionError, match="already exists"):
        convert_avhubert(tmp_path / "avhubert.pt", tmp_path / "out")
    convert_avhubert(tmp_path / "avhubert.pt", tmp_path / "out", overwrite=True)
    assert (tmp_path / "out" / "model.safetensors").is_file()


# -- components ----------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    return component_folders(tmp_path_factory.mktemp("parts"))


def test_from_components_loads_each_part_unchanged(parts):
    model = build_from_components(MMSLlamaForConditionalGeneration, parts["whisper"], parts["avhubert"], parts["llm"],
                                  qformer_config=TINY_QFORMER, max_video_frames=125, rate_predictor_heads=2)  # fmt: skip
    whisper = WhisperModel.from_pretrained(parts["whisper"]).encoder
    llm = LlamaForCausalLM.from_pretrained(parts["llm"])
    assert_same_tensors(model.audio_encoder.state_dict(), whisper.state_dict())
    assert_same_tensors(model.language_model.state_dict(), llm.state_dict())
    assert_same_tensors(model.vision_encoder.state_dict(), tiny_avhubert().state_dict())
    assert model.config.speech_token_id == 3  # the character tokenizer's <|speech|>
    for name in ("audio_encoder", "vision_encoder", "rate_predictor"):
        assert not any(p.requires_grad for p in getattr(model, name).parameters()), name
    assert all(p.requires_grad for p in model.qformer.parameters())
    out = model(**media(model.config, [30, 20]), **prompts(batch=2))
    assert torch.isfinite(out.logits).all()


def test_from_components_with_lora_trains_lora_and_new_modules_only(parts):
    model = build_from_components(MMSLlamaForConditionalGeneration, parts["whisper"], parts["avhubert"], parts["llm"],
                                  lora=True, qformer_config=TINY_QFORMER, max_video_frames=125)  # fmt: skip
    assert isinstance(model, PeftModel)
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert any("language_model" in name and "lora_A" in name for name in trainable)
    assert any("query_tokens" in name for name in trainable)
    assert not any(part in name for name in trainable for part in ("audio_encoder", "vision_encoder", "rate_predictor"))
    assert not any("language_model" in name and "lora_" not in name for name in trainable)


# -- the official MMS-LLaMA checkpoint -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def release(parts, tmp_path_factory):
    """A tiny reference release: the source model, its fairseq checkpoints, and both conversions of it."""
    root = tmp_path_factory.mktemp("release")
    torch.manual_seed(1)
    source = MMSLlamaForConditionalGeneration(tiny_config()).eval()
    state, sr_state = mmsllama_to_reference(source)
    fairseq_checkpoint(root / "checkpoint_best.pt", state, {"queries_per_sec": 3, "modality_fuse": "concat"})
    fairseq_checkpoint(root / "sr.pt", sr_state, {"sr_predictor_layers": 2})
    args = (root / "checkpoint_best.pt", root / "sr.pt", parts["avhubert"], parts["whisper"], parts["llm"])
    reports = {mode: convert_mms_llama(*args, root / mode, lora=mode, **TINY_OVERRIDES) for mode in ("merge", "adapter")}
    return {"source": source, "state": state, "sr_state": sr_state, "root": root, "args": args, "reports": reports}


def test_mms_llama_conversion_is_exact(release, parts):
    source, state, root = release["source"], release["state"], release["root"]
    model = MMSLlamaForConditionalGeneration.from_pretrained(root / "adapter").eval()
    for name in ("audio_adapter", "qformer", "projector", "rate_predictor"):
        assert_same_tensors(getattr(model, name).state_dict(), getattr(source, name).state_dict())
    assert_same_tensors(model.language_model.state_dict(), LlamaForCausalLM.from_pretrained(parts["llm"]).state_dict())
    whisper = WhisperModel.from_pretrained(parts["whisper"]).encoder
    assert_same_tensors(model.audio_encoder.state_dict(), whisper.state_dict())
    avhubert = tiny_avhubert().state_dict()
    for key, value in model.vision_encoder.state_dict().items():  # BatchNorm statistics come from the release
        is_statistic = key.endswith(("running_mean", "running_var", "num_batches_tracked"))
        expected = state[f"avhubert.w2v_model.{key}"] if is_statistic else avhubert[key]
        assert torch.equal(value, expected), key
    assert "BatchNorm" in " ".join(release["reports"]["adapter"].notes)


def test_mms_llama_report_lists_dropped_keys_with_reasons(release):
    report = release["reports"]["merge"]
    dropped = report.mappings[0].dropped
    assert "BERT text embeddings" in dropped["Qformer.bert.embeddings.word_embeddings.weight"]
    assert "text feed-forward" in dropped["Qformer.bert.encoder.layer.0.intermediate.dense.weight"]
    assert "text feed-forward" in dropped["Qformer.bert.encoder.layer.1.output.LayerNorm.weight"]
    assert "masked-language-model head" in dropped["Qformer.cls.predictions.bias"]
    assert "bitsandbytes" in dropped["llama.model.layers.0.self_attn.q_proj.base_layer.weight.absmax"]
    mapped = report.mappings[0].mapped
    assert mapped["Qformer.bert.encoder.layer.1.crossattention.self.key.weight"] == (
        "qformer.bert.encoder.layer.1.crossattention.attention.key.weight"
    )
    assert "Qformer.bert.encoder.layer.0.output_query.dense.weight" in mapped
    assert len(mapped) + len(dropped) == len(release["state"])
    assert len(report.mappings[1].mapped) == len(release["sr_state"])
    assert report.config["max_queries"]["value"] == release["source"].config.max_queries
    written = json.loads((release["root"] / "merge" / "conversion_report.json").read_text())
    assert set(written["outputs"]) >= {"model.safetensors", "config.json", "tokenizer.json"}


def test_lora_adapter_attaches_and_matches_the_merged_model(release):
    root, state = release["root"], release["state"]
    adapter = load_file(root / "adapter" / "lora" / "adapter_model.safetensors")
    assert json.loads((root / "adapter" / "lora" / "adapter_config.json").read_text())["r"] == 4
    base = MMSLlamaForConditionalGeneration.from_pretrained(root / "adapter").eval()
    batch = {**media(base.config, [30, 20]), **prompts(batch=2)}
    with torch.no_grad():
        base_logits = base(**batch).logits
    peft_model = PeftModel.from_pretrained(base, root / "adapter" / "lora").eval()
    q_proj = peft_model.base_model.model.language_model.model.layers[1].self_attn.q_proj
    assert torch.equal(q_proj.lora_A["default"].weight, state["llama.model.layers.1.self_attn.q_proj.lora_A.default.weight"])
    assert torch.equal(q_proj.lora_B["default"].weight, state["llama.model.layers.1.self_attn.q_proj.lora_B.default.weight"])
    assert len(adapter) == 2 * 4 * tiny_config().text_config.num_hidden_layers
    merged = AutoModel.from_pretrained(root / "merge", trust_remote_code=True).eval()
    with torch.no_grad():
        lora_logits = peft_model(**batch).logits
        merged_logits = merged(**batch).logits
    assert not torch.allclose(lora_logits, base_logits, atol=1e-3)
    torch.testing.assert_close(merged_logits, lora_logits, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda s: {k: v for k, v in s.items() if not k.startswith("Qformer.bert.encoder.layer.1.crossattention.self.value")},
         "nothing fills.*layer.1.crossattention.attention.value"),
        (lambda s: {**s, "whisper.encoder.conv1.weight": torch.zeros(1)}, "unexpected keys.*whisper.encoder.conv1.weight"),
        (lambda s: {k: v for k, v in s.items() if k != "query_tokens"}, "not an MMS-LLaMA checkpoint"),
    ],
)  # fmt: skip
def test_mms_llama_refuses_wrong_or_partial_checkpoints(release, tmp_path, change, message):
    fairseq_checkpoint(tmp_path / "bad.pt", change(release["state"]), {})
    args = (tmp_path / "bad.pt",) + release["args"][1:]
    with pytest.raises(MMSLlamaConversionError, match=message):
        convert_mms_llama(*args, tmp_path / "out", **TINY_OVERRIDES)
    assert not (tmp_path / "out").exists()


def test_cli_counts_and_refuses(tmp_path, capsys):
    assert main(["count", "--preset", "paper-3b"]) == 0
    counts = dict(line.split() for line in capsys.readouterr().out.splitlines())
    assert counts["projector"] == "8393728" and counts["lora"] == "9175040"
    assert counts["rate_predictor"] == "2367617" and counts["audio_adapter"] == "2098176"
    assert round(int(counts["qformer"]) / 1e6, 1) == 37.9
    torch.save({"model": {"x": torch.zeros(1)}}, tmp_path / "x.pt")
    assert main(["avhubert", "--checkpoint", str(tmp_path / "x.pt"), "--out", str(tmp_path / "out")]) == 1
    assert "not an AV-HuBERT checkpoint" in capsys.readouterr().err

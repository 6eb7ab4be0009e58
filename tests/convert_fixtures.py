"""Tiny fake releases with the reference key names: fairseq AV-HuBERT, MMS-LLaMA and speech-rate predictor
checkpoints (torch.save'd dicts with `model` and an omegaconf-like `cfg`), and Whisper / Llama folders."""

import re
from pathlib import Path

import torch
from transformers import LlamaForCausalLM, WhisperConfig, WhisperModel

from modeling_mmsllama import MMSLlamaAVHubertModel, MMSLlamaConfig, build_char_tokenizer


class DictConfig:
    """Pickles like omegaconf's DictConfig (state with `_content` of value nodes); not importable by the loader."""

    def __init__(self, content: dict):
        self._content = {key: ValueNode(value) for key, value in content.items()}
        self._parent = None


class ValueNode:
    def __init__(self, value):
        self._val = value
        self._parent = None


class Trap:
    """An object whose unpickling would run code; the restricted unpickler must not run it."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def fairseq_checkpoint(path: Path, state_dict: dict, model_cfg: dict, trap: Path | None = None) -> Path:
    cfg = DictConfig({"model": DictConfig(model_cfg), "task": DictConfig({"labels": ["km"]})})
    torch.save({"model": state_dict, "cfg": cfg, "optimizer_history": [{"trap": Trap(trap) if trap else None}]}, path)
    return path


def tiny_config(**overrides) -> MMSLlamaConfig:
    return MMSLlamaConfig.from_preset("tiny", **overrides)


# -- AV-HuBERT -------------------------------------------------------------------------------------------------------------


def avhubert_to_fairseq(model: MMSLlamaAVHubertModel) -> dict[str, torch.Tensor]:
    """The fairseq names of an AV-HuBERT model's tensors, mapped by hand, plus the pretraining-only tensors."""
    hidden = model.config.hidden_size
    state = {}
    for key, value in model.state_dict().items():
        key = key.replace("pos_conv.0.parametrizations.weight.original0", "pos_conv.0.weight_g")
        key = key.replace("pos_conv.0.parametrizations.weight.original1", "pos_conv.0.weight_v")
        state[key] = value.clone()
    state["mask_emb"] = torch.randn(hidden)
    state["feature_extractor_audio.proj.weight"] = torch.randn(hidden, 104)
    state["feature_extractor_audio.proj.bias"] = torch.randn(hidden)
    state["final_proj.weight"] = torch.randn(16, hidden)
    state["final_proj.bias"] = torch.randn(16)
    state["label_embs_concat"] = torch.randn(20, 16)
    return state


def tiny_avhubert(seed: int = 0) -> MMSLlamaAVHubertModel:
    torch.manual_seed(seed)
    model = MMSLlamaAVHubertModel(tiny_config().vision_config).eval()
    for name, buffer in model.named_buffers():  # non-trivial BatchNorm statistics
        if name.endswith(("running_mean", "running_var")):
            buffer.copy_(torch.rand_like(buffer) + 0.5)
    return model


def avhubert_cfg(model: MMSLlamaAVHubertModel) -> dict:
    config = model.config
    return {"_name": "av_hubert", "encoder_attention_heads": config.num_attention_heads,
            "layer_norm_first": config.layer_norm_first, "activation_fn": "gelu", "modality_fuse": "concat"}  # fmt: skip


# -- MMS-LLaMA ------------------------------------------------------------------------------------------------------------


def mmsllama_to_reference(model, lora_rank: int = 4, seed: int = 0) -> tuple[dict, dict]:
    """The reference `state['model']` of an MMS-LLaMA model's trained parts, mapped by hand, with the dropped
    extras, random LoRA weights and AV-HuBERT BatchNorm buffers; and the reference SR-predictor `state['model']`."""
    generator = torch.Generator().manual_seed(seed)
    hidden = model.config.qformer_config.hidden_size
    state = {
        "afeat_1d_conv.weight": model.audio_adapter.weight,
        "afeat_1d_conv.bias": model.audio_adapter.bias,
        "query_tokens": model.qformer.query_tokens,
        "avfeat_to_llm.layers.0.weight": model.projector.linear_1.weight,
        "avfeat_to_llm.layers.0.bias": model.projector.linear_1.bias,
        "avfeat_to_llm.layers.1.weight": model.projector.linear_2.weight,
        "avfeat_to_llm.layers.1.bias": model.projector.linear_2.bias,
        "Qformer.bert.embeddings.LayerNorm.weight": model.qformer.bert.layernorm.weight,
        "Qformer.bert.embeddings.LayerNorm.bias": model.qformer.bert.layernorm.bias,
        "Qformer.bert.embeddings.word_embeddings.weight": torch.randn(50, hidden, generator=generator),
        "Qformer.bert.embeddings.position_embeddings.weight": torch.randn(16, hidden, generator=generator),
        "Qformer.bert.embeddings.position_ids": torch.arange(16)[None],
        "Qformer.cls.predictions.bias": torch.randn(50, generator=generator),
        "Qformer.cls.predictions.transform.dense.weight": torch.randn(hidden, hidden, generator=generator),
    }
    for key, value in model.qformer.bert.encoder.state_dict().items():
        key = re.sub(r"\.(attention|crossattention)\.attention\.", r".\1.self.", key)
        state[f"Qformer.bert.encoder.{key}"] = value
    for layer in range(model.config.qformer_config.num_hidden_layers):  # the unused text feed-forward
        prefix = f"Qformer.bert.encoder.layer.{layer}"
        state[f"{prefix}.intermediate.dense.weight"] = torch.randn(2 * hidden, hidden, generator=generator)
        state[f"{prefix}.output.dense.weight"] = torch.randn(hidden, 2 * hidden, generator=generator)
        state[f"{prefix}.output.LayerNorm.weight"] = torch.randn(hidden, generator=generator)
    for name, module in model.language_model.named_modules():
        if name.rsplit(".", 1)[-1] in ("q_proj", "k_proj", "v_proj", "o_proj"):
            state[f"llama.{name}.lora_A.default.weight"] = torch.randn(lora_rank, module.in_features, generator=generator)
            state[f"llama.{name}.lora_B.default.weight"] = torch.randn(module.out_features, lora_rank, generator=generator)
            state[f"llama.{name}.base_layer.weight.absmax"] = torch.rand(8, generator=generator)
            state[f"llama.{name}.base_layer.weight.quant_state.bitsandbytes__nf4"] = torch.zeros(4, dtype=torch.uint8)
    for name, buffer in model.vision_encoder.named_buffers():
        drifted = torch.rand(buffer.shape, generator=generator) + 1.0 if buffer.is_floating_point() else buffer + 7
        state[f"avhubert.w2v_model.{name}"] = drifted
    state = {key: value.detach().clone() for key, value in state.items()}

    sr_state = {}
    for key, value in model.rate_predictor.state_dict().items():
        key = key.replace("pos_conv.0.parametrizations.weight.original0", "pos_conv.0.weight_g")
        key = key.replace("pos_conv.0.parametrizations.weight.original1", "pos_conv.0.weight_v")
        key = key.replace("rate_token", "sr_token").replace("head.", "sr_predictor.")
        sr_state[f"sr_predictor.{key}"] = value.detach().clone()
    return state, sr_state


def component_folders(root: Path, seed: int = 0) -> dict[str, Path]:
    """Tiny Whisper and Llama (+ character tokenizer) folders, and a fairseq AV-HuBERT checkpoint."""
    torch.manual_seed(seed)
    config = tiny_config()
    whisper = WhisperModel(WhisperConfig(**config.audio_config.to_dict()))
    whisper.save_pretrained(root / "whisper")
    LlamaForCausalLM(config.text_config).save_pretrained(root / "llm")
    build_char_tokenizer().save_pretrained(root / "llm")
    avhubert = tiny_avhubert(seed)
    checkpoint = fairseq_checkpoint(root / "avhubert.pt", avhubert_to_fairseq(avhubert), avhubert_cfg(avhubert))
    return {"whisper": root / "whisper", "llm": root / "llm", "avhubert": checkpoint}

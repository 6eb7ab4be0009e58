"""Converts a fairseq AV-HuBERT checkpoint (e.g. `large_vox_iter5.pt`) into an `MMSLlamaAVHubertModel` folder.

`modeling_avhubert.py` keeps fairseq's parameter names, so the visual path maps by identity except for the weight-normed
position convolution (`weight_g` / `weight_v` -> `parametrizations.weight.original0` / `original1`). The sizes (Base
or Large or other) come from the tensor shapes; the few that shapes cannot tell (attention heads, pre- or post-LayerNorm)
come from the checkpoint's config, else from the AV-HuBERT convention for that width.
"""

import re
from pathlib import Path

import torch

from .configuration_mmsllama import MMSLlamaAVHubertConfig
from .convert_fairseq import load_fairseq_checkpoint
from .convert_report import (
    ConversionReport,
    KeyMapping,
    MMSLlamaConversionError,
    atomic_output_dir,
    map_state_dict,
    parameter_counts,
)
from .modeling_avhubert import MMSLlamaAVHubertModel


AVHUBERT_SIGNATURE = (
    "feature_extractor_video.resnet.frontend3D.0.weight",
    "post_extract_proj.weight",
    "encoder.pos_conv.0.weight_v",
    "encoder.layers.0.self_attn.q_proj.weight",
)
AVHUBERT_RULES = [
    (r"encoder\.pos_conv\.0\.weight_g", "encoder.pos_conv.0.parametrizations.weight.original0"),
    (r"encoder\.pos_conv\.0\.weight_v", "encoder.pos_conv.0.parametrizations.weight.original1"),
    (r"((?:feature_extractor_video|layer_norm|post_extract_proj|encoder)\..+)", r"\1"),
]
AVHUBERT_DROPS = [
    (r"mask_emb", "masked-prediction embedding, used only in pretraining"),
    (r"final_proj\..+", "pretraining projection onto the cluster targets"),
    (r"label_embs_concat", "pretraining cluster-label embeddings"),
    (r"feature_extractor_audio\..+", "audio front-end: MMS-LLaMA runs AV-HuBERT video-only (its audio half is zeros)"),
]
HEAD_DIM = 64  # AV-HuBERT Base (768 / 12) and Large (1024 / 16)
KNOWN_SIZES = {(768, 12): "Base", (1024, 24): "Large"}


def _model_cfg(cfg: dict) -> dict:
    """The model section of a fairseq config (hydra `cfg.model`, or the flat `args` of older checkpoints)."""
    return cfg["model"] if isinstance(cfg.get("model"), dict) else cfg


def _count(state_dict: dict, pattern: str) -> int:
    return len({match.group(1) for key in state_dict if (match := re.match(pattern, key))})


def infer_avhubert_config(state_dict: dict[str, torch.Tensor], cfg: dict) -> tuple[MMSLlamaAVHubertConfig, dict]:
    """The AV-HuBERT configuration of a state dict with fairseq names, and each value with where it came from."""
    model_cfg = _model_cfg(cfg)
    hidden, fused = state_dict["post_extract_proj.weight"].shape
    if fused != 2 * hidden:
        raise MMSLlamaConversionError(
            f"post_extract_proj maps {fused} -> {hidden} features; only AV-HuBERT with concatenation fusion "
            f"(input 2 x {hidden}) is supported."
        )
    weight_v = state_dict["encoder.pos_conv.0.weight_v"]
    values = {
        "hidden_size": hidden,
        "num_hidden_layers": _count(state_dict, r"encoder\.layers\.(\d+)\."),
        "intermediate_size": state_dict["encoder.layers.0.fc1.weight"].shape[0],
        "resnet_width": state_dict["feature_extractor_video.resnet.frontend3D.0.weight"].shape[0],
        "resnet_layers": [
            _count(state_dict, rf"feature_extractor_video\.resnet\.trunk\.layer{stage}\.(\d+)\.") for stage in (1, 2, 3, 4)
        ],
        "resnet_relu_type": "prelu" if "feature_extractor_video.resnet.frontend3D.2.weight" in state_dict else "relu",
        "conv_pos": weight_v.shape[-1],
        "conv_pos_groups": hidden // weight_v.shape[1],
    }
    provenance = dict.fromkeys(values, "tensor shapes")
    from_cfg = {
        "num_attention_heads": ("encoder_attention_heads", hidden // HEAD_DIM),
        "layer_norm_first": ("layer_norm_first", hidden >= 1024),
        "hidden_act": ("activation_fn", "gelu"),
    }
    for name, (cfg_key, default) in from_cfg.items():
        if model_cfg.get(cfg_key) is not None:
            values[name], provenance[name] = model_cfg[cfg_key], f"checkpoint cfg ({cfg_key})"
        else:
            values[name], provenance[name] = default, "AV-HuBERT default for this width"
    described = {name: {"value": values[name], "from": provenance[name]} for name in values}
    described["size"] = KNOWN_SIZES.get((hidden, values["num_hidden_layers"]), "custom")
    return MMSLlamaAVHubertConfig(**values), described


def check_avhubert_signature(state_dict: dict, source: str) -> None:
    missing = [key for key in AVHUBERT_SIGNATURE if key not in state_dict]
    if missing:
        raise MMSLlamaConversionError(
            f"{source}: not an AV-HuBERT checkpoint: it lacks {missing} (its first keys are {sorted(state_dict)[:5]}). "
            "Give the self-supervised AV-HuBERT checkpoint, e.g. large_vox_iter5.pt.",
            source=source,
        )


def convert_avhubert_state_dict(
    state_dict: dict[str, torch.Tensor], cfg: dict, source: str
) -> tuple[MMSLlamaAVHubertConfig, dict[str, torch.Tensor], KeyMapping, dict]:
    """Maps a fairseq AV-HuBERT state dict onto `MMSLlamaAVHubertModel`.

    Returns the inferred config, the converted state dict (every parameter and buffer of the model), the key mapping
    and the provenance of the config values. Raises `MMSLlamaConversionError` on a checkpoint that is not AV-HuBERT or
    whose keys or shapes do not all fit.
    """
    check_avhubert_signature(state_dict, source)
    config, provenance = infer_avhubert_config(state_dict, cfg)
    with torch.device("meta"):
        expected = {key: value.shape for key, value in MMSLlamaAVHubertModel(config).state_dict().items()}
    converted, mapping = map_state_dict(state_dict, AVHUBERT_RULES, AVHUBERT_DROPS, expected, source)
    return config, converted, mapping, provenance


def load_avhubert_checkpoint(
    path: str | Path, dtype: torch.dtype = torch.float32
) -> tuple[MMSLlamaAVHubertModel, ConversionReport]:
    """Reads a fairseq AV-HuBERT checkpoint into a model (in `dtype`) and the report of the conversion."""
    state_dict, cfg = load_fairseq_checkpoint(path)
    config, converted, mapping, provenance = convert_avhubert_state_dict(state_dict, cfg, str(path))
    model = MMSLlamaAVHubertModel(config)
    model.load_state_dict(converted, strict=True)
    model = model.to(dtype).eval()
    report = ConversionReport("avhubert", sources={"avhubert": str(path)}, mappings=[mapping], config=provenance)
    report.parameter_counts = parameter_counts(model)
    source_dtypes = sorted(set(mapping.dtypes) - {"torch.int64"})
    if source_dtypes != [str(dtype)]:
        report.notes.append(f"Floating-point tensors stored as {source_dtypes} are saved as {dtype}.")
    return model, report


def convert_avhubert(checkpoint: str | Path, out: str | Path, overwrite: bool = False) -> ConversionReport:
    """Converts `checkpoint` (fairseq AV-HuBERT) into the folder `out`: config.json, model.safetensors and the report.

    Example:
    ```python
    >>> report = convert_avhubert("large_vox_iter5.pt", "avhubert-large/")
    >>> MMSLlamaAVHubertModel.from_pretrained("avhubert-large/")
    ```
    """
    model, report = load_avhubert_checkpoint(checkpoint)
    with atomic_output_dir(out, overwrite) as folder:
        model.save_pretrained(folder)
        report.write(folder)
    return report


__all__ = ["convert_avhubert", "convert_avhubert_state_dict", "load_avhubert_checkpoint", "infer_avhubert_config"]

"""Builds MMS-LLaMA from pretrained parts, and converts the official MMS-LLaMA release into a Transformers folder.

Parts come from local folders only (nothing is downloaded):
- Whisper: a `WhisperForConditionalGeneration` or `WhisperModel` folder; its encoder becomes `audio_encoder`.
- AV-HuBERT: a folder written by `convert_avhubert`, or the fairseq `.pt` itself; it becomes `vision_encoder`.
- Llama: a `LlamaForCausalLM` folder; its keys land under `language_model.` unchanged, and its tokenizer (with the
  speech placeholder added) is the model's tokenizer.

The official checkpoint (fairseq `checkpoint_best.pt`) carries only the trained parts: the conv length adapter, the
query bank, the Q-Former, the projector, the LoRA weights, and buffers of frozen parts (AV-HuBERT BatchNorm statistics,
which drifted during training and replace the converted AV-HuBERT's, and 4-bit quantisation state). The speech-rate
predictor comes from its own checkpoint (paper-spec section 12).
"""

import re
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import AutoConfig, AutoTokenizer, LlamaForCausalLM, WhisperModel
from transformers.utils import logging

from .configuration_mmsllama import PRESETS, MMSLlamaConfig, MMSLlamaConfigError
from .convert_avhubert import AVHUBERT_DROPS, AVHUBERT_RULES, load_avhubert_checkpoint
from .convert_fairseq import load_fairseq_checkpoint
from .convert_report import (
    ConversionReport,
    MMSLlamaConversionError,
    atomic_output_dir,
    map_state_dict,
    parameter_counts,
)
from .modeling_avhubert import MMSLlamaAVHubertModel
from .modeling_mmsllama import MMSLlamaForConditionalGeneration


logger = logging.get_logger(__name__)

LORA_TARGET_MODULES = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj)"
LORA_DROPOUT = 0.05  # the reference's LoRA (paper-spec section 7)
LORA_ALPHA_PER_RANK = 2  # r=16, alpha=32
LORA_ADAPTER_DIR = "lora"
REFERENCE_MAX_SECONDS = 20  # max_queries = queries_per_second * 20 s * max rate 2 in the reference
COMPONENT_CONFIGS = ("text_config", "audio_config", "vision_config", "speech_token_id")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "tokenizer_config.json")

MMS_LLAMA_SIGNATURE = (
    "afeat_1d_conv.weight",
    "query_tokens",
    "Qformer.bert.encoder.layer.0.attention.self.query.weight",
    "avfeat_to_llm.layers.0.weight",
)
SR_SIGNATURE = ("sr_predictor.sr_token", "sr_predictor.linear.weight", "sr_predictor.sr_predictor.weight")
_QFORMER_LAYER = r"Qformer\.bert\.encoder\.layer\.(\d+)"
_LORA_KEY = r"llama\.model\.layers\.(\d+)\.self_attn\.([qkvo])_proj\.lora_([AB])\.default\.weight"
MMS_LLAMA_RULES = [
    (r"afeat_1d_conv\.(weight|bias)", r"audio_adapter.\1"),
    (r"query_tokens", "qformer.query_tokens"),
    (r"Qformer\.bert\.embeddings\.LayerNorm\.(weight|bias)", r"qformer.bert.layernorm.\1"),
    (_QFORMER_LAYER + r"\.(attention|crossattention)\.self\.(.+)", r"qformer.bert.encoder.layer.\1.\2.attention.\3"),
    (_QFORMER_LAYER + r"\.(.+)", r"qformer.bert.encoder.layer.\1.\2"),
    (r"avfeat_to_llm\.layers\.0\.(weight|bias)", r"projector.linear_1.\1"),
    (r"avfeat_to_llm\.layers\.1\.(weight|bias)", r"projector.linear_2.\1"),
    (_LORA_KEY, r"base_model.model.language_model.model.layers.\1.self_attn.\2_proj.lora_\3.weight"),
] + [(r"avhubert\.w2v_model\." + pattern, "vision_encoder." + repl) for pattern, repl in AVHUBERT_RULES]
MMS_LLAMA_DROPS = [
    (r"Qformer\.bert\.embeddings\.(word_embeddings|position_embeddings)\.weight",
     "BERT text embeddings of the Q-Former: MMS-LLaMA feeds it queries only, never text"),
    (r"Qformer\.bert\.embeddings\.position_ids", "BERT position-id buffer, used only for text input"),
    (_QFORMER_LAYER + r"\.(intermediate|output)\..+",
     "text feed-forward of the Q-Former layers (queries use intermediate_query/output_query)"),
    (r"Qformer\.cls\..+", "BERT masked-language-model head of the Q-Former, unused"),
    (r"llama\..+\.weight\.(absmax|quant_map|nested_absmax|nested_quant_map|quant_state\..+)",
     "bitsandbytes 4-bit quantisation state of the frozen base LLM; the base weights come from the Llama folder"),
] + [(r"avhubert\.w2v_model\." + pattern, reason) for pattern, reason in AVHUBERT_DROPS]  # fmt: skip
SR_RULES = [
    (r"sr_predictor\.sr_token", "rate_predictor.rate_token"),
    (r"sr_predictor\.sr_predictor\.(weight|bias)", r"rate_predictor.head.\1"),
    (r"sr_predictor\.encoder\.pos_conv\.0\.weight_g", "rate_predictor.encoder.pos_conv.0.parametrizations.weight.original0"),
    (r"sr_predictor\.encoder\.pos_conv\.0\.weight_v", "rate_predictor.encoder.pos_conv.0.parametrizations.weight.original1"),
    (r"sr_predictor\.((?:linear|encoder)\..+)", r"rate_predictor.\1"),
]


# -- components ----------------------------------------------------------------------------------------------------------


def _folder_config(path: str | Path, model_type: str, role: str):
    path = Path(path)
    if not (path / "config.json").is_file():
        message = f"{path}: no config.json; --{role} must be a local Transformers folder."
        raise MMSLlamaConversionError(message, source=str(path))
    config = AutoConfig.from_pretrained(path, local_files_only=True)
    if config.model_type != model_type:
        raise MMSLlamaConversionError(
            f"{path}: a {config.model_type!r} model, but {role} must be {model_type!r}.", source=str(path)
        )
    return config


def _load_avhubert(path: str | Path, dtype: torch.dtype) -> MMSLlamaAVHubertModel:
    """AV-HuBERT from a converted folder, or straight from its fairseq checkpoint file."""
    if Path(path).is_file():
        return load_avhubert_checkpoint(path, dtype)[0]
    if not (Path(path) / "config.json").is_file():
        raise MMSLlamaConversionError(
            f"{path}: neither a fairseq AV-HuBERT checkpoint nor a folder written by `mmsllama-convert avhubert`.",
            source=str(path),
        )
    return MMSLlamaAVHubertModel.from_pretrained(path, local_files_only=True, dtype=dtype)


def speech_token_id_for(llm: str | Path, text_config) -> int:
    """The id the speech placeholder gets in the Llama folder's tokenizer (one past its vocabulary when added)."""
    if not any((Path(llm) / name).is_file() for name in TOKENIZER_FILES):
        return text_config.vocab_size
    tokenizer = AutoTokenizer.from_pretrained(llm, local_files_only=True)
    vocab = tokenizer.get_vocab()
    return vocab.get(MMSLlamaConfig.speech_token, len(tokenizer))


def components_config(whisper, avhubert_config, llm, **config_overrides) -> MMSLlamaConfig:
    """The MMS-LLaMA config of these parts: paper settings for what they do not fix, then `config_overrides`
    (top-level fields, or dicts that update a sub-config, as in `MMSLlamaConfig.from_preset`)."""
    text_config = _folder_config(llm, "llama", "llm")
    fields = {key: value for key, value in PRESETS["paper-3b"].items() if key not in COMPONENT_CONFIGS}
    fields.update(
        text_config=text_config.to_dict(),
        audio_config=_folder_config(whisper, "whisper", "whisper").to_dict(),
        vision_config=avhubert_config.to_dict(),
        speech_token_id=speech_token_id_for(llm, text_config),
    )
    unknown = sorted(set(config_overrides) - set(MMSLlamaConfig.__dataclass_fields__))
    if unknown:
        raise MMSLlamaConfigError(f"Unknown config keys {unknown} for MMSLlamaConfig.")
    for key, value in config_overrides.items():
        if key in MMSLlamaConfig.sub_configs_defaults and isinstance(value, dict) and isinstance(fields.get(key), dict):
            fields[key] = {**fields[key], **value}
        else:
            fields[key] = value
    return MMSLlamaConfig(**fields)


def _component_state(whisper, avhubert_model, llm, dtype) -> dict[str, torch.Tensor]:
    """The composite's state dict entries for the three pretrained parts."""
    audio_encoder = WhisperModel.from_pretrained(whisper, local_files_only=True, dtype=dtype).encoder
    state = {f"audio_encoder.{k}": v for k, v in audio_encoder.state_dict().items()}
    state.update({f"vision_encoder.{k}": v for k, v in avhubert_model.state_dict().items()})
    language_model = LlamaForCausalLM.from_pretrained(llm, local_files_only=True, dtype=dtype)
    state.update({f"language_model.{k}": v for k, v in language_model.state_dict().items()})
    return state


def _assemble(model_class, config: MMSLlamaConfig, state: dict[str, torch.Tensor], dtype, strict: bool):
    """Instantiates `model_class` with `state`; the rest is initialised as in training from scratch (or, when
    `strict`, must not exist). Frozen modules are frozen again after loading."""
    with torch.device("meta"):
        expected = set(model_class(config).state_dict())
    missing = sorted(expected - set(state))
    if strict and missing:
        raise MMSLlamaConversionError(f"Nothing fills {len(missing)} parameters of the model: {missing[:12]}.")
    verbosity = logging.get_verbosity()
    logging.set_verbosity_error()  # the missing parts are new by design; say so once below instead of per key
    try:
        model = model_class.from_pretrained(None, config=config, state_dict=state, dtype=dtype)
    finally:
        logging.set_verbosity(verbosity)
    if missing:
        modules = sorted({key.split(".", 1)[0] for key in missing})
        logger.info(f"Newly initialised (not in the pretrained parts): {modules}.")
    model.freeze(config.frozen_modules)
    return model


def default_lora_config(model, rank: int = 16):
    """The reference LoRA (r=16, alpha=32, dropout 0.05 on q/k/v/o of the LLM) with the model's other trainable
    modules (adapter, fusion, Q-Former, projector) saved alongside."""
    from peft import LoraConfig

    trainable = [
        name
        for name, module in model.named_children()
        if name != "language_model" and any(p.requires_grad for p in module.parameters())
    ]
    return LoraConfig(
        r=rank,
        lora_alpha=LORA_ALPHA_PER_RANK * rank,
        lora_dropout=LORA_DROPOUT,
        target_modules=LORA_TARGET_MODULES,
        modules_to_save=trainable,
    )


def build_from_components(
    model_class,
    whisper: str | Path,
    avhubert: str | Path,
    llm: str | Path,
    lora=None,
    dtype: torch.dtype = torch.float32,
    **config_overrides,
):
    """Builds an MMS-LLaMA model from pretrained parts in local folders for a new training run: encoders frozen, the
    rest configured as `paper-3b` unless overridden; with `lora=True` (or a `LoraConfig`) the LLM gets LoRA r=16 /
    alpha=32 on q/k/v/o and a `PeftModel` is returned (`docs/conversion.md`).

    Args:
        model_class: `MMSLlamaForConditionalGeneration` (or a subclass).
        whisper (`str` or `os.PathLike`): local Whisper folder (`WhisperForConditionalGeneration` or `WhisperModel`).
        avhubert (`str` or `os.PathLike`): folder from `mmsllama-convert avhubert`, or the fairseq AV-HuBERT `.pt`.
        llm (`str` or `os.PathLike`): local Llama folder (`LlamaForCausalLM`, with its tokenizer).
        lora (`bool` or `peft.LoraConfig`, *optional*): `True` wraps the model in PEFT with `default_lora_config`
            (LoRA on the LLM's q/k/v/o; the trainable modules saved alongside); a `LoraConfig` is used as given.
        dtype (`torch.dtype`): dtype of the whole model.
        config_overrides: `MMSLlamaConfig` fields (e.g. `queries_per_second=4`, `qformer_config={...}`).

    Returns the model (encoders and rate predictor frozen; Q-Former, adapter, projector new), or a `PeftModel` with
    `lora`.
    """
    avhubert_model = _load_avhubert(avhubert, dtype)
    config = components_config(whisper, avhubert_model.config, llm, **config_overrides)
    model = _assemble(model_class, config, _component_state(whisper, avhubert_model, llm, dtype), dtype, strict=False)
    if not lora:
        return model
    from peft import get_peft_model

    return get_peft_model(model, default_lora_config(model) if lora is True else lora)


# -- the official MMS-LLaMA checkpoint ----------------------------------------------------------------------------------


def _check_signature(state_dict: dict, keys: tuple[str, ...], what: str, source: str) -> None:
    missing = [key for key in keys if key not in state_dict]
    if missing:
        raise MMSLlamaConversionError(
            f"{source}: not {what}: it lacks {missing} (its first keys are {sorted(state_dict)[:5]}).", source=source
        )


def _count(state_dict: dict, pattern: str) -> int:
    return len({match.group(1) for key in state_dict if (match := re.match(pattern, key))})


def infer_mms_llama_overrides(state_dict: dict, sr_state_dict: dict, cfg: dict) -> dict:
    """Config fields the two checkpoints fix, each as `{"value": ..., "from": ...}`."""
    model_cfg = cfg["model"] if isinstance(cfg.get("model"), dict) else cfg
    queries = state_dict["query_tokens"]
    hidden = queries.shape[-1]
    sr_hidden = sr_state_dict["sr_predictor.linear.weight"].shape[0]
    sr_weight_v = sr_state_dict["sr_predictor.encoder.pos_conv.0.weight_v"]
    values = {
        "qformer_config": {
            "hidden_size": hidden,
            "num_hidden_layers": _count(state_dict, _QFORMER_LAYER + r"\."),
            "num_attention_heads": hidden // 64,
            "intermediate_size": state_dict["Qformer.bert.encoder.layer.0.intermediate_query.dense.weight"].shape[0],
        },
        "max_queries": queries.shape[1],
        "projector_hidden_size": state_dict["avfeat_to_llm.layers.0.weight"].shape[0],
        "rate_predictor_hidden_size": sr_hidden,
        "rate_predictor_layers": _count(sr_state_dict, r"sr_predictor\.encoder\.layers\.(\d+)\."),
        "rate_predictor_heads": sr_hidden // 64,
        "rate_predictor_intermediate_size": sr_state_dict["sr_predictor.encoder.layers.0.fc1.weight"].shape[0],
        "rate_predictor_conv_pos": sr_weight_v.shape[-1],
        "rate_predictor_conv_pos_groups": sr_hidden // sr_weight_v.shape[1],
        "use_rate_predictor": True,
    }
    described = {name: {"value": value, "from": "tensor shapes (heads: 64 per head)"} for name, value in values.items()}
    if model_cfg.get("queries_per_sec") is not None:
        described["queries_per_second"] = {"value": float(model_cfg["queries_per_sec"]), "from": "checkpoint cfg"}
    else:
        qps = queries.shape[1] / (REFERENCE_MAX_SECONDS * 2)
        described["queries_per_second"] = {"value": qps, "from": "query bank size = f_Q * 20 s * 2"}
    return described


def _merge_lora(state: dict, adapter: dict, scale: float) -> None:
    """W += scale * B @ A for every LoRA pair, in float32, in place of the language model's weights."""
    prefix = "base_model.model."
    for key_a in [key for key in adapter if key.endswith(".lora_A.weight")]:
        target = key_a[len(prefix) : -len(".lora_A.weight")] + ".weight"
        delta = scale * (adapter[key_a.replace("lora_A", "lora_B")].float() @ adapter[key_a].float())
        state[target] = (state[target].float() + delta).to(state[target].dtype)


def convert_mms_llama(
    checkpoint: str | Path,
    sr_checkpoint: str | Path,
    avhubert: str | Path,
    whisper: str | Path,
    llm: str | Path,
    out: str | Path,
    lora: str = "merge",
    lora_alpha: float | None = None,
    dtype: torch.dtype = torch.float32,
    overwrite: bool = False,
    **config_overrides,
) -> ConversionReport:
    """Converts the official MMS-LLaMA release into a folder `AutoModel.from_pretrained(out, trust_remote_code=True)`
    loads: config, model.safetensors, remote code, the processor (when the Llama folder has a tokenizer) and the report.

    Args:
        checkpoint: fairseq `checkpoint_best.pt` of MMS-LLaMA.
        sr_checkpoint: fairseq `checkpoint.pt` of the speech-rate predictor.
        avhubert, whisper, llm: the pretrained parts, as for `build_from_components`.
        lora (`str`): `"merge"` adds the LoRA update to the LLM weights (a plain model); `"adapter"` keeps the base
            LLM and writes the LoRA as a PEFT adapter folder `out/lora` (attach it with `PeftModel.from_pretrained`).
        lora_alpha (`float`, *optional*): LoRA alpha; the reference's 2 * rank when not given.
        dtype (`torch.dtype`): dtype of the saved weights.
        overwrite (`bool`): replace `out` if it exists.
        config_overrides: `MMSLlamaConfig` fields the checkpoints do not fix (e.g. `max_video_frames`).
    """
    if lora not in ("merge", "adapter"):
        raise MMSLlamaConversionError(f"lora must be 'merge' or 'adapter', got {lora!r}.")
    state_dict, cfg = load_fairseq_checkpoint(checkpoint)
    _check_signature(state_dict, MMS_LLAMA_SIGNATURE, "an MMS-LLaMA checkpoint", str(checkpoint))
    sr_state_dict, _ = load_fairseq_checkpoint(sr_checkpoint)
    _check_signature(sr_state_dict, SR_SIGNATURE, "a speech-rate predictor checkpoint", str(sr_checkpoint))

    inferred = infer_mms_llama_overrides(state_dict, sr_state_dict, cfg)
    avhubert_model = _load_avhubert(avhubert, dtype)
    overrides = {key: item["value"] for key, item in inferred.items()}
    for key, value in config_overrides.items():
        both_dicts = isinstance(value, dict) and isinstance(overrides.get(key), dict)
        overrides[key] = {**overrides[key], **value} if both_dicts else value
    config = components_config(whisper, avhubert_model.config, llm, **overrides)
    with torch.device("meta"):
        skeleton = MMSLlamaForConditionalGeneration(config)
    expected = {key: value.shape for key, value in skeleton.state_dict().items()}

    # the trained parts must all be there; AV-HuBERT buffers may be; LoRA shapes follow the checkpoint's rank
    lora_keys = [key for key in state_dict if key.startswith("llama.") and ".lora_" in key]
    rank = state_dict[lora_keys[0]].shape[0] if lora_keys else 0
    lora_expected = {}
    for name, module in skeleton.language_model.named_modules():
        if rank and name.rsplit(".", 1)[-1] in ("q_proj", "k_proj", "v_proj", "o_proj"):
            prefix = f"base_model.model.language_model.{name}"
            lora_expected[f"{prefix}.lora_A.weight"] = torch.Size([rank, module.in_features])
            lora_expected[f"{prefix}.lora_B.weight"] = torch.Size([module.out_features, rank])
    trained = {key: shape for key, shape in expected.items() if key.startswith(("audio_adapter.", "qformer.", "projector."))}
    avhubert_buffers = {key: expected[key] for key, _ in skeleton.named_buffers() if key.startswith("vision_encoder.")}
    converted, mapping = map_state_dict(
        state_dict,
        MMS_LLAMA_RULES,
        MMS_LLAMA_DROPS,
        {**trained, **avhubert_buffers, **lora_expected},
        str(checkpoint),
        required=set(trained) | set(lora_expected),
    )
    rate_expected = {key: shape for key, shape in expected.items() if key.startswith("rate_predictor.")}
    rate_state, sr_mapping = map_state_dict(sr_state_dict, SR_RULES, [], rate_expected, str(sr_checkpoint))

    report = ConversionReport(
        "mms-llama",
        sources={"checkpoint": str(checkpoint), "sr_checkpoint": str(sr_checkpoint), "avhubert": str(avhubert),
                 "whisper": str(whisper), "llm": str(llm)},  # fmt: skip
        mappings=[mapping, sr_mapping],
        config=inferred,
    )
    adapter = {key: converted.pop(key) for key in list(converted) if key in lora_expected}
    state = _component_state(whisper, avhubert_model, llm, dtype)
    overridden = sorted(key for key in converted if key.startswith("vision_encoder."))
    if overridden:
        report.notes.append(
            f"{len(overridden)} AV-HuBERT tensors (BatchNorm running statistics) taken from the MMS-LLaMA checkpoint "
            "in place of the AV-HuBERT checkpoint's: they drifted while the reference trained."
        )
    state.update(converted)
    state.update(rate_state)

    lora_alpha = LORA_ALPHA_PER_RANK * rank if lora_alpha is None else lora_alpha
    if rank and lora == "merge":
        _merge_lora(state, adapter, lora_alpha / rank)
        report.notes.append(f"LoRA (r={rank}, alpha={lora_alpha}) merged into the LLM's q/k/v/o weights.")
    report.notes.append(
        "The reference trained its LoRA against a 4-bit NF4 base LLM; with a bf16/fp32 base, outputs shift slightly."
    )
    model = _assemble(MMSLlamaForConditionalGeneration, config, state, dtype, strict=True)
    report.parameter_counts = parameter_counts(model, lora_rank=rank or None)

    with atomic_output_dir(out, overwrite) as folder:
        model.save_pretrained(folder)
        if rank and lora == "adapter":
            write_lora_adapter(adapter, rank, lora_alpha, folder / LORA_ADAPTER_DIR)
            report.notes.append(
                f"LoRA (r={rank}, alpha={lora_alpha}) kept as a PEFT adapter in {LORA_ADAPTER_DIR}/; model.safetensors "
                "holds the base LLM."
            )
        if any((Path(llm) / name).is_file() for name in TOKENIZER_FILES):
            from .processing_mmsllama import MMSLlamaProcessor

            MMSLlamaProcessor.from_config(config, tokenizer=llm).save_pretrained(folder)
        report.write(folder)
    return report


def write_lora_adapter(adapter: dict[str, torch.Tensor], rank: int, lora_alpha: float, folder: Path) -> None:
    """Writes a PEFT adapter folder (adapter_config.json, adapter_model.safetensors) targeting `language_model`."""
    from peft import LoraConfig

    folder.mkdir(parents=True)
    LoraConfig(
        r=rank, lora_alpha=lora_alpha, lora_dropout=LORA_DROPOUT, target_modules=LORA_TARGET_MODULES, bias="none"
    ).save_pretrained(folder)
    save_file({key: value.contiguous() for key, value in adapter.items()}, folder / "adapter_model.safetensors")


def count_parameters(preset: str) -> dict[str, int]:
    """Exact parameter counts of a preset, per component, built on the meta device (`"lora"`: rank-16 LoRA)."""
    with torch.device("meta"):
        model = MMSLlamaForConditionalGeneration(MMSLlamaConfig.from_preset(preset))
    return parameter_counts(model, lora_rank=16)


__all__ = [
    "build_from_components",
    "convert_mms_llama",
    "count_parameters",
    "default_lora_config",
    "write_lora_adapter",
    "LORA_TARGET_MODULES",
]

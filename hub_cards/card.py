"""The model card: `templates/model_card.md` filled from the config, the weights and `eval.json`."""

import json
from pathlib import Path
from string import Template

from modeling_mmsllama.configuration_mmsllama import SYNTHETIC_GRID, VIDEO_FPS


TEMPLATE = Path(__file__).parent / "templates" / "model_card.md"
MODULES = ("audio_encoder", "vision_encoder", "audio_adapter", "video_adapter", "fusion", "rate_predictor", "qformer",
           "projector", "video_projector", "language_model")  # fmt: skip
MODULE_NAMES = {
    "audio_encoder": "audio encoder (Whisper encoder)",
    "vision_encoder": "visual encoder (AV-HuBERT)",
    "audio_adapter": "audio length adapter",
    "video_adapter": "video length adapter",
    "fusion": "early AV fusion",
    "rate_predictor": "speech-rate predictor",
    "qformer": "AV Q-Former + query bank",
    "projector": "projector",
    "video_projector": "video projector",
    "language_model": "language model (Llama)",
}
CHAR_VOCAB = 128
SYNTHETIC_CORPUS = (
    "the **synthetic GRID-style corpus** of this project (`mmsllama-synth`): sentences of a 51-word grammar (command, "
    "colour, preposition, letter, digit, adverb) spoken by eSpeak NG voices with exact phoneme timings, and rendered "
    "mouth videos whose shape follows the phonemes' visemes"
)


def is_synthetic(config) -> bool:
    """Whether the model knows only the synthetic corpus (recorded as `trained_on`, or the tiny preset's characters)."""
    return getattr(config, "trained_on", None) == SYNTHETIC_GRID or config.text_config.vocab_size == CHAR_VOCAB


def _count(module) -> int:
    return sum(p.numel() for p in module.parameters()) if module is not None else 0


def human(n: float) -> str:
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.1f}{unit}"
    return str(int(n))


def model_summary(model) -> dict:
    """Parameter counts per part and the token-budget settings of a loaded model."""
    config = model.config
    parts = {name: _count(getattr(model, name, None)) for name in MODULES if getattr(model, name, None) is not None}
    low, high = config.rate_clamp
    q = config.queries_per_second
    summary = {
        "parameters": sum(p.numel() for p in model.parameters()),
        "parts": parts,
        "dtype": str(model.dtype).replace("torch.", ""),
        "compression": config.compression,
        "fusion": config.fusion,
        "queries_per_second": q,
        "rate_clamp": [low, high],
        "use_rate_predictor": config.use_rate_predictor,
        "min_queries": config.min_queries,
        "max_queries": config.max_queries,
        "max_clip_seconds": config.max_video_frames / VIDEO_FPS,
        "llm": {k: getattr(config.text_config, k) for k in ("hidden_size", "num_hidden_layers", "vocab_size")},
    }
    if config.compression == "qformer":
        factor = (low, high) if config.use_rate_predictor else (1.0, 1.0)
        summary["tokens_per_second_range"] = [q * factor[0], q * factor[1]]
    else:
        rate = 12.5 if config.compression == "fusion_only" else 25.0
        summary["tokens_per_second_range"] = [rate, rate]
    return summary


def evaluation_section(report: dict | None) -> tuple[str, float | None]:
    """The WER table (rows modality, columns SNR) and the measured tokens per second of clean AV speech."""
    if not report or not report.get("results"):
        return "No evaluation results were given to the export (`--card-results eval.json`).", None
    rows = report["results"]
    snrs = list(dict.fromkeys(r["snr_db"] for r in rows))
    modalities = list(dict.fromkeys(r["modality"] for r in rows))
    header = "| input | " + " | ".join("clean" if s is None else f"{s:g} dB" for s in snrs) + " | speech tokens/s |"
    lines = [header, "|---|" + "---:|" * (len(snrs) + 1)]
    names = {"av": "audio + video", "audio": "audio only", "video": "video only"}
    rate = None
    for modality in modalities:
        by_snr = {r["snr_db"]: r for r in rows if r["modality"] == modality}
        cells = [f"{by_snr[s]['wer']:.1f}" if s in by_snr else "" for s in snrs]
        tokens = next(iter(by_snr.values())).get("tokens_per_second")
        if modality == "av" and None in by_snr:
            rate = by_snr[None].get("tokens_per_second")
        lines.append(f"| {names.get(modality, modality)} | " + " | ".join(cells) + f" | {tokens:.2f} |")
    text = (
        f"Word error rate (%, lower is better) on {report.get('num_utterances', '?')} held-out utterances "
        f"({report.get('seconds', '?')} s), beam {report.get('num_beams', '?')}; noise is babble at the given SNR "
        f"(split `{report.get('split', '?')}`).\n\n" + "\n".join(lines)
    )
    examples = next((r.get("examples") for r in rows if r["modality"] == "av" and r["snr_db"] is None), None)
    if examples:
        text += "\n\nExamples (clean, audio + video):\n\n| reference | hypothesis |\n|---|---|\n" + "\n".join(
            f"| {e['reference']} | {e['hypothesis']} |" for e in examples[:3]
        )
    if report.get("image"):
        text += f"\n\n![WER against SNR]({report['image']})"
    return text, rate


def _training_data(model_dir: Path | None, synthetic: bool) -> str:
    args_file = model_dir / "training_args.json" if model_dir else None
    recipe = model_dir / "RECIPE.md" if model_dir else None
    if recipe and recipe.exists():
        how = "Every command, the seed and the minutes of each stage are in [RECIPE.md](RECIPE.md)."
        if synthetic:
            return (f"Trained only on {SYNTHETIC_CORPUS}. No real person's speech or face is in it; its test speakers "
                    f"(voices and mouths) were held out of training. {how}")  # fmt: skip
        return how
    if not args_file or not args_file.exists():
        return "Not recorded in the exported folder. Describe the data the model was trained on here."
    stage = json.loads(args_file.read_text()).get("stage", {})
    data = stage.get("data")
    text = f"Trained with `mmsllama-train --stage {stage.get('stage')}` on `{data}`"
    corpus = Path(data) / "corpus.json" if data else None
    if corpus and corpus.exists():
        settings = json.loads(corpus.read_text())
        counts = settings.get("counts") or {}
        text += (
            f": {SYNTHETIC_CORPUS}. "
            f"Settings: {json.dumps({k: settings[k] for k in ('utterances', 'seed', 'speakers') if k in settings})}"
        )
        if counts:
            text += f"; utterances per split: {json.dumps(counts)}"
        text += ". No real person's speech or face is in it."
    else:
        text += "."
    return text


def _licences(config, license_id: str) -> str:
    lines = [f"- This model: `{license_id}`. The MMS-LLaMA integration code in this repository: Apache-2.0."]
    if is_synthetic(config):
        lines.append("- Trained from scratch on synthetic data made by this project: no third-party weights or data.")
    else:
        lines += [
            "- The language model weights derive from Meta Llama 3.x: the Llama 3.x Community License applies "
            "(and its acceptable-use policy).",
            "- The visual encoder weights derive from AV-HuBERT: Meta's AV-HuBERT licence (non-commercial research "
            "use only; it also excludes biometric processing and surveillance).",
            "- The audio encoder derives from OpenAI Whisper (MIT).",
            "- The reference MMS-LLaMA code and checkpoints are CC BY-NC 4.0.",
        ]
    return "\n".join(lines)


def default_license(config) -> str:
    return "apache-2.0" if is_synthetic(config) else "other"


def render_card(model, report: dict | None = None, model_dir: str | Path | None = None, license_id: str | None = None,
                repo_id: str = "path/to/this/folder", title: str | None = None, results_source: str = "eval.json") -> str:  # fmt: skip
    """The README.md of an exported model."""
    config = model.config
    summary = model_summary(model)
    license_id = license_id or default_license(config)
    evaluation, measured_rate = evaluation_section(report)
    low, high = summary["tokens_per_second_range"]
    token_rate = f"{measured_rate:.1f}" if measured_rate else f"{low:g}-{high:g}"
    synthetic = is_synthetic(config)
    title = title or ("MMS-LLaMA demo (synthetic GRID-style corpus)" if synthetic else "MMS-LLaMA")
    parts_table = "\n".join(f"| {MODULE_NAMES.get(k, k)} | {human(v)} |" for k, v in summary["parts"].items())
    parts_table += f"\n| **total** | **{human(summary['parameters'])}** ({summary['dtype']}) |"
    settings = [
        ("compression", f"`{config.compression}` (fusion `{config.fusion}`)"),
        ("queries per second (f_Q)", f"{config.queries_per_second:g}"),
        ("speech-rate factor clamp", f"{config.rate_clamp[0]:g}-{config.rate_clamp[1]:g}"
         + ("" if config.use_rate_predictor else " (rate predictor off)")),
        ("speech tokens per second", f"{low:g}-{high:g} by the formula" + (f"; {measured_rate:.2f} measured on clean "
                                                                           "AV test speech" if measured_rate else "")),
        ("longest clip per forward pass", f"{summary['max_clip_seconds']:g} s (longer inputs are cut by the pipeline)"),
        ("LLM", f"Llama, {config.text_config.num_hidden_layers} layers, width {config.text_config.hidden_size}, "
                f"vocabulary {config.text_config.vocab_size}"),
    ]  # fmt: skip
    settings_table = "\n".join(f"| {k} | {v} |" for k, v in settings)
    wer_av = None
    if report:
        wer_av = next((r["wer"] for r in report["results"] if r["modality"] == "av" and r["snr_db"] is None), None)
    front = [
        f"license: {license_id}",
        "library_name: transformers",
        "pipeline_tag: automatic-speech-recognition",
        "language:\n- en",
        "tags:\n- audio-visual-speech-recognition\n- lip-reading\n- avsr\n- mms-llama\n- custom_code",
    ]
    if license_id == "other":
        front.append("license_name: llama-and-avhubert\nlicense_link: LICENSE")
    if report:
        metrics = []
        for row in report["results"]:
            snr = "clean" if row["snr_db"] is None else f"{row['snr_db']:g} dB babble"
            metrics.append(f"      - type: wer\n        value: {row['wer']}\n        name: WER {row['modality']} {snr}")
        dataset = "synthetic GRID-style corpus" if synthetic else "held-out test split"
        front.append(
            "model-index:\n- name: " + title.replace(":", " -") + "\n  results:\n  - task:\n      type: "
            "automatic-speech-recognition\n    dataset:\n      type: custom\n      name: " + dataset
            + "\n    metrics:\n" + "\n".join(metrics)
        )
    summary_text = (
        f"Clean audio-visual WER {wer_av:.1f}% on its test split." if wer_av is not None else
        "No evaluation was recorded for this export."
    )  # fmt: skip
    if synthetic:
        summary_text = ("A small demonstration model trained on a **synthetic** corpus (generated speech and mouth "
                        "video of a 51-word grammar): it shows the method end to end on a CPU, and transcribes only "
                        "that kind of speech. " + summary_text)  # fmt: skip
    intended = (
        "Transcribing English speech from talking-face video, especially where audio is noisy: the lips disambiguate "
        "what the audio cannot. Research on efficient LLM-based AVSR (token budgets, noise robustness)."
    )
    if synthetic:
        intended = ("Demonstrating and testing the MMS-LLaMA pipeline: loading, transcribing, long-form cutting, token "
                    "budgets, export. It recognises only the synthetic corpus's vocabulary; it is not a general "
                    "speech recogniser.")  # fmt: skip
    limitations = "\n".join([
        "- English only; the vocabulary and accents are those of the training data." if not synthetic else
        "- Knows only the 51 words of the synthetic grammar, spoken by eSpeak NG voices and drawn mouths; on real "
        "speech or faces its output is meaningless (a grammatical sentence of that vocabulary whatever was said), and "
        "the pipeline warns once when it is given a real face video.",
        "- The visual stream expects a frontal face; mouth crops of profile views, occluded or very small faces "
        "are poor and the model then leans on the audio.",
        "- Clips are decoded independently: a word cut by a clip boundary (no pause found within the clip length) may "
        "be lost or repeated; timestamps are at clip level, not word level.",
        "- Lowering `queries_per_second` or `max_rate` below the trained values saves compute but raises WER; "
        "raising them beyond the query bank has no effect.",
        "- Lip reading can reveal speech people did not expect to be heard: do not use it for surveillance or on "
        "people who have not agreed to it.",
    ])  # fmt: skip
    values = {
        "front_matter": "\n".join(front),
        "title": title,
        "summary": summary_text,
        "token_rate": token_rate,
        "repo_id": repo_id,
        "max_clip_s": f"{summary['max_clip_seconds']:g}",
        "num_beams": getattr(model.generation_config, "num_beams", 1) or 1,
        "max_new_tokens": getattr(model.generation_config, "max_new_tokens", None) or 100,
        "parts_table": parts_table,
        "settings_table": settings_table,
        "evaluation": evaluation,
        "intended_use": intended,
        "training_data": _training_data(Path(model_dir) if model_dir else None, synthetic),
        "limitations": limitations,
        "licences": _licences(config, license_id),
        "results_source": results_source,
    }
    return Template(TEMPLATE.read_text()).substitute(values)

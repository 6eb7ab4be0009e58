"""`export_model`: a trained model folder -> a Hub-ready folder that loads with only Transformers.

The folder holds the weights (safetensors), the remote code copied from `modeling_mmsllama/` (model, processor,
media reading, mouth finder, pipeline), the processor files, `generation_config.json`, the custom pipeline registered
in `config.json` under "automatic-speech-recognition", `README.md` (the model card) and the evaluation files.
Nothing here uses the network; `push_to_hub` / `upload_folder` is the next step.
"""

import json
import shutil
from pathlib import Path

import torch
from transformers.dynamic_module_utils import get_relative_import_files

import modeling_mmsllama
from modeling_mmsllama import MMSLlamaForConditionalGeneration, MMSLlamaInputError, MMSLlamaProcessor
from modeling_mmsllama.pipeline_mmsllama import custom_pipelines_entry

from .card import render_card


PACKAGE_DIR = Path(modeling_mmsllama.__file__).parent
PIPELINE_FILE = PACKAGE_DIR / "pipeline_mmsllama.py"
EVAL_FILES = ("eval.json", "eval.md", "eval.png")
DEFAULT_MAX_NEW_TOKENS = 100


def _load_report(card_results, model_dir: Path) -> tuple[dict | None, Path | None]:
    path = Path(card_results) if card_results else model_dir / "eval.json"
    if not path.exists():
        if card_results:
            raise MMSLlamaInputError(f"{path}: no such evaluation file (make one with `mmsllama-eval --model ...`).")
        return None, None
    try:
        report = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise MMSLlamaInputError(f"{path}: not valid JSON ({error}).") from error
    if not isinstance(report, dict) or "results" not in report:
        raise MMSLlamaInputError(f"{path}: not an mmsllama-eval report (no 'results').")
    return report, path


def export_model(model_dir, out, card_results=None, license_id: str | None = None, repo_id: str | None = None,
                 title: str | None = None, overwrite: bool = False, keep_adapter: bool = False,
                 num_beams: int | None = None) -> Path:  # fmt: skip
    """Writes the Hub-ready folder `out` from the model folder `model_dir` (an `mmsllama-train` output).

    Args:
        model_dir: folder with config.json, model.safetensors and the processor files.
        out: the folder to write (must be empty or missing unless `overwrite`).
        card_results: an `eval.json` from `mmsllama-eval` (default: `model_dir/eval.json` when it exists).
        license_id: the card's licence (default: apache-2.0 for the synthetic-data presets, "other" otherwise).
        repo_id: the Hub name shown in the card's examples (default: the folder name).
        keep_adapter: also copy the LoRA adapter (`model_dir/adapter/`) that the merged weights came from.
        num_beams: default beam size in generation_config.json (default: the evaluation's, else 5).
    Returns:
        The output folder.
    """
    model_dir, out = Path(model_dir), Path(out)
    if not (model_dir / "config.json").exists():
        raise MMSLlamaInputError(f"{model_dir}: not a model folder (no config.json).")
    if out.resolve() == model_dir.resolve():
        raise MMSLlamaInputError("--out must differ from --model.")
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise MMSLlamaInputError(f"{out}: exists and is not empty; pass overwrite=True (--overwrite) to replace it.")
        shutil.rmtree(out)
    report, report_path = _load_report(card_results, model_dir)

    model = MMSLlamaForConditionalGeneration.from_pretrained(model_dir, dtype="auto").eval()
    processor = MMSLlamaProcessor.for_model(model_dir, model.config)
    text = model.config.text_config
    generation = model.generation_config
    generation.bos_token_id, generation.eos_token_id, generation.pad_token_id = (
        text.bos_token_id, text.eos_token_id, text.pad_token_id)  # fmt: skip
    generation.num_beams = int(num_beams or (report or {}).get("num_beams") or 5)
    generation.max_new_tokens = DEFAULT_MAX_NEW_TOKENS
    generation.do_sample = False

    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    processor.save_pretrained(out)
    for path in [PIPELINE_FILE, *get_relative_import_files(str(PIPELINE_FILE))]:
        shutil.copy2(path, out / Path(path).name)
    for path in out.glob("*.py"):  # the code is this package's, whatever copy the loaded classes came from
        if (PACKAGE_DIR / path.name).exists():
            shutil.copy2(PACKAGE_DIR / path.name, path)
    config = json.loads((out / "config.json").read_text())
    config["custom_pipelines"] = custom_pipelines_entry()
    (out / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")

    if report is not None:
        (out / "eval.json").write_text(json.dumps(report, indent=2) + "\n")
        for name in ("eval.md", "eval.png"):
            if (report_path.parent / name).exists():
                shutil.copy2(report_path.parent / name, out / name)
        if (out / "eval.png").exists():
            report = {**report, "image": "eval.png"}
    if keep_adapter and (model_dir / "adapter").is_dir():
        shutil.copytree(model_dir / "adapter", out / "adapter")
    if (model_dir / "training_args.json").exists():
        shutil.copy2(model_dir / "training_args.json", out / "training_args.json")
    card = render_card(model, report, model_dir=model_dir, license_id=license_id, repo_id=repo_id or out.name,
                       title=title, results_source=str(report_path) if report_path else "no evaluation")  # fmt: skip
    (out / "README.md").write_text(card)
    leftovers = [p.name for p in out.iterdir() if p.suffix in (".bin", ".pt", ".pth")]
    if leftovers:
        raise MMSLlamaInputError(f"{out}: non-safetensors weight files {leftovers}; refusing to publish pickles.")
    return out


__all__ = ["export_model"]

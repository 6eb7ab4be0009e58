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
                 num_beams: int | None = None, trained_on: str | None = None) -> Path:  # fmt: skip
    """Writes the Hub-ready folder `out` from the model folder `model_dir` (an `mmsllama-train` output).

    With `out` equal to `model_dir` the folder is refreshed in place: its code, processor files, config and card are
    rewritten from this package, and the files the export does not make (RECIPE.md, ...) are kept. The new folder is
    written beside the old one and swapped in at the end, so an interrupted export leaves the old folder whole.

    Args:
        model_dir: folder with config.json, model.safetensors and the processor files.
        out: the folder to write (must be empty or missing unless `overwrite`, or `model_dir` itself).
        card_results: an `eval.json` from `mmsllama-eval` (default: `model_dir/eval.json` when it exists).
        license_id: the card's licence (default: apache-2.0 for the synthetic-data presets, "other" otherwise).
        repo_id: the Hub name shown in the card's examples (default: the folder name).
        keep_adapter: also copy the LoRA adapter (`model_dir/adapter/`) that the merged weights came from.
        num_beams: default beam size in generation_config.json (default: the evaluation's, else 5).
        trained_on: recorded as `config.trained_on` (`"synthetic-grid"` for models of the synthetic corpus only).
    Returns:
        The output folder.
    """
    model_dir, out = Path(model_dir), Path(out)
    if not (model_dir / "config.json").exists():
        raise MMSLlamaInputError(f"{model_dir}: not a model folder (no config.json).")
    in_place = out.resolve() == model_dir.resolve()
    if out.exists() and any(out.iterdir()) and not (overwrite or in_place):
        raise MMSLlamaInputError(f"{out}: exists and is not empty; pass overwrite=True (--overwrite) to replace it.")
    report, report_path = _load_report(card_results, model_dir)
    staging = out.with_name(out.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    _write_folder(model_dir, staging, report, report_path, license_id, repo_id or out.name, title, keep_adapter,
                  num_beams, trained_on)  # fmt: skip
    if in_place:
        made = {p.name for p in staging.iterdir()}
        for path in model_dir.iterdir():
            if path.name not in made and path.suffix != ".py" and path.is_file():
                shutil.copy2(path, staging / path.name)
    _swap_in(staging, out)
    return out


def _swap_in(staging: Path, out: Path) -> None:
    """Replaces `out` by the finished `staging` folder (the old folder is removed only once the new one is in place)."""
    retired = out.with_name(out.name + ".old")
    shutil.rmtree(retired, ignore_errors=True)
    if out.exists():
        out.rename(retired)
    staging.rename(out)
    shutil.rmtree(retired, ignore_errors=True)


def _write_folder(model_dir: Path, out: Path, report, report_path, license_id, repo_id, title, keep_adapter, num_beams,
                  trained_on) -> None:  # fmt: skip
    """The export's files, written into the new folder `out`."""
    model = MMSLlamaForConditionalGeneration.from_pretrained(model_dir, dtype="auto").eval()
    if trained_on is not None:
        model.config.trained_on = trained_on
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
    source = "no evaluation" if report_path is None else (
        report_path.name if report_path.parent.resolve() == model_dir.resolve() else str(report_path))
    card = render_card(model, report, model_dir=model_dir, license_id=license_id, repo_id=repo_id, title=title,
                       results_source=source)  # fmt: skip
    (out / "README.md").write_text(card)
    leftovers = [p.name for p in out.iterdir() if p.suffix in (".bin", ".pt", ".pth")]
    if leftovers:
        shutil.rmtree(out)
        raise MMSLlamaInputError(f"{model_dir}: non-safetensors weight files {leftovers}; refusing to publish pickles.")


__all__ = ["export_model"]

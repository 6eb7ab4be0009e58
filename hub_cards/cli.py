"""`mmsllama`: transcribe media files, export a Hub-ready folder, or summarise a model.

    mmsllama transcribe talk.mp4 more/*.mp4 --model demo_model --format srt --output-dir subs/
    mmsllama export --model runs/avsr --out exported/ --card-results runs/avsr/eval.json
    mmsllama export --model demo_model --out demo_model        # refresh a folder's code, processor and card in place
    mmsllama info --model demo_model [--presets] [--json]

Exit codes: 0 success; 1 some inputs could not be transcribed (the others were); 2 bad usage (no input file matched,
no model folder, bad option); 130 interrupted.
"""

import argparse
import glob
import json
import os
import sys
from pathlib import Path

from modeling_mmsllama.errors_mmsllama import MMSLlamaInputError


EXIT_OK, EXIT_FAILED_INPUTS, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
FORMATS = ("txt", "json", "srt", "vtt")
DEFAULT_MODEL = "demo_model"


class UsageError(Exception):
    """Bad command-line usage: exit code 2."""


def _error(message: str) -> None:
    print(f"mmsllama: error: {message}", file=sys.stderr)


# -- loading ----------------------------------------------------------------------------------------------------------


def load_pipeline(model: str, device: str | None = None, dtype: str | None = None):
    """The ASR pipeline for a model folder (an `mmsllama-train` output or an export), built from this package."""
    import torch

    from modeling_mmsllama import MMSLlamaForConditionalGeneration, MMSLlamaProcessor
    from modeling_mmsllama.pipeline_mmsllama import MMSLlamaASRPipeline

    folder = Path(model)
    if not (folder / "config.json").exists():
        hint = " (the demo model is committed as demo_model/; or train one with mmsllama-train)" if model == DEFAULT_MODEL else ""
        raise UsageError(f"{model}: not a model folder (no config.json){hint}.")
    torch_dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}.get(dtype or "float32")
    network = MMSLlamaForConditionalGeneration.from_pretrained(folder, dtype=torch_dtype).eval()
    processor = MMSLlamaProcessor.for_model(folder, network.config)
    return MMSLlamaASRPipeline(model=network, processor=processor, device=device or "cpu")


def expand_inputs(patterns: list[str]) -> tuple[list[str], list[str]]:
    """Files named or matched by glob patterns (in order, without repeats), and the patterns that matched nothing."""
    files, unmatched = [], []
    for pattern in patterns:
        matches = sorted(glob.glob(pattern, recursive=True)) if glob.has_magic(pattern) else [pattern]
        matches = [m for m in matches if not os.path.isdir(m)] if glob.has_magic(pattern) else matches
        if not matches:
            unmatched.append(pattern)
        for match in matches:
            if match not in files:
                files.append(match)
    return files, unmatched


# -- output formats ---------------------------------------------------------------------------------------------------


def format_result(result: dict, fmt: str, source: str | None = None) -> str:
    from modeling_mmsllama.subtitles_mmsllama import to_srt, to_vtt

    if fmt == "txt":
        return result["text"] + "\n"
    if fmt == "json":
        return json.dumps({"file": source, **result}, indent=2) + "\n"
    if fmt == "srt":
        return to_srt(result)
    if fmt == "vtt":
        return to_vtt(result)
    raise UsageError(f"unknown format {fmt!r}; choose from {FORMATS}")


def _output_path(source: str, output_dir: Path, fmt: str) -> Path:
    return output_dir / f"{Path(source).stem}.{fmt}"


# -- transcribe -------------------------------------------------------------------------------------------------------


def transcribe_command(args) -> int:
    files, unmatched = expand_inputs(args.inputs)
    for pattern in unmatched:
        _error(f"{pattern}: no file matches")
    if not files:
        raise UsageError("no input file to transcribe")
    missing = [f for f in files if not os.path.isfile(f)]
    for path in missing:
        _error(f"{path}: file not found")
    todo = [f for f in files if f not in missing]
    if not todo:
        return EXIT_FAILED_INPUTS
    if args.batch_size < 1:
        raise UsageError("--batch-size must be at least 1")
    asr = load_pipeline(args.model, args.device, args.dtype)
    options = {k: v for k, v in {
        "modality": args.modality, "num_beams": args.num_beams, "max_new_tokens": args.max_new_tokens,
        "queries_per_second": args.queries_per_second, "max_rate": args.max_rate,
        "chunk_length_s": args.chunk_length, "no_speech_logprob": args.no_speech_logprob,
        "keep_no_speech": args.keep_no_speech or None}.items() if v is not None}  # fmt: skip
    output_dir = Path(args.output_dir) if args.output_dir else None
    if output_dir:
        output_dir.mkdir(parents=True, exist_ok=True)

    from tqdm.auto import tqdm

    bar = tqdm(total=None, unit="s", disable=args.quiet, file=sys.stderr,
               bar_format="{desc} {n:.1f}s of media [{elapsed}, {rate_fmt}]")  # fmt: skip
    bar.set_description(f"transcribing {len(todo)} file(s)")
    results: dict[str, dict] = {}
    failed = list(missing)

    def emit(path: str, result: dict) -> None:
        results[path] = result
        text = format_result(result, args.format, path)
        if output_dir:
            _output_path(path, output_dir, args.format).write_text(text)
        elif args.format != "json":
            header = f"==> {path} <==\n" if len(todo) > 1 else ""
            bar.clear()
            sys.stdout.write(header + text + ("" if text.endswith("\n") else "\n"))
            sys.stdout.flush()

    try:
        for path, result in zip(todo, asr.iterate(todo, batch_size=args.batch_size, progress=bar, **options)):
            emit(path, result)
    except (MMSLlamaInputError, OSError, RuntimeError, ValueError) as error:
        if len(todo) == 1:
            _error(str(error))
            failed.append(todo[0])
        else:  # find the bad input(s): the rest one at a time
            for path in [p for p in todo if p not in results]:
                try:
                    emit(path, next(asr.iterate([path], batch_size=args.batch_size, progress=bar, **options)))
                except (MMSLlamaInputError, OSError, RuntimeError, ValueError) as single_error:
                    _error(str(single_error))
                    failed.append(path)
    bar.close()
    if args.format == "json" and not output_dir:
        payload = [{"file": p, **results[p]} for p in todo if p in results]
        print(json.dumps(payload[0] if len(todo) == 1 and payload else payload, indent=2))
    if not args.quiet:
        print(f"transcribed {len(results)} of {len(files)} file(s)" + (f"; {len(failed)} failed" if failed else ""),
              file=sys.stderr)  # fmt: skip
    return EXIT_FAILED_INPUTS if failed else EXIT_OK


# -- export -----------------------------------------------------------------------------------------------------------


def export_command(args) -> int:
    from .export import export_model

    if not (Path(args.model) / "config.json").exists():
        raise UsageError(f"{args.model}: not a model folder (no config.json).")
    out = export_model(args.model, args.out, card_results=args.card_results, license_id=args.license,
                       repo_id=args.repo_id, title=args.title, overwrite=args.overwrite,
                       keep_adapter=args.keep_adapter, num_beams=args.num_beams,
                       trained_on=args.trained_on)  # fmt: skip
    print(f"exported to {out}: {', '.join(sorted(p.name for p in out.iterdir()))}")
    print(f"next: huggingface_hub.upload_folder(repo_id='you/name', folder_path='{out}')")
    return EXIT_OK


# -- info -------------------------------------------------------------------------------------------------------------


def preset_sizes() -> dict[str, int]:
    """Parameter count of every preset, built on the meta device (no memory, no weights)."""
    import torch

    from modeling_mmsllama import PRESETS, MMSLlamaConfig, MMSLlamaForConditionalGeneration

    sizes = {}
    for name in PRESETS:
        with torch.device("meta"):
            model = MMSLlamaForConditionalGeneration(MMSLlamaConfig.from_preset(name))
        sizes[name] = sum(p.numel() for p in model.parameters())
    return sizes


def info_command(args) -> int:
    from .card import human, model_summary

    report: dict = {}
    if args.model:
        import torch

        from modeling_mmsllama import MMSLlamaForConditionalGeneration

        folder = Path(args.model)
        if not (folder / "config.json").exists():
            raise UsageError(f"{args.model}: not a model folder (no config.json).")
        with torch.device("meta"):  # sizes and settings only: no weights are read
            model = MMSLlamaForConditionalGeneration(MMSLlamaForConditionalGeneration.config_class.from_pretrained(folder))
        summary = model_summary(model)
        weights = sum(p.stat().st_size for p in folder.glob("*.safetensors"))
        summary["weights_bytes"] = weights
        if (folder / "eval.json").exists():
            evaluation = json.loads((folder / "eval.json").read_text())
            summary["evaluation"] = [{k: r[k] for k in ("modality", "snr_db", "wer", "tokens_per_second")}
                                     for r in evaluation.get("results", [])]  # fmt: skip
        report["model"] = {"path": str(folder), **summary}
    if args.presets or not args.model:
        report["presets"] = preset_sizes()
    if args.json:
        print(json.dumps(report, indent=2))
        return EXIT_OK
    if "model" in report:
        m = report["model"]
        print(f"model: {m['path']}")
        print(f"  parameters: {human(m['parameters'])} ({m['dtype']}), weights on disk {m['weights_bytes'] / 1e6:.1f} MB")
        for part, count in m["parts"].items():
            print(f"    {part:<16} {human(count):>8}")
        low, high = m["tokens_per_second_range"]
        print(f"  compression: {m['compression']} (fusion {m['fusion']})")
        print(f"  token rate: {m['queries_per_second']:g} queries/s x rate factor in [{m['rate_clamp'][0]:g}, "
              f"{m['rate_clamp'][1]:g}] = {low:g}-{high:g} speech tokens per second (min {m['min_queries']}, "
              f"query bank {m['max_queries']})")  # fmt: skip
        print(f"  longest clip per pass: {m['max_clip_seconds']:g} s; LLM: {m['llm']}")
        for row in m.get("evaluation", []):
            snr = "clean" if row["snr_db"] is None else f"{row['snr_db']:g} dB"
            print(f"  WER {row['modality']:<6} {snr:>6}: {row['wer']:.1f}%  ({row['tokens_per_second']:.2f} tokens/s)")
    if "presets" in report:
        print("presets: " + ", ".join(f"{name} ({human(size)})" for name, size in report["presets"].items()))
    return EXIT_OK


# -- entry point ------------------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mmsllama", description="MMS-LLaMA audio-visual speech recognition.")
    commands = parser.add_subparsers(dest="command", required=True)

    t = commands.add_parser("transcribe", help="transcribe video/audio files (any length)")
    t.add_argument("inputs", nargs="+", help="files or glob patterns (quote them to let mmsllama expand them)")
    t.add_argument("--model", default=DEFAULT_MODEL, help="model folder (default: demo_model)")
    t.add_argument("--format", choices=FORMATS, default="txt")
    t.add_argument("--output-dir", "-o", help="write <name>.<format> per input here (default: standard output)")
    t.add_argument("--modality", choices=["av", "audio", "video"], help="default: every stream the input has")
    t.add_argument("--batch-size", type=int, default=8, help="clips decoded together (default 8)")
    t.add_argument("--num-beams", type=int, help="default: the model's generation_config")
    t.add_argument("--max-new-tokens", type=int)
    t.add_argument("--queries-per-second", type=float, help="token budget: speech tokens per second before the rate")
    t.add_argument("--max-rate", type=float, help="token budget: cap of the speech-rate factor (1.0 = no boost)")
    t.add_argument("--chunk-length", type=float, help="longest clip in seconds (default: the model's limit)")
    t.add_argument("--keep-no-speech", action="store_true",
                   help='keep the text of clips marked "no_speech" (default: left empty)')  # fmt: skip
    t.add_argument("--no-speech-logprob", type=float,
                   help="mean token log-probability below which a clip's text counts as a guess and the clip as no "
                        "speech (default: the model's config.no_speech_logprob)")  # fmt: skip
    t.add_argument("--device", default="cpu")
    t.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], default="float32")
    t.add_argument("--quiet", "-q", action="store_true", help="no progress bar or summary")
    t.set_defaults(handler=transcribe_command)

    e = commands.add_parser("export", help="write a Hub-ready folder with a model card")
    e.add_argument("--model", required=True, help="a trained model folder")
    e.add_argument("--out", required=True, help="the folder to write (the model folder itself: refresh it in place)")
    e.add_argument("--card-results", help="eval.json from mmsllama-eval (default: MODEL/eval.json if present)")
    e.add_argument("--license", help="licence id for the card (default: apache-2.0 for synthetic-data presets)")
    e.add_argument("--repo-id", help="the Hub name used in the card's examples")
    e.add_argument("--title")
    e.add_argument("--num-beams", type=int, help="default beam size written to generation_config.json")
    e.add_argument("--keep-adapter", action="store_true", help="also copy the LoRA adapter the weights were merged from")
    e.add_argument("--trained-on", help='recorded as config.trained_on ("synthetic-grid": the synthetic corpus only)')
    e.add_argument("--overwrite", action="store_true")
    e.set_defaults(handler=export_command)

    i = commands.add_parser("info", help="model summary: sizes, token rate, evaluation; presets")
    i.add_argument("--model", help="a model folder")
    i.add_argument("--presets", action="store_true", help="also list the presets with their sizes")
    i.add_argument("--json", action="store_true")
    i.set_defaults(handler=info_command)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except UsageError as error:
        _error(str(error))
        return EXIT_USAGE
    except MMSLlamaInputError as error:
        _error(str(error))
        return EXIT_USAGE if args.command != "transcribe" else EXIT_FAILED_INPUTS
    except KeyboardInterrupt:
        _error("interrupted")
        return EXIT_INTERRUPTED


def console_main() -> None:
    sys.exit(main())


if __name__ == "__main__":
    console_main()

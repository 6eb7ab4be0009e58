"""The paper's step-wise ablation, trained: the avsr stage of the demo recipe once per way of feeding speech to the LLM.

    python -m benchmarks.ablation_trained                                   # 400 avsr steps per row
    python -m benchmarks.ablation_trained --steps 2900 --noise_steps 400    # the demo recipe's full budget per row
    python -m benchmarks.ablation_trained --rows baseline qformer --steps 200 --out /tmp/ablation.md

Every row trains the avsr stage with the demo recipe's flags (`training/demo.py`: batch 16, lr 1e-3 cosine, the LLM
from scratch with the same seed, noise, modality dropout, input augmentation) on the same frozen encoders and rate
predictor (`--encoders`, default the committed `demo_model`); only the configuration differs (`ROWS`). The Q-Former
rows follow the recipe's curriculum within the same budget (`--curriculum`, default 59%: that share of the steps at
7.5 queries/s, the rest at the row's own rate with the recipe's `avsr-low` flags); `--curriculum 0` trains them at
their own rate from the first step. Each row then
gets, on the held-out test speakers: AV WER clean and at -5 dB babble (beam 5), speech tokens per second, training
seconds per step and peak RSS (each training runs in its own process), and inference latency per clip at batch 1 and 8
(processor + encoders + compression + beam-5 decoding, clean AV). Writes `benchmarks/RESULTS_ablation.md` (text after
its `NOTES_MARKER` line is kept), a plot and a JSON of the raw results beside it (same name, .png / .json).
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.bench_training import StepEndTimes, load_note, step_seconds
from benchmarks.common import BENCH_DIR, NOTES_MARKER, REPO_ROOT, PeakRSS, environment, kept_notes, markdown_table
from training.demo import AVSR_QUERIES_PER_SECOND, COMMON, STEPS


# name: (the paper's row it stands for, config overrides on top of the preset); f_Q 3 is the paper's
ROWS = {
    "baseline": ("Baseline (Llama-AVSR: audio and video as two 12.5 Hz streams)", {"compression": "baseline"}),
    "fusion_only": ("+ Early AV fusion (12.5 Hz)", {"compression": "fusion_only"}),
    "qformer_no_rate": ("+ AV Q-Former, f_Q 3, no rate predictor", {"queries_per_second": 3.0, "use_rate_predictor": False}),
    "qformer": ("+ speech-rate predictor, f_Q 3 (MMS-LLaMA)", {"queries_per_second": 3.0}),
    "qformer_global": ("MMS-LLaMA with the paper's global cross-attention", {"queries_per_second": 3.0, "qformer_window": None}),
}  # fmt: skip
# the paper's step-wise ablation (LRS3 433 h, Llama-3.2-3B): tokens/s, clean WER (%); it has no windowed/global row
PAPER = {"baseline": (25.0, 0.97), "fusion_only": (12.5, 0.92), "qformer_no_rate": (2.8, 0.95), "qformer": (3.5, 0.90)}


def recipe_flag(step: str, flag: str) -> int:
    """An integer flag's value in the demo recipe's `step` (training/demo.py)."""
    flags = STEPS[step][2]
    return int(flags[flags.index(flag) + 1])


# the demo recipe's avsr steps before its noise pass: its curriculum's part at AVSR_QUERIES_PER_SECOND, then the part at
# the low rate (1,700 + 1,200); warm-ups are scaled from the recipe's to shorter runs
HIGH_RECIPE_STEPS, LOW_RECIPE_STEPS = recipe_flag("avsr", "--max_steps"), recipe_flag("avsr-low", "--max_steps")
RECIPE_STEPS = HIGH_RECIPE_STEPS + LOW_RECIPE_STEPS
RECIPE_WARMUP, LOW_RECIPE_WARMUP = recipe_flag("avsr", "--warmup_steps"), recipe_flag("avsr-low", "--warmup_steps")
CURRICULUM = HIGH_RECIPE_STEPS / RECIPE_STEPS  # the share of the avsr steps at the high rate

TEST_UTTERANCES = 120  # as the demo model's eval.md
LATENCY_CLIPS = 16
RESULTS = BENCH_DIR / "RESULTS_ablation.md"
GIB = 2**30


def uses_rate_predictor(overrides: dict) -> bool:
    return overrides.get("compression", "qformer") == "qformer" and overrides.get("use_rate_predictor", True)


def is_qformer(row: str) -> bool:
    return ROWS[row][1].get("compression", "qformer") == "qformer"


def curriculum_steps(row: str, args: argparse.Namespace) -> tuple[int, int]:
    """(steps at the recipe's high query rate, steps at the row's own rate) of a row's avsr stage."""
    high = min(round(args.steps * args.curriculum), args.steps - 1) if is_qformer(row) else 0
    return high, args.steps - high


def train_argv(row: str, args: argparse.Namespace, out: Path, steps: int | None = None,
               high_rate: bool = False) -> list[str]:  # fmt: skip
    """`mmsllama-train` arguments of one row's avsr stage: the demo recipe's, with the row's config and budget
    (`steps`, default `--steps`); `high_rate`: the curriculum's first part, at the recipe's 7.5 queries/s."""
    steps = args.steps if steps is None else steps
    flags = list(STEPS["avsr"][2])
    overrides = {**json.loads(flags[flags.index("--config_overrides") + 1]), **ROWS[row][1]}
    if not is_qformer(row):
        overrides.pop("queries_per_second", None)
    elif high_rate:
        overrides["queries_per_second"] = AVSR_QUERIES_PER_SECOND
    warmup = max(1, round(RECIPE_WARMUP * min(1.0, steps / RECIPE_STEPS)))
    replace = {"--max_steps": str(steps), "--warmup_steps": str(warmup), "--eval_strategy": "no",
               "--config_overrides": json.dumps(overrides)}  # fmt: skip
    for flag, value in replace.items():
        flags[flags.index(flag) + 1] = value
    parts = ["--encoders", str(args.encoders)]
    if uses_rate_predictor(ROWS[row][1]):
        parts += ["--rate-predictor", str(args.rate_predictor)]
    return avsr_argv(args, out, flags, parts)


def low_rate_argv(row: str, args: argparse.Namespace, init: Path, out: Path, steps: int) -> list[str]:
    """The curriculum's second part: the recipe's `avsr-low` flags (lr 5e-4) at the row's own query rate, from `init`."""
    overrides = {**ROWS[row][1], "min_queries": max(1, int(ROWS[row][1]["queries_per_second"]))}
    warmup = max(1, round(LOW_RECIPE_WARMUP * min(1.0, steps / LOW_RECIPE_STEPS)))
    flags = _with(list(STEPS["avsr-low"][2]), {"--max_steps": str(steps), "--warmup_steps": str(warmup),
                                               "--config_overrides": json.dumps(overrides)})  # fmt: skip
    return avsr_argv(args, out, flags, ["--init", str(init)])


def noise_argv(args: argparse.Namespace, init: Path, out: Path) -> list[str]:
    """The demo recipe's noise pass (more, and lower, SNRs) on a row's avsr model, for `--noise_steps` steps."""
    flags = _with(list(STEPS["avsr-noise"][2]), {"--max_steps": str(args.noise_steps)})
    return avsr_argv(args, out, flags, ["--init", str(init)])


def avsr_argv(args: argparse.Namespace, out: Path, flags: list[str], inputs: list[str]) -> list[str]:
    """An avsr stage's `mmsllama-train` arguments: the recipe's common flags (no intermediate checkpoints, no progress
    bar), the step's `flags`, the folders it reads, and the benchmark's batch size and training subset."""
    common = _with(COMMON, {"--preset": args.preset, "--seed": str(args.seed), "--save_steps": "100000",
                            "--disable_tqdm": "true"})  # fmt: skip
    argv = ["--stage", "avsr", "--data", str(args.data), "--out", str(out), *common, *flags, *inputs]
    if args.batch_size:
        argv = _with(argv, {"--per_device_train_batch_size": str(args.batch_size)})
    return argv + (["--limit_train", str(args.limit_train)] if args.limit_train else [])


def _with(argv: list[str], values: dict[str, str]) -> list[str]:
    """`argv` with the values of the given flags replaced (each flag must be present)."""
    argv = list(argv)
    for flag, value in values.items():
        argv[argv.index(flag) + 1] = value
    return argv


def run_worker(args: argparse.Namespace) -> None:
    """Trains one stage (`args.worker_argv`, JSON) in this process; writes its step times and peak RSS."""
    from training.cli import train

    timer = StepEndTimes()
    with PeakRSS(0.05) as rss:
        train(json.loads(args.worker_argv), callbacks=[timer])
    result = {"step_s": step_seconds(timer.times, min(5, max(1, len(timer.times) - 1))), "peak_rss_bytes": rss.peak}
    Path(args.result).write_text(json.dumps(result))


def train_in_worker(argv: list[str], log: Path) -> dict:
    """Runs `argv` in a fresh process (this module as a worker), output to `log`; its step times and peak RSS."""
    with tempfile.TemporaryDirectory() as folder:
        result = Path(folder) / "result.json"
        command = [sys.executable, "-m", "benchmarks.ablation_trained", "--worker_argv", json.dumps(argv),
                   "--result", str(result)]  # fmt: skip
        with open(log, "w") as out:
            done = subprocess.run(command, cwd=REPO_ROOT, stdout=out, stderr=subprocess.STDOUT)
        if done.returncode:
            raise SystemExit(f"training failed (exit {done.returncode}); see {log}")
        return json.loads(result.read_text())


def latency_per_clip(model, processor, utterances, batch_size: int) -> float:
    """Seconds per clip to transcribe `utterances` (clean AV, beam 5) in batches of `batch_size`, after one warm-up
    batch."""
    from training.evaluation import transcribe

    transcribe(model, processor, utterances[:batch_size], batch_size=batch_size, progress=False)
    start = time.perf_counter()
    transcribe(model, processor, utterances, batch_size=batch_size, progress=False)
    return (time.perf_counter() - start) / len(utterances)


def measure(folder: Path, args: argparse.Namespace) -> dict:
    """Test WER (AV, clean and -5 dB, beam 5), tokens/s and latency per clip at batch 1 and 8 of a trained row."""
    from modeling_mmsllama import MMSLlamaForConditionalGeneration, MMSLlamaProcessor
    from training.data import load_split
    from training.evaluation import EVAL_NOISE_UTTERANCES, evaluate, evaluation_noise, write_report

    model = MMSLlamaForConditionalGeneration.from_pretrained(folder, dtype=torch.float32).eval()
    processor = MMSLlamaProcessor.for_model(folder, model.config)
    utterances = load_split(args.data, "test", args.test_utterances, max_frames=model.config.max_video_frames)
    noise = evaluation_noise(load_split(args.data, "valid", EVAL_NOISE_UTTERANCES))
    report = evaluate(model, processor, utterances, noise, [None, -5.0], ["av"], progress=False)
    write_report(report, folder)
    clips = utterances[: args.latency_clips]
    clean, noisy = report["results"]
    return {"wer_clean": clean["wer"], "wer_-5db": noisy["wer"], "tokens_per_second": clean["tokens_per_second"],
            "latency_b1_s": round(latency_per_clip(model, processor, clips, 1), 4),
            "latency_b8_s": round(latency_per_clip(model, processor, clips, 8), 4)}  # fmt: skip


def run_row(row: str, args: argparse.Namespace) -> dict:
    """Trains one row (and its noise pass when asked) and measures it."""
    folder = Path(args.runs) / row
    folder.mkdir(parents=True, exist_ok=True)
    high, low = curriculum_steps(row, args)
    if high:
        first = train_in_worker(train_argv(row, args, folder / "avsr-high", high, high_rate=True), folder / "avsr-high.log")
        second = train_in_worker(low_rate_argv(row, args, folder / "avsr-high", folder / "avsr", low), folder / "avsr.log")
        trained = {"step_s": first["step_s"] + second["step_s"],
                   "peak_rss_bytes": max(first["peak_rss_bytes"], second["peak_rss_bytes"])}  # fmt: skip
    else:
        trained = train_in_worker(train_argv(row, args, folder / "avsr"), folder / "avsr.log")
    final = folder / "avsr"
    if args.noise_steps:
        train_in_worker(noise_argv(args, final, folder / "avsr-noise"), folder / "avsr-noise.log")
        final = folder / "avsr-noise"
    step_s = trained["step_s"]  # empty when every part trained a single step (no step has a measured start)
    result = {"row": row, "config": ROWS[row][1], "s_per_step": round(sum(step_s) / len(step_s), 4) if step_s else None,
              "peak_rss_gib": round(trained["peak_rss_bytes"] / GIB, 3), **measure(final, args)}  # fmt: skip
    print(json.dumps(result))
    return result


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 3.8))
    for result, marker in zip(results, "osD^v"):
        for key, fill in (("wer_clean", None), ("wer_-5db", "none")):
            axis.plot(result["tokens_per_second"], result[key], marker=marker, linestyle="", markerfacecolor=fill,
                      color=f"C{results.index(result)}", label=result["row"] if key == "wer_clean" else None)  # fmt: skip
    axis.set_xscale("log")
    axis.set_xlabel("speech tokens per second into the LLM (log)")
    axis.set_ylabel("test AV WER (%): filled clean, open -5 dB")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def report(results: list[dict], args: argparse.Namespace, command: str, notes: str) -> str:
    env = environment()
    header = ["row", "paper's row", "tokens/s", "test AV WER clean", "-5 dB", "train s/step", "peak RSS (GiB)",
              "latency/clip b1 (s)", "b8 (s)", "paper: tokens/s, WER"]  # fmt: skip
    rows = [[r["row"], ROWS[r["row"]][0], r["tokens_per_second"], r["wer_clean"], r["wer_-5db"], r["s_per_step"],
             r["peak_rss_gib"], r["latency_b1_s"], r["latency_b8_s"],
             "{:g}, {:.2f}".format(*PAPER[r["row"]]) if r["row"] in PAPER else "-"] for r in results]  # fmt: skip
    budget = f"{args.steps} avsr steps" + (f" + a {args.noise_steps}-step noise pass" if args.noise_steps else "")
    if args.limit_train:
        budget += f" on the first {args.limit_train} training utterances"
    return "\n".join([
        "# The paper's ablation, trained (demo preset, synthetic corpus)", "",
        f"`{command}`", "",
        f"- date: {env['date']}; machine: {env['machine']}; {load_note()}",
        f"- versions: Python {env['python']}, torch {env['torch']}, transformers {env['transformers']}", "",
        (f"Each row trains the avsr stage for {budget} (batch {args.batch_size or 16}, the demo recipe's flags, LLM "
         f"from scratch, seed {args.seed}) on the same frozen encoders and rate predictor (`{args.encoders}`)"
         + (f"; the Q-Former rows as the recipe's curriculum: the first {args.curriculum:.0%} of the steps at "
            f"{AVSR_QUERIES_PER_SECOND:g} queries/s, the rest at the row's own rate (the recipe's `avsr-low` flags)"
            if args.curriculum else "") + ", then "
         f"is evaluated on {args.test_utterances} utterances of the three held-out test speakers (beam 5, babble at "
         f"the exact SNR). s/step: mean over the training steps after the first five, in a process of its own (peak "
         f"RSS of that process). Latency: seconds per clip to transcribe {args.latency_clips} test clips (clean AV, "
         "beam 5, processor included) in batches of 1 and 8. One run per row."), "",
        markdown_table(header, rows), "",
        f"![ablation]({Path(args.out).with_suffix('.png').name})", "",
        "```json", json.dumps({"environment": env, "results": results}, indent=1), "```", "",
        NOTES_MARKER, notes,
    ])  # fmt: skip


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", nargs="+", choices=list(ROWS), default=list(ROWS))
    parser.add_argument("--steps", type=int, default=400, help=f"avsr steps per row (the demo recipe: {RECIPE_STEPS})")
    parser.add_argument("--noise_steps", type=int, default=0,
                        help=f"noise-pass steps per row (the demo recipe: {recipe_flag('avsr-noise', '--max_steps')})")
    parser.add_argument("--curriculum", type=float, default=CURRICULUM,
                        help="Q-Former rows: the share of --steps trained at 7.5 queries/s before the row's own rate, "
                        "as the demo recipe does (default %(default).2f; 0: the row's rate from the first step)")
    parser.add_argument("--data", default="data/synthgrid", help="the synthetic corpus (make train-demo writes it)")
    parser.add_argument("--encoders", default="demo_model", help="folder with the trained encoders")
    parser.add_argument("--rate-predictor", dest="rate_predictor", default="demo_model",
                        help="folder with the trained speech-rate predictor")
    parser.add_argument("--preset", default="demo")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch_size", type=int, default=None, help="training batch (default: the recipe's 16)")
    parser.add_argument("--limit_train", type=int, default=None,
                        help="train on the first N training utterances only (less decoding per row)")
    parser.add_argument("--test_utterances", type=int, default=TEST_UTTERANCES)
    parser.add_argument("--latency_clips", type=int, default=LATENCY_CLIPS)
    parser.add_argument("--runs", default="runs/ablation", help="where the rows train")
    parser.add_argument("--out", default=str(RESULTS), help="the Markdown results file")
    parser.add_argument("--worker_argv", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.steps < 2:
        parser.error("--steps must be at least 2")
    if not 0 <= args.curriculum < 1:
        parser.error(f"--curriculum must be in [0, 1), got {args.curriculum}")
    return args


def main(argv: list[str] | None = None) -> list[dict]:
    args = parse_args(argv)
    if args.worker_argv:
        run_worker(args)
        return []
    command = "python -m benchmarks.ablation_trained " + " ".join(sys.argv[1:] if argv is None else argv)
    results = [run_row(row, args) for row in args.rows]
    out = Path(args.out)
    notes = kept_notes(out)
    plot(results, out.with_suffix(".png"))
    out.write_text(report(results, args, command.strip(), notes))
    out.with_suffix(".json").write_text(json.dumps(results, indent=1) + "\n")
    print(out.read_text())
    return results


if __name__ == "__main__":
    main()

"""Training throughput and peak memory of a stage (`avsr` by default): plain, glibc's default allocator behaviour,
length-grouped batches, one dataloader worker, DeepSpeed ZeRO-2, and avsr at 6 and 7.5 queries per second.

    python -m benchmarks.bench_training                      # demo preset, writes benchmarks/RESULTS_training.md
    python -m benchmarks.bench_training --stage encoders     # writes benchmarks/RESULTS_training_encoders.md
    python -m benchmarks.bench_training --configs plain grouped --out /tmp/avsr.md

Each configuration trains in its own process (`--worker CONFIG`, this module run again), so that the DeepSpeed
process group and the memory peak of one run cannot leak into the next. ZeRO-2 runs as one process on the CPU (gloo,
as in tests/test_training_deepspeed.py). Only optimizer steps are timed: model building, data decoding and DeepSpeed's
set-up (including the first-use JIT compilation of its shared-memory collective, ~40-90 s) are not. Random weights
(no `--encoders/--lm/--rate-predictor`): a cost measurement, not a training run.
"""

import argparse
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from transformers import TrainerCallback

from benchmarks.common import BENCH_DIR, REPO_ROOT, PeakRSS, environment, markdown_table, read_tsv_manifest
from modeling_mmsllama import MMSLlamaInputError


CONFIG_FLAGS = {  # each configuration's flags on top of TRAINING_FLAGS
    "plain": [],  # random batches, collation in the step
    "grouped": ["--train_sampling_strategy", "group_by_length"],  # utterances of similar length batched together
    "worker": ["--dataloader_num_workers", "1"],  # collation in a dataloader process beside the step
    "zero2": ["--deepspeed", str(REPO_ROOT / "training" / "zero2.json")],
    "malloc-default": ["--keep_freed_memory", "false"],  # glibc unmaps large freed blocks: pages fault anew each step
    # avsr at the demo recipe's query densities, previous and current (the preset's f_Q is the paper's 3)
    "fq6": ["--config_overrides", json.dumps({"queries_per_second": 6.0})],
    "fq7.5": ["--config_overrides", json.dumps({"queries_per_second": 7.5})],
}
CONFIGS = tuple(CONFIG_FLAGS)
STAGE_FLAGS = {"avsr": ["--lora_r", "0"], "encoders": ["--encoder_objective", "framewise"]}
DEFAULT_DATA = REPO_ROOT / "data" / "synthgrid"
BENCH_CORPUS = REPO_ROOT / "data" / "synthgrid-bench"  # generated when --data has no manifests
BENCH_CORPUS_UTTERANCES = 200
RSS_INTERVAL_S = 0.01  # sampling period of the memory probe
GIB = 2**30  # bytes
RESULTS = {"avsr": BENCH_DIR / "RESULTS_training.md", "encoders": BENCH_DIR / "RESULTS_training_encoders.md"}
TRAINING_FLAGS = ["--learning_rate", "1e-3", "--logging_steps", "1", "--seed", "0", "--report_to", "none",
                  "--disable_tqdm", "true", "--save_strategy", "no", "--eval_strategy", "no",
                  "--dataloader_num_workers", "0"]  # fmt: skip
METRICS = (  # (key, headline name, unit, label in the table)
    ("s_per_step", "training_s_per_step", "s", "s / step (mean)"),
    ("utterances_per_s", "training_utterances_per_s", "utt/s", "utterances / s"),
    ("audio_s_per_s", "training_audio_s_per_s", "s/s", "audio s / s"),
    ("peak_rss_gib", "training_peak_rss", "GiB", "peak RSS (GiB)"),
)


class StepEndTimes(TrainerCallback):
    """`time.perf_counter()` at the end of every optimizer step."""

    def __init__(self):
        self.times = []

    def on_step_end(self, args, state, control, **kwargs):
        self.times.append(time.perf_counter())


def step_seconds(end_times: list[float], warmup_steps: int) -> list[float]:
    """Durations of the steps after the first `warmup_steps` (each from the end of the step before it)."""
    durations = [end - start for start, end in itertools.pairwise(end_times)]  # steps 2, 3, ...
    return durations[warmup_steps - 1 :]


def training_data(data: str) -> Path:
    """`data` (absolute) if it holds manifests, else a small synthetic corpus in `BENCH_CORPUS` (generated once)."""
    from processing.synth.corpus import CorpusConfig, generate_corpus
    from training.data import manifest_folder

    try:
        manifest_folder(data)
        return Path(data).resolve()
    except MMSLlamaInputError:  # no such folder, or no manifests in it
        print(f"{data}: no manifests; using a {BENCH_CORPUS_UTTERANCES}-utterance corpus in {BENCH_CORPUS}")
        generate_corpus(BENCH_CORPUS, CorpusConfig(utterances=BENCH_CORPUS_UTTERANCES, seed=0, face_splits=()))
        return BENCH_CORPUS


def display_path(path: Path) -> str:
    """`path` relative to the repository when inside it."""
    return str(path.relative_to(REPO_ROOT) if path.is_relative_to(REPO_ROOT) else path)


def mean_duration_s(data: Path, utterances: int) -> float:
    """Mean length (s) of the training utterances the runs use: the first `utterances` of the train split."""
    from training.data import manifest_folder

    rows = read_tsv_manifest(manifest_folder(data) / "train.tsv", limit=utterances)
    return sum(row.duration_s for row in rows) / len(rows)


def train_argv(config: str, args: argparse.Namespace, out: str) -> list[str]:
    """The `mmsllama-train` flags of one run: one epoch of `--limit_train` = batch x steps utterances."""
    total_steps = args.warmup_steps + args.steps
    return ["--stage", args.stage, *STAGE_FLAGS[args.stage], *TRAINING_FLAGS, *CONFIG_FLAGS[config],
            "--preset", args.preset, "--data", str(args.data), "--out", out,
            "--per_device_train_batch_size", str(args.batch_size), "--max_steps", str(total_steps),
            "--limit_train", str(args.batch_size * total_steps)]  # fmt: skip


def run_worker(args: argparse.Namespace) -> None:
    """Trains one configuration in this process and writes its step times and peak RSS to `args.result`."""
    from training.cli import train
    from training.trainer import single_process_group_env

    if args.worker == "zero2":
        os.environ.update(single_process_group_env())
    timer = StepEndTimes()
    with tempfile.TemporaryDirectory() as out, PeakRSS(RSS_INTERVAL_S) as rss:
        train(train_argv(args.worker, args, out), callbacks=[timer])
    result = {"step_s": step_seconds(timer.times, args.warmup_steps), "peak_rss_bytes": rss.peak}
    Path(args.result).write_text(json.dumps(result))


def measure(config: str, args: argparse.Namespace) -> dict:
    """Runs `config` in a fresh worker process; its step times and peak RSS."""
    with tempfile.TemporaryDirectory() as folder:
        result = Path(folder) / "result.json"
        command = [sys.executable, "-m", "benchmarks.bench_training", "--worker", config, "--result", str(result),
                   "--stage", args.stage, "--preset", args.preset, "--data", str(args.data), "--steps", str(args.steps),
                   "--warmup_steps", str(args.warmup_steps), "--batch_size", str(args.batch_size)]  # fmt: skip
        subprocess.run(command, cwd=REPO_ROOT, check=True)
        return json.loads(result.read_text())


def summarize(raw: dict, batch_size: int, mean_duration: float) -> dict:
    """Mean s/step, utterances/s, audio s/s and peak RSS of one run."""
    s_per_step = sum(raw["step_s"]) / len(raw["step_s"])  # the mean: grouped batches vary in length by design
    return {"s_per_step": round(s_per_step, 4), "utterances_per_s": round(batch_size / s_per_step, 3),
            "audio_s_per_s": round(batch_size * mean_duration / s_per_step, 3),
            "peak_rss_gib": round(raw["peak_rss_bytes"] / GIB, 3),
            "step_s": [round(seconds, 4) for seconds in raw["step_s"]]}  # fmt: skip


def headline(results: dict, preset: str, stage: str) -> list[str]:
    """`name: value unit` lines: every metric of every run, then each run over the plain one."""
    prefix = f"{stage}_{preset.replace('-', '_')}"
    lines = [f"{name}_{prefix}_{config}: {row[key]:.3f} {unit}"
             for config, row in results.items() for key, name, unit, _ in METRICS]  # fmt: skip
    for config in _compared(results):
        lines += [f"{name}_ratio_{prefix}_{config}_plain: {results[config][key] / results['plain'][key]:.3f} x"
                  for key, name, _, _ in METRICS]  # fmt: skip
    return lines


def _compared(results: dict) -> list[str]:
    """The runs shown as a ratio to the plain run (all others, when plain ran)."""
    return [config for config in results if config != "plain"] if "plain" in results else []


def comparison_table(results: dict) -> str:
    """One row per metric, one column per run, then each run / plain."""
    compared = _compared(results)
    header = ["metric", *results] + [f"{config} / plain" for config in compared]
    rows = []
    for key, _, _, label in METRICS:
        row = [label, *(results[config][key] for config in results)]
        rows.append(row + [results[config][key] / results["plain"][key] for config in compared])
    return markdown_table(header, rows)


def load_note() -> str:
    """The load average, with a warning when other jobs shared the CPU."""
    load = os.getloadavg()[0]
    shared = " (above the core count: other jobs shared the CPU and the timings are pessimistic)"
    return f"load average {load:.1f} at the end" + (shared if load > os.cpu_count() else "")


def report(results: dict, args: argparse.Namespace, mean_duration: float) -> str:
    """RESULTS_training.md: environment, protocol, the comparison table, headline lines and the raw results."""
    env, data, configs = environment(), display_path(args.data), " ".join(results)
    total_steps = args.warmup_steps + args.steps
    return "\n".join([
        f"# Training benchmark ({args.stage} stage: {', '.join(results)})",
        "",
        (f"`python -m benchmarks.bench_training --stage {args.stage} --preset {args.preset} --data {data} --steps {args.steps} "
         f"--warmup_steps {args.warmup_steps} --batch_size {args.batch_size} --configs {configs}`"),
        "",
        f"- date: {env['date']}",
        f"- machine: {env['machine']}; {load_note()}",
        f"- platform: {env['platform']}",
        f"- versions: Python {env['python']}, torch {env['torch']}, transformers {env['transformers']}",
        "",
        "## Protocol",
        "",
        (f"`training.cli.train` (what `mmsllama-train` runs) on the `{args.stage}` stage of the `{args.preset}` preset "
         f"with random weights ({' '.join(STAGE_FLAGS[args.stage])}), AdamW at lr 1e-3, the default noise and crop "
         f"augmentation (and modality dropout in avsr), batch {args.batch_size}, random batches, "
         "`--dataloader_num_workers 0` (collation is in the step), freed memory kept in the process "
         "(`training/memory.py`). `malloc-default` lets glibc unmap large freed blocks (`--keep_freed_memory false`), "
         "so each step faults its buffers in anew; `grouped` batches utterances of similar length "
         "(`--train_sampling_strategy group_by_length`: less padding); `worker` collates in one dataloader process; "
         "`zero2` adds `--deepspeed training/zero2.json` as one process on the CPU; `fq6` / `fq7.5` train at 6 / 7.5 "
         "queries per second (the demo recipe's previous and current f_Q; the preset's is 3). Each run is a fresh "
         f"process and trains {total_steps} steps over the first {args.batch_size * total_steps} training utterances of `{data}` "
         f"(mean {mean_duration:.2f} s; one epoch when the split has that many). A step's time runs from "
         "the end of the step before it to its own end (`TrainerCallback.on_step_end`); after "
         f"{args.warmup_steps} warm-up step(s), the mean of the next {args.steps} is reported (not the median: grouped "
         "batches differ in length by design), so model building, data decoding and DeepSpeed's set-up are not "
         "counted. Utterances/s = batch / (s/step); audio s/s = batch x "
         "mean utterance length / (s/step). With one process ZeRO-2 has nothing to partition: the comparison shows "
         "its overhead (flat copies of the trained weights and their gradients, bucketed reduction), not the savings "
         f"it brings across processes. Peak RSS: the worker's resident set, sampled every {RSS_INTERVAL_S * 1000:g} ms "
         "during `train`, including the model, the optimizer state and the decoded data (the training utterances "
         "above and the whole validation split, loaded though not evaluated)."),
        "",
        "## Results",
        "",
        comparison_table(results),
        "",
        "```",
        *headline(results, args.preset, args.stage),
        "```",
        "",
        "```json",
        json.dumps({"environment": env, "mean_duration_s": round(mean_duration, 3), "runs": results}, indent=1),
        "```",
        "",
    ])  # fmt: skip


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stage", default="avsr", choices=sorted(STAGE_FLAGS))
    parser.add_argument("--preset", default="demo")
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="corpus root or manifest folder")
    parser.add_argument("--steps", type=int, default=25, help="timed steps, after the warm-up")
    parser.add_argument("--warmup_steps", type=int, default=5, help="untimed steps first (at least 1)")
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--configs", nargs="+", choices=CONFIGS, default=list(CONFIGS))
    parser.add_argument("--out", default=None,
                        help="the Markdown results file (default: the stage's RESULTS_training*.md)")
    parser.add_argument("--worker", choices=CONFIGS, help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.warmup_steps < 1 or args.steps < 1:
        parser.error("--warmup_steps and --steps must be at least 1")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.worker:
        run_worker(args)
        return
    args.data = training_data(args.data)
    mean_duration = mean_duration_s(args.data, args.batch_size * (args.warmup_steps + args.steps))
    results = {config: summarize(measure(config, args), args.batch_size, mean_duration) for config in args.configs}
    text = report(results, args, mean_duration)
    Path(args.out or RESULTS[args.stage]).write_text(text)
    print(text)


if __name__ == "__main__":
    main()

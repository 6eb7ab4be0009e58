"""The demo model: `make train-demo` trains it from nothing; `make demo` transcribes held-out clips with it.

The recipe follows the paper with small parts we pretrain ourselves (`docs/training.md`): encoders
trained to name each frame's phoneme stand in for Whisper and AV-HuBERT, the speech-rate predictor learns the rate,
then the paper's stage trains the adapter, fusion, windowed Q-Former and projector with the frozen encoders, and the
small word-token Llama with them (from scratch: see STEPS), followed by a short pass with more low-SNR noise. Every
command and seed is written to `demo_model/RECIPE.md`.
"""

import argparse
import json
import os
import shlex
import shutil
import sys
import time
from pathlib import Path

import torch

from hub_cards import export_model
from modeling_mmsllama import MMSLlamaForConditionalGeneration, MMSLlamaProcessor
from modeling_mmsllama.configuration_mmsllama import SYNTHETIC_GRID
from processing.synth.corpus import CorpusConfig, generate_corpus

from .cli import eval_command, train
from .data import load_split
from .evaluation import EVAL_NOISE_UTTERANCES, evaluate, evaluation_noise, format_table, write_report


DEMO_MODEL = Path("demo_model")
CORPUS = Path("data/synthgrid")
CORPUS_UTTERANCES = 2000
CORPUS_WORKERS = os.cpu_count() or 1  # the corpus is the same whatever the number
SEED = 0
EVAL_UTTERANCES = 120  # of the 249 test utterances: 11 beam-5 decodes of them take minutes on 2 cores
# The first 1,608 utterances of the corpus (an utterance depends only on the seed and its index): its test split starts
# with the 120 clips of the model's eval.md, its valid split with the 200 that make eval.md's babble, so `make demo`
# prints eval.md's numbers (in a folder of its own, so that it needs no training corpus)
DEMO_EVAL_UTTERANCES = 1608
DEMO_EVAL_CORPUS = Path(f"data/synthgrid-demo-{DEMO_EVAL_UTTERANCES}")

# Queries per second of the avsr stage (the paper: 3). The letter slot (25 short, confusable words) is the one the model
# learns last and gets wrong most (5.5 of 7.5 WER points of the 4.5/s model were letters): with oracle phoneme features
# (`python -m training.diagnostics`) its cross-entropy after 600 steps fell with more queries, 1.33 / 1.04 / 0.82 nats
# at 4.5 / 6 / 7.5 per second (two seeds at 4.5 and 6), while a narrower window or a third Q-Former layer did not help.
# The full recipe: 4.5 -> 6/s took clean AV WER 7.5 -> 4.0% (greedy, 249 test utterances); 6 -> 7.5/s on the same
# encoders, chosen on all 250 validation utterances (clean, beam 5, AV / audio-only / video-only: 6.8 / 10.8 / 15.9%
# against 6.9 / 13.1 / 17.5 and, for a second run at 6/s, 7.4 / 13.7 / 15.8), took the test table's clean AV from 3.6
# and 4.9 to 2.1%, for 7.7 speech tokens per second instead of 6.1 and avsr steps 1.03-1.08x slower
# (`benchmarks.bench_training --configs fq6 fq7.5`).
AVSR_QUERIES_PER_SECOND = 7.5
# ... and then the paper's density: a curriculum from 7.5 to 3.4 queries per second (3.39 speech tokens per second on
# this corpus, 1.47 per word; the paper reads LRS3 at 3.5): 1,700 avsr steps at 7.5/s, 1,200 at 3.4/s (800 until
# 2026-12-06: see "avsr-low" below), the noise pass at 3.4/s. With 800 low-rate steps: test clean AV 2.9% at 3.38
# tokens/s against 2.1% at 7.67 for 2,500 + 400 steps at 7.5/s (validation 5.3 / 11.0 against 4.8 / 11.0, clean /
# -5 dB); fine-tuning the finished 7.5/s model at 3.4/s for 400 or 1,600 more steps gave 4.0 and 3.5
# (docs/training.md). `min_queries` comes down with the rate, or the 7.5/s floor of 7 queries per clip would stay.
LOW_QUERIES_PER_SECOND = 3.4
LOW_MIN_QUERIES = 3
# Batches are collated in the training process: a dataloader worker only competes with the step for the 2 cores
# (avsr steps 1.24x slower with one, benchmarks/RESULTS_training.md). Random batches, not length-grouped ones: grouped
# steps are 1.2x faster but learned less per step here (avsr valid WER 31.6% against 24.0% after 500 steps; encoders
# 63.5-66.4% against 57.2% phone error after 2,000), more than the time they save.
COMMON = ["--preset", "demo", "--seed", str(SEED), "--report_to", "none", "--logging_steps", "50",
          "--save_steps", "500", "--save_total_limit", "1", "--dataloader_num_workers", "0",
          "--lr_scheduler_type", "cosine", "--disable_tqdm", "false"]  # fmt: skip
# step: (stage, output folder, extra flags, earlier steps' folders it reads); steps and learning rates measured to fit
# the 2-core budget (RECIPE.md). The avsr stage gets the most steps: more of them were what lowered the WER (session 3:
# 7.4 -> 5.0% with 1,000 more). At 6 queries/s with encoders 1,500, noise pass 500 and 5 validations the recipe took
# 41.9 min; encoders 1,300, noise pass 400 and 2 validations brought it to 35.6, and 38.4 with the augmentation (one
# run without it in the avsr stage took 41.0, every stage slower: the machine's speed varies by up to 15%). With the
# 7.5 -> 3.4 curriculum (800 low-rate steps), timed from nothing: 42.4 min, then 34.9 with the corpus made in 2
# processes, splits kept in memory between steps and the faster gray conversion of decoding (RECIPE.md).
STEPS = {
    "encoders": ("encoders", "enc", [
        "--max_steps", "1300", "--per_device_train_batch_size", "16", "--learning_rate", "1.5e-3", "--warmup_steps",
        "100", "--noise_probability", "0.5", "--eval_strategy", "no",
        "--encoder_objective", "framewise",  # each frame's phoneme: dense features for the Q-Former
        "--augment_encoders", "true",  # mel warp and masks: audio phone error on 12 unseen voices 33.6 -> 24.1%
    ], []),
    # noise on half the clips, as the other stages: trained on clean audio only, the predictor's mean abs error was
    # 0.033 / 0.087 / 0.107 at clean / 0 / -5 dB on the test speakers; with it 0.032 / 0.022 / 0.020 (same encoders)
    "rate-predictor": ("rate-predictor", "sr", [
        "--max_steps", "300", "--per_device_train_batch_size", "16", "--learning_rate", "1e-3", "--warmup_steps", "20",
        "--eval_strategy", "no", "--noise_probability", "0.5",
    ], ["--encoders", "enc"]),
    # The avsr stage starts its LLM from scratch, as demo-recipe.md did: started from the `lm` stage's text-trained
    # Llama, it kept predicting the grammar and ignored the speech (77.8% valid WER = chance after 500 steps).
    "avsr": ("avsr", "avsr", [
        "--max_steps", "1700", "--per_device_train_batch_size", "16", "--learning_rate", "1e-3", "--warmup_steps", "100",
        "--eval_strategy", "no", "--noise_probability", "0.5",
        "--lora_r", "0",  # the demo's small LLM trains fully, as in demo-recipe.md
        "--augment_encoders", "true",  # inputs as imperfect as unseen voices': valid WER 4.9 -> 4.2% (one run each)
        "--config_overrides", json.dumps({"queries_per_second": AVSR_QUERIES_PER_SECOND}),
    ], ["--encoders", "enc", "--rate-predictor", "sr"]),
    # 1,200 steps, not 800: on the same 7.5/s stage (validation, all 249, beam 5) AV clean / 0 / -5 dB 5.6 / 9.9 / 13.7
    # against 5.8 / 10.3 / 14.0, lips only 20.8 against 21.7, audio equal; 2.8 min more
    "avsr-low": ("avsr", "avsr-low", [
        "--max_steps", "1200", "--per_device_train_batch_size", "16", "--learning_rate", "5e-4", "--warmup_steps", "30",
        "--eval_strategy", "no", "--noise_probability", "0.5", "--lora_r", "0", "--augment_encoders", "true",
        "--config_overrides", json.dumps({"queries_per_second": LOW_QUERIES_PER_SECOND, "min_queries": LOW_MIN_QUERIES}),
    ], ["--init", "avsr"]),
    # then more, and lower, noise: after the first pass AV fell 3.8 points behind video-only at -5 dB (at 4.5
    # queries/s); 400-500 steps with noise on 75% of clips, half of them at -5 or 0 dB, put it ahead (RECIPE.md)
    "avsr-noise": ("avsr", "avsr-noise", [
        "--max_steps", "400", "--per_device_train_batch_size", "16", "--learning_rate", "3e-4", "--warmup_steps", "20",
        "--eval_strategy", "no", "--lora_r", "0", "--noise_probability", "0.75",
        "--noise_snrs", "-5", "-5", "0", "0", "5", "10",
    ], ["--init", "avsr-low"]),
}  # fmt: skip
FINAL_STEP = "avsr-noise"
# weights, config and evaluation; `export_model` then makes the folder a Hub folder in place (remote code copied from
# this package, processor files, custom pipeline, model card from eval.json)
# below this mean token log-probability a chunk is taken as no speech (docs/no_speech.md, the 3.4 queries/s model on 30
# test clips: every speech clip above it in every modality; noise-only clips below it: 93% AV, 99% audio, 16% lips-only)
NO_SPEECH_LOGPROB = -0.45
KEEP = ("config.json", "generation_config.json", "model.safetensors", "eval.json", "eval.md", "eval.png")


def recipe(runs: Path, data: Path = CORPUS) -> tuple[dict[str, list[str]], list[str]]:
    """The `mmsllama-train` argument lists of every step, and the `mmsllama-eval` arguments of the final model."""
    steps = {}
    for step, (stage, folder, flags, inputs) in STEPS.items():
        inputs = [str(runs / value) if index % 2 else value for index, value in enumerate(inputs)]
        steps[step] = ["--stage", stage, "--data", str(data), "--out", str(runs / folder), *COMMON, *flags, *inputs]
    evaluation = ["--model", str(runs / STEPS[FINAL_STEP][1]), "--data", str(data), "--split", "test", "--snr", "clean",
                  "10", "5", "0", "-5", "--modality", "av", "a", "v", "--limit", str(EVAL_UTTERANCES)]  # fmt: skip
    return steps, evaluation


def recipe_commands(runs: Path, data: Path = CORPUS) -> list[str]:
    """The recipe as shell commands, corpus first, as RECIPE.md shows them."""
    steps, evaluation = recipe(runs, data)
    corpus = f"mmsllama-synth --out {data} --utterances {CORPUS_UTTERANCES} --seed {SEED} --face none"
    return [corpus] + ["mmsllama-train " + shlex.join(argv) for argv in steps.values()] + [
        "mmsllama-eval " + shlex.join(evaluation)
    ]


def train_demo(runs: Path, data: Path = CORPUS, out: Path = DEMO_MODEL) -> dict:
    """Corpus, the training steps, evaluation; copies the result into `out`. Returns the evaluation report."""
    timings = {}
    start = time.time()
    generate_corpus(data, CorpusConfig(utterances=CORPUS_UTTERANCES, seed=SEED, face_splits=()), workers=CORPUS_WORKERS)
    timings["corpus"] = time.time() - start
    steps, evaluation = recipe(runs, data)
    for step, argv in steps.items():
        step_start = time.time()
        train(argv)
        timings[step] = time.time() - step_start
    evaluation_start = time.time()
    report = eval_command(evaluation)
    timings["evaluation"] = time.time() - evaluation_start
    timings["total"] = time.time() - start
    _publish(runs / STEPS[FINAL_STEP][1], out, recipe_commands(runs, data), timings)
    return report


def _publish(model_folder: Path, out: Path, commands: list[str], timings: dict) -> None:
    """Copies the trained model's weights, configs and evaluation into `out` as a Hub folder (replacing it at the end)."""
    staging = out.with_name(out.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for name in KEEP:
        if (model_folder / name).exists():
            shutil.copy2(model_folder / name, staging / name)
    minutes = {k: round(v / 60, 1) for k, v in timings.items()}
    recipe = ["# How this demo model was made", "", f"Seed {SEED}; minutes per step on this machine: {minutes}.", "",
              "```bash", *commands, "```", "", "Evaluation (`eval.md`):", "", (model_folder / "eval.md").read_text()]  # fmt: skip
    (staging / "RECIPE.md").write_text("\n".join(recipe))
    (staging / "timings.json").write_text(json.dumps(minutes, indent=2) + "\n")
    config = json.loads((staging / "config.json").read_text())
    config["no_speech_logprob"] = NO_SPEECH_LOGPROB
    (staging / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    export_model(staging, staging, trained_on=SYNTHETIC_GRID, repo_id=out.name)
    shutil.rmtree(out, ignore_errors=True)
    staging.rename(out)


def run_demo(model: Path = DEMO_MODEL, data: Path = DEMO_EVAL_CORPUS, num_beams: int = 5) -> dict:
    """Transcribes held-out clips (voices and faces the model never saw) and prints the WER table."""
    if not (model / "model.safetensors").exists():
        raise SystemExit(f"{model}/ has no trained model; run `make train-demo` first.")
    print(f"Generating held-out clips in {data} (the corpus's test speakers, unseen in training) ...")
    generate_corpus(data, CorpusConfig(utterances=DEMO_EVAL_UTTERANCES, seed=SEED, face_splits=()), workers=CORPUS_WORKERS)
    loaded = MMSLlamaForConditionalGeneration.from_pretrained(model, dtype=torch.float32).eval()
    processor = MMSLlamaProcessor.for_model(model, loaded.config)
    utterances = load_split(data, "test", EVAL_UTTERANCES, max_frames=loaded.config.max_video_frames)
    noise = evaluation_noise(load_split(data, "valid", EVAL_NOISE_UTTERANCES))
    report = evaluate(loaded, processor, utterances, noise, [None, 0.0, -5.0], ["av", "a", "v"], num_beams=num_beams)
    print("\nExamples (AV, clean):")
    for example in report["results"][0]["examples"]:
        print(f"  reference: {example['reference']}\n  predicted: {example['hypothesis']}\n")
    print(f"WER (%) on {report['num_utterances']} held-out utterances, beam {num_beams}:\n")
    print(format_table(report))
    write_report(report, Path("runs/demo"))
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description="The MMS-LLaMA demo model.")
    parser.add_argument("command", choices=["run", "train"], help="run: transcribe held-out clips; train: make it")
    parser.add_argument("--runs", default="runs/demo-train", help="train: where the stages write")
    args = parser.parse_args()
    if args.command == "train":
        report = train_demo(Path(args.runs))
        print(format_table(report))
    else:
        run_demo()
    sys.exit(0)


if __name__ == "__main__":
    main()

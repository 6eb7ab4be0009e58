"""End-to-end CPU speed of MMS-LLaMA against its baseline twin, and how near each part runs to this CPU's limits.

    python -m benchmarks.end_to_end --lrs3-manifest PATH/test.tsv          # the whole table (about 20 min, 2 cores)
    python -m benchmarks.end_to_end --presets demo --batches 1 8 --windows utterance --repeats 3

Writes `benchmarks/end_to_end.json`; `python -m benchmarks.run` puts it in RESULTS.md (section 5).

Protocol:
- Limits of this machine, measured first in the same process: memory bandwidth (the best of a 1 GiB sum and of a
  matrix-vector product over a 256 MiB bf16 matrix, the LLM decode's own operation) and matmul throughput in float32
  and bfloat16 (square products of 2,048 and 4,096, best of several).
- Models: `benchmarks.cpu.build_pair` (MMS-LLaMA with the rate predictor, f_Q 3, and the `compression="baseline"` twin
  sharing its Whisper, AV-HuBERT and Llama; random weights). The demo preset in float32, paper-1b and paper-3b in
  bfloat16. Both Whisper windows: `audio_window="utterance"` (each clip's own audio rounded up to 1 s) and
  `"full"` (the reference's 30 s; the demo's 10 s).
- Clips: batch 1 is the mean LRS3 test clip (57 frames, rate 1.255); batch 8 and 32 spread over the LRS3 test manifest
  (sorted by length, evenly spaced), padded to the longest. Random mel features and video.
- `generate(do_sample=False, num_beams=1, min_new_tokens=11, max_new_tokens=11)`: the same decoded length for both.
  One warm-up each, then the models alternate; median of `--repeats`. Throughput = clips / latency.
- FLOPs of the same work: `benchmarks.flops.FlopModel` per clip (its own length, rate and window; no padding), summed
  over the batch; the FLOPs ratio is baseline / MMS-LLaMA, the throughput ratio likewise.
- Parts at batch 1 (MMS-LLaMA, utterance window): Whisper, AV-HuBERT, LLM prefill and one decode step, each timed
  alone (median). Its limit is the roofline time max(FLOPs / matmul throughput, weight bytes / bandwidth); the
  fraction is that limit over the measured time (1.0 = at the limit). The decode step reads every LLM weight once
  (the embedding table only when it is also the output layer), so its ratio to bytes / bandwidth is also given.
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

from . import cpu, flops
from .common import (BENCH_DIR, environment, find_lrs3_manifest, lrs3_missing_message, median, read_tsv_manifest,
                     release_memory, timed)  # fmt: skip


PRESETS = {"demo": torch.float32, "paper-1b": torch.bfloat16, "paper-3b": torch.bfloat16}
DTYPES = {**PRESETS, "tiny": torch.float32}  # the tiny preset for tests
WINDOWS = ("utterance", "full")
BATCHES = (1, 8, 32)
RESULTS_JSON = BENCH_DIR / "end_to_end.json"
GIB = 2**30
BANDWIDTH_BYTES = GIB  # the summed tensor; the matrix-vector product reads a (8192, 16384) bf16 matrix (256 MiB)
GEMV_SHAPE = (8192, 16384)
MATMUL_SIZES = {torch.float32: 2048, torch.bfloat16: 4096}  # square products, large enough to run at full speed


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- the machine's limits ---------------------------------------------------------------------------------------------


def best_seconds(fn, repeats: int) -> float:
    fn()
    return min(timed(fn)[1] for _ in range(repeats))


@torch.no_grad()
def hardware_limits(repeats: int = 5) -> dict:
    """Memory bandwidth (bytes/s) and matmul throughput (FLOP/s, float32 and bfloat16) of this process's threads."""
    big = torch.ones(BANDWIDTH_BYTES // 4, dtype=torch.float32)
    sum_bandwidth = big.numel() * 4 / best_seconds(lambda: big.sum(), repeats)
    del big
    weight = torch.randn(*GEMV_SHAPE, dtype=torch.bfloat16)
    vector = torch.randn(1, GEMV_SHAPE[1], dtype=torch.bfloat16)
    gemv_bandwidth = weight.numel() * 2 / best_seconds(lambda: torch.nn.functional.linear(vector, weight), repeats)
    del weight
    matmul = {}
    for dtype, size in MATMUL_SIZES.items():
        a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
        matmul[str(dtype).replace("torch.", "")] = 2 * size**3 / best_seconds(lambda: a @ b, repeats)
    release_memory()
    return {"bandwidth_sum": sum_bandwidth, "bandwidth_gemv_bf16": gemv_bandwidth,
            "bandwidth": max(sum_bandwidth, gemv_bandwidth), "matmul_flops": matmul}  # fmt: skip


# -- FLOPs of a batch ------------------------------------------------------------------------------------------------


def batch_flops(model: flops.FlopModel, clips, window: str, bucket_s: float, full_mel: int) -> int:
    """FLOPs of transcribing `clips` one by one (no padding): GENERATED_TOKENS each, the given Whisper window."""
    total = 0
    for clip in clips:
        mel = flops.bucket_mel_frames(clip.num_video_frames, bucket_s, full_mel) if window == "utterance" else None
        total += model.utterance(clip.num_video_frames, clip.speech_rate, cpu.GENERATED_TOKENS, mel_frames=mel)["total"]
    return total


# -- timings ----------------------------------------------------------------------------------------------------------


@torch.no_grad()
def generate_seconds(model, inputs: dict) -> float:
    k = cpu.GENERATED_TOKENS
    return timed(model.generate, **inputs, do_sample=False, num_beams=1, min_new_tokens=k, max_new_tokens=k)[1]


def compare_batch(models: dict, clips, dtype, repeats: int) -> dict:
    """Median generate latency of both models on the same clips, alternating which goes first."""
    inputs = {name: cpu.make_inputs(model, clips, dtype) for name, model in models.items()}
    runs = cpu.interleaved(models, lambda name: generate_seconds(models[name], inputs[name]), repeats)
    return {name: median(times) for name, times in runs.items()}


@torch.no_grad()
def part_seconds(model, clip, dtype, repeats: int) -> dict:
    """Median seconds of Whisper, AV-HuBERT, the LLM prefill and one decode step for one clip (batch 1)."""
    inputs = cpu.make_inputs(model, [clip], dtype)
    num_frames = torch.tensor([clip.num_video_frames])
    speech = model.get_speech_embeddings(**cpu.speech_inputs(inputs))
    embeds, mask, positions, _ = model.merge_speech_embeddings(inputs["input_ids"], inputs["attention_mask"], None,
                                                               speech)  # fmt: skip
    lm = model.language_model

    def prefill():
        return lm(inputs_embeds=embeds, attention_mask=mask, position_ids=positions, use_cache=True, logits_to_keep=1)

    out = prefill()
    token = out.logits[:, -1].argmax(-1, keepdim=True)
    step_mask = torch.cat([mask, mask.new_ones(1, 1)], dim=1)

    def decode_step():  # one token over the prefill's cache, which is cut back after each step
        lm(input_ids=token, attention_mask=step_mask, position_ids=positions[:, -1:] + 1, cache=out.cache,
           use_cache=True, logits_to_keep=1)  # fmt: skip
        out.cache.crop(-1)

    parts = {"audio_encoder": lambda: model.encode_audio(inputs["input_features"], num_frames),
             "vision_encoder": lambda: model.encode_video(inputs["pixel_values_videos"], inputs["video_mask"]),
             "llm_prefill": prefill, "llm_decode_step": decode_step}  # fmt: skip
    seconds = {}
    for name, fn in parts.items():
        fn()
        seconds[name] = median([timed(fn)[1] for _ in range(repeats)])
    seconds["prefill_length"] = int(embeds.shape[1])
    return seconds


def llm_bytes_per_step(model) -> int:
    """Weight bytes one decode step reads: every LLM weight, the input embedding table only when tied to the output."""
    lm = model.language_model
    embedding = lm.get_input_embeddings().weight
    tied = lm.get_output_embeddings() is not None and lm.get_output_embeddings().weight is embedding
    return cpu.parameter_bytes(lm) - (0 if tied else embedding.numel() * embedding.element_size())


def fractions(model, flop_model: flops.FlopModel, clip, seconds: dict, limits: dict, dtype) -> dict:
    """Each part's roofline limit (s) and limit / measured; the decode step's measured / (bytes / bandwidth)."""
    peak = limits["matmul_flops"][str(dtype).replace("torch.", "")]
    bandwidth = limits["bandwidth"]
    mel = flops.bucket_mel_frames(clip.num_video_frames, model.config.audio_window_bucket, model.config.num_mel_frames)
    length, llm_bytes = seconds["prefill_length"], llm_bytes_per_step(model)
    work = {  # part: (FLOPs, weight bytes read)
        "audio_encoder": (flop_model.audio_encoder(mel), cpu.parameter_bytes(model.audio_encoder)),
        "vision_encoder": (flop_model.vision_encoder(clip.num_video_frames), cpu.parameter_bytes(model.vision_encoder)),
        "llm_prefill": (flop_model.llm_prefill(length), llm_bytes),
        "llm_decode_step": (flop_model.llm_decode_step(length), llm_bytes),
    }
    out = {}
    for part, (part_flops, part_bytes) in work.items():
        limit = max(part_flops / peak, part_bytes / bandwidth)
        out[part] = {"seconds": seconds[part], "flops": part_flops, "bytes": part_bytes,
                     "achieved_flops_per_s": part_flops / seconds[part],
                     "flops_fraction": part_flops / peak / seconds[part],
                     "limit_s": limit, "fraction_of_limit": limit / seconds[part],
                     "bound": "compute" if part_flops / peak >= part_bytes / bandwidth else "memory"}  # fmt: skip
    step = out["llm_decode_step"]
    step["seconds_over_bandwidth_time"] = step["seconds"] / (step["bytes"] / bandwidth)
    return out


# -- one preset -------------------------------------------------------------------------------------------------------


def run_preset(preset: str, batches: dict, windows, repeats: dict, limits: dict) -> dict:
    """Both models of `preset` on every (window, batch) of `repeats` (its value: how many), then the batch-1 parts."""
    dtype = DTYPES[preset]
    start = time.perf_counter()
    mms, baseline = cpu.build_pair(preset, dtype)
    models = {"mms_llama": mms, "baseline": baseline}
    log(f"  built {preset} ({dtype}) in {time.perf_counter() - start:.0f} s")
    flop_models = {"mms_llama": flops.FlopModel(preset), "baseline": flops.FlopModel(preset, compression="baseline")}
    result = {"preset": preset, "dtype": str(dtype).replace("torch.", ""), "rows": []}
    for window in windows:
        for model in models.values():
            model.config.audio_window = window
        for batch, clips in batches.items():
            if (window, batch) not in repeats:
                continue
            latency = compare_batch(models, clips, dtype, repeats[(window, batch)])
            work = {name: batch_flops(flop_models[name], clips, window, mms.config.audio_window_bucket,
                                      mms.config.num_mel_frames) for name in models}  # fmt: skip
            row = {"window": window, "batch": batch, "repeats": repeats[(window, batch)],
                   "latency_s": latency, "clips_per_s": {n: batch / s for n, s in latency.items()},
                   "flops": work, "throughput_ratio": latency["baseline"] / latency["mms_llama"],
                   "flops_ratio": work["baseline"] / work["mms_llama"]}  # fmt: skip
            row["ratio_of_flops_ratio"] = row["throughput_ratio"] / row["flops_ratio"]
            result["rows"].append(row)
            log(f"  {preset} {window} batch {batch}: {row['clips_per_s']['mms_llama']:.2f} vs "
                f"{row['clips_per_s']['baseline']:.2f} clips/s, ratio {row['throughput_ratio']:.2f} "
                f"(FLOPs {row['flops_ratio']:.2f})")  # fmt: skip
    mms.config.audio_window = "utterance"
    seconds = part_seconds(mms, cpu.MEAN_CLIP, dtype, max(3, repeats.get(("utterance", 1), 3)))
    result["parts_batch1"] = fractions(mms, flop_models["mms_llama"], cpu.MEAN_CLIP, seconds, limits, dtype)
    del mms, baseline, models
    release_memory()
    return result


def default_repeats(preset: str, windows, batches) -> dict:
    """Repeats per (window, batch): fewer where one generate call takes long; the 30 s window stops at batch 8 for the
    paper presets (32 clips of 30 s through Whisper-medium take minutes on 2 cores, and say nothing new)."""
    plan = {}
    for window in windows:
        for batch in batches:
            if preset != "demo" and window == "full" and batch > 8:
                continue
            plan[(window, batch)] = 7 if preset == "demo" else (3 if batch == 1 else 2)
    return plan


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lrs3-manifest", metavar="PATH", help="the LRS3 test.tsv (clips of batches 8 and 32)")
    parser.add_argument("--presets", nargs="+", choices=list(DTYPES), default=list(PRESETS))
    parser.add_argument("--windows", nargs="+", choices=WINDOWS, default=list(WINDOWS))
    parser.add_argument("--batches", nargs="+", type=int, default=list(BATCHES))
    parser.add_argument("--repeats", type=int, help="repeats of every row (default: 7 demo, 2-3 paper presets)")
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--out", default=str(RESULTS_JSON))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    manifest = find_lrs3_manifest(args.lrs3_manifest)
    batches = {1: [cpu.MEAN_CLIP]}
    if manifest:
        lrs3 = read_tsv_manifest(manifest)
        batches.update({b: cpu.spread_clips(lrs3, b) for b in args.batches if b > 1})
    else:
        log(lrs3_missing_message(args.lrs3_manifest, "batches above 1"))
    batches = {b: clips for b, clips in batches.items() if b in args.batches}
    command = "python -m benchmarks.end_to_end " + " ".join(sys.argv[1:] if argv is None else argv)
    if args.lrs3_manifest:  # where the manifest lies on the measuring machine says nothing to a reader
        command = command.replace(args.lrs3_manifest, "PATH/test.tsv")
    results = {"environment": environment(), "command": command, "load_before": os.getloadavg()}
    log("limits of this machine")
    results["limits"] = hardware_limits()
    log(f"  {json.dumps(results['limits'])}")
    results["presets"] = []
    for preset in args.presets:
        plan = default_repeats(preset, args.windows, batches)
        if args.repeats:
            plan = {key: args.repeats for key in plan}
        results["presets"].append(run_preset(preset, batches, args.windows, plan, results["limits"]))
    results["load_after"] = os.getloadavg()
    Path(args.out).write_text(json.dumps(results, indent=1, default=str) + "\n")
    log(f"wrote {args.out}")
    return results


if __name__ == "__main__":
    main()


# -- the RESULTS.md section -------------------------------------------------------------------------------------------


def _gib_s(value: float) -> str:
    return f"{value / 1e9:.1f} GB/s"


def markdown_section(results: dict, title: str) -> list[str]:
    """RESULTS.md lines for a `main` result (what `benchmarks.run` writes when end_to_end.json exists)."""
    from .common import markdown_table

    limits, env = results["limits"], results["environment"]
    matmul = limits["matmul_flops"]
    lines = [title, "", f"`{results['command']}`; {env['date']}; {env['machine']}; load average before "
             f"{results['load_before'][0]:.2f}, after {results['load_after'][0]:.2f}.", "",
             "Protocol: see the docstring of `benchmarks/end_to_end.py` (random weights, greedy, 11 generated tokens; "
             "batches of 8 and 32 spread over the LRS3 test manifest; medians of interleaved runs).", "",
             f"Limits measured in the same run: memory bandwidth {_gib_s(limits['bandwidth'])} (sum over 1 GiB "
             f"{_gib_s(limits['bandwidth_sum'])}, bf16 matrix-vector {_gib_s(limits['bandwidth_gemv_bf16'])}); matmul "
             f"{matmul['float32'] / 1e9:.0f} GFLOP/s float32, {matmul['bfloat16'] / 1e9:.0f} GFLOP/s bfloat16.", "",
             "Clips per second, MMS-LLaMA against the baseline (> 1: MMS-LLaMA ahead), beside the FLOPs ratio of the "
             "same clips (the speed-up if time followed FLOPs):", ""]  # fmt: skip
    rows = []
    for preset in results["presets"]:
        for row in preset["rows"]:
            rows.append([f"{preset['preset']} ({preset['dtype']})", row["window"], row["batch"],
                         f"{row['clips_per_s']['mms_llama']:.3g}", f"{row['clips_per_s']['baseline']:.3g}",
                         f"{row['throughput_ratio']:.2f}", f"{row['flops_ratio']:.2f}",
                         f"{row['ratio_of_flops_ratio']:.2f}", row["repeats"]])  # fmt: skip
    header = ["preset", "Whisper window", "batch", "MMS-LLaMA clips/s", "baseline clips/s", "throughput ratio",
              "FLOPs ratio", "throughput / FLOPs ratio", "repeats"]
    lines += [markdown_table(header, rows), ""]
    lines += ["MMS-LLaMA's parts at batch 1 (utterance window, the mean clip) against this machine's limits. Limit = "
              "max(FLOPs / matmul throughput, weight bytes / bandwidth); fraction = limit / measured (1 = at the "
              "limit):", ""]  # fmt: skip
    rows = []
    for preset in results["presets"]:
        for part, p in preset["parts_batch1"].items():
            rows.append([preset["preset"], part, f"{p['seconds'] * 1e3:.2f}", f"{p['flops'] / 1e9:.2f}",
                         f"{p['bytes'] / 2**20:.0f}", f"{p['achieved_flops_per_s'] / 1e9:.0f}", p["bound"],
                         f"{p['limit_s'] * 1e3:.2f}", f"{p['fraction_of_limit']:.2f}"])  # fmt: skip
    lines += [markdown_table(["preset", "part", "ms", "GFLOPs", "weights MiB", "GFLOP/s", "bound by", "limit ms",
                              "fraction of limit"], rows), ""]  # fmt: skip
    steps = [f"{p['preset']} {p['parts_batch1']['llm_decode_step']['seconds_over_bandwidth_time']:.2f}x"
             for p in results["presets"]]
    lines += ["LLM decode step, measured / (weight bytes / bandwidth) (the issue's target: <= 1.3x): "
              + ", ".join(steps) + ".", ""]
    return lines

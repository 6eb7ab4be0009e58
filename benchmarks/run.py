"""Runs the benchmarks and writes `benchmarks/RESULTS.md` with PNG plots.

    python -m benchmarks.run [--quick] [--lrs3-manifest PATH/test.tsv] [--synthetic-manifest PATH/test.tsv] [--skip-cpu]

`--quick` (what `make bench` runs; under ~10 minutes on 2 idle cores) averages FLOPs over the whole LRS3 test
manifest for paper-3b only (the mean clip for 1B and 8B), uses fewer timing repeats, and times paper-1b at batch 1
only.

The LRS3 test manifest is not part of the repository: `--lrs3-manifest` (else `$MMSLLAMA_LRS3_TEST_TSV`, else
`data/lrs3/test.tsv`) names it; `python -m benchmarks.run --help` says what it is and where to get it. Without it
the LRS3 token rates and the f_Q sweep are skipped, the FLOPs "manifest mean" becomes the mean clip's (57 frames,
rate 1.255, 7 words: the LRS3 test set's means, stored in `benchmarks/cpu.py`), and the CPU part times batch 1 only
(batch 8 spreads over the manifest); each skip is printed and stated in RESULTS.md.
"""

import argparse
import glob
import json
import os
import sys
import time
from pathlib import Path

import torch

from . import cpu, end_to_end, flops, token_rate
from .common import (BENCH_DIR, LRS3_MANIFEST_ENV, LRS3_MANIFEST_HELP, NOTES_MARKER, REPO_ROOT, environment,
                     find_lrs3_manifest, kept_notes, lrs3_missing_message, markdown_table, read_tsv_manifest)


TFLOP = 1e12
BUCKETS_S = (1.0, 2.0)
PAPER = {"tokens": {"baseline": 25, "fusion_only": 12.5, "qformer_no_rate": 2.8, "qformer_with_rate": 3.5},
         "tflops": {"mms_llama": 1.44, "baseline": 2.24}, "llm_size_tflops": {"paper-1b": 1.19, "paper-3b": 1.50,
         "paper-8b": 2.17}}  # fmt: skip


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def find_synthetic_manifest(explicit: str | None) -> Path | None:
    if explicit:
        return Path(explicit)
    candidates = sorted(glob.glob(str(REPO_ROOT / "data" / "synthgrid" / "*" / "test.tsv")))
    return Path(candidates[0]) if candidates else None


# -- parts -----------------------------------------------------------------------------------------------------------


def part_token_rate(lrs3, synthetic_path) -> dict:
    out = {}
    if lrs3:
        out = {"lrs3": token_rate.token_rate(lrs3), "lrs3_summary": token_rate.summary(lrs3),
               "sweep": token_rate.qps_sweep(lrs3)}  # fmt: skip
    if synthetic_path is not None and synthetic_path.exists():
        try:
            synthetic = read_tsv_manifest(synthetic_path)
            out["synthetic"] = token_rate.token_rate(synthetic)
            out["synthetic_summary"] = token_rate.summary(synthetic)
            out["synthetic_path"] = str(synthetic_path.relative_to(REPO_ROOT) if synthetic_path.is_relative_to(REPO_ROOT) else synthetic_path)
        except (OSError, ValueError) as error:
            out["synthetic_error"] = str(error)
    return out


def part_flops(lrs3, quick: bool) -> dict:
    """Mean-clip FLOPs per preset, and the mean over the LRS3 manifest (without one: over the mean clip alone)."""
    clips = lrs3 or [cpu.MEAN_CLIP]
    mean_words = sum(u.num_words for u in clips) / len(clips)
    generated = flops.transcript_tokens(mean_words)
    out = {"mean_clip": {}, "manifest": {}, "generated_tokens": generated, "mean_words": mean_words,
           "manifest_label": "manifest mean" if lrs3 else "mean clip, no LRS3 manifest"}  # fmt: skip
    for preset in ("paper-1b", "paper-3b", "paper-8b"):
        models = {"mms_llama": flops.FlopModel(preset), "baseline": flops.FlopModel(preset, compression="baseline")}
        if preset == "paper-3b":
            models["fusion_only"] = flops.FlopModel(preset, compression="fusion_only")
            models["qformer_no_rate"] = flops.FlopModel(preset, use_rate_predictor=False)
        clip = cpu.MEAN_CLIP
        out["mean_clip"][preset] = {
            name: m.utterance(clip.num_video_frames, clip.speech_rate if name != "qformer_no_rate" else None, generated)
            for name, m in models.items()
        }
        mms = models["mms_llama"]
        full = mms.config.num_mel_frames
        for bucket in BUCKETS_S:
            out["mean_clip"][preset][f"mms_llama_bucket_{bucket:g}s"] = mms.utterance(
                clip.num_video_frames, clip.speech_rate, generated,
                mel_frames=flops.bucket_mel_frames(clip.num_video_frames, bucket, full),
            )  # fmt: skip
        if preset == "paper-3b" or (lrs3 and not quick):
            start = time.perf_counter()
            rows = {name: models[name].manifest_mean(clips) for name in ("mms_llama", "baseline")}
            rows["mms_llama_no_decode"] = mms.manifest_mean(clips, decode=False)
            rows["baseline_no_decode"] = models["baseline"].manifest_mean(clips, decode=False)
            for bucket in BUCKETS_S:
                rows[f"mms_llama_bucket_{bucket:g}s"] = mms.manifest_mean(
                    clips, mel_frames_fn=lambda t, b=bucket: flops.bucket_mel_frames(t, b, full)
                )
                rows[f"baseline_bucket_{bucket:g}s"] = models["baseline"].manifest_mean(
                    clips, mel_frames_fn=lambda t, b=bucket: flops.bucket_mel_frames(t, b, full)
                )
            out["manifest"][preset] = rows
            log(f"  FLOPs ({out['manifest_label']}) for {preset}: {time.perf_counter() - start:.0f} s")
    return out


def part_cpu(lrs3, quick: bool) -> dict:
    torch.set_num_threads(2)
    batches = {1: [cpu.MEAN_CLIP], 8: cpu.spread_clips(lrs3, 8)} if lrs3 else {1: [cpu.MEAN_CLIP]}
    out = {"load_before": os.getloadavg()}
    out["demo"] = cpu.compare("demo", batches, {1: 7, 8: 5} if quick else {1: 15, 8: 9}, torch.float32, log=log)
    # paper-1b size: batch 8 only in the full run (it alone takes minutes on 2 cores)
    big_batches = {1: batches[1]} if quick else batches
    out["paper-1b"] = cpu.compare("paper-1b", big_batches, {1: 3} if quick else {1: 7, 8: 5}, torch.bfloat16, log=log)
    # part 3 timing: the Whisper encoder alone on the full window and on the 3 s bucket of a mean clip
    from modeling_mmsllama import MMSLlamaConfig

    out["whisper_window"] = {}
    for preset, dtype, repeats in (("demo", torch.float32, 5), ("paper-1b", torch.bfloat16, 3 if quick else 5)):
        config = MMSLlamaConfig.from_preset(preset)
        windows = [config.num_mel_frames, flops.bucket_mel_frames(cpu.MEAN_CLIP.num_video_frames, 1.0, config.num_mel_frames)]
        out["whisper_window"][preset] = {
            "dtype": str(dtype).replace("torch.", ""),
            "times": cpu.whisper_window_timing(config.audio_config, windows, repeats, dtype),
        }
    out["load_after"] = os.getloadavg()
    return out


def flop_ratios(flop_result: dict) -> dict:
    ratios = {}
    for preset, rows in flop_result["mean_clip"].items():
        ratios[preset] = rows["baseline"]["total"] / rows["mms_llama"]["total"]
    return ratios


# -- plots ------------------------------------------------------------------------------------------------------------


def make_plots(results: dict, out_dir: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    # FLOPs by component
    rows = results["flops"]["mean_clip"]
    groups = [("1B", "paper-1b"), ("3B", "paper-3b"), ("8B", "paper-8b")]
    variants = [("baseline", "baseline"), ("mms_llama", "MMS-LLaMA"), ("mms_llama_bucket_1s", "MMS-LLaMA, 1 s bucket")]
    parts = [("audio_encoder", "Whisper encoder"), ("vision_encoder", "AV-HuBERT"),
             ("compression", "adapter + rate pred. + Q-Former + projector"), ("llm_prefill", "LLM prefill"),
             ("llm_decode", "LLM decode")]  # fmt: skip
    fig, ax = plt.subplots(figsize=(9, 4.5))
    labels, x = [], 0
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for short, preset in groups:
        for key, name in variants:
            row = rows[preset][key]
            bottom = 0.0
            for index, (part, part_name) in enumerate(parts):
                if part == "compression":
                    value = sum(row[k] for k in ("rate_predictor", "adapters", "fusion", "qformer", "projector"))
                else:
                    value = row[part]
                ax.bar(x, value / TFLOP, bottom=bottom, color=colors[index], label=part_name if x == 0 else None)
                bottom += value / TFLOP
            ax.text(x, bottom + 0.02, f"{bottom:.2f}", ha="center", fontsize=7)
            labels.append(f"{short}\n{name}")
            x += 1
        x += 0.5
    positions = [i + 0.5 * (i // len(variants)) for i in range(len(labels))]
    ax.set_xticks(positions, labels, fontsize=7)
    ax.set_ylabel("TFLOPs per utterance")
    ax.set_title("FLOPs by component, mean LRS3 test clip (2.28 s, 11 generated tokens)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    path = out_dir / "flops_by_component.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    written.append(path.name)

    # tokens per second vs queries per second (on the LRS3 test manifest only)
    if "sweep" not in results["token_rate"]:
        return written + _cpu_plot(results, out_dir, colors)
    sweep = results["token_rate"]["sweep"]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([s[0] for s in sweep], [s[1] for s in sweep], "o-", label="Q-Former, no rate predictor")
    ax.plot([s[0] for s in sweep], [s[2] for s in sweep], "s-", label="Q-Former + rate (GT labels)")
    lrs3 = results["token_rate"]["lrs3"]
    ax.axhline(lrs3["fusion_only"], color="gray", ls="--", label=f"fusion only ({lrs3['fusion_only']:.1f})")
    ax.axhline(lrs3["baseline"], color="black", ls=":", label=f"baseline ({lrs3['baseline']:.1f})")
    ax.set_xlabel("queries per second f_Q")
    ax.set_ylabel("speech tokens per second into the LLM")
    ax.set_yscale("log")
    ax.set_title("Token rate on the LRS3 test manifest")
    ax.legend(fontsize=7)
    fig.tight_layout()
    path = out_dir / "token_rate.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    written.append(path.name)
    return written + _cpu_plot(results, out_dir, colors)


def _cpu_plot(results: dict, out_dir: Path, colors: list) -> list[str]:
    import matplotlib.pyplot as plt

    written = []
    if "cpu" in results:
        fig, axes = plt.subplots(1, 2, figsize=(9, 4))
        for ax, preset in zip(axes, ("demo", "paper-1b")):
            data = results["cpu"][preset]["batches"]
            labels, x = [], 0
            for batch in sorted(data):
                for key, name in (("baseline", "baseline"), ("mms_llama", "MMS-LLaMA")):
                    row = data[batch][key]
                    bottom = 0.0
                    for index, part in enumerate(("encode_s", "prefill_s", "decode_s")):
                        ax.bar(x, row[part], bottom=bottom, color=colors[index],
                               label=part[:-2] if x == 0 else None)  # fmt: skip
                        bottom += row[part]
                    labels.append(f"b{batch}\n{name}")
                    x += 1
            ax.set_xticks(range(len(labels)), labels, fontsize=7)
            ax.set_ylabel("seconds per batch (median)")
            ax.set_title(f"{preset} ({results['cpu'][preset]['dtype']}), 2 CPU threads")
            ax.legend(fontsize=7)
        fig.tight_layout()
        path = out_dir / "cpu_latency_split.png"
        fig.savefig(path, dpi=120)
        plt.close(fig)
        written.append(path.name)
    return written


# -- RESULTS.md -------------------------------------------------------------------------------------------------------


def tf(value) -> str:
    return f"{value / TFLOP:.3f}"


def write_results(results: dict, path: Path, plots: list[str]) -> None:
    env, quick = results["environment"], results["quick"]
    lines = [
        "# Benchmarks: MMS-LLaMA vs the Llama-AVSR-style baseline",
        "",
        "Generated by `python -m benchmarks.run" + (" --quick" if quick else "") + "` (`make bench`); edit by hand only below the notes line at the end.",
        "",
        f"- Date: {env['date']}",
        f"- Machine: {env['machine']}",
        f"- Platform: {env['platform']}",
        f"- Versions: Python {env['python']}, torch {env['torch']}, transformers {env['transformers']}",
        f"- Mode: {'quick' if quick else 'full'}; total runtime {results['runtime_s']:.0f} s",
        "",
        "All models have random weights: these are cost measurements, not accuracy. 'Baseline' is this repository's",
        "`compression=\"baseline\"` (Llama-AVSR style: audio and video as two 12.5 Hz token streams, 25 tokens/s), built",
        "from the same preset; 'MMS-LLaMA' is `compression=\"qformer\"` with the rate predictor, f_Q = 3.",
        "",
    ]
    # headline lines
    tr = results["token_rate"].get("lrs3")  # None without the LRS3 test manifest
    fl = results["flops"]
    m3 = fl["manifest"]["paper-3b"]
    label = fl.get("manifest_label", "manifest mean")  # what m3 averages: the LRS3 manifest, or the mean clip alone
    if tr is None:
        lines += [f"**{results['lrs3_skipped']}**", ""]
    headline = {} if tr is None else {
        "tokens_per_second_baseline": (tr["baseline"], "tok/s"),
        "tokens_per_second_fusion_only": (tr["fusion_only"], "tok/s"),
        "tokens_per_second_no_rate": (tr["qformer_no_rate"], "tok/s"),
        "tokens_per_second_with_rate": (tr["qformer_with_rate"], "tok/s"),
    }
    flop_headline = {
        "tflops_mms_llama_3b_30s_window": (m3["mms_llama"]["total"] / TFLOP, "TFLOPs"),
        "tflops_baseline_3b_30s_window": (m3["baseline"]["total"] / TFLOP, "TFLOPs"),
        "tflops_mms_llama_3b_30s_window_no_decode": (m3["mms_llama_no_decode"]["total"] / TFLOP, "TFLOPs"),
        "tflops_baseline_3b_30s_window_no_decode": (m3["baseline_no_decode"]["total"] / TFLOP, "TFLOPs"),
        "tflops_mms_llama_3b_short_window": (m3["mms_llama_bucket_1s"]["total"] / TFLOP, "TFLOPs"),
        "tflops_baseline_3b_short_window": (m3["baseline_bucket_1s"]["total"] / TFLOP, "TFLOPs"),
        "flops_reduction_3b_30s_window": (100 * (1 - m3["mms_llama"]["total"] / m3["baseline"]["total"]), "%"),
        "flops_reduction_3b_short_window_vs_baseline_30s": (
            100 * (1 - m3["mms_llama_bucket_1s"]["total"] / m3["baseline"]["total"]), "%"),
    }
    suffix = "" if label == "manifest mean" else "_mean_clip"
    headline |= {name + suffix: value for name, value in flop_headline.items()}
    if "cpu" in results:
        for preset in ("demo", "paper-1b"):
            for batch, row in results["cpu"][preset]["batches"].items():
                key = preset.replace("-", "_")
                headline[f"cpu_speedup_{key}_batch{batch}"] = (row["speedup"], "x (baseline latency / MMS-LLaMA latency)")
            headline[f"flops_ratio_{preset.replace('-', '_')}_mean_clip"] = (results["flop_ratios_cpu_presets"][preset], "x (baseline / MMS-LLaMA)")
    if results.get("gpu"):
        gpu = results["gpu"]
        for key in ("mms_llama", "baseline"):
            row = gpu[key]["batches"]["1"]
            headline[f"gpu_rtf_{key}_3b_batch1"] = (row["rtf"], "")
            if row.get("peak_bytes"):
                headline[f"gpu_peak_memory_{key}_3b_batch1"] = (row["peak_bytes"] / 2**30, "GiB")
    lines += ["## Headline numbers", "", "```"]
    lines += [f"{name}: {value:.3f} {unit}".rstrip() for name, (value, unit) in headline.items()]
    lines += ["```", ""]
    lines += [f"![{p}]({p})" for p in plots] + [""]

    # part 1
    lines += ["## 1. Token rate into the LLM", ""]
    if tr is not None:
        s = results["token_rate"]["lrs3_summary"]
        lines += [
            f"Protocol: the LRS3 test manifest given by `--lrs3-manifest` (read in place; {s['utterances']} utterances,"
            f" {s['min_duration_s']:.2f}-{s['max_duration_s']:.2f} s, mean {s['mean_duration_s']:.2f} s,"
            f" mean rate label {s['mean_rate_label']:.3f}). For each utterance `model.num_speech_tokens(frames, rate)` of a paper-3b",
            "model (the count depends only on the config), with the ground-truth rate label standing in for the",
            "predictor's output; tokens/s = total tokens / total seconds of video.",
            "",
        ]
    else:
        lines += [
            "LRS3 test set: skipped, no manifest (give `--lrs3-manifest PATH/test.tsv`; see "
            "`python -m benchmarks.run --help`). For each utterance `model.num_speech_tokens(frames, rate)` of a",
            "paper-3b model, with the ground-truth rate label standing in for the predictor's output; tokens/s = total",
            "tokens / total seconds of video.",
            "",
        ]
    header = ["mode"] + (["LRS3 test (tok/s)"] if tr is not None else []) + ["paper (tok/s)"]
    has_synth = "synthetic" in results["token_rate"]
    if has_synth:
        header.insert(len(header) - 1, "synthetic corpus (tok/s)")
    body = []
    for key, (mode_label, _, _) in zip(token_rate.MODE_KEYS, token_rate.MODES):
        row = [mode_label] + ([f"{tr[key]:.2f}"] if tr is not None else [])
        if has_synth:
            row.append(f"{results['token_rate']['synthetic'][key]:.2f}")
        row.append(PAPER["tokens"][key])
        body.append(row)
    lines += [markdown_table(header, body), ""]
    if has_synth:
        ss = results["token_rate"]["synthetic_summary"]
        lines += [f"Synthetic corpus: `{results['token_rate']['synthetic_path']}` ({ss['utterances']} utterances, mean "
                  f"{ss['mean_duration_s']:.2f} s, mean rate label {ss['mean_rate_label']:.3f}).", ""]  # fmt: skip
    else:
        lines += ["Synthetic corpus: none found (give `--synthetic-manifest PATH/test.tsv`, or generate one under "
                  "`data/synthgrid/`).", ""]  # fmt: skip
    if tr is not None:
        lines += [
            "The baseline gives 24.8 rather than 25 and fusion-only 12.4 rather than 12.5 because each clip's 12.5 Hz",
            "stream has floor(T/2) steps (an odd last frame is dropped). Sweep over f_Q (LRS3 test):",
            "",
            markdown_table(["f_Q", "no rate predictor", "with rate (GT)"],
                           [[f"{q:g}", f"{a:.2f}", f"{b:.2f}"] for q, a, b in results["token_rate"]["sweep"]]),
            "",
        ]  # fmt: skip

    # part 2
    lines += [
        "## 2. FLOPs per utterance (full-size presets)",
        "",
        "Protocol: `torch.utils.flop_counter.FlopCounterMode` on models built on the meta device (no weights, nothing",
        "computed); each component is called with the shapes the model's forward gives it; matmul, convolution and",
        "attention FLOPs are counted (2 per multiply-add), element-wise work is not. Batch 1, inference. Whisper",
        "(medium.en size) runs on its full 30 s window as in the reference; AV-HuBERT Large on the clip's frames; the",
        "Q-Former over the time-stretched frames with N = max(floor(3 T/25 clamp(r,1,2)), 3) queries; LLM prefill over",
        f"the prompt ({flops.PROMPT_TOKENS} tokens, an estimate for BOS + the instruction with the Llama-3 tokenizer) plus",
        "the speech tokens, last-token logits only; LLM decode: one 1-token forward per generated token after the first,",
        f"with the KV cache. Generated tokens: ceil({flops.TOKENS_PER_WORD} x words) + EOS; the mean LRS3 test",
        f"transcript has {fl['mean_words']:.2f} words, so the mean clip generates {fl['generated_tokens']} tokens."
        if tr is not None else f"transcript taken as {fl['mean_words']:.2f} words (no LRS3 test manifest), so the mean "
        f"clip generates {fl['generated_tokens']} tokens.",
        "The Llama causal mask is passed as an explicit 4-D mask (its own mask building calls `.item()`, which the meta",
        "device refuses). AV-HuBERT and LLM counts are polynomials in the length (checked exactly at an extra length).",
        "",
        f"'Manifest mean' = the mean over all {results['token_rate'].get('lrs3_summary', {}).get('utterances', 1321):,}"
        " LRS3 test utterances (each with its own length, rate label and",
        "transcript length); 'mean clip' = one clip of 57 frames (2.28 s), rate 1.255."
        + ("" if label == "manifest mean" else " Without the LRS3 test manifest the mean clip stands in for the "
           "manifest mean ('mean clip, no LRS3 manifest' rows)."),
        "",
    ]
    comp_header = ["preset / variant"] + [c for c in flops.COMPONENTS] + ["total", "speech tokens"]
    body = []
    for preset, rows in fl["manifest"].items():
        for name, row in rows.items():
            body.append([f"{preset} {name} ({label})"] + [f"{row[c] / 1e9:.1f}" for c in flops.COMPONENTS]
                        + [f"{row['total'] / 1e9:.1f}", f"{row['speech_tokens']:.1f}"])  # fmt: skip
    for preset, rows in fl["mean_clip"].items():
        for name, row in rows.items():
            body.append([f"{preset} {name} (mean clip)"] + [f"{row[c] / 1e9:.1f}" for c in flops.COMPONENTS]
                        + [f"{row['total'] / 1e9:.1f}", str(row["speech_tokens"])])  # fmt: skip
    lines += ["GFLOPs per utterance by component:", "", markdown_table(comp_header, body), ""]
    mms3, base3 = m3["mms_llama"]["total"] / TFLOP, m3["baseline"]["total"] / TFLOP
    base8 = fl["mean_clip"]["paper-8b"]["baseline"]["total"] / TFLOP
    whisper = fl["mean_clip"]["paper-3b"]["mms_llama"]["audio_encoder"] / TFLOP
    llm_sizes = ", ".join(
        f"{p[6:].upper()} {fl['mean_clip'][p]['mms_llama']['total'] / TFLOP:.2f} (paper {PAPER['llm_size_tflops'][p]})"
        for p in ("paper-1b", "paper-3b", "paper-8b")
    )
    lines += [
        "### Against the paper (2.24 -> 1.44 TFLOPs, -35.7%)",
        "",
        f"- MMS-LLaMA-3B, {label}, 30 s Whisper window: **{mms3:.3f} TFLOPs** with decode "
        f"({m3['mms_llama_no_decode']['total'] / TFLOP:.3f} without), {100 * (mms3 / 1.44 - 1):+.1f}% from the paper's 1.44. "
        f"The Whisper encoder alone is {whisper:.3f} TFLOPs ({100 * whisper / mms3:.0f}% of the total): under the "
        "reference's 30 s window the encoder dominates and every other choice moves the total by a few percent, which "
        "is why the paper's figure is reproduced closely without fitting anything.",
        f"- Baseline-3B by the same protocol: **{base3:.3f} TFLOPs** ({m3['baseline_no_decode']['total'] / TFLOP:.3f} "
        f"without decode), not 2.24. The MMS-LLaMA vs baseline difference is LLM prefill over ~49 fewer tokens per clip "
        f"(~{(m3['baseline']['llm_prefill'] - m3['mms_llama']['llm_prefill']) / TFLOP:.2f} TFLOPs), i.e. "
        f"{100 * (1 - mms3 / base3):.1f}% here vs 35.7% in the paper. To reach 2.24 the baseline would need ~0.6 TFLOPs "
        "more, i.e. ~90 more LLM tokens on a 3B model (a ~6 s clip, at which MMS-LLaMA would no longer be 1.44), so no "
        "single clip length gives both figures under one protocol. A likely explanation is that the paper's baseline "
        f"row used Llama-AVSR's own LLM, Llama-3.1-8B: our baseline on paper-8b gives {base8:.3f} TFLOPs for the mean "
        "clip, close to 2.24. Other candidates (training-time FLOPs with the transcript in the prefill, separate audio "
        "and video encoders per stream, full-vocabulary logits at every position) add far less than 0.6 TFLOPs. "
        "The paper-spec (section 16) lists the protocol as unknown; this is our reading, not a confirmed fact.",
        f"- LLM size (mean clip, MMS-LLaMA): {llm_sizes} TFLOPs.",
        "",
    ]

    # part 3
    lines += [
        "## 3. Beyond the paper: encode only the utterance's audio (bucketed Whisper window)",
        "",
        "The reference pads every utterance to Whisper's 30 s window (13x the audio of a mean LRS3 clip) and then keeps",
        "only the first 2T encoder frames. Protocol: a standalone `WhisperEncoder` of the same size whose",
        "`max_source_positions` is the bucket (the input cut to ceil(duration / bucket) x bucket seconds, the",
        "positional embedding's first rows), FLOPs counted as above; everything else unchanged. Wall-clock of the",
        "Whisper encoder alone (batch 1, median) in section 4's setting.",
        "",
    ]
    body = []
    for name, key in (("MMS-LLaMA", "mms_llama"), ("baseline", "baseline")):
        for bucket in ("30 s window",) + tuple(f"{b:g} s buckets" for b in BUCKETS_S):
            row_key = key if bucket == "30 s window" else f"{key}_bucket_{bucket.split()[0]}s"
            row = m3[row_key]
            body.append([name, bucket, tf(row["audio_encoder"]), tf(row["total"]),
                         f"{100 * (1 - row['total'] / m3['mms_llama']['total' if key == 'mms_llama' else 'total']):.0f}%"
                         if key == "mms_llama" else f"{100 * (1 - row['total'] / m3['baseline']['total']):.0f}%"])  # fmt: skip
    lines += [f"paper-3b, {'LRS3 test manifest mean' if label == 'manifest mean' else label}:", "",
              markdown_table(["model", "Whisper window", "Whisper TFLOPs", "total TFLOPs", "saving vs 30 s"], body), ""]  # fmt: skip
    if "cpu" in results:
        body = []
        for preset, entry in results["cpu"]["whisper_window"].items():
            times = {int(k): v for k, v in entry["times"].items()}
            full, short = max(times), min(times)
            body.append([preset, entry["dtype"], f"{full / 100:g} s: {times[full]:.3f} s", f"{short / 100:g} s: {times[short]:.3f} s",
                         f"{times[full] / times[short]:.1f}x"])  # fmt: skip
        lines += ["Whisper encoder wall-clock, mean clip (2.28 s -> 3 s bucket), 2 CPU threads:", "",
                  markdown_table(["preset", "dtype", "full window", "bucket", "speedup"], body), ""]  # fmt: skip
    short = m3["mms_llama_bucket_1s"]["total"] / TFLOP
    lines += [
        f"With 1 s buckets MMS-LLaMA-3B needs **{short:.3f} TFLOPs** per mean LRS3 utterance "
        f"({1.44 / short:.1f}x below the paper's 1.44; target <= 0.48), and "
        f"{100 * (1 - short / base3):.0f}% less than the baseline with the 30 s window.",
        "",
        "The model option is `MMSLlamaConfig.audio_window`: `\"full\"` (the default, as the reference: the whole",
        "2 x max_source_positions mel window) or `\"utterance\"` (each clip's own frames rounded up to",
        "`audio_window_bucket` seconds, encoded per clip so a clip's features do not depend on its batch). Whisper was",
        "trained only on 30 s windows, so the paper presets keep `\"full\"`; the demo preset, whose encoders are trained",
        "here, uses `\"utterance\"` (as the measured demo recipe did). `RESULTS_pareto.md` compares both windows on",
        "the trained demo model.",
        "",
    ]

    # part 4
    if "cpu" in results:
        c = results["cpu"]
        lines += [
            "## 4. CPU wall-clock, 2 threads, random weights",
            "",
            "Protocol: " + " ".join(l.strip("- ").strip() for l in cpu.__doc__.split("Protocol (stated again in RESULTS.md):")[1].strip().splitlines()),
            "",
            f"Load average (1, 5, 15 min) before: {', '.join(f'{v:.2f}' for v in c['load_before'])}; after: "
            f"{', '.join(f'{v:.2f}' for v in c['load_after'])}. Other jobs shared these 2 cores when the load was above ~2, "
            "so the absolute times are noisy; the ratios come from interleaved runs in one process.",
            "",
        ] + ([] if tr is not None else ["Batch 8 skipped: its clips are spread over the LRS3 test manifest, which was "
                                        "not given (`--lrs3-manifest`).", ""])  # fmt: skip
        header = ["preset", "batch", "model", "latency s", "RTF", "utt/s", "encode s", "prefill s", "decode s",
                  "CPU s", "speech tok", "extra RSS MiB", "repeats"]  # fmt: skip
        body = []
        for preset in ("demo", "paper-1b"):
            entry = c[preset]
            for batch, data in entry["batches"].items():
                for key, name in (("mms_llama", "MMS-LLaMA"), ("baseline", "baseline")):
                    row = data[key]
                    body.append([f"{preset} ({entry['dtype']})", batch, name, f"{row['latency_s']:.3f}", f"{row['rtf']:.3f}",
                                 f"{row['throughput_utt_per_s']:.2f}", f"{row['encode_s']:.3f}", f"{row['prefill_s']:.3f}",
                                 f"{row['decode_s']:.3f}", f"{row['cpu_time_s']:.2f}", f"{row['speech_tokens']:.1f}",
                                 f"{row['peak_extra_bytes'] / 2**20:.0f}", row["repeats"]])  # fmt: skip
        lines += [markdown_table(header, body), ""]
        body = []
        for preset in ("demo", "paper-1b"):
            entry = c[preset]
            for batch, data in entry["batches"].items():
                body.append([preset, batch, f"{data['speedup']:.2f}", f"{data['cpu_time_speedup']:.2f}",
                             f"{data['prefill_speedup']:.2f}", f"{results['flop_ratios_cpu_presets'][preset]:.2f}"])  # fmt: skip
        lines += [
            "Baseline / MMS-LLaMA ratios (same process; > 1 means MMS-LLaMA is faster):",
            "",
            markdown_table(["preset", "batch", "latency ratio", "CPU-time ratio", "prefill ratio",
                            "FLOPs ratio (mean clip, with decode)"], body),  # fmt: skip
            "",
            "Weights: " + "; ".join(
                f"{p}: MMS-LLaMA {c[p]['weights_bytes']['mms_llama'] / 2**20:.0f} MiB, baseline "
                f"{c[p]['weights_bytes']['baseline'] / 2**20:.0f} MiB (of which {c[p]['shared_weights_bytes'] / 2**20:.0f} MiB "
                "encoders + LLM are shared)" for p in ("demo", "paper-1b")
            ) + ".",
            "",
            "The FLOPs ratio is the expected end-to-end speedup if time followed FLOPs; on a CPU the fixed 30 s (demo: 10 s)",
            "Whisper window dominates both models, so the end-to-end ratio is small while the prefill ratio is large.",
            "",
        ]  # fmt: skip

    # part 5
    if results.get("end_to_end"):
        lines += end_to_end.markdown_section(results["end_to_end"], "## 5. End to end: both Whisper windows, three presets, "
                                             "batch 1 / 8 / 32, and the machine's limits")
    else:
        lines += ["## 5. End to end", "", "Not in this run: `python -m benchmarks.end_to_end` writes "
                  "`benchmarks/end_to_end.json`, which this file then includes.", ""]
    # part 6
    lines += ["## 6. GPU", ""]
    if results.get("gpu"):
        gpu = results["gpu"]
        lines += [f"Device: {gpu['device']}; {gpu['preset']} in {gpu['dtype']}; torch {gpu['torch']}; {gpu['date']}; "
                  f"median of {gpu['repeats']} runs; protocol in `benchmarks/gpu.py`.", ""]  # fmt: skip
        body = []
        for key in ("mms_llama", "baseline"):
            for batch, row in gpu[key]["batches"].items():
                peak = f"{row['peak_bytes'] / 2**30:.2f}" if row.get("peak_bytes") else "-"
                body.append([key, batch, f"{row['latency_s']:.3f}", f"{row['rtf']:.4f}", f"{row['throughput_utt_per_s']:.1f}",
                             f"{row['generated_tokens_per_s']:.0f}", f"{row['speech_tokens']:.1f}", peak])  # fmt: skip
        lines += [markdown_table(["model", "batch", "latency s", "RTF", "utt/s", "generated tok/s", "speech tok",
                                  "peak GiB"], body), ""]  # fmt: skip
    else:
        lines += [
            "Not measured: this session had no GPU (the device tool reported none lent to this task). The script is",
            "ready: `python -m benchmarks.gpu --out benchmarks/gpu_results.json` (paper-3b, bf16, CUDA: latency, RTF,",
            "utterances/s, generated tokens/s, peak `torch.cuda.max_memory_allocated`, MMS-LLaMA vs baseline, batch 1",
            "and 8); `benchmarks.run` includes its JSON in this file when `benchmarks/gpu_results.json` exists.",
            "Note the paper's 12.4 vs 18.2 GB is most likely training memory (4-bit LLM, LoRA, activations for backprop);",
            "inference memory at batch 1 is dominated by the weights, which the two models share in size.",
            "",
        ]
    lines += [
        "## Not done here",
        "",
        "- GPU numbers (no GPU was lent to this task).",
        "- WER against tokens/s on the trained demo model: `python -m benchmarks.pareto` (`RESULTS_pareto.md`).",
        "",
    ]
    path.write_text("\n".join(lines + [NOTES_MARKER, kept_notes(path)]))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="MMS-LLaMA efficiency benchmarks; writes benchmarks/RESULTS.md.")
    parser.add_argument("--quick", action="store_true", help="fewer repeats; manifest-mean FLOPs for 3B only")
    parser.add_argument("--lrs3-manifest", metavar="PATH",
                        help=f"{LRS3_MANIFEST_HELP}. Default: ${LRS3_MANIFEST_ENV}, else data/lrs3/test.tsv. "
                        "Without it the LRS3 token rates are skipped and the FLOPs use the mean clip alone.")
    parser.add_argument("--synthetic-manifest", help="an LRS3-style test.tsv of the synthetic corpus")
    parser.add_argument("--skip-cpu", action="store_true", help="skip the CPU wall-clock part")
    parser.add_argument("--out-dir", default=str(BENCH_DIR))
    args = parser.parse_args(argv)
    start = time.perf_counter()
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    results = {"environment": environment(), "quick": args.quick}
    lrs3_path = find_lrs3_manifest(args.lrs3_manifest)
    lrs3 = read_tsv_manifest(lrs3_path) if lrs3_path else None
    if lrs3 is None:
        results["lrs3_skipped"] = lrs3_missing_message(
            args.lrs3_manifest, "the LRS3 token rates and f_Q sweep (part 1), the FLOPs mean over the manifest (parts "
            "2-3 use the mean clip instead) and the CPU batch of 8 manifest clips (part 4)")  # fmt: skip
        log(results["lrs3_skipped"])
    log("part 1: token rate")
    results["token_rate"] = part_token_rate(lrs3, find_synthetic_manifest(args.synthetic_manifest))
    log("parts 2-3: FLOPs")
    results["flops"] = part_flops(lrs3, args.quick)
    if not args.skip_cpu:
        log("part 4: CPU wall-clock")
        results["cpu"] = part_cpu(lrs3, args.quick)
        results["flop_ratios_cpu_presets"] = {"paper-1b": flop_ratios(results["flops"])["paper-1b"]}
        demo = {name: flops.FlopModel("demo", **({} if name == "mms_llama" else {"compression": "baseline"}))
                for name in ("mms_llama", "baseline")}  # fmt: skip
        clip = cpu.MEAN_CLIP
        totals = {n: m.utterance(clip.num_video_frames, clip.speech_rate, cpu.GENERATED_TOKENS, prompt_tokens=11)["total"]
                  for n, m in demo.items()}  # fmt: skip
        results["flop_ratios_cpu_presets"]["demo"] = totals["baseline"] / totals["mms_llama"]
    if end_to_end.RESULTS_JSON.exists():
        results["end_to_end"] = json.loads(end_to_end.RESULTS_JSON.read_text())
    gpu_json = BENCH_DIR / "gpu_results.json"
    if gpu_json.exists():
        results["gpu"] = json.loads(gpu_json.read_text())
    results["runtime_s"] = time.perf_counter() - start
    plots = make_plots(results, out_dir)
    (out_dir / "results.json").write_text(json.dumps(results, indent=1, default=str))
    write_results(results, out_dir / "RESULTS.md", plots)
    log(f"wrote {out_dir / 'RESULTS.md'} in {results['runtime_s']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

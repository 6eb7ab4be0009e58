"""Transcription throughput and long-form memory of the pipeline, written to benchmarks/RESULTS_transcribe.md.

    python benchmarks/bench_transcribe.py --model demo_model            # the committed demo model
    python benchmarks/bench_transcribe.py --clips 16 --long-seconds 180

Throughput is seconds of video transcribed per wall-clock second (decode from mp4, mouth crops already cropped,
processor, encoders, Q-Former, LLM generation), at batch 1 and 8, with `torch.set_num_threads(--threads)`.
Long-form memory: the peak resident-set growth (sampled every 10 ms) and the traced numpy peak while a tiled
talking-mouth video of `--short-seconds` and of `--long-seconds` s is transcribed; bounded memory means both stay equal.
Without the model folder, a randomly initialised model of the `demo` preset is used (same cost per forward pass;
generation is capped at --max-new-tokens) and the results say so.
"""

import argparse
import datetime
import json
import os
import platform
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "examples"))

from longform_factory import write_long_video  # noqa: E402
from modeling_mmsllama import MMSLlamaConfig, MMSLlamaForConditionalGeneration, MMSLlamaProcessor, read_media  # noqa: E402
from benchmarks.common import NOTES_MARKER, PeakRSS, kept_notes  # noqa: E402
from modeling_mmsllama.pipeline_mmsllama import MMSLlamaASRPipeline  # noqa: E402
from sample_clips import sample_clips  # noqa: E402


def load(model_dir: str):
    if (Path(model_dir) / "config.json").exists():
        model = MMSLlamaForConditionalGeneration.from_pretrained(model_dir).eval()
        processor = MMSLlamaProcessor.for_model(model_dir, model.config)
        return MMSLlamaASRPipeline(model=model, processor=processor), f"`{model_dir}` (trained)"
    torch.manual_seed(0)
    model = MMSLlamaForConditionalGeneration(MMSLlamaConfig.from_preset("demo")).eval()
    return MMSLlamaASRPipeline(model=model, processor=MMSLlamaProcessor.from_preset("demo")), (
        f"random `demo` preset (`{model_dir}` not found)"
    )


def throughput(asr, clips, batch_size, options, repeats=1) -> dict:
    seconds = sum(len(read_media(c, audio=False).frames) for c in clips) / 25
    asr(clips[:batch_size], batch_size=batch_size, **options)  # warm-up
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        results = asr(clips, batch_size=batch_size, **options)
        times.append(time.perf_counter() - started)
    best = min(times)
    tokens = sum(r["speech_tokens"] for r in results)
    return {"batch_size": batch_size, "clips": len(clips), "video_s": round(seconds, 2), "wall_s": round(best, 2),
            "video_s_per_s": round(seconds / best, 2), "speech_tokens_per_s": round(tokens / seconds, 2)}  # fmt: skip


def long_form(asr, clips, seconds, options, folder) -> dict:
    video = write_long_video(Path(folder) / f"long{seconds}.mp4", clips, seconds=seconds)
    tracemalloc.start()
    with PeakRSS() as rss:
        started = time.perf_counter()
        result = asr(str(video["path"]), batch_size=8, **options)
        wall = time.perf_counter() - started
    _, traced = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"video_s": seconds, "chunks": len(result["chunks"]), "wall_s": round(wall, 1),
            "video_s_per_s": round(seconds / wall, 2), "rss_growth_mb": round(rss.extra_bytes / 1e6, 1),
            "traced_peak_mb": round(traced / 1e6, 1), "decoded_video_mb": round(video["frames"] * (88 * 88 + 2560) / 1e6, 1),
            "covered_s": result["chunks"][-1]["timestamp"][1]}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="demo_model")
    parser.add_argument("--clips", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--num-beams", type=int, default=1)
    parser.add_argument("--max-new-tokens", type=int, default=40)
    parser.add_argument("--short-seconds", type=int, default=100, help="at least 8 clips, so batches are full")
    parser.add_argument("--long-seconds", type=int, default=300)
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "RESULTS_transcribe.md"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    asr, model_note = load(args.model)
    options = {"num_beams": args.num_beams, "max_new_tokens": args.max_new_tokens}
    with tempfile.TemporaryDirectory() as folder:
        clips = [str(p) for p in sample_clips(Path(folder) / "corpus", utterances=max(args.clips + 4, 12))][: args.clips]
        rows = [throughput(asr, clips, b, options) for b in (1, 8)]
        long_rows = [long_form(asr, clips, s, options, folder) for s in (args.short_seconds, args.long_seconds)]
    load_avg = os.getloadavg()[0]
    lines = [
        "# Transcription benchmark (pipeline)",
        "",
        f"`python benchmarks/bench_transcribe.py --model {args.model} --clips {args.clips} --threads {args.threads} "
        f"--num-beams {args.num_beams} --max-new-tokens {args.max_new_tokens} --short-seconds {args.short_seconds} --long-seconds {args.long_seconds}`",
        "",
        f"- model: {model_note}; {sum(p.numel() for p in asr.model.parameters()) / 1e6:.1f}M parameters, "
        f"max clip {asr.max_chunk_frames / 25:g} s",
        f"- machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs visible, torch threads "
        f"{args.threads}, load average {load_avg:.1f} at the end (other jobs running: timings are noisy)",
        f"- date: {datetime.date.today()}, torch {torch.__version__}",
        f"- clips: synthetic corpus, 88x88 mouth crops + audio, mp4; greedy unless --num-beams > 1",
        "",
        "## Throughput (seconds of video per second)",
        "",
        "| batch | clips | video (s) | wall (s) | video s / s | speech tokens / s of video |",
        "|---:|---:|---:|---:|---:|---:|",
        *[f"| {r['batch_size']} | {r['clips']} | {r['video_s']} | {r['wall_s']} | **{r['video_s_per_s']}** | "
          f"{r['speech_tokens_per_s']} |" for r in rows],
        "",
        "## Long-form memory (one video, batch 8)",
        "",
        "| video (s) | clips | wall (s) | video s / s | peak RSS growth (MB) | traced numpy peak (MB) | "
        "decoded video would be (MB) |",
        "|---:|---:|---:|---:|---:|---:|---:|",
        *[f"| {r['video_s']} | {r['chunks']} | {r['wall_s']} | {r['video_s_per_s']} | {r['rss_growth_mb']} | "
          f"{r['traced_peak_mb']} | {r['decoded_video_mb']} |" for r in long_rows],
        "",
        "Bounded memory means the two rows' peaks are about equal although the long video is several times longer: "
        "the file is decoded as a stream and at most about `batch_size + 1` clips are held. Both videos fill whole "
        "batches of 8 clips (a shorter video with fewer clips per batch peaks lower for that reason alone). RSS growth "
        "includes torch activations and allocator caching; the traced peak counts numpy allocations only.",
        "",
        "```json",
        json.dumps({"throughput": rows, "long_form": long_rows}, indent=1),
        "```",
        "",
    ]  # fmt: skip
    Path(args.out).write_text("\n".join(lines + [NOTES_MARKER, kept_notes(Path(args.out))]))
    print("\n".join(lines))


if __name__ == "__main__":
    main()

"""Part 5: paper-3b-size MMS-LLaMA vs baseline in bf16 on one CUDA GPU, random weights.

    python -m benchmarks.gpu --out benchmarks/gpu_results.json [--preset paper-3b] [--repeats 5] [--lrs3-manifest PATH]

Same protocol as the CPU part (`benchmarks.cpu`), with `torch.cuda.synchronize()` around each timed call, and GPU
memory from `torch.cuda.max_memory_allocated`: weights of each model, and the peak during one `generate` call over
what was allocated before it. The two models are built one after the other (not shared), so that each one's
memory stands alone. `benchmarks.run` puts the JSON into RESULTS.md when it exists. Batch 8 spreads over the LRS3
test manifest (`--lrs3-manifest`, as in `benchmarks.run`); without it only batch 1 (the mean clip) is measured.
"""

import argparse
import json
import time

import torch

from .common import (LRS3_MANIFEST_ENV, LRS3_MANIFEST_HELP, find_lrs3_manifest, lrs3_missing_message, median,
                     read_tsv_manifest)
from .cpu import GENERATED_TOKENS, MEAN_CLIP, make_inputs, parameter_bytes, spread_clips


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.no_grad()
def measure(preset: str, compression: str, device: torch.device, repeats: int, batches: dict) -> dict:
    from modeling_mmsllama import MMSLlamaConfig, MMSLlamaForConditionalGeneration

    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    torch.manual_seed(0)
    with device:
        model = MMSLlamaForConditionalGeneration(MMSLlamaConfig.from_preset(preset, compression=compression)).eval()
    torch.set_default_dtype(previous)
    out = {"weights_bytes": parameter_bytes(model), "batches": {}}
    for batch, clips in batches.items():
        inputs = {k: (v.to(device) if torch.is_tensor(v) else v) for k, v in make_inputs(model, clips, torch.bfloat16).items()}
        kwargs = dict(do_sample=False, num_beams=1, min_new_tokens=GENERATED_TOKENS, max_new_tokens=GENERATED_TOKENS)
        model.generate(**inputs, **kwargs)  # warm-up
        times = []
        for _ in range(repeats):
            _sync(device)
            start = time.perf_counter()
            model.generate(**inputs, **kwargs)
            _sync(device)
            times.append(time.perf_counter() - start)
        speech_keys = ("input_features", "input_features_mask", "pixel_values_videos", "video_mask", "speech_rate")
        encode = []
        for _ in range(repeats):
            _sync(device)
            start = time.perf_counter()
            speech = model.get_speech_embeddings(**{k: inputs[k] for k in speech_keys})
            _sync(device)
            encode.append(time.perf_counter() - start)
        peak = None
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
            before = torch.cuda.memory_allocated(device)
            model.generate(**inputs, **kwargs)
            peak = torch.cuda.max_memory_allocated(device)
            out.setdefault("allocated_before_bytes", before)
        latency = median(times)
        audio_s = sum(c.duration_s for c in clips)
        out["batches"][batch] = {
            "latency_s": latency,
            "encode_s": median(encode),
            "rtf": latency / audio_s,
            "throughput_utt_per_s": batch / latency,
            "generated_tokens_per_s": batch * GENERATED_TOKENS / latency,
            "speech_tokens": float(speech.num_speech_tokens.float().mean()),
            "peak_bytes": peak,
        }
    del model
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="paper-3b")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default="benchmarks/gpu_results.json")
    parser.add_argument("--lrs3-manifest", metavar="PATH",
                        help=f"{LRS3_MANIFEST_HELP}. Default: ${LRS3_MANIFEST_ENV}, else data/lrs3/test.tsv. "
                        "Without it only batch 1 (the mean clip) is measured.")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    from modeling_mmsllama import MMSLlamaConfig

    longest = MMSLlamaConfig.from_preset(args.preset).max_video_frames
    batches = {1: [MEAN_CLIP]}
    lrs3_path = find_lrs3_manifest(args.lrs3_manifest)
    if lrs3_path:
        utterances = [u for u in read_tsv_manifest(lrs3_path) if u.num_video_frames <= longest]
        batches[8] = spread_clips(utterances, 8)
    else:
        print(lrs3_missing_message(args.lrs3_manifest, "batch 8 (8 clips spread over the manifest)"), flush=True)
    result = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else str(device),
        "torch": torch.__version__,
        "preset": args.preset,
        "dtype": "bfloat16",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "repeats": args.repeats,
    }
    for compression, key in (("qformer", "mms_llama"), ("baseline", "baseline")):
        result[key] = measure(args.preset, compression, device, args.repeats, batches)
        print(key, json.dumps(result[key]["batches"]), flush=True)
    with open(args.out, "w") as handle:
        json.dump(result, handle, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

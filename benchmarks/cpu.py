"""Part 4: CPU wall-clock of MMS-LLaMA vs the Llama-AVSR-style baseline, random weights, in one process.

Protocol (stated again in RESULTS.md):
- Two models of one preset are built in the same process: `compression="qformer"` (with the rate predictor) and
  `compression="baseline"`. The baseline *shares* the Whisper encoder, AV-HuBERT and the Llama with the MMS-LLaMA
  model (same weights, same memory); only its adapters and projectors are its own. Random weights.
- Inputs: clips from the LRS3 test manifest (lengths and rate labels; random mel features and video). Batch 1 is
  the clip of mean length (57 frames, 2.28 s, rate 1.255); batch 8 is 8 clips spread over the manifest, padded
  to the longest. The ground-truth rate label is passed as `speech_rate` (a random rate predictor would allocate
  an arbitrary number of queries).
- `model.generate(..., do_sample=False, num_beams=1, min_new_tokens=K, max_new_tokens=K)` with K = 11 (a mean
  LRS3 transcript of 7.5 words at ~1.3 tokens per word, plus EOS): the number of decoded tokens is the same for
  both models. Latency = the wall-clock of one `generate` call. Split: speech encoding (`get_speech_embeddings`,
  timed alone), LLM prefill (the language model over the merged prompt + speech embeddings with a KV cache,
  timed alone) and decode (K - 1 greedy one-token steps over the KV cache, timed alone); the three do not add
  up exactly to the latency (generate's own overhead).
- The machine may be shared: the CPU time of the `generate` call (process time, both threads) is recorded next
  to the wall-clock, as a check that is less sensitive to other load; the load average is in RESULTS.md.
- Runs alternate between the two models (MMS-LLaMA first on even repeats, baseline first on odd ones) after one
  warm-up each; each number is the median over the repeats. Throughput = utterances / latency.
- Peak memory: the process RSS is sampled every 2 ms during one `generate` call; the extra over the RSS before the
  call (after `malloc_trim`) is the working memory of inference; the weights are counted separately.
"""

import math
import time

import torch

from modeling_mmsllama import MMSLlamaConfig, MMSLlamaForConditionalGeneration
from modeling_mmsllama.configuration_mmsllama import MEL_FRAMES_PER_VIDEO_FRAME

from .common import PeakRSS, Utterance, median, release_memory, timed


GENERATED_TOKENS = 11
MEAN_CLIP = Utterance(57, 1.255, 7)
SHARED_MODULES = ("audio_encoder", "vision_encoder", "language_model")


def build_pair(preset: str, dtype: torch.dtype = torch.float32, seed: int = 0, **overrides):
    """(MMS-LLaMA, baseline) with the encoders and the LLM shared; random weights, eval mode."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        torch.manual_seed(seed)
        mms = MMSLlamaForConditionalGeneration(MMSLlamaConfig.from_preset(preset, **overrides)).eval()
        baseline_config = MMSLlamaConfig.from_preset(preset, **{**overrides, "compression": "baseline"})
        with torch.device("meta"):
            baseline = MMSLlamaForConditionalGeneration(baseline_config).eval()
        for name in SHARED_MODULES:
            setattr(baseline, name, getattr(mms, name))
        for name, module in baseline.named_children():
            if name not in SHARED_MODULES:
                module.to_empty(device="cpu")
                for parameter in module.parameters():
                    if parameter.ndim > 1:
                        torch.nn.init.normal_(parameter, std=0.02)
                    else:
                        torch.nn.init.zeros_(parameter)
    finally:
        torch.set_default_dtype(previous)
    return mms, baseline


def make_inputs(model, clips: list[Utterance], dtype: torch.dtype, seed: int = 0) -> dict:
    """Random log-mel features and video for the clips, with the processor's prompt layout and masks."""
    config = model.config
    generator = torch.Generator().manual_seed(seed)
    batch, longest = len(clips), max(c.num_video_frames for c in clips)
    mel_bins, window = config.audio_config.num_mel_bins, config.num_mel_frames
    size = config.vision_config.image_size
    input_features = torch.zeros(batch, mel_bins, window)
    input_features_mask = torch.zeros(batch, window, dtype=torch.long)
    video = torch.zeros(batch, longest, 1, size, size)
    video_mask = torch.zeros(batch, longest, dtype=torch.bool)
    for i, clip in enumerate(clips):
        frames = clip.num_video_frames
        mel = min(frames * MEL_FRAMES_PER_VIDEO_FRAME, window)
        input_features[i, :, :mel] = torch.randn(mel_bins, mel, generator=generator)
        input_features_mask[i, :mel] = 1
        video[i, :frames] = torch.randn(frames, 1, size, size, generator=generator)
        video_mask[i, :frames] = True
    text = config.text_config
    prompt = [text.bos_token_id] + [min(5 + k, text.vocab_size - 1) for k in range(10)] + [config.speech_token_id]
    input_ids = torch.tensor([prompt] * batch)
    return {
        "input_ids": input_ids,
        "attention_mask": torch.ones_like(input_ids),
        "input_features": input_features.to(dtype),
        "input_features_mask": input_features_mask,
        "pixel_values_videos": video.to(dtype),
        "video_mask": video_mask,
        "speech_rate": torch.tensor([c.speech_rate for c in clips]),
    }


def speech_inputs(inputs: dict) -> dict:
    """The arguments of `get_speech_embeddings` among `make_inputs`'s."""
    keys = ("input_features", "input_features_mask", "pixel_values_videos", "video_mask", "speech_rate")
    return {k: inputs[k] for k in keys}


@torch.no_grad()
def run_once(model, inputs: dict, new_tokens: int = GENERATED_TOKENS) -> dict:
    """Seconds of: the whole generate call, speech encoding alone, LLM prefill alone; and the decode by difference."""
    cpu_start = time.process_time()
    _, total = timed(
        model.generate, **inputs, do_sample=False, num_beams=1, min_new_tokens=new_tokens, max_new_tokens=new_tokens
    )
    cpu_time = time.process_time() - cpu_start
    speech, encode = timed(model.get_speech_embeddings, **speech_inputs(inputs))
    embeds, mask, position_ids, _ = model.merge_speech_embeddings(inputs["input_ids"], inputs["attention_mask"], None,
                                                                  speech)
    lm = model.language_model
    start = time.perf_counter()
    out = lm(inputs_embeds=embeds, attention_mask=mask, position_ids=position_ids, use_cache=True, logits_to_keep=1)
    prefill = time.perf_counter() - start
    start = time.perf_counter()
    token, position = out.logits[:, -1].argmax(-1, keepdim=True), position_ids[:, -1:]
    for _ in range(new_tokens - 1):  # greedy decode with the KV cache, as generate does after the prefill
        mask = torch.cat([mask, mask.new_ones(len(mask), 1)], dim=1)
        position = position + 1
        out = lm(input_ids=token, attention_mask=mask, position_ids=position, cache=out.cache, use_cache=True,
                 logits_to_keep=1)  # fmt: skip
        token = out.logits[:, -1].argmax(-1, keepdim=True)
    decode = time.perf_counter() - start
    return {
        "latency_s": total,
        "cpu_time_s": cpu_time,
        "encode_s": encode,
        "prefill_s": prefill,
        "decode_s": decode,
        "speech_tokens": float(speech.num_speech_tokens.float().mean()),
    }


@torch.no_grad()
def peak_memory(model, inputs: dict, new_tokens: int = GENERATED_TOKENS) -> int:
    with PeakRSS() as probe:
        model.generate(**inputs, do_sample=False, num_beams=1, min_new_tokens=new_tokens, max_new_tokens=new_tokens)
    return probe.extra_bytes


def interleaved(models: dict, run, repeats: int) -> dict[str, list]:
    """`run(name)` for every model: one warm-up each, then `repeats` rounds alternating which model goes first
    (the first model on even rounds, the last on odd ones). Returns each model's results in order."""
    for name in models:
        run(name)
    results = {name: [] for name in models}
    for rep in range(repeats):
        for name in list(models) if rep % 2 == 0 else list(reversed(models)):
            results[name].append(run(name))
    return results


def parameter_bytes(module) -> int:
    return sum(p.numel() * p.element_size() for p in module.parameters())


def compare(preset: str, batch_clips: dict[int, list[Utterance]], repeats: dict[int, int], dtype=torch.float32,
            log=print) -> dict:  # fmt: skip
    """Medians for both models at each batch size; see the module docstring for the protocol."""
    start = time.perf_counter()
    mms, baseline = build_pair(preset, dtype)
    log(f"  built {preset} pair ({dtype}) in {time.perf_counter() - start:.0f} s")
    models = {"mms_llama": mms, "baseline": baseline}
    shared = sum(parameter_bytes(getattr(mms, n)) for n in SHARED_MODULES)
    result = {
        "preset": preset,
        "dtype": str(dtype).replace("torch.", ""),
        "weights_bytes": {name: parameter_bytes(m) for name, m in models.items()},
        "shared_weights_bytes": shared,
        "batches": {},
    }
    for batch, clips in batch_clips.items():
        inputs = {name: make_inputs(m, clips, dtype) for name, m in models.items()}
        runs = interleaved(models, lambda name: run_once(models[name], inputs[name]), repeats[batch])
        memory = {name: peak_memory(models[name], inputs[name]) for name in models}
        summary = {}
        for name in models:
            keys = runs[name][0].keys()
            summary[name] = {key: median([r[key] for r in runs[name]]) for key in keys}
            summary[name]["throughput_utt_per_s"] = batch / summary[name]["latency_s"]
            audio_s = sum(c.duration_s for c in clips)
            summary[name]["rtf"] = summary[name]["latency_s"] / audio_s
            summary[name]["peak_extra_bytes"] = memory[name]
            summary[name]["repeats"] = repeats[batch]
        summary["speedup"] = summary["baseline"]["latency_s"] / summary["mms_llama"]["latency_s"]
        summary["cpu_time_speedup"] = summary["baseline"]["cpu_time_s"] / summary["mms_llama"]["cpu_time_s"]
        summary["prefill_speedup"] = summary["baseline"]["prefill_s"] / summary["mms_llama"]["prefill_s"]
        result["batches"][batch] = summary
        log(f"  {preset} batch {batch}: mms {summary['mms_llama']['latency_s']:.3f} s, "
            f"baseline {summary['baseline']['latency_s']:.3f} s, speedup {summary['speedup']:.3f}")  # fmt: skip
    del mms, baseline, models
    release_memory()
    return result


def spread_clips(utterances: list[Utterance], count: int) -> list[Utterance]:
    """`count` clips evenly spaced over the manifest sorted by length (a realistic mix, deterministic)."""
    ordered = sorted(utterances, key=lambda u: u.num_video_frames)
    return [ordered[math.floor((i + 0.5) * len(ordered) / count)] for i in range(count)]


# -- part 3 timing: the Whisper encoder on a bucketed window vs the full one ------------------------------------------


@torch.no_grad()
def whisper_window_timing(audio_config, windows_mel: list[int], repeats: int, dtype=torch.float32, seed=0) -> dict:
    """Median seconds of the Whisper encoder (batch 1, random weights) on each mel window length."""
    from transformers import WhisperConfig
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    times = {}
    for mel in windows_mel:
        config = WhisperConfig.from_dict(audio_config.to_dict())
        config.max_source_positions = mel // 2
        config._attn_implementation = "sdpa"  # as inside the model
        torch.manual_seed(seed)
        encoder = WhisperEncoder(config).eval().to(dtype)
        features = torch.randn(1, config.num_mel_bins, mel, dtype=dtype)
        encoder(features)
        times[mel] = median([timed(encoder, features)[1] for _ in range(repeats)])
        del encoder
    return times

"""Where the time of one `generate` call goes: the committed demo model on held-out clips, part by part (CPU).

    .venv/bin/python -m benchmarks.bench_parts --batch-sizes 1 8 --repeats 7 --out benchmarks/RESULTS_parts.md

Protocol: the held-out clips of `tests/demo_transcripts.py` (`make_clips`: the demo corpus's three test speakers,
six clips) go through the processor once, before any timing (the processor is excluded). Batch 1 runs each of the
six clips on its own (the per-call time is the mean over the clips); batch 8 is the six clips plus the first two
again, padded to the longest. Each part of `model.generate(**inputs, do_sample=False, num_beams=B,
max_new_tokens=32)` is timed by wrapping the method or module that does it on the model instance (wall-clock,
`time.perf_counter`; the CPU runs synchronously): Whisper (`encode_audio`), AV-HuBERT (`encode_video`), the audio
adapter + early fusion (`audio_adapter`, `fusion`), the rate predictor (`predict_speech_rate`), the time stretch
(`time_stretch`), the Q-Former (`qformer`), the projector (`projector`), the speech-embedding merge
(`merge_speech_embeddings`), the LLM's first forward (prefill), its later forwards (decode steps) and the rest of the
language model's `generate` (search loop, logits processing, beam bookkeeping). "other" is the remainder of the
call (input checks, query allocation, masks). Torch uses `--threads` intra-op threads; one warm-up call per
configuration, then `--repeats` repetitions; every number is the median over the repetitions.

Before / after: every configuration is timed with both Q-Former paths in the same process, interleaved (the
Blip-2 Q-Former model itself, `model.qformer.lean_inference = False`, "before"; the eval-mode shortcut through its
modules, the default, "after"); the script also checks that both give the same speech embeddings and token ids.
(The Blip-2 Q-Former and the rate predictor already use scaled_dot_product_attention: `attn_implementation` is
"sdpa" for the Q-Former, and the rate predictor calls `F.scaled_dot_product_attention` itself.)
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import torch


REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT / "tests"))  # demo_transcripts: the held-out clips and the demo's loader

PARTS = [
    ("audio_encoder", "audio encoder (Whisper)"),
    ("vision_encoder", "vision encoder (AV-HuBERT)"),
    ("adapter_fusion", "audio adapter + fusion"),
    ("rate_predictor", "rate predictor"),
    ("time_stretch", "time-stretch"),
    ("qformer", "Q-Former"),
    ("projector", "projector"),
    ("merge", "speech-embedding merge"),
    ("prefill", "LLM prefill"),
    ("decode", "LLM decode steps"),
    ("search", "LLM generate loop (search, logits processing)"),
    ("other", "other (checks, allocation, masks)"),
]
MMS_ONLY = ("rate_predictor", "time_stretch", "qformer", "projector", "merge")
MAX_NEW_TOKENS = 32


class PartTimer:
    """Accumulates wall-clock seconds per part while installed on a model (instance-level wrappers, removed after)."""

    def __init__(self):
        self.seconds = {}
        self.lm_calls = 0

    def add(self, part, seconds):
        self.seconds[part] = self.seconds.get(part, 0.0) + seconds

    def wrap(self, part, fn):
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.add(part, time.perf_counter() - start)

        return timed

    @contextmanager
    def installed(self, model):
        import modeling_mmsllama.modeling_mmsllama as modeling

        patched = []

        def patch(owner, name, part):
            original = getattr(owner, name)
            patched.append((owner, name))
            setattr(owner, name, self.wrap(part, original))

        patch(model, "encode_audio", "audio_encoder")
        patch(model, "encode_video", "vision_encoder")
        patch(model, "predict_speech_rate", "rate_predictor")
        patch(model, "merge_speech_embeddings", "merge")
        for name, part in (("audio_adapter", "adapter_fusion"), ("fusion", "adapter_fusion"), ("qformer", "qformer"),
                           ("projector", "projector")):  # fmt: skip
            patch(getattr(model, name), "forward", part)
        original_stretch = modeling.time_stretch
        modeling.time_stretch = self.wrap("time_stretch", original_stretch)
        lm = model.language_model
        original_lm_forward = lm.forward

        def lm_forward(*args, **kwargs):
            start = time.perf_counter()
            try:
                return original_lm_forward(*args, **kwargs)
            finally:
                self.add("prefill" if self.lm_calls == 0 else "decode", time.perf_counter() - start)
                self.lm_calls += 1

        lm.forward = lm_forward
        patch(lm, "generate", "lm_generate")
        try:
            yield self
        finally:
            modeling.time_stretch = original_stretch
            del lm.forward
            for owner, name in patched:
                del owner.__dict__[name]

    def finish(self, total):
        seconds = dict(self.seconds)
        lm_generate = seconds.pop("lm_generate", 0.0)
        seconds["search"] = lm_generate - seconds.get("prefill", 0.0) - seconds.get("decode", 0.0)
        seconds["other"] = total - lm_generate - sum(v for k, v in seconds.items() if k not in ("prefill", "decode",
                                                                                               "search"))
        seconds["total"] = total
        return {part: seconds.get(part, 0.0) for part, _ in PARTS} | {"total": total}


def timed_generate(model, inputs, num_beams):
    timer = PartTimer()
    with timer.installed(model):
        start = time.perf_counter()
        model.generate(**inputs, do_sample=False, num_beams=num_beams, max_new_tokens=MAX_NEW_TOKENS)
        total = time.perf_counter() - start
    return timer.finish(total)


def make_inputs(processor, utterances):
    from demo_transcripts import model_inputs

    return model_inputs(processor, utterances, "av")


VARIANTS = ("before", "after")  # qformer.lean_inference False (Blip2QFormerModel) / True (the eval-mode shortcut)


def set_variant(model, variant: str) -> None:
    model.qformer.lean_inference = variant == "after"


@torch.no_grad()
def measure(model, batches: dict, beams, repeats: int) -> dict:
    """{(variant, batch, beams): {part: median seconds per generate call}}; the two Q-Former paths alternate (before
    first on even repetitions, after first on odd ones) in this one process."""
    results = {}
    for batch, inputs_list in batches.items():
        for num_beams in beams:
            runs = {variant: [] for variant in VARIANTS}
            for rep in range(repeats + 1):  # repetition 0 is the warm-up
                for variant in VARIANTS if rep % 2 == 0 else tuple(reversed(VARIANTS)):
                    set_variant(model, variant)
                    calls = [timed_generate(model, inputs, num_beams) for inputs in inputs_list]
                    if rep > 0:
                        runs[variant].append({k: statistics.fmean(c[k] for c in calls) for k in calls[0]})
            for variant in VARIANTS:
                results[(variant, batch, num_beams)] = {k: statistics.median(r[k] for r in runs[variant])
                                                        for k in runs[variant][0]}  # fmt: skip
            print(f"batch {batch} beams {num_beams}: total before "
                  f"{results[('before', batch, num_beams)]['total'] * 1e3:.1f} ms, after "
                  f"{results[('after', batch, num_beams)]['total'] * 1e3:.1f} ms", flush=True)  # fmt: skip
    set_variant(model, "after")
    return results


@torch.no_grad()
def check_outputs(model, batches: dict) -> dict:
    """Per batch size: the largest difference of the speech embeddings between the two Q-Former paths, and whether
    the greedy and beam-5 token ids are the same."""
    out = {}
    for batch, inputs_list in batches.items():
        diff, same = 0.0, True
        for inputs in inputs_list:
            media = {k: v for k, v in inputs.items() if k not in ("input_ids", "attention_mask")}
            embeddings, ids = {}, {}
            for variant in VARIANTS:
                set_variant(model, variant)
                embeddings[variant] = model.get_speech_embeddings(**media).embeddings
                ids[variant] = [model.generate(**inputs, do_sample=False, num_beams=b, max_new_tokens=MAX_NEW_TOKENS)
                                for b in (1, 5)]  # fmt: skip
            diff = max(diff, float((embeddings["before"] - embeddings["after"]).abs().max()))
            same = same and all(torch.equal(a, b) for a, b in zip(ids["before"], ids["after"]))
        out[batch] = {"max_abs_diff": diff, "same_ids": same}
    set_variant(model, "after")
    return out


def build_baseline(model):
    """The demo's `compression="baseline"` twin (two 12.5 Hz token streams, no rate predictor or Q-Former) sharing its
    Whisper, AV-HuBERT and Llama; its own adapters and projectors are random (as in benchmarks/cpu.py)."""
    import copy

    from benchmarks.cpu import SHARED_MODULES
    from modeling_mmsllama import MMSLlamaForConditionalGeneration

    config = copy.deepcopy(model.config)
    config.compression = "baseline"
    with torch.device("meta"):
        baseline = MMSLlamaForConditionalGeneration(config).eval()
    for name in SHARED_MODULES:
        setattr(baseline, name, getattr(model, name))
    torch.manual_seed(0)
    for name, module in baseline.named_children():
        if name not in SHARED_MODULES:
            module.to_empty(device="cpu")
            for parameter in module.parameters():
                torch.nn.init.normal_(parameter, std=0.02) if parameter.ndim > 1 else torch.nn.init.zeros_(parameter)
    return baseline


@torch.no_grad()
def encode_and_prefill(model, inputs) -> dict:
    """Seconds of the speech path (`get_speech_embeddings`) and of the merge + LLM prefill, and the prefill length."""
    media = {k: v for k, v in inputs.items() if k not in ("input_ids", "attention_mask")}
    start = time.perf_counter()
    speech = model.get_speech_embeddings(**media)
    middle = time.perf_counter()
    embeds, mask, positions, _ = model.merge_speech_embeddings(inputs["input_ids"], inputs["attention_mask"], None,
                                                               speech)  # fmt: skip
    model.language_model(inputs_embeds=embeds, attention_mask=mask, position_ids=positions, use_cache=True,
                         logits_to_keep=1)  # fmt: skip
    end = time.perf_counter()
    return {"encode": middle - start, "prefill": end - middle, "tokens": embeds.shape[1]}


def baseline_comparison(model, inputs_list, repeats: int) -> dict:
    """Batch 1, mean over the clips, median over interleaved repetitions: encoding and merge + prefill of MMS-LLaMA
    (lean Q-Former) and of the baseline twin."""
    baseline = build_baseline(model)
    models = {"MMS-LLaMA": model, "baseline": baseline}
    runs = {name: [] for name in models}
    for rep in range(repeats + 1):
        for name in models if rep % 2 == 0 else reversed(list(models)):
            calls = [encode_and_prefill(models[name], inputs) for inputs in inputs_list]
            if rep > 0:
                runs[name].append({k: statistics.fmean(c[k] for c in calls) for k in calls[0]})
    return {name: {k: statistics.median(r[k] for r in runs[name]) for k in runs[name][0]} for name in models}


def load_average() -> str:
    return ", ".join(f"{v:.2f}" for v in os.getloadavg())


def write_markdown(path: Path, results: dict, toggle: dict | None, meta: dict, versus: dict | None = None) -> None:
    lines = [
        "# Where the time of `generate` goes: the demo model, part by part (CPU)",
        "",
        f"Command: `{meta['command']}`",
        "",
        f"Machine: {meta['machine']}; torch {meta['torch']}, transformers {meta['transformers']}, "
        f"{meta['threads']} intra-op threads, OMP_WAIT_POLICY={meta['omp_wait_policy']}. Load average (1, 5, 15 min) before: {meta['load_before']}; after: "
        f"{meta['load_after']}. Date: {meta['date']}.",
        "",
        "Protocol: see the docstring of `benchmarks/bench_parts.py`. Demo model (float32), the six held-out clips of "
        "`tests/demo_transcripts.py` (AV input, processor run once before timing); batch 1 = each clip alone "
        "(mean per call), batch 8 = the six clips + the first two again. "
        f"`generate(do_sample=False, num_beams=B, max_new_tokens={MAX_NEW_TOKENS})`; "
        f"median of {meta['repeats']} repetitions after a warm-up. Each part is timed by a wrapper on the method or "
        "module that does it; \"other\" is the rest of the call. MMS-LLaMA-only = rate predictor + time-stretch + "
        "Q-Former + projector + speech-embedding merge.",
        "",
    ]
    for variant, title in (("before", "Before: the Q-Former runs `Blip2QFormerModel` (`qformer.lean_inference = False`)"),
                           ("after", "After: the eval-mode shortcut `MMSLlamaQFormer._lean_bert` (the default)")):
        keys = [key for key in results if key[0] == variant]
        lines += [f"### {title}", ""]
        lines += ["| part | " + " | ".join(f"batch {b}, beams {n}: ms | %" for _, b, n in keys) + " |",
                  "|---|" + "---|---|" * len(keys)]  # fmt: skip
        for part, label in PARTS + [("mms_only", "**MMS-LLaMA-only parts**"), ("total", "**total (generate call)**")]:
            cells = []
            for key in keys:
                r = results[key]
                value = sum(r[p] for p in MMS_ONLY) if part == "mms_only" else r[part]
                cells.append(f"{value * 1e3:.2f} | {100 * value / r['total']:.1f}")
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        lines.append("")
    shares = ", ".join(f"batch {b} beams {n}: {100 * sum(r[p] for p in MMS_ONLY) / r['total']:.1f}%"
                       for (v, b, n), r in results.items() if v == "after")  # fmt: skip
    lines += [f"MMS-LLaMA-only share of the generate call, after (the issue's target is <= 5%): {shares}. The load "
              "average above says whether other jobs shared the cores; with more runnable threads than cores the "
              "absolute times grow, the shares and the before/after ratios (interleaved) much less.", ""]
    lines += ["### Before / after, side by side (same process, interleaved)", "",
              "| batch | beams | Q-Former ms before | after | MMS-LLaMA-only % before | after | total ms before | after |",
              "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for _, batch, beams in [key for key in results if key[0] == "before"]:
        b, a = results[("before", batch, beams)], results[("after", batch, beams)]
        share = [100 * sum(r[p] for p in MMS_ONLY) / r["total"] for r in (b, a)]
        lines.append(f"| {batch} | {beams} | {b['qformer'] * 1e3:.2f} | {a['qformer'] * 1e3:.2f} | {share[0]:.1f} | "
                     f"{share[1]:.1f} | {b['total'] * 1e3:.2f} | {a['total'] * 1e3:.2f} |")  # fmt: skip
    lines.append("")
    if toggle:
        lines += ["Outputs, before vs after: " + "; ".join(
            f"batch {b}: speech embeddings max abs diff {t['max_abs_diff']:.1e}, greedy and beam-5 token ids "
            f"{'identical' if t['same_ids'] else 'DIFFERENT'}" for b, t in toggle.items()) + ".", ""]  # fmt: skip
    if versus:
        lines += ["### Batch 1 against the baseline twin (encoding and prefill only; same process, interleaved)", "",
                  "The baseline shares the demo's Whisper, AV-HuBERT and Llama; its adapters and projectors are "
                  "random, so only its encoding and prefill are timed (its decode would differ only by the KV-cache "
                  "length).", "",
                  "| model | speech path ms | merge + LLM prefill ms | sum ms | prefill length (tokens) |",
                  "|---|---|---|---|---|"]  # fmt: skip
        for name, r in versus.items():
            lines.append(f"| {name} | {r['encode'] * 1e3:.2f} | {r['prefill'] * 1e3:.2f} | "
                         f"{(r['encode'] + r['prefill']) * 1e3:.2f} | {r['tokens']:.1f} |")  # fmt: skip
        lines.append("")
    path.write_text("\n".join(lines) + "\n")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--beams", type=int, nargs="+", default=[1, 5])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=str(REPO_ROOT / "benchmarks" / "RESULTS_parts.md"))
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    from benchmarks.common import environment
    from demo_transcripts import load_demo, make_clips

    meta = environment() | {"threads": torch.get_num_threads(), "repeats": args.repeats, "load_before": load_average(),
                            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "unset (active)"),
                            "command": ("OMP_WAIT_POLICY=" + os.environ["OMP_WAIT_POLICY"] + " "
                                        if "OMP_WAIT_POLICY" in os.environ else "")
                            + "python -m benchmarks.bench_parts " + " ".join(argv or sys.argv[1:])}
    with tempfile.TemporaryDirectory() as folder:
        utterances = make_clips(Path(folder))
    model, processor = load_demo()
    batches = {}
    for batch in args.batch_sizes:
        if batch == 1:
            batches[1] = [make_inputs(processor, [u]) for u in utterances]
        else:
            chosen = [utterances[i % len(utterances)] for i in range(batch)]
            batches[batch] = [make_inputs(processor, chosen)]
    results = measure(model, batches, args.beams, args.repeats)
    toggle = check_outputs(model, batches)
    versus = baseline_comparison(model, batches[1], args.repeats) if 1 in batches else None
    meta["load_after"] = load_average()
    write_markdown(Path(args.out), results, toggle, meta, versus)
    print(Path(args.out).read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""How well the pipeline's no-speech decision tells speech from noise and still faces; prints a Markdown report.

    python benchmarks/no_speech.py                          # the demo model, the 48-utterance corpus's test clips
    python benchmarks/no_speech.py --utterances 240 --variants 3 --out /tmp/no_speech.md

Clips: the test split (speakers the demo model never saw) of `generate_corpus(folder, CorpusConfig(utterances=N,
seed=0, face_splits=()))`, and from each clip `--variants` clips without speech:
    - noise-only: white noise at the clip's speech level (RMS) and random pixels instead of the mouth;
    - still face: one of the clip's frames held still, with room tone at -55 dBFS.
Each goes through `MMSLlamaASRPipeline` as arrays, per modality (av, audio, video), with `keep_no_speech=True` and no
log-probability threshold, so each chunk gives its mean token log-probability and the streams-only decision; the
decision at a threshold t is then `streams-only or avg_logprob < t` (exactly `is_no_speech`). Reported: the share
of each kind of clip marked `no_speech` (for speech clips: false alarms) at several thresholds.
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from modeling_mmsllama import MMSLlamaForConditionalGeneration, MMSLlamaProcessor  # noqa: E402
from modeling_mmsllama.configuration_mmsllama import AUDIO_SAMPLING_RATE, MODALITIES  # noqa: E402
from modeling_mmsllama.pipeline_mmsllama import MMSLlamaASRPipeline  # noqa: E402


ROOM_TONE_DBFS = -55.0
THRESHOLDS = (None, -0.1, -0.2, -0.3, -0.4, -0.45, -0.5, -1.0)
KINDS = ("speech", "noise-only", "still face")


def load_test_clips(utterances: int) -> list:
    from processing.synth.corpus import CorpusConfig, generate_corpus
    from training.data import load_split

    folder = Path(tempfile.mkdtemp(prefix="no_speech_corpus_"))
    generate_corpus(folder, CorpusConfig(utterances=utterances, seed=0, face_splits=()), progress=False)
    return load_split(folder, "test")


def clips_without_speech(utterance, variants: int, rng: np.random.Generator) -> dict[str, list]:
    """The noise-only and still-face clips made from one test clip: (frames, audio) pairs of the same length."""
    frames, audio = utterance.frames, utterance.audio.astype(np.float32)
    level = float(np.sqrt(np.mean(audio**2)))
    made = {"noise-only": [], "still face": []}
    for variant in range(variants):
        noise = (level * rng.standard_normal(len(audio))).astype(np.float32)
        pixels = rng.integers(0, 256, frames.shape, dtype=np.uint8)
        made["noise-only"].append((pixels, noise))
        held = frames[(variant * len(frames)) // max(variants, 1)]
        room_tone = (10 ** (ROOM_TONE_DBFS / 20) * rng.standard_normal(len(audio))).astype(np.float32)
        made["still face"].append((np.repeat(held[None], len(frames), axis=0), room_tone))
    return made


def chunk_outcomes(asr, clips: list, modality: str, num_beams: int) -> list[tuple[bool, float | None]]:
    """(streams-only no-speech decision, mean token log-probability) of every chunk of every clip."""
    inputs = [
        {"video": frames, "audio": audio, "sampling_rate": AUDIO_SAMPLING_RATE}
        if modality == "av"
        else {"audio": audio, "sampling_rate": AUDIO_SAMPLING_RATE}
        if modality == "audio"
        else {"video": frames}
        for frames, audio in clips
    ]
    results = asr(inputs, batch_size=8, num_beams=num_beams, keep_no_speech=True, no_speech_logprob=None)
    return [(chunk["no_speech"], chunk["avg_logprob"]) for result in results for chunk in result["chunks"]]


def marked_share(outcomes, threshold: float | None) -> float:
    marked = [streams or (threshold is not None and logprob is not None and logprob < threshold)
              for streams, logprob in outcomes]  # fmt: skip
    return 100.0 * sum(marked) / len(marked)


def report(outcomes: dict, counts: dict, args, configured: float | None, seconds: float) -> str:
    lines = [
        f"Demo model `{args.model}`, {counts['speech']} test clips of a {args.utterances}-utterance corpus (seed 0) "
        f"and {counts['noise-only']} noise-only / {counts['still face']} still-face clips made from them "
        f"({args.variants} per clip), beam {args.num_beams}; {seconds:.0f} s on {torch.get_num_threads()} threads.",
        "",
        "Share of clips marked `no_speech` (%; for speech clips these are false alarms), by log-probability "
        f"threshold (`none`: the streams' activity alone). The model's `config.no_speech_logprob`: {configured}.",
        "",
        "| modality | clips | " + " | ".join("none" if t is None else f"{t:g}" for t in THRESHOLDS) + " |",
        "|---|---|" + "---:|" * len(THRESHOLDS),
    ]
    for modality in args.modalities:
        for kind in KINDS:
            shares = " | ".join(f"{marked_share(outcomes[modality, kind], t):.0f}" for t in THRESHOLDS)
            lines.append(f"| {modality} | {kind} | {shares} |")
    lines += ["", "Mean token log-probability per chunk (min / median / max):", "",
              "| modality | clips | min | median | max |", "|---|---|---:|---:|---:|"]  # fmt: skip
    for modality in args.modalities:
        for kind in KINDS:
            values = [logprob for _, logprob in outcomes[modality, kind] if logprob is not None]
            summary = " | ".join(f"{v:.3f}" for v in (min(values), float(np.median(values)), max(values)))
            lines.append(f"| {modality} | {kind} | {summary} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(REPO / "demo_model"))
    parser.add_argument("--utterances", type=int, default=48, help="corpus size (its test split is ~1/8 of it)")
    parser.add_argument("--variants", type=int, default=3, help="noise-only and still-face clips made per test clip")
    parser.add_argument("--num-beams", type=int, default=1)
    parser.add_argument("--modalities", nargs="+", default=list(MODALITIES), choices=MODALITIES)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", help="also write the report here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    model = MMSLlamaForConditionalGeneration.from_pretrained(args.model).eval()
    asr = MMSLlamaASRPipeline(model=model, processor=MMSLlamaProcessor.for_model(args.model, model.config))
    utterances = load_test_clips(args.utterances)
    rng = np.random.default_rng(0)
    clips = {"speech": [(u.frames, u.audio.astype(np.float32)) for u in utterances], "noise-only": [],
             "still face": []}  # fmt: skip
    for utterance in utterances:
        for kind, made in clips_without_speech(utterance, args.variants, rng).items():
            clips[kind] += made

    started = time.perf_counter()
    outcomes = {(modality, kind): chunk_outcomes(asr, clips[kind], modality, args.num_beams)
                for modality in args.modalities for kind in KINDS}  # fmt: skip
    counts = {kind: len(clips[kind]) for kind in KINDS}
    text = report(outcomes, counts, args, model.config.no_speech_logprob, time.perf_counter() - started)
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()

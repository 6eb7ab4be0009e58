"""WER per modality and SNR, with the token rate and the rate predictor's error beside it.

Noise is babble made of utterances that are not in the evaluated split, mixed at the exact SNR asked for with a
fixed generator per utterance, so every run and every modality sees the same noisy audio (the reference evaluation
ignored the requested SNR, paper-spec 8.3).
"""

import json
import re
from pathlib import Path

import jiwer
import numpy as np
import torch
from tqdm.auto import tqdm

from modeling_mmsllama.configuration_mmsllama import AUDIO_SAMPLING_RATE, VIDEO_FPS
from processing.noise import babble_noise, mix_at_snr

from .data import Utterance


EVAL_BABBLE_SECONDS = 30
EVAL_NOISE_SEED = 1234
EVAL_NOISE_UTTERANCES = 200  # the noise split's first utterances, summed into the babble
MODALITY_NAMES = {"av": "av", "a": "audio", "audio": "audio", "v": "video", "video": "video"}


def normalize_text(text: str) -> str:
    """Lower case, punctuation removed (apostrophes kept), single spaces."""
    text = re.sub(r"[^a-z0-9' ]+", " ", text.lower())
    return " ".join(text.split())


def word_error_rate(references: list[str], hypotheses: list[str]) -> float:
    """Corpus WER in percent, on normalised text (`normalize_text`)."""
    return token_error_rate([normalize_text(r) for r in references], [normalize_text(h) for h in hypotheses])


def token_error_rate(references: list[str], hypotheses: list[str]) -> float:
    """Corpus error rate in percent over space-separated tokens (words, phonemes, ...), taken as they are: sum of
    substitutions, deletions and insertions over the reference tokens."""
    if not any(references):
        raise ValueError("WER needs at least one non-empty reference transcript.")
    errors = words = 0
    for reference, hypothesis in zip(references, hypotheses):
        if not hypothesis:
            errors += len(reference.split())
        else:
            result = jiwer.process_words(reference, hypothesis)
            errors += result.substitutions + result.deletions + result.insertions
        words += len(reference.split())
    return 100.0 * errors / words


def evaluation_noise(utterances: list[Utterance], seed: int = EVAL_NOISE_SEED) -> np.ndarray:
    """A fixed babble signal made of the given (held-apart) utterances."""
    waveforms = [u.audio.astype(np.float32) for u in utterances]
    return babble_noise(waveforms, EVAL_BABBLE_SECONDS * AUDIO_SAMPLING_RATE, rng=np.random.default_rng(seed))


def noisy_audio(utterance: Utterance, index: int, noise: np.ndarray | None, snr_db: float | None) -> np.ndarray:
    audio = utterance.audio.astype(np.float32)
    if snr_db is None:
        return audio
    return mix_at_snr(audio, noise, snr_db, rng=np.random.default_rng([EVAL_NOISE_SEED, index]))


@torch.no_grad()
def transcribe(model, processor, utterances: list[Utterance], modality: str = "av", snr_db: float | None = None,
               noise: np.ndarray | None = None, batch_size: int = 8, num_beams: int = 5, max_new_tokens: int = 64,
               progress: bool = True, queries_per_second: float | None = None) -> dict:  # fmt: skip
    """Decodes `utterances`; returns hypotheses, speech tokens per sample, and predicted rates (or None).
    `queries_per_second` replaces the model's f_Q for these decodes (the token budget)."""
    modality = MODALITY_NAMES[modality]
    model.eval()
    hypotheses, tokens, rates = [], [], []
    starts = range(0, len(utterances), batch_size)
    for start in tqdm(starts, desc=f"{modality} {'clean' if snr_db is None else f'{snr_db:g} dB'}", disable=not progress):
        batch = utterances[start : start + batch_size]
        inputs = processor(
            videos=[u.frames for u in batch] if modality != "audio" else None,
            audio=[noisy_audio(u, start + i, noise, snr_db) for i, u in enumerate(batch)] if modality != "video" else None,
            sampling_rate=AUDIO_SAMPLING_RATE,
            video_is_roi=True,
            modality=modality,
        )
        inputs = {k: v.to(model.device) for k, v in inputs.items()}
        prompt = {k: inputs.pop(k) for k in ("input_ids", "attention_mask")}
        with torch.no_grad():
            speech = model.get_speech_embeddings(**inputs, queries_per_second=queries_per_second)
            ids = model.generate(**prompt, speech_embeddings=speech, num_beams=num_beams, do_sample=False,
                                 max_new_tokens=max_new_tokens)  # fmt: skip
        tokens += speech.num_speech_tokens.tolist()
        rates += speech.predicted_rate.tolist() if speech.predicted_rate is not None else [None] * len(batch)
        hypotheses += processor.batch_decode(ids, skip_special_tokens=True)
    return {"hypotheses": hypotheses, "num_speech_tokens": tokens, "predicted_rates": rates}


def evaluate(model, processor, utterances: list[Utterance], noise: np.ndarray, snrs: list[float | None],
             modalities: list[str], batch_size: int = 8, num_beams: int = 5, progress: bool = True) -> dict:  # fmt: skip
    """WER (%) for every modality x SNR, with tokens per second of speech and the rate predictor's mean abs error."""
    references = [u.text for u in utterances]
    seconds = sum(len(u.frames) for u in utterances) / VIDEO_FPS
    rows = []
    for modality in [MODALITY_NAMES[m] for m in modalities]:
        video_row = None  # video-only input does not hear the noise: decoded once, reported at every SNR
        for snr in snrs:
            if video_row is not None:
                rows.append({**video_row, "snr_db": snr})
                continue
            out = transcribe(model, processor, utterances, modality, snr, noise, batch_size, num_beams, progress=progress)
            rate_errors = [abs(r - u.speech_rate) for r, u in zip(out["predicted_rates"], utterances) if r is not None]
            rows.append({
                "modality": modality,
                "snr_db": snr,
                "wer": round(word_error_rate(references, out["hypotheses"]), 2),
                "tokens_per_second": round(sum(out["num_speech_tokens"]) / seconds, 3),
                "rate_mean_abs_error": round(float(np.mean(rate_errors)), 4) if rate_errors else None,
                "examples": [{"reference": r, "hypothesis": h} for r, h in zip(references[:3], out["hypotheses"][:3])],
            })  # fmt: skip
            if modality == "video":
                video_row = rows[-1]
    return {"num_utterances": len(utterances), "seconds": round(seconds, 2), "num_beams": num_beams, "results": rows}


def format_table(report: dict) -> str:
    """The WER table as Markdown: rows modality, columns SNR."""
    snrs = list(dict.fromkeys(r["snr_db"] for r in report["results"]))
    modalities = list(dict.fromkeys(r["modality"] for r in report["results"]))
    header = "| modality | " + " | ".join("clean" if s is None else f"{s:g} dB" for s in snrs) + " | tokens/s |"
    lines = [header, "|" + "---|" * (len(snrs) + 2)]
    for modality in modalities:
        rows = {r["snr_db"]: r for r in report["results"] if r["modality"] == modality}
        cells = [f"{rows[s]['wer']:.1f}" if s in rows else "" for s in snrs]
        lines.append(f"| {modality} | " + " | ".join(cells) + f" | {next(iter(rows.values()))['tokens_per_second']:.2f} |")
    return "\n".join(lines)


def plot(report: dict, path: Path) -> None:
    """WER against SNR, one line per modality (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(5, 3.5))
    snrs = list(dict.fromkeys(r["snr_db"] for r in report["results"]))
    labels = ["clean" if s is None else f"{s:g}" for s in snrs]
    for modality in dict.fromkeys(r["modality"] for r in report["results"]):
        rows = {r["snr_db"]: r["wer"] for r in report["results"] if r["modality"] == modality}
        axis.plot(labels, [rows.get(s) for s in snrs], marker="o", label=modality)
    axis.set_xlabel("SNR (dB, babble)")
    axis.set_ylabel("WER (%)")
    axis.legend()
    axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def write_report(report: dict, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "eval.json").write_text(json.dumps(report, indent=2) + "\n")
    (folder / "eval.md").write_text(f"WER (%), {report['num_utterances']} utterances, beam {report['num_beams']}\n\n"
                                    + format_table(report) + "\n")  # fmt: skip
    try:
        plot(report, folder / "eval.png")
    except ImportError:
        print("matplotlib is not installed: no eval.png (pip install matplotlib)")

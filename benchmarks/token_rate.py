"""Part 1: speech tokens per second into the LLM, per compression mode, over a manifest's durations and rates.

Protocol: for every utterance, `model.num_speech_tokens(num_video_frames, speech_rate)` of a paper-size model
(built on the meta device: the count depends only on the config) gives the number of speech tokens; the rate is
the manifest's ground-truth `speech_rate` label standing in for the predictor's output. The token rate is the
total number of speech tokens over the total seconds of video (25 fps), as in paper-spec section 10.
"""

import torch

from modeling_mmsllama import MMSLlamaConfig, MMSLlamaForConditionalGeneration

from .common import VIDEO_FPS, Utterance


# (label, config overrides, whether the ground-truth rate is fed as the predictor's output)
MODES = [
    ("baseline (Llama-AVSR style)", {"compression": "baseline"}, False),
    ("fusion_only (early AV fusion)", {"compression": "fusion_only"}, False),
    ("qformer, no rate predictor", {"compression": "qformer", "use_rate_predictor": False}, False),
    ("qformer + rate predictor (GT rate)", {"compression": "qformer", "use_rate_predictor": True}, True),
]
MODE_KEYS = ["baseline", "fusion_only", "qformer_no_rate", "qformer_with_rate"]


def meta_model(preset: str = "paper-3b", **overrides) -> MMSLlamaForConditionalGeneration:
    """A model without storage: enough for the token budget and for FLOP counting."""
    config = MMSLlamaConfig.from_preset(preset, **overrides)
    with torch.device("meta"):
        return MMSLlamaForConditionalGeneration(config).eval()


def tokens_per_utterance(model, utterances: list[Utterance], use_rate: bool) -> torch.Tensor:
    frames = torch.tensor([u.num_video_frames for u in utterances])
    rates = torch.tensor([u.speech_rate for u in utterances], dtype=torch.float64) if use_rate else None
    return model.num_speech_tokens(frames, rates)


def token_rate(utterances: list[Utterance], preset: str = "paper-3b", queries_per_second: float | None = None) -> dict:
    """Tokens per second of speech for each mode in `MODE_KEYS`: total tokens / total seconds."""
    seconds = sum(u.num_video_frames for u in utterances) / VIDEO_FPS
    extra = {} if queries_per_second is None else {"queries_per_second": queries_per_second}
    result = {}
    for key, (_, overrides, use_rate) in zip(MODE_KEYS, MODES):
        model = meta_model(preset, **overrides, **extra)
        tokens = tokens_per_utterance(model, utterances, use_rate)
        result[key] = float(tokens.sum()) / seconds
    return result


def summary(utterances: list[Utterance]) -> dict:
    durations = [u.duration_s for u in utterances]
    words = [u.num_words for u in utterances if u.num_words is not None]
    return {
        "utterances": len(utterances),
        "mean_duration_s": sum(durations) / len(durations),
        "min_duration_s": min(durations),
        "max_duration_s": max(durations),
        "mean_rate_label": sum(u.speech_rate for u in utterances) / len(utterances),
        "mean_words": sum(words) / len(words) if words else None,
    }


def qps_sweep(utterances: list[Utterance], values=(1, 2, 3, 4, 5, 6, 8)) -> list[tuple[float, float, float]]:
    """(f_Q, tokens/s without rate, tokens/s with GT rate) for several queries per second."""
    rows = []
    for qps in values:
        rates = token_rate(utterances, queries_per_second=float(qps))
        rows.append((float(qps), rates["qformer_no_rate"], rates["qformer_with_rate"]))
    return rows

"""Stage-2 test bed: trains what the avsr stage trains on *oracle* encoder features instead of the encoders' outputs.

The audio features are one-hot phonemes at 50 Hz from the manifest's phoneme spans (`{split}.phn` + `.ali`, which the
synthetic corpus writes), the video features are zero. Whatever the adapter, Q-Former, projector and LLM cannot learn from these, they cannot learn from
real encoders either, so this separates a slow stage 2 from weak encoders in minutes. `--features spiky` puts each
phoneme on one frame and a "blank" unit on all others, as a CTC-trained encoder's output looks (the demo encoders
give blank on 87% of audio frames).

    python -m training.diagnostics --data data/synthgrid --steps 300
    python -m training.diagnostics --data data/synthgrid --steps 300 --features spiky
    python -m training.diagnostics --data data/synthgrid --config_overrides '{"qformer_window": null}'

Prints the transcript cross-entropy every `--log_every` steps beside the level of the grammar alone, which a model that
ignores the speech reaches and cannot pass, and the cross-entropy of each grammar slot (the letter slot, 25 short and
confusable words, is the one the demo model gets wrong most).
"""

import argparse
import json
import math
import time

import numpy as np
import torch

from modeling_mmsllama import MMSLlamaConfig, MMSLlamaForConditionalGeneration, MMSLlamaProcessor
from processing.synth.grammar import SLOT_NAMES, SLOTS

from .collator import AVSRCollator
from .data import Utterance, load_split
from .stages import frozen_modules


FEATURE_KINDS = ("dense", "spiky")
ORACLE_VALUE = 3.0  # the one-hot's height, about the scale of a trained encoder's features after its LayerNorm
AUDIO_FRAMES_PER_SECOND = 50


class OracleFeaturesModel(MMSLlamaForConditionalGeneration):
    """MMS-LLaMA whose encoders are replaced by given features: set `oracle_audio` (B, 2T, Da) before each forward."""

    oracle_audio: torch.Tensor | None = None

    def _encode_audio(self, input_features: torch.Tensor, num_frames: torch.Tensor) -> torch.Tensor:
        return self.oracle_audio

    def _encode(self, module, pixel_values_videos: torch.Tensor, video_mask: torch.Tensor) -> torch.Tensor:
        return pixel_values_videos.new_zeros(*pixel_values_videos.shape[:2], self.config.vision_config.hidden_size)


def oracle_features(timings, inventory: dict[str, int], num_audio_frames: int, dim: int, kind: str) -> torch.Tensor:
    """(num_audio_frames, dim): a one-hot phoneme per 20 ms frame over each phoneme's span ("dense"), or on its middle
    frame only with a blank unit (the last dimension) everywhere else ("spiky")."""
    features = torch.zeros(num_audio_frames, dim)
    if kind == "spiky":
        features[:, dim - 1] = ORACLE_VALUE
    for phoneme, start, end in timings:
        first = min(int(start * AUDIO_FRAMES_PER_SECOND), num_audio_frames - 1)
        last = min(max(first + 1, int(end * AUDIO_FRAMES_PER_SECOND)), num_audio_frames)
        if kind == "spiky":
            first = last = min(int((start + end) / 2 * AUDIO_FRAMES_PER_SECOND), num_audio_frames - 1)
            features[first, dim - 1] = 0.0
            last += 1
        features[first:last, inventory[phoneme]] = ORACLE_VALUE
    return features


def grammar_level(utterances: list[Utterance], tokenizer) -> float:
    """Cross-entropy per transcript token (EOS included) of a model that knows the grammar and ignores the speech."""
    nats = sum(math.log(len(slot)) for slot in SLOTS)
    tokens = sum(len(tokenizer(u.text, add_special_tokens=False)["input_ids"]) + 1 for u in utterances)
    return nats * len(utterances) / tokens


def slot_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor | None:
    """Mean cross-entropy (nats) of each transcript token position: (len(SLOTS) + 1,), EOS last; None when a
    row's transcript is not one token per word (a tokenizer other than the demo's word vocabulary).

    logits (B, L', V) of the merged sequence; labels (B, L) as the collator gives them. Rows are left-padded when the
    speech is merged in, so a label keeps its distance from the end of its row: label k sits at L' - L + k.
    """
    shift = logits.shape[1] - labels.shape[1]
    predicted = logits[:, shift - 1 : -1].float()  # the logits that predict labels[:, k] sit at shift - 1 + k
    is_label = labels != -100
    if not bool((is_label.sum(-1) == len(SLOTS) + 1).all()):
        return None
    losses = torch.nn.functional.cross_entropy(predicted.transpose(1, 2), labels.clamp(min=0), reduction="none")
    return losses[is_label].view(len(labels), len(SLOTS) + 1).mean(0)


def run(data: str, steps: int = 300, kind: str = "dense", overrides: dict | None = None, batch_size: int = 16,
        learning_rate: float = 1e-3, preset: str = "demo", seed: int = 0, log_every: int = 25) -> list[float]:  # fmt: skip
    """Trains the avsr stage's parts (LLM included, from scratch) on oracle features; returns the loss per step."""
    if kind not in FEATURE_KINDS:
        raise SystemExit(f"--features must be one of {FEATURE_KINDS}, got {kind!r}")
    torch.manual_seed(seed)
    config = MMSLlamaConfig.from_preset(preset, frozen_modules=frozen_modules("avsr", 0), use_rate_predictor=False,
                                        **(overrides or {}))  # fmt: skip
    model = OracleFeaturesModel(config).train()
    processor = MMSLlamaProcessor.from_config(config)
    utterances = load_split(data, "train", max_frames=config.max_video_frames)
    timings = [u.phoneme_spans() for u in utterances]
    if any(t is None for t in timings):
        raise SystemExit(f"{data}: the oracle needs phoneme spans ({{split}}.phn and .ali beside the manifest)")
    inventory = {p: i for i, p in enumerate(sorted({p for t in timings for p, _, _ in t}))}
    dim = config.audio_config.d_model
    if len(inventory) >= dim:
        raise SystemExit(f"{len(inventory)} phonemes do not fit the audio width {dim} with a blank unit")
    print(f"oracle {kind} features: {len(inventory)} phonemes, {len(utterances)} utterances; the grammar alone gives "
          f"{grammar_level(utterances, processor.tokenizer):.3f} nats per token")  # fmt: skip

    collator = AVSRCollator(processor)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=learning_rate, weight_decay=0.0)
    warmup = max(1, steps // 6)
    rng = np.random.default_rng(seed)
    losses, slot_losses, start = [], [], time.time()
    for step in range(1, steps + 1):
        rows = rng.choice(len(utterances), batch_size, replace=False)
        batch = collator([utterances[i] for i in rows])
        audio_frames = 2 * batch["video_mask"].shape[1]
        model.oracle_audio = torch.stack([oracle_features(timings[i], inventory, audio_frames, dim, kind) for i in rows])
        for group in optimizer.param_groups:
            group["lr"] = learning_rate * min(1.0, step / warmup)
        outputs = model(**batch)
        loss = outputs.loss
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        losses.append(loss.item())
        with torch.no_grad():
            per_slot = slot_cross_entropy(outputs.logits, batch["labels"])
        if per_slot is not None:
            slot_losses.append(per_slot.numpy())
        if step % log_every == 0 or step == steps:
            slots = ""
            if slot_losses:
                recent = np.mean(slot_losses[-log_every:], axis=0)
                slots = "; per slot " + " ".join(f"{name} {value:.2f}" for name, value in zip(SLOT_NAMES, recent))
            loss_text = f"loss {np.mean(losses[-log_every:]):.3f}{slots}"
            print(f"step {step}: {loss_text} ({time.time() - start:.0f} s)", flush=True)
    return losses


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m training.diagnostics", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="data/synthgrid", help="a corpus with phoneme spans (.phn + .ali)")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--features", default="dense", choices=FEATURE_KINDS)
    parser.add_argument("--config_overrides", default=None, help="JSON of MMSLlamaConfig overrides")
    parser.add_argument("--preset", default="demo")
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--learning_rate", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    overrides = json.loads(args.config_overrides) if args.config_overrides else None
    run(args.data, args.steps, args.features, overrides, args.batch_size, args.learning_rate, args.preset, args.seed)


if __name__ == "__main__":
    main()

"""Feature-level augmentation of the encoders' inputs, so that the encoders (encoders stage) and the parts reading them
(avsr stage) generalise to voices and faces they never saw.

Trained on the synthetic corpus's 18 training speakers, the demo encoders reached 1.6% phone error on training
speakers and 35% (audio) / 42% (video) on held-out ones: they learned the speakers. `EncoderAugment` perturbs what
differs between speakers and keeps what the labels depend on:
- audio: a random warp of the mel frequency axis (vocal-tract length; Jaitly & Hinton, 2013), then frequency and time
  masks (SpecAugment; Park et al., 2019);
- video: a random gain and offset of each clip's normalised pixels (skin, lip and lighting), then time masks.
Every draw comes from the batch's generator (see `training/collator.py`), so a resumed run augments as an
uninterrupted one.
"""

from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class EncoderAugment:
    """Random perturbations of `input_features` (B, M, T) log-mels and `pixel_values_videos` (B, T, C, H, W)."""

    frequency_warp: float = 0.12  # the mel axis is stretched by a factor in [1 - w, 1 + w]
    frequency_masks: int = 2
    frequency_mask_bins: int = 10  # widest mask, mel bins
    audio_time_masks: int = 2
    audio_time_mask_frames: int = 20  # widest mask, mel frames (10 ms each)
    video_gain: float = 0.3  # pixel gain in [1 - g, 1 + g]
    video_offset: float = 0.3  # offset in [-o, o], in units of the normalised pixels' standard deviation
    video_time_masks: int = 1
    video_time_mask_frames: int = 5  # widest mask, video frames (40 ms each)

    def __call__(self, features: dict, rng: np.random.Generator) -> dict:
        if features.get("input_features") is not None:
            features["input_features"] = self.audio(features["input_features"], features["input_features_mask"], rng)
        if features.get("pixel_values_videos") is not None:
            features["pixel_values_videos"] = self.video(features["pixel_values_videos"], features["video_mask"], rng)
        return features

    def audio(self, mels: torch.Tensor, mask: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        """(B, M, T) log-mels with `mask` (B, T) True on real frames -> warped and masked copy."""
        mels = mels.clone()
        num_bins = mels.shape[1]
        for i in range(len(mels)):
            length = int(mask[i].sum())
            sample = warp_frequency(mels[i, :, :length], rng.uniform(1 - self.frequency_warp, 1 + self.frequency_warp))
            fill = sample.mean()
            for _ in range(self.frequency_masks):
                start, width = _span(num_bins, self.frequency_mask_bins, rng)
                sample[start : start + width] = fill
            for _ in range(self.audio_time_masks):
                start, width = _span(length, self.audio_time_mask_frames, rng)
                sample[:, start : start + width] = fill
            mels[i, :, :length] = sample
        return mels

    def video(self, pixels: torch.Tensor, mask: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        """(B, T, C, H, W) normalised pixels with `mask` (B, T) True on real frames -> jittered and masked copy.

        Two passes over the pixels (a clip holds ~0.5 M): their means, then gain and offset per frame (1 and 0 on
        padding).
        """
        lengths = mask.sum(-1)
        gains, offsets, spans = [], [], []
        for length in lengths.tolist():
            gains.append(rng.uniform(1 - self.video_gain, 1 + self.video_gain))
            offsets.append(rng.uniform(-self.video_offset, self.video_offset))
            spans.append([_span(length, self.video_time_mask_frames, rng) for _ in range(self.video_time_masks)])
        gain = torch.tensor(gains, dtype=pixels.dtype)[:, None]  # (B, 1)
        offset = torch.tensor(offsets, dtype=pixels.dtype)[:, None]
        frame_gain = torch.where(mask, gain, 1.0).to(pixels.dtype)[:, :, None, None, None]  # (B, T, 1, 1, 1)
        frame_offset = torch.where(mask, offset, 0.0).to(pixels.dtype)[:, :, None, None, None]
        clip_means = (pixels.mean(dim=(2, 3, 4)) * mask).sum(-1) / lengths.clamp(min=1)  # (B,), real frames only
        fills = gain[:, 0] * clip_means + offset[:, 0]  # each jittered clip's mean
        pixels = torch.addcmul(frame_offset, pixels, frame_gain)
        for i, clip_spans in enumerate(spans):
            for start, width in clip_spans:
                pixels[i, start : start + width] = fills[i]
        return pixels


def warp_frequency(mels: torch.Tensor, factor: float) -> torch.Tensor:
    """Stretches the frequency axis of (M, T) log-mels by `factor` (> 1 moves energy up), linearly interpolated;
    bins beyond the top repeat the top bin."""
    num_bins = mels.shape[0]
    source = torch.clamp(torch.arange(num_bins, dtype=torch.float32) / factor, max=num_bins - 1)
    low = source.floor().long()
    high = torch.clamp(low + 1, max=num_bins - 1)
    weight = (source - low).to(mels.dtype)[:, None]
    return mels[low] * (1 - weight) + mels[high] * weight


def _span(length: int, widest: int, rng: np.random.Generator) -> tuple[int, int]:
    """A random span [start, start + width) of at most `widest` positions inside `length` ones."""
    width = int(rng.integers(0, min(widest, length) + 1))
    return int(rng.integers(0, length - width + 1)), width


__all__ = ["EncoderAugment", "warp_frequency"]

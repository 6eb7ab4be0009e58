"""Random model inputs shaped as MMSLlamaProcessor returns them, for the tiny preset."""

import torch

from modeling_mmsllama import MMSLlamaConfig, MMSLlamaForConditionalGeneration
from modeling_mmsllama.configuration_mmsllama import MEL_FRAMES_PER_VIDEO_FRAME


PAD, BOS, EOS, SPEECH = 0, 1, 2, 3  # character tokenizer ids
PROMPT = [BOS, 40, 41, 42, SPEECH]


def tiny_model(seed: int = 0, **overrides) -> MMSLlamaForConditionalGeneration:
    torch.manual_seed(seed)
    return MMSLlamaForConditionalGeneration(MMSLlamaConfig.from_preset("tiny", **overrides)).eval()


def media(config: MMSLlamaConfig, num_frames: list[int], seed: int = 0) -> dict:
    """Audio features and video for clips of the given lengths (25 fps), zero-padded with masks."""
    generator = torch.Generator().manual_seed(seed)
    batch, longest = len(num_frames), max(num_frames)
    input_features = torch.zeros(batch, config.audio_config.num_mel_bins, config.num_mel_frames)
    input_features_mask = torch.zeros(batch, config.num_mel_frames, dtype=torch.long)
    pixel_values_videos = torch.zeros(batch, longest, 1, 88, 88)
    video_mask = torch.zeros(batch, longest, dtype=torch.bool)
    for i, frames in enumerate(num_frames):
        mel = min(frames * MEL_FRAMES_PER_VIDEO_FRAME, config.num_mel_frames)
        input_features[i, :, :mel] = torch.randn(config.audio_config.num_mel_bins, mel, generator=generator)
        input_features_mask[i, :mel] = 1
        pixel_values_videos[i, :frames] = torch.randn(frames, 1, 88, 88, generator=generator)
        video_mask[i, :frames] = True
    return {
        "input_features": input_features,
        "input_features_mask": input_features_mask,
        "pixel_values_videos": pixel_values_videos,
        "video_mask": video_mask,
    }


def prompts(transcripts: list[list[int]] | None = None, batch: int = 1) -> dict:
    """Left-padded prompt (+ transcript + EOS) ids with labels on the transcript, as the processor builds them."""
    transcripts = transcripts if transcripts is not None else [[] for _ in range(batch)]
    rows = [PROMPT + (t + [EOS] if t else []) for t in transcripts]
    longest = max(len(r) for r in rows)
    input_ids = torch.full((len(rows), longest), PAD)
    attention_mask = torch.zeros_like(input_ids)
    labels = torch.full_like(input_ids, -100)
    for i, (row, transcript) in enumerate(zip(rows, transcripts)):
        input_ids[i, longest - len(row) :] = torch.tensor(row)
        attention_mask[i, longest - len(row) :] = 1
        if transcript:
            labels[i, longest - len(transcript) - 1 :] = torch.tensor(transcript + [EOS])
    out = {"input_ids": input_ids, "attention_mask": attention_mask}
    if any(transcripts):
        out["labels"] = labels
    return out

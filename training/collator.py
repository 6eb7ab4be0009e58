"""Batching: decoded utterances -> model inputs, with noise, modality dropout and video augmentation.

Each batch's randomness (noise, dropped streams, crops and flips) comes from one seed per batch. Under
`MMSLlamaTrainer` that seed is a function of (run seed, process index, batch position in the run), so a resumed run
sees the same noise, crops and dropped streams as an uninterrupted one whatever the dataloader fetched ahead, and
collating never touches torch's global generator (which the model's dropout uses and `Trainer` checkpoints).

Why not just draw the batch seed from torch's global generator, which `Trainer` saves in every checkpoint?
accelerate's `DataLoaderShard` fetches one batch ahead, so batch k+1 is collated *before* step k's forward pass and
checkpoint: its draws are never saved, and a resumed run would collate it from another generator state.
"""

import numpy as np
import torch

from modeling_mmsllama.configuration_mmsllama import AUDIO_SAMPLING_RATE, VIDEO_FPS
from processing.noise import NoiseAugmenter, babble_noise, pink_noise, white_noise

from .augment import EncoderAugment
from .ctc import CTCVocabulary
from .data import Utterance


BABBLE_SECONDS = 10  # length of each pre-mixed babble signal
NUM_BABBLE_SIGNALS = 8


def training_noises(utterances: list[Utterance], seed: int) -> list[np.ndarray]:
    """Babble made of training utterances (several mixes), plus white and pink noise, all 16 kHz mono."""
    rng = np.random.default_rng(seed)
    waveforms = [u.audio.astype(np.float32) for u in utterances]
    num_samples = BABBLE_SECONDS * AUDIO_SAMPLING_RATE
    noises = [babble_noise(waveforms, num_samples, rng=rng) for _ in range(NUM_BABBLE_SIGNALS)]
    return noises + [white_noise(num_samples, rng), pink_noise(num_samples, rng)]


def batch_seed(seed: int, stream: int, position: int) -> int:
    """The seed of the `position`-th batch (counted from the start of the run) collated by process `stream`."""
    return int(np.random.SeedSequence([seed, stream, position]).generate_state(1)[0])


class AVSRCollator:
    """Utterances -> `MMSLlamaProcessor` outputs (+ per-sample `has_audio` / `has_video`).

    Args:
        processor (`MMSLlamaProcessor`): featurises audio, video and text.
        noise (`NoiseAugmenter`, *optional*): training noise (its generator is re-seeded per batch).
        drop_audio (`float`) / drop_video (`float`): probability of zeroing a sample's audio / video stream (never both).
        augment (`bool`): random crop and horizontal flip of the mouth crops.
        with_text (`bool`): append transcripts and return `labels` (training); else prompt only (generation).
        ctc (`CTCVocabulary`, *optional*): also return `ctc_labels` (its unit ids, -100 padded) for the encoders stage.
        frame_targets (`bool`): with `ctc`, also return `audio_frame_labels` (B, 2T) at 50 Hz and `video_frame_labels`
            (B, T) at 25 Hz, the phoneme of every frame (framewise encoder objective).
        encoder_augment (`EncoderAugment`, *optional*): feature-level audio and video augmentation of the encoders'
            inputs (encoders and avsr stages).
        modality (`str`): `"av"`, `"audio"` or `"video"`: which streams to feed at all.
        seed (`int`, *optional*): makes the batch seeds `batch_seed(seed, stream, position)`, where `position`
            (attribute `batches_collated`) counts the batches collated so far and `stream` (attribute) is the process
            index; `MMSLlamaTrainer` sets all three. Without a seed, each batch seed is drawn from torch's global
            generator (reproducible under `torch.manual_seed`, but not exact across a resume).
    """

    def __init__(self, processor, noise: NoiseAugmenter | None = None, drop_audio: float = 0.0,
                 drop_video: float = 0.0, augment: bool = False, with_text: bool = True, ctc: CTCVocabulary | None = None,
                 modality: str = "av", seed: int | None = None,
                 encoder_augment: EncoderAugment | None = None, frame_targets: bool = False):  # fmt: skip
        self.processor = processor
        self.noise = noise
        self.drop_audio, self.drop_video = drop_audio, drop_video
        self.augment = augment
        self.with_text = with_text
        self.ctc = ctc
        self.encoder_augment = encoder_augment
        self.frame_targets = frame_targets
        self.modality = modality
        self.seed = seed
        self.stream = 0
        self.batches_collated = 0

    @property
    def is_random(self) -> bool:
        """Whether collating draws random numbers at all (noise, modality dropout or augmentation)."""
        dropout = self.modality == "av" and (self.drop_audio or self.drop_video)
        noise = self.noise is not None and self.modality != "video"
        return bool(noise or dropout or (self.augment and self.modality != "audio") or self.encoder_augment)

    def _next_seed(self) -> int:
        position, self.batches_collated = self.batches_collated, self.batches_collated + 1
        if self.seed is None:
            return int(torch.randint(0, 2**31 - 1, ()).item())
        return batch_seed(self.seed, self.stream, position)

    def _audio(self, batch: list[Utterance], rng: np.random.Generator) -> list[np.ndarray]:
        audio = [u.audio.astype(np.float32) for u in batch]
        if self.noise is None:
            return audio
        self.noise.rng = rng
        return [self.noise(waveform)[0] for waveform in audio]

    def _stream_presence(self, size: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        draw = rng.random(size)  # one draw per sample: [0, drop_audio) audio off, [1 - drop_video, 1) video off
        has_audio = torch.from_numpy(draw >= self.drop_audio)
        has_video = torch.from_numpy(draw < 1.0 - self.drop_video) | ~has_audio
        return has_audio, has_video

    def __call__(self, batch: list[Utterance]) -> dict:
        if not self.is_random:  # evaluation: nothing to draw, and no generator touched
            return self._collate(batch, None)
        seed = self._next_seed()
        # The video processor draws its crops and flips from torch's global generator: give it the batch's seed
        # and put the global state back afterwards.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return self._collate(batch, np.random.default_rng(seed))

    def _collate(self, batch: list[Utterance], rng: np.random.Generator | None) -> dict:
        texts = [u.text for u in batch]
        inputs = self.processor(
            videos=[u.frames for u in batch] if self.modality != "audio" else None,
            audio=self._audio(batch, rng) if self.modality != "video" else None,
            sampling_rate=AUDIO_SAMPLING_RATE,
            text=texts if self.with_text else None,
            speech_rate=[u.speech_rate for u in batch],
            video_is_roi=True,
            modality=self.modality,
            do_augment=self.augment,
        )
        features = dict(inputs)
        if self.encoder_augment is not None:  # set, it makes the collator random, so rng is given
            features = self.encoder_augment(features, rng)
        if self.modality == "av" and (self.drop_audio or self.drop_video):
            features["has_audio"], features["has_video"] = self._stream_presence(len(batch), rng)
        if self.ctc is not None:
            features["ctc_labels"] = self.ctc.targets(batch)
        if self.ctc is not None and self.frame_targets:
            num_frames = features["video_mask"].sum(-1)
            features["audio_frame_labels"] = self.ctc.frame_targets(batch, 2 * num_frames, 2 * VIDEO_FPS)
            features["video_frame_labels"] = self.ctc.frame_targets(batch, num_frames, VIDEO_FPS)
        return features


class TextCollator:
    """Transcripts -> BOS + text + EOS ids with labels, for pretraining the language model on text."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    def __call__(self, batch: list[Utterance]) -> dict:
        ids = [self.tokenizer(u.text)["input_ids"] + [self.tokenizer.eos_token_id] for u in batch]
        longest = max(len(i) for i in ids)
        input_ids = torch.full((len(ids), longest), self.tokenizer.pad_token_id)
        attention_mask = torch.zeros((len(ids), longest), dtype=torch.long)
        for row, sequence in enumerate(ids):
            input_ids[row, : len(sequence)] = torch.tensor(sequence)
            attention_mask[row, : len(sequence)] = 1
        labels = input_ids.masked_fill(attention_mask == 0, -100)
        return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}

"""Training data: an LRS3-style manifest split, decoded once into memory (and a cache file), as a torch Dataset.

`--data` is either a folder holding `{split}.tsv` / `{split}.wrd` (LRS3 style), or a synthetic corpus root made by
`mmsllama-synth`, whose `roi96/` (or `roi88/`) manifests are used. Decoding mp4 files costs tens of milliseconds
each, more than a training step can afford per sample, so each split is decoded once and kept as uint8 frames and
float16 audio in `{data}/.cache/` (rebuilt when the manifest changes).
"""

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from modeling_mmsllama.configuration_mmsllama import SAMPLES_PER_VIDEO_FRAME
from modeling_mmsllama.errors_mmsllama import MMSLlamaInputError
from modeling_mmsllama.media_mmsllama import align_audio_to_frames, read_media
from processing.manifest import ManifestEntry, read_manifest


logger = logging.getLogger(__name__)

CORPUS_VARIANTS = ("roi96", "roi88")  # mouth crops: 96x96 allows the random 88x88 crop of training
CACHE_DIRNAME = ".cache"
CACHE_VERSION = 4
KEPT_SPLITS = 4  # decoded splits a process keeps in memory, so that later stages of one run skip the cache file
_kept: dict[Path, tuple[int, list, list[str]]] = {}  # cache file -> (its mtime, utterances, bad samples)


@dataclass
class Utterance:
    """One decoded utterance: frames (T, H, W) uint8 at 25 fps, audio (T * 640,) float16 at 16 kHz."""

    frames: np.ndarray
    audio: np.ndarray
    text: str
    speech_rate: float
    source: str
    phonemes: str | None = None  # space-separated, from the manifest's `.phn` file when it has one
    phoneme_times: str | None = None  # `start-end` seconds per phoneme, from the `.ali` file when it has one

    def phoneme_spans(self) -> list[tuple[str, float, float]] | None:
        """(phoneme, start s, end s) from the `.phn` and `.ali` labels, or None when the manifest has no spans."""
        if self.phonemes is None or self.phoneme_times is None:
            return None
        spans = [tuple(float(t) for t in span.split("-")) for span in self.phoneme_times.split()]
        return [(phoneme, start, end) for phoneme, (start, end) in zip(self.phonemes.split(), spans)]


def manifest_folder(data: str | os.PathLike) -> Path:
    """The folder holding `{split}.tsv`: `data` itself, or the mouth-crop variant of a synthetic corpus."""
    data = Path(data)
    if not data.is_dir():
        raise MMSLlamaInputError(f"{data}: no such data folder; make one with `mmsllama-synth --out {data}`.")
    if any(data.glob("*.tsv")):
        return data
    for variant in CORPUS_VARIANTS:
        if any((data / variant).glob("*.tsv")):
            return data / variant
    raise MMSLlamaInputError(f"{data}: no manifests ({{split}}.tsv) here or in {'/'.join(CORPUS_VARIANTS)}/.")


def _decode(entry: ManifestEntry) -> Utterance:
    video = read_media(entry.video_path, audio=False).frames
    if video is None:
        raise MMSLlamaInputError(f"{entry.video_path}: no video stream.", source=entry.video_path)
    audio = read_media(entry.audio_path, video=False).audio
    if audio is None:
        raise MMSLlamaInputError(f"{entry.audio_path}: no audio stream.", source=entry.audio_path)
    audio, _ = align_audio_to_frames(audio, len(video))
    if not entry.transcript or not entry.transcript.strip():
        raise MMSLlamaInputError(f"{entry.video_path}: empty transcript.", source=entry.video_path)
    text = entry.transcript.strip()
    return Utterance(video, audio.astype(np.float16), text, entry.speech_rate, entry.video_path, entry.phonemes,
                     entry.phoneme_times)


def _cache_path(folder: Path, split: str, entries: list[ManifestEntry]) -> Path:
    digest = hashlib.sha256(repr((CACHE_VERSION, entries)).encode()).hexdigest()[:16]
    return folder / CACHE_DIRNAME / f"{split}-{digest}.pt"


def _read_cache(cache: Path) -> tuple[list[Utterance], list[str]]:
    stamp = cache.stat().st_mtime_ns
    if cache not in _kept or _kept[cache][0] != stamp:
        stored = torch.load(cache, weights_only=False)
        _keep(cache, [Utterance(**row) for row in stored["utterances"]], stored["bad"])
    _, utterances, bad = _kept[cache]
    return list(utterances), list(bad)


def _keep(cache: Path, utterances: list[Utterance], bad: list[str]) -> None:
    _kept[cache] = (cache.stat().st_mtime_ns, utterances, bad)
    while len(_kept) > KEPT_SPLITS:
        del _kept[next(iter(_kept))]


def load_split(data: str | os.PathLike, split: str, limit: int | None = None, skip_bad: bool = True,
               max_frames: int | None = None) -> list[Utterance]:  # fmt: skip
    """Decodes a split (cached on disk, and in memory for the process's later calls). A bad sample (unreadable file,
    empty transcript) is reported and skipped, or, with `skip_bad=False`, stops with an error naming it. Utterances
    longer than `max_frames` are left out and counted."""
    utterances = _load_all(data, split, limit, skip_bad)
    if max_frames is None:
        return utterances
    kept = [u for u in utterances if len(u.frames) <= max_frames]
    if len(kept) < len(utterances):
        print(f"{split}: left out {len(utterances) - len(kept)} utterance(s) longer than {max_frames} frames")
    return kept


def _load_all(data, split: str, limit: int | None, skip_bad: bool) -> list[Utterance]:
    folder = manifest_folder(data)
    tsv = folder / f"{split}.tsv"
    if not tsv.exists():
        raise MMSLlamaInputError(f"{folder}: no {split}.tsv (splits here: {sorted(p.stem for p in folder.glob('*.tsv'))}).")
    entries = read_manifest(tsv, folder / f"{split}.wrd")[:limit]
    cache = _cache_path(folder, split, entries)
    if cache.exists():
        utterances, bad = _read_cache(cache)
    else:
        utterances, bad = [], []
        for entry in tqdm(entries, desc=f"decoding {split}", unit="utt"):
            try:
                utterances.append(_decode(entry))
            except MMSLlamaInputError as error:
                bad.append(str(error))
        cache.parent.mkdir(exist_ok=True)
        temporary = cache.with_suffix(f".tmp{os.getpid()}")
        torch.save({"utterances": [vars(u) for u in utterances], "bad": bad}, temporary)
        os.replace(temporary, cache)
        _keep(cache, list(utterances), list(bad))
    if bad and not skip_bad:
        raise MMSLlamaInputError(f"{split}: {len(bad)} bad sample(s); first: {bad[0]}")
    for problem in bad:
        logger.warning(f"skipped: {problem}")
    if bad:
        print(f"{split}: skipped {len(bad)} bad sample(s) of {len(entries)}; first: {bad[0]}")
    return utterances


class AVSRDataset(Dataset):
    """Decoded utterances of one split; items are `Utterance`s, batched by a collator."""

    def __init__(self, utterances: list[Utterance]):
        if not utterances:
            raise MMSLlamaInputError("The split has no usable utterances.")
        self.utterances = utterances

    def __len__(self) -> int:
        return len(self.utterances)

    def __getitem__(self, index: int) -> Utterance:
        return self.utterances[index]

    @property
    def lengths(self) -> list[int]:
        """Video frames per utterance: what `--train_sampling_strategy group_by_length` groups batches by."""
        return [len(u.frames) for u in self.utterances]

    @property
    def seconds(self) -> float:
        return sum(len(u.audio) for u in self.utterances) / (SAMPLES_PER_VIDEO_FRAME * 25)

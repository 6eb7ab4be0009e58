"""Writing the synthetic corpus: utterances, media, metadata, LRS3-style manifests and a `datasets` copy.

Layout of a corpus folder `out/`:

    corpus.json                   settings, speakers and their splits, counts (see `CorpusConfig`)
    meta/<speaker>/<utt>.json     one utterance: text, voice, rate, word and phoneme times, mouth track
    roi88/<speaker>/<utt>.mp4     88x88 gray mouth ROI + 16 kHz AAC audio (model input as is)
    roi96/<speaker>/<utt>.mp4     the 96x96 ROI it is the centre crop of, no audio (for random 88x88
                                  crops; its manifests point `audio_path` at the roi88 file)
    face/<speaker>/<utt>.mp4      320x240 RGB talking face + audio (splits in `face_splits` only)
    <variant>/{train,valid,test}.tsv|.wrd|.phn|.ali, <variant>/manifest.json   LRS3-style manifests per variant
    dataset/                      `datasets.DatasetDict` (save_to_disk), one row per utterance

Utterance `i` is drawn from a generator seeded with `(seed, i)`, so a corpus is the same whatever order
or how many runs it was written in. An utterance counts as done when its metadata file exists; that file
is written last, after its media, and every file is written under a temporary name and then renamed.
Re-running the same command completes a partial corpus.
"""

import json
import os
import shutil
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from functools import partial
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..manifest import LRS3_SPEECH_RATE_CONSTANT, ManifestEntry, speech_rate_label, write_manifest, write_manifest_metadata
from .face import render_face
from .grammar import WORDS_PER_SENTENCE, sample_sentence, spoken_form
from .mp4 import AUDIO_SAMPLE_RATE_HZ, SAMPLES_PER_FRAME, write_mp4
from .mouth import centre_crop, render_roi
from .speakers import RATE_SPREAD, SPLITS, Speaker, make_speakers
from .tts import MIN_RATE_WPM, SynthesisError, TimedUnit, synthesize
from .visemes import mouth_track


CORPUS_VERSION = 1
DATASET_TAG = "synthgrid"
VARIANTS = ("roi88", "roi96", "face")
AUDIO_SOURCE = {"roi96": "roi88"}  # variants stored without audio, and the variant whose file has it
MAX_RATE_WPM = 320  # faster than this, espeak's words blur together
LEAD_SILENCE_S = (0.1, 0.3)  # silence before and after the speech, uniform in this range
TAIL_SILENCE_S = (0.1, 0.3)
MAX_WORD_GAP_10MS = 4  # extra pause between words, uniform 0..4 (x 10 ms)
MAX_SYNTHESIS_ATTEMPTS = 5
TIME_DECIMALS = 4
WORKER_CHUNK_UTTERANCES = 8  # utterances a worker process takes at a time (~0.6 s of work)


@dataclass(frozen=True)
class CorpusConfig:
    """What defines a corpus. Two runs with equal configs write identical manifests and metadata.

    Attributes:
        utterances: number of utterances over all splits.
        seed: seeds speakers and utterances.
        speakers: speakers per split; each has its own voice and visual style.
        face_splits: splits that also get the talking-face video.
        speech_rate_constant: words per second that `speech_rate` 1.0 stands for (LRS3's by default).
    """

    utterances: int = 2000
    seed: int = 0
    speakers: dict[str, int] = field(default_factory=lambda: {"train": 18, "valid": 3, "test": 3})
    face_splits: tuple[str, ...] = ("test",)
    speech_rate_constant: float = LRS3_SPEECH_RATE_CONSTANT

    def __post_init__(self):
        if self.utterances < 1:
            raise ValueError(f"utterances must be at least 1, got {self.utterances}")
        if set(self.speakers) != set(SPLITS) or any(not isinstance(n, int) or n < 1 for n in self.speakers.values()):
            raise ValueError(f"speakers must give a positive count for each of {SPLITS}, got {self.speakers}")
        if self.utterances < sum(self.speakers.values()):
            raise ValueError(f"{self.utterances} utterances cannot cover {sum(self.speakers.values())} speakers; ask for more utterances or fewer speakers")
        unknown = set(self.face_splits) - set(SPLITS)
        if unknown:
            raise ValueError(f"face_splits must be among {SPLITS}, got {sorted(unknown)}")
        if self.speech_rate_constant <= 0:
            raise ValueError(f"speech_rate_constant must be positive, got {self.speech_rate_constant}")

    def identity(self) -> dict:
        """Everything but the utterance count: a corpus can be extended with more utterances."""
        identity = asdict(self)
        identity.pop("utterances")
        identity["face_splits"] = list(self.face_splits)
        return identity


def _timed(units: list[TimedUnit], key: str) -> list[dict]:
    return [{key: u.label, "start": round(u.start, TIME_DECIMALS), "end": round(u.end, TIME_DECIMALS)} for u in units]


def _utterance_paths(speaker: Speaker, index: int) -> dict[str, Path]:
    name = f"{speaker.speaker_id}/u{index:05d}"
    paths = {variant: Path(variant) / f"{name}.mp4" for variant in VARIANTS}
    paths["meta"] = Path("meta") / f"{name}.json"
    return paths


@dataclass(frozen=True)
class SpokenUtterance:
    """The audio side of one utterance, padded with silence to whole video frames.

    Attributes:
        words: the transcript's words ("a", not its spoken form).
        audio: `(num_video_frames * 640,)` int16 at 16 kHz.
        word_times, phonemes: timed units in seconds from the start of `audio`.
    """

    words: list[str]
    rate_wpm: int
    word_gap_10ms: int
    audio: np.ndarray
    word_times: list[TimedUnit]
    phonemes: list[TimedUnit]

    @property
    def num_video_frames(self) -> int:
        return len(self.audio) // SAMPLES_PER_FRAME


def speak_utterance(rng: np.random.Generator, speaker: Speaker) -> SpokenUtterance:
    """Draw a sentence, a speaking rate and a pause length, synthesise it and pad it with lead/tail silence."""
    for _ in range(MAX_SYNTHESIS_ATTEMPTS):
        words = sample_sentence(rng)
        rate = int(np.clip(round(speaker.rate_centre_wpm * np.exp(rng.uniform(-RATE_SPREAD, RATE_SPREAD))), MIN_RATE_WPM, MAX_RATE_WPM))
        word_gap = int(rng.integers(0, MAX_WORD_GAP_10MS + 1))
        try:
            speech = synthesize(spoken_form(words), speaker.voice, rate, speaker.pitch, speaker.pitch_range, word_gap)
            break
        except SynthesisError as error:
            last_error = error
    else:
        raise SynthesisError(f"speaker {speaker.speaker_id}: no valid synthesis in {MAX_SYNTHESIS_ATTEMPTS} attempts ({last_error})")

    lead = int(round(rng.uniform(*LEAD_SILENCE_S) * AUDIO_SAMPLE_RATE_HZ))
    tail = int(round(rng.uniform(*TAIL_SILENCE_S) * AUDIO_SAMPLE_RATE_HZ))
    num_frames = -(-(lead + len(speech.audio) + tail) // SAMPLES_PER_FRAME)
    audio = np.zeros(num_frames * SAMPLES_PER_FRAME, np.int16)
    audio[lead : lead + len(speech.audio)] = speech.audio
    offset = lead / AUDIO_SAMPLE_RATE_HZ

    def shift(units):
        return [TimedUnit(u.label, u.start + offset, u.end + offset) for u in units]

    word_times = [TimedUnit(word, u.start, u.end) for word, u in zip(words, shift(speech.words))]
    return SpokenUtterance(words, rate, word_gap, audio, word_times, shift(speech.phonemes))


def generate_utterance(out: Path, config: CorpusConfig, speaker: Speaker, index: int) -> dict:
    """Synthesise, render and write utterance `index` of `speaker`; returns its metadata (also written)."""
    rng = np.random.default_rng([config.seed, index])
    spoken = speak_utterance(rng, speaker)
    audio, num_frames = spoken.audio, spoken.num_video_frames
    shapes = mouth_track(spoken.phonemes, num_frames)

    paths = _utterance_paths(speaker, index)
    roi = render_roi(shapes, speaker, rng)
    for variant, video, sound in (("roi88", centre_crop(roi), audio), ("roi96", roi, None)):
        (out / paths[variant]).parent.mkdir(parents=True, exist_ok=True)
        write_mp4(out / paths[variant], video, sound)
    media = {"roi96": str(paths["roi96"]), "roi88": str(paths["roi88"])}
    extra = {}
    if speaker.split in config.face_splits:
        face, mouth_centres = render_face(shapes, speaker, rng)
        (out / paths["face"]).parent.mkdir(parents=True, exist_ok=True)
        write_mp4(out / paths["face"], face, audio)
        media["face"] = str(paths["face"])
        extra["face_mouth_centres_px"] = np.round(mouth_centres, 2).tolist()

    metadata = {
        "id": f"{speaker.speaker_id}/u{index:05d}",
        "index": index,
        "speaker": speaker.speaker_id,
        "split": speaker.split,
        "text": " ".join(spoken.words),
        "spoken_text": " ".join(spoken_form(spoken.words)),
        "voice": speaker.voice,
        "rate_wpm": spoken.rate_wpm,
        "pitch": speaker.pitch,
        "pitch_range": speaker.pitch_range,
        "word_gap_ms": spoken.word_gap_10ms * 10,
        "num_video_frames": num_frames,
        "num_audio_samples": len(audio),
        "speech_rate": speech_rate_label(WORDS_PER_SENTENCE, num_frames, config.speech_rate_constant),
        "words": _timed(spoken.word_times, "word"),
        "phonemes": _timed(spoken.phonemes, "phoneme"),
        "mouth_shapes": np.round(shapes, 2).tolist(),
        "media": media,
        **extra,
    }
    meta_path = out / paths["meta"]
    meta_path.parent.mkdir(parents=True, exist_ok=True)
    temporary = meta_path.with_name(f".{meta_path.name}.tmp{os.getpid()}")
    temporary.write_text(json.dumps(metadata, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(temporary, meta_path)
    return metadata


def _load_done(out: Path, paths: dict[str, Path]) -> dict | None:
    meta_path = out / paths["meta"]
    if not meta_path.is_file():
        return None
    metadata = json.loads(meta_path.read_text(encoding="utf-8"))
    if all((out / p).is_file() for p in metadata["media"].values()):
        return metadata
    return None


def _check_or_write_settings(out: Path, config: CorpusConfig, speakers: list[Speaker]) -> None:
    settings_path = out / "corpus.json"
    if settings_path.is_file():
        previous = json.loads(settings_path.read_text(encoding="utf-8"))
        if previous.get("config_identity") != config.identity() or previous.get("version") != CORPUS_VERSION:
            raise ValueError(
                f"{out} holds a corpus made with other settings ({previous.get('config_identity')}, version "
                f"{previous.get('version')}); use another --out folder, or --overwrite to replace it"
            )
    _write_json(settings_path, _settings(config, speakers, counts=None))


def _settings(config: CorpusConfig, speakers: list[Speaker], counts: dict | None) -> dict:
    return {
        "version": CORPUS_VERSION,
        "config_identity": config.identity(),
        "utterances": config.utterances,
        "speech_rate_constant": config.speech_rate_constant,
        "speakers": [s.to_dict() for s in speakers],
        "counts": counts,
    }


def _write_json(path: Path, value) -> None:
    temporary = path.with_name(f".{path.name}.tmp{os.getpid()}")
    temporary.write_text(json.dumps(value, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(temporary, path)


def _write_manifests(out: Path, config: CorpusConfig, utterances: list[dict]) -> dict:
    counts = {}
    for variant in VARIANTS:
        folder = out / variant
        variant_counts = {}
        for split in SPLITS:
            rows = [u for u in utterances if u["split"] == split and variant in u["media"]]
            if not rows:
                continue
            folder.mkdir(parents=True, exist_ok=True)
            entries = [
                ManifestEntry(
                    dataset_tag=f"{DATASET_TAG}/{variant}",
                    video_path=str(Path(u["media"][variant]).relative_to(variant)),
                    audio_path=os.path.relpath(u["media"][AUDIO_SOURCE.get(variant, variant)], variant),
                    num_video_frames=u["num_video_frames"],
                    num_audio_samples=u["num_audio_samples"],
                    speech_rate=u["speech_rate"],
                    transcript=u["text"],
                    phonemes=" ".join(p["phoneme"] for p in u["phonemes"]),
                    phoneme_times=" ".join(f"{p['start']:.3f}-{p['end']:.3f}" for p in u["phonemes"]),
                )
                for u in rows
            ]
            write_manifest(folder / f"{split}.tsv", entries, root=".")
            variant_counts[split] = len(entries)
        if variant_counts:
            write_manifest_metadata(
                folder,
                config.speech_rate_constant,
                speech_rate_constant_source="LRS3 (paper-spec 2.4)" if config.speech_rate_constant == LRS3_SPEECH_RATE_CONSTANT else "user",
                corpus="synthetic GRID (mms-llama processing.synth)",
                variant=variant,
                splits=variant_counts,
                audio="16 kHz AAC inside the audio_path mp4; decode and keep num_video_frames * 640 samples",
            )
        counts[variant] = variant_counts
    return counts


def _write_dataset(out: Path, utterances: list[dict]) -> None:
    import datasets

    def column(rows, key, default=None):
        return [r.get(key, default) for r in rows]

    splits = {}
    for split in SPLITS:
        rows = [u for u in utterances if u["split"] == split]
        splits[split] = datasets.Dataset.from_dict(
            {
                "id": column(rows, "id"),
                "speaker": column(rows, "speaker"),
                "text": column(rows, "text"),
                "video_roi88": [r["media"]["roi88"] for r in rows],
                "video_roi96": [r["media"]["roi96"] for r in rows],
                "video_face": [r["media"].get("face", "") for r in rows],
                "num_video_frames": column(rows, "num_video_frames"),
                "num_audio_samples": column(rows, "num_audio_samples"),
                "speech_rate": column(rows, "speech_rate"),
                "voice": column(rows, "voice"),
                "rate_wpm": column(rows, "rate_wpm"),
                "words": [[w["word"] for w in r["words"]] for r in rows],
                "word_start": [[w["start"] for w in r["words"]] for r in rows],
                "word_end": [[w["end"] for w in r["words"]] for r in rows],
                "phonemes": [[p["phoneme"] for p in r["phonemes"]] for r in rows],
                "phoneme_start": [[p["start"] for p in r["phonemes"]] for r in rows],
                "phoneme_end": [[p["end"] for p in r["phonemes"]] for r in rows],
            }
        )
    temporary, final = out / ".dataset.tmp", out / "dataset"
    shutil.rmtree(temporary, ignore_errors=True)
    datasets.DatasetDict(splits).save_to_disk(str(temporary))
    shutil.rmtree(final, ignore_errors=True)
    os.replace(temporary, final)


def generate_corpus(out: str | os.PathLike, config: CorpusConfig, overwrite: bool = False, progress: bool = True,
                    workers: int = 1) -> dict:
    """Write (or complete) the corpus `config` describes in `out`; returns `corpus.json`'s content.

    Args:
        out: corpus folder, created if needed.
        config: what to generate.
        overwrite: delete an existing corpus in `out` first (otherwise its settings must match `config`).
        progress: show a tqdm progress bar.
        workers: processes that generate utterances side by side. Every utterance depends on its own seed only, so
            the files are byte-identical whatever the number.
    """
    out = Path(out)
    if overwrite and out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    speakers = make_speakers(config.seed, config.speakers)
    _check_or_write_settings(out, config, speakers)

    speaker_of = [speakers[index % len(speakers)] for index in range(config.utterances)]
    utterances = [_load_done(out, _utterance_paths(speaker, index)) for index, speaker in enumerate(speaker_of)]
    missing = [index for index, metadata in enumerate(utterances) if metadata is None]
    bar = tqdm(total=config.utterances, initial=config.utterances - len(missing), desc=f"synthgrid -> {out}",
               unit="utt", disable=not progress)  # fmt: skip
    if len(missing) < config.utterances:
        bar.set_postfix(reused=config.utterances - len(missing), refresh=False)
    generate = partial(generate_utterance, out, config)
    with _mapper(min(workers, len(missing))) as mapped:
        for index, metadata in zip(missing, mapped(generate, [speaker_of[i] for i in missing], missing)):
            utterances[index] = metadata
            bar.update()
    bar.close()

    counts = _write_manifests(out, config, utterances)
    _write_dataset(out, utterances)
    settings = _settings(config, speakers, counts)
    _write_json(out / "corpus.json", settings)
    return settings


@contextmanager
def _mapper(workers: int):
    """`map` in this process, or over `workers` spawned processes (libespeak-ng holds one engine per process)."""
    if workers <= 1:
        yield map
        return
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        yield partial(pool.map, chunksize=WORKER_CHUNK_UTTERANCES)


def load_corpus_dataset(out: str | os.PathLike):
    """The corpus's `datasets.DatasetDict` with its `video_*` columns made absolute paths."""
    import datasets

    out = Path(out).resolve()
    if not (out / "dataset").is_dir():
        raise FileNotFoundError(f"{out} has no dataset/ folder; generate the corpus first (mmsllama-synth --out {out})")

    def absolute(row):
        return {k: str(out / row[k]) if row[k] else "" for k in ("video_roi88", "video_roi96", "video_face")}

    return datasets.load_from_disk(str(out / "dataset")).map(absolute, keep_in_memory=True, desc="resolving paths")

"""LRS3-style manifests (as read by the MMS-LLaMA and AV-HuBERT reference code) and their conversion to `datasets`.

A split is two files side by side:

- `{split}.tsv`: the first line is a root folder; every other line is one utterance with six tab-separated
  fields: `dataset_tag  video_path  audio_path  num_video_frames  num_audio_samples  speech_rate`.
  Paths are joined to the root. A root of `.` means the folder the `.tsv` is in (our corpora, which can
  then be moved); LRS3's released manifests use `/` with absolute paths, some with a `{LRS3_ROOT}`
  placeholder that `read_manifest(..., substitutions={"LRS3_ROOT": ...})` fills in.
- `{split}.wrd`: one lowercase transcript per line, in the same order.
- `{split}.phn` (optional, fairseq's label-file convention): one line of space-separated phonemes per utterance, in
  the same order; our synthetic corpus writes it, and the encoders stage can learn phoneme CTC from it.
- `{split}.ali` (optional, with `.phn`): each phoneme's time span in seconds from the start of the audio, one
  `start-end` pair per phoneme of the `.phn` line (e.g. `0.303-0.425 0.425-0.780`); the synthetic corpus writes it
  from its synthesis events, and the encoders stage can learn framewise phoneme classification from it.

`speech_rate` is words per second of video, divided by a corpus constant and rounded to 2 decimals:
`(num_words / (num_video_frames / 25)) / C`. The reference LRS3 manifests use C = 2.7073 words/s
(paper-spec 2.4); a folder states its own C in `manifest.json` (`read_speech_rate_constant`).
Where phoneme alignments exist, `relabel_speech_rate` replaces it by syllables (or phonemes) per second of speech
(first phoneme start to last phoneme end), divided by the mean of that rate over the training split.
"""

import json
import os
from dataclasses import dataclass, replace
from pathlib import Path


VIDEO_FPS = 25
AUDIO_SAMPLE_RATE_HZ = 16000
LRS3_SPEECH_RATE_CONSTANT = 2.7073  # words per second; fitted on the released LRS3 test manifest
SPEECH_RATE_DECIMALS = 2
METADATA_FILENAME = "manifest.json"
_NUM_FIELDS = 6
RATE_UNITS = ("words", "syllables", "phonemes")
# Syllable nuclei: a phoneme that starts with an IPA vowel (a diphthong or a long vowel counts once), or a consonant
# with the syllabic mark (U+0329, as in "n̩").
IPA_VOWELS = frozenset("aeiouyæøœɐɑɒɔəɘɚɛɜɝɞɤɨɪɯɵɶʉʊʌʏ")
SYLLABIC_MARK = "\u0329"
STRESS_MARKS = "ˈˌ"


class ManifestError(ValueError):
    """A manifest file is missing or malformed; the message names the file and line."""


@dataclass(frozen=True)
class ManifestEntry:
    """One utterance of a manifest.

    `video_path` and `audio_path` are as written in the file, or joined to the root when read with
    `resolve=True` (the default). `transcript` is None when there is no `.wrd` file.
    """

    dataset_tag: str
    video_path: str
    audio_path: str
    num_video_frames: int
    num_audio_samples: int
    speech_rate: float
    transcript: str | None = None
    phonemes: str | None = None
    phoneme_times: str | None = None  # the `.ali` line: space-separated `start-end` seconds, one per phoneme

    @property
    def duration_s(self) -> float:
        """Length of the video in seconds."""
        return self.num_video_frames / VIDEO_FPS


def speech_rate_label(num_words: int, num_video_frames: int, constant: float = LRS3_SPEECH_RATE_CONSTANT) -> float:
    """The normalised speech rate of an utterance: words per second of video divided by `constant`, rounded."""
    if num_video_frames <= 0:
        raise ValueError(f"num_video_frames must be positive, got {num_video_frames}")
    if constant <= 0:
        raise ValueError(f"the speech-rate constant must be positive (words per second), got {constant}")
    return round(num_words / (num_video_frames / VIDEO_FPS) / constant, SPEECH_RATE_DECIMALS)


def syllable_count(phonemes: str) -> int:
    """Syllables in a `.phn` line (space-separated IPA phonemes): the number of syllable nuclei."""
    nuclei = 0
    for phoneme in phonemes.split():
        phoneme = phoneme.lstrip(STRESS_MARKS)
        nuclei += bool(phoneme) and (phoneme[0] in IPA_VOWELS or SYLLABIC_MARK in phoneme)
    return nuclei


def speech_span_s(phoneme_times: str) -> float:
    """Seconds from the first phoneme's start to the last one's end, from an `.ali` line."""
    spans = [tuple(map(float, span.split("-"))) for span in phoneme_times.split()]
    if not spans:
        raise ValueError("an empty .ali line has no speech span")
    return max(end for _, end in spans) - min(start for start, _ in spans)


def units_per_second(entry: ManifestEntry, unit: str = "words") -> float:
    """The raw (unnormalised) speech rate of an utterance.

    `"words"` is the paper's: transcript words per second of video. `"syllables"` and `"phonemes"` count the `.phn`
    line per second of speech, the span of its `.ali` line (per second of video when there is no `.ali`).
    """
    if unit not in RATE_UNITS:
        raise ValueError(f"the rate unit must be one of {RATE_UNITS}, got {unit!r}")
    if unit == "words":
        if entry.transcript is None:
            raise ManifestError(f"{entry.video_path}: a word rate needs the transcript (.wrd file)")
        return len(entry.transcript.split()) / entry.duration_s
    if entry.phonemes is None:
        raise ManifestError(f"{entry.video_path}: a {unit[:-1]} rate needs phonemes (.phn file) and ideally .ali spans")
    count = syllable_count(entry.phonemes) if unit == "syllables" else len(entry.phonemes.split())
    span = speech_span_s(entry.phoneme_times) if entry.phoneme_times else entry.duration_s
    if span <= 0:
        raise ManifestError(f"{entry.video_path}: the phoneme spans cover no time ({entry.phoneme_times!r})")
    return count / span


def relabel_speech_rate(
    entries: list[ManifestEntry], unit: str = "syllables", constant: float | None = None
) -> tuple[list[ManifestEntry], float]:
    """Entries with `speech_rate` recomputed as `round(units_per_second / constant, 2)`.

    Args:
        entries: one split.
        unit: one of [`RATE_UNITS`].
        constant: units per second that rate 1.0 stands for; by default the mean over `entries` (so pass the
            training split first and reuse its constant for the other splits, as the paper normalises by the
            training set's average).

    Returns:
        The relabelled entries and the constant used.
    """
    rates = [units_per_second(entry, unit) for entry in entries]
    if constant is None:
        if not rates:
            raise ValueError("cannot fit a speech-rate constant on an empty split")
        constant = float(sum(rates) / len(rates))
    if constant <= 0:
        raise ValueError(f"the speech-rate constant must be positive ({unit} per second), got {constant}")
    relabelled = [replace(e, speech_rate=round(rate / constant, SPEECH_RATE_DECIMALS)) for e, rate in zip(entries, rates)]
    return relabelled, constant


def _resolve(path: str, root: Path, substitutions: dict[str, str]) -> str:
    for name, value in substitutions.items():
        path = path.replace("{" + name + "}", value)
    return str(root / path) if not os.path.isabs(path) else path


def read_manifest(
    tsv_path: str | os.PathLike,
    wrd_path: str | os.PathLike | None = None,
    *,
    resolve: bool = True,
    substitutions: dict[str, str] | None = None,
) -> list[ManifestEntry]:
    """Read one split.

    Args:
        tsv_path: the `.tsv` file.
        wrd_path: its transcripts; by default the `.wrd` beside it, if there is one.
        resolve: join the paths to the root (a root of `.` is the `.tsv`'s folder).
        substitutions: values for `{NAME}` placeholders in paths, e.g. `{"LRS3_ROOT": "/data/lrs3"}`.

    Raises:
        ManifestError: the file is missing, a line does not have 6 fields or has non-numeric counts, or
            the `.wrd` file has a different number of lines.
    """
    tsv_path = Path(tsv_path)
    if not tsv_path.is_file():
        raise ManifestError(f"{tsv_path}: manifest not found")
    lines = tsv_path.read_text(encoding="utf-8").splitlines()
    if not lines:
        raise ManifestError(f"{tsv_path}: empty manifest (the first line must be the root folder)")
    root_text = lines[0].strip()
    root = tsv_path.resolve().parent if root_text in ("", ".") else Path(root_text)
    entries = []
    for number, line in enumerate(lines[1:], start=2):
        fields = line.split("\t")
        if len(fields) != _NUM_FIELDS:
            raise ManifestError(f"{tsv_path}:{number}: expected {_NUM_FIELDS} tab-separated fields, found {len(fields)}")
        tag, video, audio, frames, samples, rate = fields
        try:
            entry = ManifestEntry(tag, video, audio, int(frames), int(samples), float(rate))
        except ValueError as error:
            raise ManifestError(f"{tsv_path}:{number}: bad number ({error})") from None
        if resolve:
            entry = replace(
                entry,
                video_path=_resolve(video, root, substitutions or {}),
                audio_path=_resolve(audio, root, substitutions or {}),
            )
        entries.append(entry)
    wrd_path = Path(wrd_path) if wrd_path is not None else tsv_path.with_suffix(".wrd")
    if wrd_path.is_file():
        transcripts = wrd_path.read_text(encoding="utf-8").splitlines()
        if len(transcripts) != len(entries):
            raise ManifestError(f"{wrd_path}: {len(transcripts)} transcripts for {len(entries)} utterances in {tsv_path}")
        entries = [replace(entry, transcript=text) for entry, text in zip(entries, transcripts)]
    for suffix, field in ((".phn", "phonemes"), (".ali", "phoneme_times")):
        label_path = tsv_path.with_suffix(suffix)
        if label_path.is_file():
            labels = label_path.read_text(encoding="utf-8").splitlines()
            if len(labels) != len(entries):
                raise ManifestError(f"{label_path}: {len(labels)} lines for {len(entries)} utterances in {tsv_path}")
            entries = [replace(entry, **{field: line.strip()}) for entry, line in zip(entries, labels)]
    _check_alignments(entries, tsv_path.with_suffix(".ali"))
    return entries


def _check_alignments(entries: list[ManifestEntry], ali_path: Path) -> None:
    """Every `.ali` line has one span per phoneme of its `.phn` line."""
    for number, entry in enumerate(entries, start=1):
        if entry.phoneme_times is None:
            continue
        if entry.phonemes is None:
            raise ManifestError(f"{ali_path}: phoneme spans without a .phn file beside it")
        if len(entry.phoneme_times.split()) != len(entry.phonemes.split()):
            raise ManifestError(f"{ali_path}:{number}: {len(entry.phoneme_times.split())} spans for "
                                f"{len(entry.phonemes.split())} phonemes in the .phn line")  # fmt: skip


def _write_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.tmp{os.getpid()}")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


def write_manifest(tsv_path: str | os.PathLike, entries: list[ManifestEntry], root: str = ".") -> None:
    """Write `{split}.tsv` (and `{split}.wrd` / `{split}.phn` / `{split}.ali` when the entries have transcripts /
    phonemes / phoneme spans), each atomically.

    Paths are written as given: relative to `root` (`.` = the `.tsv`'s folder), or absolute.
    """
    tsv_path = Path(tsv_path)
    for entry in entries:
        text_fields = (entry.dataset_tag, entry.video_path, entry.audio_path)
        if any("\t" in f or "\n" in f for f in text_fields):
            raise ValueError(f"manifest fields cannot contain tabs or newlines: {text_fields}")
    lines = [root] + [
        f"{e.dataset_tag}\t{e.video_path}\t{e.audio_path}\t{e.num_video_frames}\t{e.num_audio_samples}\t{e.speech_rate:.{SPEECH_RATE_DECIMALS}f}"
        for e in entries
    ]
    _write_atomically(tsv_path, "\n".join(lines) + "\n")
    label_files = {".wrd": [e.transcript for e in entries], ".phn": [e.phonemes for e in entries],
                   ".ali": [e.phoneme_times for e in entries]}  # fmt: skip
    for suffix, labels in label_files.items():
        if all(label is None for label in labels):
            continue
        if any(label is None or "\n" in label for label in labels):
            raise ValueError(f"{suffix}: either every entry or none has this label, and labels are single lines")
        _write_atomically(tsv_path.with_suffix(suffix), "".join(label + "\n" for label in labels))


_RATE_FORMULAS = {
    "words": "round((num_words / (num_video_frames / 25)) / speech_rate_constant, 2)",
    "syllables": "round((num_syllables / speech_span_s) / speech_rate_constant, 2), span from the .ali file",
    "phonemes": "round((num_phonemes / speech_span_s) / speech_rate_constant, 2), span from the .ali file",
}


def write_manifest_metadata(
    folder: str | os.PathLike, speech_rate_constant: float, speech_rate_unit: str = "words", **extra
) -> None:
    """Write `manifest.json` in a manifest folder: the speech-rate constant (`speech_rate_unit` per second, words by
    default) and any `extra` fields."""
    metadata = {
        "speech_rate_constant": speech_rate_constant,
        "speech_rate_unit": speech_rate_unit,
        "speech_rate_formula": _RATE_FORMULAS[speech_rate_unit],
        "video_fps": VIDEO_FPS,
        "audio_sample_rate_hz": AUDIO_SAMPLE_RATE_HZ,
        **extra,
    }
    _write_atomically(Path(folder) / METADATA_FILENAME, json.dumps(metadata, indent=2, sort_keys=True) + "\n")


def read_speech_rate_constant(folder: str | os.PathLike) -> float:
    """The speech-rate constant of a manifest folder: from its `manifest.json`, else LRS3's."""
    path = Path(folder) / METADATA_FILENAME
    if not path.is_file():
        return LRS3_SPEECH_RATE_CONSTANT
    return float(json.loads(path.read_text(encoding="utf-8"))["speech_rate_constant"])


def manifest_to_dataset(tsv_path: str | os.PathLike, **read_kwargs):
    """One split as a `datasets.Dataset`, one row per utterance, paths resolved.

    Columns: `id` (file name of the video without extension, prefixed by its folder), `dataset_tag`,
    `video`, `audio` (paths), `num_video_frames`, `num_audio_samples`, `speech_rate`, `text` ("" when there
    is no `.wrd`). `read_kwargs` go to `read_manifest`.
    """
    import datasets

    entries = read_manifest(tsv_path, **read_kwargs)
    rows = {
        "id": [f"{Path(e.video_path).parent.name}/{Path(e.video_path).stem}" for e in entries],
        "dataset_tag": [e.dataset_tag for e in entries],
        "video": [e.video_path for e in entries],
        "audio": [e.audio_path for e in entries],
        "num_video_frames": [e.num_video_frames for e in entries],
        "num_audio_samples": [e.num_audio_samples for e in entries],
        "speech_rate": [e.speech_rate for e in entries],
        "text": [e.transcript or "" for e in entries],
    }
    features = datasets.Features(
        {
            "id": datasets.Value("string"),
            "dataset_tag": datasets.Value("string"),
            "video": datasets.Value("string"),
            "audio": datasets.Value("string"),
            "num_video_frames": datasets.Value("int32"),
            "num_audio_samples": datasets.Value("int64"),
            "speech_rate": datasets.Value("float32"),
            "text": datasets.Value("string"),
        }
    )
    return datasets.Dataset.from_dict(rows, features=features)

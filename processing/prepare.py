"""Dataset-scale preparation: mouth crops, 16 kHz audio, manifests, speech-rate labels and a `datasets` copy, on all
the cores of one machine and across machines.

    mmsllama-prepare --videos /data/lrs3 --out /data/lrs3-roi --num-proc 8             # one machine: crop + merge
    mmsllama-prepare --videos /data/lrs3 --out /data/lrs3-roi --num-shards 64 --shard-index $SLURM_ARRAY_TASK_ID
    mmsllama-prepare --merge /data/lrs3-roi                                               # once every shard is done
    mmsllama-prepare --relabel corpus/roi88 --out corpus/roi88-syllables --rate-unit syllables

The input is a folder of raw face videos laid out `split/speaker/clip.mp4` (LRS3's `pretrain/`, `trainval/`,
`test/`), each with its transcript in `clip.txt` (LRS3's `Text:  WORDS` line, or the words alone), or LRS3-style
manifests (`--manifest train.tsv valid.tsv`). Each clip has an id, its path without the extension
(`trainval/0af00UcTOSc/50001`); its crops go to `OUT/<id>.mp4` + `.wav` with a `.json` record written last.

A shard is the set of clips whose id hashes (SHA-256) to its index, so a clip is always in the same shard whatever
the order or the machine. A shard crops its clips with a process pool (`--num-proc`), never stops on a bad clip
(it is listed with its reason), and writes `OUT/shards/shard-IIIII-of-NNNNN.jsonl` (one line per clip) and then, as
its completion marker, `...done`. A killed shard rerun with the same command skips every clip whose record is
there. `--merge` checks that every shard is done, over the same input list, and writes `OUT/{split}.tsv/.wrd`
(+ `.phn`/`.ali` when the input had them), `OUT/manifest.json`, `OUT/failures.tsv` and `OUT/dataset/` (a
`datasets.DatasetDict`, one split per manifest). Every file is written to a temporary name and renamed.
"""

import argparse
import hashlib
import json
import os
import shutil
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

from tqdm.auto import tqdm

from modeling_mmsllama.mouth_roi_mmsllama import MouthROIExtractor
from processing.manifest import (
    LRS3_SPEECH_RATE_CONSTANT,
    RATE_UNITS,
    ManifestEntry,
    ManifestError,
    manifest_to_dataset,
    read_manifest,
    relabel_speech_rate,
    speech_rate_label,
    write_manifest,
    write_manifest_metadata,
)
from processing.roi import VIDEO_EXTENSIONS, crop_clip, write_text_atomically


SHARDS_DIRNAME = "shards"
DATASET_DIRNAME = "dataset"
FAILURES_FILENAME = "failures.tsv"
FIT_SPLITS = ("train", "trainval", "pretrain")  # the first one present fits the constant of a fitted rate unit


@dataclass(frozen=True)
class Clip:
    """One input clip. `clip_id` is its path without extension relative to the input (`split/speaker/clip`)."""

    clip_id: str
    split: str
    dataset_tag: str
    video_path: str
    audio_path: str | None = None
    transcript: str | None = None
    phonemes: str | None = None
    phoneme_times: str | None = None


def shard_of(clip_id: str, num_shards: int) -> int:
    """The shard a clip belongs to: the first 8 bytes of the SHA-256 of its id, modulo `num_shards`."""
    return int.from_bytes(hashlib.sha256(clip_id.encode("utf-8")).digest()[:8], "big") % num_shards


def read_transcript(path: Path) -> str | None:
    """The lowercase words of an LRS3 `.txt` file (its `Text:` line) or of a plain one-line transcript."""
    if not path.is_file():
        return None
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    for line in lines:
        if line.startswith("Text:"):
            return " ".join(line[len("Text:") :].split()).lower()
    return " ".join(lines[0].split()).lower() if lines else None


def list_videos(videos_dir: str | os.PathLike, dataset_tag: str = "lrs3") -> list[Clip]:
    """Every video under `videos_dir`; the split is the first folder of a `split/speaker/clip` path, else `all`."""
    videos_dir = Path(videos_dir)
    if not videos_dir.is_dir():
        raise NotADirectoryError(f"{videos_dir}: not a folder of videos")
    clips = []
    for path in sorted(p for p in videos_dir.rglob("*") if p.suffix.lower() in VIDEO_EXTENSIONS and p.is_file()):
        relative = path.relative_to(videos_dir).with_suffix("")
        split = relative.parts[0] if len(relative.parts) >= 3 else "all"
        wav = path.with_suffix(".wav")
        clips.append(Clip(relative.as_posix(), split, dataset_tag, str(path), str(wav) if wav.is_file() else None,
                          read_transcript(path.with_suffix(".txt"))))  # fmt: skip
    return clips


def list_manifests(tsv_paths: list[str | os.PathLike], **read_kwargs) -> list[Clip]:
    """Every utterance of LRS3-style manifests; the split is the manifest's name, the id `split/speaker/clip`."""
    clips = []
    for tsv_path in map(Path, tsv_paths):
        for entry in read_manifest(tsv_path, **read_kwargs):
            video = Path(entry.video_path)
            audio = entry.audio_path if entry.audio_path != entry.video_path else None
            clip_id = f"{tsv_path.stem}/{video.parent.name}/{video.stem}"
            clips.append(Clip(clip_id, tsv_path.stem, entry.dataset_tag, entry.video_path, audio, entry.transcript,
                              entry.phonemes, entry.phoneme_times))  # fmt: skip
    return clips


def _check_unique(clips: list[Clip]) -> None:
    seen = set()
    for clip in clips:
        if clip.clip_id in seen:
            raise ValueError(f"two inputs have the clip id {clip.clip_id!r}; ids (split/speaker/clip) must be unique")
        seen.add(clip.clip_id)


def inputs_digest(clips: list[Clip]) -> str:
    """SHA-256 of the sorted clip ids: every shard of one run must see the same input list."""
    return hashlib.sha256("\n".join(sorted(c.clip_id for c in clips)).encode("utf-8")).hexdigest()


def shard_name(shard_index: int, num_shards: int) -> str:
    return f"shard-{shard_index:05d}-of-{num_shards:05d}"


# One extractor per worker process, built once by the pool's initializer.
_EXTRACTOR: MouthROIExtractor | None = None


def _init_worker(extractor_kwargs: dict) -> None:
    global _EXTRACTOR
    _EXTRACTOR = MouthROIExtractor(**extractor_kwargs)


def _prepare_clip(clip: Clip, out: Path) -> dict:
    """Crops one clip (or finds it done); returns its shard-manifest row. Never raises: a failure is a row too."""
    row = {"id": clip.clip_id, "split": clip.split, "source": clip.video_path}
    if not clip.transcript:
        return {**row, "status": "failed", "reason": "no transcript (a .txt beside the video, or the .wrd line)"}
    try:
        frames, samples, _ = crop_clip(clip.video_path, out / f"{clip.clip_id}.mp4", _EXTRACTOR, clip.audio_path)
    except Exception as error:  # a bad clip is reported and the shard goes on, whatever went wrong in it
        reason = f"{type(error).__name__}: {error}" if not isinstance(error, ValueError) else str(error)
        return {**row, "status": "failed", "reason": " ".join(reason.split())}
    if samples == 0:
        return {**row, "status": "failed", "reason": f"{clip.video_path}: has no audio stream (and no .wav beside it)"}
    return {**row, "status": "ok", "dataset_tag": clip.dataset_tag, "num_video_frames": frames,
            "num_audio_samples": samples, "transcript": clip.transcript, "phonemes": clip.phonemes,
            "phoneme_times": clip.phoneme_times}  # fmt: skip


@dataclass
class ShardReport:
    """What one shard did: its name, clips ok / failed, and the rows of its shard manifest."""

    name: str
    ok: int
    failed: int
    rows: list[dict]


def prepare_shard(
    clips: list[Clip],
    out: str | os.PathLike,
    *,
    num_shards: int = 1,
    shard_index: int = 0,
    num_proc: int = 1,
    extractor_kwargs: dict | None = None,
    progress: bool = True,
) -> ShardReport:
    """Crops the clips of one shard into `out` with `num_proc` processes and writes its manifest and marker."""
    if not 0 <= shard_index < num_shards:
        raise ValueError(f"--shard-index must be in 0..{num_shards - 1}, got {shard_index}")
    _check_unique(clips)
    out = Path(out)
    mine = sorted((c for c in clips if shard_of(c.clip_id, num_shards) == shard_index), key=lambda c: c.clip_id)
    extractor_kwargs = extractor_kwargs or {}
    name = shard_name(shard_index, num_shards)
    bar = tqdm(total=len(mine), desc=name, unit="clip", disable=not progress)
    if num_proc <= 1:
        _init_worker(extractor_kwargs)
        rows = []
        for clip in mine:
            rows.append(_prepare_clip(clip, out))
            bar.update()
    else:
        with ProcessPoolExecutor(num_proc, initializer=_init_worker, initargs=(extractor_kwargs,)) as pool:
            rows = []
            for row in pool.map(_prepare_clip, mine, [out] * len(mine), chunksize=1):
                rows.append(row)
                bar.update()
    bar.close()

    shards = out / SHARDS_DIRNAME
    shards.mkdir(parents=True, exist_ok=True)
    write_text_atomically(shards / f"{name}.jsonl", "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))
    failed = [r for r in rows if r["status"] == "failed"]
    marker = {
        "num_shards": num_shards,
        "shard_index": shard_index,
        "clips": len(rows),
        "ok": len(rows) - len(failed),
        "failed": len(failed),
        "inputs_digest": inputs_digest(clips),
        "extractor": extractor_kwargs,
    }
    write_text_atomically(shards / f"{name}.done", json.dumps(marker, indent=1, sort_keys=True) + "\n")
    return ShardReport(name, marker["ok"], marker["failed"], rows)


class IncompleteShardsError(RuntimeError):
    """`merge` found shards that are missing, unfinished or from another input list; the message lists them."""


def _read_shards(out: Path) -> list[dict]:
    markers = sorted((out / SHARDS_DIRNAME).glob("shard-*-of-*.done"))
    if not markers:
        raise IncompleteShardsError(f"{out / SHARDS_DIRNAME}: no finished shard (no shard-*.done marker)")
    infos = [json.loads(m.read_text(encoding="utf-8")) for m in markers]
    counts, digests = {i["num_shards"] for i in infos}, {i["inputs_digest"] for i in infos}
    if len(counts) > 1 or len(digests) > 1:
        raise IncompleteShardsError(
            f"{out}: the finished shards come from different runs (shard counts {sorted(counts)}, "
            f"{len(digests)} different input lists); prepare into an empty --out folder"
        )
    num_shards = counts.pop()
    missing = sorted(set(range(num_shards)) - {i["shard_index"] for i in infos})
    if missing:
        shown = ", ".join(map(str, missing[:20])) + (" ..." if len(missing) > 20 else "")
        raise IncompleteShardsError(
            f"{out}: {len(missing)} of {num_shards} shards are not finished (--shard-index {shown}); run them "
            "(a killed shard resumes where it stopped) and merge again"
        )
    rows = []
    for info in infos:
        name = shard_name(info["shard_index"], num_shards)
        lines = (out / SHARDS_DIRNAME / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()
        if len(lines) != info["clips"]:
            raise IncompleteShardsError(f"{name}.jsonl has {len(lines)} rows but its marker says {info['clips']}")
        rows.extend(json.loads(line) for line in lines)
    return rows


def _entries(rows: list[dict]) -> list[ManifestEntry]:
    return [
        ManifestEntry(r["dataset_tag"], f"{r['id']}.mp4", f"{r['id']}.wav", r["num_video_frames"],
                      r["num_audio_samples"], 0.0, r["transcript"], r["phonemes"], r["phoneme_times"])  # fmt: skip
        for r in sorted(rows, key=lambda r: r["id"])
    ]


def _label_splits(splits: dict[str, list[ManifestEntry]], unit: str, constant: float | None):
    """The splits with speech-rate labels; a fitted unit's constant comes from the training split."""
    if unit == "words":
        constant = LRS3_SPEECH_RATE_CONSTANT if constant is None else constant
        labelled = {s: [_with_word_rate(e, constant) for e in entries] for s, entries in splits.items()}
        return labelled, constant
    if constant is None:
        fit = next((s for s in FIT_SPLITS if s in splits), None)
        fitting = splits[fit] if fit else [e for entries in splits.values() for e in entries]
        _, constant = relabel_speech_rate(fitting, unit)
    return {s: relabel_speech_rate(entries, unit, constant)[0] for s, entries in splits.items()}, constant


def _with_word_rate(entry: ManifestEntry, constant: float) -> ManifestEntry:
    num_words = len(entry.transcript.split())
    return replace(entry, speech_rate=speech_rate_label(num_words, entry.num_video_frames, constant))


def merge(
    out: str | os.PathLike, *, rate_unit: str = "words", speech_rate_constant: float | None = None, dataset: bool = True
) -> dict[str, int]:
    """Checks every shard in `out` is finished and writes the final manifests, failure report and `datasets` copy.

    Args:
        rate_unit: `"words"` (the paper's label, with `speech_rate_constant` defaulting to LRS3's 2.7073 words/s)
            or `"syllables"` / `"phonemes"` (needs phoneme alignments; the constant defaults to the training
            split's mean).

    Returns:
        Utterances per split.

    Raises:
        IncompleteShardsError: a shard is missing or unfinished, or shards come from different input lists.
    """
    out = Path(out)
    rows = _read_shards(out)
    ok = [r for r in rows if r["status"] == "ok"]
    splits = {split: _entries([r for r in ok if r["split"] == split]) for split in sorted({r["split"] for r in ok})}
    splits, constant = _label_splits(splits, rate_unit, speech_rate_constant)
    for split, entries in splits.items():
        write_manifest(out / f"{split}.tsv", entries, root=".")
    failed = sorted((r for r in rows if r["status"] == "failed"), key=lambda r: r["id"])
    report = "".join(f"{r['id']}\t{r['source']}\t{r['reason']}\n" for r in failed)
    write_text_atomically(out / FAILURES_FILENAME, report)
    counts = {split: len(entries) for split, entries in splits.items()}
    write_manifest_metadata(out, constant, rate_unit, splits=counts, failed=len(failed),
                            prepared_by="mms-llama processing.prepare")  # fmt: skip
    if dataset:
        _write_dataset(out, list(splits))
    return counts


def _write_dataset(out: Path, splits: list[str]) -> None:
    """`OUT/dataset`: a `datasets.DatasetDict` of the manifests, saved beside and renamed into place."""
    import datasets

    dataset = datasets.DatasetDict({split: manifest_to_dataset(out / f"{split}.tsv") for split in splits})
    temporary, previous = out / f".{DATASET_DIRNAME}.tmp{os.getpid()}", out / f".{DATASET_DIRNAME}.old{os.getpid()}"
    dataset.save_to_disk(str(temporary))
    final = out / DATASET_DIRNAME
    if final.exists():
        final.rename(previous)
    temporary.rename(final)
    shutil.rmtree(previous, ignore_errors=True)


def relabel_folder(
    source: str | os.PathLike, out: str | os.PathLike, rate_unit: str = "syllables", constant: float | None = None
) -> dict[str, float]:
    """Copies the manifests of `source` into `out` with speech rates in `rate_unit`; the media stay where they are.

    The constant (units per second that rate 1.0 means) is the mean over `train.tsv` unless given. Paths in the new
    manifests are relative to `out`, so the two folders move together. Returns each split's mean label.
    """
    source, out = Path(source), Path(out)
    splits = {tsv.stem: read_manifest(tsv) for tsv in sorted(source.glob("*.tsv"))}
    if not splits:
        raise FileNotFoundError(f"{source}: no {{split}}.tsv manifest to relabel")
    splits, constant = _label_splits(splits, rate_unit, constant)
    out.mkdir(parents=True, exist_ok=True)
    means = {}
    for split, entries in splits.items():
        moved = [_relative_to(e, out) for e in entries]
        write_manifest(out / f"{split}.tsv", moved, root=".")
        means[split] = sum(e.speech_rate for e in entries) / max(len(entries), 1)
    write_manifest_metadata(out, constant, rate_unit, relabelled_from=str(source.resolve()),
                            splits={s: len(e) for s, e in splits.items()})  # fmt: skip
    return means


def _relative_to(entry: ManifestEntry, folder: Path) -> ManifestEntry:
    base = folder.resolve()
    return replace(entry, video_path=os.path.relpath(entry.video_path, base),
                   audio_path=os.path.relpath(entry.audio_path, base))  # fmt: skip


def _launcher_shard() -> tuple[int, int]:
    """(shard index, shard count) from a SLURM array, or from torchrun / accelerate (RANK, WORLD_SIZE)."""
    if "SLURM_ARRAY_TASK_ID" in os.environ and "SLURM_ARRAY_TASK_COUNT" in os.environ:
        first = int(os.environ.get("SLURM_ARRAY_TASK_MIN", 0))
        return int(os.environ["SLURM_ARRAY_TASK_ID"]) - first, int(os.environ["SLURM_ARRAY_TASK_COUNT"])
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ:
        return int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    raise SystemExit("--shard-from-env: no SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT nor RANK/WORLD_SIZE is set")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mmsllama-prepare",
        description="Prepare a corpus: 96x96 25 fps mouth crops + 16 kHz wav, manifests, speech rates, datasets copy.",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--videos", help="folder of raw videos, split/speaker/clip.mp4 with clip.txt transcripts")
    source.add_argument("--manifest", nargs="+", help="LRS3-style {split}.tsv manifests of raw videos")
    source.add_argument("--merge", metavar="OUT", help="merge the finished shards of OUT into its final manifests")
    source.add_argument("--relabel", metavar="FOLDER", help="copy FOLDER's manifests into --out with new speech rates")
    parser.add_argument("--out", help="output folder (crops, shards/, manifests, dataset/)")
    parser.add_argument("--num-proc", type=int, default=1, help="worker processes on this machine (default 1)")
    parser.add_argument("--num-shards", type=int, default=1, help="shards the input is split into (default 1)")
    parser.add_argument("--shard-index", type=int, default=0, help="the shard this run does, 0..num_shards-1")
    parser.add_argument("--shard-from-env", action="store_true",
                        help="take the shard from SLURM_ARRAY_TASK_ID/COUNT, or RANK/WORLD_SIZE (torchrun, accelerate)")
    parser.add_argument("--dataset-tag", default="lrs3", help="the manifests' dataset_tag for --videos (default lrs3)")
    parser.add_argument("--rate-unit", choices=RATE_UNITS, default="words",
                        help="speech-rate label: words per second of video (the paper's) or syllables/phonemes per "
                             "second of speech (needs .phn/.ali alignments)")
    parser.add_argument("--speech-rate-constant", type=float, default=None,
                        help="units per second that rate 1.0 means (default: LRS3's 2.7073 for words, the training "
                             "split's mean otherwise)")
    parser.add_argument("--no-dataset", action="store_true", help="merge without writing the datasets copy")
    parser.add_argument("--detect-every", type=int, default=5, help="frames between face detections")
    parser.add_argument("--landmark-every", type=int, default=2, help="frames between landmark passes (default 2)")
    parser.add_argument("--face-selection", choices=("largest", "central"), default="largest")
    parser.add_argument("--max-missing-ratio", type=float, default=0.5, help="largest share of frames without a face")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        _run(parser, args)
    except (IncompleteShardsError, ManifestError, OSError, ValueError) as error:
        raise SystemExit(f"mmsllama-prepare: {error}") from None


def _run(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    merge_options = dict(rate_unit=args.rate_unit, speech_rate_constant=args.speech_rate_constant)
    if args.merge:
        counts = merge(args.merge, dataset=not args.no_dataset, **merge_options)
        print(f"merged {args.merge}: " + ", ".join(f"{split} {n}" for split, n in counts.items()))
        return
    if not args.out:
        parser.error("--out is needed with --videos, --manifest and --relabel")
    if args.relabel:
        means = relabel_folder(args.relabel, args.out, args.rate_unit, args.speech_rate_constant)
        summary = ", ".join(f"{split} mean {mean:.2f}" for split, mean in means.items())
        print(f"relabelled into {args.out} ({args.rate_unit}): {summary}")
        return
    shard_index, num_shards = _launcher_shard() if args.shard_from_env else (args.shard_index, args.num_shards)
    clips = list_videos(args.videos, args.dataset_tag) if args.videos else list_manifests(args.manifest)
    extractor_kwargs = dict(detect_every=args.detect_every, landmark_every=args.landmark_every,
                            face_selection=args.face_selection, max_missing_ratio=args.max_missing_ratio)  # fmt: skip
    report = prepare_shard(clips, args.out, num_shards=num_shards, shard_index=shard_index, num_proc=args.num_proc,
                           extractor_kwargs=extractor_kwargs, progress=not args.quiet)  # fmt: skip
    print(f"{report.name}: {report.ok} clips ok, {report.failed} failed")
    if num_shards == 1:
        counts = merge(args.out, dataset=not args.no_dataset, **merge_options)
        print(f"merged {args.out}: " + ", ".join(f"{split} {n}" for split, n in counts.items()))
    else:
        print(f"when every shard is done: mmsllama-prepare --merge {args.out}")


if __name__ == "__main__":
    main()

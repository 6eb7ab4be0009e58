"""Mouth-ROI cropping at dataset scale: a folder of raw videos, or an LRS3-style manifest, cropped once.

Each clip becomes a 96x96 grayscale 25 fps `.mp4` of the mouth and a 16 kHz mono `.wav` aligned to it (640 samples per
frame), the layout the reference code reads. A `.json` beside each output records the source's size and time and the
extractor settings; a clip whose record still matches is skipped (the cache). Clips that fail are listed, with the
reason, in `failures.tsv` in the output folder, and the run goes on.

    python -m processing.roi RAW_DIR OUT_DIR                 # every video under RAW_DIR
    python -m processing.roi test.tsv OUT_DIR --manifest     # every clip of a manifest; writes OUT_DIR/test.tsv/.wrd
"""

import argparse
import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from modeling_mmsllama.errors_mmsllama import MMSLlamaInputError
from modeling_mmsllama.configuration_mmsllama import AUDIO_SAMPLING_RATE, VIDEO_FPS
from modeling_mmsllama.media_mmsllama import align_audio_to_frames, read_media
from modeling_mmsllama.mouth_roi_mmsllama import MouthROIExtractor
from processing.manifest import read_manifest, write_manifest


VIDEO_EXTENSIONS = (".mp4", ".mkv", ".webm", ".avi", ".mov")
ROI_CRF = "17"  # libx264 constant rate factor of the written crops (visually lossless)
FAILURES_FILENAME = "failures.tsv"


@dataclass
class CropReport:
    """What a cropping run did.

    Attributes:
        written (`list[Path]`): ROI videos written in this run.
        cached (`list[Path]`): ROI videos that were already up to date.
        failed (`list[tuple[str, str]]`): (source, reason) of each clip that could not be cropped.
    """

    written: list[Path] = field(default_factory=list)
    cached: list[Path] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)


def _temporary(path: Path) -> Path:
    """A name beside `path` with its suffix (writers pick the format from it), renamed onto `path` once complete."""
    return path.with_name(f".{path.stem}.tmp{os.getpid()}{path.suffix}")


def write_text_atomically(path: Path, text: str) -> None:
    temporary = _temporary(path)
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


def write_roi_video(path: Path, rois: np.ndarray) -> None:
    """Writes `(T, H, W)` uint8 grayscale crops as a 25 fps H.264 `.mp4` (atomically)."""
    import av

    temporary = _temporary(path)
    with av.open(str(temporary), mode="w") as container:
        stream = container.add_stream("libx264", rate=VIDEO_FPS)
        stream.height, stream.width = rois.shape[1:3]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": ROI_CRF, "preset": "veryfast"}
        for roi in rois:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(roi), format="gray")))
        container.mux(stream.encode())
    os.replace(temporary, path)


def write_wav(path: Path, audio: np.ndarray) -> None:
    """Writes 16 kHz mono float audio as 16-bit PCM (atomically)."""
    import soundfile

    temporary = _temporary(path)
    soundfile.write(str(temporary), np.clip(audio, -1.0, 1.0), AUDIO_SAMPLING_RATE, subtype="PCM_16")
    os.replace(temporary, path)


def _settings(extractor: MouthROIExtractor) -> dict:
    return {
        "landmarker": type(extractor.landmarker).__name__,
        "detect_every": extractor.detect_every,
        "smoothing_window": extractor.smoothing_window,
        "face_selection": extractor.face_selection,
        "max_missing_ratio": extractor.max_missing_ratio,
        "roi_size": extractor.roi_size,
        "tracking": extractor.tracking,
        "landmark_every": extractor.landmark_every,
    }


def _source_stamp(*paths: str) -> list:
    return [[os.fspath(p), os.path.getsize(p), os.path.getmtime(p)] for p in paths if os.path.exists(p)]


def crop_clip(
    video_path: str, output_video: Path, extractor: MouthROIExtractor, audio_path: str | None = None
) -> tuple[int, int, bool]:
    """Crops one clip (cached). Returns (frames, audio samples, whether it was written now).

    Raises:
        [`MMSLlamaInputError`]: the clip cannot be read or has no usable face.
    """
    record_path = output_video.with_suffix(".json")
    record = {"sources": _source_stamp(video_path, audio_path or video_path), "settings": _settings(extractor)}
    if output_video.exists() and record_path.exists():
        previous = json.loads(record_path.read_text())
        if previous.get("sources") == record["sources"] and previous.get("settings") == record["settings"]:
            return previous["num_frames"], previous["num_samples"], False

    media = read_media(video_path, video=True, audio=audio_path is None)
    if media.frames is None:
        raise MMSLlamaInputError(f"{video_path}: has no video stream.", source=video_path)
    audio = read_media(audio_path, video=False).audio if audio_path is not None else media.audio
    rois = extractor(media.frames, source=video_path)
    output_video.parent.mkdir(parents=True, exist_ok=True)
    write_roi_video(output_video, rois.rois)
    num_samples = 0
    if audio is not None:
        audio, _ = align_audio_to_frames(audio, len(rois.rois))
        write_wav(output_video.with_suffix(".wav"), audio)
        num_samples = len(audio)
    record.update(
        num_frames=len(rois.rois),
        num_samples=num_samples,
        missing_face_frames=rois.missing_frames,
        notes=media.notes + rois.notes,
    )
    write_text_atomically(record_path, json.dumps(record, indent=1))  # last: the clip's completion marker
    return len(rois.rois), num_samples, True


def _run(jobs, output_dir: Path, extractor: MouthROIExtractor, progress: bool, on_success) -> CropReport:
    report = CropReport()
    for video_path, audio_path, output_video, key in tqdm(jobs, desc="mouth ROI", unit="clip", disable=not progress):
        try:
            frames, samples, written = crop_clip(video_path, output_video, extractor, audio_path)
        except (MMSLlamaInputError, OSError) as error:
            report.failed.append((video_path, str(error).replace("\t", " ").replace("\n", " ")))
            continue
        (report.written if written else report.cached).append(output_video)
        on_success(key, frames, samples)
    output_dir.mkdir(parents=True, exist_ok=True)
    failures = output_dir / FAILURES_FILENAME
    if report.failed:
        write_text_atomically(failures, "".join(f"{source}\t{reason}\n" for source, reason in report.failed))
    elif failures.exists():
        failures.unlink()
    return report


def crop_folder(
    input_dir: str | os.PathLike,
    output_dir: str | os.PathLike,
    extractor: MouthROIExtractor | None = None,
    progress: bool = True,
) -> CropReport:
    """Crops every video under `input_dir` into the same relative layout under `output_dir` (`.mp4` + `.wav`)."""
    input_dir, output_dir = Path(input_dir), Path(output_dir)
    if not input_dir.is_dir():
        raise MMSLlamaInputError(f"{input_dir}: not a folder.", source=str(input_dir))
    sources = sorted(p for p in input_dir.rglob("*") if p.suffix.lower() in VIDEO_EXTENSIONS and p.is_file())
    jobs = [(str(p), None, (output_dir / p.relative_to(input_dir)).with_suffix(".mp4"), None) for p in sources]
    return _run(jobs, output_dir, extractor or MouthROIExtractor(), progress, lambda *_: None)


def crop_manifest(
    tsv_path: str | os.PathLike,
    output_dir: str | os.PathLike,
    extractor: MouthROIExtractor | None = None,
    progress: bool = True,
    **read_kwargs,
) -> CropReport:
    """Crops every clip of a manifest and writes `output_dir/{split}.tsv` (+ `.wrd`) pointing at the crops.

    The new manifest keeps the dataset tags, speech rates and transcripts, with frame and sample counts of the crops;
    its paths are relative to `output_dir` (root `.`). Clips that failed are left out of it (see `failures.tsv`).
    `read_kwargs` go to `processing.manifest.read_manifest` (e.g. `substitutions`).
    """
    tsv_path, output_dir = Path(tsv_path), Path(output_dir)
    entries = read_manifest(tsv_path, **read_kwargs)
    jobs = []
    for index, entry in enumerate(entries):
        relative = Path(entry.dataset_tag) / Path(entry.video_path).parent.name / Path(entry.video_path).stem
        audio = entry.audio_path if entry.audio_path != entry.video_path else None
        jobs.append((entry.video_path, audio, output_dir / relative.with_suffix(".mp4"), index))

    cropped = {}

    def remember(index, frames, samples):
        relative = jobs[index][2].relative_to(output_dir)
        cropped[index] = replace(
            entries[index],
            video_path=str(relative),
            audio_path=str(relative.with_suffix(".wav")),
            num_video_frames=frames,
            num_audio_samples=samples,
        )

    report = _run(jobs, output_dir, extractor or MouthROIExtractor(), progress, remember)
    write_manifest(output_dir / tsv_path.name, [cropped[i] for i in sorted(cropped)])
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Crop mouth ROIs (96x96, 25 fps) + 16 kHz wav from raw face videos.")
    parser.add_argument("source", help="a folder of videos, or a manifest .tsv with --manifest")
    parser.add_argument("output_dir")
    parser.add_argument("--manifest", action="store_true", help="source is an LRS3-style .tsv")
    parser.add_argument("--detect-every", type=int, default=5, help="frames between face detections")
    parser.add_argument("--face-selection", choices=("largest", "central"), default="largest")
    parser.add_argument("--max-missing-ratio", type=float, default=0.5, help="largest share of frames without a face")
    args = parser.parse_args(argv)
    extractor = MouthROIExtractor(
        detect_every=args.detect_every, face_selection=args.face_selection, max_missing_ratio=args.max_missing_ratio
    )
    crop = crop_manifest if args.manifest else crop_folder
    report = crop(args.source, args.output_dir, extractor)
    print(f"{len(report.written)} written, {len(report.cached)} cached, {len(report.failed)} failed", end="")
    print(f" (see {Path(args.output_dir) / FAILURES_FILENAME})" if report.failed else "")


if __name__ == "__main__":
    main()

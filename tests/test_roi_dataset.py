"""Dataset-scale cropping: a folder or a manifest, cached, with a failure report."""

import numpy as np
import pytest

from media_factory import astronaut_talking_video, tone, write_clip
from modeling_mmsllama.media_mmsllama import read_media
from processing.manifest import ManifestEntry, read_manifest, write_manifest
from processing.roi import FAILURES_FILENAME, crop_folder, crop_manifest


pytest.importorskip("dlib", reason="the face landmarker needs the `roi` extra")


@pytest.fixture(scope="module")
def raw_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("raw")
    frames, _ = astronaut_talking_video(num_frames=12)
    (folder / "spk1").mkdir()
    write_clip(folder / "spk1" / "00001.mp4", frames, 25, tone(0.5, 16_000))
    write_clip(folder / "spk1" / "00002.mkv", np.full((12, 240, 320, 3), 70, np.uint8), 25)  # no face
    (folder / "notes.txt").write_text("not a video")
    return folder


def test_crop_folder_writes_caches_and_reports(raw_folder, tmp_path):
    report = crop_folder(raw_folder, tmp_path, progress=False)
    roi = tmp_path / "spk1" / "00001.mp4"
    assert report.written == [roi] and report.cached == []
    assert [source.endswith("00002.mkv") for source, _ in report.failed] == [True]
    failures = (tmp_path / FAILURES_FILENAME).read_text()
    assert "00002.mkv\t" in failures and "no face found in any of the 12 frames" in failures

    media = read_media(roi)
    assert media.frames.shape == (12, 96, 96) and media.source_fps == pytest.approx(25)
    assert len(read_media(roi.with_suffix(".wav")).audio) == 12 * 640

    again = crop_folder(raw_folder, tmp_path, progress=False)
    assert again.written == [] and again.cached == [roi]


def test_crop_manifest_writes_a_manifest_of_crops(raw_folder, tmp_path):
    source = tmp_path / "raw.tsv"
    entries = [
        ManifestEntry("grid", "spk1/00001.mp4", "spk1/00001.mp4", 12, 7680, 1.1, "bin blue"),
        ManifestEntry("grid", "spk1/00002.mkv", "spk1/00002.mkv", 12, 7680, 0.9, "no face here"),
    ]
    write_manifest(source, entries, root=str(raw_folder))
    report = crop_manifest(source, tmp_path / "roi", progress=False)
    assert len(report.written) == 1 and len(report.failed) == 1
    cropped = read_manifest(tmp_path / "roi" / "raw.tsv")
    assert len(cropped) == 1
    entry = cropped[0]
    assert entry.transcript == "bin blue" and entry.speech_rate == 1.1
    assert entry.num_video_frames == 12 and entry.num_audio_samples == 12 * 640
    assert read_media(entry.video_path).frames.shape == (12, 96, 96)

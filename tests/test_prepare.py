"""Dataset-scale preparation (processing.prepare): sharding, merge checks, resume after a kill, the bad-clip report."""

import json
import multiprocessing
import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest

from media_factory import astronaut_talking_video, tone, write_clip
from processing.manifest import LRS3_SPEECH_RATE_CONSTANT, read_manifest
from processing.prepare import (
    FAILURES_FILENAME,
    IncompleteShardsError,
    list_videos,
    main,
    merge,
    prepare_shard,
    shard_of,
)


pytest.importorskip("dlib", reason="the face landmarker needs the `roi` extra")
NUM_FRAMES = 10
GOOD_CLIPS = {"trainval/spk1/00001": "hello world", "trainval/spk1/00002": "set red by nine",
              "trainval/spk2/00003": "lay blue", "test/spk3/00004": "place green at two now"}  # fmt: skip
BAD_CLIPS = {  # clip id -> what the failure report says
    "trainval/spk2/corrupt": "not a readable audio/video container",
    "trainval/spk2/noface": "no face found in any of the 10 frames",
    "test/spk3/silent": "has no audio stream",
    "test/spk3/untranscribed": "no transcript",
}


@pytest.fixture(scope="module")
def raw_lrs3(tmp_path_factory):
    """An LRS3-layout folder: split/speaker/clip.mp4 + clip.txt, four good clips and four bad ones."""
    root = tmp_path_factory.mktemp("lrs3")
    frames, _ = astronaut_talking_video(num_frames=NUM_FRAMES, height=240, width=320, scale=1.2)
    audio = tone(NUM_FRAMES / 25, 16_000)
    for index, (clip_id, text) in enumerate(GOOD_CLIPS.items()):
        (root / clip_id).parent.mkdir(parents=True, exist_ok=True)
        write_clip(root / f"{clip_id}.mp4", np.roll(frames, index * 3, axis=0), 25, audio)
        (root / f"{clip_id}.txt").write_text(f"Text:  {text.upper()}\nConf:  4\n")
    (root / "trainval/spk2/corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(300))
    write_clip(root / "trainval/spk2/noface.mp4", np.full((NUM_FRAMES, 240, 320, 3), 90, np.uint8), 25, audio)
    write_clip(root / "test/spk3/silent.mp4", frames, 25)
    write_clip(root / "test/spk3/untranscribed.mp4", frames, 25, audio)
    for clip_id in ("trainval/spk2/corrupt", "trainval/spk2/noface", "test/spk3/silent"):
        (root / f"{clip_id}.txt").write_text("Text:  SOME WORDS\n")
    return root


@pytest.fixture(scope="module")
def single_run(raw_lrs3, tmp_path_factory):
    out = tmp_path_factory.mktemp("single")
    main(["--videos", str(raw_lrs3), "--out", str(out), "--quiet"])
    return out


def _manifest_texts(folder: Path) -> dict[str, str]:
    names = ["trainval.tsv", "trainval.wrd", "test.tsv", "test.wrd", FAILURES_FILENAME, "manifest.json"]
    return {name: (folder / name).read_text() for name in names}


def test_shards_are_deterministic_and_cover_every_clip_once():
    ids = [f"pretrain/spk{i % 37}/{i:05d}" for i in range(400)]
    shards = [shard_of(clip_id, 4) for clip_id in ids]
    assert shards == [shard_of(clip_id, 4) for clip_id in ids]  # same clip, same shard, in any run
    assert shard_of("trainval/0af00UcTOSc/50001", 64) == 1  # fixed by SHA-256 of the id: stable across versions
    counts = np.bincount(shards, minlength=4)
    assert counts.sum() == 400 and counts.min() > 70, counts  # every clip in exactly one shard, roughly balanced


def test_single_run_writes_manifests_labels_and_a_failure_report(single_run):
    trainval, test = read_manifest(single_run / "trainval.tsv"), read_manifest(single_run / "test.tsv")
    assert [Path(e.video_path).stem for e in trainval] == ["00001", "00002", "00003"]
    assert [e.transcript for e in test] == ["place green at two now"]
    entry = trainval[1]
    assert entry.num_video_frames == NUM_FRAMES and entry.num_audio_samples == NUM_FRAMES * 640
    assert entry.speech_rate == round(4 / (NUM_FRAMES / 25) / LRS3_SPEECH_RATE_CONSTANT, 2)  # paper-spec 2.4
    assert entry.video_path == str(single_run.resolve() / "trainval/spk1/00002.mp4")

    failures = [line.split("\t") for line in (single_run / FAILURES_FILENAME).read_text().splitlines()]
    assert [row[0] for row in failures] == sorted(BAD_CLIPS)
    for clip_id, _, reason in failures:
        assert BAD_CLIPS[clip_id] in reason, (clip_id, reason)
    metadata = json.loads((single_run / "manifest.json").read_text())
    assert metadata["splits"] == {"test": 1, "trainval": 3} and metadata["failed"] == 4

    import datasets

    dataset = datasets.load_from_disk(str(single_run / "dataset"))
    assert dataset["trainval"]["text"] == ["hello world", "set red by nine", "lay blue"]
    assert dataset["test"]["num_video_frames"] == [NUM_FRAMES]


def test_four_shards_and_a_merge_equal_the_single_run(raw_lrs3, single_run, tmp_path):
    clips = list_videos(raw_lrs3)
    for index in (2, 0, 3):
        prepare_shard(clips, tmp_path, num_shards=4, shard_index=index, progress=False)
    with pytest.raises(IncompleteShardsError, match=r"1 of 4 shards are not finished \(--shard-index 1\)"):
        merge(tmp_path)
    prepare_shard(clips[::-1], tmp_path, num_shards=4, shard_index=1, num_proc=2, progress=False)  # any order, a pool
    merge(tmp_path)
    assert _manifest_texts(tmp_path) == _manifest_texts(single_run)


def test_merge_refuses_shards_of_another_input_list(raw_lrs3, tmp_path):
    clips = list_videos(raw_lrs3)
    prepare_shard(clips, tmp_path, num_shards=2, shard_index=0, progress=False)
    prepare_shard(clips[:-1], tmp_path, num_shards=2, shard_index=1, progress=False)
    with pytest.raises(IncompleteShardsError, match="different input lists"):
        merge(tmp_path)


def test_killed_shard_resumes_where_it_stopped(raw_lrs3, single_run, tmp_path):
    argv = ["--videos", str(raw_lrs3), "--out", str(tmp_path), "--quiet"]
    # A forked child process (it inherits the imports, so it starts at once), killed with SIGKILL half-way.
    process = multiprocessing.get_context("fork").Process(target=main, args=(argv,))
    process.start()
    deadline = time.monotonic() + 60
    while len(list(tmp_path.rglob("0000*.json"))) < 2 and process.is_alive() and time.monotonic() < deadline:
        time.sleep(0.005)
    os.kill(process.pid, signal.SIGKILL)
    process.join()
    done_before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("0000*.json")}
    assert 2 <= len(done_before) < len(GOOD_CLIPS), "the kill should land half-way"
    assert not (tmp_path / "shards").exists()
    with pytest.raises(IncompleteShardsError, match="no finished shard"):
        merge(tmp_path)

    main(argv)
    assert {p: p.stat().st_mtime_ns for p in done_before} == done_before  # finished clips were not cropped again
    assert _manifest_texts(tmp_path) == _manifest_texts(single_run)


def test_shard_from_a_slurm_array_or_a_launcher(monkeypatch):
    from processing.prepare import _launcher_shard

    for name in ("SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT", "SLURM_ARRAY_TASK_MIN", "RANK", "WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(SystemExit, match="no SLURM_ARRAY_TASK_ID"):
        _launcher_shard()
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("WORLD_SIZE", "8")
    assert _launcher_shard() == (3, 8)  # torchrun, accelerate launch
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "12")
    monkeypatch.setenv("SLURM_ARRAY_TASK_COUNT", "64")
    monkeypatch.setenv("SLURM_ARRAY_TASK_MIN", "1")
    assert _launcher_shard() == (11, 64)  # --array=1-64 counts from 1


def test_merge_of_unfinished_shards_is_a_one_line_error(raw_lrs3, tmp_path):
    prepare_shard(list_videos(raw_lrs3), tmp_path, num_shards=3, shard_index=1, progress=False)
    with pytest.raises(SystemExit, match=r"mmsllama-prepare: .*2 of 3 shards are not finished \(--shard-index 0, 2\)"):
        main(["--merge", str(tmp_path)])
    assert not (tmp_path / "trainval.tsv").exists()  # nothing is written before every shard is there

"""The synthetic corpus (processing.synth): timings, media, visemes, labels, determinism, resume, splits."""

import itertools
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from processing.manifest import manifest_to_dataset, read_manifest, read_speech_rate_constant, speech_rate_label
from processing.synth.cli import main as synth_main
from processing.synth.corpus import CorpusConfig, generate_corpus, load_corpus_dataset, speak_utterance
from processing.synth.grammar import SLOTS, VOCABULARY, spoken_form
from processing.synth.mouth import LUMA, ROI_SIZE_PX, SCALE_JITTER, mouth_extent, mouth_layers
from processing.synth.mp4 import SAMPLES_PER_FRAME, read_mp4
from processing.synth.speakers import make_speakers
from processing.synth.tts import SynthesisError, synthesize
from processing.synth.visemes import BILABIALS


TINY = dict(utterances=6, seed=3, speakers={"train": 1, "valid": 1, "test": 1}, face_splits=())


def _metadata(corpus: Path) -> list[dict]:
    return sorted((json.loads(p.read_text()) for p in (corpus / "meta").rglob("*.json")), key=lambda m: m["index"])


def _speakers(corpus: Path) -> dict[str, dict]:
    return {s["speaker_id"]: s for s in json.loads((corpus / "corpus.json").read_text())["speakers"]}


def test_grammar_has_51_words():
    assert len(VOCABULARY) == 51 and [len(s) for s in SLOTS] == [4, 4, 4, 25, 10, 4]
    assert spoken_form(["place", "red", "at", "a", "one", "soon"])[3] == "eh"


def test_letter_a_needs_its_spoken_form():
    words = ["bin", "blue", "at", "a", "two", "now"]
    with pytest.raises(SynthesisError):
        synthesize(words, "en-us")  # read as the article, merged with a neighbour
    speech = synthesize(spoken_form(words), "en-us")
    assert len(speech.words) == 6
    assert all(w.end > w.start for w in speech.words)
    assert all(a.end <= b.start + 1e-9 for a, b in zip(speech.words, speech.words[1:]))
    assert all(p.end > p.start for p in speech.phonemes)  # zero-length events filtered


def test_bad_arguments_are_clear(capsys):
    with pytest.raises(ValueError, match="rate_wpm must be in"):
        synthesize(["bin"], "en-us", rate_wpm=10)
    with pytest.raises(SynthesisError, match="no voice"):
        synthesize(["bin"], "xx-nonexistent")
    with pytest.raises(ValueError, match="cannot cover"):
        CorpusConfig(utterances=2, speakers={"train": 1, "valid": 1, "test": 1})
    with pytest.raises(ValueError, match="face_splits"):
        CorpusConfig(face_splits=("dev",))
    for argv, message in ((["--out", "x", "--utterances", "0"], "positive integer"), (["--out", "x", "--face", "dev"], "none")):
        with pytest.raises(SystemExit) as exit_info:
            synth_main(argv)
        assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_counts_agree_across_manifest_metadata_and_decoded_media(synth_corpus):
    for m in _metadata(synth_corpus):
        assert m["num_audio_samples"] == m["num_video_frames"] * SAMPLES_PER_FRAME
    for variant, shape in (("roi88", (88, 88)), ("roi96", (96, 96)), ("face", (240, 320, 3))):
        for split in ("train", "valid", "test") if variant != "face" else ("test",):
            entries = read_manifest(synth_corpus / variant / f"{split}.tsv")
            assert entries, (variant, split)
            for entry in entries[:3]:
                clip = read_mp4(entry.video_path, rgb=variant == "face")
                assert clip.video.shape == (entry.num_video_frames, *shape)
                audio = read_mp4(entry.audio_path).audio
                assert audio.shape == (entry.num_audio_samples,) == (entry.num_video_frames * SAMPLES_PER_FRAME,)


def test_word_timings_agree_with_the_audio(synth_corpus):
    for m in _metadata(synth_corpus)[:12]:
        audio = read_mp4(synth_corpus / m["media"]["roi88"]).audio

        def rms(start, end):
            segment = audio[int(start * 16000) : int(end * 16000)]
            return float(np.sqrt(np.mean(segment**2))) if len(segment) else 0.0

        first, last = m["words"][0]["start"], m["words"][-1]["end"]
        silence = max(rms(0.0, first - 0.03), rms(last + 0.05, len(audio) / 16000))
        for word in m["words"]:
            assert rms(word["start"], word["end"]) > 10 * silence + 1e-3, (m["id"], word)
        frame_duration = m["num_video_frames"] / 25
        assert abs(frame_duration - len(audio) / 16000) < 1e-9 and last < frame_duration


def _dark_pixels(frame: np.ndarray, speaker: dict) -> int:
    """Pixels darker than halfway between lip and inner-mouth gray: the open aperture."""
    threshold = 255 * (np.dot(speaker["lip"], LUMA) + np.dot(speaker["inner"], LUMA)) / 2
    return int((frame < threshold).sum())


def test_visemes_are_visible(synth_corpus):
    speakers = _speakers(synth_corpus)
    closed, open_ = [], []
    for m in _metadata(synth_corpus)[:16]:
        video = read_mp4(synth_corpus / m["media"]["roi88"]).video
        centres = (np.arange(len(video)) + 0.5) / 25
        for p in m["phonemes"]:
            inside = np.flatnonzero((centres >= p["start"]) & (centres < p["end"]))
            if p["phoneme"] in BILABIALS:
                closed += [_dark_pixels(video[k], speakers[m["speaker"]]) for k in inside]
        for k, shape in enumerate(m["mouth_shapes"]):
            if shape[0] > 0.7:  # wide open (æ, aɪ, aʊ, ...)
                open_.append(_dark_pixels(video[k], speakers[m["speaker"]]))
    assert len(closed) >= 5 and len(open_) >= 10
    assert np.median(closed) < 100 < 300 < np.median(open_), (np.median(closed), np.median(open_))


def test_mouth_layers_vanish_beyond_the_mouth_extent():
    """The ROI renderer paints the mouth only within `mouth_extent`, so every layer must be exactly 0 beyond it."""
    rng = np.random.default_rng(0)
    extremes = np.array(list(itertools.product((0.0, 1.0), repeat=4)), np.float32)  # shut, wide open, round, ...
    shapes = np.concatenate([extremes, rng.uniform(0, 1, (16, 4)).astype(np.float32)])
    axis = np.linspace(-2.0, 2.0, 161, dtype=np.float32)  # mouth units, finer than a pixel
    u, v = (np.broadcast_to(c, (len(shapes), len(axis), len(axis))) for c in (axis[None, None, :], axis[None, :, None]))
    for speaker in make_speakers(0, {"train": 18, "valid": 3, "test": 3}):
        scale = speaker.mouth_half_width * ROI_SIZE_PX * (1.0 + rng.uniform(-SCALE_JITTER, SCALE_JITTER, (len(shapes), 1, 1)))
        pixel = (1.0 / scale).astype(np.float32)
        layers = mouth_layers(shapes, u, v, speaker, pixel)
        extent_u, extent_v = mouth_extent(shapes, speaker, pixel)
        beyond = (np.abs(u) >= extent_u) | (np.abs(v) >= extent_v)
        assert beyond.any() and layers["lips"][~beyond].any()
        for name in ("lips", "aperture", "teeth", "seam"):
            assert not layers[name][beyond].any(), (speaker.speaker_id, name)


def test_speech_rate_labels_match_word_counts_and_duration(synth_corpus):
    constant = read_speech_rate_constant(synth_corpus / "roi88")
    for split in ("train", "valid", "test"):
        for entry in read_manifest(synth_corpus / "roi88" / f"{split}.tsv"):
            assert entry.speech_rate == speech_rate_label(len(entry.transcript.split()), entry.num_video_frames, constant)


def test_speech_rate_labels_span_the_required_range():
    speakers = make_speakers(0, {"train": 18, "valid": 3, "test": 3})
    labels = [
        speech_rate_label(6, speak_utterance(np.random.default_rng([0, i]), speakers[i % len(speakers)]).num_video_frames)
        for i in range(240)
    ]
    assert min(labels) <= 0.6 and max(labels) >= 1.8, (min(labels), max(labels))


def test_splits_do_not_share_speakers_or_voices(synth_corpus):
    speakers = _speakers(synth_corpus)
    by_split = {}
    for split in ("train", "valid", "test"):
        ids = {Path(e.video_path).parent.name for e in read_manifest(synth_corpus / "roi88" / f"{split}.tsv")}
        assert all(speakers[i]["split"] == split for i in ids)
        by_split[split] = ids
    assert not (by_split["train"] & by_split["test"]) and not (by_split["train"] & by_split["valid"])
    voices = {split: {speakers[i]["voice"] for i in ids} for split, ids in by_split.items()}
    assert not (voices["train"] & voices["test"])


def test_face_variant_moves_and_tracks_the_mouth(synth_corpus):
    m = next(m for m in _metadata(synth_corpus) if "face" in m["media"])
    centres = np.array(m["face_mouth_centres_px"])
    assert centres.shape == (m["num_video_frames"], 2)
    assert np.ptp(centres, axis=0).max() > 2.0  # head motion
    assert (centres[:, 0] > 40).all() and (centres[:, 0] < 280).all() and (centres[:, 1] < 220).all()


def test_datasets_copy(synth_corpus):
    dataset = load_corpus_dataset(synth_corpus)
    assert set(dataset) == {"train", "valid", "test"}
    assert sum(d.num_rows for d in dataset.values()) == 48
    row = dataset["test"][0]
    assert Path(row["video_roi88"]).is_file() and Path(row["video_face"]).is_file()
    assert len(row["words"]) == 6 and len(row["phonemes"]) == len(row["phoneme_start"])
    assert manifest_to_dataset(synth_corpus / "roi88" / "train.tsv").num_rows == dataset["train"].num_rows


def _manifest_bytes(corpus: Path) -> dict[str, bytes]:
    files = [*corpus.glob("*/*.tsv"), *corpus.glob("*/*.wrd"), *corpus.glob("*/manifest.json"), *(corpus / "meta").rglob("*.json")]
    return {str(p.relative_to(corpus)): p.read_bytes() for p in files}


def test_seed_reproduces_byte_identical_manifests_and_resume_completes(tmp_path):
    config = CorpusConfig(**TINY)
    generate_corpus(tmp_path / "a", config, progress=False)
    generate_corpus(tmp_path / "b", config, progress=False, workers=2)  # two processes write the same bytes as one
    reference = _manifest_bytes(tmp_path / "a")
    assert reference and reference == _manifest_bytes(tmp_path / "b")
    videos = {str(p.relative_to(tmp_path / "a")): p.read_bytes() for p in (tmp_path / "a").rglob("*.mp4")}
    assert len(videos) == 2 * TINY["utterances"]
    assert videos == {str(p.relative_to(tmp_path / "b")): p.read_bytes() for p in (tmp_path / "b").rglob("*.mp4")}
    assert reference != _manifest_bytes(generate_corpus(tmp_path / "c", CorpusConfig(**{**TINY, "seed": 4}), progress=False) and tmp_path / "c")

    # Interrupt: one utterance lost its metadata, another its video, and a half-written file lies around.
    corpus = tmp_path / "a"
    metas = sorted((corpus / "meta").rglob("*.json"))
    untouched = corpus / json.loads(metas[2].read_text())["media"]["roi88"]
    stamp = untouched.stat().st_mtime_ns
    metas[0].unlink()
    (corpus / json.loads(metas[1].read_text())["media"]["roi96"]).unlink()
    (metas[2].parent / ".junk.mp4.tmp123").write_bytes(b"partial")
    for tsv in corpus.glob("*/*.tsv"):
        tsv.unlink()
    generate_corpus(corpus, config, progress=False)
    assert _manifest_bytes(corpus) == reference
    assert untouched.stat().st_mtime_ns == stamp  # done utterances are not redone

    with pytest.raises(ValueError, match="other settings"):
        generate_corpus(corpus, CorpusConfig(**{**TINY, "seed": 5}), progress=False)


def test_cli_writes_a_corpus(tmp_path):
    out = tmp_path / "cli"
    assert synth_main(["--out", str(out), "--utterances", "3", "--train-speakers", "1", "--valid-speakers", "1", "--test-speakers", "1", "--face", "none", "--quiet"]) == 0
    assert len(read_manifest(out / "roi88" / "train.tsv")) == 1
    assert not (out / "face").exists()


def test_breathy_voices_repeat_exactly_across_processes():
    # the +f5 variant mixes random breath noise into the speech: libespeak-ng seeds it anew in every process unless
    # told otherwise
    script = ("import hashlib; from processing.synth.tts import synthesize; "
              "print(hashlib.sha256(synthesize(['bin', 'blue', 'at', 'f', 'two', 'now'], 'en-us+f5').audio).hexdigest())")
    digests = {subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
               for _ in range(2)}  # fmt: skip
    assert len(digests) == 1

"""The custom ASR pipeline: equal to generate + decode, streaming decode, batching, token budget, long form."""

import re
import sys
import time
import tracemalloc
import warnings

import numpy as np
import pytest
import torch

from media_factory import frame_number_video, tone, write_clip
from modeling_mmsllama import MMSLlamaForConditionalGeneration, MMSLlamaInputError, MMSLlamaProcessor, read_media
from modeling_mmsllama.media_mmsllama import MediaBlock, MediaStream
from modeling_mmsllama.pipeline_mmsllama import (
    MMSLlamaASRPipeline,
    frame_energy_db,
    find_pause,
    iter_chunks,
    merge_overlapping,
)
from modeling_mmsllama.subtitles_mmsllama import to_srt, to_vtt


GREEDY = {"num_beams": 1, "max_new_tokens": 6}


@pytest.fixture(scope="module")
def asr(tiny_model_folder):
    model = MMSLlamaForConditionalGeneration.from_pretrained(tiny_model_folder).eval()
    processor = MMSLlamaProcessor.from_pretrained(tiny_model_folder, trust_remote_code=True)
    return MMSLlamaASRPipeline(model=model, processor=processor)


@pytest.fixture(scope="module")
def clips(synth_corpus):
    return sorted(str(p) for p in (synth_corpus / "roi88").rglob("*.mp4"))[:6]


def reference(asr, **processor_kwargs):
    inputs = asr.processor(**processor_kwargs)
    ids = asr.model.generate(**inputs, do_sample=False, **GREEDY)
    return asr.processor.batch_decode(ids, skip_special_tokens=True)


def test_stream_blocks_of_any_size_join_to_read_media(clips, tmp_path):
    write_clip(tmp_path / "c30.mp4", frame_number_video(45), 30, tone(1.5, 44_100), 44_100)
    for path in [clips[0], str(tmp_path / "c30.mp4")]:
        media = read_media(path)
        stream = MediaStream(path, block_frames=7)
        blocks = list(stream)
        assert len(blocks) >= len(media.frames) // 8 and stream.notes == media.notes  # streamed, not read at once
        frames = np.concatenate([b.frames for b in blocks if b.frames is not None])
        audio = np.concatenate([b.audio for b in blocks if b.audio is not None])
        assert np.array_equal(frames, media.frames)
        assert np.array_equal(audio, media.audio)


def test_pipeline_equals_generate_and_decode(asr, clips):
    for modality in (None, "audio", "video"):
        result = asr(clips[0], modality=modality, **GREEDY)
        expected = reference(asr, videos=clips[0], modality=modality)[0]
        assert result["text"] == expected
        assert len(result["chunks"]) == 1 and result["chunks"][0]["text"] == expected
        assert result["speech_tokens"] >= asr.model.config.min_queries
        assert result["tokens_per_second"] > 0


def test_arrays_and_dataset_rows(asr, clips):
    media = read_media(clips[1])
    expected = reference(asr, videos=clips[1])[0]
    assert asr({"video": media.frames, "audio": media.audio, "sampling_rate": 16_000}, **GREEDY)["text"] == expected
    audio_expected = reference(asr, audio=media.audio, sampling_rate=16_000)[0]
    assert asr(media.audio, sampling_rate=16_000, **GREEDY)["text"] == audio_expected
    assert asr({"array": media.audio, "sampling_rate": 16_000}, **GREEDY)["text"] == audio_expected
    datasets = pytest.importorskip("datasets")
    rows = datasets.Dataset.from_dict({"audio": [{"array": media.audio, "sampling_rate": 16_000}] * 2, "text": ["a", "b"]})
    results = asr(rows, **GREEDY)  # rows are {"audio": {"array", "sampling_rate"}, "text": ...}
    assert len(results) == 2 and all(r["text"] == audio_expected for r in results)


def test_batch_and_single_agree(asr, clips):
    single = [asr(c, **GREEDY) for c in clips[:4]]
    batched = asr(clips[:4], batch_size=4, **GREEDY)
    assert [r["text"] for r in batched] == [r["text"] for r in single]
    assert [r["speech_tokens"] for r in batched] == [r["speech_tokens"] for r in single]


def test_token_budget(asr, clips):
    frames = len(read_media(clips[0]).frames)
    base = asr(clips[0], **GREEDY)["speech_tokens"]
    flat = asr(clips[0], max_rate=1.0, **GREEDY)["speech_tokens"]
    assert flat == int(3.0 * frames / 25 + 1e-6) <= base
    assert asr(clips[0], queries_per_second=1.5, max_rate=1.0, **GREEDY)["speech_tokens"] == max(3, int(1.5 * frames / 25 + 1e-6))
    assert asr(clips[0], speech_rate=2.0, **GREEDY)["speech_tokens"] == int(6.0 * frames / 25 + 1e-6)
    assert asr.model.config.queries_per_second == 3.0 and asr.model.config.rate_clamp == [1.0, 2.0]  # untouched
    with pytest.raises(MMSLlamaInputError):
        asr(clips[0], max_rate=0.5)


def test_errors_name_the_input(asr, tmp_path):
    with pytest.raises(MMSLlamaInputError, match="nothere.mp4"):
        asr(str(tmp_path / "nothere.mp4"))
    write_clip(tmp_path / "silent.mp4", frame_number_video(20, 88, 88), 25)
    with pytest.raises(MMSLlamaInputError, match="no audio"):
        asr(str(tmp_path / "silent.mp4"), modality="audio")
    with pytest.raises(TypeError):
        asr(str(tmp_path / "silent.mp4"), beams=3)


def test_pause_detection_and_chunking():
    rng = np.random.default_rng(0)
    speech = lambda s: (0.3 * rng.standard_normal(int(s * 16000))).astype(np.float32)  # noqa: E731
    silence = lambda s: np.zeros(int(s * 16000), np.float32)  # noqa: E731
    audio = np.concatenate([speech(3.0), silence(0.6), speech(2.0)])
    cut = find_pause(frame_energy_db(audio), 50, 125)
    assert 75 <= cut <= 90  # inside the pause (frames 75-90)
    chunks = list(iter_chunks([MediaBlock(None, audio)], max_frames=125))
    assert [c.start for c in chunks] == [0, cut] and chunks[-1].end == len(audio) // 640
    # video only: fixed windows overlapping by 10 frames, covering every frame
    frames = np.zeros((300, 88, 88), np.uint8)
    windows = list(iter_chunks([MediaBlock(frames, None)], max_frames=100, overlap_frames=10))
    assert [(w.start, w.end) for w in windows] == [(0, 100), (90, 190), (180, 280), (270, 300)]
    assert merge_overlapping("set blue at f two", "f two now please") == "now please"
    assert merge_overlapping("bin red", "lay green") == "lay green"


def test_video_only_long_input_uses_overlapping_windows(asr):
    frames = np.random.default_rng(0).integers(0, 255, (300, 88, 88), dtype=np.uint8)  # 12 s, model limit 5 s
    result = asr({"video": frames}, **GREEDY)
    stamps = [c["timestamp"] for c in result["chunks"]]
    assert stamps[0][0] == 0.0 and stamps[-1][1] == 12.0
    assert all(a[1] == b[0] for a, b in zip(stamps, stamps[1:]))  # windows meet in the middle of their overlap


def parse_srt(text: str) -> list[tuple[float, float, str]]:
    clock = r"(\d\d):(\d\d):(\d\d),(\d\d\d)"
    cues = []
    for number, block in enumerate(text.strip().split("\n\n"), 1):
        lines = block.split("\n")
        assert lines[0] == str(number)
        match = re.fullmatch(clock + " --> " + clock, lines[1])
        assert match, lines[1]
        g = [int(x) for x in match.groups()]
        start = g[0] * 3600 + g[1] * 60 + g[2] + g[3] / 1000
        end = g[4] * 3600 + g[5] * 60 + g[6] + g[7] / 1000
        assert end > start
        cues.append((start, end, "\n".join(lines[2:])))
    return cues


def parse_vtt(text: str) -> list[tuple[float, float, str]]:
    assert text.startswith("WEBVTT\n\n")
    clock = r"(\d\d):(\d\d):(\d\d)\.(\d\d\d)"
    cues = []
    for block in text[len("WEBVTT\n\n"):].strip().split("\n\n"):
        lines = block.split("\n")
        match = re.fullmatch(clock + " --> " + clock, lines[0])
        assert match, lines[0]
        g = [int(x) for x in match.groups()]
        cues.append((g[0] * 3600 + g[1] * 60 + g[2] + g[3] / 1000, g[4] * 3600 + g[5] * 60 + g[6] + g[7] / 1000,
                     "\n".join(lines[1:])))  # fmt: skip
    return cues


def test_subtitles_parse():
    result = {"text": "a b", "chunks": [{"timestamp": (0.0, 4.2), "text": "bin blue"}, {"timestamp": (4.2, 3725.5),
              "text": ""}, {"timestamp": (3725.5, 3730.04), "text": "lay red"}]}  # fmt: skip
    assert parse_srt(to_srt(result)) == [(0.0, 4.2, "bin blue"), (3725.5, 3730.04, "lay red")]
    assert parse_vtt(to_vtt(result)) == [(0.0, 4.2, "bin blue"), (3725.5, 3730.04, "lay red")]


def traced_run(asr, path, **options):
    tracemalloc.start()
    started = time.perf_counter()
    result = asr(str(path), **options)
    elapsed = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return result, peak, elapsed


def test_long_form_three_minutes_bounded_memory(asr, clips, tmp_path):
    from longform_factory import write_long_video

    options = {"batch_size": 8, "num_beams": 1, "max_new_tokens": 2}
    video = write_long_video(tmp_path / "long.mp4", clips, seconds=180)
    short = write_long_video(tmp_path / "short.mp4", clips, seconds=36)
    _, short_peak, _ = traced_run(asr, short["path"], **options)
    result, peak, elapsed = traced_run(asr, video["path"], **options)
    stamps = [c["timestamp"] for c in result["chunks"]]
    assert stamps[0][0] == 0.0 and stamps[-1][1] == pytest.approx(180.0, abs=0.05)
    assert all(a[1] == b[0] and b[1] > b[0] for a, b in zip(stamps, stamps[1:]))
    assert all(b - a <= 5.0 for a, b in stamps) and len(stamps) >= 36
    # cuts fall in pauses: few cuts lie inside a tiled clip (more than 0.2 s from its edges)
    inside = [t for t, _ in stamps[1:] if any(s + 0.2 < t < e - 0.2 for s, e in video["segments"])]
    assert len(inside) <= len(stamps) // 10, inside
    # memory: five times the video, the same peak (numpy allocations traced; the whole decoded video would add ~37 MB)
    extra_frames = video["frames"] - short["frames"]
    extra_bytes = extra_frames * (88 * 88 + 640 * 4)
    growth = peak - short_peak
    print(f"long form: {len(stamps)} chunks in {elapsed:.1f} s; traced peak {peak / 1e6:.1f} MB for 180 s, "
          f"{short_peak / 1e6:.1f} MB for 36 s (holding the extra 144 s would add {extra_bytes / 1e6:.1f} MB)",
          file=sys.stderr)  # fmt: skip
    assert growth < extra_bytes / 8, (growth, extra_bytes)
    assert result["speech_tokens"] > 0


def test_synthetic_model_warns_once_on_a_face_video(tiny_model_folder, clips, tmp_path):
    pytest.importorskip("dlib", reason="the face landmarker needs the `roi` extra")
    from media_factory import astronaut_talking_video

    from modeling_mmsllama.configuration_mmsllama import SYNTHETIC_GRID

    frames, _ = astronaut_talking_video(num_frames=12)
    write_clip(tmp_path / "face.mp4", frames, fps=25, audio=tone(0.48, 16_000), sample_rate=16_000)
    model = MMSLlamaForConditionalGeneration.from_pretrained(tiny_model_folder).eval()
    processor = MMSLlamaProcessor.from_pretrained(tiny_model_folder, trust_remote_code=True)
    real = MMSLlamaASRPipeline(model=model, processor=processor)
    model.config.trained_on = SYNTHETIC_GRID
    synthetic = MMSLlamaASRPipeline(model=model, processor=processor)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        synthetic(clips[0], **GREEDY)  # mouth crops: what the model was trained on, no remark
        assert not caught
        synthetic([str(tmp_path / "face.mp4")] * 2, **GREEDY)
        synthetic(str(tmp_path / "face.mp4"), **GREEDY)
    messages = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    assert len(messages) == 1 and "trained only on the synthetic GRID-style corpus" in messages[0]
    assert "whatever was said" in messages[0]
    model.config.trained_on = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        real(str(tmp_path / "face.mp4"), **GREEDY)
    assert not [w for w in caught if "synthetic" in str(w.message)]


def test_last_clip_is_never_shorter_than_the_model_reads():
    frames = np.zeros((127, 88, 88), np.uint8)  # 125 + 2 frames: a 2-frame tail would be refused
    windows = list(iter_chunks([MediaBlock(frames, None)], max_frames=125, overlap_frames=0))
    assert [(w.start, w.end, w.overlap_before) for w in windows] == [(0, 125, 0), (122, 127, 3)]
    noise = np.random.default_rng(0).standard_normal(127 * 640).astype(np.float32) * 0.1
    clips = list(iter_chunks([MediaBlock(None, noise)], max_frames=125))
    assert [(c.start, c.end) for c in clips] == [(0, 122), (122, 127)]


def test_doubtful_lengths_through_the_pipeline(asr):
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (127, 88, 88), dtype=np.uint8)
    audio = (0.1 * rng.standard_normal(127 * 640)).astype(np.float32)
    result = asr({"video": frames, "audio": audio, "sampling_rate": 16_000}, **GREEDY)
    assert [c["timestamp"] for c in result["chunks"]] == [(0.0, 4.88), (4.88, 5.08)]
    mismatch = {"video": frames[:25], "audio": tone(5.0, 16_000), "sampling_rate": 16_000}
    refused = "inputs[0]: the audio lasts 5.00 s and the video 1.00 s"
    with pytest.raises(MMSLlamaInputError, match=re.escape(refused)):
        asr(mismatch, **GREEDY)
    assert [c["timestamp"] for c in asr(mismatch, align="trim", **GREEDY)["chunks"]] == [(0.0, 1.0)]
    too_short = "inputs[0]: lasts 0.12 s; the model needs at least 0.20 s."
    with pytest.raises(MMSLlamaInputError, match=re.escape(too_short)):
        asr(tone(0.1, 16_000), sampling_rate=16_000, **GREEDY)
    with pytest.raises(MMSLlamaInputError, match=re.escape("chunk_length_s=0.2 is too short: clips are cut at least")):
        asr(audio, sampling_rate=16_000, chunk_length_s=0.2, **GREEDY)


def test_pipeline_says_what_it_converted(asr, tmp_path):
    from modeling_mmsllama import MMSLlamaConversionWarning

    pcm = (tone(1.0, 8000) * 32767).astype(np.int16)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = asr(np.stack([pcm, pcm]), sampling_rate=8000, **GREEDY)
    expected = ["audio rescaled from int16 PCM to float in [-1, 1]", "audio resampled from 8000 Hz to 16000 Hz",
                "audio down-mixed from 2 channels to mono"]  # fmt: skip
    assert result["conversions"] == expected
    assert [str(w.message) for w in caught if issubclass(w.category, MMSLlamaConversionWarning)] == [
        "inputs[0]: converted onto the model's grid (16 kHz mono float audio, 25 fps video): "
        + "; ".join(expected)
        + "."
    ]
    write_clip(tmp_path / "c44.mp4", frame_number_video(30, 88, 88), 30, np.stack([tone(1.0, 44_100)] * 2), 44_100)
    assert asr(str(tmp_path / "c44.mp4"), **GREEDY)["conversions"][:3] == [
        "video resampled from 30.000 fps to 25 fps (30 -> 25 frames)",
        "audio resampled from 44100 Hz to 16000 Hz",
        "audio down-mixed from 2 channels to mono",
    ]
    assert asr(tone(1.0, 16_000), sampling_rate=16_000, **GREEDY)["conversions"] == []

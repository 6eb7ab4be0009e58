"""MMSLlamaProcessor: raw media in, model inputs out; modalities, fallbacks, bad input, save/load, decoding."""

import re
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from media_factory import astronaut_talking_video, frame_number_video, tone, write_clip
from modeling_mmsllama.errors_mmsllama import MMSLlamaConversionWarning, MMSLlamaInputError
from modeling_mmsllama.processing_mmsllama import IGNORE_INDEX, MMSLlamaProcessor
from modeling_mmsllama.video_processing_mmsllama import MMSLlamaVideoProcessor


MEL_FRAMES = 500  # tiny preset: max_source_positions 250 -> a 5 s Whisper window
ROI = np.random.default_rng(0).integers(0, 255, (30, 96, 96), dtype=np.uint8)


@pytest.fixture(scope="module")
def processor():
    return MMSLlamaProcessor.from_preset("tiny")


@pytest.fixture(scope="module")
def face_video(tmp_path_factory):
    """A 640x480, 30 fps astronaut clip with a 44.1 kHz stereo tone track."""
    pytest.importorskip("dlib", reason="the face landmarker needs the `roi` extra")
    path = tmp_path_factory.mktemp("media") / "face.mp4"
    frames, _ = astronaut_talking_video(num_frames=30)
    write_clip(path, frames, fps=30, audio=np.stack([tone(1.0, 44_100)] * 2), sample_rate=44_100)
    return str(path)


@pytest.fixture(scope="module")
def roi_clips(tmp_path_factory):
    """Ready-made mouth crops: 96x96 mp4 with audio, the same without audio, and a wav."""
    folder = tmp_path_factory.mktemp("roi")
    write_clip(folder / "roi.mp4", frame_number_video(20, 96, 96), 25, tone(0.8, 16_000))
    write_clip(folder / "silent.mp4", frame_number_video(20, 96, 96), 25)
    write_clip(folder / "speech.wav", audio=tone(1.0, 22_050), sample_rate=22_050, audio_codec="pcm_s16le")
    return {name: str(folder / f"{name}.{ext}") for name, ext in (("roi", "mp4"), ("silent", "mp4"), ("speech", "wav"))}


def test_raw_face_video_with_its_own_audio(processor, face_video):
    inputs = processor(videos=face_video)
    assert inputs.modality == "av"
    assert inputs["pixel_values_videos"].shape == (1, 25, 1, 88, 88)
    assert inputs["pixel_values_videos"].dtype == torch.float32
    assert inputs["video_mask"].dtype == torch.bool and inputs["video_mask"].all()
    assert inputs["input_features"].shape == (1, 80, MEL_FRAMES)
    assert inputs["input_features_mask"].sum().item() == 25 * 4  # 4 mel frames per video frame
    info = inputs.media_info[0]
    assert info.num_frames == 25 and info.num_samples == 25 * 640 and info.source_fps == pytest.approx(30)
    assert info.source_channels == 2 and info.source_sample_rate == 44_100
    assert any("30.000 fps to 25 fps" in note for note in info.notes)


def test_prompt_has_one_placeholder_and_labels_cover_transcript(processor):
    inputs = processor(
        videos=[ROI, ROI[:10]],
        audio=[tone(1.2, 16_000), tone(0.5, 16_000)],
        sampling_rate=16_000,
        text=["hi", "a b c"],
    )
    tokenizer = processor.tokenizer
    ids, labels, mask = inputs["input_ids"], inputs["labels"], inputs["attention_mask"]
    assert (ids == processor.speech_token_id).sum(dim=1).tolist() == [1, 1]
    assert mask[0, 0] == 0 and mask[:, -1].all()  # left padding
    assert (ids[mask == 0] == tokenizer.pad_token_id).all()
    for row in range(2):
        real = ids[row][mask[row] == 1].tolist()
        assert real[0] == tokenizer.bos_token_id and real[-1] == tokenizer.eos_token_id
        target = labels[row][labels[row] != IGNORE_INDEX].tolist()
        assert tokenizer.decode(target[:-1]) == ["hi", "a b c"][row] and target[-1] == tokenizer.eos_token_id
        placeholder = real.index(processor.speech_token_id)
        assert tokenizer.decode(real[1:placeholder]) == processor.prompt
    assert inputs["video_mask"].sum(1).tolist() == [30, 10]
    assert inputs["input_features_mask"].sum(1).tolist() == [120, 40]  # audio aligned to each clip's frames


def test_roi_video_with_separate_wav(processor, roi_clips):
    inputs = processor(videos=roi_clips["silent"], audio=roi_clips["speech"])
    info = inputs.media_info[0]
    assert inputs.modality == "av" and info.audio == roi_clips["speech"] and info.num_samples == 20 * 640
    assert any("trimmed" in note for note in info.notes) and any("22050 Hz" in note for note in info.notes)


def test_audio_only_and_video_only_outputs(processor, roi_clips):
    audio_only = processor(audio=tone(2.0, 44_100), sampling_rate=44_100)
    assert audio_only.modality == "audio" and "pixel_values_videos" not in audio_only
    assert audio_only["input_features_mask"].sum().item() == 200
    video_only = processor(videos=roi_clips["roi"], modality="video")
    assert video_only.modality == "video" and "input_features" not in video_only
    from_track = processor(videos=roi_clips["roi"], modality="audio")
    assert from_track.modality == "audio" and from_track.media_info[0].audio == roi_clips["roi"]


def test_missing_audio_track_falls_back_or_fails(processor, roi_clips):
    inputs = processor(videos=roi_clips["silent"])
    assert inputs.modality == "video"
    assert "has no audio stream: using the video only" in inputs.media_info[0].fallback
    with pytest.raises(MMSLlamaInputError, match=r"silent.mp4: has no audio stream, but modality='av' needs it"):
        processor(videos=roi_clips["silent"], modality="av")


def test_no_video_stream_where_one_is_needed(processor, roi_clips):
    with pytest.raises(MMSLlamaInputError, match=r"speech.wav: has no video stream, but modality='video' needs it"):
        processor(videos=roi_clips["speech"], modality="video")
    inputs = processor(videos=roi_clips["speech"])
    assert inputs.modality == "audio" and "no video stream" in inputs.media_info[0].fallback


def test_no_face_falls_back_to_audio_or_fails(processor, tmp_path):
    pytest.importorskip("dlib")
    path = tmp_path / "noface.mp4"
    write_clip(path, np.full((10, 240, 320, 3), 90, np.uint8), 25, tone(0.4, 16_000))
    inputs = processor(videos=str(path))
    assert inputs.modality == "audio" and "no face found in any of the 10 frames" in inputs.media_info[0].fallback
    assert inputs.media_info[0].missing_face_frames == list(range(10))
    with pytest.raises(MMSLlamaInputError, match="noface.mp4: no face found in any of the 10 frames"):
        processor(videos=str(path), modality="av")


def test_mixed_batch_marks_which_streams_are_real(processor, roi_clips):
    inputs = processor(videos=[roi_clips["roi"], roi_clips["silent"]])
    assert inputs.modality == "av"
    assert inputs["has_audio"].tolist() == [True, False] and inputs["has_video"].tolist() == [True, True]
    assert [info.modality for info in inputs.media_info] == ["av", "video"]
    assert inputs["input_features_mask"].sum(1).tolist() == [80, 80]  # silence stands in, aligned to 20 frames
    assert "silence stands in" in inputs.media_info[1].notes[-1] and inputs.media_info[1].num_samples == 0
    audio_and_video_only = processor(videos=[roi_clips["speech"], roi_clips["silent"]])
    assert audio_and_video_only["has_audio"].tolist() == [True, False]
    assert audio_and_video_only["has_video"].tolist() == [False, True]
    assert audio_and_video_only["video_mask"].sum(1).tolist() == [25, 20]  # 1 s of audio -> 25 blank frames
    uniform = processor(videos=[roi_clips["roi"], roi_clips["roi"]])
    assert "has_audio" not in uniform and "has_video" not in uniform


def test_clip_longer_than_the_model_takes(processor):
    with pytest.raises(MMSLlamaInputError, match=r"audio\[0\]: the clip lasts 6.00 s .* at most 5.00 s \(125 frames\)"):
        processor(audio=np.zeros(96_000, np.float32), sampling_rate=16_000)
    with pytest.raises(MMSLlamaInputError, match=r"videos\[0\]: the clip lasts 5.20 s \(130 frames"):
        processor(videos=np.zeros((130, 96, 96), np.uint8), modality="video")


def test_argument_errors(processor, roi_clips):
    with pytest.raises(MMSLlamaInputError, match="nothing to transcribe"):
        processor()
    with pytest.raises(MMSLlamaInputError, match="2 videos and 1 audio inputs"):
        processor(videos=[ROI, ROI], audio=[tone(1.0, 16_000)], sampling_rate=16_000)
    with pytest.raises(MMSLlamaInputError, match="modality must be one of"):
        processor(audio=tone(1.0, 16_000), sampling_rate=16_000, modality="lips")
    with pytest.raises(MMSLlamaInputError, match="needs its `sampling_rate`"):
        processor(audio=tone(1.0, 16_000))
    with pytest.raises(MMSLlamaInputError, match="1 transcripts for 2 samples"):
        processor(audio=[tone(1.0, 16_000)] * 2, sampling_rate=16_000, text=["only one"])
    with pytest.raises(MMSLlamaInputError, match=r"videos\[0\]: frames must be uint8"):
        processor(videos=np.zeros((5, 96, 96), np.float32), modality="video")
    with pytest.raises(MMSLlamaInputError, match="missing.mp4: file not found"):
        processor(videos="missing.mp4")
    with pytest.raises(
        MMSLlamaInputError, match=r"audio\[0\]: audio has 100 NaN/inf samples \(first at sample 1, 0.000 s\)"
    ):
        processor(audio=np.array([0.0, np.inf] * 100), sampling_rate=16_000)


def test_zero_length_video(processor, tmp_path):
    path = tmp_path / "empty.mkv"
    write_clip(path, np.zeros((0, 64, 64, 3), np.uint8), audio=tone(0.5, 16_000), audio_codec="pcm_s16le")
    with pytest.raises(MMSLlamaInputError, match="empty.mkv: the video stream has no frames"):
        processor(videos=str(path), modality="video")


def test_speech_rate_labels_and_datasets_style_audio(processor):
    inputs = processor(audio=[{"array": tone(1.0, 8000), "sampling_rate": 8000}] * 2, speech_rate=[1.2, 0.8])
    assert inputs["speech_rate_labels"].dtype == torch.float32
    torch.testing.assert_close(inputs["speech_rate_labels"], torch.tensor([1.2, 0.8]))


def test_augmentation_changes_crops_but_not_shapes(processor):
    torch.manual_seed(0)
    plain = processor(videos=ROI, modality="video")["pixel_values_videos"]
    augmented = [processor(videos=ROI, modality="video", do_augment=True)["pixel_values_videos"] for _ in range(4)]
    assert all(a.shape == plain.shape for a in augmented)
    assert any(not torch.equal(a, plain) for a in augmented)


def test_video_values_are_normalised_centre_crops():
    clip = np.random.default_rng(1).integers(0, 255, (4, 96, 96), dtype=np.uint8)
    values = MMSLlamaVideoProcessor()(clip)["pixel_values_videos"]
    expected = (clip[:, 4:92, 4:92] / 255 - 0.421) / 0.165
    np.testing.assert_allclose(values[0, :, 0].numpy(), expected, atol=1e-5)


def test_decode_returns_clean_transcripts(processor):
    tokenizer = processor.tokenizer
    prompt = processor(audio=tone(1.0, 16_000), sampling_rate=16_000)["input_ids"][0].tolist()
    answer = tokenizer("  place  blue ", add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    assert processor.decode(answer) == "place blue"
    assert processor.batch_decode(torch.tensor([prompt + answer, prompt + answer])) == ["place blue"] * 2


def test_save_and_load_through_autoprocessor(processor, tmp_path):
    from transformers import AutoProcessor

    processor.save_pretrained(tmp_path)
    loaded = AutoProcessor.from_pretrained(tmp_path, trust_remote_code=True)
    assert type(loaded).__name__ == "MMSLlamaProcessor"
    assert type(loaded.video_processor).__name__ == "MMSLlamaVideoProcessor"
    assert loaded.prompt == processor.prompt and loaded.max_video_frames == processor.max_video_frames
    assert loaded.feature_extractor.nb_max_frames == MEL_FRAMES
    inputs = dict(audio=tone(1.0, 16_000), videos=ROI[:25], sampling_rate=16_000, text="bin blue")
    for key, value in processor(**inputs).items():
        torch.testing.assert_close(loaded(**inputs)[key], value)


def test_presets_need_the_right_tokenizer(tmp_path):
    with pytest.raises(MMSLlamaInputError, match="128256-token vocabulary: pass the matching tokenizer"):
        MMSLlamaProcessor.from_preset("paper-3b")
    MMSLlamaProcessor.from_preset("tiny").tokenizer.save_pretrained(tmp_path)
    processor = MMSLlamaProcessor.from_preset("demo", tokenizer=str(tmp_path))
    assert processor.feature_extractor.nb_max_frames == 1000 and processor.max_video_frames == 250


def test_demo_tokenizer_gives_listed_words_one_token_and_spells_the_rest():
    tokenizer = MMSLlamaProcessor.from_preset("demo").tokenizer
    ids = tokenizer("bin blue at a two now", add_special_tokens=False)["input_ids"]
    assert tokenizer.convert_ids_to_tokens(ids) == ["bin", "blue", "at", "a", "two", "now"]
    spelled = tokenizer("Zebra crossing!", add_special_tokens=False)["input_ids"]
    assert tokenizer.convert_ids_to_tokens(spelled)[:3] == ["Z", "##e", "##b"]
    for text in ["bin blue at a two now", "Zebra crossing!"]:  # decoding gives the text back
        assert tokenizer.decode(tokenizer(text)["input_ids"], skip_special_tokens=True) == text
    assert tokenizer.convert_tokens_to_ids(["<|finetune_right_pad_id|>", "<|begin_of_text|>", "<|speech|>"]) == [0, 1, 3]
    with pytest.raises(MMSLlamaInputError, match="raise the vocabulary size"):
        MMSLlamaProcessor.from_preset("tiny", tokenizer_words=[f"word{i}" for i in range(50)])


@pytest.mark.filterwarnings("ignore::modeling_mmsllama.errors_mmsllama.MMSLlamaConversionWarning")
@settings(max_examples=25, deadline=None)
@given(
    lengths=st.lists(st.integers(5, 60), min_size=1, max_size=3),
    side=st.integers(88, 128),
    sampling_rate=st.sampled_from([8000, 16_000, 22_050, 44_100, 48_000]),
    audio_offset_s=st.floats(-0.15, 0.15),
    channels=st.integers(1, 2),
)
def test_property_shapes_masks_and_alignment(processor, lengths, side, sampling_rate, audio_offset_s, channels):
    rng = np.random.default_rng(sum(lengths))
    videos = [rng.integers(0, 255, (n, side, side), dtype=np.uint8) for n in lengths]
    audio = [
        rng.uniform(-0.5, 0.5, (channels, int((n * 0.04 + audio_offset_s) * sampling_rate) + 1)).astype(np.float32)
        for n in lengths
    ]
    inputs = processor(videos=videos, audio=audio, sampling_rate=sampling_rate, text=["x"] * len(lengths))
    batch, longest = len(lengths), max(lengths)
    assert inputs["pixel_values_videos"].shape == (batch, longest, 1, 88, 88)
    assert inputs["video_mask"].sum(1).tolist() == lengths
    assert inputs["input_features"].shape == (batch, 80, MEL_FRAMES)
    assert inputs["input_features_mask"].sum(1).tolist() == [4 * n for n in lengths]
    assert [info.num_samples for info in inputs.media_info] == [640 * n for n in lengths]
    assert inputs["input_ids"].shape == inputs["labels"].shape == inputs["attention_mask"].shape
    assert (inputs["input_ids"] == processor.speech_token_id).sum().item() == batch
    assert torch.isfinite(inputs["pixel_values_videos"]).all() and torch.isfinite(inputs["input_features"]).all()


def test_streams_that_cannot_belong_together_are_refused_unless_aligned(processor):
    one_second, five_seconds = ROI[:25], tone(5.0, 16_000)
    refused = (
        "videos[0] and audio[0]: the audio lasts 5.00 s and the video 1.00 s (25 frames), 4.00 s apart (tolerance "
        "0.20 s): they cannot be one recording. Pass align='pad' to pad the shorter stream or align='trim' to cut the "
        "longer one."
    )
    with pytest.raises(MMSLlamaInputError, match=re.escape(refused)):
        processor(videos=one_second, audio=five_seconds, sampling_rate=16_000)
    padded = processor(videos=one_second, audio=five_seconds, sampling_rate=16_000, align="pad")
    assert padded["video_mask"].sum().item() == 125 and padded["input_features_mask"].sum().item() == 500
    assert padded.media_info[0].notes == [
        "align='pad': video padded by 4.00 s (100 frames) with its last frame repeated"
    ]
    assert torch.equal(padded["pixel_values_videos"][0, -1], padded["pixel_values_videos"][0, 24])
    trimmed = processor(videos=one_second, audio=five_seconds, sampling_rate=16_000, align="trim")
    assert trimmed["video_mask"].sum().item() == 25 and trimmed["input_features_mask"].sum().item() == 100
    assert trimmed.media_info[0].notes == ["align='trim': audio trimmed by 4000.0 ms to match 25 video frames"]
    shorter_audio = processor(videos=ROI, audio=tone(0.5, 16_000), sampling_rate=16_000, align="trim")
    assert shorter_audio["video_mask"].sum().item() == 12
    assert shorter_audio.media_info[0].notes == [
        "align='trim': video trimmed by 0.72 s (18 frames); audio trimmed by 20.0 ms to match 12 video frames"
    ]
    bad_mode = "align must be one of ('pad', 'trim') or None, got 'stretch'."
    with pytest.raises(MMSLlamaInputError, match=re.escape(bad_mode)):
        processor(videos=one_second, audio=five_seconds, sampling_rate=16_000, align="stretch")


def test_streams_within_the_tolerance_are_aligned_and_the_tolerance_is_configurable(processor, tmp_path):
    near = processor(videos=ROI[:25], audio=tone(1.15, 16_000), sampling_rate=16_000)
    assert near.media_info[0].notes == ["audio trimmed by 150.0 ms to match 25 video frames"]
    with pytest.raises(MMSLlamaInputError, match=re.escape("0.15 s apart (tolerance 0.10 s)")):
        processor(videos=ROI[:25], audio=tone(1.15, 16_000), sampling_rate=16_000, align_tolerance_s=0.1)
    strict = MMSLlamaProcessor.from_preset("tiny")
    strict.align_tolerance_s = 0.05
    strict.save_pretrained(tmp_path)
    loaded = MMSLlamaProcessor.from_pretrained(tmp_path)
    assert loaded.align_tolerance_s == 0.05
    with pytest.raises(MMSLlamaInputError, match=re.escape("0.15 s apart (tolerance 0.05 s)")):
        loaded(videos=ROI[:25], audio=tone(1.15, 16_000), sampling_rate=16_000)
    with pytest.raises(MMSLlamaInputError, match=re.escape("align_tolerance_s must be a duration in seconds >= 0")):
        processor(videos=ROI[:25], audio=tone(1.0, 16_000), sampling_rate=16_000, align_tolerance_s=-1)


def test_clip_shorter_than_the_model_reads(processor):
    too_short = "the clip lasts {} s; the model needs at least 0.20 s (5 frames at 25 fps)."
    with pytest.raises(MMSLlamaInputError, match=re.escape("videos[0]: " + too_short.format("0.04"))):
        processor(videos=ROI[:1], modality="video")
    with pytest.raises(MMSLlamaInputError, match=re.escape("videos[0]: " + too_short.format("0.04"))):
        processor(videos=ROI[:1], audio=tone(0.04, 16_000), sampling_rate=16_000)
    with pytest.raises(MMSLlamaInputError, match=re.escape("audio[0]: " + too_short.format("0.10"))):
        processor(audio=tone(0.1, 16_000), sampling_rate=16_000)
    assert processor(videos=ROI[:5], modality="video")["video_mask"].sum().item() == 5


def conversion_warnings(caught) -> list[str]:
    return [str(w.message) for w in caught if issubclass(w.category, MMSLlamaConversionWarning)]


def test_conversions_are_recorded_and_said_once_per_call(processor):
    audio = [
        {"array": tone(1.0, 8000), "sampling_rate": 8000},
        {"array": np.stack([tone(1.0, 16_000)] * 2), "sampling_rate": 16_000},
        {"array": (tone(1.0, 16_000) * 32767).astype(np.int16), "sampling_rate": 16_000},
        {"array": tone(1.0, 16_000), "sampling_rate": 16_000},
    ]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        inputs = processor(audio=audio)
    assert conversion_warnings(caught) == [
        "MMSLlamaProcessor converted the input onto the model's grid (16 kHz mono float audio, 25 fps video): "
        "audio[0]: audio resampled from 8000 Hz to 16000 Hz. audio[1]: audio down-mixed from 2 channels to mono. "
        "audio[2]: audio rescaled from int16 PCM to float in [-1, 1]. Each sample's conversions are in "
        "`inputs.media_info[i].conversions`."
    ]
    assert [info.conversions for info in inputs.media_info] == [
        ["audio resampled from 8000 Hz to 16000 Hz"],
        ["audio down-mixed from 2 channels to mono"],
        ["audio rescaled from int16 PCM to float in [-1, 1]"],
        [],
    ]
    assert all(set(info.conversions) <= set(info.notes) for info in inputs.media_info)
    assert [info.source_sample_rate for info in inputs.media_info] == [8000, 16_000, 16_000, 16_000]
    assert [info.source_channels for info in inputs.media_info] == [1, 2, 1, 1]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        processor(audio=[tone(1.0, 8000)] * 3, sampling_rate=8000)  # the same conversions: grouped in one line
        processor(audio=tone(1.0, 16_000), sampling_rate=16_000)  # nothing converted: nothing said
    assert conversion_warnings(caught) == [
        "MMSLlamaProcessor converted the input onto the model's grid (16 kHz mono float audio, 25 fps video): "
        "audio[0], audio[1], audio[2]: audio resampled from 8000 Hz to 16000 Hz. Each sample's conversions are in "
        "`inputs.media_info[i].conversions`."
    ]


def test_file_conversions_are_said_too(processor, tmp_path):
    path = tmp_path / "stereo30.mp4"
    write_clip(path, frame_number_video(30, 96, 96), 30, np.stack([tone(1.0, 44_100)] * 2), 44_100)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        inputs = processor(videos=str(path))
    conversions = inputs.media_info[0].conversions
    assert conversions[:3] == [
        "video resampled from 30.000 fps to 25 fps (30 -> 25 frames)",
        "audio resampled from 44100 Hz to 16000 Hz",
        "audio down-mixed from 2 channels to mono",
    ]
    (message,) = conversion_warnings(caught)
    assert message.startswith(f"MMSLlamaProcessor converted the input onto the model's grid (16 kHz mono float audio, "
                              f"25 fps video): {path}: video resampled from 30.000 fps to 25 fps (30 -> 25 frames); "
                              "audio resampled from 44100 Hz to 16000 Hz; audio down-mixed from 2 channels to mono")


def test_unsafe_conversions_are_refused_or_flagged(processor):
    unusable = (
        "audio[0]: sampling_rate={} is unusable: give the waveform's rate in Hz, a whole number from 8000 (telephone "
        "speech; lower rates lose the consonants) to 384000."
    )
    for rate in (4000, 22_050.5, 0, -16_000, "16k"):
        with pytest.raises(MMSLlamaInputError, match=re.escape(unusable.format(repr(rate)))):
            processor(audio=tone(1.0, 16_000), sampling_rate=rate)
    with pytest.raises(MMSLlamaInputError, match=re.escape(
        "audio[0]: a waveform of shape (100, 16000) would have 100 channels; give (samples,), (channels, samples) or "
        "(samples, channels) with at most 8 channels."
    )):
        processor(audio=np.zeros((100, 16_000), np.float32), sampling_rate=16_000)
    with pytest.raises(MMSLlamaInputError, match=re.escape("audio[0]: unsupported waveform dtype bool.")):
        processor(audio=np.zeros(16_000, bool), sampling_rate=16_000)
    with pytest.warns(MMSLlamaConversionWarning, match=re.escape(
        "audio[0]: float audio peaks at 32767, far outside [-1, 1]: used as given (integer PCM stored as floats needs "
        "dividing by its range, e.g. 32768)."
    )):
        processor(audio=tone(1.0, 16_000, amplitude=32767), sampling_rate=16_000)

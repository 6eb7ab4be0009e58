"""Reading media onto the model's grid: containers, frame rates, sample rates, channels, alignment and bad input."""

import numpy as np
import pytest

from media_factory import frame_number_video, tone, write_clip
from modeling_mmsllama.configuration_mmsllama import SAMPLES_PER_VIDEO_FRAME
from modeling_mmsllama.errors_mmsllama import MMSLlamaInputError
from modeling_mmsllama.media_mmsllama import (
    align_audio_to_frames,
    frame_indices_at_25fps,
    prepare_waveform,
    read_media,
)


CONTAINERS = [
    ("mp4", "libx264", "aac"),
    ("mkv", "libx264", "pcm_s16le"),
    ("webm", "libvpx-vp9", "libopus"),
    ("avi", "mpeg4", "pcm_s16le"),
    ("mov", "libx264", "aac"),
]


@pytest.mark.parametrize("extension,video_codec,audio_codec", CONTAINERS)
def test_reads_common_containers(tmp_path, extension, video_codec, audio_codec):
    path = tmp_path / f"clip.{extension}"
    sample_rate = 48_000 if audio_codec == "libopus" else 16_000
    write_clip(path, frame_number_video(25), 25, tone(1.0, sample_rate), sample_rate, video_codec, audio_codec)
    media = read_media(path)
    assert media.frames.shape == (25, 64, 64) and media.frames.dtype == np.uint8
    # Frame i was written with brightness 10 * i + 2; lossy codecs keep it within a few levels.
    np.testing.assert_allclose(media.frames[:, 32, 32], np.arange(25) * 10 + 2, atol=4)
    assert media.audio.dtype == np.float32
    assert abs(len(media.audio) - 16_000) < 0.15 * 16_000  # AAC/Opus pad a little; alignment trims later
    assert media.source_fps == pytest.approx(25)


@pytest.mark.parametrize("extension,video_codec,audio_codec", CONTAINERS[:4])
def test_frames_are_exactly_pyavs_gray_conversion(tmp_path, extension, video_codec, audio_codec):
    """The stream's one reused gray converter gives what a fresh `frame.to_ndarray(format="gray")` gives, bit for bit
    (limited-range luma expanded to 0-255), on noisy frames where a wrong range or plane would show."""
    import av

    path = tmp_path / f"noisy.{extension}"
    video = np.random.default_rng(0).integers(0, 256, (25, 64, 64, 3), dtype=np.uint8)
    write_clip(path, video, 25, tone(1.0, 48_000), 48_000, video_codec, audio_codec)
    with av.open(str(path)) as container:
        expected = np.stack([frame.to_ndarray(format="gray") for frame in container.decode(video=0)])
    np.testing.assert_array_equal(read_media(path).frames, expected)


def test_resamples_30_fps_to_25_and_reports_it(tmp_path):
    path = tmp_path / "thirty.mp4"
    write_clip(path, frame_number_video(30), fps=30)
    media = read_media(path)
    assert len(media.frames) == 25
    # Each 40 ms tick shows the 30 fps frame on screen at that instant: floor(k * 30 / 25).
    expected = (np.floor(np.arange(25) * 30 / 25).astype(int) * 10) % 250 + 2
    np.testing.assert_allclose(media.frames[:, 0, 0], expected, atol=4)
    assert media.source_fps == pytest.approx(30)
    assert any("30.000 fps to 25 fps" in note for note in media.notes)


def test_frame_indices_for_variable_rates():
    times = np.arange(50) / 50  # 50 fps, one second
    np.testing.assert_array_equal(frame_indices_at_25fps(times, 50.0), np.arange(0, 50, 2))
    times = np.arange(12) / 12  # 12 fps: frames repeat
    indices = frame_indices_at_25fps(times, 12.0)
    assert len(indices) == 25 and indices[0] == 0 and indices[-1] == 11


def test_stereo_44k_audio_becomes_16k_mono(tmp_path):
    path = tmp_path / "stereo.mkv"
    left, right = tone(1.0, 44_100, 440), tone(1.0, 44_100, 440)
    write_clip(path, audio=np.stack([left, right]), sample_rate=44_100, audio_codec="pcm_s16le")
    media = read_media(path)
    assert media.frames is None and media.source_channels == 2 and media.source_sample_rate == 44_100
    assert len(media.audio) == 16_000
    spectrum = np.abs(np.fft.rfft(media.audio))
    assert np.argmax(spectrum) == 440  # 1 s of audio: bin index = Hz
    assert any("44100 Hz to 16000 Hz" in n for n in media.notes) and any("2 channels" in n for n in media.notes)


@pytest.mark.parametrize("num_samples,num_frames", [(16_000, 25), (15_000, 25), (17_000, 25)])
def test_align_audio_to_frames(num_samples, num_frames):
    audio, note = align_audio_to_frames(np.ones(num_samples, np.float32), num_frames)
    assert len(audio) == num_frames * SAMPLES_PER_VIDEO_FRAME
    assert (note is None) == (num_samples == num_frames * SAMPLES_PER_VIDEO_FRAME)
    if num_samples < len(audio):
        assert "zero-padded" in note and audio[num_samples:].sum() == 0
    elif num_samples > len(audio):
        assert "trimmed" in note


def test_integer_pcm_is_scaled():
    media = prepare_waveform(np.array([0, 16384, -32768], np.int16), 16_000)
    np.testing.assert_allclose(media.audio, [0.0, 0.5, -1.0])
    media = prepare_waveform(np.array([128, 255, 0], np.uint8), 16_000)
    np.testing.assert_allclose(media.audio, [0.0, 127 / 128, -1.0])


def test_channels_first_or_last_are_downmixed():
    stereo = np.stack([np.ones(100), -np.ones(100) * 0.5])
    for waveform in (stereo, stereo.T):
        media = prepare_waveform(waveform, 16_000)
        assert media.audio.shape == (100,) and media.source_channels == 2
        np.testing.assert_allclose(media.audio, 0.25)


def test_bad_files(tmp_path):
    with pytest.raises(MMSLlamaInputError, match="missing.mp4: file not found"):
        read_media(tmp_path / "missing.mp4")
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(MMSLlamaInputError, match=r"empty.mp4: file is empty \(0 bytes\)"):
        read_media(tmp_path / "empty.mp4")
    (tmp_path / "junk.mp4").write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(MMSLlamaInputError, match="junk.mp4: not a readable audio/video container"):
        read_media(tmp_path / "junk.mp4")
    with pytest.raises(MMSLlamaInputError, match="is a directory"):
        read_media(tmp_path)


def test_truncated_file_is_reported(tmp_path):
    path = tmp_path / "cut.mp4"
    write_clip(path, frame_number_video(50), 25, tone(2.0, 16_000))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])  # the moov atom at the end is gone
    with pytest.raises(MMSLlamaInputError, match="cut.mp4: "):
        read_media(path)


def test_bad_waveforms():
    with pytest.raises(MMSLlamaInputError, match="needs its `sampling_rate`"):
        prepare_waveform(np.zeros(100, np.float32), None)
    with pytest.raises(MMSLlamaInputError, match="zero-length audio"):
        prepare_waveform(np.zeros(0, np.float32), 16_000)
    waveform = np.zeros(1000, np.float32)
    waveform[320] = np.nan
    with pytest.raises(MMSLlamaInputError, match=r"1 NaN/inf samples \(first at sample 320"):
        prepare_waveform(waveform, 16_000)
    with pytest.raises(MMSLlamaInputError, match="got shape"):
        prepare_waveform(np.zeros((2, 2, 10)), 16_000)

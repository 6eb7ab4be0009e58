"""Reading audio and video for MMS-LLaMA: any container PyAV opens, resampled to 25 fps and 16 kHz mono, aligned.

The model sees one video frame per 40 ms and one audio sample per 62.5 us, so a clip of `T` frames pairs with
exactly `T * 640` audio samples. Everything here produces media on that grid and records what it changed.
"""

import os
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from .configuration_mmsllama import AUDIO_SAMPLING_RATE, SAMPLES_PER_VIDEO_FRAME, VIDEO_FPS
from .errors_mmsllama import MMSLlamaInputError


FPS_TOLERANCE = 0.01  # frames/s; a source within this of 25 fps is used frame for frame


@dataclass
class Media:
    """One clip on the model's grid.

    Attributes:
        source (`str`): file path, or a short description for in-memory input.
        frames (`np.ndarray`, *optional*): `(T, H, W)` uint8 grayscale frames at 25 fps.
        audio (`np.ndarray`, *optional*): `(N,)` float32 mono waveform at 16 kHz.
        source_fps (`float`, *optional*): the video's frame rate before resampling.
        source_sample_rate (`int`, *optional*): the audio's sample rate before resampling.
        source_channels (`int`, *optional*): the audio's channel count before the mono down-mix.
        notes (`list[str]`): every conversion applied, in words (resampling, down-mixing, trimming, padding).
    """

    source: str
    frames: np.ndarray | None = None
    audio: np.ndarray | None = None
    source_fps: float | None = None
    source_sample_rate: int | None = None
    source_channels: int | None = None
    notes: list[str] = field(default_factory=list)


def import_av():
    """The PyAV module, or an ImportError that says how to install it."""
    try:
        import av
    except ImportError as error:
        raise ImportError("Reading audio/video files needs PyAV: `pip install av`.") from error
    return av


def open_container(path: str):
    """Opens a media file with PyAV; a missing, empty or unreadable file raises `MMSLlamaInputError` naming it."""
    av = import_av()
    if not os.path.exists(path):
        raise MMSLlamaInputError(f"{path}: file not found.", source=path)
    if os.path.isdir(path):
        raise MMSLlamaInputError(f"{path}: is a directory, not a media file.", source=path)
    if os.path.getsize(path) == 0:
        raise MMSLlamaInputError(f"{path}: file is empty (0 bytes).", source=path)
    try:
        return av.open(path)
    except av.error.FFmpegError as error:
        raise MMSLlamaInputError(f"{path}: not a readable audio/video container ({error}).", source=path) from error


def frame_indices_at_25fps(timestamps: np.ndarray, source_fps: float) -> np.ndarray:
    """Picks, for each 40 ms tick, the source frame shown at that instant (the one whose interval covers it).

    Args:
        timestamps (`np.ndarray`): presentation time of each decoded frame in seconds, increasing.
        source_fps (`float`): nominal source frame rate, used for the length of the last frame.

    Returns:
        `np.ndarray` of int indices into `timestamps`, one per output frame.
    """
    start = timestamps[0]
    duration = timestamps[-1] - start + 1.0 / source_fps
    num_frames = max(1, round(duration * VIDEO_FPS))
    ticks = start + np.arange(num_frames) / VIDEO_FPS
    # Small epsilon so a tick that falls exactly on a frame boundary picks the frame starting there.
    return np.clip(np.searchsorted(timestamps, ticks + 1e-6, side="right") - 1, 0, len(timestamps) - 1)


def _decode(container, path: str, video_stream, audio_stream):
    """One demuxing pass: grayscale frames with their times, and 16 kHz mono audio with its start time."""
    av = import_av()
    streams = [stream for stream in (video_stream, audio_stream) if stream is not None]
    for stream in streams:
        stream.thread_type = "AUTO"
    resampler = av.AudioResampler(format="flt", layout="mono", rate=AUDIO_SAMPLING_RATE)
    frames, frame_times, chunks, audio_start = [], [], [], None
    stream_kind = "video"
    try:
        for packet in container.demux(streams):
            stream_kind = "video" if packet.stream is video_stream else "audio"
            for frame in packet.decode():
                if packet.stream is video_stream:
                    frames.append(frame.to_ndarray(format="gray"))
                    frame_times.append(float(frame.time) if frame.time is not None else len(frame_times) / VIDEO_FPS)
                else:
                    if audio_start is None and frame.time is not None:
                        audio_start = float(frame.time)
                    chunks.extend(out.to_ndarray().reshape(-1) for out in resampler.resample(frame))
        if audio_stream is not None:
            chunks.extend(out.to_ndarray().reshape(-1) for out in resampler.resample(None))
    except av.error.FFmpegError as error:
        if not frames and not chunks:
            raise MMSLlamaInputError(
                f"{path}: the {stream_kind} stream is corrupt and cannot be decoded ({error}).", source=path
            ) from error
    audio = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)
    return frames, np.asarray(frame_times), audio, audio_start or 0.0


def _frames_at_25fps(frames: list, times: np.ndarray, stream, media: Media) -> np.ndarray:
    order = np.argsort(times, kind="stable")
    times = times[order]
    rate = stream.average_rate or stream.guessed_rate
    if rate:
        media.source_fps = float(rate)
    elif len(times) > 1:
        media.source_fps = (len(times) - 1) / max(times[-1] - times[0], 1e-6)
    else:
        media.source_fps = float(VIDEO_FPS)
    if abs(media.source_fps - VIDEO_FPS) <= FPS_TOLERANCE:
        return np.stack([frames[i] for i in order])
    indices = frame_indices_at_25fps(times, media.source_fps)
    media.notes.append(
        f"video resampled from {media.source_fps:.3f} fps to {VIDEO_FPS} fps ({len(frames)} -> {len(indices)} frames)"
    )
    return np.stack([frames[order[i]] for i in indices])


def _conversion_notes(source_rate: int, source_channels: int) -> list[str]:
    notes = []
    if source_rate != AUDIO_SAMPLING_RATE:
        notes.append(f"audio resampled from {source_rate} Hz to {AUDIO_SAMPLING_RATE} Hz")
    if source_channels != 1:
        notes.append(f"audio down-mixed from {source_channels} channels to mono")
    return notes


def _check_finite(audio: np.ndarray, source: str, sample_rate: int) -> None:
    bad = ~np.isfinite(audio)
    if bad.any():
        first = int(np.argmax(bad))
        raise MMSLlamaInputError(
            f"{source}: audio has {int(bad.sum())} NaN/inf samples (first at sample {first}, "
            f"{first / sample_rate:.3f} s).",
            source=source,
        )


def read_media(path: str | os.PathLike, *, video: bool = True, audio: bool = True) -> Media:
    """Reads a media file onto the model's grid: video to 25 fps grayscale, audio to 16 kHz mono float32.

    Args:
        path (`str` or `os.PathLike`): any container PyAV opens (mp4, mkv, webm, avi, mov, wav, flac, ...).
        video (`bool`): read the video stream, if the file has one.
        audio (`bool`): read the audio stream, if the file has one.

    Returns:
        [`Media`] with `frames`/`audio` left `None` for streams that were not asked for or that the file lacks.
        When both are read, the audio is shifted by the streams' start-time difference so that sample
        `t * 16000` plays with frame `t * 25`. Use [`align_audio_to_frames`] to cut it to the frame count.

    Raises:
        [`MMSLlamaInputError`]: missing, empty, unreadable or corrupt file, zero-length stream, NaN/inf audio.
    """
    path = os.fspath(path)
    media = Media(source=path)
    with open_container(path) as container:
        if not container.streams.video and not container.streams.audio:
            raise MMSLlamaInputError(f"{path}: the container has neither a video nor an audio stream.", source=path)
        video_stream = container.streams.video[0] if video and container.streams.video else None
        audio_stream = container.streams.audio[0] if audio and container.streams.audio else None
        if video_stream is None and audio_stream is None:
            return media
        frames, frame_times, waveform, audio_start = _decode(container, path, video_stream, audio_stream)

        if video_stream is not None:
            if not frames:
                raise MMSLlamaInputError(f"{path}: the video stream has no frames (zero-length video).", source=path)
            media.frames = _frames_at_25fps(frames, frame_times, video_stream, media)
        if audio_stream is not None:
            if waveform.size == 0:
                raise MMSLlamaInputError(f"{path}: the audio stream has no samples (zero-length audio).", source=path)
            _check_finite(waveform, path, AUDIO_SAMPLING_RATE)
            media.source_sample_rate = audio_stream.rate or audio_stream.codec_context.sample_rate
            media.source_channels = audio_stream.codec_context.channels
            media.notes += _conversion_notes(media.source_sample_rate, media.source_channels)
            if media.frames is not None:
                waveform = _shift(waveform, audio_start - float(frame_times.min()), media)
            media.audio = waveform
    return media


def _shift(audio: np.ndarray, offset_seconds: float, media: Media) -> np.ndarray:
    """Moves the audio so that it starts with the video: pads when it starts later, drops when earlier."""
    offset = round(offset_seconds * AUDIO_SAMPLING_RATE)
    if offset == 0:
        return audio
    media.notes.append(f"audio shifted by {offset_seconds * 1000:+.1f} ms to start with the video")
    if offset > 0:
        return np.concatenate([np.zeros(offset, np.float32), audio])
    return audio[-offset:]


def prepare_waveform(waveform, sampling_rate: int | None, source: str = "audio") -> Media:
    """Converts an in-memory waveform to 16 kHz mono float32.

    Args:
        waveform (`np.ndarray`, `torch.Tensor` or `list[float]`): `(N,)`, `(C, N)` or `(N, C)` samples, float in
            [-1, 1] or integer PCM (scaled by the type's range). A 2-D array's channel axis is the shorter one.
        sampling_rate (`int`): the waveform's sample rate in Hz. Required: guessing it would silently garble speech.
        source (`str`): name used in error messages.

    Raises:
        [`MMSLlamaInputError`]: no sampling rate, empty, more than 2 dimensions, NaN/inf.
    """
    if sampling_rate is None:
        raise MMSLlamaInputError(
            f"{source}: a waveform needs its `sampling_rate` (e.g. sampling_rate=16000); it cannot be guessed.",
            source=source,
        )
    if hasattr(waveform, "detach"):
        waveform = waveform.detach().cpu().numpy()
    waveform = np.asarray(waveform)
    if waveform.ndim == 0 or waveform.size == 0:
        raise MMSLlamaInputError(f"{source}: the waveform is empty (zero-length audio).", source=source)
    if waveform.ndim > 2:
        raise MMSLlamaInputError(
            f"{source}: a waveform must be (samples,), (channels, samples) or (samples, channels); got shape "
            f"{tuple(waveform.shape)}.",
            source=source,
        )
    if np.issubdtype(waveform.dtype, np.integer):
        info = np.iinfo(waveform.dtype)
        scale = float(info.max) + 1.0
        offset = (float(info.max) + float(info.min) + 1.0) / 2.0  # 128 for unsigned 8-bit PCM, 0 for signed
        waveform = (waveform.astype(np.float64) - offset) / (scale - offset)
    elif not np.issubdtype(waveform.dtype, np.floating):
        raise MMSLlamaInputError(f"{source}: unsupported waveform dtype {waveform.dtype}.", source=source)
    _check_finite(waveform, source, int(sampling_rate))

    channels = 1
    if waveform.ndim == 2:
        channel_axis = int(np.argmin(waveform.shape))
        channels = waveform.shape[channel_axis]
        waveform = waveform.mean(axis=channel_axis)
    audio = resample_audio(waveform, int(sampling_rate))
    return Media(
        source=source,
        audio=audio,
        source_sample_rate=int(sampling_rate),
        source_channels=channels,
        notes=_conversion_notes(int(sampling_rate), channels),
    )


def resample_audio(waveform: np.ndarray, sampling_rate: int) -> np.ndarray:
    """Resamples a mono waveform to 16 kHz with a polyphase filter (exact rational ratio)."""
    if sampling_rate == AUDIO_SAMPLING_RATE:
        return waveform.astype(np.float32)
    from scipy.signal import resample_poly

    ratio = Fraction(AUDIO_SAMPLING_RATE, sampling_rate)
    return resample_poly(waveform, ratio.numerator, ratio.denominator).astype(np.float32)


def align_audio_to_frames(audio: np.ndarray, num_frames: int) -> tuple[np.ndarray, str | None]:
    """Trims or zero-pads 16 kHz audio to exactly `num_frames * 640` samples.

    Returns:
        The aligned audio and a note describing the change (`None` when the lengths already matched).
    """
    target = num_frames * SAMPLES_PER_VIDEO_FRAME
    difference = len(audio) - target
    if difference == 0:
        return audio, None
    if difference > 0:
        return audio[
            :target
        ], f"audio trimmed by {difference / AUDIO_SAMPLING_RATE * 1000:.1f} ms to match {num_frames} video frames"
    padded = np.concatenate([audio, np.zeros(-difference, audio.dtype)])
    return padded, f"audio zero-padded by {-difference / AUDIO_SAMPLING_RATE * 1000:.1f} ms to match {num_frames} video frames"


__all__ = [
    "Media",
    "read_media",
    "prepare_waveform",
    "resample_audio",
    "align_audio_to_frames",
    "frame_indices_at_25fps",
]

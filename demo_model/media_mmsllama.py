"""Reading audio and video for MMS-LLaMA: any container PyAV opens, resampled to 25 fps and 16 kHz mono, aligned.

The model sees one video frame per 40 ms and one audio sample per 62.5 us, so a clip of `T` frames pairs with
exactly `T * 640` audio samples. Everything here produces media on that grid and records what it changed.

One decoder: [`MediaStream`] demuxes a file once and yields [`MediaBlock`]s on the grid as it goes (the pipeline
transcribes hours of video with it in bounded memory); [`read_media`] joins its blocks into one [`Media`].
"""

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from .configuration_mmsllama import AUDIO_SAMPLING_RATE, SAMPLES_PER_VIDEO_FRAME, VIDEO_FPS
from .errors_mmsllama import MMSLlamaInputError


FPS_TOLERANCE = 0.01  # frames/s; a source within this of 25 fps is used frame for frame
STREAM_BLOCK_FRAMES = 25  # 25 fps frames per block when a file is streamed (1 s)
TICK_EPSILON_S = 1e-6  # a 40 ms tick that falls exactly on a frame boundary shows the frame starting there
STREAM_MISMATCH_TOLERANCE_S = 0.2  # s; one recording's audio and video differ by tens of ms, never by this much
ALIGN_MODES = ("pad", "trim")  # how to fit together audio and video that differ by more than the tolerance
MIN_SAMPLING_RATE = 8000  # Hz; telephone speech, the lowest rate that keeps the band (up to 4 kHz) speech is read from
MAX_SAMPLING_RATE = 384_000  # Hz; the highest rate audio interfaces record at
MAX_AUDIO_CHANNELS = 8  # 7.1 surround; an array with more "channels" is not a waveform
# Float audio peaking above this is integer PCM stored as floats (mixing in noise or resampling overshoots [-1, 1]
# only a little).
MAX_FLOAT_PEAK = 8.0


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


@dataclass
class MediaBlock:
    """A piece of a stream on the model's grid: `frames` (t, H, W) uint8 and/or `audio` (n,) float32, either None."""

    frames: np.ndarray | None = None
    audio: np.ndarray | None = None


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


def probe_media(path: str) -> dict:
    """Which streams a file has and its duration in seconds (None when the container does not say)."""
    with open_container(path) as container:
        duration = container.duration / 1_000_000 if container.duration else None
        return {"video": bool(container.streams.video), "audio": bool(container.streams.audio), "duration": duration}


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
    return np.clip(np.searchsorted(timestamps, ticks + TICK_EPSILON_S, side="right") - 1, 0, len(timestamps) - 1)


class _FramesAt25Fps:
    """Resamples timed frames, as they are decoded, to 25 fps: each 40 ms tick shows the frame on screen at that
    instant (the rule of [`frame_indices_at_25fps`]); a 25 fps source passes frame for frame."""

    def __init__(self, source_fps: float | None):
        self.source_fps = source_fps
        self.resample = source_fps is not None and abs(source_fps - VIDEO_FPS) > FPS_TOLERANCE
        self.start: float | None = None  # time of the first frame, s
        self.last_time: float | None = None
        self.previous: np.ndarray | None = None  # the frame on screen since `last_time`
        self.num_in = self.num_out = 0

    def push(self, image: np.ndarray, time: float) -> list[np.ndarray]:
        """Takes the next frame (shown from `time` s); returns the 25 fps frames whose ticks fall before it."""
        if self.start is None:
            self.start = time
        self.num_in += 1
        out = []
        if not self.resample:
            out.append(image)
        else:
            while self.previous is not None and self._tick(self.num_out + len(out)) + TICK_EPSILON_S < time:
                out.append(self.previous)
            self.previous = image
        self.last_time = time
        self.num_out += len(out)
        return out

    def finish(self) -> list[np.ndarray]:
        """The ticks left while the last frame is on screen (it lasts one source frame)."""
        if not self.resample or self.previous is None:
            return []
        duration = self.last_time - self.start + 1.0 / self.source_fps
        out = [self.previous] * max(0, max(1, round(duration * VIDEO_FPS)) - self.num_out)
        self.num_out += len(out)
        return out

    def _tick(self, index: int) -> float:
        return self.start + index / VIDEO_FPS


class _AudioFromVideoStart:
    """Shifts decoded audio so that it starts with the video: zeros in front when it starts later, its head dropped
    when earlier. Audio decoded before the first video frame's time is known waits."""

    def __init__(self, wait_for_video: bool):
        self.waiting: list[np.ndarray] | None = [] if wait_for_video else None
        self.audio_start: float | None = None  # time of the first audio sample, s
        self.drop = 0  # samples still to drop
        self.offset_s = 0.0

    def push(self, samples: np.ndarray) -> list[np.ndarray]:
        if self.waiting is not None:
            self.waiting.append(samples)
            return []
        return [self._dropped(samples)]

    def video_started(self, video_start: float) -> list[np.ndarray]:
        """The video's start time is known: releases the waiting audio, shifted."""
        if self.waiting is None:
            return []
        head = np.concatenate(self.waiting) if self.waiting else np.zeros(0, np.float32)
        self.waiting = None
        self.offset_s = (self.audio_start or 0.0) - video_start
        offset = round(self.offset_s * AUDIO_SAMPLING_RATE)
        if offset > 0:
            head = np.concatenate([np.zeros(offset, np.float32), head])
        self.drop = max(0, -offset)
        return [self._dropped(head)]

    def _dropped(self, samples: np.ndarray) -> np.ndarray:
        dropped = min(self.drop, len(samples))
        self.drop -= dropped
        return samples[dropped:]


class MediaStream:
    """A media file decoded in one pass onto the model's grid, block by block: gray frames at 25 fps and 16 kHz mono
    float32 audio shifted to start with the video, without holding the whole file.

    Iterating yields [`MediaBlock`]s of about `block_frames` frames (audio-only files: the same duration of audio);
    concatenating them gives what [`read_media`] returns. While and after iterating, `source_fps`,
    `source_sample_rate`, `source_channels` and `notes` describe the file and what was converted.

    Args:
        path (`str` or `os.PathLike`): any container PyAV opens.
        video (`bool`) / audio (`bool`): decode that stream, if the file has one.
        block_frames (`int`): frames per block.

    Raises (while iterating):
        [`MMSLlamaInputError`]: missing, empty, unreadable or corrupt file, no stream at all, zero-length stream,
        NaN/inf audio. A corrupt tail after decodable media ends the stream instead.
    """

    def __init__(self, path: str | os.PathLike, video: bool = True, audio: bool = True,
                 block_frames: int = STREAM_BLOCK_FRAMES):  # fmt: skip
        self.path = os.fspath(path)
        self.want_video, self.want_audio, self.block_frames = video, audio, block_frames
        self.source_fps: float | None = None
        self.source_sample_rate: int | None = None
        self.source_channels: int | None = None
        self.notes: list[str] = []

    def __iter__(self) -> Iterator[MediaBlock]:
        with open_container(self.path) as container:
            if not container.streams.video and not container.streams.audio:
                raise MMSLlamaInputError(f"{self.path}: the container has neither a video nor an audio stream.",
                                         source=self.path)  # fmt: skip
            video = container.streams.video[0] if self.want_video and container.streams.video else None
            audio = container.streams.audio[0] if self.want_audio and container.streams.audio else None
            if video is not None or audio is not None:
                yield from self._blocks(container, video, audio)

    def _blocks(self, container, video_stream, audio_stream) -> Iterator[MediaBlock]:
        av = import_av()
        streams = [stream for stream in (video_stream, audio_stream) if stream is not None]
        for stream in streams:
            stream.thread_type = "AUTO"
        self._frames = self._video_grid(video_stream)
        # one converter for the whole stream: `frame.to_ndarray(format="gray")` builds a new one per frame, ~20x slower
        self._to_gray = av.video.reformatter.VideoReformatter()
        self._audio = _AudioFromVideoStart(wait_for_video=video_stream is not None)
        self._resampler = self._audio_resampler(audio_stream)
        self._num_samples = 0
        frames, samples, kind = [], [], "video" if video_stream is not None else "audio"
        block_samples = self.block_frames * SAMPLES_PER_VIDEO_FRAME
        try:
            for packet in container.demux(streams):
                kind = "video" if packet.stream is video_stream else "audio"
                for frame in packet.decode():
                    if packet.stream is video_stream:
                        frames += self._take_frame(frame, samples)
                    else:
                        samples += self._take_audio(frame)
                if len(frames) >= self.block_frames or (video_stream is None and sum(map(len, samples)) >= block_samples):
                    yield _block(frames, samples)
                    frames, samples = [], []
        except av.error.FFmpegError as error:
            if not self._frames.num_in and not self._num_samples:
                raise MMSLlamaInputError(f"{self.path}: the {kind} stream is corrupt and cannot be decoded ({error}).",
                                         source=self.path) from error  # fmt: skip
            # a corrupt tail ends the stream: what was decoded before it stands
        if audio_stream is not None:
            samples += self._take_audio(None)  # the resampler's tail
        if video_stream is not None and not self._frames.num_in:
            raise MMSLlamaInputError(f"{self.path}: the video stream has no frames (zero-length video).", source=self.path)
        if audio_stream is not None and not self._num_samples:
            raise MMSLlamaInputError(f"{self.path}: the audio stream has no samples (zero-length audio).", source=self.path)
        frames += self._frames.finish()
        self._note_conversions(audio_stream is not None)
        yield _block(frames, samples)

    def _take_frame(self, frame, samples: list[np.ndarray]) -> list[np.ndarray]:
        """A decoded video frame -> the 25 fps frames it completes; the first one releases the waiting audio."""
        time = float(frame.time) if frame.time is not None else self._frames.num_in / VIDEO_FPS
        if self._frames.start is None:
            samples += self._audio.video_started(time)
        return self._frames.push(self._to_gray.reformat(frame, format="gray").to_ndarray(), time)

    def _take_audio(self, frame) -> list[np.ndarray]:
        """A decoded audio frame (None: flush the resampler) -> 16 kHz mono pieces ready to go out."""
        if frame is not None and self._audio.audio_start is None and frame.time is not None:
            self._audio.audio_start = float(frame.time)
        pieces = []
        for converted in self._resampler.resample(frame):
            piece = converted.to_ndarray().reshape(-1)
            _check_finite(piece, self.path, AUDIO_SAMPLING_RATE, offset=self._num_samples)
            self._num_samples += len(piece)
            pieces += self._audio.push(piece)
        return pieces

    def _video_grid(self, stream) -> _FramesAt25Fps:
        if stream is not None:
            rate = stream.average_rate or stream.guessed_rate
            self.source_fps = float(rate) if rate else None
        return _FramesAt25Fps(self.source_fps)

    def _audio_resampler(self, stream):
        if stream is None:
            return None
        self.source_sample_rate = stream.rate or stream.codec_context.sample_rate
        self.source_channels = stream.codec_context.channels
        return import_av().AudioResampler(format="flt", layout="mono", rate=AUDIO_SAMPLING_RATE)

    def _note_conversions(self, has_audio: bool) -> None:
        frames_out, audio_out = self._frames, self._audio
        if frames_out.resample:
            self.notes.append(f"video resampled from {self.source_fps:.3f} fps to {VIDEO_FPS} fps "
                              f"({frames_out.num_in} -> {frames_out.num_out} frames)")  # fmt: skip
        if has_audio:
            self.notes += _conversion_notes(self.source_sample_rate, self.source_channels)
            if frames_out.num_in and round(audio_out.offset_s * AUDIO_SAMPLING_RATE):
                self.notes.append(f"audio shifted by {audio_out.offset_s * 1000:+.1f} ms to start with the video")


def _block(frames: list[np.ndarray], samples: list[np.ndarray]) -> MediaBlock:
    audio = np.concatenate(samples) if samples else None
    return MediaBlock(np.stack(frames) if frames else None, audio if audio is not None and len(audio) else None)


def _conversion_notes(source_rate: int, source_channels: int) -> list[str]:
    notes = []
    if source_rate != AUDIO_SAMPLING_RATE:
        notes.append(f"audio resampled from {source_rate} Hz to {AUDIO_SAMPLING_RATE} Hz")
    if source_channels != 1:
        notes.append(f"audio down-mixed from {source_channels} channels to mono")
    return notes


def _check_finite(audio: np.ndarray, source: str, sample_rate: int, offset: int = 0) -> None:
    """Refuses NaN/inf samples, naming the first; `offset` is the index of `audio[0]` in the whole waveform."""
    bad = ~np.isfinite(audio)
    if bad.any():
        first = offset + int(np.argmax(bad))
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
    stream = MediaStream(path, video=video, audio=audio)
    blocks = list(stream)
    frames = [block.frames for block in blocks if block.frames is not None]
    samples = [block.audio for block in blocks if block.audio is not None]
    return Media(
        source=stream.path,
        frames=np.concatenate(frames) if frames else None,
        audio=np.concatenate(samples) if samples else None,
        source_fps=stream.source_fps,
        source_sample_rate=stream.source_sample_rate,
        source_channels=stream.source_channels,
        notes=stream.notes,
    )


def prepare_waveform(waveform, sampling_rate: int | None, source: str = "audio") -> Media:
    """Converts an in-memory waveform to 16 kHz mono float32, noting each conversion in `notes`.

    Args:
        waveform (`np.ndarray`, `torch.Tensor` or `list[float]`): `(N,)`, `(C, N)` or `(N, C)` samples, float in
            [-1, 1] or integer PCM (scaled by the type's range). A 2-D array's channel axis is the shorter one.
        sampling_rate (`int`): the waveform's sample rate in Hz, 8 kHz to 384 kHz. Required: guessing it would
            silently garble speech.
        source (`str`): name used in error messages.

    Raises:
        [`MMSLlamaInputError`]: no or unusable sampling rate, not numbers, empty, more than 2 dimensions or
        `MAX_AUDIO_CHANNELS` channels, NaN/inf.
    """
    sampling_rate = _sampling_rate(sampling_rate, source)
    if hasattr(waveform, "detach"):
        waveform = waveform.detach().cpu().numpy()
    try:
        waveform = np.asarray(waveform)
    except (TypeError, ValueError) as error:
        raise MMSLlamaInputError(f"{source}: not a waveform ({error}).", source=source) from error
    if waveform.ndim == 0 or waveform.size == 0:
        raise MMSLlamaInputError(f"{source}: the waveform is empty (zero-length audio).", source=source)
    if waveform.ndim > 2:
        raise MMSLlamaInputError(
            f"{source}: a waveform must be (samples,), (channels, samples) or (samples, channels); got shape "
            f"{tuple(waveform.shape)}.",
            source=source,
        )
    notes = []
    if np.issubdtype(waveform.dtype, np.integer):
        notes.append(f"audio rescaled from {waveform.dtype} PCM to float in [-1, 1]")
        info = np.iinfo(waveform.dtype)
        scale = float(info.max) + 1.0
        offset = (float(info.max) + float(info.min) + 1.0) / 2.0  # 128 for unsigned 8-bit PCM, 0 for signed
        waveform = (waveform.astype(np.float64) - offset) / (scale - offset)
    elif not np.issubdtype(waveform.dtype, np.floating):
        raise MMSLlamaInputError(f"{source}: unsupported waveform dtype {waveform.dtype}.", source=source)
    _check_finite(waveform, source, sampling_rate)
    peak = float(np.abs(waveform).max())
    if peak > MAX_FLOAT_PEAK:
        notes.append(
            f"float audio peaks at {peak:g}, far outside [-1, 1]: used as given (integer PCM stored as floats needs "
            "dividing by its range, e.g. 32768)"
        )

    channels = 1
    if waveform.ndim == 2:
        channel_axis = int(np.argmin(waveform.shape))
        channels = waveform.shape[channel_axis]
        if channels > MAX_AUDIO_CHANNELS:
            raise MMSLlamaInputError(
                f"{source}: a waveform of shape {tuple(waveform.shape)} would have {channels} channels; give "
                f"(samples,), (channels, samples) or (samples, channels) with at most {MAX_AUDIO_CHANNELS} channels.",
                source=source,
            )
        waveform = waveform.mean(axis=channel_axis)
    return Media(
        source=source,
        audio=resample_audio(waveform, sampling_rate),
        source_sample_rate=sampling_rate,
        source_channels=channels,
        notes=notes + _conversion_notes(sampling_rate, channels),
    )


def _sampling_rate(sampling_rate, source: str) -> int:
    """The waveform's sample rate as an int, or an error: missing, not a whole number, or outside the usable range."""
    if sampling_rate is None:
        raise MMSLlamaInputError(
            f"{source}: a waveform needs its `sampling_rate` (e.g. sampling_rate=16000); it cannot be guessed.",
            source=source,
        )
    try:
        rate = float(sampling_rate)
    except (TypeError, ValueError):
        rate = float("nan")
    if not (rate.is_integer() and MIN_SAMPLING_RATE <= rate <= MAX_SAMPLING_RATE):
        raise MMSLlamaInputError(
            f"{source}: sampling_rate={sampling_rate!r} is unusable: give the waveform's rate in Hz, a whole number "
            f"from {MIN_SAMPLING_RATE} (telephone speech; lower rates lose the consonants) to {MAX_SAMPLING_RATE}.",
            source=source,
        )
    return int(rate)


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


def check_align_mode(align: str | None) -> None:
    """Refuses an `align` that is neither None nor one of `ALIGN_MODES`."""
    if align is not None and align not in ALIGN_MODES:
        raise MMSLlamaInputError(f"align must be one of {ALIGN_MODES} or None, got {align!r}.")


def align_streams(
    frames: np.ndarray,
    audio: np.ndarray,
    source: str,
    align: str | None = None,
    tolerance_s: float = STREAM_MISMATCH_TOLERANCE_S,
) -> tuple[np.ndarray, np.ndarray, str | None]:
    """Fits one sample's 16 kHz audio and 25 fps frames together: `len(audio) == len(frames) * 640` afterwards.

    Args:
        frames (`np.ndarray`): `(T, ...)` video frames.
        audio (`np.ndarray`): `(N,)` 16 kHz waveform.
        source (`str`): names the sample in the error message.
        align (`str`, *optional*): `None` fits the audio to the video (trimmed or zero-padded) when their durations
            differ by at most `tolerance_s`, and refuses them otherwise; `"pad"` pads the shorter stream (the audio
            with silence, the video by repeating its last frame); `"trim"` cuts the longer one.
        tolerance_s (`float`): largest duration difference accepted without `align`, in seconds.

    Returns:
        The aligned frames and audio, and a note describing the change (`None` when nothing changed).

    Raises:
        [`MMSLlamaInputError`]: the durations differ by more than `tolerance_s` and `align` is `None`.
    """
    audio_s, video_s = len(audio) / AUDIO_SAMPLING_RATE, len(frames) / VIDEO_FPS
    if align is None:
        if abs(len(audio) - len(frames) * SAMPLES_PER_VIDEO_FRAME) > tolerance_s * AUDIO_SAMPLING_RATE:
            raise MMSLlamaInputError(
                f"{source}: the audio lasts {audio_s:.2f} s and the video {video_s:.2f} s ({len(frames)} frames), "
                f"{abs(audio_s - video_s):.2f} s apart (tolerance {tolerance_s:.2f} s): they cannot be one recording. "
                "Pass align='pad' to pad the shorter stream or align='trim' to cut the longer one.",
                source=source,
            )
        audio, note = align_audio_to_frames(audio, len(frames))
        return frames, audio, note
    audio_frames = len(audio) / SAMPLES_PER_VIDEO_FRAME
    if align == "pad":
        num_frames = max(len(frames), math.ceil(audio_frames))
    else:
        num_frames = min(len(frames), math.floor(audio_frames))
    notes = []
    if num_frames > len(frames):
        added = num_frames - len(frames)
        frames = np.concatenate([frames, np.repeat(frames[-1:], added, axis=0)])
        notes.append(f"video padded by {added / VIDEO_FPS:.2f} s ({added} frames) with its last frame repeated")
    elif num_frames < len(frames):
        removed = len(frames) - num_frames
        notes.append(f"video trimmed by {removed / VIDEO_FPS:.2f} s ({removed} frames)")
        frames = frames[:num_frames]
    audio, note = align_audio_to_frames(audio, num_frames)
    notes += [note] if note else []
    return frames, audio, (f"align={align!r}: " + "; ".join(notes)) if notes else None


__all__ = [
    "Media",
    "MediaBlock",
    "MediaStream",
    "probe_media",
    "read_media",
    "prepare_waveform",
    "resample_audio",
    "align_audio_to_frames",
    "align_streams",
    "check_align_mode",
    "frame_indices_at_25fps",
]

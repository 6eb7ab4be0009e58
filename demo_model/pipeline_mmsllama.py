"""The MMS-LLaMA speech-recognition pipeline: any file, array or `datasets` row, any length, batched, with timestamps.

    asr = pipeline("automatic-speech-recognition", model="exported/", trust_remote_code=True)
    asr("talk.mp4")        # {"text": ..., "chunks": [{"timestamp": (0.0, 9.6), "text": ...}, ...],
                           #  "speech_tokens": 61, "tokens_per_second": 3.4}

The stock ASR pipeline cannot drive this model (it sends only log-mel features to `generate`), so this one is stored
in the model folder's `config.custom_pipelines` under "automatic-speech-recognition".

Long inputs are cut into clips the model takes: at pauses found by an energy detector on the audio, or, without
audio, into fixed windows that overlap by `overlap_s` (the repeated words are merged). A file is decoded as a
stream, one clip at a time, so memory does not grow with its length: at most about `batch_size + 1` clips of frames
and audio are held (plus one unconverted source frame), whatever the file's duration.
"""

import math
import os
import re
import warnings
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np
import torch
from transformers import Pipeline

from .configuration_mmsllama import (
    AUDIO_SAMPLING_RATE,
    MODALITIES,
    SAMPLES_PER_VIDEO_FRAME,
    SYNTHETIC_GRID,
    VIDEO_FPS,
)
from .errors_mmsllama import MMSLlamaInputError
from .media_mmsllama import (
    FPS_TOLERANCE,
    import_av,
    open_container,
    prepare_waveform,
)
from .processing_mmsllama import MAX_ROI_SIDE


ENERGY_SMOOTHING_FRAMES = 5  # 200 ms moving average of the per-frame (40 ms) energy
PAUSE_MARGIN_DB = 6.0  # a frame is a pause if it is within max(this, a quarter of the range) of the window's floor
PAUSE_MIN_CONTRAST_DB = 10.0  # floor-to-peak range (5th to 95th percentile) below which no pause is sought
SILENCE_DB = -60.0  # dBFS; a clip whose loudest 200 ms stays below this is not sent to the model
DEFAULT_OVERLAP_S = 1.0  # overlap of fixed windows when there is no audio
MIN_CHUNK_FRACTION = 0.5  # a pause-cut clip is at least this share of the longest clip
STREAM_BLOCK_FRAMES = 25  # frames decoded per block when streaming a file (1 s)
SYNTHETIC_MODEL_WARNING = (
    "This model was trained only on the synthetic GRID-style corpus (config.trained_on={trained_on!r}): it knows its "
    "51 words, eSpeak NG voices and drawn mouths, nothing else. On a real face video its transcript is a sentence of "
    "that grammar whatever was said; use a model trained on real speech (e.g. converted official weights)."
)


# ----------------------------------------------------------------------------------------------------------------------
# Streaming media decode: 25 fps gray frames and 16 kHz mono audio, in blocks, aligned as `read_media` aligns them


@dataclass
class MediaBlock:
    """A piece of a stream on the model's grid: `frames` (t, H, W) uint8 and/or `audio` (n,) float32, either None."""

    frames: np.ndarray | None = None
    audio: np.ndarray | None = None


def probe_media(path: str) -> dict:
    """Which streams a file has and its duration in seconds (None when the container does not say)."""
    with open_container(path) as container:
        duration = container.duration / 1_000_000 if container.duration else None
        return {"video": bool(container.streams.video), "audio": bool(container.streams.audio), "duration": duration}


def stream_media(path: str | os.PathLike, video: bool = True, audio: bool = True, block_frames: int = STREAM_BLOCK_FRAMES):
    """Decodes a file as a stream of [`MediaBlock`]s: gray frames resampled to 25 fps and 16 kHz mono audio shifted to
    start with the video, exactly as [`read_media`] returns them, without holding the whole file.

    Concatenating every block's frames (audio) gives `read_media(path).frames` (`.audio`).
    """
    av = import_av()
    path = os.fspath(path)
    with open_container(path) as container:
        video_stream = container.streams.video[0] if video and container.streams.video else None
        audio_stream = container.streams.audio[0] if audio and container.streams.audio else None
        if video_stream is None and audio_stream is None:
            return
        streams = [s for s in (video_stream, audio_stream) if s is not None]
        for stream in streams:
            stream.thread_type = "AUTO"
        resampler = av.AudioResampler(format="flt", layout="mono", rate=AUDIO_SAMPLING_RATE) if audio_stream is not None else None
        source_fps = None
        if video_stream is not None:
            rate = video_stream.average_rate or video_stream.guessed_rate
            source_fps = float(rate) if rate else None
        resample_video = source_fps is not None and abs(source_fps - VIDEO_FPS) > FPS_TOLERANCE

        out_frames: list[np.ndarray] = []
        out_audio: list[np.ndarray] = []
        pending_audio: list[np.ndarray] = []  # audio decoded before the video's start time is known
        state = {"video_start": None, "audio_start": None, "aligned": video_stream is None, "ticks": 0, "previous": None,
                 "previous_time": None, "frames_out": 0, "audio_out": 0, "last_time": None}  # fmt: skip

        def take_audio(samples: np.ndarray):
            if state["aligned"]:
                out_audio.append(samples)
            else:
                pending_audio.append(samples)

        def align():
            """Once both start times are known: pad or drop the audio's head as `read_media` does."""
            if state["aligned"] or state["video_start"] is None:
                return
            state["aligned"] = True
            head = np.concatenate(pending_audio) if pending_audio else np.zeros(0, np.float32)
            pending_audio.clear()
            offset = round(((state["audio_start"] or 0.0) - state["video_start"]) * AUDIO_SAMPLING_RATE)
            if offset > 0:
                head = np.concatenate([np.zeros(offset, np.float32), head])
            elif offset < 0:
                state["drop"] = -offset
            out_audio.append(head)

        def take_frame(image: np.ndarray, time: float):
            if state["video_start"] is None:
                state["video_start"] = time
                align()
            state["last_time"] = time
            if not resample_video:
                out_frames.append(image)
                return
            # ticks whose last-shown frame (time <= tick + 1e-6) is the previous frame
            while state["previous"] is not None and state["video_start"] + state["ticks"] / VIDEO_FPS + 1e-6 < time:
                out_frames.append(state["previous"])
                state["ticks"] += 1
            state["previous"] = image

        def flush(final: bool = False):
            nonlocal out_frames, out_audio
            frames = np.stack(out_frames) if out_frames else None
            samples = np.concatenate(out_audio) if out_audio else None
            if samples is not None and state.get("drop"):
                dropped = min(state["drop"], len(samples))
                samples, state["drop"] = samples[dropped:], state["drop"] - dropped
            out_frames, out_audio = [], []
            if frames is None and (samples is None or not len(samples)) and not final:
                return None
            return MediaBlock(frames, samples if samples is not None and len(samples) else None)

        audio_started = False
        for packet in container.demux(streams):
            try:
                decoded = packet.decode()
            except av.error.FFmpegError as error:
                if state["frames_out"] or state["audio_out"]:
                    break  # a corrupt tail ends the stream, as read_media does
                raise MMSLlamaInputError(f"{path}: the stream is corrupt and cannot be decoded ({error}).", source=path)
            for frame in decoded:
                if packet.stream is video_stream:
                    time = float(frame.time) if frame.time is not None else state["frames_out"] / VIDEO_FPS
                    state["frames_out"] += 1
                    take_frame(frame.to_ndarray(format="gray"), time)
                else:
                    if not audio_started and frame.time is not None:
                        state["audio_start"], audio_started = float(frame.time), True
                    for converted in resampler.resample(frame):
                        samples = converted.to_ndarray().reshape(-1)
                        state["audio_out"] += len(samples)
                        take_audio(samples)
            if len(out_frames) >= block_frames or (video_stream is None and sum(map(len, out_audio)) >= block_frames * SAMPLES_PER_VIDEO_FRAME):
                block = flush()
                if block is not None:
                    yield block
        if resampler is not None:
            for converted in resampler.resample(None):
                take_audio(converted.to_ndarray().reshape(-1))
        if video_stream is not None and state["frames_out"] == 0:
            raise MMSLlamaInputError(f"{path}: the video stream has no frames (zero-length video).", source=path)
        if not state["aligned"]:
            align()
        if resample_video and state["previous"] is not None:
            duration = state["last_time"] - state["video_start"] + 1.0 / source_fps
            total = max(1, round(duration * VIDEO_FPS))
            while state["ticks"] < total:
                out_frames.append(state["previous"])
                state["ticks"] += 1
        block = flush(final=True)
        if block is not None and (block.frames is not None or block.audio is not None):
            yield block


# ----------------------------------------------------------------------------------------------------------------------
# Cutting a stream into clips


@dataclass
class Chunk:
    """One clip of an input: `start`/`end` in 25 fps frames of the input, its frames and audio (either may be None)."""

    start: int
    end: int
    frames: np.ndarray | None
    audio: np.ndarray | None
    overlap_before: int = 0  # frames shared with the previous clip (fixed windows only)
    last: bool = False
    silent: bool = False


def frame_energy_db(audio: np.ndarray) -> np.ndarray:
    """RMS level per 40 ms frame in dBFS, smoothed over 200 ms; `audio` is 16 kHz, cut to whole frames."""
    frames = len(audio) // SAMPLES_PER_VIDEO_FRAME
    if frames == 0:
        return np.full(1, -120.0)
    power = np.mean(audio[: frames * SAMPLES_PER_VIDEO_FRAME].astype(np.float64).reshape(frames, SAMPLES_PER_VIDEO_FRAME) ** 2, 1)
    if frames >= ENERGY_SMOOTHING_FRAMES:
        kernel = np.ones(ENERGY_SMOOTHING_FRAMES) / ENERGY_SMOOTHING_FRAMES
        half = ENERGY_SMOOTHING_FRAMES // 2
        power = np.convolve(np.pad(power, half, mode="edge"), kernel, mode="valid")
    return 10 * np.log10(power + 1e-12)


def find_pause(energy_db: np.ndarray, low: int, high: int) -> int:
    """Where to cut, in frames within [low, high]: the middle of the longest pause (a run of frames near the window's
    energy floor), or `high` when the window has no pause that stands out."""
    high = min(high, len(energy_db))
    low = min(low, high)
    window = energy_db[low:high]
    if len(window) == 0:
        return high
    floor, peak = np.percentile(window, 5), np.percentile(window, 95)
    if peak - floor < PAUSE_MIN_CONTRAST_DB:  # no pause stands out (steady sound or silence): cut as late as possible
        return high
    quiet = window <= floor + max(PAUSE_MARGIN_DB, 0.25 * (peak - floor))
    best_length, best_middle, run_start = 0, None, None
    for i, is_quiet in enumerate(np.append(quiet, False)):
        if is_quiet and run_start is None:
            run_start = i
        elif not is_quiet and run_start is not None:
            if i - run_start >= best_length:  # ties: the later pause, so clips are as long as possible
                best_length, best_middle = i - run_start, (run_start + i) // 2
            run_start = None
    return low + max(1, best_middle)


def iter_chunks(blocks, max_frames: int, overlap_frames: int = 0, min_frames: int | None = None, use_vad: bool = True,
                has_video: bool | None = None, has_audio: bool | None = None):
    """Cuts a stream of [`MediaBlock`]s into [`Chunk`]s of at most `max_frames` frames.

    With audio and `use_vad`, clips end at pauses between `min_frames` and `max_frames`; otherwise fixed windows of
    `max_frames` that overlap by `overlap_frames`. Holds at most `max_frames` frames (plus one block) at a time.
    """
    min_frames = max(1, int(max_frames * MIN_CHUNK_FRACTION)) if min_frames is None else min_frames
    frames_buffer: list[np.ndarray] = []
    audio_buffer: list[np.ndarray] = []
    if has_video is not None or has_audio is not None:  # streams known in advance: never cut before both arrived
        has_video, has_audio = bool(has_video), bool(has_audio)
    offset = 0  # input frame index of the buffer's first frame
    finished = False
    blocks = iter(blocks)
    previous_overlap = 0

    def buffered_frames() -> int:
        video = sum(len(f) for f in frames_buffer) if has_video else None
        audio = sum(len(a) for a in audio_buffer) // SAMPLES_PER_VIDEO_FRAME if has_audio else None
        if finished:  # the stream's length is its video's, else its audio's (rounded up)
            return video if has_video else -(-sum(len(a) for a in audio_buffer) // SAMPLES_PER_VIDEO_FRAME)
        return min(v for v in (video, audio) if v is not None)

    while True:
        while not finished and (has_video is None or buffered_frames() < max_frames + 1):
            try:
                block = next(blocks)
            except StopIteration:
                finished = True
                break
            if has_video is None:
                has_video, has_audio = block.frames is not None, block.audio is not None
            if block.frames is not None:
                has_video = True
                frames_buffer.append(block.frames)
            if block.audio is not None:
                has_audio = True
                audio_buffer.append(block.audio)
        if has_video is None:
            return
        available = buffered_frames()
        if available <= 0:
            return
        frames = np.concatenate(frames_buffer) if has_video and frames_buffer else None
        audio = np.concatenate(audio_buffer) if has_audio and audio_buffer else None
        last = finished and available <= max_frames
        if last:
            length = available
        elif has_audio and use_vad:
            length = find_pause(frame_energy_db(audio[: (max_frames + 1) * SAMPLES_PER_VIDEO_FRAME]), min_frames, max_frames)
        else:
            length = max_frames
        chunk_frames = frames[:length].copy() if frames is not None else None  # copies: the buffer is let go
        chunk_audio = None
        if audio is not None:
            chunk_audio = audio[: length * SAMPLES_PER_VIDEO_FRAME].copy()
            if len(chunk_audio) < length * SAMPLES_PER_VIDEO_FRAME:
                chunk_audio = np.concatenate([chunk_audio, np.zeros(length * SAMPLES_PER_VIDEO_FRAME - len(chunk_audio), np.float32)])
        silent = chunk_audio is not None and float(frame_energy_db(chunk_audio).max()) < SILENCE_DB
        yield Chunk(offset, offset + length, chunk_frames, chunk_audio, previous_overlap, last, silent)
        if last:
            return
        step = length if (has_audio and use_vad) else max(1, length - overlap_frames)
        previous_overlap = length - step
        frames_buffer = [frames[step:]] if frames is not None else []
        audio_buffer = [audio[step * SAMPLES_PER_VIDEO_FRAME :]] if audio is not None else []
        offset += step


def merge_overlapping(previous: str, following: str, max_words: int = 12) -> str:
    """`following` without the words it repeats from the end of `previous` (the longest suffix/prefix match)."""
    before, after = previous.split(), following.split()
    normal = lambda words: [re.sub(r"[^\w']", "", w.lower()) for w in words]  # noqa: E731
    nb, na = normal(before), normal(after)
    for size in range(min(max_words, len(nb), len(na)), 0, -1):
        if nb[-size:] == na[:size]:
            return " ".join(after[size:])
    return following


# ----------------------------------------------------------------------------------------------------------------------
# Inputs


@dataclass
class _Request:
    index: int
    source: str
    blocks: object  # iterator of MediaBlock
    modality: str | None
    has_video: bool | None = None
    has_audio: bool | None = None
    chunks: list = field(default_factory=list)
    expected: int | None = None  # number of chunks, known once the last one is cut
    error: Exception | None = None


def _is_audio_dict(item) -> bool:
    return isinstance(item, dict) and "array" in item


def _audio_from(item, sampling_rate, source):
    if isinstance(item, (str, os.PathLike)):
        return None  # read from the file
    if _is_audio_dict(item):
        return prepare_waveform(item["array"], item.get("sampling_rate", sampling_rate), source=source).audio
    return prepare_waveform(item, sampling_rate, source=source).audio


def _frames_from(item, source) -> np.ndarray:
    if hasattr(item, "detach"):
        item = item.detach().cpu().numpy()
    frames = np.asarray(item)
    if frames.ndim == 4:
        from .mouth_roi_mmsllama import to_gray

        frames = to_gray(frames)
    if frames.ndim != 3 or frames.dtype != np.uint8 or not len(frames):
        raise MMSLlamaInputError(f"{source}: video frames must be (T, H, W[, C]) uint8 at 25 fps, got "
                                 f"{frames.dtype} {frames.shape}.", source=source)  # fmt: skip
    return frames


def _array_blocks(frames, audio):
    yield MediaBlock(frames, audio)


# ----------------------------------------------------------------------------------------------------------------------


class MMSLlamaASRPipeline(Pipeline):
    """Audio-visual speech recognition with MMS-LLaMA: lip video and/or audio in, text with timestamps out.

    Inputs (one, or a list / `datasets.Dataset` of them):
        - a path to a video (its audio track is used too) or an audio file;
        - a waveform `np.ndarray` (pass `sampling_rate=`) or `{"array": ..., "sampling_rate": ...}` (a `datasets`
          Audio value);
        - a dict (e.g. a `datasets` row) with `"video"` (path or (T, H, W[, C]) uint8 frames at 25 fps) and/or
          `"audio"` (path, waveform or Audio value), optionally `"sampling_rate"`.

    Call options (also accepted when the pipeline is built):
        modality (`str`): `"av"`, `"audio"` or `"video"`; default: whatever streams the input has.
        num_beams (`int`), max_new_tokens (`int`), generate_kwargs (`dict`): decoding; defaults from
            `model.generation_config`.
        queries_per_second (`float`): speech tokens per second before the rate factor (trained value: the config's).
            Lower is faster and less accurate; it is capped by the learned query bank (`config.max_queries`).
        max_rate (`float`): upper clamp of the predicted speech-rate factor (config `rate_clamp[1]`); 1.0 makes
            the token count independent of the speaking rate.
        speech_rate (`float`): use this rate for every clip instead of the rate predictor's.
        chunk_length_s (`float`): longest clip sent to the model (default and maximum: the model's limit).
        overlap_s (`float`): overlap of the fixed windows used without audio (default 1 s).
        batch_size (`int`): clips decoded together (clips of all inputs are batched together).
        sampling_rate (`int`): sample rate of waveform inputs.

    Returns per input: `{"text", "chunks": [{"timestamp": (start_s, end_s), "text"}], "speech_tokens",
    "tokens_per_second"}`; `speech_tokens` counts the speech tokens the LLM read, `tokens_per_second` divides them by
    the seconds of the clips decoded (clips of digital silence are skipped and cost nothing).
    """

    _load_processor = True
    _load_tokenizer = False
    _load_feature_extractor = False
    _load_image_processor = False
    _load_video_processor = False
    _pipeline_calls_generate = True

    _CALL_OPTIONS = ("modality", "num_beams", "max_new_tokens", "generate_kwargs", "queries_per_second", "max_rate",
                     "speech_rate", "chunk_length_s", "overlap_s", "sampling_rate", "progress")  # fmt: skip

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.processor is None:
            raise MMSLlamaInputError("MMSLlamaASRPipeline needs the model's processor (MMSLlamaProcessor).")
        self._warned_synthetic = False

    def _warn_if_synthetic_model_sees_a_face(self, frames: np.ndarray | None) -> None:
        """Warns once per pipeline when a model of the synthetic corpus only is given a whole face video."""
        trained_on = getattr(self.model.config, "trained_on", None)
        if self._warned_synthetic or trained_on != SYNTHETIC_GRID or frames is None:
            return
        if max(frames.shape[1:3]) > MAX_ROI_SIDE:
            warnings.warn(SYNTHETIC_MODEL_WARNING.format(trained_on=trained_on), UserWarning, stacklevel=4)
            self._warned_synthetic = True

    # -- parameters ---------------------------------------------------------------------------------------------------

    def _sanitize_parameters(self, **kwargs):
        unknown = sorted(set(kwargs) - set(self._CALL_OPTIONS))
        if unknown:
            raise TypeError(f"MMSLlamaASRPipeline got unknown options {unknown}; known: {list(self._CALL_OPTIONS)}.")
        modality = kwargs.get("modality")
        if modality is not None and modality not in MODALITIES:
            raise MMSLlamaInputError(f"modality must be one of {MODALITIES} or None, got {modality!r}.")
        preprocess = {k: kwargs[k] for k in ("modality", "chunk_length_s", "overlap_s", "sampling_rate") if k in kwargs}
        forward = {k: kwargs[k] for k in ("num_beams", "max_new_tokens", "generate_kwargs", "queries_per_second",
                                          "max_rate", "speech_rate") if k in kwargs}  # fmt: skip
        postprocess = {}
        return preprocess, forward, postprocess

    def _options(self, kwargs) -> dict:
        pre, fwd, post = self._sanitize_parameters(**kwargs)
        options = {**self._construction_generate_options(), **self._preprocess_params, **self._forward_params,
                   **self._postprocess_params, **pre, **fwd, **post}  # fmt: skip
        options["progress"] = kwargs.get("progress", False)
        return options

    def _construction_generate_options(self) -> dict:
        """Generation options given when the pipeline was built (Pipeline.__init__ keeps them apart)."""
        given = dict(getattr(self, "_generate_kwargs", None) or {})
        options = {k: given.pop(k) for k in ("num_beams", "max_new_tokens") if k in given}
        if given:
            options["generate_kwargs"] = given
        return options

    @property
    def max_chunk_frames(self) -> int:
        """Longest clip the model and processor take, in 25 fps frames."""
        return min(int(self.model.config.max_video_frames), self.processor.max_samples // SAMPLES_PER_VIDEO_FRAME)

    # -- the Pipeline steps -------------------------------------------------------------------------------------------

    def preprocess(self, inputs, modality=None, chunk_length_s=None, overlap_s=None, sampling_rate=None, index=0):
        """One input -> a [`_Request`] whose `blocks` stream its media (nothing is decoded yet)."""
        source = f"inputs[{index}]"
        video = audio = None
        if isinstance(inputs, (str, os.PathLike)):
            source = video = os.fspath(inputs)
        elif isinstance(inputs, dict) and not _is_audio_dict(inputs):
            video, audio = inputs.get("video"), inputs.get("audio")
            sampling_rate = inputs.get("sampling_rate", sampling_rate)
            if video is None and audio is None:
                raise MMSLlamaInputError(f"{source}: a dict input needs 'video' and/or 'audio' (or 'array' for audio).")
            source = video if isinstance(video, (str, os.PathLike)) else audio if isinstance(audio, (str, os.PathLike)) else source
            source = os.fspath(source)
        else:
            audio = inputs  # a waveform or an Audio value
        want_video = modality in (None, "av", "video")
        want_audio = modality in (None, "av", "audio")

        if isinstance(video, (str, os.PathLike)) and (audio is None or isinstance(audio, (str, os.PathLike))):
            path = os.fspath(video)
            info = probe_media(path)
            if modality in ("av", "video") and not info["video"]:
                raise MMSLlamaInputError(f"{path}: has no video stream, but modality={modality!r} needs it.", source=path)
            audio_path = os.fspath(audio) if audio is not None else path
            if audio_path == path:
                if modality in ("av", "audio") and not info["audio"]:
                    raise MMSLlamaInputError(f"{path}: has no audio stream, but modality={modality!r} needs it.",
                                             source=path)  # fmt: skip
                has_video, has_audio = want_video and info["video"], want_audio and info["audio"]
                blocks = stream_media(path, video=has_video, audio=has_audio)
                return _Request(index, path, blocks, modality, has_video, has_audio)
            else:
                blocks = _zip_streams(stream_media(path, video=want_video, audio=False),
                                      stream_media(audio_path, video=False, audio=want_audio))  # fmt: skip
            return _Request(index, path, blocks, modality, want_video and info["video"], want_audio)
        frames = None
        if video is not None and want_video:
            frames = _frames_from(video, source) if not isinstance(video, (str, os.PathLike)) else np.concatenate(
                [b.frames for b in stream_media(video, audio=False)]
            )
        waveform = None
        if audio is not None and want_audio:
            if isinstance(audio, (str, os.PathLike)):
                waveform = np.concatenate([b.audio for b in stream_media(audio, video=False) if b.audio is not None])
            else:
                waveform = _audio_from(audio, sampling_rate, source)
        if modality in ("av", "video") and frames is None:
            raise MMSLlamaInputError(f"{source}: modality={modality!r} needs video, and the input has none.", source=source)
        if modality in ("av", "audio") and waveform is None:
            raise MMSLlamaInputError(f"{source}: modality={modality!r} needs audio, and the input has none.", source=source)
        if frames is None and waveform is None:
            raise MMSLlamaInputError(f"{source}: nothing to transcribe for modality={modality!r}.", source=source)
        return _Request(index, source, _array_blocks(frames, waveform), modality, frames is not None, waveform is not None)

    def _forward(self, model_inputs, num_beams=None, max_new_tokens=None, generate_kwargs=None, queries_per_second=None,
                 max_rate=None, speech_rate=None):  # fmt: skip
        """A processor batch -> generated ids and the speech tokens each clip fed the LLM."""
        generation = dict(generate_kwargs or {})
        config = self.model.generation_config
        generation.setdefault("num_beams", num_beams or getattr(config, "num_beams", None) or 1)
        generation.setdefault("max_new_tokens", max_new_tokens or getattr(config, "max_new_tokens", None) or 100)
        generation.setdefault("do_sample", False)
        inputs = {k: v.to(self.device) if hasattr(v, "to") else v for k, v in model_inputs.items()}
        if speech_rate is not None:
            inputs["speech_rate"] = torch.full((len(inputs["input_ids"]),), float(speech_rate), device=self.device)
        prompt = {k: inputs.pop(k) for k in ("input_ids", "attention_mask")}
        with torch.no_grad():
            speech = self.model.get_speech_embeddings(**inputs, queries_per_second=queries_per_second, max_rate=max_rate)
            ids = self.model.generate(**prompt, speech_embeddings=speech, **generation)
        return {"ids": ids.cpu(), "num_speech_tokens": speech.num_speech_tokens.detach().cpu()}

    def postprocess(self, model_outputs):
        """Generated ids -> clean transcripts (one per clip)."""
        return self.processor.batch_decode(model_outputs["ids"], skip_special_tokens=True)

    # -- running ------------------------------------------------------------------------------------------------------

    def __call__(self, inputs, *args, batch_size=None, **kwargs):
        """Transcribes one input or a list (or `datasets.Dataset`) of inputs; see the class docstring."""
        if args:
            raise TypeError("Pass options by keyword, e.g. asr('talk.mp4', modality='audio').")
        single = not isinstance(inputs, (list, tuple)) and not _is_dataset(inputs)
        items = [inputs] if single else list(inputs)
        results = list(self.iterate(items, batch_size=batch_size, **kwargs))
        return results[0] if single else results

    def iterate(self, items, batch_size=None, **kwargs):
        """Yields one result per input, in order, batching the clips of consecutive inputs together."""
        options = self._options(kwargs)
        batch_size = int(batch_size or self._batch_size or 1)
        max_frames = self.max_chunk_frames
        if options.get("chunk_length_s"):
            max_frames = max(1, min(max_frames, int(options["chunk_length_s"] * VIDEO_FPS)))
        overlap = options.get("overlap_s", DEFAULT_OVERLAP_S)
        overlap_frames = min(int(round(overlap * VIDEO_FPS)), max_frames // 2)
        forward = {k: options[k] for k in ("num_beams", "max_new_tokens", "generate_kwargs", "queries_per_second",
                                           "max_rate", "speech_rate") if k in options}  # fmt: skip
        given = options.get("progress")
        progress = _progress(given)

        pending: list[tuple[_Request, Chunk]] = []
        open_requests: list[_Request] = []

        def run(batch):
            if not batch:
                return
            modality = batch[0][0].modality
            self._warn_if_synthetic_model_sees_a_face(batch[0][1].frames)
            kinds = {_chunk_modality(chunk) for _, chunk in batch}
            request_modality = modality or (kinds.pop() if len(kinds) == 1 else None)
            model_inputs = self.processor(
                videos=[c.frames for _, c in batch] if batch[0][1].frames is not None else None,
                audio=[c.audio for _, c in batch] if batch[0][1].audio is not None else None,
                sampling_rate=AUDIO_SAMPLING_RATE,
                modality=request_modality,
            )
            outputs = self._forward(model_inputs, **forward)
            texts = self.postprocess(outputs)
            tokens = outputs["num_speech_tokens"]
            for i, ((request, chunk), text) in enumerate(zip(batch, texts)):
                request.chunks.append((_span(chunk), text, int(tokens[i]) if tokens is not None else 0))
            progress.update(sum((c.end - c.start - c.overlap_before) / VIDEO_FPS for _, c in batch))

        for index, item in enumerate(items):
            request = self.preprocess(item, index=index, **{k: options[k] for k in ("modality", "sampling_rate")
                                                            if k in options})  # fmt: skip
            open_requests.append(request)
            use_vad = request.modality != "video"
            chunks = iter_chunks(request.blocks, max_frames, overlap_frames, use_vad=use_vad,
                                 has_video=request.has_video, has_audio=request.has_audio)  # fmt: skip
            for chunk in chunks:
                if chunk.silent and chunk.frames is None:  # digital silence, nothing to read: costs nothing
                    request.chunks.append((_span(chunk), "", 0))
                    continue
                if chunk.silent and request.modality is None:  # silent audio with video: read the lips only
                    chunk = Chunk(chunk.start, chunk.end, chunk.frames, None, chunk.overlap_before, chunk.last)
                key = (_chunk_modality(chunk), request.modality)
                if pending and (_chunk_modality(pending[0][1]), pending[0][0].modality) != key:
                    run(pending)
                    pending = []
                pending.append((request, chunk))
                if len(pending) >= batch_size:
                    run(pending)
                    pending = []
            request.expected = True
            # results of inputs whose clips are all decoded can be returned now
            while open_requests and open_requests[0].expected and not any(r is open_requests[0] for r, _ in pending):
                yield self._assemble(open_requests.pop(0))
        run(pending)
        if given is True:
            progress.close()
        for request in open_requests:
            yield self._assemble(request)

    def _assemble(self, request: _Request) -> dict:
        pieces = sorted(request.chunks, key=lambda piece: piece[0].start)
        chunks, texts, tokens, seconds = [], [], 0, 0.0
        for chunk, text, num_tokens in pieces:
            start = chunk.start + chunk.overlap_before // 2
            if chunk.overlap_before and texts:
                text = merge_overlapping(" ".join(texts[-3:]), text)
            end = chunk.end
            chunks.append({"timestamp": (round(start / VIDEO_FPS, 2), round(end / VIDEO_FPS, 2)), "text": text})
            if text:
                texts.append(text)
            tokens += num_tokens
            if num_tokens:
                seconds += (chunk.end - chunk.start) / VIDEO_FPS
        for previous, following in zip(chunks, chunks[1:]):  # overlapping windows meet in the middle of the overlap
            previous["timestamp"] = (previous["timestamp"][0], following["timestamp"][0])
        return {
            "text": " ".join(texts),
            "chunks": chunks,
            "speech_tokens": tokens,
            "tokens_per_second": round(tokens / seconds, 3) if seconds else 0.0,
        }


def _span(chunk: Chunk) -> Chunk:
    """The chunk without its media (what is kept until the input's result is assembled)."""
    return Chunk(chunk.start, chunk.end, None, None, chunk.overlap_before, chunk.last, chunk.silent)


def _chunk_modality(chunk: Chunk) -> str:
    if chunk.frames is not None and chunk.audio is not None:
        return "av"
    return "video" if chunk.frames is not None else "audio"


def _is_dataset(inputs) -> bool:
    return hasattr(inputs, "column_names") and hasattr(inputs, "__getitem__") and hasattr(inputs, "__len__")


def _zip_streams(video_blocks, audio_blocks):
    """Interleaves a video-only stream with an audio-only stream from another file (both on the 25 fps / 16 kHz
    grid), so that neither runs far ahead of the other."""
    import itertools

    for video_block, audio_block in itertools.zip_longest(video_blocks, audio_blocks):
        if video_block is not None:
            yield video_block
        if audio_block is not None:
            yield audio_block


class _NoProgress:
    def update(self, *_):
        pass

    def close(self):
        pass


def _progress(progress):
    """A tqdm bar counting seconds of media decoded, when `progress` is True (or a tqdm instance)."""
    if progress is None or progress is False:
        return _NoProgress()
    if progress is True:
        try:
            from tqdm.auto import tqdm
        except ImportError:
            return _NoProgress()
        return tqdm(unit="s", desc="transcribing", bar_format="{desc}: {n:.1f}s of media [{elapsed}, {rate_fmt}]")
    return progress


# ----------------------------------------------------------------------------------------------------------------------
# Subtitles


def _clock(seconds: float, separator: str) -> str:
    millis = int(round(seconds * 1000))
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def to_srt(result: dict) -> str:
    """A pipeline result as SubRip subtitles (one cue per non-empty clip)."""
    cues = [c for c in result["chunks"] if c["text"]]
    lines = []
    for number, cue in enumerate(cues, 1):
        start, end = cue["timestamp"]
        lines += [str(number), f"{_clock(start, ',')} --> {_clock(end, ',')}", cue["text"], ""]
    return "\n".join(lines)


def to_vtt(result: dict) -> str:
    """A pipeline result as WebVTT subtitles (one cue per non-empty clip)."""
    lines = ["WEBVTT", ""]
    for cue in (c for c in result["chunks"] if c["text"]):
        start, end = cue["timestamp"]
        lines += [f"{_clock(start, '.')} --> {_clock(end, '.')}", cue["text"], ""]
    return "\n".join(lines)


PIPELINE_TASK = "automatic-speech-recognition"


def custom_pipelines_entry() -> dict:
    """The `config.custom_pipelines` value that makes `pipeline("automatic-speech-recognition", model=folder,
    trust_remote_code=True)` build this pipeline (the file must sit in the folder as `pipeline_mmsllama.py`)."""
    return {PIPELINE_TASK: {"impl": "pipeline_mmsllama.MMSLlamaASRPipeline", "pt": ["AutoModel"], "tf": [],
                            "type": "multimodal"}}  # fmt: skip


__all__ = ["MMSLlamaASRPipeline", "stream_media", "iter_chunks", "to_srt", "to_vtt", "custom_pipelines_entry"]

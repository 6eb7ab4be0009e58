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

import os
import re
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch
from transformers import Pipeline

from .configuration_mmsllama import (
    AUDIO_SAMPLING_RATE,
    MIN_CLIP_FRAMES,
    MODALITIES,
    SAMPLES_PER_VIDEO_FRAME,
    SYNTHETIC_GRID,
    VIDEO_FPS,
)
from .errors_mmsllama import MMSLlamaConversionWarning, MMSLlamaInputError
from .media_mmsllama import (
    Media,
    MediaBlock,
    MediaStream,
    align_streams,
    check_align_mode,
    prepare_waveform,
    probe_media,
    read_media,
)
from .processing_mmsllama import MAX_ROI_SIDE
from .video_processing_mmsllama import ROI_STD


ENERGY_SMOOTHING_FRAMES = 5  # 200 ms moving average of the per-frame (40 ms) energy
PAUSE_MARGIN_DB = 6.0  # a frame is a pause if it is within max(this, a quarter of the range) of the window's floor
PAUSE_MIN_CONTRAST_DB = 10.0  # floor-to-peak range (5th to 95th percentile) below which no pause is sought
SILENCE_DB = -60.0  # dBFS; a clip whose loudest 200 ms stays below this is not sent to the model
DEFAULT_OVERLAP_S = 1.0  # overlap of fixed windows when there is no audio
MIN_CHUNK_FRACTION = 0.5  # a pause-cut clip is at least this share of the longest clip
NO_SPEECH_AUDIO_DB = -45.0  # dBFS; audio whose loudest 200 ms stays below this carries no audible speech
NO_SPEECH_MOTION = 1.0  # gray levels; mouth crops that change less than this per frame on average do not speak
SYNTHETIC_MODEL_WARNING = (
    "This model was trained only on the synthetic GRID-style corpus (config.trained_on={trained_on!r}): it knows its "
    "51 words, eSpeak NG voices and drawn mouths, nothing else. On a real face video its transcript is a sentence of "
    "that grammar whatever was said; use a model trained on real speech (e.g. converted official weights)."
)


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
    `max_frames` that overlap by `overlap_frames`. The last clip is at least `MIN_CLIP_FRAMES` long (the one before
    it ends earlier), so `max_frames` must be at least twice that. Holds at most `max_frames + MIN_CLIP_FRAMES`
    frames (plus one block) at a time.
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
        while not finished and (has_video is None or buffered_frames() < max_frames + MIN_CLIP_FRAMES):
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
        step = length if (has_audio and use_vad) else max(1, length - overlap_frames)
        if not last and finished and available - step < MIN_CLIP_FRAMES:
            # the last clip would be shorter than the model reads: it starts earlier (and a pause-cut clip ends there)
            step = available - MIN_CLIP_FRAMES
            length = step if (has_audio and use_vad) else length
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


def mouth_motion(pixel_values_videos: torch.Tensor, video_mask: torch.Tensor) -> torch.Tensor:
    """How much each clip's mouth crops change from frame to frame (B,): the mean absolute difference of consecutive
    crops in gray levels (0-255), from the processor's normalised `pixel_values_videos` (B, T, 1, H, W)."""
    change = (pixel_values_videos[:, 1:] - pixel_values_videos[:, :-1]).abs().mean(dim=(2, 3, 4))  # (B, T - 1)
    pairs = (video_mask[:, 1:] & video_mask[:, :-1]).to(change.dtype)
    return (change * pairs).sum(-1) / pairs.sum(-1).clamp(min=1) * ROI_STD * 255


def is_no_speech(audio_db: float | None, motion: float | None, avg_logprob: float | None,
                 logprob_threshold: float | None) -> bool:  # fmt: skip
    """Whether a clip holds no speech: none of its streams shows activity (the audio's loudest 200 ms below
    `NO_SPEECH_AUDIO_DB`, the mouth crops changing less than `NO_SPEECH_MOTION`), or the model's transcript is a guess
    (its mean token log-probability below `logprob_threshold`, where one is set). A missing stream is given as None."""
    quiet = (audio_db is None or audio_db < NO_SPEECH_AUDIO_DB) and (motion is None or motion < NO_SPEECH_MOTION)
    guess = logprob_threshold is not None and avg_logprob is not None and avg_logprob < logprob_threshold
    return quiet or guess


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
    chunks: list = field(default_factory=list)  # a _Transcript per decoded clip
    conversions: list[str] = field(default_factory=list)  # what converting its media onto the grid changed
    streams: list = field(default_factory=list)  # the MediaStreams its files are decoded by; their notes add to those
    expected: int | None = None  # number of chunks, known once the last one is cut
    error: Exception | None = None


@dataclass
class _Transcript:
    """One clip's outcome, kept until its input's result is assembled."""

    span: Chunk  # the clip without its media
    text: str
    num_tokens: int = 0
    avg_logprob: float | None = None
    no_speech: bool = False


def _is_audio_dict(item) -> bool:
    return isinstance(item, dict) and "array" in item


def _audio_from(item, sampling_rate, source) -> Media:
    if _is_audio_dict(item):
        return prepare_waveform(item["array"], item.get("sampling_rate", sampling_rate), source=source)
    return prepare_waveform(item, sampling_rate, source=source)


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
        align (`str`): `"pad"` or `"trim"`: fit together an in-memory input's audio and video whose durations differ by
            more than the processor's `align_tolerance_s` (refused without it; see [`MMSLlamaProcessor`]). A file's
            streams are cut on its video's timeline.
        keep_no_speech (`bool`): keep the transcripts of clips marked `"no_speech"` (default: their text is empty).
        no_speech_logprob (`float`): mean token log-probability below which a clip's transcript counts as a guess
            (default: the model's `config.no_speech_logprob`; None there: only the streams' activity decides).

    Returns per input: `{"text", "chunks": [{"timestamp": (start_s, end_s), "text", "avg_logprob", "no_speech"}],
    "speech_tokens", "tokens_per_second", "conversions"}`; `conversions` lists what bringing the input onto the
    model's grid changed (resampling, down-mixing, integer rescaling; also said in an [`MMSLlamaConversionWarning`]); `avg_logprob` is the clip's mean token log-probability (its confidence;
    None for a clip not decoded), `no_speech` marks clips that hold no speech (see [`is_no_speech`]: silent audio and a
    still mouth, or a transcript that is a guess); `speech_tokens` counts the speech tokens the LLM read,
    `tokens_per_second` divides them by the seconds of the clips decoded (clips of digital silence are skipped and
    cost nothing).
    """

    _load_processor = True
    _load_tokenizer = False
    _load_feature_extractor = False
    _load_image_processor = False
    _load_video_processor = False
    _pipeline_calls_generate = True

    _CALL_OPTIONS = ("modality", "num_beams", "max_new_tokens", "generate_kwargs", "queries_per_second", "max_rate",
                     "speech_rate", "chunk_length_s", "overlap_s", "sampling_rate", "align", "keep_no_speech",
                     "no_speech_logprob", "progress")  # fmt: skip

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
        check_align_mode(kwargs.get("align"))
        preprocess = {k: kwargs[k] for k in ("modality", "chunk_length_s", "overlap_s", "sampling_rate", "align")
                      if k in kwargs}  # fmt: skip
        forward = {k: kwargs[k] for k in ("num_beams", "max_new_tokens", "generate_kwargs", "queries_per_second",
                                          "max_rate", "speech_rate") if k in kwargs}  # fmt: skip
        postprocess = {k: kwargs[k] for k in ("keep_no_speech", "no_speech_logprob") if k in kwargs}
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

    def preprocess(self, inputs, modality=None, chunk_length_s=None, overlap_s=None, sampling_rate=None, align=None,
                   index=0):  # fmt: skip
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
                stream = MediaStream(path, video=has_video, audio=has_audio)
                return _Request(index, path, stream, modality, has_video, has_audio, streams=[stream])
            streams = [MediaStream(path, video=want_video, audio=False),
                       MediaStream(audio_path, video=False, audio=want_audio)]  # fmt: skip
            return _Request(index, path, _zip_streams(*streams), modality, want_video and info["video"], want_audio,
                            streams=streams)  # fmt: skip
        frames = waveform = None
        conversions = []
        if video is not None and want_video:
            if isinstance(video, (str, os.PathLike)):
                media = read_media(video, audio=False)
                frames, conversions = media.frames, conversions + media.notes
            else:
                frames = _frames_from(video, source)
        if audio is not None and want_audio:
            if isinstance(audio, (str, os.PathLike)):
                media = read_media(audio, video=False)
            else:
                media = _audio_from(audio, sampling_rate, source)
            waveform, conversions = media.audio, conversions + media.notes
        if modality in ("av", "video") and frames is None:
            raise MMSLlamaInputError(f"{source}: modality={modality!r} needs video, and the input has none.", source=source)
        if modality in ("av", "audio") and waveform is None:
            raise MMSLlamaInputError(f"{source}: modality={modality!r} needs audio, and the input has none.", source=source)
        if frames is None and waveform is None:
            raise MMSLlamaInputError(f"{source}: nothing to transcribe for modality={modality!r}.", source=source)
        if frames is not None and waveform is not None:
            frames, waveform, _ = align_streams(frames, waveform, source, align, self.processor.align_tolerance_s)
        return _Request(index, source, _array_blocks(frames, waveform), modality, frames is not None,
                        waveform is not None, conversions=conversions)  # fmt: skip

    def _forward(self, model_inputs, num_beams=None, max_new_tokens=None, generate_kwargs=None, queries_per_second=None,
                 max_rate=None, speech_rate=None):  # fmt: skip
        """A processor batch -> generated ids, the speech tokens each clip fed the LLM, each transcript's mean token
        log-probability and, with video, each clip's mouth motion."""
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
            generation.update(return_dict_in_generate=True, output_scores=True)
            generated = self.model.generate(**prompt, speech_embeddings=speech, **generation)
            outputs = {
                "ids": generated.sequences.cpu(),
                "num_speech_tokens": speech.num_speech_tokens.detach().cpu(),
                "avg_logprob": self.model.transcript_logprobs(generated).float().cpu(),
            }
            if "pixel_values_videos" in inputs:
                motion = mouth_motion(inputs["pixel_values_videos"], inputs["video_mask"])
                outputs["mouth_motion"] = motion.float().cpu()
        return outputs

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
            max_frames = min(max_frames, int(options["chunk_length_s"] * VIDEO_FPS))
        if max_frames < 2 * MIN_CLIP_FRAMES:
            raise MMSLlamaInputError(
                f"chunk_length_s={options.get('chunk_length_s')} is too short: clips are cut at least "
                f"{2 * MIN_CLIP_FRAMES / VIDEO_FPS:.2f} s long (twice the shortest the model reads)."
            )
        overlap = options.get("overlap_s", DEFAULT_OVERLAP_S)
        overlap_frames = min(int(round(overlap * VIDEO_FPS)), max_frames // 2)
        forward = {k: options[k] for k in ("num_beams", "max_new_tokens", "generate_kwargs", "queries_per_second",
                                           "max_rate", "speech_rate") if k in options}  # fmt: skip
        keep_no_speech = options.get("keep_no_speech", False)
        logprob_threshold = options.get("no_speech_logprob", getattr(self.model.config, "no_speech_logprob", None))
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
            for i, ((request, chunk), text) in enumerate(zip(batch, texts)):
                audio_db = None if chunk.audio is None else float(frame_energy_db(chunk.audio).max())
                motion = None if chunk.frames is None else float(outputs["mouth_motion"][i])
                avg_logprob = float(outputs["avg_logprob"][i])
                no_speech = is_no_speech(audio_db, motion, avg_logprob, logprob_threshold)
                request.chunks.append(_Transcript(_span(chunk), text, int(outputs["num_speech_tokens"][i]),
                                                  round(avg_logprob, 4), no_speech))  # fmt: skip
            progress.update(sum((c.end - c.start - c.overlap_before) / VIDEO_FPS for _, c in batch))

        for index, item in enumerate(items):
            request_options = {k: options[k] for k in ("modality", "sampling_rate", "align") if k in options}
            request = self.preprocess(item, index=index, **request_options)
            open_requests.append(request)
            use_vad = request.modality != "video"
            chunks = iter_chunks(request.blocks, max_frames, overlap_frames, use_vad=use_vad,
                                 has_video=request.has_video, has_audio=request.has_audio)  # fmt: skip
            for chunk in chunks:
                if chunk.end - chunk.start < MIN_CLIP_FRAMES:  # only a whole input is this short
                    seconds = (chunk.end - chunk.start) / VIDEO_FPS
                    raise MMSLlamaInputError(
                        f"{request.source}: lasts {seconds:.2f} s; the model needs at least "
                        f"{MIN_CLIP_FRAMES / VIDEO_FPS:.2f} s.",
                        source=request.source,
                    )
                if chunk.silent and chunk.frames is None:  # digital silence, nothing to read: costs nothing
                    request.chunks.append(_Transcript(_span(chunk), "", no_speech=True))
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
                yield self._assemble(open_requests.pop(0), keep_no_speech)
        run(pending)
        if given is True:
            progress.close()
        for request in open_requests:
            yield self._assemble(request, keep_no_speech)

    def _assemble(self, request: _Request, keep_no_speech: bool = False) -> dict:
        pieces = sorted(request.chunks, key=lambda piece: piece.span.start)
        chunks, texts, tokens, seconds = [], [], 0, 0.0
        for piece in pieces:
            chunk = piece.span
            text = piece.text if keep_no_speech or not piece.no_speech else ""
            start = chunk.start + chunk.overlap_before // 2
            if chunk.overlap_before and texts:
                text = merge_overlapping(" ".join(texts[-3:]), text)
            end = chunk.end
            chunks.append({"timestamp": (round(start / VIDEO_FPS, 2), round(end / VIDEO_FPS, 2)), "text": text,
                           "avg_logprob": piece.avg_logprob, "no_speech": piece.no_speech})  # fmt: skip
            if text:
                texts.append(text)
            tokens += piece.num_tokens
            if piece.num_tokens:
                seconds += (chunk.end - chunk.start) / VIDEO_FPS
        for previous, following in zip(chunks, chunks[1:]):  # overlapping windows meet in the middle of the overlap
            previous["timestamp"] = (previous["timestamp"][0], following["timestamp"][0])
        conversions = request.conversions + [note for stream in request.streams for note in stream.notes]
        if conversions:
            warnings.warn(f"{request.source}: converted onto the model's grid (16 kHz mono float audio, 25 fps "
                          f"video): {'; '.join(conversions)}.", MMSLlamaConversionWarning, stacklevel=2)  # fmt: skip
        return {
            "text": " ".join(texts),
            "chunks": chunks,
            "speech_tokens": tokens,
            "tokens_per_second": round(tokens / seconds, 3) if seconds else 0.0,
            "conversions": conversions,
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


PIPELINE_TASK = "automatic-speech-recognition"


def custom_pipelines_entry() -> dict:
    """The `config.custom_pipelines` value that makes `pipeline("automatic-speech-recognition", model=folder,
    trust_remote_code=True)` build this pipeline (the file must sit in the folder as `pipeline_mmsllama.py`)."""
    return {PIPELINE_TASK: {"impl": "pipeline_mmsllama.MMSLlamaASRPipeline", "pt": ["AutoModel"], "tf": [],
                            "type": "multimodal"}}  # fmt: skip


__all__ = ["MMSLlamaASRPipeline", "is_no_speech", "mouth_motion", "iter_chunks", "custom_pipelines_entry"]

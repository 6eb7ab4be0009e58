"""Processor for MMS-LLaMA: raw video and/or audio (+ transcripts) -> the model's inputs, batched, padded and masked."""

import os
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch
from transformers import AutoTokenizer, WhisperFeatureExtractor
from transformers.feature_extraction_utils import BatchFeature
from transformers.processing_utils import ProcessorMixin
from transformers.tokenization_utils_base import AddedToken
from transformers.utils import logging

from .configuration_mmsllama import (
    AUDIO_SAMPLING_RATE,
    DEFAULT_PROMPT,
    MIN_CLIP_FRAMES,
    MODALITIES,
    ROI_SIZE,
    SAMPLES_PER_VIDEO_FRAME,
    SPEECH_TOKEN,
    VIDEO_FPS,
    MMSLlamaConfig,
)
from .errors_mmsllama import MMSLlamaConversionWarning, MMSLlamaInputError
from .media_mmsllama import (
    STREAM_MISMATCH_TOLERANCE_S,
    align_audio_to_frames,
    align_streams,
    check_align_mode,
    prepare_waveform,
    read_media,
)
from .mouth_roi_mmsllama import MouthROIExtractor, to_gray
from .tokenization_mmsllama import MAX_BUILTIN_VOCAB_SIZE, build_char_tokenizer
from .video_processing_mmsllama import MMSLlamaVideoProcessor


logger = logging.get_logger(__name__)

MEL_HOP = 160  # audio samples per Whisper log-mel frame (10 ms)
MAX_ROI_SIDE = 128  # px; video frames no larger than this on both sides are taken as ready-made mouth crops
IGNORE_INDEX = -100  # label value the loss skips


@dataclass
class MediaInfo:
    """What the processor did with one sample; a list of these is `inputs.media_info`.

    Attributes:
        video (`str`, *optional*): where the video came from (a path, or `"videos[i]"` for an array).
        audio (`str`, *optional*): where the audio came from (a path, `"audio[i]"`, or the video's path for its track).
        modality (`str`): this sample's real streams: `"av"`, `"audio"` or `"video"`.
        num_frames (`int`): length in 25 fps frames (for audio-only: frames the audio covers, rounded up).
        num_samples (`int`): 16 kHz audio samples given to the feature extractor (0 without real audio).
        source_fps (`float`, *optional*) / source_sample_rate (`int`, *optional*) / source_channels (`int`, *optional*):
            the media's own rates before conversion.
        missing_face_frames (`list[int]`): frames where no face was found (their crop was interpolated).
        fallback (`str`, *optional*): why a stream was left out when the caller did not ask for a modality.
        conversions (`list[str]`): what reading the media changed to bring it onto the model's grid (resampling,
            down-mixing, integer rescaling, start-time shift); the processor call warns once about them
            ([`MMSLlamaConversionWarning`]).
        notes (`list[str]`): every change made (the conversions, trimming, padding, alignment, face choice).
    """

    video: str | None = None
    audio: str | None = None
    modality: str = "av"
    num_frames: int = 0
    num_samples: int = 0
    source_fps: float | None = None
    source_sample_rate: int | None = None
    source_channels: int | None = None
    missing_face_frames: list[int] = field(default_factory=list)
    fallback: str | None = None
    conversions: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class _Sample:
    frames: np.ndarray | None
    audio: np.ndarray | None
    info: MediaInfo


def _settle_missing_streams(problems: list, frames, audio, modality: str | None, info: MediaInfo) -> None:
    """A stream the caller's `modality` needs and the sample lacks is an error; without a `modality`, the sample falls
    back to the stream it has (recorded in `info.fallback`); with neither stream there is nothing to transcribe."""
    for stream, message in problems:
        if modality is not None and (modality == "av" or modality == stream):
            raise MMSLlamaInputError(
                f"{message}, but modality={modality!r} needs it. Leave modality out to use what the media has."
            )
    if frames is None and audio is None:
        raise MMSLlamaInputError("; ".join(message for _, message in problems) + ": nothing left to transcribe.")
    if problems:
        kept = "audio" if audio is not None else "video"
        info.fallback = "; ".join(message for _, message in problems) + f": using the {kept} only"


def _own_modality(sample: _Sample) -> str:
    if sample.frames is not None and sample.audio is not None:
        return "av"
    return "video" if sample.frames is not None else "audio"


def _sample_name(info: MediaInfo) -> str:
    """How messages name a sample: its video and/or audio source (`"talk.mp4"`, `"videos[0] and audio[0]"`)."""
    return " and ".join(dict.fromkeys(name for name in (info.video, info.audio) if name))


def _as_list(items) -> list:
    """One item or a list of items -> a list. A waveform given as a list of numbers is one item."""
    if items is None:
        return []
    if isinstance(items, (list, tuple)) and not (items and isinstance(items[0], (int, float, np.number))):
        return list(items)
    return [items]


class MMSLlamaProcessor(ProcessorMixin):
    r"""
    Builds MMS-LLaMA inputs from raw media: a [`WhisperFeatureExtractor`] for the audio, an [`MMSLlamaVideoProcessor`]
    for mouth crops (found in raw face video by a [`MouthROIExtractor`]) and the tokenizer for the prompt and the
    training transcripts.

    Args:
        feature_extractor ([`WhisperFeatureExtractor`]): log-mel features; its `chunk_length` is the audio window.
        video_processor ([`MMSLlamaVideoProcessor`]): mouth crops -> normalised 88x88 clips.
        tokenizer ([`PreTrainedTokenizerFast`]): a Llama tokenizer, or the character tokenizer of the small presets.
        prompt (`str`): instruction placed after BOS and before the speech placeholder.
        speech_token (`str`): the placeholder the model replaces with the speech embeddings.
        max_video_frames (`int`): longest clip the model takes, in 25 fps frames.
        face_selection (`str`): with several faces in a video, use the `"largest"` or the most `"central"` one.
        align_tolerance_s (`float`): how far, in seconds, a sample's audio and video durations may differ and still be
            aligned without an `align` mode (the audio is fitted to the video); beyond it they are refused.
        chat_template (`str`, *optional*): unused; MMS-LLaMA has no chat template.
    """

    def __init__(
        self,
        feature_extractor,
        video_processor,
        tokenizer,
        prompt: str = DEFAULT_PROMPT,
        speech_token: str = SPEECH_TOKEN,
        max_video_frames: int = 500,
        face_selection: str = "largest",
        align_tolerance_s: float = STREAM_MISMATCH_TOLERANCE_S,
        chat_template=None,
    ):
        self.prompt = prompt
        self.speech_token = speech_token
        self.max_video_frames = max_video_frames
        self.face_selection = face_selection
        self.align_tolerance_s = align_tolerance_s
        self.mouth_roi_extractor = MouthROIExtractor(face_selection=face_selection)
        super().__init__(feature_extractor, video_processor, tokenizer, chat_template=chat_template)
        self.speech_token_id = tokenizer.convert_tokens_to_ids(speech_token)
        if self.speech_token_id is None or self.speech_token_id == tokenizer.unk_token_id:
            raise MMSLlamaInputError(f"The tokenizer has no {speech_token!r} token; add it as a special token first.")

    @classmethod
    def from_config(cls, config: MMSLlamaConfig, tokenizer=None) -> "MMSLlamaProcessor":
        """Builds the processor that matches a model configuration.

        Args:
            config ([`MMSLlamaConfig`]): sets the mel bins, the audio window, the clip limit and the prompt.
            tokenizer (`str`, `os.PathLike` or tokenizer, *optional*): required unless the configuration uses the
                character vocabulary of the small presets. A path is loaded with `AutoTokenizer` (local files only).
        """
        mel_frames = 2 * config.audio_config.max_source_positions
        if (mel_frames * MEL_HOP) % AUDIO_SAMPLING_RATE:
            raise MMSLlamaInputError(
                f"audio_config.max_source_positions={config.audio_config.max_source_positions} gives a "
                f"{mel_frames * MEL_HOP / AUDIO_SAMPLING_RATE} s window; the Whisper feature extractor needs whole seconds."
            )
        feature_extractor = WhisperFeatureExtractor(
            feature_size=config.audio_config.num_mel_bins,
            sampling_rate=AUDIO_SAMPLING_RATE,
            hop_length=MEL_HOP,
            chunk_length=mel_frames * MEL_HOP // AUDIO_SAMPLING_RATE,
        )
        tokenizer = cls._resolve_tokenizer(config, tokenizer)
        return cls(
            feature_extractor,
            MMSLlamaVideoProcessor(),
            tokenizer,
            prompt=config.prompt,
            speech_token=config.speech_token,
            max_video_frames=config.max_video_frames,
        )

    @classmethod
    def for_model(cls, folder: str | os.PathLike, config: MMSLlamaConfig) -> "MMSLlamaProcessor":
        """The processor saved in a model folder, or, where the folder holds none (weights and config only, such as
        the committed demo model), the one `from_config(config)` builds."""
        if os.path.exists(os.path.join(folder, "processor_config.json")):
            return cls.from_pretrained(folder, trust_remote_code=True)
        return cls.from_config(config)

    @classmethod
    def from_preset(cls, name: str, tokenizer=None, **config_overrides) -> "MMSLlamaProcessor":
        """The processor for `MMSLlamaConfig.from_preset(name, **config_overrides)`.

        The `"tiny"` and `"demo"` presets build their character tokenizer offline; the paper presets need `tokenizer`,
        e.g. `MMSLlamaProcessor.from_preset("paper-3b", tokenizer="/models/Llama-3.2-3B")`.
        """
        return cls.from_config(MMSLlamaConfig.from_preset(name, **config_overrides), tokenizer=tokenizer)

    @staticmethod
    def _resolve_tokenizer(config: MMSLlamaConfig, tokenizer):
        if tokenizer is None:
            if config.text_config.vocab_size > MAX_BUILTIN_VOCAB_SIZE:
                raise MMSLlamaInputError(
                    f"This configuration has a {config.text_config.vocab_size}-token vocabulary: pass the matching "
                    "tokenizer, e.g. tokenizer='/path/to/Llama-3.2-3B' (a local folder with tokenizer.json)."
                )
            tokenizer = build_char_tokenizer(config.tokenizer_words)
            if len(tokenizer) > config.text_config.vocab_size:
                raise MMSLlamaInputError(
                    f"The built-in tokenizer has {len(tokenizer)} tokens ({len(config.tokenizer_words)} words), more "
                    f"than text_config.vocab_size={config.text_config.vocab_size}: raise the vocabulary size."
                )
            return tokenizer
        if isinstance(tokenizer, (str, os.PathLike)):
            tokenizer = AutoTokenizer.from_pretrained(tokenizer, local_files_only=True)
        if config.speech_token not in tokenizer.get_vocab():
            tokenizer.add_tokens([AddedToken(config.speech_token, special=True, normalized=False)], special_tokens=True)
        speech_token_id = tokenizer.convert_tokens_to_ids(config.speech_token)
        if speech_token_id != config.speech_token_id:
            raise MMSLlamaInputError(
                f"The tokenizer gives {config.speech_token!r} id {speech_token_id}, but the model expects "
                f"speech_token_id={config.speech_token_id}; use the tokenizer the model was configured for."
            )
        if tokenizer.pad_token is None:
            pad = "<|finetune_right_pad_id|>"
            tokenizer.pad_token = pad if pad in tokenizer.get_vocab() else tokenizer.eos_token
        tokenizer.padding_side = "left"
        return tokenizer

    @property
    def model_input_names(self) -> list[str]:
        return [
            "input_ids",
            "attention_mask",
            "input_features",
            "input_features_mask",
            "pixel_values_videos",
            "video_mask",
        ]

    @property
    def max_samples(self) -> int:
        """Longest audio the model takes, in 16 kHz samples: the clip limit or the Whisper window, the shorter."""
        return min(self.max_video_frames * SAMPLES_PER_VIDEO_FRAME, self.feature_extractor.n_samples)

    def __call__(
        self,
        text: str | list[str] | None = None,
        videos=None,
        audio=None,
        sampling_rate: int | None = None,
        modality: str | None = None,
        speech_rate: float | list[float] | None = None,
        video_is_roi: bool | None = None,
        align: str | None = None,
        align_tolerance_s: float | None = None,
        do_augment: bool = False,
        return_tensors: str = "pt",
        **kwargs,
    ) -> BatchFeature:
        r"""
        Args:
            text (`str` or `list[str]`, *optional*): transcripts, for training: they are appended after the speech
                placeholder with EOS, and `labels` are returned.
            videos (*optional*): one or a list of video file paths (any container; a raw face video, or mouth crops
                no larger than 128 px) or `(T, H, W[, C])` uint8 arrays at 25 fps.
            audio (*optional*): one or a list of audio file paths, waveforms (`np.ndarray`/`torch.Tensor`, mono or
                multi-channel, float or integer PCM) or `{"array": ..., "sampling_rate": ...}` dicts. Left out, a video
                file's own audio track is used.
            sampling_rate (`int`, *optional*): sample rate of waveform arrays (required for them); resampled to 16 kHz.
            modality (`str`, *optional*): `"av"`, `"audio"` or `"video"`: the streams the caller needs; a missing one is
                an error. Left out, the processor uses what each sample's media has and reports each fallback in
                `media_info`; when samples differ, the batch carries both streams with blanks standing in for the
                missing ones, and `has_audio`/`has_video` say which are real.
            speech_rate (`float` or `list[float]`, *optional*): speaking-rate labels, returned as `speech_rate_labels`.
            video_is_roi (`bool`, *optional*): whether video frames are mouth crops already; by default, frames no
                larger than 128x128 are.
            align (`str`, *optional*): how to fit a sample's audio and video together when their durations differ by
                more than `align_tolerance_s`: `"pad"` pads the shorter stream (audio with silence, video by
                repeating its last frame), `"trim"` cuts the longer one. Left out, such a sample is refused; within the
                tolerance the audio is trimmed or zero-padded to the video. The change is noted in `media_info`.
            align_tolerance_s (`float`, *optional*): this call's tolerance in seconds (default: the processor's
                `align_tolerance_s`, 0.2 s).
            do_augment (`bool`): random crop and flip of the mouth crops (training).
            return_tensors (`str`): `"pt"` (default) or `"np"`.

        Returns:
            [`BatchFeature`] with `input_ids`, `attention_mask`, (`labels`), (`input_features`, `input_features_mask`),
            (`pixel_values_videos`, `video_mask`), (`has_audio`, `has_video`: `(B,)` bool, only for a batch whose
            samples carry different streams), (`speech_rate_labels`), and two attributes that are not model inputs:
            `modality` (the batch's modality) and `media_info` (a [`MediaInfo`] per sample). What reading the media
            converted (resampling, down-mixing, integer rescaling) is in each sample's `media_info[i].conversions` and
            said once per call in an [`MMSLlamaConversionWarning`] (a Python warning, so that it can be filtered by
            category; fallbacks go to the Transformers logger).

        Raises:
            [`MMSLlamaInputError`]: bad or unusable input; the message names the file and the problem. Among them:
            a clip shorter than `MIN_CLIP_FRAMES` (0.2 s) or longer than the model takes, and audio and video whose
            durations differ by more than the tolerance without `align`.
        """
        if kwargs:
            raise TypeError(f"MMSLlamaProcessor got unexpected arguments {sorted(kwargs)}.")
        if modality is not None and modality not in MODALITIES:
            raise MMSLlamaInputError(f"modality must be one of {MODALITIES} or None, got {modality!r}.")
        check_align_mode(align)
        align_tolerance_s = self.align_tolerance_s if align_tolerance_s is None else align_tolerance_s
        if not align_tolerance_s >= 0:
            raise MMSLlamaInputError(
                f"align_tolerance_s must be a duration in seconds >= 0, got {align_tolerance_s!r}."
            )
        video_items, audio_items = _as_list(videos), _as_list(audio)
        if not video_items and not audio_items:
            raise MMSLlamaInputError("Give `videos=` and/or `audio=`: there is nothing to transcribe.")
        if video_items and audio_items and len(video_items) != len(audio_items):
            raise MMSLlamaInputError(
                f"Got {len(video_items)} videos and {len(audio_items)} audio inputs; they pair up one to one."
            )
        if modality in ("av", "video") and not video_items:
            raise MMSLlamaInputError(f"modality={modality!r} needs `videos=`.")
        batch_size = max(len(video_items), len(audio_items))
        samples = [
            self._load_sample(
                video_items[i] if video_items else None,
                audio_items[i] if audio_items else None,
                i,
                sampling_rate,
                modality,
                video_is_roi,
            )
            for i in range(batch_size)
        ]
        batch_modality, mixed = self._settle_modality(samples, modality)
        presence = [(sample.audio is not None, sample.frames is not None) for sample in samples]
        for sample in samples:
            self._finish_sample(sample, batch_modality, mixed, align, align_tolerance_s)

        data = self._tokenize(text, batch_size)
        if batch_modality != "video":
            data.update(self._audio_features([sample.audio for sample in samples]))
        if batch_modality != "audio":
            data.update(
                self.video_processor([sample.frames for sample in samples], do_augment=do_augment, return_tensors="pt")
            )
        if mixed:
            data["has_audio"] = torch.tensor([audio for audio, _ in presence])
            data["has_video"] = torch.tensor([video for _, video in presence])
        if speech_rate is not None:
            rates = torch.atleast_1d(torch.as_tensor(speech_rate, dtype=torch.float32))
            if rates.shape != (batch_size,):
                raise MMSLlamaInputError(f"Got {rates.numel()} speech_rate values for {batch_size} samples.")
            data["speech_rate_labels"] = rates

        outputs = BatchFeature(data, tensor_type=return_tensors)
        outputs.modality = batch_modality
        outputs.media_info = [sample.info for sample in samples]
        for index, sample in enumerate(samples):
            if sample.info.fallback:
                logger.warning(f"Sample {index}: {sample.info.fallback}")
        self._warn_about_conversions(outputs.media_info)
        return outputs

    def apply_transcription_request(self, videos=None, audio=None, **kwargs) -> BatchFeature:
        """Inputs asking the model to transcribe `videos` and/or `audio` (the call without transcripts)."""
        return self(videos=videos, audio=audio, **kwargs)

    @staticmethod
    def _warn_about_conversions(media_info: list[MediaInfo]) -> None:
        """One [`MMSLlamaConversionWarning`] per call listing the samples' conversions (none when nothing changed)."""
        groups: dict[tuple[str, ...], list[str]] = {}
        for info in media_info:
            if info.conversions:
                groups.setdefault(tuple(info.conversions), []).append(_sample_name(info))
        if groups:
            summary = " ".join(f"{', '.join(names)}: {'; '.join(changes)}." for changes, names in groups.items())
            warnings.warn(
                f"MMSLlamaProcessor converted the input onto the model's grid (16 kHz mono float audio, 25 fps "
                f"video): {summary} Each sample's conversions are in `inputs.media_info[i].conversions`.",
                MMSLlamaConversionWarning,
                stacklevel=3,
            )

    # -- one sample ---------------------------------------------------------------------------------------------------

    def _load_sample(self, video_item, audio_item, index, sampling_rate, modality, video_is_roi) -> _Sample:
        """One sample: its streams read, the mouth found in a face video, and the missing-stream policy applied."""
        want_video = video_item is not None and modality in (None, "av", "video")
        want_audio = modality in (None, "av", "audio")
        info, problems = MediaInfo(), []
        frames = audio = None
        track_wanted = want_audio and audio_item is None  # the audio comes from the video's own track
        if video_item is not None and (want_video or track_wanted):
            if isinstance(video_item, (str, os.PathLike)):
                frames, audio = self._read_video_file(os.fspath(video_item), want_video, track_wanted, info, problems)
            else:
                if want_video:
                    frames, info.video = self._frames_from_array(video_item, index), f"videos[{index}]"
                if track_wanted:
                    problems.append(("audio", f"videos[{index}]: an array has no audio track; pass `audio=`"))
        if want_audio and audio_item is not None:
            audio, info.audio = self._read_audio(audio_item, index, sampling_rate, info)
        if frames is not None:
            frames = self._mouth_crops(frames, info, video_is_roi, required=modality in ("av", "video"),
                                       problems=problems)  # fmt: skip
        _settle_missing_streams(problems, frames, audio, modality, info)
        return _Sample(frames, audio, info)

    @staticmethod
    def _read_video_file(path: str, want_video: bool, want_track: bool, info: MediaInfo, problems: list):
        """A video file's frames and (with `want_track`) its own audio track; a stream it lacks goes to `problems`."""
        media = read_media(path, video=want_video, audio=want_track)
        info.conversions += media.notes
        info.notes += media.notes
        info.source_fps = media.source_fps
        frames = audio = None
        if want_video:
            if media.frames is None:
                problems.append(("video", f"{path}: has no video stream"))
            else:
                frames, info.video = media.frames, path
        if want_track:
            if media.audio is None:
                problems.append(("audio", f"{path}: has no audio stream"))
            else:
                audio, info.audio = media.audio, path
                info.source_sample_rate, info.source_channels = media.source_sample_rate, media.source_channels
        return frames, audio

    @staticmethod
    def _frames_from_array(video, index) -> np.ndarray:
        if hasattr(video, "detach"):
            video = video.detach().cpu().numpy()
        video = np.asarray(video)
        if video.ndim not in (3, 4) or video.shape[0] == 0:
            raise MMSLlamaInputError(
                f"videos[{index}]: expected (T, H, W) or (T, H, W, C) frames with T > 0, got shape {video.shape}.",
                source=f"videos[{index}]",
            )
        if video.dtype != np.uint8:
            raise MMSLlamaInputError(
                f"videos[{index}]: frames must be uint8 (0-255), got {video.dtype}.", source=f"videos[{index}]"
            )
        return video

    def _read_audio(self, audio_item, index, sampling_rate, info: MediaInfo) -> tuple[np.ndarray, str]:
        if isinstance(audio_item, (str, os.PathLike)):
            path = os.fspath(audio_item)
            media = read_media(path, video=False, audio=True)
            if media.audio is None:
                raise MMSLlamaInputError(f"{path}: has no audio stream.", source=path)
            source = path
        else:
            if isinstance(audio_item, dict):
                audio_item, sampling_rate = audio_item.get("array"), audio_item.get("sampling_rate", sampling_rate)
            source = f"audio[{index}]"
            media = prepare_waveform(audio_item, sampling_rate, source=source)
        info.conversions += media.notes
        info.notes += media.notes
        info.source_sample_rate, info.source_channels = media.source_sample_rate, media.source_channels
        return media.audio, source

    def _mouth_crops(self, frames, info: MediaInfo, video_is_roi, required: bool, problems: list) -> np.ndarray | None:
        is_roi = max(frames.shape[1:3]) <= MAX_ROI_SIDE if video_is_roi is None else video_is_roi
        if is_roi:
            return frames
        gray = frames if frames.ndim == 3 else to_gray(frames)
        try:
            rois = self.mouth_roi_extractor(gray, source=info.video)
        except MMSLlamaInputError as error:
            if required:
                raise
            problems.append(("video", str(error).rstrip(".")))
            info.missing_face_frames = list(error.frames or [])
            info.video = None
            return None
        info.missing_face_frames = rois.missing_frames
        info.notes += rois.notes
        return rois.rois

    @staticmethod
    def _settle_modality(samples: list[_Sample], modality: str | None) -> tuple[str, bool]:
        """The batch's modality, and whether its samples carry different streams (then the batch is `"av"` and
        `has_audio`/`has_video` mark each sample's real streams; the model zeroes the others)."""
        if modality is not None:
            return modality, False
        kinds = {_own_modality(sample) for sample in samples}
        return (kinds.pop(), False) if len(kinds) == 1 else ("av", True)

    def _finish_sample(
        self, sample: _Sample, batch_modality: str, mixed: bool, align: str | None, align_tolerance_s: float
    ) -> None:
        """Keeps the batch's streams, aligns audio to video, checks the length limits and stands in for a missing
        stream in a mixed batch."""
        info = sample.info
        if batch_modality == "audio":
            sample.frames, info.video = None, None
        if batch_modality == "video":
            sample.audio, info.audio = None, None
        info.modality = _own_modality(sample)
        source = info.video or info.audio
        if info.modality == "av":
            sample.frames, sample.audio, note = align_streams(
                sample.frames, sample.audio, _sample_name(info), align=align, tolerance_s=align_tolerance_s
            )
            if note:
                info.notes.append(note)
        info.num_samples = 0 if sample.audio is None else len(sample.audio)
        if sample.frames is not None:
            info.num_frames = len(sample.frames)
        else:
            info.num_frames = -(-len(sample.audio) // SAMPLES_PER_VIDEO_FRAME)
        self._check_duration(info, source)
        if mixed and sample.frames is None:
            sample.frames = np.zeros((info.num_frames, ROI_SIZE, ROI_SIZE), np.uint8)
            info.notes.append("no video: blank frames stand in (has_video=False)")
            sample.audio, note = align_audio_to_frames(sample.audio, info.num_frames)
            if note:
                info.notes.append(note)
            info.num_samples = len(sample.audio)
        if mixed and sample.audio is None:
            sample.audio = np.zeros(info.num_frames * SAMPLES_PER_VIDEO_FRAME, np.float32)
            info.notes.append("no audio: silence stands in (has_audio=False)")

    def _check_duration(self, info: MediaInfo, source: str) -> None:
        """Refuses a clip shorter than `MIN_CLIP_FRAMES` or longer than the model takes."""
        seconds = info.num_frames / VIDEO_FPS if info.modality != "audio" else info.num_samples / AUDIO_SAMPLING_RATE
        if info.num_frames < MIN_CLIP_FRAMES:
            raise MMSLlamaInputError(
                f"{source}: the clip lasts {seconds:.2f} s; the model needs at least "
                f"{MIN_CLIP_FRAMES / VIDEO_FPS:.2f} s ({MIN_CLIP_FRAMES} frames at 25 fps).",
                source=source,
            )
        limit_frames = self.max_samples // SAMPLES_PER_VIDEO_FRAME
        if info.num_frames > limit_frames:
            raise MMSLlamaInputError(
                f"{source}: the clip lasts {seconds:.2f} s ({info.num_frames} frames at 25 fps); "
                f"the model takes at most {limit_frames / VIDEO_FPS:.2f} s ({limit_frames} frames). Cut it into "
                "shorter clips.",
                source=source,
            )

    # -- batch tensors ------------------------------------------------------------------------------------------------

    def _audio_features(self, waveforms: list[np.ndarray]) -> dict:
        features = self.feature_extractor(
            waveforms,
            sampling_rate=AUDIO_SAMPLING_RATE,
            padding="max_length",
            return_attention_mask=True,
            return_tensors="pt",
        )
        return {
            "input_features": features["input_features"].float(),
            "input_features_mask": features["attention_mask"].long(),
        }

    def _tokenize(self, text, batch_size: int) -> dict:
        """BOS + prompt + one speech placeholder (+ transcript + EOS), left-padded; labels when text is given."""
        prompt_ids = self.tokenizer(self.prompt)["input_ids"] + [self.speech_token_id]
        transcripts = _as_list(text)
        if transcripts and len(transcripts) != batch_size:
            raise MMSLlamaInputError(f"Got {len(transcripts)} transcripts for {batch_size} samples.")
        sequences, targets = [], []
        for transcript in transcripts or [None] * batch_size:
            ids, labels = list(prompt_ids), [IGNORE_INDEX] * len(prompt_ids)
            if transcript is not None:
                answer = self.tokenizer(transcript, add_special_tokens=False)["input_ids"] + [
                    self.tokenizer.eos_token_id
                ]
                ids += answer
                labels += answer
            sequences.append(ids)
            targets.append(labels)

        longest = max(len(ids) for ids in sequences)
        pad_id = self.tokenizer.pad_token_id
        data = {
            "input_ids": torch.tensor([[pad_id] * (longest - len(ids)) + ids for ids in sequences]),
            "attention_mask": torch.tensor([[0] * (longest - len(ids)) + [1] * len(ids) for ids in sequences]),
        }
        if transcripts:
            data["labels"] = torch.tensor([[IGNORE_INDEX] * (longest - len(lab)) + lab for lab in targets])
        return data

    # -- decoding -----------------------------------------------------------------------------------------------------

    def batch_decode(self, sequences, skip_special_tokens: bool = True, **kwargs) -> list[str]:
        """Clean transcripts from generated ids: anything up to the speech placeholder (an echoed prompt) and special
        tokens are dropped, whitespace is collapsed."""
        if hasattr(sequences, "tolist"):
            sequences = sequences.tolist()
        texts = []
        for ids in sequences:
            if self.speech_token_id in ids:
                ids = ids[len(ids) - ids[::-1].index(self.speech_token_id) :]
            text = self.tokenizer.decode(ids, skip_special_tokens=skip_special_tokens, **kwargs)
            texts.append(" ".join(text.split()))
        return texts

    def decode(self, ids, skip_special_tokens: bool = True, **kwargs) -> str:
        """The clean transcript of one generated sequence (see [`~MMSLlamaProcessor.batch_decode`])."""
        if hasattr(ids, "tolist"):
            ids = ids.tolist()
        return self.batch_decode([ids], skip_special_tokens=skip_special_tokens, **kwargs)[0]


MMSLlamaProcessor.register_for_auto_class()

__all__ = ["MMSLlamaProcessor", "MediaInfo"]

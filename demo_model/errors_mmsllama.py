"""The exception MMS-LLaMA raises for bad input, and the warning it gives when it converts input."""


class MMSLlamaInputError(ValueError):
    """Bad or unusable input to the MMS-LLaMA processor, media reader, mouth-ROI extractor or model.

    Raised instead of letting a deep torch/PyAV/dlib trace escape. The message always names the
    offending file (or argument) and the problem, e.g. ``"talk.mp4: no audio stream (modality='av' needs
    one; pass modality='video' or leave modality out to fall back)"``.

    Attributes:
        source (`str`, *optional*): the file path or argument name the problem concerns.
        frames (`list[int]`, *optional*): video frame indices concerned (e.g. frames with no face).
    """

    def __init__(self, message: str, *, source: str | None = None, frames: list[int] | None = None):
        super().__init__(message)
        self.source = source
        self.frames = frames


class MMSLlamaConversionWarning(UserWarning):
    """The processor converted its input onto the model's grid (resampled, down-mixed or rescaled audio, resampled
    video), or used float audio far outside [-1, 1] as given. Given once per processor call, summarising every
    sample's conversions; each sample's are also in `inputs.media_info[i].conversions`. Silence it with
    `warnings.filterwarnings("ignore", category=MMSLlamaConversionWarning)`.
    """

"""The one exception class MMS-LLaMA raises for bad input."""


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

"""MMS-LLaMA for Hugging Face Transformers: audio-visual speech recognition with minimal speech tokens."""

from .configuration_mmsllama import PRESETS, MMSLlamaAVHubertConfig, MMSLlamaConfig, MMSLlamaConfigError
from .errors_mmsllama import MMSLlamaConversionWarning, MMSLlamaInputError
from .modeling_avhubert import MMSLlamaAVHubertModel
from .media_mmsllama import read_media
from .modeling_mmsllama import MMSLlamaCausalLMOutputWithPast, MMSLlamaForConditionalGeneration, MMSLlamaModel
from .mouth_roi_mmsllama import DlibFaceLandmarker, FaceLandmarker, MouthROIExtractor
from .processing_mmsllama import MediaInfo, MMSLlamaProcessor
from .tokenization_mmsllama import build_char_tokenizer
from .video_processing_mmsllama import MMSLlamaVideoProcessor


MMSLlamaConfig.register_for_auto_class()
MMSLlamaForConditionalGeneration.register_for_auto_class("AutoModel")


def _register_with_auto_classes() -> None:
    """With the package imported, the Auto classes load MMS-LLaMA folders without `trust_remote_code`, as they do for
    third-party Transformers models (`AutoConfig.register` and friends). `pipeline(...)` still needs either
    `trust_remote_code=True` or `pipeline_class=MMSLlamaASRPipeline`: the folder's config names its custom pipeline."""
    from transformers import AutoConfig, AutoModel, AutoModelForSpeechSeq2Seq, AutoProcessor, AutoVideoProcessor

    AutoConfig.register(MMSLlamaConfig.model_type, MMSLlamaConfig, exist_ok=True)
    AutoConfig.register(MMSLlamaAVHubertConfig.model_type, MMSLlamaAVHubertConfig, exist_ok=True)
    for auto_class in (AutoModel, AutoModelForSpeechSeq2Seq):
        auto_class.register(MMSLlamaConfig, MMSLlamaForConditionalGeneration, exist_ok=True)
    AutoProcessor.register(MMSLlamaConfig, MMSLlamaProcessor, exist_ok=True)
    AutoVideoProcessor.register(MMSLlamaConfig, MMSLlamaVideoProcessor, exist_ok=True)


_register_with_auto_classes()

__all__ = [
    "PRESETS",
    "DlibFaceLandmarker",
    "FaceLandmarker",
    "MediaInfo",
    "MMSLlamaProcessor",
    "MMSLlamaVideoProcessor",
    "MouthROIExtractor",
    "read_media",
    "MMSLlamaAVHubertConfig",
    "MMSLlamaAVHubertModel",
    "MMSLlamaCausalLMOutputWithPast",
    "MMSLlamaConfig",
    "MMSLlamaConfigError",
    "MMSLlamaConversionWarning",
    "MMSLlamaForConditionalGeneration",
    "MMSLlamaInputError",
    "MMSLlamaModel",
    "build_char_tokenizer",
]

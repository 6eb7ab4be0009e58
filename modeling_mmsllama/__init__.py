"""MMS-LLaMA for Hugging Face Transformers: audio-visual speech recognition with minimal speech tokens."""

from .configuration_mmsllama import PRESETS, MMSLlamaAVHubertConfig, MMSLlamaConfig, MMSLlamaConfigError
from .errors_mmsllama import MMSLlamaInputError
from .modeling_avhubert import MMSLlamaAVHubertModel
from .media_mmsllama import read_media
from .modeling_mmsllama import MMSLlamaCausalLMOutputWithPast, MMSLlamaForConditionalGeneration, MMSLlamaModel
from .mouth_roi_mmsllama import DlibFaceLandmarker, FaceLandmarker, MouthROIExtractor
from .processing_mmsllama import MediaInfo, MMSLlamaProcessor
from .tokenization_mmsllama import build_char_tokenizer
from .video_processing_mmsllama import MMSLlamaVideoProcessor


MMSLlamaConfig.register_for_auto_class()
MMSLlamaForConditionalGeneration.register_for_auto_class("AutoModel")

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
    "MMSLlamaForConditionalGeneration",
    "MMSLlamaInputError",
    "MMSLlamaModel",
    "build_char_tokenizer",
]

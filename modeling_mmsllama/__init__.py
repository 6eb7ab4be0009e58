"""MMS-LLaMA for Hugging Face Transformers: audio-visual speech recognition with minimal speech tokens."""

from .configuration_mmsllama import PRESETS, MMSLlamaAVHubertConfig, MMSLlamaConfig, MMSLlamaConfigError
from .errors_mmsllama import MMSLlamaInputError
from .modeling_avhubert import MMSLlamaAVHubertModel
from .modeling_mmsllama import MMSLlamaCausalLMOutputWithPast, MMSLlamaForConditionalGeneration
from .tokenization_mmsllama import build_char_tokenizer


MMSLlamaConfig.register_for_auto_class()
MMSLlamaForConditionalGeneration.register_for_auto_class("AutoModel")

__all__ = [
    "PRESETS",
    "MMSLlamaAVHubertConfig",
    "MMSLlamaAVHubertModel",
    "MMSLlamaCausalLMOutputWithPast",
    "MMSLlamaConfig",
    "MMSLlamaConfigError",
    "MMSLlamaForConditionalGeneration",
    "MMSLlamaInputError",
    "build_char_tokenizer",
]

"""Configuration of MMS-LLaMA (Yeo et al., 2025, arXiv 2503.11315) and of its AV-HuBERT visual encoder."""

import copy

from transformers import AutoConfig, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec

from .errors_mmsllama import MMSLlamaInputError


VIDEO_FPS = 25  # frames per second of the lip video; AV-HuBERT and the allocation formula assume it
AUDIO_SAMPLING_RATE = 16000  # Hz
SAMPLES_PER_VIDEO_FRAME = AUDIO_SAMPLING_RATE // VIDEO_FPS  # 640 samples = 40 ms
ROI_SIZE = 96  # px, side of the mouth crop handed to the video processor (which centre-crops 88)
MODALITIES = ("av", "audio", "video")  # which streams an input carries (a missing one is zeros)
MEL_FRAMES_PER_VIDEO_FRAME = 4  # Whisper log-mel hop is 10 ms
# Shortest clip the model reads, in 25 fps frames (0.2 s): the temporal kernel of AV-HuBERT's 3-D convolution stem;
# a shorter clip is mostly that kernel's zero padding, and shorter than any spoken syllable.
MIN_CLIP_FRAMES = 5
DEFAULT_PROMPT = "Recognize this speech in English. Input : "  # paper-spec section 7, verbatim
SPEECH_TOKEN = "<|speech|>"
SYNTHETIC_GRID = "synthetic-grid"  # `trained_on` of models that know only the synthetic corpus (the demo model)

class MMSLlamaConfigError(MMSLlamaInputError):
    """An invalid MMS-LLaMA configuration: an unknown preset, key or mode, or sizes that do not fit together."""


COMPRESSION_MODES = ("qformer", "fusion_only", "baseline")
AUDIO_WINDOWS = ("full", "utterance")
FUSION_TYPES = ("concat", "add", "cross_attention")
FREEZABLE_MODULES = (
    "audio_encoder",
    "vision_encoder",
    "rate_predictor",
    "audio_adapter",
    "video_adapter",
    "fusion",
    "qformer",
    "projector",
    "language_model",
)


class MMSLlamaAVHubertConfig(PreTrainedConfig):
    r"""
    Configuration of the AV-HuBERT visual encoder used in video-only mode (a 3-D conv stem and ResNet-18 trunk per
    frame, a linear projection, concatenation with zero audio features, and a Transformer encoder). The defaults are
    AV-HuBERT Large (`large_vox_iter5.pt`).

    Args:
        hidden_size (`int`): encoder width (`encoder_embed_dim`).
        num_hidden_layers (`int`): Transformer layers.
        num_attention_heads (`int`): attention heads.
        intermediate_size (`int`): feed-forward width.
        resnet_width (`int`): channels of the 3-D stem; the trunk stages use 1x, 2x, 4x and 8x this.
        resnet_layers (`list[int]`): BasicBlocks per trunk stage (ResNet-18: `[2, 2, 2, 2]`).
        resnet_relu_type (`str`): `"prelu"` or `"relu"`.
        conv_pos (`int`) / conv_pos_groups (`int`): kernel and groups of the convolutional position embedding.
        layer_norm_first (`bool`): pre-LayerNorm Transformer layers (True for Large).
        image_size (`int`): side of the square mouth crop in pixels.
        input_pool (`int`): average-pools the crops by this factor before the stem (1, the default, is AV-HuBERT;
            the demo preset uses 4, 88 -> 22 pixels, so that the visual encoder trains on a CPU).
    """

    model_type = "mmsllama_avhubert"
    base_config_key = "vision_config"

    hidden_size: int = 1024
    num_hidden_layers: int = 24
    num_attention_heads: int = 16
    intermediate_size: int = 4096
    hidden_act: str = "gelu"
    resnet_width: int = 64
    resnet_layers: list[int] | tuple[int, ...] = (2, 2, 2, 2)
    resnet_relu_type: str = "prelu"
    conv_pos: int = 128
    conv_pos_groups: int = 16
    layer_norm_first: bool = True
    dropout: float = 0.0
    attention_dropout: float = 0.0
    activation_dropout: float = 0.0
    layer_norm_eps: float = 1e-5
    image_size: int = 88
    input_pool: int = 1
    initializer_range: float = 0.02

    def __post_init__(self, **kwargs):
        self.resnet_layers = list(self.resnet_layers)
        super().__post_init__(**kwargs)
        if self.hidden_size % self.num_attention_heads:
            raise MMSLlamaConfigError(
                f"vision_config.hidden_size ({self.hidden_size}) must be divisible by num_attention_heads "
                f"({self.num_attention_heads})."
            )


class MMSLlamaConfig(PreTrainedConfig):
    r"""
    Configuration of [`MMSLlamaForConditionalGeneration`].

    Args:
        text_config (`LlamaConfig` or `dict`): the language model.
        audio_config (`WhisperConfig` or `dict`): the Whisper model whose encoder encodes the audio.
        vision_config (`MMSLlamaAVHubertConfig` or `dict`): the AV-HuBERT visual encoder.
        qformer_config (`Blip2QFormerConfig` or `dict`): the AV Q-Former; `encoder_hidden_size` is derived from the
            fusion and need not be set.
        compression (`str`): how speech reaches the LLM. `"qformer"` (the paper: about 3.5 tokens/s),
            `"fusion_only"` (early fusion, convolutions to 12.5 Hz: 12.5 tokens/s) or `"baseline"` (Llama-AVSR style:
            audio and video as two token streams at 12.5 Hz each: 25 tokens/s).
        fusion (`str`): early AV fusion, `"concat"` (the paper), `"add"` or `"cross_attention"` (video queries attend
            to audio, batch-first).
        fusion_num_heads (`int`): heads of the cross-attention fusion.
        queries_per_second (`float`): f_Q of the allocation formula.
        min_queries (`int`): smallest number of queries per sample (the reference uses f_Q).
        max_queries (`int`): size of the learned query bank; defaults to
            `ceil(queries_per_second * max_video_frames / 25 * rate_clamp[1])`.
        rate_clamp (`list[float]`): the predicted speech rate is clamped to this range before allocation.
        use_rate_predictor (`bool`): allocate queries with the speech-rate predictor (else the factor is 1).
        rate_predictor_hidden_size, rate_predictor_layers, rate_predictor_heads, rate_predictor_intermediate_size,
        rate_predictor_conv_pos, rate_predictor_conv_pos_groups: sizes of the speech-rate predictor.
        qformer_window (`float`, *optional*): `None` for global cross-attention (the paper); else query i of N attends
            only to the time-stretched frames within +/- `qformer_window` query slots of its slot centre.
        qformer_position_encoding (`bool`): layer-normalise the stretched fused features and add a fixed sinusoidal
            position code to them.
        qformer_pooled_queries (`bool`): add to each learned query token a linear projection of the average of the
            frames it may attend to (its window's, or all frames under global attention), so the Q-Former starts out
            as a windowed average pooling. Not in the paper (whose presets keep it off); the demo preset uses it: with
            dense encoder features it makes stage 2 learn several times faster (oracle one-hot phonemes,
            `training/diagnostics.py`: 0.42 against 1.47 nats per token after 300 steps), though not with spiky
            CTC-trained ones (the demo's first encoders: 76.4% against 69.8% validation WER after 1,000 steps).
        projector_hidden_size (`int`, *optional*): middle width of the two-Linear projector;
            defaults to `(input + llm_hidden) // 2` as in the reference.
        projector_output_norm (`bool`): end the projector with an RMSNorm whose gain starts at the LLM's embedding
            scale (`text_config.initializer_range`), so speech tokens enter the LLM at the scale of text tokens. For an
            LLM trained from scratch alongside the projector (the demo); the paper's projector has none.
        audio_window (`str`): `"full"` runs the Whisper encoder on its whole window for every clip (the paper: 30 s);
            `"utterance"` encodes only each clip's own frames, rounded up to `audio_window_bucket` seconds (cheaper;
            Whisper then sees less trailing silence than it was trained with).
        audio_window_bucket (`float`): bucket size in seconds for `audio_window="utterance"`.
        max_video_frames (`int`): longest accepted clip, in 25 fps frames (500 = 20 s).
        prompt (`str`): the instruction placed before the speech embeddings.
        tokenizer_words (`list[str]`): for the built-in tokenizer of the small presets (no tokenizer folder): words
            that get one token each; others are spelled in characters. Empty: characters only.
        speech_token (`str`) / speech_token_id (`int`): the placeholder the model expands into speech embeddings.
        frozen_modules (`list[str]`): modules whose parameters are frozen at construction.
        trained_on (`str`, *optional*): what the weights were trained on, where that limits their use.
            `"synthetic-grid"` marks a model trained only on this project's synthetic GRID-style corpus (the demo
            model): its model card says so, and the pipeline warns once when it is given a real face video.
        no_speech_logprob (`float`, *optional*): mean token log-probability below which the pipeline takes a clip's
            transcript for a guess and marks the clip as holding no speech. It depends on the model: measure it with
            `benchmarks/no_speech.py` (docs/no_speech.md). `None`: only the streams' activity decides.
    """

    model_type = "mmsllama"
    sub_configs_defaults = {
        "text_config": SubConfigSpec(config_class=AutoConfig, model_type="llama"),
        "audio_config": SubConfigSpec(config_class=AutoConfig, model_type="whisper"),
        "vision_config": MMSLlamaAVHubertConfig,
        "qformer_config": SubConfigSpec(config_class=AutoConfig, model_type="blip_2_qformer"),
    }

    text_config: dict | PreTrainedConfig | None = None
    audio_config: dict | PreTrainedConfig | None = None
    vision_config: dict | PreTrainedConfig | None = None
    qformer_config: dict | PreTrainedConfig | None = None
    compression: str = "qformer"
    fusion: str = "concat"
    fusion_num_heads: int = 8
    queries_per_second: float = 3.0
    min_queries: int | None = None
    max_queries: int | None = None
    rate_clamp: list[float] | tuple[float, float] = (1.0, 2.0)
    use_rate_predictor: bool = True
    rate_predictor_hidden_size: int = 256
    rate_predictor_layers: int = 2
    rate_predictor_heads: int = 4
    rate_predictor_intermediate_size: int = 1024
    rate_predictor_conv_pos: int = 128
    rate_predictor_conv_pos_groups: int = 16
    qformer_window: float | None = None
    qformer_position_encoding: bool = False
    qformer_pooled_queries: bool = False
    projector_hidden_size: int | None = None
    projector_output_norm: bool = False
    audio_window: str = "full"
    audio_window_bucket: float = 2.0
    max_video_frames: int = 500
    prompt: str = DEFAULT_PROMPT
    tokenizer_words: list[str] | tuple[str, ...] = ()
    speech_token: str = SPEECH_TOKEN
    speech_token_id: int = 128256
    frozen_modules: list[str] | tuple[str, ...] = ("audio_encoder", "vision_encoder", "rate_predictor")
    trained_on: str | None = None
    no_speech_logprob: float | None = None
    initializer_range: float = 0.02
    use_cache: bool = True
    tie_word_embeddings: bool = False

    def __post_init__(self, **kwargs):
        self.rate_clamp = [float(v) for v in self.rate_clamp]
        self.frozen_modules = list(self.frozen_modules)
        self.tokenizer_words = list(self.tokenizer_words)
        super().__post_init__(**kwargs)
        self._validate()
        if self.min_queries is None:
            self.min_queries = max(1, int(self.queries_per_second))
        if self.max_queries is None:
            self.max_queries = -(-int(self.queries_per_second * self.max_video_frames * self.rate_clamp[1]) // VIDEO_FPS)
        self.qformer_config.encoder_hidden_size = self.fused_hidden_size

    def _validate(self):
        if self.compression not in COMPRESSION_MODES:
            raise MMSLlamaConfigError(f"compression={self.compression!r} is not one of {COMPRESSION_MODES}.")
        if self.fusion not in FUSION_TYPES:
            raise MMSLlamaConfigError(f"fusion={self.fusion!r} is not one of {FUSION_TYPES}.")
        if self.fusion != "concat" and self.audio_config.d_model != self.vision_config.hidden_size:
            raise MMSLlamaConfigError(
                f"fusion={self.fusion!r} needs equal audio and video widths, got audio_config.d_model="
                f"{self.audio_config.d_model} and vision_config.hidden_size={self.vision_config.hidden_size}; "
                "use fusion='concat' or make them equal."
            )
        if self.audio_window not in AUDIO_WINDOWS:
            raise MMSLlamaConfigError(f"audio_window={self.audio_window!r} is not one of {AUDIO_WINDOWS}.")
        if self.audio_window_bucket <= 0:
            raise MMSLlamaConfigError(f"audio_window_bucket must be positive seconds, got {self.audio_window_bucket}.")
        low, high = self.rate_clamp
        if not 0 < low <= high:
            raise MMSLlamaConfigError(f"rate_clamp must be [low, high] with 0 < low <= high, got {self.rate_clamp}.")
        if self.queries_per_second <= 0:
            raise MMSLlamaConfigError(f"queries_per_second must be positive, got {self.queries_per_second}.")
        if self.qformer_window is not None and self.qformer_window <= 0:
            raise MMSLlamaConfigError(f"qformer_window must be positive or None, got {self.qformer_window}.")
        unknown = sorted(set(self.frozen_modules) - set(FREEZABLE_MODULES))
        if unknown:
            raise MMSLlamaConfigError(f"frozen_modules has unknown names {unknown}; choose from {FREEZABLE_MODULES}.")
        max_mel_frames = 2 * self.audio_config.max_source_positions
        if self.max_video_frames * MEL_FRAMES_PER_VIDEO_FRAME > max_mel_frames:
            raise MMSLlamaConfigError(
                f"max_video_frames={self.max_video_frames} ({self.max_video_frames / VIDEO_FPS:.1f} s) is longer than "
                f"the Whisper window ({max_mel_frames / 100:.1f} s = 2 * audio_config.max_source_positions mel frames)."
            )

    @property
    def fused_hidden_size(self) -> int:
        """Width of the early-fused AV features (the Q-Former's cross-attention input)."""
        if self.fusion == "concat":
            return self.audio_config.d_model + self.vision_config.hidden_size
        return self.audio_config.d_model

    @property
    def num_mel_frames(self) -> int:
        """Length of the Whisper log-mel input (100 frames per second)."""
        return 2 * self.audio_config.max_source_positions

    @classmethod
    def from_preset(cls, name: str, **overrides) -> "MMSLlamaConfig":
        """Builds a preset configuration: "tiny" (tests), "demo" (trains on a CPU), "paper-1b", "paper-3b", "paper-8b".

        Keyword overrides set top-level fields (`compression="baseline"`) or update sub-configs when given a dict
        (`text_config={"num_hidden_layers": 4}`). Unknown names raise an error.
        """
        if name not in PRESETS:
            raise MMSLlamaConfigError(f"Unknown preset {name!r}; choose from {sorted(PRESETS)}.")
        fields = copy.deepcopy(PRESETS[name])
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise MMSLlamaConfigError(f"Unknown config keys {unknown} for MMSLlamaConfig.")
        for key, value in overrides.items():
            if key in cls.sub_configs_defaults and isinstance(value, dict) and isinstance(fields.get(key), dict):
                fields[key] = {**fields[key], **value}
            else:
                fields[key] = value
        return cls(**fields)


def _whisper(d_model, layers, heads, ffn, max_source_positions, num_mel_bins=80):
    """An encoder-side Whisper config; the decoder is never built, so its sizes are kept minimal."""
    return {
        "model_type": "whisper",
        "d_model": d_model,
        "encoder_layers": layers,
        "encoder_attention_heads": heads,
        "encoder_ffn_dim": ffn,
        "decoder_layers": 1,
        "decoder_attention_heads": heads,
        "decoder_ffn_dim": ffn,
        "num_mel_bins": num_mel_bins,
        "max_source_positions": max_source_positions,
        "vocab_size": 51864,
    }


def _llama(hidden, layers, heads, kv_heads, ffn, vocab, bos, eos, pad, rope_theta=500000.0, tie=False, **extra):
    return {
        "model_type": "llama",
        "hidden_size": hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads,
        "intermediate_size": ffn,
        "vocab_size": vocab,
        "bos_token_id": bos,
        "eos_token_id": eos,
        "pad_token_id": pad,
        "rms_norm_eps": 1e-5,
        "max_position_embeddings": 131072,
        "rope_parameters": {"rope_type": "default", "rope_theta": rope_theta},
        "tie_word_embeddings": tie,
        **extra,
    }


def _qformer(hidden, layers, heads, ffn):
    return {
        "model_type": "blip_2_qformer",
        "hidden_size": hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "intermediate_size": ffn,
        "cross_attention_frequency": 1,
    }


# Llama-3 special tokens: 128000 <|begin_of_text|>, 128001 <|end_of_text|>, 128004 <|finetune_right_pad_id|>.
# The speech placeholder is appended after the 128,256-token vocabulary; its embedding is never looked up.
_LLAMA3 = {"vocab": 128256, "bos": 128000, "eos": 128001, "pad": 128004}
_LLAMA32_ROPE = {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 32.0, "low_freq_factor": 1.0,
                 "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}  # fmt: skip
_AVHUBERT_LARGE = {"model_type": "mmsllama_avhubert"}
_WHISPER_MEDIUM = _whisper(1024, 24, 16, 4096, 1500)
_PAPER_QFORMER = _qformer(1024, 2, 16, 4096)


def _paper(llama: dict) -> dict:
    return {
        "text_config": llama,
        "audio_config": _WHISPER_MEDIUM,
        "vision_config": _AVHUBERT_LARGE,
        "qformer_config": _PAPER_QFORMER,
        "speech_token_id": _LLAMA3["vocab"],
        "frozen_modules": ["audio_encoder", "vision_encoder", "rate_predictor"],
    }


def _llama32(hidden, layers, heads, ffn, tie):
    llama = _llama(hidden, layers, heads, 8, ffn, _LLAMA3["vocab"], _LLAMA3["bos"], _LLAMA3["eos"], _LLAMA3["pad"], tie=tie)
    llama["rope_parameters"] = dict(_LLAMA32_ROPE)
    llama["head_dim"] = hidden // heads
    return llama


# Character tokenizer ids (tokenization_mmsllama.py): pad 0, bos 1, eos 2, speech placeholder 3; 128 rows.
_CHAR = {"vocab": 128, "bos": 1, "eos": 2, "pad": 0, "speech": 3}
# The demo's built-in tokenizer gives each word of the synthetic GRID corpus (processing/synth/grammar.py) one token,
# as Llama's BPE does for such common words: 5 special + 81 characters + 81 continuations + 26 words (the 25
# letters are characters already) = 183 tokens.
GRID_WORDS = (
    "again at bin blue by eight five four green in lay nine now one place please red set seven six soon three two "
    "white with zero"
).split() + list("abcdefghijklmnopqrstuvxyz")
_WORDS_VOCAB = 256

PRESETS: dict[str, dict] = {
    "tiny": {
        "text_config": _llama(32, 2, 4, 2, 64, _CHAR["vocab"], _CHAR["bos"], _CHAR["eos"], _CHAR["pad"], rope_theta=10000.0),
        "audio_config": _whisper(32, 2, 4, 64, 250, num_mel_bins=80),
        "vision_config": {
            "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 64,
            "resnet_width": 4, "resnet_layers": [1, 1, 1, 1], "conv_pos": 16, "conv_pos_groups": 4,
        },  # fmt: skip
        "qformer_config": _qformer(32, 2, 4, 64),
        "rate_predictor_hidden_size": 16,
        "rate_predictor_heads": 2,
        "rate_predictor_intermediate_size": 32,
        "rate_predictor_conv_pos": 8,
        "rate_predictor_conv_pos_groups": 4,
        "max_video_frames": 125,
        "speech_token_id": _CHAR["speech"],
    },
    "demo": {
        "text_config": _llama(256, 3, 4, 4, 768, _WORDS_VOCAB, _CHAR["bos"], _CHAR["eos"], _CHAR["pad"], rope_theta=10000.0),
        "tokenizer_words": GRID_WORDS,
        "audio_config": _whisper(192, 3, 4, 768, 500, num_mel_bins=80),
        "vision_config": {
            "hidden_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 512,
            "resnet_width": 16, "resnet_layers": [1, 1, 1, 1], "conv_pos": 32, "conv_pos_groups": 8, "input_pool": 4,
        },  # fmt: skip
        "qformer_config": _qformer(192, 2, 4, 768),
        "rate_predictor_hidden_size": 64,
        "rate_predictor_heads": 4,
        "rate_predictor_intermediate_size": 256,
        "rate_predictor_conv_pos": 32,
        "rate_predictor_conv_pos_groups": 8,
        "qformer_window": 1.5,
        "qformer_position_encoding": True,
        "qformer_pooled_queries": True,
        "audio_window": "utterance",  # the demo recipe encodes only each clip's frames (demo-recipe.md)
        "max_video_frames": 250,
        "speech_token_id": _CHAR["speech"],
        "frozen_modules": ["audio_encoder", "vision_encoder", "rate_predictor"],
    },
    # Llama-3.2-1B / 3B and Llama-3.1-8B with Whisper-medium.en and AV-HuBERT Large (paper-spec sections 3, 6, 7).
    "paper-1b": _paper(_llama32(2048, 16, 32, 8192, tie=True)),
    "paper-3b": _paper(_llama32(3072, 28, 24, 8192, tie=True)),
    "paper-8b": _paper(
        {
            **_llama(4096, 32, 32, 8, 14336, _LLAMA3["vocab"], _LLAMA3["bos"], _LLAMA3["eos"], _LLAMA3["pad"]),
            "rope_parameters": {**_LLAMA32_ROPE, "factor": 8.0},
        }
    ),
}


__all__ = ["MMSLlamaConfig", "MMSLlamaAVHubertConfig", "MMSLlamaConfigError", "PRESETS"]

"""MMS-LLaMA: audio-visual speech recognition with minimal multimodal speech tokens (Yeo et al., 2025).

Audio (Whisper encoder, 50 Hz) and lip video (AV-HuBERT, 25 Hz) are encoded, aligned to 25 Hz and fused early; a
speech-rate predictor decides how many learned queries each utterance gets (about 3.5 per second); an AV Q-Former
compresses the fused features into that many tokens; a projector maps them into a Llama model's embedding space,
where they replace the prompt's speech placeholder. Two ablations from the paper run on the same code:
`compression="fusion_only"` (12.5 tokens/s) and `compression="baseline"` (Llama-AVSR style, 25 tokens/s).
"""

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoModelForCausalLM, GenerationMixin, PreTrainedModel
from transformers import initialization as init
from transformers.cache_utils import Cache
from transformers.generation.utils import GenerateOutput
from transformers.models.blip_2.modeling_blip_2 import Blip2QFormerModel
from transformers.models.llama.modeling_llama import LlamaRMSNorm
from transformers.models.whisper.modeling_whisper import WhisperEncoder
from transformers.utils import ModelOutput, logging

from .configuration_mmsllama import MEL_FRAMES_PER_VIDEO_FRAME, VIDEO_FPS, MMSLlamaConfig
from .errors_mmsllama import MMSLlamaInputError
from .modeling_avhubert import AVHubertTransformerEncoder, MMSLlamaAVHubertModel, init_positional_conv


logger = logging.get_logger(__name__)

WHISPER_FRAMES_PER_VIDEO_FRAME = 2  # Whisper encoder output is 50 Hz, video 25 Hz
RATE_PREDICTOR_INITIAL_RATE = 1.0  # normalised speech rate, 1 = the corpus average
RATE_PREDICTOR_STRIDE = 4  # the rate predictor reads every 4th Whisper frame (12.5 Hz)
ALLOCATION_EPSILON = 1e-6  # keeps floor(3 * 75 / 25) at 9 when float arithmetic gives 8.999999
DEFAULT_MAX_NEW_TOKENS = 100
AUTO_MODEL_CLASSES = ("AutoModel", "AutoModelForSpeechSeq2Seq", "AutoModelForMultimodalLM")
MODULE_NAME = "modeling_mmsllama"  # the file's name on the Hub, however this package is imported  # the reference decodes with max_new_tokens=100


@dataclass
class MMSLlamaCausalLMOutputWithPast(ModelOutput):
    r"""
    loss (`torch.FloatTensor`, *optional*): `lm_loss` plus `rate_loss` when both exist.
    logits (`torch.FloatTensor` of shape `(batch_size, sequence_length, vocab_size)`): language-model logits over the
        expanded sequence (prompt, speech tokens, transcript).
    lm_loss (`torch.FloatTensor`, *optional*): transcript cross-entropy.
    rate_loss (`torch.FloatTensor`, *optional*): MSE of the speech-rate predictor against `speech_rate_labels`.
    speech_rate (`torch.FloatTensor` of shape `(batch_size,)`, *optional*): the rate used for query allocation.
    num_speech_tokens (`torch.LongTensor` of shape `(batch_size,)`): speech tokens each sample fed the LLM.
    attention_mask (`torch.LongTensor`): attention mask of the expanded sequence.
    modality (`str`): `"av"`, `"audio"` or `"video"`: which streams the input carried (a missing one is zeros).
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    cache: Cache | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None
    lm_loss: torch.FloatTensor | None = None
    rate_loss: torch.FloatTensor | None = None
    speech_rate: torch.FloatTensor | None = None
    num_speech_tokens: torch.LongTensor | None = None
    attention_mask: torch.LongTensor | None = None
    modality: str | None = None


@dataclass
class MMSLlamaSpeechEmbeddings(ModelOutput):
    r"""
    embeddings (`torch.FloatTensor` of shape `(batch_size, max_tokens, llm_hidden_size)`): projected speech tokens.
    mask (`torch.BoolTensor` of shape `(batch_size, max_tokens)`): True on each sample's real speech tokens.
    num_speech_tokens (`torch.LongTensor` of shape `(batch_size,)`).
    speech_rate (`torch.FloatTensor` of shape `(batch_size,)`, *optional*): the rate used for allocation.
    predicted_rate (`torch.FloatTensor` of shape `(batch_size,)`, *optional*): the predictor's raw output.
    modality (`str`).
    """

    embeddings: torch.FloatTensor | None = None
    mask: torch.BoolTensor | None = None
    num_speech_tokens: torch.LongTensor | None = None
    speech_rate: torch.FloatTensor | None = None
    predicted_rate: torch.FloatTensor | None = None
    modality: str | None = None


# ----------------------------------------------------------------------------------------------------------------------
# Building blocks


class MMSLlamaFusion(nn.Module):
    """Early AV fusion of frame-aligned audio (B, T, Da) and video (B, T, Dv) features."""

    def __init__(self, config: MMSLlamaConfig):
        super().__init__()
        self.fusion = config.fusion
        if self.fusion == "cross_attention":
            dim = config.audio_config.d_model
            self.attention_1 = nn.MultiheadAttention(dim, config.fusion_num_heads, batch_first=True)
            self.layer_norm = nn.LayerNorm(dim)
            self.attention_2 = nn.MultiheadAttention(dim, config.fusion_num_heads, batch_first=True)

    def forward(self, audio: torch.Tensor, video: torch.Tensor, frame_mask: torch.Tensor) -> torch.Tensor:
        if self.fusion == "concat":
            return torch.cat([audio, video], dim=-1)
        if self.fusion == "add":
            return audio + video
        # video frames query the audio frames: x = LN(MHA1(v, a, a) + a); out = MHA2(v, a, a) + x
        padding = ~frame_mask
        hidden = self.layer_norm(self.attention_1(video, audio, audio, key_padding_mask=padding)[0] + audio)
        return self.attention_2(video, audio, audio, key_padding_mask=padding)[0] + hidden


class MMSLlamaSpeechRatePredictor(nn.Module):
    """Predicts the normalised speech rate from Whisper features at 12.5 Hz (paper-spec section 5).

    Linear to the predictor width, a learned rate token in front, a small wav2vec 2.0-style Transformer with a
    convolutional position embedding, and ReLU(Linear) on the rate token. Unlike the reference, padded frames are
    masked, so a sample's prediction does not depend on the other samples of its batch.
    """

    def __init__(self, config: MMSLlamaConfig):
        super().__init__()
        hidden = config.rate_predictor_hidden_size
        self.linear = nn.Linear(config.audio_config.d_model, hidden)
        self.rate_token = nn.Parameter(torch.zeros(1, 1, hidden))
        self.encoder = AVHubertTransformerEncoder(
            hidden, config.rate_predictor_layers, config.rate_predictor_heads,
            config.rate_predictor_intermediate_size, config.rate_predictor_conv_pos,
            config.rate_predictor_conv_pos_groups, layer_norm_first=True,
        )  # fmt: skip
        self.head = nn.Linear(hidden, 1)

    def forward(self, audio_features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # audio_features: (B, L, Da) at 12.5 Hz; mask: (B, L) True on real frames -> (B,) rates
        hidden = self.linear(audio_features)
        hidden = torch.cat([self.rate_token.expand(hidden.shape[0], -1, -1).to(hidden.dtype), hidden], dim=1)
        mask = F.pad(mask, (1, 0), value=True)
        hidden = self.encoder(hidden, mask)
        return F.relu(self.head(hidden[:, 0])).squeeze(-1)


def sinusoidal_position_code(length: int, dim: int, device, dtype) -> torch.Tensor:
    """Fixed sin/cos code of shape (length, dim), as in "Attention Is All You Need"."""
    position = torch.arange(length, device=device, dtype=torch.float32)[:, None]
    inverse_frequency = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(1e4) / dim))
    code = torch.zeros(length, dim, device=device, dtype=torch.float32)
    code[:, 0::2] = torch.sin(position * inverse_frequency)
    code[:, 1::2] = torch.cos(position * inverse_frequency)[:, : dim // 2]
    return code.to(dtype)


class MMSLlamaQueryAllocator:
    """The paper's rate-adaptive query allocation (no parameters): a clip of T frames at 25 fps with speech rate r gets

        N = max(floor(f_Q * T / 25 * clamp(r, low, high)), min_queries)   (at most `max_queries`)

    queries, and its fused features are time-stretched to floor(clamp(r, low, high) * T) frames before the Q-Former
    reads them, so that fast speech is spread over more frames and more queries. r = 1 without a rate or with the rate
    predictor off. Reads `config` when called, so a changed config takes effect at once.
    """

    def __init__(self, config: MMSLlamaConfig):
        self.config = config

    def rate_factor(self, speech_rate, shape, max_rate=None) -> torch.Tensor:
        """clamp(r, low, high) per sample (float64, CPU); `max_rate` replaces the upper clamp when given."""
        if speech_rate is None or not self.config.use_rate_predictor:
            return torch.ones(shape, dtype=torch.float64)
        low, high = self.config.rate_clamp
        if max_rate is not None:
            if max_rate < low:
                raise MMSLlamaInputError(f"max_rate must be at least the lower rate clamp {low}, got {max_rate}.")
            high = float(max_rate)
        rate = torch.as_tensor(speech_rate, dtype=torch.float64).detach().reshape(-1).cpu()
        return torch.clamp(rate, low, high).expand(shape)

    def num_queries(self, num_frames, speech_rate=None, queries_per_second=None, max_rate=None) -> torch.LongTensor:
        """N per sample (B,), on the CPU; `queries_per_second` replaces the config's f_Q for this call."""
        num_frames = torch.as_tensor(num_frames, dtype=torch.long).reshape(-1).cpu()
        if queries_per_second is None:
            queries_per_second = self.config.queries_per_second
        elif queries_per_second <= 0:
            raise MMSLlamaInputError(f"queries_per_second must be positive, got {queries_per_second}.")
        factor = self.rate_factor(speech_rate, num_frames.shape, max_rate)
        queries = torch.floor(queries_per_second * num_frames * factor / VIDEO_FPS + ALLOCATION_EPSILON)
        return torch.clamp(queries.long(), min=self.config.min_queries, max=self.config.max_queries)

    def stretched_frames(self, num_frames, speech_rate=None, max_rate=None) -> torch.LongTensor:
        """floor(clamp(r) * T) per sample (B,), at least one frame, on the CPU."""
        num_frames = torch.as_tensor(num_frames, dtype=torch.long).reshape(-1).cpu()
        factor = self.rate_factor(speech_rate, num_frames.shape, max_rate)
        return torch.floor(factor * num_frames + ALLOCATION_EPSILON).long().clamp(min=1)


def time_stretch(features: torch.Tensor, num_frames: torch.Tensor, new_num_frames: torch.Tensor) -> torch.Tensor:
    """Linearly resamples each sample's first num_frames[i] frames to new_num_frames[i] frames, zero-padded.

    features: (B, T, F) -> (B, max(new_num_frames), F). Samples whose length does not change are copied as they are.
    """
    batch, _, dim = features.shape
    stretched = features.new_zeros(batch, int(new_num_frames.max()), dim)
    for i in range(batch):
        frames, new_frames = int(num_frames[i]), int(new_num_frames[i])
        sample = features[i, :frames]
        if new_frames != frames:
            sample = F.interpolate(sample.T[None], size=new_frames, mode="linear", align_corners=False)[0].T
        stretched[i, :new_frames] = sample
    return stretched


def window_attention_mask(num_queries, num_frames, max_queries: int, max_frames: int, window: float | None):
    """Which stretched frames each query may attend to: (B, max_queries, max_frames) bool.

    Global (window None): every real frame. Windowed: query i of N sees the frames whose centre lies within
    `window` query slots of its own slot centre (one slot = num_frames / N frames; at least the nearest frame).
    Padded queries see every real frame, so no attention row is empty.
    """
    device = num_queries.device
    frame_index = torch.arange(max_frames, device=device)
    real_frames = frame_index[None, :] < num_frames[:, None]  # (B, L)
    mask = real_frames[:, None, :].expand(-1, max_queries, -1)
    if window is None:
        return mask
    slot = (num_frames / num_queries)[:, None, None].float()  # frames per query, (B, 1, 1)
    query_centre = (torch.arange(max_queries, device=device)[None, :, None] + 0.5) * slot
    distance = (frame_index[None, None, :] + 0.5 - query_centre).abs()
    in_window = distance <= torch.clamp(window * slot, min=0.5)
    real_queries = torch.arange(max_queries, device=device)[None, :, None] < num_queries[:, None, None]
    return mask & (in_window | ~real_queries)


class MMSLlamaQFormer(nn.Module):
    """The AV Q-Former with its bank of learned queries; sample i uses the first N_i queries."""

    def __init__(self, config: MMSLlamaConfig):
        super().__init__()
        self.query_tokens = nn.Parameter(torch.zeros(1, config.max_queries, config.qformer_config.hidden_size))
        self.bert = Blip2QFormerModel(config.qformer_config)  # named as the reference's `Qformer.bert`
        self.window = config.qformer_window
        self.position_encoding = config.qformer_position_encoding
        # eval-mode shortcut through the Blip-2 Q-Former's modules (`_lean_bert`); False runs `Blip2QFormerModel`
        self.lean_inference = True
        self.pool_projection = None
        if config.qformer_pooled_queries:
            qformer = config.qformer_config
            self.pool_projection = nn.Linear(qformer.encoder_hidden_size, qformer.hidden_size)

    def forward(self, features: torch.Tensor, num_frames: torch.Tensor, num_queries: torch.Tensor) -> torch.Tensor:
        # features: (B, L, F) stretched fused features, zero-padded; num_frames, num_queries: (B,)
        max_queries, max_frames = int(num_queries.max()), features.shape[1]
        if self.position_encoding:
            # the code has a fixed scale, so the features are layer-normalised first: unnormalised, small features
            # (e.g. a freshly initialised adapter's) were swamped by it and the Q-Former output carried no speech
            code = sinusoidal_position_code(max_frames, features.shape[-1], features.device, features.dtype)
            features = F.layer_norm(features, features.shape[-1:]) + code
        allowed = window_attention_mask(num_queries, num_frames, max_queries, max_frames, self.window)  # (B, N, L)
        queries = self.query_tokens[:, :max_queries].expand(features.shape[0], -1, -1)
        if self.pool_projection is not None:
            visible = allowed.to(features.dtype)
            queries = queries + self.pool_projection((visible @ features) / visible.sum(-1, keepdim=True))
        query_mask = torch.arange(max_queries, device=features.device)[None, :] < num_queries[:, None]
        dtype = self.bert.layernorm.weight.dtype
        cross_mask = torch.zeros(allowed.shape, dtype=dtype, device=features.device)
        cross_mask = cross_mask.masked_fill(~allowed, torch.finfo(dtype).min)[:, None]  # (B, 1, N, L), additive
        if self._can_run_lean():
            return self._lean_bert(queries, query_mask, features, cross_mask)
        output = self.bert(
            query_embeds=queries,
            attention_mask=query_mask.long(),
            encoder_hidden_states=features,
            encoder_attention_mask=cross_mask,
        )
        return output.last_hidden_state  # (B, N, Hq)

    def _can_run_lean(self) -> bool:
        """The shortcut computes what `Blip2QFormerModel` computes in eval mode with sdpa attention; anything that
        reads its internals (hooks on it) gets the model itself."""
        bert = self.bert
        hooked = bert._forward_hooks or bert._forward_pre_hooks
        return self.lean_inference and not self.training and bert.config._attn_implementation == "sdpa" and not hooked

    def _lean_bert(self, queries, query_mask, features, cross_mask) -> torch.Tensor:
        """`Blip2QFormerModel.forward` in eval mode with sdpa attention, operation for operation on the same modules,
        without its per-call framework work (output capturing, mask building, kwargs plumbing, chunking), which cost
        about as much as the arithmetic at the demo's sizes. Same masks as it builds: none for self-attention when
        every query is real, else a boolean key mask; the additive window mask for cross-attention."""
        bert = self.bert
        hidden = bert.layernorm(queries.to(bert.layernorm.weight.dtype))  # its dropout is off in eval mode
        features = features.to(hidden.dtype)
        num_queries = hidden.shape[1]
        self_mask = None
        if not bool(query_mask.all()):
            self_mask = query_mask[:, None, None, :].expand(-1, 1, num_queries, -1)
        for layer in bert.encoder.layer:
            hidden = _qformer_attention(layer.attention, hidden, hidden, self_mask)
            if layer.has_cross_attention:
                hidden = _qformer_attention(layer.crossattention, hidden, features, cross_mask)
            output = layer.output_query
            hidden = output.LayerNorm(output.dense(layer.intermediate_query(hidden)) + hidden)
        return hidden  # (B, N, Hq)


def _qformer_attention(block, hidden: torch.Tensor, states: torch.Tensor, mask) -> torch.Tensor:
    """A Blip-2 Q-Former attention block (`Blip2QFormerAttention`: attention + dense + residual LayerNorm) in eval mode
    with sdpa, as `sdpa_attention_forward` computes it: hidden (B, N, H) attends to states (B, L, *)."""
    attention, output = block.attention, block.output
    batch, length, head_dim = hidden.shape[0], hidden.shape[1], attention.attention_head_size
    query = attention.query(hidden).view(batch, length, -1, head_dim).transpose(1, 2)
    key = attention.key(states).view(batch, states.shape[1], -1, head_dim).transpose(1, 2)
    value = attention.value(states).view(batch, states.shape[1], -1, head_dim).transpose(1, 2)
    context = F.scaled_dot_product_attention(query, key, value, attn_mask=mask, scale=attention.scaling)
    context = context.transpose(1, 2).reshape(batch, length, -1)
    return output.LayerNorm(output.dense(context) + hidden)


class MMSLlamaProjectorNorm(LlamaRMSNorm):
    """The projector's optional output RMSNorm; its gain starts at the LLM's embedding scale (see `_init_weights`)."""


class MMSLlamaProjector(nn.Module):
    """Two Linear layers with no activation between them, as in the reference (paper-spec section 7); optionally an
    RMSNorm after them (`config.projector_output_norm`)."""

    def __init__(self, in_features: int, hidden_features: int, out_features: int, output_norm: bool = False,
                 norm_eps: float = 1e-5):  # fmt: skip
        super().__init__()
        self.linear_1 = nn.Linear(in_features, hidden_features)
        self.linear_2 = nn.Linear(hidden_features, out_features)
        self.norm = MMSLlamaProjectorNorm(out_features, eps=norm_eps) if output_norm else None

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        hidden_states = self.linear_2(self.linear_1(hidden_states))
        return self.norm(hidden_states) if self.norm is not None else hidden_states


def speech_rate_loss(predicted_rate: torch.Tensor, speech_rate_labels: torch.Tensor) -> torch.Tensor:
    """The rate predictor's training loss: MSE against the normalised rate labels (B,), in float32."""
    return F.mse_loss(predicted_rate.float(), speech_rate_labels.float())


# ----------------------------------------------------------------------------------------------------------------------


class MMSLlamaPreTrainedModel(PreTrainedModel):
    config: MMSLlamaConfig
    base_model_prefix = "mmsllama"
    main_input_name = "input_ids"
    input_modalities = ("audio", "video", "text")
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _supports_flash_attn = False  # the Blip-2 Q-Former does not support it
    _no_split_modules = ["AVHubertEncoderLayer"]
    _skip_keys_device_placement = ["past_key_values"]

    def save_pretrained(self, save_directory, *args, **kwargs):
        """Saves as `PreTrainedModel.save_pretrained`, mapping AutoModel, AutoModelForSpeechSeq2Seq and
        AutoModelForMultimodalLM to this class in `config.auto_map` so each loads it with `trust_remote_code=True`."""
        auto_map = dict(getattr(self.config, "auto_map", None) or {})
        for auto_class in AUTO_MODEL_CLASSES:
            auto_map.setdefault(auto_class, f"{MODULE_NAME}.{type(self).__name__}")
        self.config.auto_map = auto_map
        return super().save_pretrained(save_directory, *args, **kwargs)

    @torch.no_grad()
    def _init_weights(self, module):
        std = self.config.initializer_range
        if isinstance(module, MMSLlamaQFormer):
            init.normal_(module.query_tokens, mean=0.0, std=std)
        elif isinstance(module, MMSLlamaProjectorNorm):
            init.constant_(module.weight, self.config.text_config.initializer_range)  # the text embeddings' scale
        elif isinstance(module, MMSLlamaSpeechRatePredictor):
            init.xavier_uniform_(module.rate_token)
            # start at the mean normalised rate: a head that starts negative for every input has a dead ReLU and
            # never trains (this happened on the tiny preset)
            init.constant_(module.head.bias, RATE_PREDICTOR_INITIAL_RATE)
        elif isinstance(module, AVHubertTransformerEncoder):
            init_positional_conv(module.pos_conv[0])
        elif isinstance(module, nn.Conv1d) and hasattr(module, "parametrizations"):
            return  # initialised with its encoder above
        elif isinstance(module, nn.PReLU):
            init.constant_(module.weight, 0.25)
        else:
            super()._init_weights(module)


class MMSLlamaModel(MMSLlamaPreTrainedModel):
    """The speech side of MMS-LLaMA, Figure 1 below the LLM: the Whisper and AV-HuBERT encoders, the length adapter,
    early fusion, the speech-rate predictor with the query allocation, the AV Q-Former and the projector. Its
    `forward` (`get_speech_embeddings`) returns the speech tokens in the LLM's embedding space
    (`MMSLlamaSpeechEmbeddings`). `MMSLlamaForConditionalGeneration` is this model plus the Llama; both name their
    parameters alike (`audio_encoder.*`, `qformer.*`, ...).

    Example:
    ```python
    >>> config = MMSLlamaConfig.from_preset("tiny")
    >>> model = MMSLlamaModel(config)
    >>> model.num_speech_tokens([50, 100])  # two and four seconds of video at 25 fps
    tensor([ 6, 12])
    ```
    """

    def __init__(self, config: MMSLlamaConfig):
        super().__init__(config)
        self._build_speech_path(config)
        self.post_init()
        self.freeze(config.frozen_modules)

    def _build_speech_path(self, config: MMSLlamaConfig) -> None:
        """Encoders, adapters, fusion, rate predictor, Q-Former and projector(s) of `config.compression`."""
        audio_dim, video_dim = config.audio_config.d_model, config.vision_config.hidden_size
        llm_dim = config.text_config.hidden_size
        self.audio_encoder = WhisperEncoder(config.audio_config)
        self.vision_encoder = MMSLlamaAVHubertModel(config.vision_config)
        if config.compression == "qformer":
            # length adapter: 50 Hz -> 25 Hz
            self.audio_adapter = nn.Conv1d(audio_dim, audio_dim, kernel_size=2, stride=2)
            self.fusion = MMSLlamaFusion(config)
            if config.use_rate_predictor:
                self.rate_predictor = MMSLlamaSpeechRatePredictor(config)
            self.query_allocator = MMSLlamaQueryAllocator(config)
            self.qformer = MMSLlamaQFormer(config)
            projector_in = config.qformer_config.hidden_size
        else:
            # 50 Hz -> 12.5 Hz audio and 25 Hz -> 12.5 Hz video
            self.audio_adapter = nn.Conv1d(audio_dim, audio_dim, kernel_size=4, stride=4)
            self.video_adapter = nn.Conv1d(video_dim, video_dim, kernel_size=2, stride=2)
            if config.compression == "fusion_only":
                self.fusion = MMSLlamaFusion(config)
                projector_in = config.fused_hidden_size
            else:
                projector_in = audio_dim
                self.video_projector = self._build_projector(video_dim, llm_dim)
        self.projector = self._build_projector(projector_in, llm_dim)

    def _build_projector(self, in_features: int, out_features: int) -> MMSLlamaProjector:
        hidden = self.config.projector_hidden_size or (in_features + out_features) // 2
        output_norm = self.config.projector_output_norm
        return MMSLlamaProjector(in_features, hidden, out_features, output_norm, self.config.text_config.rms_norm_eps)

    # -- housekeeping ---------------------------------------------------------------------------------------------------

    def freeze(self, module_names) -> None:
        """Freezes the named top-level modules (e.g. `["audio_encoder", "vision_encoder"]`); others keep their state."""
        for name in module_names:
            module = getattr(self, name, None)
            if module is not None:
                module.requires_grad_(False)
                module.eval()

    def _frozen(self, module: nn.Module) -> bool:
        return not any(parameter.requires_grad for parameter in module.parameters())

    @classmethod
    def from_pretrained(cls, *args, **kwargs):
        """As `PreTrainedModel.from_pretrained`; then freezes `config.frozen_modules` again (loading rebuilds the
        parameters, which drops their `requires_grad` flags)."""
        loaded = super().from_pretrained(*args, **kwargs)
        model = loaded[0] if isinstance(loaded, tuple) else loaded
        model.freeze(model.config.frozen_modules)
        return loaded

    def train(self, mode: bool = True):
        """As `nn.Module.train`, but frozen encoders and the frozen rate predictor stay in eval mode, so their
        BatchNorm statistics and dropout do not change while the rest trains (the reference let them drift)."""
        super().train(mode)
        for name in ("audio_encoder", "vision_encoder", "rate_predictor"):
            module = getattr(self, name, None)
            if module is not None and self._frozen(module):
                module.eval()
        return self

    # -- token budget ---------------------------------------------------------------------------------------------------

    def num_speech_tokens(self, num_frames, speech_rate=None, queries_per_second=None, max_rate=None) -> torch.LongTensor:
        """Speech tokens fed to the LLM per sample for clips of `num_frames` video frames at 25 fps.

        `qformer`: N = max(floor(f_Q * T / 25 * clamp(r, low, high)), min_queries), where r is `speech_rate` (the rate
        predictor's output, or a rate you choose) and r = 1 when it is not given or the predictor is off; f_Q is
        `queries_per_second` and high is `max_rate` when given (a token budget for this call), else the config's.
        `fusion_only`: floor(T / 2) (12.5 tokens/s). `baseline`: 2 * floor(T / 2) (25 tokens/s). At least one token.
        """
        if self.config.compression == "qformer":
            return self.query_allocator.num_queries(num_frames, speech_rate, queries_per_second, max_rate)
        num_frames = torch.as_tensor(num_frames, dtype=torch.long).reshape(-1)
        if self.config.compression == "fusion_only":
            return torch.clamp(num_frames // 2, min=1)
        return 2 * torch.clamp(num_frames // 2, min=1)  # baseline

    # -- input checks ---------------------------------------------------------------------------------------------------

    @staticmethod
    def _check_batch_sizes(**tensors) -> None:
        batch_sizes = {name: tensor.shape[0] for name, tensor in tensors.items() if tensor is not None}
        if len(set(batch_sizes.values())) > 1:
            raise MMSLlamaInputError(f"Mismatched batch sizes: {batch_sizes}. Every input needs the same batch size.")

    def _check_media(self, input_features, input_features_mask, pixel_values_videos, video_mask) -> None:
        if input_features is None and pixel_values_videos is None:
            raise MMSLlamaInputError("Give input_features (audio), pixel_values_videos (video) or both; got neither.")
        self._check_batch_sizes(input_features=input_features, input_features_mask=input_features_mask,
                                pixel_values_videos=pixel_values_videos, video_mask=video_mask)  # fmt: skip
        if input_features is not None:
            self._check_audio(input_features, input_features_mask)
        if pixel_values_videos is not None:
            self._check_video(pixel_values_videos, video_mask)
        elif input_features_mask is None:
            raise MMSLlamaInputError(
                "Audio-only input needs input_features_mask (1 on mel frames holding audio) to know each clip's "
                "length; MMSLlamaProcessor returns it."
            )

    def _check_audio(self, input_features, input_features_mask) -> None:
        expected = (self.config.audio_config.num_mel_bins, self.config.num_mel_frames)
        if input_features.ndim != 3 or tuple(input_features.shape[1:]) != expected:
            raise MMSLlamaInputError(
                f"input_features must have shape (batch, {expected[0]}, {expected[1]}) (log-mel, padded to the "
                f"{expected[1] / 100:.0f} s Whisper window), got {tuple(input_features.shape)}."
            )
        if not input_features.is_floating_point():
            raise MMSLlamaInputError(f"input_features must be floating point, got dtype {input_features.dtype}.")
        if input_features_mask is not None and tuple(input_features_mask.shape) != (len(input_features), expected[1]):
            raise MMSLlamaInputError(
                f"input_features_mask must have shape (batch, {expected[1]}), got {tuple(input_features_mask.shape)}."
            )

    def _check_video(self, pixel_values_videos, video_mask) -> None:
        size = self.config.vision_config.image_size
        if pixel_values_videos.ndim != 5 or tuple(pixel_values_videos.shape[2:]) != (1, size, size):
            raise MMSLlamaInputError(
                f"pixel_values_videos must have shape (batch, frames, 1, {size}, {size}) (gray mouth crops), "
                f"got {tuple(pixel_values_videos.shape)}."
            )
        if not pixel_values_videos.is_floating_point():
            raise MMSLlamaInputError(
                f"pixel_values_videos must be normalised floats, got dtype {pixel_values_videos.dtype}; "
                "use MMSLlamaProcessor to prepare videos."
            )
        num_frames = pixel_values_videos.shape[1]
        if num_frames > self.config.max_video_frames:
            raise MMSLlamaInputError(
                f"The video has {num_frames} frames ({num_frames / VIDEO_FPS:.1f} s); this model accepts at most "
                f"{self.config.max_video_frames} ({self.config.max_video_frames / VIDEO_FPS:.1f} s). Split it into "
                "shorter clips."
            )
        if video_mask is not None and tuple(video_mask.shape) != tuple(pixel_values_videos.shape[:2]):
            raise MMSLlamaInputError(
                f"video_mask must have shape (batch, frames) = {tuple(pixel_values_videos.shape[:2])}, "
                f"got {tuple(video_mask.shape)}."
            )

    def count_frames(self, input_features_mask=None, pixel_values_videos=None, video_mask=None) -> torch.LongTensor:
        """Each clip's length in 25 fps frames (B,): from the video mask, else from the audio's mel frames."""
        if pixel_values_videos is not None:
            if video_mask is None:
                return torch.full((len(pixel_values_videos),), pixel_values_videos.shape[1], device=pixel_values_videos.device)
            num_frames = video_mask.long().sum(-1)
        else:
            mel_frames = input_features_mask.long().sum(-1)
            num_frames = torch.clamp(-(-mel_frames // MEL_FRAMES_PER_VIDEO_FRAME), max=self.config.max_video_frames)
        if (num_frames == 0).any():
            raise MMSLlamaInputError(f"Empty clip in the batch (frames per sample: {num_frames.tolist()}).")
        return num_frames

    # -- speech path ----------------------------------------------------------------------------------------------------

    def _encode(self, module: nn.Module, *args) -> torch.Tensor:
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self._frozen(module)):
            return module(*args).last_hidden_state

    def get_speech_embeddings(
        self,
        input_features: torch.FloatTensor | None = None,
        input_features_mask: torch.Tensor | None = None,
        pixel_values_videos: torch.FloatTensor | None = None,
        video_mask: torch.Tensor | None = None,
        speech_rate: torch.Tensor | None = None,
        has_audio: torch.Tensor | None = None,
        has_video: torch.Tensor | None = None,
        queries_per_second: float | None = None,
        max_rate: float | None = None,
    ) -> MMSLlamaSpeechEmbeddings:
        """Encodes, fuses and compresses the speech of a batch into LLM-space tokens (see `MMSLlamaSpeechEmbeddings`).

        `speech_rate` (B,), when given, replaces the rate predictor's output in the query allocation.
        `queries_per_second` / `max_rate`, when given, replace the config's f_Q / upper rate clamp for this call (a
        token budget; see `num_speech_tokens`).
        `has_audio` / `has_video` (B,) bool, when given, zero the encoded stream of the samples where they are False
        (per-sample modality dropout in training; such samples allocate queries with rate 1).
        """
        self._check_media(input_features, input_features_mask, pixel_values_videos, video_mask)
        num_frames = self.count_frames(input_features_mask, pixel_values_videos, video_mask)
        max_frames = int(pixel_values_videos.shape[1]) if pixel_values_videos is not None else int(num_frames.max())
        frame_mask = torch.arange(max_frames, device=num_frames.device)[None, :] < num_frames[:, None]
        modality = "av" if input_features is not None and pixel_values_videos is not None else (
            "audio" if input_features is not None else "video"
        )  # fmt: skip
        audio, video = self._encode_streams(input_features, pixel_values_videos, video_mask, num_frames, frame_mask)
        if has_audio is not None:
            audio = audio * has_audio.to(audio.dtype)[:, None, None]
        if has_video is not None:
            video = video * has_video.to(video.dtype)[:, None, None]

        predicted_rate = None
        if self.config.compression == "qformer" and self.config.use_rate_predictor and input_features is not None:
            predicted_rate = self.predict_speech_rate(audio, num_frames)
        rate = predicted_rate.detach() if speech_rate is None and predicted_rate is not None else speech_rate
        if rate is not None and has_audio is not None:
            rate = torch.where(has_audio.bool(), rate, torch.ones_like(rate))
        if self.config.compression == "qformer":
            speech = self._compress_with_qformer(audio, video, num_frames, frame_mask, rate, queries_per_second, max_rate)
        else:
            speech = self._compress_with_convolutions(audio, video, num_frames)
        speech.speech_rate, speech.predicted_rate, speech.modality = rate, predicted_rate, modality
        return speech

    def _encode_streams(self, input_features, pixel_values_videos, video_mask, num_frames, frame_mask):
        """Both encoders' outputs, a missing stream as zeros: audio (B, 2T, Da) at 50 Hz, video (B, T, Dv) at 25 Hz."""
        batch, max_frames = frame_mask.shape
        if input_features is not None:
            audio = self.encode_audio(input_features, num_frames)[:, : WHISPER_FRAMES_PER_VIDEO_FRAME * max_frames]
        else:
            audio = frame_mask.new_zeros(
                batch, WHISPER_FRAMES_PER_VIDEO_FRAME * max_frames, self.config.audio_config.d_model, dtype=self.dtype
            )
        if pixel_values_videos is not None:
            video = self.encode_video(pixel_values_videos, frame_mask if video_mask is None else video_mask)
        else:
            video = audio.new_zeros(batch, max_frames, self.config.vision_config.hidden_size)
        return audio, video

    def encode_audio(self, input_features: torch.Tensor, num_frames: torch.Tensor) -> torch.Tensor:
        """The Whisper encoder on log-mels (B, n_mels, 2 * max_source_positions) of clips `num_frames` (B,) video
        frames long: (B, L, Da) at 50 Hz, L = max_source_positions for the full window, else the longest clip's
        bucketed window. No gradient flows when the encoder is frozen."""
        if self.config.audio_window == "full":
            return self._encode(self.audio_encoder, input_features)
        # each clip is encoded on its own bucketed prefix, so its features do not depend on the rest of the batch
        bucket = 2 * round(self.config.audio_window_bucket * 100 / 2)  # mel frames, even for Whisper's stride-2 conv
        mel_frames = num_frames.cpu() * MEL_FRAMES_PER_VIDEO_FRAME
        window = torch.clamp(-(-mel_frames // bucket) * bucket, max=self.config.num_mel_frames)
        encoded = None
        for length in window.unique().tolist():
            rows = (window == length).nonzero().squeeze(-1).to(input_features.device)
            with torch.set_grad_enabled(torch.is_grad_enabled() and not self._frozen(self.audio_encoder)):
                hidden = self._encode_whisper_prefix(input_features[rows, :, :length])
            if encoded is None:
                encoded = hidden.new_zeros(len(input_features), int(window.max()) // 2, hidden.shape[-1])
            encoded[rows, : hidden.shape[1]] = hidden
        return encoded

    def _encode_whisper_prefix(self, input_features: torch.Tensor) -> torch.Tensor:
        """The Whisper encoder on a mel prefix shorter than its window (its forward accepts only the full window)."""
        encoder = self.audio_encoder
        hidden = F.gelu(encoder.conv2(F.gelu(encoder.conv1(input_features)))).transpose(1, 2)  # (B, L/2, Da)
        hidden = hidden + encoder.embed_positions.weight[: hidden.shape[1]]
        for layer in encoder.layers:
            hidden = layer(hidden, None)
        return encoder.layer_norm(hidden)

    def encode_video(self, pixel_values_videos: torch.Tensor, video_mask: torch.Tensor) -> torch.Tensor:
        """AV-HuBERT on gray mouth crops (B, T, 1, H, W) with `video_mask` (B, T) True on real frames: (B, T, Dv) at
        25 Hz. No gradient flows when the encoder is frozen."""
        return self._encode(self.vision_encoder, pixel_values_videos.to(self.dtype), video_mask.bool())

    def predict_speech_rate(self, audio: torch.Tensor, num_frames: torch.Tensor) -> torch.Tensor:
        """The normalised speech rate (B,) from `encode_audio`'s output (B, L, Da) of clips `num_frames` (B,) long.
        No gradient flows when the predictor is frozen."""
        features = audio[:, ::RATE_PREDICTOR_STRIDE]  # (B, ceil(2T / 4), Da) at 12.5 Hz
        lengths = -(-WHISPER_FRAMES_PER_VIDEO_FRAME * num_frames // RATE_PREDICTOR_STRIDE)
        mask = torch.arange(features.shape[1], device=features.device)[None, :] < lengths[:, None]
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self._frozen(self.rate_predictor)):
            return self.rate_predictor(features, mask)

    def _compress_with_qformer(self, audio, video, num_frames, frame_mask, rate, queries_per_second=None,
                               max_rate=None) -> MMSLlamaSpeechEmbeddings:  # fmt: skip
        audio = self.audio_adapter(audio.transpose(1, 2)).transpose(1, 2)  # (B, T, Da) at 25 Hz
        fused = self.fusion(audio, video, frame_mask)  # (B, T, F)
        allocator = self.query_allocator
        num_queries = allocator.num_queries(num_frames, rate, queries_per_second, max_rate).to(num_frames.device)
        stretched_frames = allocator.stretched_frames(num_frames, rate, max_rate).to(num_frames.device)
        fused = time_stretch(fused, num_frames, stretched_frames)  # (B, max int(f * T), F)
        queries = self.qformer(fused, stretched_frames, num_queries)  # (B, max N, Hq)
        embeddings = self.projector(queries.to(self.projector.linear_1.weight.dtype))
        mask = torch.arange(embeddings.shape[1], device=embeddings.device)[None, :] < num_queries[:, None]
        return MMSLlamaSpeechEmbeddings(embeddings=embeddings, mask=mask, num_speech_tokens=num_queries)

    def _compress_with_convolutions(self, audio, video, num_frames) -> MMSLlamaSpeechEmbeddings:
        if video.shape[1] % 2:  # an odd last frame is padded so that both streams reach 12.5 Hz with the same length
            video = F.pad(video, (0, 0, 0, 1))
            audio = F.pad(audio, (0, 0, 0, WHISPER_FRAMES_PER_VIDEO_FRAME))
        audio = self.audio_adapter(audio.transpose(1, 2)).transpose(1, 2)  # (B, T / 2, Da) at 12.5 Hz
        video = self.video_adapter(video.transpose(1, 2)).transpose(1, 2)  # (B, T / 2, Dv) at 12.5 Hz
        num_tokens = self.num_speech_tokens(num_frames.cpu()).to(num_frames.device)
        steps = torch.arange(audio.shape[1], device=audio.device)[None, :]
        if self.config.compression == "fusion_only":
            mask = steps < num_tokens[:, None]
            embeddings = self.projector(self.fusion(audio, video, mask))
        else:  # baseline: the audio tokens, then the video tokens, of each sample
            mask = steps < (num_tokens // 2)[:, None]
            embeddings = torch.cat([self.projector(audio), self.video_projector(video)], dim=1)
            mask = torch.cat([mask, mask], dim=1)
        return MMSLlamaSpeechEmbeddings(embeddings=embeddings, mask=mask, num_speech_tokens=num_tokens)

    def forward(self, *args, **kwargs) -> MMSLlamaSpeechEmbeddings:
        """`get_speech_embeddings`."""
        return self.get_speech_embeddings(*args, **kwargs)


class MMSLlamaForConditionalGeneration(MMSLlamaModel, GenerationMixin):
    """MMS-LLaMA: `MMSLlamaModel` (encoders, early fusion, rate-driven query allocation, AV Q-Former, projector) and
    a Llama LLM whose prompt's speech placeholder the speech tokens replace.

    Example:
    ```python
    >>> config = MMSLlamaConfig.from_preset("tiny")
    >>> model = MMSLlamaForConditionalGeneration(config)
    >>> model.num_speech_tokens([50, 100])  # two and four seconds of video at 25 fps
    tensor([ 6, 12])
    ```
    """

    def __init__(self, config: MMSLlamaConfig):
        MMSLlamaPreTrainedModel.__init__(self, config)  # one initialisation, after the LLM is built too
        self._build_speech_path(config)
        self.language_model = AutoModelForCausalLM.from_config(config.text_config)
        self.post_init()
        self.freeze(config.frozen_modules)

    # -- housekeeping ---------------------------------------------------------------------------------------------------

    def get_input_embeddings(self):
        return self.language_model.get_input_embeddings()

    def set_input_embeddings(self, value):
        self.language_model.set_input_embeddings(value)

    def get_output_embeddings(self):
        return self.language_model.get_output_embeddings()

    # -- prompt checks --------------------------------------------------------------------------------------------------

    def _check_text(self, input_ids, attention_mask, labels, input_features, pixel_values_videos) -> None:
        """The prompt (see `_check_prompt`), its mask and labels, and their batch size against the media's (whose own
        shapes `get_speech_embeddings` checks)."""
        self._check_batch_sizes(input_ids=input_ids, attention_mask=attention_mask, labels=labels,
                                input_features=input_features, pixel_values_videos=pixel_values_videos)  # fmt: skip
        self._check_prompt(input_ids)
        for name, other in (("attention_mask", attention_mask), ("labels", labels)):
            if other is not None and other.shape != input_ids.shape:
                raise MMSLlamaInputError(f"{name} has shape {tuple(other.shape)}, input_ids {tuple(input_ids.shape)}.")

    def _check_prompt(self, input_ids: torch.Tensor) -> None:
        if input_ids.dtype not in (torch.long, torch.int, torch.int32):
            raise MMSLlamaInputError(f"input_ids must hold integer token ids, got dtype {input_ids.dtype}.")
        counts = (input_ids == self.config.speech_token_id).sum(-1)
        if (counts != 1).any():
            raise MMSLlamaInputError(
                f"Each row of input_ids needs exactly one speech placeholder {self.config.speech_token!r} "
                f"(id {self.config.speech_token_id}); found counts {counts.tolist()}. Build prompts with "
                "MMSLlamaProcessor."
            )

    # -- sequence building ----------------------------------------------------------------------------------------------

    def merge_speech_embeddings(self, input_ids, attention_mask, labels, speech: MMSLlamaSpeechEmbeddings):
        """Replaces each row's placeholder with its speech tokens; rows are left-padded to a common length.

        Returns inputs_embeds (B, L', D), attention_mask (B, L'), position_ids (B, L') and labels (B, L') or None,
        where L' = L - 1 + max N_i. Speech and padding positions get label -100.
        """
        pad_id = self.config.text_config.pad_token_id or 0
        is_placeholder = input_ids == self.config.speech_token_id
        text_embeds = self.get_input_embeddings()(input_ids.masked_fill(is_placeholder, pad_id))
        pad_embed = self.get_input_embeddings()(torch.tensor([pad_id], device=input_ids.device))
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        placeholder = is_placeholder.long().argmax(-1)
        num_tokens = speech.mask.sum(-1)
        longest = int(num_tokens.max())
        rows_embeds, rows_mask, rows_labels = [], [], []
        for i in range(len(input_ids)):
            p, n = int(placeholder[i]), int(num_tokens[i])
            tokens = speech.embeddings[i][speech.mask[i]].to(text_embeds.dtype)  # (N_i, D)
            rows_embeds.append(
                torch.cat([pad_embed.expand(longest - n, -1), text_embeds[i, :p], tokens, text_embeds[i, p + 1 :]])
            )
            pad, ones = attention_mask.new_zeros(longest - n), attention_mask.new_ones(n)
            rows_mask.append(torch.cat([pad, attention_mask[i, :p], ones, attention_mask[i, p + 1 :]]))
            if labels is not None:
                ignore = labels.new_full((longest,), -100)
                rows_labels.append(torch.cat([ignore[: longest - n], labels[i, :p], ignore[:n], labels[i, p + 1 :]]))
        attention_mask = torch.stack(rows_mask)
        position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
        labels = torch.stack(rows_labels) if labels is not None else None
        return torch.stack(rows_embeds), attention_mask, position_ids, labels

    def _build_llm_inputs(self, caller: str, input_ids, attention_mask, labels, media: dict,
                          speech_embeddings: MMSLlamaSpeechEmbeddings | None = None):  # fmt: skip
        """The opening `forward` and `generate` share: checks the prompt, encodes the media (`media`: keyword
        arguments of `get_speech_embeddings`) unless `speech_embeddings` are given, and merges the speech tokens into
        the prompt. Returns (speech, inputs_embeds, attention_mask, position_ids, labels)."""
        if input_ids is None:
            raise MMSLlamaInputError(f"{caller}() needs input_ids: the prompt with its speech placeholder.")
        if speech_embeddings is None:
            self._check_text(input_ids, attention_mask, labels, media["input_features"], media["pixel_values_videos"])
            speech = self.get_speech_embeddings(**media)
        else:
            self._check_text(input_ids, attention_mask, labels, None, None)
            if len(speech_embeddings.embeddings) != len(input_ids):
                raise MMSLlamaInputError(
                    f"speech_embeddings hold {len(speech_embeddings.embeddings)} clips for {len(input_ids)} prompts."
                )
            speech = speech_embeddings
        return speech, *self.merge_speech_embeddings(input_ids, attention_mask, labels, speech)

    # -- forward and generate -------------------------------------------------------------------------------------------

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        input_features: torch.FloatTensor | None = None,
        input_features_mask: torch.Tensor | None = None,
        pixel_values_videos: torch.FloatTensor | None = None,
        video_mask: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        speech_rate: torch.FloatTensor | None = None,
        speech_rate_labels: torch.FloatTensor | None = None,
        has_audio: torch.BoolTensor | None = None,
        has_video: torch.BoolTensor | None = None,
        use_cache: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        **kwargs,
    ) -> MMSLlamaCausalLMOutputWithPast:
        r"""
        input_ids (`torch.LongTensor` of shape `(batch_size, sequence_length)`):
            BOS + prompt + one speech placeholder per row (+ transcript + EOS when training), as the processor builds.
        input_features (`torch.FloatTensor` of shape `(batch_size, num_mel_bins, 2 * max_source_positions)`):
            Whisper log-mel features of the audio, padded to the Whisper window.
        input_features_mask (`torch.Tensor` of shape `(batch_size, 2 * max_source_positions)`, *optional*):
            1 on mel frames that hold audio; needed when there is no video.
        pixel_values_videos (`torch.FloatTensor` of shape `(batch_size, num_frames, 1, 88, 88)`):
            Normalised gray mouth crops at 25 fps, zero-padded.
        video_mask (`torch.BoolTensor` of shape `(batch_size, num_frames)`): True on real frames.
        labels (`torch.LongTensor` of shape `(batch_size, sequence_length)`): -100 except on the transcript and EOS.
        speech_rate (`torch.FloatTensor` of shape `(batch_size,)`, *optional*): a rate to allocate queries with, in
            place of the rate predictor's output.
        speech_rate_labels (`torch.FloatTensor` of shape `(batch_size,)`, *optional*): target normalised speech rates;
            adds the rate predictor's MSE to the loss when the predictor is trainable.
        has_audio, has_video (`torch.BoolTensor` of shape `(batch_size,)`, *optional*): per-sample stream presence;
            a False entry zeroes that sample's encoded stream (modality dropout).
        """
        media = {"input_features": input_features, "input_features_mask": input_features_mask,
                 "pixel_values_videos": pixel_values_videos, "video_mask": video_mask, "speech_rate": speech_rate,
                 "has_audio": has_audio, "has_video": has_video}  # fmt: skip
        speech, inputs_embeds, attention_mask, position_ids, labels = self._build_llm_inputs(
            "forward", input_ids, attention_mask, labels, media
        )
        use_cache = use_cache if use_cache is not None else self.config.use_cache
        outputs = self.language_model(
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            position_ids=position_ids,
            labels=labels,
            use_cache=use_cache,
            logits_to_keep=logits_to_keep,
            **kwargs,
        )
        rate_loss = None
        if speech_rate_labels is not None and speech.predicted_rate is not None and not self._frozen(self.rate_predictor):
            rate_loss = speech_rate_loss(speech.predicted_rate, speech_rate_labels)
        losses = [loss for loss in (outputs.loss, rate_loss) if loss is not None]
        return MMSLlamaCausalLMOutputWithPast(
            loss=sum(losses) if losses else None,
            logits=outputs.logits,
            cache=outputs.cache,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
            lm_loss=outputs.loss,
            rate_loss=rate_loss,
            speech_rate=speech.speech_rate,
            num_speech_tokens=speech.num_speech_tokens,
            attention_mask=attention_mask,
            modality=speech.modality,
        )

    @torch.no_grad()
    def generate(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        input_features: torch.FloatTensor | None = None,
        input_features_mask: torch.Tensor | None = None,
        pixel_values_videos: torch.FloatTensor | None = None,
        video_mask: torch.Tensor | None = None,
        speech_rate: torch.FloatTensor | None = None,
        has_audio: torch.BoolTensor | None = None,
        has_video: torch.BoolTensor | None = None,
        speech_embeddings: MMSLlamaSpeechEmbeddings | None = None,
        queries_per_second: float | None = None,
        max_rate: float | None = None,
        **generate_kwargs,
    ) -> torch.LongTensor | GenerateOutput:
        """Transcribes: builds the prompt + speech embeddings once and hands them to the language model's `generate`.

        Takes the inputs of `forward` (without labels) and any generation option (`num_beams`, `do_sample`,
        `max_new_tokens`, ...); or, instead of the media, `speech_embeddings` that `get_speech_embeddings` returned
        (to read their token counts and rates without encoding twice). `queries_per_second` / `max_rate` set this
        call's token budget (see `num_speech_tokens`). Returns only the generated token ids (the prompt is not
        repeated), ready for `processor.batch_decode(ids, skip_special_tokens=True)`; with
        `return_dict_in_generate=True` the language model's output, whose `sequences` are those ids (with
        `output_scores=True`, [`~MMSLlamaForConditionalGeneration.transcript_logprobs`] reads its confidence).
        """
        media = {"input_features": input_features, "input_features_mask": input_features_mask,
                 "pixel_values_videos": pixel_values_videos, "video_mask": video_mask, "speech_rate": speech_rate,
                 "has_audio": has_audio, "has_video": has_video, "queries_per_second": queries_per_second,
                 "max_rate": max_rate}  # fmt: skip
        _, inputs_embeds, attention_mask, _, _ = self._build_llm_inputs(
            "generate", input_ids, attention_mask, None, media, speech_embeddings
        )
        text_config = self.config.text_config
        generate_kwargs.setdefault("eos_token_id", text_config.eos_token_id)
        generate_kwargs.setdefault("pad_token_id", text_config.pad_token_id)
        generate_kwargs.setdefault("bos_token_id", text_config.bos_token_id)
        if "max_new_tokens" not in generate_kwargs and "max_length" not in generate_kwargs:
            generate_kwargs["max_new_tokens"] = DEFAULT_MAX_NEW_TOKENS
        return self.language_model.generate(inputs_embeds=inputs_embeds, attention_mask=attention_mask, **generate_kwargs)

    def transcript_logprobs(self, outputs: GenerateOutput) -> torch.FloatTensor:
        """Each transcript's mean token log-probability (B,): near 0 where the model is sure, lower where it guesses.

        Args:
            outputs: what `generate(..., return_dict_in_generate=True, output_scores=True)` returns, greedy, sampled
                or beam search. Tokens after a transcript's first end-of-sequence token (padding) are not counted.
        """
        beam_indices = getattr(outputs, "beam_indices", None)
        # greedy and sampling keep the processed logits, beam search the log-probabilities it ranked by
        scores = self.compute_transition_scores(
            outputs.sequences, outputs.scores, beam_indices, normalize_logits=beam_indices is None
        )
        tokens = outputs.sequences[:, -scores.shape[1] :]
        eos = torch.as_tensor(self.config.text_config.eos_token_id, device=tokens.device).reshape(-1)
        is_eos = torch.isin(tokens, eos).long()
        counted = (is_eos.cumsum(-1) - is_eos) == 0  # up to and including the first end of sequence
        return (scores * counted).sum(-1) / counted.sum(-1).clamp(min=1)


__all__ = ["MMSLlamaForConditionalGeneration", "MMSLlamaModel", "MMSLlamaPreTrainedModel", "MMSLlamaCausalLMOutputWithPast",
           "speech_rate_loss"]

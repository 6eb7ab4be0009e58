"""AV-HuBERT's visual path (Shi et al., 2022), as MMS-LLaMA uses it: video-only, frozen, 25 Hz features.

Parameter names follow the fairseq checkpoints (`feature_extractor_video.resnet.frontend3D.0.weight`,
`encoder.layers.3.self_attn.k_proj.weight`, ...) so that `large_vox_iter5.pt` maps onto this module by rule. The only
renaming is weight normalisation: fairseq's `pos_conv.0.weight_g` / `weight_v` are
`pos_conv.0.parametrizations.weight.original0` / `original1` here.

The Transformer encoder (`AVHubertTransformerEncoder`) is fairseq's wav2vec 2.0 encoder; the speech-rate predictor of
MMS-LLaMA reuses it at a smaller size.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import BaseModelOutput

from .configuration_mmsllama import MMSLlamaAVHubertConfig


# ----------------------------------------------------------------------------------------------------------------------
# Transformer encoder with a convolutional position embedding (fairseq wav2vec 2.0 / AV-HuBERT)


class AVHubertSelfAttention(nn.Module):
    def __init__(self, hidden_size: int, num_heads: int, dropout: float):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = hidden_size // num_heads
        self.dropout = dropout
        self.q_proj = nn.Linear(hidden_size, hidden_size)
        self.k_proj = nn.Linear(hidden_size, hidden_size)
        self.v_proj = nn.Linear(hidden_size, hidden_size)
        self.out_proj = nn.Linear(hidden_size, hidden_size)

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
        # hidden_states: (B, T, D); attention_mask: (B, 1, 1, T) bool, True on frames that may be attended
        batch, length, _ = hidden_states.shape
        shape = (batch, length, self.num_heads, self.head_dim)
        query = self.q_proj(hidden_states).view(shape).transpose(1, 2)
        key = self.k_proj(hidden_states).view(shape).transpose(1, 2)
        value = self.v_proj(hidden_states).view(shape).transpose(1, 2)
        dropout = self.dropout if self.training else 0.0
        context = F.scaled_dot_product_attention(query, key, value, attn_mask=attention_mask, dropout_p=dropout)
        return self.out_proj(context.transpose(1, 2).reshape(batch, length, -1))


class AVHubertEncoderLayer(GradientCheckpointingLayer):
    """A fairseq `TransformerSentenceEncoderLayer`: pre- or post-LayerNorm self-attention and feed-forward."""

    def __init__(self, hidden_size, num_heads, intermediate_size, layer_norm_first, dropout, attention_dropout,
                 activation_dropout, hidden_act="gelu", layer_norm_eps=1e-5):  # fmt: skip
        super().__init__()
        self.layer_norm_first = layer_norm_first
        self.self_attn = AVHubertSelfAttention(hidden_size, num_heads, attention_dropout)
        self.self_attn_layer_norm = nn.LayerNorm(hidden_size, eps=layer_norm_eps)
        self.fc1 = nn.Linear(hidden_size, intermediate_size)
        self.fc2 = nn.Linear(intermediate_size, hidden_size)
        self.final_layer_norm = nn.LayerNorm(hidden_size, eps=layer_norm_eps)
        self.activation = ACT2FN[hidden_act]
        self.dropout = nn.Dropout(dropout)
        self.activation_dropout = nn.Dropout(activation_dropout)

    def feed_forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        hidden_states = self.activation_dropout(self.activation(self.fc1(hidden_states)))
        return self.dropout(self.fc2(hidden_states))

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        if self.layer_norm_first:
            hidden_states = hidden_states + self.dropout(
                self.self_attn(self.self_attn_layer_norm(hidden_states), attention_mask)
            )
            return hidden_states + self.feed_forward(self.final_layer_norm(hidden_states))
        hidden_states = self.self_attn_layer_norm(
            hidden_states + self.dropout(self.self_attn(hidden_states, attention_mask))
        )
        return self.final_layer_norm(hidden_states + self.feed_forward(hidden_states))


class AVHubertSamePad(nn.Module):
    """Drops the extra last frame that a `padding=kernel//2` convolution with an even kernel produces."""

    def __init__(self, kernel_size: int):
        super().__init__()
        self.remove = 1 if kernel_size % 2 == 0 else 0

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return hidden_states[..., : hidden_states.shape[-1] - self.remove]


class AVHubertTransformerEncoder(nn.Module):
    """fairseq's wav2vec 2.0 `TransformerEncoder`: x + GELU(weight-normed grouped conv(x)), then the layers."""

    def __init__(self, hidden_size, num_layers, num_heads, intermediate_size, conv_pos, conv_pos_groups,
                 layer_norm_first=True, dropout=0.0, attention_dropout=0.0, activation_dropout=0.0,
                 hidden_act="gelu", layer_norm_eps=1e-5):  # fmt: skip
        super().__init__()
        self.layer_norm_first = layer_norm_first
        conv = nn.Conv1d(hidden_size, hidden_size, conv_pos, padding=conv_pos // 2, groups=conv_pos_groups)
        conv = nn.utils.parametrizations.weight_norm(conv, name="weight", dim=2)
        self.pos_conv = nn.Sequential(conv, AVHubertSamePad(conv_pos), nn.GELU())
        self.layers = nn.ModuleList(
            AVHubertEncoderLayer(hidden_size, num_heads, intermediate_size, layer_norm_first, dropout,
                                 attention_dropout, activation_dropout, hidden_act, layer_norm_eps)  # fmt: skip
            for _ in range(num_layers)
        )
        self.layer_norm = nn.LayerNorm(hidden_size, eps=layer_norm_eps)
        self.dropout = nn.Dropout(dropout)

    def forward(self, hidden_states: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        # hidden_states: (B, T, D); mask: (B, T) bool, True on real frames
        if mask is not None:
            hidden_states = hidden_states.masked_fill(~mask[..., None], 0.0)
        hidden_states = hidden_states + self.pos_conv(hidden_states.transpose(1, 2)).transpose(1, 2)
        if not self.layer_norm_first:
            hidden_states = self.layer_norm(hidden_states)
        hidden_states = self.dropout(hidden_states)
        attention_mask = None if mask is None else mask[:, None, None, :]
        for layer in self.layers:
            hidden_states = layer(hidden_states, attention_mask)
        if self.layer_norm_first:
            hidden_states = self.layer_norm(hidden_states)
        return hidden_states


def init_positional_conv(conv: nn.Conv1d) -> None:
    """fairseq's init of the weight-normed position convolution: v ~ N(0, sqrt(4 / (k * C))), g = |v|, bias 0."""
    weight_v = conv.parametrizations.weight.original1
    std = math.sqrt(4.0 / (conv.kernel_size[0] * conv.in_channels))
    init.normal_(weight_v, mean=0.0, std=std)
    init.copy_(conv.parametrizations.weight.original0, torch.linalg.vector_norm(weight_v, dim=(0, 1), keepdim=True))
    init.zeros_(conv.bias)


# ----------------------------------------------------------------------------------------------------------------------
# Visual front-end: 3-D conv stem + ResNet-18 trunk applied per frame (av_hubert/avhubert/resnet.py)


def _activation(relu_type: str, channels: int) -> nn.Module:
    return nn.PReLU(num_parameters=channels) if relu_type == "prelu" else nn.ReLU()


class AVHubertBasicBlock(nn.Module):
    def __init__(self, inplanes: int, planes: int, stride: int, relu_type: str):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu1 = _activation(relu_type, planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu2 = _activation(relu_type, planes)
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(inplanes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu2(out + residual)


class AVHubertResNetTrunk(nn.Module):
    def __init__(self, width: int, layers: list[int], relu_type: str):
        super().__init__()
        inplanes = width
        for index, num_blocks in enumerate(layers):
            planes, stride = width * 2**index, 1 if index == 0 else 2
            blocks = [AVHubertBasicBlock(inplanes, planes, stride, relu_type)]
            blocks += [AVHubertBasicBlock(planes, planes, 1, relu_type) for _ in range(num_blocks - 1)]
            setattr(self, f"layer{index + 1}", nn.Sequential(*blocks))
            inplanes = planes
        self.num_stages = len(layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for index in range(self.num_stages):
            x = getattr(self, f"layer{index + 1}")(x)
        return self.avgpool(x).flatten(1)


class AVHubertResNetEncoder(nn.Module):
    """(B, 1, T, H, W) gray frames -> (B, T, 8 * width) per-frame embeddings."""

    def __init__(self, width: int, layers: list[int], relu_type: str, input_pool: int = 1):
        super().__init__()
        self.input_pool = input_pool
        self.frontend3D = nn.Sequential(
            nn.Conv3d(1, width, kernel_size=(5, 7, 7), stride=(1, 2, 2), padding=(2, 3, 3), bias=False),
            nn.BatchNorm3d(width),
            _activation(relu_type, width),
            nn.MaxPool3d(kernel_size=(1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)),
        )
        self.trunk = AVHubertResNetTrunk(width, layers, relu_type)
        self.output_size = width * 2 ** (len(layers) - 1)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        batch, _, num_frames = video.shape[:3]
        if self.input_pool > 1:
            video = F.avg_pool3d(video, kernel_size=(1, self.input_pool, self.input_pool))
        x = self.frontend3D(video)  # (B, C, T, H/4, W/4)
        # (B*T, C, H/4, W/4) laid out channels-last, which the 2-D convolutions run faster on (fewer layout copies)
        x = x.permute(0, 2, 3, 4, 1).flatten(0, 1).permute(0, 3, 1, 2)
        return self.trunk(x).view(batch, num_frames, -1)


class AVHubertVideoFeatureExtractor(nn.Module):
    def __init__(self, config: MMSLlamaAVHubertConfig):
        super().__init__()
        self.resnet = AVHubertResNetEncoder(
            config.resnet_width, config.resnet_layers, config.resnet_relu_type, config.input_pool
        )
        self.proj = nn.Linear(self.resnet.output_size, config.hidden_size)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        return self.proj(self.resnet(video))


# ----------------------------------------------------------------------------------------------------------------------


class MMSLlamaAVHubertPreTrainedModel(PreTrainedModel):
    config: MMSLlamaAVHubertConfig
    base_model_prefix = "avhubert"
    main_input_name = "pixel_values_videos"
    input_modalities = ("video",)
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _no_split_modules = ["AVHubertEncoderLayer"]

    @torch.no_grad()
    def _init_weights(self, module):
        if isinstance(module, AVHubertTransformerEncoder):
            init_positional_conv(module.pos_conv[0])
        elif isinstance(module, nn.PReLU):
            init.constant_(module.weight, 0.25)
        elif isinstance(module, (nn.Conv2d, nn.Conv3d)):
            init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(module, nn.Conv1d) and hasattr(module, "parametrizations"):
            return  # initialised with its encoder above
        else:
            super()._init_weights(module)


class MMSLlamaAVHubertModel(MMSLlamaAVHubertPreTrainedModel):
    """AV-HuBERT in video-only mode: the audio half of the concatenated features is zeros, as in `extract_finetune`."""

    def __init__(self, config: MMSLlamaAVHubertConfig):
        super().__init__(config)
        self.feature_extractor_video = AVHubertVideoFeatureExtractor(config)
        self.layer_norm = nn.LayerNorm(2 * config.hidden_size, eps=config.layer_norm_eps)
        self.post_extract_proj = nn.Linear(2 * config.hidden_size, config.hidden_size)
        self.dropout_input = nn.Dropout(config.dropout)
        self.encoder = AVHubertTransformerEncoder(
            config.hidden_size, config.num_hidden_layers, config.num_attention_heads, config.intermediate_size,
            config.conv_pos, config.conv_pos_groups, config.layer_norm_first, config.dropout,
            config.attention_dropout, config.activation_dropout, config.hidden_act, config.layer_norm_eps,
        )  # fmt: skip
        self.post_init()

    def forward(self, pixel_values_videos: torch.Tensor, video_mask: torch.Tensor | None = None) -> BaseModelOutput:
        r"""
        pixel_values_videos (`torch.FloatTensor` of shape `(batch_size, num_frames, 1, height, width)`):
            Normalised gray mouth crops at 25 fps, zero on padded frames.
        video_mask (`torch.BoolTensor` of shape `(batch_size, num_frames)`, *optional*):
            True on real frames.
        """
        video = pixel_values_videos.transpose(1, 2)  # (B, 1, T, H, W)
        video_features = self.feature_extractor_video(video)  # (B, T, D)
        features = torch.cat([torch.zeros_like(video_features), video_features], dim=-1)  # audio half is zeros
        features = self.dropout_input(self.post_extract_proj(self.layer_norm(features)))
        return BaseModelOutput(last_hidden_state=self.encoder(features, video_mask))


__all__ = ["MMSLlamaAVHubertModel", "MMSLlamaAVHubertPreTrainedModel", "AVHubertTransformerEncoder"]

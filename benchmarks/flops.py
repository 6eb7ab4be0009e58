"""Parts 2 and 3: FLOPs per utterance, per component, for full-size presets, counted on the meta device.

Protocol (stated again in RESULTS.md):
- `torch.utils.flop_counter.FlopCounterMode` counts matmul, convolution and attention FLOPs (2 per multiply-add)
  of each submodule called on meta tensors, so no weights are allocated and nothing is computed. Element-wise work
  (norms, activations, softmax, interpolation) is not counted; it is well under 1% here.
- One utterance, batch 1, inference. Components are called one by one with the shapes the model's forward gives
  them (see `modeling_mmsllama.get_speech_embeddings`): the Whisper encoder on the full 2 * max_source_positions
  mel window (30 s for Whisper-medium) unless a shorter window is asked for; AV-HuBERT on the clip's T frames;
  the rate predictor on the 12.5 Hz Whisper frames of the clip; the length adapter; the Q-Former with N queries
  over int(clamp(r, 1, 2) * T) stretched frames; the projector on N tokens; the LLM prefill over
  prompt + N speech tokens (last-token logits, as in generation), and the LLM decode of the transcript with the KV
  cache (one forward of one token per generated token after the first, each at its context length).
- The Llama causal mask is given explicitly as a 4-D additive mask (Llama's own mask building calls `.item()`,
  which the meta device refuses); its values do not change the FLOP count.
"""

import functools
import math
from fractions import Fraction

import torch
from torch.utils.flop_counter import FlopCounterMode
from transformers.models.blip_2.modeling_blip_2 import Blip2QFormerModel
from transformers.models.whisper.modeling_whisper import WhisperEncoder

from .common import Utterance
from .token_rate import meta_model


PROMPT_TOKENS = 11  # BOS + "Recognize this speech in English. Input : " with the Llama-3 tokenizer (estimate; 10-12)
TOKENS_PER_WORD = 1.3  # Llama-3 BPE tokens per English word (estimate; no tokenizer is available offline)
COMPONENTS = [
    "audio_encoder", "vision_encoder", "rate_predictor", "adapters", "fusion", "qformer", "projector",
    "llm_prefill", "llm_decode",
]  # fmt: skip


def count_flops(fn) -> int:
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        fn()
    return int(counter.get_total_flops())


def transcript_tokens(num_words: float) -> int:
    """Tokens the LLM generates for a transcript of `num_words` words, EOS included."""
    return int(math.ceil(TOKENS_PER_WORD * num_words)) + 1


MODE_FIELDS = ("compression", "use_rate_predictor", "queries_per_second", "min_queries", "max_queries")
_SHARED_CACHES: dict = {}


def _lagrange(points: list[tuple[int, int]], x: int) -> Fraction:
    """The value at x of the polynomial through `points`, in exact rational arithmetic."""
    total = Fraction(0)
    for i, (xi, yi) in enumerate(points):
        term = Fraction(yi)
        for j, (xj, _) in enumerate(points):
            if j != i:
                term *= Fraction(x - xj, xi - xj)
        total += term
    return total


class FlopModel:
    """Per-component FLOP counts of one preset and compression mode, cached by shape.

    Components whose count is a polynomial in one length (AV-HuBERT in its frames: convolutions and linears are
    linear, attention quadratic; the LLM prefill in its tokens; one decode step in its context) are measured at
    degree + 1 lengths and checked exactly at one more; every other length is then read off that polynomial.
    If a check fails, every length is measured directly.
    """

    POLYNOMIALS = {"video": (2, (16, 64, 128), 97), "prefill": (2, (8, 40, 160), 73), "decode": (1, (16, 144), 77)}

    def __init__(self, preset: str, **overrides):
        self.model = meta_model(preset, **overrides)
        self.config = self.model.config
        self.preset = preset
        # the encoders and the LLM do not depend on the compression mode: their counts are shared across modes
        shared_key = (preset, repr(sorted((k, v) for k, v in overrides.items() if k not in MODE_FIELDS)))
        self._shared = _SHARED_CACHES.setdefault(shared_key, {})
        self._own = {}

    def _store(self, key) -> dict:
        return self._shared if key[0] in ("audio", "video", "prefill", "decode", "poly") else self._own

    def _cached(self, key, fn):
        store = self._store(key)
        if key not in store:
            store[key] = count_flops(fn)
        return store[key]

    def _polynomial(self, name: str, x: int, measure) -> int:
        """measure(x) -> FLOPs, read off a verified polynomial (see the class docstring)."""
        store = self._store(("poly",))
        degree, fit_at, check_at = self.POLYNOMIALS[name]
        if ("poly", name) not in store:
            points = [(at, measure(at)) for at in fit_at]
            store[("poly", name)] = points if _lagrange(points, check_at) == measure(check_at) else None
        points = store[("poly", name)]
        if points is None:
            return measure(x)
        value = _lagrange(points, x)
        if value.denominator != 1:  # not an integer: the polynomial does not describe this length
            return measure(x)
        return int(value)

    @staticmethod
    def _meta(*shape, dtype=torch.float32):
        return torch.zeros(*shape, dtype=dtype, device="meta")

    # -- encoders ------------------------------------------------------------------------------------------------------
    def audio_encoder(self, mel_frames: int | None = None) -> int:
        """The Whisper encoder on `mel_frames` log-mel frames (default: the model's full window)."""
        audio = self.config.audio_config
        mel_frames = mel_frames or self.config.num_mel_frames
        if mel_frames == self.config.num_mel_frames:
            encoder = self.model.audio_encoder
        else:
            encoder = short_window_encoder(audio, mel_frames)
        return self._cached(("audio", mel_frames), lambda: encoder(self._meta(1, audio.num_mel_bins, mel_frames)))

    def vision_encoder(self, frames: int) -> int:
        size = self.config.vision_config.image_size

        def measure(length):
            video = self._meta(1, length, 1, size, size)
            mask = torch.ones(1, length, dtype=torch.bool, device="meta")
            return self._cached(("video", length), lambda: self.model.vision_encoder(video, mask))

        return self._polynomial("video", frames, measure)

    def rate_predictor(self, frames: int) -> int:
        if self.config.compression != "qformer" or not self.config.use_rate_predictor:
            return 0
        length = -(-2 * frames // 4)  # every 4th 50 Hz Whisper frame of the clip
        features = self._meta(1, length, self.config.audio_config.d_model)
        mask = torch.ones(1, length, dtype=torch.bool, device="meta")
        return self._cached(("rate", frames), lambda: self.model.rate_predictor(features, mask))

    # -- compression ---------------------------------------------------------------------------------------------------
    def adapters(self, frames: int) -> int:
        model, audio_dim = self.model, self.config.audio_config.d_model

        def run():
            if self.config.compression == "qformer":
                model.audio_adapter(self._meta(1, audio_dim, 2 * frames))
            else:
                even = frames + frames % 2
                model.audio_adapter(self._meta(1, audio_dim, 2 * even))
                model.video_adapter(self._meta(1, self.config.vision_config.hidden_size, even))

        return self._cached(("adapters", frames), run)

    def fusion(self, frames: int) -> int:
        if self.config.compression == "baseline":
            return 0
        steps = frames if self.config.compression == "qformer" else (frames + 1) // 2
        audio = self._meta(1, steps, self.config.audio_config.d_model)
        video = self._meta(1, steps, self.config.vision_config.hidden_size)
        mask = torch.ones(1, steps, dtype=torch.bool, device="meta")
        return self._cached(("fusion", steps), lambda: self.model.fusion(audio, video, mask))

    def qformer(self, stretched_frames: int, num_queries: int) -> int:
        if self.config.compression != "qformer":
            return 0
        bert = next(m for m in self.model.qformer.modules() if isinstance(m, Blip2QFormerModel))
        hidden = self.config.qformer_config.hidden_size

        def run():  # MMSLlamaQFormer.forward with meta masks (its own mask building needs real lengths)
            bert(
                query_embeds=self._meta(1, num_queries, hidden),
                attention_mask=None,  # batch 1: every query is real (a meta mask cannot be inspected)
                encoder_hidden_states=self._meta(1, stretched_frames, self.config.fused_hidden_size),
                encoder_attention_mask=self._meta(1, 1, num_queries, stretched_frames),
            )

        return self._cached(("qformer", stretched_frames, num_queries), run)

    def projector(self, num_tokens: int) -> int:
        model = self.model

        def run():
            if self.config.compression == "baseline":
                half = num_tokens // 2
                model.projector(self._meta(1, half, self.config.audio_config.d_model))
                model.video_projector(self._meta(1, half, self.config.vision_config.hidden_size))
            else:
                model.projector(self._meta(1, num_tokens, model.projector.linear_1.in_features))

        return self._cached(("projector", num_tokens), run)

    # -- language model ------------------------------------------------------------------------------------------------
    def llm_prefill(self, length: int) -> int:
        """The LLM over `length` input embeddings, logits of the last position only (as `generate` does)."""
        lm, dim = self.model.language_model, self.config.text_config.hidden_size

        def measure(n):
            return self._cached(
                ("prefill", n),
                lambda: lm(
                    inputs_embeds=self._meta(1, n, dim),
                    attention_mask=self._meta(1, 1, n, n),
                    position_ids=torch.arange(n, device="meta")[None],
                    logits_to_keep=1,
                    use_cache=False,
                ),
            )

        return self._polynomial("prefill", length, measure)

    def llm_decode_step(self, context: int) -> int:
        """One generated token given `context` cached positions (a 1-token forward over a meta KV cache)."""
        lm, dim = self.model.language_model, self.config.text_config.hidden_size

        def measure(n):
            store = self._store(("decode",))
            if ("decode", n) not in store:
                with torch.no_grad():
                    cache = lm(
                        inputs_embeds=self._meta(1, n, dim),
                        attention_mask=self._meta(1, 1, n, n),
                        position_ids=torch.arange(n, device="meta")[None],
                        logits_to_keep=1,
                        use_cache=True,
                    ).cache
                store[("decode", n)] = count_flops(
                    lambda: lm(
                        inputs_embeds=self._meta(1, 1, dim),
                        attention_mask=self._meta(1, 1, 1, n + 1),
                        position_ids=torch.full((1, 1), n, device="meta"),
                        cache=cache,
                        logits_to_keep=1,
                        use_cache=True,
                    )
                )
            return store[("decode", n)]

        return self._polynomial("decode", context, measure)

    def llm_decode(self, prefill_length: int, generated_tokens: int) -> int:
        # the first token comes from the prefill logits; each later one is a 1-token forward over the cache
        return sum(self.llm_decode_step(prefill_length + step) for step in range(generated_tokens - 1))

    # -- one utterance -------------------------------------------------------------------------------------------------
    def utterance(
        self,
        frames: int,
        speech_rate: float | None = None,
        generated_tokens: int = 0,
        prompt_tokens: int = PROMPT_TOKENS,
        mel_frames: int | None = None,
    ) -> dict[str, int]:
        """FLOPs per component for one clip of `frames` video frames; `total` is their sum."""
        num_tokens = int(self.model.num_speech_tokens([frames], None if speech_rate is None else [speech_rate])[0])
        factor = 1.0
        if speech_rate is not None and self.config.compression == "qformer" and self.config.use_rate_predictor:
            factor = min(max(speech_rate, self.config.rate_clamp[0]), self.config.rate_clamp[1])
        stretched = max(1, int(math.floor(factor * frames + 1e-6)))
        prefill_length = prompt_tokens + num_tokens
        flops = {
            "audio_encoder": self.audio_encoder(mel_frames),
            "vision_encoder": self.vision_encoder(frames),
            "rate_predictor": self.rate_predictor(frames),
            "adapters": self.adapters(frames),
            "fusion": self.fusion(frames),
            "qformer": self.qformer(stretched, num_tokens),
            "projector": self.projector(num_tokens),
            "llm_prefill": self.llm_prefill(prefill_length),
            "llm_decode": self.llm_decode(prefill_length, generated_tokens) if generated_tokens else 0,
        }
        flops["total"] = sum(flops.values())
        flops["speech_tokens"] = num_tokens
        return flops

    def manifest_mean(self, utterances: list[Utterance], mel_frames_fn=None, decode: bool = True) -> dict[str, float]:
        """Mean per-component FLOPs over the utterances (GT rate labels stand in for the predictor)."""
        totals: dict[str, float] = {}
        for u in utterances:
            generated = transcript_tokens(u.num_words) if decode and u.num_words is not None else 0
            mel = mel_frames_fn(u.num_video_frames) if mel_frames_fn else None
            row = self.utterance(u.num_video_frames, u.speech_rate, generated, mel_frames=mel)
            for key, value in row.items():
                totals[key] = totals.get(key, 0.0) + value
        return {key: value / len(utterances) for key, value in totals.items()}


# -- part 3: a shorter Whisper window ----------------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def _short_window_encoder_cached(audio_config_json: str, mel_frames: int) -> WhisperEncoder:
    from transformers import WhisperConfig

    config = WhisperConfig.from_dict(__import__("json").loads(audio_config_json))
    config.max_source_positions = mel_frames // 2
    with torch.device("meta"):
        return WhisperEncoder(config).eval()


def short_window_encoder(audio_config, mel_frames: int) -> WhisperEncoder:
    """A standalone Whisper encoder (on the meta device) whose window is `mel_frames` log-mel frames.

    This is what a bucketed window amounts to: the same weights, the first mel_frames / 2 rows of the positional
    embedding, and the input cut to the bucket instead of padded to 30 s.
    """
    if mel_frames % 2:
        raise ValueError(f"mel_frames must be even (the encoder's stride-2 convolution), got {mel_frames}")
    return _short_window_encoder_cached(audio_config.to_json_string(use_diff=False), mel_frames)


def bucket_mel_frames(num_video_frames: int, bucket_s: float, full_mel_frames: int) -> int:
    """The mel window for a clip rounded up to a multiple of `bucket_s` seconds (never above the full window)."""
    seconds = num_video_frames / 25
    bucketed = math.ceil(seconds / bucket_s - 1e-9) * bucket_s
    mel = int(round(bucketed * 100))
    mel += mel % 2
    return min(max(mel, 2), full_mel_frames)

"""A small character-level tokenizer, built offline, for the `tiny` and `demo` presets.

The paper presets use a real Llama tokenizer loaded from a local folder. The small presets cannot download one,
so they use this tokenizer: every printable ASCII character is one token, and the special tokens carry the
Llama-3 names so that prompts, padding and decoding work the same way in both cases.
"""

import string

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast


PAD_TOKEN = "<|finetune_right_pad_id|>"
BOS_TOKEN = "<|begin_of_text|>"
EOS_TOKEN = "<|end_of_text|>"
SPEECH_TOKEN = "<|speech|>"
UNK_TOKEN = "<|unk|>"
SPECIAL_TOKENS = (PAD_TOKEN, BOS_TOKEN, EOS_TOKEN, SPEECH_TOKEN, UNK_TOKEN)  # ids 0..4
CHARACTERS = string.ascii_lowercase + string.ascii_uppercase + string.digits + " .,'?!-:;\"()&/"
CHAR_VOCAB_SIZE = 128  # len(SPECIAL_TOKENS) + len(CHARACTERS) = 81, padded to a round embedding size


def build_char_tokenizer() -> PreTrainedTokenizerFast:
    """Returns the character tokenizer: ids 0-4 are special tokens, then one id per character. BOS is prepended."""
    vocab = {token: i for i, token in enumerate(SPECIAL_TOKENS + tuple(CHARACTERS))}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK_TOKEN))
    backend.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    backend.decoder = decoders.Fuse()
    backend.post_processor = processors.TemplateProcessing(
        single=f"{BOS_TOKEN} $A", pair=f"{BOS_TOKEN} $A $B", special_tokens=[(BOS_TOKEN, vocab[BOS_TOKEN])]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=BOS_TOKEN,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        unk_token=UNK_TOKEN,
        extra_special_tokens={"speech_token": SPEECH_TOKEN},
        padding_side="left",
    )
    return tokenizer


__all__ = ["build_char_tokenizer", "CHAR_VOCAB_SIZE"]

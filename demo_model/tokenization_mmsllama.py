"""A small tokenizer, built offline, for the `tiny` and `demo` presets.

The paper presets use a real Llama tokenizer loaded from a local folder. The small presets cannot download one,
so they build this one from their configuration: every printable ASCII character is a token and, when the
configuration lists `tokenizer_words`, each of those words is one token too (other words are spelled out in
characters, WordPiece-style). The special tokens carry the Llama-3 names so that prompts, padding and decoding work
the same way in both cases.

Whole-word tokens matter for a language model trained from scratch next to the speech path: Llama's BPE gives common
words one token, and with one token per word the demo LLM learned to read the speech tokens, where with characters
it kept to the grammar (see `training/demo.py`).
"""

import string
from collections.abc import Sequence

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast


PAD_TOKEN = "<|finetune_right_pad_id|>"
BOS_TOKEN = "<|begin_of_text|>"
EOS_TOKEN = "<|end_of_text|>"
SPEECH_TOKEN = "<|speech|>"
UNK_TOKEN = "<|unk|>"
SPECIAL_TOKENS = (PAD_TOKEN, BOS_TOKEN, EOS_TOKEN, SPEECH_TOKEN, UNK_TOKEN)  # ids 0..4
CHARACTERS = string.ascii_lowercase + string.ascii_uppercase + string.digits + " .,'?!-:;\"()&/"
MAX_BUILTIN_VOCAB_SIZE = 1024  # a larger text vocabulary belongs to a real LLM, whose tokenizer must be given
CONTINUATION = "##"  # WordPiece prefix of a piece that continues a word


def build_char_tokenizer(words: Sequence[str] = ()) -> PreTrainedTokenizerFast:
    """Returns the built-in tokenizer: ids 0-4 are special tokens, then one id per character. BOS is prepended.

    With `words`, each word is also one token (then come the continuation pieces `##c` of every character): text is
    split at spaces and each word is matched longest-piece-first (WordPiece), so unlisted words are spelled out.
    """
    if not words:
        vocab = {token: i for i, token in enumerate(SPECIAL_TOKENS + tuple(CHARACTERS))}
        backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK_TOKEN))
        backend.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
        backend.decoder = decoders.Fuse()
    else:
        tokens = SPECIAL_TOKENS + tuple(CHARACTERS) + tuple(CONTINUATION + c for c in CHARACTERS) + tuple(words)
        vocab = {token: i for i, token in enumerate(dict.fromkeys(tokens))}
        backend = Tokenizer(models.WordPiece(vocab=vocab, unk_token=UNK_TOKEN, continuing_subword_prefix=CONTINUATION))
        backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
        backend.decoder = decoders.WordPiece(prefix=CONTINUATION, cleanup=False)
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


__all__ = ["build_char_tokenizer", "MAX_BUILTIN_VOCAB_SIZE"]

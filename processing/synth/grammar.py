"""The GRID sentence grammar: six slots, 51 words, e.g. "bin blue at f two now".

Cooke et al. (2006), "An audio-visual corpus for speech perception and automatic speech recognition".
The letter slot leaves out "w" (three syllables), as GRID does.
"""

import numpy as np


COMMANDS = ("bin", "lay", "place", "set")
COLORS = ("blue", "green", "red", "white")
PREPOSITIONS = ("at", "by", "in", "with")
LETTERS = tuple("abcdefghijklmnopqrstuvxyz")
DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
ADVERBS = ("again", "now", "please", "soon")
SLOTS = (COMMANDS, COLORS, PREPOSITIONS, LETTERS, DIGITS, ADVERBS)
SLOT_NAMES = ("command", "color", "preposition", "letter", "digit", "adverb")
VOCABULARY = tuple(sorted({word for slot in SLOTS for word in slot}))
WORDS_PER_SENTENCE = len(SLOTS)

# espeak reads a lone "a" as the article /ə/ and merges it into the next word ("a at" gives one WORD
# event); "eh" gives the letter's name /eɪ/ with its own event. Transcripts keep "a".
SPOKEN_FORM = {"a": "eh"}


def sample_sentence(rng: np.random.Generator) -> list[str]:
    """One sentence, each slot drawn uniformly: a list of `WORDS_PER_SENTENCE` words."""
    return [slot[rng.integers(len(slot))] for slot in SLOTS]


def spoken_form(words: list[str]) -> list[str]:
    """The words as the synthesiser must read them to say the transcript."""
    return [SPOKEN_FORM.get(word, word) for word in words]

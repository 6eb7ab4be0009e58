"""Targets for the encoders stage: CTC on characters of the transcript or phonemes from the manifest's `.phn` file,
or framewise phoneme classes from the phoneme spans of its `.ali` file.

The demo recipe trains the encoders on framewise phoneme classes (`docs/training.md`, the encoders stage); phoneme
CTC is the default objective, and characters are the fallback for corpora without phoneme labels. Unit 0 is the CTC
blank (in framewise targets: a frame outside every phoneme); the inventory is taken from the training and validation
labels and saved beside the heads.
"""

import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from modeling_mmsllama.errors_mmsllama import MMSLlamaInputError

from .data import Utterance


CTC_UNITS = ("phonemes", "characters")
CTC_VOCAB_FILE = "ctc_vocab.json"
BLANK = "<blank>"
BLANK_ID = 0  # the CTC blank is the first symbol
WORD_BOUNDARY = "|"  # the space between words, as a character unit


@dataclass
class CTCVocabulary:
    """The CTC output units: `symbols[0]` is the blank."""

    units: str
    symbols: list[str]

    @classmethod
    def from_utterances(cls, units: str, utterances: list[Utterance]) -> "CTCVocabulary":
        if units not in CTC_UNITS:
            raise MMSLlamaInputError(f"--ctc_units {units!r} is not one of {CTC_UNITS}.")
        inventory = set()
        for utterance in utterances:
            inventory.update(cls._split(units, utterance))
        return cls(units, [BLANK] + sorted(inventory))

    @staticmethod
    def _split(units: str, utterance: Utterance) -> list[str]:
        if units == "characters":
            return [WORD_BOUNDARY if c == " " else c for c in utterance.text]
        if utterance.phonemes is None:
            raise MMSLlamaInputError(
                f"{utterance.source}: no phonemes; phoneme CTC needs a `{{split}}.phn` file beside the manifest "
                "(the synthetic corpus writes one), or pass --ctc_units characters."
            )
        return utterance.phonemes.split()

    def __len__(self) -> int:
        return len(self.symbols)

    def targets(self, utterances: list[Utterance]) -> torch.Tensor:
        """(B, S) unit ids, -100 padded; units missing from the inventory are an error, not silently dropped."""
        index = {symbol: i for i, symbol in enumerate(self.symbols)}
        sequences = []
        for utterance in utterances:
            units = self._split(self.units, utterance)
            unknown = sorted(set(units) - index.keys())
            if unknown:
                raise MMSLlamaInputError(f"{utterance.source}: {self.units} {unknown} are not in the CTC inventory.")
            sequences.append([index[u] for u in units])
        targets = torch.full((len(sequences), max(map(len, sequences))), -100)
        for row, sequence in enumerate(sequences):
            targets[row, : len(sequence)] = torch.tensor(sequence)
        return targets

    def frame_targets(self, utterances: list[Utterance], num_frames: torch.Tensor, frames_per_second: int) -> torch.Tensor:
        """(B, max num_frames) phoneme ids per frame (the phoneme whose span holds the frame's centre; 0 outside every
        span), -100 on padding. Needs phoneme units and the `.ali` spans."""
        index = {symbol: i for i, symbol in enumerate(self.symbols)}
        targets = torch.full((len(utterances), int(num_frames.max())), -100)
        centres = (torch.arange(targets.shape[1]) + 0.5) / frames_per_second  # seconds
        for row, utterance in enumerate(utterances):
            spans = utterance.phoneme_spans() if self.units == "phonemes" else None
            if spans is None:
                raise MMSLlamaInputError(
                    f"{utterance.source}: framewise targets need phoneme units and phoneme spans (a `{{split}}.ali` "
                    "file beside the manifest; the synthetic corpus writes one); or use --encoder_objective ctc."
                )
            length = int(num_frames[row])
            targets[row, :length] = BLANK_ID
            for phoneme, start, end in spans:
                inside = (centres[:length] >= start) & (centres[:length] < end)
                targets[row, :length][inside] = index[phoneme]
        return targets

    def greedy_decode(self, logits: torch.Tensor, lengths: torch.Tensor) -> list[str]:
        """Best path: argmax per frame, repeats merged, blanks removed; units space-separated."""
        best = logits.argmax(-1)
        decoded = []
        for row, length in zip(best.tolist(), lengths.tolist()):
            merged = [u for i, u in enumerate(row[:length]) if u != BLANK_ID and (i == 0 or u != row[i - 1])]
            decoded.append(" ".join(self.symbols[u] for u in merged))
        return decoded

    def reference(self, utterance: Utterance) -> str:
        return " ".join(self._split(self.units, utterance))

    def save(self, folder: str | os.PathLike) -> None:
        (Path(folder) / CTC_VOCAB_FILE).write_text(json.dumps({"units": self.units, "symbols": self.symbols}, ensure_ascii=False))

    @classmethod
    def load(cls, folder: str | os.PathLike) -> "CTCVocabulary":
        stored = json.loads((Path(folder) / CTC_VOCAB_FILE).read_text())
        return cls(stored["units"], stored["symbols"])


__all__ = ["BLANK_ID", "CTC_UNITS", "CTCVocabulary"]

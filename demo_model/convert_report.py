"""What every weight conversion shares: rule-based key mapping with checks, the report, and the atomic output folder.

A conversion maps each source key by rule (regex -> replacement) or drops it with a stated reason; a key that neither
maps onto a parameter of the target nor is dropped makes the conversion fail, as do shape mismatches and target
parameters that nothing fills. The report lists all of it, with parameter counts and the sha256 of every output file.
"""

import contextlib
import hashlib
import json
import os
import re
import shutil
import uuid
from collections.abc import Collection
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from .errors_mmsllama import MMSLlamaInputError


REPORT_JSON = "conversion_report.json"
REPORT_TEXT = "conversion_report.md"
LISTED_IN_ERRORS = 12  # keys named in an error message before "... and N more"


class MMSLlamaConversionError(MMSLlamaInputError):
    """A checkpoint or folder that cannot be converted: wrong model, incomplete, unexpected keys or shapes."""


def _listing(keys) -> str:
    keys = list(keys)
    shown = ", ".join(keys[:LISTED_IN_ERRORS])
    return shown + (f" ... and {len(keys) - LISTED_IN_ERRORS} more" if len(keys) > LISTED_IN_ERRORS else "")


@dataclass
class KeyMapping:
    """How the keys of one source checkpoint were handled."""

    source: str
    mapped: dict[str, str] = field(default_factory=dict)  # source key -> target key
    dropped: dict[str, str] = field(default_factory=dict)  # source key -> reason
    shapes: dict[str, list[int]] = field(default_factory=dict)  # source key -> shape
    dtypes: dict[str, str] = field(default_factory=dict)  # source dtype -> number of tensors


def map_state_dict(
    state_dict: dict[str, torch.Tensor],
    rules: list[tuple[str, str]],
    drops: list[tuple[str, str]],
    expected: dict[str, torch.Size],
    source: str,
    required: Collection[str] | None = None,
) -> tuple[dict[str, torch.Tensor], KeyMapping]:
    """Maps `state_dict` onto target names and checks the result.

    Args:
        rules: `(pattern, replacement)` pairs tried in order with `re.fullmatch`; the first match renames the key.
        drops: `(pattern, reason)` pairs; a key matching one is left out and listed with the reason.
        expected: target key -> shape for every target the source may fill.
        required: the targets that must be filled (default: all of `expected`).

    Raises `MMSLlamaConversionError` naming the unmapped, missing and mis-shaped keys.
    """
    mapping, converted = KeyMapping(source), {}
    unmapped, mismatched = [], []
    for key in sorted(state_dict):
        tensor = state_dict[key]
        mapping.shapes[key] = list(tensor.shape)
        mapping.dtypes[str(tensor.dtype)] = mapping.dtypes.get(str(tensor.dtype), 0) + 1
        reason = next((reason for pattern, reason in drops if re.fullmatch(pattern, key)), None)
        if reason is not None:
            mapping.dropped[key] = reason
            continue
        target = next((re.sub(pattern, repl, key) for pattern, repl in rules if re.fullmatch(pattern, key)), None)
        if target not in expected:
            unmapped.append(key)
        elif tuple(tensor.shape) != tuple(expected[target]):
            mismatched.append(f"{key} {list(tensor.shape)} -> {target} {list(expected[target])}")
        else:
            mapping.mapped[key] = target
            converted[target] = tensor
    missing = sorted(set(expected if required is None else required) - set(converted))
    problems = []
    if unmapped:
        problems.append(f"{len(unmapped)} unexpected keys that map onto nothing: {_listing(unmapped)}")
    if mismatched:
        problems.append(f"{len(mismatched)} shape mismatches: {_listing(mismatched)}")
    if missing:
        problems.append(f"{len(missing)} target parameters that nothing fills: {_listing(missing)}")
    if problems:
        raise MMSLlamaConversionError(f"{source}: cannot convert; " + "; ".join(problems) + ".", source=source)
    return converted, mapping


def parameter_counts(model: nn.Module, lora_rank: int | None = None) -> dict[str, int]:
    """Parameters per top-level module and in total (works on the meta device).

    With `lora_rank`, adds `"lora"`: the parameters of a rank-`lora_rank` LoRA on the language model's q/k/v/o
    projections, sum of r * (in + out) over those Linear layers.
    """
    counts = {name: sum(p.numel() for p in module.parameters()) for name, module in model.named_children()}
    counts = {name: count for name, count in counts.items() if count}
    counts["total"] = sum(p.numel() for p in model.parameters())
    if lora_rank is not None:
        counts["lora"] = sum(
            lora_rank * (module.in_features + module.out_features)
            for name, module in model.language_model.named_modules()
            if isinstance(module, nn.Linear) and name.rsplit(".", 1)[-1] in ("q_proj", "k_proj", "v_proj", "o_proj")
        )
    return counts


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class ConversionReport:
    """Everything a conversion did; written next to its output as json and as readable markdown."""

    conversion: str
    sources: dict[str, str] = field(default_factory=dict)  # role -> path
    mappings: list[KeyMapping] = field(default_factory=list)
    config: dict = field(default_factory=dict)  # inferred sizes, with where each came from
    parameter_counts: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    outputs: dict[str, str] = field(default_factory=dict)  # output file (relative) -> sha256

    def write(self, folder: Path) -> None:
        """Hashes every file under `folder` into `outputs`, then writes the two report files there."""
        folder = Path(folder)
        self.outputs = {
            str(path.relative_to(folder)): sha256_file(path)
            for path in sorted(folder.rglob("*"))
            if path.is_file() and path.name not in (REPORT_JSON, REPORT_TEXT)
        }
        (folder / REPORT_JSON).write_text(json.dumps(asdict(self), indent=2, sort_keys=False) + "\n")
        (folder / REPORT_TEXT).write_text(self.to_markdown())

    def to_markdown(self) -> str:
        lines = [f"# Conversion report: {self.conversion}", "", "## Sources", ""]
        lines += [f"- {role}: `{path}`" for role, path in self.sources.items()]
        for mapping in self.mappings:
            lines += ["", f"## {mapping.source}", ""]
            lines += [f"{len(mapping.mapped)} keys mapped, {len(mapping.dropped)} dropped; dtypes {mapping.dtypes}.", ""]
            reasons: dict[str, list[str]] = {}
            for key, reason in mapping.dropped.items():
                reasons.setdefault(reason, []).append(key)
            for reason, keys in reasons.items():
                more = f" and {len(keys) - 1} more" if len(keys) > 1 else ""
                lines.append(f"- dropped ({len(keys)}): {reason}: `{keys[0]}`{more}")
            lines += ["", "| source key | shape | target key |", "|---|---|---|"]
            lines += [f"| `{key}` | {mapping.shapes[key]} | `{target}` |" for key, target in mapping.mapped.items()]
        lines += ["", "## Configuration", "", "```json", json.dumps(self.config, indent=2), "```", "", "## Parameters", ""]
        lines += [f"- {name}: {count:,}" for name, count in self.parameter_counts.items()]
        if self.notes:
            lines += ["", "## Notes", ""] + [f"- {note}" for note in self.notes]
        lines += ["", "## Output files (sha256)", ""] + [f"- `{name}`: `{digest}`" for name, digest in self.outputs.items()]
        return "\n".join(lines) + "\n"


@contextlib.contextmanager
def atomic_output_dir(out: str | os.PathLike, overwrite: bool = False):
    """Yields a hidden temporary sibling of `out` to write into; moves it to `out` only when the block succeeds.

    On any error (or Ctrl-C) the temporary folder is removed, so `out` either does not exist or is complete. A process
    killed outright may leave the hidden `.<name>.partial-*` folder behind, never a folder named `out`.
    """
    out = Path(out)
    if out.exists() and not overwrite:
        message = f"{out} already exists; choose another folder or pass overwrite=True."
        raise MMSLlamaConversionError(message, source=str(out))
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.parent / f".{out.name}.partial-{uuid.uuid4().hex[:8]}"
    partial.mkdir()
    try:
        yield partial
        if out.exists():
            old = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
            os.replace(out, old)
            os.replace(partial, out)
            shutil.rmtree(old)
        else:
            os.replace(partial, out)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise


__all__ = [
    "MMSLlamaConversionError",
    "ConversionReport",
    "KeyMapping",
    "map_state_dict",
    "parameter_counts",
    "atomic_output_dir",
    "sha256_file",
]

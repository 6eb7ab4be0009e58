"""Reads fairseq checkpoints (AV-HuBERT, MMS-LLaMA, the speech-rate predictor) without fairseq or omegaconf.

A fairseq checkpoint is a `torch.save`d dict: `model` (the state dict), `cfg` (an omegaconf `DictConfig`; `args`, an
`argparse.Namespace`, in older files) and training state. Unpickling it the usual way imports fairseq and omegaconf and
lets the file call any importable function. Here the pickle is read by `RestrictedUnpickler` instead:

What is trusted:
- tensors and their storages (rebuilt by torch's own `_rebuild_tensor*` / `_rebuild_parameter` and storage loader),
  torch dtypes, and the plain containers `OrderedDict`, `set`, `frozenset`;
- nothing else. Every other class or function the pickle names is replaced by a `PickledObject` placeholder that only
  records its name, the arguments it was called with and the state it was given. No code from the file runs and no
  module named by the file is imported.

`to_plain` then turns placeholders into plain Python values: an omegaconf `DictConfig`/`ListConfig` becomes a dict/list
(its `_content`), a node its `_val`, any other object the dict of its state. The state dict (`model`) only ever holds
tensors, so it is exact; the config is best effort and only used to infer sizes, with the shapes checked afterwards.
"""

import collections
import pickle
import types
import zipfile
from pathlib import Path

import torch

from .convert_report import MMSLlamaConversionError


class PickledObject:
    """Stands in for an instance of a class the restricted unpickler does not trust (e.g. omegaconf.DictConfig)."""

    qualified_name = "?"

    def __init__(self, *args, **kwargs):
        self.args = args
        self.kwargs = kwargs
        self.state = None

    def __setstate__(self, state):
        self.state = state

    def __call__(self, *args, **kwargs):
        # a pickle may call what an untrusted call returned (e.g. `getattr(cls, "method")(...)`): record, do not run
        return _placeholder_class("<result>", self.qualified_name)(*args, **kwargs)

    def __repr__(self):
        return f"<untrusted {self.qualified_name}>"


def _placeholder_class(module: str, name: str) -> type:
    return type(name, (PickledObject,), {"qualified_name": f"{module}.{name}", "__module__": "untrusted"})


def _rebuild_parameter(data, requires_grad, backward_hooks, *args):
    return data  # a plain tensor: what requires_grad was during training does not matter here


_TRUSTED = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("torch._utils", "_rebuild_tensor"): torch._utils._rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
    ("torch._utils", "_rebuild_tensor_v3"): torch._utils._rebuild_tensor_v3,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch", "Size"): torch.Size,
}


class RestrictedUnpickler(pickle.Unpickler):
    """A `pickle.Unpickler` that resolves only the globals in `_TRUSTED` (and torch dtypes); see the module docstring.

    Storage classes (`torch.FloatStorage`, ...) never reach `find_class`: `torch.load` resolves them itself.
    """

    def find_class(self, module: str, name: str):
        if (module, name) in _TRUSTED:
            return _TRUSTED[(module, name)]
        if module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
            return getattr(torch, name)
        return _placeholder_class(module, name)


# `torch.load(pickle_module=...)` needs a module-like object with `Unpickler` and `load`.
restricted_pickle = types.ModuleType("restricted_pickle")
restricted_pickle.Unpickler = RestrictedUnpickler
restricted_pickle.load = lambda file, **kwargs: RestrictedUnpickler(file, **kwargs).load()


def to_plain(value, _seen: set | None = None):
    """Turns placeholders (omegaconf configs, Namespaces, enums) into dicts, lists and scalars; tensors are kept."""
    seen = set() if _seen is None else _seen
    if isinstance(value, (dict, list, tuple, set, frozenset, PickledObject)):
        if id(value) in seen:
            return "<cycle>"
        seen = seen | {id(value)}
    if isinstance(value, dict):
        return {str(key): to_plain(item, seen) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_plain(item, seen) for item in value]
    if not isinstance(value, PickledObject):
        return value
    state = value.state
    if isinstance(state, dict) and "_content" in state:  # omegaconf DictConfig / ListConfig
        return to_plain(state["_content"], seen)
    if isinstance(state, dict) and "_val" in state:  # omegaconf value node
        return to_plain(state["_val"], seen)
    if isinstance(state, dict):  # argparse.Namespace and other plain objects
        return {key: to_plain(item, seen) for key, item in state.items() if not key.startswith("_")}
    if len(value.args) == 1 and state is None:  # e.g. an Enum member rebuilt from its value
        return to_plain(value.args[0], seen)
    return repr(value)


def load_fairseq_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict]:
    """Returns `(state_dict, cfg)` of a fairseq checkpoint, read with `RestrictedUnpickler`.

    `cfg` is the plain-dict form of `cfg` (or of the older `args`), `{}` when the file has neither. Raises
    `MMSLlamaConversionError` when the file is not a readable `torch.save` dict with a `model` state dict.
    """
    path = Path(path)
    if not path.is_file():
        raise MMSLlamaConversionError(f"{path}: no such checkpoint file.", source=str(path))
    try:
        checkpoint = torch.load(
            path, map_location="cpu", pickle_module=restricted_pickle, weights_only=False, mmap=zipfile.is_zipfile(path)
        )
    except Exception as error:  # a truncated file, not a torch file at all, ...
        raise MMSLlamaConversionError(f"{path}: not a readable PyTorch checkpoint ({error}).", source=str(path)) from error
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("model"), dict):
        found = sorted(checkpoint)[:10] if isinstance(checkpoint, dict) else type(checkpoint).__name__
        raise MMSLlamaConversionError(
            f"{path}: not a fairseq checkpoint (expected a dict with a 'model' state dict; found {found}).",
            source=str(path),
        )
    state_dict = checkpoint["model"]
    not_tensors = sorted(key for key, value in state_dict.items() if not isinstance(value, torch.Tensor))
    if not_tensors:
        raise MMSLlamaConversionError(f"{path}: 'model' holds entries that are not tensors: {not_tensors[:10]}.")
    cfg = to_plain(checkpoint.get("cfg") if checkpoint.get("cfg") is not None else checkpoint.get("args"))
    return dict(state_dict), cfg if isinstance(cfg, dict) else {}


__all__ = ["load_fairseq_checkpoint", "RestrictedUnpickler", "PickledObject", "to_plain"]

"""Hub-ready export of an MMS-LLaMA model folder, with a model card filled from its evaluation."""

from .card import model_summary, render_card
from .export import export_model


__all__ = ["export_model", "model_summary", "render_card"]

"""Shared pytest fixtures."""

import pytest


SYNTH_SUBSET_UTTERANCES = 48
SYNTH_SUBSET_SPEAKERS = {"train": 4, "valid": 2, "test": 2}


@pytest.fixture(scope="session")
def synth_corpus(tmp_path_factory):
    """A small fixed synthetic corpus (48 utterances, 8 speakers, talking faces for the test split), made once per session.

    Returns the corpus folder (a `pathlib.Path`); see `processing.synth.corpus` for its layout.
    """
    from processing.synth.corpus import CorpusConfig, generate_corpus

    out = tmp_path_factory.mktemp("synthgrid")
    config = CorpusConfig(utterances=SYNTH_SUBSET_UTTERANCES, seed=0, speakers=dict(SYNTH_SUBSET_SPEAKERS), face_splits=("test",))
    generate_corpus(out, config, progress=False)
    return out


@pytest.fixture(scope="session")
def tiny_model_folder(tmp_path_factory):
    """A tiny random MMS-LLaMA saved as `mmsllama-train` saves a model (weights, config, processor)."""
    import torch

    from modeling_mmsllama import MMSLlamaConfig, MMSLlamaForConditionalGeneration, MMSLlamaProcessor

    folder = tmp_path_factory.mktemp("tiny_model")
    torch.manual_seed(0)
    MMSLlamaForConditionalGeneration(MMSLlamaConfig.from_preset("tiny")).eval().save_pretrained(folder)
    MMSLlamaProcessor.from_preset("tiny").save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_export(tiny_model_folder, tmp_path_factory):
    """`tiny_model_folder` exported with `hub_cards.export_model` (no evaluation), greedy by default."""
    from hub_cards import export_model

    return export_model(tiny_model_folder, tmp_path_factory.mktemp("export") / "tiny-mmsllama", num_beams=1)

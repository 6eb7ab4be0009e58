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

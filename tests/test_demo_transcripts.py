"""The committed demo model decodes fixed held-out clips exactly as it did when the fixture was recorded
(`tests/demo_transcripts.py`): transcripts greedy and beam 5 for AV, audio-only and video-only, speech-token counts,
rates and a checksum of the first generated position's logits. Refactors must leave all of them unchanged."""

import hashlib
import json

import pytest

from demo_transcripts import DEMO_MODEL, FIXTURE, clip_digest, decode, load_demo, make_clips


LOGITS_RELATIVE_TOLERANCE = 1e-4  # float32 sums of ~200 logits; a kernel change may move the last digits
RATE_TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def recorded():
    return json.loads(FIXTURE.read_text())


@pytest.fixture(scope="module")
def decoded(recorded, tmp_path_factory):
    model_digest = hashlib.sha256((DEMO_MODEL / "model.safetensors").read_bytes()).hexdigest()
    if model_digest != recorded["model_digest"]:
        pytest.fail("demo_model/model.safetensors changed since the fixture was recorded: run "
                    "`python tests/demo_transcripts.py` with the code the new model was trained with.")
    utterances = make_clips(tmp_path_factory.mktemp("demo-clips"))
    assert [u.text for u in utterances] == recorded["clips"]
    assert clip_digest(utterances) == recorded["clip_digest"], "the synthetic clips changed, not the model"
    model, processor = load_demo()
    return decode(model, processor, utterances)


@pytest.mark.parametrize("modality", ["av", "audio", "video"])
def test_transcripts_unchanged(decoded, recorded, modality):
    now, before = decoded[modality], recorded["outputs"][modality]
    assert now["beam1"] == before["beam1"]
    assert now["beam5"] == before["beam5"]
    assert now["num_speech_tokens"] == before["num_speech_tokens"]
    assert now["last_logits_argmax"] == before["last_logits_argmax"]


@pytest.mark.parametrize("modality", ["av", "audio", "video"])
def test_rates_and_logits_unchanged(decoded, recorded, modality):
    now, before = decoded[modality], recorded["outputs"][modality]
    if before["speech_rate"] is None:
        assert now["speech_rate"] is None
    else:
        assert now["speech_rate"] == pytest.approx(before["speech_rate"], abs=RATE_TOLERANCE)
    assert now["last_logits_abs_sum"] == pytest.approx(before["last_logits_abs_sum"], rel=LOGITS_RELATIVE_TOLERANCE)

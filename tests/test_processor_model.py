"""The processor's output feeds the model directly: forward with labels and generate, for every modality."""

import numpy as np
import pytest
import torch

from media_factory import frame_number_video, tone, write_clip
from modeling_mmsllama.configuration_mmsllama import MMSLlamaConfig
from modeling_mmsllama.modeling_mmsllama import MMSLlamaForConditionalGeneration
from modeling_mmsllama.processing_mmsllama import MMSLlamaProcessor


ROI = np.random.default_rng(0).integers(0, 255, (30, 96, 96), dtype=np.uint8)
AUDIO = [tone(1.2, 16_000), tone(0.5, 16_000)]


@pytest.fixture(scope="module")
def model_and_processor():
    torch.manual_seed(0)
    model = MMSLlamaForConditionalGeneration(MMSLlamaConfig.from_preset("tiny")).eval()
    return model, MMSLlamaProcessor.from_preset("tiny")


@pytest.mark.parametrize(
    "request_kwargs",
    [
        dict(videos=[ROI, ROI[:12]], audio=AUDIO, sampling_rate=16_000),
        dict(audio=AUDIO, sampling_rate=16_000),
        dict(videos=[ROI, ROI[:12]], modality="video"),
    ],
    ids=["av", "audio", "video"],
)
def test_forward_and_generate(model_and_processor, request_kwargs):
    model, processor = model_and_processor
    loss = model(**processor(**request_kwargs, text=["bin blue", "lay red"])).loss
    assert torch.isfinite(loss)
    generated = model.generate(**processor(**request_kwargs), max_new_tokens=3, do_sample=False)
    assert len(processor.batch_decode(generated)) == 2


def test_mixed_batch_runs(model_and_processor, tmp_path):
    model, processor = model_and_processor
    write_clip(tmp_path / "silent.mp4", frame_number_video(20, 96, 96), 25)
    inputs = processor(videos=[ROI, str(tmp_path / "silent.mp4")], audio=[AUDIO[0], None], sampling_rate=16_000)
    assert inputs["has_audio"].tolist() == [True, False] and inputs["has_video"].tolist() == [True, True]
    labelled = processor(
        videos=[ROI, str(tmp_path / "silent.mp4")], audio=[AUDIO[0], None], sampling_rate=16_000, text=["a", "b"]
    )
    assert torch.isfinite(model(**labelled).loss)
    assert model.generate(**inputs, max_new_tokens=2, do_sample=False).shape[0] == 2

"""The committed demo model's outputs on fixed held-out clips: recorded once, compared by `test_demo_transcripts.py`.

The clips are the test speakers' utterances of a small corpus made with the demo corpus's seed and speakers (voices
and faces the demo model never saw in training). `python tests/demo_transcripts.py` records the fixture again; do that
only when a change is meant to change the model's outputs, and say why in the commit.
"""

import hashlib
import json
from pathlib import Path

import numpy as np
import torch

from modeling_mmsllama.configuration_mmsllama import MODALITIES


DEMO_MODEL = Path(__file__).resolve().parent.parent / "demo_model"
FIXTURE = Path(__file__).resolve().parent / "fixtures" / "demo_transcripts.json"
CORPUS_UTTERANCES = 48  # indices 21-23 and 45-47 are the demo corpus's three test speakers: six clips
NUM_BEAMS = (1, 5)
MAX_NEW_TOKENS = 32


def make_clips(folder: Path) -> list:
    """The fixed clips: the test split of a 48-utterance corpus with the demo corpus's seed and speakers."""
    from processing.synth.corpus import CorpusConfig, generate_corpus
    from training.data import load_split

    generate_corpus(folder, CorpusConfig(utterances=CORPUS_UTTERANCES, seed=0, face_splits=()), progress=False)
    return load_split(folder, "test")


def clip_digest(utterances) -> str:
    """A hash of the clips' audio and frames, so a drift in clip generation is not mistaken for one of the model."""
    digest = hashlib.sha256()
    for utterance in utterances:
        digest.update(np.ascontiguousarray(utterance.audio).tobytes())
        digest.update(np.ascontiguousarray(utterance.frames).tobytes())
    return digest.hexdigest()


def load_demo():
    from modeling_mmsllama import MMSLlamaForConditionalGeneration, MMSLlamaProcessor

    model = MMSLlamaForConditionalGeneration.from_pretrained(DEMO_MODEL, dtype=torch.float32).eval()
    return model, MMSLlamaProcessor.for_model(DEMO_MODEL, model.config)


def model_inputs(processor, utterances, modality: str) -> dict:
    from modeling_mmsllama.configuration_mmsllama import AUDIO_SAMPLING_RATE

    return processor(
        videos=[u.frames for u in utterances] if modality != "audio" else None,
        audio=[u.audio.astype(np.float32) for u in utterances] if modality != "video" else None,
        sampling_rate=AUDIO_SAMPLING_RATE,
        video_is_roi=True,
        modality=modality,
    )


@torch.no_grad()
def decode(model, processor, utterances) -> dict:
    """Per modality: transcripts at each beam width, speech tokens per clip, and the logits of the first
    generated position (their sum of absolute values per clip: a cheap checksum)."""
    results = {}
    for modality in MODALITIES:
        inputs = model_inputs(processor, utterances, modality)
        out = model(**inputs, logits_to_keep=1)
        entry = {
            "num_speech_tokens": out.num_speech_tokens.tolist(),
            "speech_rate": None if out.speech_rate is None else [round(r, 6) for r in out.speech_rate.tolist()],
            "last_logits_abs_sum": [round(v, 4) for v in out.logits[:, -1].abs().sum(-1).tolist()],
            "last_logits_argmax": out.logits[:, -1].argmax(-1).tolist(),
        }
        for beams in NUM_BEAMS:
            ids = model.generate(**inputs, num_beams=beams, do_sample=False, max_new_tokens=MAX_NEW_TOKENS)
            entry[f"beam{beams}"] = processor.batch_decode(ids, skip_special_tokens=True)
        results[modality] = entry
    return results


def main() -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        utterances = make_clips(Path(folder))
        model, processor = load_demo()
        record = {
            "clips": [u.text for u in utterances],
            "clip_digest": clip_digest(utterances),
            "model_digest": hashlib.sha256((DEMO_MODEL / "model.safetensors").read_bytes()).hexdigest(),
            "outputs": decode(model, processor, utterances),
        }
    FIXTURE.write_text(json.dumps(record, indent=1) + "\n")
    print(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()

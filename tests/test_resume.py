"""Reliability of `mmsllama-train`: kill-and-resume equivalence, incomplete checkpoints, bad samples.

Resume is expected to be *exact* on one CPU process: the data order (accelerate's `SeedableRandomSampler`, or
`SeededLengthGroupedSampler` for `--train_sampling_strategy group_by_length`, both seeded by seed + epoch), the optimizer, the scheduler and torch's global generator (the model's dropout) come back from the
checkpoint, and the collator's noise, modality dropout and crops are a function of (seed, process, batch position),
not of the global generator (see `training.collator` and `MMSLlamaTrainer.position_collator`). The comparisons use
a relative tolerance of 1e-6 (a few float32 ulps) rather than bitwise equality only so that a change of kernel or
thread count does not break them; on this machine the resumed history is bitwise equal. A resume that collates even
one batch from the wrong random state shows up far above that in the gradient norm (1e-4 to 1e-2 relative when
measured), which is why gradient norms are compared as well as losses.
"""

import json
import shutil
from pathlib import Path

import pytest
import torch
import transformers.trainer
from safetensors.torch import load_file
from transformers import TrainerCallback
from transformers.trainer_utils import rotate_checkpoints

import training.cli
import training.trainer
from modeling_mmsllama import MMSLlamaInputError
from processing.manifest import read_manifest
from training.cli import train
from training.data import manifest_folder
from training.trainer import COMPLETE_MARKER, MMSLlamaTrainer, SeededLengthGroupedSampler, latest_complete_checkpoint


STEPS, INTERRUPT_AT = 6, 3  # 8 utterances / batch 2 = 4 steps per epoch: the resumed run crosses an epoch boundary
RTOL = 1e-6


def _command(data, out, *extra) -> list[str]:
    return ["--stage", "avsr", "--preset", "tiny", "--data", str(data), "--out", str(out), "--limit_train", "8",
            "--per_device_train_batch_size", "2", "--max_steps", str(STEPS), "--save_steps", str(INTERRUPT_AT),
            "--logging_steps", "1", "--seed", "7", "--report_to", "none", "--disable_tqdm", "true", *extra]  # fmt: skip


def _history(out: Path) -> list[dict]:
    state = json.loads((out / f"checkpoint-{STEPS}" / "trainer_state.json").read_text())
    return [entry for entry in state["log_history"] if "loss" in entry]


SAMPLING = {"random": [], "grouped": ["--train_sampling_strategy", "group_by_length"]}  # batches of similar length


@pytest.fixture(scope="module", params=sorted(SAMPLING))
def sampling(request) -> list[str]:
    return SAMPLING[request.param]


@pytest.fixture(scope="module")
def uninterrupted(synth_corpus, sampling, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("uninterrupted")
    train(_command(synth_corpus, out, *sampling))
    return out


class Killed(Exception):
    """Stands for the process being killed."""


class _KillAfterSave(TrainerCallback):
    def __init__(self, step: int):
        self.step = step

    def on_save(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise Killed(f"killed after saving checkpoint-{self.step}")


def test_resume_after_a_kill_matches_the_uninterrupted_run(synth_corpus, sampling, uninterrupted, tmp_path, monkeypatch,
                                                           capsys):  # fmt: skip
    class KilledTrainer(MMSLlamaTrainer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.add_callback(_KillAfterSave(INTERRUPT_AT))

    out = tmp_path / "run"
    monkeypatch.setattr(training.cli, "MMSLlamaTrainer", KilledTrainer)
    with pytest.raises(Killed):
        train(_command(synth_corpus, out, *sampling))
    monkeypatch.undo()
    assert (out / f"checkpoint-{INTERRUPT_AT}" / COMPLETE_MARKER).exists()
    assert not (out / "model.safetensors").exists()

    # The kill also caught the next checkpoint half written: no marker, truncated files. Resuming from it would fail.
    partial = out / f"checkpoint-{INTERRUPT_AT + 1}"
    shutil.copytree(out / f"checkpoint-{INTERRUPT_AT}", partial)
    (partial / COMPLETE_MARKER).unlink()
    for name in ("model.safetensors", "adapter_model.safetensors", "optimizer.pt", "trainer_state.json"):
        if (partial / name).exists():
            (partial / name).write_bytes((partial / name).read_bytes()[:100])
    capsys.readouterr()

    train(_command(synth_corpus, out, *sampling))
    assert f"resuming from {out / f'checkpoint-{INTERRUPT_AT}'}\n" in capsys.readouterr().out

    expected, resumed = _history(uninterrupted), _history(out)
    assert [e["step"] for e in resumed] == list(range(1, STEPS + 1)) == [e["step"] for e in expected]
    for key in ("loss", "grad_norm", "learning_rate", "epoch"):
        got, want = [e[key] for e in resumed], [e[key] for e in expected]
        assert got == pytest.approx(want, rel=RTOL, abs=1e-12), key
    final, reference = load_file(out / "model.safetensors"), load_file(uninterrupted / "model.safetensors")
    assert final.keys() == reference.keys()
    for name, tensor in reference.items():
        torch.testing.assert_close(final[name], tensor, rtol=RTOL, atol=1e-7, msg=name)


def test_latest_complete_checkpoint_skips_unmarked_folders(tmp_path):
    assert latest_complete_checkpoint(tmp_path) is None
    for step, complete in [(2, True), (10, True), (12, False), (30, False)]:
        (tmp_path / f"checkpoint-{step}").mkdir()
        if complete:
            (tmp_path / f"checkpoint-{step}" / COMPLETE_MARKER).write_text("ok\n")
    assert latest_complete_checkpoint(tmp_path) == str(tmp_path / "checkpoint-10")  # numeric order, not 2 > 10


# ---- bad samples ------------------------------------------------------------------------------------------------


def _corpus_with_bad_samples(corpus: Path, folder: Path) -> tuple[Path, str, str]:
    """A manifest folder over `corpus` (absolute root) whose train split holds a corrupt mp4 and an empty
    transcript; returns (folder, corrupt file, video of the empty transcript)."""
    source = manifest_folder(corpus)
    folder.mkdir()
    for split, count in (("train", 6), ("valid", 4)):
        lines = (source / f"{split}.tsv").read_text().splitlines()[1 : count + 1]
        words = (source / f"{split}.wrd").read_text().splitlines()[:count]
        if split == "train":
            video = read_manifest(source / "train.tsv")[0].video_path
            corrupt = folder / "corrupt.mp4"
            corrupt.write_bytes(Path(video).read_bytes()[:500])  # a truncated mp4
            fields = lines[1].split("\t")
            lines[1] = "\t".join([fields[0], str(corrupt), *fields[2:]])
            words[3] = ""
            empty = str(source / lines[3].split("\t")[1])
        (folder / f"{split}.tsv").write_text("\n".join([str(source), *lines]) + "\n")
        (folder / f"{split}.wrd").write_text("\n".join(words) + "\n")
    return folder, str(corrupt), empty


def _one_step(data, out, *extra) -> list[str]:
    return ["--stage", "avsr", "--preset", "tiny", "--data", str(data), "--out", str(out), "--max_steps", "1",
            "--per_device_train_batch_size", "2", "--report_to", "none", "--disable_tqdm", "true", *extra]  # fmt: skip


def test_bad_samples_are_reported_and_skipped(synth_corpus, tmp_path, capsys, caplog):
    data, corrupt, empty = _corpus_with_bad_samples(synth_corpus, tmp_path / "data")
    train(_one_step(data, tmp_path / "out"))
    assert "train: skipped 2 bad sample(s) of 6" in capsys.readouterr().out
    warnings = "\n".join(r.getMessage() for r in caplog.records if r.levelname == "WARNING")
    assert corrupt in warnings and f"{empty}: empty transcript" in warnings
    assert (tmp_path / "out" / "model.safetensors").exists()


def test_bad_sample_stops_the_run_when_not_skipping(synth_corpus, tmp_path):
    data, corrupt, _ = _corpus_with_bad_samples(synth_corpus, tmp_path / "data")
    with pytest.raises(MMSLlamaInputError, match=corrupt):
        train(_one_step(data, tmp_path / "out", "--skip_bad_samples", "false"))
    assert not (tmp_path / "out" / "model.safetensors").exists()


def test_bad_samples_are_not_hidden_by_the_cache(synth_corpus, tmp_path):
    data, corrupt, _ = _corpus_with_bad_samples(synth_corpus, tmp_path / "data")
    train(_one_step(data, tmp_path / "skipping"))
    with pytest.raises(MMSLlamaInputError, match=corrupt):
        train(_one_step(data, tmp_path / "strict", "--skip_bad_samples", "false"))


def test_length_grouped_batches_follow_seed_and_epoch():
    lengths = [int(n) for n in torch.randint(20, 130, (256,), generator=torch.Generator().manual_seed(0))]
    sampler = SeededLengthGroupedSampler(8, lengths, seed=3)
    first = list(sampler)
    assert sorted(first) == list(range(256)) and list(sampler) == first
    sampler.set_epoch(1)
    assert list(sampler) != first
    padded = [max(lengths[i] for i in first[k : k + 8]) for k in range(0, 256, 8)]
    shuffled = torch.randperm(256, generator=torch.Generator().manual_seed(1)).tolist()
    padded_random = [max(lengths[i] for i in shuffled[k : k + 8]) for k in range(0, 256, 8)]
    assert sum(padded) < 0.8 * sum(padded_random)  # similar lengths batched together: far less padding


def test_old_checkpoints_go_only_after_the_new_one_is_complete(synth_corpus, tmp_path, monkeypatch):
    newest_complete = []

    def checked_rotate(output_dir, save_total_limit=None, *args, **kwargs):
        if save_total_limit:
            newest = max(Path(output_dir).glob("checkpoint-*"), key=lambda p: int(p.name.rsplit("-", 1)[1]))
            newest_complete.append((newest / COMPLETE_MARKER).exists())
        return rotate_checkpoints(output_dir, save_total_limit, *args, **kwargs)

    monkeypatch.setattr(training.trainer, "rotate_checkpoints", checked_rotate)
    monkeypatch.setattr(transformers.trainer, "rotate_checkpoints", checked_rotate)
    out = tmp_path / "out"
    train(_one_step(synth_corpus, out, "--max_steps", "3", "--save_steps", "1", "--save_total_limit", "1"))
    assert newest_complete == [True, True, True]
    assert [p.name for p in out.glob("checkpoint-*")] == ["checkpoint-3"]


def test_length_grouped_training_evaluates_too(synth_corpus, tmp_path):
    train(_one_step(synth_corpus, tmp_path / "out", "--train_sampling_strategy", "group_by_length", "--max_steps", "2",
                    "--eval_strategy", "steps", "--eval_steps", "2", "--wer_samples", "2"))  # fmt: skip
    state = json.loads((tmp_path / "out" / "checkpoint-2" / "trainer_state.json").read_text())
    logged = {key for entry in state["log_history"] for key in entry}
    assert {"eval_loss", "eval_wer"} <= logged

"""`mmsllama-train --deepspeed training/zero{2,3}.json` on CPU (gloo, one process) against the same run without it.

The three runs share the command, the seed and so the data order, the collator's noise/dropout/crops (seeded per
batch position) and the initial weights. Exact equality is not expected: DeepSpeed flattens the trainable
parameters and their gradients into contiguous fp32 buffers and computes the clipping norm and the AdamW update over
those (ZeRO-3 also gathers and re-partitions each parameter around every use), so sums are taken in another order
and results may differ in the last bits. Measured here after 3 steps at lr 1e-3 (each step moves a weight by ~1e-3;
the LoRA B matrices, zero at initialisation, reach 2e-3): ZeRO-2 gave bitwise-equal losses, gradient norms and saved
weights; ZeRO-3 differed by 2e-7 relative in the losses and 3e-7 absolute in the weights. The tolerances (losses
1e-5 relative, weights 1e-5 absolute, logits of size ~5 1e-4 absolute) keep 30x headroom over that and stay 200x below
what training changes (checked below), so a run that skipped a step, saw other data or other initial weights, or
saved the partitioned (empty) ZeRO-3 weights fails.

DeepSpeed's CPU accelerator JIT-compiles its shared-memory collective (`deepspeed_shm_comm`) the first time a
process group is created on a machine (~40-90 s, cached in ~/.cache/torch_extensions); no optimizer op is built,
because the configs leave the optimizer to `Trainer` (`zero_allow_untested_optimizer`).
"""

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file


deepspeed = pytest.importorskip("deepspeed")

from modeling_mmsllama import MMSLlamaForConditionalGeneration  # noqa: E402
from modeling_mmsllama.processing_mmsllama import MMSLlamaProcessor  # noqa: E402
import training.cli  # noqa: E402
from training.cli import train  # noqa: E402
from training.collator import AVSRCollator  # noqa: E402
from training.data import load_split  # noqa: E402
from training.trainer import single_process_group_env  # noqa: E402


CONFIGS = Path(__file__).resolve().parents[1] / "training"
RUNS = ("plain", "zero2", "zero3")
LOSS_RTOL, WEIGHT_ATOL, LOGIT_ATOL = 1e-5, 1e-5, 1e-4


def _end_deepspeed() -> None:
    """Leaves the process as it was before DeepSpeed: no process group, no ZeRO-3 config, fresh accelerate state."""
    import deepspeed.comm.comm as ds_comm
    from accelerate.state import AcceleratorState
    from transformers.integrations.deepspeed import unset_hf_deepspeed_config

    unset_hf_deepspeed_config()
    if ds_comm.cdb is not None and ds_comm.cdb.is_initialized():
        ds_comm.destroy_process_group()  # also drops DeepSpeed's cached groups (deepspeed.utils.groups)
    ds_comm.cdb = None
    AcceleratorState._reset_state(reset_partial_state=True)


@pytest.fixture(scope="module")
def runs(synth_corpus, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("deepspeed")
    common = ["--stage", "avsr", "--preset", "tiny", "--data", str(synth_corpus), "--limit_train", "8",
              "--per_device_train_batch_size", "2", "--max_steps", "3", "--learning_rate", "1e-3",
              "--logging_steps", "1", "--seed", "7", "--report_to", "none", "--disable_tqdm", "true"]  # fmt: skip
    outs = {}
    with pytest.MonkeyPatch.context() as patch:
        for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT",
                     "ACCELERATE_USE_DEEPSPEED", "ACCELERATE_DEEPSPEED_ZERO_STAGE"):  # fmt: skip
            patch.delenv(name, raising=False)  # restored (removed) afterwards, whatever the runs set
        outs["plain"] = root / "plain"
        train(common + ["--out", str(outs["plain"])])
        try:
            for name in ("zero2", "zero3"):
                for key, value in single_process_group_env().items():
                    patch.setenv(key, value)
                outs[name] = root / name
                train(common + ["--out", str(outs[name]), "--deepspeed", str(CONFIGS / f"{name}.json")])
                _end_deepspeed()
        finally:
            _end_deepspeed()
    return outs


def _history(out: Path) -> list[dict]:
    state = json.loads(max(out.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1])).joinpath("trainer_state.json").read_text())
    return [entry for entry in state["log_history"] if "loss" in entry]


@pytest.fixture(scope="module")
def batch(runs, synth_corpus) -> dict:
    processor = MMSLlamaProcessor.from_pretrained(runs["plain"], trust_remote_code=True)
    return AVSRCollator(processor)(load_split(synth_corpus, "valid", 3))


def _logits(folder: Path, batch: dict) -> torch.Tensor:
    model = MMSLlamaForConditionalGeneration.from_pretrained(folder).eval()
    with torch.no_grad():
        return model(**batch).logits


@pytest.mark.parametrize("stage", ["zero2", "zero3"])
def test_deepspeed_run_matches_the_run_without_it(runs, batch, stage):
    plain, zero = _history(runs["plain"]), _history(runs[stage])
    assert [e["step"] for e in zero] == [1, 2, 3] == [e["step"] for e in plain]
    assert [e["loss"] for e in zero] == pytest.approx([e["loss"] for e in plain], rel=LOSS_RTOL)
    assert [e["learning_rate"] for e in zero] == pytest.approx([e["learning_rate"] for e in plain], rel=1e-9)

    reference, weights = load_file(runs["plain"] / "model.safetensors"), load_file(runs[stage] / "model.safetensors")
    assert weights.keys() == reference.keys()
    for name, tensor in reference.items():
        assert weights[name].shape == tensor.shape, name  # a partitioned ZeRO-3 tensor would be empty
        torch.testing.assert_close(weights[name], tensor, rtol=0, atol=WEIGHT_ATOL, msg=name)
    torch.testing.assert_close(_logits(runs[stage], batch), _logits(runs["plain"], batch), rtol=0, atol=LOGIT_ATOL)


def test_training_moved_the_weights_far_beyond_the_tolerance(runs):
    adapter = load_file(runs["plain"] / "adapter" / "adapter_model.safetensors")
    lora_b = [t for name, t in adapter.items() if "lora_B" in name]  # zero at initialisation
    assert lora_b and max(t.abs().max().item() for t in lora_b) > 100 * WEIGHT_ATOL


def test_the_configs_leave_batch_sizes_and_the_optimizer_to_trainer():
    for name in ("zero2", "zero3"):
        config = json.loads((CONFIGS / f"{name}.json").read_text())
        assert config["zero_optimization"]["stage"] == int(name[-1])
        assert "optimizer" not in config and "scheduler" not in config and config["zero_allow_untested_optimizer"]
        assert "train_batch_size" not in config  # "auto" would break multi-process CPU runs (see docs/training.md)
        assert config["train_micro_batch_size_per_gpu"] == config["gradient_accumulation_steps"] == "auto"
    assert json.loads((CONFIGS / "zero3.json").read_text())["zero_optimization"]["stage3_gather_16bit_weights_on_model_save"]

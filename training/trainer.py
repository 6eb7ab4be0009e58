"""`Trainer` with generation-based WER on a validation split and checkpoints that count only once complete."""

import os
import socket
from pathlib import Path

import torch
from transformers import Trainer
from transformers.trainer_pt_utils import LengthGroupedSampler, get_length_grouped_indices
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, rotate_checkpoints

from .evaluation import transcribe, word_error_rate


COMPLETE_MARKER = "checkpoint_complete"  # written last: a checkpoint without it was interrupted while being saved


def single_process_group_env() -> dict[str, str]:
    """The launcher variables of a one-process distributed group on this machine (a free local port), for running
    DeepSpeed without a launcher (which otherwise looks for MPI)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return {"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "1",
            "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}  # fmt: skip


def latest_complete_checkpoint(output_dir: str | os.PathLike) -> str | None:
    """The newest `checkpoint-N` folder that was fully written, or None."""
    folders = [p for p in Path(output_dir).glob(f"{PREFIX_CHECKPOINT_DIR}-*") if (p / COMPLETE_MARKER).exists()]
    if not folders:
        return None
    return str(max(folders, key=lambda p: int(p.name.rsplit("-", 1)[1])))


class SeededLengthGroupedSampler(LengthGroupedSampler):
    """`LengthGroupedSampler` (a shuffle, then similar lengths batched together within groups of about 50 batches)
    whose shuffle is a function of (seed, epoch), as accelerate's `SeedableRandomSampler` is for random batches: every
    process draws the same order, and a resumed run the same batches as an uninterrupted one."""

    def __init__(self, batch_size: int, lengths: list[int], seed: int):
        super().__init__(batch_size, lengths=lengths)
        self.seed, self.epoch = seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return iter(get_length_grouped_indices(self.lengths, self.batch_size, generator=generator))


class MMSLlamaTrainer(Trainer):
    """Adds to `Trainer.evaluate` the WER of greedy transcripts of `wer_utterances` (a validation split, never the
    test split) for models that generate, and marks each checkpoint complete after everything in it is written.

    Args:
        eval_data_collator (*optional*): collator for evaluation batches (default: the training collator).
        wer_utterances (`list[Utterance]`, *optional*): validation utterances to transcribe at each evaluation.
        wer_processor (`MMSLlamaProcessor`, *optional*): featurises them.
    """

    def __init__(self, *args, eval_data_collator=None, wer_utterances=None, wer_processor=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.eval_data_collator = eval_data_collator
        self.wer_utterances = wer_utterances
        self.wer_processor = wer_processor

    def train(self, *args, **kwargs):
        """`Trainer.train`; under DeepSpeed ZeRO-3 it then gives the model its full weights back (see
        `release_zero3`), so that the trained module can be merged (LoRA) and saved like one trained without ZeRO."""
        output = super().train(*args, **kwargs)
        if self.is_deepspeed_enabled and self.accelerator.state.deepspeed_plugin.zero_stage == 3:
            self.release_zero3()
        return output

    def release_zero3(self) -> None:
        """Ends ZeRO-3 partitioning of the trained model: gathers each parameter (a collective call, one parameter at
        a time, so every process must call this), keeps the full tensor on the process that saves (elsewhere the
        parameter stays empty) and removes DeepSpeed's hooks (`DeepSpeedEngine.destroy`). Training cannot continue
        with this trainer afterwards; saving, merging and generating work as without DeepSpeed."""
        import deepspeed

        keep = self.args.should_save
        for parameter in self.model.parameters():
            if not hasattr(parameter, "ds_id"):
                continue
            with deepspeed.zero.GatheredParameters([parameter], modifier_rank=None):
                full = parameter.data.detach().clone() if keep else None
            if full is not None:
                parameter.data = full
        self.model_wrapped.destroy()

    def _run_epoch(self, model, epoch, train_dataloader, steps_in_epoch, num_update_steps_per_epoch, trial,
                   ignore_keys_for_eval, start_time, resume_from_checkpoint, epochs_trained,
                   steps_trained_in_current_epoch):  # fmt: skip
        """Positions the training collator's per-batch seeds at this epoch's first batch (see `position_collator`)."""
        skipped = 0
        if resume_from_checkpoint is not None and epoch == epochs_trained and not self.args.ignore_data_skip:
            skipped = steps_trained_in_current_epoch
        self.position_collator(epoch, train_dataloader, skipped)
        return super()._run_epoch(
            model, epoch, train_dataloader, steps_in_epoch, num_update_steps_per_epoch, trial, ignore_keys_for_eval,
            start_time, resume_from_checkpoint, epochs_trained, steps_trained_in_current_epoch,
        )  # fmt: skip

    @property
    def _data_seed(self) -> int:
        """The seed of the data order and of the collator's draws: `--data_seed`, else `--seed`."""
        return self.args.data_seed if self.args.data_seed is not None else self.args.seed

    def _get_train_sampler(self, train_dataset=None):
        """`--train_sampling_strategy group_by_length` batches utterances of similar duration together (by the
        dataset's `lengths`; 35% fewer padded frames on the synthetic corpus); otherwise as `Trainer`."""
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        if self.args.train_sampling_strategy != "group_by_length" or not hasattr(dataset, "lengths"):
            return super()._get_train_sampler(train_dataset)
        batch_size = self.args.train_batch_size * self.args.gradient_accumulation_steps
        return SeededLengthGroupedSampler(batch_size, dataset.lengths, self._data_seed)

    def _get_eval_sampler(self, eval_dataset):
        """Under `group_by_length`, evaluation batches are length-grouped too (in a fixed order); else as `Trainer`
        (whose grouped evaluation sampler needs `input_ids` in every item)."""
        if self.args.train_sampling_strategy != "group_by_length" or not hasattr(eval_dataset, "lengths"):
            return super()._get_eval_sampler(eval_dataset)
        return SeededLengthGroupedSampler(self.args.eval_batch_size, eval_dataset.lengths, self._data_seed)

    def position_collator(self, epoch: int, train_dataloader, skipped_batches: int = 0) -> None:
        """Makes the training collator's random draws a function of (seed, process, batch position in the run).

        `Trainer` checkpoints torch's global generator, but accelerate's dataloader collates one batch ahead of the
        step being trained, so a collator drawing from that generator cannot be resumed exactly (the look-ahead
        batch is collated before the checkpoint's RNG state is taken, and again from another state after a resume).
        A collator with `seed`, `stream` and `batches_collated` attributes (`AVSRCollator`) is given the run seed
        (`data_seed`, else `seed`), the process index and the number of batches of the run before this epoch's
        first one to be collated (batches skipped on resume included); it then never touches the global generator.
        """
        collator = self.data_collator
        if not all(hasattr(collator, name) for name in ("seed", "stream", "batches_collated")):
            return
        try:
            per_epoch = len(train_dataloader)
        except TypeError:  # an iterable dataset: no epochs to count, keep counting
            return
        if collator.seed is None:
            collator.seed = self._data_seed
        collator.stream = self.args.process_index
        collator.batches_collated = epoch * per_epoch + skipped_batches

    def get_eval_dataloader(self, eval_dataset=None):
        """Evaluation batches use `eval_data_collator` (no noise, no augmentation) when one is given."""
        train_collator = self.data_collator
        self.data_collator = self.eval_data_collator or train_collator
        try:
            return super().get_eval_dataloader(eval_dataset)
        finally:
            self.data_collator = train_collator

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = "eval") -> dict:
        metrics = super().evaluate(eval_dataset, ignore_keys, metric_key_prefix)
        if self.wer_utterances:
            out = transcribe(self.model, self.wer_processor, self.wer_utterances, num_beams=1, progress=False)
            wer = {f"{metric_key_prefix}_wer": word_error_rate([u.text for u in self.wer_utterances], out["hypotheses"])}
            self.log(wer)
            metrics.update(wer)
            self.model.train()
        return metrics

    def _save_checkpoint(self, model, trial) -> None:
        """Saves as `Trainer` does, marks the checkpoint complete, and only then deletes checkpoints beyond
        `save_total_limit` (`Trainer` deletes them before this method could mark the new one: a kill in between
        would leave no complete checkpoint to resume from)."""
        limit, self.args.save_total_limit = self.args.save_total_limit, None
        try:
            super()._save_checkpoint(model, trial)
        finally:
            self.args.save_total_limit = limit
        run_dir = self._get_output_dir(trial=trial)
        folder = Path(run_dir) / f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
        if self.args.should_save and folder.exists():
            (folder / COMPLETE_MARKER).write_text("ok\n")
            rotate_checkpoints(run_dir, limit, self.state.best_model_checkpoint, use_mtime=True)

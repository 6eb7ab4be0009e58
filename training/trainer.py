"""`Trainer` with generation-based WER on a validation split and checkpoints that count only once complete."""

import os
from pathlib import Path

from transformers import Trainer
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from .evaluation import transcribe, word_error_rate


COMPLETE_MARKER = "checkpoint_complete"  # written last: a checkpoint without it was interrupted while being saved


def latest_complete_checkpoint(output_dir: str | os.PathLike) -> str | None:
    """The newest `checkpoint-N` folder that was fully written, or None."""
    folders = [p for p in Path(output_dir).glob(f"{PREFIX_CHECKPOINT_DIR}-*") if (p / COMPLETE_MARKER).exists()]
    if not folders:
        return None
    return str(max(folders, key=lambda p: int(p.name.rsplit("-", 1)[1])))


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
        super()._save_checkpoint(model, trial)
        folder = Path(self._get_output_dir(trial=trial)) / f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
        if self.args.should_save and folder.exists():
            (folder / COMPLETE_MARKER).write_text("ok\n")

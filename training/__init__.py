"""Training and evaluation of MMS-LLaMA with Trainer, PEFT and DeepSpeed."""

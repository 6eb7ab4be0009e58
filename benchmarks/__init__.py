"""Efficiency benchmarks of MMS-LLaMA against the Llama-AVSR-style baseline (issue 8).

`python -m benchmarks.run [--quick]` writes `benchmarks/RESULTS.md` and PNG plots. Parts:

- `token_rate`: speech tokens per second into the LLM for each compression mode over a manifest.
- `flops`: FLOPs per utterance per component for the full-size presets (meta device, `FlopCounterMode`),
  and the saving of a shorter Whisper window.
- `cpu`: wall-clock latency, throughput and memory on the CPU with random weights.
- `gpu`: the same at paper-3b size in bf16 on a CUDA device (a standalone script).
"""

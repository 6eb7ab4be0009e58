"""The synthetic GRID-style audio-visual corpus: espeak-ng speech with exact timings, rendered mouths and faces.

Entry points: `mmsllama-synth` (`cli.py`), `generate_corpus` / `CorpusConfig` / `load_corpus_dataset`
(`corpus.py`). See docs/corpus.md.
"""

"""`python -m benchmarks.ablation_trained`: the paper's ablation rows trained and measured (tiny preset, two steps)."""

import json

import pytest

from benchmarks import ablation_trained


def test_rows_train_with_the_recipe_flags_and_their_own_config(tmp_path):
    args = ablation_trained.parse_args(["--steps", "300", "--data", "corpus", "--encoders", "enc"])
    argvs = {row: ablation_trained.train_argv(row, args, tmp_path / row) for row in ablation_trained.ROWS}
    for row, argv in argvs.items():
        value = lambda flag: argv[argv.index(flag) + 1]  # noqa: E731
        assert value("--max_steps") == "300" and value("--warmup_steps") == "12"  # 100 of 2,500 scaled
        assert value("--learning_rate") == "1e-3" and value("--lora_r") == "0" and value("--eval_strategy") == "no"
        overrides = json.loads(value("--config_overrides"))
        assert overrides.items() >= ablation_trained.ROWS[row][1].items()
        # only the Q-Former rows with the predictor load it (the others have none to load into)
        assert ("--rate-predictor" in argv) == (row in ("qformer", "qformer_global")), row
    assert "queries_per_second" not in json.loads(argvs["baseline"][argvs["baseline"].index("--config_overrides") + 1])
    assert json.loads(argvs["qformer_global"][argvs["qformer_global"].index("--config_overrides") + 1])["qformer_window"] is None


def test_steps_below_two_are_refused():
    with pytest.raises(SystemExit):
        ablation_trained.parse_args(["--steps", "1"])


@pytest.mark.slow
def test_ablation_trains_measures_and_writes_every_row(synth_corpus, tiny_model_folder, tmp_path):
    out = tmp_path / "RESULTS_ablation.md"
    out.write_text(f"old table\n{ablation_trained.NOTES_MARKER}\nhand-written reading\n")
    results = ablation_trained.main(["--preset", "tiny", "--data", str(synth_corpus), "--encoders", str(tiny_model_folder),
                                     "--rate-predictor", str(tiny_model_folder), "--steps", "2", "--batch_size", "2",
                                     "--test_utterances", "3", "--latency_clips", "2", "--runs", str(tmp_path / "runs"),
                                     "--out", str(out)])  # fmt: skip
    by_row = {r["row"]: r for r in results}
    assert list(by_row) == list(ablation_trained.ROWS)
    # the token rates the modes promise: 25 and 12.5 tokens/s for the convolution rows, about f_Q for the Q-Former
    assert by_row["baseline"]["tokens_per_second"] == pytest.approx(25, rel=0.1)
    assert by_row["fusion_only"]["tokens_per_second"] == pytest.approx(12.5, rel=0.1)
    assert 2.5 < by_row["qformer_no_rate"]["tokens_per_second"] <= 4.5
    for result in results:
        assert 0 <= result["wer_clean"] and 0 <= result["wer_-5db"]
        assert result["s_per_step"] > 0 and result["peak_rss_gib"] > 0.1
        assert result["latency_b1_s"] > 0 and result["latency_b8_s"] > 0
        assert (tmp_path / "runs" / result["row"] / "avsr" / "model.safetensors").exists()
    text = out.read_text()
    assert "old table" not in text and text.rstrip().endswith("hand-written reading")
    assert "| qformer_global |" in text and (tmp_path / "RESULTS_ablation.png").exists()
    assert json.loads(out.with_suffix(".json").read_text()) == results

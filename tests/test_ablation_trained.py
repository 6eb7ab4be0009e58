"""`python -m benchmarks.ablation_trained`: the paper's ablation rows trained and measured (tiny preset, four steps)."""

import json

import pytest

from benchmarks import ablation_trained


def test_rows_train_with_the_recipe_flags_and_their_own_config(tmp_path):
    args = ablation_trained.parse_args(["--steps", "300", "--data", "corpus", "--encoders", "enc"])
    argvs = {row: ablation_trained.train_argv(row, args, tmp_path / row) for row in ablation_trained.ROWS}
    for row, argv in argvs.items():
        value = lambda flag: argv[argv.index(flag) + 1]  # noqa: E731
        assert value("--max_steps") == "300" and value("--warmup_steps") == "10"  # 100 of 2,900 scaled
        assert value("--learning_rate") == "1e-3" and value("--lora_r") == "0" and value("--eval_strategy") == "no"
        overrides = json.loads(value("--config_overrides"))
        assert overrides.items() >= ablation_trained.ROWS[row][1].items()
        # only the Q-Former rows with the predictor load it (the others have none to load into)
        assert ("--rate-predictor" in argv) == (row in ("qformer", "qformer_global")), row
    assert "queries_per_second" not in json.loads(argvs["baseline"][argvs["baseline"].index("--config_overrides") + 1])
    assert json.loads(argvs["qformer_global"][argvs["qformer_global"].index("--config_overrides") + 1])["qformer_window"] is None


def test_qformer_rows_follow_the_recipe_curriculum_within_the_budget(tmp_path):
    args = ablation_trained.parse_args(["--steps", "1000", "--data", "corpus", "--encoders", "enc"])
    for row in ablation_trained.ROWS:
        high, low = ablation_trained.curriculum_steps(row, args)
        assert high + low == 1000
        assert (high, low) == ((586, 414) if ablation_trained.is_qformer(row) else (0, 1000)), row  # 1,700 : 1,200
    value = lambda argv, flag: argv[argv.index(flag) + 1]  # noqa: E731
    first = ablation_trained.train_argv("qformer", args, tmp_path / "high", 586, high_rate=True)
    assert json.loads(value(first, "--config_overrides"))["queries_per_second"] == 7.5
    assert value(first, "--max_steps") == "586" and "--rate-predictor" in first
    second = ablation_trained.low_rate_argv("qformer_no_rate", args, tmp_path / "high", tmp_path / "low", 414)
    overrides = json.loads(value(second, "--config_overrides"))
    assert overrides == {"queries_per_second": 3.0, "use_rate_predictor": False, "min_queries": 3}
    assert value(second, "--init") == str(tmp_path / "high") and value(second, "--learning_rate") == "5e-4"
    assert value(second, "--max_steps") == "414" and value(second, "--warmup_steps") == "10"  # 30 of 1,200 scaled
    plain = ablation_trained.parse_args(["--steps", "1000", "--curriculum", "0"])
    assert ablation_trained.curriculum_steps("qformer", plain) == (0, 1000)
    with pytest.raises(SystemExit):
        ablation_trained.parse_args(["--curriculum", "1"])


def test_steps_below_two_are_refused():
    with pytest.raises(SystemExit):
        ablation_trained.parse_args(["--steps", "1"])


@pytest.mark.slow
def test_ablation_trains_measures_and_writes_every_row(synth_corpus, tiny_model_folder, tmp_path):
    out = tmp_path / "RESULTS_ablation.md"
    out.write_text(f"old table\n{ablation_trained.NOTES_MARKER}\nhand-written reading\n")
    results = ablation_trained.main(["--preset", "tiny", "--data", str(synth_corpus), "--encoders", str(tiny_model_folder),
                                     "--rate-predictor", str(tiny_model_folder), "--steps", "4", "--batch_size", "2",
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
        # the Q-Former rows trained their curriculum's high-rate part first (three steps of the four)
        assert (tmp_path / "runs" / result["row"] / "avsr-high").exists() == ablation_trained.is_qformer(result["row"])
    text = out.read_text()
    assert "old table" not in text and text.rstrip().endswith("hand-written reading")
    assert "| qformer_global |" in text and (tmp_path / "RESULTS_ablation.png").exists()
    assert json.loads(out.with_suffix(".json").read_text()) == results

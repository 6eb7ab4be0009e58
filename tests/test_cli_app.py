"""`mmsllama transcribe | export | info`: outputs, formats and exit codes."""

import json

from hub_cards.cli import EXIT_FAILED_INPUTS, EXIT_OK, EXIT_USAGE, main
from test_pipeline import parse_srt, parse_vtt


FAST = ["--num-beams", "1", "--max-new-tokens", "4", "--quiet"]


def test_transcribe_formats_and_globs(tiny_export, synth_corpus, tmp_path, capsys):
    speaker = sorted(p for p in (synth_corpus / "roi88").iterdir() if p.is_dir())[0]
    pattern = str(speaker / "*.mp4")
    out = tmp_path / "subs"
    for fmt in ("srt", "vtt", "json", "txt"):
        assert main(["transcribe", pattern, "--model", str(tiny_export), "--format", fmt, "-o", str(out),
                     "--batch-size", "4", *FAST]) == EXIT_OK  # fmt: skip
    stems = {p.stem for p in speaker.glob("*.mp4")}
    assert {p.stem for p in out.glob("*.srt")} == stems
    for path in out.glob("*.json"):
        result = json.loads(path.read_text())
        text = (out / f"{path.stem}.txt").read_text().strip()
        assert result["text"] == text
        cues = parse_srt((out / f"{path.stem}.srt").read_text()) if text else []
        assert [c[2] for c in cues] == [c["text"] for c in result["chunks"] if c["text"]]
        if text:
            assert parse_vtt((out / f"{path.stem}.vtt").read_text())[0][2] == cues[0][2]


def test_transcribe_stdout_json_and_exit_codes(tiny_export, synth_corpus, tmp_path, capsys):
    clip = str(sorted((synth_corpus / "roi88").rglob("*.mp4"))[0])
    assert main(["transcribe", clip, "--model", str(tiny_export), "--format", "json", *FAST]) == EXIT_OK
    result = json.loads(capsys.readouterr().out)
    assert result["file"] == clip and result["chunks"]
    # one missing file among good ones: the good one is transcribed, exit code 1
    code = main(["transcribe", clip, str(tmp_path / "missing.mp4"), "--model", str(tiny_export), *FAST])
    captured = capsys.readouterr()
    assert code == EXIT_FAILED_INPUTS and "missing.mp4: file not found" in captured.err and captured.out.strip()
    # an unreadable file
    (tmp_path / "broken.mp4").write_bytes(b"not a video")
    assert main(["transcribe", str(tmp_path / "broken.mp4"), "--model", str(tiny_export), *FAST]) == EXIT_FAILED_INPUTS
    assert "broken.mp4" in capsys.readouterr().err
    assert main(["transcribe", str(tmp_path / "*.nothing"), "--model", str(tiny_export), *FAST]) == EXIT_USAGE
    assert main(["transcribe", clip, "--model", str(tmp_path / "no_model"), *FAST]) == EXIT_USAGE
    assert "not a model folder" in capsys.readouterr().err


def test_export_and_info(tiny_model_folder, tmp_path, capsys):
    out = tmp_path / "exported"
    assert main(["export", "--model", str(tiny_model_folder), "--out", str(out)]) == EXIT_OK
    assert (out / "README.md").exists() and (out / "pipeline_mmsllama.py").exists()
    assert main(["export", "--model", str(tiny_model_folder), "--out", str(out)]) == EXIT_USAGE  # not empty
    capsys.readouterr()
    assert main(["info", "--model", str(out), "--json"]) == EXIT_OK
    info = json.loads(capsys.readouterr().out)["model"]
    assert info["tokens_per_second_range"] == [3.0, 6.0] and info["max_clip_seconds"] == 5.0
    assert info["parameters"] == sum(info["parts"].values())
    assert main(["info", "--model", str(out)]) == EXIT_OK
    assert "speech tokens per second" in capsys.readouterr().out

"""LRS3-style manifest reading and writing (processing.manifest)."""

from dataclasses import replace
from pathlib import Path

import pytest

from processing.manifest import (
    LRS3_SPEECH_RATE_CONSTANT,
    ManifestEntry,
    ManifestError,
    manifest_to_dataset,
    read_manifest,
    read_speech_rate_constant,
    speech_rate_label,
    write_manifest,
    write_manifest_metadata,
)


from benchmarks.common import LRS3_TEST_TSV as LRS3_TEST_MANIFEST  # noqa: E402  (--lrs3-manifest / $MMSLLAMA_LRS3_TEST_TSV)


def _entries():
    return [
        ManifestEntry("synthgrid/roi88", "s000/u00000.mp4", "s000/u00000.mp4", 50, 32000, 1.11, "bin blue at a two now"),
        ManifestEntry("synthgrid/roi88", "s001/u00001.mp4", "/abs/u00001.wav", 75, 48000, 0.74, "set red by z nine soon"),
    ]


def test_round_trip_resolves_relative_paths_against_the_tsv_folder(tmp_path):
    write_manifest(tmp_path / "train.tsv", _entries())
    assert (tmp_path / "train.tsv").read_text().splitlines()[0] == "."
    assert (tmp_path / "train.wrd").read_text() == "bin blue at a two now\nset red by z nine soon\n"
    raw = read_manifest(tmp_path / "train.tsv", resolve=False)
    assert raw == _entries()
    resolved = read_manifest(tmp_path / "train.tsv")
    assert resolved[0].video_path == str(tmp_path.resolve() / "s000/u00000.mp4")
    assert resolved[1].audio_path == "/abs/u00001.wav"
    assert resolved[0].duration_s == 2.0


def test_phoneme_labels_round_trip_and_must_match_in_length(tmp_path):
    entries = [replace(e, phonemes=p) for e, p in zip(_entries(), ["b ɪ n", "s ɛ t"])]
    write_manifest(tmp_path / "train.tsv", entries)
    assert (tmp_path / "train.phn").read_text(encoding="utf-8") == "b ɪ n\ns ɛ t\n"
    assert read_manifest(tmp_path / "train.tsv", resolve=False) == entries
    (tmp_path / "train.phn").write_text("b ɪ n\n", encoding="utf-8")
    with pytest.raises(ManifestError, match="train.phn: 1 lines for 2 utterances"):
        read_manifest(tmp_path / "train.tsv")
    with pytest.raises(ValueError, match="every entry or none"):
        write_manifest(tmp_path / "x.tsv", [entries[0], _entries()[1]])


def test_phoneme_spans_round_trip_and_match_the_phonemes(tmp_path):
    spans = ["0.100-0.180 0.180-0.250 0.250-0.400", "0.050-0.120 0.120-0.300 0.300-0.330"]
    entries = [replace(e, phonemes="b ɪ n", phoneme_times=t) for e, t in zip(_entries(), spans)]
    write_manifest(tmp_path / "train.tsv", entries)
    assert (tmp_path / "train.ali").read_text(encoding="utf-8") == "".join(t + "\n" for t in spans)
    assert read_manifest(tmp_path / "train.tsv", resolve=False) == entries
    (tmp_path / "train.ali").write_text(spans[0] + "\n0.050-0.120\n", encoding="utf-8")
    with pytest.raises(ManifestError, match=r"train.ali:2: 1 spans for 3 phonemes"):
        read_manifest(tmp_path / "train.tsv")


def test_without_wrd_transcripts_are_none(tmp_path):
    entries = [ManifestEntry("t", "a.mp4", "a.wav", 10, 6400, 1.0)]
    write_manifest(tmp_path / "x.tsv", entries, root="/")
    assert not (tmp_path / "x.wrd").exists()
    assert read_manifest(tmp_path / "x.tsv")[0].transcript is None


@pytest.mark.parametrize(
    "content, message",
    [
        ("", "empty manifest"),
        (".\na\tb\tc\t1\t2\n", "expected 6 tab-separated fields, found 5"),
        (".\na\tb\tc\tone\t2\t1.0\n", "bad number"),
    ],
)
def test_malformed_manifests_name_file_and_line(tmp_path, content, message):
    path = tmp_path / "bad.tsv"
    path.write_text(content)
    with pytest.raises(ManifestError, match=message) as error:
        read_manifest(path)
    assert "bad.tsv" in str(error.value)


def test_missing_manifest_and_wrd_length_mismatch(tmp_path):
    with pytest.raises(ManifestError, match="not found"):
        read_manifest(tmp_path / "nope.tsv")
    write_manifest(tmp_path / "train.tsv", _entries())
    (tmp_path / "train.wrd").write_text("only one line\n")
    with pytest.raises(ManifestError, match="1 transcripts for 2 utterances"):
        read_manifest(tmp_path / "train.tsv")


def test_speech_rate_label_and_folder_constant(tmp_path):
    assert speech_rate_label(6, 50) == round(6 / 2.0 / LRS3_SPEECH_RATE_CONSTANT, 2)
    assert speech_rate_label(6, 50, constant=3.0) == 1.0
    with pytest.raises(ValueError, match="num_video_frames must be positive"):
        speech_rate_label(6, 0)
    assert read_speech_rate_constant(tmp_path) == LRS3_SPEECH_RATE_CONSTANT
    write_manifest_metadata(tmp_path, 2.5, variant="roi88")
    assert read_speech_rate_constant(tmp_path) == 2.5


@pytest.mark.skipif(not LRS3_TEST_MANIFEST.is_file(), reason="LRS3 test manifest not present (set $MMSLLAMA_LRS3_TEST_TSV)")
def test_lrs3_reference_manifest_reads_and_its_labels_follow_the_formula():
    entries = read_manifest(LRS3_TEST_MANIFEST, substitutions={"LRS3_ROOT": "/data/lrs3"})
    assert len(entries) == 1321
    assert entries[0].video_path.startswith("/data/lrs3/")
    matches = sum(speech_rate_label(len(e.transcript.split()), e.num_video_frames) == e.speech_rate for e in entries)
    assert matches >= 1319  # paper-spec 2.4: two rounding edge cases


def test_manifest_to_dataset(tmp_path):
    write_manifest(tmp_path / "train.tsv", _entries())
    dataset = manifest_to_dataset(tmp_path / "train.tsv")
    assert dataset.num_rows == 2
    assert dataset[0]["id"] == "s000/u00000"
    assert dataset[0]["text"] == "bin blue at a two now"
    assert dataset[1]["num_audio_samples"] == 48000
    assert dataset.features["speech_rate"].dtype == "float32"


def test_syllables_count_vowel_nuclei_once_per_diphthong():
    from processing.manifest import syllable_count

    assert syllable_count("b ɪ n b l uː") == 2  # "bin blue"
    assert syllable_count("p l eɪ s ɡ ɹ iː n") == 2  # diphthong and long vowel count once
    assert syllable_count("s ɛ v ə n") == 2 and syllable_count("b ʌ ʔ n̩") == 2  # syllabic n
    assert syllable_count("ˈaɪ ˌæ m") == 2 and syllable_count("") == 0  # stress marks ignored


def test_relabel_speech_rate_by_syllables_over_the_aligned_span():
    from processing.manifest import relabel_speech_rate, units_per_second

    entries = [
        replace(_entries()[0], phonemes="b ɪ n b l uː",
                phoneme_times="0.5-0.6 0.6-0.7 0.7-0.8 0.8-0.9 0.9-1.0 1.0-1.5"),
        replace(_entries()[1], phonemes="s ɛ t", phoneme_times="0.2-0.4 0.4-0.6 0.6-0.7"),
    ]
    assert units_per_second(entries[0], "syllables") == pytest.approx(2 / 1.0)  # 2 syllables in 0.5-1.5 s
    assert units_per_second(entries[1], "phonemes") == pytest.approx(3 / 0.5)
    assert units_per_second(entries[0], "words") == pytest.approx(6 / 2.0)  # the paper's: words per video second
    relabelled, constant = relabel_speech_rate(entries, "syllables")
    assert constant == pytest.approx((2.0 + 2.0) / 2)  # fitted: the mean syllable rate
    assert [e.speech_rate for e in relabelled] == [1.0, 1.0]
    again, _ = relabel_speech_rate(entries, "syllables", constant=4.0)
    assert [e.speech_rate for e in again] == [0.5, 0.5]
    with pytest.raises(ManifestError, match="needs phonemes"):
        relabel_speech_rate(_entries(), "syllables")


def test_relabel_folder_writes_movable_manifests_with_the_training_constant(tmp_path):
    from processing.prepare import relabel_folder

    source = tmp_path / "corpus"
    train = [replace(e, phonemes="b ɪ n", phoneme_times="0.0-0.1 0.1-0.3 0.3-0.5") for e in _entries()]
    test = [replace(train[0], phoneme_times="0.0-0.1 0.1-0.2 0.2-0.25")]  # same syllable in half the time
    source.mkdir()
    write_manifest(source / "train.tsv", train)
    write_manifest(source / "test.tsv", test)
    means = relabel_folder(source, tmp_path / "syllables", "syllables")
    assert means == {"test": 2.0, "train": 1.0}  # test normalised by the train split's 2 syllables/s
    relabelled = read_manifest(tmp_path / "syllables" / "train.tsv")
    assert Path(relabelled[0].video_path).resolve() == source.resolve() / "s000/u00000.mp4"  # relative to the new one
    assert relabelled[0].phonemes == "b ɪ n" and relabelled[0].transcript == train[0].transcript
    assert read_speech_rate_constant(tmp_path / "syllables") == 2.0

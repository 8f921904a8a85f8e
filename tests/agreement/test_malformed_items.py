"""Public sets read as published: a file with a few malformed items is scored without them, each named in a
warning (file:line) and counted in the report; --strict refuses it in one line; what cannot be meant is refused."""

import json

import pytest
from typer.testing import CliRunner

from lstm_lm.cli import app
from tests.agreement.test_agreement_learning import write_language
from tests.conftest import tiny_config, train_quietly

runner = CliRunner()


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A run on the agreement language (no punctuation), trained a few steps: these tests need a model, not a
    good one."""
    root = tmp_path_factory.mktemp("malformed")
    config = tiny_config(write_language(root / "corpus"), root / "cache", "train.max_steps=3")
    train_quietly(config, root / "run")
    return root / "run"


def write(path, lines):
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def linzen(directory, warts: int):
    """Two good items, then `warts` items whose two forms are the same word, as in the committed Linzen set."""
    directory.mkdir()
    sentences = ["the dog near the cats runs <eos>", "the dogs near the cat run <eos>"]
    golds = ["5\truns\trun\t1", "5\trun\truns\t1"]
    sentences += ["the dog runs <eos>"] * warts
    golds += ["2\truns\truns\t0"] * warts
    write(directory / "agr.text", sentences)
    return write(directory / "agr.gold", golds)


def test_malformed_items_are_skipped_warned_and_counted(run_dir, tmp_path):
    gold = linzen(tmp_path / "set", warts=2)
    pairs = write(tmp_path / "pairs.jsonl", [
        json.dumps({"sentence_good": "The dog runs.", "sentence_bad": "The dog run."}),
        # the same sentence twice for this model, whose corpus has no "!": found only once split its way
        json.dumps({"sentence_good": "The dog runs!", "sentence_bad": "The dog runs."}),
    ])
    report_path = tmp_path / "report.json"
    result = runner.invoke(app, ["eval-agreement", str(run_dir), str(gold), str(pairs), "--output", str(report_path),
                                 "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines() == [
        f"warning: skipped {gold}:3: needs two different forms, found 'runs' and 'runs'",
        f"warning: skipped {gold}:4: needs two different forms, found 'runs' and 'runs'",
        f"warning: skipped {pairs}:2: the two sentences are the same once split the way the model's corpus was "
        f"('the dog runs')",
    ]
    assert "2 malformed items skipped (same-forms: 2); --strict refuses them" in result.stdout
    report = json.loads(report_path.read_text())
    agr, pair_suite = report["suites"]
    assert agr["n"] == 2 and pair_suite["n"] == 1
    assert agr["skipped"] == {"n": 2, "reasons": {"same-forms": 2}, "items": [
        {"where": f"{gold}:{line}", "kind": "same-forms", "reason": "needs two different forms, found 'runs' and "
                                                                     "'runs'"} for line in (3, 4)]}
    assert pair_suite["skipped"]["reasons"] == {"same-sentences": 1}
    assert report["skipped"] == {"n": 3, "reasons": {"same-forms": 2, "same-sentences": 1}}


def test_warnings_stop_at_twenty_and_say_how_many_more(run_dir, tmp_path):
    gold = linzen(tmp_path / "set", warts=25)
    result = runner.invoke(app, ["eval-agreement", str(run_dir), str(gold), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 21 and lines[19] == f"warning: skipped {gold}:22: needs two different forms, found 'runs' " \
                                              f"and 'runs'"
    assert lines[20].startswith("warning: ... and 5 more malformed items skipped")
    assert "25 malformed items skipped (same-forms: 25)" in result.stdout


def test_strict_refuses_the_file_in_one_line(run_dir, tmp_path):
    gold = linzen(tmp_path / "set", warts=2)
    output = tmp_path / "report.json"
    result = runner.invoke(app, ["eval-agreement", str(run_dir), str(gold), "--strict", "--output", str(output)])
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        f"error: {gold}:3: needs two different forms, found 'runs' and 'runs'"]
    assert not output.exists()


@pytest.mark.parametrize("strict", [[], ["--strict"]])
def test_an_index_outside_its_sentence_is_refused_either_way(run_dir, tmp_path, strict):
    gold = linzen(tmp_path / "set", warts=0)
    write(gold, ["5\truns\trun\t1", "9\trun\truns\t1"])
    result = runner.invoke(app, ["eval-agreement", str(run_dir), str(gold), *strict])
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1
    assert f"{gold}:2: target index 9 is outside its sentence" in result.stderr

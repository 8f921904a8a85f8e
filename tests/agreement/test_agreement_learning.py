"""A model trained on a small language with long-range agreement gets it right; an untrained one guesses.
The same trained run drives the command line end to end: files, reports, items, probe, plot, bad input."""

import json
import random

import pytest
import torch
from typer.testing import CliRunner

from lstm_lm.agreement.evaluate import evaluate_suites
from lstm_lm.agreement.formats import read_suites
from lstm_lm.cli import app
from lstm_lm.model.language_model import LanguageModel
from lstm_lm.rundir.run_files import load_run
from tests.conftest import tiny_config, train_quietly

NOUNS = [("dog", "dogs"), ("cat", "cats"), ("bird", "birds"), ("horse", "horses"), ("fox", "foxes")]
VERBS = [("runs", "run"), ("sleeps", "sleep"), ("eats", "eat"), ("jumps", "jump")]
PREPOSITIONS = ["near", "behind", "with"]
runner = CliRunner()


def sentence(rng: random.Random, subject: int, attractor: int | None) -> tuple[list[str], int]:
    """`the dog near the cats runs`: the verb agrees with the first noun (number 0 singular, 1 plural), across
    a prepositional phrase whose noun may have the other number. Returns the words and the verb's index."""
    words = ["the", rng.choice(NOUNS)[subject]]
    if attractor is not None:
        words += [rng.choice(PREPOSITIONS), "the", rng.choice(NOUNS)[attractor]]
    return words + [rng.choice(VERBS)[subject]], len(words)


def write_language(directory, seed: int = 0):
    rng = random.Random(seed)
    directory.mkdir()
    for split, count in (("train", 3000), ("valid", 200), ("test", 200)):
        lines = [" ".join(sentence(rng, rng.randrange(2), rng.choice([None, 0, 1]))[0]) for _ in range(count)]
        (directory / f"{split}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return directory


def write_attractor_pairs(path, count: int = 200, seed: int = 1):
    """Held-out minimal pairs, every one with an attractor of the other number, both numbers equally often."""
    rng = random.Random(seed)
    lines = []
    for i in range(count):
        subject = i % 2
        words, verb = sentence(rng, subject, 1 - subject)
        wrong = [*words[:verb], VERBS[[v[subject] for v in VERBS].index(words[verb])][1 - subject]]
        lines.append(json.dumps({"sentence_good": " ".join(words).capitalize() + ".",
                                 "sentence_bad": " ".join(wrong).capitalize() + ".", "UID": "across_pp",
                                 "attractors": 1, "distance": verb - 1}))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def language_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("agreement")
    corpus = write_language(root / "corpus")
    config = tiny_config(corpus, root / "cache", "model.hidden_size=48", "train.batch_size=16", "train.bptt=20",
                         "train.max_steps=400", "train.epochs=50", "train.log_every_steps=100")
    train_quietly(config, root / "run")
    return root / "run", write_attractor_pairs(root / "pairs.jsonl")


def test_trained_model_learns_agreement_and_untrained_one_guesses(language_run):
    run_dir, pairs = language_run
    trained = load_run(run_dir, torch.device("cpu"))
    suites = read_suites([pairs])
    for method in ("sentence", "target"):
        [result] = evaluate_suites(trained, suites, method)
        accuracy = sum(outcome.correct for outcome in result.outcomes) / len(result.outcomes)
        assert accuracy >= 0.9, (method, accuracy)
    torch.manual_seed(0)
    trained.model = LanguageModel(trained.config.model, trained.tokenizer.vocab_size).eval()  # same shape, untrained
    [result] = evaluate_suites(trained, suites)
    assert len(result.outcomes) == 200
    assert 0.3 <= sum(outcome.correct for outcome in result.outcomes) / 200 <= 0.7


def test_command_writes_report_items_and_plot(language_run, tmp_path):
    run_dir, pairs = language_run
    report_path, items_path, image = tmp_path / "report.json", tmp_path / "items.jsonl", tmp_path / "accuracy.png"
    result = runner.invoke(app, ["eval-agreement", str(run_dir), str(pairs), "--output", str(report_path),
                                 "--items", str(items_path), "--batch-size", "7", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "pairs (pairs-jsonl, sentence method)" in result.stdout and "overall: accuracy" in result.stdout
    report = json.loads(report_path.read_text())
    assert report["run"] == str(run_dir)
    [suite] = report["suites"]
    assert (suite["name"], suite["format"], suite["method"], suite["n"], suite["oov"]) == (
        "pairs", "pairs-jsonl", "sentence", 200, 0)
    assert suite["accuracy"] >= 0.9 and suite["ci"][0] < suite["accuracy"] <= suite["ci"][1]
    assert {(group["key"], group["value"]) for group in suite["groups"]} == {
        ("condition", "across_pp"), ("attractors", 1), ("distance", "4-5")}
    assert report["overall"]["n"] == 200 and report["overall"]["accuracy"] == suite["accuracy"]
    items = [json.loads(line) for line in items_path.read_text().splitlines()]
    assert len(items) == 200 and items[0]["suite"] == "pairs" and items[0]["where"] == f"{pairs}:1"
    assert items[0]["correct"] == (items[0]["good_score"] > items[0]["bad_score"])
    assert sum(item["correct"] for item in items) / 200 == suite["accuracy"]

    drawn = runner.invoke(app, ["eval-agreement", "--plot", str(report_path), str(image)])
    assert drawn.exit_code == 0, drawn.output
    assert image.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_probe_prints_candidates_ranked(language_run):
    run_dir, _ = language_run
    result = runner.invoke(app, ["eval-agreement", str(run_dir), "--prefix", "the dogs near the cat",
                                 "--candidates", "runs,run", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stdout.splitlines() if " run" in line]
    assert "run " in lines[0] and "runs" in lines[1]  # the plural first: the model learned agreement


def test_builtin_suite_words_outside_the_vocabulary_are_reported_not_scored(language_run):
    run_dir, _ = language_run
    result = runner.invoke(app, ["eval-agreement", str(run_dir), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "2,200 pairs with out-of-vocabulary words" in result.stdout and "left out" in result.stdout
    assert "over 0 pairs" in result.stdout


def test_bad_line_in_any_file_leaves_no_report(language_run, tmp_path):
    run_dir, pairs = language_run
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"sentence_good": "the dog runs", "sentence_bad": "the dog run"}\n{"sentence_good": \n')
    output = tmp_path / "report.json"
    result = runner.invoke(app, ["eval-agreement", str(run_dir), str(pairs), str(bad), "--output", str(output)])
    assert result.exit_code == 2
    assert f"{bad}:2: not valid JSON" in result.output and len(result.output.strip().splitlines()) == 1
    assert not output.exists() and list(tmp_path.iterdir()) == [bad]  # no temporary file left either


def test_write_suite_needs_no_run(tmp_path):
    path = tmp_path / "suite.jsonl"
    result = runner.invoke(app, ["eval-agreement", "--write-suite", str(path)])
    assert result.exit_code == 0, result.output
    assert len(path.read_text().splitlines()) == 2200


@pytest.mark.parametrize("arguments, message", [
    (["--prefix", "the dogs"], "--prefix and --candidates go together"),
    (["--method", "guess"], "--method guess: expected auto, sentence, target"),
    (["--format", "csv", "x.csv"], "--format csv: expected auto"),
])
def test_option_errors_exit_2_with_one_line(language_run, arguments, message):
    run_dir, _ = language_run
    result = runner.invoke(app, ["eval-agreement", str(run_dir), *arguments, "--device", "cpu"])
    assert result.exit_code == 2 and message in result.output
    assert len(result.output.strip().splitlines()) == 1

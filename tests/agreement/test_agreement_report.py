"""Wilson intervals, breakdowns by group and distance bucket, the report of the built-in suite, plot input."""

import json
from pathlib import Path

import pytest
import torch

from lstm_lm.agreement.evaluate import Outcome, SuiteResult, evaluate_suites
from lstm_lm.agreement.items import Item, Suite
from lstm_lm.agreement.plot import load_report, plot_report
from lstm_lm.agreement.report import breakdown, build_report, distance_bucket, wilson_interval
from lstm_lm.agreement.suite import builtin_suite
from lstm_lm.config import load_config
from lstm_lm.data.tokenizers import WordTokenizer
from lstm_lm.errors import UserError
from lstm_lm.model.language_model import LanguageModel
from lstm_lm.rundir.run_files import LoadedRun


def test_wilson_interval_known_values():
    assert wilson_interval(8, 10) == pytest.approx((0.4902, 0.9433), abs=1e-4)
    assert wilson_interval(50, 100) == pytest.approx((0.4038, 0.5962), abs=1e-4)
    assert wilson_interval(0, 10) == (0.0, pytest.approx(0.2775, abs=1e-4))
    assert wilson_interval(10, 10) == (pytest.approx(0.7225, abs=1e-4), 1.0)


def test_distance_buckets():
    assert [distance_bucket(d)[0] for d in (1, 2, 3, 5, 7, 12, 13, 40, 0)] == [
        "1", "2-3", "2-3", "4-5", "6-8", "9-12", "13+", "13+", "0"]


def outcome(correct: bool, **groups) -> Outcome:
    return Outcome(Item("good", "bad", "x:1", groups), good_score=-1.0 if correct else -3.0, bad_score=-2.0)


def test_breakdown_orders_keys_and_values_and_nests_subconditions():
    outcomes = [outcome(True, condition="b", subcondition="sing", attractors=2, distance=10),
                outcome(False, condition="b", subcondition="plur", attractors=0, distance=1),
                outcome(True, condition="a", subcondition="sing", attractors=10, distance=5),
                outcome(True, condition="a", subcondition="sing", attractors=0, distance=4)]
    groups = breakdown(outcomes)
    assert [(g["key"], g.get("condition"), g["value"], g["n"], g["accuracy"]) for g in groups] == [
        ("condition", None, "a", 2, 1.0), ("condition", None, "b", 2, 0.5),
        ("subcondition", "a", "sing", 2, 1.0), ("subcondition", "b", "plur", 1, 0.0),
        ("subcondition", "b", "sing", 1, 1.0),
        ("attractors", None, 0, 2, 0.5), ("attractors", None, 2, 1, 1.0), ("attractors", None, 10, 1, 1.0),
        ("distance", None, "1", 1, 0.0), ("distance", None, "4-5", 2, 1.0), ("distance", None, "9-12", 1, 1.0)]


def test_report_of_the_builtin_suite_on_a_model_that_knows_its_words():
    suite = builtin_suite()
    words = sorted({word.lower() for item in suite.items for text in (item.good, item.bad)
                    for word in text.rstrip(".").split()})
    tokenizer = WordTokenizer(["<eos>", "<unk>", *words], lowercase=False)
    config = load_config(None, ["model.embedding_size=8", "model.hidden_size=8", "model.num_layers=1"])
    torch.manual_seed(0)
    run = LoadedRun(Path("run"), config, tokenizer, LanguageModel(config.model, tokenizer.vocab_size).eval(), {})
    results = evaluate_suites(run, [suite])
    report = build_report("run", results)
    [summary] = report["suites"]
    assert (summary["method"], summary["n"], summary["oov"]) == ("target", 2200, 0)
    conditions = {g["value"]: g["n"] for g in summary["groups"] if g["key"] == "condition"}
    assert len(conditions) == 11 and set(conditions.values()) == {200}
    assert {g["value"] for g in summary["groups"] if g["key"] == "attractors"} == {0, 1, 2}
    assert 0.3 < summary["accuracy"] < 0.7  # untrained
    correct = sum(o.correct for o in results[0].outcomes)
    assert report["overall"] == {"accuracy": correct / 2200, "ci": list(wilson_interval(correct, 2200)), "n": 2200}


def test_a_suite_with_nothing_scored_reports_no_accuracy():
    result = SuiteResult(Suite("s", "pairs-tsv", []), "sentence", [], oov=3, oov_words=["x"], oov_left_out=True)
    report = build_report("run", [result])
    assert report["suites"][0]["accuracy"] is None and report["overall"] == {"accuracy": None, "ci": None, "n": 0}


def test_plot_refuses_what_is_not_a_report(tmp_path):
    not_json = tmp_path / "a.json"
    not_json.write_text("{\n  oops")
    with pytest.raises(UserError, match=r"a.json:2: not valid JSON"):
        load_report(not_json)
    other = tmp_path / "b.json"
    other.write_text(json.dumps({"split": "test"}))
    with pytest.raises(UserError, match=r"b.json: not a report written by"):
        load_report(other)
    no_breakdown = {"suites": [{"name": "s", "groups": [{"key": "condition", "value": "x", "n": 1}]}]}
    with pytest.raises(UserError, match=r"no suite has a distance or attractor breakdown"):
        plot_report(no_breakdown, tmp_path / "out.png", other)
    with pytest.raises(UserError, match=r"out.gif: cannot tell the image type"):
        plot_report(no_breakdown, tmp_path / "out.gif", other)
    assert not (tmp_path / "out.png").exists()

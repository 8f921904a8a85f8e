"""SyntaxGym suites: prediction formulas parsed and evaluated by hand-computed values, the 34 published suites read
whole, and the checks of the suite reader on small files the tests write."""

import json
from pathlib import Path

import pytest

from lstm_lm.agreement.syntaxgym_formula import (Arithmetic, Comparison, Logical, Number, Region, evaluate,
                                                 needed_regions, parse_formula, references)
from lstm_lm.agreement.syntaxgym_suite import read_suite, read_syntaxgym
from lstm_lm.errors import UserError

SHIPPED = Path(__file__).resolve().parents[2] / "data" / "syntaxgym"

# Region surprisals of a pretend item: (region_number, condition) -> surprisal.
SURPRISALS = {(1, "good"): 2.0, (2, "good"): 3.5, (3, "good"): 1.25,
              (1, "bad"): 1.0, (2, "bad"): 4.0, (3, "bad"): 0.5}


def holds(text, surprisals=SURPRISALS):
    return evaluate(parse_formula(text, "test"), lambda number, condition: surprisals[number, condition], (1, 2, 3))


def test_arithmetic_binds_tighter_than_comparison_and_runs_left_to_right():
    assert parse_formula("(1;%good%) - (2;%good%) + 1 < 0", "test") == Comparison(
        "<", Arithmetic("+", Arithmetic("-", Region(1, "good"), Region(2, "good")), Number(1.0)), Number(0.0))
    assert holds("5 - 4 - 3 < 0")  # (5 - 4) - 3 = -2; grouped from the right it would be 4
    assert holds("(1;%good%) + (2;%good%) > (2;%bad%) + 1")  # 5.5 > 5
    assert not holds("(1;%good%) + (2;%good%) > (2;%bad%) + 1.5")  # 5.5 > 5.5


def test_and_or_share_one_level_left_to_right():
    # (true | false) & false is false; were & tighter, as in Python, true | (false & false) would be true
    assert parse_formula("1 < 2 | 2 < 1 & 2 < 1", "test") == Logical(
        "&", Logical("|", Comparison("<", Number(1.0), Number(2.0)), Comparison("<", Number(2.0), Number(1.0))),
        Comparison("<", Number(2.0), Number(1.0)))
    assert not holds("1 < 2 | 2 < 1 & 2 < 1")
    assert holds("1 < 2 | (2 < 1 & 2 < 1)")


def test_square_and_round_grouping_read_alike():
    published = "[(2;%good%)-(2;%bad%)]+[[(1;%good%)+(3;%good%)]-[(1;%bad%)+(3;%bad%)]]>0"  # cleft's shape
    assert parse_formula(published, "test") == parse_formula(published.replace("[", "(").replace("]", ")"), "test")
    assert holds(published)  # -0.5 + (3.25 - 1.5) = 1.25
    assert holds("[2;%good%] < [2;%bad%] & [(1;%good%) > (1;%bad%)]")
    assert holds("5-(3+2)=0") and holds("[5-3]+2=4")


def test_star_sums_every_region_of_its_condition():
    assert parse_formula("(*;%bad%) < 6", "test") == Comparison("<", Region(None, "bad"), Number(6.0))
    assert holds("(*;%good%) > (*;%bad%)")  # 6.75 > 5.5
    assert holds("(*;%good%) - (*;%bad%) = 1.25")
    assert needed_regions(parse_formula("(*;%bad%) < (2;%good%)", "test"), (1, 2, 3)) == {
        (1, "bad"), (2, "bad"), (3, "bad"), (2, "good")}


def test_equality_is_within_syntaxgym_cores_tolerance():
    # |left - right| <= 1e-3 + 1e-5 * |right|
    assert holds("2.0009 = (1;%good%)") and not holds("2.0011 = (1;%good%)")  # within 0.00102 of 2
    assert holds("1000.0105 = 1000")  # the relative part: within 0.011 of 1000
    assert not holds("1000.01100005 = 1000") and holds("1000 = 1000.01100005")  # scaled by the right side alone
    assert not holds("(1;%good%) = (1;%bad%)")


def test_numbers_and_signs():
    assert holds("(1;%good%) - -1 = 3")
    assert holds("-3 < .5e1 - 7.25") and not holds("-2 < .5e1 - 7.25")  # 5 - 7.25 = -2.25
    assert parse_formula(" ( 2 ;% bad %)>1e-3 ", "test") == Comparison(">", Region(2, "bad"), Number(0.001))


def test_references_list_what_must_be_scored():
    formula = parse_formula("[(2;%good%) < (2;%bad%)] & [(2;%good%) + (3;%good%) < 10]", "test")
    assert references(formula) == {Region(2, "good"), Region(2, "bad"), Region(3, "good")}
    assert needed_regions(formula, (1, 2, 3)) == {(2, "good"), (2, "bad"), (3, "good")}


@pytest.mark.parametrize("text, column, problem", [
    ("(1;%good%) <", 13, "expected a region, a number or an opening bracket, found the end of the formula"),
    ("(1;%good%) < (2;%bad%", 22, "expected ')' to close the '(' at column 14"),
    ("[(1;%good%) < (2;%bad%))", 24, "expected ']' to close the '[' at column 1, found ')'"),
    ("(1;%good%) < (2;%bad%) < 3", 24, "comparisons do not chain"),
    ("(1;%good%) & (2;%bad%)", 1, "& (column 12) joins comparisons, and this operand is a number"),
    ("(1;%good%) + (2;%bad%)", 1, "the formula is a number"),
    ("((1;%good%) < 2) + 1 > 0", 1, "+ (column 18) takes numbers, and this operand is a comparison"),
    ("(1.5;%good%) > 1", 2, "a region number is a whole number or *, not 1.5"),
    ("(1;%go od%) > 1", 3, "a condition reference is ;%name%"),
    ("(1;%%) > 1", 3, "a condition reference names no condition"),
    ("(1;%good%) ? 2", 12, "unexpected character '?'"),
    ("(1;%good%) > 2 )", 16, "unexpected ')'"),
    ("- 2 < (1;%good%)", 1, "found '-'"),
    ("  ", 1, "the formula is empty"),
])
def test_malformed_formulas_are_refused_with_their_column(text, column, problem):
    with pytest.raises(UserError) as error:
        parse_formula(text, "suite.json: predictions[3]")
    message = str(error.value)
    assert message.startswith("suite.json: predictions[3]: ")
    assert problem in message and f"(column {column} of the formula {text!r})" in message


# What the published suites hold, per file: items, conditions per item, regions, predictions.
SHIPPED_SHAPES = {
    "center_embed": (28, 2, 7, 1), "center_embed_mod": (28, 2, 8, 1), "cleft": (40, 4, 6, 1),
    "cleft_modifier": (40, 4, 7, 1), "fgd-embed3": (21, 4, 7, 1), "fgd-embed4": (21, 4, 7, 1),
    "fgd_hierarchy": (24, 6, 9, 2), "fgd_object": (24, 4, 8, 1), "fgd_pp": (24, 4, 8, 1), "fgd_subject": (24, 4, 8, 1),
    "mvrr": (28, 4, 6, 1), "mvrr_mod": (28, 4, 7, 1), "nn-nv-rpl": (1, 4, 5, 2), "npi_orc_any": (38, 4, 9, 1),
    "npi_orc_ever": (38, 4, 9, 1), "npi_src_any": (38, 4, 9, 1), "npi_src_ever": (38, 4, 9, 1),
    "npz_ambig": (24, 4, 6, 1), "npz_ambig_mod": (24, 4, 7, 1), "npz_obj": (24, 4, 6, 1), "npz_obj_mod": (24, 4, 7, 1),
    "number_orc": (19, 4, 8, 1), "number_prep": (19, 4, 7, 1), "number_src": (19, 4, 8, 1),
    "reflexive_orc_fem": (19, 4, 8, 1), "reflexive_orc_masc": (19, 4, 8, 1), "reflexive_prep_fem": (19, 4, 7, 1),
    "reflexive_prep_masc": (19, 4, 7, 1), "reflexive_src_fem": (19, 4, 8, 1), "reflexive_src_masc": (19, 4, 8, 1),
    "subordination": (23, 4, 3, 1), "subordination_orc-orc": (23, 4, 5, 1), "subordination_pp-pp": (23, 4, 5, 1),
    "subordination_src-src": (23, 4, 5, 1),
}


def test_every_shipped_suite_reads_and_every_prediction_evaluates():
    suites = read_syntaxgym(SHIPPED)
    assert [suite.path.name for suite in suites] == sorted(f"{name}.json" for name in SHIPPED_SHAPES)
    assert {suite.name: (len(suite.items), len(suite.items[0].conditions), len(suite.region_names),
                         len(suite.predictions)) for suite in suites} == SHIPPED_SHAPES
    assert sum(len(suite.items) for suite in suites) == 842
    assert sum(len(suite.predictions) for suite in suites) == 36
    outcomes = []
    for suite in suites:
        assert all(prediction.text.lstrip().startswith("[") or suite.name == "nn-nv-rpl"
                   for prediction in suite.predictions)  # the published grouping
        for item in suite.items:
            assert all(len(condition.regions) == len(suite.region_names) for condition in item.conditions.values())
            # A pretend surprisal, the region's length, looked up for every region each prediction names.
            lengths = {(region.number, name): len(region.content.strip())
                       for name, condition in item.conditions.items() for region in condition.regions}
            def surprisal(number, condition, lengths=lengths):
                return lengths[number, condition]
            outcomes += [evaluate(prediction.formula, surprisal, suite.region_numbers)
                         for prediction in suite.predictions]
    assert len(outcomes) == 867  # one per item and prediction: 842 + 24 + 1 (fgd_hierarchy, nn-nv-rpl have two)
    assert 0 < sum(outcomes) < len(outcomes)


def test_shipped_sentences_are_joined_as_syntaxgym_core_joins_them():
    [subordination] = read_syntaxgym(SHIPPED / "subordination.json")
    condition = subordination.items[0].conditions["sub_no-matrix"]
    assert condition.sentence == "As the doctor studied the book ."
    assert [region.span for region in condition.regions] == [(0, 13), (14, 30), (31, 32)]  # the final "." alone

    [npz] = read_syntaxgym(SHIPPED / "npz_obj.json")
    condition = npz.items[0].conditions["no-obj_no-comma"]
    assert [region.content for region in condition.regions][:4] == ["As the criminal", " shot", "", " the woman"]
    assert condition.sentence == "As the criminal shot the woman yelled at the top of her lungs"
    assert [condition.sentence[start:end] for start, end in (region.span for region in condition.regions)] == [
        "As the criminal", "shot", "", "the woman", "yelled", "at the top of her lungs"]
    assert condition.regions[2].span == (20, 20)  # the missing comma: empty, where it would stand
    assert npz.items[0].conditions["no-obj_comma"].sentence.startswith("As the criminal shot , the woman")

    [embed] = read_syntaxgym(SHIPPED / "fgd-embed3.json")
    trailing = [condition.sentence for item in embed.items for condition in item.conditions.values()
                if condition.sentence.endswith("kingpin ")]
    assert len(trailing) == 2  # "to the criminal kingpin " keeps its published trailing space


def minimal_suite(**changes):
    """Two items, two conditions, three regions: the shape of the published suites, small."""
    def item(number, verb_good, verb_bad):
        return {"item_number": number, "conditions": [
            {"condition_name": "match", "regions": [{"region_number": 1, "content": "The keys"},
                                                    {"region_number": 2, "content": verb_good},
                                                    {"region_number": 3, "content": "here ."}]},
            {"condition_name": "mismatch", "regions": [{"region_number": 1, "content": "The keys"},
                                                       {"region_number": 2, "content": verb_bad},
                                                       {"region_number": 3, "content": "here ."}]}]}
    suite = {"meta": {"name": "tiny", "metric": "sum", "author": "test"},
             "region_meta": {"1": "subject", "2": "verb", "3": "rest"},
             "predictions": [{"type": "formula", "formula": "[(2;%match%) < (2;%mismatch%)]"}],
             "items": [item(1, "are", "is"), item(2, "were", "was")]}
    suite.update(changes)
    return suite


def write_suite(path, suite):
    path.write_text(json.dumps(suite), encoding="utf-8")
    return path


def test_a_hand_written_suite_reads_into_typed_items(tmp_path):
    suite = read_suite(write_suite(tmp_path / "tiny.json", minimal_suite()))
    assert (suite.name, suite.region_names, suite.region_numbers) == (
        "tiny", {1: "subject", 2: "verb", 3: "rest"}, (1, 2, 3))
    assert suite.meta["author"] == "test"
    [prediction] = suite.predictions
    assert (prediction.index, prediction.text) == (0, "[(2;%match%) < (2;%mismatch%)]")
    first, second = suite.items
    assert (first.number, list(first.conditions), second.number) == (1, ["match", "mismatch"], 2)
    assert first.where == f"{tmp_path / 'tiny.json'}: items[0] (item_number 1)"
    assert second.conditions["mismatch"].sentence == "The keys was here ."
    surprisal = {(2, "match"): 3.0, (2, "mismatch"): 5.0}
    assert evaluate(prediction.formula, lambda number, condition: surprisal[number, condition], (1, 2, 3))


def test_a_directory_reads_its_suites_in_name_order(tmp_path):
    write_suite(tmp_path / "b.json", minimal_suite(meta={"name": "second", "metric": "sum"}))
    write_suite(tmp_path / "a.json", minimal_suite(meta={"name": "first", "metric": "sum"}))
    (tmp_path / "SOURCE.md").write_text("not a suite", encoding="utf-8")
    assert [suite.name for suite in read_syntaxgym(tmp_path)] == ["first", "second"]
    write_suite(tmp_path / "c.json", minimal_suite(meta={"name": "first", "metric": "sum"}))
    with pytest.raises(UserError, match=r"c\.json: meta\.name 'first' is also the name of the suite in .*a\.json"):
        read_syntaxgym(tmp_path)


def test_an_item_without_a_condition_a_prediction_names_is_refused(tmp_path):
    suite = minimal_suite()
    suite["items"][1]["conditions"][1]["condition_name"] = "mismatched"
    path = write_suite(tmp_path / "tiny.json", suite)
    with pytest.raises(UserError) as error:
        read_suite(path)
    assert str(error.value) == (f"{path}: items[1] (item_number 2): has no condition 'mismatch', which "
                                f"predictions[0] refers to (it has match, mismatched)")


def broken(suite, change):
    change(suite)
    return suite


@pytest.mark.parametrize("suite, message", [
    (broken(minimal_suite(), lambda s: s.pop("region_meta")), ": missing 'region_meta'"),
    (broken(minimal_suite(), lambda s: s["meta"].pop("metric")), ": meta: missing 'metric'"),
    (minimal_suite(meta={"name": "tiny", "metric": "mean"}), ": meta.metric is 'mean'; only 'sum'"),
    (minimal_suite(region_meta={"1": "a", "3": "c"}), ": region_meta must number its regions 1 to N, found 1, 3"),
    (broken(minimal_suite(), lambda s: s["items"][0]["conditions"][0]["regions"].pop()),
     ": items[0] (item_number 1), condition 'match': regions numbered [1, 2]; region_meta declares [1, 2, 3]"),
    (broken(minimal_suite(), lambda s: s["items"][1].update(item_number=1)),
     ": items[1] (item_number 1): item_number 1 is also that of items[0]"),
    (broken(minimal_suite(), lambda s: s["items"][0].update(item_number="1")),
     ": items[0]: 'item_number' must be a whole number, not '1'"),
    (broken(minimal_suite(), lambda s: s["items"][0]["conditions"][1]["regions"][1].update(content=None)),
     ": items[0] (item_number 1), condition 'mismatch', region 2: 'content' must be a string (it may be empty)"),
    (minimal_suite(predictions=[{"type": "formula", "formula": "(4;%match%) < (2;%mismatch%)"}]),
     ": predictions[0]: refers to region 4, but region_meta declares regions 1 to 3"),
    (minimal_suite(predictions=[{"type": "formula", "formula": "(2;%match%) < "}]),
     ": predictions[0]: expected a region, a number or an opening bracket, found the end of the formula"),
    (minimal_suite(predictions=[{"type": "regex", "formula": "(2;%match%) < 1"}]),
     ": predictions[0]: type is 'regex'; the only type of prediction is 'formula'"),
    (minimal_suite(predictions=[], meta={"name": "tiny", "metric": "sum", "string_predictions": ["1 < 2"]}),
     ": 'predictions' is empty, so there is nothing to test; move meta.string_predictions into it"),
    (minimal_suite(items=[]), ": 'items' is empty"),
])
def test_what_cannot_be_meant_is_refused_naming_file_and_place(tmp_path, suite, message):
    path = write_suite(tmp_path / "tiny.json", suite)
    with pytest.raises(UserError) as error:
        read_suite(path)
    assert str(error.value).startswith(f"{path}{message}")


def test_unreadable_files_are_refused(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"meta": ', encoding="utf-8")
    with pytest.raises(UserError, match=r"bad\.json: not valid JSON \(Expecting value at line 1 column 10\)"):
        read_suite(bad)
    with pytest.raises(UserError, match=r"missing\.json: file not found"):
        read_syntaxgym(tmp_path / "missing.json")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UserError, match=r"empty: no SyntaxGym suites in it"):
        read_syntaxgym(empty)

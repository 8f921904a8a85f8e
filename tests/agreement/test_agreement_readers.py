"""The four public formats, read from small files the tests write; format detection; bad input."""

import json

import pytest

from lstm_lm.agreement.formats import detect_format, read_suites
from lstm_lm.errors import UserError


def write(path, lines):
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def test_pairs_jsonl_reads_sentences_and_groups(tmp_path):
    path = write(tmp_path / "blimp.jsonl", [
        json.dumps({"sentence_good": "The kettles near the window were cold.",
                    "sentence_bad": "The kettles near the window was cold.", "UID": "across_pp",
                    "linguistics_term": "subject_verb_agreement", "pairID": "0", "extra": [1, 2]}),
        "",
        json.dumps({"sentence_good": "The dog runs.", "sentence_bad": "The dog run.", "attractors": 0,
                    "distance": 1, "subcondition": "sing"}),
    ])
    [suite] = read_suites([path])
    assert (suite.name, suite.format) == ("blimp", "pairs-jsonl")
    first, second = suite.items
    assert first.good == "The kettles near the window were cold." and first.bad.endswith("was cold.")
    assert first.groups == {"condition": "across_pp", "term": "subject_verb_agreement"}
    assert first.where == f"{path}:1"
    assert second.groups == {"condition": "blimp", "subcondition": "sing", "attractors": 0, "distance": 1}
    assert second.where == f"{path}:3"  # the blank line still counts


def test_pairs_tsv_with_header_and_plain_two_columns(tmp_path):
    named = write(tmp_path / "obj_rel_across_anim.tsv", [
        "subcondition\tsentence_good\tsentence_bad",
        "sing_MS_MV_plur_ES\tthe baker that the painters love sings\tthe baker that the painters love sing",
        "plur_MS_MV_plur_ES\tthe bakers that the painters love sing\tthe bakers that the painters love sings",
    ])
    plain = write(tmp_path / "simple.tsv", ["the author laughs\tthe author laugh"])
    named_suite, plain_suite = read_suites([named, plain])
    assert named_suite.format == "pairs-tsv" and len(named_suite.items) == 2
    assert named_suite.items[0].groups == {"condition": "obj_rel_across_anim", "subcondition": "sing_MS_MV_plur_ES",
                                           "nouns": "mismatch"}
    assert named_suite.items[1].groups["nouns"] == "match"
    assert named_suite.items[0].where == f"{named}:2"
    [item] = plain_suite.items
    assert (item.good, item.bad, item.groups) == ("the author laughs", "the author laugh", {"condition": "simple"})


def test_linzen_text_and_gold(tmp_path):
    write(tmp_path / "agr.text", ["the keys to the old cabinet are on the table . <eos>",
                                  "the dog runs <eos>"])
    write(tmp_path / "agr.gold", ["6\tare\tis\t1", "2\truns\trun\t0"])
    write(tmp_path / "agr.eval", ["6", "2"])
    [suite] = read_suites([tmp_path / "agr.gold"])  # naming the companion file reads the pair
    assert (suite.name, suite.format) == ("agr", "linzen")
    first, second = suite.items
    assert first.good == "the keys to the old cabinet are on the table ."  # the final <eos> is not a word
    assert first.bad == "the keys to the old cabinet is on the table ."
    assert first.groups == {"attractors": 1} and second.groups == {"attractors": 0}
    assert second.where == f"{tmp_path / 'agr.gold'}:2"


def test_gulordava_gold_with_tab_attractors(tmp_path):
    prefix = "The lamps that the old man repaired"
    write(tmp_path / "generated.text", ["The lamps that the old man repaired shine again . <eos>",
                                        "The cups that the red fox painted shine again . <eos>"])
    gold = "{sid}\t7\tVERB\tMood=Ind|Number=Plur\tshine\tshines\tshine\t1\tNOUN\t" + prefix
    write(tmp_path / "generated.gold", ["L!NOUN_VERB\t0\t" + gold.format(sid=0), "L!NOUN_VERB\t0\t" + gold.format(sid=3)])
    header = "pattern constr_id sent_id correct_number form class type prefix n_attr punct freq len_context " \
             "len_prefix sent".split()
    rows = [["L!NOUN_VERB", "0", sid, "plur", form, cls, "original", prefix, "1", "no", "10", "5", "6", "s"]
            for sid in ("0", "3") for form, cls in (("shine", "correct"), ("shines", "wrong"))]
    write(tmp_path / "generated.tab", ["\t".join(header)] + ["\t".join(row) for row in rows])
    [suite] = read_suites([tmp_path])  # a directory: its .text file with companions
    assert suite.format == "gulordava"
    original, nonce = suite.items
    assert original.good == "The lamps that the old man repaired shine again ."
    assert original.bad == "The lamps that the old man repaired shines again ."
    assert original.groups == {"pattern": "L!NOUN_VERB", "type": "original", "distance": 6, "attractors": 1}
    assert nonce.groups["type"] == "nonce"


def test_a_directory_reads_every_known_file_and_skips_others(tmp_path):
    write(tmp_path / "a.tsv", ["the dog runs\tthe dog run"])
    write(tmp_path / "b.jsonl", [json.dumps({"sentence_good": "The dog runs.", "sentence_bad": "The dog run."})])
    write(tmp_path / "README.md", ["# notes"])
    assert [(suite.name, suite.format) for suite in read_suites([tmp_path])] == [("a", "pairs-tsv"),
                                                                               ("b", "pairs-jsonl")]


def test_format_detected_from_content_and_forced_by_option(tmp_path):
    jsonl = write(tmp_path / "pairs.txt", [json.dumps({"sentence_good": "a b", "sentence_bad": "a c"})])
    tsv = write(tmp_path / "pairs.dat", ["a b\ta c"])
    assert detect_format(jsonl) == "pairs-jsonl" and detect_format(tsv) == "pairs-tsv"
    [forced] = read_suites([write(tmp_path / "named.jsonl", ["a b\ta c"])], "pairs-tsv")
    assert forced.items[0].bad == "a c"
    with pytest.raises(UserError, match=r"other.dat: cannot tell its format.*--format"):
        detect_format(write(tmp_path / "other.dat", ["just words"]))


@pytest.mark.parametrize("lines, message", [
    (['{"sentence_good": "a b", "sentence_bad": "a c"}', '{"sentence_good": "a b",'], r"bad.jsonl:2: not valid JSON"),
    (['{"sentence_good": "a b"}'], r"bad.jsonl:1: missing or empty 'sentence_bad'"),
    (['["a b", "a c"]'], r"bad.jsonl:1: expected a JSON object"),
    (['{"sentence_good": "a b", "sentence_bad": "a c", "attractors": "two"}'], r"bad.jsonl:1: 'attractors' must"),
])
def test_malformed_jsonl_lines_name_file_and_line(tmp_path, lines, message):
    with pytest.raises(UserError, match=message):
        read_suites([write(tmp_path / "bad.jsonl", lines)])


def test_malformed_tsv_line_names_file_and_line(tmp_path):
    path = write(tmp_path / "bad.tsv", ["subcondition\tsentence_good\tsentence_bad", "x\ta b\ta c", "x\ta b"])
    with pytest.raises(UserError, match=r"bad.tsv:3: expected 3 tab-separated columns, found 2"):
        read_suites([path])


def test_missing_gold_is_refused(tmp_path):
    write(tmp_path / "agr.text", ["the dog runs <eos>"])
    with pytest.raises(UserError, match=r"agr.gold: not found"):
        read_suites([tmp_path / "agr.text"])


def test_gold_with_a_different_line_count_is_refused_with_both_counts(tmp_path):
    write(tmp_path / "agr.text", ["the dog runs <eos>", "the dogs run <eos>", "the cat sleeps <eos>"])
    write(tmp_path / "agr.gold", ["2\truns\trun\t0", "2\trun\truns\t0"])
    with pytest.raises(UserError, match=r"agr.gold has 2 lines but .*agr.text has 3"):
        read_suites([tmp_path / "agr.text"], "linzen")


def test_index_outside_its_sentence_names_the_line(tmp_path):
    write(tmp_path / "agr.text", ["the dog runs <eos>", "the dogs run <eos>"])
    write(tmp_path / "agr.gold", ["2\truns\trun\t0", "3\trun\truns\t0"])  # 3 words: indices 0 to 2
    with pytest.raises(UserError, match=r"agr.gold:2: target index 3 is outside its sentence"):
        read_suites([tmp_path / "agr.text"])


def test_linzen_index_that_does_not_name_a_form_is_refused(tmp_path):
    write(tmp_path / "agr.text", ["the keys to the old cabinet are on the table . <eos>"])
    write(tmp_path / "agr.gold", ["5\tare\tis\t1"])  # counted to the word before the target
    with pytest.raises(UserError, match=r"agr.gold:1: the word at target index 5 is 'cabinet', neither 'are' nor"):
        read_suites([tmp_path / "agr.text"])


def test_gold_with_neither_known_column_count_is_refused(tmp_path):
    write(tmp_path / "agr.text", ["the dog runs <eos>"])
    write(tmp_path / "agr.gold", ["2\truns\trun"])
    with pytest.raises(UserError, match=r"agr.gold:1: expected 4 \(Linzen\) or 12 \(Gulordava\).*found 3"):
        read_suites([tmp_path / "agr.text"])


def test_missing_path_and_empty_directory(tmp_path):
    with pytest.raises(UserError, match=r"nowhere.jsonl: file not found"):
        read_suites([tmp_path / "nowhere.jsonl"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match=r"empty: no agreement test files"):
        read_suites([tmp_path / "empty"])


def linzen_with_warts(directory):
    """Four items as the Linzen et al. set is committed: the second has its two forms the same word (its line 2423
    reads `3	lie	lie	0`), the fourth an empty sentence."""
    write(directory / "agr.text", ["the keys to the cabinet are here <eos>", "many lie in the sun <eos>",
                                   "the dog runs <eos>", "<eos>"])
    write(directory / "agr.gold", ["5\tare\tis\t1", "1\tlie\tlie\t0", "2\truns\trun\t0", "0\tis\tare\t0"])
    return directory / "agr.text"


def test_malformed_items_are_skipped_counted_and_named(tmp_path):
    [suite] = read_suites([linzen_with_warts(tmp_path)])
    assert [item.where for item in suite.items] == [f"{tmp_path / 'agr.gold'}:1", f"{tmp_path / 'agr.gold'}:3"]
    assert [(entry.where, entry.kind, entry.reason) for entry in suite.skipped] == [
        (f"{tmp_path / 'agr.gold'}:2", "same-forms", "needs two different forms, found 'lie' and 'lie'"),
        (f"{tmp_path / 'agr.text'}:4", "empty-sentence", "empty sentence")]


def test_strict_refuses_the_first_malformed_item_as_before(tmp_path):
    with pytest.raises(UserError) as error:
        read_suites([linzen_with_warts(tmp_path)], strict=True)
    assert str(error.value) == f"{tmp_path / 'agr.gold'}:2: needs two different forms, found 'lie' and 'lie'"


def test_malformed_pairs_are_skipped_and_a_file_of_nothing_else_refused(tmp_path):
    path = write(tmp_path / "pairs.jsonl", [
        json.dumps({"sentence_good": "The dog runs.", "sentence_bad": "The dog run."}),
        json.dumps({"sentence_good": "The dog runs.", "sentence_bad": "The dog runs."}),
        json.dumps({"sentence_good": " ", "sentence_bad": "The dog run."}),
    ])
    [suite] = read_suites([path])
    assert len(suite.items) == 1
    assert [(entry.where, entry.kind) for entry in suite.skipped] == [
        (f"{path}:2", "same-sentences"), (f"{path}:3", "empty-sentence")]
    tsv = write(tmp_path / "pairs.tsv", ["the dog runs\tthe dog runs", "the dogs run\t"])
    with pytest.raises(UserError) as error:
        read_suites([tsv])
    assert str(error.value) == (f"{tsv}:1: the two sentences are the same ('the dog runs'); no item of the file "
                                f"can be scored (2 malformed)")


def test_gulordava_items_with_the_same_two_forms_are_skipped(tmp_path):
    prefix = "The lamps that the old man repaired"
    write(tmp_path / "generated.text", ["The lamps that the old man repaired shine again . <eos>"] * 2)
    gold = "L!NOUN_VERB\t0\t{sid}\t7\tVERB\tMood=Ind|Number=Plur\t{good}\t{bad}\tshine\t1\tNOUN\t" + prefix
    write(tmp_path / "generated.gold", [gold.format(sid=0, good="shine", bad="shines"),
                                        gold.format(sid=1, good="ambientazione", bad="ambientazione")])
    [suite] = read_suites([tmp_path / "generated.text"])
    assert len(suite.items) == 1 and [entry.kind for entry in suite.skipped] == ["same-forms"]


@pytest.mark.parametrize("strict", [False, True])
def test_what_cannot_be_meant_is_refused_with_or_without_strict(tmp_path, strict):
    write(tmp_path / "agr.text", ["the dog runs <eos>", "many lie here <eos>"])
    write(tmp_path / "agr.gold", ["2\truns\trun\t0", "1\tlie\tlie\t0"])
    write(tmp_path / "out.text", ["many lie here <eos>", "the dogs run <eos>", "many lie here <eos>"])
    write(tmp_path / "out.gold", ["1\tlie\tlie\t0", "3\trun\truns\t0", "1\tlie\tlie\t0"])  # an index outside
    with pytest.raises(UserError, match=r"out.gold:2: target index 3 is outside its sentence" if not strict else
                       r"out.gold:1: needs two different forms, found 'lie' and 'lie'$"):
        read_suites([tmp_path / "out.text"], strict=strict)
    (tmp_path / "agr.gold").unlink()
    with pytest.raises(UserError, match=r"agr.gold: not found"):
        read_suites([tmp_path / "agr.text"], strict=strict)

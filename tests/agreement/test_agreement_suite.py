"""The built-in suite: counts per construction, what each item records, its lexicon, writing it out."""

import random
from collections import Counter

import pytest

from lstm_lm.agreement.formats import read_suites
from lstm_lm.agreement.pairs import differing_span
from lstm_lm.agreement.pretokenize import CorpusSplitter
from lstm_lm.agreement.suite import CONSTRUCTIONS, ITEMS_PER_CONSTRUCTION, builtin_suite, fill, write_suite
from tests.conftest import REPO


@pytest.fixture(scope="module")
def suite():
    return builtin_suite()


def test_counts_per_construction(suite):
    counts = Counter(item.groups["condition"] for item in suite.items)
    assert set(counts) == {
        "simple", "across_pp", "across_subject_rc", "across_object_rc", "across_object_rc_no_that",
        "inside_object_rc", "sentential_complement", "short_vp_coordination", "long_vp_coordination",
        "determiner_noun", "past_progressive_rc"}
    assert all(count == ITEMS_PER_CONSTRUCTION == 200 for count in counts.values())
    assert len(suite.items) == len({item.good for item in suite.items}) == 2200  # no item twice


def test_each_construction_covers_both_numbers_evenly(suite):
    for construction in CONSTRUCTIONS:
        numbers = Counter(item.groups["subcondition"].split("_")[0] for item in suite.items
                          if item.groups["condition"] == construction.name)
        assert numbers == {"sing": 100, "plur": 100}, construction.name


def test_items_differ_in_the_target_word_alone(suite):
    for item in suite.items:
        good, bad = item.good.split(), item.bad.split()
        start, good_end, bad_end = differing_span(good, bad)
        assert (good_end - start, bad_end - start) == (1, 1), item
        assert item.good[0].isupper() and item.good.endswith(".")


def test_distance_and_attractors_of_known_templates():
    rng = random.Random(0)
    good, bad, measures = fill("the *{thing.x} the {organization.y} {be_past.y} {progressive} "
                               "!{be_past.x} {thing_adjective}", {"x": "plur", "y": "sing"}, rng)
    # the flights the airline was cancelling were full: controller at 1, target at 6, one opposite noun between
    assert good[6] == "were" and bad[6] == "was" and good[4] == "was"
    assert measures == {"distance": 5, "attractors": 1}
    _, _, same_number = fill("the *{person.x} {preposition} the {person.y} !{predicate.x}",
                             {"x": "sing", "y": "sing"}, rng)
    assert same_number["attractors"] == 0
    _, _, before_controller = fill("the {person.y} that the *{person.x} !{tverb.x} {predicate.y}",
                                   {"x": "sing", "y": "plur"}, rng)
    assert before_controller == {"distance": 1, "attractors": 0}  # a noun before the controller is no attractor


def test_the_seed_shape_is_in_the_suite(suite):
    seed = [item for item in suite.items if item.groups["condition"] == "past_progressive_rc"
            and item.groups["subcondition"] == "plur_sing"]
    assert seed and all(item.groups["attractors"] == 1 for item in seed)
    words = seed[0].good.rstrip(".").split()
    assert words[0] == "The" and words[-2] == "were" and "was" in words


def test_suite_is_the_same_on_every_call(suite):
    assert builtin_suite().items == suite.items


def test_written_suite_reads_back_as_pairs_with_its_groups(suite, tmp_path):
    path = tmp_path / "suite.jsonl"
    write_suite(path, suite)
    [read] = read_suites([path])
    assert read.format == "pairs-jsonl" and len(read.items) == len(suite.items)
    for written, original in zip(read.items, suite.items):
        assert (written.good, written.bad, written.groups) == (original.good, original.bad, original.groups)


@pytest.mark.parametrize("corpus", ["ptb/ptb.train.txt", "wikitext-2/train.txt"])
def test_every_word_of_the_suite_is_in_the_shipped_corpora(suite, corpus):
    vocabulary = set((REPO / "data" / corpus).read_text(encoding="utf-8").split())
    split = CorpusSplitter(vocabulary, tokenizer_lowercases=False).split
    missing = {word for item in suite.items for sentence in (item.good, item.bad) for word in split(sentence)
               if word not in vocabulary}
    assert not missing

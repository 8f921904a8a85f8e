"""The synthetic agreement generator: agreement right by construction, distances and attractors as the pairs say,
nothing in a gap that gives the subject's number away, the same bytes for the same seed; eval-agreement's reader
takes its pairs with the distance and attractor breakdowns.

Sentences are read back with the lexicon alone (which forms are nouns and verbs, in which number), not with the
generator's own bookkeeping, so a generator that miscounts fails here."""

import json
import random
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from lstm_lm.agreement import synthetic_grammar as grammar
from lstm_lm.agreement import synthetic_lexicon as lexicon
from lstm_lm.agreement.synthetic_corpus import write_corpus

REPO = Path(__file__).resolve().parents[2]
NOUN_NUMBER = {form: number for pair in lexicon.NOUNS for number, form in enumerate(pair)}
VERB_FORM = {form: (pair, number) for pair in lexicon.AGREEING_VERBS for number, form in enumerate(pair)}
SETTINGS = {"seed": 3, "train_tokens": 20_000, "max_distance": 50, "pairs_per_distance": 40}
PROBES = (1, 2, 3, 5, 7, 10, 15, 20, 30, 40, 50)
FILES = ("train.txt", "valid.txt", "test.txt", "pairs.jsonl", "meta.json")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("synthetic") / "corpus"
    meta = write_corpus(out, **SETTINGS)
    pairs = [json.loads(line) for line in (out / "pairs.jsonl").read_text(encoding="utf-8").splitlines()]
    return out, meta, pairs


def read_sentence(words: list[str]) -> tuple[int, int, list[str]]:
    """(subject's number, index of the main verb, the gap's words): the subject is the noun after the determiner,
    the main verb the first agreeing verb form after it."""
    assert words[0] in lexicon.DETERMINERS and words[1] in NOUN_NUMBER, words
    verb_index = next(i for i, word in enumerate(words) if word in VERB_FORM)
    return NOUN_NUMBER[words[1]], verb_index, words[2:verb_index]


def test_lexicon_classes_share_no_word_and_inflected_forms_differ():
    classes = [{form for pair in lexicon.NOUNS for form in pair},
               {form for pair in lexicon.AGREEING_VERBS for form in pair},
               *(set(words) for words in (lexicon.INTRANSITIVE_PARTICIPLES, lexicon.TRANSITIVE_PARTICIPLES,
                                          lexicon.PAST_VERBS, lexicon.PAST_INTRANSITIVE_VERBS, lexicon.ADJECTIVES,
                                          lexicon.ADVERBS, lexicon.PREPOSITIONS, lexicon.DETERMINERS,
                                          (lexicon.COMPLEMENTIZER,)))]
    counts = Counter(word for words in classes for word in words)
    assert [word for word, n in counts.items() if n > 1] == []
    assert all(singular != plural for singular, plural in lexicon.NOUNS + lexicon.AGREEING_VERBS)
    assert len(lexicon.all_words()) == sum(len(words) for words in classes)
    assert 200 <= len(lexicon.all_words()) <= 500  # a few hundred words


def test_every_pair_differs_in_the_verb_number_alone_and_the_good_verb_agrees(corpus):
    _, _, pairs = corpus
    for pair in pairs:
        good, bad = pair["sentence_good"].split(), pair["sentence_bad"].split()
        assert len(good) == len(bad) and pair["verb_index"] == len(good) - 1, pair
        assert [i for i, (a, b) in enumerate(zip(good, bad)) if a != b] == [pair["verb_index"]]
        (good_lemma, good_number), (bad_lemma, bad_number) = VERB_FORM[good[-1]], VERB_FORM[bad[-1]]
        subject = good[pair["subject_index"]]
        assert good_lemma == bad_lemma and bad_number == 1 - good_number
        assert good_number == NOUN_NUMBER[subject] and pair["number"] == ("sing", "plur")[good_number]


def test_distances_and_attractors_are_what_the_file_says(corpus):
    _, meta, pairs = corpus
    for pair in pairs:
        words = pair["sentence_good"].split()
        number, verb_index, gap = read_sentence(words)
        assert verb_index == pair["verb_index"] and pair["subject_index"] == 1
        assert pair["distance"] == verb_index - pair["subject_index"] - 1 == len(gap)
        nouns = [NOUN_NUMBER[word] for word in gap if word in NOUN_NUMBER]
        assert pair["attractors"] == sum(noun != number for noun in nouns) == len(nouns)  # only attractors
        assert all(word in NOUN_NUMBER or word in lexicon.NEUTRAL_WORDS for word in gap)  # no verb agrees in a gap
        assert (pair["UID"], pair["subcondition"]) == (f"distance_{pair['distance']:02d}",
                                                       f"attractors_{pair['attractors']}")
    cells = Counter((pair["distance"], pair["attractors"]) for pair in pairs)
    assert set(cells) == {(d, a) for d in PROBES for a in range(min(3, d // 3) + 1)}
    per_distance = Counter(pair["distance"] for pair in pairs)
    assert per_distance == {d: 40 for d in PROBES}
    assert meta["pairs"]["per_distance"] == {str(d): 40 for d in PROBES} and meta["pairs"]["count"] == len(pairs)
    for distance in PROBES:  # subjects singular and plural equally often at each distance
        numbers = Counter(pair["number"] for pair in pairs if pair["distance"] == distance)
        assert numbers["sing"] == numbers["plur"] == 20
    assert len({pair["sentence_good"] for pair in pairs}) > 0.95 * len(pairs)
    assert [pair["pairID"] for pair in pairs] == [str(i) for i in range(len(pairs))]


def test_gap_has_the_exact_length_and_nouns_asked_for():
    rng = random.Random(0)
    for length in range(1, 51):
        for attractors in grammar.attractor_counts(length):
            for numbers in ([1] * attractors, [0, 1] * (length // 6)):
                words = grammar.gap(rng, length, numbers)
                assert len(words) == length
                assert [NOUN_NUMBER[word] for word in words if word in NOUN_NUMBER] == numbers
    assert list(grammar.attractor_counts(2)) == [0] and list(grammar.attractor_counts(10)) == [0, 1, 2, 3]
    with pytest.raises(ValueError):
        grammar.gap(rng, 5, [0, 1])  # two nouns need 6 words


def test_training_sentences_agree_cover_every_gap_length_and_leak_no_number(corpus):
    out, meta, _ = corpus
    lines = (out / "train.txt").read_text(encoding="utf-8").splitlines()
    assert meta["splits"]["train"]["tokens"] == sum(len(line.split()) + 1 for line in lines) >= 20_000
    assert meta["lexicon_missing_from_train"] == []
    lines, _ = grammar.corpus_lines(random.Random(1), 150_000, 50)  # enough sentences to see the tail of P(L)
    distances, same_number_nouns, gap_nouns = Counter(), 0, 0
    for line in lines:
        words = line.split()
        number, verb_index, gap = read_sentence(words)
        assert VERB_FORM[words[verb_index]][1] == number  # the main verb agrees with the subject
        assert all(word not in VERB_FORM for word in words[verb_index + 1:])  # and is the only agreeing verb
        distances[len(gap)] += 1
        nouns = [NOUN_NUMBER[word] for word in gap if word in NOUN_NUMBER]
        same_number_nouns += sum(noun == number for noun in nouns)
        gap_nouns += len(nouns)
    assert set(distances) == set(range(1, 51))
    short, long = (sum(distances[d] for d in span) / len(lines) for span in (range(1, 6), range(20, 51)))
    assert 0.45 < short < 0.57 and 0.17 < long < 0.25  # P(L) ∝ 1/L gives 0.51 and 0.21
    assert 0.48 < same_number_nouns / gap_nouns < 0.52  # a gap noun's number says nothing of the subject's


def test_same_seed_gives_the_same_bytes_and_splits_come_from_their_own_streams(tmp_path):
    settings = {"train_tokens": 4_000, "max_distance": 20, "pairs_per_distance": 8}
    first, second, other = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    write_corpus(first, seed=7, **settings)
    write_corpus(second, seed=7, **settings)
    write_corpus(other, seed=8, **settings)
    for name in FILES:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
    assert (first / "train.txt").read_bytes() != (other / "train.txt").read_bytes()
    assert (first / "pairs.jsonl").read_bytes() != (other / "pairs.jsonl").read_bytes()
    train, valid, test = ((first / name).read_text(encoding="utf-8").splitlines() for name in FILES[:3])
    assert valid[:20] != train[:20] and test[:20] != valid[:20]
    assert sorted(path.name for path in first.iterdir()) == sorted(FILES)  # no temporary file left behind


def test_script_writes_the_corpus_and_refuses_a_bad_argument_in_one_line(tmp_path):
    script = [sys.executable, str(REPO / "scripts" / "synthetic_agreement.py")]
    done = subprocess.run([*script, "--out", str(tmp_path / "c"), "--train-tokens", "3000", "--max-distance", "12",
                           "--pairs-per-distance", "6"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    meta = json.loads((tmp_path / "c" / "meta.json").read_text(encoding="utf-8"))
    assert (meta["seed"], meta["max_distance"]) == (0, 12)
    assert meta["pairs"]["per_distance"] == {str(d): 6 for d in (1, 2, 3, 5, 7, 10, 12)}
    refused = subprocess.run([*script, "--out", str(tmp_path / "d"), "--max-distance", "0"], capture_output=True,
                             text=True, timeout=60)
    assert refused.returncode == 2 and refused.stderr == "error: --max-distance must be at least 1, not 0\n"
    assert not (tmp_path / "d").exists()


def test_eval_agreement_reads_the_pairs_with_distance_and_attractor_breakdowns(corpus):
    from lstm_lm.agreement.evaluate import Outcome
    from lstm_lm.agreement.formats import read_suites
    from lstm_lm.agreement.report import breakdown

    out, _, pairs = corpus
    [suite] = read_suites([out / "pairs.jsonl"])
    assert (suite.name, suite.format, len(suite.items)) == ("pairs", "pairs-jsonl", len(pairs))
    for item, pair in zip(suite.items, pairs):
        assert (item.good, item.bad) == (pair["sentence_good"], pair["sentence_bad"])
        assert item.groups == {"condition": pair["UID"], "subcondition": pair["subcondition"],
                               "attractors": pair["attractors"], "distance": pair["distance"]}
    # Scores that get exactly the attractor-free pairs right: each breakdown must sort them accordingly.
    outcomes = [Outcome(item, 0.0 if item.groups["attractors"] == 0 else -1.0, -0.5) for item in suite.items]
    groups = {(group["key"], group["value"], group.get("condition")): group for group in breakdown(outcomes)}
    by_attractors = {value: (group["accuracy"], group["n"]) for (key, value, _), group in groups.items()
                     if key == "attractors"}
    attractor_counts = Counter(pair["attractors"] for pair in pairs)
    assert by_attractors == {0: (1.0, attractor_counts[0]), **{a: (0.0, attractor_counts[a]) for a in (1, 2, 3)}}
    by_distance = {value: group["n"] for (key, value, _), group in groups.items() if key == "distance"}
    assert by_distance == {"1": 40, "2-3": 80, "4-5": 40, "6-8": 40, "9-12": 40, "13+": 200}
    at_50 = groups["subcondition", "attractors_0", "distance_50"]  # distance × attractors, nested
    assert (at_50["accuracy"], at_50["n"]) == (1.0, 10)
    assert groups["condition", "distance_01", None]["accuracy"] == 1.0  # no room for an attractor at distance 1

"""Subject-verb agreement across a controlled gap: a small probabilistic grammar, its sentences and minimal pairs.

    sentence     = Det N_subj GAP V CONTINUATION    the dogs near the old box that the king saw often are sleeping
    GAP          = exactly L words: noun constituents and filler in random order
      PP         = P Det (Adj) N                     near the old box
      object RC  = that Det (Adj) N V_past           that the king saw
      subject RC = that V_past Det (Adj) N           that chased the cats
      filler     = Adv | that V_past_intransitive    often | that slept
    V            = is/are | was/were | has/have, in the subject's number
    CONTINUATION = after has/have an NP; after be an Adj, a PP, V-ing or V-ing NP

Distance: the number of words strictly between the subject noun and the main verb, L = verb_index - subject_index
- 1 (0-based word indices, written into every pair; the subject is word 1, the verb word L + 2). "the dog here is old"
has distance 1. The built-in suite counts positions instead (adjacent words: 1), one more than this.
Attractors: the nouns of the gap whose number is not the subject's, every one counted.

Only the subject predicts the verb's number. Determiners are number-neutral (the, my, their, ...: no this/these);
the subject's lemma, the gap's length and make-up, the verb's lemma and the continuation are drawn without regard
to its number; in the corpus every other noun has its own number, drawn at random. Verbs inside the gap are past
tense, which English does not inflect for number (was/were are left out): a present-tense verb in a subject RC
("that chases the cats") would agree with the main subject and give its number away.

The agreeing verb is be or have, as in the classic test sets ("the keys to the cabinet are"): six forms, each the
verb of a sixth of the sentences. With 39 regular present-tense verbs as well, each form was too rare to learn
from: the long-range study's 200-unit LSTM (softmax: full, 1,340 steps, 1.5M tokens) scored 50.0% on the pairs,
at distance 1 too; with be and have alone, 98.8%, at every distance.

The corpus draws gap lengths with P(L) proportional to 1/L on 1..D: an equal share of sentences for each doubling
of the distance. Half the sentences have gaps of 5 words or fewer, so a small model meets the rule often and
cheaply early in training, while a fifth (at D = 50) have gaps of 20 or more, over ten thousand per million
tokens, so the long cases are learnable in a few CPU-minutes. A uniform draw would spend most tokens on long
sentences (one agreement per 30 words), and a short-only one would never show the long gaps the study measures.
A gap of L words holds 0 to L // 3 nouns, uniformly.

In a test pair the gap's only nouns are its attractors. Other nouns of the subject's number would help a model
that guesses from the nouns it saw last or most, and long gaps hold more of them: distance and help would be
confounded. With none, a pair at distance 50 and no attractors asks the model to carry the number across 50
noun-free words, and each attractor adds interference alone.
"""

from __future__ import annotations

import random
from itertools import accumulate
from typing import Any

from . import synthetic_lexicon as lexicon

PROBE_DISTANCES = (1, 2, 3, 5, 7, 10, 15, 20, 30, 40, 50)  # the test pairs' distances, up to D, and D itself
MAX_ATTRACTORS = 3
NOUN_CONSTITUENT = 3  # P Det N: the fewest words that hold a noun
ADJECTIVE_RATE = 0.3  # how often a noun phrase gets an adjective, where the gap has room for it
FILLER_RC_RATE = 0.3  # how often a filler is "that V_past" rather than an adverb, where the gap has room for it
NUMBERS = ("sing", "plur")  # index 0 singular, 1 plural, as in the lexicon's pairs
CONSTITUENTS = ("pp", "object_rc", "subject_rc")


def noun_phrase(rng: random.Random, number: int, adjective: bool) -> list[str]:
    words = [rng.choice(lexicon.DETERMINERS)]
    if adjective:
        words.append(rng.choice(lexicon.ADJECTIVES))
    return words + [rng.choice(lexicon.NOUNS)[number]]


def constituent(rng: random.Random, kind: str, number: int, adjective: bool) -> list[str]:
    phrase = noun_phrase(rng, number, adjective)
    if kind == "pp":
        return [rng.choice(lexicon.PREPOSITIONS), *phrase]
    if kind == "object_rc":
        return [lexicon.COMPLEMENTIZER, *phrase, rng.choice(lexicon.PAST_VERBS)]
    return [lexicon.COMPLEMENTIZER, rng.choice(lexicon.PAST_VERBS), *phrase]


def gap(rng: random.Random, length: int, numbers: list[int]) -> list[str]:
    """Exactly `length` words holding exactly one noun per entry of `numbers`, in that order, and no other noun
    (needs 3 words per noun). The words the constituents leave are filled with filler spread among them."""
    spare = length - NOUN_CONSTITUENT * len(numbers)
    if spare < 0:
        raise ValueError(f"a gap of {length} words cannot hold {len(numbers)} nouns")
    parts = []
    for number in numbers:
        kind = rng.choice(CONSTITUENTS) if spare else "pp"  # a relative clause is a word longer
        spare -= kind != "pp"
        adjective = spare > 0 and rng.random() < ADJECTIVE_RATE
        spare -= adjective
        parts.append(constituent(rng, kind, number, adjective))
    slots: list[list[str]] = [[] for _ in range(len(parts) + 1)]  # before, between and after the constituents
    while spare:
        if spare >= 2 and rng.random() < FILLER_RC_RATE:
            filler = [lexicon.COMPLEMENTIZER, rng.choice(lexicon.PAST_INTRANSITIVE_VERBS)]
        else:
            filler = [rng.choice(lexicon.ADVERBS)]
        rng.choice(slots).extend(filler)
        spare -= len(filler)
    words = list(slots[0])
    for part, fillers in zip(parts, slots[1:]):
        words += part + fillers
    return words


def clause(rng: random.Random, number: int, distance: int, gap_numbers: list[int]
           ) -> tuple[list[str], tuple[str, str]]:
    """Det N GAP V, the verb agreeing with N: the words and the verb's (singular, plural) pair."""
    subject = [rng.choice(lexicon.DETERMINERS), rng.choice(lexicon.NOUNS)[number]]
    middle = gap(rng, distance, gap_numbers)
    verb = rng.choice(lexicon.AGREEING_VERBS)
    return subject + middle + [verb[number]], verb


def continuation(rng: random.Random, verb: tuple[str, str]) -> list[str]:
    """What follows the verb: has/have an object; is/are, was/were an adjective, a PP or a progressive."""
    def any_noun_phrase() -> list[str]:
        return noun_phrase(rng, rng.randrange(2), rng.random() < ADJECTIVE_RATE)

    if verb in lexicon.HAVE:
        return any_noun_phrase()
    shape = rng.randrange(4)
    if shape == 0:
        return [rng.choice(lexicon.ADJECTIVES)]
    if shape == 1:
        return [rng.choice(lexicon.PREPOSITIONS), *any_noun_phrase()]
    if shape == 2:
        return [rng.choice(lexicon.INTRANSITIVE_PARTICIPLES)]
    return [rng.choice(lexicon.TRANSITIVE_PARTICIPLES), *any_noun_phrase()]


def corpus_lines(rng: random.Random, tokens: int, max_distance: int) -> tuple[list[str], set[str]]:
    """Sentences until `tokens` tokens (each line's words and its <eos>), and each one's words through the verb."""
    lengths = range(1, max_distance + 1)
    cumulative = list(accumulate(1 / length for length in lengths))  # P(L) ∝ 1/L
    lines, prefixes, total = [], set(), 0
    while total < tokens or not lines:
        number, distance = rng.randrange(2), rng.choices(lengths, cum_weights=cumulative)[0]
        gap_numbers = [rng.randrange(2) for _ in range(rng.randint(0, distance // NOUN_CONSTITUENT))]
        words, verb = clause(rng, number, distance, gap_numbers)
        prefixes.add(" ".join(words))
        words += continuation(rng, verb)
        lines.append(" ".join(words))
        total += len(words) + 1
    return lines, prefixes


def probe_distances(max_distance: int) -> list[int]:
    return sorted({d for d in PROBE_DISTANCES if d <= max_distance} | {max_distance})


def attractor_counts(distance: int) -> range:
    """0 ... 3 attractors, as many as a gap of this length can hold."""
    return range(min(MAX_ATTRACTORS, distance // NOUN_CONSTITUENT) + 1)


def minimal_pair(rng: random.Random, distance: int, attractors: int, number: int, width: int) -> dict[str, Any]:
    """A pair in the pairs JSON Lines format, ending at the verb (so the sentence method compares the two verb
    forms alone); the gap's nouns are its attractors, at random places in it. UID is the exact distance and
    subcondition the attractor count: the report buckets distances above 12 together, and its subcondition
    breakdown, nested in the condition, gives distance × attractors."""
    words, verb = clause(rng, number, distance, [1 - number] * attractors)
    return {"sentence_good": " ".join(words), "sentence_bad": " ".join(words[:-1] + [verb[1 - number]]),
            "UID": f"distance_{distance:0{width}d}", "subcondition": f"attractors_{attractors}",
            "distance": distance, "attractors": attractors, "number": NUMBERS[number],
            "subject_index": 1, "verb_index": distance + 2}


def probe_pairs(rng: random.Random, max_distance: int, per_distance: int) -> list[dict[str, Any]]:
    """`per_distance` pairs at each probe distance, shared evenly by the attractor counts it can hold, subjects
    alternately singular and plural (a model that always says "plural" scores 50%)."""
    pairs = []
    width = len(str(max_distance))
    for distance in probe_distances(max_distance):
        counts = attractor_counts(distance)
        cells = [attractors for j, attractors in enumerate(counts)
                 for _ in range(per_distance // len(counts) + (j < per_distance % len(counts)))]
        # Numbers alternate across the distance's pairs: balanced at each distance and within one in each cell.
        pairs.extend(minimal_pair(rng, distance, attractors, i % 2, width) for i, attractors in enumerate(cells))
    for pair_id, pair in enumerate(pairs):
        pair["pairID"] = str(pair_id)
    return pairs

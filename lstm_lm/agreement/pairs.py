"""From a minimal pair to what the scorer reads: both sentences split the way the training corpus was, encoded,
and cut into a shared prefix and the alternatives the chosen method compares. A pair that cannot be compared this
way (the same sentence twice once split, say) is a MalformedItem: skipped and counted, unless --strict.

    sentence method   the flights the airline was | cancelling were full     the shared ids are read once;
                                                  | cancelling was full      each score is the whole sentence's
    target method     the flights the airline was cancelling | were            the words after the target are
                                                             | was             left out
"""

from __future__ import annotations

from dataclasses import dataclass

from ..data.tokenizers import Tokenizer
from .items import Item, MalformedItem
from .pretokenize import word_splitter
from .scoring import ScoreRequest


@dataclass(frozen=True)
class EncodedPair:
    item: Item
    request: ScoreRequest  # continuations: (good, bad)
    unknown_deciding: list[str]  # the words that tell the sentences apart, where the vocabulary lacks them
    unknown: list[str]  # every word of either sentence that the vocabulary lacks


class PairEncoder:
    def __init__(self, tokenizer: Tokenizer):
        self.tokenizer = tokenizer
        self.split = word_splitter(tokenizer)

    def encode(self, item: Item, method: str) -> EncodedPair:
        good, bad = self.split(item.good), self.split(item.bad)
        if not good or not bad:
            raise MalformedItem(item.where, "empty-sentence",
                                "a sentence is empty once split the way the model's corpus was")
        start, good_end, bad_end = differing_span(good, bad)
        if good_end == start and bad_end == start:
            raise MalformedItem(item.where, "same-sentences", f"the two sentences are the same once split the way "
                                                              f"the model's corpus was ({' '.join(good)!r})")
        deciding = good[start:good_end] + bad[start:bad_end]
        if method == "target":
            if good_end - start != 1 or bad_end - start != 1:
                raise MalformedItem(item.where, "not-one-word", f"--method target needs sentences that differ in "
                                    f"one word; these differ in {' '.join(good[start:good_end])!r} and "
                                    f"{' '.join(bad[start:bad_end])!r}")
            request = self.target_request(" ".join(good[:start]), good[start], bad[start])
        else:
            request = self.sentence_request(" ".join(good), " ".join(bad))
        return EncodedPair(item, request, self.tokenizer.unknown_words(" ".join(deciding)),
                           self.tokenizer.unknown_words(" ".join(good + bad)))

    def sentence_request(self, good: str, bad: str) -> ScoreRequest:
        good_ids, bad_ids = self.tokenizer.encode(good), self.tokenizer.encode(bad)
        shared = 0
        # Stop one id short of the shorter sentence so that neither continuation is empty.
        while shared < min(len(good_ids), len(bad_ids)) - 1 and good_ids[shared] == bad_ids[shared]:
            shared += 1
        return ScoreRequest(good_ids[:shared], (good_ids[shared:], bad_ids[shared:]))

    def target_request(self, prefix: str, *forms: str) -> ScoreRequest:
        """The prefix's ids and each form's pieces after it (a character model's pieces include the space)."""
        prefix_ids = self.tokenizer.encode(prefix) if prefix else []
        # Word, character and BPE tokenizers all cut at spaces, so the prefix keeps its ids whatever follows.
        continuations = tuple(self.tokenizer.encode(f"{prefix} {form}" if prefix else form)[len(prefix_ids):]
                              for form in forms)
        return ScoreRequest(prefix_ids, continuations)


def differing_span(good: list[str], bad: list[str]) -> tuple[int, int, int]:
    """(start, good_end, bad_end): good[start:good_end] and bad[start:bad_end] are what differs once the longest
    shared beginning and end are set aside."""
    shortest = min(len(good), len(bad))
    start = 0
    while start < shortest and good[start] == bad[start]:
        start += 1
    end = 0
    while end < shortest - start and good[-1 - end] == bad[-1 - end]:
        end += 1
    return start, len(good) - end, len(bad) - end

"""From a SyntaxGym condition to what the scorer reads: the sentence's token ids, and which tokens make up each
region, read the way the model's training corpus was written.

    regions    As the doctor | studied the book | .
    PTB words  as the doctor | studied the book | (none: the corpus has no ".")   -> the region is <eos> there
    characters A s ␣ t h e … | ␣ s t u d i e d … | ␣ .                           -> a joining space goes with the
                                                                                    region it comes before
A word-level model's words are split region by region (the splitting never crosses a space, and regions are joined
by one), so each word is exactly one region's. Character and BPE models take the sentence as it is, and each token
goes to the region holding its first non-space character.

What a region is for this model:

    scored       its tokens' surprisals are summed; words the vocabulary lacks are read as <unk> and counted
    eos          only punctuation the model cannot read (a PTB model has no "."), and nothing after it: it is scored
                 as the model's end of sentence there, and its own tokens (a character model's <unk>) are not read
    unscorable   only punctuation the model cannot read, before the sentence's end (a comma for PTB), or nothing
                 left at all once split: there is no surprisal to give it, nor to the regions after it (what the
                 model reads there is not the sentence as written); predictions reading them are not scored
    empty        no content (a gap): surprisal 0, as SyntaxGym sums an empty region
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from ..data.tokenizers import Tokenizer, WordTokenizer
from .pretokenize import CorpusSplitter
from .syntaxgym_suite import GymCondition, GymRegion

SCORED, EOS, UNSCORABLE, EMPTY = "scored", "eos", "unscorable", "empty"


@dataclass(frozen=True)
class AlignedRegion:
    number: int
    status: str  # SCORED, EOS, UNSCORABLE or EMPTY
    positions: tuple[int, ...]  # indices into the sentence's ids of the tokens summed (SCORED only)
    unknown: int  # of those, how many are <unk> for a word the vocabulary lacks


@dataclass(frozen=True)
class AlignedSentence:
    ids: list[int]  # what the model reads after the boundary token; an eos region's own tokens left out
    regions: dict[int, AlignedRegion]  # by region number
    ends_with_eos: bool  # whether the boundary token after `ids` is scored (for the eos region)


def punctuation_only(text: str) -> bool:
    """"." "," "?!" "--": every character is a punctuation mark (Unicode category P)."""
    marks = [character for character in text if not character.isspace()]
    return bool(marks) and all(unicodedata.category(character).startswith("P") for character in marks)


class RegionAligner:
    """Aligns the conditions of SyntaxGym items with one model's tokens."""

    def __init__(self, tokenizer: Tokenizer):
        self.tokenizer = tokenizer
        self.splitter = CorpusSplitter(tokenizer.stoi, tokenizer.lowercase) \
            if isinstance(tokenizer, WordTokenizer) else None

    def align(self, condition: GymCondition) -> AlignedSentence:
        tokens = self.word_tokens(condition) if self.splitter else self.span_tokens(condition)
        last = max(region.number for region in condition.regions if region.content.strip())
        statuses = {}
        for region in condition.regions:
            content = [token_id for number, token_id, blank in tokens if number == region.number and not blank]
            statuses[region.number] = region_status(region.content, content, self.tokenizer.unk_id,
                                                    region.number == last)
        ids: list[int] = []
        positions: dict[int, list[int]] = {region.number: [] for region in condition.regions}
        for number, token_id, _ in tokens:
            if statuses[number][0] != EOS:  # an eos region's own tokens are not read
                positions[number].append(len(ids))
                ids.append(token_id)
        regions = {number: AlignedRegion(number, status, tuple(positions[number]) if status == SCORED else (),
                                         unknown)
                   for number, (status, unknown) in statuses.items()}
        return AlignedSentence(ids, regions, any(status == EOS for status, _ in statuses.values()))

    def word_tokens(self, condition: GymCondition) -> list[tuple[int, int, bool]]:
        """(region number, id, whether the token is only whitespace) for every token of the sentence, in order."""
        tokens = []
        for region in condition.regions:
            words = self.splitter.split(region.content)
            ids = self.tokenizer.encode(" ".join(words))
            tokens.extend((region.number, token_id, False) for token_id in ids)
        return tokens

    def span_tokens(self, condition: GymCondition) -> list[tuple[int, int, bool]]:
        """As `word_tokens`, from the tokens' character spans in the sentence."""
        sentence = condition.sentence
        owners = character_owners(sentence, condition.regions)
        ids, spans = self.tokenizer.encode_with_spans(sentence)
        tokens = []
        for token_id, (start, end) in zip(ids, spans, strict=True):
            inside = range(start, max(end, start + 1))
            first = next((p for p in inside if p < len(sentence) and not sentence[p].isspace()), None)
            blank = first is None
            position = min(start, len(sentence) - 1) if blank else first
            tokens.append((owners[position], token_id, blank))
        return tokens


def region_status(text: str, content: list[int], unk_id: int, is_last: bool) -> tuple[str, int]:
    """(status, how many <unk> tokens a scored region holds) from the region's text and the ids of its tokens that
    are not only whitespace."""
    if not text.strip():
        return EMPTY, 0
    unknown = sum(1 for token_id in content if token_id == unk_id)
    if punctuation_only(text) and unknown == len(content):  # nothing, or only <unk>: the model lacks these marks
        return (EOS if is_last else UNSCORABLE), 0
    if not content:
        return UNSCORABLE, 0  # a symbol the corpus drops ($ where PTB lacks it): nothing is left to score
    # Words the vocabulary lacks are read as <unk>, as SyntaxGym's models read them, and counted.
    return SCORED, unknown


def character_owners(sentence: str, regions: tuple[GymRegion, ...]) -> list[int]:
    """The region number of each character of the sentence: a region's own characters are its; a joining space (or
    any whitespace) goes to the region of the next non-space character, or, at the very end, of the one before."""
    owners: list[int | None] = [None] * len(sentence)
    for region in regions:
        start, end = region.span
        for position in range(start, end):
            if not sentence[position].isspace():
                owners[position] = region.number
    following = None
    for position in range(len(sentence) - 1, -1, -1):
        if owners[position] is None:
            owners[position] = following
        else:
            following = owners[position]
    preceding = None
    for position in range(len(sentence)):
        if owners[position] is None:
            owners[position] = preceding
        preceding = owners[position]
    return owners  # no None is left: a sentence has a non-space character (the suite reader checks)

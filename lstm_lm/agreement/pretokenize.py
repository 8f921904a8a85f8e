"""Splitting sentences the way the training corpus was, so that a word-level model reads its own tokens.

    "The dogs aren't here, 1,000 of them."
    PTB       -> the dogs are n't here N of them               lower-cased, punctuation dropped, numbers as N
    WikiText  -> The dogs aren 't here , 1 @,@ 000 of them .   cased, punctuation split off, @-marked numbers

The convention is read off the model's vocabulary. Character and BPE models take the text as it is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Collection

from ..data.tokenizers import Tokenizer, WordTokenizer

PIECE = re.compile(r"""
      <\w+>                          # a special token: <unk>
    | @[-,.]@                        # a WikiText mark already split off
    | \d+(?:[.,]\d+)*                # a number: 1,000  3.14
    | ['’](?:s|re|ve|ll|d|m|t)\b     # a clitic already split off: 's 're 't
    | \w+(?:[-'’]\w+)*               # a word, inner hyphens and apostrophes included: role-playing aren't dog's
    | \S                             # anything else, one character at a time: punctuation
""", re.VERBOSE | re.IGNORECASE)
NEGATION = re.compile(r"(\w+)n['’]t", re.IGNORECASE)  # aren't, can't (PTB: ca n't)
CLITIC = re.compile(r"(\w+)(['’](?:s|re|ve|ll|d|m))", re.IGNORECASE)  # dog's, they're, we've


@dataclass(frozen=True)
class Convention:
    lowercase: bool
    punctuation: bool  # marks are tokens of their own (WikiText), not absent (PTB)
    wikitext_clitics: bool  # aren't -> aren 't (WikiText), not are n't (PTB)
    number_token: str | None  # PTB writes every number as N
    at_marks: bool  # WikiText: 1,000 -> 1 @,@ 000 and role-playing -> role @-@ playing


def detect_convention(vocabulary: Collection[str], tokenizer_lowercases: bool) -> Convention:
    # "The", "London": a cased corpus has capitalized words; PTB's only capital is N.
    cased = any(word[:1].isupper() and word[1:].islower() for word in vocabulary)
    return Convention(
        lowercase=tokenizer_lowercases or not cased,
        punctuation="." in vocabulary or "," in vocabulary,
        wikitext_clitics="'t" in vocabulary and "n't" not in vocabulary,
        number_token="N" if "N" in vocabulary and not any(word.isdigit() for word in vocabulary) else None,
        at_marks="@-@" in vocabulary or "@,@" in vocabulary,
    )


class CorpusSplitter:
    """Splits text into the words of one word-level vocabulary's corpus convention."""

    def __init__(self, vocabulary: Collection[str], tokenizer_lowercases: bool):
        self.vocabulary = vocabulary
        self.convention = detect_convention(vocabulary, tokenizer_lowercases)

    def split(self, text: str) -> list[str]:
        words: list[str] = []
        for chunk in text.split():
            chunk = chunk.lower() if self.convention.lowercase else chunk
            if chunk in self.vocabulary:  # already a token of the corpus: mr. , n't , <unk>
                words.append(chunk)
                continue
            for piece in PIECE.findall(chunk):
                words.extend(self.split_piece(piece))
        return words

    def split_piece(self, piece: str) -> list[str]:
        convention = self.convention
        if piece[0].isdigit():
            if convention.number_token:
                return [convention.number_token]
            return re.sub(r"([.,])", r" @\1@ ", piece).split() if convention.at_marks else [piece]
        if not (piece[0].isalnum() or piece[0] in "'’" or piece.startswith(("<", "@"))):
            keep = convention.punctuation or piece in self.vocabulary  # PTB keeps $ and &, drops . and ,
            return [piece] if keep else []
        negation, clitic = NEGATION.fullmatch(piece), CLITIC.fullmatch(piece)
        if negation:
            stem = negation.group(1)
            return [stem + "n", "'t"] if convention.wikitext_clitics else [stem, "n't"]
        if clitic:
            return [clitic.group(1), clitic.group(2).replace("’", "'")]
        if "-" in piece and convention.at_marks:
            return " @-@ ".join(piece.split("-")).split()
        return [piece]


def word_splitter(tokenizer: Tokenizer) -> Callable[[str], list[str]]:
    """How to cut a sentence into words for this model: its corpus convention for a word-level vocabulary,
    plain whitespace for character and BPE models (their own tokenizer takes the text as it is)."""
    if isinstance(tokenizer, WordTokenizer):
        return CorpusSplitter(tokenizer.stoi, tokenizer.lowercase).split
    return str.split

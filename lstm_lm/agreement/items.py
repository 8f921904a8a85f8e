"""A minimal pair and a suite of them: what every reader and the built-in suite produce, and what gets scored."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator

from ..errors import UserError

# Each format's own scoring method; `--method` may force the other one where it is defined. Every built-in item
# differs from its pair in the target word alone, so the suite compares the two forms after the prefix, which
# leaves the words after the target (their probability varies with the form before them) out of the comparison.
STANDARD_METHOD = {
    "pairs-jsonl": "sentence",
    "pairs-tsv": "sentence",
    "linzen": "target",
    "gulordava": "target",
    "builtin": "target",
}
FORMATS = ("pairs-jsonl", "pairs-tsv", "linzen", "gulordava", "syntaxgym")  # SyntaxGym: syntaxgym_suite.py
METHODS = ("sentence", "target")


@dataclass(frozen=True)
class Item:
    """One minimal pair. Sentences are untokenized (pairs formats, built-in suite) or tokenized (text/gold formats);
    either way they are split again the way the model's training corpus was before scoring."""

    good: str  # the grammatical sentence
    bad: str  # the same sentence with the wrong form
    where: str  # "file:line" or "built-in:N": named in error messages and in the items file
    # What the report breaks accuracy down by: condition, subcondition, attractors, distance, type, pattern, ...
    groups: dict[str, str | int] = field(default_factory=dict)


@dataclass(frozen=True)
class Skipped:
    """An item left out because it is malformed (its two forms the same word, a sentence empty, ...)."""

    where: str  # "file:line"
    kind: str  # what the report counts by: same-forms, empty-form, empty-sentence, same-sentences, not-one-word
    reason: str  # the message --strict refuses the file with, after "where: "


class MalformedItem(UserError):
    """One item that cannot be scored, in a file that can be read: the public sets hold a few (the Linzen et al. set
    has items whose two verb forms are the same word). Skipped and counted, unless --strict refuses the file.
    What cannot be meant (a .text without its .gold, an index outside its sentence) stays a plain UserError."""

    def __init__(self, where: str, kind: str, reason: str):
        super().__init__(f"{where}: {reason}")
        self.skipped = Skipped(where, kind, reason)


class ItemCollector:
    """The items a reader keeps and the malformed ones it skips; with `strict` the first malformed one is raised."""

    def __init__(self, strict: bool):
        self.strict = strict
        self.items: list[Item] = []
        self.skipped: list[Skipped] = []

    @contextmanager
    def item(self) -> Iterator[None]:
        """Wraps the reading of one item: a MalformedItem inside skips it."""
        try:
            yield
        except MalformedItem as error:
            if self.strict:
                raise
            self.skipped.append(error.skipped)


@dataclass
class Suite:
    name: str
    format: str  # one of FORMATS but syntaxgym, or "builtin"
    items: list[Item]
    skipped: list[Skipped] = field(default_factory=list)  # malformed items left out when the file was read

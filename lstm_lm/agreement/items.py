"""A minimal pair and a suite of them: what every reader and the built-in suite produce, and what gets scored."""

from __future__ import annotations

from dataclasses import dataclass, field

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
FORMATS = ("pairs-jsonl", "pairs-tsv", "linzen", "gulordava")
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


@dataclass
class Suite:
    name: str
    format: str  # one of FORMATS, or "builtin"
    items: list[Item]

"""Minimal-pair files: JSON Lines (BLiMP style, format 1) and TSV (Marvin & Linzen style, format 2).

A line that is not JSON, or has the wrong number of columns, is refused with the file; a pair with a sentence
missing or empty, or the same sentence twice, is skipped and counted (refused with `strict`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..reading import read_text
from .items import Item, ItemCollector, MalformedItem, Suite


def read_pairs_jsonl(path: Path, strict: bool = False) -> Suite:
    """One object per line with `sentence_good` and `sentence_bad`; `UID` is the condition. The fields the built-in
    suite writes (`subcondition`, `attractors`, `distance`) are read back as groups; other fields are ignored."""
    kept = ItemCollector(strict)
    for number, line in enumerate(read_text(path, "utf-8").splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise UserError(f"{where}: not valid JSON ({error.msg} at column {error.colno})") from None
        if not isinstance(record, dict):
            raise UserError(f"{where}: expected a JSON object with sentence_good and sentence_bad")
        groups: dict[str, str | int] = {"condition": str(record.get("UID", path.stem))}
        for field, key in (("linguistics_term", "term"), ("subcondition", "subcondition")):
            if field in record:
                groups[key] = str(record[field])
        for key in ("attractors", "distance"):
            if key in record:
                groups[key] = integer_field(record[key], key, where)
        with kept.item():
            kept.items.append(pair(record.get("sentence_good"), record.get("sentence_bad"), where, groups))
    return non_empty(Suite(path.stem, "pairs-jsonl", kept.items, kept.skipped), path)


def read_pairs_tsv(path: Path, strict: bool = False) -> Suite:
    """A header naming `sentence_good`, `sentence_bad` (and `subcondition`), or plain two-column lines. The file
    name is the condition."""
    rows = [(number, line.split("\t")) for number, line in enumerate(read_text(path, "utf-8").splitlines(), 1)
            if line.strip()]
    if not rows:
        raise UserError(f"{path}: no minimal pairs in the file")
    header = rows[0][1]
    if "sentence_good" in header and "sentence_bad" in header:
        columns, data = header, rows[1:]
    elif len(header) == 2:
        columns, data = ["sentence_good", "sentence_bad"], rows
    else:
        raise UserError(f"{path}:1: expected a header naming sentence_good and sentence_bad, or two "
                        f"tab-separated columns, found {len(header)}")
    kept = ItemCollector(strict)
    for number, cells in data:
        where = f"{path}:{number}"
        if len(cells) != len(columns):
            raise UserError(f"{where}: expected {len(columns)} tab-separated columns, found {len(cells)}")
        row = dict(zip(columns, cells))
        groups: dict[str, str | int] = {"condition": path.stem}
        if "subcondition" in row:
            groups["subcondition"] = row["subcondition"]
            nouns = noun_numbers(row["subcondition"])
            if nouns is not None:
                groups["nouns"] = nouns
        with kept.item():
            kept.items.append(pair(row["sentence_good"], row["sentence_bad"], where, groups))
    return non_empty(Suite(path.stem, "pairs-tsv", kept.items, kept.skipped), path)


def noun_numbers(subcondition: str) -> str | None:
    """'sing_MS_MV_plur_ES' -> 'mismatch': do the subjects it names (MS, ES, IS, BS) share their number? An
    intervening noun of the other number is an attractor. None when the code names fewer than two subjects."""
    number, subjects = None, []
    for part in subcondition.split("_"):
        if part in ("sing", "plur"):
            number = part
        elif part.endswith("S") and number is not None:
            subjects.append(number)
    if len(subjects) < 2:
        return None
    return "match" if len(set(subjects)) == 1 else "mismatch"


def pair(good: Any, bad: Any, where: str, groups: dict[str, str | int]) -> Item:
    good, bad = sentence(good, "sentence_good", where), sentence(bad, "sentence_bad", where)
    if good == bad:
        raise MalformedItem(where, "same-sentences", f"the two sentences are the same ({good!r})")
    return Item(good, bad, where, groups)


def sentence(value: Any, key: str, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise MalformedItem(where, "empty-sentence", f"missing or empty '{key}'")
    return value.strip()


def integer_field(value: Any, key: str, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise UserError(f"{where}: '{key}' must be a whole number, not {value!r}")
    return value


def non_empty(suite: Suite, path: Path) -> Suite:
    """The suite, unless nothing in it can be scored: a file whose every item is malformed is refused whole."""
    if not suite.items:
        if suite.skipped:
            first = suite.skipped[0]
            raise UserError(f"{first.where}: {first.reason}; no item of the file can be scored "
                            f"({len(suite.skipped):,} malformed)")
        raise UserError(f"{path}: no minimal pairs in the file")
    return suite

"""Prefix-and-target files: a `.text` file of tokenized sentences and a line-aligned `.gold` file naming the target
position and its two forms. Linzen et al. (4 columns, format 3) and Gulordava et al. (12 columns, with nonce
variants and an optional `.tab` table of attractor counts, format 4).

An item with its two forms the same word (the Linzen et al. set as committed in colorlessgreenRNNs has four:
`wherein wherein`, `lie lie`, ...), a form missing or an empty sentence is skipped and counted (refused with
`strict`). What says the files do not fit together is refused whole: a .text without its .gold, line counts that
differ, a wrong number of columns, an index outside its sentence or one that names neither form."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from ..errors import UserError
from ..reading import read_text
from .items import Item, ItemCollector, MalformedItem, Suite
from .read_pairs import non_empty

LINZEN_COLUMNS = 4  # index, correct form, wrong form, attractors
GULORDAVA_COLUMNS = 12  # pattern_id constr_id sent_id target_idx target_pos target_morph correct_form wrong_form
#                         lemma controller_idx controller_pos original_prefix
TAB_COLUMNS = ("pattern", "constr_id", "sent_id", "class", "n_attr")  # the ones read from generated.tab


def gold_file(text_path: Path) -> Path:
    gold = text_path.with_suffix(".gold")
    if not gold.is_file():
        raise UserError(f"{gold}: not found; {text_path.name} needs its line-aligned .gold file")
    return gold


def read_linzen(text_path: Path, strict: bool = False) -> Suite:
    kept = ItemCollector(strict)
    for line in aligned_lines(text_path, LINZEN_COLUMNS):
        with kept.item():
            kept.items.append(linzen_item(line))
    return non_empty(Suite(text_path.stem, "linzen", kept.items, kept.skipped), text_path)


def linzen_item(line: AlignedLine) -> Item:
    where, words, cells = line.where, line.words(), line.cells
    index = target_index(cells[0], words, where)
    # The sentences are the originals, so the word at the index is one of the forms; when it is not, the file
    # counts differently (from 1, or to the word before the target) and every prefix would be wrong.
    if words[index].lower() not in (cells[1].lower(), cells[2].lower()):
        raise UserError(f"{where}: the word at target index {index} is {words[index]!r}, neither {cells[1]!r} "
                        f"nor {cells[2]!r} (indices count from 0 and name the target word itself)")
    attractors = integer_cell(cells[3], "attractor count", where)
    return minimal_pair(words, index, cells[1], cells[2], where, {"attractors": attractors})


def read_gulordava(text_path: Path, strict: bool = False) -> Suite:
    attractors = read_attractor_table(text_path.with_suffix(".tab"))
    kept = ItemCollector(strict)
    for line in aligned_lines(text_path, GULORDAVA_COLUMNS):
        with kept.item():
            kept.items.append(gulordava_item(line, attractors))
    return non_empty(Suite(text_path.stem, "gulordava", kept.items, kept.skipped), text_path)


def gulordava_item(line: AlignedLine, attractors: dict[tuple[str, str, str], int]) -> Item:
    where, words, cells = line.where, line.words(), line.cells
    pattern, construction, sentence_id = cells[0], cells[1], cells[2]
    index = target_index(cells[3], words, where)
    controller = integer_cell(cells[9], "controller_idx", where)
    groups: dict[str, str | int] = {"pattern": pattern, "type": "original" if sentence_id == "0" else "nonce",
                                    "distance": index - controller}
    if (pattern, construction, sentence_id) in attractors:
        groups["attractors"] = attractors[pattern, construction, sentence_id]
    return minimal_pair(words, index, cells[6], cells[7], where, groups)


@dataclass(frozen=True)
class AlignedLine:
    where: str  # the .gold file and line, which items are named by
    text_where: str  # the .text file and line
    sentence: str
    cells: list[str]  # the .gold line's

    def words(self) -> list[str]:
        """The sentence's words without its final <eos>; an empty sentence is a malformed item."""
        words = self.sentence.split()
        if words and words[-1] == "<eos>":
            words.pop()
        if not words:
            raise MalformedItem(self.text_where, "empty-sentence", "empty sentence")
        return words


def aligned_lines(text_path: Path, columns: int) -> Iterator[AlignedLine]:
    """Each line of the .text file with its line of the .gold file, whose column count is checked."""
    gold = gold_file(text_path)
    sentences = read_text(text_path, "utf-8").splitlines()
    golds = read_text(gold, "utf-8").splitlines()
    if len(sentences) != len(golds):
        raise UserError(f"{gold} has {len(golds)} lines but {text_path} has {len(sentences)}; they must be "
                        f"line-aligned")
    for number, (sentence, gold_line) in enumerate(zip(sentences, golds), 1):
        where = f"{gold}:{number}"
        cells = gold_line.split("\t")
        if len(cells) != columns:
            raise UserError(f"{where}: expected {columns} tab-separated columns, found {len(cells)}")
        yield AlignedLine(where, f"{text_path}:{number}", sentence, cells)


def target_index(cell: str, words: list[str], where: str) -> int:
    index = integer_cell(cell, "target index", where)
    if not 0 <= index < len(words):
        raise UserError(f"{where}: target index {index} is outside its sentence ({len(words)} words, "
                        f"indices 0 to {len(words) - 1})")
    return index


def minimal_pair(words: list[str], index: int, correct: str, wrong: str, where: str,
                 groups: dict[str, str | int]) -> Item:
    """The sentence with the correct form at `index`, and with the wrong one."""
    if not correct or not wrong:
        raise MalformedItem(where, "empty-form", f"needs two different forms, found {correct!r} and {wrong!r}")
    if correct == wrong:
        raise MalformedItem(where, "same-forms", f"needs two different forms, found {correct!r} and {wrong!r}")
    good = " ".join(words[:index] + [correct] + words[index + 1:])
    bad = " ".join(words[:index] + [wrong] + words[index + 1:])
    return Item(good, bad, where, groups)


def read_attractor_table(tab: Path) -> dict[tuple[str, str, str], int]:
    """(pattern, constr_id, sent_id) -> n_attr from the optional generated.tab (its rows of class 'correct')."""
    if not tab.is_file():
        return {}
    lines = read_text(tab, "utf-8").splitlines()
    header = lines[0].split("\t") if lines else []
    missing = [column for column in TAB_COLUMNS if column not in header]
    if missing:
        raise UserError(f"{tab}:1: the header lacks the column(s) {', '.join(missing)}")
    counts = {}
    for number, line in enumerate(lines[1:], 2):
        if not line.strip():
            continue
        cells = line.split("\t")
        if len(cells) != len(header):
            raise UserError(f"{tab}:{number}: expected {len(header)} tab-separated columns, found {len(cells)}")
        row = dict(zip(header, cells))
        if row["class"] == "correct":
            key = (row["pattern"], row["constr_id"], row["sent_id"])
            counts[key] = integer_cell(row["n_attr"], "n_attr", f"{tab}:{number}")
    return counts


def integer_cell(cell: str, name: str, where: str) -> int:
    try:
        return int(cell)
    except ValueError:
        raise UserError(f"{where}: {name} {cell!r} is not a whole number") from None

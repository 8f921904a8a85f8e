"""Which files to read and in which format: directories expanded, formats detected from names and content."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from ..errors import UserError
from ..reading import read_text
from .items import FORMATS, Suite
from .read_aligned import GULORDAVA_COLUMNS, LINZEN_COLUMNS, gold_file, read_gulordava, read_linzen
from .read_pairs import read_pairs_jsonl, read_pairs_tsv
from .syntaxgym_suite import GymSuite, check_distinct_names, read_suite

# Each takes the file and `strict` (refuse a malformed item rather than skip it; SyntaxGym suites refuse always).
READERS: dict[str, Callable[[Path, bool], Suite | GymSuite]] = {
    "pairs-jsonl": read_pairs_jsonl, "pairs-tsv": read_pairs_tsv, "linzen": read_linzen, "gulordava": read_gulordava,
    "syntaxgym": lambda path, strict: read_suite(path),
}
SUITE_SUFFIXES = (".jsonl", ".json", ".tsv", ".text")  # what a directory is searched for
COMPANION_SUFFIXES = (".gold", ".eval", ".tab")  # naming one of these means its .text file


def read_suites(paths: list[Path], format_name: str = "auto", strict: bool = False) -> list[Suite | GymSuite]:
    """Every suite the paths name, all read (and checked) before anything is scored. Malformed items are skipped
    and recorded in each Suite's `skipped`, or with `strict` the first one is refused."""
    if format_name != "auto" and format_name not in FORMATS:
        raise UserError(f"--format {format_name}: expected auto, {', '.join(FORMATS)}")
    suites = [READERS[detect_format(path) if format_name == "auto" else format_name](path, strict)
              for path in suite_files(paths)]
    check_distinct_names([suite for suite in suites if isinstance(suite, GymSuite)])
    return suites


def suite_files(paths: list[Path]) -> list[Path]:
    """Files to read, in order: a directory gives its test files, a .gold/.eval/.tab file gives its .text file."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(child for child in path.iterdir() if child.is_file() and child.suffix in SUITE_SUFFIXES)
            if not found:
                raise UserError(f"{path}: no agreement test files in it (looked for "
                                f"{', '.join('*' + suffix for suffix in SUITE_SUFFIXES)})")
            files.extend(found)
        elif path.is_file():
            files.append(path.with_suffix(".text") if path.suffix in COMPANION_SUFFIXES else path)
        else:
            raise UserError(f"{path}: file not found")
    return list(dict.fromkeys(files))  # a .text named twice (as itself and by its .gold) is read once


def detect_format(path: Path) -> str:
    if path.suffix == ".json" and is_syntaxgym(path):
        return "syntaxgym"
    if path.suffix in (".jsonl", ".json"):
        return "pairs-jsonl"
    if path.suffix == ".tsv":
        return "pairs-tsv"
    if path.suffix == ".text":
        return aligned_format(path)
    first = next((line for line in read_text(path, "utf-8").splitlines() if line.strip()), "")
    if first.lstrip().startswith("{"):
        return "syntaxgym" if is_syntaxgym(path) else "pairs-jsonl"
    if "\t" in first:
        return "pairs-tsv"
    raise UserError(f"{path}: cannot tell its format from its name or first line; pass --format "
                    f"({', '.join(FORMATS)})")


def aligned_format(text_path: Path) -> str:
    """Linzen or Gulordava, told apart by the number of columns of the first line of the .gold file."""
    gold = gold_file(text_path)
    first = (read_text(gold, "utf-8").splitlines() or [""])[0]
    columns = len(first.split("\t"))
    formats = {LINZEN_COLUMNS: "linzen", GULORDAVA_COLUMNS: "gulordava"}
    if columns not in formats:
        raise UserError(f"{gold}:1: expected {LINZEN_COLUMNS} (Linzen) or {GULORDAVA_COLUMNS} (Gulordava) "
                        f"tab-separated columns, found {columns}")
    return formats[columns]


def is_syntaxgym(path: Path) -> bool:
    """A SyntaxGym suite is one JSON object (over many lines) with region_meta and items; a pairs file is one
    object per line, which does not parse as one document unless it has a single line."""
    try:
        document = json.loads(read_text(path, "utf-8"))
    except json.JSONDecodeError:
        return False
    return isinstance(document, dict) and "region_meta" in document and "items" in document

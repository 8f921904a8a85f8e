"""The vocabulary of an imported RNNModel: the id -> token list its embedding rows follow.

The example saves none; its data.py builds the Dictionary from the corpus every run, which `corpus_vocabulary`
repeats: the files train.txt, valid.txt and test.txt in that order, each line split on whitespace with `<eos>`
appended, every word given the next id the first time it is seen. colorlessgreenRNNs ships a vocab.txt of one
token per line, the id being the line number (`vocab_file`).
"""

from __future__ import annotations

from pathlib import Path

from ..errors import UserError
from ..reading import read_text

EXAMPLE_SPLITS = ("train.txt", "valid.txt", "test.txt")  # the order data.Corpus reads them in
EOS = "<eos>"


def vocab_file(path: Path) -> list[str]:
    """One token per line; a final newline ends the last line rather than adding an empty one. A line that is
    empty or holds whitespace, or a token seen before, is an error naming the line: their ids would be ambiguous."""
    lines = read_text(path, "utf-8").split("\n")
    if lines[-1] == "":
        lines.pop()
    tokens: list[str] = []
    first_line: dict[str, int] = {}
    for number, line in enumerate(lines, start=1):
        token = line.removesuffix("\r")  # a file written on Windows
        if not token or any(char.isspace() for char in token):
            raise UserError(f"{path}:{number}: {'an empty line' if not token else repr(token)}; a vocabulary file "
                            f"holds one token per line, without spaces")
        if token in first_line:
            raise UserError(f"{path}:{number}: {token!r} again, first on line {first_line[token]}")
        first_line[token] = number
        tokens.append(token)
    return tokens


def corpus_vocabulary(directory: Path) -> list[str]:
    """The example's Dictionary, rebuilt from the corpus directory its --data named."""
    ids: dict[str, int] = {}
    for name in EXAMPLE_SPLITS:
        for line in lines_of(directory / name):
            for word in line.split() + [EOS]:
                ids.setdefault(word, len(ids))
    return list(ids)


def lines_of(path: Path) -> list[str]:
    r"""The file's lines as the example's `for line in open(path, 'r', encoding="utf8")` yields them: split at \n,
    \r and \r\n (universal newlines), not at the other line breaks str.splitlines knows (\x0b, \x1c, U+2028, ...),
    which str.split() then treats as spaces, as the example does."""
    text = read_text(path, "utf-8").replace("\r\n", "\n").replace("\r", "\n")
    lines = text.split("\n")
    return lines[:-1] if lines[-1] == "" else lines



def check_vocabulary_size(tokens: list[str], embedding_rows: int, model_path: Path, source: str, unit: str) -> None:
    """The embedding has one row per id: refuse a vocabulary of another size, saying which way it is off, e.g.
    "the embedding has 10,000 rows but VOCAB.txt has 9,999 lines (1 fewer)"."""
    if len(tokens) == embedding_rows:
        return
    difference = len(tokens) - embedding_rows
    raise UserError(f"{model_path}: the embedding has {embedding_rows:,} rows but {source} has {len(tokens):,} "
                    f"{unit} ({abs(difference):,} {'more' if difference > 0 else 'fewer'}): it is not the "
                    f"vocabulary the model was trained with")

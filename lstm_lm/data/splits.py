"""A corpus's three splits: where their text comes from (a directory of split files, or one file cut by
fractions), and the token ids they become."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from ..config import DataConfig
from ..errors import UserError
from ..reading import read_text
from .tokenizers import Tokenizer

SPLITS = ("train", "valid", "test")


# File names recognized in a corpus directory, per split: PTB, WikiText (tokens and raw), and plain names.
SPLIT_FILES = {
    split: (f"{split}.txt", f"ptb.{split}.txt", f"wiki.{split}.tokens", f"wiki.{split}.raw", f"{split}.tokens")
    for split in SPLITS
}


@dataclass
class Corpus:
    tokenizer: Tokenizer
    train: torch.Tensor  # (N_train,) int64 token ids, lines in file order
    valid: torch.Tensor
    test: torch.Tensor

    def split(self, name: str) -> torch.Tensor:
        return getattr(self, name)


def read_splits(config: DataConfig, warn: Callable[[str], None] = lambda message: None,
                splits: tuple[str, ...] = SPLITS) -> dict[str, str]:
    """The text of each of `splits`: from a directory's files (only those asked for are read), or one file cut at
    line ends by fractions."""
    root = Path(config.path)
    if not root.exists():
        raise UserError(f"{root}: corpus not found (data.path)")
    if root.is_file():
        text = read_text(root, config.encoding, config.errors, warn, errors_key="data.errors")
        texts = {split: text for split, text in split_by_fractions(text, config.valid_fraction,
                                                                    config.test_fraction).items() if split in splits}
        where = {split: f"{root} ({split} share)" for split in splits}
    else:
        texts, where = {}, {}
        for split in splits:
            found = [root / name for name in SPLIT_FILES[split] if (root / name).is_file()]
            if not found:
                raise UserError(f"{root}: no {split} file (looked for {', '.join(SPLIT_FILES[split])})")
            texts[split] = read_text(found[0], config.encoding, config.errors, warn, errors_key="data.errors")
            where[split] = str(found[0])
    for split, text in texts.items():
        if not text.strip():
            raise UserError(f"{where[split]}: the {split} split is empty")
    return texts


def split_by_fractions(text: str, valid_fraction: float, test_fraction: float) -> dict[str, str]:
    """Cut one text into train / valid / test, in that order, at the line end nearest each cut point."""

    def cut(fraction_from_end: float) -> int:
        point = int(len(text) * (1 - fraction_from_end))
        newline = text.find("\n", point)
        return len(text) if newline < 0 else newline + 1

    valid_start, test_start = cut(valid_fraction + test_fraction), cut(test_fraction)
    return {"train": text[:valid_start], "valid": text[valid_start:test_start], "test": text[test_start:]}

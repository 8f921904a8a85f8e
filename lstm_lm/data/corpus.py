"""Corpora: reading the splits, tokenizing them once (cached on disk), and laying out BPTT windows."""

from __future__ import annotations

import hashlib
import io
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterator

import torch

from .atomic import atomic_write_bytes
from .config import DataConfig, TokenizerConfig
from .errors import UserError
from .tokenizers import Tokenizer, fit_tokenizer, tokenizer_from_dict, tokenizer_to_json

SPLITS = ("train", "valid", "test")
# File names recognized in a corpus directory, per split: PTB, WikiText (tokens and raw), and plain names.
SPLIT_FILES = {
    split: (f"{split}.txt", f"ptb.{split}.txt", f"wiki.{split}.tokens", f"wiki.{split}.raw", f"{split}.tokens")
    for split in SPLITS
}
CACHE_FORMAT = 1  # bump when the cached layout or a tokenizer's output changes


@dataclass
class Corpus:
    tokenizer: Tokenizer
    train: torch.Tensor  # (N_train,) int64 token ids, lines in file order
    valid: torch.Tensor
    test: torch.Tensor

    def split(self, name: str) -> torch.Tensor:
        return getattr(self, name)


def read_text(path: Path, encoding: str, errors: str = "strict",
              warn: Callable[[str], None] = lambda message: None) -> str:
    """A text file's content. A binary file (a NUL byte) is refused; undecodable bytes are an error naming their
    offset, or with errors="replace" become U+FFFD, said once in `warn`."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"{path}: file not found") from None
    except OSError as error:
        raise UserError(f"{path}: cannot read: {error.strerror}") from None
    try:
        # Only where NUL is one zero byte (ASCII-compatible encodings): in UTF-16 zero bytes are ordinary.
        nul = data.find(b"\0") if "\0".encode(encoding) == b"\0" else -1
    except LookupError:
        raise UserError(f"{path}: unknown encoding {encoding!r} (data.encoding)") from None
    if nul >= 0:
        raise UserError(f"{path}: a binary file, not text (NUL byte at offset {nul})")
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as error:
        if errors != "replace":
            raise UserError(f"{path}: not valid {encoding} at byte offset {error.start} (data.errors=replace "
                            f"decodes such bytes as U+FFFD)") from None
        warn(f"warning: {path}: not valid {encoding} from byte offset {error.start}; invalid bytes read as U+FFFD "
             f"(data.errors=replace)")
        return data.decode(encoding, errors="replace")


def read_splits(config: DataConfig, warn: Callable[[str], None] = lambda message: None,
                splits: tuple[str, ...] = SPLITS) -> dict[str, str]:
    """The text of each of `splits`: from a directory's files (only those asked for are read), or one file cut at
    line ends by fractions."""
    root = Path(config.path)
    if not root.exists():
        raise UserError(f"{root}: corpus not found (data.path)")
    if root.is_file():
        text = read_text(root, config.encoding, config.errors, warn)
        texts = {split: text for split, text in split_by_fractions(text, config.valid_fraction,
                                                                    config.test_fraction).items() if split in splits}
        where = {split: f"{root} ({split} share)" for split in splits}
    else:
        texts, where = {}, {}
        for split in splits:
            found = [root / name for name in SPLIT_FILES[split] if (root / name).is_file()]
            if not found:
                raise UserError(f"{root}: no {split} file (looked for {', '.join(SPLIT_FILES[split])})")
            texts[split] = read_text(found[0], config.encoding, config.errors, warn)
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


def cache_key(texts: dict[str, str], tokenizer_config: TokenizerConfig) -> str:
    digest = hashlib.sha256(f"lstm-lm cache {CACHE_FORMAT}".encode())
    digest.update(json.dumps(asdict(tokenizer_config), sort_keys=True).encode())
    for split in SPLITS:
        digest.update(split.encode())
        digest.update(hashlib.sha256(texts[split].encode("utf-8")).digest())
    return digest.hexdigest()[:32]


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "lstm-lm"


def load_corpus(data: DataConfig, tokenizer_config: TokenizerConfig,
                log: Callable[[str], None] = lambda message: None) -> Corpus:
    """Read, tokenize and cache a corpus; a second call with the same text and settings reads the cache."""
    texts = read_splits(data, warn=log)
    cache_file = None
    if data.cache:
        cache_file = Path(data.cache_dir or default_cache_dir()) / f"{cache_key(texts, tokenizer_config)}.pt"
        cached = read_cache(cache_file)
        if cached is not None:
            log(f"token ids read from cache {cache_file}")
            warn_unreached_cap(cached.tokenizer, tokenizer_config, log)
            return cached
    tokenizer = fit_tokenizer(texts["train"], tokenizer_config)
    warn_unreached_cap(tokenizer, tokenizer_config, log)
    ids = {split: torch.tensor(tokenizer.encode_corpus(texts[split]), dtype=torch.int64) for split in SPLITS}
    corpus = Corpus(tokenizer, ids["train"], ids["valid"], ids["test"])
    if cache_file is not None:
        write_cache(cache_file, corpus)
        log(f"token ids cached in {cache_file}")
    return corpus


def warn_unreached_cap(tokenizer: Tokenizer, config: TokenizerConfig, log: Callable[[str], None]) -> None:
    """A vocabulary cap above what the training text holds is harmless (every type is kept), but worth a line:
    the user may have expected a larger vocabulary, or meant another key."""
    key, cap = {"word": ("tokenizer.max_size", config.max_size),
                "bpe": ("tokenizer.bpe_vocab_size", config.bpe_vocab_size)}.get(config.kind, (None, None))
    if cap is not None and tokenizer.vocab_size < cap:
        log(f"warning: {key}={cap} is larger than the vocabulary the training split yields "
            f"({tokenizer.vocab_size:,}, specials included); every type is kept")


def require_tokens(ids: torch.Tensor, split: str, needed: int, formula: str, where: str) -> None:
    """Refuse a split too short to fill one (T, B) window, naming the split and the numbers."""
    if ids.numel() < needed:
        raise UserError(f"{where}: the {split} split has {ids.numel():,} tokens, fewer than one window: "
                        f"{formula} = {needed:,}")


def read_cache(path: Path) -> Corpus | None:
    """A cached corpus, or None when absent or unreadable (a damaged cache entry is just rebuilt)."""
    if not path.is_file():
        return None
    try:
        state = torch.load(path, weights_only=True)
        tokenizer = tokenizer_from_dict(json.loads(state["tokenizer"]), str(path))
        return Corpus(tokenizer, *(state[split].long() for split in SPLITS))
    except Exception:
        return None


def write_cache(path: Path, corpus: Corpus) -> None:
    buffer = io.BytesIO()
    # int32 halves the file; ids are widened back to int64 when read.
    torch.save({"tokenizer": tokenizer_to_json(corpus.tokenizer),
                **{split: corpus.split(split).to(torch.int32) for split in SPLITS}}, buffer)
    try:
        atomic_write_bytes(path, buffer.getvalue())
    except UserError:
        pass  # a read-only or full cache directory only costs the next run a re-tokenization


def batchify(ids: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Cut a token stream into `batch_size` contiguous columns, dropping the tail that does not fill a row.

    With the stream a b c d e f g h i j k l and batch_size 3 (the tail beyond 12 tokens is dropped):

        ┌ a e i ┐
        │ b f j │     each column is one stretch of text read top to bottom, so the hidden state carried
        │ c g k │     from one window to the next continues the same text in every column
        └ d h l ┘

    Returns (N // batch_size, batch_size).
    """
    rows = ids.numel() // batch_size
    return ids[: rows * batch_size].view(batch_size, rows).t().contiguous()


def bptt_windows(source: torch.Tensor, bptt: int, start: int = 0) -> Iterator[tuple[int, torch.Tensor, torch.Tensor]]:
    """(row, inputs (T, B), targets (T, B)) over a batchified source, views without copies; T <= bptt."""
    for row in range(start, source.size(0) - 1, bptt):
        length = min(bptt, source.size(0) - 1 - row)
        yield row, source[row: row + length], source[row + 1: row + 1 + length]


def variable_bptt_windows(source: torch.Tensor, bptt: int, start: int = 0,
                          seed: int = 0) -> Iterator[tuple[int, torch.Tensor, torch.Tensor]]:
    """Like bptt_windows, with each window's length drawn as AWD-LSTM draws it: around bptt (or, one time in 20,
    around bptt / 2) with normal noise of sd 5, at least 5 and at most bptt + 40, so that windows start at other
    tokens in every epoch. The lengths are a function of `seed` alone, drawn from the first row on: every process
    of a distributed run takes the same steps, and a resumed run the same windows, from the first window that
    starts at or after `start`."""
    generator = torch.Generator().manual_seed(seed)
    row = 0
    while row < source.size(0) - 1:
        centre = bptt if torch.rand((), generator=generator).item() < 0.95 else bptt / 2
        drawn = int(torch.normal(float(centre), 5.0, (), generator=generator).item())
        length = min(max(5, drawn), bptt + 40, source.size(0) - 1 - row)
        if row >= start:
            yield row, source[row: row + length], source[row + 1: row + 1 + length]
        row += length


def windows_per_epoch(source: torch.Tensor, bptt: int) -> int:
    return max(0, (source.size(0) - 2) // bptt + 1)


IGNORE = -100  # target value that cross-entropy skips


def evaluation_layout(ids: torch.Tensor, batch_size: int, boundary_id: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and targets, both (L, B), that predict every token of a split exactly once.

    The split is preceded by the line-boundary token (so its first token is predicted too, as after any line),
    then cut into `batch_size` columns of length L = ceil(N / B); the last column is padded and its padded
    targets are IGNORE. Unlike `batchify`, nothing is dropped, so the token count is the split's own.
    """
    stream = ids if boundary_id is None else torch.cat([ids.new_tensor([boundary_id]), ids])
    targets_count = stream.numel() - 1
    if targets_count < 1:
        raise UserError("cannot evaluate a split of fewer than two tokens")
    batch_size = min(batch_size, targets_count)
    length = -(-targets_count // batch_size)
    padded = torch.full((batch_size * length + 1,), IGNORE, dtype=ids.dtype)
    padded[: stream.numel()] = stream
    inputs = padded[:-1].view(batch_size, length).t().clamp(min=0)  # padded inputs read token 0; ignored anyway
    targets = padded[1:].view(batch_size, length).t()
    return inputs.contiguous(), targets.contiguous()

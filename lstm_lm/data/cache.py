"""The token-id cache: a corpus tokenized once is read back from ~/.cache/lstm-lm (or data.cache_dir), keyed by
the text of its splits and the tokenizer settings."""

from __future__ import annotations

import hashlib
import io
import json
import os
from dataclasses import asdict
from pathlib import Path

import torch

from ..atomic import atomic_write_bytes
from ..config import TokenizerConfig
from ..errors import UserError
from .splits import SPLITS, Corpus
from .tokenizers import tokenizer_from_dict, tokenizer_to_json

CACHE_FORMAT = 1  # bump when the cached layout or a tokenizer's output changes


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

"""A corpus as token ids: its splits read, tokenized by a tokenizer fitted on train, and cached."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch

from ..config import DataConfig, TokenizerConfig
from .cache import cache_key, default_cache_dir, read_cache, write_cache
from .splits import SPLITS, Corpus, read_splits
from .tokenizers import Tokenizer, fit_tokenizer


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

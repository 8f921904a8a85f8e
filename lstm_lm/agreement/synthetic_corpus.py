"""A synthetic agreement corpus on disk: the grammar's sentences (synthetic_grammar.py) as a corpus directory that
`lstm-lm train` reads, its minimal pairs for `lstm-lm eval-agreement`, and what made them.

    OUT/train.txt, valid.txt, test.txt   a sentence a line, lower-case words; the word tokenizer adds <eos>
    OUT/pairs.jsonl                      the test pairs: pairs JSON Lines with distance and attractors
    OUT/meta.json                        seed, settings, counts, definitions; written last: the directory is whole

Each split and the pairs come from their own random stream of the seed, so held-out text is not training text
replayed; short sentences can still coincide by chance (the vocabulary is small), and meta.json counts the pairs
whose sentence is the beginning of a training sentence.
"""

from __future__ import annotations

import json
import os
import random
from collections import Counter
from pathlib import Path
from typing import Any

from ..errors import UserError

from . import synthetic_lexicon as lexicon
from .synthetic_grammar import corpus_lines, probe_pairs

DEFAULT_MAX_DISTANCE = 50
# About one pass of the long-range study's budget per model (0.3-1.5M tokens) without repeating a sentence; every
# word of the ~290-word lexicon occurs hundreds of times or more.
DEFAULT_TRAIN_TOKENS = 1_000_000
HELD_OUT_SHARE = 10  # valid and test each get 1/10 of the training tokens
DEFAULT_PAIRS_PER_DISTANCE = 200
FILES = {"train": "train.txt", "valid": "valid.txt", "test": "test.txt"}  # names read_splits looks for
PAIRS_FILE, META_FILE = "pairs.jsonl", "meta.json"


def stream(seed: int, name: str) -> random.Random:
    """One independent generator per split: a string seed is hashed (SHA-512), the same in every process."""
    return random.Random(f"synthetic-agreement:{seed}:{name}")


def write_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text, encoding="utf-8", newline="\n")
    os.replace(temporary, path)


def write_corpus(out: Path, seed: int = 0, train_tokens: int = DEFAULT_TRAIN_TOKENS,
                 max_distance: int = DEFAULT_MAX_DISTANCE,
                 pairs_per_distance: int = DEFAULT_PAIRS_PER_DISTANCE) -> dict[str, Any]:
    """Write train.txt, valid.txt, test.txt (a corpus directory `lstm-lm train` reads), pairs.jsonl and
    meta.json into `out`; return the metadata. Each file is replaced whole; meta.json, written last, marks a
    complete directory. The same arguments give byte-identical files."""
    for name, value, least in (("--max-distance", max_distance, 1), ("--train-tokens", train_tokens, 1),
                               ("--pairs-per-distance", pairs_per_distance, 1)):
        if value < least:
            raise UserError(f"{name} must be at least {least}, not {value}")
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    splits, train_prefixes, train_words = {}, set(), set()
    for split, file_name in FILES.items():
        tokens = train_tokens if split == "train" else max(1, train_tokens // HELD_OUT_SHARE)
        lines, prefixes = corpus_lines(stream(seed, split), tokens, max_distance)
        if split == "train":
            train_prefixes = prefixes
            train_words = {word for line in lines for word in line.split()}
        write_atomically(out / file_name, "".join(line + "\n" for line in lines))
        splits[split] = {"file": file_name, "sentences": len(lines),
                         "tokens": sum(len(line.split()) + 1 for line in lines)}
    pairs = probe_pairs(stream(seed, "pairs"), max_distance, pairs_per_distance)
    write_atomically(out / PAIRS_FILE, "".join(json.dumps(pair) + "\n" for pair in pairs))
    meta = {
        "generator": "lstm_lm.agreement.synthetic_corpus", "seed": seed, "max_distance": max_distance,
        "train_tokens_requested": train_tokens, "splits": splits,
        "pairs": {"file": PAIRS_FILE, "count": len(pairs),
                  "per_distance": {str(d): n for d, n in sorted(Counter(p["distance"] for p in pairs).items())},
                  "per_attractors": {str(a): n for a, n in sorted(Counter(p["attractors"] for p in pairs).items())},
                  "beginning_a_training_sentence": sum(p["sentence_good"] in train_prefixes for p in pairs)},
        "vocabulary": len(lexicon.all_words()),
        "lexicon_missing_from_train": [word for word in lexicon.all_words() if word not in train_words],
        "definitions": {
            "distance": "words strictly between the subject noun and the main verb: verb_index - subject_index - 1",
            "attractors": "nouns between the subject and the verb whose number is not the subject's",
            "verb": "the main verb is is/are, was/were or has/have, agreeing with the subject",
            "gap_lengths": f"training, valid and test sentences: P(L) proportional to 1/L for L = 1..{max_distance}",
            "pairs": "UID distance_NN is the exact distance, subcondition attractors_K the attractor count; each "
                     "pair ends at the verb and differs from its partner in the verb's number alone"},
    }
    write_atomically(out / META_FILE, json.dumps(meta, indent=2) + "\n")
    return meta

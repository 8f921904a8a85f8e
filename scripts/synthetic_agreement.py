"""Write a synthetic agreement corpus and its minimal pairs (lstm_lm/agreement/synthetic_grammar.py): a verb
agrees with its subject across a gap of 1 ... D words, and nothing but the subject predicts its number.

    python scripts/synthetic_agreement.py --out data/synthetic-agreement [--seed S] [--train-tokens N]
                                          [--max-distance D] [--pairs-per-distance P]
    lstm-lm train --config configs/tiny.yaml data.path=data/synthetic-agreement --out runs/synth
    lstm-lm eval-agreement runs/synth data/synthetic-agreement/pairs.jsonl

OUT gets train.txt, valid.txt, test.txt, pairs.jsonl and meta.json; the same arguments give the same bytes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lstm_lm.agreement.synthetic_corpus import (DEFAULT_MAX_DISTANCE, DEFAULT_PAIRS_PER_DISTANCE, DEFAULT_TRAIN_TOKENS,
                                                write_corpus)
from lstm_lm.errors import UserError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="The corpus directory to write.")
    parser.add_argument("--seed", type=int, default=0, help="Everything written follows from it (default 0).")
    parser.add_argument("--train-tokens", type=int, default=DEFAULT_TRAIN_TOKENS,
                        help=f"Training tokens, <eos> included; valid and test get a tenth each "
                             f"(default {DEFAULT_TRAIN_TOKENS:,}).")
    parser.add_argument("--max-distance", type=int, default=DEFAULT_MAX_DISTANCE,
                        help=f"The longest gap, in words between subject and verb (default {DEFAULT_MAX_DISTANCE}).")
    parser.add_argument("--pairs-per-distance", type=int, default=DEFAULT_PAIRS_PER_DISTANCE,
                        help=f"Test pairs at each probe distance (default {DEFAULT_PAIRS_PER_DISTANCE}).")
    args = parser.parse_args(argv)
    try:
        meta = write_corpus(args.out, args.seed, args.train_tokens, args.max_distance, args.pairs_per_distance)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    splits = ", ".join(f"{name} {split['tokens']:,} tokens" for name, split in meta["splits"].items())
    print(f"wrote {args.out}: {splits}; {meta['pairs']['count']:,} pairs; vocabulary {meta['vocabulary']} words")
    if meta["lexicon_missing_from_train"]:
        print(f"warning: {len(meta['lexicon_missing_from_train'])} lexicon words never occur in train.txt (a "
              f"model reads them as <unk>); raise --train-tokens", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

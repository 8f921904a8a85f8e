"""Pairs per second scoring the built-in agreement suite: the batched scorer against one sentence at a time, on
the same items and the same model, in one run.

    python scripts/bench_agreement.py                  # a 2×650 LSTM, random weights, a PTB-sized vocabulary
    python scripts/bench_agreement.py --run runs/ptb-medium --method sentence
    python scripts/bench_agreement.py --json           # {"batched_pairs_s": ..., "single_pairs_s": ..., "ratio": ...}

On a machine busy with other work, --threads 1 avoids the stalls of more threads than free cores.

One at a time means what a plain loop would do: each sentence (or, for the target method, each prefix and form)
through the model's own forward from a fresh state, with no batching and no shared prefix.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from lstm_lm.agreement.evaluate import DEFAULT_BATCH_SIZE
from lstm_lm.agreement.items import METHODS, STANDARD_METHOD
from lstm_lm.agreement.pairs import PairEncoder
from lstm_lm.agreement.scoring import ScoreRequest, score_requests
from lstm_lm.agreement.suite import builtin_suite
from lstm_lm.config import ModelConfig
from lstm_lm.data.tokenizers import EOS, UNK, Tokenizer, WordTokenizer
from lstm_lm.model.language_model import LanguageModel
from lstm_lm.rundir.run_files import load_run
from lstm_lm.targets import IGNORE

PTB_VOCABULARY = 10_000


def random_model(size: int, layers: int) -> tuple[LanguageModel, Tokenizer]:
    """A word model that knows every word of the suite, padded with made-up words to a PTB-sized vocabulary."""
    words = sorted({word for item in builtin_suite().items
                    for sentence in (item.good, item.bad) for word in sentence.lower().rstrip(".").split()})
    filler = [f"word{i}" for i in range(PTB_VOCABULARY - 2 - len(words))]
    tokenizer = WordTokenizer([EOS, UNK, *words, *filler], lowercase=True)
    torch.manual_seed(0)
    model = LanguageModel(ModelConfig(embedding_size=size, hidden_size=size, num_layers=layers), tokenizer.vocab_size)
    return model.eval(), tokenizer


@torch.inference_mode()
def score_one_at_a_time(model: LanguageModel, boundary_id: int, requests: list[ScoreRequest],
                        count_prefix: bool) -> list[list[float]]:
    scores = []
    for request in requests:
        pair = []
        for continuation in request.continuations:
            ids = [boundary_id, *request.prefix, *continuation]
            targets = ids[1:] if count_prefix else [IGNORE] * len(request.prefix) + continuation
            inputs = torch.tensor(ids[:-1]).view(-1, 1)  # (T, 1)
            losses, _ = model(inputs, model.init_hidden(1), torch.tensor(targets).view(-1, 1))  # (T, 1)
            pair.append(-float(losses.sum()))
        scores.append(pair)
    return scores


def pairs_per_second(score, requests: list[ScoreRequest]) -> tuple[float, list[list[float]]]:
    started = time.perf_counter()
    scores = score()
    return len(requests) / (time.perf_counter() - started), scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", help="score with this run directory's model instead of a random 2×650 one")
    parser.add_argument("--size", type=int, default=650, help="embedding and hidden size of the random model")
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--method", choices=METHODS, default=STANDARD_METHOD["builtin"],
                        help="default: the built-in suite's own")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, help="pairs per batched pass")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--rounds", type=int, default=3, help="batched passes; the fastest counts")
    parser.add_argument("--json", action="store_true", help="print one JSON object and nothing else")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    if args.run:
        run = load_run(args.run, torch.device("cpu"))
        model, tokenizer = run.model, run.tokenizer
    else:
        model, tokenizer = random_model(args.size, args.layers)
    encoder = PairEncoder(tokenizer)
    requests = [encoder.encode(item, args.method).request for item in builtin_suite().items]
    count_prefix = args.method == "sentence"
    boundary = tokenizer.boundary_id

    score_requests(model, boundary, requests[: args.batch_size], count_prefix=count_prefix,
                   batch_size=args.batch_size)  # warm-up: first-call allocations stay out of the timing
    # The batched scorer's fastest of a few passes: on a shared machine one pass can land in a slow spell.
    batched, batched_scores = max((pairs_per_second(
        lambda: score_requests(model, boundary, requests, count_prefix=count_prefix, batch_size=args.batch_size),
        requests) for _ in range(args.rounds)), key=lambda rate_and_scores: rate_and_scores[0])
    single, single_scores = pairs_per_second(
        lambda: score_one_at_a_time(model, boundary, requests, count_prefix), requests)
    gap = max(abs(a - b) for pair_a, pair_b in zip(batched_scores, single_scores) for a, b in zip(pair_a, pair_b))
    result = {"batched_pairs_s": round(batched, 1), "single_pairs_s": round(single, 1),
              "ratio": round(batched / single, 2)}
    if args.json:
        print(json.dumps(result))
        return
    print(f"{len(requests):,} pairs of the built-in suite, {args.method} method, "
          f"{model.config.num_layers}×{model.config.hidden_size} LSTM, vocabulary {tokenizer.vocab_size:,}, "
          f"{torch.get_num_threads()} CPU thread{'s' if torch.get_num_threads() != 1 else ''}")
    print(f"batched (batch {args.batch_size}): {batched:,.0f} pairs/s | one sentence at a time: {single:,.0f} "
          f"pairs/s | ratio {batched / single:.1f}× | largest score difference {gap:.1e}")


if __name__ == "__main__":
    main()

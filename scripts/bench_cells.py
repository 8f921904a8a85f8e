"""Training cost of each recurrent cell relative to the fused nn.LSTM, measured in one run on one CPU thread.

Model: the PTB small shape (Zaremba et al.: 2×200, vocabulary 10,000, batch 20, BPTT 20) on Penn Treebank
windows. For each cell, two timings:
  1. a whole training step, lstm-lm's own (lstm_lm/train/step.py: forward, loss, backward, clip, SGD update);
  2. the recurrent layers alone, forward and backward on a (20, 20, 200) input.
The cells are timed in turn, round after round, and each keeps its median round, so that a burst of load from
another process on the machine lands on every cell alike rather than on one.

Run: python scripts/bench_cells.py [--steps N] [--rounds R]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable

import torch

REPO = Path(__file__).resolve().parent.parent

from lstm_lm.config import load_config
from lstm_lm.data.batches import batchify, bptt_windows
from lstm_lm.data.corpus import load_corpus
from lstm_lm.train.step import standalone_step

CELLS = ("lstm", "lstm_explicit", "lstm_peephole", "lstm_coupled", "gru", "rnn_tanh")


def seconds_per_call(call: Callable[[], None], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        call()
    return (time.perf_counter() - start) / calls


def training_step(cell: str, cache_dir: str) -> tuple[Callable[[], None], torch.nn.Module]:
    """One call = one lstm-lm training step of the PTB small model with this cell, on the next window; and the
    model's recurrent layers."""
    config = load_config(REPO / "configs/ptb-small.yaml", [f"model.cell={cell}", "train.device=cpu",
                                                            f"data.cache_dir={cache_dir}"])
    corpus = load_corpus(config.data, config.tokenizer)
    train_step = standalone_step(config, corpus.tokenizer.vocab_size, torch.device("cpu"))
    windows = bptt_windows(batchify(corpus.train, config.train.batch_size), config.train.bptt)
    hidden = train_step.model.init_hidden(config.train.batch_size)

    def step() -> None:
        nonlocal hidden
        _, inputs, targets = next(windows)
        hidden, _ = train_step(inputs, targets, hidden, config.train.lr)

    return step, train_step.model.rnn


def recurrent_pass(rnn: torch.nn.Module) -> Callable[[], None]:
    """One call = forward and backward through the recurrent layers alone, from a zero state."""
    inputs = torch.randn(20, 20, 200, requires_grad=True)  # (T, B, E)

    def step() -> None:
        outputs, _ = rnn(inputs)
        outputs.sum().backward()

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="timed calls per cell and round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds over every cell; each cell keeps its median")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    cache_dir = tempfile.mkdtemp()
    calls = {}
    for cell in CELLS:
        step, rnn = training_step(cell, cache_dir)
        calls[cell] = {"step": step, "rnn": recurrent_pass(rnn)}
        for call in calls[cell].values():
            seconds_per_call(call, 3)  # warm-up: allocator, first-call setup
    timings = {cell: {"step": [], "rnn": []} for cell in CELLS}
    for _ in range(args.rounds):
        for cell in CELLS:
            for part, call in calls[cell].items():
                timings[cell][part].append(seconds_per_call(call, args.steps))
    median = {cell: {part: statistics.median(times) for part, times in parts.items()}
              for cell, parts in timings.items()}
    base = median["lstm"]
    print(f"PTB small shape (2×200, vocabulary 10,000, batch 20, BPTT 20), {torch.get_num_threads()} thread, "
          f"median of {args.rounds} rounds of {args.steps} calls")
    print(f"{'cell':15} {'train step ms':>14} {'× lstm':>7} {'recurrent fwd+bwd ms':>21} {'× lstm':>7}")
    for cell in CELLS:
        step, rnn = median[cell]["step"], median[cell]["rnn"]
        print(f"{cell:15} {1e3 * step:14.1f} {step / base['step']:7.2f} {1e3 * rnn:21.1f} "
              f"{rnn / base['rnn']:7.2f}")


if __name__ == "__main__":
    main()

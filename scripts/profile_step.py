"""Where a training step's time goes: embedding, recurrent layers, decoder and softmax, optimizer, the rest.

Profiles lstm-lm's own training step (lstm_lm/train/step.py) with torch.profiler and sums each operator's self time into those
groups, forward and backward together; "Python and other" is the step's wall time that no operator accounts for.
An operator belongs to the group of its outermost enclosing event that names one, so the matrix products inside
the recurrent layers' own forward and backward (lstm_lm/kernels/cpu_lstm.py) count as recurrent, not as decoder.

Run: python scripts/profile_step.py [--config configs/ptb-medium.yaml] [--precision fp32|bf16] [--batch 20]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent

from lstm_lm.config import load_config
from lstm_lm.data.batches import batchify, bptt_windows
from lstm_lm.data.corpus import load_corpus
from lstm_lm.hardware.device import prepare_process
from lstm_lm.train.step import standalone_step

# Operator-name fragments -> group, first match wins (names are lower-cased).
GROUPS = (
    ("embedding", ("embedding",)),
    ("recurrent layers", ("rnn", "lstm", "gru", "linear_pointwise", "reorder_linear")),
    ("decoder and softmax", ("addmm", "linear", "mm", "softmax", "nll", "cross_entropy", "logsumexp")),
    ("optimizer and clipping", ("foreach", "_fused", "norm", "sgd", "adam")),
)


def group_of_name(name: str) -> str | None:
    lowered = name.lower()
    for group, fragments in GROUPS:
        if any(fragment in lowered for fragment in fragments):
            return group
    return None


def group_of(event) -> str:
    """The group of the outermost event, from `event` up through its parents, whose name names one."""
    group = None
    while event is not None:
        group = group_of_name(event.name) or group
        event = event.cpu_parent
    return group or "other operators"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(REPO / "configs/ptb-medium.yaml"))
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--batch", type=int, default=20)
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    prepare_process()  # as every lstm-lm command does

    cache = tempfile.mkdtemp()
    config = load_config(args.config, [f"train.precision={args.precision}", f"train.batch_size={args.batch}",
                                       "train.device=cpu", f"data.cache_dir={cache}"])
    corpus = load_corpus(config.data, config.tokenizer)
    step = standalone_step(config, corpus.tokenizer.vocab_size, torch.device("cpu"))
    windows = iter(bptt_windows(batchify(corpus.train, config.train.batch_size), config.train.bptt))
    hidden = step.model.init_hidden(config.train.batch_size)
    for _ in range(3):  # warm-up: first calls allocate and pick kernels
        hidden, _ = step(*next(windows)[1:], hidden, config.train.lr)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profile:
        start = time.perf_counter()
        for _ in range(args.steps):
            hidden, _ = step(*next(windows)[1:], hidden, config.train.lr)
        wall = (time.perf_counter() - start) / args.steps
    per_group: dict[str, float] = defaultdict(float)
    for event in profile.events():
        per_group[group_of(event)] += event.self_cpu_time_total / 1e6 / args.steps
    per_op = [(event.self_cpu_time_total / 1e6 / args.steps, event.key) for event in profile.key_averages()]
    accounted = sum(per_group.values())
    per_group["Python and other"] = max(0.0, wall - accounted)
    tokens = config.train.batch_size * config.train.bptt
    print(f"{Path(args.config).name}, {args.precision}, batch {config.train.batch_size}, BPTT "
          f"{config.train.bptt}: {wall * 1e3:.1f} ms per step (profiled), {tokens / wall:,.0f} tokens/s")
    for group, seconds in sorted(per_group.items(), key=lambda item: -item[1]):
        print(f"  {group:26} {seconds * 1e3:8.2f} ms  {seconds / wall:6.1%}")
    print("top operators by self time:")
    for seconds, name in sorted(per_op, reverse=True)[:10]:
        print(f"  {name:44} {seconds * 1e3:8.2f} ms  {seconds / wall:6.1%}")


if __name__ == "__main__":
    main()

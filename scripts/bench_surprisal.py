"""Throughput of `lstm-lm surprisal`: a file of 10,000 sentences scored by a run, the time of the scoring itself
and of the whole command (loading the run, reading and writing included), with and without --entropy.

Run: python scripts/bench_surprisal.py RUN_DIR [--sentences 10000] [--corpus data/ptb/ptb.test.txt] [--threads N]
The sentences are the corpus file's lines, repeated to the count asked for.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from lstm_lm.agreement.surprisal_command import surprisal_run
from lstm_lm.hardware.device import prepare_process
from lstm_lm.hardware.machine import cpu_description


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--sentences", type=int, default=10_000)
    parser.add_argument("--corpus", type=Path, default=Path("data/ptb/ptb.test.txt"))
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=None, help="torch's CPU threads (default: torch's own)")
    args = parser.parse_args()
    prepare_process()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    lines = [line for line in args.corpus.read_text(encoding="utf-8").splitlines() if line.strip()]
    lines = (lines * (args.sentences // len(lines) + 1))[: args.sentences]
    print(f"{cpu_description()['model']}, {torch.get_num_threads()} threads; {args.run_dir}; {len(lines):,} sentences from {args.corpus}")
    with tempfile.TemporaryDirectory() as scratch:
        source = Path(scratch) / "sentences.txt"
        source.write_text("\n".join(lines) + "\n", encoding="utf-8")
        for entropy in (False, True):
            started, cpu = time.perf_counter(), time.process_time()
            counts = surprisal_run(args.run_dir, source, Path(scratch) / "out.tsv", words=True, entropy=entropy,
                                   context="sentence", batch_size=args.batch_size, device="cpu")
            whole, cpu = time.perf_counter() - started, time.process_time() - cpu
            # CPU time beside wall time: on a machine shared with other work the wall time is mostly waiting
            print(f"--words{' --entropy' if entropy else ''}: {counts['tokens']:,} tokens, scoring "
                  f"{counts['seconds']:.1f} s ({counts['tokens'] / counts['seconds']:,.0f} tokens/s), whole command "
                  f"{whole:.1f} s wall, {cpu:.1f} s of CPU")


if __name__ == "__main__":
    main()

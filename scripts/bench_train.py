"""Training speed of lstm-lm against the classic PyTorch loop, measured in one run on the machine at hand.

Model: the PTB medium LSTM (2×650, vocabulary 10,000) on Penn Treebank windows, or the model of another config
(--config; its sizes, BPTT and corpus). Prints the CPU's features that decide the speed (its ATen kernel level,
its bf16 units, whether bf16 runs here), then
  1. the machine's matrix-multiply peak in fp32, and in bf16 where bf16 runs natively (2048×2048 products);
  2. a reference: the classic word-language-model loop written out plainly below (fp32 nn.LSTM, plain SGD,
     batch 20, the config's BPTT (35 for PTB medium), clip 0.25);
  3. lstm-lm's trainer step on the same model, batch and BPTT, in fp32, and in bf16 where it runs natively;
  4. lstm-lm's trainer with the fastest settings the recipes use (bf16 where it runs natively, else fp32, and
     the 1-hour recipes' locked dropout in place of plain dropout, at the same rates: one mask per sequence
     instead of one per step) at a large batch (--fast-batch, 256: in bf16 with AMX the fastest measured,
     tokens/s in one run 13,300 at batch 128, 15,800 at 256, 14,600 at 512);
  5. the same with the PTB 1-hour recipe's adaptive softmax (a 2,000-word shortlist, one tail at a quarter of
     the width), which computes fewer FLOPs per token: its GFLOP/s count what it computes;
each as tokens/s, model GFLOP/s, share of the matching peak and ratio to the reference. Every configuration
(the peaks too) is timed in --rounds rounds taken in turn, and keeps its fastest; a round times --steps steps,
or stops after 3 once it has run --seconds, so the script takes minutes on any CPU.

Run: python scripts/bench_train.py [--config configs/ptb-medium.yaml] [--rounds R] [--steps N] [--seconds S]
                                   [--fast-batch B] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import torch

REPO = Path(__file__).resolve().parent.parent

from lstm_lm.config import Config, load_config
from lstm_lm.data.batches import batchify, bptt_windows
from lstm_lm.data.corpus import load_corpus
from lstm_lm.hardware.device import prepare_process
from lstm_lm.hardware.machine import cpu_description
from lstm_lm.hardware.precision import cpu_bf16_problem
from lstm_lm.model.softmax import tail_width
from lstm_lm.train.step import standalone_step

REFERENCE_BATCH, REFERENCE_CLIP, REFERENCE_LR = 20, 0.25, 20.0  # the PyTorch word_language_model defaults
ADAPTIVE = ("model.softmax=adaptive", "model.adaptive_cutoffs=[2000]", "model.adaptive_div_value=4")


def decoder_multiply_adds(config: Config, vocab: int, train_ids: torch.Tensor) -> float:
    """Per token: H × V for the full softmax; for the adaptive one the head (shortlist + one logit per cluster)
    plus each tail's projection and rows, weighted by the share of training tokens that fall in that tail."""
    m = config.model
    if m.softmax == "full":
        return m.hidden_size * vocab
    bounds = [0, *m.adaptive_cutoffs, vocab]
    total = m.hidden_size * (bounds[1] + len(m.adaptive_cutoffs))
    for i in range(len(m.adaptive_cutoffs)):
        share = ((train_ids >= bounds[i + 1]) & (train_ids < bounds[i + 2])).float().mean().item()
        width = tail_width(m.hidden_size, m.adaptive_div_value, i)
        total += share * width * (m.hidden_size + bounds[i + 2] - bounds[i + 1])
    return total


def model_flops_per_token(config: Config, vocab: int, train_ids: torch.Tensor) -> float:
    """Forward multiply-adds ×2 of the LSTM layers (4 gates over input and hidden) and the decoder, ×3 for
    forward plus backward."""
    m = config.model
    lstm = sum(4 * ((m.embedding_size if layer == 0 else m.hidden_size) + m.hidden_size) * m.hidden_size
               for layer in range(m.num_layers))
    return 3 * 2 * (lstm + decoder_multiply_adds(config, vocab, train_ids))


MIN_TIMED_STEPS = 3


def timed(step, warmup: int, steps: int, seconds: float = float("inf")) -> float:
    """Seconds per call, after warm-up calls: over `steps` calls, or fewer (at least 3) once `seconds` have
    passed."""
    for _ in range(warmup):
        step()
    start = time.perf_counter()
    done = 0
    while done < steps and (done < MIN_TIMED_STEPS or time.perf_counter() - start < seconds):
        step()
        done += 1
    return (time.perf_counter() - start) / done


def matmul(dtype: torch.dtype, size: int = 2048) -> tuple[Callable[[], None], int]:
    """A (size, size) product, the machine's peak, and its FLOPs."""
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    return lambda: a @ b, 2 * size**3


def reference_step(config: Config, train_ids: torch.Tensor, vocab: int) -> tuple[Callable[[], None], int]:
    """One step of the classic loop, as the PyTorch word_language_model example writes it, and its tokens."""
    torch.manual_seed(0)
    m, bptt = config.model, config.train.bptt
    embedding = torch.nn.Embedding(vocab, m.embedding_size)
    rnn = torch.nn.LSTM(m.embedding_size, m.hidden_size, m.num_layers, dropout=m.dropout)
    decoder = torch.nn.Linear(m.hidden_size, vocab)
    drop = torch.nn.Dropout(m.dropout)
    parameters = [*embedding.parameters(), *rnn.parameters(), *decoder.parameters()]
    data = batchify(train_ids, REFERENCE_BATCH)
    windows = iter(bptt_windows(data, bptt))
    shape = (m.num_layers, REFERENCE_BATCH, m.hidden_size)
    hidden = (torch.zeros(shape), torch.zeros(shape))

    def step() -> None:
        nonlocal hidden
        _, inputs, targets = next(windows)
        hidden = tuple(h.detach() for h in hidden)
        for p in parameters:
            p.grad = None
        output, hidden = rnn(drop(embedding(inputs)), hidden)
        logits = decoder(drop(output))
        loss = torch.nn.functional.cross_entropy(logits.view(-1, vocab), targets.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, REFERENCE_CLIP)
        for p in parameters:
            p.data.add_(p.grad, alpha=-REFERENCE_LR)

    return step, REFERENCE_BATCH * bptt


def trainer_step(config_path: str, batch_size: int, precision: str, cache_dir: str,
                 overrides: tuple[str, ...] = ()) -> tuple[Callable[[], None], int]:
    """lstm-lm's own training step (lstm_lm/train/step.py) on the config's model, and its tokens."""
    config = load_config(config_path, [
        f"train.batch_size={batch_size}", f"train.precision={precision}", f"train.clip={REFERENCE_CLIP}",
        "train.loss_reduction=mean", f"train.lr={REFERENCE_LR}", "train.device=cpu", f"data.cache_dir={cache_dir}",
        *overrides])
    corpus = load_corpus(config.data, config.tokenizer)
    train_step = standalone_step(config, corpus.tokenizer.vocab_size, torch.device("cpu"))
    windows = iter(bptt_windows(batchify(corpus.train, batch_size), config.train.bptt))
    hidden = train_step.model.init_hidden(batch_size)

    def step() -> None:
        nonlocal hidden
        _, inputs, targets = next(windows)
        hidden, _ = train_step(inputs, targets, hidden, config.train.lr)

    return step, batch_size * config.train.bptt


def best_rates(steps: dict[str, tuple[Callable[[], None], int]], rounds: int, steps_per_round: int,
               seconds: float) -> dict[str, float]:
    """Work per second (tokens, or FLOPs for the peaks) of each configuration's fastest round, the rounds taken in
    turn: a slow spell of the machine (here one row measured 20% apart in two runs) then falls on one round of
    each, not on one configuration."""
    best = dict.fromkeys(steps, 0.0)
    for round_index in range(rounds):
        for key, (step, work) in steps.items():
            warmup = 2 if round_index == 0 else 0  # first-call allocations and oneDNN's choice of kernels
            best[key] = max(best[key], work / timed(step, warmup, steps_per_round, seconds))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(REPO / "configs/ptb-medium.yaml"), help="the model to time")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds per configuration, taken in turn")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per round, at most")
    parser.add_argument("--seconds", type=float, default=10.0, help="timed seconds per round, about")
    parser.add_argument("--fast-batch", type=int, default=256, help="batch size of the fastest settings")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    prepare_process()  # as every lstm-lm command does
    if load_config(args.config).model.hidden_sizes:
        sys.exit(f"{args.config}: the reference loop is one nn.LSTM of model.hidden_size; set no hidden_sizes")
    cpu = {**cpu_description(), "bf16": cpu_bf16_problem() or "runs natively"}
    if not args.json:
        print(f"CPU: {cpu['model']} ({cpu['architecture']}), ATen kernels {cpu['aten_kernels']}, bf16 units: "
              f"{', '.join(cpu['bf16_unit_flags']) or 'none'}; bf16 {cpu['bf16']}; {cpu['threads']} threads"
              + "".join(f"; {name}={value}" for name, value in cpu["isa_caps"].items()))
    # bf16 rows only where bf16 runs at hardware speed: elsewhere it is refused, or emulated far below fp32.
    fastest = "bf16" if cpu_bf16_problem() is None else "fp32"

    torch.manual_seed(0)
    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16}
    cache_dir = tempfile.mkdtemp()
    config = load_config(args.config, [f"data.cache_dir={cache_dir}"])
    corpus = load_corpus(config.data, config.tokenizer)
    vocab = corpus.tokenizer.vocab_size
    adaptive_config = load_config(args.config, [f"data.cache_dir={cache_dir}", *ADAPTIVE])

    flops = model_flops_per_token(config, vocab, corpus.train)
    adaptive_flops = model_flops_per_token(adaptive_config, vocab, corpus.train)
    rate = config.model.dropout
    locked = tuple(f"model.dropout_{place}={rate}" for place in ("input", "hidden", "output"))
    # key: (what it is, its precision, its FLOPs per token, its step)
    rows = {"reference": ("reference: classic loop, fp32, batch 20", "fp32", flops,
                          reference_step(config, corpus.train, vocab))}
    for precision in dict.fromkeys(("fp32", fastest)):
        rows[f"same_batch_{precision}"] = (f"lstm-lm, {precision}, batch 20", precision, flops,
                                           trainer_step(args.config, REFERENCE_BATCH, precision, cache_dir))
    rows["fastest"] = (f"lstm-lm fastest: {fastest}, batch {args.fast_batch}, locked dropout", fastest, flops,
                       trainer_step(args.config, args.fast_batch, fastest, cache_dir, locked))
    rows["adaptive"] = ("  the same, adaptive softmax [2000]", fastest, adaptive_flops,
                        trainer_step(args.config, args.fast_batch, fastest, cache_dir, (*locked, *ADAPTIVE)))
    precisions = dict.fromkeys(("fp32", fastest))
    rates = best_rates({**{key: row[3] for key, row in rows.items()},
                        **{f"peak_{precision}": matmul(dtypes[precision]) for precision in precisions}},
                       args.rounds, args.steps, args.seconds)
    peaks = {precision: rates[f"peak_{precision}"] / 1e9 for precision in precisions}

    reference = rates["reference"]
    results = {key: {"name": name, "precision": precision, "tokens_per_s": rates[key],
                     "gflops": rates[key] * row_flops / 1e9,
                     "peak_share": rates[key] * row_flops / 1e9 / peaks[precision], "ratio": rates[key] / reference}
               for key, (name, precision, row_flops, _) in rows.items()}
    summary = {"cpu": cpu, "fp32_peak_gflops": peaks["fp32"], "bf16_peak_gflops": peaks.get("bf16"),
               "reference_tok_s": reference, "same_batch_fp32_ratio": results["same_batch_fp32"]["ratio"],
               "same_batch_bf16_ratio": results.get("same_batch_bf16", {}).get("ratio"),
               "fastest_precision": fastest, "fastest_ratio": results["fastest"]["ratio"],
               "fastest_peak_share": results["fastest"]["peak_share"], "adaptive_ratio": results["adaptive"]["ratio"],
               "adaptive_peak_share": results["adaptive"]["peak_share"], "runs": list(results.values())}
    if args.json:
        print(json.dumps(summary))
        return
    print("matrix-multiply peak: " + ", ".join(f"{name} {peak:.0f} GFLOP/s" for name, peak in peaks.items()))
    m = config.model
    print(f"model: {Path(args.config).name}, LSTM {m.num_layers}×{m.hidden_size}, vocabulary {vocab:,}, BPTT "
          f"{config.train.bptt}, {flops / 1e6:.1f} MFLOP per token (forward + backward; "
          f"{adaptive_flops / 1e6:.1f} with the adaptive softmax)")
    print(f"{'run':45} {'tok/s':>8} {'GFLOP/s':>8} {'of peak':>8} {'× ref':>6}")
    for r in results.values():
        print(f"{r['name']:45} {r['tokens_per_s']:8,.0f} {r['gflops']:8.1f} {r['peak_share']:8.1%} "
              f"{r['ratio']:6.2f}")


if __name__ == "__main__":
    main()

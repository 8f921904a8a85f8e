"""Training speed of lstm-lm against the classic PyTorch loop, measured in one run on the machine at hand.

Model: the PTB medium LSTM (2×650, vocabulary 10,000) on Penn Treebank windows, or the model of another config
(--config; its sizes, BPTT and corpus). Prints
  1. the machine's matrix-multiply peak in fp32 and bf16 (2048×2048 products);
  2. a reference: the classic word-language-model loop written out plainly below (fp32 nn.LSTM, plain SGD,
     batch 20, the config's BPTT (35 for PTB medium), clip 0.25);
  3. lstm-lm's trainer step on the same model, batch and BPTT, in fp32 and in bf16;
  4. lstm-lm's trainer with the fastest settings the recipes use (bf16, and the 1-hour recipes' locked dropout
     in place of plain dropout, at the same rates: one mask per sequence instead of one per step) at the batch
     that trains fastest here, 256 (tokens/s in one run: 13,300 at batch 128, 15,800 at 256, 14,600 at 512);
  5. the same with the PTB 1-hour recipe's adaptive softmax (a 2,000-word shortlist, one tail at a quarter of
     the width), which computes fewer FLOPs per token: its GFLOP/s count what it computes;
each as tokens/s, model GFLOP/s, share of the matching peak and ratio to the reference.

Run: python scripts/bench_train.py [--config configs/ptb-medium.yaml] [--steps N] [--fast-batch B] [--json]
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
import time
from pathlib import Path

import torch
from rich.console import Console

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from lstm_lm.config import Config, load_config  # noqa: E402
from lstm_lm.data import batchify, bptt_windows, load_corpus  # noqa: E402
from lstm_lm.device import prepare_process  # noqa: E402
from lstm_lm.progress import Reporter  # noqa: E402
from lstm_lm.softmax import tail_width  # noqa: E402
from lstm_lm.train import Trainer  # noqa: E402

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


def timed(step, warmup: int, steps: int) -> float:
    """Seconds per call, after warm-up calls."""
    for _ in range(warmup):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - start) / steps


def matmul_peak(dtype: torch.dtype, size: int = 2048) -> float:
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    return 2 * size**3 / timed(lambda: a @ b, 2, 8) / 1e9


def reference_tokens_per_s(config: Config, train_ids: torch.Tensor, vocab: int, steps: int) -> float:
    """The classic loop, as the PyTorch word_language_model example writes it."""
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

    return REFERENCE_BATCH * bptt / timed(step, 3, steps)


def trainer_tokens_per_s(config_path: str, batch_size: int, precision: str, steps: int, cache_dir: str,
                         overrides: tuple[str, ...] = ()) -> float:
    """lstm-lm's own training step (Trainer.train_step) on the config's model."""
    config = load_config(config_path, [
        f"train.batch_size={batch_size}", f"train.precision={precision}", f"train.clip={REFERENCE_CLIP}",
        "train.loss_reduction=mean", f"train.lr={REFERENCE_LR}", "train.device=cpu", f"data.cache_dir={cache_dir}",
        *overrides])
    corpus = load_corpus(config.data, config.tokenizer)
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = Trainer(config, Path(run_dir), corpus, torch.device("cpu"),
                          Reporter(Path(run_dir) / "metrics.jsonl", Console(file=io.StringIO())))
        windows = iter(bptt_windows(trainer.train_data, config.train.bptt))

        def step() -> None:
            _, inputs, targets = next(windows)
            trainer.train_step(inputs, targets)

        return batch_size * config.train.bptt / timed(step, 3, steps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(REPO / "configs/ptb-medium.yaml"), help="the model to time")
    parser.add_argument("--steps", type=int, default=15, help="timed steps per configuration")
    parser.add_argument("--fast-batch", type=int, default=256, help="batch size of the fastest settings")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    prepare_process()  # as every lstm-lm command does
    if load_config(args.config).model.hidden_sizes:
        sys.exit(f"{args.config}: the reference loop is one nn.LSTM of model.hidden_size; set no hidden_sizes")

    torch.manual_seed(0)
    peaks = {"fp32": matmul_peak(torch.float32), "bf16": matmul_peak(torch.bfloat16)}
    cache_dir = tempfile.mkdtemp()
    config = load_config(args.config, [f"data.cache_dir={cache_dir}"])
    corpus = load_corpus(config.data, config.tokenizer)
    vocab = corpus.tokenizer.vocab_size
    adaptive_config = load_config(args.config, [f"data.cache_dir={cache_dir}", *ADAPTIVE])

    flops = model_flops_per_token(config, vocab, corpus.train)
    adaptive_flops = model_flops_per_token(adaptive_config, vocab, corpus.train)
    rows = [("reference: classic loop, fp32, batch 20", "fp32", flops,
             reference_tokens_per_s(config, corpus.train, vocab, args.steps))]
    for precision in ("fp32", "bf16"):
        rows.append((f"lstm-lm, {precision}, batch 20", precision, flops,
                     trainer_tokens_per_s(args.config, REFERENCE_BATCH, precision, args.steps, cache_dir)))
    rate = config.model.dropout
    locked = tuple(f"model.dropout_{place}={rate}" for place in ("input", "hidden", "output"))
    rows.append((f"lstm-lm fastest: bf16, batch {args.fast_batch}, locked dropout", "bf16", flops,
                 trainer_tokens_per_s(args.config, args.fast_batch, "bf16", args.steps, cache_dir, locked)))
    rows.append(("  the same, adaptive softmax [2000]", "bf16", adaptive_flops,
                 trainer_tokens_per_s(args.config, args.fast_batch, "bf16", args.steps, cache_dir,
                                      (*locked, *ADAPTIVE))))

    reference = rows[0][3]
    results = [{"name": name, "precision": precision, "tokens_per_s": tps, "gflops": tps * row_flops / 1e9,
                "peak_share": tps * row_flops / 1e9 / peaks[precision], "ratio": tps / reference}
               for name, precision, row_flops, tps in rows]
    summary = {"fp32_peak_gflops": peaks["fp32"], "bf16_peak_gflops": peaks["bf16"], "reference_tok_s": reference,
               "same_batch_fp32_ratio": results[1]["ratio"], "same_batch_bf16_ratio": results[2]["ratio"],
               "fastest_ratio": results[3]["ratio"], "fastest_peak_share": results[3]["peak_share"],
               "fastest_adaptive_ratio": results[4]["ratio"],
               "fastest_adaptive_peak_share": results[4]["peak_share"], "runs": results}
    if args.json:
        print(json.dumps(summary))
        return
    print(f"matrix-multiply peak: fp32 {peaks['fp32']:.0f} GFLOP/s, bf16 {peaks['bf16']:.0f} GFLOP/s")
    m = config.model
    print(f"model: {Path(args.config).name}, LSTM {m.num_layers}×{m.hidden_size}, vocabulary {vocab:,}, BPTT "
          f"{config.train.bptt}, {flops / 1e6:.1f} MFLOP per token (forward + backward; "
          f"{adaptive_flops / 1e6:.1f} with the adaptive softmax)")
    print(f"{'run':45} {'tok/s':>8} {'GFLOP/s':>8} {'of peak':>8} {'× ref':>6}")
    for r in results:
        print(f"{r['name']:45} {r['tokens_per_s']:8,.0f} {r['gflops']:8.1f} {r['peak_share']:8.1%} "
              f"{r['ratio']:6.2f}")


if __name__ == "__main__":
    main()

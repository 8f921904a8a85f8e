"""Perplexity of a model on a token stream, and the `evaluate` command's library function."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from ..data.batches import evaluation_layout
from ..data.splits import read_splits
from ..errors import UserError, print_warning
from ..hardware.precision import autocast, resolve_precision, run_precision
from ..model.language_model import LanguageModel
from ..reading import read_text
from ..rundir.run_files import LoadedRun, load_run
from ..targets import IGNORE


def perplexity(loss: float) -> float:
    """exp(mean loss in nats), held finite: exp overflows past ~709, and a diverged run's loss can be larger."""
    return math.exp(min(loss, 700.0))


@dataclass
class Evaluation:
    tokens: int
    loss: float  # mean negative log-likelihood per token, in nats

    @property
    def ppl(self) -> float:
        return perplexity(self.loss)

    @property
    def bpc(self) -> float:
        return self.loss / math.log(2)

    def numbers(self, with_bpc: bool) -> dict[str, float]:
        """tokens, loss and ppl (and bits per character for character models), as reports print them."""
        numbers = {"tokens": self.tokens, "loss": self.loss, "ppl": self.ppl}
        return {**numbers, "bpc": self.bpc} if with_bpc else numbers


@torch.inference_mode()
def evaluate_layout(model: LanguageModel, inputs: torch.Tensor, targets: torch.Tensor, bptt: int,
                    device: torch.device, dtype: torch.dtype | None = None) -> Evaluation:
    """Score (L, B) inputs against (L, B) targets window by window, carrying the hidden state down each column."""
    was_training = model.training
    model.eval()
    hidden = model.init_hidden(inputs.size(1))
    total = torch.zeros((), dtype=torch.float64, device=device)
    count = int((targets != IGNORE).sum())
    inputs, targets = inputs.to(device), targets.to(device)  # one copy, not one per window
    for row in range(0, inputs.size(0), bptt):
        tokens, expected = inputs[row: row + bptt], targets[row: row + bptt]
        with autocast(device, dtype):
            losses, hidden = model(tokens, hidden, expected)  # (T, B), zero where IGNORE
        total += losses.sum(dtype=torch.float64)
    model.train(was_training)
    return Evaluation(tokens=count, loss=float(total) / count)


def evaluate_ids(model: LanguageModel, ids: torch.Tensor, boundary_id: int | None, batch_size: int, bptt: int,
                 device: torch.device, dtype: torch.dtype | None = None) -> Evaluation:
    inputs, targets = evaluation_layout(ids, batch_size, boundary_id)
    return evaluate_layout(model, inputs, targets, bptt, device, dtype)


def evaluate_run(run_dir: Path, split: str, file: Path | None, device: torch.device,
                 batch_size: int | None = None, precision: str | None = None,
                 warn: Callable[[str], None] = print_warning) -> dict[str, Any]:
    """The numbers `lstm-lm evaluate` prints: tokens, loss, perplexity (and bits per character), computed in
    `precision` (fp32, bf16, fp16, auto; by default the precision the run was trained in, or fp32 where this
    machine cannot run that, said in a line to `warn`)."""
    run, dtype = load_for_scoring(run_dir, device, precision, warn)
    ids, name = text_ids(run, split, file)
    result = evaluate_ids(run.model, ids, run.tokenizer.boundary_id,
                          batch_size or run.config.train.eval_batch_size, run.config.train.bptt, device, dtype)
    return {"split": name, **result.numbers(with_bpc=run.tokenizer.kind == "char")}


def load_for_scoring(run_dir: Path, device: torch.device, precision: str | None,
                     warn: Callable[[str], None]) -> tuple[LoadedRun, torch.dtype | None]:
    """The run, and the autocast dtype to score it in: `precision` where given (checked before any work), else
    the run's own where this device can run it."""
    asked = None if precision is None else resolve_precision(precision, device, "--precision")
    run = load_run(run_dir, device)
    dtype = asked if precision is not None else run_precision(run.config.train.precision, device, warn)
    return run, dtype


def text_ids(run: LoadedRun, split: str, file: Path | None) -> tuple[torch.Tensor, str]:
    """The token ids of `file` (when given) or of a split of the run's corpus, and the name to report them by."""
    if file is not None:
        text, name = read_text(file, run.config.data.encoding), str(file)
    else:
        if split not in ("train", "valid", "test"):
            raise UserError(f"--split {split}: expected train, valid or test")
        text, name = read_splits(run.config.data, splits=(split,))[split], split
    ids = torch.tensor(run.tokenizer.encode_corpus(text), dtype=torch.int64)
    if ids.numel() == 0:
        raise UserError(f"{name}: no tokens to evaluate")
    return ids, name

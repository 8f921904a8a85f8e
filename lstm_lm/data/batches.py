"""Laying token ids out for the model: (T, B) BPTT windows for training, and a layout that scores every token of
a split exactly once for evaluation."""

from __future__ import annotations

from typing import Iterator

import torch

from ..errors import UserError
from ..targets import IGNORE


def batchify(ids: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Cut a token stream into `batch_size` contiguous columns, dropping the tail that does not fill a row.

    With the stream a b c d e f g h i j k l and batch_size 3 (the tail beyond 12 tokens is dropped):

        ┌ a e i ┐
        │ b f j │     each column is one stretch of text read top to bottom, so the hidden state carried
        │ c g k │     from one window to the next continues the same text in every column
        └ d h l ┘

    Returns (N // batch_size, batch_size).
    """
    rows = ids.numel() // batch_size
    return ids[: rows * batch_size].view(batch_size, rows).t().contiguous()


def bptt_windows(source: torch.Tensor, bptt: int, start: int = 0) -> Iterator[tuple[int, torch.Tensor, torch.Tensor]]:
    """(row, inputs (T, B), targets (T, B)) over a batchified source, views without copies; T <= bptt."""
    for row in range(start, source.size(0) - 1, bptt):
        length = min(bptt, source.size(0) - 1 - row)
        yield row, source[row: row + length], source[row + 1: row + 1 + length]


def variable_bptt_windows(source: torch.Tensor, bptt: int, start: int = 0,
                          seed: int = 0) -> Iterator[tuple[int, torch.Tensor, torch.Tensor]]:
    """Like bptt_windows, with each window's length drawn as AWD-LSTM draws it: around bptt (or, one time in 20,
    around bptt / 2) with normal noise of sd 5, at least 5 and at most bptt + 40, so that windows start at other
    tokens in every epoch. The lengths are a function of `seed` alone, drawn from the first row on: every process
    of a distributed run takes the same steps, and a resumed run the same windows, from the first window that
    starts at or after `start`."""
    generator = torch.Generator().manual_seed(seed)
    row = 0
    while row < source.size(0) - 1:
        centre = bptt if torch.rand((), generator=generator).item() < 0.95 else bptt / 2
        drawn = int(torch.normal(float(centre), 5.0, (), generator=generator).item())
        length = min(max(5, drawn), bptt + 40, source.size(0) - 1 - row)
        if row >= start:
            yield row, source[row: row + length], source[row + 1: row + 1 + length]
        row += length


def windows_per_epoch(source: torch.Tensor, bptt: int) -> int:
    return max(0, (source.size(0) - 2) // bptt + 1)


def evaluation_layout(ids: torch.Tensor, batch_size: int, boundary_id: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and targets, both (L, B), that predict every token of a split exactly once.

    The split is preceded by the line-boundary token (so its first token is predicted too, as after any line),
    then cut into `batch_size` columns of length L = ceil(N / B); the last column is padded and its padded
    targets are IGNORE. Unlike `batchify`, nothing is dropped, so the token count is the split's own.
    """
    stream = ids if boundary_id is None else torch.cat([ids.new_tensor([boundary_id]), ids])
    targets_count = stream.numel() - 1
    if targets_count < 1:
        raise UserError("cannot evaluate a split of fewer than two tokens")
    batch_size = min(batch_size, targets_count)
    length = -(-targets_count // batch_size)
    padded = torch.full((batch_size * length + 1,), IGNORE, dtype=ids.dtype)
    padded[: stream.numel()] = stream
    inputs = padded[:-1].view(batch_size, length).t().clamp(min=0)  # padded inputs read token 0; ignored anyway
    targets = padded[1:].view(batch_size, length).t()
    return inputs.contiguous(), targets.contiguous()


def require_tokens(ids: torch.Tensor, split: str, needed: int, formula: str, where: str) -> None:
    """Refuse a split too short to fill one (T, B) window, naming the split and the numbers."""
    if ids.numel() < needed:
        raise UserError(f"{where}: the {split} split has {ids.numel():,} tokens, fewer than one window: "
                        f"{formula} = {needed:,}")

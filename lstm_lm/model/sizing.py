"""Models of the same size with different cells: the hidden size that gives a cell's recurrent layers the
parameter count of another's, so that a comparison of cells is not a comparison of sizes (the long-range
studies in scripts/)."""

from __future__ import annotations

import dataclasses

from ..config import ModelConfig
from .language_model import recurrent_layers


def recurrent_parameters(model: ModelConfig) -> int:
    return sum(parameter.numel() for parameter in recurrent_layers(model).parameters())


def matched_hidden_size(model: ModelConfig, target: int) -> int:
    """The hidden size whose recurrent layers have the parameter count nearest `target` (it grows with the size)."""
    def count(size: int) -> int:
        return recurrent_parameters(dataclasses.replace(model, hidden_size=size))

    low, high = 1, 8 * model.hidden_size
    while low < high:  # the smallest size reaching the target
        middle = (low + high) // 2
        low, high = (middle + 1, high) if count(middle) < target else (low, middle)
    return min((low - 1, low), key=lambda size: abs(count(size) - target))

"""Where training stands: everything beyond the weights and the optimizer that --resume needs to go on exactly."""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass
class TrainerState:
    """Where training stands; saved in checkpoint.pt so that --resume continues exactly here."""

    epoch: int = 0  # current epoch, counted from 0
    row: int = 0  # first row of the next BPTT window in the batchified training data
    step: int = 0  # training windows processed, skipped bad steps included
    tokens: int = 0  # training tokens consumed
    lr: float = 0.0
    lr_scale: float = 1.0  # product of the cuts made after too many bad steps; scales the cosine schedule
    best_valid_loss: float = math.inf
    last_epoch_valid_loss: float = math.inf
    elapsed_s: float = 0.0  # wall time spent training in earlier processes of this run
    bad_steps: int = 0  # steps skipped because the loss or the gradient norm was NaN or infinite
    bad_in_row: int = 0  # of those, how many came last in a row
    valid_history: list[float] = field(default_factory=list)  # scheduled validations' losses, for NT-ASGD
    history_step: int = -1  # the step of the last validation in valid_history
    last_valid: list[float] = field(default_factory=list)  # [step, tokens, loss] of the latest validation
    averaging_since: int | None = None  # NT-ASGD: the step weight averaging began at

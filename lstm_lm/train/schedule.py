"""Learning-rate schedules as small pure functions of what the trainer already knows."""

from __future__ import annotations

import math


def epoch_decay_lr(base_lr: float, epoch: int, decay: float, start_epoch: int) -> float:
    """Zaremba et al.: the full rate for `start_epoch` epochs, then ×decay per epoch. `epoch` counts from 0."""
    return base_lr * decay ** max(0, epoch + 1 - start_epoch)


def plateau_lr(lr: float, improved: bool, decay: float) -> float:
    """The PyTorch word-language-model rule: ×decay whenever validation did not improve on the best so far."""
    return lr if improved else lr * decay


def cosine_lr(base_lr: float, progress: float) -> float:
    """Half a cosine from base_lr down to zero as `progress` (the share of the planned training done, in steps or
    in wall time under a time limit) goes from 0 to 1: the schedule for a fixed budget (Loshchilov & Hutter 2017,
    without restarts)."""
    return base_lr * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def next_epoch_lr(schedule: str, *, lr: float, base_lr: float, next_epoch: int, improved: bool, decay: float,
                  start_epoch: int) -> float:
    """The rate for `next_epoch`, decided at the end of the epoch before it (cosine and constant: unchanged)."""
    if schedule == "epoch_decay":
        return epoch_decay_lr(base_lr, next_epoch, decay, start_epoch)
    if schedule == "plateau":
        return plateau_lr(lr, improved, decay)
    return lr

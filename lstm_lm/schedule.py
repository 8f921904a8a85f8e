"""Learning-rate schedules as small pure functions of what the trainer already knows."""

from __future__ import annotations


def epoch_decay_lr(base_lr: float, epoch: int, decay: float, start_epoch: int) -> float:
    """Zaremba et al.: the full rate for `start_epoch` epochs, then ×decay per epoch. `epoch` counts from 0."""
    return base_lr * decay ** max(0, epoch + 1 - start_epoch)


def plateau_lr(lr: float, improved: bool, decay: float) -> float:
    """The PyTorch word-language-model rule: ×decay whenever validation did not improve on the best so far."""
    return lr if improved else lr * decay


def next_epoch_lr(schedule: str, *, lr: float, base_lr: float, next_epoch: int, improved: bool, decay: float,
                  start_epoch: int) -> float:
    """The rate for `next_epoch`, decided at the end of the epoch before it."""
    if schedule == "epoch_decay":
        return epoch_decay_lr(base_lr, next_epoch, decay, start_epoch)
    if schedule == "plateau":
        return plateau_lr(lr, improved, decay)
    return lr

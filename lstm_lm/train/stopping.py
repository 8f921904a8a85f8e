"""When training stops: a signal, or a limit of epochs, steps or minutes; and how far along the plan it is."""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Any, Iterator

from ..config import TrainConfig
from .state import TrainerState


class StopRequest:
    """SIGINT/SIGTERM set a flag so the current step finishes and a checkpoint is written; a second one quits."""

    def __init__(self) -> None:
        self.reason: str | None = None

    def __bool__(self) -> bool:
        return self.reason is not None

    @contextmanager
    def installed(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handle(signum: int, frame: Any) -> None:
            if self.reason is not None:
                raise KeyboardInterrupt
            self.reason = signal.Signals(signum).name

        previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def due(step: int, every: int | None) -> bool:
    """Whether an every-N-steps action (null N: never) falls on this step."""
    return every is not None and step % every == 0


def limit_reached(state: TrainerState, train: TrainConfig, elapsed_s: float) -> str | None:
    """Why training ends here (a step, time or epoch limit), or None. `elapsed_s` is the slowest rank's clock."""
    if train.max_steps is not None and state.step >= train.max_steps:
        return f"reached train.max_steps={train.max_steps}"
    if train.max_minutes is not None and elapsed_s >= 60 * train.max_minutes:
        return f"reached train.max_minutes={train.max_minutes:g}"
    if state.epoch >= train.epochs:
        return "finished"
    return None


def planned_share_done(state: TrainerState, train: TrainConfig, rows: int, elapsed_s: float) -> float:
    """The share of the planned training done: of the epochs (counted in rows of text, as window lengths may
    vary; `rows` per epoch), of train.max_steps, or of train.max_minutes, whichever is furthest along."""
    done = (state.epoch + state.row / rows) / train.epochs
    if train.max_steps is not None:
        done = max(done, state.step / train.max_steps)
    if train.max_minutes is not None:
        done = max(done, elapsed_s / (60 * train.max_minutes))
    return done

"""What a person watches (a Rich progress bar, or plain lines when stdout is not a terminal) and what a program
reads back (metrics.jsonl, one JSON record per line)."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ..errors import UserError
from .distributed import World, sum_over_ranks


def format_duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{seconds:02d}s"


def describe_train(record: dict[str, Any]) -> str:
    return (f"epoch {record['epoch']} step {record['step']} | loss {record['loss']:.3f} | ppl {record['ppl']:.1f}"
            f" | lr {record['lr']:.3g} | grad norm {record['grad_norm']:.2f} | {record['tokens_per_s']:,.0f} tok/s"
            f" | {format_duration(record['eta_s'])} left")


class Reporter:
    """Appends every record to metrics.jsonl and shows progress: a live bar on a terminal, else plain lines."""

    def __init__(self, metrics_path: Path, console: Console | None = None):
        self.metrics_path = metrics_path
        self.console = console or Console()
        self.progress: Progress | None = None

    def start(self, total_steps: int, done: int = 0) -> None:
        """Show the live bar from here on, when the console is a terminal."""
        if self.console.is_terminal:
            self.progress = Progress(TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(),
                                     TimeElapsedColumn(), TextColumn("{task.description}"),
                                     console=self.console, transient=False)
            self.task = self.progress.add_task("", total=total_steps, completed=done)
            self.progress.start()

    def record(self, event: str, **values: Any) -> dict[str, Any]:
        record = {"event": event, **values}
        try:
            with open(self.metrics_path, "a", encoding="utf-8") as file:
                file.write(json.dumps(record) + "\n")
        except OSError as error:
            raise UserError(f"{self.metrics_path}: cannot write: {error.strerror}") from None
        if event == "train":
            self.show_train(record)
        return record

    def show_train(self, record: dict[str, Any]) -> None:
        if self.progress is not None:
            self.progress.update(self.task, completed=record["step"], description=describe_train(record))
        else:
            self.console.print(describe_train(record), highlight=False, soft_wrap=True)

    def message(self, text: str) -> None:
        self.console.print(text, highlight=False, soft_wrap=True)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


class ProgressInterval:
    """Loss, gradient norm and tokens summed since the last progress line. The sums stay on the device, so that
    a step need not wait for its numbers to reach the host."""

    def __init__(self, device: torch.device):
        self.loss = torch.zeros((), device=device)
        self.grad_norm = torch.zeros((), device=device)
        self.steps, self.tokens, self.start = 0, 0, time.perf_counter()

    def add(self, numbers: tuple[torch.Tensor, torch.Tensor] | None, tokens: int) -> None:
        """One step's (mean loss, gradient norm), or None for a bad step, which counts its tokens only."""
        self.tokens += tokens
        if numbers is not None:
            self.loss += numbers[0]
            self.grad_norm += numbers[1]
            self.steps += 1

    def flush(self, world: World) -> tuple[float, float, float]:
        """(mean loss over all ranks, this rank's mean gradient norm, tokens per second), and start afresh. A
        stretch of bad steps only gives NaN."""
        now = time.perf_counter()
        good = self.steps or math.nan
        loss = sum_over_ranks(self.loss.to(world.device), world).item() / world.size
        numbers = loss / good, self.grad_norm.item() / good, self.tokens / (now - self.start)
        self.loss.zero_()
        self.grad_norm.zero_()
        self.steps, self.tokens, self.start = 0, 0, now
        return numbers

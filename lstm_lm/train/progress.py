"""What a person watches (a Rich progress bar, or plain lines when stdout is not a terminal) and what a program
reads back (metrics.jsonl, one JSON record per line)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from .errors import UserError


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


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """Records from metrics.jsonl; a last line cut short by a killed run is skipped."""
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            continue
    return records

"""Training curves of one or several runs from their metrics.jsonl: perplexity against tokens seen and against
wall time, and the learning rate, so recipes can be compared at a glance."""

from __future__ import annotations

from pathlib import Path

from ..errors import UserError
from ..rundir.layout import METRICS
from ..rundir.run_files import read_metrics
from .figures import image_type, new_figure, save_figure


def run_curves(run_dir: Path) -> dict[str, list[dict]]:
    """The run's train and valid records, in order."""
    records = read_metrics(run_dir / METRICS)
    curves = {"train": [r for r in records if r.get("event") == "train"],
              "valid": [r for r in records if r.get("event") == "valid"]}
    if not curves["train"] and not curves["valid"]:
        raise UserError(f"{run_dir / METRICS}: no training or validation records to plot")
    return curves


def plot_curves(run_dirs: list[Path], output: Path) -> None:
    """Three panels: perplexity vs tokens (train thin, valid bold), validation perplexity vs wall time, lr."""
    image_type(output)
    runs = [(run_dir, run_curves(run_dir)) for run_dir in run_dirs]  # every run is read before anything is drawn
    figure = new_figure(15, 4.5)
    by_tokens, by_time, by_lr = figure.subplots(1, 3)
    for index, (run_dir, curves) in enumerate(runs):
        color = f"C{index}"
        name = run_dir.name
        train, valid = curves["train"], curves["valid"]
        by_tokens.plot([r["tokens"] for r in train], [r["ppl"] for r in train], color=color, alpha=0.35,
                       linewidth=0.8)
        by_tokens.plot([r["tokens"] for r in valid], [r["ppl"] for r in valid], color=color, marker="o",
                       markersize=3, label=f"{name} (valid; train faint)")
        by_time.plot([r["elapsed_s"] / 60 for r in valid], [r["ppl"] for r in valid], color=color, marker="o",
                     markersize=3, label=name)
        by_lr.plot([r["tokens"] for r in train], [r["lr"] for r in train], color=color, label=name)
    for axes, xlabel, ylabel in ((by_tokens, "tokens seen", "perplexity"),
                                 (by_time, "wall time (minutes)", "validation perplexity"),
                                 (by_lr, "tokens seen", "learning rate")):
        axes.set_xlabel(xlabel)
        axes.set_ylabel(ylabel)
        axes.set_yscale("log")
        axes.grid(alpha=0.3)
        axes.legend(fontsize=8)
    save_figure(figure, output, dpi=120)

"""The figure for a paper: accuracy against distance and against attractor count, one line per suite, with
Wilson 95% intervals and the 50% chance level."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..evaluate.figures import image_type, new_figure, save_figure
from ..reading import read_text

PANELS = (("distance", "distance from controller to target (words)"), ("attractors", "attractors"))


def load_report(path: Path) -> dict[str, Any]:
    try:
        report = json.loads(read_text(path, "utf-8"))
    except json.JSONDecodeError as error:
        raise UserError(f"{path}:{error.lineno}: not valid JSON ({error.msg})") from None
    if not isinstance(report, dict) or not isinstance(report.get("suites"), list):
        raise UserError(f"{path}: not a report written by `lstm-lm eval-agreement --output`")
    return report


def position(key: str, value: Any) -> int:
    """Where a group sits on the x axis: its attractor count, or the first distance of its bucket ("4-5" -> 4)."""
    return value if key == "attractors" else int(re.match(r"-?\d+", str(value)).group())


def plot_report(report: dict[str, Any], image: Path, where: Path) -> None:
    """Draw `report` (read from `where`) into `image`, whose suffix picks the type: png, pdf or svg."""
    image_type(image)
    figure = new_figure(9, 3.6)
    axes = figure.subplots(1, 2, sharey=True)
    drawn = False
    for axis, (key, label) in zip(axes, PANELS):
        ticks: dict[int, str] = {}
        for suite in report["suites"]:
            groups = [group for group in suite.get("groups", []) if group.get("key") == key and group["n"]]
            if not groups:
                continue
            xs = [position(key, group["value"]) for group in groups]
            ys = [group["accuracy"] for group in groups]
            errors = [[y - group["ci"][0] for y, group in zip(ys, groups)],
                      [group["ci"][1] - y for y, group in zip(ys, groups)]]
            axis.errorbar(xs, ys, yerr=errors, marker="o", capsize=3, label=suite["name"])
            ticks.update((x, str(group["value"])) for x, group in zip(xs, groups))
            drawn = True
        axis.axhline(0.5, color="grey", linestyle="--", linewidth=1)
        axis.set_xticks(sorted(ticks), [ticks[x] for x in sorted(ticks)])
        axis.set_xlabel(label)
        axis.set_ylim(0, 1.02)
        if ticks:
            axis.legend(loc="lower left", fontsize="small")
    if not drawn:
        raise UserError(f"{where}: no suite has a distance or attractor breakdown to plot")
    axes[0].set_ylabel("accuracy")
    save_figure(figure, image, dpi=200)

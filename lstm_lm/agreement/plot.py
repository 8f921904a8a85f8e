"""The figure for a paper: accuracy against distance and against attractor count, one line per suite, with
Wilson 95% intervals and the 50% chance level; for SyntaxGym suites, a bar per suite, coloured by circuit."""

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
    """Draw `report` (read from `where`) into `image`, whose suffix picks the type: png, pdf or svg. Suites with a
    distance or attractor breakdown make the two panels of lines; SyntaxGym suites make a bar chart below them."""
    image_type(image)
    gym = [suite for suite in report["suites"] if suite.get("format") == "syntaxgym"]
    lines = any(group.get("key") in dict(PANELS) and group.get("n")
                for suite in report["suites"] for group in suite.get("groups", []))
    if not gym and not lines:
        raise UserError(f"{where}: no suite has a distance or attractor breakdown, nor SyntaxGym accuracies, to plot")
    width = max(9.0, 0.3 * len(gym) + 2) if gym else 9.0
    figure = new_figure(width, (3.6 if lines else 0) + (4.8 if gym else 0))
    if lines and gym:
        top, bottom = figure.subfigures(2, 1, height_ratios=[3.6, 4.8])
        draw_breakdowns(top, report)
        draw_syntaxgym(bottom, gym)
    elif lines:
        draw_breakdowns(figure, report)
    else:
        draw_syntaxgym(figure, gym)
    save_figure(figure, image, dpi=200)


def draw_breakdowns(figure, report: dict[str, Any]) -> None:
    """Accuracy against distance and against attractors, one line per suite, with the 50% chance level."""
    axes = figure.subplots(1, 2, sharey=True)
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
        axis.axhline(0.5, color="grey", linestyle="--", linewidth=1)
        axis.set_xticks(sorted(ticks), [ticks[x] for x in sorted(ticks)])
        axis.set_xlabel(label)
        axis.set_ylim(0, 1.02)
        if ticks:
            axis.legend(loc="lower left", fontsize="small")
    axes[0].set_ylabel("accuracy")


def draw_syntaxgym(figure, suites: list[dict[str, Any]]) -> None:
    """A bar per SyntaxGym suite (its accuracy, with its Wilson 95% interval), coloured by circuit and grouped by it,
    and the mean over the suites scored as a dashed line; a suite that could not be scored has no bar."""
    ordered = sorted(suites, key=lambda suite: (suite.get("circuit") is None, suite.get("circuit") or "",
                                                suite["name"]))
    circuits = list(dict.fromkeys(suite.get("circuit") or "no circuit" for suite in ordered))
    palette = [f"C{index % 10}" for index in range(len(circuits))]
    axis = figure.subplots()
    drawn: set[str] = set()
    for x, suite in enumerate(ordered):
        name = suite.get("circuit") or "no circuit"
        if suite["accuracy"] is None:
            axis.text(x, 0.02, "not scored", rotation=90, ha="center", va="bottom", fontsize="x-small", color="grey")
            continue
        low, high = suite["ci"]
        axis.bar(x, suite["accuracy"], color=palette[circuits.index(name)], label=None if name in drawn else name,
                 yerr=[[suite["accuracy"] - low], [high - suite["accuracy"]]], capsize=2)
        drawn.add(name)
    scored = [suite["accuracy"] for suite in ordered if suite["accuracy"] is not None]
    if scored:
        axis.axhline(sum(scored) / len(scored), color="black", linestyle="--", linewidth=1,
                     label=f"mean over {len(scored)} suites")
    axis.set_xticks(range(len(ordered)), [suite["name"] for suite in ordered], rotation=70, ha="right",
                    fontsize="small")
    axis.set_xlim(-0.6, len(ordered) - 0.4)
    axis.set_ylim(0, 1.02)
    axis.set_ylabel("accuracy (items whose first prediction holds)")
    axis.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="small")

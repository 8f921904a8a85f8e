"""Accuracy with Wilson 95% intervals, broken down by each item's groups; the malformed items skipped; the report
and items files' contents."""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from typing import Any, Iterable

from .evaluate import Outcome, SuiteResult
from .items import Skipped

Z_95 = 1.959964  # the standard normal quantile for a two-sided 95% interval
# Breakdowns in the order a reader looks for them; keys a format adds beyond these follow, alphabetically.
GROUP_ORDER = ("condition", "subcondition", "attractors", "distance", "type", "pattern", "nouns", "term")
DISTANCE_BUCKETS = ((1, 1), (2, 3), (4, 5), (6, 8), (9, 12), (13, math.inf))


def wilson_interval(correct: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval for a proportion: unlike p ± z·se it stays inside [0, 1] and is honest at
    accuracies near 0 or 1 and for small n."""
    p = correct / n
    denominator = 1 + z * z / n
    center = (p + z * z / (2 * n)) / denominator
    half_width = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    # At 0 or n correct the interval reaches 0 or 1 exactly; rounding would leave it a hair short.
    low = 0.0 if correct == 0 else max(0.0, center - half_width)
    high = 1.0 if correct == n else min(1.0, center + half_width)
    return low, high


def accuracy(outcomes: list[Outcome]) -> dict[str, Any]:
    """{"accuracy", "ci": [low, high], "n"}; accuracy and ci are null when nothing was scored."""
    n = len(outcomes)
    if n == 0:
        return {"accuracy": None, "ci": None, "n": 0}
    correct = sum(outcome.correct for outcome in outcomes)
    return {"accuracy": correct / n, "ci": list(wilson_interval(correct, n)), "n": n}


def distance_bucket(distance: int) -> tuple[str, float]:
    """(label, where it sorts): 5 -> ("4-5", 4)."""
    for low, high in DISTANCE_BUCKETS:
        if low <= distance <= high:
            return (str(low) if low == high else f"{low}+" if high == math.inf else f"{low}-{high}"), low
    return str(distance), distance  # 0 or below: the controller follows the target


def group_values(item_groups: dict[str, str | int]) -> Iterable[tuple[str, tuple, dict[str, Any]]]:
    """(key, sort key, fields) for each breakdown an item belongs to; a subcondition is nested in its condition."""
    for key, value in item_groups.items():
        if key == "distance":
            label, order = distance_bucket(int(value))
            yield key, (order,), {"value": label}
        elif key == "subcondition" and "condition" in item_groups:
            condition = item_groups["condition"]
            yield key, (str(condition), str(value)), {"condition": condition, "value": value}
        else:
            yield key, (isinstance(value, str), value), {"value": value}


def breakdown(outcomes: list[Outcome]) -> list[dict[str, Any]]:
    members: dict[tuple[str, tuple], list[Outcome]] = defaultdict(list)
    fields: dict[tuple[str, tuple], dict[str, Any]] = {}
    for outcome in outcomes:
        for key, order, extra in group_values(outcome.item.groups):
            members[key, order].append(outcome)
            fields[key, order] = extra

    def position(entry: tuple[str, tuple]) -> tuple:
        key, order = entry
        rank = GROUP_ORDER.index(key) if key in GROUP_ORDER else len(GROUP_ORDER)
        return rank, key, order

    return [{"key": key, **fields[key, order], **accuracy(members[key, order])}
            for key, order in sorted(members, key=position)]


def skipped_report(skipped: list[Skipped]) -> dict[str, Any]:
    """{"n", "reasons": {kind: count}, "items": [{"where", "kind", "reason"}]}: the malformed items left out."""
    return {"n": len(skipped), "reasons": dict(Counter(entry.kind for entry in skipped)),
            "items": [{"where": entry.where, "kind": entry.kind, "reason": entry.reason} for entry in skipped]}


def suite_report(result: SuiteResult) -> dict[str, Any]:
    return {"name": result.suite.name, "format": result.suite.format, "method": result.method,
            **accuracy(result.outcomes), "oov": result.oov, "oov_words": result.oov_words,
            "oov_left_out": result.oov_left_out, "skipped": skipped_report(result.skipped),
            "groups": breakdown(result.outcomes)}


def build_report(run: str, results: list[SuiteResult]) -> dict[str, Any]:
    """What `--output` writes: every suite with its breakdowns, then all scored pairs together, and the malformed
    items skipped in all of them. (SyntaxGym suites join it in syntaxgym_report.add_gym_report.)"""
    every_outcome = [outcome for result in results for outcome in result.outcomes]
    skipped = [entry for result in results for entry in result.skipped]
    return {"run": run, "suites": [suite_report(result) for result in results], "overall": accuracy(every_outcome),
            "skipped": {key: value for key, value in skipped_report(skipped).items() if key != "items"}}


def items_lines(results: list[SuiteResult]) -> str:
    """What `--items` writes: one JSON line per scored item."""
    return "".join(json.dumps({"suite": result.suite.name, "where": outcome.item.where, "good": outcome.item.good,
                               "bad": outcome.item.bad, "groups": outcome.item.groups,
                               "good_score": outcome.good_score, "bad_score": outcome.bad_score,
                               "correct": outcome.correct}) + "\n"
                   for result in results for outcome in result.outcomes)

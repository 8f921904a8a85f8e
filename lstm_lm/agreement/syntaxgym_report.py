"""What the report says of SyntaxGym suites: accuracy per prediction and per suite, the mean over suites (Hu et al.'s
SG score) and over their six circuits, the regions that could not be scored, and the items file's lines.

How Hu et al. (2020) aggregate, in cpllab/syntactic-generalization: an item is correct when the suite's *first*
prediction holds (`src/evaluate_predictions.py`: "Only getting the first prediction for now"); a suite's accuracy
is its share of correct items; the SG score is the mean of suite accuracies, over every suite but `nn-nv-rpl` (a
single item; `notebooks/main.py` leaves it out, and its first version also left out `fgd-embed3` and `fgd-embed4`);
a circuit's score is the mean over its suites. A suite joins a circuit by its tag, the part of its name before the
first `-`, `_` or digit (`number_orc` -> `number` -> Agreement), so `nn-nv-rpl`, whose tag has no circuit, is exactly
the suite their mean leaves out. Every prediction is reported too, and `all_predictions` gives the share of items
for which all of them hold.
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from typing import Any

from .report import wilson_interval
from .syntaxgym_align import EOS, UNSCORABLE
from .syntaxgym_evaluate import GymSuiteResult, PredictionOutcome

# notebooks/main.py of cpllab/syntactic-generalization: the test suite's tag -> its circuit.
CIRCUITS = {
    "number": "Agreement",
    "npi": "Licensing", "reflexive": "Licensing",
    "npz": "Garden-Path Effects", "mvrr": "Garden-Path Effects",
    "subordination": "Gross Syntactic State",
    "center": "Center Embedding",
    "fgd": "Long-Distance Dependencies", "cleft": "Long-Distance Dependencies",
}


def circuit(suite_name: str) -> str | None:
    return CIRCUITS.get(re.split(r"[-_0-9]", suite_name)[0])


def share(correct: int, n: int) -> dict[str, Any]:
    """{"correct", "n", "accuracy", "ci"}: accuracy and its Wilson 95% interval, null when n is 0."""
    if n == 0:
        return {"correct": 0, "n": 0, "accuracy": None, "ci": None}
    return {"correct": correct, "n": n, "accuracy": correct / n, "ci": list(wilson_interval(correct, n))}


def prediction_report(outcomes: list[PredictionOutcome]) -> dict[str, Any]:
    scored = [outcome for outcome in outcomes if outcome.holds is not None]
    return {**share(sum(outcome.holds for outcome in scored), len(scored)),
            "not_scored": len(outcomes) - len(scored),
            "unscorable": sum(1 for outcome in outcomes if outcome.unscorable),
            "oov_left_out": sum(1 for outcome in outcomes if outcome.left_out),
            "reads_unk": sum(1 for outcome in scored if outcome.reads_unknown)}


def region_list(result: GymSuiteResult, status: str) -> list[dict[str, Any]]:
    """Regions of one status (unscorable, eos) by region and condition, with the number of items."""
    counts = Counter((number, condition) for (_, condition), regions in result.regions.items()
                     for number, score in regions.items() if score.status == status)
    return [{"region": number, "name": result.suite.region_names[number], "condition": condition, "items": count}
            for (number, condition), count in sorted(counts.items())]


def gym_suite_report(result: GymSuiteResult) -> dict[str, Any]:
    suite = result.suite
    by_prediction: dict[int, list[PredictionOutcome]] = defaultdict(list)
    by_item: dict[int, list[PredictionOutcome]] = defaultdict(list)
    for outcome in result.outcomes:
        by_prediction[outcome.prediction.index].append(outcome)
        by_item[outcome.item.number].append(outcome)
    predictions = [{"index": prediction.index, "formula": prediction.text,
                    **prediction_report(by_prediction[prediction.index])} for prediction in suite.predictions]
    whole = [all(outcome.holds for outcome in outcomes) for outcomes in by_item.values()
             if all(outcome.holds is not None for outcome in outcomes)]
    unknown = sum(1 for regions in result.regions.values() for score in regions.values() if score.unknown)
    return {"name": suite.name, "format": "syntaxgym", "method": "surprisal", "path": str(suite.path),
            "circuit": circuit(suite.name), "items": len(suite.items),
            **{key: predictions[0][key] for key in ("accuracy", "ci", "correct", "n", "not_scored")},
            "all_predictions": share(sum(whole), len(whole)), "predictions": predictions,
            "unscorable_regions": region_list(result, UNSCORABLE), "eos_regions": region_list(result, EOS),
            "regions_with_unk": unknown}


def mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def gym_summary(suites: list[dict[str, Any]]) -> dict[str, Any]:
    """The means over suites: all of them, those in a circuit (the SG score), and each circuit's; and how many item
    predictions, of every prediction, were not scored."""
    scored = [suite for suite in suites if suite["accuracy"] is not None]
    in_circuits = [suite for suite in scored if suite["circuit"]]
    circuits: dict[str, list[float]] = defaultdict(list)
    for suite in in_circuits:
        circuits[suite["circuit"]].append(suite["accuracy"])
    return {"suites": len(suites), "suites_scored": len(scored),
            "mean_accuracy": mean([suite["accuracy"] for suite in scored]),
            "sg_score": mean([suite["accuracy"] for suite in in_circuits]), "sg_suites": len(in_circuits),
            "circuits": [{"circuit": name, "suites": len(values), "accuracy": mean(values)}
                         for name, values in sorted(circuits.items())],
            "not_scored": sum(prediction["not_scored"] for suite in suites for prediction in suite["predictions"])}


def add_gym_report(report: dict[str, Any], results: list[GymSuiteResult]) -> dict[str, Any]:
    """The report of report.build_report with the SyntaxGym suites added to its suites, and their means (none
    without SyntaxGym suites)."""
    if not results:
        return report
    suites = [gym_suite_report(result) for result in results]
    report["suites"].extend(suites)
    report["syntaxgym"] = gym_summary(suites)
    return report


def gym_items_lines(results: list[GymSuiteResult]) -> str:
    """One JSON line per item and prediction: the surprisal (bits) of every region of every condition, null where
    unscorable, which regions were read as <eos> or hold <unk> tokens, and whether the prediction held."""
    lines = []
    for result in results:
        for outcome in result.outcomes:
            item = outcome.item
            regions = {name: result.regions[item.number, name] for name in item.conditions}
            lines.append(json.dumps({
                "suite": result.suite.name, "item": item.number, "where": item.where,
                "prediction": outcome.prediction.index, "formula": outcome.prediction.text,
                "holds": outcome.holds,
                "unscorable": [{"region": number, "condition": condition} for number, condition in outcome.unscorable],
                "oov_left_out": outcome.left_out,
                "surprisal": {name: {str(number): score.surprisal for number, score in scores.items()}
                              for name, scores in regions.items()},
                "eos": {name: [number for number, score in scores.items() if score.status == EOS]
                        for name, scores in regions.items() if any(s.status == EOS for s in scores.values())},
                "unk": {name: {str(number): score.unknown for number, score in scores.items() if score.unknown}
                        for name, scores in regions.items() if any(s.unknown for s in scores.values())},
            }) + "\n")
    return "".join(lines)

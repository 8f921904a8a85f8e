"""What a person reads: a Rich table per suite, the overall line, and the probe's ranking. Text from test files
and the command line goes in as `Text`, so that brackets in it are not read as Rich markup."""

from __future__ import annotations

import math
from itertools import groupby
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

SHOWN_OOV_WORDS = 10


def percent(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}%"


def interval(ci: list[float] | None) -> str:
    return "—" if ci is None else f"{100 * ci[0]:.1f}–{100 * ci[1]:.1f}%"


def oov_note(suite: dict[str, Any]) -> str:
    words = suite["oov_words"]
    shown = ", ".join(words[:SHOWN_OOV_WORDS]) + (", …" if len(words) > SHOWN_OOV_WORDS else "")
    action = "left out" if suite["oov_left_out"] else "kept, read as <unk> (--skip-oov leaves them out)"
    return f"{suite['oov']:,} pairs with out-of-vocabulary words ({shown}): {action}"


def suite_table(suite: dict[str, Any]) -> Table:
    """One label column: a bold heading row per breakdown, then its values indented under it."""
    table = Table()
    table.add_column("group")
    for heading in ("accuracy", "95% CI", "n"):
        table.add_column(heading, justify="right")
    table.add_row("all", percent(suite["accuracy"]), interval(suite["ci"]), f"{suite['n']:,}", style="bold")
    key = None
    for group in suite["groups"]:
        if group["key"] != key:
            key = group["key"]
            table.add_section()
            table.add_row(Text(key), style="bold")
        value = f"{group['condition']} / {group['value']}" if "condition" in group else str(group["value"])
        table.add_row(Text(f"  {value}"), percent(group["accuracy"]), interval(group["ci"]), f"{group['n']:,}")
    return table


def skipped_note(skipped: dict[str, Any]) -> str:
    reasons = ", ".join(f"{kind}: {count:,}" for kind, count in skipped["reasons"].items())
    return f"{skipped['n']:,} malformed items skipped ({reasons}); --strict refuses them"


def print_report(console: Console, report: dict[str, Any]) -> None:
    pair_suites = [suite for suite in report["suites"] if suite["format"] != "syntaxgym"]
    for suite in pair_suites:
        # A heading line rather than a table title, which would wrap to the width of a narrow table.
        console.print(Text(f"{suite['name']} ({suite['format']}, {suite['method']} method)", style="bold"))
        console.print(suite_table(suite))
        if suite["oov"]:
            console.print(oov_note(suite), markup=False)
        if suite.get("skipped", {}).get("n"):
            console.print(skipped_note(suite["skipped"]), markup=False)
        console.print()
    if "syntaxgym" in report:
        print_gym_report(console, report)
    if pair_suites:
        overall = report["overall"]
        count = len(pair_suites)
        console.print(f"overall: accuracy {percent(overall['accuracy'])} (95% CI {interval(overall['ci'])}) over "
                      f"{overall['n']:,} pairs in {count} suite{'s' if count != 1 else ''}")


def gym_table(suites: list[dict[str, Any]]) -> Table:
    """A bold heading row per circuit, then a row per prediction of each of its suites (numbered where a suite has
    several), as `suite_table` lays out its breakdowns."""
    table = Table()
    table.add_column("circuit / suite")
    for heading in ("accuracy", "95% CI", "correct", "not scored"):
        table.add_column(heading, justify="right")
    ordered = sorted(suites, key=lambda suite: (suite["circuit"] is None, suite["circuit"] or "", suite["name"]))
    for circuit, members in groupby(ordered, key=lambda suite: suite["circuit"]):
        if table.row_count:
            table.add_section()
        table.add_row(Text(circuit or "no circuit"), style="bold")
        for suite in members:
            several = len(suite["predictions"]) > 1
            for prediction in suite["predictions"]:
                label = f"  {suite['name']}" + (f" #{prediction['index']}" if several else "")
                table.add_row(Text(label), percent(prediction["accuracy"]), interval(prediction["ci"]),
                              f"{prediction['correct']:,}/{prediction['n']:,}", f"{prediction['not_scored']:,}")
    return table


def region_notes(suites: list[dict[str, Any]], key: str) -> list[str]:
    """'  suite region 3 (Comma) in a (24 items), b (24 items)' per suite and region of the list under `key`."""
    notes = []
    for suite in suites:
        for (number, name), entries in groupby(suite[key], key=lambda entry: (entry["region"], entry["name"])):
            conditions = ", ".join(f"{entry['condition']} ({entry['items']:,} items)" for entry in entries)
            notes.append(f"  {suite['name']} region {number} ({name}) in {conditions}")
    return notes


def print_gym_report(console: Console, report: dict[str, Any]) -> None:
    suites = [suite for suite in report["suites"] if suite["format"] == "syntaxgym"]
    summary = report["syntaxgym"]
    console.print(Text("SyntaxGym suites (surprisal in bits; a suite scores by its first prediction)", style="bold"))
    console.print(gym_table(suites))
    several = [suite for suite in suites if len(suite["predictions"]) > 1]
    if several:
        console.print("predictions of the suites with more than one:", markup=False)
        for suite in several:
            for prediction in suite["predictions"]:
                console.print(f"  {suite['name']} #{prediction['index']}: {' '.join(prediction['formula'].split())}",
                              markup=False)
    if summary["circuits"]:
        circuits = Table()
        circuits.add_column("circuit")
        circuits.add_column("suites", justify="right")
        circuits.add_column("mean accuracy", justify="right")
        for entry in summary["circuits"]:
            circuits.add_row(Text(entry["circuit"]), str(entry["suites"]), percent(entry["accuracy"]))
        console.print(circuits)
    eos = region_notes(suites, "eos_regions")
    if eos:
        console.print("scored as the model's end of sentence (<eos>), its corpus lacking the punctuation:",
                      markup=False)
        for line in eos:
            console.print(line, markup=False)
    unscorable = region_notes(suites, "unscorable_regions")
    if unscorable:
        console.print("unscorable regions (punctuation or symbols this model has no token for; predictions that "
                      "read them, or read past them, are not scored):", markup=False)
        for line in unscorable:
            console.print(line, markup=False)
    with_unk = sum(suite["regions_with_unk"] for suite in suites)
    if with_unk:
        reading = sum(prediction["reads_unk"] for suite in suites for prediction in suite["predictions"])
        left_out = sum(prediction["oov_left_out"] for suite in suites for prediction in suite["predictions"])
        action = f"{left_out:,} predictions left out (--skip-oov)" if left_out else \
            f"{reading:,} item predictions read them (--skip-oov leaves those out)"
        console.print(f"{with_unk:,} regions hold words (or characters) outside the vocabulary, read as <unk>; "
                      f"{action}", markup=False)
    unscored = [suite["name"] for suite in suites if suite["accuracy"] is None]
    if unscored:
        console.print(f"not scored at all, left out of the means: {', '.join(unscored)}", markup=False)
    console.print(f"SyntaxGym: mean accuracy {percent(summary['mean_accuracy'])} over {summary['suites_scored']} "
                  f"suites; SG score {percent(summary['sg_score'])} over the {summary['sg_suites']} of them in Hu et "
                  f"al.'s circuits; {summary['not_scored']:,} item predictions not scored")
    console.print()


def probe_table(prefix: str, ranked: list[tuple[str, float]]) -> Table:
    table = Table(title=Text(f"after “{prefix}”"), title_justify="left")
    table.add_column("rank", justify="right")
    table.add_column("candidate")
    table.add_column("probability", justify="right")
    table.add_column("log-probability", justify="right")
    for rank, (candidate, log_prob) in enumerate(ranked, 1):
        table.add_row(str(rank), Text(candidate), f"{math.exp(log_prob):.4g}", f"{log_prob:.4f}")
    return table

"""What a person reads: a Rich table per suite, the overall line, and the probe's ranking. Text from test files
and the command line goes in as `Text`, so that brackets in it are not read as Rich markup."""

from __future__ import annotations

import math
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


def print_report(console: Console, report: dict[str, Any]) -> None:
    for suite in report["suites"]:
        # A heading line rather than a table title, which would wrap to the width of a narrow table.
        console.print(Text(f"{suite['name']} ({suite['format']}, {suite['method']} method)", style="bold"))
        console.print(suite_table(suite))
        if suite["oov"]:
            console.print(oov_note(suite), markup=False)
        console.print()
    overall = report["overall"]
    count = len(report["suites"])
    console.print(f"overall: accuracy {percent(overall['accuracy'])} (95% CI {interval(overall['ci'])}) over "
                  f"{overall['n']:,} pairs in {count} suite{'s' if count != 1 else ''}")


def probe_table(prefix: str, ranked: list[tuple[str, float]]) -> Table:
    table = Table(title=Text(f"after “{prefix}”"), title_justify="left")
    table.add_column("rank", justify="right")
    table.add_column("candidate")
    table.add_column("probability", justify="right")
    table.add_column("log-probability", justify="right")
    for rank, (candidate, log_prob) in enumerate(ranked, 1):
        table.add_row(str(rank), Text(candidate), f"{math.exp(log_prob):.4g}", f"{log_prob:.4f}")
    return table

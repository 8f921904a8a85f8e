"""`lstm-lm eval-agreement`: the library function the command line calls. One call does one of: draw a saved
report, write the built-in suite, probe a prefix, or evaluate a run on test files or the built-in suite."""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console

from ..atomic import atomic_write_text
from ..errors import UserError
from ..hardware.device import resolve_device
from ..hardware.precision import resolve_precision
from ..rundir.run_files import load_run
from .evaluate import DEFAULT_BATCH_SIZE, evaluate_suites
from .formats import read_suites
from .items import Skipped
from .plot import load_report, plot_report
from .probe import probe
from .render import print_report, probe_table
from .report import build_report, items_lines
from .suite import builtin_suite
from .suite import write_suite as write_pairs
from .syntaxgym_evaluate import evaluate_gym_suites
from .syntaxgym_report import add_gym_report, gym_items_lines
from .syntaxgym_suite import GymSuite

SHOWN_SKIPPED = 20  # warning lines for malformed items; the report lists every one


def eval_agreement(run_dir: Path | None, paths: list[Path], *, console: Console, warn: Console,
                   format_name: str = "auto", method: str = "auto", skip_oov: bool = False,
                   output: Path | None = None, items: Path | None = None, batch_size: int | None = None,
                   precision: str = "fp32",
                   device: str = "auto", prefix: str | None = None, candidates: str | None = None,
                   write_suite: Path | None = None, plot: Path | None = None, strict: bool = False) -> None:
    """Everything is read and checked, then scored, then written: an error leaves no report behind."""
    if plot is not None:
        if run_dir is None or paths:
            raise UserError("--plot REPORT.json takes one argument, the image to write: "
                            "lstm-lm eval-agreement --plot report.json accuracy.png")
        run_plot(plot, run_dir, console)
        return
    if write_suite is not None:
        suite = builtin_suite()
        write_pairs(write_suite, suite)
        console.print(f"wrote the built-in suite, {len(suite.items):,} pairs, to {write_suite}")
        if run_dir is None:
            return
    if run_dir is None:
        raise UserError("give a run directory: lstm-lm eval-agreement RUN_DIR [FILE_OR_DIR ...]")
    if (prefix is None) != (candidates is None):
        raise UserError("--prefix and --candidates go together: --prefix \"the flights the airline was "
                        "cancelling\" --candidates were,was")
    if prefix is not None:
        if paths:
            raise UserError("--prefix probes a prefix of your own; it takes no test files")
        run_probe(run_dir, prefix, candidates.split(","), device, console, warn)
        return
    run_evaluation(run_dir, paths, format_name, method, skip_oov, output, items,
                   batch_size or DEFAULT_BATCH_SIZE, device, precision, console, warn, strict)


def run_plot(report_path: Path, image: Path, console: Console) -> None:
    plot_report(load_report(report_path), image, report_path)
    console.print(f"wrote {image}")


def run_probe(run_dir: Path, prefix: str, candidates: list[str], device: str, console: Console,
              warn: Console) -> None:
    run = load_run(run_dir, resolve_device(device))
    ranked, unknown = probe(run, prefix, candidates)
    if unknown:
        warn.print(f"warning: not in the vocabulary, read as <unk>: {', '.join(unknown)}", markup=False)
    console.print(probe_table(prefix, ranked))


def run_evaluation(run_dir: Path, paths: list[Path], format_name: str, method: str, skip_oov: bool,
                   output: Path | None, items: Path | None, batch_size: int, device: str, precision: str,
                   console: Console, warn: Console, strict: bool = False) -> None:
    suites = read_suites(paths, format_name, strict) if paths else [builtin_suite()]
    pair_suites = [suite for suite in suites if not isinstance(suite, GymSuite)]
    gym_suites = [suite for suite in suites if isinstance(suite, GymSuite)]
    target = resolve_device(device)
    dtype = resolve_precision(precision, target, "--precision")
    run = load_run(run_dir, target)
    results = evaluate_suites(run, pair_suites, method, skip_oov, batch_size, dtype, strict)
    gym_results = evaluate_gym_suites(run, gym_suites, skip_oov, batch_size, dtype)
    warn_skipped(warn, [entry for result in results for entry in result.skipped])
    report = add_gym_report(build_report(str(run_dir), results), gym_results)
    if output is not None:
        atomic_write_text(output, json.dumps(report, indent=2) + "\n")
    if items is not None:
        atomic_write_text(items, items_lines(results) + gym_items_lines(gym_results))
    print_report(console, report)


def warn_skipped(warn: Console, skipped: list[Skipped]) -> None:
    """One line per malformed item skipped, naming its file and line, the first SHOWN_SKIPPED of them."""
    for entry in skipped[:SHOWN_SKIPPED]:
        warn.print(f"warning: skipped {entry.where}: {entry.reason}", markup=False)
    if len(skipped) > SHOWN_SKIPPED:
        warn.print(f"warning: ... and {len(skipped) - SHOWN_SKIPPED:,} more malformed items skipped (--output "
                   f"lists them all)", markup=False)

"""Do LSTMs carry information further than plain RNNs? Train each cell on the same tokens with the same budget and
about the same parameter count, then measure

  1. gradient flow: the norm of d loss_t / d h_{t-k} for k = 1 ... 100 (h: every layer's hidden state), averaged
     over windows of validation text, relative to k = 1: the vanishing-gradient curve;
  2. agreement: the built-in suite's accuracy against controller-target distance and attractor count.

Writes into --docs: long-range-gradients.png, long-range-agreement.png, and the tables of long-range-study.md
between its markers (the text around them is a person's reading of the numbers, left as it is). Runs go to --out.

Run: OMP_NUM_THREADS=1 python scripts/long_range_study.py [--config FILE] [--cells a,b,...] [--reuse]
                                                           [section.key=value ...]
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import sys
from pathlib import Path
from typing import Any

import torch
from rich.console import Console

REPO = Path(__file__).resolve().parent.parent

from lstm_lm.agreement.evaluate import evaluate_suites
from lstm_lm.agreement.items import Suite
from lstm_lm.agreement.plot import plot_report
from lstm_lm.agreement.report import suite_report
from lstm_lm.agreement.suite import builtin_suite
from lstm_lm.atomic import atomic_write_bytes, atomic_write_text
from lstm_lm.config import Config, load_config
from lstm_lm.data.batches import batchify
from lstm_lm.data.corpus import load_corpus
from lstm_lm.model.language_model import LanguageModel, runs_layer_by_layer
from lstm_lm.model.sizing import matched_hidden_size, recurrent_parameters
from lstm_lm.rundir.layout import RUN_INFO
from lstm_lm.rundir.run_files import load_run
from lstm_lm.train.run_training import train

CELLS = ("rnn_tanh", "gru", "lstm", "lstm_peephole", "lstm_coupled")
REFERENCE_CELL = "lstm"  # the cell whose recurrent parameter count the others match
GRADIENT_STREAMS = 32  # columns of validation text read side by side when measuring gradient flow
WARM_UP = 30  # tokens read before each gradient window, so that it starts from a state the text has shaped
RATIO_DISTANCES = (10, 50, 100)
ATTRACTORS = (0, 1, 2)
DISTANCES = ("1", "2-3", "4-5", "6-8", "9-12")  # report.DISTANCE_BUCKETS that the built-in suite fills
START, END = "<!-- long-range-study:start -->\n", "<!-- long-range-study:end -->"


# ---- models of about the same size -----------------------------------------------------------------------------------

def cell_configs(base: Config, cells: list[str]) -> dict[str, Config]:
    target = recurrent_parameters(dataclasses.replace(base.model, cell=REFERENCE_CELL))
    configs = {}
    for cell in cells:
        model = dataclasses.replace(base.model, cell=cell)
        if cell != REFERENCE_CELL:
            model = dataclasses.replace(model, hidden_size=matched_hidden_size(model, target))
        configs[cell] = dataclasses.replace(base, model=model)
    return configs


# ---- the measurements ----------------------------------------------------------------------------------------------

def gradient_norms(model: LanguageModel, ids: torch.Tensor, max_distance: int, windows: int) -> list[float]:
    """Mean over windows of ||d loss_t / d h_{t-k}|| for k = 1 ... max_distance (item k - 1). loss_t is the negative
    log-likelihood of the token after token t; h_{t-k} holds every layer's hidden state after token t-k; each
    stream of validation text gives one window per pass, its loss depending only on its own states."""
    model.eval()
    streams = batchify(ids, GRADIENT_STREAMS)  # (N, S)
    span = WARM_UP + max_distance + 2  # warm-up, the window's max_distance + 1 states, the target
    starts = range(0, streams.size(0) - span, max(1, (streams.size(0) - span) // windows))[:windows]
    totals = torch.zeros(max_distance, dtype=torch.float64)
    for start in starts:
        with torch.no_grad():
            _, state = model(streams[start: start + WARM_UP], model.init_hidden(GRADIENT_STREAMS))
        hidden_states = []  # the state each step reads, each (num_layers, S, H): the warm-up's, then h_{t-k}
        for position in range(start + WARM_UP, start + WARM_UP + max_distance + 1):  # the last one is token t
            hidden_states.append(state[0])
            output, state = model.rnn(model.embedding(streams[position: position + 1]), state)  # (1, S, H)
        target = streams[start + WARM_UP + max_distance + 1]  # (S,)
        loss = -model.target_log_probs(model.output_features(output[0]), target).sum()
        gradients = torch.autograd.grad(loss, hidden_states[1:])  # h_{t-max_distance} ... h_{t-1}
        norms = torch.stack([g.transpose(0, 1).flatten(1).norm(dim=1) for g in reversed(gradients)])  # (k, S)
        totals += norms.double().sum(dim=1)
    return (totals / (len(starts) * GRADIENT_STREAMS)).tolist()


def measure(cell: str, run_dir: Path, info: dict[str, Any], valid_ids: torch.Tensor, suite: Suite,
            max_distance: int, windows: int) -> dict[str, Any]:
    run = load_run(run_dir, torch.device("cpu"))  # the best weights by validation
    [agreement] = evaluate_suites(run, [suite])
    return {"cell": cell, "hidden_size": run.config.model.hidden_size,
            "recurrent_parameters": recurrent_parameters(run.config.model),
            "parameters": info["parameters"], "tokens": info["tokens_seen"], "minutes": info["elapsed_s"] / 60,
            "valid_ppl": info["results"]["valid"]["ppl"], "test_ppl": info["results"]["test"]["ppl"],
            "agreement": suite_report(agreement),
            "gradient_norms": gradient_norms(run.model, valid_ids, max_distance, windows)}


def train_cell(config: Config, run_dir: Path, reuse: bool, console: Console) -> dict[str, Any]:
    """Train one cell, or, with `reuse`, read back a run already finished with this very config."""
    info_path = run_dir / RUN_INFO
    if reuse and info_path.is_file():
        info = json.loads(info_path.read_text(encoding="utf-8"))
        if info.get("status") == "finished" and load_config(run_dir / "config.yaml") == config:
            console.print(f"{run_dir}: reusing the finished run")
            return info
    return train(config, run_dir, force=True, console=console)


# ---- plots and tables ----------------------------------------------------------------------------------------------

def plot_gradients(results: list[dict[str, Any]], image: Path) -> None:
    from matplotlib.figure import Figure  # no pyplot: no global state, no display needed

    figure = Figure(figsize=(6.5, 4), layout="constrained")
    axis = figure.subplots()
    for result in results:
        norms = result["gradient_norms"]
        axis.semilogy(range(1, len(norms) + 1), [norm / norms[0] for norm in norms], label=result["cell"])
    axis.set_xlabel("k: steps between the hidden state and the loss")
    axis.set_ylabel(r"$\|\partial L_t / \partial h_{t-k}\|$, relative to k = 1")
    axis.legend(fontsize="small")
    axis.grid(True, which="major", alpha=0.3)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=150)
    atomic_write_bytes(image, buffer.getvalue())


def group(report: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    return next(entry for entry in report["groups"] if entry["key"] == key and entry["value"] == value)


def percent(entry: dict[str, Any]) -> str:
    return f"{100 * entry['accuracy']:.1f}" if entry["n"] else "–"


def row(*cells: Any) -> str:
    return "| " + " | ".join(str(cell) for cell in cells) + " |"


def header(*names: str) -> list[str]:
    return [row(*names), "| --- |" + " ---: |" * (len(names) - 1)]


def setup_text(results: list[dict[str, Any]], config: Config, config_path: Path, vocab_size: int) -> str:
    train_config, model = config.train, config.model
    shown = config_path.resolve().relative_to(REPO) if config_path.resolve().is_relative_to(REPO) else config_path
    return (
        f"Generated by `scripts/long_range_study.py` from `{shown}`. Corpus: `{config.data.path}` (words, "
        f"vocabulary {vocab_size:,}). Budget per cell: {results[0]['tokens']:,} "
        f"training tokens ({train_config.max_steps:,} steps of {train_config.batch_size}×{train_config.bptt}), the "
        f"same tokens in the same order for every cell, seed {train_config.seed}. Model: {model.num_layers} layer, "
        f"embedding {model.embedding_size}, output layer tied to the embedding (with a projection to "
        f"{model.embedding_size} where the hidden size differs), adaptive softmax {model.adaptive_cutoffs}, "
        f"dropout {model.dropout:g}; {train_config.optimizer} lr {train_config.lr:g}, clip {train_config.clip:g}, "
        f"{train_config.lr_schedule} schedule. Each cell's hidden size is the one that brings its recurrent layers "
        f"nearest the {REFERENCE_CELL}'s parameter count; the rest of the model differs only by the projection. "
        f"Perplexities are those of the best weights by "
        f"validation; minutes are training wall time on one thread of a shared 2-core CPU.")


def models_table(results: list[dict[str, Any]]) -> list[str]:
    return [*header("cell", "hidden", "recurrent params", "all params", "tokens", "minutes", "valid ppl",
                    "test ppl"),
            *(row(r["cell"], r["hidden_size"], f"{r['recurrent_parameters']:,}", f"{r['parameters']:,}",
                  f"{r['tokens']:,}", f"{r['minutes']:.1f}", f"{r['valid_ppl']:.1f}", f"{r['test_ppl']:.1f}")
              for r in results)]


def agreement_tables(results: list[dict[str, Any]]) -> list[str]:
    first = results[0]["agreement"]
    columns = [("attractors", a, f"{a} attr.") for a in ATTRACTORS] + [("distance", d, f"d {d}") for d in DISTANCES]
    conditions = [entry["value"] for entry in first["groups"] if entry["key"] == "condition"]
    return [
        f"Agreement: the built-in suite ({first['n']:,} pairs, the target method), accuracy in percent overall, by "
        f"number of attractors and by distance from controller to target in words (n: pairs in the column).",
        "",
        *header("cell", f"overall (n={first['n']})",
                *(f"{label} (n={group(first, key, value)['n']})" for key, value, label in columns)),
        *(row(r["cell"], percent(r["agreement"]), *(percent(group(r["agreement"], key, value))
                                                    for key, value, _ in columns)) for r in results),
        "",
        "By construction (accuracy in percent):",
        "",
        *header("construction", *(r["cell"] for r in results)),
        *(row(condition, *(percent(group(r["agreement"], "condition", condition)) for r in results))
          for condition in conditions),
    ]


def gradient_table(results: list[dict[str, Any]]) -> list[str]:
    distances = [k for k in RATIO_DISTANCES if k <= len(results[0]["gradient_norms"])]
    return [
        f"Gradient flow: the norm of d loss_t / d h_{{t-k}} (h: every layer's hidden state), averaged over "
        f"{GRADIENT_STREAMS} streams of validation text × a few windows each, relative to k = 1.",
        "",
        *header("cell", "norm at k = 1", *(f"ratio k = {k}" for k in distances)),
        *(row(r["cell"], f"{r['gradient_norms'][0]:.3g}",
              *(f"{r['gradient_norms'][k - 1] / r['gradient_norms'][0]:.2e}" for k in distances)) for r in results),
    ]


def tables(results: list[dict[str, Any]], config: Config, config_path: Path, vocab_size: int) -> str:
    return "\n".join([setup_text(results, config, config_path, vocab_size), "", *models_table(results), "",
                      *agreement_tables(results), "", *gradient_table(results), "",
                      "![gradient flow](long-range-gradients.png)", "",
                      "![agreement by distance and attractors](long-range-agreement.png)", ""])


def write_between_markers(path: Path, block: str) -> None:
    """Replace the text between the markers, or start the file with them."""
    if path.is_file() and START in path.read_text(encoding="utf-8"):
        before, rest = path.read_text(encoding="utf-8").split(START, 1)
        after = rest.split(END, 1)[1]
    else:
        before, after = "# The long-range study\n\n", "\n"
    atomic_write_text(path, before + START + block + END + after)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=REPO / "configs/long-range-study.yaml")
    parser.add_argument("--cells", default=",".join(CELLS), help="comma-separated values of model.cell; the "
                        "others match the recurrent parameter count of the lstm")
    parser.add_argument("--out", type=Path, default=REPO / "runs/long-range-study", help="where the runs go")
    parser.add_argument("--docs", type=Path, default=REPO / "docs", help="where the tables and plots go")
    parser.add_argument("--max-distance", type=int, default=100, help="the largest k of the gradient curve")
    parser.add_argument("--gradient-windows", type=int, default=4, help="windows per validation stream")
    parser.add_argument("--reuse", action="store_true", help="reuse runs already finished with the same config")
    parser.add_argument("overrides", nargs="*", help="section.key=value, applied to every cell's config")
    args = parser.parse_args()
    torch.set_num_threads(1)
    console = Console()
    base = load_config(args.config, args.overrides)
    if runs_layer_by_layer(base.model):
        # The study sizes each cell through model.hidden_size and reads every layer from a (layers, B, H) state.
        sys.exit("the study compares fused stacks: leave model.hidden_sizes, dropout_hidden and weight_drop unset")
    corpus = load_corpus(base.data, base.tokenizer)
    suite = builtin_suite()
    results = []
    for cell, config in cell_configs(base, args.cells.split(",")).items():
        console.print(f"[bold]{cell}[/bold]: hidden size {config.model.hidden_size}")
        info = train_cell(config, args.out / cell, args.reuse, console)
        results.append(measure(cell, args.out / cell, info, corpus.valid, suite, args.max_distance,
                               args.gradient_windows))
    plot_gradients(results, args.docs / "long-range-gradients.png")
    plot_report({"suites": [{"name": r["cell"], "groups": r["agreement"]["groups"]} for r in results]},
                args.docs / "long-range-agreement.png", args.docs / "long-range-study.md")
    block = tables(results, base, args.config, corpus.tokenizer.vocab_size)
    write_between_markers(args.docs / "long-range-study.md", block)
    console.print(f"wrote {args.docs / 'long-range-study.md'} and its plots")


if __name__ == "__main__":
    main()

"""Do gated cells carry a verb's agreement further than a plain RNN? The long-range study on the synthetic grammar
(lstm_lm/agreement/synthetic_grammar.py), where only the subject predicts the verb's number, across 1 ... 50 words.

Each cell (rnn_tanh, gru, lstm, lstm_peephole, lstm_coupled, and the LSTM with model.forget_bias=1) is trained with
several seeds on the same corpus, the same tokens in the same order, the same budget and the same number of
recurrent parameters. For every run, at every kept checkpoint (step 0 and every 200 steps) and at the end:

  1. agreement: accuracy on the corpus's test pairs by exact distance and by attractor count;
  2. gradient: ||d loss_verb / d h_subject|| by distance, where loss_verb = -log p(the right verb form) after the
     grammatical prefix and h_subject is the hidden state (h, every layer) just after the subject noun; also the
     gradient of the decision, log p(right form) - log p(wrong form), which does not fade as the model grows sure.

Then the mean over seeds with 95% t-intervals, two figures and the tables of docs/long-range-study.md between its
markers (the reading around them is a person's). Runs, the corpus and each run's measurements go to --out.

Run: python scripts/synthetic_agreement_study.py [--jobs 2] [--seeds 1,2,3] [--reuse] [section.key=value ...]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import torch
from rich.console import Console

REPO = Path(__file__).resolve().parent.parent

from lstm_lm.agreement.evaluate import evaluate_suites
from lstm_lm.agreement.formats import read_suites
from lstm_lm.agreement.items import Suite
from lstm_lm.agreement.report import suite_report
from lstm_lm.agreement.synthetic_corpus import META_FILE, PAIRS_FILE, write_corpus
from lstm_lm.agreement.synthetic_grammar import probe_distances
from lstm_lm.atomic import atomic_write_text
from lstm_lm.config import Config, load_config
from lstm_lm.data.corpus import load_corpus
from lstm_lm.evaluate.figures import new_figure, save_figure
from lstm_lm.hardware.machine import cpu_description
from lstm_lm.model.language_model import LanguageModel, runs_layer_by_layer
from lstm_lm.model.sizing import matched_hidden_size, recurrent_parameters
from lstm_lm.rundir.checkpoint import checkpoint_files, load_model_weights, load_tensors
from lstm_lm.rundir.layout import RUN_INFO
from lstm_lm.rundir.run_files import LoadedRun, load_run
from lstm_lm.train.run_training import train

# name -> model settings on top of the shared config; every other one matches the lstm's recurrent parameters
VARIANTS = {"rnn_tanh": {"cell": "rnn_tanh"}, "gru": {"cell": "gru"}, "lstm": {"cell": "lstm"},
            "lstm_peephole": {"cell": "lstm_peephole"}, "lstm_coupled": {"cell": "lstm_coupled"},
            "lstm_forget_bias_1": {"cell": "lstm", "forget_bias": 1.0}}
REFERENCE_CELL = "lstm"
CORPUS_SEED = 0
MAX_DISTANCE = 50
TABLE_DISTANCES = (1, 2, 5, 10, 20, 30, 50)
LONG = (20, 30, 40, 50)  # the distances the learning-curve columns average
LEARNED = 0.9  # the accuracy at which the tables count a distance as learned
CONTEXT_SENTENCES = 20  # held-out sentences read before each pair for the primed accuracy
# t quantiles for two-sided 95% intervals, by degrees of freedom; 1.96 beyond
T_975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228}
MEASURES_FILE = "study-measures.json"  # in each run directory
TIMING_FILE = "study-time.json"  # in --out: the wall time of the last study that trained every run
MEASURE_VERSION = 3  # bump when what measure_run computes changes: --reuse measures again
START, END = "<!-- synthetic-agreement-study:start -->\n", "<!-- synthetic-agreement-study:end -->"


# ---- configs: the same recurrent parameter count for every cell ----------------------------------------------------

def variant_configs(base: Config, names: list[str], seeds: list[int]) -> dict[tuple[str, int], Config]:
    target = recurrent_parameters(dataclasses.replace(base.model, cell=REFERENCE_CELL))
    configs = {}
    for name in names:
        model = dataclasses.replace(base.model, **VARIANTS[name])
        if model.cell != REFERENCE_CELL:
            model = dataclasses.replace(model, hidden_size=matched_hidden_size(model, target))
        for seed in seeds:
            configs[name, seed] = dataclasses.replace(base, model=model,
                                                      train=dataclasses.replace(base.train, seed=seed))
    return configs


# ---- the corpus ----------------------------------------------------------------------------------------------------

def corpus_tokens(config: Config) -> int:
    """Training tokens for the budget and a little more, so that no run reads a sentence twice."""
    train_config = config.train
    return math.ceil(1.02 * train_config.max_steps * train_config.batch_size * train_config.bptt)


def ensure_corpus(directory: Path, train_tokens: int, reuse: bool, console: Console) -> None:
    meta_path = directory / META_FILE
    if reuse and meta_path.is_file():
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if (meta["seed"], meta["train_tokens_requested"], meta["max_distance"]) == (CORPUS_SEED, train_tokens,
                                                                                     MAX_DISTANCE):
            console.print(f"{directory}: reusing the corpus")
            return
    meta = write_corpus(directory, CORPUS_SEED, train_tokens, MAX_DISTANCE)
    console.print(f"wrote {directory}: {meta['splits']['train']['tokens']:,} training tokens, "
                  f"{meta['pairs']['count']:,} pairs")


# ---- the measurements ----------------------------------------------------------------------------------------------

def agreement(run: LoadedRun, suite: Suite) -> dict[str, dict[str, Any]]:
    """Accuracy by exact distance (the pairs' UID, distance_NN: the report's condition), by attractor count, and
    by both (the subcondition, attractors_K, nested in its condition): {"3": {"0": accuracy, ...}, ...}."""
    [result] = evaluate_suites(run, [suite], method="target")  # each pair ends at its verb: the two forms alone
    found: dict[str, dict[str, Any]] = {"distance": {}, "attractors": {}, "distance_attractors": {}}

    def distance(condition: str) -> str:
        return str(int(condition.removeprefix("distance_")))

    for group in suite_report(result)["groups"]:
        if group["key"] == "condition":
            found["distance"][distance(group["value"])] = group["accuracy"]
        elif group["key"] == "attractors":
            found["attractors"][str(group["value"])] = group["accuracy"]
        elif group["key"] == "subcondition":
            found["distance_attractors"].setdefault(distance(group["condition"]), {})[
                group["value"].removeprefix("attractors_")] = group["accuracy"]
    return found


Rows = dict[int, tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]]


def pair_rows(pairs: list[dict[str, Any]], run: LoadedRun) -> Rows:
    """distance -> (ids (T, B): the boundary token, then the words through the last of the gap; right verb (B,);
    wrong verb (B,); attractors (B,)): the test pairs' grammatical prefixes grouped by distance, which gives them
    all one length."""
    tokenizer = run.tokenizer
    rows: dict[int, list[tuple[list[int], int, int, int]]] = {}
    for pair in pairs:
        words, wrong = pair["sentence_good"].split(), pair["sentence_bad"].split()
        if pair["subject_index"] != 1 or pair["verb_index"] != len(words) - 1:
            raise ValueError(f"pair {pair['pairID']}: expected the subject at word 1 and the verb last")
        ids = [tokenizer.boundary_id, *(tokenizer.encode(word)[0] for word in words)]
        rows.setdefault(pair["distance"], []).append((ids[:-1], ids[-1], tokenizer.encode(wrong[-1])[0],
                                                      pair["attractors"]))
    return {distance: (torch.tensor([entry[0] for entry in found]).t(),
                       *(torch.tensor([entry[k] for entry in found]) for k in (1, 2, 3)))
            for distance, found in sorted(rows.items())}


@torch.inference_mode()
def primed_agreement(run: LoadedRun, rows: Rows, context: list[int]) -> dict[str, dict[str, float]]:
    """Accuracy by distance and attractors with every pair read after `context` (sentences of held-out text),
    from the state they leave rather than from zeros: in training the state at a sentence's start is always the
    one the sentences before it left, never zeros."""
    model = run.model
    _, state = model.rnn(model.embed(torch.tensor(context)[:, None]), None)  # (layers, 1, H) each
    correct: dict[str, dict[str, list[bool]]] = {"distance": {}, "attractors": {}}
    for distance, (ids, good, bad, attractors) in rows.items():
        start = tuple(part.expand(-1, ids.size(1), -1).contiguous() for part in state)
        output, _ = model.rnn(model.embed(ids), start)  # (T, B, H)
        log_probs = model.next_token_log_probs(model.output_features(output[-1]))  # (B, V)
        right = (log_probs.gather(1, good[:, None]) > log_probs.gather(1, bad[:, None]))[:, 0].tolist()
        correct["distance"][str(distance)] = right
        for count, hit in zip(attractors.tolist(), right):
            correct["attractors"].setdefault(str(count), []).append(hit)
    return {kind: {key: sum(hits) / len(hits) for key, hits in sorted(found.items(), key=lambda kv: int(kv[0]))}
            for kind, found in correct.items()}


def context_ids(run: LoadedRun, corpus_dir: Path) -> list[int]:
    """The first CONTEXT_SENTENCES sentences of valid.txt, each with its boundary token, the last one left off
    (each pair row starts with it)."""
    lines = (corpus_dir / "valid.txt").read_text(encoding="utf-8").splitlines()[:CONTEXT_SENTENCES]
    ids = [i for line in lines for i in (*run.tokenizer.encode(line), run.tokenizer.boundary_id)]
    return ids[:-1]


def subject_gradients(model: LanguageModel, ids: torch.Tensor, good: torch.Tensor,
                      bad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B,) ||d loss / d h_subject|| and (B,) ||d margin / d h_subject|| for rows of one length. The prefix through
    the subject (boundary, determiner, noun) runs without a graph; its h (every layer) becomes the leaf, the LSTM
    cells' c goes on as a constant (h still reaches the loss through the later c's); the gap runs from there, and
    its last output predicts the verb. Each row's loss depends on its own leaf alone, so one backward serves all."""
    with torch.no_grad():
        _, state = model.rnn(model.embed(ids[:3]), None)  # (3, B): <eos> Det N
    leaf = state[0].detach().clone().requires_grad_(True)  # (layers, B, H)
    output, _ = model.rnn(model.embed(ids[3:]), (leaf, *state[1:]))  # (L, B, H): the gap
    log_probs = model.next_token_log_probs(model.output_features(output[-1]))  # (B, V)
    right, wrong = log_probs.gather(1, good[:, None])[:, 0], log_probs.gather(1, bad[:, None])[:, 0]
    loss_grad, = torch.autograd.grad(-right.sum(), leaf, retain_graph=True)
    margin_grad, = torch.autograd.grad((right - wrong).sum(), leaf)
    return tuple(grad.transpose(0, 1).flatten(1).norm(dim=1).double() for grad in (loss_grad, margin_grad))


def geometric_mean(values: torch.Tensor) -> float:
    return math.exp(values.clamp_min(1e-300).log().mean().item())


def gradients(run: LoadedRun, rows: Rows) -> dict[str, dict[str, float]]:
    """By distance: the geometric mean over the pairs of each norm (they spread over orders of magnitude)."""
    found: dict[str, dict[str, float]] = {"loss": {}, "margin": {}}
    for distance, (ids, good, bad, _) in rows.items():
        loss_norms, margin_norms = subject_gradients(run.model, ids, good, bad)
        found["loss"][str(distance)] = geometric_mean(loss_norms)
        found["margin"][str(distance)] = geometric_mean(margin_norms)
    return found


def checkpoint_runs(run: LoadedRun) -> list[tuple[int, LoadedRun]]:
    """(step, the run with that checkpoint's weights) for every checkpoint kept, oldest first."""
    found = []
    for path in checkpoint_files(run.directory):
        state = load_tensors(path)
        model = LanguageModel(run.config.model, run.tokenizer.vocab_size)
        load_model_weights(model, state["model"], path)
        model.eval()
        found.append((int(state["trainer"]["step"]), dataclasses.replace(run, model=model)))
    return sorted(found, key=lambda entry: entry[0])


def measure_run(run_dir: Path, pairs_path: Path) -> dict[str, Any]:
    run = load_run(run_dir, torch.device("cpu"))  # the best weights by validation: here the last ones
    suite = read_suites([pairs_path])[0]
    pairs = [json.loads(line) for line in pairs_path.read_text(encoding="utf-8").splitlines() if line.strip()]
    rows = pair_rows(pairs, run)
    context = context_ids(run, pairs_path.parent)
    along = [{"step": step, "tokens": step * run.config.train.batch_size * run.config.train.bptt,
              "agreement": agreement(at, suite), "primed": primed_agreement(at, rows, context),
              "gradients": gradients(at, rows)}
             for step, at in checkpoint_runs(run)]
    info = run.info
    return {"version": MEASURE_VERSION, "hidden_size": run.config.model.hidden_size,
            "recurrent_parameters": recurrent_parameters(run.config.model), "parameters": info["parameters"],
            "tokens": info["tokens_seen"], "train_minutes": info["elapsed_s"] / 60,
            "valid_ppl": info["results"]["valid"]["ppl"], "test_ppl": info["results"]["test"]["ppl"],
            "agreement": agreement(run, suite), "primed": primed_agreement(run, rows, context),
            "gradients": gradients(run, rows), "along": along}


def train_and_measure(config: Config, run_dir: Path, pairs_path: Path, reuse: bool, threads: int) -> dict[str, Any]:
    """One run, in a worker process: trained (or, with `reuse`, a finished run with this very config read back),
    then measured (or its measurements read back, when they are of this version and this training)."""
    torch.set_num_threads(threads)
    info_path, measures_path = run_dir / RUN_INFO, run_dir / MEASURES_FILE
    finished = (reuse and info_path.is_file() and json.loads(info_path.read_text(encoding="utf-8")).get("status")
                == "finished" and load_config(run_dir / "config.yaml") == config)
    if not finished:
        run_dir.mkdir(parents=True, exist_ok=True)
        with open(run_dir / "train.log", "w", encoding="utf-8") as log:
            train(config, run_dir, force=True, console=Console(file=log, width=120))
    elif measures_path.is_file():
        measures = json.loads(measures_path.read_text(encoding="utf-8"))
        if measures.get("version") == MEASURE_VERSION:
            return {**measures, "reused": True}
    measures = measure_run(run_dir, pairs_path)
    atomic_write_text(measures_path, json.dumps(measures, indent=1) + "\n")
    return {**measures, "reused": finished}


# ---- over seeds ----------------------------------------------------------------------------------------------------

def mean_interval(values: list[float], proportion: bool = True) -> tuple[float, float, float]:
    """(mean, low, high): the 95% t-interval of the mean over seeds, kept inside [0, 1] for a proportion; (v, v, v)
    for one seed."""
    n = len(values)
    mean = sum(values) / n
    if n == 1:
        return mean, mean, mean
    half = T_975.get(n - 1, 1.96) * math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1) / n)
    return (mean, max(0.0, mean - half), min(1.0, mean + half)) if proportion else (mean, mean - half, mean + half)


def geometric_summary(values: list[float]) -> tuple[float, float, float]:
    """(geometric mean, lowest, highest) over seeds."""
    return math.exp(sum(math.log(max(v, 1e-300)) for v in values) / len(values)), min(values), max(values)


def long_accuracy(distances: dict[str, float]) -> float:
    return sum(distances[str(d)] for d in LONG) / len(LONG)


def tokens_to_learn(run: dict[str, Any], measure: str = "agreement") -> dict[str, int | None]:
    """The training tokens of the first checkpoint at LEARNED accuracy or more, at distance 1 and on the long
    pairs (None: not within the budget), by the fresh-state measure (`agreement`) or the primed one."""
    def first(test) -> int | None:
        return next((entry["tokens"] for entry in run["along"] if test(entry[measure]["distance"])), None)

    return {"short": first(lambda distances: distances["1"] >= LEARNED),
            "long": first(lambda distances: long_accuracy(distances) >= LEARNED)}


def accuracy_summary(agreements: list[dict[str, dict[str, float]]]) -> dict[str, Any]:
    """By distance and by attractors: the mean over seeds and its interval."""
    return {kind: {key: mean_interval([found[kind][key] for found in agreements]) for key in agreements[0][kind]}
            for kind in ("distance", "attractors")}


def summarize(name: str, runs: list[dict[str, Any]], midway: int) -> dict[str, Any]:
    """The runs of one cell over seeds; `midway` is the step of the checkpoint the mid-training tables show."""
    first = runs[0]
    steps = [entry["step"] for entry in first["along"]]
    middle = steps.index(midway)
    return {
        "name": name, "seeds": len(runs), "hidden_size": first["hidden_size"],
        "recurrent_parameters": first["recurrent_parameters"], "parameters": first["parameters"],
        "tokens": first["tokens"], "train_minutes": [r["train_minutes"] for r in runs],
        "valid_ppl": mean_interval([r["valid_ppl"] for r in runs], proportion=False),
        "accuracy": accuracy_summary([r["agreement"] for r in runs]),
        "midway": {"step": midway, "tokens": first["along"][middle]["tokens"],
                   "accuracy": accuracy_summary([r["along"][middle]["agreement"] for r in runs])},
        "tokens_to_learn": [tokens_to_learn(r) for r in runs],
        "primed": accuracy_summary([r["primed"] for r in runs]),
        # trained, by distance, the pairs with no attractor and those with the most (3, where there is room)
        "by_attractors": {count: {d: mean_interval([r["agreement"]["distance_attractors"][d][count] for r in runs])
                                  for d in first["agreement"]["distance_attractors"]
                                  if count in first["agreement"]["distance_attractors"][d]}
                          for count in ("0", "3")},
        "primed_midway": accuracy_summary([r["along"][middle]["primed"] for r in runs]),
        "primed_tokens_to_learn": [tokens_to_learn(r, "primed") for r in runs],
        "gradients": {kind: {key: geometric_summary([r["gradients"][kind][key] for r in runs])
                             for key in first["gradients"][kind]} for kind in ("loss", "margin")},
        # accuracy on the long pairs (distances LONG, averaged) along training, and the gradients there
        "along": [{"step": step, "tokens": first["along"][i]["tokens"],
                   "long_accuracy": mean_interval([long_accuracy(r["along"][i]["agreement"]["distance"])
                                                   for r in runs]),
                   "long_by_seed": [long_accuracy(r["along"][i]["agreement"]["distance"]) for r in runs],
                   "short_accuracy": mean_interval([r["along"][i]["agreement"]["distance"]["1"] for r in runs]),
                   "gradients": {kind: {key: geometric_summary([r["along"][i]["gradients"][kind][key]
                                                                for r in runs])
                                        for key in first["along"][i]["gradients"][kind]}
                                 for kind in ("loss", "margin")}}
                  for i, step in enumerate(steps)],
    }


# ---- figures -------------------------------------------------------------------------------------------------------

def plot_agreement(summaries: list[dict[str, Any]], image: Path) -> None:
    """Accuracy against distance and against attractors, trained (one line per cell, its 95% interval over seeds as
    a band), and long-range accuracy along training (the mean thick, each seed thin); the 50% chance level dashed."""
    figure = new_figure(13.5, 4.0)
    by_distance, by_attractors, along = figure.subplots(1, 3, sharey=True)
    for index, summary in enumerate(summaries):
        colour = f"C{index}"
        for axis, kind in ((by_distance, "distance"), (by_attractors, "attractors")):
            points = sorted((int(key), value) for key, value in summary["accuracy"][kind].items())
            xs = [x for x, _ in points]
            axis.plot(xs, [v[0] for _, v in points], marker="o", markersize=3, color=colour, label=summary["name"])
            axis.fill_between(xs, [v[1] for _, v in points], [v[2] for _, v in points], color=colour, alpha=0.15)
        xs = [entry["tokens"] / 1e6 for entry in summary["along"]]
        along.plot(xs, [entry["long_accuracy"][0] for entry in summary["along"]], marker="o", markersize=3,
                   color=colour, label=summary["name"])
        for seed in range(summary["seeds"]):  # each seed thin: with 3 seeds a t-band here covers everything
            along.plot(xs, [entry["long_by_seed"][seed] for entry in summary["along"]], color=colour,
                       linewidth=0.6, alpha=0.5)
    by_distance.set_xscale("log")
    by_distance.set_xticks(probe_distances(MAX_DISTANCE), [str(d) for d in probe_distances(MAX_DISTANCE)])
    by_distance.set_xlabel("distance: words between subject and verb")
    by_distance.set_title("trained, by distance", fontsize="medium")
    by_attractors.set_xticks(range(4))
    by_attractors.set_xlabel("attractors (nouns of the other number in the gap)")
    by_attractors.set_title("trained, by attractors", fontsize="medium")
    along.set_xlabel("training tokens (millions)")
    along.set_title(f"along training, at distances {', '.join(map(str, LONG))}", fontsize="medium")
    by_distance.set_ylabel(f"agreement accuracy (mean of {summaries[0]['seeds']} seeds, 95% band)")
    for axis in (by_distance, by_attractors, along):
        axis.axhline(0.5, color="grey", linestyle="--", linewidth=1)
        axis.set_ylim(0.3, 1.02)
        axis.grid(True, alpha=0.3)
    by_distance.legend(loc="lower left", fontsize="small")
    save_figure(figure, image, dpi=150)


def plot_gradients(summaries: list[dict[str, Any]], image: Path) -> None:
    """||d loss_verb / d h_subject|| against distance, early in training and at the end, and the decision's
    gradient at the end: the geometric mean over seeds, the band from the lowest seed to the highest."""
    figure = new_figure(13.5, 4.0)
    early, final, margin = figure.subplots(1, 3, sharey=True)
    panels = ((early, lambda s: s["along"][0]["gradients"]["loss"], f"loss gradient, {moment(summaries)}"),
              (final, lambda s: s["gradients"]["loss"], "loss gradient, trained"),
              (margin, lambda s: s["gradients"]["margin"], "decision (log-odds) gradient, trained"))
    for axis, pick, title in panels:
        for index, summary in enumerate(summaries):
            points = sorted((int(key), value) for key, value in pick(summary).items())
            xs = [x for x, _ in points]
            axis.semilogy(xs, [v[0] for _, v in points], marker="o", markersize=3, color=f"C{index}",
                          label=summary["name"])
            axis.fill_between(xs, [v[1] for _, v in points], [v[2] for _, v in points], color=f"C{index}",
                              alpha=0.15)
        axis.set_title(title, fontsize="medium")
        axis.set_xlabel("distance: words between subject and verb")
        axis.grid(True, which="major", alpha=0.3)
    early.set_ylabel(r"$\|\partial L_{verb} / \partial h_{subject}\|$ (geometric mean)")
    early.legend(loc="lower left", fontsize="small")
    save_figure(figure, image, dpi=150)


# ---- tables --------------------------------------------------------------------------------------------------------

def moment(summaries: list[dict[str, Any]]) -> str:
    """When the first measurement along training was made: at initialization (the checkpoint of step 0)."""
    step = summaries[0]["along"][0]["step"]
    return "at initialization" if step == 0 else f"after {step} steps"


def row(*cells: Any) -> str:
    return "| " + " | ".join(str(cell) for cell in cells) + " |"


def header(*names: str) -> list[str]:
    return [row(*names), "| --- |" + " ---: |" * (len(names) - 1)]


def interval(value: tuple[float, float, float]) -> str:
    mean, low, high = (100 * v for v in value)
    return f"{mean:.1f}" if high - low < 0.05 else f"{mean:.1f} [{low:.1f}, {high:.1f}]"


def setup_text(summaries: list[dict[str, Any]], config: Config, seeds: list[int], meta: dict[str, Any],
               timing_record: dict[str, Any] | None) -> str:
    train_config, model = config.train, config.model
    timing = (f" The whole study (corpus, {len(summaries) * len(seeds)} trainings, measurements, figures) took "
              f"{timing_record['minutes']:.1f} minutes of wall time on {timing_record['cores']} cores of "
              f"{timing_record['cpu']}, {timing_record['jobs']} runs at a time with {timing_record['threads']} "
              f"torch thread(s) each, on a machine shared with other work." if timing_record else "")
    return (
        f"Generated by `scripts/synthetic_agreement_study.py` from `configs/synthetic-agreement-study.yaml`. "
        f"Corpus: the synthetic grammar, seed {meta['seed']}, {meta['splits']['train']['tokens']:,} training "
        f"tokens, gaps of 1–{meta['max_distance']} words with P(L) ∝ 1/L, vocabulary {meta['vocabulary']} words; "
        f"test pairs: {meta['pairs']['count']:,}, 200 per distance, 0–3 attractors. Budget per run: "
        f"{summaries[0]['tokens']:,} tokens ({train_config.max_steps:,} steps of {train_config.batch_size}×"
        f"{train_config.bptt}, under one pass), the same tokens in the same order for every run; seeds "
        f"{', '.join(map(str, seeds))} (weights only). Model: {model.num_layers} layer, embedding "
        f"{model.embedding_size}, tied output layer (with a projection where the hidden size differs), full softmax, "
        f"no dropout, `model.init={model.init}`; {train_config.optimizer} lr {train_config.lr:g}, clip "
        f"{train_config.clip:g}, {train_config.lr_schedule} schedule. Each cell's hidden size brings its recurrent "
        f"layers nearest the {REFERENCE_CELL}'s parameter count. Accuracies in percent: the mean over seeds and, in "
        f"brackets, its 95% t-interval ({len(seeds) - 1} degrees of freedom; none shown where every seed scored the "
        f"same); the pairs are the same for every seed, so the interval is the seeds' spread alone.{timing}")


def models_table(summaries: list[dict[str, Any]]) -> list[str]:
    return [*header("cell", "hidden", "recurrent params", "all params", "tokens", "train minutes (each seed)",
                    "valid ppl"),
            *(row(s["name"], s["hidden_size"], f"{s['recurrent_parameters']:,}", f"{s['parameters']:,}",
                  f"{s['tokens']:,}", ", ".join(f"{m:.1f}" for m in s["train_minutes"]),
                  f"{s['valid_ppl'][0]:.2f}") for s in summaries)]


def accuracy_tables(summaries: list[dict[str, Any]]) -> list[str]:
    middle = summaries[0]["midway"]
    attractors = sorted(summaries[0]["accuracy"]["attractors"], key=int)
    moments = ((f"halfway, after {middle['tokens'] / 1e6:.2f}M tokens", lambda s: s["midway"]["accuracy"]),
               (f"trained, after {summaries[0]['tokens'] / 1e6:.2f}M tokens", lambda s: s["accuracy"]))
    lines = []
    for label, pick in moments:
        lines += [f"Agreement accuracy by distance (words between subject and verb), {label}:", "",
                  *header("cell", *(f"d = {d}" for d in TABLE_DISTANCES)),
                  *(row(s["name"], *(interval(pick(s)["distance"][str(d)]) for d in TABLE_DISTANCES))
                    for s in summaries), ""]
    for label, pick in moments:
        lines += [f"By attractor count (all distances that can hold them), {label}:", "",
                  *header("cell", *(f"{a} attractor{'s' * (a != '1')}" for a in attractors)),
                  *(row(s["name"], *(interval(pick(s)["attractors"][a]) for a in attractors)) for s in summaries), ""]
    return lines[:-1]


def interference_table(summaries: list[dict[str, Any]]) -> list[str]:
    no_attractor = [d for d in TABLE_DISTANCES if str(d) in summaries[0]["by_attractors"]["0"]]
    most = [d for d in TABLE_DISTANCES if str(d) in summaries[0]["by_attractors"]["3"]]
    return [
        ("Distance and interference apart, trained: accuracy by distance on the pairs with no attractor, then on "
        "those with 3 (where the gap has room for them; a distance's pairs are shared evenly by the attractor counts "
        "it can hold, 50 pairs each from distance 9 on):"), "",
        *header("cell", *(f"0 attr., d = {d}" for d in no_attractor), *(f"3 attr., d = {d}" for d in most)),
        *(row(s["name"], *(interval(s["by_attractors"]["0"][str(d)]) for d in no_attractor),
              *(interval(s["by_attractors"]["3"][str(d)]) for d in most)) for s in summaries),
    ]


def millions(tokens: int | None) -> str:
    """Training tokens in millions for a table cell; None (never reached within the budget) as a dash."""
    return "–" if tokens is None else f"{tokens / 1e6:.2f}"


def learning_table(summaries: list[dict[str, Any]]) -> list[str]:
    along = summaries[0]["along"]

    return [
        (f"Along training: accuracy at distance 1 / at distances {', '.join(map(str, LONG))} (averaged), mean over "
        f"seeds, by training tokens; then, for each seed, the tokens (millions) of the first checkpoint at "
        f"{100 * LEARNED:.0f}% or more (–: not within the budget):"), "",
        *header("cell", *(f"{entry['tokens'] / 1e6:.2f}M" for entry in along), f"{100 * LEARNED:.0f}% at d = 1",
                f"{100 * LEARNED:.0f}% at d ≥ {LONG[0]}"),
        *(row(s["name"], *(f"{100 * e['short_accuracy'][0]:.0f} / {100 * e['long_accuracy'][0]:.0f}"
                           for e in s["along"]),
              ", ".join(millions(seed["short"]) for seed in s["tokens_to_learn"]),
              ", ".join(millions(seed["long"]) for seed in s["tokens_to_learn"])) for s in summaries),
    ]


def primed_table(summaries: list[dict[str, Any]]) -> list[str]:
    middle = summaries[0]["midway"]

    return [
        (f"The same pairs read after {CONTEXT_SENTENCES} held-out sentences (the state they leave, as in training, "
        f"rather than zeros): accuracy by distance halfway ({middle['tokens'] / 1e6:.2f}M tokens) / trained, mean "
        f"over seeds; and each seed's tokens (millions) to {100 * LEARNED:.0f}% at d ≥ {LONG[0]} this way:"), "",
        *header("cell", *(f"d = {d}" for d in TABLE_DISTANCES), f"{100 * LEARNED:.0f}% at d ≥ {LONG[0]}"),
        *(row(s["name"], *(f"{100 * s['primed_midway']['distance'][str(d)][0]:.0f} / "
                           f"{100 * s['primed']['distance'][str(d)][0]:.0f}" for d in TABLE_DISTANCES),
              ", ".join(millions(seed["long"]) for seed in s["primed_tokens_to_learn"])) for s in summaries),
    ]


def gradient_table(summaries: list[dict[str, Any]]) -> list[str]:
    distances = (1, 10, 50)
    early = moment(summaries)

    def ratio(gradient: dict[str, tuple[float, float, float]], d: int) -> str:
        return f"{gradient[str(d)][0] / gradient['1'][0]:.1e}"

    return [
        (f"Gradient: ||d loss_verb / d h_subject|| at distance 1 and its ratio at distances 10 and 50, {early} "
        f"and trained; then the decision's gradient ||d (log p(right) - log p(wrong)) / d h_subject||, "
        f"trained (geometric means over the pairs, then over seeds)."), "",
        *header("cell", f"loss {early}: d = 1", "ratio 10", "ratio 50", "loss, trained: d = 1", "ratio 10",
                "ratio 50", "decision, trained: d = 1", "ratio 10", "ratio 50"),
        *(row(s["name"], *(cell for gradient in (s["along"][0]["gradients"]["loss"], s["gradients"]["loss"],
                                                  s["gradients"]["margin"])
                           for cell in (f"{gradient['1'][0]:.2g}", *(ratio(gradient, d) for d in distances[1:]))))
          for s in summaries),
    ]


def tables(summaries: list[dict[str, Any]], config: Config, seeds: list[int], meta: dict[str, Any],
           timing_record: dict[str, Any] | None) -> str:
    return "\n".join([setup_text(summaries, config, seeds, meta, timing_record), "",
                      *models_table(summaries), "", *accuracy_tables(summaries), "", *interference_table(summaries), "",
                      *learning_table(summaries), "",
                      *primed_table(summaries), "",
                      *gradient_table(summaries), "",
                      "![agreement by distance, by attractors and along training](long-range-agreement-synthetic.png)",
                      "", "![gradient from the verb back to the subject](long-range-gradients-synthetic.png)", ""])


def write_between_markers(path: Path, block: str) -> None:
    """Replace the text between the markers, or put them right after the page's title."""
    text = path.read_text(encoding="utf-8") if path.is_file() else "# The long-range study\n"
    if START in text:
        before, rest = text.split(START, 1)
        after = rest.split(END, 1)[1]
    else:
        title, _, rest = text.partition("\n")
        before, after = title + "\n\n", "\n" + rest
    atomic_write_text(path, before + START + block + END + after)


# ---- the study -----------------------------------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=REPO / "configs/synthetic-agreement-study.yaml")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated, of " + ", ".join(VARIANTS))
    parser.add_argument("--seeds", default="1,2,3", help="comma-separated train.seed values")
    parser.add_argument("--out", type=Path, default=REPO / "runs/synthetic-agreement-study",
                        help="where the corpus, the runs and their measurements go")
    parser.add_argument("--docs", type=Path, default=REPO / "docs", help="where the tables and figures go")
    parser.add_argument("--jobs", type=int, default=2, help="runs at a time, each in its own process")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run")
    parser.add_argument("--reuse", action="store_true", help="reuse the corpus, runs and measurements already "
                        "made with the same settings")
    parser.add_argument("overrides", nargs="*", help="section.key=value, applied to every run's config")
    args = parser.parse_args()
    started = time.perf_counter()
    console = Console()
    names, seeds = args.variants.split(","), [int(seed) for seed in args.seeds.split(",")]
    unknown = [name for name in names if name not in VARIANTS]
    if unknown:
        sys.exit(f"--variants: unknown {', '.join(unknown)}; expected some of {', '.join(VARIANTS)}")
    corpus_dir = (args.out / "corpus").resolve()
    base = load_config(args.config, [f"data.path={corpus_dir}", *args.overrides])
    if runs_layer_by_layer(base.model):
        sys.exit("the study compares fused stacks: leave model.hidden_sizes, dropout_hidden and weight_drop unset")
    ensure_corpus(corpus_dir, corpus_tokens(base), args.reuse, console)
    load_corpus(base.data, base.tokenizer, log=console.print)  # tokenized and cached once, before the workers
    configs = variant_configs(base, names, seeds)
    pairs_path = corpus_dir / PAIRS_FILE
    with ProcessPoolExecutor(args.jobs, mp_context=get_context("spawn")) as pool:
        futures = {key: pool.submit(train_and_measure, config, args.out / f"{key[0]}-seed{key[1]}", pairs_path,
                                    args.reuse, args.threads) for key, config in configs.items()}
        results = {}
        for key, future in futures.items():
            results[key] = future.result()
            console.print(f"{key[0]} seed {key[1]}: hidden {results[key]['hidden_size']}, valid ppl "
                          f"{results[key]['valid_ppl']:.2f}, accuracy at d = 1 / 50: "
                          f"{100 * results[key]['agreement']['distance']['1']:.0f}% / "
                          f"{100 * results[key]['agreement']['distance'][str(MAX_DISTANCE)]:.0f}%")
    midway = base.train.checkpoint_every_steps * round(base.train.max_steps / 2 / base.train.checkpoint_every_steps)
    summaries = [summarize(name, [results[name, seed] for seed in seeds], midway) for name in names]
    atomic_write_text(args.out / "summary.json", json.dumps(summaries, indent=1) + "\n")
    plot_agreement(summaries, args.docs / "long-range-agreement-synthetic.png")
    plot_gradients(summaries, args.docs / "long-range-gradients-synthetic.png")
    meta = json.loads((corpus_dir / META_FILE).read_text(encoding="utf-8"))
    wall_s = time.perf_counter() - started
    timing_path = args.out / TIMING_FILE
    if not any(result["reused"] for result in results.values()):  # a whole study: its time is the study's
        atomic_write_text(timing_path, json.dumps(
            {"minutes": wall_s / 60, "cores": os.cpu_count(), "cpu": cpu_description()["model"], "jobs": args.jobs,
             "threads": args.threads}) + "\n")
    timing_record = json.loads(timing_path.read_text(encoding="utf-8")) if timing_path.is_file() else None
    block = tables(summaries, base, seeds, meta, timing_record)
    write_between_markers(args.docs / "long-range-study.md", block)
    console.print(f"wrote {args.docs / 'long-range-study.md'} and its figures; {wall_s / 60:.1f} minutes")


if __name__ == "__main__":
    main()

"""`lstm-lm evaluate --cache / --dynamic`: perplexity with the neural cache (cache.py), dynamic evaluation
(dynamic.py) or both, their settings given, left at their defaults, or searched on the validation split (`--tune`;
the split reported is never used for choosing unless it is the validation split itself).

Both read the text as one stream (batch 1), as their papers do. With both, the cache mixes over the adapted
model's probabilities and hidden states; the settings are then searched in turn: dynamic evaluation's first,
on its own, then the cache's on the stream it produces.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from ..data.batches import evaluation_layout
from ..errors import UserError, print_warning
from ..rundir.run_files import LoadedRun
from .cache import Stream, cache_losses, read_stream
from .dynamic import DynamicEvaluator, DynamicSettings, gradient_rms
from .perplexity import load_for_scoring, perplexity, text_ids

# AWD-LSTM's PTB cache settings (window 500), used where none are given and --tune is not asked for.
DEFAULT_THETA, DEFAULT_LAMBDA = 0.662, 0.1279
# The search's grid: each θ costs products against the window over the validation split, each λ almost nothing.
# A weak model leans on the cache harder (the 1-hour WikiText-2 model chose θ 1.0 and λ 0.3, the largest of an
# earlier, smaller grid), hence the wide range.
CACHE_THETAS = (0.1, 0.2, 0.3, 0.5, 0.7, 1.0, 1.5, 2.0)
CACHE_LAMBDAS = (0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5)
# Dynamic evaluation at 20 tokens per update. The default is what the search chose for the PTB 1-hour model on the
# first 5,000 tokens of its validation split; the search spans η 1e-5 .. 8e-5 (η 1e-4 made that model worse).
# Both scale with the segment length, as Krause et al.'s do (one step per segment, so the rate per token stays
# the same).
DEFAULT_SEGMENT = 20
DEFAULT_LR, DEFAULT_DECAY = 4e-5, 0.001
DYNAMIC_LRS = (1e-5, 2e-5, 4e-5, 8e-5)
DYNAMIC_DECAYS = (0.001, 0.005, 0.02)
DEFAULT_TRAIN_TOKENS = 100_000  # training text for the gradient statistics
DEFAULT_TUNE_TOKENS = 30_000  # the prefix of the validation split the dynamic search reads (Krause et al.'s fast one)


@dataclass(frozen=True)
class AdaptiveOptions:
    cache: int | None = None  # the window; None: no cache
    cache_theta: float | None = None
    cache_lambda: float | None = None
    dynamic: bool = False
    dynamic_lr: float | None = None
    dynamic_decay: float | None = None
    dynamic_segment: int | None = None
    dynamic_train_tokens: int | None = None
    tune: bool = False
    tune_tokens: int | None = None

    @property
    def wanted(self) -> bool:
        return self.cache is not None or self.dynamic

    def check(self, batch_size: int | None) -> None:
        """One clear line for each combination that cannot be meant."""
        needs = {"--cache-theta": (self.cache_theta, self.cache is not None, "--cache WINDOW"),
                 "--cache-lambda": (self.cache_lambda, self.cache is not None, "--cache WINDOW"),
                 "--dynamic-lr": (self.dynamic_lr, self.dynamic, "--dynamic"),
                 "--dynamic-decay": (self.dynamic_decay, self.dynamic, "--dynamic"),
                 "--dynamic-segment": (self.dynamic_segment, self.dynamic, "--dynamic"),
                 "--dynamic-train-tokens": (self.dynamic_train_tokens, self.dynamic, "--dynamic"),
                 "--tune-tokens": (self.tune_tokens, self.tune and self.dynamic, "--dynamic --tune")}
        for option, (value, present, needed) in needs.items():
            if value is not None and not present:
                raise UserError(f"{option}: only with {needed}")
        if self.tune and not self.wanted:
            raise UserError("--tune: searches the settings of --cache WINDOW or --dynamic; give one of them")
        if self.tune:
            for option, value in (("--cache-theta", self.cache_theta), ("--cache-lambda", self.cache_lambda),
                                  ("--dynamic-lr", self.dynamic_lr), ("--dynamic-decay", self.dynamic_decay)):
                if value is not None:
                    raise UserError(f"{option}: --tune chooses it on the validation split; give one or the other")
        if self.wanted and batch_size is not None:
            raise UserError("--batch-size: the cache and dynamic evaluation read the text as one stream; leave "
                            "--batch-size out")
        if self.cache_lambda is not None and not 0 <= self.cache_lambda < 1:
            raise UserError(f"--cache-lambda {self.cache_lambda}: must be at least 0 and below 1")
        for option, value in (("--cache-theta", self.cache_theta), ("--dynamic-lr", self.dynamic_lr),
                              ("--dynamic-decay", self.dynamic_decay)):
            if value is not None and value < 0:
                raise UserError(f"{option} {value}: must not be negative")


def evaluate_adaptive_run(run_dir: Path, split: str, file: Path | None, device: torch.device,
                          options: AdaptiveOptions, batch_size: int | None = None, precision: str | None = None,
                          warn: Callable[[str], None] = print_warning) -> dict[str, Any]:
    """The report of `lstm-lm evaluate --cache/--dynamic`: the split's numbers with the method, its settings and
    how they were chosen; with --tune the validation split's numbers too and every setting tried."""
    options.check(batch_size)
    started = time.perf_counter()
    run, dtype = load_for_scoring(run_dir, device, precision, warn)
    ids, name = text_ids(run, split, file)
    valid_ids = (ids if name == "valid" else text_ids(run, "valid", None)[0]) if options.tune else None
    scorer = Scorer(run, device, dtype)
    report: dict[str, Any] = {"split": name, "method": method_name(options)}
    settings: dict[str, Any] = {}
    chosen: dict[str, str] = {}
    tuning: dict[str, Any] = {}

    dynamic = None
    if options.dynamic:
        report["gradient_statistics"] = scorer.prepare_dynamic(options.dynamic_segment or DEFAULT_SEGMENT,
                                                               options.dynamic_train_tokens or DEFAULT_TRAIN_TOKENS)
        dynamic, chosen["dynamic"] = choose_dynamic(scorer, options, valid_ids, tuning, warn)
        settings.update(dynamic.as_dict())
    cache, valid_stream = None, None
    if options.cache is not None:
        (theta, lam), chosen["cache"], valid_stream = choose_cache(scorer, options, valid_ids, dynamic, tuning,
                                                                   warn)
        cache = (options.cache, theta, lam)
        settings.update({"cache_window": options.cache, "cache_theta": theta, "cache_lambda": lam})

    if options.tune and name != "valid":
        stream = valid_stream if valid_stream is not None else scorer.stream(valid_ids, dynamic,
                                                                             keep_hidden=False)
        report["valid"] = scorer.numbers(stream, cache)
    if valid_stream is not None and name == "valid":
        stream = valid_stream
    else:
        stream = scorer.stream(ids, dynamic, keep_hidden=cache is not None)
    report.update(scorer.numbers(stream, cache))
    report["settings"], report["chosen"] = settings, chosen
    if options.tune:
        report["tuning"] = {"split": "valid", **tuning}
        if name == "valid":
            report["note"] = "the settings were chosen on the split reported"
    report["seconds_total"] = time.perf_counter() - started
    return report


def choose_dynamic(scorer: Scorer, options: AdaptiveOptions, valid_ids: torch.Tensor | None,
                   tuning: dict[str, Any], warn: Callable[[str], None]) -> tuple[DynamicSettings, str]:
    """Dynamic evaluation's settings and how they were chosen: searched (the trials go into `tuning`), given,
    or the defaults, which scale with the segment length."""
    segment = options.dynamic_segment or DEFAULT_SEGMENT
    if options.tune:
        settings, tuning["dynamic"] = scorer.search_dynamic(valid_ids, segment,
                                                            options.tune_tokens or DEFAULT_TUNE_TOKENS)
        tuning["dynamic"]["on_grid_edge"] = grid_edges(settings.as_dict(), tuning["dynamic"]["grid"], warn)
        return settings, "tuned on valid"
    scale = segment / DEFAULT_SEGMENT
    lr = options.dynamic_lr if options.dynamic_lr is not None else DEFAULT_LR * scale
    decay = options.dynamic_decay if options.dynamic_decay is not None else DEFAULT_DECAY * scale
    given = options.dynamic_lr is not None or options.dynamic_decay is not None
    return DynamicSettings(lr, decay, segment), "given" if given else "defaults"


def choose_cache(scorer: Scorer, options: AdaptiveOptions, valid_ids: torch.Tensor | None,
                 dynamic: DynamicSettings | None, tuning: dict[str, Any],
                 warn: Callable[[str], None]) -> tuple[tuple[float, float], str, Stream | None]:
    """The cache's (θ, λ) and how they were chosen. The search scores every pair of the grid on one pass over
    the validation split (adapting, with `dynamic`), which is returned for reuse."""
    if not options.tune:
        theta = options.cache_theta if options.cache_theta is not None else DEFAULT_THETA
        lam = options.cache_lambda if options.cache_lambda is not None else DEFAULT_LAMBDA
        given = options.cache_theta is not None or options.cache_lambda is not None
        return (theta, lam), "given" if given else "defaults", None
    stream = scorer.stream(valid_ids, dynamic)
    started = time.perf_counter()
    losses = cache_losses(stream, options.cache, list(CACHE_THETAS), list(CACHE_LAMBDAS))
    tuning["cache"] = {"tokens": stream.targets.numel(), "seconds": time.perf_counter() - started,
                       "grid": [{"cache_theta": theta, "cache_lambda": lam, "ppl": perplexity(loss)}
                                for (theta, lam), loss in losses.items()]}
    theta, lam = min(losses, key=lambda key: finite(losses[key]))
    tuning["cache"]["on_grid_edge"] = grid_edges({"cache_theta": theta, "cache_lambda": lam},
                                                 tuning["cache"]["grid"], warn)
    return (theta, lam), "tuned on valid", stream


def grid_edges(best: dict[str, float], grid: list[dict[str, float]], warn: Callable[[str], None]) -> list[str]:
    """The searched settings whose chosen value is the smallest or largest tried, each said in a warning line:
    the best may lie beyond the grid."""
    edges = []
    for name, value in best.items():
        tried = sorted({entry[name] for entry in grid})
        if len(tried) > 1 and value in (tried[0], tried[-1]):
            edges.append(name)
            side = "smallest" if value == tried[0] else "largest"
            warn(f"warning: --tune chose {name} {value:g}, the {side} tried; a value beyond it may do better")
    return edges


def finite(loss: float) -> float:
    """A loss to rank settings by: one that diverged (nan) ranks last."""
    return loss if math.isfinite(loss) else math.inf


def method_name(options: AdaptiveOptions) -> str:
    return "+".join(name for name, used in (("dynamic", options.dynamic), ("cache", options.cache is not None))
                    if used)


class Scorer:
    """One run's passes over texts read as one stream, plain or adapting."""

    def __init__(self, run: LoadedRun, device: torch.device, dtype: torch.dtype | None):
        self.run, self.device, self.dtype = run, device, dtype
        self.evaluator: DynamicEvaluator | None = None

    def layout(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return evaluation_layout(ids, 1, self.run.tokenizer.boundary_id)

    def stream(self, ids: torch.Tensor, dynamic: DynamicSettings | None, limit: int | None = None,
               keep_hidden: bool = True) -> Stream:
        inputs, targets = self.layout(ids)
        if dynamic is None:
            return read_stream(self.run.model, inputs[:limit], targets[:limit], self.run.config.train.bptt,
                               self.device, self.dtype)
        return self.evaluator.read(inputs, targets, dynamic, self.device, self.dtype, limit, keep_hidden)

    def prepare_dynamic(self, segment: int, train_tokens: int) -> dict[str, Any]:
        """The gradient statistics on the training split; what they read and how long they took."""
        started = time.perf_counter()
        train_ids, _ = text_ids(self.run, "train", None)
        rms, used = gradient_rms(self.run.model, train_ids, segment, train_tokens, self.device, self.dtype)
        self.evaluator = DynamicEvaluator(self.run.model, rms)
        return {"train_tokens": used, "seconds": time.perf_counter() - started}

    def search_dynamic(self, valid_ids: torch.Tensor, segment: int,
                       tokens: int) -> tuple[DynamicSettings, dict[str, Any]]:
        """Every (η, λ) of the grid on the first `tokens` tokens of the validation split; the best one."""
        started = time.perf_counter()
        scale = segment / DEFAULT_SEGMENT
        results = {}
        for lr in DYNAMIC_LRS:
            for decay in DYNAMIC_DECAYS:
                settings = DynamicSettings(lr * scale, decay * scale, segment)
                results[settings] = self.stream(valid_ids, settings, limit=tokens, keep_hidden=False)
        best = min(results, key=lambda settings: finite(results[settings].loss))
        count = next(iter(results.values())).targets.numel()
        return best, {"tokens": count, "seconds": time.perf_counter() - started,
                      "grid": [{**settings.as_dict(), "ppl": perplexity(stream.loss)}
                               for settings, stream in results.items()]}

    def numbers(self, stream: Stream, cache: tuple[int, float, float] | None) -> dict[str, Any]:
        """tokens, loss, ppl (bpc) and seconds of a stream, with the cache mixed in where asked; then what the
        stream gave without it."""
        alone = self.measures(stream.loss, stream.seconds)
        if cache is None:
            return {"tokens": stream.targets.numel(), **alone}
        window, theta, lam = cache
        started = time.perf_counter()
        loss = cache_losses(stream, window, [theta], [lam])[(theta, lam)]
        mixed = self.measures(loss, stream.seconds + time.perf_counter() - started)
        return {"tokens": stream.targets.numel(), **mixed, "without_cache": alone}

    def measures(self, loss: float, seconds: float) -> dict[str, float]:
        numbers = {"loss": loss, "ppl": perplexity(loss)}
        if self.run.tokenizer.kind == "char":
            numbers["bpc"] = loss / math.log(2)
        return {**numbers, "seconds": seconds}


def report_lines(report: dict[str, Any]) -> list[str]:
    """What a person reads: the split's line, the valid split's when tuned, and the settings."""
    def line(name: str, numbers: dict[str, Any]) -> str:
        text = f"{name}: {numbers['tokens']:,} tokens | loss {numbers['loss']:.4f} | ppl {numbers['ppl']:.2f}"
        if "bpc" in numbers:
            text += f" | bpc {numbers['bpc']:.4f}"
        text += f" | {report['method']} | {numbers['seconds']:.1f} s"
        if "without_cache" in numbers:
            text += f" (without the cache: ppl {numbers['without_cache']['ppl']:.2f})"
        return text

    lines = []
    if "valid" in report:
        lines.append(line("valid", report["valid"]))
    lines.append(line(report["split"], report))
    shown = ", ".join(f"{key} {value:g}" for key, value in report["settings"].items())
    how = "; ".join(f"{method} {how}" for method, how in report["chosen"].items())
    lines.append(f"settings: {shown} ({how})")
    if "note" in report:
        lines.append(f"note: {report['note']}")
    return lines

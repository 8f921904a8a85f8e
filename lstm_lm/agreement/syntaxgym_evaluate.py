"""Scoring SyntaxGym suites: every condition's sentence through the model in packed batches, each region's surprisal
in bits summed over its tokens, and each item's predictions evaluated on them.

    condition sentences ──align (syntaxgym_align)──> ids, region -> token positions
        ──token_log_probs (scoring, batched)──> each token's log p ──> region surprisal = -Σ log2 p over its tokens
        ──formula (syntaxgym_formula)──> holds, fails, or not scored (it reads an unscorable region or one after it)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..hardware.precision import autocast
from ..rundir.run_files import LoadedRun
from .evaluate import DEFAULT_BATCH_SIZE, sentence_start
from .scoring import token_log_probs
from .syntaxgym_align import EMPTY, EOS, SCORED, UNSCORABLE, AlignedRegion, RegionAligner
from .syntaxgym_formula import evaluate, needed_regions
from .syntaxgym_suite import GymItem, GymPrediction, GymSuite


@dataclass(frozen=True)
class RegionScore:
    status: str  # syntaxgym_align: scored, eos, unscorable or empty
    surprisal: float | None  # bits; None when unscorable
    unknown: int  # <unk> tokens among those summed


@dataclass(frozen=True)
class PredictionOutcome:
    item: GymItem
    prediction: GymPrediction
    holds: bool | None  # None: not scored
    # (region, condition) of the unscorable regions the formula reads, or reads past: what the model reads after a
    # region it has no token for is not the sentence as written (a PTB model reads the NP/Z suites' comma and
    # no-comma conditions as the same sentence)
    unscorable: tuple[tuple[int, str], ...]
    reads_unknown: bool  # whether a region it reads holds an <unk> token
    left_out: bool  # not scored because it reads <unk> and skip_oov asked for that


@dataclass
class GymSuiteResult:
    suite: GymSuite
    regions: dict[tuple[int, str], dict[int, RegionScore]]  # (item number, condition) -> region -> score
    outcomes: list[PredictionOutcome]  # item by item, each item's predictions in order


def region_score(region: AlignedRegion, log_probs: list[float], length: int) -> RegionScore:
    """`log_probs`: the sentence's per-token natural-log probabilities, then, for an eos region, the boundary's."""
    if region.status == SCORED:
        return RegionScore(SCORED, -sum(log_probs[p] for p in region.positions) / math.log(2), region.unknown)
    if region.status == EOS:
        return RegionScore(EOS, -log_probs[length] / math.log(2), 0)
    if region.status == EMPTY:
        return RegionScore(EMPTY, 0.0, 0)  # as SyntaxGym sums no tokens
    return RegionScore(region.status, None, 0)


def evaluate_gym_suites(run: LoadedRun, suites: list[GymSuite], skip_oov: bool = False,
                        batch_size: int = DEFAULT_BATCH_SIZE, dtype: torch.dtype | None = None) -> list[GymSuiteResult]:
    """Every suite's predictions on every item. A prediction that reads an unscorable region, or a region after one
    in the same condition, is not scored (and not failed); with `skip_oov`, neither is one that reads a region with
    an <unk> token."""
    aligner = RegionAligner(run.tokenizer)
    keys = [(index, item.number, name, condition) for index, suite in enumerate(suites)
            for item in suite.items for name, condition in item.conditions.items()]
    aligned = [aligner.align(condition) for *_, condition in keys]
    with autocast(run.model.embedding.weight.device, dtype):
        log_probs = token_log_probs(run.model, sentence_start(run), [sentence.ids for sentence in aligned],
                                    [sentence.ends_with_eos for sentence in aligned], batch_size=batch_size)
    regions: list[dict[tuple[int, str], dict[int, RegionScore]]] = [{} for _ in suites]
    for (index, number, name, _), sentence, scores in zip(keys, aligned, log_probs):
        regions[index][number, name] = {region.number: region_score(region, scores, len(sentence.ids))
                                    for region in sentence.regions.values()}
    return [GymSuiteResult(suite, scored, [outcome(suite, item, prediction, scored, skip_oov)
                                           for item in suite.items for prediction in suite.predictions])
            for suite, scored in zip(suites, regions)]


def outcome(suite: GymSuite, item: GymItem, prediction: GymPrediction,
            regions: dict[tuple[int, str], dict[int, RegionScore]], skip_oov: bool) -> PredictionOutcome:
    needed = needed_regions(prediction.formula, suite.region_numbers)
    scores = {(number, condition): regions[item.number, condition][number] for number, condition in needed}
    last_read: dict[str, int] = {}
    for number, condition in needed:
        last_read[condition] = max(number, last_read.get(condition, number))
    unscorable = tuple((number, condition) for condition, last in sorted(last_read.items())
                       for number, score in sorted(regions[item.number, condition].items())
                       if number <= last and score.status == UNSCORABLE)
    unknown = any(score.unknown for score in scores.values())
    left_out = skip_oov and unknown and not unscorable
    holds = None if unscorable or left_out else evaluate(
        prediction.formula, lambda number, condition: scores[number, condition].surprisal, suite.region_numbers)
    return PredictionOutcome(item, prediction, holds, unscorable, unknown, left_out)

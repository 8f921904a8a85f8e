"""Scoring whole suites: each pair encoded for the model, malformed pairs skipped and out-of-vocabulary ones counted,
the rest scored."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..errors import UserError
from ..hardware.precision import autocast
from ..rundir.run_files import LoadedRun
from .items import METHODS, STANDARD_METHOD, Item, ItemCollector, Skipped, Suite
from .pairs import EncodedPair, PairEncoder
from .scoring import score_requests

DEFAULT_BATCH_SIZE = 256  # pairs per pass; see scripts/bench_agreement.py


@dataclass(frozen=True)
class Outcome:
    item: Item
    good_score: float  # summed log-probability (natural log) of the good sentence, or of the good form
    bad_score: float

    @property
    def correct(self) -> bool:
        return self.good_score > self.bad_score  # a tie (both <unk>, say) is not a success


@dataclass
class SuiteResult:
    suite: Suite
    method: str
    outcomes: list[Outcome]
    oov: int  # pairs with words outside the vocabulary (deciding words; any word for the built-in suite)
    oov_words: list[str]
    oov_left_out: bool  # whether those pairs were left out of `outcomes`
    # malformed items skipped: the file's (Suite.skipped), then those malformed once split the model's way
    skipped: list[Skipped] = field(default_factory=list)


def out_of_vocabulary(pair: EncodedPair, suite: Suite) -> list[str]:
    """The words that make a pair out of vocabulary: the deciding ones, or any for the built-in suite, whose
    every word comes from a lexicon that should be read as itself."""
    return pair.unknown if suite.format == "builtin" else pair.unknown_deciding


def scoring_method(suite: Suite, method: str) -> str:
    if method == "auto":
        return STANDARD_METHOD[suite.format]
    if method not in METHODS:
        raise UserError(f"--method {method}: expected auto, {', '.join(METHODS)}")
    return method


def sentence_start(run: LoadedRun) -> int:
    """The token every sentence is primed with, as if it began a line."""
    if run.tokenizer.boundary_id is None:
        raise UserError(f"{run.directory}: the tokenizer has no line-boundary token to start sentences from (a "
                        f"character model whose corpus had no newlines)")
    return run.tokenizer.boundary_id


def encode_suite(encoder: PairEncoder, suite: Suite, method: str, strict: bool) -> tuple[list[EncodedPair],
                                                                                          list[Skipped]]:
    """The suite's pairs encoded, and the malformed ones skipped: the file's, then those that are malformed for
    this model (the same sentence twice once split the way its corpus was)."""
    kept = ItemCollector(strict)
    pairs = []
    for item in suite.items:
        with kept.item():
            pairs.append(encoder.encode(item, method))
    return pairs, suite.skipped + kept.skipped


def evaluate_suites(run: LoadedRun, suites: list[Suite], method: str = "auto", skip_oov: bool = False,
                    batch_size: int = DEFAULT_BATCH_SIZE, dtype: torch.dtype | None = None,
                    strict: bool = False) -> list[SuiteResult]:
    """Score every pair of every suite. Pairs whose deciding words are out of vocabulary are counted and kept
    (left out with `skip_oov`); the built-in suite always leaves out items with any word the model lacks, so that
    no word of its lexicon is silently read as <unk>. Malformed pairs are skipped (refused with `strict`).
    `dtype` is the autocast precision (None: fp32)."""
    boundary_id = sentence_start(run)
    encoder = PairEncoder(run.tokenizer)
    # Every suite is encoded before any is scored: a bad item anywhere stops the run before minutes of scoring.
    encoded = [(suite, chosen, *encode_suite(encoder, suite, chosen, strict))
               for suite in suites for chosen in [scoring_method(suite, method)]]
    results = []
    for suite, chosen, pairs, skipped in encoded:
        unknown = [out_of_vocabulary(pair, suite) for pair in pairs]  # aligned with pairs
        left_out = suite.format == "builtin" or skip_oov
        scored = [pair for pair, found in zip(pairs, unknown) if not (left_out and found)]
        with autocast(run.model.embedding.weight.device, dtype):
            scores = score_requests(run.model, boundary_id, [pair.request for pair in scored],
                                    count_prefix=chosen == "sentence", batch_size=batch_size)
        outcomes = [Outcome(pair.item, good, bad) for pair, (good, bad) in zip(scored, scores)]
        words = sorted({word for found in unknown for word in found})
        results.append(SuiteResult(suite, chosen, outcomes, sum(1 for found in unknown if found), words, left_out,
                                   skipped))
    return results

"""The probe: how likely is each candidate word after a prefix of one's own?"""

from __future__ import annotations

from ..errors import UserError
from ..rundir.run_files import LoadedRun
from .evaluate import sentence_start
from .pairs import PairEncoder
from .scoring import score_requests


def probe(run: LoadedRun, prefix: str, candidates: list[str]) -> tuple[list[tuple[str, float]], list[str]]:
    """(each candidate with its log-probability after the prefix, summed over its pieces, most probable first;
    the words of prefix and candidates that the vocabulary lacks and that are read as <unk>)."""
    encoder = PairEncoder(run.tokenizer)
    candidates = [candidate.strip() for candidate in candidates if candidate.strip()]
    if not candidates:
        raise UserError("--candidates: give the words to compare, separated by commas (were,was)")
    words = [" ".join(encoder.split(candidate)) for candidate in candidates]
    empty = [candidate for candidate, split in zip(candidates, words) if not split]
    if empty:
        raise UserError(f"--candidates: {empty[0]!r} is empty once split the way the model's corpus was")
    prefix_words = " ".join(encoder.split(prefix))
    request = encoder.target_request(prefix_words, *words)
    scores = score_requests(run.model, sentence_start(run), [request], count_prefix=False, batch_size=1)[0]
    unknown = run.tokenizer.unknown_words(" ".join([prefix_words, *words]))
    ranked = sorted(zip(candidates, scores), key=lambda pair: pair[1], reverse=True)
    return ranked, list(dict.fromkeys(unknown))

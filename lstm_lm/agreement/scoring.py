"""Batched log-probabilities of alternative continuations after a shared prefix, each sentence from a fresh state.

A request is a prefix and the continuations to compare (the two forms of a target word, or the two sentence
endings after the words a minimal pair shares). A batch of requests takes two packed passes through the model:

    pass 1   <eos> the flights the airline was cancelling     one row per request: the prefix, read once
                                                  └─> h, c     the state after it; the top layer's h scores the
                                                               first piece of every continuation: were | was
    pass 2   were ─> full   |   was ─> full                    one row per continuation of two pieces or more,
                                                               started from h, c: each piece predicts the next

`pack_padded_sequence` lets rows of different lengths share a pass: the recurrent layers never read padding, and
the final state they return ((h, c) for the LSTM cells, (h,) for the others) is each row's own. Scores equal those
of each sentence scored alone (a test checks to 1e-4).

SyntaxGym suites need each token's own log-probability rather than sums: `token_log_probs` reads whole sentences,
a batch of them in one packed pass, and hands back every position's score (and, where asked, that of the
boundary token after the sentence: the model's end of sentence).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from ..model.language_model import Hidden, LanguageModel
from ..targets import IGNORE

ROWS_PER_CHUNK = 1024  # positions sent through the output layer at once: 1024 x 33k words of logits is 135 MB


@dataclass(frozen=True)
class ScoreRequest:
    prefix: list[int]  # token ids read after the boundary token, shared by every continuation
    continuations: tuple[list[int], ...]  # token ids of each alternative; none of them empty


@torch.inference_mode()
def score_requests(model: LanguageModel, boundary_id: int, requests: list[ScoreRequest], *, count_prefix: bool,
                   batch_size: int) -> list[list[float]]:
    """Each continuation's summed log-probability (natural log) after the boundary token and the prefix, in the
    order given. With `count_prefix` the prefix's own log-probability is added, so that each score is that of the
    whole sentence, prefix and continuation."""
    scores: list[list[float]] = []
    for start in range(0, len(requests), batch_size):
        scores.extend(score_batch(model, boundary_id, requests[start: start + batch_size], count_prefix))
    return scores


def score_batch(model: LanguageModel, boundary_id: int, requests: list[ScoreRequest],
                count_prefix: bool) -> list[list[float]]:
    device = model.embedding.weight.device
    prefix_output, state = run_packed(model, [[boundary_id, *request.prefix] for request in requests], None)
    last_output = model.top_output(state)  # (B, H): the top layer's output at each row's last token
    # Every continuation of the batch, flattened: which request it belongs to, and its ids.
    owners = [row for row, request in enumerate(requests) for _ in request.continuations]
    continuations = [ids for request in requests for ids in request.continuations]
    owner_index = torch.tensor(owners, device=device)
    firsts = torch.tensor([ids[0] for ids in continuations], device=device)
    totals = candidate_log_probs(model, last_output, owner_index, firsts)  # (K,) log p(first piece | prefix)
    if count_prefix:
        # Positions 0..p-1 predict the prefix; the last position's prediction was read from the state above.
        prefix_scores = summed_log_probs(model, prefix_output, [[*request.prefix, IGNORE] for request in requests])
        totals = totals + prefix_scores[owner_index]
    longer = [k for k, ids in enumerate(continuations) if len(ids) > 1]
    if longer:
        starts = owner_index[longer]
        tail_output, _ = run_packed(model, [continuations[k][:-1] for k in longer],
                                    tuple(part[:, starts] for part in state))
        tails = summed_log_probs(model, tail_output, [continuations[k][1:] for k in longer])
        totals = totals.index_add(0, torch.tensor(longer, device=device), tails)
    flat = totals.tolist()
    grouped, start = [], 0
    for request in requests:
        grouped.append(flat[start: start + len(request.continuations)])
        start += len(request.continuations)
    return grouped


@torch.inference_mode()
def token_log_probs(model: LanguageModel, boundary_id: int, sentences: list[list[int]], score_end: list[bool], *,
                    batch_size: int) -> list[list[float]]:
    """Each token's log-probability (natural log) in its sentence, read from a fresh state primed with the boundary
    token, the first token included; where `score_end` says so, one more: the boundary token after the last (the
    model's end of sentence). One packed pass per batch of sentences; a sentence may be empty."""
    found: list[list[float]] = []
    for start in range(0, len(sentences), batch_size):
        rows, targets = [], []
        for ids, end in zip(sentences[start: start + batch_size], score_end[start: start + batch_size]):
            if end or not ids:  # the last token is read too, to predict the boundary (or nothing, when empty)
                rows.append([boundary_id, *ids])
                targets.append([*ids, boundary_id if end else IGNORE])
            else:  # the last token predicts nothing that is asked for: not read
                rows.append([boundary_id, *ids[:-1]])
                targets.append(ids)
        output, _ = run_packed(model, rows, None)
        found.extend(position_log_probs(model, output, targets))
    return found


def position_log_probs(model: LanguageModel, output: PackedSequence, targets: list[list[int]]) -> list[list[float]]:
    """log p(target) at every position of each row whose target is not IGNORE, in order; `targets` are as long as
    the rows that made `output`, and IGNORE appears only at a row's end."""
    device = output.data.device
    packed_targets = pack_padded_sequence(padded_columns(targets, IGNORE, device), row_lengths(targets),
                                          enforce_sorted=False)
    scored = packed_targets.data != IGNORE
    log_probs = output.data.new_zeros(len(scored), dtype=torch.float32)
    log_probs[scored] = target_log_probs(model, output.data[scored], packed_targets.data[scored]).float()
    by_row, _ = pad_packed_sequence(PackedSequence(log_probs, output.batch_sizes, output.sorted_indices,
                                                   output.unsorted_indices))  # (T, B)
    columns = by_row.t().tolist()
    return [column[: sum(1 for target in row if target != IGNORE)] for column, row in zip(columns, targets)]


def run_packed(model: LanguageModel, rows: list[list[int]], hidden: Hidden | None) -> tuple[PackedSequence, Hidden]:
    """Rows of token ids of any lengths (at least 1) -> the top layer's outputs, packed, and each row's final
    state (see LanguageModel.init_hidden: every part has the rows in dimension 1), in the rows' order. `hidden` is
    each row's starting state (None: zeros)."""
    device = model.embedding.weight.device
    tokens = padded_columns(rows, 0, device)  # (T, B); the padding is never read
    embedded = model.embed(tokens)  # (T, B, E)
    packed = pack_padded_sequence(embedded, row_lengths(rows), enforce_sorted=False)
    return model.rnn(packed, hidden)


def summed_log_probs(model: LanguageModel, output: PackedSequence, targets: list[list[int]]) -> torch.Tensor:
    """(B,) the sum over each row of log p(target) at each of its positions, IGNORE targets left out. `targets`
    are as long as the rows that made `output`."""
    device = output.data.device
    lengths = row_lengths(targets)
    packed_targets = pack_padded_sequence(padded_columns(targets, IGNORE, device), lengths, enforce_sorted=False)
    rows = torch.arange(len(targets), device=device).expand(int(lengths.max()), -1)  # (T, B): each position's row
    packed_rows = pack_padded_sequence(rows, lengths, enforce_sorted=False)
    # Packing the targets and row numbers with the same lengths lays them out in the same order as output.data;
    # positions whose target is IGNORE never reach the output layer, the costliest part of the model.
    scored = packed_targets.data != IGNORE
    log_probs = target_log_probs(model, output.data[scored], packed_targets.data[scored])  # (N,)
    return torch.zeros(len(targets), device=device).index_add_(0, packed_rows.data[scored], log_probs)


def target_log_probs(model: LanguageModel, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """(N, H), (N,) -> (N,) log p(target), a chunk of rows at a time: long sentences in a large batch would
    otherwise hold (N, V) logits, gigabytes for a WikiText vocabulary."""
    pieces = [outputs.new_zeros(0)]
    for start in range(0, len(targets), ROWS_PER_CHUNK):
        features = model.output_features(outputs[start: start + ROWS_PER_CHUNK])
        pieces.append(model.target_log_probs(features, targets[start: start + ROWS_PER_CHUNK]))
    return torch.cat(pieces)


def candidate_log_probs(model: LanguageModel, outputs: torch.Tensor, owners: torch.Tensor,
                        targets: torch.Tensor) -> torch.Tensor:
    """(B, H) outputs, (K,) owners ascending (the row of outputs each candidate follows) and targets -> (K,)
    log p(target | its row). With the full softmax each row's distribution is computed once for all the
    candidates that follow it (two per pair: half the output layer's work); the adaptive softmax scores each
    candidate on its own, as it computes only the clusters a target falls in."""
    if model.adaptive is not None:
        return target_log_probs(model, outputs[owners], targets)
    scores = outputs.new_empty(len(targets), dtype=torch.float32)
    for start in range(0, len(outputs), ROWS_PER_CHUNK):
        log_probs = model.next_token_log_probs(model.output_features(outputs[start: start + ROWS_PER_CHUNK]))
        mine = (owners >= start) & (owners < start + len(log_probs))  # these candidates' rows are in this chunk
        scores[mine] = log_probs[owners[mine] - start, targets[mine]]
    return scores


def padded_columns(rows: list[list[int]], fill: int, device: torch.device) -> torch.Tensor:
    """Rows of ids -> (T, B) int64, one row per column, right-padded with `fill`."""
    longest = max(len(row) for row in rows)
    return torch.tensor([row + [fill] * (longest - len(row)) for row in rows], device=device).t()


def row_lengths(rows: list[list[int]]) -> torch.Tensor:
    return torch.tensor([len(row) for row in rows])  # on the CPU, as pack_padded_sequence wants

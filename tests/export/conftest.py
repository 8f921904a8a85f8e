"""Tiny trained runs for the export tests, each trained once per session, and lstm-lm's own answers to compare
an export against."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from lstm_lm.rundir.run_files import LoadedRun
from tests.conftest import tiny_config, train_quietly, write_synthetic_corpus

# The models the exports are tested on: the fused LSTM, written cells, the adaptive softmax, and layers run one
# by one (weight drop) with one size or with a size each (and a tying projection).
MODELS = {
    "fused lstm": ("model.cell=lstm", "model.num_layers=2"),
    "written lstm, adaptive": ("model.cell=lstm_explicit", "model.softmax=adaptive", "model.adaptive_cutoffs=[12, 40]"),
    "peephole, 2 layers": ("model.cell=lstm_peephole", "model.num_layers=2"),
    "fused lstm, adaptive, tied, by layer": ("model.cell=lstm", "model.num_layers=2", "model.weight_drop=0.2",
                                             "model.softmax=adaptive", "model.adaptive_cutoffs=[12]",
                                             "model.tie_weights=true"),
    "coupled, sizes 32 and 24, tied": ("model.cell=lstm_coupled", "model.num_layers=2",
                                       "model.hidden_sizes=[32, 24]", "model.tie_weights=true"),
    "gru": ("model.cell=gru", "model.num_layers=2"),
    "rnn_tanh": ("model.cell=rnn_tanh",),
}
STEPS = 300  # time steps compared, at a batch of 2
TOLERANCE = 1e-4


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    """trained_run(name) -> the run directory of MODELS[name], trained for a few dozen steps."""
    made: dict[str, Path] = {}

    def make(name: str) -> Path:
        if name not in made:
            root = tmp_path_factory.mktemp("export")
            corpus = write_synthetic_corpus(root / "corpus", lines_per_split=(600, 60, 100))  # 700 test tokens
            train_quietly(tiny_config(corpus, root / "cache", "train.max_steps=60", *MODELS[name]), root / "run")
            made[name] = root / "run"
        return made[name]

    return make


def split_tokens(run: LoadedRun, steps: int = STEPS, batch: int = 2) -> np.ndarray:
    """(steps, batch) ids of the run's own test split, as lstm-lm lays out a text: the split cut into `batch`
    columns."""
    text = (Path(run.config.data.path) / "test.txt").read_text(encoding="utf-8")
    ids = run.tokenizer.encode_corpus(text)[: steps * batch]
    assert len(ids) == steps * batch
    return np.array(ids, dtype=np.int64).reshape(batch, steps).T.copy()


@torch.no_grad()
def lstm_lm_answer(run: LoadedRun, tokens: np.ndarray) -> tuple[np.ndarray, tuple[torch.Tensor, ...]]:
    """lstm-lm's forward over the whole window from a zero state: log-probabilities (T, B, V) and its final state
    in the model's own layout."""
    logits, hidden = run.model(torch.from_numpy(tokens), run.model.init_hidden(tokens.shape[1]))
    return torch.log_softmax(logits, dim=-1).numpy(), hidden


def as_exported(description: dict, hidden: tuple[torch.Tensor, ...]) -> list[np.ndarray]:
    """The model's own state in the exported layout docs/export.md describes: one tensor per kind (h, c) with the
    layers stacked, or, named h_0, c_0, h_1 ..., one per layer and kind."""
    kinds = len(description["state"])
    if description["state"][0]["input"] in ("h", "c") and len(hidden) != kinds:  # layers run one by one
        return [torch.cat(hidden[kind::kinds]).numpy() for kind in range(kinds)]
    return [part.numpy() for part in hidden]


def zero_state(description: dict, batch: int) -> list[np.ndarray]:
    """Zeros of each state tensor's shape in FILE.json, at this batch."""
    return [np.zeros([batch if size == "batch" else size for size in part["shape"]], np.float32)
            for part in description["state"]]


def compare_with_lstm_lm(run: LoadedRun, description: dict, step) -> None:
    """`step(tokens, state) -> (log_probs, state)` runs the exported file. Over STEPS steps of the test split at a
    batch of 2, fed one at a time carrying the state and as one window, it must give lstm-lm's log-probabilities
    and final state within TOLERANCE."""
    tokens = split_tokens(run)
    expected, hidden = lstm_lm_answer(run, tokens)
    expected_state = as_exported(description, hidden)
    assert expected.shape == (STEPS, 2, run.model.vocab_size)

    whole, state = step(tokens, zero_state(description, 2))
    assert whole.shape == expected.shape and whole.dtype == np.float32
    assert np.abs(whole - expected).max() <= TOLERANCE
    assert all(np.abs(a - b).max() <= TOLERANCE for a, b in zip(state, expected_state, strict=True))

    state, one_by_one = zero_state(description, 2), []
    for t in range(STEPS):
        log_probs, state = step(tokens[t: t + 1], state)
        one_by_one.append(log_probs)
    assert np.abs(np.concatenate(one_by_one) - expected).max() <= TOLERANCE
    assert all(np.abs(a - b).max() <= TOLERANCE for a, b in zip(state, expected_state, strict=True))
    # They are distributions, far from uniform (trained weights, so the comparison is not one of near-constants).
    assert np.allclose(np.exp(whole).sum(-1), 1, atol=1e-4)
    assert (whole.max(-1) - whole.min(-1)).mean() > 2

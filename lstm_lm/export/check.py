"""Running an exported file's bytes against lstm-lm's own forward before the file is written: a graph that
computes something else is refused, not saved.

The check feeds random tokens at sizes other than the traced example's: one window of several steps at a batch of
3, then a few steps one at a time carrying the state, and compares the log-probabilities and the final state."""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable

import numpy as np
import torch

from ..errors import UserError
from ..model.language_model import LanguageModel
from .step_module import StepModule

TOLERANCE = 1e-4  # largest |difference| of a log-probability or a state entry
Step = Callable[[np.ndarray, list[np.ndarray]], tuple[np.ndarray, list[np.ndarray]]]


def onnx_runner(data: bytes, step: StepModule) -> Step | None:
    """The file in onnxruntime, or None where onnxruntime is not installed."""
    try:
        import onnxruntime
    except ImportError:
        return None
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    session = onnxruntime.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    names = [part["name"] for part in step.inputs()]

    def run(tokens: np.ndarray, state: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
        log_probs, *new_state = session.run(None, dict(zip(names, [tokens, *state])))
        return log_probs, new_state

    return run


def torchscript_runner(data: bytes) -> Step:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch 2.13's TorchScript deprecation notice
        module = torch.jit.load(io.BytesIO(data))

    def run(tokens: np.ndarray, state: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
        with torch.no_grad():
            log_probs, *new_state = module(torch.from_numpy(tokens), *map(torch.from_numpy, state))
        return log_probs.numpy(), [part.numpy() for part in new_state]

    return run


@torch.no_grad()
def lstm_lm_step(model: LanguageModel, step: StepModule, tokens: np.ndarray,
                 state: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
    """What lstm-lm itself computes, in the exported file's terms: the model's forward and a log-softmax (which
    leaves the adaptive softmax's log-probabilities unchanged)."""
    hidden = step.layout.to_model(tuple(map(torch.from_numpy, state)))
    logits, hidden = model(torch.from_numpy(tokens), hidden)
    return torch.log_softmax(logits.float(), dim=-1).numpy(), [part.numpy() for part in step.layout.from_model(hidden)]


def largest_difference(run: Step, model: LanguageModel, step: StepModule, window: int = 6, batch: int = 3,
                       one_by_one: int = 4, seed: int = 0) -> float:
    """The largest |difference| between `run` and lstm-lm over a window at once and steps one at a time."""
    tokens = np.random.default_rng(seed).integers(0, model.vocab_size, (window + one_by_one, batch), dtype=np.int64)
    state = [part.numpy() for part in step.layout.zeros(batch)]
    worst = 0.0
    pieces = [tokens[:window]] + [tokens[t: t + 1] for t in range(window, window + one_by_one)]
    ours, theirs = state, state
    for piece in pieces:
        expected, ours = lstm_lm_step(model, step, piece, ours)
        got, theirs = run(piece, theirs)
        for a, b in zip([expected, *ours], [got, *theirs]):
            if a.shape != b.shape:
                raise UserError(f"the exported step function returned shape {b.shape} where lstm-lm gives "
                                f"{a.shape}; not written")
            worst = max(worst, float(np.abs(a - b).max()))
    return worst


def check_export(format_name: str, data: bytes, model: LanguageModel, step: StepModule) -> float | None:
    """The largest difference, or None where the runtime is not installed; a UserError beyond TOLERANCE."""
    run = onnx_runner(data, step) if format_name == "onnx" else torchscript_runner(data)
    if run is None:
        return None
    worst = largest_difference(run, model, step)
    if not worst <= TOLERANCE:  # also catches NaN
        raise UserError(f"the exported {format_name} step function differs from lstm-lm by {worst:.3g} in a "
                        f"log-probability or state (at most {TOLERANCE:g} allowed); not written")
    return worst

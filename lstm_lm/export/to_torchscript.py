"""The step function as a TorchScript file, for torch.jit.load: traced, with the written cells' time loops kept as
loops (lstm_lm/export/step_module.py)."""

from __future__ import annotations

import io
import warnings

import torch

from .step_module import StepModule


def example_inputs(step: StepModule) -> tuple[torch.Tensor, ...]:
    """Tokens (3, 2) and a zero state: what the exporters trace. Every size of the graph stays symbolic (T and B
    differ here so that neither can stand in for the other); check.py runs other sizes against lstm-lm."""
    return (torch.zeros(3, 2, dtype=torch.int64), *step.layout.zeros(2))


def torchscript_bytes(step: StepModule) -> bytes:
    buffer = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        # torch 2.13 deprecates TorchScript (trace and save warn); the tracer's warnings about Python values are
        # about shapes, which check.py verifies by running other ones.
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(step, example_inputs(step), check_trace=False)
        torch.jit.save(traced, buffer)
    return buffer.getvalue()

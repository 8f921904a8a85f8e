"""The step function as an ONNX file, for onnxruntime.

Written with torch's TorchScript-based exporter (`dynamo=False`), which turns nn.LSTM, nn.GRU and nn.RNN into the
ONNX LSTM, GRU and RNN operators and the written cells' scripted time loops into ONNX Loops, with the time and
batch sizes dynamic. The torch.export-based exporter (torch's default since 2.9) traces the written cells' Python
loop for the example's length alone and says nothing (tried with torch 2.13 and onnxscript 0.7: a 7-step example
of lstm_explicit gave a graph with no Loop, its 7 steps unrolled), and it needs onnxscript besides onnx.
"""

from __future__ import annotations

import io
import warnings

import torch

from ..errors import UserError
from .step_module import StepModule
from .to_torchscript import example_inputs

OPSET = 17  # onnxruntime 1.14 (2023) and later run it
PROTOBUF_LIMIT = 2 ** 31  # one ONNX file is one protobuf message, which cannot exceed 2 GiB
INSTALL = "pip install -e '.[export]'"


def onnx_bytes(step: StepModule) -> bytes:
    try:
        import onnx
    except ImportError:
        raise UserError(f"--format onnx needs the onnx package, which is not installed: {INSTALL}") from None
    weights = sum(parameter.numel() * parameter.element_size() for parameter in step.parameters())
    if weights >= PROTOBUF_LIMIT:
        raise UserError(f"the weights take {weights / 2 ** 30:.1f} GiB, and one ONNX file holds at most 2 GiB; "
                        f"use --format torchscript")
    inputs, outputs = step.inputs(), step.outputs()
    dynamic_axes = {part["name"]: {axis: size for axis, size in enumerate(part["shape"]) if isinstance(size, str)}
                    for part in inputs + outputs}
    buffer = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation notice, the tracer's shape notes
        torch.onnx.export(step, example_inputs(step), buffer, dynamo=False, opset_version=OPSET,
                          input_names=[part["name"] for part in inputs],
                          output_names=[part["name"] for part in outputs],
                          dynamic_axes=dynamic_axes, do_constant_folding=True)
    model = onnx.load_from_string(buffer.getvalue())
    # The exporter leaves the sizes a Loop computes unnamed ("Concath_out_dim_2"): state them, so that the file
    # says what FILE.json says.
    for value in model.graph.output:
        dims = value.type.tensor_type.shape.dim
        for dim, size in zip(dims, next(part["shape"] for part in outputs if part["name"] == value.name),
                             strict=True):
            if isinstance(size, str):
                dim.dim_param = size
            else:
                dim.dim_value = size
    onnx.checker.check_model(model)
    return model.SerializeToString()

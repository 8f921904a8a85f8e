"""The RNNModel of pytorch/examples' word_language_model (and colorlessgreenRNNs' copy of it), read from the inert
module tree of its checkpoint (lstm_lm/foreign/torch_file.py): what the network computes, and its weights.

The model, in both repositories' model.py: `encoder` an nn.Embedding (V, E), `rnn` an nn.LSTM, nn.GRU or nn.RNN
of `nlayers` layers of `nhid` units with dropout between layers, `decoder` an nn.Linear (H -> V) with a bias,
`drop` one nn.Dropout applied to the embeddings and to the top layer's outputs, and `rnn_type` one of LSTM, GRU,
RNN_TANH, RNN_RELU. Tied, `decoder.weight` is `encoder.weight`: one Parameter, so one record in the pickle.
The earliest versions of the example built the recurrent layers without biases, and said `rnnType`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import UserError
from .safe_pickle import Inert, PickleRefused, TensorRecord, shown
from .torch_file import read_checkpoint

# nn.RNNBase's `mode` -> the cell's name in lstm-lm, and the gate blocks stacked in each weight's rows
CELLS = {"LSTM": ("lstm", 4), "GRU": ("gru", 3), "RNN_TANH": ("rnn_tanh", 1), "RNN_RELU": ("rnn_relu", 1)}


@dataclass
class ExampleModel:
    """What an RNNModel computes. `weights` uses the example's names: encoder.weight (V, E); for each layer k
    rnn.weight_ih_lk (G·H, E or H), rnn.weight_hh_lk (G·H, H), rnn.bias_ih_lk and rnn.bias_hh_lk (G·H,), the G
    gate blocks in PyTorch's order (LSTM i, f, g, o; GRU r, z, n), zeros where the module had no biases;
    decoder.weight (V, H), the same tensor as encoder.weight when tied; decoder.bias (V,). All fp32."""

    cell: str  # lstm, gru, rnn_tanh or rnn_relu
    vocab_size: int
    embedding_size: int
    hidden_size: int
    num_layers: int
    tied: bool
    dropout: float  # `drop`'s p, which nn.RNN's dropout between layers equals in both repositories
    weights: dict[str, torch.Tensor]


def read_example_model(path: Path) -> ExampleModel:
    """The RNNModel a checkpoint of the example holds; a file that holds something else is one clear line."""
    root = read_checkpoint(path)
    try:
        return example_model(root, path)
    except PickleRefused as refusal:  # a tensor's record disagrees with its storage
        raise UserError(f"{path}: not loaded: {refusal}") from None


def example_model(root: Any, path: Path) -> ExampleModel:
    if isinstance(root, dict):
        raise UserError(f"{path}: holds a dict (a state_dict?), not a whole RNNModel: whether its plain RNN was "
                        f"tanh or relu is only in the module, so save the module with torch.save(model, path)")
    model = attributes(root, "the checkpoint", path)
    encoder = submodule(model, "encoder", ("Embedding",), path)
    rnn = submodule(model, "rnn", ("LSTM", "GRU", "RNN"), path)
    decoder = submodule(model, "decoder", ("Linear",), path)
    rnn_settings = rnn.state
    mode = rnn_settings.get("mode")
    if mode not in CELLS:
        raise UserError(f"{path}: rnn has the mode {shown(mode)}, not one of {', '.join(CELLS)}")
    declared = model.get("rnn_type", model.get("rnnType", mode))
    if declared != mode:
        raise UserError(f"{path}: the model says rnn_type {shown(declared)} but its rnn runs {shown(mode)}")
    if rnn_settings.get("bidirectional") or rnn_settings.get("proj_size", 0) or rnn_settings.get("batch_first"):
        raise UserError(f"{path}: rnn is bidirectional, projected or batch-first, which the example's RNNModel "
                        f"never is and lstm-lm cannot represent")
    if encoder.state.get("max_norm") is not None:
        raise UserError(f"{path}: the encoder renormalizes its rows (max_norm), which lstm-lm cannot represent")
    cell, gates = CELLS[mode]

    embedding = weight(encoder, "weight", path)  # (V, E)
    vocab_size, embedding_size = shape_of(embedding, "encoder.weight", 2, path)
    hidden_size, num_layers = rnn_settings.get("hidden_size"), rnn_settings.get("num_layers")
    if not (type(hidden_size) is int and type(num_layers) is int and hidden_size > 0 and num_layers > 0):
        raise UserError(f"{path}: rnn has hidden_size {shown(hidden_size)} and num_layers {shown(num_layers)}")
    weights = {"encoder.weight": embedding}
    for layer in range(num_layers):
        inputs = embedding_size if layer == 0 else hidden_size
        for name, shape in ((f"weight_ih_l{layer}", (gates * hidden_size, inputs)),
                            (f"weight_hh_l{layer}", (gates * hidden_size, hidden_size)),
                            (f"bias_ih_l{layer}", (gates * hidden_size,)),
                            (f"bias_hh_l{layer}", (gates * hidden_size,))):
            found = weight(rnn, name, path, optional=name.startswith("bias"))
            # a layer without biases computes what one with zero biases does
            weights[f"rnn.{name}"] = torch.zeros(shape) if found is None else expect_shape(found, shape,
                                                                                         f"rnn.{name}", path)
    decoder_weight = weight(decoder, "weight", path)
    tied = decoder_weight is embedding
    weights["decoder.weight"] = expect_shape(decoder_weight, (vocab_size, hidden_size), "decoder.weight", path)
    bias = weight(decoder, "bias", path, optional=True)
    weights["decoder.bias"] = torch.zeros(vocab_size) if bias is None else expect_shape(bias, (vocab_size,),
                                                                                        "decoder.bias", path)
    # fp16 and bf16 widen exactly, fp64 rounds to lstm-lm's fp32; a tied weight stays one tensor
    widened: dict[int, torch.Tensor] = {}
    weights = {name: widened.setdefault(id(tensor), tensor.float()) for name, tensor in weights.items()}
    return ExampleModel(cell=cell, vocab_size=vocab_size, embedding_size=embedding_size, hidden_size=hidden_size,
                        num_layers=num_layers, tied=tied, dropout=dropout_of(model, path), weights=weights)


def attributes(obj: Any, what: str, path: Path) -> dict[str, Any]:
    """A pickled module's __dict__."""
    if not (isinstance(obj, Inert) and isinstance(obj.state, dict)):
        found = obj.class_path if isinstance(obj, Inert) else type(obj).__name__
        raise UserError(f"{path}: {what} is {found}, not a module of the example's RNNModel")
    return obj.state


def submodule(model: dict[str, Any], name: str, classes: tuple[str, ...], path: Path) -> Inert:
    """The model's module `name`, one of torch.nn's `classes`."""
    modules = model.get("_modules")
    if not isinstance(modules, dict) or name not in modules:
        raise UserError(f"{path}: the model has no `{name}` module; the example's RNNModel has encoder, rnn and "
                        f"decoder")
    module = modules[name]
    attributes(module, name, path)
    if module.class_path.rpartition(".")[2] not in classes:
        raise UserError(f"{path}: the model's {name} is a {module.class_path}, not an nn.{' or nn.'.join(classes)}")
    return module


def weight(module: Inert, name: str, path: Path, optional: bool = False) -> torch.Tensor | None:
    """One of the module's parameters: the same tensor object for the same record, so that a tied weight comes
    back as one tensor."""
    parameters = module.state.get("_parameters")
    record = parameters.get(name) if isinstance(parameters, dict) else None
    if record is None and optional:
        return None
    if not isinstance(record, TensorRecord):
        raise UserError(f"{path}: {module.class_path} has no tensor `{name}`")
    tensor = record.tensor()
    if not tensor.is_floating_point():
        raise UserError(f"{path}: {module.class_path}.{name} holds {tensor.dtype} numbers, not floating point")
    return tensor


def shape_of(tensor: torch.Tensor, name: str, dims: int, path: Path) -> tuple[int, ...]:
    if tensor.dim() != dims:
        raise UserError(f"{path}: {name} has {tensor.dim()} dimensions, not {dims}")
    return tuple(tensor.shape)


def expect_shape(tensor: torch.Tensor, shape: tuple[int, ...], name: str, path: Path) -> torch.Tensor:
    if tuple(tensor.shape) != shape:
        raise UserError(f"{path}: {name} is {tuple(tensor.shape)}, not the {shape} the model's sizes call for")
    return tensor


def dropout_of(model: dict[str, Any], path: Path) -> float:
    """`drop`'s probability; the earliest versions of the example had no dropout."""
    modules = model.get("_modules", {})
    if "drop" not in modules:
        return 0.0
    p = attributes(modules["drop"], "drop", path).get("p")
    if not (isinstance(p, (int, float)) and 0 <= p < 1):
        raise UserError(f"{path}: drop has the probability {shown(p)}")
    return float(p)

"""FILE.json, written beside an exported FILE: what a program needs to call the step function without lstm-lm.

    format            onnx | torchscript;  file: FILE's name
    inputs, outputs   in call order: name, shape (sizes, or "time" and "batch", which each call chooses), dtype
    state             each state tensor: its input and output names, shape (layers, "batch", hidden), dtype;
                      zeros start a text
    tokenizer         kind (word, char, bpe), vocabulary (the token of each id, in id order), boundary_id (the
                      token that ends a line, which primes the model), unk_id, lowercase
    model, run        the cell, sizes and softmax; the run directory and weights it came from, and lstm-lm's version

A character model's vocabulary holds single characters (unit "unicode") or byte values 0-255 (unit "byte"), with
"<unk>" at id 0. A BPE model's holds its subword strings, but cutting text into them needs the run's
tokenizer.json (the `tokenizers` library); the list alone decodes, encodes only by lookup.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .. import __version__
from ..data.tokenizers import BPETokenizer, CharTokenizer, Tokenizer, WordTokenizer
from ..model.language_model import LanguageModel, layer_sizes
from .step_module import StepModule


def sidecar_path(output: Path) -> Path:
    return output.with_name(output.name + ".json")


def vocabulary(tokenizer: Tokenizer) -> list[str | int]:
    if isinstance(tokenizer, WordTokenizer):
        return list(tokenizer.itos)
    if isinstance(tokenizer, CharTokenizer):
        return list(tokenizer.units)
    if isinstance(tokenizer, BPETokenizer):
        by_id = {index: token for token, index in tokenizer.model.get_vocab(with_added_tokens=True).items()}
        return [by_id[index] for index in range(tokenizer.vocab_size)]
    raise TypeError(f"unknown tokenizer {type(tokenizer).__name__}")


def tokenizer_entry(tokenizer: Tokenizer) -> dict[str, Any]:
    entry: dict[str, Any] = {"kind": tokenizer.kind}
    if isinstance(tokenizer, CharTokenizer):
        entry["unit"] = tokenizer.unit
    if isinstance(tokenizer, BPETokenizer):
        entry["encoding"] = "needs the run's tokenizer.json: this list decodes, but does not cut text into subwords"
    return {**entry, "lowercase": tokenizer.lowercase, "boundary_id": tokenizer.boundary_id,
            "unk_id": tokenizer.unk_id, "vocabulary": vocabulary(tokenizer)}


def sidecar(format_name: str, output: Path, step: StepModule, model: LanguageModel, tokenizer: Tokenizer,
            run_dir: Path, weights: str) -> dict[str, Any]:
    inputs, outputs = step.inputs(), step.outputs()
    state = [{"input": given["name"], "output": returned["name"], "shape": given["shape"], "dtype": given["dtype"]}
             for given, returned in zip(inputs[1:], outputs[1:], strict=True)]
    config = model.config
    return {
        "format": format_name,
        "file": output.name,
        "inputs": inputs,
        "outputs": outputs,
        "state": state,
        "tokenizer": tokenizer_entry(tokenizer),
        "model": {"cell": config.cell, "layer_sizes": layer_sizes(config), "embedding_size": config.embedding_size,
                  "softmax": config.softmax, "tie_weights": config.tie_weights, "vocab_size": model.vocab_size,
                  "parameters": model.parameter_count()},
        "run": {"directory": str(run_dir.resolve()), "weights": weights},
        "lstm_lm_version": __version__,
    }


def sidecar_text(description: dict[str, Any]) -> str:
    """JSON with one line per key, and per element of the lists of inputs, outputs and state: readable, yet the
    vocabulary (one list) stays one line."""
    def dumps(value: Any) -> str:
        return json.dumps(value, ensure_ascii=False)

    lines = []
    for key, value in description.items():
        if isinstance(value, list) and all(isinstance(item, dict) for item in value):
            inner = ",\n".join(f"    {dumps(item)}" for item in value)
            lines.append(f"  {dumps(key)}: [\n{inner}\n  ]")
        elif isinstance(value, dict):
            inner = ",\n".join(f"    {dumps(k)}: {dumps(v)}" for k, v in value.items())
            lines.append(f"  {dumps(key)}: {{\n{inner}\n  }}")
        else:
            lines.append(f"  {dumps(key)}: {dumps(value)}")
    return "{\n" + ",\n".join(lines) + "\n}\n"

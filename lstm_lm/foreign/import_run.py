"""`lstm-lm import`: a checkpoint of the PyTorch word_language_model example (or colorlessgreenRNNs') written as
an lstm-lm run directory, which evaluate, sample, eval-agreement and surprisal then read like any other.

The directory holds what a trained run's does (rundir/layout.py) but checkpoint.pt and metrics.jsonl: there is no
training to resume. run.json says where the weights came from (the file, its SHA-256, its format, the vocabulary's
source) under `imported_from`, with status "imported".
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from ..config import Config, config_from_dict
from ..data.tokenizers import WordTokenizer
from ..errors import UserError
from ..model.language_model import LanguageModel
from ..rundir.checkpoint import model_weights, save_tensors
from ..rundir.layout import RUN_INFO, WEIGHTS
from ..rundir.run_files import write_run_files, write_run_info
from ..rundir.run_lock import run_lock
from .import_example import ImportedModel, import_example
from .torch_file import ZIP_SIGNATURE


def import_run(model_path: Path, out: Path, *, vocab: Path | None = None, corpus: Path | None = None,
               force: bool = False) -> dict[str, Any]:
    """Check the checkpoint and its vocabulary, then write the run directory `out`; returns its run.json."""
    if (out / RUN_INFO).exists() and not force:
        raise UserError(f"{out}: already holds a run; pass --force to replace it, or choose another --out")
    imported = import_example(model_path, vocab, corpus)  # every check before anything is written
    config = imported_config(imported, corpus, model_path)
    tokenizer = WordTokenizer(imported.tokens, lowercase=False)  # the example splits on whitespace, as is
    model = LanguageModel(config.model, tokenizer.vocab_size)
    model.load_state_dict(imported.state_dict, strict=True)
    info = {"status": "imported", "precision": "fp32", "device": "cpu", "parameters": model.parameter_count(),
            "vocab_size": tokenizer.vocab_size, "tokenizer": "word",
            "imported_from": {"path": str(model_path.resolve()), "sha256": sha256(model_path),
                              "format": file_format(model_path),
                              "model": f"word_language_model RNNModel ({imported.original.cell.upper()})",
                              "vocabulary": str((vocab or corpus).resolve())}}
    out.mkdir(parents=True, exist_ok=True)
    with run_lock(out):
        write_run_files(out, config, tokenizer)
        save_tensors(out / WEIGHTS, model_weights(model))
        write_run_info(out, info)  # last: a directory without run.json is not a run
    return info


def imported_config(imported: ImportedModel, corpus: Path | None, model_path: Path) -> Config:
    """The run's config: the network's `model` section; the corpus it was trained on as `data.path` when given
    (so that `lstm-lm evaluate RUN --split test` reads it); fp32, the precision the weights were trained in."""
    raw = {"data": {"path": str(corpus) if corpus is not None else "(imported: give evaluate --file)"},
           "tokenizer": {"kind": "word", "lowercase": False},
           "model": imported.model_config,
           "train": {"precision": "fp32", "device": "cpu"}}
    return config_from_dict(raw, f"{model_path} (imported)")


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_format(path: Path) -> str:
    with open(path, "rb") as file:
        zipped = file.read(len(ZIP_SIGNATURE)) == ZIP_SIGNATURE
    return "zip (torch >= 1.6)" if zipped else "legacy (torch < 1.6)"

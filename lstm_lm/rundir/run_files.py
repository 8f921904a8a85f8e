"""Reading and writing the run directory's small files (config.yaml, tokenizer.json, run.json, metrics.jsonl), and
rebuilding a whole run from them: lstm_lm/rundir/layout.py lists what the directory holds."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .. import __version__
from ..atomic import atomic_write_text
from ..config import Config, config_from_dict, config_to_yaml, read_yaml
from ..data.tokenizers import Tokenizer, tokenizer_from_dict, tokenizer_to_json
from ..errors import UserError
from ..model.language_model import LanguageModel
from ..model.memory import allocate_model
from ..reading import read_json
from .checkpoint import load_model_weights, load_tensors
from .layout import CHECKPOINT, CONFIG, FORMAT_VERSION, RUN_INFO, TOKENIZER, WEIGHTS


@dataclass
class LoadedRun:
    directory: Path
    config: Config
    tokenizer: Tokenizer
    model: LanguageModel
    info: dict[str, Any]


def write_run_files(directory: Path, config: Config, tokenizer: Tokenizer) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    atomic_write_text(directory / CONFIG, config_to_yaml(config))
    atomic_write_text(directory / TOKENIZER, tokenizer_to_json(tokenizer))


def write_run_info(directory: Path, info: dict[str, Any]) -> None:
    info = {"format_version": FORMAT_VERSION, "lstm_lm_version": __version__, **info}
    atomic_write_text(directory / RUN_INFO, json.dumps(info, indent=2) + "\n")


def read_run_info(directory: Path) -> dict[str, Any]:
    path = directory / RUN_INFO
    info = read_json(path, missing=f"not found; is {directory} a run directory made by `lstm-lm train`?")
    version = info.get("format_version") if isinstance(info, dict) else None
    if version != FORMAT_VERSION:
        raise UserError(f"{path}: run directory format {version!r}, but this lstm-lm reads format "
                        f"{FORMAT_VERSION}")
    return info


def read_config(directory: Path) -> Config:
    path = directory / CONFIG
    return config_from_dict(read_yaml(path), str(path))


def read_tokenizer(directory: Path) -> Tokenizer:
    path = directory / TOKENIZER
    return tokenizer_from_dict(read_json(path), str(path))


def load_run(directory: str | Path, device: torch.device, weights: str = WEIGHTS) -> LoadedRun:
    """Rebuild config, tokenizer and model (best weights by default) from a run directory alone."""
    directory = Path(directory)
    if not directory.is_dir():
        raise UserError(f"{directory}: run directory not found")
    info = read_run_info(directory)
    config = read_config(directory)
    tokenizer = read_tokenizer(directory)
    model = allocate_model(config.model, tokenizer.vocab_size, device)
    path = directory / weights
    state = load_tensors(path)
    load_model_weights(model, state["model"] if weights == CHECKPOINT else state, path)
    model.eval()
    return LoadedRun(directory, config, tokenizer, model, info)


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """Records from metrics.jsonl; a last line cut short by a killed run is skipped."""
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            continue
    return records

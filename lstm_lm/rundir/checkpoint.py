"""The run directory: everything needed to rebuild, evaluate, sample from and resume a run.

    RUN_DIR/
      config.yaml      the fully resolved config
      tokenizer.json   the tokenizer (plain JSON)
      model.pt         best weights by validation (a state dict of tensors)
      checkpoint.pt    the latest weights, optimizer and trainer state, RNG state and hidden state, for --resume
      checkpoint-STEP.pt   older checkpoints, with train.keep_checkpoints > 1; resume falls back to them
      run.json         what the run is: format version, status, sizes, best and final numbers
      metrics.jsonl    one JSON record per line: progress, validation, test
      train.lock       locked by the trainer training the directory; says its process id and host (run_lock.py)

Tensors are saved with `torch.save` and read back only with `torch.load(weights_only=True)`, which refuses any
pickle that would run code. Every file is written atomically but train.lock, which holds no results.
"""

from __future__ import annotations

import io
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
import yaml

from . import __version__
from .atomic import atomic_write_bytes, atomic_write_text
from .config import Config, config_from_dict, config_to_yaml
from .errors import UserError
from .memory import allocate_model
from .model import LanguageModel
from .tokenizers import Tokenizer, tokenizer_from_dict, tokenizer_to_json

FORMAT_VERSION = 1
CONFIG, TOKENIZER, WEIGHTS, CHECKPOINT, RUN_INFO, METRICS = (
    "config.yaml", "tokenizer.json", "model.pt", "checkpoint.pt", "run.json", "metrics.jsonl")


@dataclass
class LoadedRun:
    directory: Path
    config: Config
    tokenizer: Tokenizer
    model: LanguageModel
    info: dict[str, Any]


def save_tensors(path: Path, state: dict[str, Any]) -> None:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load_tensors(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise UserError(f"{path}: file not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises UnpicklingError, RuntimeError, EOFError... for bad files
        unsafe = re.search(r"Unsupported global: GLOBAL (\S+)", str(error))
        if unsafe:
            raise UserError(f"{path}: refused to load: it would run code ({unsafe.group(1)}); a checkpoint "
                            f"holds only tensors and plain data") from None
        raise UserError(f"{path}: cannot read checkpoint: corrupted or truncated ({type(error).__name__})") from None


def checkpoint_files(directory: Path) -> list[Path]:
    """checkpoint.pt, then the older checkpoints kept beside it, newest first: the order resume tries them in."""
    older = []
    for path in directory.glob("checkpoint-*.pt"):
        step = path.name[len("checkpoint-"):-len(".pt")]
        if step.isdigit():
            older.append((int(step), path))
    latest = [directory / CHECKPOINT] if (directory / CHECKPOINT).is_file() else []
    return latest + [path for _, path in sorted(older, reverse=True)]


def write_checkpoint(directory: Path, state: dict[str, Any], keep: int, previous_step: int | None) -> None:
    """Write checkpoint.pt atomically. With keep > 1 the file it replaces (written at `previous_step`) lives on as
    checkpoint-<previous_step>.pt, and the oldest beyond `keep` files in all are deleted."""
    latest = directory / CHECKPOINT
    rotate = previous_step is not None and previous_step != state["trainer"]["step"]
    if keep > 1 and rotate and latest.is_file():
        second_name(latest, directory / f"checkpoint-{previous_step}.pt")
    save_tensors(latest, {"format_version": FORMAT_VERSION, **state})
    for old in checkpoint_files(directory)[keep:]:
        old.unlink(missing_ok=True)


def second_name(source: Path, target: Path) -> None:
    """Give `source` a second name without copying: it keeps the old bytes once `source` is replaced by a rename."""
    target.unlink(missing_ok=True)  # a checkpoint of the same step from an abandoned stretch of the run
    try:
        os.link(source, target)
    except OSError:  # a filesystem without hard links: copy instead
        atomic_write_bytes(target, source.read_bytes())


def load_checkpoint(directory: Path, warn: Callable[[str], None]) -> tuple[Path, dict[str, Any]]:
    """The newest checkpoint that loads, and its path; a damaged newer one is named in a warning line."""
    candidates = checkpoint_files(directory)
    if not candidates:
        raise UserError(f"{directory}: no {CHECKPOINT} to resume from")
    skipped: list[UserError] = []
    for path in candidates:
        try:
            state = load_tensors(path)
        except UserError as error:
            skipped.append(error)
            continue
        check_checkpoint_format(path, state)
        if skipped:
            warn(f"warning: {skipped[0]}; resuming from {path.name} instead")
        return path, state
    raise skipped[0]


def check_checkpoint_format(path: Path, state: Any) -> None:
    if not isinstance(state, dict) or "trainer" not in state:
        raise UserError(f"{path}: not a training checkpoint (model.pt holds weights only; resume needs "
                        f"{CHECKPOINT})")
    version = state.get("format_version", 1)  # checkpoints written before the key have format 1's layout
    if version != FORMAT_VERSION:
        raise UserError(f"{path}: checkpoint format {version!r}, but this lstm-lm reads format {FORMAT_VERSION}")


def model_weights(model: LanguageModel) -> dict[str, torch.Tensor]:
    """The state dict without aliases: a tied decoder weight is stored once, under the embedding's name."""
    owners = weight_names(model)
    return {name: tensor.detach().cpu() for name, tensor in model.state_dict().items() if name in owners}


def weight_names(model: LanguageModel) -> set[str]:
    # named_parameters() lists a shared parameter once, under the first name it was registered with.
    return {name for name, _ in model.named_parameters()} | {name for name, _ in model.named_buffers()}


def load_model_weights(model: LanguageModel, weights: dict[str, torch.Tensor], where: Path) -> None:
    expected = weight_names(model)
    if set(weights) != expected:
        missing, extra = sorted(expected - set(weights)), sorted(set(weights) - expected)
        raise UserError(f"{where}: weights do not match the config (missing {missing[:3]}, unexpected "
                        f"{extra[:3]})")
    try:
        model.load_state_dict(weights, strict=False)
    except RuntimeError as error:
        shape_line = next((line.strip() for line in str(error).splitlines() if "size mismatch" in line),
                          str(error).splitlines()[0])
        raise UserError(f"{where}: weights do not match the config: {shape_line}") from None


def write_run_files(directory: Path, config: Config, tokenizer: Tokenizer) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    atomic_write_text(directory / CONFIG, config_to_yaml(config))
    atomic_write_text(directory / TOKENIZER, tokenizer_to_json(tokenizer))


def write_run_info(directory: Path, info: dict[str, Any]) -> None:
    info = {"format_version": FORMAT_VERSION, "lstm_lm_version": __version__, **info}
    atomic_write_text(directory / RUN_INFO, json.dumps(info, indent=2) + "\n")


def read_run_info(directory: Path) -> dict[str, Any]:
    path = directory / RUN_INFO
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path}: not found; is {directory} a run directory made by `lstm-lm train`?") from None
    except (OSError, ValueError) as error:
        raise UserError(f"{path}: cannot read ({error})") from None
    version = info.get("format_version")
    if version != FORMAT_VERSION:
        raise UserError(f"{path}: run directory format {version!r}, but this lstm-lm reads format "
                        f"{FORMAT_VERSION}")
    return info


def read_config(directory: Path) -> Config:
    path = directory / CONFIG
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise UserError(f"{path}: not found") from None
    except yaml.YAMLError as error:
        raise UserError(f"{path}: invalid YAML ({error})") from None
    return config_from_dict(raw, str(path))


def read_tokenizer(directory: Path) -> Tokenizer:
    path = directory / TOKENIZER
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path}: not found") from None
    except (OSError, ValueError) as error:
        raise UserError(f"{path}: cannot read ({error})") from None
    return tokenizer_from_dict(state, str(path))


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

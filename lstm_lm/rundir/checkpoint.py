"""Tensors on disk: the weights (model.pt) and the training checkpoints (checkpoint.pt and the older ones kept
beside it), written atomically and read back only with `torch.load(weights_only=True)`, which refuses any pickle
that would run code."""

from __future__ import annotations

import io
import os
import re
from pathlib import Path
from typing import Any, Callable

import torch

from ..atomic import atomic_write_bytes
from ..errors import UserError
from ..model.language_model import LanguageModel
from .layout import CHECKPOINT, FORMAT_VERSION


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

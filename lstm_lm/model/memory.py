"""Building the model only where it fits: a config whose model cannot be allocated (`model.hidden_size=10000000`)
ends in one line giving its parameter count and the memory it needs, not in an allocator's traceback or, where
the OS overcommits memory, in the OOM killer halfway through initializing the weights."""

from __future__ import annotations

import os

import torch

from ..config import ModelConfig
from ..errors import UserError
from .language_model import LanguageModel

# fp32 copies of the weights that training keeps (autocast leaves weights and optimizer state in fp32): the
# weights, their gradients and the optimizer's state (AdamW: two moments; NT-ASGD: the running average, once
# averaging begins; SGD without momentum: none).
TRAINING_COPIES = {"adamw": 4, "nt_asgd": 3, "sgd": 2}
FP32_BYTES = 4


def allocate_model(config: ModelConfig, vocab_size: int, device: torch.device,
                   optimizer: str | None = None) -> LanguageModel:
    """LanguageModel(config, vocab_size) on `device`, to be trained with `optimizer` (train.optimizer) or, with
    None, only to hold its weights.

    The parameters are counted first on the meta device, which allocates nothing and draws no random numbers, and
    a model whose training state exceeds the device's whole memory is refused before anything is allocated.
    Activations are not counted, so a model is refused only where it can never fit; the allocator's own failure
    (memory in use by others) becomes the same line."""
    with torch.device("meta"):
        count = LanguageModel(config, vocab_size).parameter_count()
    needed = count * FP32_BYTES * (TRAINING_COPIES[optimizer] if optimizer else 1)
    purpose = ("for training (weights, gradients and optimizer state in fp32)" if optimizer
               else "for the weights in fp32")
    size_line = (f"{size_keys(config, vocab_size)} make {count:,} parameters, which need about "
                 f"{format_bytes(needed)} {purpose}")
    have = device_memory(device)
    place = "this GPU" if device.type == "cuda" else "this machine"
    if have is not None and needed > have:
        raise UserError(f"{size_line}; {place} has {format_bytes(have)}")
    try:
        return LanguageModel(config, vocab_size).to(device)
    except RuntimeError as error:  # torch.cuda.OutOfMemoryError is one; the CPU allocator raises a plain one
        if not (isinstance(error, torch.cuda.OutOfMemoryError) or "allocate" in str(error)):
            raise
        raise UserError(f"{size_line}; allocating them on {place} failed") from None


def size_keys(config: ModelConfig, vocab_size: int) -> str:
    """The keys that set the model's size, with their values."""
    layers = (f"model.hidden_sizes={config.hidden_sizes}" if config.hidden_sizes
              else f"model.hidden_size={config.hidden_size}, model.num_layers={config.num_layers}")
    return f"{layers}, model.embedding_size={config.embedding_size} and a vocabulary of {vocab_size:,}"


def device_memory(device: torch.device) -> int | None:
    """Bytes of memory on `device`: the GPU's, or the machine's physical RAM; None where the OS does not say."""
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).total_memory
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # Windows has no sysconf
        return None


UNITS = ("bytes", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB")


def format_bytes(count: float) -> str:
    """Decimal units, three significant digits: 480 TB, 25.3 GB."""
    power = 0
    while count >= 999.5 and power < len(UNITS) - 1:
        count /= 1000
        power += 1
    return f"{count:.3g} {UNITS[power]}"

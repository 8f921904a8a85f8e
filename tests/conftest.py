"""Shared test helpers: a synthetic corpus with learnable structure, quiet consoles, tiny training runs."""

from __future__ import annotations

import io
import os
import random
from pathlib import Path

import pytest
import torch
from rich.console import Console

from lstm_lm.config import Config, load_config
from lstm_lm.hardware.precision import cpu_bf16_problem
from lstm_lm.train.run_training import train

REPO = Path(__file__).resolve().parent.parent

# The test models are tiny: a second thread only adds synchronisation, and on a busy 2-core machine it makes
# every small matrix product wait for a core (ten times slower, measured).
torch.set_num_threads(1)

# Tests of bf16 at hardware speed (oneDNN's bf16 LSTM) skip where the CPU cannot run it, saying why; the fallback
# and refusal paths are tested everywhere by forcing the capability check (tests/hardware/test_precision.py).
needs_cpu_bf16 = pytest.mark.skipif(cpu_bf16_problem() is not None, reason=f"needs bf16 on this CPU: "
                                                                         f"{cpu_bf16_problem()}")


@pytest.fixture(autouse=True)
def cpu_unless_about_cuda(request, monkeypatch):
    """Tests run on the CPU (`auto` finds no CUDA) unless marked `cuda`: on a GPU machine the bit-exact resume tests
    would otherwise run on CUDA, where they are not bit-exact."""
    if request.node.get_closest_marker("cuda") is None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def subprocess_env() -> dict[str, str]:
    """The environment of a test's lstm-lm process: this checkout importable, one thread, and no GPU visible
    (the torchrun test would pick NCCL with one GPU)."""
    return {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}


def quiet_console() -> Console:
    return Console(file=io.StringIO(), width=200)


def write_synthetic_corpus(directory: Path, lines_per_split=(600, 60, 60), seed: int = 0) -> Path:
    """Sentences `key w1 w2 w3 w4 w5` where the five words are fixed by the key, one of ten.

    Unigram entropy is about log(60) nats; once the model has learned the patterns, only the key word of each
    line is uncertain (log 10 over 7 tokens with <eos>), so a model that learns falls far below the former.
    """
    rng = random.Random(seed)
    keys = [f"k{i}" for i in range(10)]
    patterns = {key: [f"w{i}_{j}" for j in range(5)] for i, key in enumerate(keys)}
    directory.mkdir(parents=True, exist_ok=True)
    for split, count in zip(("train", "valid", "test"), lines_per_split):
        lines = []
        for _ in range(count):
            key = rng.choice(keys)
            lines.append(" ".join([key, *patterns[key]]))
        (directory / f"{split}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return directory


@pytest.fixture
def synthetic_corpus(tmp_path: Path) -> Path:
    return write_synthetic_corpus(tmp_path / "corpus")


def tiny_config(corpus: Path, cache_dir: Path, *overrides: str) -> Config:
    """A one-layer 32-unit model on `corpus`, trained with AdamW, logging every few steps."""
    return load_config(None, [
        f"data.path={corpus}", f"data.cache_dir={cache_dir}",
        "model.embedding_size=32", "model.hidden_size=32", "model.num_layers=1",
        "train.batch_size=8", "train.bptt=10", "train.optimizer=adamw", "train.lr=0.01",
        "train.epochs=2", "train.log_every_steps=5", "train.eval_batch_size=4", "train.device=cpu", *overrides])


def train_quietly(config: Config, run_dir: Path, **kwargs) -> dict:
    return train(config, run_dir, console=quiet_console(), **kwargs)

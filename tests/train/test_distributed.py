"""Two CPU processes under Gloo: ranks stay identical, and match one process reading the same columns."""

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from lstm_lm.config import config_to_yaml, load_config
from lstm_lm.data.corpus import load_corpus
from lstm_lm.rundir.checkpoint import load_tensors
from lstm_lm.rundir.run_files import read_metrics
from lstm_lm.train.distributed import barrier, gather, join_world, leave_without_teardown, leave_world
from lstm_lm.train.progress import Reporter
from lstm_lm.train.trainer import Trainer
from tests.conftest import quiet_console, subprocess_env, tiny_config, train_quietly

pytestmark = pytest.mark.skipif(not (dist.is_available() and dist.is_gloo_available()),
                                reason="needs torch.distributed with Gloo")

# Two ranks of batch 4 read the columns one process of batch 8 reads: the synthetic train split has 4,200 tokens,
# 525 rows of 8, so each rank's 2,100-token shard is 525 rows of 4, its columns the whole stream's columns r·4...
TWO = ("train.batch_size=4", "train.lr_schedule=constant", "train.epochs=1")
ONE = ("train.batch_size=8", "train.lr_schedule=constant", "train.epochs=1")


def torchrun(*arguments: str) -> subprocess.CompletedProcess:
    env = subprocess_env()
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                           "-m", "lstm_lm", "train", *arguments], capture_output=True, text=True, env=env,
                          timeout=120)


def test_two_processes_match_one_and_resume_with_either_count(tmp_path, synthetic_corpus):
    cache = tmp_path / "cache"
    config_file = tmp_path / "two.yaml"
    config_file.write_text(config_to_yaml(tiny_config(synthetic_corpus, cache, *TWO, "train.max_steps=20")))
    run_dir = tmp_path / "two"
    first = torchrun("--config", str(config_file), "--out", str(run_dir))
    assert first.returncode == 0, first.stdout + first.stderr
    assert len(load_tensors(run_dir / "checkpoint.pt")["rank_states"]) == 2
    shutil.copytree(run_dir, tmp_path / "two-then-one")
    resumed = torchrun("--resume", str(run_dir), "train.max_steps=null")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr

    train_quietly(tiny_config(synthetic_corpus, cache, *ONE), tmp_path / "one")
    one, two = load_tensors(tmp_path / "one/checkpoint.pt"), load_tensors(run_dir / "checkpoint.pt")
    assert one["trainer"]["step"] == two["trainer"]["step"] == 53
    assert one["trainer"]["tokens"] == two["trainer"]["tokens"]
    for name, tensor in one["model"].items():
        assert torch.allclose(tensor, two["model"][name], rtol=0, atol=2e-5), name  # summed in another order
    info = json.loads((run_dir / "run.json").read_text())
    assert info["processes"] == 2 and info["results"]["test"]["tokens"] == 420  # every token, over both ranks
    steps = [r["step"] for r in read_metrics(run_dir / "metrics.jsonl") if r["event"] == "train"]
    assert steps == list(range(5, 55, 5))  # rank 0 alone writes: each record once

    # Resumed by one process of batch 8: the same columns, each with the hidden state its rank left.
    single = train_quietly(load_config(tmp_path / "two-then-one/config.yaml", [*ONE, "train.max_steps=null"]),
                           tmp_path / "two-then-one", resume=True)
    assert single["status"] == "finished" and single["steps"] == 53
    two_then_one = load_tensors(tmp_path / "two-then-one/checkpoint.pt")["model"]
    for name, tensor in one["model"].items():
        assert torch.allclose(tensor, two_then_one[name], rtol=0, atol=2e-5), name


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def identical_after_every_step(rank: int, port: int, config_file: str, run_dir: str) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    config = load_config(config_file, [])
    world, device = join_world(torch.device("cpu"))
    try:
        corpus = load_corpus(config.data, config.tokenizer)
        trainer = Trainer(config, Path(run_dir), corpus, device, Reporter(Path(os.devnull), quiet_console()), world)
        for step, (_, inputs, targets) in zip(range(1, 9), trainer.epoch_windows()):
            lengths = gather(torch.tensor(inputs.size(0)), world)
            assert lengths[0] == lengths[1], f"ranks read windows of other lengths at step {step}"
            trainer.train_step(inputs, targets)
            weights = torch.cat([p.detach().flatten() for p in trainer.parameters])
            copies = gather(weights, world)
            assert torch.equal(copies[0], copies[1]), f"ranks differ after step {step}"
            assert not torch.equal(*gather(inputs, world))  # each rank reads its own shard
        barrier(world)  # both ranks done before the group goes: Gloo may abort a rank whose peer left first
    finally:
        leave_world(world)
    # Every check passed; mp.spawn would report Gloo's abort at teardown as a failure (3 runs in 15 before).
    leave_without_teardown(0)


@pytest.mark.parametrize("options", [
    ("model.dropout=0.3",),
    # Layers run one by one with weight drop (masks differ between ranks), and window lengths drawn at random,
    # which must be the same on every rank.
    ("model.num_layers=2", "model.weight_drop=0.3", "model.dropout_hidden=0.2", "train.variable_bptt=true"),
])
def test_ranks_hold_identical_weights_after_every_step(tmp_path, synthetic_corpus, options):
    config = tiny_config(synthetic_corpus, tmp_path / "cache", *TWO, *options)
    load_corpus(config.data, config.tokenizer)  # fill the cache once, before two processes read it
    config_file = tmp_path / "config.yaml"
    config_file.write_text(config_to_yaml(config))
    mp.spawn(identical_after_every_step, args=(free_port(), str(config_file), str(tmp_path)), nprocs=2)

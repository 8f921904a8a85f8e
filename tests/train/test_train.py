import json
import math
import signal
import subprocess
import sys
import time

import pytest
import torch

from lstm_lm.config import load_config
from lstm_lm.data.batches import batchify
from lstm_lm.data.corpus import load_corpus
from lstm_lm.errors import UserError
from lstm_lm.rundir.checkpoint import load_tensors
from lstm_lm.rundir.run_files import load_run, read_metrics
from lstm_lm.train.schedule import epoch_decay_lr, plateau_lr
from lstm_lm.train.step import standalone_step
from tests.conftest import REPO, needs_cpu_bf16, subprocess_env, tiny_config, train_quietly


def unigram_entropy(ids: torch.Tensor) -> float:
    counts = torch.bincount(ids).double()
    p = counts[counts > 0] / counts.sum()
    return float(-(p * p.log()).sum())


def test_model_learns_far_below_unigram_entropy(tmp_path, synthetic_corpus):
    config = tiny_config(synthetic_corpus, tmp_path / "cache", "train.epochs=6")
    info = train_quietly(config, tmp_path / "run")
    corpus = load_corpus(config.data, config.tokenizer)
    entropy = unigram_entropy(corpus.test)
    # Only the key word of each 7-token line is uncertain: the floor is log(10) / 7 = 0.33 nats per token.
    assert info["results"]["test"]["loss"] < 0.5 * entropy
    assert info["results"]["test"]["loss"] < 0.6
    assert info["results"]["test"]["tokens"] == corpus.test.numel()


def test_run_directory_describes_itself(tmp_path, synthetic_corpus):
    run_dir = tmp_path / "run"
    train_quietly(tiny_config(synthetic_corpus, tmp_path / "cache"), run_dir)
    assert {p.name for p in run_dir.iterdir()} == {"config.yaml", "tokenizer.json", "model.pt", "checkpoint.pt",
                                                   "run.json", "metrics.jsonl", "train.lock"}
    info = json.loads((run_dir / "run.json").read_text())
    assert info["status"] == "finished" and info["format_version"] == 1 and info["epochs_completed"] == 2
    events = [r["event"] for r in read_metrics(run_dir / "metrics.jsonl")]
    assert events.count("valid") == 2 and events[-1] == "test" and "train" in events
    run = load_run(run_dir, torch.device("cpu"))  # rebuilt from the directory alone
    assert run.config.model.hidden_size == 32 and run.tokenizer.vocab_size == 62
    assert not list(run_dir.glob("*.tmp"))


def test_existing_run_is_not_overwritten_without_force(tmp_path, synthetic_corpus):
    config = tiny_config(synthetic_corpus, tmp_path / "cache", "train.max_steps=3")
    train_quietly(config, tmp_path / "run")
    with pytest.raises(UserError, match="already holds a run"):
        train_quietly(config, tmp_path / "run")
    assert train_quietly(config, tmp_path / "run", force=True)["steps"] == 3


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_clipping_bounds_the_global_norm(tmp_path, synthetic_corpus, optimizer):
    config = tiny_config(synthetic_corpus, tmp_path / "cache", "train.clip=0.01", f"train.optimizer={optimizer}",
                         "train.weight_decay=0")
    corpus = load_corpus(config.data, config.tokenizer)
    train_step = standalone_step(config, corpus.tokenizer.vocab_size, torch.device("cpu"))  # no run directory
    data = batchify(corpus.train, config.train.batch_size)
    inputs, targets = data[:10], data[1:11]
    before = [p.detach().clone() for p in train_step.parameters]
    _, (_, pre_clip_norm) = train_step(inputs, targets, train_step.model.init_hidden(config.train.batch_size),
                                       config.train.lr)
    assert pre_clip_norm > 0.1  # the logged norm is the one before clipping
    if optimizer == "sgd":  # plain SGD takes the clipped gradient as a shorter step: lr * 0.01 long in all
        moves = [(p.detach() - b).norm() for p, b in zip(train_step.parameters, before)]
        step = torch.linalg.vector_norm(torch.stack(moves))
        assert step / config.train.lr == pytest.approx(0.01, rel=1e-3)
    else:  # the gradients themselves are scaled
        after = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in train_step.parameters]))
        assert after == pytest.approx(0.01, rel=1e-4)


def test_resumed_run_ends_with_identical_weights(tmp_path, synthetic_corpus):
    overrides = ("model.dropout=0.3", "train.epochs=2", "train.optimizer=sgd", "train.lr_schedule=plateau")
    straight = tmp_path / "straight"
    train_quietly(tiny_config(synthetic_corpus, tmp_path / "cache", *overrides), straight)
    resumed = tmp_path / "resumed"
    first = train_quietly(tiny_config(synthetic_corpus, tmp_path / "cache", *overrides, "train.max_steps=7"), resumed)
    assert first["steps"] == 7 and first["epochs_completed"] == 0  # stopped in the middle of epoch 1
    train_quietly(load_config(resumed / "config.yaml", ["train.max_steps=null"]), resumed, resume=True)
    a, b = load_tensors(straight / "checkpoint.pt"), load_tensors(resumed / "checkpoint.pt")
    assert a["trainer"]["step"] == b["trainer"]["step"] > 7
    for name, tensor in a["model"].items():
        assert torch.equal(tensor, b["model"][name]), name
    steps = [r["step"] for r in read_metrics(resumed / "metrics.jsonl") if r["event"] == "train"]
    assert steps == sorted(set(steps))  # no duplicated progress records after the resume


def test_schedules():
    assert [epoch_decay_lr(1.0, e, 0.5, 4) for e in range(7)] == [1, 1, 1, 1, 0.5, 0.25, 0.125]
    assert plateau_lr(20.0, improved=True, decay=0.25) == 20.0
    assert plateau_lr(20.0, improved=False, decay=0.25) == 5.0


def test_epoch_decay_reaches_the_optimizer(tmp_path, synthetic_corpus):
    config = tiny_config(synthetic_corpus, tmp_path / "cache", "train.epochs=3", "train.lr_schedule=epoch_decay",
                         "train.lr_decay=0.5", "train.decay_start_epoch=1", "train.lr=0.01")
    train_quietly(config, tmp_path / "run")
    lrs = {r["epoch"]: r["lr"] for r in read_metrics(tmp_path / "run/metrics.jsonl") if r["event"] == "valid"}
    assert lrs == {1: 0.01, 2: 0.005, 3: 0.0025}


def test_sigint_saves_a_resumable_checkpoint(tmp_path, synthetic_corpus):
    run_dir = tmp_path / "run"
    env = subprocess_env()
    command = [sys.executable, "-m", "lstm_lm", "train", "--config", str(REPO / "configs/tiny.yaml"),
               "--out", str(run_dir), f"data.path={synthetic_corpus}", f"data.cache_dir={tmp_path / 'cache'}",
               "train.max_steps=null", "train.epochs=1000", "train.log_every_steps=1", "train.batch_size=2"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    deadline = time.time() + 60
    while time.time() < deadline and not any(r.get("event") == "train"
                                             for r in read_metrics(run_dir / "metrics.jsonl")):
        time.sleep(0.1)
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 130, output
    assert "Continue with: lstm-lm train --resume" in output
    assert "Traceback" not in output
    info = json.loads((run_dir / "run.json").read_text())
    saved = load_tensors(run_dir / "checkpoint.pt")
    assert info["status"] == "interrupted" and saved["trainer"]["step"] == info["steps"] > 0
    resumed = train_quietly(load_config(run_dir / "config.yaml", ["train.epochs=2"]), run_dir, resume=True)
    assert resumed["status"] == "finished" and resumed["steps"] > info["steps"]
    assert math.isfinite(resumed["results"]["test"]["ppl"])


@needs_cpu_bf16
def test_bf16_autocast_trains_with_fp32_master_weights(tmp_path, synthetic_corpus):
    config = tiny_config(synthetic_corpus, tmp_path / "cache", "train.precision=bf16", "train.epochs=4")
    info = train_quietly(config, tmp_path / "run")
    assert info["precision"] == "bf16"
    assert info["results"]["test"]["loss"] < 0.6  # learns as fp32 does (see the test above)
    weights = load_tensors(tmp_path / "run/model.pt")
    assert all(tensor.dtype == torch.float32 for tensor in weights.values())


def test_fp16_on_cpu_is_refused(tmp_path, synthetic_corpus):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    config = tiny_config(synthetic_corpus, tmp_path / "cache", "train.precision=fp16", "train.device=cpu")
    with pytest.raises(UserError, match="train.precision=fp16: fp16 needs a CUDA device; use fp32 or auto"):
        train_quietly(config, tmp_path / "run")


def test_same_seed_same_weights_on_cpu(tmp_path, synthetic_corpus):
    weights = []
    for name in ("a", "b"):
        train_quietly(tiny_config(synthetic_corpus, tmp_path / "cache", "model.dropout=0.2"), tmp_path / name)
        weights.append(load_tensors(tmp_path / name / "checkpoint.pt")["model"])
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    other = tiny_config(synthetic_corpus, tmp_path / "cache", "model.dropout=0.2", "train.seed=2")
    train_quietly(other, tmp_path / "c")
    different = load_tensors(tmp_path / "c/checkpoint.pt")["model"]
    assert not torch.equal(weights[0]["embedding.weight"], different["embedding.weight"])

"""Runs that get killed, signalled, poisoned by NaN or stopped by a full disk keep a checkpoint that loads."""

import errno
import io
import os
import random
import signal
import subprocess
import sys
import time

import pytest
import torch
from rich.console import Console

from lstm_lm.config import config_to_yaml, load_config
from lstm_lm.data.corpus import load_corpus
from lstm_lm.errors import UserError
from lstm_lm.model.language_model import LanguageModel
from lstm_lm.rundir.checkpoint import load_tensors
from lstm_lm.rundir.run_files import read_metrics
from lstm_lm.train.progress import Reporter
from lstm_lm.train.run_training import train
from lstm_lm.train.trainer import Trainer
from tests.conftest import quiet_console, subprocess_env, tiny_config, train_quietly


def start_cli(*arguments: str) -> subprocess.Popen:
    env = subprocess_env()
    return subprocess.Popen([sys.executable, "-m", "lstm_lm", "train", *arguments], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env)


def last_train_step(run_dir) -> int:
    return max((r["step"] for r in read_metrics(run_dir / "metrics.jsonl") if r.get("event") == "train"), default=0)


def wait_for_step(process: subprocess.Popen, run_dir, step: int) -> None:
    deadline = time.time() + 60
    while process.poll() is None and last_train_step(run_dir) < step and time.time() < deadline:
        time.sleep(0.01)


def make_trainer(config, run_dir) -> Trainer:
    run_dir.mkdir(parents=True, exist_ok=True)
    corpus = load_corpus(config.data, config.tokenizer)
    return Trainer(config, run_dir, corpus, torch.device("cpu"), Reporter(run_dir / "metrics.jsonl",
                                                                          quiet_console()))


def all_finite(weights: dict) -> bool:
    return all(tensor.isfinite().all() for tensor in weights.values())


# ---- signals and kill -9 --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("signals", [1, 2], ids=["sigterm", "sigterm-twice"])
def test_sigterm_stops_with_a_checkpoint_that_loads(tmp_path, synthetic_corpus, signals):
    run_dir = tmp_path / "run"
    config = tmp_path / "config.yaml"
    config.write_text(config_to_yaml(tiny_config(synthetic_corpus, tmp_path / "cache", "train.epochs=1000",
                                                 "train.log_every_steps=1", "train.checkpoint_every_steps=1")))
    process = start_cli("--config", str(config), "--out", str(run_dir))
    wait_for_step(process, run_dir, 3)
    for _ in range(signals):  # a second signal quits at once, wherever the run is: maybe writing a checkpoint
        process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=60)
    assert "Traceback" not in output
    if signals == 1:
        assert process.returncode == 130, output
        assert "stopped by SIGTERM" in output and "Continue with: lstm-lm train --resume" in output
    else:  # -SIGTERM: the second signal came after the run had ended, when SIGTERM kills as usual
        assert process.returncode in (130, -signal.SIGTERM), output
    assert load_tensors(run_dir / "checkpoint.pt")["trainer"]["step"] >= 3
    assert not list(run_dir.glob(".*.tmp"))


def test_kill_9_at_random_points_then_resume_ends_with_the_uninterrupted_weights(tmp_path, synthetic_corpus):
    overrides = ("model.dropout=0.2", "train.epochs=2", "train.log_every_steps=1", "train.checkpoint_every_steps=3",
                 "train.keep_checkpoints=2")
    config = tiny_config(synthetic_corpus, tmp_path / "cache", *overrides)
    train_quietly(config, tmp_path / "straight")
    config_file = tmp_path / "config.yaml"
    config_file.write_text(config_to_yaml(config))
    run_dir = tmp_path / "killed"
    rng = random.Random()
    targets = sorted(rng.sample(range(4, 90), 3))  # 106 steps in all: kill at three random steps
    arguments = ["--config", str(config_file), "--out", str(run_dir)]
    for target in targets:
        process = start_cli(*arguments)
        wait_for_step(process, run_dir, target)
        time.sleep(rng.uniform(0, 0.02))  # anywhere in the step: forward, update, or writing a checkpoint
        process.kill()
        assert process.wait() == -signal.SIGKILL, targets  # killed, not finished
        assert load_tensors(run_dir / "checkpoint.pt")["trainer"]["step"] > 0, targets
        arguments = ["--resume", str(run_dir)]
    process = start_cli(*arguments)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, (targets, output)
    straight, killed = load_tensors(tmp_path / "straight/checkpoint.pt"), load_tensors(run_dir / "checkpoint.pt")
    assert killed["trainer"]["step"] == straight["trainer"]["step"] == 106
    for name, tensor in straight["model"].items():
        assert torch.equal(tensor, killed["model"][name]), (name, targets)
    steps = [r["step"] for r in read_metrics(run_dir / "metrics.jsonl") if r["event"] == "train"]
    assert steps == list(range(1, 107))  # each step logged once: records past the checkpoint dropped on resume


# ---- keeping several checkpoints ------------------------------------------------------------------------------------


def test_older_checkpoints_are_kept_pruned_and_used_when_the_latest_is_damaged(tmp_path, synthetic_corpus):
    run_dir = tmp_path / "run"
    overrides = ("train.keep_checkpoints=3", "train.checkpoint_every_steps=4")
    train_quietly(tiny_config(synthetic_corpus, tmp_path / "cache", *overrides, "train.max_steps=20"), run_dir)
    kept = sorted(path.name for path in run_dir.glob("checkpoint*.pt"))
    assert kept == ["checkpoint-12.pt", "checkpoint-16.pt", "checkpoint.pt"]
    for name, step in (("checkpoint.pt", 20), ("checkpoint-16.pt", 16), ("checkpoint-12.pt", 12)):
        assert load_tensors(run_dir / name)["trainer"]["step"] == step
    data = (run_dir / "checkpoint.pt").read_bytes()
    (run_dir / "checkpoint.pt").write_bytes(data[: len(data) // 3])
    output = io.StringIO()
    config = load_config(run_dir / "config.yaml", ["train.max_steps=24"])
    info = train(config, run_dir, resume=True, console=Console(file=output, width=300))
    lines = output.getvalue().splitlines()
    assert any("warning:" in line and "checkpoint.pt: cannot read checkpoint" in line
               and "resuming from checkpoint-16.pt instead" in line for line in lines), lines
    assert "resuming" in output.getvalue() and "step 16" in output.getvalue()
    assert info["status"] == "finished" and info["steps"] == 24
    assert sorted(path.name for path in run_dir.glob("checkpoint*.pt")) == [
        "checkpoint-16.pt", "checkpoint-20.pt", "checkpoint.pt"]  # the damaged file replaced, not kept


# ---- NaN and infinite losses ----------------------------------------------------------------------------------------


def poison_training_forward(monkeypatch, bad_calls) -> None:
    """Make the training forward passes numbered in `bad_calls` (from 1; evaluation not counted) return NaN."""
    original, calls = LanguageModel.forward, [0]

    def forward(self, tokens, hidden, targets=None, activations=False):
        losses, *rest = original(self, tokens, hidden, targets, activations)
        if self.training:
            calls[0] += 1
            if bad_calls(calls[0]):
                losses = losses * float("nan")
        return losses, *rest

    monkeypatch.setattr(LanguageModel, "forward", forward)


def test_a_nan_step_is_skipped_without_touching_weights_or_optimizer(tmp_path, synthetic_corpus, monkeypatch):
    trainer = make_trainer(tiny_config(synthetic_corpus, tmp_path / "cache"), tmp_path / "run")
    inputs, targets = trainer.train_data[:10], trainer.train_data[1:11]
    assert trainer.train_step(inputs, targets) is not None
    before = {name: p.detach().clone() for name, p in trainer.model.named_parameters()}
    adam_steps = [float(s["step"]) for s in trainer.optimizer.state.values()]
    poison_training_forward(monkeypatch, lambda call: True)
    assert trainer.train_step(inputs, targets) is None
    for name, p in trainer.model.named_parameters():
        assert torch.equal(p, before[name]), name
    assert [float(s["step"]) for s in trainer.optimizer.state.values()] == adam_steps


def test_isolated_bad_steps_are_counted_and_training_goes_on(tmp_path, synthetic_corpus, monkeypatch):
    poison_training_forward(monkeypatch, lambda call: call in (3, 9))
    run_dir = tmp_path / "run"
    info = train_quietly(tiny_config(synthetic_corpus, tmp_path / "cache", "train.max_bad_steps=2"), run_dir)
    assert info["status"] == "finished" and info["bad_steps"] == 2
    records = read_metrics(run_dir / "metrics.jsonl")
    assert not [r for r in records if r["event"] == "restore"]
    assert [r["bad_steps"] for r in records if r["event"] == "train"][:2] == [1, 2]  # logged at steps 5 and 10
    assert all_finite(load_tensors(run_dir / "model.pt")) and info["results"]["test"]["loss"] < 2.0


def test_bad_steps_in_a_row_restore_the_last_checkpoint_with_a_lower_lr(tmp_path, synthetic_corpus, monkeypatch):
    poison_training_forward(monkeypatch, lambda call: 18 <= call <= 20)
    run_dir = tmp_path / "run"
    config = tiny_config(synthetic_corpus, tmp_path / "cache", "train.max_bad_steps=3",
                         "train.checkpoint_every_steps=5", "train.lr_schedule=constant")
    output = io.StringIO()
    info = train(config, run_dir, console=Console(file=output, width=300))
    assert "3 bad steps in a row (loss not finite): restored checkpoint.pt of step 15, lr lowered to 0.005" in \
        output.getvalue()
    records = read_metrics(run_dir / "metrics.jsonl")
    restores = [r for r in records if r["event"] == "restore"]
    assert [(r["step"], r["lr"], r["bad_steps"]) for r in restores] == [(15, 0.005, 3)]
    after = [r["lr"] for r in records if r["event"] == "train" and records.index(r) > records.index(restores[0])]
    assert after and set(after) == {0.005}
    assert info["status"] == "finished" and info["bad_steps"] == 3 and info["steps"] == 106
    assert all_finite(load_tensors(run_dir / "model.pt"))


def test_a_loss_that_stays_nan_stops_the_run_and_never_saves_nan_weights(tmp_path, synthetic_corpus, monkeypatch):
    poison_training_forward(monkeypatch, lambda call: True)
    run_dir = tmp_path / "run"
    config = tiny_config(synthetic_corpus, tmp_path / "cache", "train.max_bad_steps=2")
    with pytest.raises(UserError, match=r"checkpoint.pt: the loss is still not finite after 3 restores of step 0 "
                                        r"with lr lowered to 0.000625"):
        train_quietly(config, run_dir)
    assert all_finite(load_tensors(run_dir / "checkpoint.pt")["model"])
    assert not (run_dir / "model.pt").exists()


def test_non_finite_weights_are_never_saved(tmp_path, synthetic_corpus):
    trainer = make_trainer(tiny_config(synthetic_corpus, tmp_path / "cache"), tmp_path / "run")
    trainer.save_checkpoint()
    trainer.validator.record(trainer.validate(), trainer.state, trainer.elapsed())
    saved_best = load_tensors(tmp_path / "run/model.pt")
    with torch.no_grad():
        trainer.model.embedding.weight[0, 0] = float("nan")
    trainer.state.step = 7
    trainer.save_checkpoint()
    assert load_tensors(tmp_path / "run/checkpoint.pt")["trainer"]["step"] == 0
    assert not trainer.validator.record(trainer.validate(), trainer.state, trainer.elapsed())  # a NaN validation loss is never the best
    best = load_tensors(tmp_path / "run/model.pt")
    assert all(torch.equal(best[name], saved_best[name]) for name in best)


# ---- a full disk or an unwritable run directory ---------------------------------------------------------------------


def test_full_disk_while_saving_names_the_file_and_keeps_the_previous_checkpoint(tmp_path, synthetic_corpus,
                                                                                 monkeypatch):
    run_dir = tmp_path / "run"
    trainer = make_trainer(tiny_config(synthetic_corpus, tmp_path / "cache"), run_dir)
    trainer.save_checkpoint()
    trainer.train_step(trainer.train_data[:10], trainer.train_data[1:11])
    trainer.state.step = 1

    def full_disk(source, destination):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(UserError, match=r"run/checkpoint.pt: cannot write: No space left on device; the previous "
                                        r"version, if any, is intact"):
        trainer.save_checkpoint()
    monkeypatch.undo()
    assert load_tensors(run_dir / "checkpoint.pt")["trainer"]["step"] == 0
    assert not list(run_dir.glob(".*.tmp"))


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes into read-only directories")
def test_read_only_run_directory_is_a_clear_error(tmp_path, synthetic_corpus):
    run_dir = tmp_path / "run"
    trainer = make_trainer(tiny_config(synthetic_corpus, tmp_path / "cache"), run_dir)
    trainer.save_checkpoint()
    run_dir.chmod(0o555)
    try:
        with pytest.raises(UserError, match=r"checkpoint.pt: cannot write: Permission denied"):
            trainer.save_checkpoint()
    finally:
        run_dir.chmod(0o755)
    assert load_tensors(run_dir / "checkpoint.pt")["trainer"]["step"] == 0

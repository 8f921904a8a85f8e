"""Machines shared with others: one trainer per run directory, run files that follow the umask, a model too large
for the machine refused in one line."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time

import pytest
from typer.testing import CliRunner

from lstm_lm.cli import app
from lstm_lm.config import config_to_yaml
from lstm_lm.rundir.checkpoint import load_tensors
from tests.conftest import REPO, subprocess_env, tiny_config, train_quietly

runner = CliRunner()
posix_only = pytest.mark.skipif(os.name != "posix", reason="flock and umask are POSIX")


def start(arguments: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, *arguments], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=subprocess_env())


def wait_for(condition, process: subprocess.Popen, what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert process.poll() is None, f"exited before {what}: {process.stdout.read()}"
        assert time.monotonic() < deadline, f"no {what} after {timeout} s"
        time.sleep(0.05)


def refusal(result, pid: int) -> str:
    """The one line a refused trainer prints, checked to name the process `pid`."""
    assert result.exit_code == 2, result.output
    line, = result.stderr.strip().splitlines()
    assert f"being trained by process {pid} on host " in line and "(train.lock)" in line, line
    return line


@posix_only
def test_a_second_trainer_is_refused_while_another_process_trains(tmp_path, synthetic_corpus):
    run_dir = tmp_path / "run"
    config = tiny_config(synthetic_corpus, tmp_path / "cache", "train.max_steps=3", "train.device=cpu")
    train_quietly(config, run_dir)
    (tmp_path / "config.yaml").write_text(config_to_yaml(config))
    holder = start(["-c", textwrap.dedent(f"""
        import time
        from pathlib import Path
        from lstm_lm.rundir.run_lock import run_lock
        with run_lock(Path({str(run_dir)!r})):
            print("locked", flush=True)
            time.sleep(120)
        """)])
    try:
        assert holder.stdout.readline() == "locked\n"
        before = {path.name: path.read_bytes() for path in run_dir.iterdir()}
        replaced = runner.invoke(app, ["train", "--config", str(tmp_path / "config.yaml"), "--out", str(run_dir),
                                       "--force"])
        line = refusal(replaced, holder.pid)
        assert line.startswith(f"error: {run_dir}: being trained by process {holder.pid} on host ")
        assert line.endswith("wait for it to finish or stop it")
        refusal(runner.invoke(app, ["train", "--resume", str(run_dir), "train.max_steps=6"]), holder.pid)
    finally:
        holder.kill()
        holder.wait()
    # --force deleted nothing and the resume wrote nothing: the directory is the finished run, byte for byte.
    assert {path.name: path.read_bytes() for path in run_dir.iterdir()} == before
    resumed = runner.invoke(app, ["train", "--resume", str(run_dir), "train.max_steps=6"])  # the holder is gone
    assert resumed.exit_code == 0, resumed.output
    assert json.loads((run_dir / "run.json").read_text())["steps"] == 6


@posix_only
def test_a_killed_trainer_leaves_its_directory_resumable_at_once(tmp_path, synthetic_corpus):
    run_dir = tmp_path / "run"
    config = tmp_path / "config.yaml"
    # Hundreds of epochs: still training whenever it is killed.
    config.write_text(config_to_yaml(tiny_config(synthetic_corpus, tmp_path / "cache", "train.epochs=500",
                                                 "train.checkpoint_every_steps=5")))
    trainer = start(["-m", "lstm_lm", "--threads", "1", "train", "--config", str(config), "--out", str(run_dir),
                     "--device", "cpu"])
    try:
        metrics = run_dir / "metrics.jsonl"
        wait_for(lambda: metrics.is_file() and '"event": "train"' in metrics.read_text(), trainer, "training")
        assert json.loads((run_dir / "train.lock").read_text())["pid"] == trainer.pid
        refusal(runner.invoke(app, ["train", "--resume", str(run_dir), "train.max_steps=1"]), trainer.pid)
        os.kill(trainer.pid, signal.SIGKILL)
        assert trainer.wait(timeout=30) == -signal.SIGKILL
    finally:
        trainer.kill()
        trainer.wait()
    saved = load_tensors(run_dir / "checkpoint.pt")["trainer"]["step"]
    resumed = runner.invoke(app, ["train", "--resume", str(run_dir), f"train.max_steps={saved + 3}"])
    assert resumed.exit_code == 0, resumed.output
    assert f"resuming {run_dir} at epoch " in resumed.stdout and f", step {saved}\n" in resumed.stdout
    info = json.loads((run_dir / "run.json").read_text())
    assert info["status"] == "finished" and info["steps"] == saved + 3


@posix_only
@pytest.mark.parametrize("umask, file_mode, directory_mode", [(0o022, 0o644, 0o755), (0o027, 0o640, 0o750)],
                         ids=["umask 022", "umask 027"])
def test_run_files_follow_the_umask(tmp_path, synthetic_corpus, umask, file_mode, directory_mode):
    run_dir = tmp_path / "runs" / "tiny"  # both directories made by the trainer
    previous = os.umask(umask)
    try:
        train_quietly(tiny_config(synthetic_corpus, tmp_path / "cache", "train.max_steps=3",
                                  "train.keep_checkpoints=2", "train.checkpoint_every_steps=1", "train.device=cpu"),
                      run_dir)
    finally:
        os.umask(previous)
    modes = {path.name: stat.S_IMODE(path.stat().st_mode) for path in run_dir.iterdir()}
    assert {"config.yaml", "tokenizer.json", "model.pt", "checkpoint.pt", "checkpoint-2.pt", "run.json",
            "metrics.jsonl", "train.lock"} <= set(modes)
    assert modes == dict.fromkeys(modes, file_mode)
    for directory in (run_dir, run_dir.parent):
        assert stat.S_IMODE(directory.stat().st_mode) == directory_mode


def test_a_model_too_large_for_the_machine_is_one_line_with_its_size(tmp_path, synthetic_corpus):
    result = runner.invoke(app, ["train", "--config", str(REPO / "configs/tiny.yaml"), "--out", str(tmp_path / "run"),
                                 f"data.path={synthetic_corpus}", f"data.cache_dir={tmp_path / 'cache'}",
                                 "model.hidden_size=10000000", "--device", "cpu"])
    assert result.exit_code == 2, result.output
    line, = result.stderr.strip().splitlines()
    # One 10M-unit LSTM layer on 32-wide embeddings, and a decoder over the synthetic corpus's 62 tokens.
    hidden, embedding, vocab = 10_000_000, 32, 62
    parameters = 4 * hidden * (embedding + hidden) + 8 * hidden + vocab * embedding + hidden * vocab + vocab
    assert f"model.hidden_size=10000000, model.num_layers=1, model.embedding_size=32 and a vocabulary of 62 make " \
           f"{parameters:,} parameters, which need about 3.2 PB for training" in line  # SGD: weights and gradients
    assert "; this machine has " in line and "Traceback" not in result.output
    assert not list((tmp_path / "run").glob("*.pt"))


def test_a_failing_allocation_is_the_same_line(tmp_path, synthetic_corpus, monkeypatch):
    # A machine said to be large enough: the allocator itself refuses the recurrent layer's 1.6 PB.
    monkeypatch.setattr("lstm_lm.model.memory.device_memory", lambda device: 10**18)
    config = tiny_config(synthetic_corpus, tmp_path / "cache", "model.hidden_size=10000000", "train.device=cpu")
    (tmp_path / "config.yaml").write_text(config_to_yaml(config))
    result = runner.invoke(app, ["train", "--config", str(tmp_path / "config.yaml"), "--out", str(tmp_path / "run")])
    assert result.exit_code == 2, result.output
    line, = result.stderr.strip().splitlines()
    assert "parameters, which need about 6.4 PB for training" in line  # AdamW: two moments more
    assert line.endswith("allocating them on this machine failed") and "Traceback" not in result.output

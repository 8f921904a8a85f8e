"""`lstm-lm train` as a library function: prepare the run directory, build the Trainer, run it, and record in
run.json how the run ended."""

from __future__ import annotations

import io
import os
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
from rich.console import Console

from ..config import Config
from ..data.corpus import load_corpus
from ..errors import UserError
from ..evaluate.perplexity import perplexity
from ..hardware.device import resolve_device
from ..hardware.precision import precision_name, resolve_precision
from ..model.language_model import LanguageModel
from ..rundir.checkpoint import checkpoint_files
from ..rundir.layout import CHECKPOINT, METRICS, RUN_INFO, WEIGHTS
from ..rundir.run_files import write_run_files, write_run_info
from ..rundir.run_lock import run_lock
from .distributed import World, barrier, join_world, leave_world
from .progress import Reporter, format_duration
from .trainer import Trainer


def prepare_run_directory(run_dir: Path, resume: bool, force: bool) -> None:
    existing = (run_dir / RUN_INFO).exists() or (run_dir / CHECKPOINT).exists()
    if resume:
        if not checkpoint_files(run_dir):
            raise UserError(f"{run_dir}: no {CHECKPOINT} to resume from")
        return
    if existing and not force:
        raise UserError(f"{run_dir}: already holds a run; continue it with --resume, or pass --force to "
                        f"replace it, or choose another --out")
    if existing:
        for path in (*checkpoint_files(run_dir), *(run_dir / name for name in (WEIGHTS, RUN_INFO, METRICS))):
            path.unlink(missing_ok=True)
    run_dir.mkdir(parents=True, exist_ok=True)



def describe_model(model: LanguageModel, vocab_size: int) -> str:
    c = model.config
    tied = ", tied" if c.tie_weights else ""
    adaptive = f", adaptive softmax {c.adaptive_cutoffs}" if c.softmax == "adaptive" else ""
    layers = "-".join(map(str, c.hidden_sizes)) if c.hidden_sizes else f"{c.num_layers}×{c.hidden_size}"
    return (f"model: {layers} {c.cell}, embedding {c.embedding_size}{tied}{adaptive}, "
            f"vocabulary {vocab_size:,}: {model.parameter_count():,} parameters")



def train(config: Config, run_dir: Path, *, resume: bool = False, force: bool = False,
          console: Console | None = None) -> dict[str, Any]:
    """Train (or resume) a run in `run_dir`; returns the run summary also written to run.json."""
    device = resolve_device(config.train.device)
    resolve_precision(config.train.precision, device)  # a precision this machine lacks: refused before any work
    world, device = join_world(device)
    try:
        info = train_in_world(config, run_dir, world, device, resume=resume, force=force,
                              console=console or Console())
        barrier(world)  # every rank is done before the group goes: Gloo may abort a rank whose peer left first
        return info
    finally:
        leave_world(world)



def train_in_world(config: Config, run_dir: Path, world: World, device: torch.device, *, resume: bool, force: bool,
                   console: Console) -> dict[str, Any]:
    """train() in this process's rank: only rank 0 prints, writes the run directory and holds its lock."""
    # Taken before --force clears anything, held until the last file is written (lstm_lm/rundir/run_lock.py).
    with run_lock(run_dir) if world.main else nullcontext():
        if world.main:
            prepare_run_directory(run_dir, resume, force)
        else:
            console = Console(file=io.StringIO())
        barrier(world)  # the run directory is ready (and, with --force, cleared) before any rank reads it
        corpus = load_corpus(config.data, config.tokenizer, log=console.print)
        if world.main:
            write_run_files(run_dir, config, corpus.tokenizer)
        metrics = run_dir / METRICS if world.main else Path(os.devnull)
        trainer = Trainer(config, run_dir, corpus, device, Reporter(metrics, console), world)
        if resume:
            trainer.resume()
            console.print(f"resuming {run_dir} at epoch {trainer.state.epoch + 1}, step {trainer.state.step}")
        else:
            trainer.save_checkpoint()  # from the first step on, a killed run can resume and bad steps can restore
        console.print(describe_model(trainer.model, corpus.tokenizer.vocab_size))
        processes = f"; {world.size} processes, each on its own 1/{world.size} of the text" if world.distributed else ""
        console.print(f"data: {corpus.train.numel():,} / {corpus.valid.numel():,} / {corpus.test.numel():,} "
                      f"train / valid / test tokens; {trainer.windows:,} windows of {config.train.bptt}×"
                      f"{config.train.batch_size} per epoch; device {device}, precision {precision_name(trainer.dtype)}"
                      + processes)
        info = {"status": "running", "device": str(device), "precision": precision_name(trainer.dtype),
                "parameters": trainer.model.parameter_count(),
                "vocab_size": corpus.tokenizer.vocab_size, "tokenizer": corpus.tokenizer.kind,
                "tokens": {"train": corpus.train.numel(), "valid": corpus.valid.numel(), "test": corpus.test.numel()},
                "processes": world.size}
        if world.main:
            write_run_info(run_dir, info)
        trainer.reporter.start(trainer.total_steps, done=trainer.state.step)
        # From here a signal lets the step finish and the checkpoint be written; a second one raises
        # KeyboardInterrupt wherever the run is, which atomic writes survive.
        with trainer.stop.installed():
            try:
                reason = trainer.run()
            finally:
                trainer.reporter.close()
            return finish(trainer, run_dir, info, reason, console)



def finish(trainer: Trainer, run_dir: Path, info: dict[str, Any], reason: str, console: Console) -> dict[str, Any]:
    """Record how the run ended in run.json: the final numbers, or how to resume."""
    info.update(status="interrupted" if reason == "interrupted" else "finished", stop_reason=reason,
                steps=trainer.state.step, epochs_completed=trainer.state.epoch, tokens_seen=trainer.state.tokens,
                bad_steps=trainer.state.bad_steps,
                elapsed_s=trainer.state.elapsed_s, best_valid_ppl=perplexity(trainer.state.best_valid_loss))
    if reason == "interrupted":
        console.print(f"stopped by {trainer.stop.reason} at step {trainer.state.step}; checkpoint saved. "
                      f"Continue with: lstm-lm train --resume {run_dir}")
    else:
        info["results"] = trainer.final_evaluation()
        results = info["results"]
        console.print(f"done ({reason}) in {format_duration(trainer.state.elapsed_s)}: valid ppl "
                      f"{results['valid']['ppl']:.2f}, test ppl {results['test']['ppl']:.2f}"
                      + (f", test bpc {results['test']['bpc']:.3f}" if "bpc" in results["test"] else ""))
    if trainer.world.main:
        write_run_info(run_dir, info)
    return info

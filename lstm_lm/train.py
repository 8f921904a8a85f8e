"""The training loop: truncated BPTT over (T, B) windows, clipping, schedules, validation, checkpoints, resume."""

from __future__ import annotations

import json
import math
import signal
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator

import torch
from rich.console import Console

from .checkpoint import (CHECKPOINT, METRICS, RUN_INFO, WEIGHTS, load_model_weights, load_tensors,
                         model_weights, save_tensors, write_run_files, write_run_info)
from .config import Config, TrainConfig
from .data import Corpus, batchify, bptt_windows, evaluation_layout, load_corpus, windows_per_epoch
from .device import resolve_device
from .errors import UserError
from .evaluate import Evaluation, evaluate_layout
from .model import Hidden, LanguageModel, detach_hidden
from .precision import autocast, precision_name, resolve_precision
from .progress import Reporter, format_duration, read_metrics
from .schedule import epoch_decay_lr, next_epoch_lr


@dataclass
class TrainerState:
    """Where training stands; saved in checkpoint.pt so that --resume continues exactly here."""

    epoch: int = 0  # current epoch, counted from 0
    row: int = 0  # first row of the next BPTT window in the batchified training data
    step: int = 0  # optimizer steps taken
    tokens: int = 0  # training tokens consumed
    lr: float = 0.0
    best_valid_loss: float = math.inf
    last_epoch_valid_loss: float = math.inf
    elapsed_s: float = 0.0  # wall time spent training in earlier processes of this run


class StopRequest:
    """SIGINT/SIGTERM set a flag so the current step finishes and a checkpoint is written; a second one quits."""

    def __init__(self) -> None:
        self.reason: str | None = None

    def __bool__(self) -> bool:
        return self.reason is not None

    @contextmanager
    def installed(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handle(signum: int, frame: Any) -> None:
            if self.reason is not None:
                raise KeyboardInterrupt
            self.reason = signal.Signals(signum).name

        previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def build_optimizer(parameters: list[torch.nn.Parameter], config: TrainConfig) -> torch.optim.Optimizer:
    if config.optimizer == "adamw":
        return torch.optim.AdamW(parameters, lr=config.lr, weight_decay=config.weight_decay, foreach=True)
    return torch.optim.SGD(parameters, lr=config.lr, weight_decay=config.weight_decay, foreach=True)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def prepare_run_directory(run_dir: Path, resume: bool, force: bool) -> None:
    existing = (run_dir / RUN_INFO).exists() or (run_dir / CHECKPOINT).exists()
    if resume:
        if not (run_dir / CHECKPOINT).is_file():
            raise UserError(f"{run_dir}: no {CHECKPOINT} to resume from")
        return
    if existing and not force:
        raise UserError(f"{run_dir}: already holds a run; continue it with --resume, or pass --force to "
                        f"replace it, or choose another --out")
    if existing:
        for name in (CHECKPOINT, WEIGHTS, RUN_INFO, METRICS):
            (run_dir / name).unlink(missing_ok=True)
    run_dir.mkdir(parents=True, exist_ok=True)


class Trainer:
    def __init__(self, config: Config, run_dir: Path, corpus: Corpus, device: torch.device, reporter: Reporter):
        self.config, self.run_dir, self.corpus, self.device, self.reporter = config, run_dir, corpus, device, reporter
        train = config.train
        torch.manual_seed(train.seed)
        self.model = LanguageModel(config.model, corpus.tokenizer.vocab_size).to(device)
        self.parameters = list(self.model.parameters())
        self.optimizer = build_optimizer(self.parameters, train)
        self.dtype = resolve_precision(train.precision, device)
        # Loss scaling keeps small fp16 gradients from flushing to zero; bf16 has fp32's range and needs none.
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.dtype is torch.float16)
        self.state = TrainerState(lr=self.initial_lr())
        self.train_data = batchify(corpus.train, train.batch_size).to(device)  # (N / B, B)
        self.windows = windows_per_epoch(self.train_data, train.bptt)
        if self.windows == 0:
            raise UserError(f"{config.data.path}: the train split has {corpus.train.numel()} tokens, too few for "
                            f"train.batch_size={train.batch_size} (at least {2 * train.batch_size} needed)")
        self.valid_layout = evaluation_layout(corpus.valid, train.eval_batch_size, corpus.tokenizer.boundary_id)
        self.hidden: Hidden = self.model.init_hidden(train.batch_size)
        self.stop = StopRequest()
        self.started = time.perf_counter()  # reset by run(); elapsed() adds earlier processes' time

    def initial_lr(self) -> float:
        train = self.config.train
        if train.lr_schedule == "epoch_decay":
            return epoch_decay_lr(train.lr, 0, train.lr_decay, train.decay_start_epoch)
        return train.lr

    @property
    def total_steps(self) -> int:
        planned = self.config.train.epochs * self.windows
        return min(planned, self.config.train.max_steps or planned)

    # ---- checkpoints -------------------------------------------------------------------------------------------

    def save_checkpoint(self) -> None:
        save_tensors(self.run_dir / CHECKPOINT, {
            "model": model_weights(self.model),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "trainer": {**asdict(self.state), "elapsed_s": self.elapsed()},
            "rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else [],
            "hidden": [state.detach().cpu() for state in self.hidden],
        })

    def restore_checkpoint(self) -> None:
        path = self.run_dir / CHECKPOINT
        saved = load_tensors(path)
        try:
            load_model_weights(self.model, saved["model"], path)
            self.optimizer.load_state_dict(saved["optimizer"])
            if saved.get("scaler"):  # absent in checkpoints written before mixed precision
                self.scaler.load_state_dict(saved["scaler"])
            self.state = TrainerState(**saved["trainer"])
            torch.set_rng_state(saved["rng"])
            if saved["cuda_rng"] and self.device.type == "cuda":
                torch.cuda.set_rng_state_all(saved["cuda_rng"])
            hidden = tuple(state.to(self.device) for state in saved["hidden"])
        except (KeyError, TypeError, ValueError) as error:
            raise UserError(f"{path}: not a checkpoint this version can resume ({error})") from None
        expected = self.model.init_hidden(self.config.train.batch_size)[0].shape
        self.hidden = hidden if hidden[0].shape == expected else self.model.init_hidden(self.config.train.batch_size)
        set_lr(self.optimizer, self.state.lr)
        # Drop progress records written after this checkpoint by the process that was stopped.
        metrics = self.run_dir / METRICS
        kept = [r for r in read_metrics(metrics) if r.get("step", 0) <= self.state.step]
        metrics.write_text("".join(json.dumps(r) + "\n" for r in kept), encoding="utf-8")

    # ---- evaluation ----------------------------------------------------------------------------------------------

    def validate(self) -> Evaluation:
        inputs, targets = self.valid_layout
        return evaluate_layout(self.model, inputs, targets, self.config.train.bptt, self.device, self.dtype)

    def record_validation(self, result: Evaluation) -> bool:
        """Log a validation result; keep the weights as the best when they are. Returns whether they were."""
        improved = result.loss < self.state.best_valid_loss
        if improved:
            self.state.best_valid_loss = result.loss
            save_tensors(self.run_dir / WEIGHTS, model_weights(self.model))
        extra = {"bpc": result.bpc} if self.corpus.tokenizer.kind == "char" else {}
        self.reporter.record("valid", epoch=self.state.epoch + 1, step=self.state.step, tokens=self.state.tokens,
                             loss=result.loss, ppl=result.ppl, **extra, lr=self.state.lr, best=improved,
                             elapsed_s=self.elapsed())
        self.reporter.message(f"valid | epoch {self.state.epoch + 1} step {self.state.step} | loss "
                              f"{result.loss:.4f} | ppl {result.ppl:.2f}" + (" | best so far" if improved else ""))
        return improved

    # ---- the loop ---------------------------------------------------------------------------------------------------

    def train_step(self, inputs: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One window: forward, backward, clip, update. Returns (mean loss, pre-clip gradient norm) as tensors,
        left on the device so that logging does not force a synchronisation every step."""
        self.hidden = detach_hidden(self.hidden)
        with autocast(self.device, self.dtype):
            losses, self.hidden = self.model(inputs, self.hidden, targets)  # (T, B), fp32
        mean_loss = losses.mean()
        objective = losses.sum(0).mean() if self.config.train.loss_reduction == "time_sum" else mean_loss
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(objective).backward()
        self.scaler.unscale_(self.optimizer)  # clip the true gradients, not the scaled ones
        clip = self.config.train.clip or math.inf
        grad_norm = torch.nn.utils.clip_grad_norm_(self.parameters, clip, foreach=True)
        self.scaler.step(self.optimizer)  # skips the step if fp16 gradients overflowed
        self.scaler.update()
        return mean_loss.detach(), grad_norm.detach()

    def stop_reason(self) -> str | None:
        train = self.config.train
        if self.stop:
            return "interrupted"
        if train.max_steps is not None and self.state.step >= train.max_steps:
            return f"reached train.max_steps={train.max_steps}"
        if train.max_minutes is not None and self.elapsed() >= 60 * train.max_minutes:
            return f"reached train.max_minutes={train.max_minutes:g}"
        if self.state.epoch >= train.epochs:
            return "finished"
        return None

    def elapsed(self) -> float:
        """Seconds of training in this run, earlier processes included."""
        return self.state.elapsed_s + time.perf_counter() - self.started

    def run(self) -> str:
        """Train until an epoch, step or time limit, or a signal. Returns why it stopped."""
        train = self.config.train
        self.started = time.perf_counter()
        steps_at_start = self.state.step
        interval_loss = torch.zeros((), device=self.device)
        interval_norm = torch.zeros((), device=self.device)
        interval_steps, interval_tokens, interval_start = 0, 0, time.perf_counter()
        set_lr(self.optimizer, self.state.lr)
        reason = self.stop_reason()
        with self.stop.installed():
            while reason is None:
                for row, inputs, targets in bptt_windows(self.train_data, train.bptt, self.state.row):
                    loss, norm = self.train_step(inputs, targets)
                    interval_loss += loss
                    interval_norm += norm
                    interval_steps += 1
                    interval_tokens += targets.numel()
                    self.state.step += 1
                    self.state.tokens += targets.numel()
                    self.state.row = row + inputs.size(0)
                    if self.state.step % train.log_every_steps == 0:
                        now = time.perf_counter()
                        self.log_progress(interval_loss.item() / interval_steps, interval_norm.item() / interval_steps,
                                          interval_tokens / (now - interval_start), steps_at_start)
                        interval_loss.zero_()
                        interval_norm.zero_()
                        interval_steps, interval_tokens, interval_start = 0, 0, now
                    if train.eval_every_steps and self.state.step % train.eval_every_steps == 0:
                        self.record_validation(self.validate())
                        self.save_checkpoint()
                    reason = self.stop_reason()
                    if reason is not None:
                        break
                else:
                    self.end_epoch()
                    reason = self.stop_reason()
        if reason not in ("finished", "interrupted") and self.state.row != 0:
            # Stopped by a limit within an epoch: a last validation so the best weights include this progress.
            self.record_validation(self.validate())
        self.save_checkpoint()
        self.state.elapsed_s = self.elapsed()
        self.started = time.perf_counter()
        return reason

    def end_epoch(self) -> None:
        train = self.config.train
        result = self.validate()
        improved_on_last_epoch = result.loss < self.state.last_epoch_valid_loss
        self.record_validation(result)
        self.state.last_epoch_valid_loss = min(result.loss, self.state.last_epoch_valid_loss)
        self.state.epoch += 1
        self.state.row = 0
        self.state.lr = next_epoch_lr(train.lr_schedule, lr=self.state.lr, base_lr=train.lr,
                                      next_epoch=self.state.epoch, improved=improved_on_last_epoch,
                                      decay=train.lr_decay, start_epoch=train.decay_start_epoch)
        set_lr(self.optimizer, self.state.lr)
        self.hidden = self.model.init_hidden(train.batch_size)  # each epoch reads the text from the start
        self.save_checkpoint()

    def log_progress(self, loss: float, grad_norm: float, tokens_per_s: float, steps_at_start: int) -> None:
        elapsed = self.elapsed()
        session_steps = self.state.step - steps_at_start
        eta = (time.perf_counter() - self.started) / session_steps * max(0, self.total_steps - self.state.step)
        if self.config.train.max_minutes is not None:
            eta = min(eta, 60 * self.config.train.max_minutes - elapsed)
        self.reporter.record("train", epoch=self.state.epoch + 1, step=self.state.step, tokens=self.state.tokens,
                             loss=loss, ppl=math.exp(min(loss, 700.0)), lr=self.state.lr, grad_norm=grad_norm,
                             tokens_per_s=tokens_per_s, elapsed_s=elapsed, eta_s=max(0.0, eta))

    def final_evaluation(self) -> dict[str, dict[str, float]]:
        """Valid and test numbers of the best weights."""
        best = load_tensors(self.run_dir / WEIGHTS)
        load_model_weights(self.model, best, self.run_dir / WEIGHTS)
        results = {}
        boundary = self.corpus.tokenizer.boundary_id
        for split in ("valid", "test"):
            inputs, targets = (self.valid_layout if split == "valid" else
                               evaluation_layout(self.corpus.test, self.config.train.eval_batch_size, boundary))
            result = evaluate_layout(self.model, inputs, targets, self.config.train.bptt, self.device, self.dtype)
            results[split] = result.numbers(with_bpc=self.corpus.tokenizer.kind == "char")
        self.reporter.record("test", step=self.state.step, **{f"{split}_{key}": value
                                                              for split, numbers in results.items()
                                                              for key, value in numbers.items()})
        return results


def describe_model(model: LanguageModel, vocab_size: int) -> str:
    c = model.config
    tied = ", tied" if c.tie_weights else ""
    adaptive = f", adaptive softmax {c.adaptive_cutoffs}" if c.softmax == "adaptive" else ""
    return (f"model: {c.num_layers}×{c.hidden_size} {c.cell}, embedding {c.embedding_size}{tied}{adaptive}, vocabulary "
            f"{vocab_size:,}: {model.parameter_count():,} parameters")


def train(config: Config, run_dir: Path, *, resume: bool = False, force: bool = False,
          console: Console | None = None) -> dict[str, Any]:
    """Train (or resume) a run in `run_dir`; returns the run summary also written to run.json."""
    console = console or Console()
    prepare_run_directory(run_dir, resume, force)
    device = resolve_device(config.train.device)
    corpus = load_corpus(config.data, config.tokenizer, log=console.print)
    write_run_files(run_dir, config, corpus.tokenizer)
    trainer = Trainer(config, run_dir, corpus, device, Reporter(run_dir / METRICS, console))
    if resume:
        trainer.restore_checkpoint()
        console.print(f"resuming {run_dir} at epoch {trainer.state.epoch + 1}, step {trainer.state.step}")
    console.print(describe_model(trainer.model, corpus.tokenizer.vocab_size))
    console.print(f"data: {corpus.train.numel():,} / {corpus.valid.numel():,} / {corpus.test.numel():,} "
                  f"train / valid / test tokens; {trainer.windows:,} windows of {config.train.bptt}×"
                  f"{config.train.batch_size} per epoch; device {device}, precision {precision_name(trainer.dtype)}")
    info = {"status": "running", "device": str(device), "precision": precision_name(trainer.dtype),
            "parameters": trainer.model.parameter_count(),
            "vocab_size": corpus.tokenizer.vocab_size, "tokenizer": corpus.tokenizer.kind,
            "tokens": {"train": corpus.train.numel(), "valid": corpus.valid.numel(), "test": corpus.test.numel()}}
    write_run_info(run_dir, info)
    trainer.reporter.start(trainer.total_steps, done=trainer.state.step)
    try:
        reason = trainer.run()
    finally:
        trainer.reporter.close()
    info.update(status="interrupted" if reason == "interrupted" else "finished", stop_reason=reason,
                steps=trainer.state.step, epochs_completed=trainer.state.epoch, tokens_seen=trainer.state.tokens,
                elapsed_s=trainer.state.elapsed_s, best_valid_ppl=math.exp(min(trainer.state.best_valid_loss, 700)))
    if reason == "interrupted":
        console.print(f"stopped by {trainer.stop.reason} at step {trainer.state.step}; checkpoint saved. "
                      f"Continue with: lstm-lm train --resume {run_dir}")
    else:
        info["results"] = trainer.final_evaluation()
        results = info["results"]
        console.print(f"done ({reason}) in {format_duration(trainer.state.elapsed_s)}: valid ppl "
                      f"{results['valid']['ppl']:.2f}, test ppl {results['test']['ppl']:.2f}"
                      + (f", test bpc {results['test']['bpc']:.3f}" if "bpc" in results["test"] else ""))
    write_run_info(run_dir, info)
    return info

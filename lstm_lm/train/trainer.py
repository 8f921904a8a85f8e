"""The training loop: truncated BPTT over (T, B) windows, clipping, schedules, validation, checkpoints, resume."""

from __future__ import annotations

import io
import json
import math
import os
import signal
import threading
import time
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

import torch
from rich.console import Console

from .atomic import atomic_write_text
from .averaging import WeightAverage
from .checkpoint import (CHECKPOINT, METRICS, RUN_INFO, WEIGHTS, checkpoint_files, load_checkpoint,
                         load_model_weights, load_tensors, model_weights, save_tensors, write_checkpoint,
                         write_run_files, write_run_info)
from .config import Config, TrainConfig
from .data import (Corpus, batchify, bptt_windows, evaluation_layout, load_corpus, require_tokens,
                   variable_bptt_windows, windows_per_epoch)
from .device import resolve_device
from .distributed import (World, barrier, gather, join_world, leave_world, max_over_ranks, shard,
                          sum_over_ranks)
from .errors import UserError
from .evaluate import Evaluation, evaluate_layout
from .memory import allocate_model
from .model import Hidden, LanguageModel, detach_hidden
from .precision import autocast, precision_name, resolve_precision
from .progress import Reporter, format_duration, read_metrics
from .regularization import activation_penalty
from .run_lock import run_lock
from .schedule import cosine_lr, next_epoch_lr


@dataclass
class TrainerState:
    """Where training stands; saved in checkpoint.pt so that --resume continues exactly here."""

    epoch: int = 0  # current epoch, counted from 0
    row: int = 0  # first row of the next BPTT window in the batchified training data
    step: int = 0  # training windows processed, skipped bad steps included
    tokens: int = 0  # training tokens consumed
    lr: float = 0.0
    lr_scale: float = 1.0  # product of the cuts made after too many bad steps; scales the cosine schedule
    best_valid_loss: float = math.inf
    last_epoch_valid_loss: float = math.inf
    elapsed_s: float = 0.0  # wall time spent training in earlier processes of this run
    bad_steps: int = 0  # steps skipped because the loss or the gradient norm was NaN or infinite
    bad_in_row: int = 0  # of those, how many came last in a row
    valid_history: list[float] = field(default_factory=list)  # scheduled validations' losses, for NT-ASGD
    history_step: int = -1  # the step of the last validation in valid_history
    last_valid: list[float] = field(default_factory=list)  # [step, tokens, loss] of the latest validation
    averaging_since: int | None = None  # NT-ASGD: the step weight averaging began at


# A run that keeps failing at the same checkpoint after this many restores is stuck: lowering lr did not help.
MAX_RESTORES = 3


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


def due(step: int, every: int | None) -> bool:
    """Whether an every-N-steps action (null N: never) falls on this step."""
    return every is not None and step % every == 0


def build_optimizer(parameters: list[torch.nn.Parameter], config: TrainConfig) -> torch.optim.Optimizer:
    if config.optimizer == "adamw":
        # fused: one pass over the weights; on the CPU 4.5x faster than foreach, which goes tensor by tensor there
        return torch.optim.AdamW(
            parameters, lr=config.lr, weight_decay=config.weight_decay, fused=True)
    return torch.optim.SGD(  # nt_asgd too: the averaging is the trainer's (WeightAverage)
        parameters, lr=config.lr, weight_decay=config.weight_decay, foreach=True)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


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


class Trainer:
    def __init__(self, config: Config, run_dir: Path, corpus: Corpus, device: torch.device, reporter: Reporter,
                 world: World = World()):
        self.config, self.run_dir, self.corpus, self.device, self.reporter = config, run_dir, corpus, device, reporter
        self.world = world
        train = config.train
        torch.manual_seed(train.seed)
        self.model = allocate_model(config.model, corpus.tokenizer.vocab_size, device, train.optimizer)
        # The forward pass that trains: under DDP it averages the gradients over ranks during backward. The
        # adaptive softmax leaves a tail cluster without gradient when no target falls in it.
        self.network = self.model if not world.distributed else torch.nn.parallel.DistributedDataParallel(
            self.model, device_ids=[device] if device.type == "cuda" else None,
            find_unused_parameters=config.model.softmax == "adaptive")
        if world.distributed:
            torch.manual_seed(train.seed + world.rank)  # each rank its own dropout masks; weights came from rank 0
        self.parameters = list(self.model.parameters())
        self.state_dtype = self.model.embedding.weight.dtype  # the carried hidden state's: the weights' (fp32)
        if device.type == "cuda":
            # fp32 products on tensor cores (TF32, Ampere and newer) where the step runs in fp32: the recurrent
            # layers under bf16 (lstm_lm/cells.py) and fp32 training. cuDNN's RNNs allow TF32 by default already.
            torch.backends.cuda.matmul.allow_tf32 = True
        self.optimizer = build_optimizer(self.parameters, train)
        self.dtype = resolve_precision(train.precision, device)
        # Loss scaling keeps small fp16 gradients from flushing to zero; bf16 has fp32's range and needs none.
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.dtype is torch.float16)
        # Plain SGD clips by shortening its step instead of scaling the gradients first: the same update with one
        # pass over all the gradients fewer (4 of 12 ms for clipping and updating PTB medium's 20M weights).
        self.clips_by_step_size = (train.optimizer != "adamw" and train.weight_decay == 0
                                   and not self.scaler.is_enabled())
        self.state = TrainerState(lr=self.initial_lr())
        self.average: WeightAverage | None = None  # NT-ASGD, once validation stops improving
        self.slowest_elapsed = 0.0  # elapsed() of the slowest rank at the last stop check; all ranks agree on it
        self.agreed_stop: list[float] | None = None  # [signalled, slowest elapsed] from the last step's agree()
        train_ids, valid_ids = shard(corpus.train, world, equal=True), shard(corpus.valid, world, equal=False)
        where = config.data.path + (f" (1/{world.size} per process)" if world.distributed else "")
        # One window of inputs needs its next-token targets too: bptt + 1 rows of batch_size tokens.
        require_tokens(train_ids, "train", (train.bptt + 1) * train.batch_size,
                       f"(train.bptt + 1) × train.batch_size = ({train.bptt} + 1) × {train.batch_size}", where)
        require_tokens(valid_ids, "valid", train.bptt * train.eval_batch_size,
                       f"train.bptt × train.eval_batch_size = {train.bptt} × {train.eval_batch_size}", where)
        self.train_data = batchify(train_ids, train.batch_size).to(device)  # (N / size / B, B)
        self.windows = windows_per_epoch(self.train_data, train.bptt)
        self.valid_layout = evaluation_layout(valid_ids, train.eval_batch_size, corpus.tokenizer.boundary_id)
        # Laid out now, so that a test split too small to score fails before training, not after it.
        self.test_layout = evaluation_layout(shard(corpus.test, world, equal=False), train.eval_batch_size,
                                             corpus.tokenizer.boundary_id)
        self.hidden: Hidden = self.model.init_hidden(train.batch_size)
        self.stop = StopRequest()
        self.saved_step: int | None = None  # step of the state in checkpoint.pt, when this process knows it
        self.restores: dict[int, int] = {}  # checkpoint step -> times restored after too many bad steps
        self.started = time.perf_counter()  # reset by run(); elapsed() adds earlier processes' time

    def initial_lr(self) -> float:
        train = self.config.train
        return next_epoch_lr(train.lr_schedule, lr=train.lr, base_lr=train.lr, next_epoch=0, improved=True,
                             decay=train.lr_decay, start_epoch=train.decay_start_epoch)

    @property
    def total_steps(self) -> int:
        planned = self.config.train.epochs * self.windows
        return min(planned, self.config.train.max_steps or planned)

    # ---- checkpoints -------------------------------------------------------------------------------------------

    def save_checkpoint(self) -> None:
        """Write checkpoint.pt (rotating older ones per train.keep_checkpoints); never with non-finite weights."""
        if not torch.stack([p.isfinite().all() for p in self.parameters]).all():  # the same on every rank
            self.reporter.message(f"warning: weights are not finite at step {self.state.step}; {CHECKPOINT} "
                                  f"keeps the state of step {self.saved_step}")
            return
        # Each rank reads its own shard with its own hidden state and dropout RNG: all of them are kept.
        hidden = [gather(state.detach(), self.world) for state in self.hidden]  # [state][rank]
        rngs = gather(torch.get_rng_state(), self.world)
        # Each rank's own GPU's generator too (dropout on CUDA draws from it), not every GPU's as rank 0 sees them.
        cuda_rngs = (gather(torch.cuda.get_rng_state(self.device), self.world) if self.device.type == "cuda"
                     else [None] * self.world.size)
        rank_states = [{"hidden": [state[rank] for state in hidden], "rng": rngs[rank], "cuda_rng": cuda_rngs[rank]}
                       for rank in range(self.world.size)]
        if self.world.main:
            write_checkpoint(self.run_dir, {
                "model": model_weights(self.model),
                "optimizer": self.optimizer.state_dict(),
                "scaler": self.scaler.state_dict(),
                "trainer": {**asdict(self.state), "elapsed_s": self.elapsed()},
                "train_rows": self.train_data.size(0),  # what state.row counts in
                "rank_states": rank_states,  # one per process: hidden state, CPU and CUDA RNG
                "average": self.average.state_dict() if self.average is not None else None,
            }, self.config.train.keep_checkpoints, self.saved_step)
        self.saved_step = self.state.step

    def resume(self) -> None:
        """Continue from the newest checkpoint that loads, forgetting what was logged after it."""
        self.restore_checkpoint()
        if not self.world.main:
            return
        # Drop progress records written after this checkpoint by the process that was stopped.
        metrics = self.run_dir / METRICS
        kept = [r for r in read_metrics(metrics) if r.get("step", 0) <= self.state.step]
        atomic_write_text(metrics, "".join(json.dumps(r) + "\n" for r in kept))

    def restore_checkpoint(self) -> Path:
        """Load model, optimizer, trainer, RNG and hidden state from the newest checkpoint that loads."""
        path, saved = load_checkpoint(self.run_dir, self.reporter.message)
        try:
            load_model_weights(self.model, saved["model"], path)
            self.optimizer.load_state_dict(saved["optimizer"])
            if saved.get("scaler"):  # absent in checkpoints written before mixed precision
                self.scaler.load_state_dict(saved["scaler"])
            self.state = TrainerState(**saved["trainer"])
            self.average = None
            if saved.get("average"):  # absent before NT-ASGD
                self.average = WeightAverage(self.parameters)
                self.average.load_state_dict(saved["average"])
            ranks = saved.get("rank_states") or [saved]  # checkpoints written before distributed runs: one rank
            own = ranks[self.world.rank % len(ranks)]  # with fewer ranks than wrote it, some streams end here
            torch.set_rng_state(own["rng"])
            if own.get("cuda_rng") is not None and self.device.type == "cuda":  # absent from a CPU run
                torch.cuda.set_rng_state(own["cuda_rng"], self.device)
            # Each part (layers, columns of all ranks, H): rank r's columns follow rank r - 1's in the text, so this
            # rank's columns are the same slice whatever number of ranks wrote them (see distributed.shard).
            columns = [torch.cat(states, dim=1) for states in zip(*(rank["hidden"] for rank in ranks))]
        except (KeyError, TypeError, ValueError, IndexError) as error:
            raise UserError(f"{path}: not a checkpoint this version can resume ({error})") from None
        batch_size = self.config.train.batch_size
        hidden = tuple(state[:, self.world.rank * batch_size:(self.world.rank + 1) * batch_size].to(self.device)
                       for state in columns)
        rows = saved.get("train_rows", self.train_data.size(0))
        if rows != self.train_data.size(0):
            # Another number of processes times batch size lays the text out in other rows: go on from the same
            # fraction of the epoch, with fresh hidden states.
            self.state.row = self.state.row * self.train_data.size(0) // rows
            hidden = ()
        expected = self.model.init_hidden(batch_size)[0].shape
        self.hidden = hidden if hidden and hidden[0].shape == expected else self.model.init_hidden(batch_size)
        set_lr(self.optimizer, self.state.lr)
        # An older checkpoint must not be renamed over by the damaged checkpoint.pt it stood in for.
        self.saved_step = self.state.step if path.name == CHECKPOINT else None
        return path

    def skip_bad_step(self) -> bool:
        """Count a step whose loss was not finite (its update was skipped). After train.max_bad_steps in a row,
        restore the last checkpoint with a lower lr. Returns whether it restored: the data position moved back."""
        train = self.config.train
        self.state.bad_steps += 1
        self.state.bad_in_row += 1
        self.hidden = self.model.init_hidden(train.batch_size)  # a NaN hidden state would poison every later window
        if self.state.bad_in_row < train.max_bad_steps:
            return False
        # Run-wide counters go on across the restore; the checkpoint's elapsed_s already counts its own time.
        bad_steps, lr, elapsed = self.state.bad_steps, self.state.lr * train.bad_steps_lr_factor, self.elapsed()
        lr_scale = self.state.lr_scale * train.bad_steps_lr_factor
        path = self.restore_checkpoint()
        self.state.elapsed_s, self.started = elapsed, time.perf_counter()
        restores = self.restores.get(self.state.step, 0) + 1
        if restores > MAX_RESTORES:
            raise UserError(f"{path}: the loss is still not finite after {MAX_RESTORES} restores of step "
                            f"{self.state.step} with lr lowered to {lr:.3g}; check the data and train.lr, "
                            f"train.clip")
        self.restores[self.state.step] = restores
        self.state.bad_steps, self.state.lr, self.state.lr_scale = bad_steps, lr, lr_scale
        set_lr(self.optimizer, lr)
        self.reporter.record("restore", epoch=self.state.epoch + 1, step=self.state.step, bad_steps=bad_steps,
                             lr=lr)
        self.reporter.message(f"{train.max_bad_steps} bad steps in a row (loss not finite): restored {path.name} "
                              f"of step {self.state.step}, lr lowered to {lr:.3g}")
        return True

    # ---- evaluation ----------------------------------------------------------------------------------------------

    def validate(self, scheduled: bool = True) -> Evaluation:
        """Validate (the averaged weights, once NT-ASGD averages), log it, keep the weights when they are the best,
        and, for a `scheduled` validation, start averaging when validation has stopped improving. The extra one
        made when a limit or signal stops a run between scheduled ones leaves NT-ASGD alone, so that a stopped and
        resumed run switches where an uninterrupted one does. A step validated already is not validated again."""
        if self.state.last_valid and self.state.last_valid[0] == self.state.step:
            result = Evaluation(tokens=int(self.state.last_valid[1]), loss=self.state.last_valid[2])
        else:
            with self.evaluation_weights():
                result = self.evaluate(*self.valid_layout)
                self.record_validation(result)
            self.state.last_valid = [self.state.step, result.tokens, result.loss]
        if scheduled and self.state.history_step != self.state.step:
            self.consider_averaging(result.loss)
            self.state.history_step = self.state.step
        return result

    @contextmanager
    def evaluation_weights(self) -> Iterator[None]:
        if self.average is None:
            yield
            return
        with self.average.swapped_in():
            yield

    def consider_averaging(self, loss: float) -> None:
        """NT-ASGD's non-monotone trigger: average from now on if this validation is worse than the best one
        before the last train.nonmono validations."""
        train, history = self.config.train, self.state.valid_history
        if (train.optimizer == "nt_asgd" and self.average is None and len(history) > train.nonmono
                and loss > min(history[:-train.nonmono])):
            self.average = WeightAverage(self.parameters)
            self.state.averaging_since = self.state.step
            self.reporter.record("averaging", epoch=self.state.epoch + 1, step=self.state.step)
            self.reporter.message(f"NT-ASGD: validation stopped improving; averaging weights from step "
                                  f"{self.state.step} on")
        history.append(loss)

    def evaluate(self, inputs: torch.Tensor, targets: torch.Tensor) -> Evaluation:
        """Loss over this rank's (L, B) layout, summed with the other ranks' into the loss over the whole split."""
        result = evaluate_layout(self.model, inputs, targets, self.config.train.bptt, self.device, self.dtype)
        totals = torch.tensor([result.loss * result.tokens, result.tokens], dtype=torch.float64,
                              device=self.world.device)
        total_loss, tokens = sum_over_ranks(totals, self.world).tolist()
        return Evaluation(tokens=int(tokens), loss=total_loss / tokens)

    def record_validation(self, result: Evaluation) -> bool:
        """Log a validation result; keep the weights as the best when they are. Returns whether they were."""
        improved = math.isfinite(result.loss) and result.loss < self.state.best_valid_loss
        if improved:
            self.state.best_valid_loss = result.loss
            if self.world.main:
                save_tensors(self.run_dir / WEIGHTS, model_weights(self.model))
        extra = {"bpc": result.bpc} if self.corpus.tokenizer.kind == "char" else {}
        self.reporter.record("valid", epoch=self.state.epoch + 1, step=self.state.step, tokens=self.state.tokens,
                             loss=result.loss, ppl=result.ppl, **extra, lr=self.state.lr, best=improved,
                             elapsed_s=self.elapsed())
        self.reporter.message(f"valid | epoch {self.state.epoch + 1} step {self.state.step} | loss "
                              f"{result.loss:.4f} | ppl {result.ppl:.2f}" + (" | best so far" if improved else ""))
        return improved

    # ---- the loop ---------------------------------------------------------------------------------------------------

    def train_step(self, inputs: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        """One window: forward, backward, clip, update. Returns (mean loss, pre-clip gradient norm) as tensors,
        left on the device so that logging does not force a further synchronisation; or None, with the weights
        left as they were, when the loss or the gradient norm is NaN or infinite."""
        train = self.config.train
        self.hidden = detach_hidden(self.hidden, self.state_dtype)
        regularize = bool(train.ar_alpha or train.tar_beta)
        with autocast(self.device, self.dtype):
            outputs = self.network(inputs, self.hidden, targets, activations=regularize)
        losses, self.hidden = outputs[0], outputs[1]  # (T, B), fp32
        mean_loss = losses.mean()
        objective = losses.sum(0).mean() if train.loss_reduction == "time_sum" else mean_loss
        if regularize:
            objective = objective + activation_penalty(*outputs[2], train.ar_alpha, train.tar_beta)
        # With variable BPTT a longer window takes a larger step, as its mean loss averages over more tokens (a
        # time_sum loss grows with the window already).
        scaled = train.variable_bptt and train.loss_reduction == "mean"
        lr = self.state.lr * (inputs.size(0) / train.bptt if scaled else 1.0)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(objective).backward()
        self.scaler.unscale_(self.optimizer)  # clip the true gradients, not the scaled ones
        clip = train.clip or math.inf
        if self.clips_by_step_size:
            grad_norm = torch.nn.utils.get_total_norm([p.grad for p in self.parameters if p.grad is not None],
                                                      foreach=True)
        else:
            grad_norm = torch.nn.utils.clip_grad_norm_(self.parameters, clip, foreach=True)
        # Under fp16 loss scaling an infinite gradient is the scaler's business (it skips the step and lowers the
        # scale), not a bad step.
        bad = ~torch.isfinite(mean_loss)
        if not self.scaler.is_enabled():
            bad |= ~torch.isfinite(grad_norm)
        if self.agree(bad):  # all ranks skip, or none
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.update()
            return None
        if self.clips_by_step_size:  # as clip_grad_norm_ would; the norm is on the host's side of the sync now
            lr *= min(1.0, clip / (grad_norm.item() + 1e-6))
        set_lr(self.optimizer, lr)
        scale = self.scaler.get_scale() if self.scaler.is_enabled() and self.average is not None else 0.0
        self.scaler.step(self.optimizer)  # skips the step if fp16 gradients overflowed
        self.scaler.update()  # and then lowers the scale
        if self.average is not None and not (scale and self.scaler.get_scale() < scale):
            self.average.update()
        return mean_loss.detach(), grad_norm.detach()

    def epoch_windows(self) -> Iterator[tuple[int, torch.Tensor, torch.Tensor]]:
        """(row, inputs, targets) of the rest of this epoch, from state.row on."""
        train = self.config.train
        if not train.variable_bptt:
            return bptt_windows(self.train_data, train.bptt, self.state.row)
        # Lengths drawn from the seed and the epoch only: the same on every rank and after a resume.
        return variable_bptt_windows(self.train_data, train.bptt, self.state.row,
                                     seed=train.seed * 1_000_003 + self.state.epoch)

    def agree(self, bad: torch.Tensor) -> bool:
        """The one synchronisation per step: whether any rank's step was bad, so that all skip it or none. The
        same all-reduce brings what stop_reason reads next, so that under torchrun a step waits on one collective,
        not two."""
        values = torch.cat([bad.to(self.world.device, torch.float64).view(1), self.stop_signals()])
        any_bad, *self.agreed_stop = max_over_ranks(values, self.world).tolist()
        return bool(any_bad)

    def stop_signals(self) -> torch.Tensor:
        """This rank's [signalled, elapsed()]: the maximum over ranks says whether any was signalled, and the
        slowest rank's clock."""
        return torch.tensor([float(bool(self.stop)), self.elapsed()], dtype=torch.float64, device=self.world.device)

    def stop_reason(self) -> str | None:
        train = self.config.train
        # Signals and clocks differ between ranks: they stop together, or one would wait for the others forever,
        # and the cosine schedule reads the same clock on every rank, or their weights would drift apart. Right
        # after a step its synchronisation has brought both (agree); elsewhere they are asked for.
        signalled, self.slowest_elapsed = self.agreed_stop or max_over_ranks(self.stop_signals(), self.world).tolist()
        self.agreed_stop = None
        out_of_time = train.max_minutes is not None and self.slowest_elapsed >= 60 * train.max_minutes
        if signalled:
            self.stop.reason = self.stop.reason or "a signal to another rank"
            return "interrupted"
        if train.max_steps is not None and self.state.step >= train.max_steps:
            return f"reached train.max_steps={train.max_steps}"
        if out_of_time:
            return f"reached train.max_minutes={train.max_minutes:g}"
        if self.state.epoch >= train.epochs:
            return "finished"
        return None

    def progress(self) -> float:
        """The share of the planned training done: of the epochs (counted in rows of text, as window lengths may
        vary), of train.max_steps, or of train.max_minutes, whichever is furthest along."""
        train = self.config.train
        done = (self.state.epoch + self.state.row / self.train_data.size(0)) / train.epochs
        if train.max_steps is not None:
            done = max(done, self.state.step / train.max_steps)
        if train.max_minutes is not None:
            done = max(done, self.slowest_elapsed / (60 * train.max_minutes))
        return done

    def elapsed(self) -> float:
        """Seconds of training in this run, earlier processes included."""
        return self.state.elapsed_s + time.perf_counter() - self.started

    def run(self) -> str:
        """Train until an epoch, step or time limit, or a signal (see train(): SIGINT and SIGTERM set self.stop).
        Returns why it stopped."""
        train = self.config.train
        self.started = time.perf_counter()
        steps_at_start = self.state.step
        interval_loss = torch.zeros((), device=self.device)
        interval_norm = torch.zeros((), device=self.device)
        interval_steps, interval_tokens, interval_start = 0, 0, time.perf_counter()
        set_lr(self.optimizer, self.state.lr)
        reason = self.stop_reason()
        while reason is None:
            for row, inputs, targets in self.epoch_windows():
                if train.lr_schedule == "cosine":
                    self.state.lr = cosine_lr(train.lr * self.state.lr_scale, self.progress())
                result = self.train_step(inputs, targets)
                interval_tokens += targets.numel() * self.world.size
                self.state.step += 1
                self.state.tokens += targets.numel() * self.world.size
                self.state.row = row + inputs.size(0)
                if result is None and self.skip_bad_step():
                    break  # restored: read the windows again from the checkpoint's row
                if result is not None:
                    self.state.bad_in_row = 0
                    interval_loss += result[0]
                    interval_norm += result[1]
                    interval_steps += 1
                if self.state.step % train.log_every_steps == 0:
                    now = time.perf_counter()
                    good = interval_steps or math.nan  # a stretch of bad steps only logs NaN
                    loss = sum_over_ranks(interval_loss.to(self.world.device), self.world).item() / self.world.size
                    self.log_progress(loss / good, interval_norm.item() / good,
                                      interval_tokens / (now - interval_start), steps_at_start)
                    interval_loss.zero_()
                    interval_norm.zero_()
                    interval_steps, interval_tokens, interval_start = 0, 0, now
                validate = due(self.state.step, train.eval_every_steps)
                if validate:
                    self.validate()
                periodic = due(self.state.step, train.checkpoint_every_steps)
                if (validate or periodic) and self.state.bad_in_row == 0:  # a bad stretch is not a state to keep
                    self.save_checkpoint()
                reason = self.stop_reason()
                if reason is not None:
                    break
            else:
                self.end_epoch()
                reason = self.stop_reason()
        # Stopped by a limit within an epoch: a last validation so the best weights include this progress.
        final_validation = (reason not in ("finished", "interrupted") and self.state.row != 0
                            and self.state.last_valid[:1] != [self.state.step])
        if final_validation:
            self.validate(scheduled=False)
        if final_validation or self.saved_step != self.state.step:  # the state on disk must be this one
            self.save_checkpoint()
        self.state.elapsed_s = self.elapsed()
        self.started = time.perf_counter()
        return reason

    def end_epoch(self) -> None:
        train = self.config.train
        result = self.validate()
        improved_on_last_epoch = result.loss < self.state.last_epoch_valid_loss
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
        session_steps = max(1, self.state.step - steps_at_start)  # a restore can move the step back
        eta = (time.perf_counter() - self.started) / session_steps * max(0, self.total_steps - self.state.step)
        if self.config.train.max_minutes is not None:
            eta = min(eta, 60 * self.config.train.max_minutes - elapsed)
        self.reporter.record("train", epoch=self.state.epoch + 1, step=self.state.step, tokens=self.state.tokens,
                             loss=loss, ppl=math.exp(min(loss, 700.0)), lr=self.state.lr, grad_norm=grad_norm,
                             bad_steps=self.state.bad_steps,
                             tokens_per_s=tokens_per_s, elapsed_s=elapsed, eta_s=max(0.0, eta))

    def final_evaluation(self) -> dict[str, dict[str, float]]:
        """Valid and test numbers of the best weights."""
        barrier(self.world)  # rank 0 has written model.pt
        best = load_tensors(self.run_dir / WEIGHTS)
        load_model_weights(self.model, best, self.run_dir / WEIGHTS)
        results = {}
        for split, layout in (("valid", self.valid_layout), ("test", self.test_layout)):
            results[split] = self.evaluate(*layout).numbers(with_bpc=self.corpus.tokenizer.kind == "char")
        self.reporter.record("test", step=self.state.step, **{f"{split}_{key}": value
                                                              for split, numbers in results.items()
                                                              for key, value in numbers.items()})
        return results


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
    # Taken before --force clears anything, held until the last file is written (lstm_lm/run_lock.py).
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
    if trainer.world.main:
        write_run_info(run_dir, info)
    return info

"""The training loop: truncated BPTT over (T, B) windows of the training text, with the schedule, validation,
checkpoints and stop conditions around each step. `run` reads top to bottom in the order things happen; the
pieces it calls are units of their own: the step (step.py), validation and the best weights (validation.py), when
to stop (stopping.py) and what a checkpoint holds (checkpointing.py)."""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Iterator

import torch

from ..atomic import atomic_write_text
from ..config import Config
from ..data.batches import (batchify, bptt_windows, evaluation_layout, require_tokens, variable_bptt_windows,
                            windows_per_epoch)
from ..data.splits import Corpus
from ..errors import UserError
from ..evaluate.perplexity import Evaluation, perplexity
from ..model.memory import allocate_model
from ..rundir.checkpoint import load_checkpoint, load_model_weights, load_tensors, model_weights, write_checkpoint
from ..rundir.layout import CHECKPOINT, METRICS, WEIGHTS
from ..rundir.run_files import read_metrics
from .averaging import WeightAverage
from .checkpointing import rank_states, restore_rank_state
from .distributed import World, barrier, max_over_ranks, shard
from .progress import ProgressInterval, Reporter
from .schedule import cosine_lr, next_epoch_lr
from .state import TrainerState
from .step import OptimizationStep
from .stopping import StopRequest, due, limit_reached, planned_share_done
from .validation import Validator, averaging_due

# A run that keeps failing at the same checkpoint after this many restores is stuck: lowering lr did not help.
MAX_RESTORES = 3


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
        network = self.model if not world.distributed else torch.nn.parallel.DistributedDataParallel(
            self.model, device_ids=[device] if device.type == "cuda" else None,
            find_unused_parameters=config.model.softmax == "adaptive")
        if world.distributed:
            torch.manual_seed(train.seed + world.rank)  # each rank its own dropout masks; weights came from rank 0
        if device.type == "cuda":
            # fp32 products on tensor cores (TF32, Ampere and newer) where the step runs in fp32: the recurrent
            # layers under bf16 (lstm_lm/model/cells.py) and fp32 training. cuDNN's RNNs allow TF32 already.
            torch.backends.cuda.matmul.allow_tf32 = True
        self.step = OptimizationStep(self.model, train, device, network)
        self.dtype = self.step.dtype
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
        self.validator = Validator(
            self.model, evaluation_layout(valid_ids, train.eval_batch_size, corpus.tokenizer.boundary_id),
            train.bptt, device, self.dtype, world, reporter, run_dir / WEIGHTS,
            report_bpc=corpus.tokenizer.kind == "char")
        # Laid out now, so that a test split too small to score fails before training, not after it.
        self.test_layout = evaluation_layout(shard(corpus.test, world, equal=False), train.eval_batch_size,
                                             corpus.tokenizer.boundary_id)
        self.hidden = self.model.init_hidden(train.batch_size)
        self.stop = StopRequest()
        self.saved_step: int | None = None  # step of the state in checkpoint.pt, when this process knows it
        self.restores: dict[int, int] = {}  # checkpoint step -> times restored after too many bad steps
        self.started = time.perf_counter()  # reset by run(); elapsed() adds earlier processes' time

    @property
    def optimizer(self) -> torch.optim.Optimizer:
        return self.step.optimizer

    @property
    def parameters(self) -> list[torch.nn.Parameter]:
        return self.step.parameters

    @property
    def valid_layout(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.validator.layout

    def initial_lr(self) -> float:
        train = self.config.train
        return next_epoch_lr(train.lr_schedule, lr=train.lr, base_lr=train.lr, next_epoch=0, improved=True,
                             decay=train.lr_decay, start_epoch=train.decay_start_epoch)

    @property
    def total_steps(self) -> int:
        planned = self.config.train.epochs * self.windows
        return min(planned, self.config.train.max_steps or planned)

    # ---- the loop ---------------------------------------------------------------------------------------------

    def run(self) -> str:
        """Train until an epoch, step or time limit, or a signal (SIGINT and SIGTERM set self.stop). Returns why
        it stopped."""
        train = self.config.train
        self.started = time.perf_counter()
        steps_at_start = self.state.step
        interval = ProgressInterval(self.device)
        reason = self.stop_reason()
        while reason is None:
            for row, inputs, targets in self.epoch_windows():
                if train.lr_schedule == "cosine":
                    self.state.lr = cosine_lr(train.lr * self.state.lr_scale, self.progress())
                numbers = self.train_step(inputs, targets)
                self.state.step += 1
                self.state.tokens += targets.numel() * self.world.size
                self.state.row = row + inputs.size(0)
                interval.add(numbers, targets.numel() * self.world.size)
                if numbers is None and self.skip_bad_step():
                    break  # restored: read the windows again from the checkpoint's row
                if numbers is not None:
                    self.state.bad_in_row = 0
                if self.state.step % train.log_every_steps == 0:
                    self.log_progress(interval, steps_at_start)
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

    def epoch_windows(self) -> Iterator[tuple[int, torch.Tensor, torch.Tensor]]:
        """(row, inputs, targets) of the rest of this epoch, from state.row on."""
        train = self.config.train
        if not train.variable_bptt:
            return bptt_windows(self.train_data, train.bptt, self.state.row)
        # Lengths drawn from the seed and the epoch only: the same on every rank and after a resume.
        return variable_bptt_windows(self.train_data, train.bptt, self.state.row,
                                     seed=train.seed * 1_000_003 + self.state.epoch)

    def train_step(self, inputs: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        """One window from the carried hidden state at the current lr: (mean loss, pre-clip gradient norm), or
        None for a bad step (see OptimizationStep)."""
        self.hidden, numbers = self.step(inputs, targets, self.hidden, self.state.lr, self.average, self.agree)
        return numbers

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
        self.hidden = self.model.init_hidden(train.batch_size)  # each epoch reads the text from the start
        self.save_checkpoint()

    def log_progress(self, interval: ProgressInterval, steps_at_start: int) -> None:
        loss, grad_norm, tokens_per_s = interval.flush(self.world)
        elapsed = self.elapsed()
        session_steps = max(1, self.state.step - steps_at_start)  # a restore can move the step back
        eta = (time.perf_counter() - self.started) / session_steps * max(0, self.total_steps - self.state.step)
        if self.config.train.max_minutes is not None:
            eta = min(eta, 60 * self.config.train.max_minutes - elapsed)
        self.reporter.record("train", epoch=self.state.epoch + 1, step=self.state.step, tokens=self.state.tokens,
                             loss=loss, ppl=perplexity(loss), lr=self.state.lr, grad_norm=grad_norm,
                             bad_steps=self.state.bad_steps,
                             tokens_per_s=tokens_per_s, elapsed_s=elapsed, eta_s=max(0.0, eta))

    # ---- bad steps ----------------------------------------------------------------------------------------------

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
        self.reporter.record("restore", epoch=self.state.epoch + 1, step=self.state.step, bad_steps=bad_steps,
                             lr=lr)
        self.reporter.message(f"{train.max_bad_steps} bad steps in a row (loss not finite): restored {path.name} "
                              f"of step {self.state.step}, lr lowered to {lr:.3g}")
        return True

    # ---- validation ---------------------------------------------------------------------------------------------

    def validate(self, scheduled: bool = True) -> Evaluation:
        """Validate and keep the best weights (validation.py); a `scheduled` validation may also start NT-ASGD's
        averaging. The extra one made when a limit or signal stops a run between scheduled ones leaves NT-ASGD
        alone, so that a stopped and resumed run switches where an uninterrupted one does."""
        result = self.validator.validate(self.state, self.average, self.elapsed())
        if scheduled and self.state.history_step != self.state.step:
            self.consider_averaging(result.loss)
            self.state.history_step = self.state.step
        return result

    def consider_averaging(self, loss: float) -> None:
        if self.average is None and averaging_due(self.config.train, self.state.valid_history, loss):
            self.average = WeightAverage(self.parameters)
            self.state.averaging_since = self.state.step
            self.reporter.record("averaging", epoch=self.state.epoch + 1, step=self.state.step)
            self.reporter.message(f"NT-ASGD: validation stopped improving; averaging weights from step "
                                  f"{self.state.step} on")
        self.state.valid_history.append(loss)

    def final_evaluation(self) -> dict[str, dict[str, float]]:
        """Valid and test numbers of the best weights."""
        barrier(self.world)  # rank 0 has written model.pt
        best = load_tensors(self.run_dir / WEIGHTS)
        load_model_weights(self.model, best, self.run_dir / WEIGHTS)
        results = {}
        for split, layout in (("valid", self.valid_layout), ("test", self.test_layout)):
            results[split] = self.validator.evaluate(*layout).numbers(with_bpc=self.corpus.tokenizer.kind == "char")
        self.reporter.record("test", step=self.state.step, **{f"{split}_{key}": value
                                                              for split, numbers in results.items()
                                                              for key, value in numbers.items()})
        return results

    # ---- stopping, and the clock all ranks share -------------------------------------------------------------------

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
        # Signals and clocks differ between ranks: they stop together, or one would wait for the others forever,
        # and the cosine schedule reads the same clock on every rank, or their weights would drift apart. Right
        # after a step its synchronisation has brought both (agree); elsewhere they are asked for.
        signalled, self.slowest_elapsed = self.agreed_stop or max_over_ranks(self.stop_signals(), self.world).tolist()
        self.agreed_stop = None
        if signalled:
            self.stop.reason = self.stop.reason or "a signal to another rank"
            return "interrupted"
        return limit_reached(self.state, self.config.train, self.slowest_elapsed)

    def progress(self) -> float:
        return planned_share_done(self.state, self.config.train, self.train_data.size(0), self.slowest_elapsed)

    def elapsed(self) -> float:
        """Seconds of training in this run, earlier processes included."""
        return self.state.elapsed_s + time.perf_counter() - self.started

    # ---- checkpoints ------------------------------------------------------------------------------------------------

    def save_checkpoint(self) -> None:
        """Write checkpoint.pt (rotating older ones per train.keep_checkpoints); never with non-finite weights."""
        if not torch.stack([p.isfinite().all() for p in self.parameters]).all():  # the same on every rank
            self.reporter.message(f"warning: weights are not finite at step {self.state.step}; {CHECKPOINT} "
                                  f"keeps the state of step {self.saved_step}")
            return
        ranks = rank_states(self.hidden, self.world, self.device)
        if self.world.main:
            write_checkpoint(self.run_dir, {
                "model": model_weights(self.model),
                "optimizer": self.optimizer.state_dict(),
                "scaler": self.step.scaler.state_dict(),
                "trainer": {**asdict(self.state), "elapsed_s": self.elapsed()},
                "train_rows": self.train_data.size(0),  # what state.row counts in
                "rank_states": ranks,  # one per process: hidden state, CPU and CUDA RNG
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
                self.step.scaler.load_state_dict(saved["scaler"])
            self.state = TrainerState(**saved["trainer"])
            self.average = None
            if saved.get("average"):  # absent before NT-ASGD
                self.average = WeightAverage(self.parameters)
                self.average.load_state_dict(saved["average"])
        except (KeyError, TypeError, ValueError, IndexError) as error:
            raise UserError(f"{path}: not a checkpoint this version can resume ({error})") from None
        batch_size = self.config.train.batch_size
        hidden = restore_rank_state(saved, self.world, self.device, batch_size, str(path))
        rows = saved.get("train_rows", self.train_data.size(0))
        if rows != self.train_data.size(0):
            # Another number of processes times batch size lays the text out in other rows: go on from the same
            # fraction of the epoch, with fresh hidden states.
            self.state.row = self.state.row * self.train_data.size(0) // rows
            hidden = ()
        expected = self.model.init_hidden(batch_size)[0].shape
        self.hidden = hidden if hidden and hidden[0].shape == expected else self.model.init_hidden(batch_size)
        # An older checkpoint must not be renamed over by the damaged checkpoint.pt it stood in for.
        self.saved_step = self.state.step if path.name == CHECKPOINT else None
        return path

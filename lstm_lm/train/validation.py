"""Validation during training: the loss over the whole valid split (all ranks' shares summed), its log line, the
best weights kept in model.pt, and NT-ASGD's trigger for averaging."""

from __future__ import annotations

import math
from contextlib import nullcontext
from pathlib import Path

import torch

from ..config import TrainConfig
from ..evaluate.perplexity import Evaluation, evaluate_layout
from ..model.language_model import LanguageModel
from ..rundir.checkpoint import model_weights, save_tensors
from .averaging import WeightAverage
from .distributed import World, sum_over_ranks
from .progress import Reporter
from .state import TrainerState


class Validator:
    """Scores the model on (L, B) layouts and keeps the best weights in `best_weights` (written by rank 0)."""

    def __init__(self, model: LanguageModel, layout: tuple[torch.Tensor, torch.Tensor], bptt: int,
                 device: torch.device, dtype: torch.dtype, world: World, reporter: Reporter, best_weights: Path,
                 report_bpc: bool):
        self.model, self.layout, self.bptt, self.device, self.dtype = model, layout, bptt, device, dtype
        self.world, self.reporter, self.best_weights, self.report_bpc = world, reporter, best_weights, report_bpc

    def evaluate(self, inputs: torch.Tensor, targets: torch.Tensor) -> Evaluation:
        """Loss over this rank's (L, B) layout, summed with the other ranks' into the loss over the whole split."""
        result = evaluate_layout(self.model, inputs, targets, self.bptt, self.device, self.dtype)
        totals = torch.tensor([result.loss * result.tokens, result.tokens], dtype=torch.float64,
                              device=self.world.device)
        total_loss, tokens = sum_over_ranks(totals, self.world).tolist()
        return Evaluation(tokens=int(tokens), loss=total_loss / tokens)

    def validate(self, state: TrainerState, average: WeightAverage | None, elapsed_s: float) -> Evaluation:
        """Validate the weights (the averaged ones, once NT-ASGD averages), log the result and keep the weights
        when they are the best. A step validated already is not validated again."""
        if state.last_valid and state.last_valid[0] == state.step:
            return Evaluation(tokens=int(state.last_valid[1]), loss=state.last_valid[2])
        with average.swapped_in() if average is not None else nullcontext():
            result = self.evaluate(*self.layout)
            self.record(result, state, elapsed_s)
        state.last_valid = [state.step, result.tokens, result.loss]
        return result

    def record(self, result: Evaluation, state: TrainerState, elapsed_s: float) -> bool:
        """Log a validation result; keep the weights as the best when they are. Returns whether they were."""
        improved = math.isfinite(result.loss) and result.loss < state.best_valid_loss
        if improved:
            state.best_valid_loss = result.loss
            if self.world.main:
                save_tensors(self.best_weights, model_weights(self.model))
        extra = {"bpc": result.bpc} if self.report_bpc else {}
        self.reporter.record("valid", epoch=state.epoch + 1, step=state.step, tokens=state.tokens,
                             loss=result.loss, ppl=result.ppl, **extra, lr=state.lr, best=improved,
                             elapsed_s=elapsed_s)
        self.reporter.message(f"valid | epoch {state.epoch + 1} step {state.step} | loss "
                              f"{result.loss:.4f} | ppl {result.ppl:.2f}" + (" | best so far" if improved else ""))
        return improved


def averaging_due(train: TrainConfig, history: list[float], loss: float) -> bool:
    """NT-ASGD's non-monotone trigger: average from now on if this validation is worse than the best one before
    the last train.nonmono validations (`history`: the earlier scheduled validations' losses)."""
    return (train.optimizer == "nt_asgd" and len(history) > train.nonmono
            and loss > min(history[:-train.nonmono]))

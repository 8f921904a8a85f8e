"""Cross-entropy over a large vocabulary without fp32 copies of the whole (N, V) logits.

`F.cross_entropy(logits.float(), targets)` on bf16 logits writes an fp32 copy of all N × V logits, a log-softmax
of it, and in backward a zero-filled (N, V) gradient, another log-softmax pass and a cast back: memory-bound passes
that took about 30% of a bf16 training step of the PTB medium model (scripts/profile_step.py). Here the fp32 work
runs on row chunks small enough to stay in cache, and backward writes the gradient once, in the logits' dtype:
d nll / d logits = softmax(logits) - onehot(target), formed in fp32 and rounded once.
"""

from __future__ import annotations

import torch

ROWS_PER_CHUNK = 256  # 256 rows × 10k words × 4 bytes = 10 MB of fp32 at a time


def widened(tensor: torch.Tensor) -> torch.Tensor:
    """bf16 or fp16 -> fp32 for the exponentials; fp32 and fp64 stay as they are."""
    return tensor.to(torch.promote_types(tensor.dtype, torch.float32))


class TokenNLL(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """logits (N, V) of any float dtype, targets (N,) valid ids -> (N,) negative log-likelihoods in fp32 (fp64
        for fp64 logits)."""
        log_normalizers = torch.cat([torch.logsumexp(widened(chunk), dim=-1)
                                     for chunk in logits.split(ROWS_PER_CHUNK)])  # (N,)
        picked = widened(logits.gather(1, targets.unsqueeze(1)).squeeze(1))  # (N,)
        ctx.save_for_backward(logits, targets, log_normalizers)
        return log_normalizers - picked

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor) -> tuple[torch.Tensor, None]:
        logits, targets, log_normalizers = ctx.saved_tensors
        grad = torch.empty_like(logits)
        in_place = widened(logits[:0]).dtype == logits.dtype  # fp32 logits: the chunk is worked on inside grad
        for start in range(0, logits.size(0), ROWS_PER_CHUNK):
            rows = slice(start, start + ROWS_PER_CHUNK)
            if in_place:
                chunk = torch.sub(logits[rows], log_normalizers[rows, None], out=grad[rows])
            else:
                chunk = widened(logits[rows]) - log_normalizers[rows, None]
            chunk.exp_()  # the softmax of the chunk's rows
            # p - 1 at the target, in fp32: in bf16 it would cancel to nothing for a confident prediction
            chunk[torch.arange(chunk.size(0), device=logits.device), targets[rows]] -= 1
            chunk.mul_(grad_output[rows, None])
            if not in_place:
                grad[rows] = chunk  # rounded once to the logits' dtype
        return grad, None


def token_nll(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """(N, V) logits, (N,) target ids (all valid) -> (N,) fp32 negative log-likelihood of each target."""
    return TokenNLL.apply(logits, targets)

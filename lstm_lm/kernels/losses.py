"""The decoder and its cross-entropy in one step, without fp32 copies of the whole (N, V) logits.

Through autocast, `F.cross_entropy(decoder(x).float(), targets)` writes an fp32 copy of all N × V logits, a
log-softmax of it, and in backward a zero-filled (N, V) gradient, another softmax pass and a cast back:
memory-bound passes over the largest tensor of the step. Here the fp32 work runs on row chunks small enough to
stay in the CPU's cache, and in training the same pass that finds each row's log-normalizer also writes the
gradient d nll / d logits = softmax(logits) − onehot(target), once, in the logits' dtype and into the logits' own
storage. The backward then only multiplies: the incoming per-token gradients g scale the small (N, D) and
(V,) results rather than the (N, V) gradient.

In bf16 on the CPU the bias rides along as one more input column (lstm_lm/kernels/products.py). Elsewhere (fp32 in MKL,
CUDA's cuBLAS) the product takes the bias as it is: an odd inner dimension (651) and unaligned rows would keep
cuBLAS off its tensor-core kernels for the largest product of the step.
"""

from __future__ import annotations

import torch

from .products import (linear_by_blocks, matmul_by_row_blocks, shaped_for_onednn, weight_gradients, with_bias_column,
                       with_ones_column)

# fp32 logits worked on at a time: on the CPU 2 MB, about one core's L2 cache; on a GPU far more, where every
# chunk costs a handful of kernel launches and caches do not decide.
CHUNK_ELEMENTS = {"cpu": 1 << 19, "cuda": 1 << 26}


def widened(tensor: torch.Tensor) -> torch.Tensor:
    """bf16 or fp16 -> fp32 for the exponentials; fp32 and fp64 stay as they are."""
    return tensor.to(torch.promote_types(tensor.dtype, torch.float32))


class DecoderNLL(torch.autograd.Function):
    @staticmethod
    def forward(ctx, features, weight, bias, targets, dtype):
        """features (N, D), weight (V, D), bias (V,) or None, targets (N,) valid ids; the products in `dtype`
        -> (N,) negative log-likelihoods in fp32 (fp64 for fp64 inputs)."""
        with torch.autocast(features.device.type, enabled=False):  # the dtypes are chosen here
            rows = features.to(dtype)  # (N, D)
            bias_column = bias is not None and shaped_for_onednn(rows)
            if bias_column:  # rows (x_n, 1) against the weight (W | b)
                rows, w = with_ones_column(rows), with_bias_column(weight, bias, dtype)  # (N, D + 1), (V, D + 1)
                logits = linear_by_blocks(rows, w)  # (N, V)
            else:
                w = weight.to(dtype)  # (V, D)
                logits = linear_by_blocks(rows, w) if bias is None else torch.addmm(bias.to(dtype), rows, w.t())
            nll = torch.empty(len(rows), dtype=widened(logits[:0]).dtype, device=rows.device)
            training = any(ctx.needs_input_grad[:3])
            rows_per_chunk = max(1, CHUNK_ELEMENTS.get(logits.device.type, CHUNK_ELEMENTS["cpu"]) // logits.size(1))
            for start in range(0, len(rows), rows_per_chunk):
                chunk = slice(start, start + rows_per_chunk)
                log_probs = torch.log_softmax(widened(logits[chunk]), dim=-1)
                picked = targets[chunk].unsqueeze(1)
                nll[chunk] = -log_probs.gather(1, picked).squeeze(1)
                if training:
                    probs = log_probs.exp_()
                    # p − 1 at the target, in fp32: in bf16 it would cancel to nothing for a confident prediction
                    probs.scatter_add_(1, picked, probs.new_full(picked.shape, -1.0))
                    logits[chunk] = probs  # rounded once to the logits' dtype
        if training:
            ctx.save_for_backward(rows, w, logits)  # logits now hold d nll / d logits
            ctx.has_bias, ctx.bias_column = bias is not None, bias_column
            ctx.input_dtypes = features.dtype, weight.dtype
        return nll

    @staticmethod
    def backward(ctx, grad_nll):
        rows, w, d_logits = ctx.saved_tensors
        features_dtype, weight_dtype = ctx.input_dtypes
        size = w.size(1) - ctx.bias_column  # D
        g = widened(grad_nll).unsqueeze(1)  # (N, 1)
        d_features = (matmul_by_row_blocks(d_logits, w[:, :size]) * g).to(features_dtype)
        # The weight's gradient d_logitsᵀ times the rows scaled by g; with the bias column the same product gives
        # the bias's, else it is d_logitsᵀ g.
        scaled_rows = (rows * g).to(rows.dtype)
        d_weight, *d_bias = weight_gradients(d_logits, [scaled_rows], [size, 1] if ctx.bias_column else [size],
                                             weight_dtype)
        if ctx.bias_column:
            d_bias = d_bias[0].view(-1)
        else:
            d_bias = (d_logits.t() @ g.squeeze(1).to(d_logits.dtype)).to(weight_dtype) if ctx.has_bias else None
        return d_features, d_weight, d_bias, None, None


def decoder_nll(features: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                targets: torch.Tensor) -> torch.Tensor:
    """The negative log-likelihood (N,) in fp32 of each target (N,) under softmax(features @ weight.T + bias):
    features (N, D), weight (V, D), bias (V,). The products run in autocast's dtype where autocast is on."""
    device = features.device.type
    dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else features.dtype
    return DecoderNLL.apply(features, weight, bias, targets, dtype)

"""One LSTM layer with its own time loop and a written-out backward, for training on the CPU under bf16 autocast.

The fused CPU kernel (oneDNN's `mkldnn_rnn_layer`) runs every product of a small-batch step through small
matrices. Here only what must wait for the step before runs step by step: the product with h_{t-1} forward, and
the product with the gates' gradient backward. Everything else is one large product over all T·B rows, where the
AMX units do well: the input projection, and in the backward the input gradient and both weight gradients. The
element-wise derivative factors are computed for all steps at once, so the backward loop runs six small
operations per step.

Numbers: the matrix products run in bf16 with fp32 accumulation, the cell state c and the gradients carried
from step to step (dh, dc) in fp32, as the fused kernels keep them. lstm_lm/model/fast_lstm.py decides where this
loop runs; the timings behind that are in docs/performance.md ("The written LSTM loop").
"""

from __future__ import annotations

import functools
from typing import Callable

import torch

from .products import (linear_by_blocks, matmul_by_row_blocks, shaped_for_onednn, weight_gradients, with_bias_column,
                       with_ones_column)


@functools.cache
def onednn_runs_bf16() -> bool:
    """Whether oneDNN's bf16 kernels, and the operator that lays a weight out for them, run on this CPU (they need
    AVX-512 or AMX; elsewhere they raise, and plain products run instead)."""
    return torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()


def recurrent_product(weight: torch.Tensor, rows: int) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """(x (rows, K), add (rows, N)) -> add + x @ weight.T, for `weight` (N, K) used at every step of a window.

    oneDNN re-lays the weight out for its bf16 matrix units at every plain product; laid out once per window, a
    (2600, 650) product with 20 rows takes about 95 µs instead of 150 (the layout costs about 570 µs, once)."""
    if not shaped_for_onednn(weight) or not onednn_runs_bf16():
        return lambda x, add: torch.addmm(add, x, weight.t())
    packed = torch.ops.mkldnn._reorder_linear_weight(weight, rows)
    return lambda x, add: torch.ops.mkldnn._linear_pointwise.binary(x, add, packed, None, "add")


def wide(dtype: torch.dtype) -> torch.dtype:
    """The dtype of the cell state and of the gradients carried between steps: fp32, or fp64 for fp64 inputs."""
    return torch.promote_types(dtype, torch.float32)


class LSTMLayerFunction(torch.autograd.Function):
    """One LSTM layer over a window, gates in nn.LSTM's order (i, f, g, o).

    x (T, B, I) and h0 (B, H) in the compute dtype, c0 (B, H), and the layer's fp32 parameters w_ih (4H, I),
    w_hh (4H, H), b_ih and b_hh (4H,) -> outputs (T, B, H) in the compute dtype, h_T and c_T (B, H) in fp32
    (fp64 for fp64 inputs). The weights are cast here rather than by autocast so that their gradients can be
    written straight into fp32 in the parameters' layout (see backward)."""

    @staticmethod
    def forward(ctx, x, h0, c0, w_ih, w_hh, b_ih, b_hh):
        steps, batch, _ = x.shape
        size = w_hh.size(1)
        state_dtype = wide(x.dtype)
        # (T·B, I + 1) rows (x_t, 1) against (W_ih | b_ih + b_hh): the bias rides along as an input column
        # (lstm_lm/kernels/products.py), and both serve the backward again.
        rows = with_ones_column(x.reshape(steps * batch, -1))
        w_ih_b = with_bias_column(w_ih, b_ih + b_hh, x.dtype)  # (4H, I + 1)
        from_input = linear_by_blocks(rows, w_ih_b)  # (T·B, 4H): every step's input share in one product
        ctx.parameter_dtype = w_ih.dtype
        w_hh = w_hh.to(x.dtype)
        recurrent = recurrent_product(w_hh, batch)
        # σ(a) = (1 + tanh(a / 2)) / 2, so one tanh activates all four gates: in fp32 a (20, 2600) tanh takes
        # about 10 µs, where sigmoid, and tanh in bf16, took 15-18 µs per gate group. `halve` scales the i, f
        # and o columns of the pre-activations by 1/2 (and widens them to fp32); halve and shift turn their
        # tanh into σ.
        halve = torch.ones(4, size, dtype=state_dtype, device=x.device)
        halve[[0, 1, 3]] = 0.5
        halve = halve.view(-1)
        shift = 1 - halve

        gates = torch.empty(steps, batch, 4 * size, dtype=state_dtype, device=x.device)  # activated
        hs = x.new_empty(steps + 1, batch, size)  # h_0 .. h_T
        cs = torch.empty(steps + 1, batch, size, dtype=state_dtype, device=x.device)  # c_0 .. c_T
        tanh_cs = torch.empty(steps, batch, size, dtype=state_dtype, device=x.device)  # tanh c_1 .. tanh c_T
        hs[0] = h0
        cs[0] = c0
        # Per-step views made once: indexing inside the loop cost about 1 ms per layer and window.
        i, f, g, o = (part.unbind(0) for part in gates.chunk(4, dim=2))
        gate_steps, input_steps = gates.unbind(0), from_input.view(steps, batch, -1).unbind(0)
        h_steps, c_steps, tanh_c_steps = hs.unbind(0), cs.unbind(0), tanh_cs.unbind(0)
        for t in range(steps):
            # (widening first: bf16 times fp32 in one step took 53 µs, the copy and an fp32 product 8)
            activated = gate_steps[t].copy_(recurrent(h_steps[t], input_steps[t])).mul_(halve).tanh_()
            torch.addcmul(shift, activated, halve, out=activated)
            torch.mul(f[t], c_steps[t], out=c_steps[t + 1]).addcmul_(i[t], g[t])
            torch.mul(o[t], torch.tanh(c_steps[t + 1], out=tanh_c_steps[t]), out=h_steps[t + 1])
        ctx.save_for_backward(rows, w_ih_b, w_hh, gates, hs, cs, tanh_cs)
        return hs[1:], hs[steps].to(state_dtype), cs[steps].clone()

    @staticmethod
    def backward(ctx, d_outputs, d_h_last, d_c_last):
        rows, w_ih_b, w_hh, gates, hs, cs, tanh_c = ctx.saved_tensors
        steps, batch, size = hs.size(0) - 1, hs.size(1), hs.size(2)
        inputs = rows.size(1) - 1
        w_ih = w_ih_b[:, :inputs]
        activated = gates.view(steps, batch, 4, size)
        i, f, g, o = activated.unbind(2)  # (T, B, H) each
        # For all steps at once: dc_t gains dh_t · o_t (1 − tanh² c_t); the gates' pre-activation gradients are
        # dc_t (i, f, g) or dh_t (o) times the activations' derivatives times what each gate multiplies.
        dh_to_dc = torch.addcmul(o, o, tanh_c.square(), value=-1)
        factors = torch.addcmul(activated, activated, activated, value=-1)  # σ' = s (1 − s); g's slot next
        torch.mul(g, g, out=factors[:, :, 2]).neg_().add_(1)  # tanh' = 1 − g²
        for gate, multiplier in enumerate((g, cs[:-1], i, tanh_c)):
            factors[:, :, gate].mul_(multiplier)

        d_outputs = torch.zeros_like(tanh_c) if d_outputs is None else d_outputs.to(cs.dtype)
        dh = d_outputs[-1] if d_h_last is None else d_outputs[-1] + d_h_last
        dc = torch.zeros_like(tanh_c[0]) if d_c_last is None else d_c_last.to(cs.dtype, copy=True)
        d_gates = hs.new_empty(steps, batch, 4, size)  # pre-activation gradients in the compute dtype
        cell_factors, output_factors = factors[:, :, :3].unbind(0), factors[:, :, 3].unbind(0)
        cell_grads, output_grads = d_gates[:, :, :3].unbind(0), d_gates[:, :, 3].unbind(0)
        grad_steps = d_gates.view(steps, batch, -1).unbind(0)
        dh_to_dc, f, d_outputs = dh_to_dc.unbind(0), f.unbind(0), d_outputs.unbind(0)
        for t in range(steps - 1, -1, -1):
            dc.addcmul_(dh, dh_to_dc[t])
            torch.mul(dc.unsqueeze(1), cell_factors[t], out=cell_grads[t])  # i, f, g
            torch.mul(dh, output_factors[t], out=output_grads[t])  # o
            dc.mul_(f[t])
            if t > 0 or ctx.needs_input_grad[1]:
                dh = torch.mm(grad_steps[t], w_hh)  # the gradient reaching h_{t-1}
            if t > 0:
                dh = d_outputs[t - 1] + dh

        flat = d_gates.view(steps * batch, 4 * size)
        dx = matmul_by_row_blocks(flat, w_ih).view(steps, batch, inputs) if ctx.needs_input_grad[0] else None
        # Both weights' gradients and the bias's in one product: the gates' gradients times the rows
        # (x_t, 1, h_{t-1}), written into the parameters' layout and dtype (lstm_lm/kernels/products.py).
        d_w_ih, d_bias, d_w_hh = weight_gradients(flat, [rows, hs[:-1].reshape(steps * batch, size)],
                                                  [inputs, 1, size], ctx.parameter_dtype)
        d_bias = d_bias.view(-1)
        d_h0 = dh.to(hs.dtype) if ctx.needs_input_grad[1] else None
        return dx, d_h0, dc, d_w_ih, d_w_hh, d_bias, d_bias.clone()
